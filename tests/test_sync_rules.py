"""The sync engine's rules, through the real GraphQL wire protocol."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import sync.pull as pull_module
from schema.bulk import insert_rows
from server.db import Database
from sync.bulk import COPY_MIN_ROWS
from tests.conftest import World

PUSH = """mutation($input: SyncPushInput!) { syncPush(input: $input) { lastMutationId
  results { mutationId status id version data conflictId
            error { code message field retryable } warnings { code } } } }"""
PULL = """query($c: ID!, $cursor: String) { syncPull(clientId: $c, cursor: $cursor, limit: 1000) {
  changes { entity id op version data } cursor hasMore reset lastMutationId } }"""
CONFLICTS = """{ conflicts { id entity recordId rule fields base server client outcome userId
  resolved } }"""


class Device:
    """A minimal offline client: mutation ids, push, pull."""

    def __init__(self, api: Any, client_id: str) -> None:
        self.api, self.client_id, self.next_id, self.cursor = api, client_id, 1, None

    def m(self, entity: str, op: str, id: str, fields: dict[str, Any] | None = None,
          base: int | None = None, when: datetime | None = None) -> dict[str, Any]:
        mid, self.next_id = self.next_id, self.next_id + 1
        out = {"mutationId": mid, "entity": entity, "op": op, "id": id, "fields": fields,
               "baseVersion": base}
        if when:
            out["clientTime"] = when.isoformat()
        return out

    async def push(self, *mutations: dict[str, Any], version: int = 1,
                   **options: Any) -> dict[str, Any]:
        body = await self.api.raw(PUSH, {"input": {"clientId": self.client_id,
                                                   "protocolVersion": version,
                                                   "mutations": list(mutations), **options}})
        return body

    async def push_ok(self, *mutations: dict[str, Any], **options: Any) -> list[dict[str, Any]]:
        body = await self.push(*mutations, **options)
        assert "errors" not in body, body
        return body["data"]["syncPush"]["results"]

    async def pull(self) -> list[dict[str, Any]]:
        changes = []
        while True:
            page = (await self.api.ok(PULL, {"c": self.client_id, "cursor": self.cursor}))["syncPull"]
            changes += page["changes"]
            self.cursor = page["cursor"]
            if not page["hasMore"]:
                return changes


async def test_field_merge_keeps_both_sides_and_records_the_loser(as_user: Any, world: World) -> None:
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    phone = Device(rep1, "phone")
    acc = str(world.accounts["rep1a"])
    earlier = datetime.now(UTC) - timedelta(hours=2)
    # the manager edits phone and name online; the rep edited name and city offline earlier
    await manager.ok("""mutation($id: ID!) { updateAccount(id: $id, baseVersion: 1,
        input: {phone: "+3200", name: "Manager name"}) { status } }""", {"id": acc})
    [res] = await phone.push_ok(phone.m("account", "UPDATE", acc,
                                        {"name": "Rep name", "city": "Ghent"}, base=1, when=earlier))
    assert res["status"] == "CONFLICT" and res["conflictId"]
    assert res["data"]["city"] == "Ghent"            # changed on one side only: kept
    assert res["data"]["phone"] == "+3200"           # the server's one-sided change: kept
    assert res["data"]["name"] == "Manager name"     # both changed: the later edit wins
    [conflict] = (await manager.ok(CONFLICTS))["conflicts"]
    assert conflict["client"] == {"name": "Rep name"} and conflict["rule"] == "field-merge:lww"
    assert conflict["base"]["name"] == "rep1 shop 0"
    assert conflict["server"]["name"] == "Manager name"


async def test_one_sided_changes_merge_without_conflict(as_user: Any, world: World) -> None:
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    phone = Device(rep1, "phone")
    acc = str(world.accounts["rep1a"])
    await manager.ok("""mutation($id: ID!) { updateAccount(id: $id, baseVersion: 1,
        input: {phone: "+3200"}) { status } }""", {"id": acc})
    [res] = await phone.push_ok(phone.m("account", "UPDATE", acc, {"city": "Ghent"}, base=1))
    assert res["status"] == "MERGED" and res["conflictId"] is None
    assert (res["data"]["city"], res["data"]["phone"]) == ("Ghent", "+3200")


async def test_address_merges_as_one_group(as_user: Any, world: World) -> None:
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    phone = Device(rep1, "phone")
    acc = str(world.accounts["rep1a"])
    await manager.ok("""mutation($id: ID!) { updateAccount(id: $id, baseVersion: 1,
        input: {street: "1 Main St", city: "Brussels"}) { status } }""", {"id": acc})
    earlier = datetime.now(UTC) - timedelta(hours=1)
    [res] = await phone.push_ok(phone.m("account", "UPDATE", acc, {"postalCode": "9000"},
                                        base=1, when=earlier))
    # the rep touched the address group, the manager changed it later: the manager's
    # whole address stands, the rep's postal code is kept in the conflict
    assert res["status"] == "CONFLICT"
    assert (res["data"]["street"], res["data"]["city"], res["data"]["postalCode"]) == (
        "1 Main St", "Brussels", None)


async def test_lead_status_merges_by_rank_and_rejects_bad_transitions(as_user: Any, world: World) -> None:
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    phone = Device(rep1, "phone")
    lead = str(uuid.uuid4())
    [c] = await phone.push_ok(phone.m("lead", "CREATE", lead, {"company": "Acme"}))
    assert c["status"] == "APPLIED" and c["data"]["ownerId"] == str(world.users["rep1"])
    await manager.ok("""mutation($id: ID!) { updateLead(id: $id, baseVersion: 1,
        input: {status: QUALIFIED}) { status errors { code } } }""", {"id": lead})
    later = datetime.now(UTC)
    [r] = await phone.push_ok(phone.m("lead", "UPDATE", lead, {"status": "CONTACTED"}, base=1,
                                      when=later))
    assert r["data"]["status"] == "QUALIFIED" and r["status"] == "CONFLICT"
    [bad] = await phone.push_ok(phone.m("lead", "UPDATE", lead, {"status": "NEW"}, base=3))
    assert bad["status"] in ("REJECTED", "CONFLICT")
    [conv] = await phone.push_ok(phone.m("lead", "UPDATE", lead, {"status": "CONVERTED"}, base=3))
    assert conv["status"] == "REJECTED" and conv["error"]["code"] == "USE_CONVERT_LEAD"


async def test_visit_notes_only_their_author_edits(as_user: Any, world: World) -> None:
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    phone = Device(rep1, "phone")
    note = str(uuid.uuid4())
    [c] = await phone.push_ok(phone.m("visitNote", "CREATE", note,
                                      {"accountId": str(world.accounts["rep1a"]), "body": "hi"}))
    assert c["status"] == "APPLIED" and c["data"]["authorId"] == str(world.users["rep1"])
    # the manager is privileged and may correct it; another rep of the team could not see it
    rep2 = Device(await as_user("rep2"), "rep2")
    [r] = await rep2.push_ok(rep2.m("visitNote", "UPDATE", note, {"body": "x"}, base=1))
    assert r["status"] == "REJECTED" and r["error"]["code"] == "NOT_FOUND"
    _ = manager


async def test_confirmed_order_cannot_be_edited_from_the_field(as_user: Any, world: World) -> None:
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    phone = Device(rep1, "phone")
    order = str(uuid.uuid4())
    [c] = await phone.push_ok(phone.m("order", "CREATE", order, {
        "accountId": str(world.accounts["rep1a"]),
        "lines": [{"productId": str(world.products["chips"]), "quantity": 4}]}))
    assert c["status"] == "APPLIED" and c["data"]["totalCents"] == 1000
    ok = await manager.ok("""mutation($id: ID!) { updateOrder(id: $id, input: {status: CONFIRMED})
        { status node { status } errors { code message } } }""", {"id": order})
    assert (ok["updateOrder"]["node"] or {}).get("status") == "CONFIRMED", ok
    [r] = await phone.push_ok(phone.m("order", "UPDATE", order, {
        "lines": [{"productId": str(world.products["chips"]), "quantity": 40}]}, base=1))
    assert r["status"] == "REJECTED" and r["error"]["code"] == "ORDER_LOCKED"
    assert r["data"]["status"] == "CONFIRMED"


async def test_inactive_product_order_is_kept_rejected_then_fixed(as_user: Any, world: World) -> None:
    phone = Device(await as_user("rep1"), "phone")
    order = str(uuid.uuid4())
    acc = str(world.accounts["rep1a"])
    [r] = await phone.push_ok(phone.m("order", "CREATE", order, {
        "accountId": acc, "lines": [{"productId": str(world.products["old"]), "quantity": 1}]}))
    assert r["status"] == "REJECTED" and r["error"]["code"] == "PRODUCT_INACTIVE"
    assert r["data"]["status"] == "REJECTED" and r["version"] == 1
    [fixed] = await phone.push_ok(phone.m("order", "UPDATE", order, {
        "status": "SUBMITTED", "lines": [{"productId": str(world.products["cola"]), "quantity": 1}]},
        base=1))
    assert fixed["status"] == "APPLIED" and fixed["data"]["status"] == "SUBMITTED"
    assert fixed["data"]["number"].startswith("SO-")


async def test_a_rep_cannot_date_an_order_onto_another_price_list(
        as_user: Any, world: World, db: Database) -> None:
    """The order date picks the prices, so a rep may date an order only as far back as an
    offline order can be (31 days) and not ahead; the order is kept, REJECTED, to fix.
    A manager may set any date."""
    today = datetime.now(UTC).date()
    long_ago = today - timedelta(days=400)
    async with db.write() as s:  # last year's promotion: cola at 1 cent
        await insert_rows(s, "priceEntry", [{
            "product_id": world.products["cola"], "unit_price_cents": 1,
            "valid_from": long_ago - timedelta(days=10), "valid_to": long_ago + timedelta(days=10)}])
    phone = Device(await as_user("rep1"), "phone")
    acc = str(world.accounts["rep1a"])

    def order(day: Any, device: Device = phone) -> dict[str, Any]:
        return device.m("order", "CREATE", str(uuid.uuid4()), {
            "accountId": acc, "orderDate": day.isoformat(),
            "lines": [{"productId": str(world.products["cola"]), "quantity": 10}]})

    old, ahead, offline = await phone.push_ok(order(long_ago), order(today + timedelta(days=3)),
                                              order(today - timedelta(days=20)))
    for r in (old, ahead):
        assert (r["status"], r["error"]["code"], r["error"]["field"]) == (
            "REJECTED", "ORDER_DATE_OUT_OF_RANGE", "orderDate"), r
        assert r["data"]["status"] == "REJECTED"  # kept, for the rep to fix
    assert offline["status"] == "APPLIED" and offline["data"]["totalCents"] == 10 * 1000
    # Fixing the date resubmits it at today's prices.
    [fixed] = await phone.push_ok(phone.m("order", "UPDATE", old["id"],
                                          {"orderDate": today.isoformat()}, base=1))
    assert fixed["status"] == "APPLIED" and fixed["data"]["totalCents"] == 10 * 1000
    manager = Device(await as_user("manager1"), "desk")
    [back_office] = await manager.push_ok(order(long_ago, manager))
    assert back_office["status"] == "APPLIED" and back_office["data"]["totalCents"] == 10


async def test_a_push_without_data_answers_applied_bare_and_the_pull_brings_the_record(
        as_user: Any, world: World) -> None:
    """`returnData: false`: APPLIED results carry the version only; a kept (REJECTED)
    order still comes back whole; a resend replays the original answers; the pull brings
    the applied order as the server priced it."""
    phone = Device(await as_user("rep1"), "phone")
    acc = str(world.accounts["rep1a"])
    ok, bad = str(uuid.uuid4()), str(uuid.uuid4())
    batch = [
        phone.m("order", "CREATE", ok, {
            "accountId": acc, "lines": [{"productId": str(world.products["chips"]), "quantity": 4}]}),
        phone.m("order", "CREATE", bad, {
            "accountId": acc, "lines": [{"productId": str(world.products["old"]), "quantity": 1}]}),
        phone.m("contact", "CREATE", str(uuid.uuid4()), {
            "accountId": acc, "firstName": "Ada", "lastName": "Lovelace"}),
        # Another rep's account: refused as before, and nothing of it comes back.
        phone.m("account", "UPDATE", str(world.accounts["rep2a"]), {"name": "Mine now"},
                base=1),
    ]
    refused = await phone.push(*batch, returnData="no")  # not a Boolean: nothing applied
    assert refused["data"] is None and "returnData" in refused["errors"][0]["message"]
    first = await phone.push_ok(*batch, returnData=False)
    assert (first[3]["status"], first[3]["error"]["code"], first[3]["data"]) == (
        "REJECTED", "NOT_FOUND", None)
    assert [(r["status"], r["version"], r["data"]) for r in (first[0], first[2])] == [
        ("APPLIED", 1, None), ("APPLIED", 1, None)]
    assert first[1]["status"] == "REJECTED" and first[1]["data"]["status"] == "REJECTED"
    assert await phone.push_ok(*batch) == first  # the original answers, data or not
    [order] = [c for c in await phone.pull() if c["id"] == ok]
    assert order["version"] == 1 and order["data"]["totalCents"] == 1000
    assert order["data"]["number"].startswith("SO-")


async def test_credit_check_counts_earlier_orders_in_the_same_batch(as_user: Any, world: World) -> None:
    phone = Device(await as_user("rep1"), "phone")
    acc = str(world.accounts["rep1a"])  # credit limit 1,000.00
    line = [{"productId": str(world.products["cola"]), "quantity": 60}]  # 600.00 each
    a, b = await phone.push_ok(
        phone.m("order", "CREATE", str(uuid.uuid4()), {"accountId": acc, "lines": line}),
        phone.m("order", "CREATE", str(uuid.uuid4()), {"accountId": acc, "lines": line}))
    assert a["status"] == "APPLIED"
    assert b["status"] == "REJECTED" and b["error"]["code"] == "CREDIT_LIMIT_EXCEEDED"


async def test_an_edited_submitted_order_is_judged_without_its_old_total(
        as_user: Any, world: World) -> None:
    """Raising a stored order from 600.00 to 900.00 on a 1,000.00 credit line passes: its
    own old total is not exposure against itself (600 + 900 would exceed the line)."""
    phone = Device(await as_user("rep1"), "phone")
    acc = str(world.accounts["rep1a"])  # credit limit 1,000.00
    order = str(uuid.uuid4())
    [a] = await phone.push_ok(phone.m("order", "CREATE", order, {
        "accountId": acc, "lines": [{"productId": str(world.products["cola"]), "quantity": 60}]}))
    assert a["status"] == "APPLIED" and a["data"]["totalCents"] == 60_000
    [b] = await phone.push_ok(phone.m("order", "UPDATE", order, {
        "lines": [{"productId": str(world.products["cola"]), "quantity": 90}]}, base=1))
    assert b["status"] == "APPLIED" and b["data"]["totalCents"] == 90_000


async def test_resolve_conflict_applies_the_kept_side(as_user: Any, world: World) -> None:
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    phone = Device(rep1, "phone")
    acc = str(world.accounts["rep1a"])
    await manager.ok("""mutation($id: ID!) { updateAccount(id: $id, baseVersion: 1,
        input: {name: "Manager name"}) { status } }""", {"id": acc})
    earlier = datetime.now(UTC) - timedelta(hours=1)
    [res] = await phone.push_ok(phone.m("account", "UPDATE", acc, {"name": "Rep name"}, base=1,
                                        when=earlier))
    other = await as_user("manager2")
    hidden = await other.ok("""mutation($id: ID!) { resolveConflict(id: $id, choice: CLIENT)
        { conflict { id } errors { code } } }""", {"id": res["conflictId"]})
    assert hidden["resolveConflict"]["errors"][0]["code"] == "NOT_FOUND"
    done = await manager.ok("""mutation($id: ID!) { resolveConflict(id: $id, choice: CLIENT)
        { conflict { resolved } errors { code } } }""", {"id": res["conflictId"]})
    assert done["resolveConflict"] == {"conflict": {"resolved": True}, "errors": []}
    name = await manager.ok("query($id: ID!) { account(id: $id) { name } }", {"id": acc})
    assert name["account"]["name"] == "Rep name"


async def test_future_clock_is_clamped_and_reported(as_user: Any, world: World) -> None:
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    phone = Device(rep1, "phone")
    acc = str(world.accounts["rep1a"])
    future = datetime.now(UTC) + timedelta(days=365)
    await manager.ok("""mutation($id: ID!) { updateAccount(id: $id, baseVersion: 1,
        input: {name: "Manager name"}) { status } }""", {"id": acc})
    [res] = await phone.push_ok(phone.m("account", "UPDATE", acc, {"name": "From the future"},
                                        base=1, when=future))
    assert {"code": "CLOCK_SKEW"} in res["warnings"]
    devices = await manager.ok("{ syncDevices { clientId clockAheadSeconds } }")
    assert devices["syncDevices"][0]["clockAheadSeconds"] > 300 * 24 * 3600


@pytest.mark.parametrize(("payload", "code"), [
    ({"protocolVersion": 99}, "UNSUPPORTED_PROTOCOL"),
    ({"mutations": [{"mutationId": i + 1, "entity": "contact", "op": "DELETE",
                     "id": str(uuid.uuid4())} for i in range(501)]}, "BATCH_TOO_LARGE"),
])
async def test_whole_request_refusals_are_typed(as_user: Any, world: World,
                                                payload: dict[str, Any], code: str) -> None:
    rep1 = await as_user("rep1")
    body = await rep1.raw(PUSH, {"input": {"clientId": "x", "protocolVersion": 1,
                                           "mutations": [], **payload}})
    assert body["errors"][0]["extensions"]["code"] == code


async def test_client_id_belongs_to_its_first_user(as_user: Any, world: World) -> None:
    rep1, rep2 = await as_user("rep1"), await as_user("rep2")
    await Device(rep1, "shared").push_ok()
    body = await Device(rep2, "shared").push()
    assert body["errors"][0]["extensions"]["code"] == "CLIENT_NOT_YOURS"
    pulled = await rep2.raw(PULL, {"c": "shared"})
    assert pulled["errors"][0]["extensions"]["code"] == "CLIENT_NOT_YOURS"


async def test_forged_cursor_is_refused(as_user: Any, world: World) -> None:
    rep1, rep2 = await as_user("rep1"), await as_user("rep2")
    d1 = Device(rep1, "a")
    await d1.pull()
    other = await rep2.raw(PULL, {"c": "b", "cursor": d1.cursor})
    assert other["errors"][0]["extensions"]["code"] == "INVALID_CURSOR"
    forged = await rep1.raw(PULL, {"c": "a", "cursor": d1.cursor[:-3] + "abc"})
    assert forged["errors"][0]["extensions"]["code"] == "INVALID_CURSOR"


async def test_delete_of_a_changed_record_keeps_the_edit(as_user: Any, world: World) -> None:
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    phone = Device(rep1, "phone")
    await phone.pull()
    contact = str(uuid.uuid4())
    await phone.push_ok(phone.m("contact", "CREATE", contact, {
        "accountId": str(world.accounts["rep1a"]), "firstName": "A", "lastName": "B"}))
    await manager.ok("""mutation($id: ID!) { updateContact(id: $id, baseVersion: 1,
        input: {phone: "+1"}) { status } }""", {"id": contact})
    [r] = await phone.push_ok(phone.m("contact", "DELETE", contact, base=1))
    assert r["status"] == "CONFLICT" and r["data"]["phone"] == "+1"
    # and an edit of a deleted record is kept for review, the delete stands
    [gone] = await phone.push_ok(phone.m("contact", "DELETE", contact, base=2))
    assert gone["status"] == "APPLIED"
    [late] = await phone.push_ok(phone.m("contact", "UPDATE", contact, {"lastName": "C"}, base=2))
    assert late["status"] == "CONFLICT" and late["error"]["code"] == "RECORD_DELETED"
    changes = await phone.pull()
    assert {"entity": "contact", "id": contact, "op": "DELETE"}.items() <= next(
        c for c in changes if c["id"] == contact).items()


async def test_oversized_body_is_refused_with_413(client: Any, world: World) -> None:
    huge = {"query": "{ me { email } }", "variables": {"pad": "x" * 4_100_000}}
    r = await client.post("/graphql", json=huge)
    assert r.status_code == 413
    assert r.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_a_deeply_nested_body_is_a_400_not_a_server_error(client: Any) -> None:
    """Thousands of nested brackets overflow the JSON parser's recursion: the answer is
    the unreadable-body 400, with no sign-in needed and no traceback."""
    nested = "[" * 5000 + "]" * 5000
    r = await client.post("/graphql", content=f'{{"query": "{{ __typename }}", "variables": '
                          f'{{"a": {nested}}}}}', headers={"content-type": "application/json"})
    assert (r.status_code, r.text) == (400, "Unable to parse request body as JSON")


async def test_page_size_is_capped(as_user: Any, world: World) -> None:
    rep1 = await as_user("rep1")
    body = await rep1.raw("{ accounts(first: 100000) { edges { node { id } } } }")
    assert body["errors"][0]["extensions"]["code"] == "BAD_PAGE_SIZE"
    pulled = await rep1.ok(PULL.replace("limit: 1000", "limit: 100000"), {"c": "cap"})
    assert len(pulled["syncPull"]["changes"]) <= 1000


async def test_create_then_edit_in_one_batch(as_user: Any, world: World) -> None:
    phone = Device(await as_user("rep1"), "phone")
    order = str(uuid.uuid4())
    acc = str(world.accounts["rep1a"])
    created, edited = await phone.push_ok(
        phone.m("order", "CREATE", order, {"accountId": acc, "lines": [
            {"productId": str(world.products["chips"]), "quantity": 1}]}),
        phone.m("order", "UPDATE", order, {"notes": "ring twice", "lines": [
            {"productId": str(world.products["chips"]), "quantity": 2},
            {"productId": str(world.products["cola"]), "quantity": 1}]}, base=1))
    assert created["status"] == "APPLIED" and edited["status"] == "APPLIED", edited
    stored = await phone.api.ok("query($id: ID!) { node(id: $id) { ... on Order { notes "
                                "totalCents lines { quantity } } } }", {"id": order})
    assert stored["node"] == {"notes": "ring twice", "totalCents": 1500,
                              "lines": [{"quantity": 2}, {"quantity": 1}]}


@pytest.mark.parametrize("orders", [2, COPY_MIN_ROWS + 1])  # INSERT, and COPY on PostgreSQL
async def test_a_database_error_refuses_one_mutation_not_the_batch(
        as_user: Any, world: World, monkeypatch: pytest.MonkeyPatch, orders: int) -> None:
    import schema.orders.sync as order_rules

    monkeypatch.setattr(order_rules, "order_number", lambda year: "SO-SAME")  # a collision
    phone = Device(await as_user("rep1"), "phone")
    acc = str(world.accounts["rep1a"])
    line = [{"productId": str(world.products["chips"]), "quantity": 1}]
    batch = [*(phone.m("order", "CREATE", str(uuid.uuid4()), {"accountId": acc, "lines": line})
               for _ in range(orders)),
             phone.m("contact", "CREATE", str(uuid.uuid4()), {"accountId": acc,
                                                              "firstName": "A", "lastName": "B"})]
    first = await phone.push_ok(*batch)
    assert [r["status"] for r in first] == ["APPLIED", *["REJECTED"] * (orders - 1), "APPLIED"]
    assert {r["error"]["code"] for r in first[1:-1]} == {"INTERNAL_ERROR"}
    again = (await phone.push(*batch))["data"]["syncPush"]
    assert again["lastMutationId"] == orders + 1
    assert again["results"] == first  # replayed, not wedged


async def test_rejected_order_is_resubmitted_by_fixing_its_lines(as_user: Any, world: World) -> None:
    phone = Device(await as_user("rep1"), "phone")
    order = str(uuid.uuid4())
    acc = str(world.accounts["rep1a"])
    [r] = await phone.push_ok(phone.m("order", "CREATE", order, {
        "accountId": acc, "lines": [{"productId": str(world.products["cola"]), "quantity": 500}]}))
    assert r["data"]["status"] == "REJECTED"
    [fixed] = await phone.push_ok(phone.m("order", "UPDATE", order, {
        "lines": [{"productId": str(world.products["cola"]), "quantity": 5}]}, base=1))
    assert fixed["status"] == "APPLIED" and fixed["data"]["status"] == "SUBMITTED"


async def test_resolve_server_restores_what_the_device_overwrote(as_user: Any, world: World) -> None:
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    phone = Device(rep1, "phone")
    acc = str(world.accounts["rep1a"])
    await manager.ok("""mutation($id: ID!) { updateAccount(id: $id, baseVersion: 1,
        input: {name: "Manager name"}) { status } }""", {"id": acc})
    later = datetime.now(UTC) + timedelta(seconds=1)
    [res] = await phone.push_ok(phone.m("account", "UPDATE", acc, {"name": "Rep name"}, base=1,
                                        when=later))
    assert res["status"] == "CONFLICT" and res["data"]["name"] == "Rep name"
    done = await manager.ok("""mutation($id: ID!) { resolveConflict(id: $id, choice: SERVER)
        { conflict { resolved resolution } errors { code } } }""", {"id": res["conflictId"]})
    assert done["resolveConflict"]["conflict"] == {"resolved": True, "resolution": "SERVER"}
    name = await manager.ok("query($id: ID!) { account(id: $id) { name } }", {"id": acc})
    assert name["account"]["name"] == "Manager name"


async def test_a_rep_cannot_resolve_a_credit_limit_into_place(as_user: Any, world: World) -> None:
    rep1 = await as_user("rep1")
    acc = str(world.accounts["rep1a"])
    out = await rep1.ok("""mutation($id: ID!) { updateAccount(id: $id, baseVersion: 1,
        input: {creditLimitCents: 99999999}) { status conflictId } }""", {"id": acc})
    cid = out["updateAccount"]["conflictId"]
    refused = await rep1.ok("""mutation($id: ID!) { resolveConflict(id: $id, choice: CLIENT)
        { conflict { resolved } errors { code } } }""", {"id": cid})
    assert refused["resolveConflict"]["conflict"] is None and refused["resolveConflict"]["errors"]
    open_ = await rep1.ok("{ conflicts(resolved: false) { id } }")
    assert [c["id"] for c in open_["conflicts"]] == [cid]  # still open, no duplicate


async def test_convert_lead_creates_account_and_contact(as_user: Any, world: World) -> None:
    rep1 = await as_user("rep1")
    phone = Device(rep1, "phone")
    lead = str(uuid.uuid4())
    await phone.push_ok(phone.m("lead", "CREATE", lead, {"company": "Acme", "firstName": "Ann",
                                                          "lastName": "Lee", "status": "QUALIFIED"}))
    out = await rep1.ok("""mutation($id: ID!) { convertLead(id: $id) { lead { status
        convertedAccountId } account { name ownerId } contact { firstName accountId }
        errors { code } } }""", {"id": lead})
    c = out["convertLead"]
    assert c["errors"] == [] and c["lead"]["status"] == "CONVERTED"
    assert c["account"] == {"name": "Acme", "ownerId": str(world.users["rep1"])}
    assert c["contact"]["accountId"] == c["lead"]["convertedAccountId"]
    again = await rep1.ok("""mutation($id: ID!) { convertLead(id: $id) { errors { code } } }""",
                          {"id": lead})
    assert again["convertLead"]["errors"] == [{"code": "INVALID_TRANSITION"}]
    other = await (await as_user("rep3")).ok(
        """mutation($id: ID!) { convertLead(id: $id) { errors { code } } }""", {"id": lead})
    assert other["convertLead"]["errors"] == [{"code": "NOT_FOUND"}]


async def test_edits_queued_for_a_reassigned_lead_become_conflicts(as_user: Any, world: World) -> None:
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    phone = Device(rep1, "phone")
    lead = str(uuid.uuid4())
    await phone.push_ok(phone.m("lead", "CREATE", lead, {"company": "Acme"}))
    await phone.pull()
    await manager.ok("""mutation($id: ID!, $o: ID!) { updateLead(id: $id, input: {ownerId: $o})
        { status } }""", {"id": lead, "o": str(world.users["rep2"])})
    [r] = await phone.push_ok(phone.m("lead", "UPDATE", lead, {"phone": "+1"}, base=1))
    assert r["status"] == "CONFLICT" and r["error"]["code"] == "SCOPE_MOVED" and r["conflictId"]
    rep2 = await as_user("rep2")
    seen = await rep2.ok("{ conflicts { recordId rule client } }")
    assert {"recordId": lead, "rule": "scope-moved", "client": {"phone": "+1"}} in seen["conflicts"]


async def test_prospect_contact_and_order_in_one_push(as_user: Any, world: World) -> None:
    phone = Device(await as_user("rep1"), "phone")
    acc, contact = str(uuid.uuid4()), str(uuid.uuid4())
    results = await phone.push_ok(
        phone.m("account", "CREATE", acc, {"name": "New prospect"}),
        phone.m("contact", "CREATE", contact, {"accountId": acc, "firstName": "A",
                                               "lastName": "B"}),
        phone.m("order", "CREATE", str(uuid.uuid4()), {"accountId": acc, "contactId": contact,
            "lines": [{"productId": str(world.products["chips"]), "quantity": 2}]}))
    assert [r["status"] for r in results] == ["APPLIED", "APPLIED", "APPLIED"], results


async def test_rows_are_inserted_in_foreign_key_order(as_user: Any, world: World,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    # An order for an existing account comes first, so `sales_order` appears in the batch
    # before `account`: the writer must still insert the new account before its order,
    # in one pass (no fallback to one-by-one savepoints).
    phone = Device(await as_user("rep1"), "phone")
    acc = str(uuid.uuid4())
    chips = str(world.products["chips"])
    with caplog.at_level(logging.WARNING, logger="fieldsync.sync"):
        results = await phone.push_ok(
            phone.m("order", "CREATE", str(uuid.uuid4()), {
                "accountId": str(world.accounts["rep1a"]),
                "lines": [{"productId": chips, "quantity": 1}]}),
            phone.m("account", "CREATE", acc, {"name": "New prospect"}),
            phone.m("order", "CREATE", str(uuid.uuid4()), {
                "accountId": acc, "lines": [{"productId": chips, "quantity": 1}]}))
    assert [r["status"] for r in results] == ["APPLIED"] * 3, results
    assert not [r for r in caplog.records if "one by one" in r.getMessage()]


@pytest.mark.parametrize("scan_range", [0, 20_000], ids=["index-driven", "seq-range"])
async def test_incremental_pull_sees_exactly_its_changes_by_either_plan(
        as_user: Any, world: World, monkeypatch: pytest.MonkeyPatch, scan_range: int) -> None:
    # The change-log filter is planned two ways (sync.pull._concerns): by the key indexes
    # for a long range, by sequence number for a short one. Both must select the same.
    monkeypatch.setattr(pull_module, "SCAN_RANGE", scan_range)
    rep1, rep2 = Device(await as_user("rep1"), "r1"), Device(await as_user("rep2"), "r2")
    await rep1.pull()
    await rep2.pull()
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    await rep1.push_ok(rep1.m("visitNote", "CREATE", mine, {
        "accountId": str(world.accounts["rep1a"]), "body": "mine"}))
    await rep2.push_ok(rep2.m("visitNote", "CREATE", theirs, {
        "accountId": str(world.accounts["rep2a"]), "body": "theirs"}))
    seen = {c["id"] for c in await rep1.pull()}
    assert mine in seen and theirs not in seen
    assert await rep1.pull() == []


async def test_a_mutation_with_a_huge_integer_is_rejected_and_kept_not_wedged(
        as_user: Any, world: World) -> None:
    # The refused fields are stored with the result; a 70-bit integer (which orjson cannot
    # write) must not fail the push, or the device would resend the batch for ever.
    rep = Device(await as_user("rep1"), "huge-int")
    bad = rep.m("account", "UPDATE", str(world.accounts["rep1a"]),
                {"name": "x", "extra": 2**70, "deep": [[[[1]]]]}, base=1)
    first = await rep.push_ok(bad)
    assert first[0]["status"] == "REJECTED" and first[0]["error"]["field"] == "extra"
    again = await rep.push_ok(bad)  # the answer was lost: the replay is the stored result
    assert again == first
    assert (await rep.push_ok(rep.m("account", "UPDATE", str(world.accounts["rep1a"]),
                                    {"name": "fine"}, base=1)))[0]["status"] in (
        "APPLIED", "MERGED")


async def test_an_integer_too_wide_for_its_column_is_refused_alone(
        as_user: Any, world: World, db: Database) -> None:
    """A quantity of 2**40 fits SQLite but not PostgreSQL's INTEGER: both refuse it as
    INVALID_FIELD, and only that mutation. (On PostgreSQL it used to fail the whole
    batch's COPY with a retryable internal error, for ever.) Amounts that would not fit
    64 bits of cents are refused too, and nothing of either is stored."""
    phone = Device(await as_user("rep1"), "phone")
    acc = str(world.accounts["rep1a"])
    cola = str(world.products["cola"])
    async with db.write() as s:
        [gold] = await insert_rows(s, "product", [{
            "sku": "SKU-GOLD", "name": "Gold", "category": "bullion",
            "unit_price_cents": 2**62, "unit_cost_cents": 2**61}])
    lines = [{"productId": cola, "quantity": 1} for _ in range(3)]
    ids = [str(uuid.uuid4()) for _ in range(4)]
    ok, wide, ok2, huge = await phone.push_ok(
        phone.m("order", "CREATE", ids[0], {"accountId": acc, "status": "DRAFT", "lines": lines}),
        phone.m("order", "CREATE", ids[1], {"accountId": acc, "status": "DRAFT", "lines": [
            *lines, {"productId": cola, "quantity": 2**40}]}),
        phone.m("order", "CREATE", ids[2], {"accountId": acc, "status": "DRAFT", "lines": lines}),
        phone.m("order", "CREATE", ids[3], {"accountId": acc, "status": "DRAFT", "lines": [
            {"productId": str(gold), "quantity": 2}]}))
    assert ok["status"] == ok2["status"] == "APPLIED"
    assert wide["status"] == "REJECTED" and wide["error"]["code"] == "INVALID_FIELD"
    assert wide["error"]["field"] == "lines[3]" and "out of range" in wide["error"]["message"]
    assert huge["status"] == "REJECTED" and huge["error"]["code"] == "AMOUNT_TOO_LARGE"
    assert wide["data"] is None and huge["data"] is None


async def test_batches_that_lock_rows_in_opposite_orders_both_apply(
        as_user: Any, world: World) -> None:
    """One device edits account B and takes an order at A while another edits A and
    takes an order at B: on PostgreSQL the two can deadlock, and the one rolled back is
    run again by the server instead of coming back UNAVAILABLE. (SQLite queues writers,
    so there the test checks the same outcome without the race.)"""
    rep1 = await as_user("rep1")
    a, b = world.accounts["rep1a"], world.accounts["rep1b"]
    phones = [Device(rep1, "phone-1"), Device(rep1, "phone-2")]
    for round_ in range(6):
        batches = []
        for phone, (edit, shop) in zip(phones, ((b, a), (a, b)), strict=True):
            batches.append(phone.push(
                phone.m("account", "UPDATE", str(edit), {"phone": f"+386 {round_}"}),
                phone.m("order", "CREATE", str(uuid.uuid4()), {
                    "accountId": str(shop), "status": "DRAFT",
                    "lines": [{"productId": str(world.products["chips"]), "quantity": 1}]})))
        for body in await asyncio.gather(*batches):
            assert "errors" not in body, body["errors"]
            assert {r["status"] for r in body["data"]["syncPush"]["results"]} <= {
                "APPLIED", "MERGED"}, body
