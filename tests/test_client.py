"""The reference client (client/) against a real uvicorn server on a loopback port.

Each test gets a fresh migrated database with the conftest world and its own server
(in-process uvicorn on a thread: a real socket, real HTTP and WebSocket, no ASGI
shortcuts). The client only speaks the wire protocol; the tests use server internals
only to set the stage (seed, age the change log) and to check the server's side.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
import uvicorn

from client import (
    Device,
    LiveSync,
    LocalStore,
    NetworkError,
    PushBlocked,
    RequestRefused,
    RetryPolicy,
    Transport,
)
from client.store import fold
from server.app import create_app
from server.db import Database, create_engine
from server.settings import Settings
from sync.model import utcnow
from sync.retention import compact
from sync.tables import Change, Client
from tests.conftest import PASSWORD, World, make_world
from tests.servers import free_port

FAST = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.05, max_elapsed=10.0)
PULL = """query($c: ID!, $cursor: String) { syncPull(clientId: $c, cursor: $cursor, limit: 1000) {
  changes { entity id op version data } cursor hasMore reset lastMutationId } }"""


# -- the stage -------------------------------------------------------------------------------

@dataclass
class Served:
    url: str
    world: World
    settings: Settings
    db: Database
    tokens: dict[str, str] = field(default_factory=dict)


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Served]:
    # A 400 kB request cap (default 4 MB) keeps the oversized-push test cheap.
    settings = dataclasses.replace(settings, max_body_bytes=400_000)
    db = Database(create_engine(settings))
    world = await make_world(db)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1",
                                           port=free_port(), log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def wait_started() -> bool:
        deadline = time.monotonic() + 20
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        return bool(server.started)

    assert await asyncio.to_thread(wait_started), "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(f"http://127.0.0.1:{port}", world, settings, db)
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 15)
        await db.dispose()


class Faults(httpx.AsyncBaseTransport):
    """A real HTTP transport with injectable failures, keyed by GraphQL operation name:
    `fail_before[op]` answers 503 without reaching the server; `drop_after[op]` lets the
    server process the request, then loses the response (as a dropped connection)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.fail_before: dict[str, int] = {}
        self.drop_after: dict[str, int] = {}
        self.after: Callable[[str, dict[str, Any]], None] | None = None
        self.log: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        m = re.match(r"\s*(?:query|mutation|subscription)\s+(\w+)", body.get("query", ""))
        op = m.group(1) if m else "?"
        self.log.append(op)
        if self.fail_before.get(op):
            self.fail_before[op] -= 1
            return httpx.Response(503, json={"errors": [{"message": "try later"}]})
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        if self.drop_after.get(op):
            self.drop_after[op] -= 1
            raise httpx.ReadError("connection reset after the server answered", request=request)
        if self.after is not None:
            self.after(op, json.loads(content))
        headers = [(k, v) for k, v in response.headers.items()
                   if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        return httpx.Response(response.status_code, headers=headers, content=content,
                              request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def device(served: Served, path: Path, faults: Faults | None = None,
           retry: RetryPolicy = FAST, **kw: Any) -> Device:
    http = httpx.AsyncClient(transport=faults, timeout=10) if faults else None
    transport = Transport(served.url, http=http, retry=retry)
    transport._owns_http = True  # close the injected client with the device
    return Device(path, served.url, transport=transport, **kw)


async def signed_in(served: Served, path: Path, faults: Faults | None = None,
                    name: str = "rep1", **kw: Any) -> Device:
    d = device(served, path, faults, **kw)
    await d.login(f"{name}@example.com", PASSWORD)
    return d


async def gql(served: Served, query: str, variables: dict[str, Any] | None = None,
              token: str | None = None) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as c:
        r = await c.post("/graphql", json={"query": query, "variables": variables or {}},
                         headers={"Authorization": f"Bearer {token}"} if token else {})
    body = r.json()
    assert "errors" not in body, body
    return dict(body["data"])


async def token_of(served: Served, name: str) -> str:
    """An access token for edits and checks from the side. Minted like the server does,
    because argon2 makes a real login cost ~0.4 s (the devices do sign in for real)."""
    if name not in served.tokens:
        served.tokens[name] = access_token(served.settings, served.world.users[name])
    return served.tokens[name]


async def server_view(served: Served, name: str = "rep1") -> dict[tuple[str, str], Any]:
    """The user's whole scope as the server has it now: a from-scratch pull."""
    token, cid, cursor = await token_of(served, name), f"truth-{uuid.uuid4()}", None
    out: dict[tuple[str, str], Any] = {}
    while True:
        page = (await gql(served, PULL, {"c": cid, "cursor": cursor}, token))["syncPull"]
        for c in page["changes"]:
            out[(c["entity"], c["id"])] = (c["version"], c["data"])
        cursor = page["cursor"]
        if not page["hasMore"]:
            return out


def assert_converged(d: Device, truth: dict[tuple[str, str], Any]) -> None:
    assert d.store.outbox_size() == 0
    assert d.store.server_replica() == truth
    for rec in d.records():
        assert rec.pending == 0 and rec.data == rec.server_data, rec


def access_token(settings: Settings, user_id: uuid.UUID, issued: datetime | None = None) -> str:
    issued = issued or datetime.now(UTC)
    return jwt.encode({"sub": str(user_id), "typ": "access", "jti": str(uuid.uuid4()),
                       "iss": settings.jwt_issuer, "aud": settings.jwt_audience, "iat": issued,
                       "nbf": issued, "exp": issued + timedelta(minutes=15)},
                      settings.jwt_secret, algorithm="HS256", headers={"kid": settings.jwt_kid})


def expired_access_token(settings: Settings, user_id: uuid.UUID) -> str:
    return access_token(settings, user_id, datetime.now(UTC) - timedelta(hours=1))


# -- the protocol, end to end ----------------------------------------------------------------

async def test_initial_sync_holds_exactly_the_reps_scope_and_no_more(served: Served, tmp_path: Path) -> None:
    w = served.world
    d = await signed_in(served, tmp_path / "rep1.db")
    report = await d.sync()
    assert report.pulled == sum(d.store.counts().values()) > 0
    assert {r.id for r in d.records("account")} == {str(w.accounts["rep1a"]),
                                                     str(w.accounts["rep1b"])}
    # inactive products are archived: out of a rep's scope
    assert {r.id for r in d.records("product")} == {str(w.products["cola"]),
                                                     str(w.products["chips"])}
    assert {r.id for r in d.records("territory")} == {str(w.territory)}
    assert all(r.data and r.data.get("unitCostCents") is None for r in d.records("product"))
    assert_converged(d, await server_view(served))
    # nothing new: one empty page
    again = await d.sync()
    assert (again.pulled, again.pages, again.pushed) == (0, 1, 0)
    # a cursor the server refuses (INVALID_CURSOR) → start over from a snapshot
    cursor = d.store.cursor
    assert cursor is not None
    d.store.set_meta("cursor", cursor[:-3] + "abc")
    healed = await d.sync()
    assert healed.resets == 1
    assert_converged(d, await server_view(served))
    # a clientId belongs to its first user: a copied store is refused, a new id works
    other = await signed_in(served, tmp_path / "rep2.db", name="rep2")
    other.store.set_meta("client_id", d.client_id)
    with pytest.raises(RequestRefused) as refused:
        await other.sync()
    assert refused.value.code == "CLIENT_NOT_YOURS"
    other.rotate_client_id()
    await other.sync()
    assert {r.id for r in other.records("account")} == {str(w.accounts["rep2a"]),
                                                        str(w.accounts["rep2b"])}
    await other.close()
    await d.close()


async def test_offline_edits_sync_and_local_equals_server(served: Served, tmp_path: Path) -> None:
    w = served.world
    manager = await token_of(served, "manager1")
    made = await gql(served, """mutation($a: ID!) { createContact(input: {accountId: $a,
        firstName: "Ann", lastName: "Buyer"}) { status node { id } } }""",
                     {"a": str(w.accounts["rep1a"])}, manager)
    contact = made["createContact"]["node"]["id"]
    faults = Faults()
    d = await signed_in(served, tmp_path / "rep1.db", faults)
    await d.sync()
    assert d.get("contact", contact) is not None
    requests = len(faults.log)
    # offline: three local writes, no network
    order = d.create("order", {"accountId": str(w.accounts["rep1a"]),
                               "lines": [{"productId": str(w.products["cola"]), "quantity": 3}]})
    note = d.create("visitNote", {"accountId": str(w.accounts["rep1a"]), "body": "Met Ann",
                                  "outcome": "ORDER_TAKEN",
                                  "visitedAt": datetime.now(UTC).isoformat()})
    d.update("contact", contact, {"phone": "+32 9 123 45 67"})
    assert len(faults.log) == requests
    assert [(e.mutation_id, e.op) for e in d.outbox()] == [(1, "CREATE"), (2, "CREATE"),
                                                          (3, "UPDATE")]
    assert d.outbox()[2].base_version == 1
    shown = d.get("contact", contact)
    assert shown and shown.data and shown.data["phone"] == "+32 9 123 45 67" and shown.pending == 1
    assert shown.server_data and shown.server_data["phone"] is None
    local_order = d.get("order", order)
    assert local_order and local_order.local_only and local_order.pending == 1

    report = await d.sync()
    assert report.statuses == {"APPLIED": 3} and report.problems == []
    o = d.get("order", order)
    assert o and o.data and o.pending == 0 and o.sync_status == "APPLIED"
    assert (o.data["totalCents"], o.data["status"], len(o.data["lines"])) == (3000, "SUBMITTED", 1)
    assert o.data["number"].startswith("SO-")
    n = d.get("visitNote", note)
    assert n and n.data and n.data["authorId"] == str(w.users["rep1"])
    c = d.get("contact", contact)
    assert c and c.data and c.version == 2 and c.data["phone"] == "+32 9 123 45 67"
    assert_converged(d, await server_view(served))
    await d.close()


async def test_lost_push_response_is_applied_exactly_once(served: Served, tmp_path: Path) -> None:
    w = served.world
    faults = Faults()
    d = await signed_in(served, tmp_path / "rep1.db", faults)
    await d.sync()
    order = d.create("order", {"accountId": str(w.accounts["rep1b"]),
                               "lines": [{"productId": str(w.products["chips"]), "quantity": 2}]})
    faults.fail_before["Push"] = 1  # a 503 from a proxy: not processed
    faults.drop_after["Push"] = 1   # processed, then the response is lost
    faults.log.clear()
    report = await d.sync()
    assert faults.log[:3] == ["Push", "Push", "Push"]
    assert d.transport.retries == 2
    assert report.statuses == {"APPLIED": 1}
    rep1 = await token_of(served, "rep1")
    orders = await gql(served, "{ orders { edges { node { id totalCents } } } }", None, rep1)
    assert [e["node"] for e in orders["orders"]["edges"]] == [{"id": order, "totalCents": 500}]
    assert d.store.get_meta("server_last_mutation_id") == "1"
    # the next mutation continues the sequence
    d.update("order", order, {"poNumber": "PO-7"})
    assert d.outbox()[0].mutation_id == 2
    assert (await d.sync()).statuses == {"APPLIED": 1}
    # the server keeps failing on a batch (5 x 503, the whole retry budget): the device
    # falls back to one mutation per request
    faults.fail_before["Push"] = 5
    for body in ("one", "two"):
        d.create("visitNote", {"accountId": str(w.accounts["rep1b"]), "body": body,
                               "visitedAt": datetime.now(UTC).isoformat()})
    one_by_one = await d.sync()
    assert one_by_one.statuses == {"APPLIED": 2} and one_by_one.push_requests == 3
    assert_converged(d, await server_view(served))
    await d.close()


async def test_rejected_writes_stay_visible_with_their_reason(served: Served,
                                                              tmp_path: Path) -> None:
    w = served.world
    d = await signed_in(served, tmp_path / "rep1.db")
    await d.sync()
    # 500 x 10.00 against a 1,000.00 credit limit: refused, kept by the server as REJECTED
    order = d.create("order", {"accountId": str(w.accounts["rep1a"]),
                               "lines": [{"productId": str(w.products["cola"]), "quantity": 500}]})
    # a contact under another rep's account: refused, nothing kept on the server
    stray = d.create("contact", {"accountId": str(w.accounts["rep2a"]), "firstName": "Stray",
                                 "lastName": "Cat"})
    report = await d.sync()
    assert report.statuses == {"REJECTED": 2}
    o = d.get("order", order)
    assert o and o.data and o.rejected and o.error_code == "CREDIT_LIMIT_EXCEEDED"
    assert o.rejected_reason and "credit" in o.rejected_reason
    assert o.data["status"] == "REJECTED" and o.data["statusReasonCode"] == "CREDIT_LIMIT_EXCEEDED"
    assert o.pending == 0 and o.version == 1
    s = d.get("contact", stray)
    assert s and s.data and s.rejected and s.error_code == "NOT_FOUND" and s.local_only
    assert s.data["firstName"] == "Stray"
    assert {(n.entity, n.status, n.code) for n in d.notices()} == {
        ("order", "REJECTED", "CREDIT_LIMIT_EXCEEDED"), ("contact", "REJECTED", "NOT_FOUND")}
    # still there after another pull
    await d.sync()
    again = d.get("order", order)
    assert again and again.rejected and d.get("contact", stray) is not None
    # the rep fixes both: a smaller order is resubmitted, the contact goes to their account
    d.update("order", order, {"status": "SUBMITTED",
                              "lines": [{"productId": str(w.products["cola"]), "quantity": 5}]})
    d.update("contact", stray, {"accountId": str(w.accounts["rep1a"])})
    assert [e.op for e in d.outbox()] == ["UPDATE", "CREATE"]  # never-accepted → created anew
    fixed = await d.sync()
    assert fixed.statuses == {"APPLIED": 2}
    o = d.get("order", order)
    assert o and o.data and not o.rejected and o.rejected_reason is None
    assert (o.data["status"], o.data["totalCents"]) == ("SUBMITTED", 5000)
    s = d.get("contact", stray)
    assert s and s.data and not s.rejected and not s.local_only
    assert s.data["accountId"] == str(w.accounts["rep1a"])
    assert_converged(d, await server_view(served))
    await d.close()


async def test_conflict_shows_the_servers_outcome(served: Served, tmp_path: Path) -> None:
    acc = str(served.world.accounts["rep1a"])
    d = await signed_in(served, tmp_path / "rep1.db")
    await d.sync()
    d.update("account", acc, {"name": "Rep name", "city": "Ghent"})  # offline, earlier
    await asyncio.sleep(0.01)
    manager = await token_of(served, "manager1")
    await gql(served, """mutation($id: ID!) { updateAccount(id: $id, baseVersion: 1,
        input: {phone: "+3200", name: "Manager name"}) { status } }""", {"id": acc}, manager)
    report = await d.sync()
    assert report.statuses == {"CONFLICT": 1}
    a = d.get("account", acc)
    assert a and a.data and a.sync_status == "CONFLICT" and a.conflict_id
    # the server's outcome: the later edit wins the name, one-sided changes are kept
    assert (a.data["name"], a.data["city"], a.data["phone"]) == ("Manager name", "Ghent", "+3200")
    [notice] = d.notices()
    assert (notice.status, notice.conflict_id) == ("CONFLICT", a.conflict_id)
    assert_converged(d, await server_view(served))
    await d.close()


async def test_token_refresh_when_the_access_token_expires_mid_sync(served: Served,
                                                                   tmp_path: Path) -> None:
    faults = Faults()
    d = await signed_in(served, tmp_path / "rep1.db", faults, page_size=2)
    d.create("visitNote", {"accountId": str(served.world.accounts["rep1a"]), "body": "hi",
                           "visitedAt": datetime.now(UTC).isoformat()})
    expired = expired_access_token(served.settings, served.world.users["rep1"])
    pulls = 0

    def expire_after_first_page(op: str, body: dict[str, Any]) -> None:
        nonlocal pulls
        if op == "Pull":
            pulls += 1
            if pulls == 1:
                d.store.set_meta("access_token", expired)

    faults.after = expire_after_first_page
    first_refresh = d.auth.refresh_token
    report = await d.sync()
    assert report.statuses == {"APPLIED": 1} and report.pages >= 3
    assert faults.log.count("Refresh") == 1 and d.auth.refreshes == 1
    assert d.auth.access_token not in (None, expired)
    assert d.auth.refresh_token != first_refresh  # rotated and persisted
    assert_converged(d, await server_view(served))
    # ahead of expiry the client refreshes first instead of being refused
    d.store.set_meta("access_expires_at", str(time.time() + 5))
    faults.log.clear()
    await d.sync()
    assert faults.log[0] == "Refresh" and d.auth.refreshes == 2
    await d.close()


async def test_outbox_survives_a_restart_and_a_crash_after_sending(served: Served,
                                                                   tmp_path: Path) -> None:
    w = served.world
    path = tmp_path / "rep1.db"
    faults = Faults()
    d = await signed_in(served, path, faults, retry=RetryPolicy(max_attempts=1))
    await d.sync()
    client_id = d.client_id
    order = d.create("order", {"accountId": str(w.accounts["rep1a"]),
                               "lines": [{"productId": str(w.products["chips"]), "quantity": 1}]})
    d.create("visitNote", {"accountId": str(w.accounts["rep1a"]), "body": "before the crash",
                           "visitedAt": datetime.now(UTC).isoformat()})
    faults.drop_after["Push"] = 1  # the server applies both; the phone never hears back
    with pytest.raises(NetworkError):
        await d.sync()
    assert [e.state for e in d.outbox()] == ["sent", "sent"]
    await d.close()  # the app is killed

    d = device(served, path)  # restarted from the same file: no new login needed
    assert d.client_id == client_id and [e.mutation_id for e in d.outbox()] == [1, 2]
    o = d.get("order", order)
    assert o and o.pending == 1
    d.update("account", str(w.accounts["rep1a"]), {"city": "Leuven"})
    assert d.outbox()[-1].mutation_id == 3
    report = await d.sync()
    assert report.statuses == {"APPLIED": 3}
    rep1 = await token_of(served, "rep1")
    orders = await gql(served, "{ orders { edges { node { id } } } }", None, rep1)
    assert [e["node"]["id"] for e in orders["orders"]["edges"]] == [order]  # exactly once
    assert_converged(d, await server_view(served))

    # a device whose counter ran ahead of the server's (the server was restored from a
    # backup): MUTATION_GAP, nothing applied → the outbox is renumbered and re-sent
    d.update("account", str(w.accounts["rep1b"]), {"city": "Ghent"})
    d.store.renumber(9)
    assert [e.mutation_id for e in d.outbox()] == [9]
    gap = await d.sync()
    assert gap.renumbered == 1 and gap.statuses == {"APPLIED": 1}
    assert d.store.next_mutation_id == 5
    assert_converged(d, await server_view(served))
    await d.close()


async def test_oversized_pushes_are_split_and_a_hopeless_one_is_reported(
        served: Served, tmp_path: Path) -> None:
    acc = str(served.world.accounts["rep1a"])
    d = await signed_in(served, tmp_path / "rep1.db", max_batch_bytes=50_000_000)
    when = datetime.now(UTC).isoformat()
    notes = [d.create("visitNote", {"accountId": acc, "visitedAt": when, "body": "x" * 90_000})
             for _ in range(6)]  # 540 kB in one request: over the server's body cap
    report = await d.sync()
    assert report.statuses == {"APPLIED": 6} and report.push_requests == 3  # 6 → 413, 3 + 3
    assert sorted(r.id for r in d.records("visitNote") if r.pending == 0) == sorted(notes)
    # one mutation that is too big on its own blocks the outbox until the app drops it
    huge = d.create("visitNote", {"accountId": acc, "visitedAt": when, "body": "y" * 410_000})
    small = d.create("visitNote", {"accountId": acc, "visitedAt": when, "body": "fine"})
    with pytest.raises(PushBlocked) as blocked:
        await d.sync()
    assert blocked.value.code == "PAYLOAD_TOO_LARGE"
    d.discard_unsent(blocked.value.mutation_id)
    assert d.get("visitNote", huge) is None
    assert [(e.mutation_id, e.id) for e in d.outbox()] == [(blocked.value.mutation_id, small)]
    assert (await d.sync()).statuses == {"APPLIED": 1}
    assert_converged(d, await server_view(served))
    await d.close()


async def test_reset_keeps_the_outbox_and_drops_what_the_server_forgot(served: Served,
                                                                       tmp_path: Path) -> None:
    w = served.world
    manager = await token_of(served, "manager1")
    made = await gql(served, """mutation($a: ID!) { createContact(input: {accountId: $a,
        firstName: "Gone", lastName: "Soon"}) { node { id } } }""",
                     {"a": str(w.accounts["rep1a"])}, manager)
    contact = made["createContact"]["node"]["id"]
    d = await signed_in(served, tmp_path / "rep1.db")
    await d.sync()
    assert d.get("contact", contact) is not None
    await gql(served, "mutation($id: ID!) { deleteContact(id: $id) { status } }",
              {"id": contact}, manager)
    d.update("account", str(w.accounts["rep1a"]), {"city": "Ghent"})  # pending across the reset
    # the device stays away past tombstone retention: its cursor falls behind the horizon
    async with served.db.write() as s:
        await s.execute(sa.update(Client).values(last_pull_at=utcnow() - timedelta(days=60)))
        await s.execute(sa.update(Change).values(at=utcnow() - timedelta(days=60)))
        assert (await compact(s, timedelta(days=30), utcnow())).horizon > 0
    pulled = await d.pull()
    assert pulled.resets == 1
    assert d.get("contact", contact) is None  # its tombstone is gone; the snapshot decides
    a = d.get("account", str(w.accounts["rep1a"]))
    assert a and a.data and a.data["city"] == "Ghent" and a.pending == 1
    assert d.store.server_replica() == await server_view(served)
    await d.sync()
    assert_converged(d, await server_view(served))
    await d.close()


async def test_live_mode_syncs_when_poked(served: Served, tmp_path: Path) -> None:
    acc = str(served.world.accounts["rep1a"])
    d = await signed_in(served, tmp_path / "rep1.db")
    await d.sync()
    # the socket is opened with an expired token: refused (4403) → refresh → reconnect
    d.store.set_meta("access_token",
                     expired_access_token(served.settings, served.world.users["rep1"]))
    async with LiveSync(d) as live:
        async with asyncio.timeout(10):
            await live.connected.wait()
            await live.wait_for_sync(1)  # the catch-up sync after connecting
        assert d.auth.refreshes == 1
        await asyncio.sleep(0.3)  # the subscription is registered on the server
        manager = await token_of(served, "manager1")
        await gql(served, """mutation($id: ID!) { updateAccount(id: $id,
            input: {name: "Renamed live"}) { status } }""", {"id": acc}, manager)
        started = time.monotonic()
        async with asyncio.timeout(5):
            while True:
                rec = d.get("account", acc)
                if rec and rec.data and rec.data["name"] == "Renamed live":
                    break
                await asyncio.sleep(0.02)
        assert time.monotonic() - started < 3
        assert live.pokes >= 1 and live.last_seq > 0 and live.error is None
    assert_converged(d, await server_view(served))
    await d.close()


# -- the pieces, without a server ------------------------------------------------------------

async def test_transport_retries_5xx_and_network_errors_but_not_refusals() -> None:
    answers: list[Any] = [httpx.Response(503, headers={"Retry-After": "0"}),
                          httpx.ConnectError("down"),
                          httpx.Response(200, json={"data": {"ok": True}}),
                          httpx.Response(400, json={"errors": [{"message": "bad", "extensions": {
                              "code": "BATCH_TOO_LARGE", "retryable": False}}]}),
                          # a failure while executing (masked), then an answer
                          httpx.Response(200, json={"data": None, "errors": [
                              {"message": "Unexpected error.", "path": ["syncPush"]}]}),
                          httpx.Response(200, json={"data": {"ok": 2}}),
                          # a malformed request (no path): a client bug, never retried
                          httpx.Response(200, json={"errors": [{"message": "Syntax Error"}]}),
                          ]
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    t = Transport("http://x", http=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
                  retry=RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=4.0), sleep=sleep)
    assert await t.execute("{ ok }") == {"ok": True}
    assert len(seen) == 3 and slept[0] == 0.0 and 0.0 <= slept[1] <= 2.0
    with pytest.raises(RequestRefused) as refused:
        await t.execute("{ ok }")
    assert refused.value.code == "BATCH_TOO_LARGE" and len(seen) == 4
    assert await t.execute("{ ok }") == {"ok": 2} and len(seen) == 6
    with pytest.raises(RequestRefused) as malformed:
        await t.execute("{ ok }")
    assert malformed.value.code == "GRAPHQL_ERROR" and len(seen) == 7
    answers[:] = [httpx.Response(502)] * 4
    with pytest.raises(NetworkError) as gave_up:
        await t.execute("{ ok }")
    assert gave_up.value.attempts == 4 and gave_up.value.status == 502
    await t.aclose()


def test_backoff_is_bounded_full_jitter() -> None:
    import random

    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    rng = random.Random(7)
    for retry, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 4.0)):
        delays = [policy.delay(retry, rng) for _ in range(200)]
        assert all(0 <= x <= ceiling for x in delays) and max(delays) > ceiling / 2
    assert policy.delay(1, rng, retry_after=30) == 4.0


def test_pending_edits_are_rebased_on_newer_server_data(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s.db")
    store.apply_changes([{"entity": "account", "id": "a", "op": "UPSERT", "version": 1,
                          "data": {"id": "a", "name": "Old", "city": None}}])
    store.enqueue("account", "UPDATE", "a", 1, {"city": "Ghent"}, "2025-01-01T00:00:00+00:00")
    store.apply_changes([{"entity": "account", "id": "a", "op": "UPSERT", "version": 2,
                          "data": {"id": "a", "name": "New", "city": None}}])
    rec = store.get("account", "a")
    assert rec and rec.data == {"id": "a", "name": "New", "city": "Ghent"} and rec.version == 2
    # a stale page never rolls the server copy back
    store.apply_changes([{"entity": "account", "id": "a", "op": "UPSERT", "version": 1,
                          "data": {"id": "a", "name": "Old", "city": None}}])
    assert (store.get("account", "a") or rec).version == 2
    # an eviction keeps the row while an edit is pending (hidden: nothing to edit on)
    store.apply_changes([{"entity": "account", "id": "a", "op": "EVICT", "version": 2,
                          "data": None}])
    assert store.get("account", "a") is None and store.get("account", "a", hidden=True)
    assert fold({"x": 1}, [], "a") == {"x": 1}
    store.close()


def test_client_speaks_only_the_wire_protocol() -> None:
    """client/ imports nothing from the server side: only httpx, websockets, stdlib."""
    import ast
    import sys

    allowed = set(sys.stdlib_module_names) | {"client", "httpx", "websockets", "__future__"}
    for path in (Path(__file__).parent.parent / "client").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
