"""syncPoke: a subscriber hears about a commit in its scope within a second, even when
the commit happened on another server instance (two uvicorn processes, one database)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import websockets

from server.db import Database, create_engine
from server.settings import Settings
from tests.conftest import LOGIN, PASSWORD, make_world
from tests.servers import ServerProcess, uvicorn_server

pytestmark = pytest.mark.slow
SUBSCRIBE = "subscription { syncPoke { seq } }"
RENAME = """mutation($id: ID!, $n: String!) { updateAccount(id: $id, input: {name: $n})
  { status } }"""


@pytest.fixture
async def two_servers(settings: Settings) -> Any:
    db = Database(create_engine(settings))
    world = await make_world(db)
    await db.dispose()
    with uvicorn_server(settings.database_url, settings.jwt_secret) as a, \
            uvicorn_server(settings.database_url, settings.jwt_secret) as b:
        yield world, a, b


async def token(server: ServerProcess, email: str) -> str:
    async with httpx.AsyncClient(base_url=server.url) as c:
        r = await c.post("/graphql", json={"query": LOGIN, "variables": {"e": email, "p": PASSWORD}})
        return str(r.json()["data"]["login"]["accessToken"])


async def subscribe(server: ServerProcess, access: str | None) -> Any:
    ws = await websockets.connect(server.ws_url, subprotocols=["graphql-transport-ws"])
    payload = {"Authorization": f"Bearer {access}"} if access else {}
    await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
    ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert ack["type"] == "connection_ack", ack
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
    return ws


async def next_poke(ws: Any, within: float) -> dict[str, Any] | None:
    try:
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), within))
            if msg["type"] == "next":
                return msg["payload"]["data"]["syncPoke"]
    except TimeoutError:
        return None


async def test_poke_crosses_instances_within_a_second(two_servers: Any) -> None:
    world, a, b = two_servers
    rep1 = await token(a, "rep1@example.com")
    rep3 = await token(a, "rep3@example.com")
    manager = await token(b, "manager1@example.com")
    ws1, ws3 = await subscribe(a, rep1), await subscribe(a, rep3)
    await asyncio.sleep(0.3)  # the subscriptions are registered
    async with httpx.AsyncClient(base_url=b.url, headers={"Authorization": f"Bearer {manager}"}) as c:
        started = time.monotonic()
        r = await c.post("/graphql", json={"query": RENAME, "variables": {
            "id": str(world.accounts["rep1a"]), "n": "Renamed on B"}})
        assert r.json()["data"]["updateAccount"]["status"] == "APPLIED"
    poke = await next_poke(ws1, 2.0)
    elapsed = time.monotonic() - started
    assert poke is not None and poke["seq"] > 0
    assert elapsed < 1.0, f"poke took {elapsed:.2f}s"
    # rep3 is in another team: the change is not in their scope, no poke
    assert await next_poke(ws3, 1.5) is None
    await ws1.close()
    await ws3.close()


async def test_websocket_without_a_valid_token_is_refused(two_servers: Any) -> None:
    _, a, _ = two_servers
    ws = await websockets.connect(a.ws_url, subprotocols=["graphql-transport-ws"])
    await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer nope"}}))
    try:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    finally:
        await ws.close()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
