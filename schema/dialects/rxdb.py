"""RxDB's GraphQL replication contract, per entity, on the fieldsync engine.

For entity `contact` (and likewise every synced entity):
  query        pullContact(checkpoint: RxCheckpointInput, limit: Int!, clientId: ID): RxPullResult!
  mutation     pushContact(rows: [RxPushRow!]): [JSON!]!   # the conflicting master documents
  subscription streamContact(headers: JSON, clientId: ID): RxPullResult!
Documents are the entity's wire data plus `_deleted`. The checkpoint is the engine's
gap-free cursor (server write order), never a client timestamp. A push is a
compare-and-swap on the fields a client writes: if `assumedMasterState` differs from
the server, the server's document comes back and RxDB's conflict handler runs.
Server-side effects (order pricing, a rejection) reach the client as a newer master
state on its next pull; merges and rejections come back at once as conflicts.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from schema.context import request_error
from schema.dialects.documents import (
    changed_fields,
    current_documents,
    same_client_view,
    spec_of,
)
from schema.registry import registry
from sync.cursor import Position
from sync.protocol import ChangeOut, MutationIn, SyncRequestError


@strawberry.type
class RxCheckpoint:
    cursor: str


@strawberry.input
class RxCheckpointInput:
    cursor: str


@strawberry.type
class RxPullResult:
    documents: list[JSON]
    checkpoint: RxCheckpoint | None


@strawberry.input
class RxPushRow:
    assumed_master_state: JSON | None = strawberry.field(name="assumedMasterState", default=None)
    new_document_state: JSON = strawberry.field(name="newDocumentState")


def _client_id(info: Info, entity: str, client_id: str | None) -> str:
    # One device row per collection: RxDB keeps a checkpoint per collection, and the
    # retention horizon must wait for the slowest of them.
    return f"{client_id or 'rxdb'}:{entity}"[:128]


def _doc(value: JSON | None) -> dict[str, Any]:
    """A JSON input that must be an object (a document)."""
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}


def _json(docs: list[dict[str, Any]]) -> list[JSON]:
    return cast(list[JSON], docs)


def to_document(change: ChangeOut) -> dict[str, Any]:
    if change.op == "UPSERT" and change.data is not None:
        return {**change.data, "_deleted": False}
    return {"id": change.id, "version": change.version, "_deleted": True}


def _rx(doc: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k != "deleted"}
    out["_deleted"] = bool(doc.get("deleted"))
    return out


async def pull(info: Info, entity: str, checkpoint: RxCheckpointInput | None, limit: int,
               client_id: str | None) -> RxPullResult:
    ctx = info.context
    cid = _client_id(info, entity, client_id)
    cursor = checkpoint.cursor if checkpoint else None
    # A page is at most the sync protocol's, whatever the client asks for.
    limit = ctx.pull.page_size(limit)
    docs: list[dict[str, Any]] = []
    try:
        async with ctx.db.write() as session:
            # RxDB stops when a page has fewer documents than it asked for, so fill pages.
            while len(docs) < limit:
                out = await ctx.pull.pull(session, ctx.viewer, cid, cursor, limit - len(docs),
                                          entities=frozenset({entity}))
                docs += await documents(session, ctx.viewer, entity, out.changes)
                cursor = out.cursor
                if not out.has_more:
                    break
    except SyncRequestError as e:
        raise request_error(e) from None
    return RxPullResult(documents=_json(docs),
                        checkpoint=RxCheckpoint(cursor=cursor) if cursor else None)


async def documents(session: Any, viewer: Any, entity: str,
                    changes: list[ChangeOut]) -> list[dict[str, Any]]:
    """Changes as RxDB documents. A deleted record travels with its last state (RxDB
    validates deleted documents against the collection schema too); a record that left
    the caller's scope travels as a bare tombstone — its later state is not theirs."""
    deleted = [c.id for c in changes if c.op == "DELETE"]
    last = await current_documents(session, viewer, spec_of(entity), deleted) if deleted else {}
    out = []
    for c in changes:
        if c.op == "DELETE" and c.id in last:
            out.append(_rx({**last[c.id], "deleted": True}))
        else:
            out.append(to_document(c))
    return out


async def push(info: Info, entity: str, rows: list[RxPushRow] | None) -> list[JSON]:
    ctx = info.context
    spec = spec_of(entity)
    rows = rows or []
    try:
        ctx.push.check_batch(len(rows))
    except SyncRequestError as e:
        raise request_error(e) from None
    conflicts: list[dict[str, Any]] = []
    async with ctx.db.write() as session:
        current = await current_documents(
            session, ctx.viewer, spec, [str(_doc(r.new_document_state).get("id")) for r in rows],
            lock=True)
        mutations: list[MutationIn] = []
        for row in rows:
            new = dict(_doc(row.new_document_state))
            rid = str(new.get("id"))
            new["deleted"] = bool(new.pop("_deleted", False))
            assumed = None
            if row.assumed_master_state is not None:
                assumed = dict(_doc(row.assumed_master_state))
                assumed["deleted"] = bool(assumed.pop("_deleted", False))
            master = current.get(rid)
            if master is None:
                if assumed is not None:  # it existed for the client; not (or no longer) here
                    conflicts.append({"id": rid, "_deleted": True})
                elif not new["deleted"]:
                    mutations.append(MutationIn(0, entity, "CREATE", rid, None,
                                                changed_fields(spec, {}, new)))
                continue
            if assumed is None or not same_client_view(spec, assumed, master):
                if not same_client_view(spec, new, master):
                    conflicts.append(_rx(master))
                continue  # a retried write the server already holds is no conflict
            if new["deleted"] and not master["deleted"]:
                mutations.append(MutationIn(0, entity, "DELETE", rid, master["version"]))
            elif not new["deleted"]:
                fields = changed_fields(spec, master, new)
                if fields:
                    mutations.append(MutationIn(0, entity, "UPDATE", rid, master["version"], fields))
        outs = await ctx.push.apply(session, ctx.viewer, mutations) if mutations else []
        for m, out in zip(mutations, outs, strict=True):
            if out.status == "APPLIED":
                continue
            if out.data is not None:
                conflicts.append({**out.data, "_deleted": False})
            else:  # refused and nothing stored: the master is what the server has, if any
                after = await current_documents(session, ctx.viewer, spec, [m.id])
                conflicts.append(_rx(after[m.id]) if m.id in after else {"id": m.id, "_deleted": True})
    if mutations and ctx.notify is not None:
        ctx.notify()
    return _json(conflicts)


async def stream(info: Info, entity: str, client_id: str | None) -> AsyncGenerator[RxPullResult, None]:
    ctx = info.context
    viewer = ctx.viewer
    cid = _client_id(info, entity, client_id)
    if ctx.wait_for_changes is None or ctx.current_head is None:
        return
    seen = ctx.current_head()
    cursor = ctx.pull.cursors.encode(Position(seq=seen), cid)
    while True:
        head = await ctx.wait_for_changes(seen)
        seen = head
        docs: list[dict[str, Any]] = []
        async with ctx.db.write() as session:
            await ctx.require_signed_in(session)
            while True:
                out = await ctx.pull.pull(session, viewer, cid, cursor, 500,
                                          entities=frozenset({entity}))
                docs += await documents(session, viewer, entity, out.changes)
                cursor = out.cursor
                if not out.has_more:
                    break
        if docs:
            yield RxPullResult(documents=_json(docs), checkpoint=RxCheckpoint(cursor=cursor))


def _name(entity: str) -> str:
    return entity[:1].upper() + entity[1:]


def _pull_field(entity: str) -> Any:
    async def resolver(info: Info, limit: int, checkpoint: RxCheckpointInput | None = None,
                       client_id: strawberry.ID | None = None) -> RxPullResult:
        return await pull(info, entity, checkpoint, limit, client_id)
    return strawberry.field(resolver=resolver, name=f"pull{_name(entity)}",
                            description=f"RxDB pull handler for the {entity} collection.")


def _push_field(entity: str) -> Any:
    async def resolver(info: Info, rows: list[RxPushRow] | None = None) -> list[JSON]:
        return await push(info, entity, rows)
    return strawberry.mutation(resolver=resolver, name=f"push{_name(entity)}",
                               description=f"RxDB push handler for {entity}: returns the "
                               "conflicting master documents.")


def _stream_field(entity: str) -> Any:
    async def resolver(info: Info, headers: JSON | None = None,
                       client_id: strawberry.ID | None = None) -> AsyncGenerator[RxPullResult, None]:
        async for item in stream(info, entity, client_id):
            yield item
    return strawberry.subscription(resolver=resolver, name=f"stream{_name(entity)}",
                                   description=f"RxDB pull.stream$ for {entity} (graphql-ws).")


def _root(name: str, make: Callable[[str], Any]) -> Any:
    namespace = {f"rx_{make.__name__}_{spec.name}": make(spec.name) for spec in registry.specs}
    return strawberry.type(type(name, (), namespace))


RxQuery = _root("RxQuery", _pull_field)
RxMutation = _root("RxMutation", _push_field)
RxSubscription = _root("RxSubscription", _stream_field)
