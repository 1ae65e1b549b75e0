"""The demo data's shape: tiers, who is who, and the per-account plan the history follows."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from schema.enums import Role
from schema.seed.catalog import Catalog
from schema.seed.words import Region

#: Insert order within a chunk of accounts: every row's references are written before it
#: (territories, products and general prices are written first, with the users).
CHUNK_ORDER = ("account", "contact", "priceEntry", "lead", "order", "invoice", "visitNote",
               "task", "case")


@dataclass(frozen=True)
class TierSpec:
    share: float
    #: Relative order frequency (crm-domain.md §7.3: A ≈ 42, B ≈ 17, C ≈ 6.5, D ≈ 2.3 a year).
    frequency: float
    lines: float  # mean lines per order (capped at 8)
    quantity: float  # quantity multiplier per line
    visits: float  # visits a month without an order


TIERS: dict[str, TierSpec] = {
    "a": TierSpec(0.10, 42.0, 6.0, 3.5, 1.0),
    "b": TierSpec(0.20, 17.0, 5.0, 2.0, 0.75),
    "c": TierSpec(0.50, 6.5, 4.0, 1.2, 0.5),
    "d": TierSpec(0.20, 2.3, 3.0, 1.0, 0.25),
}
MEAN_FREQUENCY = sum(t.share * t.frequency for t in TIERS.values())
PAYMENT_TERMS = (("14", 0.30), ("30", 0.55), ("60", 0.15))
#: Sticky payment behaviour per account: (name, share, (min, max) days paid after due).
PAYERS: tuple[tuple[str, float, tuple[int, int]], ...] = (
    ("on_time", 0.70, (-10, 0)), ("late_1_30", 0.20, (1, 30)),
    ("late_31_90", 0.08, (31, 90)), ("very_late", 0.02, (91, 400)),
)


@dataclass(frozen=True)
class UserPlan:
    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    manager_id: uuid.UUID | None
    territory_id: uuid.UUID | None
    region: Region
    centre: tuple[float, float]


@dataclass(frozen=True)
class AccountPlan:
    index: int
    id: uuid.UUID
    rep: UserPlan
    tier: str
    #: Day of the first order (customer since).
    start: date
    #: Orders stop after this day (a churned account).
    churn: date | None
    #: From this day orders come 2-3x less often (a slowing account).
    slow_from: date | None
    #: Expected orders a year before seasonality and trend.
    order_rate: float
    acquired: bool  # won during the history, from a converted lead
    on_hold: bool
    near_limit: bool
    #: rep1's first account: gets the recent wrong-invoice case and a birthday this week.
    showcase: bool
    rng_key: str


@dataclass
class Bundle:
    """Rows for one unit of generation (an account and everything under it, or a rep's leads)."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    lead_history: list[dict[str, Any]] = field(default_factory=list)

    def add(self, entity: str, row: dict[str, Any]) -> None:
        self.rows[entity].append(row)

    def __len__(self) -> int:
        return sum(len(v) for v in self.rows.values()) + len(self.lead_history)


@dataclass
class Observed:
    """What the generated history actually contains, for the patterns file."""

    orders: int = 0
    revenue: dict[str, int] = field(default_factory=dict)  # account id → fulfilled total
    tier_of: dict[str, str] = field(default_factory=dict)
    orders_by_month: Counter[str] = field(default_factory=Counter)
    category_month: dict[str, list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0] * 12))
    rule_counts: Counter[tuple[int, str]] = field(default_factory=Counter)
    churned: list[dict[str, Any]] = field(default_factory=list)
    slowing: list[dict[str, Any]] = field(default_factory=list)
    near_limit: list[dict[str, Any]] = field(default_factory=list)
    showcase: dict[str, Any] = field(default_factory=dict)
    upcoming_birthdays: int = 0


@dataclass
class Numbers:
    """Document numbers, unique across the data set: SO-YYYY-000001, INV-YYYY-000001, …"""

    counts: Counter[str] = field(default_factory=Counter)

    def next(self, prefix: str, year: int | None = None) -> str:
        key = f"{prefix}-{year}" if year is not None else prefix
        self.counts[key] += 1
        return f"{key}-{self.counts[key]:06d}"


@dataclass
class World:
    """Everything an account's history is drawn against."""

    today: date
    history_start: date
    catalog: Catalog
    numbers: Numbers
    observed: Observed
