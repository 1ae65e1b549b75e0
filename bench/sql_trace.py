"""Where a sync request's time goes: SQL statements per request, DB time vs Python time, process CPU.

    python -m bench.sql_trace --db sqlite|postgres [--batches 3] [--batch 100]
        [--pull-records 20000] [--show-sql]

Runs the app in-process (httpx ASGI transport, no network) on a fresh seeded database
and, for a few sequential push batches, the pages of an initial pull and some empty
incremental pulls, prints per request: wall time, statements executed (executemany
counts once, with its row count), time inside the driver, and the statement mix.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench import client as dev
from bench.dataset import PG_URL, fresh_database, seed, settings_for
from server.app import create_app


@dataclass
class Trace:
    statements: int = 0
    rows: int = 0
    db_s: float = 0.0
    kinds: Counter[str] = field(default_factory=Counter)
    kind_s: dict[str, float] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)


class Recorder:
    """Counts statements on an engine between `start()` and `stop()`."""

    def __init__(self, engine: sa.Engine) -> None:
        self.trace = Trace()
        self._t0: float = 0.0
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def start(self) -> None:
        self.trace = Trace()

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any,
                executemany: bool) -> None:
        self._t0 = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any,
               executemany: bool) -> None:
        t = self.trace
        spent = time.perf_counter() - self._t0
        kind = _kind(statement, executemany, params)
        t.db_s += spent
        t.statements += 1
        t.rows += len(params) if executemany else 1
        t.kinds[kind] += 1
        t.kind_s[kind] = t.kind_s.get(kind, 0.0) + spent
        t.texts.append(statement)


def _kind(sql: str, many: bool, params: Any) -> str:
    flat = " ".join(sql.split())
    m = re.match(r"(SELECT|INSERT INTO|UPDATE|DELETE FROM)\s+(\S+)?", flat, re.I)
    verb = m.group(1).upper() if m else flat.split(" ")[0].upper()
    if verb == "SELECT":
        frm = re.search(r"\bFROM\s+(\w+)", flat, re.I)
        target = frm.group(1) if frm else ""
    else:
        target = (m.group(2) or "") if m else ""
    return f"{verb} {target}" + (f" (executemany x{len(params)})" if many else "")


def _line(label: str, wall_s: float, cpu_s: float, t: Trace) -> str:
    slowest = sorted(t.kind_s.items(), key=lambda kv: -kv[1])
    mix = ", ".join(f"{k}={t.kinds[k]} ({s * 1000:.1f} ms)" for k, s in slowest)
    return (f"{label:<18} wall {wall_s * 1000:8.1f} ms | cpu {cpu_s * 1000:7.1f} ms | "
            f"{t.statements:3d} statements "
            f"({t.rows} rows) | driver {t.db_s * 1000:7.1f} ms | other "
            f"{(wall_s - t.db_s) * 1000:7.1f} ms\n    {mix}")


async def _timed(rec: Recorder, label: str, work: Awaitable[Any], show_sql: bool) -> Any:
    """Await `work` (a coroutine not started yet) and print what it executed."""
    rec.start()
    t0, c0 = time.perf_counter(), time.process_time()
    out = await work
    print(_line(label, time.perf_counter() - t0, time.process_time() - c0, rec.trace))
    if show_sql:
        for s in rec.trace.texts:
            print("      " + " ".join(s.split())[:220])
    return out


async def run(args: argparse.Namespace, url: str) -> None:
    rng = random.Random(args.seed)
    world = await seed(url, 2, args.pull_records, rng)
    app = create_app(settings_for(url))
    rec = Recorder(app.state.services.db.engine.sync_engine)
    gc.freeze()  # as the server's lifespan does
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench",
                                 timeout=dev.TIMEOUT) as http:
        pusher, puller = world.pushers[0], world.puller
        tokens = {r.email: await dev.login(http, r.email) for r in (pusher, puller)}
        box = dev.outboxes([pusher], args.batches * args.batch, world.products, rng)[0]
        for i in range(args.batches):
            chunk = box[i * args.batch:(i + 1) * args.batch]
            req = {"input": {"clientId": "trace", "protocolVersion": 1, "mutations": chunk}}
            body = await _timed(rec, f"push batch {i + 1}",
                                dev.gql(http, dev.PUSH, req, tokens[pusher.email]),
                                args.show_sql)
            statuses = Counter(r["status"] for r in body["data"]["syncPush"]["results"])
            print(f"    statuses {dict(statuses)}")
        await _pulls(args, http, rec, tokens[puller.email])
    await app.state.services.db.dispose()


async def _pulls(args: argparse.Namespace, http: httpx.AsyncClient, rec: Recorder,
                 token: str) -> None:
    cursor: str | None = None
    page_no = 0
    while True:
        page_no += 1
        page, _size = await _timed(
            rec, f"pull page {page_no}", dev.pull_page(http, token, "trace-pull", cursor,
                                                       args.page),
            args.show_sql and page_no == 1)
        cursor = page["cursor"]
        if not page["hasMore"]:
            break
    for i in range(3):
        await _timed(rec, f"empty pull {i + 1}",
                     dev.pull_page(http, token, "trace-pull", cursor, args.page),
                     args.show_sql and i == 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sql_trace", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", choices=["sqlite", "postgres"], required=True)
    p.add_argument("--batches", type=int, default=3)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--pull-records", type=int, default=5000)
    p.add_argument("--page", type=int, default=1000)
    p.add_argument("--pg-url", default=PG_URL)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--show-sql", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fieldsync-trace-") as tmp:
        url = fresh_database(args.db, Path(tmp), args.pg_url)
        asyncio.run(run(args, url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
