"""Graceful shutdown on SIGTERM, on a real uvicorn process: pushes in flight finish with
their responses and their effects committed, `syncPoke` sockets get a proper close frame,
the lifespan's shutdown runs, and the process exits within a bounded time."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa
import websockets

from server.db import Database, create_engine
from server.settings import Settings
from tests.conftest import make_world
from tests.servers import uvicorn_server
from tests.test_pokes import subscribe, token

pytestmark = pytest.mark.slow
PUSH = """mutation($input: SyncPushInput!) { syncPush(input: $input) { lastMutationId
  results { status } } }"""
BATCH, DEVICES = 500, 3
#: uvicorn's bound on the drain (passed to the server as UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN).
GRACE = 30


def batch(account: uuid.UUID, tag: str) -> list[dict[str, Any]]:
    return [{"mutationId": i, "entity": "contact", "op": "CREATE", "id": str(uuid.uuid4()),
             "fields": {"accountId": str(account), "firstName": tag, "lastName": str(i)}}
            for i in range(1, BATCH + 1)]


@contextmanager
def writes_held(database_url: str) -> Iterator[None]:
    """Hold the database's write lock from outside the server, so that pushes are
    certainly in flight (waiting to commit) when SIGTERM arrives."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")  # the one writer
    else:
        conn = psycopg.connect(database_url)  # type: ignore[assignment]
        conn.execute("SELECT last_seq FROM sync_log_head WHERE id = 1 FOR UPDATE")
    try:
        yield
    finally:
        conn.rollback()
        conn.close()


async def contacts_named(settings: Settings, tags: list[str]) -> dict[str, int]:
    db = Database(create_engine(settings))
    try:
        async with db.read() as s:
            rows = await s.execute(sa.text(
                "SELECT first_name, count(*) FROM contact GROUP BY first_name"))
            counts = {str(name): int(n) for name, n in rows}
    finally:
        await db.dispose()
    return {tag: counts.get(tag, 0) for tag in tags}


async def test_sigterm_finishes_pushes_in_flight_and_closes_subscriptions(
        settings: Settings, tmp_path: Path) -> None:
    db = Database(create_engine(settings))
    world = await make_world(db)
    await db.dispose()
    log_path = tmp_path / "server.log"
    tags = [f"shutdown-{n}" for n in range(DEVICES)]
    with log_path.open("wb") as log, uvicorn_server(
            settings.database_url, settings.jwt_secret, log_level="info", stderr=log,
            extra_env={"UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN": str(GRACE)}) as server:
        access = await token(server, "rep1@example.com")
        ws = await subscribe(server, access)
        await asyncio.sleep(0.3)  # the subscription is registered

        async def push(n: int) -> tuple[int, dict[str, Any], float]:
            # a connection of its own, as each device has
            async with httpx.AsyncClient(base_url=server.url, timeout=GRACE + 30) as c:
                r = await c.post("/graphql", headers={"Authorization": f"Bearer {access}"},
                                 json={"query": PUSH, "variables": {"input": {
                                     "clientId": f"shutdown-{n}", "protocolVersion": 1,
                                     "mutations": batch(world.accounts["rep1a"], tags[n])}}})
                return r.status_code, r.json(), time.monotonic()

        with writes_held(settings.database_url):
            pushes = [asyncio.create_task(push(n)) for n in range(DEVICES)]
            await asyncio.sleep(1.0)  # every request is on the server, waiting to write
            assert not any(p.done() for p in pushes), "a push finished while writes were held"
            sigterm_at = time.monotonic()
            server.process.send_signal(signal.SIGTERM)

            # the subscription is closed with a close frame (1012 service restart, or 1001)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None, "the socket was dropped without a close frame"
            assert closed.value.rcvd.code in (1001, 1012), closed.value.rcvd
            await asyncio.sleep(0.5)  # the server is draining; the pushes still wait
            assert server.process.poll() is None, "the server exited with pushes in flight"

        results = await asyncio.gather(*pushes)
        exit_code = await asyncio.to_thread(server.process.wait, GRACE + 15)
        exited_after = time.monotonic() - sigterm_at

    # every push in flight was answered in full, after SIGTERM
    assert all(at > sigterm_at for _, _, at in results)
    for status, body, _ in results:
        assert status == 200, body
        out = body["data"]["syncPush"]
        assert out["lastMutationId"] == BATCH
        assert {r["status"] for r in out["results"]} == {"APPLIED"}
    # …and committed
    assert await contacts_named(settings, tags) == dict.fromkeys(tags, BATCH)
    # a clean exit: the lifespan's shutdown ran (notifier stopped, pool disposed); uvicorn
    # then re-raises SIGTERM, so the status is "terminated by SIGTERM" (143 in a shell),
    # never a crash or a SIGKILL
    server_log = log_path.read_text()
    assert "Application shutdown complete." in server_log, server_log[-3000:]
    assert "Traceback" not in server_log, server_log[-3000:]
    assert exit_code in (0, -signal.SIGTERM), (exit_code, server_log[-3000:])
    assert exited_after < GRACE, f"exit took {exited_after:.1f}s"
