"""`fieldsync jobs daily`: birthday and anniversary tasks, lead routing; idempotent, and
every change goes through the write path to the rep's devices."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from schema.jobs.daily import run_daily
from schema.jobs.reminders import month_days
from schema.scope import UNROUTED_KEY
from schema.tables import Change, Lead, Task
from server.db import Database
from tests.conftest import World
from tests.test_analytics_data import Line, Sale, add, add_sales, as_user

__all__ = ["as_user"]

TODAY = date(2026, 6, 15)


async def _tasks(db: Database) -> dict[str, Any]:
    async with db.read() as s:
        rows = (await s.execute(sa.select(Task.__table__))).mappings().all()
    return {r["dedupe_key"]: r for r in rows if r["dedupe_key"]}


@pytest.fixture
async def people(db: Database, world: World) -> dict[str, uuid.UUID]:
    a, u, cola = world.accounts, world.users, world.products["cola"]
    contacts = await add(db, "contact", [
        {"account_id": a["rep1a"], "first_name": "Soon", "last_name": "S",
         "birthday": date(1985, 6, 18)},
        {"account_id": a["rep1a"], "first_name": "Later", "last_name": "L",
         "birthday": date(1985, 6, 25)},
        {"account_id": a["rep1b"], "first_name": "Seeded", "last_name": "S",
         "birthday": date(1990, 6, 16)},
        {"account_id": a["rep3a"], "first_name": "Today", "last_name": "T",
         "birthday": date(2000, 6, 15)}])
    # The seed already made the task for the third contact's birthday this year.
    await add(db, "task", [{"title": "Birthday (seeded)", "kind": "birthday",
                            "due_date": date(2026, 6, 16), "assignee_id": u["rep1"],
                            "account_id": a["rep1b"], "contact_id": contacts[2],
                            "dedupe_key": f"birthday:{contacts[2]}:2026"}])
    anniv, quiet, gone = await add(db, "account", [
        {"name": name, "owner_id": u["rep2"], "customer_since": since, "status": status}
        for name, since, status in (("anniv", date(2024, 6, 17), "active"),
                                    ("quiet", date(2024, 6, 16), "active"),
                                    ("gone", date(2023, 6, 20), "inactive"))])
    # "anniv" and the inactive one bought lately, "quiet" not for a year; rep1b has no
    # customer_since: its first sale (20 June 2025) makes the anniversary.
    await add_sales(db, [
        Sale(anniv, u["rep2"], TODAY - timedelta(days=30), [Line(cola)]),
        Sale(gone, u["rep2"], TODAY - timedelta(days=30), [Line(cola)]),
        Sale(quiet, u["rep2"], date(2025, 6, 10), [Line(cola)]),
        Sale(a["rep1b"], u["rep1"], date(2025, 6, 20), [Line(cola)]),
        Sale(a["rep1b"], u["rep1"], TODAY - timedelta(days=3), [Line(cola)])])
    return {"soon": contacts[0], "today": contacts[3], "anniv": anniv}


async def test_tasks_for_birthdays_and_anniversaries(db: Database, world: World,
                                                     people: dict[str, uuid.UUID]) -> None:
    report = await run_daily(db, TODAY)
    assert (report.birthday_tasks, report.anniversary_tasks, report.already_there) == (2, 2, 1)
    tasks = await _tasks(db)
    soon = tasks[f"birthday:{people['soon']}:2026"]
    assert (soon["due_date"], soon["assignee_id"], soon["kind"].value) == (
        date(2026, 6, 18), world.users["rep1"], "birthday")
    assert soon["account_id"] == world.accounts["rep1a"]
    assert tasks[f"birthday:{people['today']}:2026"]["assignee_id"] == world.users["rep3"]
    two_years = tasks[f"anniversary:{people['anniv']}:2026"]
    assert two_years["due_date"] == date(2026, 6, 17)
    assert two_years["title"].endswith("2 years as a customer")
    first = tasks[f"anniversary:{world.accounts['rep1b']}:2026"]
    assert (first["due_date"], first["assignee_id"]) == (date(2026, 6, 20), world.users["rep1"])
    assert len(tasks) == 5  # the seeded one, two birthdays, two anniversaries

    again = await run_daily(db, TODAY)
    assert (again.birthday_tasks, again.anniversary_tasks, again.already_there) == (0, 0, 5)
    tomorrow = await run_daily(db, TODAY + timedelta(days=1))
    assert (tomorrow.birthday_tasks, tomorrow.already_there) == (0, 4)
    assert len(await _tasks(db)) == 5
    later = await run_daily(db, TODAY + timedelta(days=3))  # 25 June is now a week away
    assert (later.birthday_tasks, later.anniversary_tasks) == (1, 0)


async def test_tasks_sync_to_the_owner(db: Database, as_user: Any,
                                       people: dict[str, uuid.UUID]) -> None:
    await run_daily(db, TODAY)
    query = """{ tasks(filter: {done: false}) { edges { node { title kind dueDate } } } }"""
    titles = {e["node"]["title"] for e in
              (await (await as_user("rep1")).ok(query))["tasks"]["edges"]}
    assert "Birthday: Soon S (rep1 shop 0)" in titles
    assert not any("Today" in t for t in titles)  # rep3's contact
    async with db.read() as s:
        logged = (await s.execute(sa.select(sa.func.count()).select_from(Change).where(
            Change.entity == "task", Change.op == "upsert"))).scalar_one()
    assert logged == 5  # the seeded task and the four new ones, each in the change log


def test_february_29() -> None:
    assert month_days(date(2027, 2, 26), 3)[229] == date(2027, 2, 28)
    assert month_days(date(2028, 2, 26), 3)[229] == date(2028, 2, 29)
    assert 229 not in month_days(date(2027, 3, 1), 30)


async def test_routes_qualified_leads_once(db: Database, world: World, as_user: Any) -> None:
    u, t = world.users, world.territory
    await add(db, "lead", [{"company": f"open {k}", "owner_id": u["rep1"], "status": "new"}
                           for k in range(2)])
    made = datetime(2026, 6, 1, tzinfo=UTC)
    routed = await add(db, "lead", [
        {"company": c, "status": "qualified", "territory_id": t,
         "created_at": made + timedelta(hours=k)} for k, c in enumerate("AB")])
    stays = await add(db, "lead", [
        {"company": "no territory", "status": "qualified"},
        {"company": "not qualified", "status": "new", "territory_id": t}])
    report = await run_daily(db, TODAY)
    assert (report.leads_routed, report.leads_unroutable) == (2, 1)
    async with db.read() as s:
        owners = dict((await s.execute(sa.select(Lead.id, Lead.owner_id).where(
            Lead.id.in_(routed + stays)))).all())
        moves = (await s.execute(sa.select(Change.row_id, Change.scope_key,
                                           Change.prev_scope_key).where(
            Change.entity == "lead", Change.prev_scope_key == UNROUTED_KEY))).all()
    # A → rep2 (rep1 holds two open leads; rep2 before rep3 by email), B → rep3
    assert [owners[i] for i in routed] == [u["rep2"], u["rep3"]]
    assert [owners[i] for i in stays] == [None, None]
    assert sorted((r, s) for r, s, _ in moves) == sorted(zip(routed, [u["rep2"], u["rep3"]],
                                                             strict=True))
    leads = (await (await as_user("rep3")).ok("{ leads { edges { node { company } } } }"))
    assert [e["node"]["company"] for e in leads["leads"]["edges"]] == ["B"]
    again = await run_daily(db, TODAY)
    assert (again.leads_routed, again.leads_unroutable) == (0, 1)
