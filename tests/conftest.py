"""Test fixtures: a freshly migrated database per test (SQLite by default, PostgreSQL when
FIELDSYNC_TEST_DATABASE_URL is set), the real ASGI app over httpx, real JWTs."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from schema.bulk import insert_rows
from schema.enums import Role
from schema.identity.passwords import hash_password
from schema.identity.service import create_user
from server.app import create_app
from server.cli import db_upgrade
from server.db import Database
from server.settings import Settings

PG_URL = os.environ.get("FIELDSYNC_TEST_DATABASE_URL")
PASSWORD = "demo-password"
_HASH = hash_password(PASSWORD)


def _reset_pg(url: str) -> None:
    """Empty a PostgreSQL database's public schema (for tests that build their own)."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def _admin_engine(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1),
                            isolation_level="AUTOCOMMIT")


def _with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def template_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database migrated once per test session; each test gets a fresh copy of it."""
    if PG_URL:
        base = PG_URL.rsplit("/", 1)[1]
        engine = _admin_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{base}_tmpl" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{base}_tmpl"'))
        engine.dispose()
        url = _with_database(PG_URL, f"{base}_tmpl")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('template') / 'template.db'}"
    db_upgrade(Settings(database_url=url))
    return url


@pytest.fixture
def database_url(template_url: str, tmp_path: Path) -> str:
    if PG_URL:
        base = PG_URL.rsplit("/", 1)[1]
        engine = _admin_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{base}_run" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{base}_run" TEMPLATE "{base}_tmpl"'))
        engine.dispose()
        return _with_database(PG_URL, f"{base}_run")
    target = tmp_path / "test.db"
    shutil.copyfile(template_url.removeprefix("sqlite:///"), target)
    return f"sqlite:///{target}"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, jwt_secret="test-secret-" + "x" * 32,
                    login_max_failures=5)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    yield application
    await application.state.services.close()


@pytest.fixture
def db(app: Any) -> Database:
    return app.state.services.db


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@dataclass
class World:
    """Two teams: manager1 (rep1, rep2) and manager2 (rep3); an admin; accounts, products."""

    users: dict[str, uuid.UUID]
    accounts: dict[str, uuid.UUID]
    products: dict[str, uuid.UUID]
    territory: uuid.UUID


async def make_world(db: Database) -> World:
    users: dict[str, uuid.UUID] = {}
    async with db.write() as s:
        t = (await insert_rows(s, "territory", [{"code": "N", "name": "North"}]))[0]
        admin = await create_user(s, email="admin@example.com", full_name="Ada Admin",
                                  password="", password_hash=_HASH, role=Role.ADMIN)
        users["admin"] = admin.id
        for m, reps in (("manager1", ("rep1", "rep2")), ("manager2", ("rep3",))):
            boss = await create_user(s, email=f"{m}@example.com", full_name=m.title(),
                                     password="", password_hash=_HASH, role=Role.MANAGER)
            users[m] = boss.id
            for r in reps:
                rep = await create_user(s, email=f"{r}@example.com", full_name=r.title(),
                                        password="", password_hash=_HASH, role=Role.REP,
                                        manager_id=boss.id, territory_id=t)
                users[r] = rep.id
        accounts: dict[str, uuid.UUID] = {}
        for rep in ("rep1", "rep2", "rep3"):
            ids = await insert_rows(s, "account", [
                {"name": f"{rep} shop {i}", "owner_id": users[rep], "territory_id": t,
                 "credit_limit_cents": 100_000} for i in range(2)])
            accounts[f"{rep}a"], accounts[f"{rep}b"] = ids
        pids = await insert_rows(s, "product", [
            {"sku": "SKU-1", "name": "Cola", "category": "drinks", "unit_price_cents": 1000,
             "unit_cost_cents": 600},
            {"sku": "SKU-2", "name": "Chips", "category": "snacks", "unit_price_cents": 250,
             "unit_cost_cents": 100},
            {"sku": "SKU-OLD", "name": "Old thing", "category": "snacks",
             "unit_price_cents": 500, "unit_cost_cents": 200, "active": False},
        ])
    return World(users, accounts, {"cola": pids[0], "chips": pids[1], "old": pids[2]}, t)


@pytest.fixture
async def world(db: Database) -> World:
    return await make_world(db)


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    r = await client.post("/graphql", json={"query": LOGIN, "variables": {"e": email, "p": password}})
    assert r.status_code == 200, r.text
    return r.json()["data"]["login"]


LOGIN = """mutation($e: String!, $p: String!) { login(email: $e, password: $p) {
  __typename ... on LoginSuccess { accessToken refreshToken expiresIn }
  ... on AuthError { code message retryAfterSeconds } } }"""


class Api:
    """A signed-in GraphQL caller."""

    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        self.client = client
        self.token = token

    async def raw(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        r = await self.client.post("/graphql", json={"query": query, "variables": variables or {}},
                                   headers={"Authorization": f"Bearer {self.token}"})
        assert r.status_code == 200, r.text
        return r.json()

    async def ok(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = await self.raw(query, variables)
        assert "errors" not in body, body["errors"]
        return body["data"]


@pytest.fixture
async def as_user(client: httpx.AsyncClient, world: World) -> Any:
    cache: dict[str, Api] = {}

    async def get(name: str) -> Api:
        if name not in cache:
            tokens = await login(client, f"{name}@example.com")
            cache[name] = Api(client, tokens["accessToken"])
        return cache[name]

    return get


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    """A real uvicorn server on a loopback port, on a migrated database with the world."""
    import asyncio

    import uvicorn

    async def seed() -> None:
        db = Database(__import__("server.db", fromlist=["create_engine"]).create_engine(settings))
        await make_world(db)
        await db.dispose()

    asyncio.run(seed())
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield LiveServer(f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def manager_credentials() -> tuple[str, str]:
    return ("manager1@example.com", PASSWORD)
