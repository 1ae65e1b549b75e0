"""Basket analysis: product pairs bought in the same order, as association rules.

An order (CONFIRMED or FULFILLED) is a transaction and a product an item. Two
statements, both grouped in SQL:

1. the number of transactions N and, per product, the transactions holding it;
2. per pair of *frequent* products (support ≥ min support — a pair is never more frequent
   than either of its items, so nothing is lost), the transactions holding both: a
   self-join of the order lines on the order, `HAVING count ≥ ⌈min support · N⌉`.

Each frequent pair {A, C} gives the rules A → C and C → A, with the usual measures
(mlxtend's `association_rules` definitions): support = P(A∧C), confidence = P(C|A),
lift = P(A∧C) / (P(A)·P(C)), leverage = P(A∧C) - P(A)·P(C),
conviction = (1 - P(C)) / (1 - confidence).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.analytics.common import Period, Scope, sold_orders
from schema.orders.tables import Order, OrderLine
from schema.scope import Principal


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


async def item_counts(session: AsyncSession, tx: sa.Select[Any]) -> tuple[int, dict[uuid.UUID, int]]:
    """(N, transactions per product) over the transactions `tx` selects."""
    total = sa.select(sa.func.count()).select_from(tx.subquery()).scalar_subquery()
    stmt = (
        sa.select(col(OrderLine.product_id), sa.func.count(sa.distinct(col(OrderLine.order_id))),
                  total)
        .where(col(OrderLine.order_id).in_(tx))
        .group_by(col(OrderLine.product_id))
    )
    rows = (await session.execute(stmt)).all()
    if not rows:
        n = (await session.execute(sa.select(total))).scalar_one()
        return int(n), {}
    return int(rows[0][2]), {p: int(c) for p, c, _ in rows}


async def pair_counts(session: AsyncSession, tx: sa.Select[Any], products: Collection[uuid.UUID],
                      min_count: int, antecedents: Collection[uuid.UUID] | None = None,
                      ) -> list[tuple[uuid.UUID, uuid.UUID, int]]:
    """Transactions per pair of `products` holding both, for pairs with ≥ `min_count`.

    Without `antecedents`, each unordered pair once (first id < second id). With them,
    ordered pairs (a, b): a from `antecedents`, b from `products` but not `antecedents`.
    """
    if not products:
        return []
    wanted = set(products) | set(antecedents or ())
    items = (
        sa.select(col(OrderLine.order_id), col(OrderLine.product_id)).distinct()
        .where(col(OrderLine.order_id).in_(tx), col(OrderLine.product_id).in_(sorted(wanted)))
        .cte("items")
    )
    a, b = items.alias("a"), items.alias("b")
    if antecedents is None:
        pair = a.c.product_id < b.c.product_id
        extra: list[Any] = []
    else:
        ante = sorted(antecedents)
        pair = a.c.product_id != b.c.product_id
        extra = [a.c.product_id.in_(ante), b.c.product_id.not_in(ante)]
    stmt = (
        sa.select(a.c.product_id, b.c.product_id.label("other"), sa.func.count())
        .select_from(a.join(b, sa.and_(a.c.order_id == b.c.order_id, pair)))
        .where(*extra)
        .group_by(a.c.product_id, b.c.product_id)
        .having(sa.func.count() >= min_count)
    )
    return [(x, y, int(n)) for x, y, n in (await session.execute(stmt)).all()]


def min_count_for(min_support: float, transactions: int) -> int:
    return max(1, math.ceil(min_support * transactions - 1e-9))


async def basket_analysis(session: AsyncSession, scope: Scope | Principal | None, period: Period,
                          min_support: float = 0.01, min_confidence: float = 0.2,
                          min_lift: float = 1.0, limit: int = 50) -> Baskets:
    """Association rules between pairs of products, strongest lift first."""
    tx = transactions(scope, period)
    n, counts = await item_counts(session, tx)
    min_count = min_count_for(min_support, n)
    frequent = {p: c for p, c in counts.items() if c >= min_count}
    pairs = await pair_counts(session, tx, frequent, min_count) if len(frequent) > 1 else []
    rules: list[Rule] = []
    for x, y, both in pairs:
        for ante, cons in ((x, y), (y, x)):
            rule = Rule(ante, cons, both, frequent[ante], frequent[cons], n)
            if rule.confidence >= min_confidence and rule.lift >= min_lift:
                rules.append(rule)
    rules.sort(key=lambda r: (-r.lift, -r.confidence, -r.both, str(r.antecedent_id),
                              str(r.consequent_id)))
    return Baskets(period, n, frequent, rules[:limit], min_count)

