"""A tiny command line around the reference client, for poking at a server by hand.

    python -m client --url http://127.0.0.1:8000 --store rep1.db login rep1@example.com
    python -m client --url http://127.0.0.1:8000 --store rep1.db sync
    python -m client --url http://127.0.0.1:8000 --store rep1.db live
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys

from client.errors import FieldsyncClientError
from client.live import LiveSync
from client.sync import Device


async def _main(args: argparse.Namespace) -> int:
    async with Device(args.store, args.url) as device:
        if args.command == "login":
            password = args.password or getpass.getpass()
            await device.login(args.email, password)
            print(f"signed in; clientId {device.client_id}")
        elif args.command == "sync":
            report = await device.sync()
            print(json.dumps({"pushed": report.pushed, "statuses": dict(report.statuses),
                              "pulled": report.pulled, "pages": report.pages,
                              "resets": report.resets, "problems": report.problems,
                              "seconds": round(report.seconds, 3)}, indent=2))
        elif args.command == "status":
            print(json.dumps({"clientId": device.client_id, "records": device.store.counts(),
                              "outbox": device.store.outbox_size(),
                              "notices": len(device.notices())}, indent=2))
        elif args.command == "live":
            live = LiveSync(device, on_sync=lambda r: print(
                f"synced: pushed {r.pushed}, pulled {r.pulled}", flush=True))
            async with live:
                await asyncio.Event().wait()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m client")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--store", default="device.db", help="the device's SQLite file")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    login = sub.add_parser("login")
    login.add_argument("email")
    login.add_argument("--password")
    sub.add_parser("sync")
    sub.add_parser("status")
    sub.add_parser("live")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        return asyncio.run(_main(args))
    except FieldsyncClientError as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
