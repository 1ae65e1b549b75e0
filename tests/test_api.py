"""End to end through the ASGI app: sign in, read in scope, write, sync."""

from __future__ import annotations

import uuid

from tests.conftest import World, login

ACCOUNT = "query($id: ID!) { account(id: $id) { name owner { email } orders { id } } }"
NODE = "query($id: ID!) { node(id: $id) { id ... on Account { name } } }"
PUSH = """mutation($input: SyncPushInput!) { syncPush(input: $input) { lastMutationId
  results { mutationId status id version data conflictId error { code message field retryable } } } }"""
PULL = """query($c: ID!, $cursor: String, $limit: Int) { syncPull(clientId: $c, cursor: $cursor, limit: $limit) {
  changes { entity id op version data } cursor hasMore reset lastMutationId } }"""


async def test_wrong_password_and_unknown_email_look_alike(client, world: World) -> None:
    a = await login(client, "rep1@example.com", "nope-nope")
    b = await login(client, "nobody@example.com", "nope-nope")
    assert a == b == {"__typename": "AuthError", "code": "INVALID_CREDENTIALS",
                      "message": "wrong email or password", "retryAfterSeconds": None}


async def test_unauthenticated_query_is_refused(client, world: World) -> None:
    r = await client.post("/graphql", json={"query": "{ me { email } }"})
    assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_rep_reads_own_account_but_not_anothers(as_user, world: World) -> None:
    rep1 = await as_user("rep1")
    mine = await rep1.ok(ACCOUNT, {"id": str(world.accounts["rep1a"])})
    assert mine["account"]["owner"]["email"] == "rep1@example.com"
    for other in ("rep2a", "rep3a"):
        assert (await rep1.ok(ACCOUNT, {"id": str(world.accounts[other])}))["account"] is None
        assert (await rep1.ok(NODE, {"id": str(world.accounts[other])}))["node"] is None
    manager1 = await as_user("manager1")
    assert (await manager1.ok(ACCOUNT, {"id": str(world.accounts["rep2a"])}))["account"]
    assert (await manager1.ok(ACCOUNT, {"id": str(world.accounts["rep3a"])}))["account"] is None


async def test_offline_order_push_is_exactly_once_and_priced_by_server(as_user, world: World) -> None:
    rep1 = await as_user("rep1")
    order_id = str(uuid.uuid4())
    mutation = {"mutationId": 1, "entity": "order", "op": "CREATE", "id": order_id,
                "fields": {"accountId": str(world.accounts["rep1a"]), "totalCents": 1,
                           "lines": [{"productId": str(world.products["cola"]), "quantity": 3}]}}
    push = {"input": {"clientId": "phone-1", "protocolVersion": 1, "mutations": [mutation]}}
    first = (await rep1.ok(PUSH, push))["syncPush"]
    again = (await rep1.ok(PUSH, push))["syncPush"]
    assert first == again
    result = first["results"][0]
    assert result["status"] == "APPLIED", result
    assert result["data"]["totalCents"] == 3000 and result["data"]["status"] == "SUBMITTED"
    orders = await rep1.ok("{ orders { edges { node { id totalCents lines { quantity } } } } }")
    assert [e["node"]["id"] for e in orders["orders"]["edges"]] == [order_id]


async def test_rejected_order_is_kept_with_its_reason(as_user, world: World) -> None:
    rep1 = await as_user("rep1")
    big = {"mutationId": 1, "entity": "order", "op": "CREATE", "id": str(uuid.uuid4()),
           "fields": {"accountId": str(world.accounts["rep1a"]),
                      "lines": [{"productId": str(world.products["cola"]), "quantity": 500}]}}
    res = (await rep1.ok(PUSH, {"input": {"clientId": "p", "protocolVersion": 1,
                                          "mutations": [big]}}))["syncPush"]
    r = res["results"][0]
    assert r["status"] == "REJECTED" and r["error"]["code"] == "CREDIT_LIMIT_EXCEEDED"
    assert r["data"]["status"] == "REJECTED" and res["lastMutationId"] == 1
    pulled = (await rep1.ok(PULL, {"c": "p"}))["syncPull"]
    kept = [c for c in pulled["changes"] if c["entity"] == "order"]
    assert kept[0]["data"]["statusReasonCode"] == "CREDIT_LIMIT_EXCEEDED"


async def test_gap_applies_nothing(as_user, world: World) -> None:
    rep1 = await as_user("rep1")
    m = {"mutationId": 2, "entity": "contact", "op": "CREATE", "id": str(uuid.uuid4()),
         "fields": {"accountId": str(world.accounts["rep1a"]), "firstName": "A", "lastName": "B"}}
    res = (await rep1.ok(PUSH, {"input": {"clientId": "p", "protocolVersion": 1,
                                          "mutations": [m]}}))["syncPush"]
    assert res["lastMutationId"] == 0 and res["results"][0]["error"]["code"] == "MUTATION_GAP"


async def test_pull_is_scoped_and_reassignment_evicts_and_backfills(as_user, world: World) -> None:
    rep1, rep2, manager = await as_user("rep1"), await as_user("rep2"), await as_user("manager1")
    first = (await rep1.ok(PULL, {"c": "r1"}))["syncPull"]
    accounts = {c["id"] for c in first["changes"] if c["entity"] == "account"}
    assert accounts == {str(world.accounts["rep1a"]), str(world.accounts["rep1b"])}
    assert all(c["data"].get("unitCostCents") is None for c in first["changes"]
               if c["entity"] == "product")
    r2 = (await rep2.ok(PULL, {"c": "r2"}))["syncPull"]
    moved = str(world.accounts["rep1a"])
    upd = await manager.ok("""mutation($id: ID!, $o: ID!) { updateAccount(id: $id,
        input: {ownerId: $o}) { status errors { code } } }""",
                           {"id": moved, "o": str(world.users["rep2"])})
    assert upd["updateAccount"]["status"] == "APPLIED", upd
    after1 = (await rep1.ok(PULL, {"c": "r1", "cursor": first["cursor"]}))["syncPull"]
    assert {"entity": "account", "id": moved, "op": "EVICT"}.items() <= {
        k: v for k, v in next(c for c in after1["changes"] if c["id"] == moved).items()}.items()
    after2 = (await rep2.ok(PULL, {"c": "r2", "cursor": r2["cursor"]}))["syncPull"]
    assert any(c["id"] == moved and c["op"] == "UPSERT" for c in after2["changes"])


async def test_sibling_top_level_fields_share_the_request_safely(as_user, world: World) -> None:
    manager = await as_user("manager1")
    body = await manager.ok("""{ me { email } accounts(first: 3) { totalCount edges { node {
        name orders { id } } } } products { totalCount } conflicts { id } }""")
    assert body["me"]["email"] == "manager1@example.com"
    assert body["accounts"]["totalCount"] == 4 and body["products"]["totalCount"] == 3


async def test_health_readiness_and_metrics(as_user, client, world: World) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    rep1 = await as_user("rep1")
    await rep1.ok(PULL, {"c": "m1"})
    body = (await client.get("/metrics")).text
    assert 'fieldsync_sync_pulls_total' in body and "fieldsync_change_log_head" in body
    assert 'fieldsync_http_requests_total{method="POST",path="/graphql",status="200"}' in body
    r = await client.get("/healthz", headers={"X-Request-Id": "abc123"})
    assert r.headers["x-request-id"] == "abc123"


async def test_readiness_fails_when_migrations_are_behind(settings, world: World) -> None:
    import httpx

    from alembic import command
    from server.app import create_app
    from server.cli import alembic_config

    command.downgrade(alembic_config(settings), "0001")
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/readyz")
    await app.state.services.close()
    assert r.status_code == 503 and r.json()["status"] == "migrations pending"


async def test_the_explorers_default_query_runs_for_a_manager(as_user, world: World) -> None:
    from server.app import DEFAULT_QUERY

    manager = await as_user("manager1")
    body = await manager.ok(DEFAULT_QUERY)
    assert body["me"]["role"] == "MANAGER" and body["accounts"]["totalCount"] == 4
