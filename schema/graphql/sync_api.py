"""The sync protocol over GraphQL: thin adapters over `sync.push` and `sync.pull`.

See docs/sync-protocol.md. Whole-request refusals (unsupported protocol version, a
foreign clientId, an oversized batch, a forged cursor) are GraphQL errors with
`extensions.code`; everything about a single mutation is in its result.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncGenerator, Mapping
from datetime import datetime
from enum import Enum
from typing import Any, cast, overload

import sqlalchemy as sa
import strawberry
from graphql import GraphQLError
from sqlmodel import col
from strawberry.scalars import JSON
from strawberry.types import Info
from strawberry.types.arguments import InputContext

from schema import audit, metrics
from schema import conflicts as conflict_service
from schema import devices as device_service
from schema.context import Context, request_error
from sync import protocol
from sync.model import utcnow
from sync.protocol import MutationIn, PushIn, SyncRequestError
from sync.pull import scope_changed
from sync.push import IsolateMutations
from sync.tables import Conflict as ConflictRow

log = logging.getLogger("fieldsync.sync")


@strawberry.enum
class SyncOp(Enum):
    UPSERT = "UPSERT"
    DELETE = "DELETE"
    EVICT = "EVICT"


@strawberry.enum
class MutationOp(Enum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


@strawberry.enum
class SyncStatus(Enum):
    APPLIED = "APPLIED"
    MERGED = "MERGED"
    CONFLICT = "CONFLICT"
    REJECTED = "REJECTED"


@strawberry.type
class SyncChange:
    entity: str
    id: strawberry.ID
    op: SyncOp
    version: int
    data: JSON | None


@strawberry.type
class SyncPullResult:
    changes: list[SyncChange]
    cursor: str
    has_more: bool
    reset: bool
    last_mutation_id: int


@strawberry.input
class SyncMutationInput:
    mutation_id: int
    entity: str
    op: MutationOp
    id: strawberry.ID
    base_version: int | None = None
    fields: JSON | None = None
    client_time: str | None = None


def _mutation_from_input(cls: type[SyncMutationInput], value: Mapping[str, Any],
                         _: InputContext) -> SyncMutationInput:
    """A pushed mutation, straight from its input value (graphql-core has coerced and
    checked every field, enums included). Strawberry's generic conversion re-derives each
    field's name and type for every mutation: a tenth of a push's CPU."""
    return cls(mutation_id=value["mutationId"], entity=value["entity"], op=value["op"],
               id=value["id"], base_version=value.get("baseVersion"),
               fields=value.get("fields"), client_time=value.get("clientTime"))


# The documented hook for types that build their own value from their input.
SyncMutationInput.__strawberry_definition__.from_input = _mutation_from_input  # type: ignore[attr-defined]


@strawberry.input
class SyncPushInput:
    client_id: strawberry.ID
    protocol_version: int
    mutations: list[SyncMutationInput]
    app_version: str | None = None
    return_data: bool = strawberry.field(
        default=True,
        description="false: APPLIED results come without `data`; take the record from the "
                    "next pull, which brings your own writes back (a smaller answer, less "
                    "server work). MERGED, CONFLICT and REJECTED results always carry it.")


@strawberry.type
class SyncError:
    code: str
    message: str
    field: str | None
    retryable: bool


@strawberry.type
class SyncMutationResult:
    mutation_id: int
    status: SyncStatus
    id: strawberry.ID
    version: int | None
    data: JSON | None
    conflict_id: strawberry.ID | None
    error: SyncError | None
    warnings: list[SyncError]


@strawberry.type
class SyncPushResult:
    last_mutation_id: int
    results: list[SyncMutationResult]


@overload
def _err(e: protocol.SyncError) -> SyncError: ...
@overload
def _err(e: protocol.SyncError | None) -> SyncError | None: ...
def _err(e: protocol.SyncError | None) -> SyncError | None:
    if e is None:
        return None
    return SyncError(code=e.code, message=e.message, field=e.field, retryable=e.retryable)


@strawberry.type
class Conflict:
    id: strawberry.ID
    entity: str
    record_id: strawberry.ID
    rule: str
    fields: list[str]
    base: JSON | None
    server: JSON | None
    client: JSON | None
    outcome: JSON | None
    user_id: strawberry.ID
    client_id: str | None
    resolved: bool
    resolution: str | None
    created_at: datetime


def conflict_type(ctx: Context, r: ConflictRow, record_readable: bool) -> Conflict:
    spec = ctx.push.registry.get(r.entity)
    private = frozenset() if spec is None or ctx.me.privileged else frozenset(
        spec.codec.by_column[c].wire for c in spec.private_columns if c in spec.codec.by_column)
    v = conflict_service.shown(r, record_readable, private)
    return Conflict(id=strawberry.ID(str(r.id)), entity=r.entity,
                    record_id=strawberry.ID(str(r.row_id)), rule=r.rule, fields=r.fields,
                    base=JSON(v.base), server=JSON(v.server), client=JSON(v.client),
                    outcome=JSON(v.outcome), user_id=strawberry.ID(str(r.user_id)),
                    client_id=r.client_id,
                    resolved=r.resolved, resolution=r.resolution, created_at=r.created_at)


@strawberry.enum
class ConflictChoice(Enum):
    SERVER = "SERVER"
    CLIENT = "CLIENT"


@strawberry.type
class ResolveConflictPayload:
    conflict: Conflict | None
    errors: list[SyncError]


@strawberry.type(description="A device (one clientId) and how far behind it is.")
class Device:
    client_id: str
    user_email: str
    app_version: str | None
    protocol_version: int
    last_mutation_id: int
    last_push_at: datetime | None
    last_pull_at: datetime | None
    changes_behind: int = strawberry.field(description="Changes committed since its last pull.")
    clock_ahead_seconds: float | None = strawberry.field(
        description="How far the device clock ran ahead of the server at its last push.")
    rejections_in_last_push: int


@strawberry.type(description="One person's sync health, for their manager.")
class SyncHealth:
    user_id: strawberry.ID
    email: str
    full_name: str
    devices: int
    last_sync_at: datetime | None
    synced_today: bool
    rejected_orders: int = strawberry.field(description="Orders kept as REJECTED, to fix.")
    open_conflicts: int


@strawberry.type(description="A security-relevant event.")
class AuditEventType:
    id: strawberry.ID
    at: datetime
    kind: str
    user_id: strawberry.ID | None
    email: str | None
    client_address: str | None
    detail: JSON | None


@strawberry.type
class SyncQuery:
    @strawberry.field(description="The audit log, newest first (admins only).")
    async def audit_events(self, info: Info, kind: str | None = None,
                           first: int = 50) -> list[AuditEventType]:
        if not info.context.me.is_admin:
            raise GraphQLError("only admins read the audit log", extensions={"code": "FORBIDDEN"})
        stmt = sa.select(audit.AuditEvent).order_by(col(audit.AuditEvent.at).desc()).limit(
            max(0, min(first, info.context.max_page)))
        if kind:
            stmt = stmt.where(col(audit.AuditEvent.kind) == kind)
        rows = (await info.context.session.execute(stmt)).scalars()
        return [AuditEventType(id=strawberry.ID(str(r.id)), at=r.at, kind=r.kind,
                               user_id=strawberry.ID(str(r.user_id)) if r.user_id else None,
                               email=r.email, client_address=r.client_address,
                               detail=JSON(r.detail) if r.detail else None) for r in rows]

    @strawberry.field(description="Devices of you (rep), your team (manager) or everyone (admin).")
    async def sync_devices(self, info: Info) -> list[Device]:
        rows = await device_service.devices(info.context.session, info.context.me)
        return [Device(client_id=r.client.id, user_email=r.email, app_version=r.client.app_version,
                       protocol_version=r.client.protocol_version,
                       last_mutation_id=r.client.last_mutation_id,
                       last_push_at=r.client.last_push_at, last_pull_at=r.client.last_pull_at,
                       changes_behind=r.lag,
                       clock_ahead_seconds=None if r.client.clock_skew_ms is None
                       else r.client.clock_skew_ms / 1000,
                       rejections_in_last_push=r.client.pending_rejections) for r in rows]

    @strawberry.field(description="Who has not synced today, who has rejections to fix.")
    async def sync_health(self, info: Info) -> list[SyncHealth]:
        rows = await device_service.team_health(info.context.session, info.context.me)
        return [SyncHealth(user_id=strawberry.ID(str(r.user_id)), email=r.email,
                           full_name=r.full_name,
                           devices=r.devices, last_sync_at=r.last_sync_at,
                           synced_today=r.synced_today, rejected_orders=r.rejected_orders,
                           open_conflicts=r.open_conflicts) for r in rows]

    @strawberry.field(description="Changes in your scope since `cursor` (null: from scratch).")
    async def sync_pull(self, info: Info, client_id: strawberry.ID, cursor: str | None = None,
                        limit: int | None = None) -> SyncPullResult:
        ctx = info.context
        try:
            # Read-only unless the device record must change: a quiet device's poll never
            # queues behind writers.
            async with ctx.db.read() as session:
                out = await ctx.pull.pull(session, ctx.viewer, str(client_id), cursor, limit,
                                          record=False)
            if out.needs_record:
                async with ctx.db.write() as session:
                    await ctx.pull.record(session, ctx.viewer, str(client_id), out.seq)
        except SyncRequestError as e:
            raise request_error(e) from None
        metrics.count_pull(c.op for c in out.changes)
        return SyncPullResult(
            changes=[SyncChange(entity=c.entity, id=c.id, op=SyncOp(c.op), version=c.version,
                                data=c.data) for c in out.changes],
            cursor=out.cursor, has_more=out.has_more, reset=out.reset,
            last_mutation_id=out.last_mutation_id)

    @strawberry.field(description="Conflicts you caused, or your team's, newest first.")
    async def conflicts(self, info: Info, resolved: bool | None = False,
                        first: int = 50) -> list[Conflict]:
        ctx = info.context
        stmt = conflict_service.visible_conflicts(ctx.me).order_by(
            col(ConflictRow.created_at).desc()).limit(max(0, min(first, ctx.max_page)))
        if resolved is not None:
            stmt = stmt.where(col(ConflictRow.resolved).is_(resolved))
        rows = list((await ctx.session.execute(stmt)).scalars())
        readable = await conflict_service.readable_records(ctx.session, ctx.push.registry,
                                                           ctx.me, rows)
        return [conflict_type(ctx, r, (r.entity, r.row_id) in readable) for r in rows]


@strawberry.type
class SyncMutation:
    @strawberry.mutation(description="Settle a conflict: keep the SERVER's value or apply "
                         "the CLIENT's losing value through the normal write path.")
    async def resolve_conflict(self, info: Info, id: strawberry.ID,
                               choice: ConflictChoice) -> ResolveConflictPayload:
        ctx = info.context
        try:
            cid = uuid.UUID(str(id))
        except ValueError:
            cid = uuid.UUID(int=0)
        try:
            async with ctx.db.write() as session:
                row = await conflict_service.resolve(session, ctx.push, ctx.me, cid,
                                                     choice.value)
                result = None
                if row is not None:
                    readable = await conflict_service.readable_records(
                        session, ctx.push.registry, ctx.me, [row])
                    result = conflict_type(ctx, row, (row.entity, row.row_id) in readable)
                    await audit.record(session, audit.CONFLICT_RESOLVED, user_id=ctx.me.user_id,
                                       detail={"conflict": str(cid), "choice": choice.value,
                                               "entity": row.entity, "record": str(row.row_id)})
        except conflict_service.ResolutionRefused as refused:
            out = refused.out
            error = _err(out.error) if out.error else SyncError(
                code="NOT_RESOLVED", message=f"re-applying gave {out.status}; the conflict "
                "stays open", field=None, retryable=False)
            return ResolveConflictPayload(conflict=None, errors=[error])
        if row is None:
            return ResolveConflictPayload(conflict=None, errors=[SyncError(
                code="NOT_FOUND", message="no such conflict for you", field="id",
                retryable=False)])
        if ctx.notify is not None:
            ctx.notify()
        return ResolveConflictPayload(conflict=result, errors=[])

    @strawberry.mutation(description="Apply a batch of offline mutations exactly once.")
    async def sync_push(self, info: Info, input: SyncPushInput) -> SyncPushResult:
        ctx = info.context
        req = PushIn(
            client_id=str(input.client_id), protocol_version=input.protocol_version,
            app_version=input.app_version, return_data=input.return_data,
            # `fields` may be any JSON value here; the push refuses what is not an object.
            mutations=[MutationIn(m.mutation_id, m.entity, m.op.value, str(m.id), m.base_version,
                                  cast("dict[str, Any] | None", m.fields), m.client_time)
                       for m in input.mutations])
        try:
            try:
                out = await _push_again_if_it_lost_a_race(ctx, req, isolate=False)
            except IsolateMutations as e:
                log.warning("push of %d mutations failed in the database; applying them one "
                            "by one: %s", len(req.mutations), e.cause.orig)
                # The first attempt rolled back.
                out = await _push_again_if_it_lost_a_race(ctx, req, isolate=True)
        except SyncRequestError as e:
            raise request_error(e) from None
        if ctx.notify is not None:
            ctx.notify()
        metrics.count_push((r.status, r.error.code if r.error else None) for r in out.results)
        return SyncPushResult(last_mutation_id=out.last_mutation_id, results=[
            SyncMutationResult(mutation_id=r.mutation_id, status=SyncStatus(r.status),
                               id=strawberry.ID(r.id), version=r.version,
                               data=cast("JSON | None", r.data),
                               conflict_id=None if r.conflict_id is None else strawberry.ID(
                                   r.conflict_id),
                               error=_err(r.error), warnings=[_err(w) for w in r.warnings])
            for r in out.results])




#: Times a push that lost a deadlock or a serialization race is run again.
PUSH_ATTEMPTS = 4
#: SQLSTATEs of a transaction PostgreSQL rolled back to break a deadlock or a
#: serialization conflict: the documented remedy is to run it again.
_LOST_A_RACE = frozenset({"40P01", "40001"})


async def _push_again_if_it_lost_a_race(ctx: Context, req: PushIn,
                                        isolate: bool) -> protocol.PushOut:
    """Two batches that lock the same rows in opposite orders (one edits account B and
    takes an order at A, the other the reverse) deadlock, and PostgreSQL rolls one back
    after a second. Nothing of it was applied, so it is simply run again, after a short
    random pause, instead of sending the device away with UNAVAILABLE."""
    attempt = 1
    while True:
        try:
            return await _push(ctx, req, isolate)
        except sa.exc.DBAPIError as exc:
            state = getattr(exc.orig, "sqlstate", None)
            if state not in _LOST_A_RACE or attempt >= PUSH_ATTEMPTS:
                raise
            log.info("push lost a race in the database (%s); running it again", state)
        # Jitter, not security: the two losers should not collide again in step.
        await asyncio.sleep(random.uniform(0.0, 0.02 * attempt))  # noqa: S311
        attempt += 1


async def _push(ctx: Context, req: PushIn, isolate: bool) -> protocol.PushOut:
    """One unit of work: the push, and an audit record of what was refused for scope."""
    async with ctx.db.write() as session:
        out = await ctx.push.push(session, ctx.viewer, req, isolate=isolate)
        refused = [r.id for r in out.results if r.error and r.error.code == "NOT_FOUND"]
        if refused:
            await audit.record(session, audit.SCOPE_REFUSED, user_id=ctx.me.user_id,
                               email=ctx.me.email, address=ctx.client_address,
                               detail={"clientId": req.client_id, "ids": refused[:50]})
    return out


@strawberry.type(description="Your scope has news: pull with your own cursor.")
class SyncPoke:
    seq: int = strawberry.field(description="The newest change sequence number; compare "
                                "with a poke you already handled to drop duplicates.")
    at: datetime


@strawberry.type
class SyncSubscription:
    @strawberry.subscription(description="Pokes within a second of a commit that touches your "
                             "scope (graphql-ws; authenticate in connection_init).")
    async def sync_poke(self, info: Info) -> AsyncGenerator[SyncPoke, None]:
        ctx = info.context
        viewer = ctx.viewer
        if ctx.wait_for_changes is None or ctx.current_head is None:
            raise GraphQLError("pokes are not available on this transport",
                               extensions={"code": "UNAVAILABLE"})
        seen = ctx.current_head()
        while True:
            head = await ctx.wait_for_changes(seen)
            async with ctx.db.read() as session:
                await ctx.require_signed_in(session)
                news = await scope_changed(session, viewer, seen, head)
            seen = head
            if news:
                yield SyncPoke(seq=head, at=utcnow())
