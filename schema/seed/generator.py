"""The demo data set, generated deterministically from a seed and a date — no database.

`DemoGenerator(size, seed, today)` holds the small, fixed part (territories, users,
catalogue, price lists and the plan of accounts) and streams the rest one account at a
time, so memory stays bounded at any size. After the stream is consumed, `patterns()`
describes what was planted (tiers, basket rules, seasonality, churn) for analytics tests.
Every draw comes from `random.Random` instances keyed by the seed: the same seed and
`today` give the same rows, ids included.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any

from schema.enums import Role
from schema.seed.activities import rep_leads
from schema.seed.catalog import CATEGORY_OVERLAYS, MONTH_FACTORS, build_catalog
from schema.seed.history import account_bundle
from schema.seed.plan import (
    MEAN_FREQUENCY,
    TIERS,
    AccountPlan,
    Bundle,
    Numbers,
    Observed,
    UserPlan,
    World,
)
from schema.seed.rand import new_rng, rid, working_days
from schema.seed.words import FIRST_NAMES, LAST_NAMES, REGIONS

DEMO_PASSWORD = "demo-password"
ADMIN_EMAIL = "admin@example.com"
#: Orders lost to accounts won late or churned early, made up for in the base rate.
RATE_CALIBRATION = 1.1


@dataclass(frozen=True)
class SeedSize:
    name: str
    managers: int
    reps_per_manager: int
    accounts_per_rep: int
    products: int
    #: Average orders per account and year before churn, acquisition and seasonality.
    orders_per_account_year: float
    leads_per_rep: int
    basket_rules: int
    months: int = 24

    @property
    def reps(self) -> int:
        return self.managers * self.reps_per_manager

    @property
    def accounts(self) -> int:
        return self.reps * self.accounts_per_rep


SIZES: dict[str, SeedSize] = {
    "small": SeedSize("small", 2, 3, 20, 60, 10.0, 12, 4),
    "medium": SeedSize("medium", 5, 4, 50, 200, 21.0, 30, 8),
    "large": SeedSize("large", 10, 5, 100, 500, 27.0, 40, 12),
}


class DemoGenerator:
    def __init__(self, size: SeedSize | str, seed: int = 42, today: date | None = None) -> None:
        self.size = SIZES[size] if isinstance(size, str) else size
        self.seed = seed
        self.today = today or date.today()
        self.history_start = self.today - timedelta(days=round(self.size.months * 30.44))
        self._rng = new_rng(f"fieldsync-demo/{seed}")
        self.territories: list[dict[str, Any]] = []
        self.admin, self.managers, self.reps = self._org()
        self.catalog = build_catalog(self._rng, self.size.products, self.size.basket_rules,
                                     self.today, self.history_start, lambda: rid(self._rng))
        self.observed = Observed()
        self.world = World(self.today, self.history_start, self.catalog, Numbers(),
                           self.observed)
        self.accounts = self._plan_accounts()

    @property
    def users(self) -> list[UserPlan]:
        return [self.admin, *self.managers, *self.reps]

    @property
    def products(self) -> list[dict[str, Any]]:
        return [p.row for p in self.catalog.products]

    @property
    def price_entries(self) -> list[dict[str, Any]]:
        return self.catalog.price_rows

    def _person(self, country: str) -> str:
        return f"{self._rng.choice(FIRST_NAMES[country])} {self._rng.choice(LAST_NAMES[country])}"

    def _org(self) -> tuple[UserPlan, list[UserPlan], list[UserPlan]]:
        rng = self._rng
        hq = REGIONS[0]
        admin = UserPlan(rid(rng), ADMIN_EMAIL, "Demo Admin", Role.ADMIN, None, None, hq,
                         (hq.lat, hq.lon))
        managers: list[UserPlan] = []
        reps: list[UserPlan] = []
        for m in range(self.size.managers):
            region = REGIONS[m % len(REGIONS)]
            suffix = f"-{m // len(REGIONS) + 1}" if m >= len(REGIONS) else ""
            territory_id = rid(rng)
            self.territories.append({"id": territory_id, "code": f"REG-{region.code}{suffix}",
                                     "name": f"{region.name}{suffix}", "region": region.name})
            manager = UserPlan(rid(rng), f"manager{m + 1}@example.com",
                               self._person(region.country), Role.MANAGER, None,
                               territory_id, region, (region.lat, region.lon))
            managers.append(manager)
            for _ in range(self.size.reps_per_manager):
                n = len(reps) + 1
                centre = (region.lat + rng.uniform(-0.15, 0.15),
                          region.lon + rng.uniform(-0.2, 0.2))
                route_id = rid(rng)
                self.territories.append({
                    "id": route_id, "code": f"RT-{n:03d}",
                    "name": f"{region.cities[n % len(region.cities)][0]} route {n}",
                    "region": region.name})
                reps.append(UserPlan(rid(rng), f"rep{n}@example.com",
                                     self._person(region.country), Role.REP, manager.id,
                                     route_id, region, centre))
        return admin, managers, reps

    def _plan_accounts(self) -> list[AccountPlan]:
        rng, today, start = self._rng, self.today, self.history_start
        late = working_days(start + timedelta(days=60), today - timedelta(days=30))
        plans: list[AccountPlan] = []
        for rep_no, rep in enumerate(self.reps):
            for k in range(self.size.accounts_per_rep):
                tier = rng.choices(list(TIERS), [t.share for t in TIERS.values()])[0]
                acquired = rng.random() < 0.25
                first = rng.choice(late) if acquired else start
                churn = slow = None
                r = rng.random()
                last_churn = today - timedelta(days=190)
                if r < 0.08 and (last_churn - first).days > 60:
                    churn = first + timedelta(days=rng.randint(60, (last_churn - first).days))
                elif r < 0.10 and (today - first).days > 300:
                    slow = today - timedelta(days=rng.randint(120, 240))
                rate = (self.size.orders_per_account_year * TIERS[tier].frequency
                        / MEAN_FREQUENCY * RATE_CALIBRATION)
                index = len(plans)
                plans.append(AccountPlan(
                    index=index, id=rid(rng), rep=rep, tier=tier, start=first, churn=churn,
                    slow_from=slow, order_rate=rate, acquired=acquired,
                    on_hold=churn is None and rng.random() < 0.03,
                    near_limit=churn is None and rng.random() < 0.06,
                    showcase=rep_no == 0 and k == 0,
                    rng_key=f"fieldsync-demo/{self.seed}/account/{index}"))
        return plans

    def account_bundles(self) -> Iterator[Bundle]:
        """Each account with its contacts, prices, orders, invoices, notes, cases and tasks.

        A generator streams its accounts once: numbering and observations accumulate.
        """
        if self.observed.tier_of:
            raise RuntimeError("a DemoGenerator streams its accounts once; make a new one")
        for plan in self.accounts:
            self.observed.tier_of[str(plan.id)] = plan.tier
            if plan.churn:
                self.observed.churned.append({"account_id": str(plan.id), "tier": plan.tier,
                                              "last_order_on_or_before": plan.churn.isoformat()})
            if plan.slow_from:
                self.observed.slowing.append({"account_id": str(plan.id), "tier": plan.tier,
                                              "slower_since": plan.slow_from.isoformat()})
            yield account_bundle(plan, self.world)

    def lead_bundles(self) -> Iterator[Bundle]:
        """Each rep's open and disqualified leads (converted ones come with their account)."""
        for n, rep in enumerate(self.reps):
            rng = new_rng(f"fieldsync-demo/{self.seed}/leads/{n}")
            yield rep_leads(rng, rep, self.world, self.size.leads_per_rep)

    def patterns(self) -> dict[str, Any]:
        """The planted ground truth and what the generated history shows of it."""
        obs = self.observed
        revenue = sorted(obs.revenue.values(), reverse=True)
        total = sum(revenue) or 1

        def top(share: float) -> float:
            return round(sum(revenue[:max(1, math.ceil(len(revenue) * share))]) / total, 3)

        by_tier = {t: sum(v for a, v in obs.revenue.items() if obs.tier_of.get(a) == t)
                   for t in TIERS}
        products = self.catalog.products
        rules = []
        for k, rule in enumerate(self.catalog.rules):
            a, c, ac = (obs.rule_counts[(k, x)] for x in ("a", "c", "ac"))
            n = max(obs.orders, 1)
            observed = {"orders_with_antecedent": a, "orders_with_both": ac,
                        "support": round(ac / n, 4), "confidence": round(ac / a, 4) if a else 0,
                        "lift": round(ac * n / (a * c), 3) if a and c else 0}
            rules.append({
                "antecedent_sku": products[rule.antecedent].row["sku"],
                "antecedent": products[rule.antecedent].row["name"],
                "consequent_sku": products[rule.consequent].row["sku"],
                "consequent": products[rule.consequent].row["name"],
                "expected": rule.expected, "observed": observed,
            })
        return {
            "seed": self.seed, "size": asdict(self.size), "today": self.today.isoformat(),
            "history": {"start": self.history_start.isoformat(), "end": self.today.isoformat()},
            "tiers": {
                "definition": {t: asdict(s) for t, s in TIERS.items()},
                "accounts": dict(sorted(obs.tier_of.items())),
                "revenue_share_by_tier": {t: round(v / total, 3) for t, v in by_tier.items()},
                "revenue_share_top_10pct_accounts": top(0.10),
                "revenue_share_top_30pct_accounts": top(0.30),
            },
            "seasonality": {
                "month_factors": dict(zip(range(1, 13), MONTH_FACTORS, strict=True)),
                "category_overlays": [{"category": c, "months": list(m), "factor": f}
                                      for c, (m, f) in CATEGORY_OVERLAYS.items()],
                "trend_yoy": 0.04,
                "observed_orders_by_month": dict(sorted(obs.orders_by_month.items())),
                "observed_category_revenue_by_month": {
                    c: v for c, v in sorted(obs.category_month.items())},
            },
            "basket_rules": rules,
            "churned_accounts": obs.churned,
            "slowing_accounts": obs.slowing,
            "near_credit_limit_accounts": obs.near_limit,
            "price_changes": self.catalog.price_changes,
            "showcase": {**obs.showcase, "upcoming_birthdays": obs.upcoming_birthdays},
            "demo_logins": {"password": DEMO_PASSWORD,
                            "users": [{"email": u.email, "role": u.role.value}
                                      for u in self.users]},
        }
