"""The Starlette application: GraphQL (with the offline explorer), health and readiness.

`create_app(settings)` builds it; the engine, units of work and sync engines live in
the lifespan state, so several app instances (tests, workers) never share globals.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from schema import metrics
from schema.context import Context, SerialSession
from schema.graphql.root import build_schema
from schema.limits import GraphQLLimits, is_unavailable
from schema.limits import extensions as graphql_extensions
from schema.registry import registry
from server import jsontext
from server.auth import authenticate
from server.db import Database, async_url, create_engine
from server.explorer import explorer_html, static_routes
from server.limits import BodySizeLimit
from server.logs import configure as configure_logging
from server.logs import quiet_client_errors
from server.notify import Notifier
from server.observability import (
    RequestMetrics,
    metrics_endpoint,
    migration_head,
    readiness_endpoint,
)
from server.settings import Settings
from server.tokens import TokenService
from server.websocket import LiveConnections, SubscriptionLimits
from server.websocket import handler_class as ws_handler_class
from sync.cursor import CursorCodec
from sync.hlc import HybridClock
from sync.pull import PullEngine, PullLimits
from sync.push import Limits, PushEngine

log = logging.getLogger("fieldsync")

DEFAULT_QUERY = """# Welcome to fieldsync. Sign in first:
#   mutation { login(email: "manager1@example.com", password: "demo-password") {
#     ... on LoginSuccess { accessToken } ... on AuthError { code message } } }
# then put {"Authorization": "Bearer <accessToken>"} in the Headers tab below.
# More ready-to-paste queries: docs/manager-queries.md
query MyBestCustomers {
  me { email role }
  topCustomers(by: MARGIN, limit: 5) {
    customers { rank account { name city } revenueCents marginCents orderCount }
  }
  accounts(first: 3, sort: NAME) {
    totalCount
    edges { node { name tier creditLimitCents balanceCents owner { fullName }
      orders(first: 2) { orderDate status totalCents } } }
  }
}
"""


@dataclass
class Services:
    settings: Settings
    db: Database
    tokens: TokenService
    push: PushEngine
    pull: PullEngine
    notifier: Notifier

    async def close(self) -> None:
        """Stop the background work, then close the pool (the app's shutdown)."""
        await self.notifier.stop()
        await self.db.dispose()


class FieldsyncGraphQL(GraphQL[Context, None]):
    def __init__(self, services: Services) -> None:
        limits = GraphQLLimits(
            max_depth=services.settings.graphql_max_depth,
            max_aliases=services.settings.graphql_max_aliases,
            max_tokens=services.settings.graphql_max_tokens,
            max_objects=services.settings.graphql_max_objects,
            max_page=services.settings.graphql_max_page,
            production=services.settings.production,
        )
        settings = services.settings
        super().__init__(build_schema(graphql_extensions(limits), limits.max_objects),
                         graphql_ide="graphiql",
                         # Only graphql-transport-ws: the legacy graphql-ws protocol has no
                         # connection_init timeout, so a silent socket would stay forever.
                         subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
                         # A socket that never says connection_init is closed quickly.
                         connection_init_wait_timeout=timedelta(
                             seconds=settings.ws_init_timeout_seconds),
                         # Counted by our handler, which says which limit was hit.
                         max_subscriptions_per_connection=None)
        self.graphql_transport_ws_handler_class = ws_handler_class(
            SubscriptionLimits(per_connection=settings.ws_max_subscriptions_per_connection,
                               per_user=settings.ws_max_subscriptions_per_user),
            LiveConnections())
        self.services = services

    def encode_json(self, data: object) -> str:
        # A sync page is up to ~1 MB of JSON: json.dumps took a tenth of its CPU. Text,
        # not bytes: strawberry sends bytes over a WebSocket as binary frames, which
        # graphql-ws clients refuse.
        return jsontext.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        try:
            return json.loads(data)
        except RecursionError:
            # Thousands of nested brackets: answered as any other unreadable body (400),
            # not as a server error with a traceback in the log.
            raise json.JSONDecodeError("nested too deeply", "", 0) from None

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(explorer_html(DEFAULT_QUERY))

    async def get_context(self, request: Any, response: Any) -> Context:
        s = self.services
        stack: AsyncExitStack = request.scope["fieldsync.stack"]
        session = await stack.enter_async_context(s.db.read())
        principal, error = await authenticate(session, s.tokens,
                                              request.headers.get("authorization"))
        # Give the connection back between authentication and the resolvers: a
        # WebSocket context lives as long as its connection.
        await session.close()
        client = request.client.host if request.client else "unknown"
        return Context(
            db=s.db, tokens=s.tokens, push=s.push, pull=s.pull, principal=principal,
            auth_error=error, client_address=client, max_page=s.settings.graphql_max_page,
            session=cast(AsyncSession, SerialSession(session)), request=request, response=response,
            login_limits=(s.settings.login_max_failures, s.settings.login_window_seconds),
            notify=s.notifier.committed, wait_for_changes=s.notifier.wait_beyond,
            current_head=lambda: s.notifier.head,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """graphql-ws clients send their token in `connection_init`'s payload."""
        params = context.connection_params or {}
        # Either {"Authorization": …} or, as RxDB sends it, {"headers": {"Authorization": …}}.
        nested = params.get("headers")
        headers = nested if isinstance(nested, dict) else params
        header = headers.get("Authorization") or headers.get("authorization")
        if context.principal is None:
            async with self.services.db.read() as session:
                principal, error = await authenticate(session, self.services.tokens,
                                                      header if isinstance(header, str) else None)
            if principal is None:
                raise ConnectionRejectionError({"reason": error or "authentication required"})
            context.principal = principal
        else:  # authenticated by the upgrade request's own header
            header = context.request.headers.get("authorization")
        # A socket outlives its token: subscriptions ask again before each event, so an
        # expired token or a deactivated account stops the data (see `Context`).
        signed_in, tokens = context.principal, self.services.tokens

        async def still_signed_in(session: AsyncSession) -> bool:
            again, _ = await authenticate(session, tokens, header if isinstance(header, str)
                                          else None)
            return again == signed_in

        context.still_signed_in = still_signed_in
        return UNSET


class _WithUnitOfWorkStack:
    """Gives each GraphQL request an exit stack that closes its read session."""

    def __init__(self, app: FieldsyncGraphQL) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answered = False

        async def tracked_send(message: Message) -> None:
            nonlocal answered
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            async with AsyncExitStack() as stack:
                scope["fieldsync.stack"] = stack
                await self.app(scope, receive, tracked_send if scope["type"] == "http" else send)
        except ClientDisconnect:
            log.info("client went away mid-request; nothing was applied")
        except Exception as exc:
            if answered:
                # The response is out; closing the request's read session failed, e.g. on
                # a connection that a cancelled resolver left broken. The pool drops it.
                log.warning("cleanup after the response failed: %r", exc)
                return
            # Authentication reads the database before GraphQL runs; when every pooled
            # connection is busy (or the database is down) say "retry", not 500.
            if not is_unavailable(exc) or scope["type"] != "http":
                raise
            log.warning("database busy or unavailable before the resolvers ran: %s", exc)
            await JSONResponse(
                {"errors": [{"message": "the database is busy or unavailable; retry shortly",
                             "extensions": {"code": "UNAVAILABLE", "retryable": True}}]},
                status_code=503, headers={"Retry-After": "1"})(scope, receive, send)


def build_services(settings: Settings) -> Services:
    db = Database(create_engine(settings))
    node = f"{socket.gethostname()[:16]}-{os.getpid()}"
    pg_dsn = None
    if db.dialect == "postgresql":
        pg_dsn = async_url(settings.database_url).replace("postgresql+psycopg:", "postgresql:", 1)
    clock = HybridClock(node, settings.sync_max_clock_skew_seconds * 1000)
    push = PushEngine(registry, clock, Limits(max_batch=settings.sync_max_batch,
                                             max_clock_skew_ms=settings.sync_max_clock_skew_seconds * 1000),
                      on_conflict=lambda rule: metrics.CONFLICTS.labels(rule).inc())
    # Cursors are signed with the JWT keys: after a key rotation, old cursors still verify.
    cursor_keys = [secret.encode() + b"/cursor" for secret in settings.verification_keys.values()]
    pull = PullEngine(registry, CursorCodec(cursor_keys),
                      PullLimits(settings.sync_default_page, settings.sync_max_page))
    return Services(settings, db, TokenService(settings), push, pull, Notifier(db, pg_dsn))


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    services = build_services(settings)
    graphql = FieldsyncGraphQL(services)
    quiet_client_errors()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await services.notifier.start()
        # Everything built so far (schema, mappers, compiled caches) lives for the whole
        # process: out of the collector's sight, a full collection no longer walks it
        # (it cost ~100 ms in the middle of a large sync page).
        gc.freeze()
        # A push batch allocates some 100,000 objects: at the default threshold (700) the
        # young generation was collected every few hundred microseconds and the older ones
        # walked every in-flight request's objects, 4-5 % of the server's CPU under load.
        # Cycles are still collected, after 10,000 net allocations instead of 700.
        gc.set_threshold(10_000, 10, 10)
        yield
        await services.close()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/graphql", _WithUnitOfWorkStack(graphql), methods=["GET", "POST"]),
        WebSocketRoute("/graphql", _WithUnitOfWorkStack(graphql)),
        Route("/healthz", healthz),
        Route("/readyz", readiness_endpoint(services.db, migration_head())),
        Route("/metrics", metrics_endpoint(services.db)),
        *static_routes(),
    ]
    middleware = [Middleware(RequestMetrics),
                  Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)]
    if settings.cors_origin_list:
        middleware.append(Middleware(CORSMiddleware, allow_origins=settings.cors_origin_list,
                                     allow_methods=["GET", "POST"],
                                     allow_headers=["authorization", "content-type"]))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.services = services
    return app


def app_from_env() -> Starlette:
    """uvicorn factory: `uvicorn --factory server.app:app_from_env`."""
    settings = Settings.from_env()
    configure_logging(settings.log_json)
    return create_app(settings)
