"""The server's cost of one push batch, in-process: CPU time, or instructions under callgrind.

    python -m bench.push_cost --db postgres [--batches 30] [--batch 100]
    python -m bench.push_cost --db postgres --callgrind [--batches 10]

Runs the app in-process (httpx ASGI transport and uvloop, no network, no uvicorn) on a fresh
seeded database, and pushes `--batches` batches of new orders (3 lines each) from 10 reps,
one after another, after one warm-up batch. It prints the CPU time per batch, which
includes the in-process client's small share.

CPU time on a shared machine varies by ±30 % from run to run. Instruction counts do not:
with `--callgrind` the script re-runs itself under `valgrind --tool=callgrind` with
instrumentation switched on around the timed batches only (a small helper, compiled with
gcc against valgrind's `callgrind.h`, issues the client requests), and prints the
instructions per batch. Two runs of the same commit agree to 0.1 %; a run takes about a
minute for 10 batches. Needs valgrind, its headers and gcc (all on this machine kind).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import uvloop

from bench import client as dev
from bench.dataset import PG_URL, fresh_database, seed, settings_for
from server.app import create_app

REPS = 10
_HELPER = """#include <valgrind/callgrind.h>
void start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; CALLGRIND_TOGGLE_COLLECT; }
void stop(void) { CALLGRIND_TOGGLE_COLLECT; CALLGRIND_DUMP_STATS; CALLGRIND_STOP_INSTRUMENTATION; }
"""


async def run(url: str, batches: int, size: int, helper: str | None,
              return_data: bool) -> float:
    """Push `batches` batches; returns the CPU seconds they took."""
    rng = random.Random(7)
    world = await seed(url, REPS, 100, rng)
    app = create_app(settings_for(url))
    rounds = -(-(batches + 1) // REPS)
    boxes = dev.outboxes(world.pushers, rounds * size * REPS, world.products, rng)
    work = [(rep, {"input": {"clientId": f"cost-{rep.email}", "protocolVersion": 1,
                             "mutations": box[i * size:(i + 1) * size],
                             "returnData": return_data}})
            for i in range(rounds) for rep, box in zip(world.pushers, boxes, strict=True)]
    gc.freeze()  # as the server's lifespan does
    probe = ctypes.CDLL(helper) if helper else None
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cost",
                                 timeout=600) as http:
        tokens = {rep.email: await dev.login(http, rep.email) for rep in world.pushers}
        await _push(http, tokens, *work[0])  # imports, caches and prepared statements
        if probe is not None:
            probe.start()
        started = time.process_time()
        for rep, body in work[1:batches + 1]:
            await _push(http, tokens, rep, body)
        spent = time.process_time() - started
        if probe is not None:
            probe.stop()
    await app.state.services.db.dispose()
    return spent


async def _push(http: httpx.AsyncClient, tokens: dict[str, str], rep: Any,
                body: dict[str, Any]) -> None:
    answer = await dev.gql(http, dev.PUSH, body, tokens[rep.email])
    statuses = {r["status"] for r in answer["data"]["syncPush"]["results"]}
    if statuses != {"APPLIED"}:
        raise RuntimeError(f"push not applied: {answer['data']['syncPush']['results'][:2]}")


def _callgrind(args: argparse.Namespace, workdir: Path) -> int:
    helper = workdir / "callgrind_probe.so"
    source = workdir / "callgrind_probe.c"
    source.write_text(_HELPER)
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(helper), str(source)],
                   check=True)
    out = workdir / "callgrind.out"
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
           f"--callgrind-out-file={out}", sys.executable, "-m", "bench.push_cost",
           "--db", args.db, "--pg-url", args.pg_url, "--batches", str(args.batches),
           "--batch", str(args.batch), "--probe", str(helper),
           *(["--return-data"] if args.return_data else [])]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(cmd, check=True, env=env, stderr=subprocess.DEVNULL)
    dumps = sorted(workdir.glob("callgrind.out*"), key=lambda p: p.stat().st_size)
    match = re.search(r"^(?:summary|totals): (\d+)", dumps[-1].read_text(), re.M)
    if match is None:
        raise RuntimeError(f"no instruction total in {dumps[-1]}")
    total = int(match.group(1))
    print(f"{args.db}: {total / args.batches / 1e6:,.1f} M instructions per batch of "
          f"{args.batch} orders ({args.batches} batches, returnData "
          f"{str(args.return_data).lower()}, callgrind)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.push_cost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", choices=["sqlite", "postgres"], required=True)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--pg-url", default=PG_URL)
    p.add_argument("--callgrind", action="store_true", help="count instructions instead")
    p.add_argument("--return-data", action="store_true",
                   help="answers carry each record (default: returnData false)")
    p.add_argument("--probe", help=argparse.SUPPRESS)  # set by --callgrind for the child
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fieldsync-cost-") as tmp:
        if args.callgrind:
            return _callgrind(args, Path(tmp))
        url = fresh_database(args.db, Path(tmp), args.pg_url)
        # uvloop, as uvicorn picks it when installed (it is, with uvicorn[standard]).
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            spent = runner.run(run(url, args.batches, args.batch, args.probe,
                                   args.return_data))
        if args.probe is None:
            print(f"{args.db}: {spent / args.batches * 1000:.1f} ms CPU per batch of "
                  f"{args.batch} orders ({args.batches} batches, returnData "
                  f"{str(args.return_data).lower()}, in-process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
