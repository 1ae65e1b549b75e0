"""The analytics recover what the demo generator planted (small demo data set)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from schema.jobs.daily import run_daily
from schema.seed import seed_demo
from schema.tables import Lead
from server.db import Database
from tests.conftest import Api, login

TODAY = date(2026, 6, 15)
HISTORY = {"start": "2024-06-15", "end": "2026-06-15"}

RULES = """query($p: PeriodInput) { basketAnalysis(period: $p, minSupport: 0.01,
  minConfidence: 0.3, minLift: 2, limit: 100) {
  rules { lift confidence antecedent { sku } consequent { sku } } } }"""

SEGMENT_MEMBERS = """query($d: Date!, $s: RfmSegment!) { customerSegments(asOf: $d) {
  members(segment: $s, first: 200) { edges { node { accountId } } } } }"""

TOP = """query($p: PeriodInput) { topCustomers(period: $p) {
  top10PctRevenueShare top30PctRevenueShare } }"""

POP = """query($a: ID!, $d: Date!) { customer360(accountId: $a, asOf: $d) {
  openCases { flagged headline } upcomingBirthdays(days: 7) { inDays }
  topProducts { orderCount } nextPurchases { dueInDays } recommendations { product { sku } }
  segment { segment } } }"""

FORECAST = """query($p: PeriodInput) { salesVolume(period: $p, groupBy: [MONTH]) {
  rows { month } forecast(months: 3) { method forecast { value } holdout { mape }
  candidates { method } } } }"""


@pytest.fixture
async def demo(db: Database, client: httpx.AsyncClient, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "patterns.json"
    await seed_demo(db, "small", seed=42, patterns_path=path, today=TODAY, progress=False)
    return json.loads(path.read_text(encoding="utf-8"))


async def _api(client: httpx.AsyncClient, email: str) -> Api:
    return Api(client, (await login(client, email))["accessToken"])


async def test_planted_patterns_are_found(client: httpx.AsyncClient, db: Database,
                                          demo: dict[str, Any]) -> None:
    admin = await _api(client, "admin@example.com")
    found = {(r["antecedent"]["sku"], r["consequent"]["sku"]): r for r in
             (await admin.ok(RULES, {"p": HISTORY}))["basketAnalysis"]["rules"]}
    for planted in demo["basket_rules"]:
        rule = found[(planted["antecedent_sku"], planted["consequent_sku"])]
        assert rule["lift"] >= 2 and rule["confidence"] >= 0.3

    lapsed: set[str] = set()
    for segment in ("AT_RISK", "HIBERNATING"):
        data = await admin.ok(SEGMENT_MEMBERS, {"d": TODAY.isoformat(), "s": segment})
        lapsed |= {e["node"]["accountId"]
                   for e in data["customerSegments"]["members"]["edges"]}
    churned = {c["account_id"] for c in demo["churned_accounts"]}
    assert churned and churned <= lapsed

    top = (await admin.ok(TOP, {"p": HISTORY}))["topCustomers"]
    assert top["top10PctRevenueShare"] == pytest.approx(
        demo["tiers"]["revenue_share_top_10pct_accounts"], abs=0.05)
    assert top["top30PctRevenueShare"] == pytest.approx(
        demo["tiers"]["revenue_share_top_30pct_accounts"], abs=0.05)

    rep1 = await _api(client, "rep1@example.com")
    pop = (await rep1.ok(POP, {"a": demo["showcase"]["account_id"], "d": TODAY.isoformat()})
           )["customer360"]
    assert pop["openCases"][0]["flagged"]
    assert pop["openCases"][0]["headline"] == "complained about a wrong invoice 2 days ago"
    assert any(b["inDays"] == 3 for b in pop["upcomingBirthdays"])
    assert pop["topProducts"] and pop["segment"] is not None

    month_end = {"start": "2025-06-01", "end": "2026-05-31"}
    sales = (await (await _api(client, "manager1@example.com")).ok(FORECAST, {"p": month_end})
             )["salesVolume"]
    assert len(sales["rows"]) == 12
    assert len(sales["forecast"]["forecast"]) == 3
    assert sales["forecast"]["holdout"]["mape"] < 25
    assert {c["method"] for c in sales["forecast"]["candidates"]} >= {"NAIVE",
                                                                     "SEASONAL_NAIVE"}


async def test_daily_job_on_the_demo_data(db: Database, demo: dict[str, Any]) -> None:
    first = await run_daily(db, TODAY)
    assert first.already_there > 0  # the seed wrote this month's birthday tasks
    assert first.leads_routed > 0
    again = await run_daily(db, TODAY)
    assert (again.birthday_tasks, again.anniversary_tasks, again.leads_routed) == (0, 0, 0)
    async with db.read() as s:
        waiting = (await s.execute(sa.select(sa.func.count()).select_from(Lead).where(
            Lead.owner_id.is_(None), Lead.status == "qualified",
            Lead.territory_id.is_not(None)))).scalar_one()
    assert waiting == 0
    # The seed wrote tasks for the next 30 days; a month later the job takes over.
    later = await run_daily(db, TODAY + timedelta(days=31))
    assert later.birthday_tasks > 0 and later.already_there == 0
