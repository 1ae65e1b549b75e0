"""The fleet's world: reps with 10 to 20 accounts each, contacts, leads, today's visit
tasks, order history, open invoices, a catalogue with an archived product and one that
the back office will withdraw mid-day, and credit limits tight enough that some of the
day's orders exceed them.

Everything is written through `schema.bulk.insert_rows` (the one write path: versions,
scope keys and change log like production data) and `create_user`. Ids come from the
run's seed, so the same `--seed` gives the same world. Passwords are hashed with cheap
argon2 parameters (the server verifies whatever parameters a hash carries), so a real
`login` costs ~1 ms instead of ~0.5 s: 1,200 devices sign in for real.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher

from schema.bulk import insert_rows
from schema.enums import (
    AccountTier,
    InvoiceStatus,
    LeadSource,
    LeadStatus,
    OrderStatus,
    Role,
    TaskKind,
)
from schema.identity.service import create_user
from server.cli import db_upgrade
from server.db import Database, create_engine, sync_url
from server.settings import Settings
from sync.model import utcnow

PASSWORD = "fleet-password-0123"
JWT_SECRET = "fleet-secret-" + "x" * 40
CHEAP_HASH = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
REPS_PER_MANAGER = 10
PRODUCTS = 60
CHUNK = 2000


def rid(rng: random.Random) -> uuid.UUID:
    """A deterministic (seeded) random UUID."""
    return uuid.UUID(int=rng.getrandbits(128), version=4)


@dataclass
class Person:
    name: str
    email: str
    user_id: uuid.UUID
    role: Role
    manager: str | None = None


@dataclass
class RepWorld:
    person: Person
    accounts: list[uuid.UUID]
    #: today's route: the accounts with a VISIT task due today
    route: list[uuid.UUID]
    leads: list[uuid.UUID]
    #: accounts whose credit line is tight (a big order exceeds it)
    tight: list[uuid.UUID]
    #: account → its contacts (as seeded)
    contacts: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)
    #: this morning's SUBMITTED orders (editable) and CONFIRMED ones (locked)
    open_orders: list[uuid.UUID] = field(default_factory=list)


@dataclass
class World:
    url: str
    admin: Person
    managers: list[Person]
    reps: list[RepWorld]
    products: list[uuid.UUID]
    #: active this morning; the back office withdraws it mid-day
    doomed_product: uuid.UUID
    archived_product: uuid.UUID
    team: dict[str, list[str]] = field(default_factory=dict)  # manager name → rep names

    @property
    def people(self) -> list[Person]:
        return [self.admin, *self.managers, *(r.person for r in self.reps)]

    def rep(self, name: str) -> RepWorld:
        return next(r for r in self.reps if r.person.name == name)


def settings_for(url: str) -> Settings:
    return Settings(database_url=url, jwt_secret=JWT_SECRET)


def prepare_database(url: str) -> None:
    """An empty, migrated database. SQLite: the file is recreated. PostgreSQL: the
    database is created if missing, and its public schema dropped and recreated."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        from pathlib import Path
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        target = sa.make_url(sync_url(url))
        admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"),
                                {"d": target.database}).first():
                conn.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
        admin.dispose()
        engine = sa.create_engine(target)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()
    db_upgrade(settings_for(url))


async def seed_world(url: str, reps: int, seed: int, *, fresh: bool = True) -> World:
    """Seed `reps` reps (one manager per 10), a back-office admin and their data."""
    if fresh:
        prepare_database(url)
    rng = random.Random(f"{seed}/world")
    db = Database(create_engine(settings_for(url)))
    today = utcnow().date()
    try:
        rows: dict[str, list[dict[str, Any]]] = {k: [] for k in (
            "account", "contact", "lead", "task", "order", "invoice")}
        async with db.write() as s:
            territories = []
            n_managers = max(1, -(-reps // REPS_PER_MANAGER))
            for t in range(n_managers):
                territories.append((await insert_rows(s, "territory", [
                    {"id": rid(rng), "code": f"T{t:03d}", "name": f"Territory {t}",
                     "region": f"Region {t // 10}"}]))[0])
            admin = await _person(s, rng, "backoffice", Role.ADMIN, None, None)
            products: list[dict[str, Any]] = []
            prices: list[int] = []
            for i in range(PRODUCTS + 2):
                pid = rid(rng)
                price = rng.choice([95, 150, 240, 399, 650, 990, 1450, 2290, 3500, 4990])
                active = i != PRODUCTS + 1  # the last one is archived already
                products.append({"id": pid, "sku": f"FL-{i:04d}", "name": f"Product {i}",
                                 "category": f"cat{i % 8}", "unit_price_cents": price,
                                 "unit_cost_cents": price * 6 // 10, "active": active})
                prices.append(price)
            await insert_rows(s, "product", products)
            await insert_rows(s, "priceEntry", [
                {"id": rid(rng), "product_id": products[i]["id"], "discount_bp": 500,
                 "valid_from": today - timedelta(days=30)} for i in range(0, PRODUCTS, 12)])
            product_ids = [p["id"] for p in products]
            managers: list[Person] = []
            rep_worlds: list[RepWorld] = []
            team: dict[str, list[str]] = {}
            for m in range(n_managers):
                boss = await _person(s, rng, f"manager{m:03d}", Role.MANAGER, None,
                                     territories[m])
                managers.append(boss)
                team[boss.name] = []
                for r in range(m * REPS_PER_MANAGER, min(reps, (m + 1) * REPS_PER_MANAGER)):
                    rep = await _person(s, rng, f"rep{r:04d}", Role.REP, boss, territories[m])
                    team[boss.name].append(rep.name)
                    rep_worlds.append(_rep_rows(rng, rep, territories[m], product_ids[:PRODUCTS],
                                                prices, today, rows))
        for entity in ("account", "contact", "lead", "task", "order", "invoice"):
            for i in range(0, len(rows[entity]), CHUNK):
                async with db.write() as s:
                    await insert_rows(s, entity, rows[entity][i:i + CHUNK])
    finally:
        await db.dispose()
    return World(url, admin, managers, rep_worlds, product_ids[:PRODUCTS],
                 doomed_product=product_ids[PRODUCTS], archived_product=product_ids[PRODUCTS + 1],
                 team=team)


async def _person(s: Any, rng: random.Random, name: str, role: Role, boss: Person | None,
                  territory: uuid.UUID | None) -> Person:
    email = f"{name}@fleet.example"
    user = await create_user(s, email=email, full_name=name.title(), password="",
                             password_hash=CHEAP_HASH, role=role,
                             manager_id=boss.user_id if boss else None,
                             territory_id=territory, user_id=rid(rng))
    return Person(name, email, user.id, role, boss.name if boss else None)


def _rep_rows(rng: random.Random, rep: Person, territory: uuid.UUID, products: list[uuid.UUID],
              prices: list[int], today: date, rows: dict[str, list[dict[str, Any]]]) -> RepWorld:
    accounts, tight = [], []
    contacts: dict[uuid.UUID, list[uuid.UUID]] = {}
    open_orders: list[uuid.UUID] = []
    for a in range(rng.randint(10, 20)):
        aid = rid(rng)
        kind = rng.random()
        credit = 0 if kind < 0.2 else (rng.choice([15_000, 25_000, 40_000]) if kind < 0.45
                                       else 5_000_000)
        if 0 < credit < 100_000:
            tight.append(aid)
        rows["account"].append({
            "id": aid, "name": f"{rep.name} customer {a}", "owner_id": rep.user_id,
            "territory_id": territory, "tier": rng.choice(list(AccountTier)),
            "segment": rng.choice(["retail", "horeca", "wholesale", "other"]),
            "street": f"{rng.randint(1, 200)} Main Street", "city": f"City {rng.randint(1, 50)}",
            "postal_code": f"{rng.randint(1000, 9999)}", "country": "SI",
            "lat": round(46 + rng.random(), 6), "lon": round(14 + rng.random(), 6),
            "phone": f"+386 1 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
            "credit_limit_cents": credit, "payment_terms_days": rng.choice([14, 30, 60]),
            "customer_since": today - timedelta(days=rng.randint(30, 3000))})
        accounts.append(aid)
        for c in range(rng.randint(1, 3)):
            cid = rid(rng)
            contacts.setdefault(aid, []).append(cid)
            rows["contact"].append({
                "id": cid, "account_id": aid, "first_name": f"First{c}",
                "last_name": f"Last{a}-{c}", "title": rng.choice(["Owner", "Buyer", "Manager"]),
                "email": f"c{c}.{aid.hex[:8]}@shop.example", "is_primary": c == 0,
                "phone": f"+386 40 {rng.randint(100, 999)} {rng.randint(100, 999)}"})
        for o in range(rng.randint(0, 2)):
            oid = rid(rng)
            lines: list[dict[str, Any]] = []
            for n in range(rng.randint(1, 4)):
                i = rng.randrange(len(products))
                q = rng.randint(1, 6)
                lines.append({"id": rid(rng), "line_no": n + 1, "product_id": products[i],
                              "quantity": q, "unit_price_cents": prices[i], "discount_bp": 0,
                              "line_total_cents": q * prices[i],
                              "unit_cost_cents": prices[i] * 6 // 10})
            total = sum(x["line_total_cents"] for x in lines)
            status = OrderStatus.SUBMITTED if o == 0 else OrderStatus.CONFIRMED
            if status is OrderStatus.SUBMITTED:
                open_orders.append(oid)
            rows["order"].append({
                "id": oid, "account_id": aid, "rep_id": rep.user_id,
                "order_date": today - timedelta(days=rng.randint(1, 20)), "status": status,
                "number": f"SEED-{oid.hex[-12:].upper()}", "subtotal_cents": total,
                "discount_cents": 0, "total_cents": total,
                "cost_cents": sum(x["quantity"] * x["unit_cost_cents"] for x in lines),
                "submitted_at": utcnow() - timedelta(days=1),
                "confirmed_at": utcnow() if status is OrderStatus.CONFIRMED else None,
                "_children": lines})
        if aid in tight and rng.random() < 0.5:
            amount = rng.randint(2_000, 8_000)
            rows["invoice"].append({
                "id": rid(rng), "number": f"INV-{aid.hex[:12].upper()}", "account_id": aid,
                "issue_date": today - timedelta(days=20), "due_date": today + timedelta(days=10),
                "amount_cents": amount, "amount_open_cents": amount, "status": InvoiceStatus.OPEN})
    route = rng.sample(accounts, min(len(accounts), rng.randint(6, 10)))
    for aid in route:
        rows["task"].append({"id": rid(rng), "title": "Visit", "kind": TaskKind.VISIT,
                             "due_date": today, "assignee_id": rep.user_id, "account_id": aid})
    leads = []
    for n in range(rng.randint(3, 5)):
        lid = rid(rng)
        leads.append(lid)
        rows["lead"].append({"id": lid, "company": f"{rep.name} prospect {n}",
                             "first_name": "Pat", "last_name": f"Prospect{n}",
                             "source": rng.choice([LeadSource.FIELD, LeadSource.WEB]),
                             "status": rng.choice([LeadStatus.NEW, LeadStatus.NEW,
                                                   LeadStatus.CONTACTED]),
                             "owner_id": rep.user_id, "territory_id": territory})
    return RepWorld(rep, accounts, route, leads, tight, contacts, open_orders)
