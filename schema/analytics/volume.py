"""Sales volume by any mix of dimensions, with the previous period alongside.

Measures come from order lines of sales (CONFIRMED or FULFILLED orders) in the period:
revenue = Σ line totals (after discounts), cost = Σ quantity * unit cost at the time of
sale, quantity, orders and customers (distinct). Place dimensions (territory, region,
channel, tier) are the account's current ones; REP is who took the order.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from schema.accounts.tables import Account
from schema.analytics.common import (
    Period,
    Scope,
    add_months,
    month_key,
    month_start,
    sold_orders,
)
from schema.analytics.rollup import (
    RollupState,
    bucket_month,
    company_wide,
    rollup_state,
    scoped_accounts,
)
from schema.analytics.tables import (
    SalesCategoryMonthly,
    SalesCategoryTotalMonthly,
    SalesFactMonthly,
    SalesOrderMonthly,
    SalesProductTotalMonthly,
)
from schema.catalog.tables import Product
from schema.orders.tables import OrderLine
from schema.scope import Principal
from sync.model import table_of


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


def per_order(scope: Scope | Principal, period: Period | Sequence[Period], filters: SalesFilter,
              dims: Sequence[Dimension], quantity: bool = True) -> sa.Subquery:
    """Sales per order and group: one row per (group, order), from the live orders.

    Summing per order first lets the outer query count orders with count(*) and leaves
    count(DISTINCT) only for customers, over a fifth of the rows. Only quantities and
    product dimensions or filters need the order lines: otherwise each order's own totals
    are used (the server computes them from its lines, so they are the same sums) and the
    lines, five times as many rows, are not read at all. `period` may be several day
    ranges (the parts of a period the rollups do not cover).
    """
    periods = [period] if isinstance(period, Period) else list(period)
    o = sold_orders(scope, periods=periods).subquery("o")
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
    stmt: sa.Select[Any] = sa.select(*keys, o.c.id.label("order_id"),
                                     o.c.account_id.label("customer"), *measures).select_from(src)
    stmt = _filtered(stmt, filters, o.c.rep_id, o.c.account_id, col(OrderLine.product_id),
                     col(Product.category))
    if by_line:
        stmt = stmt.group_by(*keys, o.c.id, o.c.account_id)
    return stmt.subquery("per_order")


def _filtered(stmt: sa.Select[Any], filters: SalesFilter, rep: Any, account: Any, product: Any,
              category: Any) -> sa.Select[Any]:
    for values, column in ((filters.territory_ids, col(Account.territory_id)),
                           (filters.rep_ids, rep), (filters.account_ids, account),
                           (filters.product_ids, product), (filters.categories, category),
                           (filters.channels, col(Account.segment)),
                           (filters.tiers, col(Account.tier))):
        if values:
            stmt = stmt.where(column.in_(values))
    return stmt


def cube_for(dims: Sequence[Dimension], filters: SalesFilter, rollups: RollupState,
             whole_company: bool = False, customers: bool = True) -> type[SQLModel] | None:
    """The smallest rollup that answers these groups and filters exactly, or None (live).

    Order counts decide: a cube counts each order once per row, so its rows may be summed
    only when no order is split over two rows of one group. Per product, an order counts
    once per product: fine when grouping by product, not for a filter on several products
    without it; the same for categories. The company totals (no account) serve an admin's
    figures that need no account: no distinct customers, no place dimension or filter."""
    product = Dimension.PRODUCT in dims or bool(filters.product_ids)
    category = Dimension.CATEGORY in dims or bool(filters.categories)
    by_account = bool(filters.needs_account or filters.account_ids
                      or (_NEEDS_ACCOUNT | {Dimension.ACCOUNT}) & set(dims))
    totals = whole_company and not customers and not by_account
    if product:
        if Dimension.PRODUCT not in dims:
            return None
        by_rep = Dimension.REP in dims or bool(filters.rep_ids)
        return SalesProductTotalMonthly if totals and not by_rep else SalesFactMonthly
    if category:
        exact = Dimension.CATEGORY in dims or len(filters.categories) == 1
        if not exact or not rollups.categories_current:
            return None
        return SalesCategoryTotalMonthly if totals else SalesCategoryMonthly
    return SalesOrderMonthly


def _cube_column(d: Dimension, t: Any) -> Any:
    month = bucket_month(t.c.bucket)
    return {
        Dimension.TERRITORY: col(Account.territory_id), Dimension.REGION: col(Account.region),
        Dimension.CHANNEL: col(Account.segment), Dimension.TIER: col(Account.tier),
        Dimension.ACCOUNT: t.c.get("account_id"), Dimension.REP: t.c.get("rep_id"),
        Dimension.PRODUCT: t.c.get("product_id"),
        Dimension.CATEGORY: t.c.category if "category" in t.c else col(Product.category),
        Dimension.MONTH: month, Dimension.QUARTER: (month // 100) * 10 + (month % 100 + 2) // 3,
        Dimension.YEAR: month // 100,
    }[d]


def per_customer_rolled(cube: type[SQLModel], scope: Scope | Principal, buckets: Sequence[int],
                        filters: SalesFilter, dims: Sequence[Dimension],
                        per_customer: bool = True) -> sa.Select[Any]:
    """Measures per (group, customer) from a rollup, over its `buckets` (per group only
    without `per_customer`)."""
    t = table_of(cube)
    src: Any = t
    if "account_id" not in t.c:  # company totals: an admin's, without customers
        per_customer = False
    if filters.needs_account or _NEEDS_ACCOUNT & set(dims):
        src = src.join(Account, col(Account.id) == t.c.account_id)
    by_product = "product_id" in t.c
    if by_product and (filters.categories or Dimension.CATEGORY in dims):
        src = src.join(Product, col(Product.id) == t.c.product_id)
    keys = [_cube_column(d, t).label(d.value) for d in dims]
    category = t.c.category if "category" in t.c else col(Product.category)
    customer = [t.c.account_id.label("customer")] if per_customer else []
    stmt: sa.Select[Any] = sa.select(
        *keys, *customer,
        sa.func.sum(t.c.revenue_cents).label("revenue"), sa.func.sum(t.c.cost_cents).label("cost"),
        sa.func.sum(t.c.quantity).label("quantity"), sa.func.sum(t.c.order_count).label("orders"),
    ).select_from(src).where(t.c.bucket.in_(buckets))
    if not company_wide(scope):
        stmt = stmt.where(scoped_accounts(t.c.account_id,
                                          scope if isinstance(scope, Scope) else Scope(scope)))
    stmt = _filtered(stmt, filters, t.c.get("rep_id"), t.c.get("account_id"),
                     t.c.get("product_id"), category)
    return stmt.group_by(*keys, *([t.c.account_id] if per_customer else []))


async def aggregate(session: AsyncSession, scope: Scope | Principal, period: Period,
                    filters: SalesFilter, dims: Sequence[Dimension], quantity: bool = True,
                    rollups: RollupState | None = None, customers: bool = True,
                    ) -> dict[tuple[Any, ...], Measures]:
    """Measures per group (one statement); no dimensions: one total row. Without
    `quantity`, quantities are 0 and the order lines are read only if a product
    dimension or filter needs them; without `customers`, customers are 0 (counting
    distinct customers needs a pass per (group, customer)).

    Months and days the rollups hold (and whose orders did not change since, see
    schema.analytics.rollup) are read from the cube that answers these groups exactly;
    the rest of the period from the orders. Both parts are summed per (group, customer),
    then per group, so the figures are the same either way."""
    if rollups is None:
        rollups = await rollup_state(session)
    cube = cube_for(dims, filters, rollups, company_wide(scope), customers)
    buckets, live = rollups.split(period) if cube is not None else ([], [period])
    dim_names = [d.value for d in dims]
    parts: list[sa.Select[Any]] = []
    if buckets and cube is not None:
        parts.append(per_customer_rolled(cube, scope, buckets, filters, dims, customers))
    if live:
        po = per_order(scope, live, filters, dims, quantity)
        keys = [po.c[n] for n in dim_names]
        who = [po.c.customer] if customers else []
        parts.append(sa.select(
            *keys, *who, sa.func.sum(po.c.revenue).label("revenue"),
            sa.func.sum(po.c.cost).label("cost"), sa.func.sum(po.c.quantity).label("quantity"),
            sa.func.count().label("orders")).group_by(*keys, *who))
    both = (parts[0] if len(parts) == 1 else sa.union_all(*parts)).subquery("parts")
    keys = [both.c[n] for n in dim_names]
    stmt = sa.select(
        *keys, sa.func.coalesce(sa.func.sum(both.c.revenue), 0).label("revenue"),
        sa.func.coalesce(sa.func.sum(both.c.cost), 0).label("cost"),
        sa.func.coalesce(sa.func.sum(both.c.quantity), 0).label("quantity"),
        sa.func.coalesce(sa.func.sum(both.c.orders), 0).label("orders"),
        (sa.func.count(sa.distinct(both.c.customer)) if customers else sa.literal(0)
         ).label("customers"),
    ).group_by(*keys)
    out: dict[tuple[Any, ...], Measures] = {}
    for r in (await session.execute(stmt)).mappings():
        key = tuple(r[n] for n in dim_names)
        out[key] = Measures(int(r["revenue"]), int(r["cost"]),
                            int(r["quantity"]) if quantity else 0, int(r["orders"]),
                            int(r["customers"]))
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
    #: Distinct customers, for each of the four parts.
    customers: tuple[bool, bool, bool, bool] = (True, True, True, True)


async def sales_volume(session: AsyncSession, scope: Scope | Principal, period: Period,
                       dims: Sequence[Dimension], filters: SalesFilter = SalesFilter(),
                       compare: Compare = Compare.PREVIOUS_PERIOD, limit: int = 500,
                       wanted: Wanted = Wanted()) -> SalesVolume:
    dims = tuple(dict.fromkeys(dims))
    rollups = await rollup_state(session)
    previous = {Compare.PREVIOUS_PERIOD: period.previous, Compare.PREVIOUS_YEAR:
                period.previous_year}.get(compare, lambda: None)()
    q_rows, q_totals, q_previous_rows, q_previous_totals = wanted.quantities
    c_rows, c_totals, c_previous_rows, c_previous_totals = wanted.customers
    # When each order falls in one group (no product or category dimension), totals
    # without distinct customers are the sum of the rows: one statement instead of two.
    partition = not {Dimension.PRODUCT, Dimension.CATEGORY} & set(dims)
    sum_totals = wanted.rows and wanted.totals and partition and not c_totals
    current = await aggregate(session, scope, period, filters, dims,
                              q_rows or (sum_totals and q_totals), rollups,
                              c_rows) if wanted.rows else {}
    totals = Measures()
    if sum_totals:
        totals = _total(current.values(), q_totals)
    elif wanted.totals:
        totals = (await aggregate(session, scope, period, filters, (), q_totals, rollups,
                                  c_totals)).get((), totals)
    if not q_rows:
        current = {k: replace(m, quantity=0) for k, m in current.items()}
    result = SalesVolume(period, previous, dims, totals, None, group_count=len(current))
    before: dict[tuple[Any, ...], Measures] = {}
    if previous is not None:
        sum_previous = wanted.rows and wanted.previous_rows and wanted.previous_totals \
            and partition and not c_previous_totals
        result.previous_totals = Measures()
        if wanted.rows and wanted.previous_rows:
            months = (period.start.year * 12 + period.start.month) - (
                previous.start.year * 12 + previous.start.month)
            found = await aggregate(session, scope, previous, filters, dims,
                                    q_previous_rows or (sum_previous and q_previous_totals),
                                    rollups, c_previous_rows)
            if sum_previous:
                result.previous_totals = _total(found.values(), q_previous_totals)
            for key, m in found.items():
                if (moved := _shift(dims, key, months)) is not None:
                    before[moved] = m if q_previous_rows else replace(m, quantity=0)
        if wanted.previous_totals and not sum_previous:
            result.previous_totals = (await aggregate(
                session, scope, previous, filters, (), q_previous_totals, rollups,
                c_previous_totals)).get((), Measures())
    rows = [VolumeRow(dict(zip(dims, key, strict=True)), m,
                      before.get(key, Measures()) if previous is not None else None)
            for key, m in current.items()]
    rows.sort(key=lambda r: _sort_key(dims, r))
    result.rows = rows[:limit]
    return result


def _total(groups: Iterable[Measures], quantity: bool) -> Measures:
    out = Measures()
    for m in groups:
        out = Measures(out.revenue_cents + m.revenue_cents, out.cost_cents + m.cost_cents,
                       out.quantity + m.quantity if quantity else 0, out.orders + m.orders)
    return out


async def monthly_series(session: AsyncSession, scope: Scope | Principal, filters: SalesFilter,
                         first: int, last: int) -> dict[int, Measures]:
    """Measures (without quantities and customers) per month key from `first` to `last`
    (yyyymm, inclusive), zero-filled."""
    period = Period(month_start(first), month_start(add_months(last, 1)) - timedelta(days=1))
    found = await aggregate(session, scope, period, filters, (Dimension.MONTH,),
                            quantity=False, customers=False)
    out: dict[int, Measures] = {}
    key = first
    while key <= last:
        out[key] = found.get((key,), Measures())
        key = add_months(key, 1)
    return out

