"""The demo catalogue: products, seasonality, planted basket rules and price entries.

Pure and deterministic: every function takes the `random.Random` it may draw from.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from schema.orders.pricing import PriceFacts, ProductFacts

#: Monthly multiplier on order count (crm-domain.md §7.4), January first.
MONTH_FACTORS: tuple[float, ...] = (
    0.85, 0.88, 0.97, 1.00, 1.05, 1.12, 1.15, 0.90, 1.00, 1.02, 1.05, 1.20,
)
#: Category overlays: (months, factor) on the category's share of lines and quantities.
CATEGORY_OVERLAYS: dict[str, tuple[tuple[int, ...], float]] = {
    "beverages": ((6, 7, 8), 1.4),
    "ice cream": ((6, 7, 8), 1.4),
    "confectionery": ((12,), 1.5),
    "gifts": ((12,), 1.5),
    "soups": ((11, 12, 1, 2), 1.3),
}
#: Category → (SKU prefix, median unit price in cents, item names).
CATEGORIES: dict[str, tuple[str, int, tuple[str, ...]]] = {
    "beverages": ("BEV", 180, ("Orange juice 1 l", "Sparkling water 1.5 l", "Cola 0.33 l",
                               "Iced tea 0.5 l", "Apple juice 1 l", "Energy drink 0.25 l")),
    "ice cream": ("ICE", 350, ("Chocolate cone", "Strawberry tub 1 l", "Ice lolly 6-pack")),
    "confectionery": ("CON", 220, ("Milk chocolate 100 g", "Gummy bears 200 g",
                                   "Hazelnut wafers 150 g", "Praline box 250 g")),
    "gifts": ("GFT", 1500, ("Gift basket", "Chocolate gift tin", "Tea gift set")),
    "soups": ("SOU", 250, ("Tomato soup 4-pack", "Goulash soup 500 g", "Vegetable broth 1 l")),
    "coffee": ("COF", 900, ("Coffee capsules 10 pcs", "Instant coffee 200 g", "Decaf 250 g")),
    "sugar": ("SUG", 120, ("White sugar 1 kg", "Brown sugar 500 g", "Sweetener 300 tabs")),
    "pasta": ("PAS", 150, ("Fusilli 500 g", "Tagliatelle 500 g", "Lasagne sheets 500 g")),
    "sauces": ("SAU", 230, ("Pesto 190 g", "Ketchup 500 g", "Mayonnaise 400 g")),
    "snacks": ("SNK", 200, ("Paprika crisps 150 g", "Salted peanuts 200 g", "Pretzels 250 g")),
    "beer": ("BER", 140, ("Pilsner 0.5 l", "Wheat beer 0.5 l", "Dark lager 0.5 l")),
    "dairy": ("DAI", 130, ("Fresh milk 1 l", "Yoghurt 500 g", "Cottage cheese 250 g")),
    "bakery": ("BAK", 160, ("Rye bread 750 g", "Croissants 6 pcs", "Breadsticks 200 g")),
    "cleaning": ("CLN", 450, ("Washing-up liquid 1 l", "Floor cleaner 1 l", "Paper towels 4")),
}
BRANDS = ("Alpina", "Borea", "Dolce Vita", "Nordika", "Adria", "Panonia", "Helios", "Vista",
          "Mlinar", "Korona")
#: Planted rules: antecedent (category, name) → consequent (category, name).
RULE_TEMPLATES: tuple[tuple[str, str, str, str], ...] = (
    ("pasta", "Spaghetti No.5 500 g", "sauces", "Tomato passata 700 g"),
    ("coffee", "Espresso beans 1 kg", "sugar", "Cane sugar sticks 1 kg"),
    ("beer", "Lager can 24-pack", "snacks", "Salted crisps 150 g"),
    ("bakery", "Toast bread 500 g", "dairy", "Salted butter 250 g"),
    ("snacks", "Tortilla chips 200 g", "sauces", "Salsa dip 300 g"),
    ("pasta", "Penne rigate 500 g", "dairy", "Grated parmesan 100 g"),
    ("coffee", "Ground coffee 250 g", "dairy", "Coffee creamer 10 x 10 g"),
    ("cleaning", "Dishwasher tablets 40 pcs", "cleaning", "Rinse aid 500 ml"),
    ("soups", "Chicken noodle soup 4-pack", "bakery", "Soup crackers 200 g"),
    ("ice cream", "Vanilla ice cream 1 l", "confectionery", "Waffle cones 12 pcs"),
    ("beverages", "Tonic water 1 l", "beverages", "Lime cordial 0.5 l"),
    ("confectionery", "Dark chocolate 100 g", "gifts", "Small gift box"),
)


def season(category: str, month: int) -> float:
    months, factor = CATEGORY_OVERLAYS.get(category, ((), 1.0))
    return factor if month in months else 1.0


@dataclass
class ProductPlan:
    row: dict[str, Any]
    facts: ProductFacts
    category: str
    pack: int
    popularity: float
    #: Last day it was sold (inactive products), else None.
    sold_until: date | None = None


@dataclass(frozen=True)
class Rule:
    antecedent: int  # index into Catalog.products
    consequent: int
    support_a: float  # P(antecedent in an order)
    confidence: float  # planted P(consequent | antecedent) before background
    background: float  # P(consequent) when the rule does not fire

    @property
    def expected(self) -> dict[str, float]:
        conf = self.confidence + (1 - self.confidence) * self.background
        p_c = self.support_a * conf + (1 - self.support_a) * self.background
        return {"antecedent_support": round(self.support_a, 4),
                "support": round(self.support_a * conf, 4), "confidence": round(conf, 4),
                "lift": round(conf / p_c, 3)}


@dataclass
class Catalog:
    products: list[ProductPlan]
    rules: list[Rule]
    background: list[int]  # product indices eligible for core lists and exploration
    general_prices: dict[uuid.UUID, list[PriceFacts]] = field(default_factory=dict)
    price_rows: list[dict[str, Any]] = field(default_factory=list)
    price_changes: list[dict[str, Any]] = field(default_factory=list)

    def core_list(self, rng: random.Random, size: int) -> list[int]:
        weights = [self.products[i].popularity for i in self.background]
        picked: dict[int, None] = {}
        while len(picked) < min(size, len(self.background)):
            picked[rng.choices(self.background, weights)[0]] = None
        return list(picked)

    def basket(self, rng: random.Random, core: list[int], n_lines: int, day: date) -> list[int]:
        """Product indices of one order: planted rule items first, then background lines."""
        items: list[int] = []
        for rule in self.rules:
            if rng.random() < rule.support_a:
                items.append(rule.antecedent)
                if rng.random() < rule.confidence or rng.random() < rule.background:
                    items.append(rule.consequent)
            elif rng.random() < rule.background:
                items.append(rule.consequent)
        want = max(n_lines, len(items))
        for _ in range(40):
            if len(items) >= want:
                break
            pool = core if rng.random() < 0.85 else self.background
            weights = [self.products[i].popularity * season(self.products[i].category, day.month)
                       for i in pool]
            pick = rng.choices(pool, weights)[0]
            until = self.products[pick].sold_until
            if pick not in items and (until is None or day <= until):
                items.append(pick)
        return items[:8]


def build_catalog(rng: random.Random, count: int, n_rules: int, today: date,
                  history_start: date, make_id: Callable[[], uuid.UUID]) -> Catalog:
    products: list[ProductPlan] = []
    rule_specs = RULE_TEMPLATES[:n_rules]
    names: list[tuple[str, str]] = []
    for cat_a, name_a, cat_b, name_b in rule_specs:
        names += [(cat_a, name_a), (cat_b, name_b)]
    cats = list(CATEGORIES)
    while len(names) < count:
        cat = cats[len(names) % len(cats)]
        item = rng.choice(CATEGORIES[cat][2])
        names.append((cat, f"{rng.choice(BRANDS)} {item}"))
    seq: dict[str, int] = {}
    for i, (cat, name) in enumerate(names):
        prefix, median, _ = CATEGORIES[cat]
        seq[prefix] = seq.get(prefix, 0) + 1
        pack = rng.choice((1, 6, 12, 24)) if median < 1000 else 1
        price = max(50, min(20_000, round(median * rng.lognormvariate(0, 0.35))))
        cost = round(price * rng.uniform(0.55, 0.80))
        pid = make_id()
        sold_until = today - timedelta(days=rng.randint(60, 200)) \
            if i >= 2 * len(rule_specs) and rng.random() < 0.03 else None
        row = {"id": pid, "sku": f"{prefix}-{seq[prefix]:04d}", "name": name, "category": cat,
               "description": f"{name}, sold in packs of {pack}.", "unit_price_cents": price,
               "unit_cost_cents": cost, "active": sold_until is None}
        products.append(ProductPlan(row, ProductFacts(pid, True, price, cost, name), cat, pack,
                                    0.0, sold_until))
    background = list(range(2 * len(rule_specs), len(products)))
    ranks = background[:]
    rng.shuffle(ranks)
    for rank, idx in enumerate(ranks, start=1):
        products[idx].popularity = 1.0 / rank ** 1.1
    rules = []
    for k in range(len(rule_specs)):
        support, conf, lift = rng.uniform(0.03, 0.08), rng.uniform(0.4, 0.7), rng.uniform(3, 8)
        # Background rate of the consequent so that the expected lift is `lift`.
        q = 1 / lift - support
        bg = conf * q / ((1 - support) - (1 - conf) * q)
        rules.append(Rule(2 * k, 2 * k + 1, support, conf, bg))
    catalog = Catalog(products, rules, background)
    _price_entries(rng, catalog, today, history_start, make_id)
    return catalog


def _price_entries(rng: random.Random, catalog: Catalog, today: date, history_start: date,
                   make_id: Callable[[], uuid.UUID]) -> None:
    """Past years' list prices (a January increase of 2-4%) and current-year promotions."""
    year_start = date(today.year, 1, 1)
    factors = {y: rng.uniform(1.02, 1.04) for y in range(history_start.year, today.year)}
    for y in sorted(factors):
        catalog.price_changes.append({"date": date(y + 1, 1, 1).isoformat(),
                                      "increase_pct": round((factors[y] - 1) * 100, 2)})
    for p in catalog.products:
        pid, price = p.facts.id, p.facts.unit_price_cents
        entries = catalog.general_prices.setdefault(pid, [])
        for y in sorted(factors, reverse=True):
            price = round(price / factors[y])
            start, end = date(y, 1, 1), date(y + 1, 1, 1)
            entries.append(PriceFacts(pid, None, price, None, start, end))
            catalog.price_rows.append({"id": make_id(), "product_id": pid, "account_id": None,
                                       "unit_price_cents": price, "discount_bp": None,
                                       "valid_from": start, "valid_to": end})
        # Promotions only from January on: a general discount applies to the *current*
        # list price (schema.orders.pricing), so one in a past year would undo the increase.
        if rng.random() < 0.08:
            first = max(year_start, today - timedelta(days=120))
            start = first + timedelta(days=rng.randint(0, max(0, (today - first).days + 30)))
            end = start + timedelta(days=rng.choice((14, 21, 28)))
            bp = rng.choice((500, 750, 1000, 1500))
            entries.append(PriceFacts(pid, None, None, bp, start, end))
            catalog.price_rows.append({"id": make_id(), "product_id": pid, "account_id": None,
                                       "unit_price_cents": None, "discount_bp": bp,
                                       "valid_from": start, "valid_to": end})
