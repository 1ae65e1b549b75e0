"""Basket analysis and recommendations: exact rule measures on a hand-made set, per scope."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from server.db import Database
from tests.conftest import World
from tests.test_analytics_data import TODAY, Line, Sale, add_products, add_sales, as_user

__all__ = ["as_user"]

BASKETS = """query($p: PeriodInput, $s: Float!, $c: Float!, $l: Float! = 1.0) {
  basketAnalysis(period: $p, minSupport: $s, minConfidence: $c, minLift: $l) {
    orderCount frequentProductCount minOrderCount
    rules { support confidence lift leverage conviction antecedentSupport consequentSupport
            orderCount antecedent { name } consequent { name } } } }"""

RECOMMEND = """query($a: ID!, $d: Date) { recommendations(accountId: $a, asOf: $d) {
  product { name } because { name } rule { confidence lift orderCount } } }"""

PERIOD = {"start": "2026-06-01", "end": "2026-06-14"}


@pytest.fixture
async def baskets(db: Database, world: World) -> dict[str, Any]:
    """rep1: 10 orders (cola 6, chips 6, both 4; salsa 2; beer 1); rep2: 1 (beer);
    rep3: 3 (beer + salsa). Plus a cancelled and an out-of-period order that must not count."""
    extra = await add_products(db, "salsa", "beer")
    cola, chips = world.products["cola"], world.products["chips"]
    salsa, beer = extra["salsa"], extra["beer"]
    u, a = world.users, world.accounts
    day = date(2026, 6, 10)
    r1 = [[cola, chips], [cola, chips], [cola, chips, salsa], [cola, chips], [cola], [cola]]
    r1b = [[chips], [chips], [salsa], [beer]]
    sales = [Sale(a["rep1a"], u["rep1"], day, [Line(p) for p in ps]) for ps in r1]
    sales += [Sale(a["rep1b"], u["rep1"], day, [Line(p) for p in ps]) for ps in r1b]
    sales += [Sale(a["rep2a"], u["rep2"], day, [Line(beer)])]
    sales += [Sale(a["rep3a"], u["rep3"], day, [Line(beer), Line(salsa)]) for _ in range(3)]
    sales += [Sale(a["rep1a"], u["rep1"], day, [Line(cola), Line(chips)], status="cancelled"),
              Sale(a["rep1a"], u["rep1"], date(2026, 5, 1), [Line(cola), Line(chips)])]
    await add_sales(db, sales)
    return {"salsa": salsa, "beer": beer}


def _rule(rules: list[dict[str, Any]], a: str, c: str) -> dict[str, Any]:
    return next(r for r in rules if r["antecedent"]["name"] == a and r["consequent"]["name"] == c)


async def test_pair_measures_are_exact(as_user: Any, baskets: dict[str, Any]) -> None:
    rep1 = await as_user("rep1")
    data = (await rep1.ok(BASKETS, {"p": PERIOD, "s": 0.3, "c": 0.5}))["basketAnalysis"]
    assert data["orderCount"] == 10
    assert data["minOrderCount"] == 3
    assert data["frequentProductCount"] == 2  # cola and chips: 6 orders each
    assert len(data["rules"]) == 2
    rule = _rule(data["rules"], "Cola", "Chips")
    assert rule["orderCount"] == 4
    assert rule["support"] == pytest.approx(0.4)
    assert rule["antecedentSupport"] == pytest.approx(0.6)
    assert rule["consequentSupport"] == pytest.approx(0.6)
    assert rule["confidence"] == pytest.approx(4 / 6)
    assert rule["lift"] == pytest.approx((4 / 10) / (0.6 * 0.6))
    assert rule["leverage"] == pytest.approx(0.4 - 0.36)
    assert rule["conviction"] == pytest.approx((1 - 0.6) / (1 - 4 / 6))


async def test_thresholds_prune(as_user: Any, baskets: dict[str, Any]) -> None:
    rep1 = await as_user("rep1")
    strict = (await rep1.ok(BASKETS, {"p": PERIOD, "s": 0.3, "c": 0.7}))["basketAnalysis"]
    assert strict["rules"] == []
    edge = (await rep1.ok(BASKETS, {"p": PERIOD, "s": 0.6, "c": 0.0}))["basketAnalysis"]
    assert (edge["frequentProductCount"], edge["minOrderCount"]) == (2, 6)  # 6 ≥ 0.6 · 10
    loose = (await rep1.ok(BASKETS, {"p": PERIOD, "s": 0.1, "c": 0.0, "l": 0.0})
             )["basketAnalysis"]
    # salsa (2 orders) joins with its pairs (1 order each, lift 0.83); beer (1 order) alone
    names = {(r["antecedent"]["name"], r["consequent"]["name"]) for r in loose["rules"]}
    assert ("salsa", "Cola") in names and ("salsa", "beer") not in names  # beer: 1 order


#: caller → (orders they see, confidence of beer → salsa in them, or None: no such rule)
ANALYSES = {"rep1": (10, None), "rep3": (3, 1.0), "manager1": (11, None),
            "manager2": (3, 1.0), "admin": (14, 0.6)}


async def test_each_caller_analyses_their_own_orders(as_user: Any,
                                                     baskets: dict[str, Any]) -> None:
    for caller, (orders, beer_salsa) in ANALYSES.items():
        api = await as_user(caller)
        data = (await api.ok(BASKETS, {"p": PERIOD, "s": 0.05, "c": 0.0}))["basketAnalysis"]
        assert data["orderCount"] == orders, caller
        rules = [r["confidence"] for r in data["rules"] if r["antecedent"]["name"] == "beer"
                 and r["consequent"]["name"] == "salsa"]
        assert rules == ([pytest.approx(beer_salsa)] if beer_salsa else []), caller


#: caller → what they are recommended for rep2's shop (out of scope: nothing)
RECOMMENDED = {"rep2": ["salsa"], "manager1": ["salsa"], "admin": ["salsa"], "rep1": [],
               "rep3": [], "manager2": []}


async def test_recommendations_use_company_rules_within_scope(
        as_user: Any, world: World, baskets: dict[str, Any]) -> None:
    """rep2's shop bought beer. The company-wide model (180 days to yesterday: 15 orders)
    has salsa in 3 of the 5 beer orders and in 5 orders in all: lift 0.6 / (5/15) = 1.8."""
    for caller, expected in RECOMMENDED.items():
        api = await as_user(caller)
        recs = (await api.ok(RECOMMEND, {"a": str(world.accounts["rep2a"]),
                                         "d": TODAY.isoformat()}))["recommendations"]
        assert [r["product"]["name"] for r in recs] == expected, caller
        if recs:
            assert recs[0]["because"]["name"] == "beer"
            assert recs[0]["rule"]["orderCount"] == 3
            assert recs[0]["rule"]["confidence"] == pytest.approx(3 / 5)
            assert recs[0]["rule"]["lift"] == pytest.approx((3 / 5) / (5 / 15))


async def test_default_period_is_the_last_90_days(as_user: Any,
                                                  baskets: dict[str, Any]) -> None:
    admin = await as_user("admin")
    query = "{ basketAnalysis { period { start end days } orderCount } }"
    data = (await admin.ok(query))["basketAnalysis"]
    assert data["period"]["days"] == 90
    assert date.fromisoformat(data["period"]["end"]) - date.fromisoformat(
        data["period"]["start"]) == timedelta(days=89)
