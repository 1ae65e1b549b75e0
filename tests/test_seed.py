"""The demo seed: deterministic generation, and a load through the one write path."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from schema.enums import LeadStatus, OrderStatus
from schema.registry import registry
from schema.seed import SIZES, DemoGenerator, SeedError, seed_demo
from schema.tables import (
    Account,
    Case,
    Change,
    Contact,
    Invoice,
    Lead,
    LeadStatusChange,
    Order,
    OrderLine,
    ScopeKey,
    User,
)
from server.db import Database

ROOT = Path(__file__).resolve().parents[1]
TODAY = date(2026, 6, 15)


@pytest.fixture
def seed_db(db: Database) -> Database:
    """The migrated test database (SQLite, or PostgreSQL when configured)."""
    return db


def _digest(gen: DemoGenerator) -> str:
    """A fingerprint of everything the generator produces, patterns included."""
    h = hashlib.sha256()

    def feed(obj: Any) -> None:
        h.update(json.dumps(obj, sort_keys=True, default=str).encode())

    feed([gen.territories, gen.products, gen.price_entries,
          [(u.id, u.email, u.full_name, u.role, u.manager_id) for u in gen.users]])
    for bundle in gen.account_bundles():
        feed([dict(bundle.rows), bundle.lead_history])
    for bundle in gen.lead_bundles():
        feed([dict(bundle.rows), bundle.lead_history])
    feed(gen.patterns())
    return h.hexdigest()


def test_generator_is_deterministic() -> None:
    first = _digest(DemoGenerator("small", seed=7, today=TODAY))
    assert first == _digest(DemoGenerator("small", seed=7, today=TODAY))
    assert first != _digest(DemoGenerator("small", seed=8, today=TODAY))


def test_generator_plants_what_it_records() -> None:
    gen = DemoGenerator("small", seed=3, today=TODAY)
    orders = [o for b in gen.account_bundles() for o in b.rows["order"]]
    leads = [row for b in gen.lead_bundles() for row in b.rows["lead"]]
    patterns = gen.patterns()
    assert {o["order_date"] for o in orders} <= {
        TODAY - timedelta(days=d) for d in range(0, 732)}
    churned = {c["account_id"] for c in patterns["churned_accounts"]}
    assert churned
    cutoff = TODAY - timedelta(days=183)
    assert all(o["order_date"] < cutoff for o in orders if str(o["account_id"]) in churned)
    numbers = [o["number"] for o in orders if o["number"]]
    assert len(numbers) == len(set(numbers))
    for rule in patterns["basket_rules"]:
        assert rule["expected"]["lift"] >= 3
        assert rule["observed"]["lift"] >= 2  # a few thousand orders: noisy but clearly > 1
    assert {LeadStatus.NEW, LeadStatus.CONTACTED, LeadStatus.QUALIFIED,
            LeadStatus.DISQUALIFIED} <= {lead["status"] for lead in leads}


async def _count(db: Database, stmt: sa.Select[Any]) -> int:
    async with db.read() as session:
        return int((await session.execute(stmt)).scalar_one())


async def test_small_seed_loads(seed_db: Database, tmp_path: Path) -> None:
    patterns_path = tmp_path / "patterns.json"
    summary = await seed_demo(seed_db, "small", seed=42, patterns_path=patterns_path,
                              today=TODAY, progress=False)
    size = SIZES["small"]
    counts = summary.counts
    assert counts["user"] == 1 + size.managers + size.reps
    assert counts["account"] == size.accounts
    assert counts["product"] == size.products
    assert 1_500 <= counts["order"] <= 4_000
    assert counts["orderLine"] >= counts["order"]
    assert {e for e in (s.name for s in registry.specs)} <= set(counts)
    assert {login.email for login in summary.logins} >= {
        "admin@example.com", "manager1@example.com", "manager2@example.com", "rep1@example.com",
        "rep6@example.com"}

    for model, entity in ((Account, "account"), (Contact, "contact"), (Order, "order"),
                          (Invoice, "invoice"), (Lead, "lead"), (Case, "case")):
        assert await _count(seed_db, sa.select(sa.func.count()).select_from(model)) \
            == counts[entity]
    assert await _count(seed_db, sa.select(sa.func.count()).select_from(OrderLine)) \
        == counts["orderLine"]
    assert await _count(seed_db, sa.select(sa.func.count()).select_from(LeadStatusChange)) \
        == counts["leadStatusChange"]
    assert await _count(seed_db, sa.select(sa.func.count()).select_from(User)) == counts["user"]
    # Every user and every account holds a scope key.
    assert await _count(seed_db, sa.select(sa.func.count()).select_from(ScopeKey)
                        .where(ScopeKey.kind.in_(["user", "account"]))) \
        == counts["user"] + counts["account"]
    assert await _count(seed_db, sa.select(sa.func.count()).select_from(Lead)
                        .where(Lead.status == LeadStatus.CONVERTED,
                               Lead.converted_account_id.is_not(None))) > 0
    assert await _count(seed_db, sa.select(sa.func.count()).select_from(Case)
                        .where(Case.category == "wrong_invoice", Case.status != "closed",
                               Case.opened_at >= sa.literal(TODAY - timedelta(days=7)))) >= 1


async def test_order_totals_equal_their_lines(seed_db: Database) -> None:
    await seed_demo(seed_db, "small", seed=1, today=TODAY, progress=False)
    sums = (
        sa.select(OrderLine.order_id,
                  sa.func.sum(OrderLine.quantity * OrderLine.unit_price_cents).label("gross"),
                  sa.func.sum(OrderLine.line_total_cents).label("net"),
                  sa.func.sum(OrderLine.quantity * OrderLine.unit_cost_cents).label("cost"))
        .group_by(OrderLine.order_id).subquery()
    )
    mismatched = (
        sa.select(sa.func.count()).select_from(Order)
        .join(sums, sums.c.order_id == Order.id, isouter=True)
        .where(sa.or_(sums.c.net.is_(None), Order.subtotal_cents != sums.c.gross,
                      Order.total_cents != sums.c.net, Order.cost_cents != sums.c.cost,
                      Order.discount_cents != sums.c.gross - sums.c.net))
    )
    assert await _count(seed_db, mismatched) == 0
    # Invoices bill fulfilled orders, and only them, for the order total.
    billed = (sa.select(sa.func.count()).select_from(Invoice)
              .join(Order, Order.id == Invoice.order_id)
              .where(sa.or_(Order.status != OrderStatus.FULFILLED,
                            Invoice.amount_cents != Order.total_cents)))
    assert await _count(seed_db, billed) == 0


async def test_every_synced_row_is_in_the_change_log(seed_db: Database) -> None:
    await seed_demo(seed_db, "small", seed=2, today=TODAY, progress=False)
    for spec in registry.specs:
        rows = await _count(seed_db, sa.select(sa.func.count()).select_from(spec.table))
        logged = await _count(seed_db, sa.select(sa.func.count(sa.distinct(Change.row_id)))
                              .where(Change.entity == spec.name))
        assert rows > 0, spec.name
        assert logged == rows, spec.name


async def test_patterns_file_records_the_planted_rules(seed_db: Database,
                                                       tmp_path: Path) -> None:
    path = tmp_path / "truth.json"
    await seed_demo(seed_db, "small", seed=42, patterns_path=path, today=TODAY, progress=False)
    patterns = json.loads(path.read_text(encoding="utf-8"))
    assert patterns["today"] == TODAY.isoformat()
    rules = patterns["basket_rules"]
    assert len(rules) == SIZES["small"].basket_rules
    async with seed_db.read() as session:
        skus = set((await session.execute(sa.text("SELECT sku FROM product"))).scalars())
    for rule in rules:
        assert {rule["antecedent_sku"], rule["consequent_sku"]} <= skus
        assert set(rule["expected"]) >= {"support", "confidence", "lift"}
    assert patterns["churned_accounts"]
    assert set(patterns["tiers"]["accounts"].values()) == {"a", "b", "c", "d"}
    assert patterns["seasonality"]["month_factors"]["12"] > patterns["seasonality"][
        "month_factors"]["1"]
    assert any(o["category"] == "beverages" for o in patterns["seasonality"]["category_overlays"])


async def test_seeding_twice_is_refused(seed_db: Database) -> None:
    await seed_demo(seed_db, "small", seed=42, today=TODAY, progress=False)
    with pytest.raises(SeedError, match="already seeded"):
        await seed_demo(seed_db, "small", seed=42, today=TODAY, progress=False)


async def test_unknown_size_is_refused(seed_db: Database) -> None:
    with pytest.raises(SeedError, match="unknown size"):
        await seed_demo(seed_db, "huge", progress=False)
