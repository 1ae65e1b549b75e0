"""Factories and fixtures shared by the analytics tests: small hand-made data sets whose
right answers are known. Import `as_user` from here: it signs callers in without argon2."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from schema.bulk import insert_rows
from schema.identity.tables import User
from server.db import Database
from tests.conftest import Api, World

TODAY = date(2026, 6, 15)


@pytest.fixture
async def as_user(app: Any, client: httpx.AsyncClient, world: World) -> Any:
    """Like conftest's, but the tokens are issued directly: sign-in (argon2) is tested
    elsewhere and costs a second per caller on a busy machine."""
    cache: dict[str, Api] = {}
    services = app.state.services

    async def get(name: str) -> Api:
        if name not in cache:
            async with services.db.write() as s:
                user = await s.get(User, world.users[name])
                pair = await services.tokens.issue(s, user)
            cache[name] = Api(client, pair.access_token)
        return cache[name]

    return get


@dataclass
class Line:
    product: uuid.UUID
    quantity: int = 1
    price: int = 1000
    cost: int = 600


@dataclass
class Sale:
    account: uuid.UUID
    rep: uuid.UUID
    day: date
    lines: Sequence[Line]
    status: str = "fulfilled"
    id: uuid.UUID = field(default_factory=uuid.uuid4)


def order_row(sale: Sale) -> dict[str, Any]:
    lines = [{"id": uuid.uuid4(), "line_no": n, "product_id": ln.product,
              "quantity": ln.quantity, "unit_price_cents": ln.price, "discount_bp": 0,
              "line_total_cents": ln.quantity * ln.price, "unit_cost_cents": ln.cost}
             for n, ln in enumerate(sale.lines, start=1)]
    total = sum(ln["line_total_cents"] for ln in lines)
    return {"id": sale.id, "account_id": sale.account, "rep_id": sale.rep,
            "order_date": sale.day, "status": sale.status, "subtotal_cents": total,
            "total_cents": total, "cost_cents": sum(ln.quantity * ln.cost for ln in sale.lines),
            "_children": lines}


async def add_sales(db: Database, sales: Sequence[Sale]) -> None:
    async with db.write() as s:
        await insert_rows(s, "order", [order_row(x) for x in sales])


async def add_products(db: Database, *names: str, category: str = "misc",
                       price: int = 1000, cost: int = 600) -> dict[str, uuid.UUID]:
    async with db.write() as s:
        ids = await insert_rows(s, "product", [
            {"sku": f"T-{n}", "name": n, "category": category, "unit_price_cents": price,
             "unit_cost_cents": cost} for n in names])
    return dict(zip(names, ids, strict=True))


async def add_accounts(db: Database, owner: uuid.UUID, count: int, prefix: str,
                       territory: uuid.UUID | None = None) -> list[uuid.UUID]:
    async with db.write() as s:
        return await insert_rows(s, "account", [
            {"name": f"{prefix} {i:02d}", "owner_id": owner, "territory_id": territory,
             "credit_limit_cents": 0} for i in range(count)])


async def add(db: Database, entity: str, rows: Sequence[dict[str, Any]]) -> list[uuid.UUID]:
    async with db.write() as s:
        return await insert_rows(s, entity, rows)


def counting(app: Any) -> list[str]:
    """Every SQL statement the app runs from now on (transaction control and session
    settings left out)."""
    statements: list[str] = []
    engine = app.state.services.db.engine.sync_engine

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE",
                                     "SET LOCAL")):
            statements.append(statement)

    return statements
