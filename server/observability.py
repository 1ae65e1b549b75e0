"""Request ids, request metrics, /metrics, and readiness (database reachable, schema
migrated to head)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schema import metrics
from server.db import Database
from sync.model import utcnow

log = logging.getLogger("fieldsync.http")
ROOT = Path(__file__).resolve().parent.parent


def migration_head() -> str | None:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    return ScriptDirectory.from_config(cfg).get_current_head()


class RequestMetrics:
    """Counts and times each HTTP request; tags it with an X-Request-Id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode()[:64] or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def tagged_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, tagged_send)
        finally:
            path = scope["path"] if scope["path"] in ("/graphql", "/healthz", "/readyz",
                                                      "/metrics") else "other"
            metrics.REQUESTS.labels(scope["method"], path, str(status)).inc()
            metrics.LATENCY.labels(scope["method"], path).observe(time.perf_counter() - started)


def metrics_endpoint(db: Database) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            async with db.read() as session:
                head = (await session.execute(sa.text(
                    "SELECT last_seq FROM sync_log_head WHERE id = 1"))).scalar_one()
                slowest = (await session.execute(sa.text(
                    "SELECT min(last_pull_seq) FROM sync_client WHERE last_pull_at >= :since"),
                    {"since": _day_ago()})).scalar_one()
            metrics.LOG_HEAD.set(head)
            metrics.LAG.set(max(0, head - slowest) if slowest is not None else 0)
        except Exception:  # the gauges stay stale; the scrape itself must not fail
            log.warning("could not refresh sync gauges", exc_info=True)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return endpoint


def _day_ago() -> datetime:
    return utcnow() - timedelta(days=1)


def readiness_endpoint(db: Database,
                       head: str | None) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            async with db.read() as session:
                current = (await session.execute(
                    sa.text("SELECT version_num FROM alembic_version"))).scalar()
        except Exception as exc:  # not ready, never a 500
            return JSONResponse({"status": "unavailable", "reason": type(exc).__name__},
                                status_code=503)
        if current != head:
            return JSONResponse({"status": "migrations pending", "database": current,
                                 "code": head}, status_code=503)
        return JSONResponse({"status": "ready", "migration": current})

    return endpoint
