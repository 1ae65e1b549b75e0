"""Existing offline-first apps sync with fieldsync unmodified: the real npm packages —
RxDB's GraphQL replication and WatermelonDB's synchronize() — against a real uvicorn server.

One server per module (SQLite, or PostgreSQL when FIELDSYNC_TEST_DATABASE_URL is set),
seeded with `make_world` plus a few extra rows. Each client script
(tests/js/rxdb.mjs, tests/js/watermelon.mjs) runs every scenario once, prints a JSON
report and exits non-zero if any expectation failed. The tests below check the exit
code, each scenario's entry in the report, and then the server's state over GraphQL.
RxDB drives rep1's devices, WatermelonDB rep2's: the two never share records, so the
scripts do not disturb each other's expectations. Last, the runnable examples of
docs/clients/ run against the same server (as rep1).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
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
    database_url: str
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

    def found(self, user: str, node_id: str, fields: str) -> dict[str, Any]:
        node = self.node(user, node_id, fields)
        assert node is not None, f"{node_id} is not on the server (as {user})"
        return node

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
        yield Stage(server, world, ids, tmp, url)
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
        assert entry["ok"], (f"scenario {name!r} failed: {entry.get('error')}\n"
                             f"details: {json.dumps(entry.get('details'))[:3000]}")
        return dict(entry.get("facts") or {})

    def explain(self) -> str:
        lines = [f"exit code {self.returncode} after {self.seconds:.1f} s"]
        scenarios = self.report.get("scenarios")
        if not isinstance(scenarios, dict):
            lines.append(f"no report: {json.dumps(self.report)[:2000]}")
        for name, entry in (scenarios or {}).items():
            if entry.get("ok"):
                lines.append(f"  ok      {name}")
            else:
                details = json.dumps(entry.get("details"))[:1500]
                lines.append(f"  FAILED  {name}: {entry.get('error')}\n          {details}")
        lines.append("stderr (tail):\n" + self.stderr[-2000:])
        return "\n".join(lines)


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


@pytest.fixture(scope="module")
def rxdb(stage: Stage) -> Run:
    return run_script(stage, "rxdb.mjs")


@pytest.fixture(scope="module")
def watermelon(stage: Stage) -> Run:
    return run_script(stage, "watermelon.mjs")


CONTACT = "... on Contact { accountId firstName lastName title email phone }"
ORDER = "... on Order { status statusReasonCode statusReason totalCents number }"
ACCOUNT = "... on Account { creditLimitCents notes }"


def devices(stage: Stage) -> set[str]:
    return {d["clientId"] for d in stage.gql("admin", "{ syncDevices { clientId } }")["syncDevices"]}


# -- RxDB: rep1's tablets ---------------------------------------------------------------------

def test_rxdb_client_passes_every_scenario(rxdb: Run) -> None:
    assert rxdb.returncode == 0 and rxdb.report.get("ok") is True, rxdb.explain()


def test_rxdb_offline_creates_are_pushed(rxdb: Run, stage: Stage) -> None:
    facts = rxdb.scenario("offline_creates_pushed")
    for i, cid in enumerate(facts["created"]):
        got = stage.node("manager1", cid, CONTACT)
        assert got is not None and (got["firstName"], got["lastName"], got["accountId"]) == (
            f"Offline{i}", "Tablet1", str(stage.world.accounts["rep1a"]))


def test_rxdb_pulls_server_records_in_pages(rxdb: Run, stage: Stage) -> None:
    facts = rxdb.scenario("server_records_pulled_in_pages")
    assert facts["pullRequests"] >= 4 and facts["contacts"] >= 14
    # one sync position per installation and collection, named by the app's clientId
    assert {"tablet1:contact", "tablet1:account", "tablet1:order", "tablet2:contact"} <= devices(stage)


def test_rxdb_live_update_arrives_through_the_stream(rxdb: Run, stage: Stage) -> None:
    facts = rxdb.scenario("live_update_through_stream")
    assert stage.found("rep1", facts["id"], CONTACT)["title"] == "Head buyer"


def test_rxdb_conflict_is_merged_by_the_handler(rxdb: Run, stage: Stage) -> None:
    facts = rxdb.scenario("conflict_resolved_by_handler")
    assert facts["handlerCalls"] >= 1
    for cid, fields in facts["expected"].items():
        got = stage.node("manager1", cid, CONTACT)
        assert got is not None and {k: got[k] for k in fields} == fields


def test_rxdb_refused_change_converges_without_a_push_loop(rxdb: Run, stage: Stage) -> None:
    facts = rxdb.scenario("refused_change_converges")
    assert stage.found("manager1", facts["id"], ACCOUNT)["creditLimitCents"] == 100_000


def test_rxdb_delete_reaches_the_second_device(rxdb: Run, stage: Stage) -> None:
    facts = rxdb.scenario("delete_reaches_second_device")
    assert stage.node("manager1", facts["id"], CONTACT) is None


def test_rxdb_rejected_order_is_visible_with_its_reason(rxdb: Run, stage: Stage) -> None:
    facts = rxdb.scenario("rejected_order_visible_with_reason")
    rejected = stage.node("manager1", facts["rejected"], ORDER)
    assert rejected is not None and rejected["status"] == "REJECTED"
    assert rejected["statusReasonCode"] == "CREDIT_LIMIT_EXCEEDED"
    assert rejected["statusReason"] == facts["reason"]
    accepted = stage.node("manager1", facts["accepted"], ORDER)
    assert accepted is not None and (accepted["status"], accepted["totalCents"]) == ("SUBMITTED", 1000)


def test_rxdb_never_receives_another_reps_records(rxdb: Run, stage: Stage) -> None:
    facts = rxdb.scenario("never_another_reps_records")
    # the record the device must not see exists, and rep1 cannot read it
    assert stage.node("rep3", facts["foreignContact"], CONTACT) is not None
    assert stage.node("rep1", facts["foreignContact"], CONTACT) is None


def test_rxdb_replicates_without_errors(rxdb: Run) -> None:
    # The scenario fails on any error$ emission; it must also have replicated at all.
    facts = rxdb.scenario("no_replication_errors")
    assert sum(facts["requests"]["tablet1"].values()) > 0, facts


# -- WatermelonDB: rep2's phone and tablet ------------------------------------------------------

def test_watermelon_client_passes_every_scenario(watermelon: Run) -> None:
    assert watermelon.returncode == 0 and watermelon.report.get("ok") is True, watermelon.explain()


def test_watermelon_pulls_server_records(watermelon: Run, stage: Stage) -> None:
    facts = watermelon.scenario("server_records_pulled")
    assert facts["contacts"] >= 8 and facts["lastPulledAt"] > 0
    assert {"phone:wm", "tablet:wm"} <= devices(stage)


def test_watermelon_new_server_record_arrives_as_created(watermelon: Run, stage: Stage) -> None:
    facts = watermelon.scenario("server_created_record_arrives_as_created")
    assert stage.node("rep2", facts["serverCreated"], CONTACT) is not None


def test_watermelon_offline_creates_are_pushed(watermelon: Run, stage: Stage) -> None:
    facts = watermelon.scenario("offline_creates_pushed")
    for i, cid in enumerate(facts["created"]):
        got = stage.node("manager1", cid, CONTACT)
        assert got is not None and (got["firstName"], got["lastName"]) == (f"Offline{i}", "Phone")


def test_watermelon_merges_columns(watermelon: Run, stage: Stage) -> None:
    facts = watermelon.scenario("per_column_merge")
    for cid, columns in facts["expected"].items():
        got = stage.node("manager1", cid, CONTACT)
        assert got is not None
        for column, value in columns.items():
            assert got[column] == value, (cid, column)


def test_watermelon_refused_change_comes_back(watermelon: Run, stage: Stage) -> None:
    facts = watermelon.scenario("refused_change_converges")
    assert stage.found("manager1", facts["id"], ACCOUNT)["creditLimitCents"] == 100_000


def test_watermelon_refused_delete_comes_back(watermelon: Run, stage: Stage) -> None:
    facts = watermelon.scenario("refused_delete_comes_back")
    assert facts["code"] == "FORBIDDEN"
    assert stage.node("manager1", facts["id"], ACCOUNT) is not None


def test_watermelon_delete_reaches_the_second_device(watermelon: Run, stage: Stage) -> None:
    facts = watermelon.scenario("delete_reaches_second_device")
    assert stage.node("manager1", facts["id"], CONTACT) is None


def test_watermelon_rejected_order_is_visible_with_its_reason(watermelon: Run, stage: Stage) -> None:
    facts = watermelon.scenario("rejected_order_visible_with_reason")
    rejected = stage.node("manager1", facts["rejected"], ORDER)
    assert rejected is not None and rejected["status"] == "REJECTED"
    assert rejected["statusReason"] == facts["reason"]
    accepted = stage.node("manager1", facts["accepted"], ORDER)
    assert accepted is not None and (accepted["status"], accepted["totalCents"]) == ("SUBMITTED", 1000)


def test_watermelon_never_receives_another_reps_records(watermelon: Run, stage: Stage) -> None:
    facts = watermelon.scenario("never_another_reps_records")
    assert stage.node("rep3", facts["foreignContact"], CONTACT) is not None
    assert stage.node("rep2", facts["foreignContact"], CONTACT) is None


def test_watermelon_migration_sync_backfills(watermelon: Run) -> None:
    facts = watermelon.scenario("migration_sync_backfills")
    assert facts["migration"] == {"from": 1, "tables": ["products"],
                                  "columns": [{"table": "accounts", "columns": ["tier"]}]}


def test_watermelon_syncs_without_logged_errors(watermelon: Run) -> None:
    # The scenario fails on any error WatermelonDB logged; both devices must have pulled,
    # and the phone (the one that edits) pushed.
    facts = watermelon.scenario("no_sync_errors_logged")
    requests = facts["requests"]
    assert requests["phone"]["pull"] > 0 and requests["tablet"]["pull"] > 0, facts
    assert requests["phone"]["push"] > 0, facts


# -- the documentation's runnable examples --------------------------------------------------------

EXAMPLES = ROOT / "docs" / "clients" / "examples"


@pytest.mark.parametrize(("example", "expected"), [
    ("rxdb-example.mjs", ["accounts: 2 on the device", "pushed", "server version 1"]),
    ("watermelon-example.mjs", ["first sync:", "pushed: 2 applied", "order SO-"]),
])
def test_docs_example_runs_against_the_server(stage: Stage, example: str,
                                              expected: list[str]) -> None:
    # The examples import their packages from their own directory; run copies of them
    # from inside tests/js so they find tests/js/node_modules.
    with tempfile.TemporaryDirectory(prefix=".example-", dir=JS) as tmp:
        for f in EXAMPLES.glob("*.mjs"):
            shutil.copy(f, tmp)
        proc = subprocess.run(
            [NODE or "node", example, stage.server.url, "rep1@example.com", PASSWORD],
            cwd=tmp, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT, check=False,
            env={**os.environ, "WATCH_SECONDS": "0"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for line in expected:
        assert line in proc.stdout, proc.stdout


SIGN_IN = """import { signIn } from './session.mjs';
const session = await signIn(process.argv[2], process.argv[3], process.argv[4]);
session.stop();
console.log(session.token ? 'signed in' : 'no token');
"""


@pytest.mark.skipif(bool(PG_URL), reason="SQLite's busy timeout; PostgreSQL queues writers")
def test_the_example_session_retries_a_login_while_the_database_is_busy(stage: Stage) -> None:
    """The server answers UNAVAILABLE (retryable) when a write waits past the busy timeout;
    the docs' shared session retries the login instead of failing the app's start."""
    path = stage.database_url.removeprefix("sqlite:///")
    log = stage.tmp / "busy-server.log"
    with log.open("wb") as err, uvicorn_server(
            stage.database_url, SECRET, {"FIELDSYNC_SQLITE_BUSY_TIMEOUT_MS": "200"},
            stderr=err) as server, \
            tempfile.TemporaryDirectory(prefix=".example-", dir=JS) as tmp:
        shutil.copy(EXAMPLES / "session.mjs", tmp)
        (Path(tmp) / "sign-in.mjs").write_text(SIGN_IN)
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock…
        try:
            proc = subprocess.Popen(
                [NODE or "node", "sign-in.mjs", server.url + "/graphql", "rep1@example.com",
                 PASSWORD], cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + SCRIPT_TIMEOUT
            # … until the login was refused (the server logs why it answered UNAVAILABLE).
            while "database is locked" not in log.read_text():
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the login was never refused"
                time.sleep(0.05)
        finally:
            holder.rollback()
            holder.close()
        out, errors = proc.communicate(timeout=SCRIPT_TIMEOUT)
    assert proc.returncode == 0, out + errors
    assert "signed in" in out
