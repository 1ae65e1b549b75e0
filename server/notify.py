"""Change notifications for `syncPoke`: wake subscribers when the change log grows.

Each server instance keeps the log head it has seen. On PostgreSQL the database itself
announces every commit that grows the log: the trigger that numbers a transaction's
change-log rows inside COMMIT also sends `NOTIFY fieldsync_changes` with the new head
(migration 0007), to every instance, this one included, whoever the writer. So a push
costs no extra statement for its notification. On SQLite (one machine, maybe several
workers) local commits wake a watcher that reads the head, and it also polls while
anyone listens. Subscribers then check, with one indexed query, whether the news is in
their scope.
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


class Notifier:
    def __init__(self, db: Database, pg_dsn: str | None, poll_interval: float = 0.5) -> None:
        self.db = db
        self.pg_dsn = pg_dsn
        self.poll_interval = poll_interval
        self.head = 0
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()
        self._listeners = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.head = await self._read_head()
        self._tasks.append(asyncio.create_task(self._watch(), name="fieldsync-head-watch"))
        if self.pg_dsn:
            self._tasks.append(asyncio.create_task(self._listen(self.pg_dsn),
                                                  name="fieldsync-listen"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def committed(self) -> None:
        """Call after a local commit that wrote changes. On PostgreSQL the commit's own
        NOTIFY reaches this instance's listener too, so there is nothing to do."""
        if not self.pg_dsn:
            self._wake.set()

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

    async def _advance(self, head: int) -> None:
        if head > self.head:
            async with self._changed:
                self.head = max(self.head, head)
                self._changed.notify_all()

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
            await self._advance(head)

    async def _listen(self, dsn: str) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self._wake.set()  # catch up on anything missed while disconnected
                    async for note in conn.notifies():
                        try:
                            await self._advance(int(note.payload))
                        except ValueError:  # no head in it (an older writer): read it
                            self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("LISTEN connection lost; reconnecting", exc_info=True)
                await asyncio.sleep(1)
