"""The fleet simulator (bench/fleet) as a test: a small working day against a real
uvicorn subprocess, with every kind of injected fault and one SIGKILL + restart of the
server in the middle of the sync storm, on the suite's database (SQLite, or PostgreSQL
when FIELDSYNC_TEST_DATABASE_URL is set). The verifier must pass, and it must catch
violations planted after the final sync (a verifier that cannot fail is a defect).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.fleet.dataset import Person, RepWorld, World
from bench.fleet.faults import KINDS, FaultConfig
from bench.fleet.managers import DECK, ManagerLoad
from bench.fleet.simulator import FleetConfig, TamperContext, simulate, summary
from schema.enums import Role
from schema.registry import registry
from server.db import sync_url
from sync.tables import MutationResult

pytestmark = pytest.mark.timeout(400)

FAULTS = FaultConfig(drop=0.06, timeout=0.03, duplicate=0.06, cut=0.03, gateway=0.03)


def _config(database_url: str, tmp_path: Path, **kw: object) -> FleetConfig:
    return FleetConfig(db="postgres" if database_url.startswith("postgres") else "sqlite",
                       database_url=database_url, workdir=tmp_path / "fleet",
                       log=lambda _s: None, **kw)  # type: ignore[arg-type]


async def test_twenty_reps_with_faults_and_a_server_kill_pass_the_verifier(
        database_url: str, tmp_path: Path) -> None:
    res = await simulate(_config(database_url, tmp_path, reps=20, seed=7, faults=FAULTS, kills=1,
                                 managers_querying=2, manager_think=0.2))
    text = summary(res)
    assert res.verify is not None, text
    assert res.verify.ok, text
    assert res.ok, text
    assert res.supervisor.kills == 1 and res.supervisor.starts == 2, text
    injected = res.faults.stats.injected
    assert all(injected[k] > 0 for k in KINDS), (dict(injected), text)
    made = sum(len(d.ledger) for d in res.devices)
    assert made > 300 and res.verify.checked["a: mutations"] == made, text
    statuses = {status for (_e, _o, status, _c) in res.verify.outcomes}
    assert {"APPLIED", "REJECTED", "CONFLICT"} <= statuses, text
    codes = {code for (_e, _o, _s, code) in res.verify.outcomes}
    # ORDER_LOCKED: the refusal carries the order, and its version (server bug 1 in
    # docs/fleet-simulator.md; (b) failed on exactly these records before it was fixed).
    assert {"CREDIT_LIMIT_EXCEEDED", "PRODUCT_INACTIVE", "SCOPE_MOVED", "ORDER_LOCKED"} <= codes, text
    # Protocol anomalies (server bug 2) and masked server failures (bug 3) are gone.
    assert not res.verify.anomalies, text
    assert not res.server_failures, text
    # Two managers ran every kind of explorer query during the storm, with right answers
    # (the scope probes included) and no error other than the server being down.
    ml = res.manager_load
    assert ml is not None and ml.unexpected == 0 and not ml.failures, text
    assert all(ml.stats[k].ok > 0 for k in DECK), text


def test_manager_query_checks_catch_wrong_answers() -> None:
    """The manager load's answer checks fail on a scope leak or a wrong account."""
    world = _tiny_world()
    ml = ManagerLoad("http://unused", world, 1, seed=1)
    m = ml.managers[0]
    other = ml._others[m.person.name][0]
    ml._others[m.person.name] = [other]
    m.rng.random = lambda: 0.0  # type: ignore[method-assign]  # always a scope probe
    _q, variables, check = ml._pick(m, "customer360")
    assert variables == {"account": other}
    assert check({"customer360": None}) is None
    assert "scope leak" in (check({"customer360": {"account": {"id": other}}}) or "")
    m.rng.random = lambda: 0.99  # type: ignore[method-assign]  # a team account
    _q, variables, check = ml._pick(m, "customer360")
    assert check({"customer360": {"account": {"id": variables["account"]}}}) is None
    assert "null" in (check({"customer360": None}) or "")
    _q, variables, check = ml._pick(m, "accounts")
    node = {"id": "a1", "ownerId": variables["rep"], "orders": [{"id": "o1", "accountId": "a1"}]}
    assert check({"accounts": {"edges": [{"node": node}]}}) is None
    stray = {**node, "ownerId": str(uuid.uuid4())}
    assert "answered account" in (check({"accounts": {"edges": [{"node": stray}]}}) or "")
    wrong = {**node, "orders": [{"id": "o2", "accountId": "a9"}]}
    assert "lists order" in (check({"accounts": {"edges": [{"node": wrong}]}}) or "")


def _tiny_world() -> World:
    def person(name: str, role: Role, boss: str | None = None) -> Person:
        return Person(name, f"{name}@x", uuid.uuid4(), role, boss)

    bosses = [person("manager000", Role.MANAGER), person("manager001", Role.MANAGER)]
    reps = [RepWorld(person(f"rep{i:04d}", Role.REP, bosses[i // 2].name),
                     [uuid.uuid4(), uuid.uuid4()], [], [], []) for i in range(4)]
    return World("sqlite://", person("admin", Role.ADMIN), bosses, reps, [], uuid.uuid4(),
                 uuid.uuid4(), team={"manager000": ["rep0000", "rep0001"],
                                     "manager001": ["rep0002", "rep0003"]})


async def test_the_verifier_catches_planted_violations(database_url: str, tmp_path: Path) -> None:
    planted: dict[str, str] = {}

    async def tamper(ctx: TamperContext) -> None:
        engine = sa.create_engine(sync_url(ctx.database_url))
        phones = [d for d in ctx.devices if d.kind == "phone"]
        victim, other = phones[0], phones[1]
        applied_order = next(m for d in phones for m in d.ledger
                             if m.entity == "order" and m.op == "CREATE"
                             and d.device.get("order", m.id) is not None
                             and d.device.get("order", m.id).server_data is not None)
        t = MutationResult.__table__
        first = victim.ledger[0]
        orders = registry["order"].table
        lines = registry["order"].child.table  # type: ignore[union-attr]
        with engine.begin() as conn:
            # (a) a result the server "forgot", and one no device made
            conn.execute(sa.delete(t).where(t.c.client_id == first.client_id,
                                            t.c.mutation_id == first.mutation_id))
            row = {"client_id": other.device.client_id, "mutation_id": 10_000, "entity": "order",
                   "row_id": uuid.uuid4(), "status": "APPLIED",
                   "result": {"mutationId": 10_000, "status": "APPLIED"}}
            conn.execute(sa.insert(t).values(**row))
            # (d) an accepted order vanishes
            oid = uuid.UUID(applied_order.id)
            conn.execute(sa.delete(lines).where(lines.c.order_id == oid))
            conn.execute(sa.delete(orders).where(orders.c.id == oid))
        engine.dispose()
        planted["order"] = applied_order.id
        # (b) a device's copy of a contact drifts from the server's
        db = victim.store.db
        cid = db.execute("SELECT id FROM records WHERE entity = 'contact' LIMIT 1").fetchone()[0]
        data = json.loads(db.execute("SELECT server_data FROM records WHERE entity = 'contact' "
                                     "AND id = ?", (cid,)).fetchone()[0])
        data["phone"] = "+0 tampered"
        db.execute("UPDATE records SET server_data = ?, data = ? WHERE entity = 'contact' AND id = ?",
                   (json.dumps(data), json.dumps(data), cid))
        planted["contact"] = cid
        # (c) a record of another rep's account lands on the victim's device
        acc = next(r for r in other.device.records("account") if r.server_data is not None)
        db.execute("INSERT INTO records (entity, id, version, server_data, data, pending) "
                   "VALUES ('account', ?, ?, ?, ?, 0)",
                   (acc.id, acc.version, json.dumps(acc.server_data), json.dumps(acc.server_data)))
        planted["account"] = acc.id

    res = await simulate(_config(database_url, tmp_path, reps=4, seed=3, faults=FaultConfig(),
                                 kills=0, before_verify=tamper))
    assert res.verify is not None
    kinds = {(v.check, v.kind) for v in res.verify.violations}
    text = summary(res)
    assert ("a", "no-result") in kinds, text
    assert ("a", "phantom-result") in kinds, text
    assert ("b", "differs") in kinds and planted["contact"] in text, text
    assert ("c", "out-of-scope") in kinds and planted["account"] in text, text
    assert ("d", "vanished") in kinds and planted["order"] in text, text
    assert not res.ok and "RESULT: FAIL" in text
