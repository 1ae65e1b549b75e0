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

    # A clientId that never pulled held nothing: no grace, and nothing to read.
    fresh = Device(rep1, "fresh-" + uuid.uuid4().hex)
    out = await fresh.push_ok(
        _order(fresh, acc, cola),
        fresh.m("visitNote", "CREATE", str(uuid.uuid4()), {"accountId": str(acc),
                                                          "body": "after the move"}),
        fresh.m("account", "UPDATE", str(acc), {"name": "x"}, base=1))
    assert [(r["status"], r["error"]["code"], r["data"], r["conflictId"]) for r in out] == [
        ("REJECTED", "NOT_FOUND", None, None)] * 3

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


async def test_an_account_that_came_and_went_since_the_last_pull_gets_no_grace(
        as_user: Any, world: World) -> None:
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    acc = world.accounts["rep2a"]
    phone = Device(rep1, "phone")
    await phone.pull()
    await manager.ok(MOVE, {"id": str(acc), "o": str(world.users["rep1"])})
    await manager.ok(MOVE, {"id": str(acc), "o": str(world.users["rep2"])})
    [r] = await phone.push_ok(_order(phone, acc, world.products["cola"]))
    assert (r["status"], r["error"]["code"], r["data"]) == ("REJECTED", "NOT_FOUND", None)


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
