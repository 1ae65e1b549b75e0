"""PostgreSQL restarted under load (PostgreSQL only).

The test runs its own throwaway PostgreSQL cluster (initdb + pg_ctl on a free port in a
temporary directory, as the `postgres` OS user when we are root), so stopping it disturbs
no one else's database. Devices push and pull through one running app while the cluster
stops and starts again:

- while it is down, requests fail fast with HTTP 503 / `UNAVAILABLE` (retryable): never a
  hang, never a 500, never `INTERNAL`;
- the pool recovers by itself: the same app serves again once PostgreSQL is back, and
  after a restart while the app was idle, stale pooled connections are detected before use
  (not one request fails);
- every acknowledged mutation is stored, and the retries of unacknowledged ones land
  exactly once.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from server.app import create_app
from server.cli import db_upgrade
from server.db import Database, create_engine
from server.settings import Settings
from tests.conftest import PG_URL, World, login, make_world
from tests.servers import free_port

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not PG_URL, reason="PostgreSQL only (FIELDSYNC_TEST_DATABASE_URL)")]
PUSH = """mutation($input: SyncPushInput!) { syncPush(input: $input) { lastMutationId
  results { status error { code } } } }"""
PULL = """query($c: ID!, $cursor: String) { syncPull(clientId: $c, cursor: $cursor, limit: 200) {
  changes { entity id } cursor hasMore } }"""
#: A request that takes longer than this counts as a hang.
HANG = 10.0


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    path = found[-1] if found else shutil.which(name)
    if not path:
        pytest.skip(f"{name} not found: cannot run a private PostgreSQL cluster")
    return path


@dataclass
class Cluster:
    """A private PostgreSQL cluster in `data`, serving 127.0.0.1:`port`."""

    data: Path
    port: int
    as_postgres: list[str]

    def ctl(self, *args: str) -> None:
        subprocess.run([*self.as_postgres, _bin("pg_ctl"), "-D", str(self.data), *args],
                       check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self.ctl("-w", "-t", "30", "-l", str(self.data / "server.log"), "-o",
                 f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off",
                 "start")

    def stop(self) -> None:
        self.ctl("-w", "-t", "30", "-m", "fast", "stop")  # what a restart does to clients

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    root = os.geteuid() == 0
    as_postgres = ["runuser", "-u", "postgres", "--"] if root else []
    data = Path(tempfile.mkdtemp(prefix="fieldsync-pg-"))
    if root:
        shutil.chown(data, "postgres", "postgres")
    c = Cluster(data, free_port(), as_postgres)
    try:
        subprocess.run([*as_postgres, _bin("initdb"), "-D", str(data), "-U", "postgres",
                        "-A", "trust", "--no-sync", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)
        c.start()
        with psycopg.connect(c.url("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE fieldsync")
        yield c
    finally:
        subprocess.run([*as_postgres, _bin("pg_ctl"), "-D", str(data), "-m", "immediate",
                        "-w", "stop"], capture_output=True, timeout=60, check=False)
        shutil.rmtree(data, ignore_errors=True)


@dataclass
class Device:
    """A phone: pushes contacts in batches, retries a batch until it is acknowledged."""

    name: str
    token: str
    account: uuid.UUID
    next_id: int = 1
    acknowledged: dict[int, str] = field(default_factory=dict)  # mutation id → contact id
    outcomes: Counter[str] = field(default_factory=Counter)
    slowest: float = 0.0

    def batch(self, size: int = 5) -> list[dict[str, Any]]:
        return [{"mutationId": mid, "entity": "contact", "op": "CREATE",
                 "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.name}/{mid}")),
                 "fields": {"accountId": str(self.account), "firstName": self.name,
                            "lastName": str(mid)}}
                for mid in range(self.next_id, self.next_id + size)]


async def call(client: httpx.AsyncClient, device: Device, query: str,
               variables: dict[str, Any]) -> dict[str, Any] | None:
    """One request. Returns the data, or None for a retryable failure; anything else fails
    the test."""
    started = time.monotonic()
    try:
        r = await asyncio.wait_for(client.post(
            "/graphql", json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {device.token}"}), HANG)
    finally:
        device.slowest = max(device.slowest, time.monotonic() - started)
    if r.status_code == 503:
        body = r.json()
        assert body["errors"][0]["extensions"] == {"code": "UNAVAILABLE", "retryable": True}
        assert r.headers["retry-after"] == "1"
        device.outcomes["503"] += 1
        return None
    assert r.status_code == 200, (r.status_code, r.text)
    body = r.json()
    codes = {(e.get("extensions") or {}).get("code") for e in body.get("errors") or []}
    if codes:
        assert codes == {"UNAVAILABLE"}, body["errors"]
        device.outcomes["UNAVAILABLE"] += 1
        return None
    device.outcomes["ok"] += 1
    return dict(body["data"])


async def one_push(client: httpx.AsyncClient, device: Device) -> bool:
    """Push the next batch; False when refused (the device resends the same batch)."""
    batch = device.batch()
    data = await call(client, device, PUSH, {"input": {
        "clientId": device.name, "protocolVersion": 1, "mutations": batch}})
    if data is None:
        return False
    out = data["syncPush"]
    assert [r["status"] for r in out["results"]] == ["APPLIED"] * len(batch), out
    assert out["lastMutationId"] == batch[-1]["mutationId"]
    device.acknowledged |= {m["mutationId"]: m["id"] for m in batch}
    device.next_id += len(batch)
    return True


async def pusher(client: httpx.AsyncClient, device: Device, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if not await one_push(client, device):
            await asyncio.sleep(0.1)


async def puller(client: httpx.AsyncClient, device: Device, stop: asyncio.Event) -> None:
    cursor = None
    while True:
        data = await call(client, device, PULL, {"c": device.name + "-pull", "cursor": cursor})
        if data is None:
            await asyncio.sleep(0.1)
            continue
        cursor = data["syncPull"]["cursor"]
        if stop.is_set():
            return
        if not data["syncPull"]["hasMore"]:
            await asyncio.sleep(0.05)


async def until(condition: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_postgres_restart_under_load(cluster: Cluster) -> None:
    url = cluster.url("fieldsync")
    settings = Settings(database_url=url, jwt_secret="test-secret-" + "x" * 32,
                        db_pool_size=4, db_pool_timeout=2.0)
    await asyncio.to_thread(db_upgrade, settings)
    seed = Database(create_engine(settings))
    world: World = await make_world(seed)
    await seed.dispose()

    app = create_app(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://t") as client:
            devices = []
            for n, rep in enumerate(("rep1", "rep2", "rep3", "rep1")):
                access = (await login(client, f"{rep}@example.com"))["accessToken"]
                devices.append(Device(f"{rep}-phone-{n}", access, world.accounts[f"{rep}a"]))
            readers = [Device(f"{d.name}-reader", d.token, d.account) for d in devices[:2]]
            stop = asyncio.Event()
            tasks = [asyncio.create_task(pusher(client, d, stop)) for d in devices]
            tasks += [asyncio.create_task(puller(client, d, stop)) for d in readers]
            everyone = devices + readers

            def ok() -> int:
                return sum(d.outcomes["ok"] for d in everyone)

            def refused() -> int:
                return sum(d.outcomes["503"] + d.outcomes["UNAVAILABLE"] for d in everyone)

            def check_tasks() -> bool:
                for t in tasks:  # a failed assertion inside a device ends the test at once
                    if t.done() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
                return True

            await until(lambda: check_tasks() and ok() >= 12, 60, "no traffic before the outage")
            await asyncio.to_thread(cluster.stop)
            down_at, ok_at_stop = time.monotonic(), ok()
            await until(lambda: check_tasks() and refused() >= 10, 15,
                        "no request was refused while PostgreSQL was down")
            await asyncio.sleep(1.0)  # a little more outage under load
            # Counted before starting: PostgreSQL accepts connections before `pg_ctl start`
            # returns, so requests may rightly succeed while it is still "starting".
            ok_while_down = ok()
            await asyncio.to_thread(cluster.start)
            outage = time.monotonic() - down_at
            ok_at_start = ok()
            await until(lambda: check_tasks() and all(d.outcomes["ok"] >= 3 for d in everyone)
                        and ok() >= ok_at_start + 30, 60,
                        "the app did not recover by itself after PostgreSQL came back")
            stop.set()
            await asyncio.gather(*tasks)

            # nothing hung: every request answered well within HANG, outage or not
            assert max(d.slowest for d in everyone) < HANG
            # At most the requests already answered by the database when it stopped.
            assert ok_while_down - ok_at_stop <= len(everyone), "requests succeeded while down?"
            print(f"outage {outage:.1f}s, refused {refused()}, answered {ok()}, "
                  f"slowest {max(d.slowest for d in everyone):.2f}s")

            # A restart while the app is idle: pooled connections are stale, and are
            # detected before use (pre-ping), so not even the first requests fail.
            refused_before = refused()
            await asyncio.to_thread(cluster.stop)
            await asyncio.to_thread(cluster.start)
            for _ in range(2):
                once = asyncio.Event()
                once.set()  # one round each
                await asyncio.gather(*(one_push(client, d) for d in devices),
                                     *(puller(client, d, once) for d in readers))
            assert refused() == refused_before, "stale pooled connections reached requests"

            # every acknowledged mutation is stored, exactly once
            rows = await fetch(url, """SELECT c.first_name, c.id::text,
                (SELECT count(*) FROM sync_change ch WHERE ch.row_id = c.id) FROM contact c
                WHERE c.first_name LIKE '%-phone-%'""")
            for d in devices:
                stored = {rid: n for name, rid, n in rows if name == d.name}
                assert set(stored) == set(d.acknowledged.values()), d.name
                assert set(stored.values()) == {1}, f"{d.name}: a contact logged twice"
                last = await fetch(url, f"SELECT last_mutation_id FROM sync_client "
                                        f"WHERE id = '{d.name}'")
                assert last == [(max(d.acknowledged),)], d.name
    finally:
        await app.state.services.close()


async def fetch(url: str, sql: str) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(sql)  # type: ignore[arg-type]
        return [tuple(r) for r in await cur.fetchall()]
