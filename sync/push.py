"""Push: apply a client's batch of offline mutations exactly once, in order.

Per client, mutation ids run 1, 2, 3…; the last processed id is stored with the
mutation's effects in one transaction. A re-sent id replays its stored result, a gap
applies nothing, and a mutation refused by a business rule is REJECTED but still
advances the counter, so one bad write never wedges a device's outbox.

Everything is decided in memory against rows prefetched with a few statements, then
written by one `flush()` (bulk statements) — the push path costs a handful of
statements per batch, not per mutation.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from sync import bulk
from sync.codec import CodecError, parse_datetime, parse_uuid
from sync.hlc import HybridClock
from sync.model import among, dialect_name, metadata, new_id, table_of, utcnow
from sync.policies import History, Merge
from sync.protocol import (
    PROTOCOL_VERSIONS,
    MutationIn,
    MutationOut,
    PushIn,
    PushOut,
    SyncError,
    SyncRequestError,
    SyncStatus,
)
from sync.registry import SYSTEM_COLUMNS, EntitySpec, Registry, Rejection, Viewer
from sync.tables import Change, Client, Conflict, MutationResult, ScopeKey
from sync.writer import ChangeSet, RowWrite, ScopeMove, flush

log = logging.getLogger("fieldsync.sync")


class IsolateMutations(Exception):
    """A batch failed on a database error: roll back and push again with `isolate=True`."""

    def __init__(self, cause: sa.exc.DBAPIError) -> None:
        super().__init__(f"a mutation of the batch failed in the database: {cause.orig}")
        self.cause = cause


@dataclass
class Limits:
    max_batch: int = 500
    max_clock_skew_ms: int = 300_000


@dataclass
class _Parsed:
    m: MutationIn
    spec: EntitySpec
    row_id: uuid.UUID
    values: dict[str, Any]
    children: list[dict[str, Any]] | None
    hlc: str
    warnings: list[SyncError]


@dataclass
class _State:
    """Rows as this batch sees them: prefetched, then updated by earlier mutations."""

    rows: dict[tuple[str, uuid.UUID], dict[str, Any]] = field(default_factory=dict)
    children: dict[tuple[str, uuid.UUID], list[dict[str, Any]]] = field(default_factory=dict)
    pending: dict[tuple[str, uuid.UUID], list[tuple[int, dict[str, Any], str]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    visible: set[uuid.UUID] = field(default_factory=set)
    existing_keys: set[uuid.UUID] = field(default_factory=set)
    moved_away: set[uuid.UUID] = field(default_factory=set)
    moved_rows: set[uuid.UUID] = field(default_factory=set)
    ctx: dict[str, Any] = field(default_factory=dict)
    history: dict[tuple[str, uuid.UUID], History] = field(default_factory=dict)
    #: (table, id) → the scope key that guards it (a user's own id for users).
    ref_keys: dict[tuple[str, uuid.UUID], uuid.UUID] = field(default_factory=dict)
    #: Whether APPLIED results carry the record (`PushIn.return_data`).
    return_applied: bool = True


def _reject(m: MutationIn, code: str, message: str, fld: str | None = None,
            data: dict[str, Any] | None = None) -> MutationOut:
    # When the server's record comes back, so does its version: the device stores both.
    version = data.get("version") if data else None
    return MutationOut(m.mutation_id, "REJECTED", m.id, version, data, None,
                       SyncError(code, message, fld, False))


class PushEngine:
    def __init__(self, registry: Registry, clock: HybridClock, limits: Limits | None = None,
                 on_conflict: Callable[[str], None] | None = None) -> None:
        self.registry = registry
        self.clock = clock
        self.limits = limits or Limits()
        #: Called with the rule of every conflict recorded (metrics hook; never raises).
        self.on_conflict = on_conflict

    # -- entry points ---------------------------------------------------------------

    async def push(self, session: AsyncSession, viewer: Viewer, req: PushIn,
                   isolate: bool = False) -> PushOut:
        """Apply a device's batch. The caller's unit of work commits it as a whole.

        A database error caused by one mutation (a constraint the rules missed) must
        refuse that mutation only. Without `isolate` the batch is applied as it is, and
        such an error raises `IsolateMutations`: the caller rolls its unit of work back
        and calls again with `isolate=True`, which applies the mutations one by one,
        each in a savepoint. A savepoint around every batch cost two round trips and a
        subtransaction, for an error that is a bug when it happens.
        """
        if req.protocol_version not in PROTOCOL_VERSIONS:
            raise SyncRequestError(
                "UNSUPPORTED_PROTOCOL",
                f"protocolVersion {req.protocol_version} is not supported (supported: "
                f"{sorted(PROTOCOL_VERSIONS)}); update the app",
            )
        if not req.client_id or len(req.client_id) > 128:
            raise SyncRequestError("INVALID_CLIENT_ID", "clientId must be 1 to 128 characters")
        self.check_batch(len(req.mutations))
        client = await claim_client(session, req.client_id, viewer.user_id, lock=True)
        last = client.last_mutation_id

        seen = sorted({m.mutation_id for m in req.mutations if m.mutation_id <= last})
        replay: dict[int, MutationOut] = {}
        if seen:
            rows = await session.execute(
                sa.select(col(MutationResult.mutation_id), col(MutationResult.result)).where(
                    col(MutationResult.client_id) == req.client_id,
                    col(MutationResult.mutation_id).in_(seen),
                )
            )
            replay = {mid: MutationOut.from_json(res) for mid, res in rows}

        fresh: list[MutationIn] = []
        expected = last + 1
        results: dict[int, MutationOut] = {}
        order: list[tuple[str, int]] = []
        gap = False
        for m in req.mutations:
            if m.mutation_id < 1:
                results[m.mutation_id] = _reject(m, "INVALID_MUTATION_ID",
                                                 "mutationId starts at 1 for each clientId")
                order.append(("invalid", m.mutation_id))
                continue
            # Fresh ids run last+1, last+2, … so anything below `expected` was seen: stored
            # before, or earlier in this batch (a duplicate answers with that result).
            if m.mutation_id < expected:
                order.append(("replay", m.mutation_id))
                continue
            if gap or m.mutation_id != expected:
                gap = True
                results[m.mutation_id] = _reject(
                    m, "MUTATION_GAP",
                    f"expected mutationId {expected} next; nothing after the gap was applied",
                )
                order.append(("gap", m.mutation_id))
                continue
            fresh.append(m)
            order.append(("fresh", m.mutation_id))
            expected += 1

        if isolate:
            outs = await self._apply_isolated(session, viewer, fresh, client, req.return_data)
        else:
            try:
                outs = await self.apply(session, viewer, fresh, client, req.return_data)
            except sa.exc.DBAPIError as exc:
                if _transient(exc):
                    raise
                raise IsolateMutations(exc) from exc
        for out in outs:
            results[out.mutation_id] = out

        if fresh:
            stored = []
            now = utcnow()
            for m, out in zip(fresh, outs, strict=True):
                payload = out.to_json()
                if out.status == "REJECTED":
                    payload["submitted"] = m.fields  # kept so support can see what was refused
                stored.append({
                    "client_id": req.client_id, "mutation_id": m.mutation_id,
                    "entity": m.entity[:64], "row_id": _uuid_or_nil(m.id), "status": out.status,
                    "result": payload, "at": now,
                })
            await bulk.insert(session, table_of(MutationResult), stored)
            client.last_mutation_id = fresh[-1].mutation_id
            client.pending_rejections = sum(1 for o in outs if o.status == "REJECTED")
            ahead = [w for o in outs for w in o.warnings if w.code == "CLOCK_SKEW"]
            client.clock_skew_ms = _skew_ms(fresh) if ahead else 0
        # Set last, so the device record is written once, at commit.
        client.last_push_at = utcnow()
        if req.app_version:
            client.app_version = req.app_version[:64]
        client.protocol_version = req.protocol_version

        final: list[MutationOut] = []
        for kind, mid in order:
            if kind == "replay":
                prior = replay.get(mid) or results.get(mid)
                if prior is None:  # result aged out of retention: say so, never re-apply
                    sent = next(m for m in req.mutations if m.mutation_id == mid)
                    prior = MutationOut(mid, "APPLIED", sent.id, None, None, None, None,
                                        [SyncError("RESULT_EXPIRED", "processed long ago; its "
                                                   "result is no longer stored")])
                final.append(prior)
            else:
                final.append(results[mid])
        return PushOut(client.last_mutation_id, final)

    def check_batch(self, count: int) -> None:
        """Refuse a push of more than `Limits.max_batch` mutations (any dialect's)."""
        if count > self.limits.max_batch:
            raise SyncRequestError(
                "BATCH_TOO_LARGE",
                f"{count} mutations in one push; at most {self.limits.max_batch}",
            )

    async def _apply_isolated(self, session: AsyncSession, viewer: Viewer,
                              mutations: Sequence[MutationIn], client: Client,
                              return_data: bool) -> list[MutationOut]:
        """`apply`, one mutation at a time in a savepoint each: a database error caused by
        one mutation refuses that mutation only, instead of failing every resend of the
        batch. Transient errors (connection lost, deadlock, lock timeout) still fail the
        whole request, which the client retries."""
        outs: list[MutationOut] = []
        for m in mutations:
            try:
                async with session.begin_nested():
                    outs += await self.apply(session, viewer, [m], client, return_data)
            except sa.exc.DBAPIError as exc:
                if _transient(exc):
                    raise
                ref = uuid.uuid4().hex[:12]
                log.error("mutation refused by the database (ref %s): %s", ref, exc.orig)
                outs.append(_reject(m, "INTERNAL_ERROR", f"the server could not store this "
                                    f"mutation (ref {ref}); it was not applied"))
        return outs

    async def apply(
        self, session: AsyncSession, viewer: Viewer, mutations: Sequence[MutationIn],
        client: Client | None = None, return_data: bool = True,
    ) -> list[MutationOut]:
        """Decide and write a sequence of mutations: the path GraphQL mutations take too.

        Without `return_data`, APPLIED results carry no record: building it was a tenth
        of a push's CPU, for a document the device's next pull brings anyway."""
        if not mutations:
            return []
        client_id = client.id if client else None
        changes = ChangeSet(actor_id=viewer.user_id, client_id=client_id)
        conflicts: list[dict[str, Any]] = []
        parsed: list[_Parsed | MutationOut] = [self._parse(m, client_id) for m in mutations]
        state = await self._prefetch(session, viewer, [p for p in parsed if isinstance(p, _Parsed)], client)
        state.return_applied = return_data
        outs: list[MutationOut] = []
        for p in parsed:
            if isinstance(p, MutationOut):
                outs.append(p)
                continue
            try:
                out = self._decide(viewer, p, state, changes, conflicts, client_id)
            except Rejection as r:
                out = _reject(p.m, r.code, r.message, r.field, self._data(viewer, p, state))
            except CodecError as e:
                out = _reject(p.m, "INVALID_FIELD", e.message, e.field)
            except Exception:  # a bug must not wedge the outbox: refuse this one, log it
                ref = uuid.uuid4().hex[:12]
                log.exception("mutation failed (ref %s, entity %s)", ref, p.m.entity)
                out = _reject(p.m, "INTERNAL_ERROR", f"the server could not apply this "
                              f"mutation (ref {ref}); it was not applied")
            out.warnings.extend(p.warnings)
            outs.append(out)
        if conflicts:
            await bulk.insert(session, table_of(Conflict), conflicts)
            if self.on_conflict is not None:
                for c in conflicts:
                    self.on_conflict(c["rule"])
        await flush(session, changes)
        for name, ctx in state.ctx.items():
            await self.registry[name].hooks.finish(session, ctx)
        return outs

    # -- parsing and prefetch ---------------------------------------------------------

    def _parse(self, m: MutationIn, client_id: str | None) -> _Parsed | MutationOut:
        spec = self.registry.get(m.entity)
        if spec is None:
            return _reject(m, "UNKNOWN_ENTITY", f"unknown entity '{m.entity}'", "entity")
        try:
            row_id = parse_uuid(m.id)
        except ValueError:
            return _reject(m, "INVALID_ID", "id must be a UUID (UUIDv7 recommended)", "id")
        if m.op not in ("CREATE", "UPDATE", "DELETE"):
            return _reject(m, "INVALID_OP", f"unknown op '{m.op}'", "op")
        fields = m.fields or {}
        if not isinstance(fields, dict):
            return _reject(m, "INVALID_FIELD", "fields must be a JSON object", "fields")
        children = None
        if spec.child is not None and spec.child.wire in fields:
            raw = fields[spec.child.wire]
            if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw):
                return _reject(m, "INVALID_FIELD", f"'{spec.child.wire}' must be a list of "
                               "objects", spec.child.wire)
            children = raw
        # Echoed server-computed fields are ignored (clients often send whole documents).
        server_wire = spec.server_wire
        sent = {k: v for k, v in fields.items()
                if k not in server_wire and (spec.child is None or k != spec.child.wire)}
        try:
            values = spec.codec.parse(sent, allowed=spec.client_columns)
        except CodecError as e:
            return _reject(m, "INVALID_FIELD", e.message, e.field)
        warnings: list[SyncError] = []
        when = None
        if m.client_time:
            try:
                when = parse_datetime(m.client_time)
            except ValueError:
                return _reject(m, "INVALID_FIELD", "clientTime must be ISO 8601 with a time "
                               "zone", "clientTime")
        st = self.clock.for_client(when, client_id or f"u{str(m.id)[:8]}")
        if st.clamped_ms is not None:
            warnings.append(SyncError(
                "CLOCK_SKEW", f"device clock is {st.clamped_ms // 1000}s ahead of the server; "
                "the edit was stamped with the server's time", "clientTime", False))
        return _Parsed(m, spec, row_id, values, children, st.hlc if when else self.clock.now(),
                       warnings)

    async def _prefetch(self, session: AsyncSession, viewer: Viewer, items: list[_Parsed],
                        client: Client | None) -> _State:
        state = _State()
        dialect = dialect_name(session)
        by_spec: dict[str, list[uuid.UUID]] = defaultdict(list)
        for p in items:
            by_spec[p.spec.name].append(p.row_id)
        for name, ids in by_spec.items():
            spec = self.registry[name]
            found = []
            # Unsorted: the statement locks in id order itself (sorting UUIDs is Python).
            rows = await session.execute(_rows_query(dialect, spec.table),
                                         {"ids": list(set(ids))})
            for row in rows.mappings():
                state.rows[(name, row["id"])] = dict(row)
                found.append(row["id"])
            if spec.child is not None and found:  # a row not stored yet has no children
                ch = spec.child
                rows = await session.execute(
                    _children_query(dialect, ch.table, ch.parent_column, ch.order_by),
                    {"ids": found})
                for row in rows.mappings():
                    state.children.setdefault((name, row[ch.parent_column]), []).append(dict(row))

        keys: set[uuid.UUID] = set()
        for p in items:
            cur = state.rows.get((p.spec.name, p.row_id))
            if cur is not None:
                keys.add(cur["scope_key"])
            merged = {**(cur or {}), **p.values, "id": p.row_id}
            for fn in (p.spec.scope_of, p.spec.holder_of):
                try:
                    key = fn(merged) if fn is not None else None
                except (KeyError, TypeError):
                    key = None
                if key is not None:
                    keys.add(key)
            keys.add(viewer.user_id)
        keys |= await self._reference_keys(session, items, state)
        if keys:
            # Which keys exist, and which of them the viewer sees, in one statement.
            seen = sa.true() if viewer.keys is None else col(ScopeKey.key).in_(viewer.keys)
            flags = (await session.execute(sa.select(col(ScopeKey.key), seen).where(
                among(dialect, col(ScopeKey.key), "keys")), {"keys": list(keys)})).all()
            state.existing_keys = {key for key, _ in flags}
            state.visible = {key for key, visible in flags if visible}
            hidden = state.existing_keys - state.visible
            # Grace for work a device queued before it heard of a reassignment: for what
            # left this user (a manager: their team) after the device's last pull. A
            # device that never pulled holds no more than the user's stalest device that
            # did (a store moved to a new clientId); with none, it holds nothing.
            gone = [p.row_id for p in items
                    if (cur := state.rows.get((p.spec.name, p.row_id))) is not None
                    and cur["scope_key"] in hidden]
            since = await _last_pulled(session, client) if client is not None and hidden \
                else None
            if since is not None:
                moved = await session.execute(
                    sa.select(col(Change.row_id)).where(
                        col(Change.op) == "move", col(Change.row_id).in_(hidden),
                        _held_by(col(Change.prev_scope_key), viewer),
                        col(Change.seq) > since,
                    )
                )
                state.moved_away = set(moved.scalars())
            if gone and since is not None:
                # Rows that left the viewer on their own (a lead handed to another rep)
                # after this device last pulled: its queued edits become reviewable
                # conflicts, not silent refusals.
                left = await session.execute(
                    sa.select(col(Change.row_id)).where(
                        col(Change.row_id).in_(gone), _held_by(col(Change.prev_holder_id), viewer),
                        col(Change.seq) > since))
                state.moved_rows = set(left.scalars())
        for p in items:
            cur = state.rows.get((p.spec.name, p.row_id))
            # No baseVersion means a deliberate overwrite (documented); with one, merge.
            if cur is None or p.m.op == "CREATE" or p.m.base_version is None or (
                    p.m.base_version >= cur["version"]):
                continue
            state.history[(p.spec.name, p.row_id)] = await self.history(
                session, p.spec, p.row_id, p.m.base_version, cur,
                client.id if client else None)
        for name in by_spec:
            spec = self.registry[name]
            batch = [{**state.rows.get((name, p.row_id), {}), **p.values, "id": p.row_id,
                      "_children": p.children,
                      "_current_children": state.children.get((name, p.row_id)),
                      "_stored": (name, p.row_id) in state.rows}
                     for p in items if p.spec.name == name]
            state.ctx[name] = await spec.hooks.prepare(session, viewer, batch)
        return state

    async def _reference_keys(self, session: AsyncSession, items: list[_Parsed],
                              state: _State) -> set[uuid.UUID]:
        """Load the scope key behind every reference a client sent (one query per table)."""
        wanted: dict[str, set[uuid.UUID]] = defaultdict(set)
        for p in items:
            for column, target in p.spec.refs.items():
                v = p.values.get(column)
                if isinstance(v, uuid.UUID):
                    wanted[target].add(v)
        dialect = dialect_name(session)
        for target, ids in wanted.items():
            rows = await session.execute(_keys_query(dialect, metadata.tables[target]),
                                         {"ids": list(ids)})
            for rid, key in rows:
                state.ref_keys[(target, rid)] = key
        return set(state.ref_keys.values())

    def _check_refs(self, spec: EntitySpec, values: Mapping[str, Any], state: _State) -> None:
        for column, target in spec.refs.items():
            v = values.get(column)
            if not isinstance(v, uuid.UUID):
                continue
            key = state.ref_keys.get((target, v))
            if key in state.visible or (spec.accept_after_move and key in state.moved_away):
                continue
            wire = spec.codec.by_column[column].wire if column in spec.codec.by_column else column
            raise Rejection("NOT_FOUND", f"'{wire}' points to a record that does not exist or "
                            "is not in your scope", wire)

    async def history(self, session: AsyncSession, spec: EntitySpec, row_id: uuid.UUID,
                      base_version: int | None, current: Mapping[str, Any],
                      client_id: str | None) -> History:
        """What others changed on a row after `base_version`, from the change log."""
        rows = (await session.execute(
            sa.select(col(Change.version), col(Change.prev), col(Change.hlc), col(Change.client_id))
            .where(col(Change.entity) == spec.name, col(Change.row_id) == row_id,
                   col(Change.version) > (base_version or 0))
            .order_by(col(Change.version))
        )).all()
        if base_version is None:
            return History(known=False, latest_hlc=rows[-1].hlc if rows else "")
        history = _history_from(rows, base_version, client_id)
        # The log keeps wire values; policies compare column values.
        base: dict[str, Any] = {}
        for column, value in history.base.items():
            f = spec.codec.by_column.get(column)
            if f is not None:
                try:
                    base[column] = None if value is None else f.parse(value)
                except (ValueError, TypeError):
                    continue
        return History(history.known, history.changed, base, history.latest_hlc)

    # -- deciding one mutation ------------------------------------------------------

    def _data(self, viewer: Viewer, p: _Parsed, state: _State) -> dict[str, Any] | None:
        key = (p.spec.name, p.row_id)
        row = state.rows.get(key)
        # A tombstone is no record to show: a client would bring it back to life.
        if row is None or row.get("deleted") or row["scope_key"] not in state.visible:
            return None
        return p.spec.dump(row, state.children.get(key), viewer)

    def _decide(self, viewer: Viewer, p: _Parsed, state: _State, changes: ChangeSet,
                conflicts: list[dict[str, Any]], client_id: str | None) -> MutationOut:
        m, spec = p.m, p.spec
        key = (spec.name, p.row_id)
        current = state.rows.get(key)
        ctx = state.ctx.get(spec.name)

        def may_write(scope: uuid.UUID) -> bool:
            return scope in state.visible

        if m.op == "CREATE" and current is not None and not current["deleted"] and may_write(
                current["scope_key"]):
            m = MutationIn(m.mutation_id, m.entity, "UPDATE", m.id, current["version"],
                           m.fields, m.client_time)  # create of an existing row = update
            p = _Parsed(m, spec, p.row_id, p.values, p.children, p.hlc, p.warnings)

        if m.op == "CREATE":
            if current is not None:
                raise Rejection("ID_IN_USE", "this id is already in use; mint a new one", "id")
            values = dict(p.values)
            if not viewer.privileged:
                values = {c: v for c, v in values.items() if c not in spec.restricted_columns}
            self._check_refs(spec, values, state)
            values = spec.hooks.defaults(viewer, values)
            values = spec.with_defaults(values)
            values["id"] = p.row_id
            if p.children is not None:
                values["_children"] = p.children
            try:
                scope = spec.scope_of(values)
            except (KeyError, TypeError):
                raise Rejection("MISSING_FIELD", "a required reference is missing") from None
            owner_key = spec.holder_of(values) if spec.holder_of is not None else scope
            if owner_key is None and viewer.keys is None:
                owner_key = scope
                state.visible.add(scope)
            if owner_key not in state.visible and not (
                    spec.accept_after_move and owner_key in state.moved_away):
                raise Rejection("NOT_FOUND", "the record this belongs to does not exist or "
                                "is not in your scope")
            kept: Rejection | None = None
            try:
                values = spec.hooks.on_create(viewer, values, ctx)
            except Rejection as r:
                if r.keep is None:
                    raise
                kept, values = r, r.keep
            children = values.pop("_children", None)
            values["id"] = p.row_id  # the hook may have dropped it; some scopes are the id
            scope = spec.scope_of(values)
            del values["id"]
            changes.add(RowWrite(spec, p.row_id, "insert", values, None, 1, scope, None, p.hlc,
                                 children), m.mutation_id)
            now = changes.now
            row = {**values, "id": p.row_id, "version": 1, "scope_key": scope, "deleted": False,
                   "created_at": now, "updated_at": now}
            self._remember(state, key, row, children, 1, {}, p.hlc, client_id)
            # Later mutations of this batch may point at the new row.
            state.ref_keys[(spec.table.name, p.row_id)] = scope
            for name, other_ctx in state.ctx.items():
                self.registry[name].hooks.observe(other_ctx, spec.name, row)
            if spec.holder_of is not None:
                changes.add_key(p.row_id, spec.holder_of(row), spec.root_kind)
                state.visible.add(p.row_id)
                state.existing_keys.add(p.row_id)
            lost = {c: v for c, v in p.values.items()
                    if c in spec.restricted_columns and row.get(c) != v and not viewer.privileged}
            conflict_id = self._conflict(
                conflicts, viewer, spec, p, scope, "server-owns-field", lost, {}, None, row,
                client_id) if lost else None
            if kept is not None:
                return MutationOut(m.mutation_id, "REJECTED", m.id, 1,
                                   spec.dump(row, children, viewer), None,
                                   SyncError(kept.code, kept.message, kept.field, False))
            if conflict_id is None and not state.return_applied:
                return MutationOut(m.mutation_id, "APPLIED", m.id, 1, None)
            return MutationOut(m.mutation_id, "CONFLICT" if conflict_id else "APPLIED", m.id, 1,
                               spec.dump(row, children, viewer), conflict_id)

        if current is None:
            if m.op == "DELETE":
                return MutationOut(m.mutation_id, "APPLIED", m.id, None, None)
            raise Rejection("NOT_FOUND", "no such record in your scope", "id")

        scope = current["scope_key"]
        if not may_write(scope):
            if scope in state.moved_away or p.row_id in state.moved_rows:
                # A queued delete is kept as one, for whoever may now apply it.
                queued = {"deleted": True} if m.op == "DELETE" else dict(p.values)
                cid: str | None = self._conflict(
                    conflicts, viewer, spec, p, scope, "scope-moved", queued, {},
                    current, current, client_id)
                return MutationOut(m.mutation_id, "CONFLICT", m.id, current["version"], None, cid,
                                   SyncError("SCOPE_MOVED", "this record was reassigned before "
                                             "your edit arrived; it is kept for review", None,
                                             False))
            if m.op == "DELETE":
                return MutationOut(m.mutation_id, "APPLIED", m.id, None, None)
            raise Rejection("NOT_FOUND", "no such record in your scope", "id")

        children_now = state.children.get(key)
        if current["deleted"]:
            if m.op == "DELETE":
                return MutationOut(m.mutation_id, "APPLIED", m.id, current["version"], None)
            cid = self._conflict(conflicts, viewer, spec, p, scope, "delete-wins",
                                 dict(p.values), {}, current, current, client_id)
            return MutationOut(m.mutation_id, "CONFLICT", m.id, current["version"], None, cid,
                               SyncError("RECORD_DELETED", "the record was deleted on the "
                                         "server; your edit is kept for review", None, False))

        history = state.history.get(key) or History(known=True)
        changed_by_others = m.base_version is not None and m.base_version < current["version"]
        if m.op == "DELETE":
            spec.hooks.on_delete(viewer, current, ctx)
            if changed_by_others and history.changed:
                cid = self._conflict(conflicts, viewer, spec, p, scope, "edit-beats-delete",
                                     {"deleted": True}, {}, current, current, client_id)
                return MutationOut(m.mutation_id, "CONFLICT", m.id, current["version"],
                                   spec.dump(current, children_now, viewer), cid)
            version = current["version"] + 1
            changes.add(RowWrite(spec, p.row_id, "delete", {}, {"deleted": False}, version,
                                 scope, None, p.hlc), m.mutation_id)
            self._remember(state, key, {**current, "deleted": True, "version": version},
                           children_now, version, {"deleted": False}, p.hlc, client_id)
            return MutationOut(m.mutation_id, "APPLIED", m.id, version, None)

        # UPDATE
        incoming = dict(p.values)
        lost_restricted: dict[str, Any] = {}
        if not viewer.privileged:
            for c in spec.restricted_columns & set(incoming):
                v = incoming.pop(c)
                if current.get(c) != v:
                    lost_restricted[c] = v
        self._check_refs(spec, {c: v for c, v in incoming.items() if current.get(c) != v}, state)
        pending = state.pending.get(key)
        if pending and m.base_version is not None:
            history = _merge_pending(history, pending, m.base_version, client_id)
        merge: Merge = spec.policy.merge(current, incoming, p.hlc, history)
        merged = {**current, **merge.values}
        if p.children is not None:
            merged["_children"] = p.children
        elif spec.child is not None:
            merged["_current_children"] = children_now
        kept = None
        try:
            final = spec.hooks.on_update(viewer, current, merged, ctx)
        except Rejection as r:
            if r.keep is None:
                raise
            kept, final = r, r.keep
        children = final.pop("_children", None)
        final.pop("_current_children", None)
        new_scope = spec.scope_of(final)
        if new_scope != scope and not may_write(new_scope):
            raise Rejection("NOT_FOUND", "the record you point to does not exist or is not in "
                            "your scope")
        delta = {c: v for c, v in final.items()
                 if c not in SYSTEM_COLUMNS and not c.startswith("_") and current.get(c) != v}
        child_changed = children is not None and _child_delta(children, children_now)
        lost = {**merge.client_lost, **lost_restricted}
        rule = merge.rule if merge.client_lost or merge.server_lost else "server-owns-field"
        version = current["version"]
        if delta or child_changed:
            version += 1
            changes.add(RowWrite(spec, p.row_id, "update", delta,
                                 {c: current.get(c) for c in delta}, version, new_scope,
                                 scope if new_scope != scope else None, p.hlc,
                                 children if child_changed else None), m.mutation_id)
            if spec.holder_of is not None:
                old_h, new_h = spec.holder_of(current), spec.holder_of(final)
                if old_h != new_h and new_h is not None and new_h not in state.visible:
                    raise Rejection("NOT_FOUND", "the new owner is not in your team", "ownerId")
                if old_h != new_h:
                    changes.move(ScopeMove(p.row_id, new_h, old_h, spec.root_kind, p.hlc))
        row = {**final, "version": version, "scope_key": new_scope,
               "updated_at": changes.now if version != current["version"] else current["updated_at"]}
        self._remember(state, key, row, children if child_changed else children_now, version,
                       {c: current.get(c) for c in delta}, p.hlc, client_id)
        cid = None
        if lost or merge.server_lost:
            cid = self._conflict(conflicts, viewer, spec, p, new_scope, rule, lost,
                                 dict(history.base), current, row, client_id,
                                 merge.conflicted or sorted(lost))
        if kept is not None:
            return MutationOut(m.mutation_id, "REJECTED", m.id, version,
                               spec.dump(row, state.children.get(key), viewer), cid,
                               SyncError(kept.code, kept.message, kept.field, False))
        status: SyncStatus = "CONFLICT" if cid else \
            "MERGED" if changed_by_others and merge.server_changed else "APPLIED"
        if status == "APPLIED" and not state.return_applied:
            return MutationOut(m.mutation_id, status, m.id, version, None)
        return MutationOut(m.mutation_id, status, m.id, version,
                           spec.dump(row, state.children.get(key), viewer), cid)

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _remember(state: _State, key: tuple[str, uuid.UUID], row: dict[str, Any],
                  children: list[dict[str, Any]] | None, version: int, prev: dict[str, Any],
                  hlc: str, client_id: str | None) -> None:
        state.rows[key] = row
        if children is not None:
            state.children[key] = [dict(c) for c in children]
        if prev:
            state.pending[key].append((version, {c: None for c in prev}, hlc if client_id is None
                                       else f"{hlc}|{client_id}"))

    def _conflict(self, conflicts: list[dict[str, Any]], viewer: Viewer, spec: EntitySpec,
                  p: _Parsed, scope: uuid.UUID, rule: str, client_values: Mapping[str, Any],
                  base: Mapping[str, Any], server: Mapping[str, Any] | None,
                  outcome: Mapping[str, Any] | None, client_id: str | None,
                  fields: Sequence[str] | None = None) -> str:
        cid = new_id()
        codec = spec.codec
        wire = {codec.by_column[c].wire if c in codec.by_column else c:
                (codec.dump_value(c, v) if c in codec.by_column else v)
                for c, v in client_values.items()}
        conflicts.append({
            "id": cid, "entity": spec.name, "row_id": p.row_id, "scope_key": scope,
            "user_id": viewer.user_id, "client_id": client_id, "mutation_id": p.m.mutation_id,
            "rule": rule,
            "fields": [codec.by_column[c].wire if c in codec.by_column else c
                       for c in (fields or client_values)],
            "base": {codec.by_column[c].wire: codec.dump_value(c, v) for c, v in base.items()
                     if c in codec.by_column},
            "server": codec.dump(dict(server)) if server else None,
            "client": wire,
            "outcome": codec.dump(dict(outcome)) if outcome else None,
            "resolved": False, "created_at": utcnow(),
        })
        return str(cid)


def _held_by(holder: Any, viewer: Viewer) -> Any:
    """`holder` is a user whose holdings the viewer reads (themselves, or their team)."""
    return holder == viewer.user_id if viewer.holders is None else holder.in_(viewer.holders)


async def _last_pulled(session: AsyncSession, client: Client) -> int | None:
    """The change-log position up to which this device knows its scope, or None when
    neither it nor any device of its user has pulled."""
    if client.last_pull_at is not None:
        return client.last_pull_seq
    return (await session.execute(
        sa.select(sa.func.min(col(Client.last_pull_seq))).where(
            col(Client.user_id) == client.user_id, col(Client.last_pull_at).is_not(None)))
    ).scalar_one_or_none()


def _child_delta(new: Sequence[Mapping[str, Any]], old: Sequence[Mapping[str, Any]] | None) -> bool:
    if old is None:
        return True
    strip = ("order_id",)
    a = [{k: v for k, v in c.items() if k not in strip} for c in new]
    b = [{k: v for k, v in c.items() if k not in strip} for c in old]
    return a != b


def _history_from(rows: Sequence[Any], base_version: int, client_id: str | None) -> History:
    if not rows or rows[0].version != base_version + 1:
        latest = rows[-1].hlc if rows else ""
        return History(known=False, latest_hlc=latest)
    changed: dict[str, str] = {}
    base: dict[str, Any] = {}
    for r in rows:
        for column, old in (r.prev or {}).items():
            base.setdefault(column, old)
            if client_id is None or r.client_id != client_id:
                changed[column] = r.hlc
    return History(known=True, changed=changed, base=base, latest_hlc=rows[-1].hlc)


def _merge_pending(history: History, pending: list[tuple[int, dict[str, Any], str]],
                   base_version: int, client_id: str | None) -> History:
    changed = dict(history.changed)
    for version, prev, tag in pending:
        hlc, _, who = tag.partition("|")
        if version > base_version and (client_id is None or who != client_id):
            for column in prev:
                changed[column] = hlc
    return History(known=history.known, changed=changed, base=history.base,
                   latest_hlc=history.latest_hlc)


def _transient(exc: sa.exc.DBAPIError) -> bool:
    """Errors a retry can fix: the database went away, a deadlock, a lock timeout."""
    return exc.connection_invalidated or isinstance(
        exc, (sa.exc.OperationalError, sa.exc.InterfaceError))


def _skew_ms(mutations: Sequence[MutationIn]) -> int:
    """How far ahead of the server the device's latest clientTime was, in ms."""
    now = utcnow()
    ahead = 0
    for m in mutations:
        try:
            t = parse_datetime(m.client_time) if m.client_time else None
        except ValueError:
            continue
        if t is not None:
            ahead = max(ahead, int((t - now).total_seconds() * 1000))
    return ahead


def _uuid_or_nil(value: str) -> uuid.UUID:
    try:
        return parse_uuid(value)  # read once already, by `_parse`: a cache hit
    except ValueError:
        return uuid.UUID(int=0)


async def claim_client(session: AsyncSession, client_id: str, user_id: uuid.UUID,
                       lock: bool) -> Client:
    """The device record for `client_id`, created for `user_id` on first use.

    A client id belongs to the user who first used it; anyone else is refused.
    """
    dialect = dialect_name(session)
    params = {"id": client_id, "user_id": user_id, "now": utcnow()}
    if lock and dialect == "postgresql":
        # One round trip: the no-op update locks the row, new or not, and returns it.
        client = (await session.scalars(_claim_query(dialect, True), params)).one()
    else:
        await session.execute(_claim_query(dialect, False), params)
        client = (await session.execute(
            _client_query(), {"id": client_id})).scalar_one()
    if client.user_id != user_id:
        raise SyncRequestError("CLIENT_NOT_YOURS", "this clientId belongs to another user; "
                               "mint a new clientId for this device and user")
    return client


# Statements of the push path, built once per dialect (and table): building them for
# every batch cost about a tenth of its CPU. They take their values as parameters.

@functools.cache
def _rows_query(dialect: str, table: sa.Table) -> sa.Select[Any]:
    stmt = sa.select(table).where(among(dialect, table.c.id, "ids"))
    if dialect == "postgresql":
        stmt = stmt.order_by(table.c.id).with_for_update()
    return stmt


@functools.cache
def _children_query(dialect: str, table: sa.Table, parent: str, order_by: str) -> sa.Select[Any]:
    return sa.select(table).where(among(dialect, table.c[parent], "ids")).order_by(
        table.c[order_by])


@functools.cache
def _keys_query(dialect: str, table: sa.Table) -> sa.Select[Any]:
    """(id, the scope key guarding it) of rows of `table`; a user guards itself."""
    key = table.c.scope_key if "scope_key" in table.c else table.c.id
    return sa.select(table.c.id, key).where(among(dialect, table.c.id, "ids"))


@functools.cache
def _claim_query(dialect: str, lock: bool) -> Any:
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(Client).values(
        id=sa.bindparam("id"), user_id=sa.bindparam("user_id"), last_mutation_id=0,
        protocol_version=1, created_at=sa.bindparam("now"), last_pull_seq=0,
        pending_rejections=0)
    if not lock:
        return ins.on_conflict_do_nothing(index_elements=["id"])
    upsert = ins.on_conflict_do_update(index_elements=["id"], set_={"id": ins.excluded.id})
    return sa.select(Client).from_statement(upsert.returning(Client))


@functools.cache
def _client_query() -> sa.Select[Any]:
    return sa.select(Client).where(col(Client.id) == sa.bindparam("id"))
