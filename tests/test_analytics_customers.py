"""Best customers and RFM segments: known rankings and scores, and who sees what."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from server.db import Database
from tests.conftest import World
from tests.test_analytics_data import TODAY, Line, Sale, add_accounts, add_sales, as_user

__all__ = ["as_user"]

TOP = """query($by: CustomerRanking!, $t: ID) {
  topCustomers(period: {start: "2026-06-01", end: "2026-06-14"}, by: $by, territoryId: $t) {
    customerCount revenueCents marginCents top10PctRevenueShare top30PctRevenueShare
    customers { rank revenueCents marginCents marginRate orderCount revenueShare
                cumulativeRevenueShare account { name } } } }"""

SEGMENTS = """query($d: Date!, $s: RfmSegment, $n: Int, $after: String) {
  customerSegments(asOf: $d) {
    accountCount revenueCents rules { windowStart segments }
    segments { segment accountCount revenueCents revenueShare }
    members(segment: $s, first: $n, after: $after) {
      totalCount edges { node { score segment account { name } } }
      pageInfo { hasNextPage endCursor } } } }"""

ONE = """query($a: ID!, $d: Date!) { customerSegment(accountId: $a, asOf: $d) {
  r f m score segment recencyDays frequency monetaryCents firstOrderDate lastOrderDate } }"""


@pytest.fixture
async def sales(db: Database, world: World) -> None:
    """Revenue / margin / orders: rep1a 3000/1200/3, rep1b 5000/500/1, rep2a 4000/3000/2,
    rep3a 10000/9000/1; rep2b bought nothing."""
    u, a, cola = world.users, world.accounts, world.products["cola"]
    day = TODAY - timedelta(days=5)

    def sale(acc: str, rep: str, price: int, cost: int) -> Sale:
        return Sale(a[acc], u[rep], day, [Line(cola, 1, price, cost)])

    await add_sales(db, [sale("rep1a", "rep1", 1000, 600) for _ in range(3)] + [
        sale("rep1b", "rep1", 5000, 4500), sale("rep2a", "rep2", 2000, 500),
        sale("rep2a", "rep2", 2000, 500), sale("rep3a", "rep3", 10000, 1000)])


def _names(data: dict[str, Any]) -> list[str]:
    return [c["account"]["name"] for c in data["topCustomers"]["customers"]]


RANKINGS = {"REVENUE": ["rep1 shop 1", "rep2 shop 0", "rep1 shop 0"],
            "MARGIN": ["rep2 shop 0", "rep1 shop 0", "rep1 shop 1"],
            "ORDERS": ["rep1 shop 0", "rep2 shop 0", "rep1 shop 1"]}


async def test_manager_ranks_the_team(as_user: Any, sales: None) -> None:
    manager = await as_user("manager1")
    for by, order in RANKINGS.items():
        data = await manager.ok(TOP, {"by": by})
        assert _names(data) == order, by
        top = data["topCustomers"]
        assert (top["customerCount"], top["revenueCents"], top["marginCents"]) == (
            3, 12000, 4700)


async def test_revenue_shares_and_concentration(as_user: Any, sales: None) -> None:
    top = (await (await as_user("admin")).ok(TOP, {"by": "REVENUE"}))["topCustomers"]
    assert _names({"topCustomers": top})[0] == "rep3 shop 0"
    assert [c["rank"] for c in top["customers"]] == [1, 2, 3, 4]
    assert top["revenueCents"] == 22000
    first, second = top["customers"][:2]
    assert first["revenueShare"] == pytest.approx(10000 / 22000)
    assert second["cumulativeRevenueShare"] == pytest.approx(15000 / 22000)
    assert first["marginRate"] == pytest.approx(0.9)
    assert top["top10PctRevenueShare"] == pytest.approx(10000 / 22000)  # ceil(0.4) = 1
    assert top["top30PctRevenueShare"] == pytest.approx(15000 / 22000)  # ceil(1.2) = 2
    only_totals = (await (await as_user("admin")).ok(
        """{ topCustomers(period: {start: "2026-06-01", end: "2026-06-14"}, limit: 0) {
             customerCount revenueCents customers { rank } } }"""))["topCustomers"]
    assert only_totals == {"customerCount": 4, "revenueCents": 22000, "customers": []}


async def test_a_rep_sees_own_accounts_without_margins(as_user: Any, sales: None) -> None:
    rep1 = await as_user("rep1")
    top = (await rep1.ok(TOP, {"by": "REVENUE"}))["topCustomers"]
    assert _names({"topCustomers": top}) == ["rep1 shop 1", "rep1 shop 0"]
    assert top["marginCents"] is None
    assert {c["marginCents"] for c in top["customers"]} == {None}
    body = await rep1.raw(TOP, {"by": "MARGIN"})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_other_teams_stay_out(as_user: Any, sales: None) -> None:
    for caller, names in (("manager2", ["rep3 shop 0"]), ("rep3", ["rep3 shop 0"]),
                          ("rep2", ["rep2 shop 0"])):
        assert _names(await (await as_user(caller)).ok(TOP, {"by": "REVENUE"})) == names


async def test_territory_filter(as_user: Any, world: World, sales: None) -> None:
    admin = await as_user("admin")
    assert len(_names(await admin.ok(TOP, {"by": "ORDERS", "t": str(world.territory)}))) == 4
    other = "00000000-0000-0000-0000-00000000abcd"
    assert _names(await admin.ok(TOP, {"by": "ORDERS", "t": other})) == []


@pytest.fixture
async def rfm(db: Database, world: World) -> list[Any]:
    """Ten accounts of rep1: account i has i+1 orders of 10.00 (the first 200 days ago, the
    last (10 - i) * 5 days ago), so its R, F and M ranks are all i+1."""
    rep = world.users["rep1"]
    ids = await add_accounts(db, rep, 10, "rfm")
    cola = world.products["cola"]
    sales = []
    for i, acc in enumerate(ids):
        days = [200] + [(10 - i) * 5 + 10 * k for k in range(i)]
        sales += [Sale(acc, rep, TODAY - timedelta(days=d), [Line(cola, 1, 1000, 600)])
                  for d in days]
    await add_sales(db, sales)
    return ids


async def test_rfm_scores_are_quintiles_of_the_ranks(as_user: Any, rfm: list[Any]) -> None:
    rep1 = await as_user("rep1")
    expected = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]  # 1 + floor(5 * (rank - 1) / 10)
    for i, acc in enumerate(rfm):
        s = (await rep1.ok(ONE, {"a": str(acc), "d": TODAY.isoformat()}))["customerSegment"]
        assert (s["r"], s["f"], s["m"]) == (expected[i],) * 3, i
        assert s["frequency"] == i + 1 and s["monetaryCents"] == (i + 1) * 1000
    best = (await rep1.ok(ONE, {"a": str(rfm[9]), "d": TODAY.isoformat()}))["customerSegment"]
    assert best["score"] == "555" and best["segment"] == "CHAMPIONS"
    assert best["recencyDays"] == 5
    assert best["firstOrderDate"] == (TODAY - timedelta(days=200)).isoformat()
    worst = (await rep1.ok(ONE, {"a": str(rfm[0]), "d": TODAY.isoformat()}))["customerSegment"]
    assert (worst["score"], worst["segment"], worst["recencyDays"]) == ("111", "HIBERNATING", 200)


async def test_segment_counts_members_and_pages(as_user: Any, rfm: list[Any]) -> None:
    data = (await (await as_user("manager1")).ok(
        SEGMENTS, {"d": TODAY.isoformat(), "s": "CHAMPIONS", "n": 1}))["customerSegments"]
    counts = {s["segment"]: s["accountCount"] for s in data["segments"]}
    assert counts == {"NEW": 0, "CHAMPIONS": 2, "LOYAL": 2, "AT_RISK": 0, "HIBERNATING": 4,
                      "PROMISING": 2}
    assert data["accountCount"] == 10 and data["revenueCents"] == 55000
    champions = next(s for s in data["segments"] if s["segment"] == "CHAMPIONS")
    assert champions["revenueCents"] == 19000
    assert champions["revenueShare"] == pytest.approx(19000 / 55000)
    page = data["members"]
    assert page["totalCount"] == 2 and page["pageInfo"]["hasNextPage"]
    assert [e["node"]["account"]["name"] for e in page["edges"]] == ["rfm 09"]
    rest = (await (await as_user("manager1")).ok(SEGMENTS, {
        "d": TODAY.isoformat(), "s": "CHAMPIONS", "n": 5,
        "after": page["pageInfo"]["endCursor"]}))["customerSegments"]["members"]
    assert [e["node"]["score"] for e in rest["edges"]] == ["555"]
    assert not rest["pageInfo"]["hasNextPage"]


#: caller → scored accounts they see (all ten are rep1's)
SEGMENT_SCOPE = {"rep1": 10, "manager1": 10, "admin": 10, "rep2": 0, "rep3": 0, "manager2": 0}


async def test_segments_are_cut_to_scope(as_user: Any, rfm: list[Any]) -> None:
    for caller, accounts in SEGMENT_SCOPE.items():
        api = await as_user(caller)
        data = (await api.ok(SEGMENTS, {"d": TODAY.isoformat()}))["customerSegments"]
        assert data["accountCount"] == accounts, caller
        assert data["members"]["totalCount"] == accounts, caller
        one = (await api.ok(ONE, {"a": str(rfm[9]), "d": TODAY.isoformat()}))
        assert (one["customerSegment"] is not None) == bool(accounts), caller


async def test_new_and_at_risk(as_user: Any, db: Database, world: World) -> None:
    """A first sale 30 days ago is NEW whatever the scores; a big buyer silent for eight
    months is AT_RISK."""
    rep = world.users["rep2"]
    new, old, *others = await add_accounts(db, rep, 6, "seg")
    cola = world.products["cola"]
    sales = [Sale(new, rep, TODAY - timedelta(days=30), [Line(cola, 1, 500)])]
    sales += [Sale(old, rep, TODAY - timedelta(days=240 + k), [Line(cola, 10, 5000)])
              for k in range(5)]
    sales += [Sale(acc, rep, TODAY - timedelta(days=100 + 10 * n), [Line(cola)])
              for n, acc in enumerate(others)]
    await add_sales(db, sales)
    rep2 = await as_user("rep2")
    seg = {a: (await rep2.ok(ONE, {"a": str(a), "d": TODAY.isoformat()}))["customerSegment"]
           for a in (new, old)}
    assert seg[new]["segment"] == "NEW"
    assert (seg[old]["r"], seg[old]["f"], seg[old]["m"]) == (1, 5, 5)
    assert seg[old]["segment"] == "AT_RISK"


ACCOUNT_RFM = """{ accounts(first: 50) { edges { node { id name
  rfmScore { score segment recencyDays } } } } }"""


async def test_account_rfm_score_field(as_user: Any, rfm: list[Any]) -> None:
    """`Account.rfmScore` agrees with customerSegment as of yesterday, for the accounts a
    caller sees (and reads the company-wide model: the same score for every caller)."""
    from schema.analytics.gql_common import today

    yesterday = (today() - timedelta(days=1)).isoformat()
    rep1, manager1 = await as_user("rep1"), await as_user("manager1")
    for api in (rep1, manager1):
        nodes = {e["node"]["id"]: e["node"]
                 for e in (await api.ok(ACCOUNT_RFM))["accounts"]["edges"]}
        for acc in (rfm[0], rfm[9]):
            one = (await rep1.ok(ONE, {"a": str(acc), "d": yesterday}))["customerSegment"]
            field = nodes[str(acc)]["rfmScore"]
            assert (field["score"], field["segment"]) == (one["score"], one["segment"])
        unscored = [n for n in nodes.values() if n["name"].startswith("rep1 shop")]
        assert unscored and all(n["rfmScore"] is None for n in unscored)
    others = (await (await as_user("rep2")).ok(ACCOUNT_RFM))["accounts"]["edges"]
    assert str(rfm[0]) not in {e["node"]["id"] for e in others}
