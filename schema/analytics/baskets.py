"""Basket analysis: product pairs bought in the same order, as association rules.

An order (CONFIRMED or FULFILLED) is a transaction and a product an item. One statement,
grouped in SQL: the number of transactions N; per product, the transactions holding it;
and per pair of *frequent* products (support ≥ min support — a pair is never more
frequent than either of its items, so nothing is lost), the transactions holding both: a
self-join of the order lines on the order, `HAVING count ≥ min support · N`.

Each frequent pair {A, C} gives the rules A → C and C → A, with the usual measures
(mlxtend's `association_rules` definitions): support = P(A∧C), confidence = P(C|A),
lift = P(A∧C) / (P(A)·P(C)), leverage = P(A∧C) - P(A)·P(C),
conviction = (1 - P(C)) / (1 - confidence).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.analytics.common import Period, Scope, sold_orders
from schema.analytics.rollup import RollupState, company_wide, rollup_state
from schema.analytics.tables import BasketItemMonthly, BasketPairMonthly, SalesOrderMonthly
from schema.orders.tables import Order, OrderLine
from schema.scope import Principal
from sync.model import table_of


@dataclass(frozen=True)
class Rule:
    antecedent_id: uuid.UUID
    consequent_id: uuid.UUID
    #: Transactions with both items, with the antecedent, with the consequent, in all.
    both: int
    antecedent: int
    consequent: int
    transactions: int

    @property
    def support(self) -> float:
        return self.both / self.transactions

    @property
    def antecedent_support(self) -> float:
        return self.antecedent / self.transactions

    @property
    def consequent_support(self) -> float:
        return self.consequent / self.transactions

    @property
    def confidence(self) -> float:
        return self.both / self.antecedent

    @property
    def lift(self) -> float:
        return self.confidence / self.consequent_support

    @property
    def leverage(self) -> float:
        return self.support - self.antecedent_support * self.consequent_support

    @property
    def conviction(self) -> float | None:
        """None stands for infinity (the consequent always follows)."""
        if self.confidence >= 1:
            return None
        return (1 - self.consequent_support) / (1 - self.confidence)


@dataclass(frozen=True)
class Baskets:
    period: Period
    transactions: int
    #: Orders per product, for the products at or above the minimum support.
    frequent: dict[uuid.UUID, int]
    rules: list[Rule]
    min_count: int


def transactions(scope: Scope | Principal | None, period: Period) -> sa.Select[Any]:
    return sold_orders(scope, period).with_only_columns(col(Order.id))


@dataclass(frozen=True)
class Counts:
    transactions: int
    #: Transactions per frequent product, and per frequent pair (first id < second id).
    frequent: dict[uuid.UUID, int]
    pairs: dict[tuple[uuid.UUID, uuid.UUID], int]
    min_count: int


def min_count_for(min_support: float, transactions: int) -> int:
    return max(1, math.ceil(min_support * transactions - 1e-9))


async def count_baskets(session: AsyncSession, tx: sa.Select[Any],
                        min_support: float) -> Counts:
    """N, frequent products and frequent pairs over the transactions `tx` selects.

    One statement: the (order, product) items are read once (a CTE), products are kept
    when in ≥ min support · N orders, and only their items are self-joined. Rows come
    back tagged: (NULL, NULL, N), (product, NULL, count) and (product, product, count).
    """
    n = sa.select(sa.func.count()).select_from(tx.subquery()).scalar_subquery()
    # "≥ min support · N" in floating point, with the same tolerance as min_count_for
    # (0.3 · 10 is 3.0000000000000004).
    threshold = sa.literal(min_support, sa.Float) * n - 1e-9
    items = (
        sa.select(col(OrderLine.order_id), col(OrderLine.product_id)).distinct()
        .where(col(OrderLine.order_id).in_(tx)).cte("items")
    )
    freq = (
        sa.select(items.c.product_id, sa.func.count().label("c")).group_by(items.c.product_id)
        .having(sa.func.count() >= threshold).cte("freq")
    )
    kept = sa.select(items).where(items.c.product_id.in_(sa.select(freq.c.product_id))
                                  ).cte("kept")
    a, b = kept.alias("a"), kept.alias("b")
    none = sa.cast(sa.null(), sa.Uuid)
    stmt = sa.union_all(
        sa.select(none.label("x"), none.label("y"), n.label("c")),
        sa.select(freq.c.product_id, none, freq.c.c),
        sa.select(a.c.product_id, b.c.product_id, sa.func.count())
        .select_from(a.join(b, sa.and_(a.c.order_id == b.c.order_id,
                                       a.c.product_id < b.c.product_id)))
        .group_by(a.c.product_id, b.c.product_id).having(sa.func.count() >= threshold),
    )
    total, frequent, pairs = 0, {}, {}
    for x, y, c in (await session.execute(stmt)).all():
        if x is None:
            total = int(c)
        elif y is None:
            frequent[x] = int(c)
        else:
            pairs[(x, y)] = int(c)
    return Counts(total, frequent, pairs, min_count_for(min_support, total))


async def count_baskets_rolled(session: AsyncSession, period: Period, min_support: float,
                               rollups: RollupState | None = None) -> Counts:
    """`count_baskets` over every sale of the company in `period`: months and days from the
    monthly basket counts (where current, schema.analytics.rollup), the rest from the
    order lines. Three statements: N; orders per frequent product; per frequent pair.
    Counts add up across buckets (an order is in one), so the thresholds apply to
    the sums and the result is the same as `count_baskets`."""
    rollups = rollups if rollups is not None else await rollup_state(session)
    buckets, live = rollups.split(period)
    if not buckets:
        return await count_baskets(session, transactions(None, period), min_support)
    tx = sold_orders(None, periods=live).with_only_columns(col(Order.id))
    orders_t = table_of(SalesOrderMonthly)
    n_rolled = sa.select(sa.func.coalesce(sa.func.sum(orders_t.c.order_count), 0)).where(
        orders_t.c.bucket.in_(buckets)).scalar_subquery()
    n_live = sa.select(sa.func.count()).select_from(tx.subquery()).scalar_subquery()
    n = int((await session.execute(sa.select(n_rolled + n_live))).scalar_one())
    min_count = min_count_for(min_support, n)
    items = (sa.select(col(OrderLine.order_id), col(OrderLine.product_id)).distinct()
             .where(col(OrderLine.order_id).in_(tx)).cte("items"))
    it = table_of(BasketItemMonthly)
    per_item = sa.union_all(
        sa.select(it.c.product_id, it.c.order_count.label("c")).where(it.c.bucket.in_(buckets)),
        sa.select(items.c.product_id, sa.literal(1).label("c")),
    ).subquery("per_item")
    frequent = {p: int(c) for p, c in (await session.execute(
        sa.select(per_item.c.product_id, sa.func.sum(per_item.c.c)).group_by(
            per_item.c.product_id).having(sa.func.sum(per_item.c.c) >= min_count))).all()}
    pairs: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
    if len(frequent) > 1:
        keep = sorted(frequent, key=str)
        pt = table_of(BasketPairMonthly)
        kept = sa.select(items).where(items.c.product_id.in_(keep)).cte("kept")
        a, b = kept.alias("a"), kept.alias("b")
        per_pair = sa.union_all(
            sa.select(pt.c.product_a.label("x"), pt.c.product_b.label("y"),
                      pt.c.order_count.label("c"))
            .where(pt.c.product_a.in_(keep), pt.c.bucket.in_(buckets), pt.c.product_b.in_(keep)),
            sa.select(a.c.product_id, b.c.product_id, sa.literal(1))
            .select_from(a.join(b, sa.and_(a.c.order_id == b.c.order_id,
                                           a.c.product_id < b.c.product_id))),
        ).subquery("per_pair")
        total = sa.func.sum(per_pair.c.c)
        pairs = {(x, y): int(c) for x, y, c in (await session.execute(
            sa.select(per_pair.c.x, per_pair.c.y, total).group_by(per_pair.c.x, per_pair.c.y)
            .having(total >= min_count))).all()}
    return Counts(n, frequent, pairs, min_count)


async def basket_analysis(session: AsyncSession, scope: Scope | Principal | None, period: Period,
                          min_support: float = 0.01, min_confidence: float = 0.2,
                          min_lift: float = 1.0, limit: int = 50) -> Baskets:
    """Association rules between pairs of products, strongest lift first. Over the whole
    company (an admin), months and days come from the basket counts."""
    if company_wide(scope):
        counts = await count_baskets_rolled(session, period, min_support)
    else:
        counts = await count_baskets(session, transactions(scope, period), min_support)
    n, frequent = counts.transactions, counts.frequent
    rules: list[Rule] = []
    for (x, y), both in counts.pairs.items():
        for ante, cons in ((x, y), (y, x)):
            rule = Rule(ante, cons, both, frequent[ante], frequent[cons], n)
            if rule.confidence >= min_confidence and rule.lift >= min_lift:
                rules.append(rule)
    rules.sort(key=lambda r: (-r.lift, -r.confidence, -r.both, str(r.antecedent_id),
                              str(r.consequent_id)))
    return Baskets(period, n, frequent, rules[:limit], counts.min_count)

