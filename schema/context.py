"""What every resolver gets: the caller, units of work, per-request loaders, the engines.

`server/` builds it per request; `schema/` only depends on these protocols.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession

from schema.scope import Principal, viewer_of
from sync.protocol import SyncRequestError
from sync.pull import PullEngine
from sync.push import PushEngine
from sync.registry import Viewer


class UnitsOfWork(Protocol):
    def read(self) -> AbstractAsyncContextManager[AsyncSession]: ...
    def write(self) -> AbstractAsyncContextManager[AsyncSession]: ...


class Tokens(Protocol):
    async def issue(self, session: AsyncSession, user: Any) -> Any: ...
    async def rotate(self, session: AsyncSession, token: str) -> Any: ...
    async def revoke(self, session: AsyncSession, token: str) -> Any: ...


class SerialSession:
    """A request's read session, safe to share between resolvers.

    Strawberry resolves sibling fields concurrently, and an AsyncSession must never be
    used by two coroutines at once; statements here take turns (each is buffered, so the
    lock is held only while one runs).
    """

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._lock = asyncio.Lock()

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await self._session.execute(*args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await self._session.get(*args, **kwargs)

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await self._session.scalar(*args, **kwargs)

    async def scalars(self, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            return await self._session.scalars(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


class NotAuthenticated(GraphQLError):
    """No valid access token: a top-level GraphQL error with code UNAUTHENTICATED."""

    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "UNAUTHENTICATED"})


def request_error(e: SyncRequestError) -> GraphQLError:
    """A whole sync request refused by the engine, as the GraphQL error clients expect:
    `extensions.code` and `extensions.retryable` (every dialect answers alike)."""
    return GraphQLError(e.message, extensions={"code": e.code, "retryable": e.retryable})


@dataclass
class Context:
    db: UnitsOfWork
    tokens: Tokens
    push: PushEngine
    pull: PullEngine
    principal: Principal | None
    client_address: str
    max_page: int
    session: AsyncSession
    login_limits: tuple[int, int] = (5, 300)
    request: Any = None
    response: Any = None
    loaders: dict[Any, Any] = field(default_factory=dict)
    notify: Callable[[], None] | None = None
    auth_error: str | None = None
    #: graphql-ws `connection_init` payload (WebSocket clients authenticate there).
    connection_params: dict[str, Any] | None = None
    #: Waits for the change-log head to pass a sequence number (for syncPoke).
    wait_for_changes: Callable[[int], Awaitable[int]] | None = None
    current_head: Callable[[], int] | None = None
    #: On a WebSocket: whether the token the socket signed in with still stands (not
    #: expired, the account active, the same role). Subscriptions check it before each
    #: event, in the session they read with; `require_signed_in` does.
    still_signed_in: Callable[[AsyncSession], Awaitable[bool]] | None = None

    @property
    def me(self) -> Principal:
        if self.principal is None:
            raise NotAuthenticated(self.auth_error or "sign in first: send the header "
                                   "Authorization: Bearer <accessToken> (see the login mutation)")
        return self.principal

    async def require_signed_in(self, session: AsyncSession) -> None:
        """Ends a live subscription whose socket's sign-in no longer stands."""
        if self.still_signed_in is not None and not await self.still_signed_in(session):
            raise NotAuthenticated("the access token this socket signed in with has expired "
                                   "or no longer applies; reconnect with a fresh token")

    @property
    def viewer(self) -> Viewer:
        return viewer_of(self.me)

    def loader(self, key: Any, factory: Callable[[], Any]) -> Any:
        """One DataLoader per relation per request."""
        if key not in self.loaders:
            self.loaders[key] = factory()
        return self.loaders[key]
