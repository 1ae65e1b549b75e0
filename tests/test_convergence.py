"""Convergence: generated offline scenarios against the real app, through GraphQL.

Three devices (rep1's phone and tablet, rep2's phone) keep a local replica (only what
they pulled) and an outbox of mutations with stable mutationIds. A scenario is a list of
steps drawn by hypothesis (which record a step touches is resolved when it runs, from
what the writer can see): offline edits, creates and deletes on a device; the manager's
online edits, contact moves and deletes; an account reassigned between the reps; the
retention job; and syncs, during which push responses get lost (the batch is sent again
at once, later together with newer mutations, or twice at the same time), pull responses
get lost (the same cursor is asked again), a pull stops mid-way, or all devices sync at
once.

After every device has synced twice more, with no faults:
(a) every mutation a device made has exactly one stored outcome (APPLIED, MERGED,
    CONFLICT or REJECTED; a CONFLICT names its conflict record), and every response that
    carried it, lost or not, said the same thing;
(b) each replica equals a fresh pull (cursor null, new clientId) for the same user,
    which itself matches the tables;
(c) no replica holds a record outside its user's scope, read from the tables.
A failure prints the scenario as it ran: each step resolved, each push and pull.

Every example runs on a database of its own: a copy of a migrated, seeded and
first-synced SQLite file, or, with FIELDSYNC_TEST_DATABASE_URL, that state restored into
the PostgreSQL schema (migrated once per test) before each example.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from schema.bulk import insert_rows
from schema.enums import Role
from schema.identity.tables import User
from schema.registry import registry
from schema.scope import Principal, visible_keys
from server.app import create_app
from server.cli import db_upgrade
from server.db import Database, create_engine, create_sync_engine
from server.settings import Settings
from sync.retention import compact
from tests.conftest import World, make_world

PUSH = """mutation($input: SyncPushInput!) { syncPush(input: $input) { lastMutationId
  results { mutationId status id version data conflictId
            error { code message field retryable } warnings { code message field retryable } } } }"""
PULL = """query($c: ID!, $cursor: String, $limit: Int) {
  syncPull(clientId: $c, cursor: $cursor, limit: $limit) {
    changes { entity id op version data } cursor hasMore reset lastMutationId } }"""
MANAGER_UPDATE = {
    e: f"""mutation($id: ID!, $input: {t}Input!, $v: Int) {{
        update{t}(id: $id, input: $input, baseVersion: $v) {{
          status conflictId errors {{ code message field }} }} }}"""
    for e, t in (("account", "Account"), ("contact", "Contact"), ("lead", "Lead"))
}
MANAGER_DELETE_CONTACT = """mutation($id: ID!, $v: Int) { deleteContact(id: $id, baseVersion: $v) {
  status conflictId errors { code message field } } }"""

DEVICES = {"r1-phone": "rep1", "r1-tablet": "rep1", "r2-phone": "rep2"}
OUTCOMES = {"APPLIED", "MERGED", "CONFLICT", "REJECTED"}
ACCOUNT_REF = "<an account>"  # a value drawn from the accounts the writer can see
REP_REF = "<a rep>"

#: What devices edit offline: entity → wire field → candidate values.
DEVICE_FIELDS: dict[str, dict[str, list[Any]]] = {
    "account": {"name": ["Shop A", "Shop B", "Shop C"], "phone": ["1", "2", None],
                "city": ["Lyon", "Paris", None], "street": ["1 Rue", "2 Rue"],
                "notes": ["n1", "n2", None], "creditLimitCents": [5_000, 900_000]},
    "contact": {"firstName": ["Ann", "Bob", "Cy"], "phone": ["1", "2", None],
                "title": ["CEO", "Buyer", None], "accountId": [ACCOUNT_REF]},
    "lead": {"company": ["Acme", "Globex"], "phone": ["1", "2"], "score": [10, 90],
             "status": ["CONTACTED", "QUALIFIED", "DISQUALIFIED", "NEW"]},
    "visitNote": {"body": ["ok", "call back"], "accountId": [ACCOUNT_REF]},
    "order": {"poNumber": ["PO-1", "PO-2"], "status": ["CANCELLED", "DRAFT", "SUBMITTED"]},
}
#: What the manager edits online.
MANAGER_FIELDS: dict[str, dict[str, list[Any]]] = {
    "account": {"name": ["HQ Shop", "Depot"], "phone": ["9", None], "city": ["Nice", "Lyon"],
                "status": ["ON_HOLD", "ACTIVE"], "creditLimitCents": [1_000, 100_000]},
    "contact": {"firstName": ["Dee", "Ann"], "phone": ["8", None], "accountId": [ACCOUNT_REF]},
    "lead": {"company": ["Initech"], "status": ["QUALIFIED", "NEW", "DISQUALIFIED"],
             "ownerId": [REP_REF]},
}
PG_URL = os.environ.get("FIELDSYNC_TEST_DATABASE_URL")
#: Scenarios per run: each is a whole simulation, and PostgreSQL round trips cost more.
EXAMPLES = 15 if PG_URL else 25
CREATABLE = ("contact", "lead", "visitNote", "order")
DELETABLE = ("contact", "lead", "visitNote", "order", "account")


# -- steps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    dev: str
    entity: str
    field: str
    pick: int
    value: int


@dataclass(frozen=True)
class Create:
    dev: str
    entity: str
    pick: int
    value: int


@dataclass(frozen=True)
class Delete:
    dev: str
    entity: str
    pick: int


@dataclass(frozen=True)
class Sync:
    dev: str
    batch: int = 5
    limit: int = 50
    #: Per push batch: "ok", "resend" (response lost, sent again at once), "offline"
    #: (response lost, the device stops and sends it again at its next sync) or "twice"
    #: (a retry sent while the first request is still in flight).
    push_faults: tuple[str, ...] = ()
    lose_pull: bool = False
    #: Stop after this many pages (0: until hasMore is false): the connection dropped
    #: mid-pull, so the next pull resumes from a cursor inside a backfill or eviction.
    pages: int = 0


@dataclass(frozen=True)
class ManagerEdit:
    entity: str
    field: str
    pick: int
    value: int
    with_base: bool = True


@dataclass(frozen=True)
class ManagerDeleteContact:
    pick: int


@dataclass(frozen=True)
class Reassign:
    """The manager gives an account of the team to the other rep."""

    pick: int


@dataclass(frozen=True)
class SyncAll:
    """Every device syncs at the same time (pushes and pulls interleave on the server)."""

    limit: int = 50


@dataclass(frozen=True)
class Compact:
    """The retention job after a long time: the change log and stored push results are
    gone, every cursor is below the horizon, so each device's next pull is a reset."""


@dataclass(frozen=True)
class MoveContact:
    """The manager moves a contact to another account of the team (maybe another rep's)."""

    pick: int
    to: int


Step = (Edit | Create | Delete | Sync | ManagerEdit | ManagerDeleteContact | Reassign
        | MoveContact | Compact | SyncAll)

DEV = st.sampled_from(list(DEVICES))
PICK = st.integers(0, 5)
VALUE = st.integers(0, 3)
FAULTS = st.lists(st.sampled_from(["ok", "resend", "offline", "twice"]), max_size=3).map(tuple)


def _fields(table: dict[str, dict[str, list[Any]]]) -> list[tuple[str, str]]:
    return [(e, f) for e, fs in table.items() for f in fs]


edits = st.builds(lambda d, ef, p, v: Edit(d, ef[0], ef[1], p, v),
                  DEV, st.sampled_from(_fields(DEVICE_FIELDS)), PICK, VALUE)
creates = st.builds(Create, DEV, st.sampled_from(CREATABLE), PICK, VALUE)
deletes = st.builds(Delete, DEV, st.sampled_from(DELETABLE), PICK)
syncs = st.builds(Sync, DEV, st.integers(1, 4), st.sampled_from([2, 5, 50]), FAULTS,
                  st.booleans(), st.sampled_from([0, 0, 1]))
manager_edits = st.builds(lambda ef, p, v, b: ManagerEdit(ef[0], ef[1], p, v, b),
                          st.sampled_from(_fields(MANAGER_FIELDS)), PICK, VALUE, st.booleans())
steps = st.lists(
    st.one_of(edits, syncs, creates, edits, manager_edits, syncs, st.builds(Reassign, PICK),
              st.builds(MoveContact, PICK, PICK), deletes, st.builds(ManagerDeleteContact, PICK),
              st.just(Compact()), st.builds(SyncAll, st.sampled_from([2, 50]))),
    min_size=1, max_size=30,
)


# -- databases ------------------------------------------------------------------------


def _settings(url: str) -> Settings:
    return Settings(database_url=url, jwt_secret="test-secret-" + "x" * 32,
                    login_max_failures=5)


@dataclass
class Template:
    settings: Settings
    world: World
    #: Seeded contacts and leads by label ("contact@rep1a", "lead@rep2").
    seeds: dict[str, uuid.UUID]
    sqlite_file: Path | None = None
    #: PostgreSQL: every table's rows after seeding, restored before each example.
    snapshot: list[tuple[sa.Table, list[dict[str, Any]]]] = field(default_factory=list)
    #: The devices after their first full sync, which every example starts from.
    devices: dict[str, Device] = field(default_factory=dict)
    first_sync: list[str] = field(default_factory=list)


async def _seed(settings: Settings) -> tuple[World, dict[str, uuid.UUID]]:
    db = Database(create_engine(settings))
    seeds: dict[str, uuid.UUID] = {}
    try:
        world = await make_world(db)
        async with db.write() as s:  # something to edit from the first step on
            for name in ("rep1a", "rep1b", "rep2a", "rep2b"):
                (seeds[f"contact@{name}"],) = await insert_rows(s, "contact", [{
                    "account_id": world.accounts[name], "first_name": "Seed", "last_name": name}])
            for rep in ("rep1", "rep2"):
                (seeds[f"lead@{rep}"],) = await insert_rows(s, "lead", [{
                    "company": f"{rep} lead", "owner_id": world.users[rep]}])
        return world, seeds
    finally:
        await db.dispose()


def _reset_pg(url: str) -> None:
    engine = create_sync_engine(_settings(url))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


def build_template(tmp: Path) -> Template:
    if PG_URL:
        _reset_pg(PG_URL)
        settings = _settings(PG_URL)
    else:
        settings = _settings(f"sqlite:///{tmp / 'template.db'}")
    db_upgrade(settings)
    world, seeds = asyncio.run(_seed(settings))
    template = Template(settings, world, seeds)
    asyncio.run(run_scenario(settings, template, [], first_sync=True))
    if PG_URL:
        engine = create_sync_engine(settings)
        try:
            meta = sa.MetaData()
            meta.reflect(engine)
            with engine.connect() as conn:
                template.snapshot = [
                    (t, [dict(r) for r in conn.execute(sa.select(t)).mappings()])
                    for t in meta.sorted_tables if t.name != "alembic_version"]
        finally:
            engine.dispose()
    else:
        template.sqlite_file = tmp / "template.db"
    return template


@contextmanager
def fresh_database(template: Template) -> Iterator[Settings]:
    if template.sqlite_file is None:
        engine = create_sync_engine(template.settings)
        try:
            with engine.begin() as conn:
                # DELETE beats TRUNCATE on tables this small; no triggers (foreign keys)
                # fire while the seeded rows go back in.
                conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
                for table, _ in reversed(template.snapshot):
                    conn.execute(sa.delete(table))
                for table, rows in template.snapshot:
                    if rows:
                        conn.execute(sa.insert(table), rows)
        finally:
            engine.dispose()
        yield template.settings
        return
    with tempfile.TemporaryDirectory(prefix="fieldsync-conv-") as d:
        path = Path(d) / "example.db"
        with closing(sqlite3.connect(template.sqlite_file)) as src, \
                closing(sqlite3.connect(path)) as dst:
            src.backup(dst)
        yield _settings(f"sqlite:///{path}")


# -- the simulation ---------------------------------------------------------------------


class Failure(AssertionError):
    pass


@dataclass
class Device:
    client_id: str
    user: str
    replica: dict[tuple[str, str], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    cursor: str | None = None
    outbox: list[dict[str, Any]] = field(default_factory=list)
    next_mid: int = 1
    outcomes: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: Rows this device created that it has not pulled yet: (entity, id) → mutationId.
    created: dict[tuple[str, str], int] = field(default_factory=dict)

    def rows(self, entity: str) -> list[tuple[str, int | None]]:
        """(id, base version) of what the device can edit, in a stable order."""
        mine = {i: v for (e, i), (v, _) in self.replica.items() if e == entity}
        pending: dict[str, int | None] = {i: 1 for (e, i) in self.created if e == entity}
        return sorted({**pending, **mine}.items())


class Sim:
    def __init__(self, http: httpx.AsyncClient, db: Database, template: Template,
                 tokens: dict[str, str]) -> None:
        self.http, self.db, self.tokens = http, db, tokens
        self.world, self.seeds = template.world, template.seeds
        self.devices = copy.deepcopy(template.devices) or {
            c: Device(c, u) for c, u in DEVICES.items()}
        self.first_seen: dict[tuple[str, int], dict[str, Any]] = {}
        #: Mutations whose stored result a compaction may have removed.
        self.expired: set[tuple[str, int]] = set()
        self.trace: list[str] = []
        self.labels: dict[str, str] = {}
        for names in (self.world.accounts, self.world.users, self.seeds):
            self.labels.update({str(i): name for name, i in names.items()})
        self.counter = itertools.count(1)

    # -- helpers ----------------------------------------------------------------------

    def label(self, row_id: str, entity: str = "") -> str:
        if row_id not in self.labels:
            self.labels[row_id] = f"{entity}#{next(self.counter)}"
        return self.labels[row_id]

    def log(self, line: str) -> None:
        self.trace.append(line)

    def fail(self, message: str) -> Failure:
        return Failure(f"{message}\n\nScenario as run ({len(self.trace)} lines):\n  "
                       + "\n  ".join(self.trace))

    async def gql(self, user: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        r = await self.http.post("/graphql", json={"query": query, "variables": variables},
                                 headers={"Authorization": f"Bearer {self.tokens[user]}"})
        body = r.json()
        if r.status_code != 200 or body.get("errors"):
            raise self.fail(f"GraphQL call by {user} failed: {r.status_code} {body}")
        return body["data"]  # type: ignore[no-any-return]

    def value(self, raw: Any, pick: int, accounts: list[str]) -> Any:
        if raw == ACCOUNT_REF:
            return accounts[pick % len(accounts)] if accounts else None
        if raw == REP_REF:
            return str(self.world.users[("rep1", "rep2")[pick % 2]])
        return raw

    def show(self, fields: dict[str, Any]) -> str:
        return ", ".join(f"{k}={self.labels.get(v, v) if isinstance(v, str) else v!r}"
                         for k, v in fields.items() if k != "lines")

    @staticmethod
    def now() -> str:
        return datetime.now(UTC).isoformat()

    def enqueue(self, d: Device, op: str, entity: str, row_id: str, base: int | None,
                fields: dict[str, Any] | None) -> None:
        m = {"mutationId": d.next_mid, "entity": entity, "op": op, "id": row_id,
             "baseVersion": base, "fields": fields, "clientTime": self.now()}
        d.next_mid += 1
        d.outbox.append(m)
        if op == "CREATE":
            d.created[(entity, row_id)] = m["mutationId"]
        self.log(f"{d.client_id}: m{m['mutationId']} {op} {self.label(row_id, entity)} "
                 f"base=v{base} {self.show(fields or {})}")

    # -- steps ----------------------------------------------------------------------

    async def run(self, step: Step | Scripted) -> None:
        if isinstance(step, Edit):
            await self.edit(step)
        elif isinstance(step, Create):
            self.create(step)
        elif isinstance(step, Delete):
            self.delete(step)
        elif isinstance(step, Sync):
            await self.sync(self.devices[step.dev], step)
        elif isinstance(step, ManagerEdit):
            await self.manager_edit(step)
        elif isinstance(step, ManagerDeleteContact):
            await self.manager_delete_contact(step)
        elif isinstance(step, Reassign):
            await self.reassign(step)
        elif isinstance(step, MoveContact):
            await self.move_contact(step)
        elif isinstance(step, Compact):
            await self.compact()
        elif isinstance(step, SyncAll):
            self.log(f"---- all devices sync at once (limit={step.limit}) ----")
            await asyncio.gather(*(self.sync(d, Sync(d.client_id, limit=step.limit))
                                   for d in self.devices.values()))
            self.log("---- done ----")
        else:
            await step(self)

    async def edit(self, s: Edit) -> None:
        d = self.devices[s.dev]
        rows = d.rows(s.entity)
        if not rows:
            return
        row_id, base = rows[s.pick % len(rows)]
        raw = DEVICE_FIELDS[s.entity][s.field]
        value = self.value(raw[s.value % len(raw)], s.pick + s.value,
                           [i for i, _ in d.rows("account")])
        self.enqueue(d, "UPDATE", s.entity, row_id, base, {s.field: value})

    def create(self, s: Create) -> None:
        d = self.devices[s.dev]
        accounts = [i for i, _ in d.rows("account")]
        # Ids derived from the step, so a scenario replays exactly (hypothesis shrinks by
        # replaying); every example has a database of its own.
        row_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{d.client_id}/{d.next_mid}"))
        if s.entity == "lead":
            fields: dict[str, Any] = {"company": f"New lead {s.value}", "status": "NEW"}
        elif not accounts:
            return
        else:
            account = accounts[s.pick % len(accounts)]
            fields = {
                "contact": {"accountId": account, "firstName": "New", "lastName": str(s.value)},
                "visitNote": {"accountId": account, "body": f"visit {s.value}"},
                "order": {"accountId": account, "status": ("SUBMITTED", "DRAFT")[s.value % 2],
                          "lines": [{"productId": str(self.world.products["cola"]),
                                     "quantity": 1 + s.value * 3}]},
            }[s.entity]
        self.enqueue(d, "CREATE", s.entity, row_id, None, fields)

    def delete(self, s: Delete) -> None:
        d = self.devices[s.dev]
        rows = d.rows(s.entity)
        if rows:
            row_id, base = rows[s.pick % len(rows)]
            self.enqueue(d, "DELETE", s.entity, row_id, base, None)

    async def team_rows(self, entity: str) -> list[tuple[str, int]]:
        spec = registry[entity]
        principal = Principal(self.world.users["manager1"], Role.MANAGER)
        keys = visible_keys(principal)
        assert keys is not None
        async with self.db.read() as s:
            rows = await s.execute(
                sa.select(spec.table.c.id, spec.table.c.version)
                .where(spec.table.c.deleted.is_(False), spec.table.c.scope_key.in_(keys))
                .order_by(spec.table.c.id))
            return [(str(i), v) for i, v in rows]

    async def manager_update(self, entity: str, row_id: str, fields: dict[str, Any],
                             base: int | None, what: str = "update") -> dict[str, Any]:
        out = (await self.gql("manager1", MANAGER_UPDATE[entity], {
            "id": row_id, "input": fields, "v": base,
        }))[f"update{entity[0].upper()}{entity[1:]}"]
        self.log(f"manager1 online: {what} {entity} {self.label(row_id, entity)} "
                 f"{self.show(fields)} base={'v' + str(base) if base else None} "
                 f"-> {out['status']} {[e['code'] for e in out['errors']]}")
        return out  # type: ignore[no-any-return]

    async def manager_edit(self, s: ManagerEdit) -> None:
        rows = await self.team_rows(s.entity)
        if not rows:
            return
        row_id, version = rows[s.pick % len(rows)]
        raw = MANAGER_FIELDS[s.entity][s.field]
        accounts = [i for i, _ in await self.team_rows("account")]
        value = self.value(raw[s.value % len(raw)], s.pick + s.value, accounts)
        await self.manager_update(s.entity, row_id, {s.field: value},
                                  version if s.with_base else None)

    async def move_contact(self, s: MoveContact) -> None:
        rows = await self.team_rows("contact")
        accounts = [i for i, _ in await self.team_rows("account")]
        if rows:
            row_id, version = rows[s.pick % len(rows)]
            await self.manager_update("contact", row_id,
                                      {"accountId": accounts[s.to % len(accounts)]}, version,
                                      "move")

    async def manager_delete_contact(self, s: ManagerDeleteContact) -> None:
        rows = await self.team_rows("contact")
        if not rows:
            return
        row_id, version = rows[s.pick % len(rows)]
        out = (await self.gql("manager1", MANAGER_DELETE_CONTACT,
                              {"id": row_id, "v": version}))["deleteContact"]
        self.log(f"manager1 online: delete contact {self.label(row_id, 'contact')} "
                 f"base=v{version} -> {out['status']} {[e['code'] for e in out['errors']]}")

    async def compact(self) -> None:
        async with self.db.write() as s:
            report = await compact(s, timedelta(0), datetime.now(UTC) + timedelta(seconds=1))
        for d in self.devices.values():
            self.expired |= {(d.client_id, m) for m in range(1, d.next_mid)}
        self.log(f"retention job: horizon at seq {report.horizon}, {report.changes_deleted} "
                 f"changes and {report.results_deleted} push results removed")

    async def reassign(self, s: Reassign) -> None:
        rows = await self.team_rows("account")
        row_id, _ = rows[s.pick % len(rows)]
        await self.give_account(row_id)

    async def give_account(self, row_id: str, to: str | None = None) -> None:
        t = registry["account"].table
        async with self.db.read() as sess:
            owner, version = (await sess.execute(sa.select(t.c.owner_id, t.c.version).where(
                t.c.id == uuid.UUID(row_id)))).one()
        to = to or ("rep2" if owner == self.world.users["rep1"] else "rep1")
        out = await self.manager_update("account", row_id,
                                        {"ownerId": str(self.world.users[to])}, version,
                                        "reassign")
        if out["status"] != "APPLIED":
            raise self.fail(f"reassigning an account failed: {out}")

    # -- sync -----------------------------------------------------------------------

    async def push(self, d: Device, batch: list[dict[str, Any]]) -> dict[str, Any]:
        res = (await self.gql(d.user, PUSH, {"input": {
            "clientId": d.client_id, "protocolVersion": 1, "mutations": batch}}))["syncPush"]
        mids = [m["mutationId"] for m in batch]
        if [r["mutationId"] for r in res["results"]] != mids:
            raise self.fail(f"{d.client_id}: results {res['results']} do not answer {mids}")
        if not mids[-1] <= res["lastMutationId"] < d.next_mid:
            raise self.fail(f"{d.client_id}: lastMutationId {res['lastMutationId']} after "
                            f"pushing {mids} (made {d.next_mid - 1})")
        for r in res["results"]:
            key = (d.client_id, r["mutationId"])
            if r["status"] not in OUTCOMES:
                raise self.fail(f"{d.client_id}: unknown status in {r}")
            if r["error"] and r["error"]["code"] in ("MUTATION_GAP", "INTERNAL_ERROR",
                                                      "RESULT_EXPIRED"):
                raise self.fail(f"{d.client_id}: m{r['mutationId']} got {r['error']}")
            if any(w["code"] == "RESULT_EXPIRED" for w in r["warnings"]):
                if key not in self.expired:
                    raise self.fail(f"{d.client_id}: m{r['mutationId']} result expired "
                                    "though no compaction ran since it was made")
                self.first_seen.setdefault(key, r)
            elif key not in self.first_seen:
                self.first_seen[key] = r
            elif self.first_seen[key] != r:
                raise self.fail(f"{d.client_id}: m{r['mutationId']} sent again got a different "
                                f"result:\n  first: {self.first_seen[key]}\n  again: {r}")
        return res

    async def sync(self, d: Device, s: Sync) -> None:
        faults = iter(s.push_faults)
        while d.outbox:
            batch = d.outbox[:s.batch]
            res = await self.push(d, batch)
            fault = next(faults, "ok")
            summary = ", ".join(f"m{r['mutationId']} {r['status']}"
                                + (f" {r['error']['code']}" if r["error"] else "")
                                for r in res["results"])
            self.log(f"{d.client_id}: push [{summary}]"
                     + ("" if fault == "ok" else f"  <response lost: {fault}>"))
            if fault == "offline":
                return
            if fault == "resend":
                res = await self.push(d, batch)
                self.log(f"{d.client_id}: push again -> same results")
            if fault == "twice":
                await asyncio.gather(self.push(d, batch), self.push(d, batch))
                self.log(f"{d.client_id}: pushed twice at once -> same results")
            for r in res["results"]:
                d.outcomes[r["mutationId"]] = r
                if r["status"] == "REJECTED" and r["version"] is None:
                    d.created = {k: v for k, v in d.created.items() if v != r["mutationId"]}
            del d.outbox[:len(batch)]
        await self.pull(d, s.limit, s.lose_pull, s.pages)

    async def pull(self, d: Device, limit: int, lose_first: bool, pages: int = 0) -> None:
        seen: list[str] = []
        done = False
        for n in itertools.count(1):
            if n > 500:
                raise self.fail(f"{d.client_id}: pull never finished")
            page = (await self.gql(d.user, PULL, {"c": d.client_id, "cursor": d.cursor,
                                                  "limit": limit}))["syncPull"]
            if lose_first:
                lose_first = False
                seen.append("<page lost>")
                continue
            if page["reset"]:
                d.replica.clear()
                seen.append("RESET")
            for c in page["changes"]:
                key = (c["entity"], c["id"])
                if c["op"] == "UPSERT":
                    d.replica[key] = (c["version"], c["data"])
                else:
                    d.replica.pop(key, None)
                d.created.pop(key, None)
                seen.append(f"{c['op']} {self.label(c['id'], c['entity'])} v{c['version']}")
            d.cursor = page["cursor"]
            if not page["hasMore"]:
                done = True
                break
            if pages and n >= pages:
                seen.append("<connection lost>")
                break
        if done:
            acked = set(d.outcomes)
            d.created = {k: v for k, v in d.created.items() if v not in acked}
        interesting = [x for x in seen if not x.startswith(("UPSERT product", "UPSERT priceEntry",
                                                            "UPSERT territory"))]
        self.log(f"{d.client_id}: pull(limit={limit}) [{', '.join(interesting)}]")

    # -- checks -----------------------------------------------------------------------

    async def fresh_pull(self, user: str, client_id: str) -> dict[tuple[str, str], Any]:
        out: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        cursor = None
        for _ in range(100):
            page = (await self.gql(user, PULL, {"c": client_id, "cursor": cursor,
                                                "limit": 1000}))["syncPull"]
            for c in page["changes"]:
                if c["op"] == "UPSERT":
                    out[(c["entity"], c["id"])] = (c["version"], c["data"])
                else:
                    out.pop((c["entity"], c["id"]), None)
            cursor = page["cursor"]
            if not page["hasMore"]:
                return out
        raise self.fail(f"fresh pull for {user} never finished")

    async def in_scope(self, user: str) -> dict[tuple[str, str], int]:
        """(entity, id) → version of every live row the user may read, from the tables."""
        u = self.world.users[user]
        async with self.db.read() as s:
            role = (await s.get(User, u)).role  # type: ignore[union-attr]
            keys = visible_keys(Principal(u, role))
            out: dict[tuple[str, str], int] = {}
            for spec in registry.specs:
                t = spec.table
                stmt = sa.select(t.c.id, t.c.version).where(t.c.deleted.is_(False))
                if keys is not None:
                    stmt = stmt.where(t.c.scope_key.in_(keys))
                for i, v in await s.execute(stmt):
                    out[(spec.name, str(i))] = v
        return out

    def diff(self, name: str, mine: dict[tuple[str, str], Any],
             truth: dict[tuple[str, str], Any]) -> list[str]:
        lines = []
        for key in sorted(set(mine) | set(truth)):
            a, b = mine.get(key), truth.get(key)
            if a == b:
                continue
            what = f"{key[0]} {self.label(key[1], key[0])}"
            if a is None:
                lines.append(f"{what}: missing on the device ({name} has {b})")
            elif b is None:
                lines.append(f"{what}: held by the device ({a}) but not in {name}")
            else:
                lines.append(f"{what}: device {a} vs {name} {b}")
        return lines

    async def check(self) -> None:
        async with self.db.read() as s:
            stored = {(c, m): (st_, res) for c, m, st_, res in await s.execute(sa.text(
                "SELECT client_id, mutation_id, status, result FROM sync_mutation"))}
            last = dict((await s.execute(sa.text(
                "SELECT id, last_mutation_id FROM sync_client"))).all())
            conflicts = {uuid.UUID(str(i)): (c, m) for i, c, m in await s.execute(sa.text(
                "SELECT id, client_id, mutation_id FROM sync_conflict"))}
        problems: list[str] = []
        for d in self.devices.values():
            made = set(range(1, d.next_mid))
            if d.outbox:
                problems.append(f"{d.client_id}: outbox not empty after the final syncs")
            if set(d.outcomes) != made:
                problems.append(f"{d.client_id}: outcomes for {sorted(d.outcomes)}, made "
                                f"{sorted(made)}")
            rows = {m for (c, m) in stored if c == d.client_id}
            kept = {m for m in made if (d.client_id, m) not in self.expired}
            if not kept <= rows <= made:
                problems.append(f"{d.client_id}: stored outcomes for {sorted(rows)}, made "
                                f"{sorted(made)}, of which a compaction may have removed "
                                f"{sorted(made - kept)}")
            if made and last.get(d.client_id) != max(made):
                problems.append(f"{d.client_id}: lastMutationId {last.get(d.client_id)} "
                                f"≠ {max(made)}")
            for mid in sorted(made & rows & set(d.outcomes)):
                status, res = stored[(d.client_id, mid)]
                if isinstance(res, str):
                    res = json.loads(res)
                res = {k: v for k, v in res.items() if k != "submitted"}
                if status not in OUTCOMES or status != d.outcomes[mid]["status"]:
                    problems.append(f"{d.client_id}: m{mid} stored {status}, device got "
                                    f"{d.outcomes[mid]['status']}")
                elif res != d.outcomes[mid]:
                    problems.append(f"{d.client_id}: m{mid} stored {res}, device got "
                                    f"{d.outcomes[mid]}")
            for mid in sorted(kept & set(d.outcomes)):
                if self.first_seen[(d.client_id, mid)] != d.outcomes[mid]:
                    problems.append(f"{d.client_id}: m{mid} answered differently over time")
            for mid, out in sorted(d.outcomes.items()):
                cid = out["conflictId"]
                if out["status"] == "CONFLICT" and cid is None:
                    problems.append(f"{d.client_id}: m{mid} is a CONFLICT without a record")
                if cid is not None and conflicts.get(uuid.UUID(cid)) != (d.client_id, mid):
                    problems.append(f"{d.client_id}: m{mid} names conflict {cid}, which is "
                                    f"{conflicts.get(uuid.UUID(cid), 'missing')}")
        if problems:
            raise self.fail("exactly-once outcomes broken:\n  " + "\n  ".join(problems))

        fresh_for: dict[str, dict[tuple[str, str], Any]] = {}
        for d in self.devices.values():
            if d.user not in fresh_for:  # a new device of the same user, from scratch
                fresh_for[d.user] = await self.fresh_pull(d.user, f"audit-{d.user}")
            fresh = fresh_for[d.user]
            scope = await self.in_scope(d.user)
            held = {k: v for k, (v, _) in d.replica.items()}
            outside = [f"{e} {self.label(i, e)} v{held[(e, i)]}" for (e, i) in sorted(held)
                       if (e, i) not in scope]
            if outside:
                raise self.fail(f"{d.client_id} ({d.user}) holds records outside its scope "
                                f"(deleted, or under a key it cannot read):\n  "
                                + "\n  ".join(outside))
            versions = {k: v for k, (v, _) in fresh.items()}
            if versions != scope:
                raise self.fail(f"a fresh pull for {d.user} does not match the tables:\n  "
                                + "\n  ".join(self.diff("the tables", versions, scope)))
            if d.replica != fresh:
                raise self.fail(f"{d.client_id} ({d.user}) did not converge to a fresh pull:\n  "
                                + "\n  ".join(self.diff("a fresh pull", d.replica, fresh)))


async def _tokens(db: Database, app: Any, world: World) -> dict[str, str]:
    out = {}
    async with db.write() as s:
        for name in ("rep1", "rep2", "manager1"):
            user = await s.get(User, world.users[name])
            assert user is not None
            out[name] = (await app.state.services.tokens.issue(s, user)).access_token
    return out


Scripted = Callable[["Sim"], Awaitable[None]]


async def run_scenario(settings: Settings, template: Template,
                       scenario: Sequence[Step | Scripted], first_sync: bool = False) -> Sim:
    """Run `scenario` from the template's state and check the outcome (the finished
    simulation is returned); with `first_sync`, instead give every device its first full
    sync and keep the devices in the template."""
    app = create_app(settings)
    db: Database = app.state.services.db
    try:
        tokens = await _tokens(db, app, template.world)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            sim = Sim(http, db, template, tokens)
            try:
                if first_sync:
                    for d in sim.devices.values():
                        await sim.sync(d, Sync(d.client_id))
                    template.devices, template.first_sync = sim.devices, sim.trace
                    return sim
                sim.trace = [*template.first_sync, "---- the scenario ----"]
                for step in scenario:
                    await asyncio.sleep(0.002)  # one step per millisecond: clocks never tie
                    await sim.run(step)
                sim.log("---- final syncs ----")
                for _ in range(2):
                    for d in sim.devices.values():
                        await sim.sync(d, Sync(d.client_id, batch=5, limit=50))
                await sim.check()
                return sim
            except Failure:
                raise
            except Exception as e:
                raise sim.fail(f"the scenario broke: {e!r}") from e
    finally:
        await app.state.services.close()


# -- the tests ----------------------------------------------------------------------------

class ShrinkBudget:
    """Caps the time hypothesis spends shrinking a failure (each example is a whole
    simulation, so shrinking can take minutes). Once the budget is spent, plans that
    never failed pass without running, so the shrinker stops soon with the smallest
    failing plan it has; plans that failed before still run, and fail, so the final
    replay is faithful."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: float | None = None
        self.failing: list[list[Step]] = []

    def spent(self, plan: list[Step]) -> bool:
        return (self.started is not None and time.monotonic() - self.started > self.seconds
                and plan not in self.failing)

    def failed(self, plan: list[Step]) -> None:
        self.started = self.started or time.monotonic()
        self.failing.append(plan)


def test_devices_converge_under_offline_edits_lost_responses_and_reassignment(
        tmp_path: Path) -> None:
    template = build_template(tmp_path)
    budget = ShrinkBudget(seconds=20)

    @settings(max_examples=EXAMPLES, deadline=None, print_blob=False, report_multiple_bugs=False,
              phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(steps)
    def scenario(plan: list[Step]) -> None:
        if budget.spent(plan):
            return
        try:
            with fresh_database(template) as s:
                asyncio.run(run_scenario(s, template, plan))
        except Exception:
            budget.failed(plan)
            raise

    scenario()


async def _contact_leaves_then_account_leaves(sim: Sim) -> None:
    """The manager moves rep1a's contact to rep2a, then gives rep1a to rep2."""
    await sim.manager_update("contact", str(sim.seeds["contact@rep1a"]),
                             {"accountId": str(sim.world.accounts["rep2a"])}, 1, "move")
    await sim.give_account(str(sim.world.accounts["rep1a"]), "rep2")


async def _account_leaves_then_contact_leaves(sim: Sim) -> None:
    """The manager gives rep2a to rep1, then moves its contact on to rep1b."""
    await sim.give_account(str(sim.world.accounts["rep2a"]), "rep1")
    await sim.manager_update("contact", str(sim.seeds["contact@rep2a"]),
                             {"accountId": str(sim.world.accounts["rep1b"])}, 1, "move")


@pytest.mark.parametrize(("script", "contact", "rep"), [
    (_contact_leaves_then_account_leaves, "contact@rep1a", "rep1"),
    (_account_leaves_then_contact_leaves, "contact@rep2a", "rep2"),
], ids=["contact-then-account", "account-then-contact"])
def test_a_row_that_left_a_key_is_evicted_when_the_key_leaves_the_device(
        tmp_path: Path, script: Scripted, contact: str, rep: str) -> None:
    """Regression, the smallest scenarios the generated test found: a contact leaves an
    account and the account leaves a rep (in either order) while the rep's devices are
    offline. The eviction of the account used to cover only rows still under it, and the
    contact's own move was filtered out because neither its new nor its old account was
    readable to the rep any more: the devices kept the contact forever."""
    template = build_template(tmp_path)
    with fresh_database(template) as s:
        sim = asyncio.run(run_scenario(s, template, [script]))
    gone = str(sim.seeds[contact])
    devices = [d for d in sim.devices.values() if d.user == rep]
    assert devices and all(("contact", gone) not in d.replica for d in devices)
