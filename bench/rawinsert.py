"""The ceiling: the same orders and lines written straight into the tables.

No GraphQL, no validation, no change log, no mutation results: SQLAlchemy core
`executemany` inserts of a fresh copy (new ids) of the rows the push stored, one
transaction per batch, through the same async driver the server uses.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.dataset import settings_for
from schema.orders.tables import Order, OrderLine
from server.db import create_engine
from sync.model import new_id

ORDERS: sa.Table = Order.__table__  # type: ignore[attr-defined]
LINES: sa.Table = OrderLine.__table__  # type: ignore[attr-defined]


@dataclass
class RawFigures:
    orders: int = 0
    lines: int = 0
    elapsed_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.orders / self.elapsed_s if self.elapsed_s else 0.0


Batch = tuple[list[dict[str, Any]], list[dict[str, Any]]]


async def _load(engine: AsyncEngine, reps: Sequence[uuid.UUID]) -> tuple[list[dict[str, Any]],
                                                                         dict[Any, list[Any]]]:
    async with engine.connect() as conn:
        orders = [dict(r) for r in (await conn.execute(
            sa.select(ORDERS).where(ORDERS.c.rep_id.in_(reps)).order_by(ORDERS.c.id)
        )).mappings()]
        lines: dict[Any, list[Any]] = defaultdict(list)
        rows = await conn.execute(sa.select(LINES).join(ORDERS).where(ORDERS.c.rep_id.in_(reps)))
        for r in rows.mappings():
            lines[r["order_id"]].append(dict(r))
    return orders, lines


def _copies(orders: list[dict[str, Any]], lines: dict[Any, list[Any]], batch: int) -> list[Batch]:
    out: list[Batch] = []
    for i in range(0, len(orders), batch):
        order_rows: list[dict[str, Any]] = []
        line_rows: list[dict[str, Any]] = []
        for o in orders[i:i + batch]:
            new = {**o, "id": new_id()}
            new["number"] = f"RAW-{new['id'].hex[-12:].upper()}" if o["number"] else None
            order_rows.append(new)
            line_rows.extend({**ln, "id": new_id(), "order_id": new["id"]} for ln in lines[o["id"]])
        out.append((order_rows, line_rows))
    return out


async def raw_insert(url: str, reps: Sequence[uuid.UUID], batch: int) -> RawFigures:
    engine = create_engine(settings_for(url))
    try:
        orders, lines = await _load(engine, reps)
        batches = _copies(orders, lines, batch)
        fig = RawFigures(len(orders), sum(len(b[1]) for b in batches))
        t0 = time.perf_counter()
        for order_rows, line_rows in batches:
            async with engine.begin() as conn:
                await conn.execute(sa.insert(ORDERS), order_rows)
                await conn.execute(sa.insert(LINES), line_rows)
        fig.elapsed_s = time.perf_counter() - t0
    finally:
        await engine.dispose()
    return fig
