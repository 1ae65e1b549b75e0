"""Managers querying during the sync storm (the morning-peak load test, issue 6).

While the fleet's devices sync, `count` managers of the simulated world sign in with
their real logins (GraphQL `login`, the world's password) and keep running the explorer
queries of docs/manager-queries.md against the same server, one request at a time each,
with a short think time in between:

=================  ============================================================
``customer360``    the full screen pop for a random account of the manager's team
``accounts``       a page of one team rep's accounts with their recent orders and lines
``topCustomers``   best customers of the last 365 days by margin (managers only)
``salesVolume``    revenue by rep and month, or by category (reads order lines),
                   against the previous period
``leadFunnel``     the team's lead funnel
=================  ============================================================

Each manager goes through a shuffled deck of these (customer360 three times, the page of
accounts twice, the others once), so every kind runs often whatever the run's length.
A few requests are scope probes: a customer360 of an account of *another* team must be
`null`. Each answer is checked: a customer360 of a team account is not null and names
that account; the accounts page holds only accounts of the rep asked for, their orders
belong to them; the aggregates have the fields asked for.

Faults: managers are online in the office, so their requests do not go through the
injected-fault layer, but they do meet the server's SIGKILL + restart and any load
shedding (503 UNAVAILABLE). Errors are counted per query and kind:

- *expected* under the simulated day: no answer (the server is down or restarting), a
  502/503/504, and load shedding (`UNAVAILABLE`, or another error marked `retryable`);
- *unexpected*: any other HTTP status or GraphQL error (a masked `INTERNAL` error even
  though it says `retryable`, `UNAUTHENTICATED` within the token's lifetime, a
  validation error), and any failed check of an answer (wrong data, a scope leak). These
  fail the run.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from bench.fleet.dataset import PASSWORD, Person, World
from bench.fleet.workload import BO_LOGIN, sub_rng

if TYPE_CHECKING:
    from collections.abc import Callable

#: The kinds of query, in report order, and how often each is in a manager's deck.
DECK = {"customer360": 3, "accounts": 2, "topCustomers": 1, "salesVolume": 1, "leadFunnel": 1}
#: Share of customer360 calls that probe an account of another team (must be null).
PROBE_SHARE = 0.1

CUSTOMER360 = """query ScreenPop($account: ID!) {
  customer360(accountId: $account) {
    account { id name tier segment city phone owner { fullName } }
    balanceCents overdueCents oldestOverdueDays creditLimitCents exposureCents
    creditAvailableCents paymentTermsDays onHold
    openInvoices { number dueDate amountOpenCents }
    recentOrders(first: 5) { number orderDate status totalCents }
    purchases { revenue12mCents revenuePrior12mCents revenueChange orderCount12m
                averageOrderCents orderIntervalDays lastOrderDate }
    topProducts(first: 5) { product { sku name } orderCount quantity usualIntervalDays }
    nextPurchases { purchase { product { name } lastOrderDate } daysSinceLast dueInDays
                    suggestedQuantity }
    recommendations(first: 5) { product { name } because { name } rule { confidence lift } }
    segment { score segment recencyDays }
    openCases { flagged headline case { number subject status priority } }
    visitNotes(first: 3) { visitedAt outcome body author { fullName } }
    openTasks { title kind dueDate }
    upcomingBirthdays(days: 30) { contact { firstName lastName phone } date inDays turns }
  }
}"""

ACCOUNTS = """query RepAccounts($rep: ID!) {
  accounts(filter: {ownerId: $rep}, first: 20) {
    totalCount
    edges { node { id name ownerId city status creditLimitCents balanceCents
                   orders(first: 5) { id accountId number orderDate status totalCents
                                      lines { quantity lineTotalCents product { sku name } } } } }
    pageInfo { hasNextPage endCursor }
  }
}"""

TOP_CUSTOMERS = """query BestCustomers {
  topCustomers(by: MARGIN, limit: 10) {
    customerCount revenueCents marginCents top10PctRevenueShare top30PctRevenueShare
    customers { rank account { id name tier city } revenueCents marginCents marginRate
                orderCount lastOrderDate revenueShare cumulativeRevenueShare }
  }
}"""

SALES_VOLUME = """query Volume($groupBy: [SalesDimension!]) {
  salesVolume(groupBy: $groupBy, compareTo: PREVIOUS_PERIOD) {
    period { start end } previousPeriod { start end } groupCount
    totals { revenueCents quantity orderCount customerCount marginCents }
    previousTotals { revenueCents }
    rows { rep { fullName } category month
           current { revenueCents orderCount marginCents } previous { revenueCents } revenueChange }
  }
}"""

LEAD_FUNNEL = """query Funnel($team: ID) {
  leadFunnel(teamId: $team) {
    total { leads contacted qualified converted disqualified conversionRate }
    byStatus { status count }
    stages { stage reached conversionFromPrevious medianDaysInStage finishedStays }
    bySource { source counts { leads qualified converted conversionRate } }
    byOwner { owner { fullName } counts { leads converted conversionRate } }
    medianDaysToConvert
  }
}"""

Check = "Callable[[dict[str, Any]], str | None]"


@dataclass
class QueryStats:
    ok: int = 0
    latencies: list[float] = field(default_factory=list)  # successful requests
    #: expected errors (no answer, retryable) and unexpected ones, by kind
    expected: Counter[str] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)


@dataclass
class Manager:
    person: Person
    team_reps: list[Person]
    team_accounts: list[str]
    rng: random.Random
    token: str = ""


class ManagerLoad:
    """`count` managers running explorer queries until `run()`'s phase ends."""

    def __init__(self, url: str, world: World, count: int, seed: int,
                 think: float = 1.0, log: Callable[[str], None] = print) -> None:
        self.url = url + "/graphql"
        self.think = think
        self.log = log
        self.stats: dict[str, QueryStats] = {k: QueryStats() for k in DECK}
        #: unexpected answers, with the request (the first few per kind are kept)
        self.failures: list[str] = []
        self.started = 0.0
        self.ended = 0.0
        self.logins = 0
        reps_by_name = {r.person.name: r for r in world.reps}
        all_accounts: dict[str, list[str]] = {}
        for boss, names in world.team.items():
            all_accounts[boss] = [str(a) for n in names for a in reps_by_name[n].accounts]
        self.managers: list[Manager] = []
        people = world.managers
        for i in range(count if people else 0):
            boss = people[i % len(people)]
            self.managers.append(Manager(
                boss, [reps_by_name[n].person for n in world.team.get(boss.name, [])],
                all_accounts.get(boss.name, []), sub_rng(seed, "manager-load", i)))
        self._others = {m.person.name: [a for b, accs in all_accounts.items()
                                        if b != m.person.name for a in accs]
                        for m in self.managers}

    @property
    def seconds(self) -> float:
        return max(0.0, self.ended - self.started)

    @property
    def unexpected(self) -> int:
        return sum(sum(s.unexpected.values()) for s in self.stats.values())

    # -- one request -----------------------------------------------------------------------

    async def _login(self, http: httpx.AsyncClient, m: Manager, until: Callable[[], bool]) -> bool:
        for attempt in range(30):
            if until():
                return False
            try:
                r = await http.post(self.url, json={"query": BO_LOGIN, "variables": {
                    "e": m.person.email, "p": PASSWORD}})
                m.token = r.json()["data"]["login"]["accessToken"]
                self.logins += 1
                return True
            except (httpx.TransportError, ValueError, KeyError, TypeError):
                await asyncio.sleep(min(3.0, 0.2 * 2 ** attempt) * m.rng.random())
        raise RuntimeError(f"{m.person.name} could not sign in")

    def _pick(self, m: Manager, kind: str) -> tuple[str, dict[str, Any], Check]:
        rng = m.rng
        if kind == "customer360":
            others = self._others.get(m.person.name) or []
            if others and rng.random() < PROBE_SHARE:
                acc = rng.choice(others)
                return CUSTOMER360, {"account": acc}, lambda d: (
                    None if d["customer360"] is None else
                    f"scope leak: customer360 of account {acc} of another team answered "
                    f"{str(d['customer360'])[:120]}")
            acc = rng.choice(m.team_accounts)
            return CUSTOMER360, {"account": acc}, lambda d: (
                f"customer360 of team account {acc} is null" if d["customer360"] is None else
                None if d["customer360"]["account"]["id"] == acc else
                f"customer360 of {acc} answered account {d['customer360']['account']['id']}")
        if kind == "accounts":
            rep = rng.choice(m.team_reps) if m.team_reps else m.person
            rid = str(rep.user_id)

            def check(d: dict[str, Any]) -> str | None:
                edges = d["accounts"]["edges"]
                if not edges:
                    return f"no accounts for team rep {rep.name}"
                for e in edges:
                    n = e["node"]
                    if n["ownerId"] != rid:
                        return f"accounts(ownerId: {rid}) answered account {n['id']} of {n['ownerId']}"
                    for o in n["orders"]:
                        if o["accountId"] != n["id"]:
                            return f"account {n['id']} lists order {o['id']} of account {o['accountId']}"
                return None
            return ACCOUNTS, {"rep": rid}, check
        if kind == "topCustomers":
            return TOP_CUSTOMERS, {}, lambda d: (
                None if d["topCustomers"]["marginCents"] is not None
                else "topCustomers: no margin for a manager")
        if kind == "salesVolume":
            group = rng.choice([["REP", "MONTH"], ["CATEGORY"]])
            return SALES_VOLUME, {"groupBy": group}, lambda d: (
                None if d["salesVolume"]["totals"] is not None else "salesVolume: no totals")
        if kind == "leadFunnel":
            return LEAD_FUNNEL, {"team": str(m.person.user_id)}, lambda d: (
                None if d["leadFunnel"]["total"]["leads"] >= 0 else "leadFunnel: bad total")
        raise ValueError(kind)

    async def _one(self, http: httpx.AsyncClient, m: Manager, kind: str,
                   until: Callable[[], bool]) -> None:
        query, variables, check = self._pick(m, kind)
        st = self.stats[kind]
        t0 = time.monotonic()
        try:
            r = await http.post(self.url, json={"query": query, "variables": variables},
                                headers={"Authorization": f"Bearer {m.token}"})
        except httpx.TransportError as e:
            st.expected[f"no answer ({type(e).__name__})"] += 1
            return
        took = time.monotonic() - t0
        try:
            body = r.json()
        except ValueError:
            body = None
        errors = (body or {}).get("errors") if isinstance(body, dict) else None
        if errors:
            ext = errors[0].get("extensions") or {}
            code = ext.get("code") or "no code"
            label = f"HTTP {r.status_code} {code}"
            if code == "UNAVAILABLE" or (ext.get("retryable") and code != "INTERNAL"):
                st.expected[label] += 1  # load shedding: the database is busy, retry
            else:
                # A masked server failure (INTERNAL, retryable or not), a token refused
                # within its lifetime (UNAUTHENTICATED; the restart keeps the keys), a
                # query the schema refuses: all bugs.
                st.unexpected[label] += 1
                self._fail(kind, variables, f"{label}: {errors[0].get('message')!s:.200} "
                                            f"(ref {ext.get('ref')})")
                if code == "UNAUTHENTICATED":
                    await self._login(http, m, until)
            return
        if r.status_code != 200 or not isinstance(body, dict) or not body.get("data"):
            label = f"HTTP {r.status_code}"
            if r.status_code in (502, 503, 504):
                st.expected[label] += 1
            else:
                st.unexpected[label] += 1
                self._fail(kind, variables, f"{label}: {r.text[:200]}")
            return
        try:
            problem = check(body["data"])  # type: ignore[operator]
        except (KeyError, TypeError) as e:
            problem = f"malformed answer ({type(e).__name__}: {e})"
        if problem:
            st.unexpected["wrong answer"] += 1
            self._fail(kind, variables, problem)
            return
        st.ok += 1
        st.latencies.append(took)

    def _fail(self, kind: str, variables: dict[str, Any], what: str) -> None:
        if len(self.failures) < 50:
            self.failures.append(f"{kind} {variables}: {what}")

    # -- the session -----------------------------------------------------------------------

    async def _manager(self, http: httpx.AsyncClient, m: Manager, until: Callable[[], bool]) -> None:
        if not await self._login(http, m, until):
            return
        deck = [k for k, n in DECK.items() for _ in range(n)]
        while not until():
            m.rng.shuffle(deck)
            for kind in deck:
                if until():
                    return
                await self._one(http, m, kind, until)
                if self.think > 0:
                    await asyncio.sleep(m.rng.uniform(0, 2 * self.think))

    async def run(self, until: Callable[[], bool]) -> None:
        """Query until `until()` is true (checked between requests)."""
        if not self.managers:
            return
        limits = httpx.Limits(max_connections=len(self.managers),
                              max_keepalive_connections=len(self.managers))
        async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(120.0, connect=10.0)) as http:
            self.started = time.monotonic()
            try:
                await asyncio.gather(*(self._manager(http, m, until) for m in self.managers))
            finally:
                self.ended = time.monotonic()
        self.log(f"  manager queries: {sum(s.ok for s in self.stats.values())} answered in "
                 f"{self.seconds:.1f}s by {len(self.managers)} managers, "
                 f"{sum(sum(s.expected.values()) for s in self.stats.values())} expected errors, "
                 f"{self.unexpected} unexpected")
