"""Existing offline-first apps sync with fieldsync unmodified: the real npm packages —
RxDB's GraphQL replication and WatermelonDB's synchronize() — against a real uvicorn server.

One server per module (SQLite, or PostgreSQL when FIELDSYNC_TEST_DATABASE_URL is set),
seeded with `make_world` plus a few extra rows. Each client script
(tests/js/rxdb.mjs, tests/js/watermelon.mjs) runs every scenario once, prints a JSON
report and exits non-zero if any expectation failed. The tests below check the exit
code, each scenario's entry in the report, and then the server's state over GraphQL.
RxDB drives rep1's devices, WatermelonDB rep2's: the two never share records, so the
scripts do not disturb each other's expectations.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from schema.bulk import insert_rows
from server.db import Database, create_engine
from server.settings import Settings
from tests.conftest import LOGIN, PASSWORD, PG_URL, World, make_world
from tests.servers import ServerProcess, uvicorn_server

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "tests" / "js"
NODE = shutil.which("node")
SECRET = "js-clients-secret-" + "x" * 32
SCRIPT_TIMEOUT = 120

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NODE is None, reason="node is not installed (Node 20+ runs the "
                       "RxDB and WatermelonDB clients)"),
    pytest.mark.skipif(not (JS / "node_modules").is_dir(),
                       reason="tests/js/node_modules is missing: run `npm ci` in tests/js"),
]


# -- the stage: one seeded database and one real server for the whole module -------------------

@dataclass
class Stage:
    server: ServerProcess
    world: World
    #: Extra rows: name → ids (contacts per account, …).
    ids: dict[str, list[str]]
    tmp: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, user: str) -> str:
        if user not in self.tokens:
            r = httpx.post(self.server.url + "/graphql", timeout=10, json={
                "query": LOGIN, "variables": {"e": f"{user}@example.com", "p": PASSWORD}})
            self.tokens[user] = r.json()["data"]["login"]["accessToken"]
        return self.tokens[user]

    def gql(self, user: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        r = httpx.post(self.server.url + "/graphql", timeout=10,
                       json={"query": query, "variables": variables or {}},
                       headers={"Authorization": f"Bearer {self.token(user)}"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert "errors" not in body, body["errors"]
        return dict(body["data"])

    def node(self, user: str, node_id: str, fields: str) -> dict[str, Any] | None:
        q = f"query($id: ID!) {{ node(id: $id) {{ id {fields} }} }}"
        node = self.gql(user, q, {"id": node_id})["node"]
        return None if node is None else dict(node)

    def config(self) -> dict[str, Any]:
        w = self.world
        return {
            "http": self.server.url + "/graphql",
            "ws": self.server.ws_url,
            "password": PASSWORD,
            "users": {name: f"{name}@example.com" for name in w.users},
            "accounts": {k: str(v) for k, v in w.accounts.items()},
            "products": {k: str(v) for k, v in w.products.items()},
            "ids": self.ids,
        }


def _module_database(template_url: str, tmp: Path) -> str:
    """A copy of the migrated template for this module only (never `<db>_run`, which the
    function-scoped fixtures recreate)."""
    if PG_URL:
        base = PG_URL.rsplit("/", 1)[1]
        engine = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1),
                                  isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{base}_js" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{base}_js" TEMPLATE "{base}_tmpl"'))
        engine.dispose()
        return PG_URL.rsplit("/", 1)[0] + f"/{base}_js"
    target = tmp / "js-clients.db"
    shutil.copyfile(template_url.removeprefix("sqlite:///"), target)
    return f"sqlite:///{target}"


async def _seed(url: str) -> tuple[World, dict[str, list[str]]]:
    db = Database(create_engine(Settings(database_url=url, jwt_secret=SECRET)))
    try:
        world = await make_world(db)
        a = world.accounts
        ids: dict[str, list[str]] = {}
        async with db.write() as s:
            for key, n in (("rep1a", 12), ("rep2a", 6), ("rep3a", 3), ("rep1b", 2), ("rep2b", 2)):
                rows = [{"account_id": a[key], "first_name": f"Seed{i}", "last_name": key,
                         "email": f"seed{i}.{key}@example.com"} for i in range(n)]
                ids[f"contacts:{key}"] = [str(i) for i in await insert_rows(s, "contact", rows)]
        return world, ids
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def stage(template_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    tmp = tmp_path_factory.mktemp("js-clients")
    url = _module_database(template_url, tmp)
    world, ids = asyncio.run(_seed(url))
    with uvicorn_server(url, SECRET) as server:
        yield Stage(server, world, ids, tmp)
    if PG_URL:
        base = PG_URL.rsplit("/", 1)[1]
        engine = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1),
                                  isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{base}_js" WITH (FORCE)'))
        engine.dispose()


# -- running a client script --------------------------------------------------------------------

@dataclass
class Run:
    returncode: int
    report: dict[str, Any]
    stderr: str
    seconds: float

    def scenario(self, name: str) -> dict[str, Any]:
        """The scenario's facts; fails with the script's own explanation if it failed."""
        entry = self.report.get("scenarios", {}).get(name)
        assert entry is not None, f"scenario {name!r} did not run:\n{self.explain()}"
        assert entry["ok"], f"scenario {name!r} failed: {entry.get('error')}\n{self.explain()}"
        return dict(entry.get("facts") or {})

    def explain(self) -> str:
        return (f"exit code {self.returncode}; report:\n{json.dumps(self.report, indent=1)}\n"
                f"stderr (tail):\n{self.stderr[-4000:]}")


def run_script(stage: Stage, script: str) -> Run:
    config = stage.tmp / f"{script}.json"
    config.write_text(json.dumps(stage.config()))
    started = time.monotonic()
    proc = subprocess.run([NODE or "node", str(JS / script), str(config)], cwd=JS,
                          capture_output=True, text=True, timeout=SCRIPT_TIMEOUT,
                          env={**os.environ, "NODE_ENV": "test"}, check=False)
    seconds = time.monotonic() - started
    report: dict[str, Any] = {}
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                report = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
    if not report:
        report = {"unparsed stdout": proc.stdout[-4000:]}
    return Run(proc.returncode, report, proc.stderr, seconds)
