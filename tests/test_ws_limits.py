"""WebSocket abuse limits over a real socket (uvicorn, graphql-transport-ws): subscriptions
per connection and per user, sockets that never send `connection_init`, and
`connection_init` without a valid access token."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
import websockets

from schema.identity.tables import User
from server.db import Database, create_engine, sync_url
from server.settings import Settings
from tests.conftest import World, make_world
from tests.servers import ServerProcess, uvicorn_server
from tests.test_pokes import RENAME, token

pytestmark = pytest.mark.slow
POKE = "subscription { syncPoke { seq } }"
PER_CONNECTION, PER_USER = 2, 3


@pytest.fixture
async def server(settings: Settings) -> Any:
    db = Database(create_engine(settings))
    world = await make_world(db)
    await db.dispose()
    env = {"FIELDSYNC_WS_MAX_SUBSCRIPTIONS_PER_CONNECTION": str(PER_CONNECTION),
           "FIELDSYNC_WS_MAX_SUBSCRIPTIONS_PER_USER": str(PER_USER),
           "FIELDSYNC_WS_INIT_TIMEOUT_SECONDS": "0.5"}
    with uvicorn_server(settings.database_url, settings.jwt_secret, env) as s:
        yield world, s


async def connect(server: ServerProcess, payload: dict[str, Any] | None,
                  protocol: str = "graphql-transport-ws") -> Any:
    ws = await websockets.connect(server.ws_url, subprotocols=[protocol])  # type: ignore[list-item]
    if payload is not None:
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
    return ws


async def signed_in(server: ServerProcess, email: str) -> Any:
    ws = await connect(server, {"Authorization": f"Bearer {await token(server, email)}"})
    ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert ack["type"] == "connection_ack", ack
    return ws


async def subscribe(ws: Any, op_id: str) -> None:
    await ws.send(json.dumps({"id": op_id, "type": "subscribe", "payload": {"query": POKE}}))


async def messages(ws: Any, within: float) -> list[dict[str, Any]]:
    """Everything the server sends within `within` seconds."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        try:
            out.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
        except TimeoutError:
            break
    return out


def refused(msgs: list[dict[str, Any]], op_id: str) -> dict[str, Any] | None:
    for m in msgs:
        if m["type"] == "error" and m["id"] == op_id:
            return dict(m["payload"][0])
    return None


async def poke_rep1(server: ServerProcess, world: World) -> None:
    """A change in rep1's scope: every live syncPoke of rep1 hears about it."""
    manager = await token(server, "manager1@example.com")
    async with httpx.AsyncClient(base_url=server.url,
                                 headers={"Authorization": f"Bearer {manager}"}) as c:
        r = await c.post("/graphql", json={"query": RENAME, "variables": {
            "id": str(world.accounts["rep1a"]), "n": f"poked {time.monotonic()}"}})
        assert r.json()["data"]["updateAccount"]["status"] == "APPLIED", r.text


def poked(msgs: list[dict[str, Any]]) -> set[str]:
    return {m["id"] for m in msgs if m["type"] == "next"}


async def test_subscriptions_per_connection_are_limited(server: Any) -> None:
    world, s = server
    ws = await signed_in(s, "rep1@example.com")
    try:
        for op in ("1", "2", "3"):
            await subscribe(ws, op)
        msgs = await messages(ws, 1.0)
        assert refused(msgs, "1") is None and refused(msgs, "2") is None
        error = refused(msgs, "3")
        assert error is not None, msgs
        assert error["extensions"] == {"code": "TOO_MANY_SUBSCRIPTIONS", "per": "connection",
                                       "limit": PER_CONNECTION,
                                       "setting": "FIELDSYNC_WS_MAX_SUBSCRIPTIONS_PER_CONNECTION"}
        assert "at most 2" in error["message"]
        # the socket stays usable, and completing a subscription frees its slot
        await ws.send(json.dumps({"id": "1", "type": "complete"}))
        await subscribe(ws, "4")
        await poke_rep1(s, world)
        msgs = await messages(ws, 3.0)
        assert refused(msgs, "4") is None
        assert poked(msgs) == {"2", "4"}, msgs
    finally:
        await ws.close()


async def test_subscriptions_per_user_are_limited_across_connections(server: Any) -> None:
    world, s = server
    a, b = await signed_in(s, "rep1@example.com"), await signed_in(s, "rep1@example.com")
    other = await signed_in(s, "rep2@example.com")
    try:
        await subscribe(a, "1")
        await subscribe(a, "2")
        await subscribe(b, "1")
        await asyncio.sleep(0.3)
        await subscribe(b, "2")  # rep1's fourth: over the per-user limit of 3
        msgs = await messages(b, 1.0)
        error = refused(msgs, "2")
        assert error is not None, msgs
        assert error["extensions"]["per"] == "user" and error["extensions"]["limit"] == PER_USER
        assert refused(msgs, "1") is None
        # another user is not affected
        await subscribe(other, "1")
        await subscribe(other, "2")
        assert refused(await messages(other, 0.5), "2") is None
        # a closed socket gives its subscriptions back
        await a.close()
        deadline = time.monotonic() + 5
        n = 3
        while True:
            await subscribe(b, str(n))
            if refused(await messages(b, 0.3), str(n)) is None:
                break
            assert time.monotonic() < deadline, "the closed socket still counts"
            n += 1
        await poke_rep1(s, world)
        assert poked(await messages(b, 3.0)) == {"1", str(n)}
    finally:
        for ws in (a, b, other):
            await ws.close()


async def closed_with(ws: Any, within: float) -> tuple[int | None, float]:
    started = time.monotonic()
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), within)
    rcvd = closed.value.rcvd
    return (rcvd.code if rcvd else None), time.monotonic() - started


async def test_socket_without_connection_init_is_closed(server: Any) -> None:
    _, s = server
    ws = await connect(s, None)
    try:
        code, elapsed = await closed_with(ws, 5)
    finally:
        await ws.close()
    assert code == 4408  # Connection initialisation timeout
    assert elapsed < 3, f"closed after {elapsed:.1f}s; the timeout is 0.5s"


def forged(settings: Settings, world: World, **claims: Any) -> str:
    now = datetime.now(UTC)
    payload = {"sub": str(world.users["rep1"]), "typ": "access", "role": "rep", "jti": "t-1",
               "iss": settings.jwt_issuer, "aud": settings.jwt_audience,
               "iat": now, "nbf": now, "exp": now + timedelta(minutes=5), **claims}
    return jwt.encode(payload, settings.jwt_secret, algorithm="HS256",
                      headers={"kid": settings.jwt_kid})


async def test_connection_init_without_a_valid_access_token_is_refused(
        server: Any, settings: Settings) -> None:
    world, s = server
    past = datetime.now(UTC) - timedelta(hours=1)
    cases: dict[str, dict[str, Any] | None] = {
        "no payload": None,
        "no token": {},
        "garbage": {"Authorization": "Bearer not-a-jwt"},
        "expired": {"Authorization": "Bearer " + forged(settings, world, iat=past, nbf=past,
                                                        exp=past)},
        "other key": {"Authorization": "Bearer " + jwt.encode(
            {"sub": str(world.users["rep1"])}, "x" * 40, algorithm="HS256")},
        "refresh token": {"Authorization": "Bearer " + forged(settings, world, typ="refresh")},
        "RxDB-style, garbage": {"headers": {"Authorization": "Bearer not-a-jwt"}},
    }
    for case, payload in cases.items():
        ws = await connect(s, None)
        message: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            message["payload"] = payload
        await ws.send(json.dumps(message))
        try:
            code, _ = await closed_with(ws, 5)
        finally:
            await ws.close()
        assert code == 4403, case


async def test_a_valid_forged_style_token_is_accepted(server: Any, settings: Settings) -> None:
    """The refusals above are about the token, not about how the test builds it."""
    world, s = server
    ws = await connect(s, {"Authorization": "Bearer " + forged(settings, world)})
    try:
        ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
    finally:
        await ws.close()
    assert ack["type"] == "connection_ack", ack


async def test_subscribe_before_connection_init_is_refused(server: Any) -> None:
    _, s = server
    ws = await connect(s, None)
    await subscribe(ws, "1")
    try:
        code, _ = await closed_with(ws, 5)
    finally:
        await ws.close()
    assert code == 4401  # Unauthorized


async def test_legacy_graphql_ws_protocol_is_refused(server: Any) -> None:
    """subscriptions-transport-ws has no connection_init timeout: it is not offered."""
    _, s = server
    try:
        ws = await connect(s, None, protocol="graphql-ws")
    except websockets.InvalidHandshake:
        return
    try:
        code, _ = await closed_with(ws, 5)
    finally:
        await ws.close()
    assert code == 4406  # Subprotocol not acceptable


async def test_a_live_subscription_ends_when_its_token_expires(
        server: Any, settings: Settings) -> None:
    """The token is checked at connect and again before each event: a socket kept open
    past its token's expiry gets no more data."""
    world, s = server
    soon = datetime.now(UTC) + timedelta(seconds=2)
    ws = await connect(s, {"Authorization": "Bearer " + forged(settings, world, exp=soon)})
    try:
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
        await subscribe(ws, "1")
        await poke_rep1(s, world)
        assert poked(await messages(ws, 1.5)) == {"1"}  # while the token stands
        await asyncio.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.5)
        await poke_rep1(s, world)
        assert _ended_unauthenticated(await messages(ws, 3.0))
    finally:
        await ws.close()


async def test_a_live_subscription_ends_when_the_account_is_deactivated(
        server: Any, settings: Settings) -> None:
    """Both kinds of subscription (pokes and RxDB streams), on a socket signed in by
    `connection_init` and on one signed in by the upgrade request's own header."""
    world, s = server
    by_init = await signed_in(s, "rep1@example.com")
    by_header = await websockets.connect(
        s.ws_url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {await token(s, 'rep1@example.com')}"})
    try:
        await by_header.send(json.dumps({"type": "connection_init", "payload": {}}))
        ack = json.loads(await asyncio.wait_for(by_header.recv(), 5))
        assert ack["type"] == "connection_ack", ack
        ops = {by_init: ("poke", "stream"), by_header: ("stream",)}  # 3: the user's limit
        for ws, names in ops.items():
            if "poke" in names:
                await subscribe(ws, "poke")
            await ws.send(json.dumps({"id": "stream", "type": "subscribe", "payload": {
                "query": "subscription { streamAccount { documents } }"}}))
        await asyncio.sleep(0.5)  # both subscriptions are waiting for news
        engine = sa.create_engine(sync_url(settings.database_url))
        try:
            users = User.__table__
            with engine.begin() as conn:
                conn.execute(sa.update(users).where(users.c.id == world.users["rep1"])
                             .values(active=False))
        finally:
            engine.dispose()
        await poke_rep1(s, world)
        for ws, names in ops.items():
            msgs = await messages(ws, 3.0)
            for op in names:
                assert _ended_unauthenticated([m for m in msgs if m.get("id") == op]), op
    finally:
        await by_init.close()
        await by_header.close()


def _ended_unauthenticated(msgs: list[dict[str, Any]]) -> bool:
    """The subscription's last word is an UNAUTHENTICATED error and no data (strawberry
    sends it as a `next` with errors, or as an `error`)."""
    assert not [m for m in msgs if m["type"] == "next" and any(
        (m["payload"].get("data") or {}).values())], msgs
    codes = [e.get("extensions", {}).get("code") for m in msgs if m["type"] in ("next", "error")
             for e in (m["payload"].get("errors", []) if m["type"] == "next" else m["payload"])]
    assert "UNAUTHENTICATED" in codes, msgs
    return True
