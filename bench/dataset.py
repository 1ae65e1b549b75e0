"""The sync benchmark's data: a fresh migrated database, the reps, and the pull data set.

Everything is written through `schema.bulk.insert_rows` (the one write path), so every
seeded row has its version, scope key and change-log entry like production data.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from schema.bulk import insert_rows
from schema.enums import OrderStatus, Role
from schema.identity.passwords import hash_password
from schema.identity.service import create_user
from server.cli import db_upgrade
from server.db import Database, create_engine, sync_url
from server.settings import Settings
from sync.model import new_id, utcnow

PASSWORD = "bench-password-0123"
JWT_SECRET = "bench-secret-" + "x" * 40
#: Not the test suite's `test` database: the suite resets that one, concurrently.
PG_URL = "postgresql://postgres@127.0.0.1:5432/fieldsync_bench"
BIG_CREDIT_CENTS = 10**13
PRODUCTS = 50
LINES_PER_ORDER = 3
SEED_CHUNK = 2000
_HASH = hash_password(PASSWORD)


@dataclass(frozen=True)
class Product:
    id: uuid.UUID
    price_cents: int
    cost_cents: int


@dataclass(frozen=True)
class Rep:
    email: str
    user_id: uuid.UUID
    accounts: tuple[uuid.UUID, ...]


@dataclass
class World:
    url: str
    pushers: list[Rep]
    puller: Rep
    products: list[Product]
    #: What the puller's initial sync must return, per entity.
    pull_expected: dict[str, int] = field(default_factory=dict)

    @property
    def pull_total(self) -> int:
        return sum(self.pull_expected.values())


def settings_for(url: str) -> Settings:
    return Settings(database_url=url, jwt_secret=JWT_SECRET)


def fresh_database(kind: str, workdir: Path, pg_url: str) -> str:
    """An empty, migrated database; returns its URL."""
    if kind == "sqlite":
        path = workdir / "bench.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        url = pg_url
        _reset_postgres(url)
    db_upgrade(settings_for(url))
    return url


def _reset_postgres(url: str) -> None:
    _create_database(url)
    engine = sa.create_engine(sync_url(url))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


def _create_database(url: str) -> None:
    target = sa.make_url(sync_url(url))
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"),
                              {"d": target.database}).first()
        if not exists:
            conn.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


@dataclass(frozen=True)
class PullPlan:
    accounts: int
    contacts: int
    orders: int


def pull_plan(records: int) -> PullPlan:
    """Split `records` (the puller's whole initial sync) into accounts, contacts, orders.

    The territory and the products are public, so they count towards the total too.
    """
    room = max(0, records - 1 - PRODUCTS)
    accounts = max(1, room // 20)
    contacts = room // 5
    return PullPlan(accounts, contacts, max(0, room - accounts - contacts))


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


async def seed(url: str, reps: int, pull_records: int, rng: random.Random) -> World:
    """Seed the reps (two big-credit accounts each), products and the puller's data."""
    db = Database(create_engine(settings_for(url)))
    try:
        async with db.write() as s:
            territory = (await insert_rows(s, "territory", [{"code": "B", "name": "Bench"}]))[0]
            products = await _seed_products(s)
            boss = await create_user(s, email="manager@bench.example", full_name="Boss",
                                     password="", password_hash=_HASH, role=Role.MANAGER)
            pushers = [await _seed_rep(s, f"rep{i:03d}@bench.example", boss.id, territory, 2)
                       for i in range(reps)]
            plan = pull_plan(pull_records)
            puller = await _seed_rep(s, "puller@bench.example", boss.id, territory,
                                     plan.accounts)
        await _seed_pull_data(db, puller, products, plan, rng)
        if db.dialect == "postgresql":
            # As `fieldsync seed` does, and autovacuum would a minute later: without
            # statistics each initial-pull page sorted the whole scope.
            async with db.write() as s:
                await s.execute(sa.text("ANALYZE"))
    finally:
        await db.dispose()
    expected = {"territory": 1, "product": len(products), "account": plan.accounts,
                "contact": plan.contacts, "order": plan.orders}
    return World(url, pushers, puller, products, expected)



async def _seed_products(s: Any) -> list[Product]:
    prices = [(150 + 37 * i, 90 + 20 * i) for i in range(PRODUCTS)]
    rows = [{"sku": f"BENCH-{i:04d}", "name": f"Product {i}", "category": f"cat{i % 5}",
             "unit_price_cents": price, "unit_cost_cents": cost}
            for i, (price, cost) in enumerate(prices)]
    ids = await insert_rows(s, "product", rows)
    return [Product(pid, price, cost) for pid, (price, cost) in zip(ids, prices, strict=True)]


async def _seed_rep(s: Any, email: str, boss: uuid.UUID, territory: uuid.UUID,
                    accounts: int) -> Rep:
    user = await create_user(s, email=email, full_name=email.split("@")[0], password="",
                             password_hash=_HASH, role=Role.REP, manager_id=boss,
                             territory_id=territory)
    ids = await insert_rows(s, "account", [
        {"name": f"{email.split('@')[0]} shop {i}", "owner_id": user.id,
         "territory_id": territory, "credit_limit_cents": BIG_CREDIT_CENTS, "city": "Springfield"}
        for i in range(accounts)])
    return Rep(email, user.id, tuple(ids))


async def _seed_pull_data(db: Database, puller: Rep, products: list[Product], plan: PullPlan,
                          rng: random.Random) -> None:
    accounts = puller.accounts
    contacts = [{"account_id": accounts[i % len(accounts)], "first_name": f"First{i}",
                 "last_name": f"Last{i}", "email": f"c{i}@shop.example", "phone": "+3212345678"}
                for i in range(plan.contacts)]
    for chunk in _chunks(contacts, SEED_CHUNK):
        async with db.write() as s:
            await insert_rows(s, "contact", chunk)
    today = utcnow().date()
    orders = [seeded_order(i, accounts[i % len(accounts)], puller.user_id, products, today, rng)
              for i in range(plan.orders)]
    for chunk in _chunks(orders, SEED_CHUNK):
        async with db.write() as s:
            await insert_rows(s, "order", chunk)


def seeded_order(i: int, account: uuid.UUID, rep: uuid.UUID, products: list[Product],
                 today: date, rng: random.Random) -> dict[str, Any]:
    """A submitted, priced order with its lines, as the server would have stored it."""
    order_id = new_id()
    lines: list[dict[str, Any]] = []
    for n in range(LINES_PER_ORDER):
        p = rng.choice(products)
        qty = rng.randint(1, 5)
        lines.append({"id": new_id(), "line_no": n + 1, "product_id": p.id, "quantity": qty,
                      "unit_price_cents": p.price_cents, "discount_bp": 0,
                      "line_total_cents": qty * p.price_cents,
                      "unit_cost_cents": p.cost_cents})
    total = sum(line["line_total_cents"] for line in lines)
    return {"id": order_id, "account_id": account, "rep_id": rep,
            "order_date": today - timedelta(days=i % 365), "status": OrderStatus.SUBMITTED,
            "number": f"SEED-{order_id.hex[-12:].upper()}", "subtotal_cents": total,
            "discount_cents": 0, "total_cents": total,
            "cost_cents": sum(line["quantity"] * line["unit_cost_cents"] for line in lines),
            "submitted_at": utcnow(), "_children": lines}
