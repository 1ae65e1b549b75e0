"""Live mode: listen to `syncPoke` over graphql-ws and sync when poked.

A poke carries no data, only "your scope has news" and the change sequence number
(`seq`). The device answers with a normal `sync()` (push, then pull from its own cursor),
so live mode adds no second way for data to arrive and can never skip a change:

- on every (re)connect the device syncs once, because pokes sent while it was offline
  are lost (pokes are not queued); it also syncs every `periodic` seconds (default 300)
  without a poke, since a poke is only a hint;
- pokes with a `seq` not above the highest one handled are dropped as duplicates;
- pokes that arrive while a sync runs are coalesced into one more sync afterwards;
- a socket refused at `connection_init` (close code 4403: expired or invalid token) makes
  the device refresh its token and reconnect; other failures reconnect with exponential
  backoff and full jitter.

The subprotocol is `graphql-transport-ws`; the token goes in the `connection_init`
payload as `{"Authorization": "Bearer <accessToken>"}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from client.errors import AuthenticationRequired, FieldsyncClientError
from client.transport import RetryPolicy

if TYPE_CHECKING:
    from client.sync import Device, SyncReport

log = logging.getLogger("fieldsync.client.live")

SUBSCRIBE = "subscription Poke { syncPoke { seq at } }"
#: graphql-transport-ws close code for a refused connection_init (our server: bad token).
FORBIDDEN = 4403


class _Refused(Exception):
    pass


class LiveSync:
    """Keeps a device in sync while online. `await live.start()` … `await live.stop()`."""

    def __init__(self, device: Device, *, reconnect: RetryPolicy | None = None,
                 on_sync: Callable[[SyncReport], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None,
                 ack_timeout: float = 10.0, periodic: float | None = 300.0) -> None:
        self.device = device
        #: Also sync this often without a poke (pokes are a hint); None: never.
        self.periodic = periodic
        self.reconnect = reconnect or RetryPolicy(max_attempts=1_000_000, base_delay=0.5,
                                                  max_delay=30.0, max_elapsed=float("inf"))
        self.on_sync = on_sync
        self.on_error = on_error
        self.ack_timeout = ack_timeout
        self.rng = random.Random()  # noqa: S311 - jitter
        #: Set while subscribed.
        self.connected = asyncio.Event()
        #: Highest poke seq handled.
        self.last_seq = 0
        self.pokes = 0
        self.syncs = 0
        self.error: BaseException | None = None
        self._dirty = asyncio.Event()
        self._synced = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [asyncio.create_task(self._listen(), name="fieldsync-live-listen"),
                       asyncio.create_task(self._syncer(), name="fieldsync-live-sync")]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        self.connected.clear()

    async def __aenter__(self) -> LiveSync:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def poke(self) -> None:
        """Ask for a sync soon (coalesced with any already asked for)."""
        self._dirty.set()

    async def wait_for_sync(self, count: int) -> None:
        """Wait until at least `count` syncs completed in live mode (wrap it in
        `asyncio.timeout()`)."""
        async with self._synced:
            await self._synced.wait_for(lambda: self.syncs >= count)

    # -- the socket ---------------------------------------------------------------------

    async def _listen(self) -> None:
        failures = 0
        while True:
            token = None
            try:
                token = await self.device.auth.token()
                await self._session(token)
                failures = 0  # the server ended a healthy subscription: reconnect at once
                continue
            except asyncio.CancelledError:
                raise
            except AuthenticationRequired as e:
                self._fail(e)
                return
            except _Refused:
                log.info("socket refused at connection_init; refreshing the token")
                try:
                    await self.device.auth.refresh(stale=token)
                except AuthenticationRequired as e:
                    self._fail(e)
                    return
                except FieldsyncClientError as e:
                    log.warning("token refresh failed: %s", e)
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed,
                    FieldsyncClientError, ValueError) as e:
                log.info("live connection lost: %s", e)
            finally:
                self.connected.clear()
            failures += 1
            await asyncio.sleep(self.reconnect.delay(min(failures, 30), self.rng))

    async def _session(self, token: str) -> None:
        url = self.device.transport.ws_url
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                                      open_timeout=self.ack_timeout) as ws:
            await ws.send(json.dumps({"type": "connection_init",
                                      "payload": {"Authorization": f"Bearer {token}"}}))
            try:
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), self.ack_timeout))
                    if msg.get("type") == "connection_ack":
                        break
                    if msg.get("type") == "ping":
                        await ws.send(json.dumps({"type": "pong"}))
            except ConnectionClosed as e:
                if e.rcvd is not None and e.rcvd.code == FORBIDDEN:
                    raise _Refused from e
                raise
            await ws.send(json.dumps({"id": "poke", "type": "subscribe",
                                      "payload": {"query": SUBSCRIBE}}))
            self.connected.set()
            self.poke()  # pokes sent while we were away are lost: sync once now
            async for raw in ws:
                msg = json.loads(raw)
                kind = msg.get("type")
                if kind == "next":
                    self._on_poke(msg.get("payload") or {})
                elif kind == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
                elif kind == "error":
                    raise FieldsyncClientError(f"subscription refused: {msg.get('payload')}")
                elif kind == "complete":
                    return

    def _on_poke(self, payload: dict[str, Any]) -> None:
        errors = payload.get("errors")
        if errors:
            log.warning("poke with errors: %s", errors)
            return
        poke = (payload.get("data") or {}).get("syncPoke") or {}
        seq = int(poke.get("seq") or 0)
        self.pokes += 1
        if seq and seq <= self.last_seq:
            return  # already handled
        self.last_seq = max(self.last_seq, seq)
        self.poke()

    # -- syncing --------------------------------------------------------------------------

    async def _syncer(self) -> None:
        failures = 0
        while True:
            if self.periodic is None:
                await self._dirty.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._dirty.wait(), self.periodic)
            self._dirty.clear()
            try:
                report = await self.device.sync()
            except asyncio.CancelledError:
                raise
            except AuthenticationRequired as e:
                self._fail(e)
                return
            except Exception as e:  # keep the loop alive; the outbox is intact
                failures += 1
                log.warning("live sync failed (%s); retrying", e)
                if self.on_error is not None:
                    self.on_error(e)
                await asyncio.sleep(self.reconnect.delay(min(failures, 30), self.rng))
                self._dirty.set()
                continue
            failures = 0
            async with self._synced:
                self.syncs += 1
                self._synced.notify_all()
            if self.on_sync is not None:
                self.on_sync(report)

    def _fail(self, e: BaseException) -> None:
        self.error = e
        log.error("live mode stopped: %s", e)
        if self.on_error is not None:
            self.on_error(e)
