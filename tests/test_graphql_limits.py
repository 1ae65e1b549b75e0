"""GraphQL resource limits, each one on deliberately, each one tested."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from schema.bulk import insert_rows
from server.app import create_app
from server.settings import Settings
from tests.conftest import Api, World, login


async def test_depth_is_limited(as_user: Any, world: World) -> None:
    rep = await as_user("rep1")
    nested = "{ orders { edges { node { account { orders { account { orders { account { orders { account { orders { account { orders { account { id } } } } } } } } } } } } } } }"
    body = await rep.raw(nested)
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]


async def test_aliases_are_limited_even_through_fragments(as_user: Any, world: World) -> None:
    rep = await as_user("rep1")
    aliases = " ".join(f"a{i}: id" for i in range(40))
    body = await rep.raw(f"{{ me {{ ...F }} }} fragment F on Me {{ {aliases} }}")
    assert "aliases found" in body["errors"][0]["message"].lower() or \
        "alias" in body["errors"][0]["message"].lower()


async def test_token_count_is_limited(as_user: Any, world: World) -> None:
    rep = await as_user("rep1")
    fields = " ".join("email" for _ in range(6000))
    body = await rep.raw(f"{{ me {{ {fields} }} }}")
    assert "token" in body["errors"][0]["message"].lower()


async def test_duplicated_fields_are_refused(as_user: Any, world: World) -> None:
    rep = await as_user("rep1")
    body = await rep.raw("{ me { email email email email email } }")
    assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


async def test_nested_pages_cannot_multiply_past_the_object_limit(
        as_user: Any, world: World) -> None:
    """A few hundred bytes of nested pages would ask for millions of orders: refused
    before anything runs, through fragments and variables too. A big but bounded
    manager query still runs."""
    rep = await as_user("rep1")
    leaf = "a: orders(first: 50) { id } b: orders(first: 50) { id } c: orders(first: 50) { id }"
    fan = ("{ accounts(first: 200) { edges { node { orders(first: 50) { account { "
           "orders(first: 50) { account { " + leaf + " } } } } } } } }")
    via_fragment = ("query($n: Int) { accounts(first: $n) { edges { node { ...O } } } } "
                    "fragment O on Account { orders(first: $n) { account { orders(first: $n) "
                    "{ id } } } }")
    for query in (fan, via_fragment):
        body = await rep.raw(query, {"n": 10} if "$n" in query else None)
        assert body["data"] is None, body
        assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
        assert "50,000 objects" in body["errors"][0]["message"]
    manager = await as_user("manager1")
    big = ("{ accounts(first: 200) { edges { node { id contacts { id } "
           "orders(first: 50) { id lines { productId } } visitNotes(first: 50) { id } } } } }")
    ok = await manager.ok(big)
    assert len(ok["accounts"]["edges"]) == 4


async def test_unpaged_lists_are_counted_while_the_query_runs(
        settings: Settings, world: World, db: Any) -> None:
    """An account's contacts are not paged, so no estimate can bound
    `contacts { account { contacts … } }`: the objects completed are counted as the
    query runs, and it stops with QUERY_TOO_COMPLEX past the limit."""
    async with db.write() as s:
        await insert_rows(s, "contact", [{"account_id": world.accounts["rep1a"],
                                          "first_name": f"C{i}", "last_name": "D"}
                                         for i in range(30)])
    app = create_app(Settings(**{**settings.__dict__, "graphql_max_objects": 500}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        token = (await login(c, "rep1@example.com"))["accessToken"]
        rep = Api(c, token)
        query = "query($a: ID!) { account(id: $a) { contacts { %s } } }"
        one = await rep.ok(query % "id", {"a": str(world.accounts["rep1a"])})
        assert len(one["account"]["contacts"]) == 30
        body = await rep.raw(query % "account { contacts { account { contacts { id } } } }",
                             {"a": str(world.accounts["rep1a"])})
        assert body["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX", body["errors"]
        assert "500 objects" in body["errors"][0]["message"]
    await app.state.services.close()


async def test_circular_fragments_are_refused(as_user: Any, world: World) -> None:
    rep = await as_user("rep1")
    body = await rep.raw("{ me { ...A } } fragment A on Me { ...B } fragment B on Me { ...A }")
    assert "cannot spread fragment" in body["errors"][0]["message"].lower()


async def test_batched_operations_are_not_accepted(client: httpx.AsyncClient, world: World) -> None:
    r = await client.post("/graphql", json=[{"query": "{ __typename }"}, {"query": "{ __typename }"}])
    assert r.status_code == 400


async def test_introspection_needs_a_login_in_production(settings: Settings, world: World) -> None:
    prod = Settings(**{**settings.__dict__, "env": "production"})
    app = create_app(prod)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        anon = (await c.post("/graphql", json={"query": "{ __schema { types { name } } }"})).json()
        assert anon["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    await app.state.services.close()


async def test_unexpected_errors_are_masked_with_a_correlation_id(
        as_user: Any, world: World, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from schema.graphql import queries

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals: SELECT * FROM user_account")

    monkeypatch.setattr(queries, "readable", boom)
    rep = await as_user("rep1")
    body = await rep.raw("{ accounts { totalCount } }")
    error = body["errors"][0]
    assert error["extensions"]["code"] == "INTERNAL" and "SELECT" not in error["message"]
    ref = error["extensions"]["ref"]
    assert ref in error["message"] and ref in caplog.text


async def test_client_errors_are_logged_without_a_traceback(
        as_user: Any, world: World, caplog: pytest.LogCaptureFixture) -> None:
    """A page size out of range is the client's mistake: one line at INFO, where
    strawberry logged an ERROR with a traceback."""
    caplog.set_level(logging.INFO, logger="strawberry.execution")
    rep = await as_user("rep1")
    body = await rep.raw("{ accounts(first: 201) { totalCount } }")
    assert body["errors"][0]["extensions"]["code"] == "BAD_PAGE_SIZE"
    logged = [r for r in caplog.records if r.name == "strawberry.execution"]
    assert logged, "the error is still logged"
    assert all(r.levelno == logging.INFO and not r.exc_info for r in logged)
    assert "Traceback" not in caplog.text


async def test_no_state_change_through_get_or_a_form_post(client: httpx.AsyncClient,
                                                          world: World) -> None:
    mutation = 'mutation { login(email: "rep1@example.com", password: "demo-password") { __typename } }'
    r = await client.get("/graphql", params={"query": mutation})
    assert r.status_code in (400, 405)
    form = await client.post("/graphql", data={"query": mutation},
                             headers={"content-type": "application/x-www-form-urlencoded"})
    assert form.status_code in (400, 415)


async def test_cors_only_for_configured_origins(settings: Settings, world: World) -> None:
    app = create_app(Settings(**{**settings.__dict__, "cors_origins": "https://app.example.com"}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        ok = await c.options("/graphql", headers={"Origin": "https://app.example.com",
                                                  "Access-Control-Request-Method": "POST"})
        bad = await c.options("/graphql", headers={"Origin": "https://evil.example.com",
                                                   "Access-Control-Request-Method": "POST"})
    await app.state.services.close()
    assert ok.headers.get("access-control-allow-origin") == "https://app.example.com"
    assert "access-control-allow-origin" not in bad.headers
