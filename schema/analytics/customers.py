"""Best customers: ranked by revenue, margin or order count, with revenue concentration.

One statement: sales per account in the period (months and days from the rollups
where they are current, the rest from the orders; schema.analytics.rollup), ranked with
window functions; the Pareto figures (share of revenue from the top 10% and 30% of
customers) come from the same pass, so the ranking and the shares describe the same rows.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.accounts.tables import Account
from schema.analytics.common import Period, Scope, sold_orders
from schema.analytics.rollup import RollupState, rollup_state, scoped_accounts
from schema.analytics.tables import SalesOrderMonthly
from schema.scope import Principal
from sync.model import table_of


class RankBy(enum.Enum):
    REVENUE = "revenue"
    MARGIN = "margin"
    ORDERS = "orders"


@dataclass(frozen=True)
class CustomerRank:
    rank: int
    account_id: uuid.UUID
    revenue_cents: int
    cost_cents: int
    order_count: int
    last_order_date: date
    #: Revenue of this customer and every one ranked above it.
    cumulative_revenue_cents: int

    @property
    def margin_cents(self) -> int:
        return self.revenue_cents - self.cost_cents


@dataclass(frozen=True)
class TopCustomers:
    period: Period
    by: RankBy
    customers: list[CustomerRank]
    customer_count: int
    revenue_cents: int
    cost_cents: int
    #: Revenue from the top 10% / 30% of customers by revenue (rounded up, at least one).
    top10_revenue_cents: int
    top30_revenue_cents: int


async def top_customers(session: AsyncSession, scope: Scope | Principal, period: Period,
                        by: RankBy = RankBy.REVENUE, territory_id: uuid.UUID | None = None,
                        limit: int = 20, rollups: RollupState | None = None) -> TopCustomers:
    scope = scope if isinstance(scope, Scope) else Scope(scope)
    rollups = rollups if rollups is not None else await rollup_state(session)
    buckets, live = rollups.split(period)
    parts: list[sa.Select[Any]] = []
    if buckets:
        t = table_of(SalesOrderMonthly)
        parts.append(
            sa.select(t.c.account_id, sa.func.sum(t.c.revenue_cents).label("rev"),
                      sa.func.sum(t.c.cost_cents).label("cost"),
                      sa.func.sum(t.c.order_count).label("n"),
                      sa.func.max(t.c.last_order_date).label("last"))
            .where(t.c.bucket.in_(buckets), scoped_accounts(t.c.account_id, scope))
            .group_by(t.c.account_id))
    if live:
        o = sold_orders(scope, periods=live).subquery("o")
        parts.append(
            sa.select(o.c.account_id, sa.func.sum(o.c.total_cents).label("rev"),
                      sa.func.sum(o.c.cost_cents).label("cost"), sa.func.count().label("n"),
                      sa.func.max(o.c.order_date).label("last"))
            .group_by(o.c.account_id))
    both = (parts[0] if len(parts) == 1 else sa.union_all(*parts)).subquery("parts")
    per_stmt = (
        sa.select(both.c.account_id, sa.func.sum(both.c.rev).label("rev"),
                  sa.func.sum(both.c.cost).label("cost"), sa.func.sum(both.c.n).label("n"),
                  sa.func.max(both.c.last).label("last"))
        .group_by(both.c.account_id)
    )
    if territory_id is not None:
        per_stmt = per_stmt.join(Account, col(Account.id) == both.c.account_id).where(
            col(Account.territory_id) == territory_id)
    per = per_stmt.subquery("per")
    metric: Any = {RankBy.REVENUE: (per.c.rev.desc(),),
                   RankBy.MARGIN: ((per.c.rev - per.c.cost).desc(), per.c.rev.desc()),
                   RankBy.ORDERS: (per.c.n.desc(), per.c.rev.desc())}[by]
    order = (*metric, per.c.account_id)
    ranked = sa.select(
        per,
        sa.func.row_number().over(order_by=order).label("rn"),
        sa.func.sum(per.c.rev).over(order_by=order, rows=(None, 0)).label("cum"),
        sa.func.row_number().over(order_by=(per.c.rev.desc(), per.c.account_id)).label("rev_rn"),
        sa.func.count().over().label("total_n"),
        sa.func.sum(per.c.rev).over().label("total_rev"),
        sa.func.sum(per.c.cost).over().label("total_cost"),
    ).subquery("ranked")
    # ceil(n/10) and ceil(3n/10) in integer arithmetic, the same on both databases.
    top10 = sa.case((ranked.c.rev_rn * 10 <= ranked.c.total_n + 9, ranked.c.rev), else_=0)
    top30 = sa.case((ranked.c.rev_rn * 10 <= ranked.c.total_n * 3 + 9, ranked.c.rev), else_=0)
    shares = sa.select(
        ranked, sa.func.sum(top10).over().label("top10"), sa.func.sum(top30).over().label("top30"),
    ).subquery("shares")
    # At least one row, which carries the totals even when `limit` is 0.
    stmt = sa.select(shares).where(shares.c.rn <= max(limit, 1)).order_by(shares.c.rn)
    rows = list((await session.execute(stmt)).mappings())
    first = rows[0] if rows else None
    rows = rows[:limit]
    return TopCustomers(
        period=period, by=by,
        customers=[CustomerRank(int(r["rn"]), r["account_id"], int(r["rev"]), int(r["cost"]),
                                int(r["n"]), r["last"], int(r["cum"])) for r in rows],
        customer_count=int(first["total_n"]) if first else 0,
        revenue_cents=int(first["total_rev"]) if first else 0,
        cost_cents=int(first["total_cost"]) if first else 0,
        top10_revenue_cents=int(first["top10"]) if first else 0,
        top30_revenue_cents=int(first["top30"]) if first else 0,
    )

