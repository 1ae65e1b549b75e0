"""Shared by the dialects: current documents, comparisons and entity lookups."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from schema.registry import registry
from sync.model import dialect_name
from sync.registry import EntitySpec, Viewer


def spec_of(entity: str) -> EntitySpec:
    spec = registry.get(entity)
    if spec is None:
        raise KeyError(entity)
    return spec


def client_fields(spec: EntitySpec) -> frozenset[str]:
    """Wire names a client may write (plus the child list, e.g. an order's lines)."""
    names = {spec.codec.by_column[c].wire for c in spec.client_columns if c in spec.codec.by_column}
    if spec.child is not None:
        names.add(spec.child.wire)
    return frozenset(names)


async def current_documents(session: AsyncSession, viewer: Viewer, spec: EntitySpec,
                            ids: Iterable[str], lock: bool = False) -> dict[str, dict[str, Any]]:
    """The server's documents (wire form, with `deleted`) for the ids the viewer may see."""
    keys = []
    for raw in ids:
        try:
            keys.append(uuid.UUID(str(raw)))
        except ValueError:
            continue
    if not keys:
        return {}
    t = spec.table
    stmt = sa.select(t).where(t.c.id.in_(keys))
    if viewer.keys is not None:
        stmt = stmt.where(t.c.scope_key.in_(viewer.keys))
    if lock and dialect_name(session) == "postgresql":
        stmt = stmt.order_by(t.c.id).with_for_update()
    rows = list((await session.execute(stmt)).mappings())
    children: dict[uuid.UUID, list[Any]] = {r["id"]: [] for r in rows}
    if spec.child is not None and rows:
        ch = spec.child
        for c in (await session.execute(sa.select(ch.table).where(
                ch.table.c[ch.parent_column].in_(list(children))).order_by(
                ch.table.c[ch.order_by]))).mappings():
            children[c[ch.parent_column]].append(c)
    out = {}
    for r in rows:
        doc = spec.dump(r, children[r["id"]], viewer)
        doc["deleted"] = bool(r["deleted"])
        out[str(r["id"])] = doc
    return out


def same_client_view(spec: EntitySpec, a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether the client's document `a` agrees with the server's `b` on everything a
    client writes. Server-managed fields (version, totals, timestamps) are ignored, so the
    server's own effects never look like a conflict; fields `a` does not carry (a
    collection schema need not declare them all) are not the client's to compare."""
    for name in client_fields(spec) & a.keys():
        if name == (spec.child.wire if spec.child else None):
            if _lines(a.get(name)) != _lines(b.get(name)):
                return False
        elif a.get(name) != b.get(name):
            return False
    return bool(a.get("deleted")) == bool(b.get("deleted"))


def _lines(value: Any) -> list[tuple[Any, Any, Any]]:
    return [(ln.get("productId"), ln.get("quantity"), ln.get("discountBp") or 0)
            for ln in value or []]


def changed_fields(spec: EntitySpec, old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The client-writable fields that differ between two wire documents."""
    child = spec.child.wire if spec.child else None
    out = {}
    for name in client_fields(spec):
        if name not in new:
            continue
        if name == child:
            if _lines(old.get(name)) != _lines(new.get(name)):
                out[name] = [{"productId": ln.get("productId"), "quantity": ln.get("quantity"),
                              "discountBp": ln.get("discountBp") or 0} for ln in new[name] or []]
        elif old.get(name) != new[name]:
            out[name] = new[name]
    return out
