"""The RxDB and WatermelonDB dialects over GraphQL (the real npm clients are driven in
tests/test_js_clients.py; these pin the server side of each contract)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from schema.bulk import insert_rows
from tests.conftest import World

RX_PULL = """query($cp: RxCheckpointInput, $n: Int!) { pullContact(checkpoint: $cp, limit: $n,
  clientId: "dev1") { documents checkpoint { cursor } } }"""
RX_PUSH = "mutation($rows: [RxPushRow!]) { pushContact(rows: $rows) }"
RX_PUSH_ORDER = "mutation($rows: [RxPushRow!]) { pushOrder(rows: $rows) }"
WM_PULL = """query($t: Float, $m: JSON) { watermelonPull(lastPulledAt: $t, migration: $m,
  clientId: "wm1") }"""
WM_PUSH = """mutation($c: JSON!, $t: Float) { watermelonPush(changes: $c, lastPulledAt: $t,
  clientId: "wm1") }"""


async def rx_pull_all(api: Any, batch: int = 2) -> tuple[list[dict[str, Any]], Any]:
    docs: list[dict[str, Any]] = []
    cp = None
    while True:
        page = (await api.ok(RX_PULL, {"cp": cp, "n": batch}))["pullContact"]
        docs += page["documents"]
        cp = page["checkpoint"]
        if len(page["documents"]) < batch:
            return docs, cp


async def test_rxdb_pull_pages_in_server_order_and_push_is_compare_and_swap(
        as_user: Any, world: World) -> None:
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    acc = str(world.accounts["rep1a"])
    ids = [str(uuid.uuid4()) for _ in range(3)]
    rows = [{"assumedMasterState": None, "newDocumentState": {
        "id": i, "accountId": acc, "firstName": "F", "lastName": str(n), "_deleted": False}}
        for n, i in enumerate(ids)]
    assert (await rep1.ok(RX_PUSH, {"rows": rows}))["pushContact"] == []
    assert (await rep1.ok(RX_PUSH, {"rows": rows}))["pushContact"] == []  # a retry is no conflict
    docs, cp = await rx_pull_all(rep1)
    assert {d["id"] for d in docs} == set(ids) and all(d["_deleted"] is False for d in docs)
    master = next(d for d in docs if d["id"] == ids[0])
    # the server changes it; the client pushes an edit based on the old master
    await manager.ok("""mutation($id: ID!) { updateContact(id: $id, input: {firstName: "Boss"})
        { status } }""", {"id": ids[0]})
    stale = {"assumedMasterState": master,
             "newDocumentState": {**master, "lastName": "Mine"}}
    [conflict] = (await rep1.ok(RX_PUSH, {"rows": [stale]}))["pushContact"]
    assert conflict["firstName"] == "Boss" and conflict["lastName"] == "0"
    # the client resolves (keeps its lastName on top of the master) and pushes again
    resolved = {"assumedMasterState": conflict,
                "newDocumentState": {**conflict, "lastName": "Mine"}}
    assert (await rep1.ok(RX_PUSH, {"rows": [resolved]}))["pushContact"] == []
    newer = (await rep1.ok(RX_PULL, {"cp": cp, "n": 10}))["pullContact"]["documents"]
    assert [(d["firstName"], d["lastName"]) for d in newer] == [("Boss", "Mine")]
    # a delete travels as _deleted
    gone = {"assumedMasterState": newer[0], "newDocumentState": {**newer[0], "_deleted": True}}
    assert (await rep1.ok(RX_PUSH, {"rows": [gone]}))["pushContact"] == []


async def test_rxdb_rejected_order_comes_back_as_master_with_reason(as_user: Any, world: World) -> None:
    rep1 = await as_user("rep1")
    order = {"id": str(uuid.uuid4()), "accountId": str(world.accounts["rep1a"]),
             "status": "SUBMITTED", "lines": [{"productId": str(world.products["cola"]),
                                               "quantity": 500}], "_deleted": False}
    [master] = (await rep1.ok(RX_PUSH_ORDER, {"rows": [{"assumedMasterState": None,
                                                       "newDocumentState": order}]}))["pushOrder"]
    assert master["status"] == "REJECTED" and master["statusReasonCode"] == "CREDIT_LIMIT_EXCEEDED"


async def test_rxdb_never_sees_another_scope(as_user: Any, world: World) -> None:
    rep1, rep3 = await as_user("rep1"), await as_user("rep3")
    foreign = str(uuid.uuid4())
    await rep3.ok(RX_PUSH, {"rows": [{"assumedMasterState": None, "newDocumentState": {
        "id": foreign, "accountId": str(world.accounts["rep3a"]), "firstName": "X",
        "lastName": "Y", "_deleted": False}}]})
    docs, _ = await rx_pull_all(rep1)
    assert foreign not in {d["id"] for d in docs}
    # and pushing onto it yields a deleted master, not the foreign record
    [master] = (await rep1.ok(RX_PUSH, {"rows": [{"assumedMasterState": {"id": foreign},
                                                  "newDocumentState": {"id": foreign,
                                                                       "firstName": "Z"}}]}))["pushContact"]
    assert master == {"id": foreign, "_deleted": True}


async def test_watermelon_created_then_updated_and_per_column_merge(as_user: Any, world: World) -> None:
    rep1, manager = await as_user("rep1"), await as_user("manager1")
    first = (await rep1.ok(WM_PULL, {"t": None}))["watermelonPull"]
    accounts = first["changes"]["accounts"]
    assert {r["id"] for r in accounts["created"]} == {str(world.accounts["rep1a"]),
                                                       str(world.accounts["rep1b"])}
    assert accounts["updated"] == [] and isinstance(first["timestamp"], int)
    rec = next(r for r in accounts["created"] if r["id"] == str(world.accounts["rep1a"]))
    # the server changes the phone; the device changes the city (per-column)
    await manager.ok("""mutation($id: ID!) { updateAccount(id: $id, baseVersion: 1,
        input: {phone: "+32"}) { status } }""", {"id": rec["id"]})
    pushed = (await rep1.ok(WM_PUSH, {"t": first["timestamp"], "c": {"accounts": {
        "created": [], "deleted": [],
        "updated": [{**rec, "city": "Ghent", "_status": "updated", "_changed": "city"}]}}}))
    assert pushed["watermelonPush"]["rejected"] == []
    later = (await rep1.ok(WM_PULL, {"t": first["timestamp"]}))["watermelonPull"]
    [row] = [r for r in later["changes"]["accounts"]["updated"] if r["id"] == rec["id"]]
    assert (row["city"], row["phone"]) == ("Ghent", "+32")
    assert later["changes"]["accounts"]["created"] == []


async def test_watermelon_order_lines_and_rejection_reason(as_user: Any, world: World) -> None:
    rep1 = await as_user("rep1")
    first = (await rep1.ok(WM_PULL, {"t": None}))["watermelonPull"]
    oid = str(uuid.uuid4())
    lines = json.dumps([{"productId": str(world.products["cola"]), "quantity": 500}])
    out = (await rep1.ok(WM_PUSH, {"t": first["timestamp"], "c": {"orders": {
        "created": [{"id": oid, "account_id": str(world.accounts["rep1a"]), "status": "SUBMITTED",
                     "lines": lines, "_status": "created", "_changed": ""}],
        "updated": [], "deleted": []}}}))["watermelonPush"]
    assert out["rejected"][0]["code"] == "CREDIT_LIMIT_EXCEEDED"
    later = (await rep1.ok(WM_PULL, {"t": first["timestamp"]}))["watermelonPull"]
    [order] = later["changes"]["orders"]["updated"]
    assert order["status"] == "REJECTED" and "credit" in order["status_reason"]
    assert json.loads(order["lines"])[0]["quantity"] == 500


async def test_watermelon_migration_backfills_new_tables(as_user: Any, world: World) -> None:
    rep1 = await as_user("rep1")
    first = (await rep1.ok(WM_PULL, {"t": None}))["watermelonPull"]
    again = (await rep1.ok(WM_PULL, {"t": first["timestamp"], "m": {
        "from": 1, "tables": ["products"], "columns": [{"table": "accounts",
                                                        "columns": ["tier"]}]}}))["watermelonPull"]
    assert len(again["changes"]["products"]["created"]) == 2
    assert len(again["changes"]["accounts"]["updated"]) == 2


async def test_watermelon_create_of_a_deleted_id_is_deleted_on_the_next_pull(
        as_user: Any, world: World) -> None:
    """WatermelonDB marks what it pushed as synced whatever the answer: a CREATE refused
    because its id belongs to a deleted record must come back as a deletion, or the
    device keeps a record the server deleted."""
    rep1 = await as_user("rep1")
    first = (await rep1.ok(WM_PULL, {"t": None}))["watermelonPull"]
    contact = {"id": str(uuid.uuid4()), "account_id": str(world.accounts["rep1a"]),
               "first_name": "Deleted", "last_name": "Before", "_status": "created",
               "_changed": ""}
    for changes in ({"created": [contact], "updated": [], "deleted": []},
                    {"created": [], "updated": [], "deleted": [contact["id"]]}):
        out = (await rep1.ok(WM_PUSH, {"t": first["timestamp"], "c": {"contacts": changes}}))
        assert out["watermelonPush"]["rejected"] == []
    middle = (await rep1.ok(WM_PULL, {"t": first["timestamp"]}))["watermelonPull"]
    out = (await rep1.ok(WM_PUSH, {"t": middle["timestamp"], "c": {"contacts": {
        "created": [contact], "updated": [], "deleted": []}}}))["watermelonPush"]
    assert [r["code"] for r in out["rejected"]] == ["ID_IN_USE"]
    later = (await rep1.ok(WM_PULL, {"t": middle["timestamp"]}))["watermelonPull"]
    assert contact["id"] in later["changes"]["contacts"]["deleted"]


async def test_dialect_pushes_and_pulls_keep_the_protocols_caps(
        as_user: Any, world: World, app: Any) -> None:
    rep1 = await as_user("rep1")
    cap = app.state.services.push.limits.max_batch
    rows = [{"newDocumentState": {"id": str(uuid.uuid4()), "firstName": "A", "lastName": "B",
                                  "accountId": str(world.accounts["rep1a"])}}
            for _ in range(cap + 1)]
    body = await rep1.raw(RX_PUSH, {"rows": rows})
    assert body["errors"][0]["extensions"] == {"code": "BATCH_TOO_LARGE", "retryable": False}
    created = [{"id": str(uuid.uuid4()), "account_id": str(world.accounts["rep1a"]),
                "first_name": "A", "last_name": "B", "_status": "created", "_changed": ""}
               for _ in range(cap + 1)]
    body = await rep1.raw(WM_PUSH, {"t": None, "c": {"contacts": {
        "created": created, "updated": [], "deleted": []}}})
    assert body["errors"][0]["extensions"] == {"code": "BATCH_TOO_LARGE", "retryable": False}
    # Neither push applied anything.
    docs, _ = await rx_pull_all(rep1, batch=100)
    assert docs == []
    # An RxDB pull asking for more than a page gets at most one.
    limit = app.state.services.pull.limits.max_page
    async with app.state.services.db.write() as s:
        await insert_rows(s, "contact", [{"account_id": world.accounts["rep1a"],
                                          "first_name": f"C{i}", "last_name": "D"}
                                         for i in range(limit + 5)])
    page = (await rep1.ok(RX_PULL, {"cp": None, "n": 2_000_000_000}))["pullContact"]
    assert len(page["documents"]) == limit


async def test_watermelon_input_a_client_must_fix_is_not_retryable(
        as_user: Any, world: World) -> None:
    rep1 = await as_user("rep1")
    order = {"id": str(uuid.uuid4()), "account_id": str(world.accounts["rep1a"]),
             "_status": "created", "_changed": ""}
    bad = {
        "record not an object": {"contacts": {"created": ["x"], "updated": [], "deleted": []}},
        "lines not JSON": {"orders": {"created": [{**order, "lines": "[{"}], "updated": [],
                                      "deleted": []}},
        "version not a number": {"contacts": {"created": [], "deleted": [], "updated": [
            {"id": str(uuid.uuid4()), "version": "one", "_changed": "first_name"}]}},
        "version out of range": {"contacts": {"created": [], "deleted": [], "updated": [
            {"id": str(uuid.uuid4()), "version": 2.0 ** 80, "_changed": "first_name"}]}},
        "kind not a list": {"contacts": {"created": {"id": "x"}}},
    }
    for case, changes in bad.items():
        body = await rep1.raw(WM_PUSH, {"t": None, "c": changes})
        assert body["errors"][0]["extensions"] == {"code": "INVALID_FIELD",
                                                   "retryable": False}, case
    for t in (1e308, -1.0, 1.5):
        body = await rep1.raw(WM_PULL, {"t": t})
        assert body["errors"][0]["extensions"]["code"] == "INVALID_FIELD", t
