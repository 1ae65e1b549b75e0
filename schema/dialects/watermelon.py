"""WatermelonDB's `synchronize()` contract on the fieldsync engine.

  query    watermelonPull(lastPulledAt: Float, schemaVersion: Int, migration: JSON,
                          clientId: ID): JSON!    # {changes, timestamp}
  mutation watermelonPush(changes: JSON!, lastPulledAt: Float, clientId: ID): JSON!

Tables are the plural snake_case entity names (`contacts`, `visit_notes`, …); columns
are the database column names (snake_case); an order's lines travel as the JSON string
column `lines`. `timestamp` is the engine's change sequence number, gap-free in commit
order, so it is safe to hand back as `lastPulledAt`. After the first sync records come
as `updated`, never `created`, so a device's own pushes cannot resurrect records it
deleted meanwhile. Pushes are never refused for concurrent server changes: every entity's
policy resolves them on the server (field merge, ranks, order rules), and the outcome
arrives on the next pull; per-record refusals are listed in the push's answer.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import defaultdict
from typing import Any, cast

import sqlalchemy as sa
import strawberry
from graphql import GraphQLError
from sqlmodel import col
from strawberry.scalars import JSON
from strawberry.types import Info

from schema.context import request_error
from schema.dialects.documents import client_fields, spec_of
from sync.codec import camel
from sync.cursor import Position
from sync.protocol import MutationIn, SyncRequestError
from sync.push import claim_client
from sync.tables import Change
from sync.writer import ChangeSet, flush

TABLES: dict[str, str] = {
    "territory": "territories", "product": "products", "priceEntry": "price_entries",
    "account": "accounts", "contact": "contacts", "lead": "leads", "order": "orders",
    "invoice": "invoices", "visitNote": "visit_notes", "task": "tasks", "case": "cases",
}
ENTITIES = {table: entity for entity, table in TABLES.items()}
#: Columns Watermelon keeps for itself.
LOCAL = frozenset({"_status", "_changed"})
MAX_RECORDS = 100_000


def to_record(entity: str, data: dict[str, Any]) -> dict[str, Any]:
    spec = spec_of(entity)
    out: dict[str, Any] = {}
    for wire, value in data.items():
        f = spec.codec.by_wire.get(wire)
        if f is not None:
            out[f.column] = value
        elif spec.child is not None and wire == spec.child.wire:
            out[spec.child.wire] = json.dumps(value, separators=(",", ":"))
    return out


def _invalid(message: str) -> GraphQLError:
    """A request a client must fix (not retry): WatermelonDB shows it as a failed sync."""
    return GraphQLError(message, extensions={"code": "INVALID_FIELD", "retryable": False})


def _position(last_pulled_at: float | None) -> int:
    """`lastPulledAt` is the server's change-log position it last sent: a whole number."""
    if last_pulled_at is None:
        return 0
    if not (math.isfinite(last_pulled_at) and 0 <= last_pulled_at < 2 ** 63
            and last_pulled_at == int(last_pulled_at)):
        raise _invalid("lastPulledAt must be the timestamp a pull returned, or null")
    return int(last_pulled_at)


def from_record(entity: str, record: dict[str, Any]) -> tuple[dict[str, Any], list[str] | None]:
    """A Watermelon raw record → (wire fields a client may write, its `_changed` list)."""
    spec = spec_of(entity)
    allowed = client_fields(spec)
    fields: dict[str, Any] = {}
    for column, value in record.items():
        if column in LOCAL or column == "id":
            continue
        if spec.child is not None and column == spec.child.wire:
            fields[column] = json.loads(value) if isinstance(value, str) and value else value
            continue
        wire = camel(column)
        if wire in allowed:
            fields[wire] = None if value == "" and spec.codec.by_wire[wire].nullable else value
    changed = record.get("_changed")
    names = [camel(c) for c in str(changed).split(",") if c] if changed else None
    return fields, names


def _fields(table: str, entity: str, record: Any) -> tuple[dict[str, Any], list[str] | None]:
    if not isinstance(record, dict):
        raise _invalid(f"{table}: every record must be an object")
    try:
        return from_record(entity, record)
    except ValueError as e:  # an order's `lines` that is not JSON
        raise _invalid(f"{table} {record.get('id')}: {e}") from None


def _version(table: str, record: dict[str, Any]) -> int | None:
    """The server version a pushed record was edited from (`baseVersion`), if it says."""
    base = record.get("version")
    if base is None:
        return None
    if isinstance(base, bool) or not isinstance(base, (int, float)) \
            or not (math.isfinite(base) and 0 <= base < 2 ** 31):
        raise _invalid(f"{table} {record.get('id')}: version must be a whole number")
    return int(base)


async def _collect(info: Info, client_id: str, position: Position | None,
                   entities: frozenset[str] | None) -> tuple[list[Any], int, bool]:
    ctx = info.context
    changes: list[Any] = []
    cursor = None if position is None else ctx.pull.cursors.encode(position, client_id)
    reset = False
    async with ctx.db.write() as session:
        while True:
            out = await ctx.pull.pull(session, ctx.viewer, client_id, cursor, 1000,
                                      entities=entities)
            changes += out.changes
            reset = reset or out.reset
            cursor = out.cursor
            if not out.has_more:
                break
            if len(changes) > MAX_RECORDS:
                raise GraphQLError("too many changes for one WatermelonDB pull; sync more often",
                                   extensions={"code": "PULL_TOO_LARGE"})
    seq = ctx.pull.cursors.decode(cursor, client_id).seq if cursor else 0
    return changes, seq, reset


async def _created_since(info: Info, changes: list[Any], since: int,
                         device: str) -> set[tuple[str, str]]:
    """Records first written after `since` by anyone but this device: the device cannot
    have them, so they go as `created` (Watermelon warns about `updated` for a record it
    lacks). Everything else, the device's own creations included, goes as `updated`."""
    ids: dict[str, list[uuid.UUID]] = defaultdict(list)
    for c in changes:
        if c.op == "UPSERT":
            ids[c.entity].append(uuid.UUID(c.id))
    if not ids:
        return set()
    found: set[tuple[str, str]] = set()
    async with info.context.db.read() as session:
        for entity, keys in ids.items():
            inserted_elsewhere = sa.and_(
                col(Change.version) == 1, col(Change.prev).is_(None),  # an insert
                sa.or_(col(Change.client_id).is_(None), col(Change.client_id) != device))
            restored_here = sa.and_(  # this device deleted it, the server kept it
                col(Change.client_id) == device,
                col(Change.prev)["echo"].as_string() == "restore")
            rows = await session.execute(
                sa.select(col(Change.row_id)).where(
                    col(Change.entity) == entity, col(Change.row_id).in_(keys),
                    col(Change.op) == "upsert", col(Change.seq) > since,
                    sa.or_(inserted_elsewhere, restored_here)))
            found |= {(entity, str(r)) for r in rows.scalars()}
    return found


@strawberry.type
class WatermelonQuery:
    @strawberry.field(description="WatermelonDB pullChanges: {changes, timestamp}. "
                      "schemaVersion is accepted for the contract; tables and columns are "
                      "additive, so every version gets the same records.")
    async def watermelon_pull(self, info: Info, last_pulled_at: float | None = None,
                              schema_version: int | None = None, migration: JSON | None = None,
                              client_id: strawberry.ID | None = None) -> JSON:
        cid = f"{client_id or 'watermelon'}:wm"[:128]
        since = _position(last_pulled_at)
        first = not since
        position = None if first else Position(seq=since)
        try:
            changes, timestamp, reset = await _collect(info, cid, position, None)
        except SyncRequestError as e:
            raise request_error(e) from None
        fresh = first or reset
        new_here = set() if fresh else await _created_since(info, changes, since, cid)
        tables: dict[str, dict[str, list[Any]]] = defaultdict(
            lambda: {"created": [], "updated": [], "deleted": []})
        for c in changes:
            table = TABLES[c.entity]
            if c.op == "UPSERT":
                kind = "created" if fresh or (c.entity, c.id) in new_here else "updated"
                tables[table][kind].append(to_record(c.entity, c.data))
            else:
                tables[table]["deleted"].append(c.id)
        plan = cast(dict[str, Any], migration) if isinstance(migration, dict) else None
        if plan and not first:
            # Migration sync: back-fill the tables and columns the upgraded app added.
            wanted = set(plan.get("tables") or [])
            wanted |= {col.get("table") for col in plan.get("columns") or []}
            entities = frozenset(ENTITIES[t] for t in wanted if t in ENTITIES)
            if entities:
                full, _, _ = await _collect(info, f"{cid}:migration", None, entities)
                for c in full:
                    table = TABLES[c.entity]
                    kind = "created" if table in (plan.get("tables") or []) else "updated"
                    tables[table][kind].append(to_record(c.entity, c.data))
        answer: dict[str, Any] = {"changes": dict(tables), "timestamp": timestamp}
        if reset and not first:
            answer["experimentalStrategy"] = "replacement"
        return cast(JSON, answer)


@strawberry.type
class WatermelonMutation:
    @strawberry.mutation(description="WatermelonDB pushChanges. Concurrent server changes "
                         "are merged by each entity's policy; refusals are listed per record.")
    async def watermelon_push(self, info: Info, changes: JSON, last_pulled_at: float | None = None,
                              client_id: strawberry.ID | None = None) -> JSON:
        ctx = info.context
        mutations: list[MutationIn] = []
        where: list[tuple[str, str]] = []
        if not isinstance(changes, dict):
            raise GraphQLError("changes must be an object of tables",
                               extensions={"code": "INVALID_FIELD"})
        _position(last_pulled_at)  # refused as the pull refuses it; the push needs no value
        for table, kinds in changes.items():
            entity = ENTITIES.get(table)
            if entity is None or not isinstance(kinds, dict):
                raise GraphQLError(f"unknown table '{table}'", extensions={"code": "UNKNOWN_ENTITY"})
            for kind in ("created", "updated", "deleted"):
                if not isinstance(kinds.get(kind) or [], list):
                    raise _invalid(f"{table}.{kind} must be a list")
            for record in kinds.get("created") or []:
                fields, _ = _fields(table, entity, record)
                mutations.append(MutationIn(0, entity, "CREATE", str(record.get("id")), None, fields))
                where.append((table, str(record.get("id"))))
            for record in kinds.get("updated") or []:
                fields, changed = _fields(table, entity, record)
                if changed is not None:
                    fields = {k: v for k, v in fields.items() if k in changed}
                mutations.append(MutationIn(0, entity, "UPDATE", str(record.get("id")),
                                            _version(table, record), fields))
                where.append((table, str(record.get("id"))))
            for rid in kinds.get("deleted") or []:
                mutations.append(MutationIn(0, entity, "DELETE", str(rid)))
                where.append((table, str(rid)))
        cid = f"{client_id or 'watermelon'}:wm"[:128]
        try:
            ctx.push.check_batch(len(mutations))
            async with ctx.db.write() as session:
                device = await claim_client(session, cid, ctx.viewer.user_id, lock=True)
                outs = await ctx.push.apply(session, ctx.viewer, mutations, client=device)
                # Watermelon marks every pushed record synced whatever the answer, so what the
                # server refused or merged is sent back on the next pull as its current state.
                echo = ChangeSet(actor_id=ctx.viewer.user_id, client_id=cid)
                # A refused CREATE of a deleted id carries no data but must be echoed too: the
                # echo of the tombstone is what deletes the device's copy.
                for m, out in zip(mutations, outs, strict=True):
                    reused = out.error is not None and out.error.code == "ID_IN_USE"
                    if out.status in ("CONFLICT", "REJECTED", "MERGED") and (
                            out.data is not None or reused):
                        echo.echo(spec_of(m.entity), uuid.UUID(m.id), restore=m.op == "DELETE")
                await flush(session, echo)
        except SyncRequestError as e:
            raise request_error(e) from None
        if mutations and ctx.notify is not None:
            ctx.notify()
        rejected = [{"table": t, "id": i, "code": o.error.code, "message": o.error.message}
                    for (t, i), o in zip(where, outs, strict=True)
                    if o.status == "REJECTED" and o.error is not None]
        conflicts = [{"table": t, "id": i, "conflictId": o.conflict_id}
                     for (t, i), o in zip(where, outs, strict=True) if o.status == "CONFLICT"]
        return cast(JSON, {"ok": True, "rejected": rejected, "conflicts": conflicts,
                           "applied": sum(o.status in ("APPLIED", "MERGED") for o in outs)})
