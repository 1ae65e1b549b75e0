"""customer360: every block on a hand-made account, a bounded statement count, and scope."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from schema.bulk import insert_rows
from server.db import Database
from tests.conftest import World
from tests.test_analytics_data import (
    TODAY,
    Line,
    Sale,
    add,
    add_products,
    add_sales,
    as_user,
    counting,
)

__all__ = ["as_user"]

FULL = """query($a: ID!, $d: Date!) { customer360(accountId: $a, asOf: $d) {
  account { name } asOf balanceCents overdueCents oldestOverdueDays exposureCents
  creditAvailableCents onHold
  openInvoices { number dueDate amountOpenCents }
  recentOrders(first: 3) { orderDate status totalCents }
  purchases { revenue12mCents revenuePrior12mCents orderCount12m averageOrderCents
              orderIntervalDays firstOrderDate lastOrderDate }
  topProducts(first: 2) { product { name } orderCount quantity usualIntervalDays }
  nextPurchases { purchase { product { name } } daysSinceLast dueInDays suggestedQuantity }
  recommendations { product { name } }
  segment { score segment }
  openCases { flagged headline case { subject } }
  visitNotes(first: 1) { body }
  openTasks { title }
  upcomingBirthdays { contact { firstName } date inDays turns } } }"""

POP = """query($a: ID!, $d: Date!) { customer360(accountId: $a, asOf: $d) {
  balanceCents openCases { headline } } }"""


def _at(day: date) -> datetime:
    return datetime.combine(day, time(10), UTC)


@pytest.fixture
async def shop(db: Database, world: World) -> Any:
    """rep1's first shop with a year of history, money owed and things to follow up."""
    acc, rep = world.accounts["rep1a"], world.users["rep1"]
    cola, chips = world.products["cola"], world.products["chips"]
    salsa = (await add_products(db, "salsa"))["salsa"]
    sales = [Sale(acc, rep, TODAY - timedelta(days=d), [Line(cola, 2, 1000, 600)])
             for d in (100, 70, 40, 10)]
    sales += [Sale(acc, rep, TODAY - timedelta(days=d), [Line(chips, 3, 250, 100)])
              for d in (95, 65, 35)]
    sales += [Sale(acc, rep, TODAY - timedelta(days=d), [Line(salsa, 1, 400, 200)])
              for d in (60, 400)]
    sales += [Sale(acc, rep, TODAY - timedelta(days=1), [Line(cola, 1, 1500, 900)],
                   status="submitted"),
              Sale(acc, rep, TODAY, [Line(cola, 1, 9999, 1)], status="draft")]
    await add_sales(db, sales)
    billed = [s for s in sales if s.status == "fulfilled"]
    await add(db, "invoice", [
        {"number": f"INV-{n}", "account_id": acc, "order_id": s.id, "issue_date": s.day,
         "due_date": s.day + timedelta(days=30), "amount_cents": 2000,
         "amount_open_cents": 0, "status": "paid"} for n, s in enumerate(billed)])
    await add(db, "invoice", [
        {"number": "INV-LATE", "account_id": acc, "issue_date": TODAY - timedelta(days=40),
         "due_date": TODAY - timedelta(days=10), "amount_cents": 3000,
         "amount_open_cents": 3000, "status": "open"},
        {"number": "INV-SOON", "account_id": acc, "issue_date": TODAY - timedelta(days=25),
         "due_date": TODAY + timedelta(days=5), "amount_cents": 2500,
         "amount_open_cents": 2000, "status": "open"}])
    await add(db, "case", [
        {"account_id": acc, "category": "wrong_invoice", "subject": "Wrong invoice INV-7",
         "status": "new", "opened_at": _at(TODAY - timedelta(days=3)), "opened_by_id": rep},
        {"account_id": acc, "category": "damaged_goods", "subject": "Dented cans",
         "status": "working", "opened_at": _at(TODAY - timedelta(days=20))},
        {"account_id": acc, "category": "pricing", "subject": "Old price", "status": "closed",
         "opened_at": _at(TODAY - timedelta(days=50))}])
    await add(db, "visitNote", [
        {"account_id": acc, "author_id": rep, "visited_at": _at(TODAY - timedelta(days=d)),
         "body": f"visit {d}"} for d in (2, 9)])
    await add(db, "task", [
        {"title": "Bring samples", "due_date": TODAY + timedelta(days=1), "assignee_id": rep,
         "account_id": acc},
        {"title": "Done already", "due_date": TODAY, "assignee_id": rep, "account_id": acc,
         "done": True}])
    await add(db, "contact", [
        {"account_id": acc, "first_name": "Ana", "last_name": "A",
         "birthday": date(1976, 6, 20)},
        {"account_id": acc, "first_name": "Bor", "last_name": "B",
         "birthday": date(1990, 8, 14)},
        {"account_id": acc, "first_name": "Cene", "last_name": "C"}])
    return acc


async def test_every_block(as_user: Any, shop: Any) -> None:
    data = (await (await as_user("rep1")).ok(FULL, {"a": str(shop), "d": TODAY.isoformat()})
            )["customer360"]
    assert data["account"]["name"] == "rep1 shop 0"
    assert (data["balanceCents"], data["overdueCents"], data["oldestOverdueDays"]) == (
        5000, 3000, 10)
    assert [i["number"] for i in data["openInvoices"]] == ["INV-LATE", "INV-SOON"]
    # open invoices 5000 + the submitted order 1500 (drafts and invoiced orders do not count)
    assert data["exposureCents"] == 6500
    assert data["creditAvailableCents"] == 100_000 - 6500
    assert data["onHold"] is False
    assert [o["status"] for o in data["recentOrders"]] == ["DRAFT", "SUBMITTED", "FULFILLED"]
    p = data["purchases"]
    # sales: cola 4 x 2000, chips 3 x 750, salsa 400 in the year and 400 the year before
    assert (p["revenue12mCents"], p["revenuePrior12mCents"], p["orderCount12m"]) == (
        8000 + 2250 + 400, 400, 8)
    assert p["averageOrderCents"] == round(10650 / 8)
    assert p["lastOrderDate"] == (TODAY - timedelta(days=10)).isoformat()
    assert p["orderIntervalDays"] == pytest.approx(390 / 8)
    top = data["topProducts"]
    assert [(t["product"]["name"], t["orderCount"], t["quantity"]) for t in top] == [
        ("Cola", 4, 8), ("Chips", 3, 9)]
    assert top[0]["usualIntervalDays"] == pytest.approx(30)
    # chips: every 30 days, last 35 days ago → due; cola: last 10 days ago → not yet
    assert data["nextPurchases"] == [{"purchase": {"product": {"name": "Chips"}},
                                      "daysSinceLast": 35, "dueInDays": -5,
                                      "suggestedQuantity": 3}]
    assert data["segment"] is not None
    cases = data["openCases"]
    assert [(c["case"]["subject"], c["flagged"]) for c in cases] == [
        ("Wrong invoice INV-7", True), ("Dented cans", False)]
    assert cases[0]["headline"] == "complained about a wrong invoice 3 days ago"
    assert data["visitNotes"] == [{"body": "visit 2"}]
    assert data["openTasks"] == [{"title": "Bring samples"}]
    assert data["upcomingBirthdays"] == [
        {"contact": {"firstName": "Ana"}, "date": "2026-06-20", "inDays": 5, "turns": 50}]


async def test_as_of_a_past_day_shows_the_account_as_it_was(
        as_user: Any, shop: Any, db: Database, world: World) -> None:
    """Orders, visits and open tasks as of a day: nothing dated after it, and a task
    done after it was still open then."""
    async with db.write() as s:
        await insert_rows(s, "task", [{
            "title": "Done later", "due_date": TODAY - timedelta(days=30),
            "assignee_id": world.users["rep1"], "account_id": shop, "done": True,
            "done_at": _at(TODAY - timedelta(days=5))}])
    day = TODAY - timedelta(days=8)
    data = (await (await as_user("rep1")).ok(FULL, {"a": str(shop), "d": day.isoformat()})
            )["customer360"]
    assert [o["orderDate"] for o in data["recentOrders"]] == [
        (TODAY - timedelta(days=d)).isoformat() for d in (10, 35, 40)]
    assert data["visitNotes"] == [{"body": "visit 9"}]
    assert {t["title"] for t in data["openTasks"]} == {"Bring samples", "Done later"}


async def test_bounded_statements(app: Any, as_user: Any, shop: Any) -> None:
    rep1 = await as_user("rep1")
    await rep1.ok(POP, {"a": str(shop), "d": TODAY.isoformat()})  # warm the sign-in path
    statements = counting(app)
    await rep1.ok(POP, {"a": str(shop), "d": TODAY.isoformat()})
    small = len(statements)
    statements.clear()
    await rep1.ok(FULL, {"a": str(shop), "d": TODAY.isoformat()})
    full = len(statements)
    statements.clear()
    await rep1.ok(FULL, {"a": str(shop), "d": TODAY.isoformat()})
    # auth (2), account, invoices + unbilled, cases
    assert small <= 5
    # + orders, purchases, habits, recommended products' margins, visits, tasks, contacts
    # and, the first time only, the company-wide basket (2) and RFM (1) models
    assert full <= 15
    assert len(statements) <= 12, statements


async def test_scope(as_user: Any, shop: Any) -> None:
    for caller, visible in (("rep1", True), ("manager1", True), ("admin", True),
                            ("rep2", False), ("rep3", False), ("manager2", False)):
        data = await (await as_user(caller)).ok(POP, {"a": str(shop), "d": TODAY.isoformat()})
        pop = data["customer360"]
        assert (pop["balanceCents"] if pop else None) == (5000 if visible else None), caller
