"""Settings from environment variables prefixed `FIELDSYNC_` (and an optional `.env`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

DEV_SECRET = "fieldsync-dev-secret-change-me-0123456789"
PREFIX = "FIELDSYNC_"


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
    return values


@dataclass(frozen=True)
class Settings:
    """Every knob of the server. `FIELDSYNC_<NAME>` sets `<name>`; see docs/operations.md."""

    database_url: str = "sqlite:///fieldsync.db"
    env: str = "development"  # "production" refuses default secrets
    jwt_secret: str = DEV_SECRET
    #: Extra verification keys `kid:secret,kid:secret` accepted during key rotation.
    jwt_old_secrets: str = ""
    jwt_kid: str = "k1"
    jwt_issuer: str = "fieldsync"
    jwt_audience: str = "fieldsync-api"
    access_token_minutes: int = 15
    refresh_token_days: int = 30
    cors_origins: str = ""
    login_max_failures: int = 5
    login_window_seconds: int = 300
    db_pool_size: int = 10
    db_pool_timeout: float = 5.0
    sqlite_busy_timeout_ms: int = 30_000
    sync_max_batch: int = 500
    sync_max_page: int = 1000
    sync_default_page: int = 500
    sync_tombstone_retention_days: int = 30
    sync_max_clock_skew_seconds: int = 300
    graphql_max_page: int = 200
    graphql_max_depth: int = 12
    graphql_max_aliases: int = 30
    graphql_max_tokens: int = 5000
    #: Objects one query may ask for, nested page sizes multiplied (QUERY_TOO_COMPLEX).
    graphql_max_objects: int = 50_000
    #: Seconds a WebSocket may stay open without `connection_init` (then closed, 4408).
    ws_init_timeout_seconds: float = 10.0
    #: Live graphql-transport-ws operations (subscriptions) per socket and per user (the
    #: latter counted per process); one more is refused with TOO_MANY_SUBSCRIPTIONS.
    ws_max_subscriptions_per_connection: int = 20
    ws_max_subscriptions_per_user: int = 50
    #: `fieldsync serve`: on SIGTERM, how long requests in flight may take to finish.
    shutdown_grace_seconds: int = 25
    #: Largest request body (a sync push is the big one); larger gets HTTP 413.
    max_body_bytes: int = 4_000_000
    log_json: bool = False

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, dotenv: Path | None = Path(".env")) -> Settings:
        source = dict(_read_dotenv(dotenv)) if dotenv else {}
        source.update(os.environ if env is None else env)
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            raw = source.get(PREFIX + f.name.upper())
            if raw is None:
                continue
            if f.type in ("bool", bool):
                kwargs[f.name] = raw.lower() in ("1", "true", "yes", "on")
            elif f.type in ("int", int, "float", float):
                number = int if f.type in ("int", int) else float
                try:
                    kwargs[f.name] = number(raw)
                except ValueError:
                    raise ValueError(f"{PREFIX}{f.name.upper()} must be a number, not "
                                     f"{raw!r}") from None
            else:
                kwargs[f.name] = raw
        settings = cls(**kwargs)
        settings.check()
        return settings

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def verification_keys(self) -> dict[str, str]:
        keys = {self.jwt_kid: self.jwt_secret}
        for pair in self.jwt_old_secrets.split(","):
            kid, sep, secret = pair.strip().partition(":")
            if sep and kid and secret:
                keys.setdefault(kid, secret)
        return keys

    def check(self) -> None:
        if self.production and (self.jwt_secret == DEV_SECRET or len(self.jwt_secret) < 32):
            raise ValueError(
                "FIELDSYNC_JWT_SECRET must be set to a random value of at least 32 characters "
                "in production (FIELDSYNC_ENV=production)"
            )


