"""What the fleet does during the day: the devices (with a ledger of every mutation they
make), a rep's offline work, the managers' and the back office's edits, and the day's
plan (who has a tablet, which accounts and leads change hands, what goes on hold).

Per rep and day (crm-domain §7.6): ~8 visits (a VISIT task ticked off), ~5 visit notes,
~5 orders of ~8 lines (created as DRAFT, then SUBMITTED; some over the credit limit, some
with the product the back office withdraws mid-day, a few with too high a discount, a
few cancelled or deleted), ~3 field edits of contacts and accounts (some on the same
records and fields the manager or the back office edit meanwhile), ~1 lead status change
or new lead, ~0.3 new prospect accounts, and edits of this morning's open orders (some of
which the back office confirms meanwhile: ORDER_LOCKED).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.fleet.dataset import PASSWORD, Person, RepWorld, World
from client import Device

LEAD_NEXT = {"NEW": "CONTACTED", "CONTACTED": "QUALIFIED", "QUALIFIED": "DISQUALIFIED"}


def sub_rng(seed: int, *parts: object) -> random.Random:
    h = hashlib.sha256("/".join(map(str, (seed, *parts))).encode()).digest()
    return random.Random(int.from_bytes(h[:8], "big"))


def det_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass(frozen=True)
class Mutation:
    """One mutation a device made, as it was enqueued."""

    device: str
    client_id: str
    mutation_id: int
    entity: str
    op: str
    id: str
    #: for orders: the lines sent (to check the server kept exactly those)
    lines: tuple[tuple[str, int], ...] | None = None
    sends_lines: bool = False


@dataclass
class SimDevice:
    """A `client.Device` plus the ledger of everything it enqueued."""

    name: str
    person: Person
    kind: str  # phone | tablet | manager
    device: Device
    rng: random.Random
    ledger: list[Mutation] = field(default_factory=list)
    relogins: int = 0

    @property
    def store(self) -> Any:
        return self.device.store

    def _log(self, mid: int, entity: str, id: str, fields: dict[str, Any] | None) -> None:
        row = self.store.db.execute("SELECT op FROM outbox WHERE mutation_id = ?", (mid,)).fetchone()
        op = row[0]
        lines = None
        sends = False
        if entity == "order" and fields is not None and "lines" in fields:
            sends = True
            lines = tuple(sorted((str(x["productId"]), int(x["quantity"]))
                                 for x in fields["lines"]))
        self.ledger.append(Mutation(self.name, self.device.client_id, mid, entity, op, id,
                                    lines, sends))

    def create(self, entity: str, fields: dict[str, Any]) -> str:
        mid = self.store.next_mutation_id
        rid = self.device.create(entity, fields, id=det_id(self.rng))
        self._log(mid, entity, rid, fields)
        return rid

    def update(self, entity: str, id: str, fields: dict[str, Any]) -> int:
        mid = self.device.update(entity, id, fields)
        row = self.store.db.execute("SELECT fields FROM outbox WHERE mutation_id = ?", (mid,)).fetchone()
        self._log(mid, entity, id, json.loads(row[0]) if row and row[0] else fields)
        return mid

    def delete(self, entity: str, id: str) -> int | None:
        mid = self.device.delete(entity, id)
        if mid is not None:
            self._log(mid, entity, id, None)
        return mid

    def data(self, entity: str) -> list[tuple[str, dict[str, Any]]]:
        return [(r.id, r.data) for r in self.device.records(entity) if r.data is not None]

    async def login(self) -> None:
        await self.device.login(self.person.email, PASSWORD)


# -- the day's plan ----------------------------------------------------------------------

@dataclass
class DayPlan:
    tablets: set[str]
    lunch: set[str]  # rep names whose phone syncs at lunch
    reassign: list[tuple[str, str, str]]  # (account id, from rep, to rep), mid-day
    storm_reassign: list[tuple[str, str, str]]  # during the sync storm
    lead_race: list[tuple[str, str, str]]  # (lead id, from rep A, to rep B)
    on_hold: list[str]
    confirm: list[str]  # this morning's open orders the back office confirms mid-day
    bo_contacts: list[str]  # contacts whose email the back office corrects mid-day
    bo_addresses: list[str]  # accounts whose address the back office corrects mid-day


def make_plan(world: World, seed: int, tablet_share: float, lunch_share: float) -> DayPlan:
    rng = sub_rng(seed, "plan")
    reps = [r.person.name for r in world.reps]
    tablets = {r for r in reps if rng.random() < tablet_share}
    if len(reps) >= 2 and not tablets:
        tablets.add(reps[0])
    pairs = []
    for names in world.team.values():
        shuffled = names[:]
        rng.shuffle(shuffled)
        pairs += [(shuffled[i], shuffled[i + 1]) for i in range(0, len(shuffled) - 1, 2)]
    rng.shuffle(pairs)
    n_move = max(1, len(reps) // 50) if len(reps) >= 2 else 0
    moves = pairs[:n_move]
    storm_moves = pairs[n_move:2 * n_move]
    races = pairs[2 * n_move:2 * n_move + max(1, len(reps) // 25)]
    reassign = [(str(rng.choice(world.rep(a).route)), a, b) for a, b in moves]
    storm = [(str(rng.choice(world.rep(a).route)), a, b) for a, b in storm_moves]
    lead_race = [(str(world.rep(a).leads[0]), a, b) for a, b in races]
    lunch = {b for _, _, b in lead_race} | {r for r in reps if rng.random() < lunch_share}
    taken = {a for a, _, _ in reassign + storm}
    on_hold, confirm, contacts, addresses = [], [], [], []
    for r in world.reps:
        free = [a for a in r.route if str(a) not in taken]
        if free and rng.random() < 0.10:
            on_hold.append(str(rng.choice(free)))
        if r.open_orders and rng.random() < 0.3:
            confirm.append(str(rng.choice(r.open_orders)))
        for a in r.route:
            if rng.random() < 0.05 and r.contacts.get(a):
                contacts.append(str(rng.choice(r.contacts[a])))
            if rng.random() < 0.03 and str(a) not in taken:
                addresses.append(str(a))
    return DayPlan(tablets, lunch, reassign, storm, lead_race, on_hold, confirm, contacts,
                   addresses)


# -- a rep's offline day -----------------------------------------------------------------

def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class RepDay:
    """One device's work, split into a morning and an afternoon half."""

    sd: SimDevice
    rep: RepWorld
    plan: DayPlan
    doomed: str
    half_stats: Counter[str] = field(default_factory=Counter)

    def _products(self) -> list[str]:
        return sorted(i for i, d in self.sd.data("product") if d.get("active", True))

    def _my(self, entity: str) -> dict[str, dict[str, Any]]:
        return dict(self.sd.data(entity))

    def work(self, half: int) -> None:
        """Do half a day's work offline (half 0: morning, 1: afternoon)."""
        sd, rng = self.sd, self.sd.rng
        tablet = sd.kind == "tablet"
        accounts = self._my("account")
        route = [str(a) for a in self.rep.route if str(a) in accounts]
        others = sorted(a for a in accounts if a not in route)
        tasks = self._my("task")
        n_visits = rng.randint(1, 2) if tablet else len(route)
        visits = route[:] if not tablet else rng.sample(route or others or [""], 1)
        rng.shuffle(visits)
        visits = [v for v in visits if v][:n_visits]
        half_visits = visits[: len(visits) // 2] if half == 0 else visits[len(visits) // 2:]
        for acc in half_visits:
            self.visit(acc, tasks, tablet)
        edits = rng.choice([1, 2]) if not tablet else 1
        for _ in range(edits):
            self.field_edit(route or others)
        if not tablet and rng.random() < 0.5 + 0.5 * half:
            self.lead_change()
        if not tablet and half == 1 and rng.random() < 0.3:
            self.prospect()
        if not tablet and half == 0 and rng.random() < 0.3:
            self.touch_open_order()

    def visit(self, acc: str, tasks: dict[str, dict[str, Any]], tablet: bool) -> None:
        sd, rng = self.sd, self.sd.rng
        self.half_stats["visits"] += 1
        for tid, t in sorted(tasks.items()):
            if t.get("accountId") == acc and t.get("kind") == "VISIT" and not t.get("done"):
                sd.update("task", tid, {"done": True})
                break
        if rng.random() < 5 / 8:
            sd.create("visitNote", {
                "accountId": acc, "visitedAt": _now(), "outcome": rng.choice(
                    ["ORDER_TAKEN", "NO_ORDER", "FOLLOW_UP"]),
                "checkInLat": round(46 + rng.random(), 6), "checkInLon": round(14 + rng.random(), 6),
                "body": f"Visited; spoke to the buyer ({rng.randint(1, 999)})."})
        if rng.random() < (3 / 8 if tablet else 5 / 8):
            self.order(acc)

    def order(self, acc: str) -> None:
        sd, rng = self.sd, self.sd.rng
        products = self._products()
        if not products:
            return
        n = max(1, min(len(products), int(rng.gauss(8, 3))))
        picked = rng.sample(products, n)
        big = rng.random() < 0.12
        if self.doomed in products and rng.random() < 0.12 and self.doomed not in picked:
            picked[0] = self.doomed
        lines: list[dict[str, Any]] = [{"productId": p, "quantity": rng.randint(20, 60) if big else rng.randint(1, 8)}
                 for p in picked]
        if rng.random() < 0.03:
            lines[0]["discountBp"] = 1500  # over a rep's 10 %: DISCOUNT_TOO_HIGH
        oid = sd.create("order", {"accountId": acc, "status": "DRAFT", "lines": lines,
                                  "poNumber": f"PO-{rng.randint(1000, 9999)}"})
        x = rng.random()
        if x < 0.03:
            sd.delete("order", oid)
        elif x < 0.08:
            sd.update("order", oid, {"status": "CANCELLED"})
        else:
            if rng.random() < 0.2:  # the customer changes their mind before submitting
                lines = lines[:-1] if len(lines) > 1 else lines
                lines[0] = {**lines[0], "quantity": lines[0]["quantity"] + 1}
                sd.update("order", oid, {"lines": lines, "status": "SUBMITTED"})
            else:
                sd.update("order", oid, {"status": "SUBMITTED"})

    def field_edit(self, accounts: list[str]) -> None:
        sd, rng = self.sd, self.sd.rng
        if not accounts:
            return
        acc = rng.choice(accounts)
        contacts = sorted(i for i, d in self.sd.data("contact") if d.get("accountId") == acc)
        tag = rng.randint(100, 999)
        x = rng.random()
        if contacts and x < 0.55:
            cid = rng.choice(contacts)
            f = rng.choice([{"phone": f"+386 41 {tag} {tag}"}, {"email": f"new{tag}@shop.example"},
                            {"title": rng.choice(["Owner", "Head buyer", "Store manager"])}])
            sd.update("contact", cid, f)
        elif x < 0.75:
            sd.update("account", acc, rng.choice([{"phone": f"+386 1 {tag} {tag}"},
                                                  {"email": f"shop{tag}@shop.example"},
                                                  {"notes": f"Prefers morning deliveries ({tag})"}]))
        elif x < 0.9:
            sd.update("account", acc, {"street": f"{tag} New Road", "postalCode": f"{tag}0",
                                       "city": f"Town {tag % 40}"})
        else:
            sd.update("account", acc, {"creditLimitCents": 9_999_999})  # restricted: CONFLICT

    def lead_change(self, lead: str | None = None, status: str | None = None) -> None:
        sd, rng = self.sd, self.sd.rng
        leads = self._my("lead")
        if lead is None and (not leads or rng.random() < 0.3):
            sd.create("lead", {"company": f"Prospect {rng.randint(1, 99999)}", "firstName": "Alex",
                               "lastName": "Field", "source": "FIELD",
                               "phone": f"+386 31 {rng.randint(100, 999)} 000"})
            return
        lead = lead or rng.choice(sorted(leads))
        if lead not in leads:
            return
        current = leads[lead].get("status", "NEW")
        nxt = status or LEAD_NEXT.get(current)
        fields: dict[str, Any] = {"score": rng.randint(10, 90)}
        if nxt and nxt != current:
            fields["status"] = nxt
            if nxt == "DISQUALIFIED":
                fields["statusReason"] = "no budget this year"
        sd.update("lead", lead, fields)

    def prospect(self) -> None:
        sd, rng = self.sd, self.sd.rng
        acc = sd.create("account", {"name": f"New shop {rng.randint(1, 99999)}", "city": "Ljubljana",
                                    "phone": f"+386 1 {rng.randint(100, 999)} 0000"})
        sd.create("contact", {"accountId": acc, "firstName": "Sam", "lastName": "Owner",
                              "isPrimary": True})
        if rng.random() < 0.5:
            self.order(acc)

    def touch_open_order(self) -> None:
        sd, rng = self.sd, self.sd.rng
        orders = [i for i, d in self.sd.data("order")
                  if d.get("status") in ("SUBMITTED", "CONFIRMED")
                  and (d.get("number") or "").startswith("SEED")]
        if orders:
            sd.update("order", rng.choice(sorted(orders)), {"notes": f"Deliver before {rng.randint(8, 11)}am"})


# -- managers (online, on their tablets) --------------------------------------------------

def manager_edits(sd: SimDevice, plan: DayPlan, world: World, intensity: float = 1.0) -> int:
    """A manager edits some of the records their reps work on today; returns the count."""
    rng = sd.rng
    team = set(world.team.get(sd.person.name, []))
    n = 0
    accounts = dict(sd.data("account"))
    contacts = sd.data("contact")
    leads = dict(sd.data("lead"))
    for r in world.reps:
        if r.person.name not in team:
            continue
        for route_acc in r.route:
            a = str(route_acc)
            if a not in accounts or rng.random() > 0.06 * intensity:
                continue
            x = rng.random()
            if x < 0.4:
                sd.update("account", a, {"phone": f"+386 1 {rng.randint(100, 999)} 7777"})
            elif x < 0.7:
                sd.update("account", a, {"creditLimitCents": rng.choice([30_000, 80_000, 6_000_000])})
            else:
                cs = sorted(i for i, d in contacts if d.get("accountId") == a)
                if cs:
                    sd.update("contact", rng.choice(cs), rng.choice([
                        {"title": "Purchasing director"}, {"phone": f"+386 51 {rng.randint(100, 999)} 111"}]))
            n += 1
        for lead_id in r.leads:
            lid = str(lead_id)
            if lid in leads and rng.random() < 0.08 * intensity:
                cur = leads[lid].get("status", "NEW")
                target = "QUALIFIED" if cur in ("NEW", "CONTACTED") else None
                if target:
                    sd.update("lead", lid, {"status": target, "estimatedValueCents": 250_000})
                    n += 1
    return n


# -- the back office (GraphQL CRUD API, admin) --------------------------------------------

BO_QUERIES = {
    "account": "mutation($id: ID!, $i: AccountInput!) { updateAccount(id: $id, input: $i) { status errors { code message } } }",
    "contact": "mutation($id: ID!, $i: ContactInput!) { updateContact(id: $id, input: $i) { status errors { code message } } }",
    "lead": "mutation($id: ID!, $i: LeadInput!) { updateLead(id: $id, input: $i) { status errors { code message } } }",
    "product": "mutation($id: ID!, $i: ProductInput!) { updateProduct(id: $id, input: $i) { status errors { code message } } }",
    "order": "mutation($id: ID!, $i: OrderInput!) { updateOrder(id: $id, input: $i) { status errors { code message } } }",
}
BO_LOGIN = """mutation($e: String!, $p: String!) { login(email: $e, password: $p) {
  __typename ... on LoginSuccess { accessToken } ... on AuthError { code message } } }"""


@dataclass
class BackOffice:
    """The back office: an admin using the GraphQL API (not a syncing device)."""

    url: str
    person: Person
    token: str = ""
    outcomes: Counter[str] = field(default_factory=Counter)
    log: list[tuple[str, str, dict[str, Any], str]] = field(default_factory=list)

    async def login(self, http: httpx.AsyncClient) -> None:
        r = await http.post(self.url + "/graphql", json={"query": BO_LOGIN, "variables": {
            "e": self.person.email, "p": PASSWORD}})
        self.token = r.json()["data"]["login"]["accessToken"]

    async def update(self, http: httpx.AsyncClient, entity: str, id: str,
                     fields: dict[str, Any]) -> str:
        for attempt in range(30):
            try:
                r = await http.post(self.url + "/graphql", json={
                    "query": BO_QUERIES[entity], "variables": {"id": id, "i": fields}},
                    headers={"Authorization": f"Bearer {self.token}"}, timeout=60)
                body = r.json()
            except (httpx.TransportError, ValueError):
                await asyncio.sleep(min(2.0, 0.1 * 2 ** attempt))
                continue
            if body.get("errors"):
                if (body["errors"][0].get("extensions") or {}).get("retryable"):
                    await asyncio.sleep(min(2.0, 0.1 * 2 ** attempt))
                    continue
                status = "ERROR:" + str(body["errors"][0].get("message"))[:80]
            else:
                payload = next(iter(body["data"].values()))
                errs = payload.get("errors") or []
                status = payload["status"] + (f":{errs[0]['code']}" if errs else "")
            self.outcomes[f"{entity} {status}"] += 1
            self.log.append((entity, id, fields, status))
            return status
        self.outcomes[f"{entity} UNREACHABLE"] += 1
        return "UNREACHABLE"
