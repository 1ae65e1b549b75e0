"""DataLoaders: one per relation per request, every one of them scoped.

A nested query (accounts → orders → lines → product) costs one statement per level,
whatever the page size.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from strawberry.dataloader import DataLoader

from schema.context import Context
from schema.scope import readable

Row = sa.RowMapping


def _uuid(value: Any) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def by_id(ctx: Context, model: Any, scoped: bool = True) -> DataLoader[uuid.UUID, Row | None]:
    async def load(keys: Sequence[uuid.UUID]) -> list[Row | None]:
        stmt = sa.select(model.__table__).where(model.id.in_(keys))
        if scoped:
            stmt = readable(stmt, model, ctx.me)
        rows = {r["id"]: r for r in (await ctx.session.execute(stmt)).mappings()}
        return [rows.get(k) for k in keys]

    return ctx.loader(("id", model, scoped), lambda: DataLoader(load_fn=load))


def by_fk(ctx: Context, model: Any, column: str, order_by: Any = None,
          scoped: bool = True, where: Any = None) -> DataLoader[uuid.UUID, list[Row]]:
    async def load(keys: Sequence[uuid.UUID]) -> list[list[Row]]:
        col = getattr(model, column)
        stmt = sa.select(model.__table__).where(col.in_(keys))
        if scoped:
            stmt = readable(stmt, model, ctx.me)
        if where is not None:
            stmt = stmt.where(where)
        if order_by is not None:
            stmt = stmt.order_by(*(order_by if isinstance(order_by, tuple) else (order_by,)))
        groups: dict[uuid.UUID, list[Row]] = defaultdict(list)
        for r in (await ctx.session.execute(stmt)).mappings():
            groups[r[column]].append(r)
        return [groups.get(k, []) for k in keys]

    # Key on the SQL text: expressions are rebuilt per call, their identities differ.
    order_key = "|".join(str(e) for e in (order_by if isinstance(order_by, tuple) else (order_by,)))
    return ctx.loader(("fk", model, column, order_key, scoped, str(where)),
                      lambda: DataLoader(load_fn=load))


async def load_one(ctx: Context, model: Any, value: Any, scoped: bool = True) -> Row | None:
    key = _uuid(value)
    if key is None:
        return None
    return await by_id(ctx, model, scoped).load(key)


async def load_many(ctx: Context, model: Any, column: str, value: Any, **kw: Any) -> list[Row]:
    key = _uuid(value)
    if key is None:
        return []
    return await by_fk(ctx, model, column, **kw).load(key)
