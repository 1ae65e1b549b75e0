"""Company-wide models the screen pop reads: basket rules and RFM scores, as of yesterday.

Both are fitted on every sale of the company (they name products or score accounts, and
what a caller sees of them is still cut to their scope), and fitting them reads a year of
order lines: seconds at the large demo size, far too slow for a screen pop. So each server
process keeps the fitted model per database and day for `TTL` seconds, the way
crm-domain.md §6 plans an `association_rule` table and a nightly `account_rfm_snapshot`.
Models end yesterday, so what reps sync today does not move them; the TTL picks up
back-dated orders. Concurrent requests that miss wait for one fit instead of each fitting.

Follow-up (needs a migration): persist both in tables filled by `fieldsync jobs daily`,
so a fresh process does not pay the first fit.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from schema.analytics.baskets import Rule, item_counts, min_count_for, pair_counts, transactions
from schema.analytics.common import Period
from schema.analytics.rfm import RfmScore, RfmWindow, scored, to_score

TTL = 3600.0
#: Days of sales the basket rules are fitted on, and their minimum support.
BASKET_DAYS = 180
BASKET_MIN_SUPPORT = 0.005

M = TypeVar("M")


@dataclass(frozen=True)
class BasketModel:
    period: Period
    transactions: int
    frequent: dict[uuid.UUID, int]
    #: Transactions holding both products, for each frequent unordered pair.
    pairs: dict[tuple[uuid.UUID, uuid.UUID], int]

    def rules_from(self, antecedents: set[uuid.UUID]) -> list[Rule]:
        out = []
        for (x, y), both in self.pairs.items():
            for a, c in ((x, y), (y, x)):
                if a in antecedents:
                    out.append(Rule(a, c, both, self.frequent[a], self.frequent[c],
                                    self.transactions))
        return out


@dataclass(frozen=True)
class RfmModel:
    window: RfmWindow
    scores: dict[uuid.UUID, RfmScore]


class _Slot:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.value: Any = None
        self.at = 0.0


_slots: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], _Slot]] = \
    weakref.WeakKeyDictionary()


def _database(session: AsyncSession) -> Any:
    bind = session.bind
    if bind is None:
        raise RuntimeError("the session is not bound to an engine")
    return bind.sync_engine.pool  # shared by every engine object over one database


async def cached(session: AsyncSession, key: tuple[Any, ...],
                 fit: Callable[[], Awaitable[M]]) -> M:
    slots = _slots.setdefault(_database(session), {})
    slot = slots.setdefault(key, _Slot())
    async with slot.lock:
        if slot.value is None or time.monotonic() - slot.at > TTL:
            slot.value, slot.at = await fit(), time.monotonic()
        value: M = slot.value
        return value


def forget(session: AsyncSession) -> None:
    """Drop this database's models (tests, benchmarks measuring a cold fit)."""
    _slots.pop(_database(session), None)


async def fit_basket_model(session: AsyncSession, period: Period,
                           min_support: float = BASKET_MIN_SUPPORT) -> BasketModel:
    tx = transactions(None, period)
    n, counts = await item_counts(session, tx)
    min_count = min_count_for(min_support, n)
    frequent = {p: c for p, c in counts.items() if c >= min_count}
    pairs = await pair_counts(session, tx, frequent, min_count) if len(frequent) > 1 else []
    return BasketModel(period, n, frequent, {(a, b): both for a, b, both in pairs})


async def basket_model(session: AsyncSession, today: date) -> BasketModel:
    period = Period.trailing(today - timedelta(days=1), BASKET_DAYS)
    return await cached(session, ("basket", period), lambda: fit_basket_model(session, period))


async def fit_rfm_model(session: AsyncSession, window: RfmWindow) -> RfmModel:
    rows = (await session.execute(sa.select(scored(window)))).mappings()
    return RfmModel(window, {r["account_id"]: to_score(r) for r in rows})


async def rfm_model(session: AsyncSession, today: date) -> RfmModel:
    window = RfmWindow(today - timedelta(days=1))
    return await cached(session, ("rfm", window), lambda: fit_rfm_model(session, window))
