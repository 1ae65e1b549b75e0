"""Change notifications for `syncPoke`: wake subscribers when the change log grows.

Each server instance runs one watcher of the log head. Local commits wake it at once;
on PostgreSQL, commits on *other* instances wake it through LISTEN/NOTIFY; on SQLite
(one machine, maybe several workers) it also polls the head while anyone listens.
Subscribers then check, with one indexed query, whether the news is in their scope.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
import sqlalchemy as sa
from sqlmodel import col

from server.db import Database
from sync.tables import LogHead

log = logging.getLogger("fieldsync.notify")
CHANNEL = "fieldsync_changes"


NOTIFY_TASK = "fieldsync-notify"


class Notifier:
    def __init__(self, db: Database, pg_dsn: str | None, poll_interval: float = 0.5) -> None:
        self.db = db
        self.pg_dsn = pg_dsn
        self.poll_interval = poll_interval
        self.head = 0
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()
        self._listeners = 0
        self._notify_pending = False
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.head = await self._read_head()
        self._tasks.append(asyncio.create_task(self._watch(), name="fieldsync-head-watch"))
        if self.pg_dsn:
            self._tasks.append(asyncio.create_task(self._listen(self.pg_dsn),
                                                  name="fieldsync-listen"))

    async def stop(self) -> None:
        await self.drain()  # other instances should still hear of the last commits
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def drain(self) -> None:
        """Wait for the NOTIFYs in flight (each holds a pooled connection meanwhile)."""
        pending = [t for t in self._tasks if t.get_name() == NOTIFY_TASK]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def committed(self) -> None:
        """Call after a local commit that wrote changes."""
        self._wake.set()
        if self.pg_dsn and not self._notify_pending:
            # Coalesced: one NOTIFY in flight at a time; a missed one is caught by the
            # watchers' polling while they have subscribers.
            self._notify_pending = True
            task = asyncio.create_task(self._notify_others(), name=NOTIFY_TASK)
            self._tasks.append(task)
            task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def wait_beyond(self, seq: int) -> int:
        """Wait until the head passes `seq`; returns the new head."""
        self._listeners += 1
        self._wake.set()  # the watcher re-reads the head and starts polling if it was idle
        try:
            async with self._changed:
                await self._changed.wait_for(lambda: self.head > seq)
                return self.head
        finally:
            self._listeners -= 1

    async def _read_head(self) -> int:
        async with self.db.read() as session:
            return int((await session.execute(sa.select(col(LogHead.last_seq)))).scalar_one())

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                timeout = self.poll_interval if self._listeners else None
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            try:
                head = await self._read_head()
            except Exception:  # the database may be restarting: try again shortly
                log.warning("could not read the change-log head", exc_info=True)
                await asyncio.sleep(self.poll_interval)
                continue
            if head > self.head:
                async with self._changed:
                    self.head = head
                    self._changed.notify_all()

    async def _notify_others(self) -> None:
        try:
            async with self.db.engine.connect() as conn:
                await conn.execute(sa.text(f"NOTIFY {CHANNEL}"))
                await conn.commit()
        except Exception:
            log.warning("NOTIFY failed; other instances will catch up on their next poll",
                        exc_info=True)
        finally:
            self._notify_pending = False

    async def _listen(self, dsn: str) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._wake.set()  # catch up on anything missed while disconnected
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("LISTEN connection lost; reconnecting", exc_info=True)
                await asyncio.sleep(1)
