"""Faults with nothing lost: a busy pool answers 'retry' (never a hang or a 500), and
concurrent writers on SQLite queue instead of failing with 'database is locked'."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.settings import Settings
from tests.conftest import PG_URL, World, login

PUSH = """mutation($input: SyncPushInput!) { syncPush(input: $input) { lastMutationId
  results { status } } }"""


@pytest.mark.skipif(not PG_URL, reason="SQLite has no connection pool to exhaust")
async def test_exhausted_pool_answers_unavailable_quickly(settings: Settings, world: World) -> None:
    tight = Settings(**{**settings.__dict__, "db_pool_size": 1, "db_pool_timeout": 0.3})
    app = create_app(tight)
    db = app.state.services.db
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        token = (await login(c, "rep1@example.com"))["accessToken"]
        # hold every pooled connection (1 + 1 overflow)
        held = [await db.engine.connect() for _ in range(2)]
        try:
            r = await asyncio.wait_for(c.post("/graphql", json={"query": "{ me { email } }"},
                                              headers={"Authorization": f"Bearer {token}"}), 10)
        finally:
            for conn in held:
                await conn.close()
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        body = r.json()["errors"][0]
        assert body["extensions"] == {"code": "UNAVAILABLE", "retryable": True}
        # and the pool recovers by itself
        ok = await c.post("/graphql", json={"query": "{ me { email } }"},
                          headers={"Authorization": f"Bearer {token}"})
        assert ok.json()["data"]["me"]["email"] == "rep1@example.com"
    await app.state.services.close()


async def test_concurrent_pushes_never_see_database_locked(client: httpx.AsyncClient, world: World,
                                                           as_user: Any) -> None:
    reps = [await as_user(name) for name in ("rep1", "rep2", "rep3")]
    accounts = [world.accounts[a] for a in ("rep1a", "rep2a", "rep3a")]

    async def device(n: int) -> list[str]:
        api, account = reps[n % 3], accounts[n % 3]
        statuses: list[str] = []
        for mid in range(1, 6):
            body = await api.raw(PUSH, {"input": {"clientId": f"d{n}", "protocolVersion": 1,
                "mutations": [{"mutationId": mid, "entity": "contact", "op": "CREATE",
                               "id": str(uuid.uuid4()), "fields": {
                                   "accountId": str(account), "firstName": "C", "lastName": str(n)}}]}})
            assert "errors" not in body, body
            statuses += [r["status"] for r in body["data"]["syncPush"]["results"]]
        return statuses

    results = await asyncio.gather(*(device(n) for n in range(12)))
    assert all(s == "APPLIED" for statuses in results for s in statuses)
    assert sum(len(s) for s in results) == 60
