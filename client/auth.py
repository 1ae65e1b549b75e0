"""Sign-in and token refresh.

- `login(email, password)` stores the access token, the refresh token and when the
  access token expires (from `expiresIn`).
- Every authenticated call goes through `Auth.execute()`: it refreshes ahead of time when
  the access token is about to expire, and when the server still answers
  UNAUTHENTICATED (expired mid-sync, clock drift, key rotation) it refreshes once and
  repeats the call once.
- A refresh token works exactly once and presenting a used one signs the login out
  everywhere (TOKEN_REUSED). So refreshes are single-flight (one lock per device; a caller
  whose token was already replaced just uses the new one) and the new pair is persisted
  before it is used. A refresh whose answer was lost cannot be recovered (the protocol
  has no grace window): the retry gets TOKEN_REUSED and the user signs in again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from client.errors import AuthenticationRequired, LoginFailed, NetworkError, RequestRefused
from client.store import LocalStore
from client.transport import Transport

LOGIN = """mutation Login($e: String!, $p: String!) { login(email: $e, password: $p) {
  __typename ... on LoginSuccess { accessToken refreshToken expiresIn }
  ... on AuthError { code message retryAfterSeconds } } }"""
REFRESH = """mutation Refresh($t: String!) { refreshToken(token: $t) {
  __typename ... on LoginSuccess { accessToken refreshToken expiresIn }
  ... on AuthError { code message retryAfterSeconds } } }"""
LOGOUT = """mutation Logout($t: String!) { logout(refreshToken: $t) { ok } }"""


class Auth:
    """The session of one device. Tokens live in the store's meta table (on a phone:
    the OS keychain/keystore)."""

    def __init__(self, transport: Transport, store: LocalStore, *,
                 refresh_margin: float = 30.0) -> None:
        self.transport = transport
        self.store = store
        #: Refresh ahead of time when the access token expires within this many seconds.
        self.refresh_margin = refresh_margin
        self._lock = asyncio.Lock()
        #: How many refreshes this session made (for tests and diagnostics).
        self.refreshes = 0

    # -- state ---------------------------------------------------------------------------

    @property
    def access_token(self) -> str | None:
        return self.store.get_meta("access_token")

    @property
    def refresh_token(self) -> str | None:
        return self.store.get_meta("refresh_token")

    @property
    def signed_in(self) -> bool:
        return self.refresh_token is not None

    def _save(self, pair: dict[str, Any]) -> str:
        expires = time.time() + float(pair.get("expiresIn") or 0)
        with self.store.transaction():
            self.store.set_meta("access_token", str(pair["accessToken"]))
            self.store.set_meta("refresh_token", str(pair["refreshToken"]))
            self.store.set_meta("access_expires_at", f"{expires:.3f}")
        return str(pair["accessToken"])

    def _forget(self) -> None:
        with self.store.transaction():
            for key in ("access_token", "refresh_token", "access_expires_at"):
                self.store.set_meta(key, None)

    def _expiring(self) -> bool:
        raw = self.store.get_meta("access_expires_at")
        return raw is not None and time.time() >= float(raw) - self.refresh_margin

    # -- sign in / out ----------------------------------------------------------------------

    async def login(self, email: str, password: str) -> None:
        data = await self.transport.execute(LOGIN, {"e": email, "p": password})
        result = data["login"]
        if result.get("__typename") != "LoginSuccess":
            raise LoginFailed(result.get("code", "AUTH_ERROR"), result.get("message", ""),
                              result.get("retryAfterSeconds"))
        self._save(result)

    async def logout(self) -> None:
        token = self.refresh_token
        self._forget()
        if token:
            # the tokens are gone locally either way; the refresh token expires anyway
            with contextlib.suppress(NetworkError, RequestRefused):
                await self.transport.execute(LOGOUT, {"t": token})

    async def refresh(self, stale: str | None = None) -> str:
        """A fresh access token. Single-flight: if another task already replaced `stale`,
        return its result instead of spending the (new) refresh token again."""
        async with self._lock:
            current = self.access_token
            if stale is not None and current is not None and current != stale:
                return current
            token = self.refresh_token
            if token is None:
                raise AuthenticationRequired("not signed in")
            # Retried like any call. If an answer was lost after the server rotated the
            # token, the retry gets TOKEN_REUSED, which also revokes the pair nobody
            # received: the user signs in again, as they would have to anyway.
            data = await self.transport.execute(REFRESH, {"t": token})
            result = data["refreshToken"]
            if result.get("__typename") != "LoginSuccess":
                self._forget()
                raise AuthenticationRequired(
                    f"{result.get('code')}: {result.get('message')}", result.get("code"))
            self.refreshes += 1
            return self._save(result)

    async def token(self) -> str:
        """The access token to send now (refreshed first when about to expire)."""
        current = self.access_token
        if current is None:
            if self.refresh_token is None:
                raise AuthenticationRequired("not signed in")
            return await self.refresh()
        if self._expiring():
            return await self.refresh(stale=current)
        return current

    # -- authenticated calls -----------------------------------------------------------------

    async def execute(self, query: str, variables: dict[str, Any] | None = None, *,
                      idempotent: bool = True) -> dict[str, Any]:
        """Run a GraphQL document as the signed-in user; refresh + retry once on
        UNAUTHENTICATED."""
        token = await self.token()
        try:
            return await self.transport.execute(query, variables, token=token,
                                                idempotent=idempotent)
        except RequestRefused as e:
            if e.code != "UNAUTHENTICATED":
                raise
        token = await self.refresh(stale=token)
        try:
            return await self.transport.execute(query, variables, token=token,
                                                idempotent=idempotent)
        except RequestRefused as e:
            if e.code == "UNAUTHENTICATED":
                raise AuthenticationRequired(f"refused right after a refresh: {e.message}",
                                             e.code) from e
            raise
