"""Sales volume by any mix of dimensions, with the previous period alongside.

Measures come from order lines of sales (CONFIRMED or FULFILLED orders) in the period:
revenue = Σ line totals (after discounts), cost = Σ quantity * unit cost at the time of
sale, quantity, orders and customers (distinct). Place dimensions (territory, region,
channel, tier) are the account's current ones; REP is who took the order.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.accounts.tables import Account
from schema.analytics.common import (
    Period,
    Scope,
    add_months,
    month_key,
    month_start,
    sold_orders,
)
from schema.catalog.tables import Product
from schema.orders.tables import OrderLine
from schema.scope import Principal


class Dimension(enum.Enum):
    TERRITORY = "territory"
    REGION = "region"
    CHANNEL = "channel"
    TIER = "tier"
    ACCOUNT = "account"
    REP = "rep"
    PRODUCT = "product"
    CATEGORY = "category"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


TIME = (Dimension.MONTH, Dimension.QUARTER, Dimension.YEAR)
_NEEDS_ACCOUNT = {Dimension.TERRITORY, Dimension.REGION, Dimension.CHANNEL, Dimension.TIER}


class Compare(enum.Enum):
    PREVIOUS_PERIOD = "previous_period"
    PREVIOUS_YEAR = "previous_year"
    NONE = "none"


@dataclass(frozen=True)
class SalesFilter:
    territory_ids: tuple[uuid.UUID, ...] = ()
    rep_ids: tuple[uuid.UUID, ...] = ()
    account_ids: tuple[uuid.UUID, ...] = ()
    product_ids: tuple[uuid.UUID, ...] = ()
    categories: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()

    @property
    def needs_account(self) -> bool:
        return bool(self.territory_ids or self.channels or self.tiers)


@dataclass(frozen=True)
class Measures:
    revenue_cents: int = 0
    cost_cents: int = 0
    quantity: int = 0
    orders: int = 0
    customers: int = 0

    @property
    def margin_cents(self) -> int:
        return self.revenue_cents - self.cost_cents


@dataclass(frozen=True)
class VolumeRow:
    key: dict[Dimension, Any]
    current: Measures
    previous: Measures | None


@dataclass
class SalesVolume:
    period: Period
    previous_period: Period | None
    dimensions: tuple[Dimension, ...]
    totals: Measures
    previous_totals: Measures | None
    rows: list[VolumeRow] = field(default_factory=list)
    #: Groups found before `limit` cut the list.
    group_count: int = 0


def _dimension_column(d: Dimension, o: Any) -> Any:
    return {
        Dimension.TERRITORY: col(Account.territory_id), Dimension.REGION: col(Account.region),
        Dimension.CHANNEL: col(Account.segment), Dimension.TIER: col(Account.tier),
        Dimension.ACCOUNT: o.c.account_id, Dimension.REP: o.c.rep_id,
        Dimension.PRODUCT: col(OrderLine.product_id), Dimension.CATEGORY: col(Product.category),
        Dimension.MONTH: month_key(o.c.order_date),
        Dimension.QUARTER: sa.cast(sa.extract("year", o.c.order_date), sa.Integer) * 10
        + (sa.cast(sa.extract("month", o.c.order_date), sa.Integer) + 2) // 3,
        Dimension.YEAR: sa.cast(sa.extract("year", o.c.order_date), sa.Integer),
    }[d]


def per_order(scope: Scope | Principal, period: Period, filters: SalesFilter,
              dims: Sequence[Dimension], quantity: bool = True) -> sa.Subquery:
    """Sales per order and group: one row per (group, order).

    Summing per order first lets the outer query count orders with count(*) and leaves
    count(DISTINCT) only for customers, over a fifth of the rows. Only quantities and
    product dimensions or filters need the order lines: otherwise each order's own totals
    are used (the server computes them from its lines, so they are the same sums) and the
    lines, five times as many rows, are not read at all.
    """
    o = sold_orders(scope, period).subquery("o")
    by_line = quantity or bool(filters.product_ids or filters.categories
                               or {Dimension.PRODUCT, Dimension.CATEGORY} & set(dims))
    src: Any = sa.join(OrderLine, o, o.c.id == col(OrderLine.order_id)) if by_line else o
    measures = [
        sa.func.sum(col(OrderLine.line_total_cents)).label("revenue"),
        sa.func.sum(col(OrderLine.quantity) * col(OrderLine.unit_cost_cents)).label("cost"),
        sa.func.sum(col(OrderLine.quantity)).label("quantity"),
    ] if by_line else [o.c.total_cents.label("revenue"), o.c.cost_cents.label("cost"),
                       sa.literal(0).label("quantity")]
    if filters.needs_account or _NEEDS_ACCOUNT & set(dims):
        src = src.join(Account, col(Account.id) == o.c.account_id)
    if filters.categories or Dimension.CATEGORY in dims:
        src = src.join(Product, col(Product.id) == col(OrderLine.product_id))
    keys = [_dimension_column(d, o).label(d.value) for d in dims]
    stmt = sa.select(*keys, o.c.id.label("order_id"), o.c.account_id.label("customer"),
                     *measures).select_from(src)
    for values, column in ((filters.territory_ids, col(Account.territory_id)),
                           (filters.rep_ids, o.c.rep_id), (filters.account_ids, o.c.account_id),
                           (filters.product_ids, col(OrderLine.product_id)),
                           (filters.categories, col(Product.category)),
                           (filters.channels, col(Account.segment)),
                           (filters.tiers, col(Account.tier))):
        if values:
            stmt = stmt.where(column.in_(values))
    if by_line:
        stmt = stmt.group_by(*keys, o.c.id, o.c.account_id)
    return stmt.subquery("per_order")


async def aggregate(session: AsyncSession, scope: Scope | Principal, period: Period,
                    filters: SalesFilter, dims: Sequence[Dimension], quantity: bool = True,
                    ) -> dict[tuple[Any, ...], Measures]:
    """Measures per group (one statement); no dimensions: one total row. Without
    `quantity`, quantities are 0 and the order lines are read only if a product
    dimension or filter needs them."""
    po = per_order(scope, period, filters, dims, quantity)
    keys = [po.c[d.value] for d in dims]
    stmt = sa.select(
        *keys, sa.func.coalesce(sa.func.sum(po.c.revenue), 0).label("revenue"),
        sa.func.coalesce(sa.func.sum(po.c.cost), 0).label("cost"),
        sa.func.coalesce(sa.func.sum(po.c.quantity), 0).label("quantity"),
        sa.func.count().label("orders"),
        sa.func.count(sa.distinct(po.c.customer)).label("customers"),
    ).group_by(*keys)
    out: dict[tuple[Any, ...], Measures] = {}
    for r in (await session.execute(stmt)).mappings():
        key = tuple(r[d.value] for d in dims)
        out[key] = Measures(int(r["revenue"]), int(r["cost"]), int(r["quantity"]),
                            int(r["orders"]), int(r["customers"]))
    return out


def _shift(dims: Sequence[Dimension], key: tuple[Any, ...], months: int) -> tuple[Any, ...] | None:
    """The key of the comparable group in the later period (time buckets moved forward)."""
    out = list(key)
    for i, d in enumerate(dims):
        if d is Dimension.MONTH:
            out[i] = add_months(key[i], months)
        elif d is Dimension.QUARTER:
            if months % 3:
                return None
            q = (key[i] // 10) * 4 + key[i] % 10 - 1 + months // 3
            out[i] = (q // 4) * 10 + q % 4 + 1
        elif d is Dimension.YEAR:
            if months % 12:
                return None
            out[i] = key[i] + months // 12
    return tuple(out)


def _sort_key(dims: Sequence[Dimension], row: VolumeRow) -> tuple[Any, ...]:
    times = tuple(row.key[d] for d in dims if d in TIME)
    rest = tuple(str(row.key[d]) for d in dims if d not in TIME)
    return (*times, -row.current.revenue_cents, rest)


@dataclass(frozen=True)
class Wanted:
    """Which parts a caller asked for; each costs a scan of the period's order lines."""

    rows: bool = True
    totals: bool = True
    previous_rows: bool = True
    previous_totals: bool = True
    #: Quantities (a read of the order lines) for each of the four parts above.
    quantities: tuple[bool, bool, bool, bool] = (True, True, True, True)


async def sales_volume(session: AsyncSession, scope: Scope | Principal, period: Period,
                       dims: Sequence[Dimension], filters: SalesFilter = SalesFilter(),
                       compare: Compare = Compare.PREVIOUS_PERIOD, limit: int = 500,
                       wanted: Wanted = Wanted()) -> SalesVolume:
    dims = tuple(dict.fromkeys(dims))
    previous = {Compare.PREVIOUS_PERIOD: period.previous, Compare.PREVIOUS_YEAR:
                period.previous_year}.get(compare, lambda: None)()
    q_rows, q_totals, q_previous_rows, q_previous_totals = wanted.quantities
    current = await aggregate(session, scope, period, filters, dims, q_rows) \
        if wanted.rows else {}
    totals = Measures()
    if wanted.totals:
        totals = (await aggregate(session, scope, period, filters, (), q_totals)).get(
            (), totals)
    result = SalesVolume(period, previous, dims, totals, None, group_count=len(current))
    before: dict[tuple[Any, ...], Measures] = {}
    if previous is not None:
        if wanted.rows and wanted.previous_rows:
            months = (period.start.year * 12 + period.start.month) - (
                previous.start.year * 12 + previous.start.month)
            for key, m in (await aggregate(session, scope, previous, filters, dims,
                                           q_previous_rows)).items():
                if (moved := _shift(dims, key, months)) is not None:
                    before[moved] = m
        result.previous_totals = Measures()
        if wanted.previous_totals:
            result.previous_totals = (await aggregate(
                session, scope, previous, filters, (), q_previous_totals)).get((), Measures())
    rows = [VolumeRow(dict(zip(dims, key, strict=True)), m,
                      before.get(key, Measures()) if previous is not None else None)
            for key, m in current.items()]
    rows.sort(key=lambda r: _sort_key(dims, r))
    result.rows = rows[:limit]
    return result


async def monthly_series(session: AsyncSession, scope: Scope | Principal, filters: SalesFilter,
                         first: int, last: int) -> dict[int, Measures]:
    """Measures (without quantities) per month key from `first` to `last` (yyyymm,
    inclusive), zero-filled."""
    period = Period(month_start(first), month_start(add_months(last, 1)) - timedelta(days=1))
    found = await aggregate(session, scope, period, filters, (Dimension.MONTH,),
                            quantity=False)
    out: dict[int, Measures] = {}
    key = first
    while key <= last:
        out[key] = found.get((key,), Measures())
        key = add_months(key, 1)
    return out

