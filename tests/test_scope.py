"""The one scope rule, entity by entity: a rep never reads or writes another rep's data —
not by guessing an id, not through node(id:), not through a nested field, not by pull,
not by pointing a write at it."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import pytest

from schema.bulk import insert_rows
from server.db import Database
from tests.conftest import World

NODE = "query($id: ID!) { node(id: $id) { id } }"
PUSH = """mutation($input: SyncPushInput!) { syncPush(input: $input) {
  results { status error { code field } } } }"""
PULL = """query($c: ID!, $cursor: String) { syncPull(clientId: $c, cursor: $cursor, limit: 1000) {
  changes { entity id op } cursor hasMore } }"""
LISTS = {
    "account": "accounts", "contact": "contacts", "lead": "leads", "order": "orders",
    "invoice": "invoices", "visitNote": "visitNotes", "case": "cases", "task": "tasks",
    "priceEntry": "priceEntries",
}
UPDATES = {
    "account": ("updateAccount", {"name": "hijacked"}),
    "contact": ("updateContact", {"firstName": "hijacked"}),
    "lead": ("updateLead", {"company": "hijacked"}),
    "order": ("updateOrder", {"notes": "hijacked"}),
    "invoice": ("updateInvoice", {"number": "hijacked"}),
    "visitNote": ("updateVisitNote", {"body": "hijacked"}),
    "case": ("updateCase", {"subject": "hijacked"}),
    "task": ("updateTask", {"title": "hijacked"}),
    "priceEntry": ("updatePriceEntry", {"discountBp": 9000}),
}


async def foreign_records(db: Database, world: World) -> dict[str, uuid.UUID]:
    """One record of every entity, all in rep2's scope."""
    acc, rep2 = world.accounts["rep2a"], world.users["rep2"]
    today = date.today()
    async with db.write() as s:
        contact = (await insert_rows(s, "contact", [{"account_id": acc, "first_name": "Zoe",
                                                     "last_name": "Other"}]))[0]
        order = (await insert_rows(s, "order", [{
            "account_id": acc, "rep_id": rep2, "order_date": today, "status": "submitted",
            "total_cents": 1000, "_children": [{"id": uuid.uuid4(), "line_no": 1,
                                                "product_id": world.products["cola"],
                                                "quantity": 1, "unit_price_cents": 1000,
                                                "discount_bp": 0, "line_total_cents": 1000}]}]))[0]
        invoice = (await insert_rows(s, "invoice", [{
            "number": "INV-1", "account_id": acc, "issue_date": today,
            "due_date": today + timedelta(days=30), "amount_cents": 1000,
            "amount_open_cents": 1000}]))[0]
        note = (await insert_rows(s, "visitNote", [{"account_id": acc, "author_id": rep2,
                                                    "visited_at": __import__("sync.model").model.utcnow(),
                                                    "body": "secret"}]))[0]
        case = (await insert_rows(s, "case", [{"account_id": acc, "category": "wrong_invoice",
                                               "subject": "wrong invoice"}]))[0]
        task = (await insert_rows(s, "task", [{"account_id": acc, "title": "call",
                                               "due_date": today, "assignee_id": rep2}]))[0]
        lead = (await insert_rows(s, "lead", [{"company": "Prospect", "owner_id": rep2}]))[0]
        price = (await insert_rows(s, "priceEntry", [{"product_id": world.products["cola"],
                                                      "account_id": acc, "discount_bp": 500,
                                                      "valid_from": today}]))[0]
    return {"account": acc, "contact": contact, "order": order, "invoice": invoice,
            "visitNote": note, "case": case, "task": task, "lead": lead, "priceEntry": price}


@pytest.fixture
async def foreign(db: Database, world: World) -> dict[str, uuid.UUID]:
    return await foreign_records(db, world)


@pytest.mark.parametrize("entity", sorted(LISTS))
async def test_foreign_record_is_invisible_and_unwritable(as_user: Any, foreign: dict[str, uuid.UUID],
                                                          entity: str) -> None:
    rid = str(foreign[entity])
    rep1, manager1, manager2 = await as_user("rep1"), await as_user("manager1"), await as_user("manager2")
    # by id guessing / node(id:)
    assert (await rep1.ok(NODE, {"id": rid}))["node"] is None
    assert (await manager2.ok(NODE, {"id": rid}))["node"] is None
    assert (await manager1.ok(NODE, {"id": rid}))["node"] == {"id": rid}
    # lists
    field = LISTS[entity]
    listed = await rep1.ok(f"{{ {field}(first: 200) {{ edges {{ node {{ id }} }} }} }}")
    assert rid not in {e["node"]["id"] for e in listed[field]["edges"]}
    # a GraphQL write
    name, change = UPDATES[entity]
    first_type = name.removeprefix("update")
    body = await rep1.ok(f"""mutation($id: ID!, $input: {first_type}Input!) {{ {name}(id: $id,
        input: $input) {{ status errors {{ code }} }} }}""", {"id": rid, "input": change})
    assert body[name]["status"] == "REJECTED"
    assert body[name]["errors"][0]["code"] == "NOT_FOUND"
    # a sync push naming it
    wire = {k: v for k, v in change.items()}
    res = await rep1.ok(PUSH, {"input": {"clientId": f"c-{entity}", "protocolVersion": 1,
        "mutations": [{"mutationId": 1, "entity": entity, "op": "UPDATE", "id": rid,
                       "baseVersion": 1, "fields": wire}]}})
    assert res["syncPush"]["results"][0] == {"status": "REJECTED",
                                             "error": {"code": "NOT_FOUND", "field": "id"}}
    # a delete does nothing to it
    deleted = await rep1.ok(PUSH, {"input": {"clientId": f"c-{entity}", "protocolVersion": 1,
        "mutations": [{"mutationId": 2, "entity": entity, "op": "DELETE", "id": rid}]}})
    assert deleted["syncPush"]["results"][0]["status"] in ("APPLIED", "REJECTED")
    assert (await manager1.ok(NODE, {"id": rid}))["node"] == {"id": rid}
    # pull
    cursor, seen = None, set()
    while True:
        page = (await rep1.ok(PULL, {"c": f"pull-{entity}", "cursor": cursor}))["syncPull"]
        seen |= {c["id"] for c in page["changes"]}
        cursor = page["cursor"]
        if not page["hasMore"]:
            break
    assert rid not in seen


async def test_nested_fields_do_not_leak(as_user: Any, foreign: dict[str, uuid.UUID],
                                         world: World) -> None:
    rep1 = await as_user("rep1")
    body = await rep1.ok("""{ accounts(first: 50) { edges { node { id contacts { id }
        orders { id account { id } } invoices { id } openCases { id } tasks { id } } } } }""")
    ids = str(body)
    for rid in foreign.values():
        assert str(rid) not in ids


@pytest.mark.parametrize(("entity", "fields"), [
    ("contact", {"accountId": "rep2a", "firstName": "A", "lastName": "B"}),
    ("order", {"accountId": "rep1a", "contactId": "@contact",
               "lines": [{"productId": "cola", "quantity": 1}]}),
    ("task", {"title": "x", "dueDate": "2030-01-01", "accountId": "rep1a",
              "contactId": "@contact"}),
    ("visitNote", {"accountId": "rep2a", "body": "x"}),
    ("case", {"accountId": "rep1a", "contactId": "@contact", "category": "OTHER",
              "subject": "x"}),
])
async def test_writes_cannot_point_at_foreign_records(as_user: Any, foreign: dict[str, uuid.UUID],
                                                      world: World, entity: str,
                                                      fields: dict[str, Any]) -> None:
    rep1 = await as_user("rep1")

    def resolve(v: Any) -> Any:
        if isinstance(v, str) and v in world.accounts:
            return str(world.accounts[v])
        if isinstance(v, str) and v.startswith("@"):
            return str(foreign[v[1:]])
        if isinstance(v, list):
            return [{k: str(world.products[x]) if k == "productId" else x for k, x in i.items()}
                    for i in v]
        return v

    res = await rep1.ok(PUSH, {"input": {"clientId": "ptr", "protocolVersion": 1, "mutations": [
        {"mutationId": 1, "entity": entity, "op": "CREATE", "id": str(uuid.uuid4()),
         "fields": {k: resolve(v) for k, v in fields.items()}}]}})
    result = res["syncPush"]["results"][0]
    assert result["status"] == "REJECTED" and result["error"]["code"] == "NOT_FOUND", result


async def test_reps_cannot_change_credit_limits_prices_or_invoices(
        as_user: Any, db: Database, world: World) -> None:
    rep1, manager1 = await as_user("rep1"), await as_user("manager1")
    acc = str(world.accounts["rep1a"])
    body = await rep1.ok("""mutation($id: ID!) { updateAccount(id: $id, baseVersion: 1,
        input: {creditLimitCents: 99999999, ownerId: null, name: "Renamed"}) {
        status conflictId node { name creditLimitCents } errors { code } } }""", {"id": acc})
    out = body["updateAccount"]
    assert out["node"] == {"name": "Renamed", "creditLimitCents": 100_000}
    assert out["status"] == "CONFLICT" and out["conflictId"]
    for name, inp in (("updateProduct", {"unitPriceCents": 1}),):
        r = await rep1.ok(f"""mutation($id: ID!) {{ {name}(id: $id, input: {{unitPriceCents: 1}})
            {{ status errors {{ code }} }} }}""", {"id": str(world.products["cola"])})
        assert r[name] == {"status": "REJECTED", "errors": [{"code": "READ_ONLY"}]}, inp
    ok = await manager1.ok("""mutation($id: ID!) { updateAccount(id: $id,
        input: {creditLimitCents: 5000}) { status node { creditLimitCents } } }""", {"id": acc})
    assert ok["updateAccount"] == {"status": "APPLIED", "node": {"creditLimitCents": 5000}}


async def test_inactive_products_are_hidden_from_reps_only(as_user: Any, world: World) -> None:
    rep1, manager1 = await as_user("rep1"), await as_user("manager1")
    q = "{ products { edges { node { sku unitCostCents } } } }"
    rep_view = {e["node"]["sku"]: e["node"] for e in (await rep1.ok(q))["products"]["edges"]}
    mgr_view = {e["node"]["sku"]: e["node"] for e in (await manager1.ok(q))["products"]["edges"]}
    assert set(rep_view) == {"SKU-1", "SKU-2"} and set(mgr_view) == {"SKU-1", "SKU-2", "SKU-OLD"}
    assert rep_view["SKU-1"]["unitCostCents"] is None
    assert mgr_view["SKU-1"]["unitCostCents"] == 600
