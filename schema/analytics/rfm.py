"""RFM scores and named segments (crm-domain.md §1.7, A3).

* Window: the `months` (default 12) ending on `as_of`; population: every account with a
  sale in the twice-as-long lookback (older customers are lost, not scored).
* R: days since the last sale; F: sales (orders) in the window; M: revenue in the window.
* Scores 1-5 by quantile rank over the **whole company**, so an account has the same
  score whoever looks at it: score = 1 + ⌊5·(rank - 1) / n⌋, where rank is the SQL
  `RANK()` (ties share the lowest rank) in ascending order of goodness. Ten accounts
  with frequencies 1…10 score 1,1,2,2,3,3,4,4,5,5.
* Segments, first matching rule wins (`SEGMENT_RULES`).

`scored()` is the SQL (one statement, window functions; months and days from the
order rollup where current, schema.analytics.rollup); schema.analytics.models keeps its
result per window. What a caller sees of it (members, counts, revenue shares) is limited
to their scope.
"""

from __future__ import annotations

import enum
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.accounts.tables import Account
from schema.analytics.common import Period, date_diff, day, sold_orders
from schema.analytics.rollup import RollupState
from schema.analytics.tables import SalesOrderMonthly
from schema.scope import Principal, readable
from sync.model import table_of

#: A first sale this recent makes an account NEW whatever its scores.
NEW_DAYS = 90


class Segment(enum.Enum):
    NEW = "new"
    CHAMPIONS = "champions"
    LOYAL = "loyal"
    AT_RISK = "at_risk"
    HIBERNATING = "hibernating"
    PROMISING = "promising"


#: (segment, rule as shown to managers), in the order the rules are tried.
SEGMENT_RULES: tuple[tuple[Segment, str], ...] = (
    (Segment.NEW, f"first sale in the last {NEW_DAYS} days"),
    (Segment.CHAMPIONS, "R ≥ 4, F ≥ 4, M ≥ 4 and R+F+M ≥ 13 (555, 554, 545, 455, 445…)"),
    (Segment.LOYAL, "R ≥ 3 and (F ≥ 4, or F ≥ 3 and M ≥ 4) (444, 453, 543…)"),
    (Segment.AT_RISK, "R ≤ 2 and (F ≥ 3 or M ≥ 4): valuable, but not buying lately"),
    (Segment.HIBERNATING, "R ≤ 2, low F and M (111, 112, 211…)"),
    (Segment.PROMISING, "everyone else: bought recently, not yet often or much"),
)


@dataclass(frozen=True)
class RfmWindow:
    as_of: date
    months: int = 12

    @property
    def start(self) -> date:
        return self.as_of - timedelta(days=round(self.months * 30.44) - 1)

    @property
    def lookback_start(self) -> date:
        return self.as_of - timedelta(days=round(2 * self.months * 30.44) - 1)


@dataclass(frozen=True)
class RfmScore:
    account_id: uuid.UUID
    first_order_date: date
    last_order_date: date
    recency_days: int
    frequency: int
    monetary_cents: int
    r: int
    f: int
    m: int
    segment: Segment


def _per_account(window: RfmWindow, rollups: RollupState) -> sa.Subquery:
    """First and last sale in the lookback, sales and revenue in the window, per account.

    Two periods, the lookback before the window and the window, each split into whole
    months and days read from the order rollup (where current) and days read from the
    orders; the parts are combined per account."""
    parts: list[sa.Select[Any]] = []
    t = table_of(SalesOrderMonthly)
    before = (Period(window.lookback_start, window.start - timedelta(days=1))
              if window.lookback_start < window.start else None)
    for period, counted in ((before, False), (Period(window.start, window.as_of), True)):
        if period is None:
            continue
        buckets, live = rollups.split(period)
        if buckets:
            parts.append(sa.select(
                t.c.account_id, sa.func.min(t.c.first_order_date).label("first_order"),
                sa.func.max(t.c.last_order_date).label("last_order"),
                (sa.func.sum(t.c.order_count) if counted else sa.literal(0)).label("frequency"),
                (sa.func.sum(t.c.revenue_cents) if counted else sa.literal(0)).label("monetary"),
            ).where(t.c.bucket.in_(buckets)).group_by(t.c.account_id))
        if live:
            o = sold_orders(None, periods=live).subquery("o")
            parts.append(sa.select(
                o.c.account_id, sa.func.min(o.c.order_date).label("first_order"),
                sa.func.max(o.c.order_date).label("last_order"),
                (sa.func.count() if counted else sa.literal(0)).label("frequency"),
                (sa.func.sum(o.c.total_cents) if counted else sa.literal(0)).label("monetary"),
            ).group_by(o.c.account_id))
    both = sa.union_all(*parts).subquery("parts")
    return sa.select(
        both.c.account_id, sa.func.min(both.c.first_order).label("first_order"),
        sa.func.max(both.c.last_order).label("last_order"),
        sa.func.sum(both.c.frequency).label("frequency"),
        sa.func.sum(both.c.monetary).label("monetary"),
    ).group_by(both.c.account_id).subquery("per")


def scored(window: RfmWindow, rollups: RollupState | None = None) -> sa.Subquery:
    """Every scored account of the company, one row each (a subquery to select from).
    Without `rollups` (or with an empty state) everything is read from the orders."""
    per = _per_account(window, rollups or RollupState())
    n = sa.func.count().over()

    def quintile(col: Any) -> Any:
        return 1 + 5 * (sa.func.rank().over(order_by=col) - 1) // n

    scores = sa.select(
        per, date_diff(per.c.last_order, day(window.as_of)).label("recency_days"),
        quintile(per.c.last_order).label("r"), quintile(per.c.frequency).label("f"),
        quintile(per.c.monetary).label("m"),
    ).subquery("scores")
    r, f, m = scores.c.r, scores.c.f, scores.c.m
    segment = sa.case(
        (scores.c.first_order > day(window.as_of - timedelta(days=NEW_DAYS)), Segment.NEW.value),
        (sa.and_(r >= 4, f >= 4, m >= 4, r + f + m >= 13), Segment.CHAMPIONS.value),
        (sa.and_(r >= 3, sa.or_(f >= 4, sa.and_(f >= 3, m >= 4))), Segment.LOYAL.value),
        (sa.and_(r <= 2, sa.or_(f >= 3, m >= 4)), Segment.AT_RISK.value),
        (r <= 2, Segment.HIBERNATING.value),
        else_=Segment.PROMISING.value,
    )
    return sa.select(scores, segment.label("segment")).subquery("rfm")


def to_score(row: Any) -> RfmScore:
    return RfmScore(row["account_id"], row["first_order"], row["last_order"],
                    int(row["recency_days"]), int(row["frequency"]), int(row["monetary"]),
                    int(row["r"]), int(row["f"]), int(row["m"]), Segment(row["segment"]))


async def visible(session: AsyncSession, principal: Principal,
                  account_id: uuid.UUID | None = None) -> set[uuid.UUID]:
    """The accounts (or the one account) the principal may read, through the scope rule."""
    stmt = readable(sa.select(col(Account.id)), Account, principal)
    if account_id is not None:
        stmt = stmt.where(col(Account.id) == account_id)
    return set((await session.execute(stmt)).scalars())


def ranked(scores: Iterable[RfmScore], accounts: set[uuid.UUID]) -> list[RfmScore]:
    """The scores of `accounts`, highest monetary value first (then by account id)."""
    mine = [s for s in scores if s.account_id in accounts]
    return sorted(mine, key=lambda s: (s.monetary_cents, s.account_id), reverse=True)


@dataclass(frozen=True)
class SegmentCount:
    segment: Segment
    accounts: int
    monetary_cents: int


def segment_counts(scores: Iterable[RfmScore]) -> list[SegmentCount]:
    accounts: Counter[Segment] = Counter()
    money: Counter[Segment] = Counter()
    for s in scores:
        accounts[s.segment] += 1
        money[s.segment] += s.monetary_cents
    return [SegmentCount(seg, accounts[seg], money[seg]) for seg, _ in SEGMENT_RULES]
