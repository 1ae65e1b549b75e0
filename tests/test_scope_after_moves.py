"""Scope after records change hands: what a rep's devices may still write, read and learn.

Each test is an attack or a slip an earlier version let through: a fresh clientId that
claimed the grace meant for devices with queued edits, conflicts that showed the new
holder's values, a saved cursor replayed after the key moved on, evictions that named
records the device never held, an id reused in another table hiding a record from
`node()`. And three answers that lost or revived data: a queued delete of a moved
record, a CREATE reusing a deleted id, a lead score outside its range.
"""

from __future__ import annotations

import uuid
from typing import Any

from schema.bulk import insert_rows
from server.db import Database
from tests.conftest import World
from tests.test_sync_rules import CONFLICTS, Device

MOVE = """mutation($id: ID!, $o: ID!) { updateAccount(id: $id, input: {ownerId: $o})
  { status } }"""
PAGE = """query($c: ID!, $cursor: String, $n: Int) { syncPull(clientId: $c, cursor: $cursor,
  limit: $n) { changes { entity id op data } cursor hasMore } }"""


def _order(device: Device, account: uuid.UUID, product: uuid.UUID) -> dict[str, Any]:
    return device.m("order", "CREATE", str(uuid.uuid4()),
                    {"accountId": str(account), "lines": [{"productId": str(product),
                                                           "quantity": 3}]})


async def _pull_from(api: Any, client_id: str, cursor: str | None,
                     limit: int = 1000) -> tuple[list[dict[str, Any]], str]:
    changes: list[dict[str, Any]] = []
    while True:
        page = (await api.ok(PAGE, {"c": client_id, "cursor": cursor, "n": limit}))["syncPull"]
        changes += page["changes"]
        cursor = page["cursor"]
        if not page["hasMore"]:
            return changes, cursor


async def test_only_a_device_that_held_the_account_keeps_writing_to_it(
        as_user: Any, world: World) -> None:
    rep1, rep2, manager = [await as_user(n) for n in ("rep1", "rep2", "manager1")]
    acc, cola = world.accounts["rep1a"], world.products["cola"]
    phone = Device(rep1, "phone")
    await phone.pull()  # held the account, then went offline
    await manager.ok(MOVE, {"id": str(acc), "o": str(world.users["rep2"])})
    await rep2.ok("""mutation($id: ID!) { updateAccount(id: $id,
        input: {notes: "rep2's own notes"}) { status } }""", {"id": str(acc)})

    # The phone queued its order and edit before it heard of the move: kept.
    order, edit = await phone.push_ok(_order(phone, acc, cola),
                                      phone.m("account", "UPDATE", str(acc),
                                              {"name": "Rep1's name"}, base=1))
    assert order["status"] == "APPLIED", order
    assert edit["status"] == "CONFLICT" and edit["error"]["code"] == "SCOPE_MOVED"
    assert edit["data"] is None

    # The rep sees their own side of that conflict only; the new holder sees it all.
    [mine] = [c for c in (await rep1.ok(CONFLICTS))["conflicts"] if c["rule"] == "scope-moved"]
    assert mine["client"] == {"name": "Rep1's name"}
    assert (mine["base"], mine["server"], mine["outcome"]) == (None, None, None)
    [theirs] = [c for c in (await rep2.ok(CONFLICTS))["conflicts"] if c["id"] == mine["id"]]
    assert theirs["server"]["notes"] == "rep2's own notes"

    # Once every device of the rep holds the move (it pulled again from the cursor that
    # brought it), a clientId that never pulled (judged as the user's stalest device)
    # gets no grace either.
    await phone.pull()
    await phone.pull()
    fresh = Device(rep1, "fresh-" + uuid.uuid4().hex)
    out = await fresh.push_ok(
        _order(fresh, acc, cola),
        fresh.m("visitNote", "CREATE", str(uuid.uuid4()), {"accountId": str(acc),
                                                          "body": "after the move"}),
        fresh.m("account", "UPDATE", str(acc), {"name": "x"}, base=1))
    assert [(r["status"], r["error"]["code"], r["data"], r["conflictId"]) for r in out] == [
        ("REJECTED", "NOT_FOUND", None, None)] * 3


async def test_a_device_holds_what_its_snapshot_brought_after_it_began(
        as_user: Any, world: World) -> None:
    """Snapshot pages read the scope as it is when each page is read, so a device may
    hold a record that came to its user after the snapshot's position: its queued edit
    of that record is still kept when the record leaves."""
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    acc = str(world.accounts["rep2a"])
    page = (await rep1.ok(PAGE, {"c": "phone", "cursor": None, "n": 1}))["syncPull"]
    await manager.ok(MOVE, {"id": acc, "o": str(world.users["rep1"])})
    cursor, held = page["cursor"], False
    while not held:
        page = (await rep1.ok(PAGE, {"c": "phone", "cursor": cursor, "n": 1}))["syncPull"]
        cursor, held = page["cursor"], any(c["id"] == acc for c in page["changes"])
        assert held or page["hasMore"], "the snapshot ended without the account"
    await manager.ok(MOVE, {"id": acc, "o": str(world.users["rep2"])})
    phone = Device(rep1, "phone")
    edit, order = await phone.push_ok(
        phone.m("account", "UPDATE", acc, {"name": "offline edit"}, base=1),
        _order(phone, uuid.UUID(acc), world.products["cola"]))
    assert (edit["status"], edit["error"]["code"]) == ("CONFLICT", "SCOPE_MOVED"), edit
    assert order["status"] == "APPLIED", order


async def test_a_new_client_id_for_a_moved_store_keeps_the_grace_of_its_user(
        as_user: Any, world: World) -> None:
    """A device that moves its store to a new clientId (the client library's recovery
    after CLIENT_NOT_YOURS or a restore) pushes before it pulls; its outbox is judged as
    the user's stalest device's would be."""
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    acc = world.accounts["rep1a"]
    await Device(rep1, "old-id").pull()
    await manager.ok(MOVE, {"id": str(acc), "o": str(world.users["rep2"])})
    renamed = Device(rep1, "new-id")
    [r] = await renamed.push_ok(_order(renamed, acc, world.products["cola"]))
    assert r["status"] == "APPLIED", r


async def test_a_rep_never_sees_costs_in_a_conflict(as_user: Any, world: World) -> None:
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    phone = Device(rep1, "phone")
    [created] = await phone.push_ok(_order(phone, world.accounts["rep1a"], world.products["cola"]))
    assert "costCents" not in created["data"]
    await manager.ok("mutation($id: ID!) { deleteOrder(id: $id) { status } }",
                     {"id": created["id"]})
    [r] = await phone.push_ok(phone.m("order", "UPDATE", created["id"], {"notes": "x"}, base=1))
    assert r["status"] == "CONFLICT", r
    [mine] = (await rep1.ok(CONFLICTS))["conflicts"]
    assert mine["server"] is not None
    for side in ("base", "server", "client", "outcome"):
        assert "costCents" not in (mine[side] or {}), side
    [boss] = (await manager.ok(CONFLICTS))["conflicts"]
    assert boss["server"]["costCents"] == 3 * 600


async def test_a_cursor_saved_mid_backfill_brings_nothing_once_the_key_moved_on(
        as_user: Any, db: Database, world: World) -> None:
    rep1, rep2, manager = [await as_user(n) for n in ("rep1", "rep2", "manager1")]
    acc = world.accounts["rep2a"]
    async with db.write() as s:
        await insert_rows(s, "contact", [{"account_id": acc, "first_name": f"Buyer {i}",
                                          "last_name": "Two"} for i in range(3)])
    _, cursor = await _pull_from(rep1, "phone", None)
    await manager.ok(MOVE, {"id": str(acc), "o": str(world.users["rep1"])})
    # Page by one until the account came down and its contacts are still to come.
    saved = None
    while saved is None:
        page = (await rep1.ok(PAGE, {"c": "phone", "cursor": cursor, "n": 1}))["syncPull"]
        assert page["hasMore"], "the backfill ended before the cursor was saved"
        cursor = page["cursor"]
        if any(c["id"] == str(acc) for c in page["changes"]):
            saved = cursor
    await manager.ok(MOVE, {"id": str(acc), "o": str(world.users["rep2"])})
    await rep2.ok("""mutation($a: ID!) { createContact(input: {accountId: $a,
        firstName: "Added", lastName: "Later"}) { status } }""", {"a": str(acc)})
    for _replay in range(2):  # a saved cursor may be replayed as often as one likes
        changes, _ = await _pull_from(rep1, "phone", saved)
        upserts = [c for c in changes if c["op"] == "UPSERT"]
        assert not [c for c in upserts if str(acc) in (c["id"], c["data"].get("accountId"))]
        assert str(acc) in {c["id"] for c in changes if c["op"] == "EVICT"}


async def test_evictions_name_only_records_the_device_could_hold(
        as_user: Any, world: World) -> None:
    rep1, rep2, manager = [await as_user(n) for n in ("rep1", "rep2", "manager1")]
    acc = world.accounts["rep1a"]
    phone = Device(rep1, "phone")
    await rep1.ok("""mutation($a: ID!) { createContact(input: {accountId: $a,
        firstName: "Known", lastName: "Before"}) { status } }""", {"a": str(acc)})
    known = {c["id"] for c in await phone.pull() if c["entity"] == "contact"}
    await manager.ok(MOVE, {"id": str(acc), "o": str(world.users["rep2"])})
    later = (await rep2.ok("""mutation($a: ID!) { createContact(input: {accountId: $a,
        firstName: "Added", lastName: "After"}) { node { id } } }""",
                           {"a": str(acc)}))["createContact"]["node"]["id"]
    # Taken at the customer before the phone heard of the move: kept, and the phone's.
    note = str(uuid.uuid4())
    [r] = await phone.push_ok(phone.m("visitNote", "CREATE", note, {"accountId": str(acc),
                                                                    "body": "visited"}))
    assert r["status"] == "APPLIED", r
    evicted = {(c["entity"], c["id"]) for c in await phone.pull() if c["op"] == "EVICT"}
    assert ("account", str(acc)) in evicted and ("visitNote", note) in evicted
    assert {("contact", k) for k in known} <= evicted and len(known) == 1
    assert ("contact", later) not in evicted


async def test_a_queued_delete_of_a_moved_record_is_kept_for_the_new_holder(
        as_user: Any, world: World) -> None:
    rep1, rep2, manager = [await as_user(n) for n in ("rep1", "rep2", "manager1")]
    acc = world.accounts["rep1a"]
    phone = Device(rep1, "phone")
    contact = str(uuid.uuid4())
    await phone.push_ok(phone.m("contact", "CREATE", contact, {
        "accountId": str(acc), "firstName": "Gone", "lastName": "Soon"}))
    await phone.pull()
    await manager.ok(MOVE, {"id": str(acc), "o": str(world.users["rep2"])})
    [r] = await phone.push_ok(phone.m("contact", "DELETE", contact, base=1))
    assert r["status"] == "CONFLICT" and r["error"]["code"] == "SCOPE_MOVED"
    [c] = [c for c in (await rep2.ok(CONFLICTS))["conflicts"] if c["recordId"] == contact]
    assert c["client"] == {"deleted": True} and c["fields"] == ["deleted"]
    done = await rep2.ok("""mutation($id: ID!) { resolveConflict(id: $id, choice: CLIENT)
        { conflict { resolved } errors { code } } }""", {"id": c["id"]})
    assert done["resolveConflict"] == {"conflict": {"resolved": True}, "errors": []}
    node = await rep2.ok("query($id: ID!) { node(id: $id) { id } }", {"id": contact})
    assert node["node"] is None


async def test_a_create_reusing_a_deleted_id_does_not_revive_it(
        as_user: Any, world: World) -> None:
    phone = Device(await as_user("rep1"), "phone")
    task = str(uuid.uuid4())
    fields = {"title": "call back", "dueDate": "2026-12-01",
              "accountId": str(world.accounts["rep1a"])}
    created, deleted = await phone.push_ok(phone.m("task", "CREATE", task, fields),
                                           phone.m("task", "DELETE", task, base=1))
    assert (created["status"], deleted["status"]) == ("APPLIED", "APPLIED")
    [r] = await phone.push_ok(phone.m("task", "CREATE", task, fields))
    assert (r["status"], r["error"]["code"], r["data"]) == ("REJECTED", "ID_IN_USE", None)


async def test_a_lead_score_out_of_range_is_a_field_error(as_user: Any) -> None:
    rep1 = await as_user("rep1")
    phone = Device(rep1, "phone")
    lead = str(uuid.uuid4())
    bad, good, worse = await phone.push_ok(
        phone.m("lead", "CREATE", str(uuid.uuid4()), {"company": "Too hot", "score": 101}),
        phone.m("lead", "CREATE", lead, {"company": "Fine", "score": 100}),
        phone.m("lead", "UPDATE", lead, {"score": -1}, base=1))
    for r in (bad, worse):
        assert (r["status"], r["error"]["code"], r["error"]["field"]) == (
            "REJECTED", "INVALID_FIELD", "score"), r
        assert "0..100" in r["error"]["message"]
    assert good["status"] == "APPLIED" and good["data"]["score"] == 100
    out = await rep1.ok("""mutation { createLead(input: {company: "Via GraphQL", score: 150})
        { status errors { code field } } }""")
    assert out["createLead"]["errors"] == [{"code": "INVALID_FIELD", "field": "score"}]


async def test_an_id_reused_in_another_table_does_not_hide_a_record_from_node(
        as_user: Any, world: World) -> None:
    rep1, rep2 = await as_user("rep1"), await as_user("rep2")
    contact = (await rep2.ok("""mutation($a: ID!) { createContact(input: {accountId: $a,
        firstName: "Mine", lastName: "Only"}) { node { id } } }""",
                             {"a": str(world.accounts["rep2a"])}))["createContact"]["node"]["id"]
    phone = Device(rep1, "phone")
    [r] = await phone.push_ok(phone.m("account", "CREATE", contact, {"name": "Shadow"}))
    assert r["status"] == "APPLIED"
    query = "query($id: ID!) { node(id: $id) { __typename id } }"
    assert (await rep2.ok(query, {"id": contact}))["node"] == {"__typename": "Contact",
                                                              "id": contact}
    assert (await rep1.ok(query, {"id": contact}))["node"] == {"__typename": "Account",
                                                              "id": contact}


async def test_a_user_with_no_device_that_pulled_gets_no_grace(
        as_user: Any, world: World) -> None:
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    acc = world.accounts["rep1a"]
    await manager.ok(MOVE, {"id": str(acc), "o": str(world.users["rep2"])})
    fresh = Device(rep1, "never-pulled")
    [r] = await fresh.push_ok(_order(fresh, acc, world.products["cola"]))
    assert (r["status"], r["error"]["code"], r["data"]) == ("REJECTED", "NOT_FOUND", None)


async def test_an_echo_after_the_move_does_not_hide_a_held_record_from_eviction(
        as_user: Any, db: Database, world: World) -> None:
    """The new holder's refused WatermelonDB edit logs the contact again (an echo, with
    version 1): the old holder's device must still be told to drop it."""
    rep1, rep2, manager = [await as_user(n) for n in ("rep1", "rep2", "manager1")]
    acc = world.accounts["rep1a"]
    async with db.write() as s:
        [contact] = await insert_rows(s, "contact", [{"account_id": acc, "first_name": "Held",
                                                     "last_name": "ByRep1"}])
    phone = Device(rep1, "phone")
    assert str(contact) in {c["id"] for c in await phone.pull()}
    await manager.ok(MOVE, {"id": str(acc), "o": str(world.users["rep2"])})
    await rep2.ok("""mutation($c: JSON!) { watermelonPush(changes: $c, lastPulledAt: 0,
        clientId: "tab") }""", {"c": {"contacts": {"created": [], "deleted": [], "updated": [
        {"id": str(contact), "version": 1, "account_id": str(world.accounts["rep3a"]),
         "_changed": "account_id"}]}}})
    evicted = {c["id"] for c in await phone.pull() if c["op"] == "EVICT"}
    assert {str(acc), str(contact)} <= evicted


async def test_a_conflict_on_a_record_that_moved_on_its_own_shows_only_the_readers_side(
        as_user: Any, world: World) -> None:
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    phone = Device(rep1, "phone")
    lead = str(uuid.uuid4())
    await phone.push_ok(phone.m("lead", "CREATE", lead, {"company": "Acme"}))
    await manager.ok("""mutation($id: ID!) { updateLead(id: $id, input: {phone: "+1 boss"})
        { status } }""", {"id": lead})
    [r] = await phone.push_ok(phone.m("lead", "UPDATE", lead, {"phone": "+1 mine"}, base=1))
    assert r["status"] == "CONFLICT", r
    [before] = (await rep1.ok(CONFLICTS))["conflicts"]
    assert before["server"]["phone"] == "+1 boss"  # still hers: she sees both sides
    await manager.ok("""mutation($id: ID!, $o: ID!) { updateLead(id: $id,
        input: {ownerId: $o, phone: "+1 rep2's"}) { status } }""",
                     {"id": lead, "o": str(world.users["rep2"])})
    [after] = (await rep1.ok(CONFLICTS))["conflicts"]
    assert after["client"] == before["client"]
    assert (after["base"], after["server"], after["outcome"]) == (None, None, None)


async def test_a_managers_device_keeps_its_work_on_an_account_moved_out_of_the_team(
        as_user: Any, world: World) -> None:
    """The grace covers what left the team a manager reads, not only what they hold."""
    manager, admin = await as_user("manager1"), await as_user("admin")
    acc = world.accounts["rep1a"]
    desk = Device(manager, "desk")
    await desk.pull()
    await admin.ok(MOVE, {"id": str(acc), "o": str(world.users["rep3"])})  # manager2's team
    edit, order = await desk.push_ok(
        desk.m("account", "UPDATE", str(acc), {"name": "Renamed offline"}, base=1),
        _order(desk, acc, world.products["cola"]))
    assert (edit["status"], edit["error"]["code"]) == ("CONFLICT", "SCOPE_MOVED"), edit
    assert order["status"] == "APPLIED", order


async def test_a_pull_whose_answer_was_lost_does_not_end_the_grace(
        as_user: Any, world: World) -> None:
    """The server records where a device stands from the cursor the device sends, not
    from the page it answers with: that answer may never arrive."""
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    acc = world.accounts["rep1b"]
    phone = Device(rep1, "phone")
    await phone.pull()
    await manager.ok(MOVE, {"id": str(acc), "o": str(world.users["rep2"])})
    lost = await rep1.ok(PAGE, {"c": "phone", "cursor": phone.cursor, "n": 1000})
    assert str(acc) in {c["id"] for c in lost["syncPull"]["changes"]}  # the EVICT, never seen
    order, edit = await phone.push_ok(_order(phone, acc, world.products["cola"]),
                                      phone.m("account", "UPDATE", str(acc), {"name": "x"},
                                              base=1))
    assert order["status"] == "APPLIED", order
    assert (edit["status"], edit["error"]["code"]) == ("CONFLICT", "SCOPE_MOVED"), edit
