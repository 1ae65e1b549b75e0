"""The benchmark's device side: GraphQL over HTTP to the real server, timed phases."""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from bench.dataset import LINES_PER_ORDER, PASSWORD, Product, Rep
from sync.model import new_id, utcnow

LOGIN = """mutation($e: String!, $p: String!) { login(email: $e, password: $p) {
  __typename ... on LoginSuccess { accessToken } ... on AuthError { code message } } }"""
PUSH = """mutation($input: SyncPushInput!) { syncPush(input: $input) { lastMutationId
  results { mutationId status id version conflictId error { code message field } } } }"""
PULL = """query($c: ID!, $cursor: String, $limit: Int) {
  syncPull(clientId: $c, cursor: $cursor, limit: $limit) {
    changes { entity id op version data } cursor hasMore reset lastMutationId } }"""
TIMEOUT = httpx.Timeout(600.0)


class BenchError(RuntimeError):
    pass


async def gql(http: httpx.AsyncClient, query: str, variables: dict[str, Any],
              token: str | None = None) -> dict[str, Any]:
    """POST a GraphQL request; HTTP failures come back as a GraphQL-style error."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = await http.post("/graphql", json={"query": query, "variables": variables},
                        headers=headers)
    return answer(r)


def answer(r: httpx.Response) -> dict[str, Any]:
    """A GraphQL response body; an HTTP failure comes back as a GraphQL-style error.

    Decoded with orjson: a phone parses JSON with native code (as the pouchdb-server
    reference's Node client does). The standard library's decoder ran inside the timed
    window on the server's cores: 0.03 ms of client CPU per pulled record, not 0.02, and
    about 5 % of the initial pull's records/s."""
    if r.status_code != 200:
        return {"errors": [{"message": f"HTTP {r.status_code}: {r.text[:500]}"}]}
    body: dict[str, Any] = orjson.loads(r.content)
    return body


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# -- login --------------------------------------------------------------------------------

@dataclass
class LoginFigures:
    """Logins are setup, not a measured phase, but their cost and failures are reported."""

    tokens: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0
    retried: list[str] = field(default_factory=list)


async def login(http: httpx.AsyncClient, email: str) -> str:
    """One rep's access token, through the `login` mutation."""
    body = await gql(http, LOGIN, {"e": email, "p": PASSWORD})
    return str(body["data"]["login"]["accessToken"])


async def _login_one(http: httpx.AsyncClient, rep: Rep, gate: asyncio.Semaphore,
                     fig: LoginFigures, attempts: int) -> None:
    for attempt in range(attempts):
        async with gate:
            body = await gql(http, LOGIN, {"e": rep.email, "p": PASSWORD})
        data = (body.get("data") or {}).get("login") or {}
        if data.get("__typename") == "LoginSuccess":
            fig.tokens[rep.email] = str(data["accessToken"])
            return
        error = (body.get("errors") or [{}])[0].get("message") or data
        if attempt + 1 == attempts:
            raise BenchError(f"login of {rep.email} failed {attempts} times: {error}")
        fig.retried.append(f"login of {rep.email} failed, retried: {error}")


async def login_all(base_url: str, reps: Sequence[Rep], parallel: int = 4,
                    attempts: int = 3) -> LoginFigures:
    """Access tokens by email. argon2 makes logins CPU-bound, so a few at a time, and a
    failed login is retried (see bench/README.md: logins hold the SQLite write lock)."""
    fig = LoginFigures()
    gate = asyncio.Semaphore(parallel)
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as http:
        await asyncio.gather(*(_login_one(http, r, gate, fig, attempts) for r in reps))
    fig.elapsed_s = time.perf_counter() - t0
    return fig


# -- push ---------------------------------------------------------------------------------

@dataclass
class PushFigures:
    orders: int = 0
    elapsed_s: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    failed_requests: int = 0

    @property
    def applied(self) -> int:
        return self.statuses["APPLIED"]

    @property
    def rate(self) -> float:
        return self.applied / self.elapsed_s if self.elapsed_s else 0.0


def order_mutation(mutation_id: int, rep: Rep, products: Sequence[Product],
                   rng: random.Random) -> dict[str, Any]:
    """One offline order: client-minted ids, three lines, the server prices it."""
    lines = [{"id": str(new_id()), "productId": str(rng.choice(products).id),
              "quantity": rng.randint(1, 5)} for _ in range(LINES_PER_ORDER)]
    return {"mutationId": mutation_id, "entity": "order", "op": "CREATE", "id": str(new_id()),
            "clientTime": utcnow().isoformat().replace("+00:00", "Z"),
            "fields": {"accountId": str(rep.accounts[mutation_id % len(rep.accounts)]),
                       "poNumber": f"PO-{mutation_id}", "lines": lines}}


def outboxes(reps: Sequence[Rep], orders: int, products: Sequence[Product],
             rng: random.Random) -> list[list[dict[str, Any]]]:
    """Each rep's outbox: `orders` spread evenly, mutation ids 1..N per client."""
    per, extra = divmod(orders, len(reps))
    return [[order_mutation(m + 1, rep, products, rng) for m in range(per + (i < extra))]
            for i, rep in enumerate(reps)]


def _tally(fig: PushFigures, sent: Sequence[dict[str, Any]], body: dict[str, Any]) -> None:
    if body.get("errors"):
        fig.failed_requests += 1
        fig.statuses["REQUEST_ERROR"] += len(sent)
        fig.problems.append(f"request error: {body['errors'][0].get('message')}")
        return
    for r in body["data"]["syncPush"]["results"]:
        fig.statuses[r["status"]] += 1
        if r["status"] != "APPLIED":
            fig.problems.append(f"mutation {r['mutationId']}: {r['status']} {r['error']}")


async def _push_client(http: httpx.AsyncClient, token: str,
                       batches: Sequence[tuple[Sequence[dict[str, Any]], bytes]],
                       fig: PushFigures, gate: asyncio.Semaphore) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for chunk, content in batches:
        async with gate:
            t0 = time.perf_counter()
            r = await http.post("/graphql", content=content, headers=headers)
            fig.latencies_s.append(time.perf_counter() - t0)
        _tally(fig, chunk, answer(r))


def _push_bodies(client_id: str, outbox: Sequence[dict[str, Any]], batch: int,
                 return_data: bool) -> list[tuple[Sequence[dict[str, Any]], bytes]]:
    out = []
    for i in range(0, len(outbox), batch):
        chunk = outbox[i:i + batch]
        req = {"input": {"clientId": client_id, "protocolVersion": 1, "mutations": chunk,
                         "appVersion": "bench/1", "returnData": return_data}}
        out.append((chunk, json.dumps({"query": PUSH, "variables": req}).encode()))
    return out


@dataclass
class Devices:
    """The pushing devices, ready to go: one HTTP client and its encoded batches each."""

    https: list[httpx.AsyncClient]
    tokens: list[str]
    work: list[list[tuple[Sequence[dict[str, Any]], bytes]]]
    orders: int

    async def aclose(self) -> None:
        await asyncio.gather(*(http.aclose() for http in self.https))


def devices(base_url: str, tokens: dict[str, str], reps: Sequence[Rep],
            boxes: Sequence[Sequence[dict[str, Any]]], batch: int,
            return_data: bool = False) -> Devices:
    """What a phone does on its own CPU, done before the push is timed: building its HTTP
    client (httpx loads the CA bundle, about 25 ms each) and encoding its batches. Here
    the devices share the server's cores; inside the push window this took 2.5 s of them."""
    ids = [f"bench-{rep.email.split('@')[0]}" for rep in reps]
    return Devices(
        https=[httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) for _ in reps],
        tokens=[tokens[rep.email] for rep in reps],
        work=[_push_bodies(cid, box, batch, return_data)
              for cid, box in zip(ids, boxes, strict=True)],
        orders=sum(len(b) for b in boxes))


async def push_phase(devs: Devices, max_inflight: int = 0) -> PushFigures:
    """Every device pushes its outbox concurrently; `max_inflight` > 0 caps the number of
    requests in flight at once (all devices still run, they queue on the device side).
    Connections are opened, and answers decoded, inside the timed window."""
    fig = PushFigures(orders=devs.orders)
    gate = asyncio.Semaphore(max_inflight or len(devs.https))
    t0 = time.perf_counter()
    await asyncio.gather(*(_push_client(http, token, bodies, fig, gate)
                           for http, token, bodies in zip(devs.https, devs.tokens, devs.work,
                                                          strict=True)))
    fig.elapsed_s = time.perf_counter() - t0
    return fig


# -- pull ---------------------------------------------------------------------------------

@dataclass
class PullFigures:
    counts: Counter[str] = field(default_factory=Counter)
    ops: Counter[str] = field(default_factory=Counter)
    pages: int = 0
    bytes: int = 0
    elapsed_s: float = 0.0
    cursor: str = ""

    @property
    def records(self) -> int:
        return sum(self.counts.values())

    @property
    def rate(self) -> float:
        return self.records / self.elapsed_s if self.elapsed_s else 0.0


async def pull_page(http: httpx.AsyncClient, token: str, client_id: str, cursor: str | None,
                    limit: int) -> tuple[dict[str, Any], int]:
    r = await http.post("/graphql", headers={"Authorization": f"Bearer {token}"}, json={
        "query": PULL, "variables": {"c": client_id, "cursor": cursor, "limit": limit}})
    body = answer(r)
    if body.get("errors"):
        raise BenchError(f"syncPull failed: {body['errors'][0].get('message')}")
    return body["data"]["syncPull"], len(r.content)


async def initial_pull(base_url: str, token: str, client_id: str, limit: int) -> PullFigures:
    fig = PullFigures()
    cursor: str | None = None
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as http:
        t0 = time.perf_counter()
        while True:
            page, size = await pull_page(http, token, client_id, cursor, limit)
            fig.pages += 1
            fig.bytes += size
            fig.counts.update(c["entity"] for c in page["changes"])
            fig.ops.update(c["op"] for c in page["changes"])
            cursor = page["cursor"]
            if not page["hasMore"]:
                break
        fig.elapsed_s = time.perf_counter() - t0
    fig.cursor = cursor or ""
    return fig


@dataclass
class LatencyFigures:
    samples_s: list[float] = field(default_factory=list)
    unexpected: int = 0

    def p(self, q: float) -> float:
        return percentile(self.samples_s, q) * 1000


async def empty_pulls(base_url: str, token: str, client_id: str, cursor: str,
                      repeats: int) -> LatencyFigures:
    fig = LatencyFigures()
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as http:
        for _ in range(repeats):
            t0 = time.perf_counter()
            page, _size = await pull_page(http, token, client_id, cursor, 1000)
            fig.samples_s.append(time.perf_counter() - t0)
            if page["changes"] or page["hasMore"]:
                fig.unexpected += 1
            cursor = page["cursor"]
    return fig


def pull_client_id(rep: Rep) -> str:
    return f"bench-pull-{uuid.uuid5(uuid.NAMESPACE_DNS, rep.email).hex[:8]}"
