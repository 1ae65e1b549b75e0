"""Nested reads cost a constant number of SQL statements, not one per row."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import sqlalchemy as sa

from schema.bulk import insert_rows
from server.db import Database
from tests.conftest import World

NESTED = """query($n: Int!) { accounts(first: $n) { edges { node { name balanceCents
  owner { fullName } contacts { lastName }
  orders(first: 10) { totalCents lines { quantity product { name } } } } } } }"""


async def add_accounts(db: Database, world: World, count: int) -> None:
    rep = world.users["rep1"]
    async with db.write() as s:
        ids = await insert_rows(s, "account", [
            {"name": f"bulk {i:03d}", "owner_id": rep, "credit_limit_cents": 0}
            for i in range(count)])
        await insert_rows(s, "contact", [{"account_id": a, "first_name": "C", "last_name": "D"}
                                         for a in ids])
        orders = []
        for a in ids:
            for _ in range(2):
                lines = [{"id": uuid.uuid4(), "line_no": n + 1,
                          "product_id": world.products["cola" if n % 2 else "chips"],
                          "quantity": 2, "unit_price_cents": 100, "discount_bp": 0,
                          "line_total_cents": 200} for n in range(3)]
                orders.append({"account_id": a, "rep_id": rep, "order_date": date(2026, 1, 5),
                               "status": "fulfilled", "total_cents": 600, "_children": lines})
        await insert_rows(s, "order", orders)


def counting(app: Any) -> list[str]:
    statements: list[str] = []
    engine = app.state.services.db.engine.sync_engine

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")):
            statements.append(statement)

    return statements


async def test_fifty_accounts_with_orders_and_lines_cost_constant_statements(
        app: Any, as_user: Any, db: Database, world: World) -> None:
    await add_accounts(db, world, 50)
    rep1 = await as_user("rep1")
    statements = counting(app)
    small = await rep1.ok(NESTED, {"n": 5})
    few = len(statements)
    statements.clear()
    big = await rep1.ok(NESTED, {"n": 50})
    many = len(statements)
    assert len(big["accounts"]["edges"]) == 50 and len(small["accounts"]["edges"]) == 5
    lines = sum(len(o["lines"]) for e in big["accounts"]["edges"] for o in e["node"]["orders"])
    assert lines >= 50 * 2 * 3
    # auth, page, owners, contacts, invoices, orders, lines, products — whatever the size
    assert many == few, (few, many, statements[:12])
    assert many <= 9, statements
