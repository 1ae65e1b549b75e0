"""The `fieldsync` command: serve, db upgrade, seed, user create, schema export."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path

import sqlalchemy as sa

from server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEMO_LOGINS = ("admin@example.com", "manager1@example.com", "rep1@example.com")


def alembic_config(settings: Settings) -> object:
    from alembic.config import Config

    from server.db import sync_url

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    cfg.set_main_option("sqlalchemy.url", sync_url(settings.database_url).replace("%", "%%"))
    return cfg


def db_upgrade(settings: Settings) -> None:
    from alembic import command

    command.upgrade(alembic_config(settings), "head")  # type: ignore[arg-type]


async def _is_empty(settings: Settings) -> bool:
    from schema.identity.tables import User
    from server.db import Database, create_engine

    db = Database(create_engine(settings))
    try:
        async with db.read() as session:
            count = (await session.execute(sa.select(sa.func.count()).select_from(User))).scalar_one()
    finally:
        await db.dispose()
    return count == 0


async def _seed(settings: Settings, size: str, seed: int, patterns: Path | None) -> None:
    from schema.seed import SeedError
    from schema.seed.loader import seed_demo
    from server.db import Database, create_engine

    db = Database(create_engine(settings))
    try:
        summary = await seed_demo(db, size=size, seed=seed, patterns_path=patterns)
    except SeedError as exc:
        raise SystemExit(f"fieldsync seed: {exc}") from None
    finally:
        await db.dispose()
    print(f"seeded {summary.size} demo data set in {summary.seconds:.1f} s: "
          + ", ".join(f"{n} {k}" for k, n in summary.counts.items()), file=sys.stderr)


async def _create_user(settings: Settings, email: str, name: str, role: str,
                       manager: str | None, password_stdin: bool) -> None:
    from schema.enums import Role
    from schema.identity.service import create_user, user_by_email
    from server.db import Database, create_engine

    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass("password: ")
    if len(password) < 10:
        raise SystemExit("passwords need at least 10 characters")
    db = Database(create_engine(settings))
    try:
        async with db.write() as session:
            manager_id = None
            if manager:
                boss = await user_by_email(session, manager)
                if boss is None:
                    raise SystemExit(f"no user {manager}")
                manager_id = boss.id
            await create_user(session, email=email, full_name=name, password=password,
                              role=Role(role), manager_id=manager_id)
    finally:
        await db.dispose()
    print(f"created {role} {email}")


async def _compact(settings: Settings, days: int) -> None:
    from datetime import timedelta

    from server.db import Database, create_engine
    from sync.model import utcnow
    from sync.retention import compact

    db = Database(create_engine(settings))
    try:
        async with db.write() as session:
            report = await compact(session, timedelta(days=days), utcnow())
    finally:
        await db.dispose()
    print(f"horizon at seq {report.horizon}: {report.changes_deleted} changes and "
          f"{report.results_deleted} stored push results removed")


async def _daily(settings: Settings, on: str | None) -> None:
    from datetime import date

    from schema.jobs.daily import run_daily
    from server.db import Database, create_engine
    from sync.model import utcnow

    db = Database(create_engine(settings))
    try:
        report = await run_daily(db, date.fromisoformat(on) if on else utcnow().date())
    finally:
        await db.dispose()
    print(report)


def export_schema() -> str:
    from schema.graphql.root import build_schema

    return str(build_schema()) + "\n"


def serve(settings: Settings, host: str, port: int, workers: int, demo: bool) -> None:
    import uvicorn

    db_upgrade(settings)
    if demo and asyncio.run(_is_empty(settings)):
        print("first run: loading the demo data set…", file=sys.stderr)
        asyncio.run(_seed(settings, "small", 42, Path("demo-patterns.json")))
    print(f"\n  fieldsync explorer: http://{host}:{port}/graphql")
    if demo:
        print("  demo logins (password: demo-password): " + ", ".join(DEMO_LOGINS)
              + " (managers 1-2, reps 1-6)\n")
    uvicorn.run("server.app:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level="info",
                timeout_graceful_shutdown=settings.shutdown_grace_seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fieldsync", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the server (migrates first)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--demo", action="store_true", help="seed the demo data on first run")
    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])
    s = sub.add_parser("seed", help="load a synthetic data set")
    s.add_argument("--demo", action="store_true", required=True)
    s.add_argument("--size", choices=["small", "medium", "large"], default="small")
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--patterns", type=Path, default=Path("demo-patterns.json"))
    u = sub.add_parser("user", help="manage users")
    u.add_argument("action", choices=["create"])
    u.add_argument("--email", required=True)
    u.add_argument("--name", required=True)
    u.add_argument("--role", choices=["rep", "manager", "admin"], required=True)
    u.add_argument("--manager", help="the manager's email (for reps)")
    u.add_argument("--password-stdin", action="store_true",
                   help="read the password from standard input (for scripts)")
    j = sub.add_parser("jobs", help="maintenance jobs (idempotent; run them from cron)")
    j.add_argument("job", choices=["compact", "daily"],
                   help="compact: change-log retention; daily: the managers' sales "
                   "rollups, birthday and purchase-anniversary follow-up tasks, routing of "
                   "qualified unassigned leads")
    j.add_argument("--date", help="daily: the day to run for (YYYY-MM-DD; default today)")
    j.add_argument("--retention-days", type=int, default=None,
                   help="default: FIELDSYNC_SYNC_TOMBSTONE_RETENTION_DAYS")
    e = sub.add_parser("schema", help="GraphQL schema")
    e.add_argument("action", choices=["export"])
    e.add_argument("--output", type=Path, default=ROOT / "schema.graphql")
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
    except ValueError as exc:  # a bad setting: say which, without a traceback
        raise SystemExit(f"fieldsync: {exc}") from None
    if args.command == "serve":
        serve(settings, args.host, args.port, args.workers, args.demo)
    elif args.command == "db":
        db_upgrade(settings)
    elif args.command == "seed":
        db_upgrade(settings)
        asyncio.run(_seed(settings, args.size, args.seed, args.patterns))
    elif args.command == "user":
        asyncio.run(_create_user(settings, args.email, args.name, args.role, args.manager,
                                 args.password_stdin))
    elif args.command == "jobs" and args.job == "daily":
        asyncio.run(_daily(settings, args.date))
    elif args.command == "jobs":
        days = args.retention_days if args.retention_days is not None \
            else settings.sync_tombstone_retention_days
        asyncio.run(_compact(settings, days))
    elif args.command == "schema":
        args.output.write_text(export_schema())
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
