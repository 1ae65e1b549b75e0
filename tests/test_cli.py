"""The `fieldsync` command, run as an operator would (subprocesses, real database)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from server.settings import Settings
from tests.servers import ROOT, uvicorn_server


def fieldsync(settings: Settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FIELDSYNC_DATABASE_URL": settings.database_url,
           "FIELDSYNC_JWT_SECRET": settings.jwt_secret}
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=ROOT, env=env,
                          input=stdin, capture_output=True, text=True, timeout=300)


def test_db_upgrade_user_create_and_login(settings: Settings) -> None:
    assert fieldsync(settings, "db", "upgrade").returncode == 0
    made = fieldsync(settings, "user", "create", "--email", "Boss@Example.com", "--name", "Boss",
                     "--role", "manager", "--password-stdin", stdin="a-long-password\n")
    assert made.returncode == 0, made.stderr
    short = fieldsync(settings, "user", "create", "--email", "x@example.com", "--name", "X",
                      "--role", "rep", "--password-stdin", stdin="short\n")
    assert short.returncode != 0 and "10 characters" in short.stderr
    with uvicorn_server(settings.database_url, settings.jwt_secret) as server:
        r = httpx.post(server.url + "/graphql", json={"query": """mutation { login(
            email: "boss@example.com", password: "a-long-password") { __typename } }"""})
        assert r.json()["data"]["login"]["__typename"] == "LoginSuccess"


def test_seed_twice_says_so_and_jobs_compact(settings: Settings, tmp_path: Path) -> None:
    patterns = tmp_path / "patterns.json"
    first = fieldsync(settings, "seed", "--demo", "--patterns", str(patterns))
    assert first.returncode == 0, first.stderr
    assert patterns.is_file() and "seeded small demo data set" in first.stderr
    again = fieldsync(settings, "seed", "--demo", "--patterns", str(patterns))
    assert again.returncode != 0 and "already seeded" in again.stderr
    assert "Traceback" not in again.stderr
    compact = fieldsync(settings, "jobs", "compact")
    assert compact.returncode == 0 and "horizon at seq" in compact.stdout
    daily = fieldsync(settings, "jobs", "daily")
    again = fieldsync(settings, "jobs", "daily")
    assert daily.returncode == 0 and again.returncode == 0, daily.stderr
    assert "0 birthday and 0 anniversary tasks created" in again.stdout  # idempotent


def test_schema_export_writes_sdl(settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "schema.graphql"
    done = fieldsync(settings, "schema", "export", "--output", str(out))
    assert done.returncode == 0 and "type Query" in out.read_text()


def test_a_bad_setting_is_one_clear_line_not_a_traceback(settings: Settings) -> None:
    for extra, says in (({"FIELDSYNC_ENV": "production", "FIELDSYNC_JWT_SECRET": "short"},
                         "FIELDSYNC_JWT_SECRET must be set"),
                        ({"FIELDSYNC_DB_POOL_SIZE": "ten"},
                         "FIELDSYNC_DB_POOL_SIZE must be a number, not 'ten'")):
        env = {**os.environ, "FIELDSYNC_DATABASE_URL": settings.database_url, **extra}
        out = subprocess.run([sys.executable, "-m", "server.cli", "db", "upgrade"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 1, out
        assert out.stderr.startswith(f"fieldsync: {says}"), out.stderr
        assert "Traceback" not in out.stderr, out.stderr
