"""Company-wide models: basket rules and RFM scores.

Both are fitted on every sale of the company (they name products or score accounts, and
what a caller sees of them is still cut to their scope). Fitting reads the monthly
rollups that `fieldsync jobs daily` keeps (schema.analytics.rollup: basket counts per
month, orders per account and month) for whole months and the orders only for the rest,
so a fit takes tenths of a second at the large demo size, not the seconds a read of two
years of orders or order lines took; the rollups are the persisted part (crm-domain.md
§6 planned an `association_rule` table and an `account_rfm_snapshot`: the monthly counts
serve any window and threshold instead of one). Each server process still keeps a fitted
model per database and window for `TTL` seconds: a screen pop then costs no fit at all.
The screen pop's models end yesterday, so what reps sync today does not move them; the
TTL picks up back-dated orders. RFM windows ending today (the segments screen's default)
are refitted after `FRESH_TTL`. Concurrent requests that miss wait for one fit instead
of each fitting.
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

from schema.analytics.baskets import Rule, count_baskets_rolled
from schema.analytics.common import Period
from schema.analytics.rfm import RfmScore, RfmWindow, scored, to_score
from schema.analytics.rollup import rollup_state
from sync.model import utcnow

TTL = 3600.0
#: Models whose window ends today follow today's sales more closely.
FRESH_TTL = 300.0
#: Models kept per database (the least recently fitted goes first).
MAX_MODELS = 16
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
                 fit: Callable[[], Awaitable[M]], ttl: float = TTL) -> M:
    slots = _slots.setdefault(_database(session), {})
    if key not in slots and len(slots) >= MAX_MODELS:
        del slots[min(slots, key=lambda k: slots[k].at)]
    slot = slots.setdefault(key, _Slot())
    async with slot.lock:
        if slot.value is None or time.monotonic() - slot.at > ttl:
            slot.value, slot.at = await fit(), time.monotonic()
        value: M = slot.value
        return value


def forget(session: AsyncSession) -> None:
    """Drop this database's models (tests, benchmarks measuring a cold fit)."""
    _slots.pop(_database(session), None)


async def fit_basket_model(session: AsyncSession, period: Period,
                           min_support: float = BASKET_MIN_SUPPORT) -> BasketModel:
    counts = await count_baskets_rolled(session, period, min_support)
    return BasketModel(period, counts.transactions, counts.frequent, counts.pairs)


async def basket_model(session: AsyncSession, today: date) -> BasketModel:
    period = Period.trailing(today - timedelta(days=1), BASKET_DAYS)
    return await cached(session, ("basket", period), lambda: fit_basket_model(session, period))


async def fit_rfm_model(session: AsyncSession, window: RfmWindow) -> RfmModel:
    rollups = await rollup_state(session)
    rows = (await session.execute(sa.select(scored(window, rollups)))).mappings()
    return RfmModel(window, {r["account_id"]: to_score(r) for r in rows})


async def rfm_scores(session: AsyncSession, window: RfmWindow) -> RfmModel:
    """Every scored account of the company for `window` (kept `TTL`, or `FRESH_TTL` when
    the window ends today or later)."""
    ttl = FRESH_TTL if window.as_of >= utcnow().date() else TTL
    return await cached(session, ("rfm", window), lambda: fit_rfm_model(session, window), ttl)


async def rfm_model(session: AsyncSession, today: date) -> RfmModel:
    """The RFM scores as of yesterday, for the screen pop."""
    return await rfm_scores(session, RfmWindow(today - timedelta(days=1)))
