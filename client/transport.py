"""GraphQL over HTTP with bounded, jittered retries.

One `Transport` per server (it may be shared by many devices: it holds no session
state). `execute()` POSTs `{"query", "variables"}` to `<base_url>/graphql` and returns
`data`, or raises:

- `NetworkError` after the retry budget is spent on *retryable* failures: connection
  errors, timeouts, a dropped response, HTTP 5xx, HTTP 429, top-level GraphQL errors
  the server marks `extensions.retryable: true`, and errors raised while executing (a
  `path` but no `extensions.code`: a server bug or outage, masked as "Unexpected error.");
- `RequestRefused` at once for everything else the server refuses (other 4xx, and
  top-level GraphQL errors such as UNAUTHENTICATED, BATCH_TOO_LARGE, INVALID_CURSOR).

Backoff is "full jitter": before retry *n* (1-based) the client sleeps a uniform random
time in [0, min(max_delay, base_delay * 2**(n-1))], or the server's `Retry-After` when it
sends one (capped by max_delay). Attempts and total time are both bounded.

Only requests that are safe to repeat are retried after they may have reached the
server: syncPush is (mutationIds make it exactly-once), syncPull and login are. A
refreshToken is not (a refresh token works once), so `execute(..., idempotent=False)`
retries only failures where the request surely was not processed: it never left the
device (connect errors), or the server said 429/503.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from client.errors import NetworkError, ProtocolError, RequestRefused

log = logging.getLogger("fieldsync.client.transport")

#: httpx errors raised before the request could reach the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one request before giving up with `NetworkError`."""

    max_attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 8.0
    #: Give up once this many seconds have passed since the first attempt.
    max_elapsed: float = 60.0

    def delay(self, retry: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1 = the first retry)."""
        if retry_after is not None:
            return max(0.0, min(self.max_delay, retry_after))
        ceiling = min(self.max_delay, self.base_delay * (2 ** (retry - 1)))
        return rng.uniform(0.0, ceiling)


@dataclass
class Response:
    status: int
    body: dict[str, Any]


class _Retry(Exception):
    def __init__(self, reason: str, status: int | None = None, error: BaseException | None = None,
                 retry_after: float | None = None, sent: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.error = error
        self.retry_after = retry_after
        self.sent = sent


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date: ignore, use our own backoff


@dataclass(frozen=True)
class GraphQLErrorInfo:
    code: str
    message: str
    retryable: bool
    #: An error with a `path` but no `extensions.code` is the server failing while
    #: executing (a bug or a database outage; the message is masked): retry it. Without
    #: a path it is a malformed request (a client bug): never retry.
    server_failure: bool


def first_error(body: dict[str, Any]) -> GraphQLErrorInfo | None:
    """The first top-level GraphQL error of a response, classified."""
    errors = body.get("errors")
    if not errors:
        return None
    err = errors[0] if isinstance(errors, list) and isinstance(errors[0], dict) else {}
    ext = err.get("extensions") or {}
    code = ext.get("code")
    return GraphQLErrorInfo(str(code or "GRAPHQL_ERROR"), str(err.get("message", "")),
                            bool(ext.get("retryable", False)),
                            code is None and bool(err.get("path")))


class Transport:
    """POST GraphQL documents to one server, retrying what is safe to retry."""

    def __init__(self, base_url: str, *, http: httpx.AsyncClient | None = None,
                 retry: RetryPolicy | None = None, timeout: float = 30.0,
                 rng: random.Random | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 user_agent: str = "fieldsync-reference-client/0.1") -> None:
        self.base_url = base_url.rstrip("/")
        self.endpoint = self.base_url + "/graphql"
        self._owns_http = http is None
        self.http = http or httpx.AsyncClient(timeout=timeout)
        self.retry = retry or RetryPolicy()
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.sleep = sleep
        self.user_agent = user_agent
        #: Counters for tests, benchmarks and diagnostics.
        self.requests = 0
        self.retries = 0

    @property
    def ws_url(self) -> str:
        return self.endpoint.replace("https://", "wss://", 1).replace("http://", "ws://", 1)

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http.aclose()

    async def post(self, query: str, variables: dict[str, Any] | None = None, *,
                   token: str | None = None, idempotent: bool = True) -> Response:
        """POST once per attempt until a non-retryable answer; return status and body."""
        payload = json.dumps({"query": query, "variables": variables or {}},
                             separators=(",", ":")).encode()
        headers = {"content-type": "application/json", "accept": "application/json",
                   "user-agent": self.user_agent}
        if token:
            headers["authorization"] = f"Bearer {token}"
        started = time.monotonic()
        attempt = 0
        sent = False
        while True:
            attempt += 1
            try:
                return await self._attempt(payload, headers, idempotent)
            except _Retry as r:
                sent = sent or r.sent
                elapsed = time.monotonic() - started
                if attempt >= self.retry.max_attempts:
                    raise NetworkError(f"gave up after {attempt} attempts: {r.reason}",
                                       attempt, r.error, r.status, sent) from r.error
                wait = self.retry.delay(attempt, self.rng, r.retry_after)
                if elapsed + wait > self.retry.max_elapsed:
                    raise NetworkError(f"gave up after {elapsed:.1f}s ({attempt} attempts): "
                                       f"{r.reason}", attempt, r.error, r.status,
                                       sent) from r.error
                self.retries += 1
                log.info("retry %d in %.2fs: %s", attempt, wait, r.reason)
                await self.sleep(wait)

    async def _attempt(self, payload: bytes, headers: dict[str, str],
                       idempotent: bool) -> Response:
        self.requests += 1
        try:
            response = await self.http.post(self.endpoint, content=payload, headers=headers)
        except _NOT_SENT as e:
            raise _Retry(f"{type(e).__name__}: {e}", error=e, sent=False) from None
        except httpx.TransportError as e:  # timeouts, resets, a response lost on the way
            if not idempotent:
                raise NetworkError(f"{type(e).__name__} after the request was sent; it is "
                                   "not safe to repeat", 1, e) from e
            raise _Retry(f"{type(e).__name__}: {e}", error=e) from None
        status = response.status_code
        if status == 429 or status >= 500:
            if idempotent or status in (429, 503):
                raise _Retry(f"HTTP {status}", status=status, retry_after=_retry_after(response))
            raise NetworkError(f"HTTP {status} after the request was sent; it is not safe "
                               "to repeat", 1, None, status)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if status >= 400:
                raise RequestRefused(f"HTTP_{status}", response.text[:300], False, status)
            raise ProtocolError(f"HTTP {status} with a body that is not a JSON object")
        error = first_error(body)
        if error is not None and body.get("data") is None:
            if error.retryable:
                raise _Retry(f"{error.code}: {error.message}", status=status)
            if error.server_failure:
                if not idempotent:
                    raise NetworkError(f"server failure ({error.message}); the request is "
                                       "not safe to repeat", 1, None, status)
                raise _Retry(f"server failure: {error.message}", status=status)
        return Response(status, body)

    async def execute(self, query: str, variables: dict[str, Any] | None = None, *,
                      token: str | None = None, idempotent: bool = True) -> dict[str, Any]:
        """`data` of a successful answer; `RequestRefused` for a top-level error."""
        response = await self.post(query, variables, token=token, idempotent=idempotent)
        error = first_error(response.body)
        if error is not None:
            raise RequestRefused(error.code, error.message, error.retryable, response.status)
        if response.status >= 400:
            raise RequestRefused(f"HTTP_{response.status}", str(response.body)[:300], False,
                                 response.status)
        data = response.body.get("data")
        if not isinstance(data, dict):
            raise ProtocolError("an answer without errors must carry data")
        return data
