"""Lead funnel (known counts, rates and medians, per scope) and the lead routing preview."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from schema.leads.tables import LeadStatusChange
from server.db import Database
from tests.conftest import World
from tests.test_analytics_data import add, as_user

__all__ = ["as_user"]

FUNNEL = """query($t: ID) { leadFunnel(period: {start: "2026-06-01", end: "2026-06-14"},
                                      teamId: $t) {
  total { leads contacted qualified converted disqualified conversionRate }
  byStatus { status count }
  stages { stage reached conversionFromPrevious medianDaysInStage finishedStays }
  bySource { source counts { leads converted } }
  byOwner { owner { email } counts { leads } }
  medianDaysToConvert } }"""

ROUTING = """{ leadRouting { rule unroutableLeadIds
  pending { lead { company } rep { email } territory { code } repOpenLeads } } }"""

START = datetime(2026, 6, 1, 9, tzinfo=UTC)


async def _lead(db: Database, company: str, owner: uuid.UUID | None, source: str,
                path: list[tuple[str, float]], created: datetime = START,
                territory: uuid.UUID | None = None) -> uuid.UUID:
    """A lead that went through `path`: (status, days after creation) per stage."""
    status, last = path[-1]
    converted = created + timedelta(days=last) if status == "converted" else None
    lead_id = (await add(db, "lead", [{
        "company": company, "owner_id": owner, "source": source, "status": status,
        "territory_id": territory, "created_at": created, "converted_at": converted,
        "status_changed_at": created + timedelta(days=last)}]))[0]
    history, previous = [], None
    for stage, days in path:
        history.append({"id": uuid.uuid4(), "lead_id": lead_id, "from_status": previous,
                        "to_status": stage, "at": created + timedelta(days=days)})
        previous = stage
    async with db.write() as s:
        await s.execute(sa.insert(LeadStatusChange), history)
    return lead_id


@pytest.fixture
async def leads(db: Database, world: World) -> None:
    u = world.users
    await _lead(db, "L1", u["rep1"], "field",
                [("new", 0), ("contacted", 2), ("qualified", 6), ("converted", 12)])
    await _lead(db, "L2", u["rep1"], "web", [("new", 0), ("contacted", 4), ("disqualified", 5)])
    await _lead(db, "L3", u["rep1"], "field", [("new", 0), ("qualified", 3)])
    await _lead(db, "L4", u["rep3"], "web", [("new", 0)])
    await _lead(db, "L5", None, "campaign", [("new", 0)], territory=world.territory)
    await _lead(db, "L6", u["rep1"], "field", [("new", 0)], created=START - timedelta(days=20))


async def test_counts_rates_and_medians(as_user: Any, leads: None) -> None:
    f = (await (await as_user("rep1")).ok(FUNNEL))["leadFunnel"]
    assert f["total"] == {"leads": 3, "contacted": 3, "qualified": 2, "converted": 1,
                          "disqualified": 1, "conversionRate": pytest.approx(1 / 3)}
    by_status = {s["status"]: s["count"] for s in f["byStatus"]}
    assert by_status == {"NEW": 0, "CONTACTED": 0, "QUALIFIED": 1, "CONVERTED": 1,
                         "DISQUALIFIED": 1}
    stages = {s["stage"]: s for s in f["stages"]}
    assert [s["reached"] for s in f["stages"]] == [3, 3, 2, 1]
    assert stages["NEW"]["conversionFromPrevious"] is None
    assert stages["QUALIFIED"]["conversionFromPrevious"] == pytest.approx(2 / 3)
    assert stages["CONVERTED"]["conversionFromPrevious"] == pytest.approx(1 / 2)
    # NEW: 2, 4 and 3 days → 3; CONTACTED: 4 and 1 → 2.5; QUALIFIED: 6
    assert stages["NEW"]["medianDaysInStage"] == pytest.approx(3)
    assert stages["CONTACTED"]["medianDaysInStage"] == pytest.approx(2.5)
    assert stages["QUALIFIED"]["medianDaysInStage"] == pytest.approx(6)
    assert (stages["NEW"]["finishedStays"], stages["CONVERTED"]["finishedStays"]) == (3, 0)
    assert f["medianDaysToConvert"] == pytest.approx(12)
    assert {s["source"]: (s["counts"]["leads"], s["counts"]["converted"])
            for s in f["bySource"]} == {"FIELD": (2, 1), "WEB": (1, 0)}
    assert [(o["owner"]["email"], o["counts"]["leads"]) for o in f["byOwner"]] == [
        ("rep1@example.com", 3)]


#: (caller, teamId of) → (leads they see, owners of those leads; None: unrouted)
FUNNEL_SCOPE: dict[tuple[str, str | None], tuple[int, set[Any]]] = {
    ("rep1", None): (3, {"rep1@example.com"}),
    ("rep3", None): (1, {"rep3@example.com"}),
    ("manager1", None): (4, {"rep1@example.com", None}),
    ("manager2", None): (2, {"rep3@example.com", None}),
    ("admin", None): (5, {"rep1@example.com", "rep3@example.com", None}),
    ("admin", "manager1"): (3, {"rep1@example.com"}),
    ("manager2", "manager1"): (0, set()),
}


async def test_scope_and_team(as_user: Any, world: World, leads: None) -> None:
    for (caller, team), (seen, owners) in FUNNEL_SCOPE.items():
        api = await as_user(caller)
        variables = {"t": str(world.users[team]) if team else None}
        f = (await api.ok(FUNNEL, variables))["leadFunnel"]
        assert f["total"]["leads"] == seen, (caller, team)
        assert {o["owner"]["email"] if o["owner"] else None for o in f["byOwner"]} == owners


async def test_routing_preview(as_user: Any, db: Database, world: World) -> None:
    """rep1 has 2 open leads, rep2 1, rep3 none, all in one territory: three qualified
    unowned leads go to rep3, rep2 (a tie with rep3, broken by email), then rep3."""
    u, t = world.users, world.territory
    for rep, n in (("rep1", 2), ("rep2", 1)):
        for k in range(n):
            await _lead(db, f"{rep}-open-{k}", u[rep], "field", [("new", 0)])
    for k, company in enumerate(("A", "B", "C")):
        await _lead(db, company, None, "web", [("new", 0), ("qualified", 1)],
                    created=START + timedelta(hours=k), territory=t)
    nowhere = await _lead(db, "Nowhere", None, "web", [("new", 0), ("qualified", 1)])
    await _lead(db, "Not yet", None, "web", [("new", 0)], territory=t)
    routing = (await (await as_user("admin")).ok(ROUTING))["leadRouting"]
    assert "fewest open leads" in routing["rule"]
    assert [(p["lead"]["company"], p["rep"]["email"], p["repOpenLeads"])
            for p in routing["pending"]] == [("A", "rep3@example.com", 0),
                                             ("B", "rep2@example.com", 1),
                                             ("C", "rep3@example.com", 1)]
    assert {p["territory"]["code"] for p in routing["pending"]} == {"N"}
    assert routing["unroutableLeadIds"] == [str(nowhere)]
    # A manager sees the shared pool's plan for their own team only: not who else gets
    # a lead, nor another team's workload.
    for manager, expected in (("manager1", [("B", "rep2@example.com", 1)]),
                              ("manager2", [("A", "rep3@example.com", 0),
                                            ("C", "rep3@example.com", 1)])):
        mine = (await (await as_user(manager)).ok(ROUTING))["leadRouting"]
        assert [(p["lead"]["company"], p["rep"]["email"], p["repOpenLeads"])
                for p in mine["pending"]] == expected, manager
        assert mine["unroutableLeadIds"] == [str(nowhere)]
    body = await (await as_user("rep1")).raw(ROUTING)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
