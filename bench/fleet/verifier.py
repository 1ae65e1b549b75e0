"""The verifier: after the final sync, check what the fleet did against the server.

(a) **Accounted exactly once.** Every mutation any device enqueued (the devices' ledgers)
    has exactly one stored result on the server (`sync_mutation`, read with SQL) for the
    same record and entity, with a valid status: APPLIED/MERGED; CONFLICT with a
    Conflict record that exists; or REJECTED with a code and a reason. No stored result
    exists that no device made; each device's `lastMutationId` equals its ledger; every
    result a device actually received (the fault layer taps them) equals the stored one,
    byte for byte, however often it was replayed; the change log shows no mutation
    applied twice to a row; every outbox is empty.
(b) **Converged.** Every device's replica equals a fresh `syncPull` from `cursor: null`
    with a new clientId for the same user (the server's view of that device's scope),
    record by record and field by field, with no pending edits and `data ==
    server_data`. The only records a device may hold that the server has not got are
    drafts of creates the server REJECTED without storing (the reference client keeps
    them on screen), and each one is checked against the stored result.
(c) **Scoped.** No device holds a record outside its user's scope, checked with SQL
    against the scope rule (`schema.scope.visible_keys`) independently of the pull
    engine, nor a deleted record, nor a private field (costs) on a rep's device.
(d) **Orders.** Every order a device created exists exactly once unless every create of
    it was REJECTED without being stored; an order is deleted only if a device's delete
    of it was applied; no order by a fleet rep appeared that no device created; and each
    order's lines are exactly the lines its author last sent in a write the server
    accepted (or kept as REJECTED).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import sqlalchemy as sa

from bench.fleet.faults import ResultTap, digest
from bench.fleet.workload import Mutation, SimDevice
from schema.orders.tables import OrderLine
from schema.registry import registry
from schema.scope import Principal, visible_keys
from server.db import sync_url
from sync.tables import Change, Client, Conflict, MutationResult

PULL = """query Pull($c: ID!, $cursor: String, $limit: Int) {
  syncPull(clientId: $c, cursor: $cursor, limit: $limit) {
    changes { entity id op version data } cursor hasMore reset lastMutationId } }"""
STATUSES = ("APPLIED", "MERGED", "CONFLICT", "REJECTED")
#: REJECTED order codes where the server still stores the order (and the sent lines).
KEPT = frozenset({"NO_LINES", "ACCOUNT_ON_HOLD", "CREDIT_LIMIT_EXCEEDED", "DISCOUNT_TOO_HIGH",
                  "PRODUCT_INACTIVE"})
PRIVATE = {"product": ("unitCostCents",), "order": ("costCents",)}
CHUNK = 400


@dataclass(frozen=True)
class Violation:
    check: str  # a, b, c, d
    kind: str
    detail: str


@dataclass
class VerifyReport:
    violations: list[Violation] = field(default_factory=list)
    checked: Counter[str] = field(default_factory=Counter)
    #: (entity, op, status, code) → count, from the stored results of ledger mutations
    outcomes: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    drafts_kept: int = 0
    seconds: float = 0.0
    #: Outcomes that break a protocol rule without breaking (a) to (d): reported, and
    #: they do not fail the run (e.g. an order refused NOT_FOUND for an account the same
    #: device created, and the server applied, earlier in the same push).
    anomalies: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def add(self, check: str, kind: str, detail: str) -> None:
        self.violations.append(Violation(check, kind, detail))

    def by_check(self) -> dict[str, list[Violation]]:
        out: dict[str, list[Violation]] = {c: [] for c in "abcd"}
        for v in self.violations:
            out[v.check].append(v)
        return out


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _wire(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "submitted"}


def _diff(a: dict[str, Any] | None, b: dict[str, Any] | None, limit: int = 4) -> str:
    if a is None or b is None:
        return f"device={a!r:.200} server={b!r:.200}"
    keys = sorted(set(a) | set(b))
    out = [f"{k}: device={a.get(k, '<absent>')!r:.120} server={b.get(k, '<absent>')!r:.120}"
           for k in keys if a.get(k, "<absent>") != b.get(k, "<absent>")]
    return "; ".join(out[:limit]) + (f" (+{len(out) - limit} more)" if len(out) > limit else "")


class Verifier:
    def __init__(self, database_url: str, server_url: str, devices: Sequence[SimDevice],
                 tap: ResultTap | None, run_started: datetime, fleet_users: Iterable[uuid.UUID],
                 parallel: int = 8) -> None:
        self.engine = sa.create_engine(sync_url(database_url))
        self.server_url = server_url
        self.devices = list(devices)
        self.tap = tap
        self.run_started = run_started
        self.fleet_users = set(fleet_users)
        self.parallel = parallel
        #: (client_id, mutation_id) → stored row
        self.stored: dict[tuple[str, int], dict[str, Any]] = {}

    async def run(self) -> VerifyReport:
        import time
        t0 = time.monotonic()
        report = VerifyReport()
        try:
            self._load_results()
            self.check_accounting(report)
            await self.check_convergence(report)
            self.check_scope(report)
            self.check_orders(report)
        finally:
            self.engine.dispose()
        report.seconds = time.monotonic() - t0
        return report

    # -- (a) -------------------------------------------------------------------------------

    def _load_results(self) -> None:
        t = MutationResult.__table__
        ids = sorted({d.device.client_id for d in self.devices})
        with self.engine.connect() as conn:
            for chunk in _chunks(ids):
                for row in conn.execute(sa.select(t).where(t.c.client_id.in_(chunk))).mappings():
                    result = row["result"]
                    if isinstance(result, str):
                        result = json.loads(result)
                    self.stored[(row["client_id"], int(row["mutation_id"]))] = {
                        "entity": row["entity"], "row_id": str(row["row_id"]),
                        "status": row["status"], "result": result}

    def check_accounting(self, report: VerifyReport) -> None:
        ledger: dict[tuple[str, int], Mutation] = {}
        for d in self.devices:
            for m in d.ledger:
                key = (m.client_id, m.mutation_id)
                if key in ledger:
                    report.add("a", "ledger-duplicate", f"{d.name} enqueued mutation {key} twice")
                ledger[key] = m
            left = d.store.outbox_size()
            if left:
                report.add("a", "outbox-not-empty", f"{d.name} still has {left} unsent mutation(s) "
                           f"after the final sync: {[e.wire() for e in d.device.outbox()[:2]]}")
        conflict_ids, conflicts_by_mut = self._conflicts()
        for key, m in sorted(ledger.items()):
            report.checked["a: mutations"] += 1
            row = self.stored.get(key)
            if row is None:
                report.add("a", "no-result", f"{m.device} mutation {m.mutation_id} ({m.op} {m.entity} "
                           f"{m.id}) has no stored result on the server (clientId {m.client_id})")
                continue
            res = row["result"]
            err = res.get("error") or {}
            code = err.get("code") or ""
            report.outcomes[(m.entity, m.op, row["status"], code)] += 1
            if row["entity"] != m.entity or row["row_id"] != m.id:
                report.add("a", "wrong-record", f"{m.device} mutation {m.mutation_id}: sent {m.entity} "
                           f"{m.id}, server stored {row['entity']} {row['row_id']}")
            if row["status"] not in STATUSES or res.get("status") != row["status"]:
                report.add("a", "bad-status", f"{m.device} mutation {m.mutation_id}: status "
                           f"{row['status']!r} / {res.get('status')!r}")
            if row["status"] == "REJECTED":
                if not code or not err.get("message") or code == "MUTATION_GAP":
                    report.add("a", "rejected-without-reason", f"{m.device} mutation "
                               f"{m.mutation_id}: {res}")
            elif row["status"] == "CONFLICT":
                cid = res.get("conflictId")
                if not cid or cid not in conflict_ids:
                    report.add("a", "conflict-not-recorded", f"{m.device} mutation "
                               f"{m.mutation_id} ({m.op} {m.entity} {m.id}) is CONFLICT with "
                               f"conflictId {cid!r}, and no such Conflict record exists")
            if row["status"] != "CONFLICT" and key in conflicts_by_mut and row["status"] != "REJECTED":
                pass  # a MERGED write may record no conflict; a stray record is not an error
            seen = self.tap.seen.get(key, set()) if self.tap else set()
            if seen and seen != {digest(_wire(res))}:
                report.add("a", "replay-differs", f"{m.device} mutation {m.mutation_id}: the device "
                           f"received {len(seen)} different result(s), not the stored one: "
                           f"stored {json.dumps(_wire(res))[:300]}")
        for key, row in self.stored.items():
            if key not in ledger:
                report.add("a", "phantom-result", f"the server stored a result for mutation {key[1]} "
                           f"of clientId {key[0]} ({row['entity']} {row['row_id']} "
                           f"{row['status']}) that no device made")
        self._check_clients(report, ledger)
        self._check_double_apply(report)
        self._check_batch_visibility(report, ledger)

    def _check_batch_visibility(self, report: VerifyReport,
                                ledger: dict[tuple[str, int], Mutation]) -> None:
        """Protocol: "Mutations in a batch apply in order, and each sees the effects of the
        earlier ones." A device's create referring to an account it created (and the server
        applied) under an earlier mutationId must not be refused as NOT_FOUND."""
        created: dict[tuple[str, str], int] = {}
        for (cid, mid), m in sorted(ledger.items()):
            row = self.stored.get((cid, mid))
            if row is None:
                continue
            res = row["result"]
            if m.entity == "account" and m.op == "CREATE" and row["status"] == "APPLIED":
                created[(cid, m.id)] = mid
                continue
            err = res.get("error") or {}
            if row["status"] == "REJECTED" and err.get("code") == "NOT_FOUND" \
                    and err.get("field") == "accountId":
                acc = (res.get("submitted") or {}).get("accountId")
                if acc and (cid, acc) in created and created[(cid, acc)] < mid:
                    report.anomalies.append(Violation(
                        "!", "batch-visibility",
                        f"{m.device} mutation {mid} ({m.op} {m.entity} {m.id}) was REJECTED "
                        f"NOT_FOUND ({err.get('message')}) for account {acc}, which the same "
                        f"device created with mutation {created[(cid, acc)]} (APPLIED)"))

    def _conflicts(self) -> tuple[set[str], set[tuple[str, int]]]:
        t = Conflict.__table__
        ids: set[str] = set()
        by_mut: set[tuple[str, int]] = set()
        cids = sorted({d.device.client_id for d in self.devices})
        with self.engine.connect() as conn:
            for chunk in _chunks(cids):
                for cid, client_id, mid in conn.execute(
                        sa.select(t.c.id, t.c.client_id, t.c.mutation_id)
                        .where(t.c.client_id.in_(chunk))):
                    ids.add(str(cid))
                    if mid is not None:
                        by_mut.add((client_id, int(mid)))
        return ids, by_mut

    def _check_clients(self, report: VerifyReport, ledger: dict[tuple[str, int], Mutation]) -> None:
        t = Client.__table__
        last: dict[str, int] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted({d.device.client_id for d in self.devices})):
                last.update({cid: int(n) for cid, n in conn.execute(
                    sa.select(t.c.id, t.c.last_mutation_id).where(t.c.id.in_(chunk)))})
        expected: dict[str, int] = defaultdict(int)
        for cid, mid in ledger:
            expected[cid] = max(expected[cid], mid)
        for d in self.devices:
            cid = d.device.client_id
            if last.get(cid, 0) != expected.get(cid, 0):
                report.add("a", "last-mutation-id", f"{d.name}: the server's lastMutationId is "
                           f"{last.get(cid, 0)}, the device made {expected.get(cid, 0)} mutations")

    def _check_double_apply(self, report: VerifyReport) -> None:
        t = Change.__table__
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted({d.device.client_id for d in self.devices})):
                rows = conn.execute(
                    sa.select(t.c.client_id, t.c.mutation_id, t.c.entity, t.c.row_id,
                              sa.func.count().label("n"))
                    .where(t.c.client_id.in_(chunk), t.c.mutation_id.is_not(None))
                    .group_by(t.c.client_id, t.c.mutation_id, t.c.entity, t.c.row_id)
                    .having(sa.func.count() > 1))
                for client_id, mid, entity, row_id, n in rows:
                    report.add("a", "applied-twice", f"mutation {mid} of clientId {client_id} wrote "
                               f"{entity} {row_id} {n} times in the change log")

    # -- (b) -------------------------------------------------------------------------------

    async def _truth(self, http: httpx.AsyncClient, d: SimDevice) -> dict[tuple[str, str], tuple[int, Any]]:
        token = await d.device.auth.token()
        cid, cursor = f"verify-{uuid.uuid4()}", None
        out: dict[tuple[str, str], tuple[int, Any]] = {}
        while True:
            for attempt in range(20):
                try:
                    r = await http.post(self.server_url + "/graphql", json={
                        "query": PULL, "variables": {"c": cid, "cursor": cursor, "limit": 1000}},
                        headers={"Authorization": f"Bearer {token}"})
                    body = r.json()
                    if body.get("errors"):
                        raise RuntimeError(f"truth pull refused: {body['errors']}")
                    break
                except (httpx.TransportError, ValueError):
                    await asyncio.sleep(min(5.0, 0.2 * 2 ** attempt))
            else:
                raise RuntimeError("truth pull: server unreachable")
            page = body["data"]["syncPull"]
            for c in page["changes"]:
                key = (c["entity"], c["id"])
                if c["op"] == "UPSERT":
                    out[key] = (c["version"], c["data"])
                else:
                    out.pop(key, None)
            cursor = page["cursor"]
            if not page["hasMore"]:
                return out

    async def check_convergence(self, report: VerifyReport) -> None:
        gate = asyncio.Semaphore(self.parallel)
        async with httpx.AsyncClient(timeout=httpx.Timeout(120.0)) as http:
            async def one(d: SimDevice) -> None:
                async with gate:
                    truth = await self._truth(http, d)
                self._compare(report, d, truth)
            await asyncio.gather(*(one(d) for d in self.devices))

    def _compare(self, report: VerifyReport, d: SimDevice,
                 truth: dict[tuple[str, str], tuple[int, Any]]) -> None:
        report.checked["b: devices"] += 1
        mine = d.store.server_replica()
        report.checked["b: records"] += len(truth)
        problems = 0
        for key in sorted(set(truth) - set(mine)):
            problems += 1
            if problems <= 3:
                report.add("b", "missing-on-device", f"{d.name} lacks {key[0]} {key[1]} (server "
                           f"version {truth[key][0]})")
        for key in sorted(set(truth) & set(mine)):
            (tv, td), (mv, md) = truth[key], mine[key]
            if tv != mv or td != md:
                problems += 1
                if problems <= 3:
                    rec = d.device.get(*key)
                    how = (f" (the device's last push for it: {rec.sync_status} {rec.error_code})"
                           if rec is not None and rec.sync_status else "")
                    report.add("b", "differs", f"{d.name} {key[0]} {key[1]}: device version {mv}, "
                               f"server {tv}{how}; {_diff(md, td) or 'same fields'}")
        for key in sorted(set(mine) - set(truth)):
            problems += 1
            if problems <= 3:
                report.add("b", "extra-on-device", f"{d.name} holds {key[0]} {key[1]} (version "
                           f"{mine[key][0]}), which the server's view of its scope does not have")
        if problems > 3:
            report.add("b", "more", f"{d.name}: {problems - 3} more difference(s)")
        drafts = {m.id: m for m in d.ledger if m.op == "CREATE"}
        for rec in d.device.records():
            if rec.pending:
                report.add("b", "pending", f"{d.name} {rec.entity} {rec.id} still has {rec.pending} "
                           "pending mutation(s)")
            if rec.server_data is not None:
                if rec.data != rec.server_data:
                    report.add("b", "shown-differs", f"{d.name} {rec.entity} {rec.id} shows data "
                               f"other than the server's copy: {_diff(rec.data, rec.server_data)}")
                continue
            # Local only: must be the draft of a create the server refused without storing.
            m = drafts.get(rec.id)
            row = self.stored.get((m.client_id, m.mutation_id)) if m else None
            creates = [self.stored.get((x.client_id, x.mutation_id)) for x in d.ledger
                       if x.id == rec.id and x.op == "CREATE"]
            if m is None or row is None or any(c is None or c["status"] != "REJECTED"
                                               or c["result"].get("data") is not None
                                               for c in creates):
                report.add("b", "local-only", f"{d.name} shows {rec.entity} {rec.id}, which the "
                           f"server does not have, and not as the draft of a refused create")
            else:
                report.drafts_kept += 1

    # -- (c) -------------------------------------------------------------------------------

    def check_scope(self, report: VerifyReport) -> None:
        keys_of: dict[uuid.UUID, set[uuid.UUID] | None] = {}
        with self.engine.connect() as conn:
            for d in self.devices:
                uid = d.person.user_id
                if uid not in keys_of:
                    sel = visible_keys(Principal(uid, d.person.role))
                    keys_of[uid] = None if sel is None else {k for (k,) in conn.execute(sel)}
                keys = keys_of[uid]
                held: dict[str, list[str]] = defaultdict(list)
                for (entity, rid), (_v, data) in d.store.server_replica().items():
                    held[entity].append(rid)
                    if d.person.role.value == "rep":
                        for f in PRIVATE.get(entity, ()):
                            if f in (data or {}):
                                report.add("c", "private-field", f"{d.name} (a rep) holds {entity} "
                                           f"{rid} with private field {f}")
                for entity, ids in held.items():
                    spec = registry.get(entity)
                    if spec is None:
                        report.add("c", "unknown-entity", f"{d.name} holds entity {entity!r}")
                        continue
                    t = spec.table
                    found: dict[str, tuple[Any, bool]] = {}
                    for chunk in _chunks(ids):
                        for rid, key, deleted in conn.execute(
                                sa.select(t.c.id, t.c.scope_key, t.c.deleted)
                                .where(t.c.id.in_([uuid.UUID(x) for x in chunk]))):
                            found[str(rid)] = (key, bool(deleted))
                    for rid in ids:
                        report.checked["c: records"] += 1
                        if rid not in found:
                            report.add("c", "not-on-server", f"{d.name} holds {entity} {rid}, "
                                       "which does not exist on the server")
                        elif found[rid][1]:
                            report.add("c", "deleted", f"{d.name} holds {entity} {rid}, which "
                                       "is deleted on the server")
                        elif keys is not None and found[rid][0] not in keys:
                            report.add("c", "out-of-scope", f"{d.name} ({d.person.role.value} "
                                       f"{d.person.email}) holds {entity} {rid} under scope key "
                                       f"{found[rid][0]}, which this user may not read")

    # -- (d) -------------------------------------------------------------------------------

    def check_orders(self, report: VerifyReport) -> None:
        by_order: dict[str, list[Mutation]] = defaultdict(list)
        for d in self.devices:
            for m in d.ledger:
                if m.entity == "order":
                    by_order[m.id].append(m)
        created = {oid for oid, ms in by_order.items() if any(m.op == "CREATE" for m in ms)}
        t = registry["order"].table
        lt = OrderLine.__table__
        rows: dict[str, dict[str, Any]] = {}
        lines: dict[str, list[tuple[str, int]]] = defaultdict(list)
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(created)):
                uids = [uuid.UUID(x) for x in chunk]
                for found in conn.execute(sa.select(t.c.id, t.c.deleted, t.c.rep_id)
                                      .where(t.c.id.in_(uids))).mappings():
                    rows[str(found["id"])] = dict(found)
                for oid, pid, qty in conn.execute(sa.select(lt.c.order_id, lt.c.product_id, lt.c.quantity)
                                                  .where(lt.c.order_id.in_(uids))):
                    lines[str(oid)].append((str(pid), int(qty)))
            fleet = [u for u in self.fleet_users]
            strays: list[str] = []
            for chunk in _chunks(fleet):
                strays += [str(i) for (i,) in conn.execute(
                    sa.select(t.c.id).where(t.c.rep_id.in_(chunk),
                                            t.c.created_at >= self.run_started))]
        for oid in sorted(created):
            report.checked["d: orders"] += 1
            ms = sorted(by_order[oid], key=lambda m: m.mutation_id)
            res = [(m, self.stored.get((m.client_id, m.mutation_id))) for m in ms]
            creates = [r for m, r in res if m.op == "CREATE"]
            never_stored = all(r is not None and r["status"] == "REJECTED"
                               and r["result"].get("data") is None for r in creates)
            deleted_by_device = any(m.op == "DELETE" and r is not None and r["status"] == "APPLIED"
                                    for m, r in res)
            row = rows.get(oid)
            if row is None:
                if not never_stored:
                    report.add("d", "vanished", f"order {oid} (created by {ms[0].device}) was "
                               f"accepted ({[r['status'] if r else None for r in creates]}) but "
                               "does not exist on the server")
                continue
            if never_stored and not any(m.op == "UPDATE" for m in ms):
                report.add("d", "stored-after-refusal", f"order {oid}: every create was REJECTED "
                           "without being stored, yet the order exists")
            if row["deleted"] and not deleted_by_device:
                report.add("d", "vanished", f"order {oid} (created by {ms[0].device}) is deleted on "
                           "the server, and no device's delete of it was applied")
            if not row["deleted"] and deleted_by_device:
                report.add("d", "delete-lost", f"order {oid}: a delete was APPLIED, the order still "
                           "exists")
            want = None
            for m, r in res:
                if not m.sends_lines or r is None:
                    continue
                err = (r["result"].get("error") or {}).get("code")
                if r["status"] in ("APPLIED", "MERGED") or (r["status"] == "REJECTED" and err in KEPT) \
                        or (r["status"] == "CONFLICT" and r["result"].get("data") is not None):
                    want = m.lines
            if want is not None and not row["deleted"]:
                have = tuple(sorted(lines.get(oid, [])))
                if have != want:
                    report.add("d", "lines-differ", f"order {oid} by {ms[0].device}: the server has "
                               f"{len(have)} line(s) {have[:3]}…, the rep last sent {len(want)}: "
                               f"{want[:3]}…")
        for oid in sorted(set(strays) - created):
            report.add("d", "duplicated", f"order {oid} of a fleet rep appeared during the run, "
                       "and no device created it")
