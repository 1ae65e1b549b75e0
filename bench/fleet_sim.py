"""Fleet simulator entry point.

    python -m bench.fleet_sim --db sqlite --reps 200
    python -m bench.fleet_sim --db postgres --reps 1000 --pg-url postgresql://postgres@127.0.0.1:5432/fleet_bench

Exits 0 when the verifier passes, 1 on any violation (the counterexamples are printed),
2 on a run error. See docs/fleet-simulator.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from bench.fleet.faults import FaultConfig
from bench.fleet.simulator import PG_URL, FleetConfig, simulate, summary, to_json


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.fleet_sim", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--database-url", help="use this database (it is emptied and migrated)")
    p.add_argument("--pg-url", default=PG_URL, help=f"PostgreSQL database for --db postgres ({PG_URL})")
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--faults", default="on",
                   help="on | off | drop=0.04,timeout=0.02,duplicate=0.04,cut=0.02,gateway=0.01")
    p.add_argument("--kills", type=int, default=1, help="server SIGKILL+restarts during the storm")
    p.add_argument("--kill-at", type=float, default=0.35,
                   help="first kill when this fraction of the storm's syncs is done")
    p.add_argument("--workers", type=int, default=1, help="uvicorn workers")
    p.add_argument("--tablets", type=float, default=0.15, help="share of reps with a second device")
    p.add_argument("--lunch", type=float, default=0.10, help="share of reps syncing at lunch")
    p.add_argument("--max-connections", type=int, default=64, help="HTTP connections to the server")
    p.add_argument("--storm-parallel", type=int, default=0,
                   help="devices syncing at once in the storm (0 = all)")
    p.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment for the server, e.g. FIELDSYNC_DB_POOL_SIZE=20")
    p.add_argument("--managers-querying", type=int, default=0, metavar="N",
                   help="N managers run explorer queries (customer360, accounts with orders, "
                        "topCustomers, salesVolume, leadFunnel) throughout the storm")
    p.add_argument("--manager-think", type=float, default=1.0, metavar="SECONDS",
                   help="mean think time between two queries of one manager (default 1.0)")
    p.add_argument("--workdir", type=Path, help="keep device stores, server log and DB here")
    p.add_argument("--json", type=Path, help="also write the figures as JSON")
    p.add_argument("--verbose", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.ERROR)
    url = a.database_url or (a.pg_url if a.db == "postgres" else None)
    env = dict(kv.split("=", 1) for kv in a.server_env)
    config = FleetConfig(db=a.db, database_url=url, reps=a.reps, seed=a.seed,
                         faults=FaultConfig.parse(a.faults), kills=a.kills, kill_at=a.kill_at,
                         workers=a.workers, tablet_share=a.tablets, lunch_share=a.lunch,
                         max_connections=a.max_connections, storm_parallel=a.storm_parallel,
                         workdir=a.workdir, server_env=env,
                         managers_querying=a.managers_querying, manager_think=a.manager_think,
                         log=lambda s: print(s, flush=True))
    try:
        result = asyncio.run(simulate(config))
    except Exception as e:
        print(f"RUN ERROR: {type(e).__name__}: {e}", file=sys.stderr)
        raise
    print(summary(result), flush=True)
    if a.json:
        a.json.write_text(json.dumps(to_json(result), indent=2, default=str))
    if result.verify is not None and not result.verify.ok:
        return 1
    return 0 if result.ok else 2


if __name__ == "__main__":
    sys.exit(main())
