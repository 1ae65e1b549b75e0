"""The injected-fault layer: an httpx transport that loses, delays, duplicates and cuts
requests between the devices and the real server.

Every device's `Transport` gets a `user-agent` of `fleet/<device name>`; the layer keeps
one random generator per device, seeded from the run's seed and the device name, so a
device's sequence of fault decisions is the same on every run with the same `--seed`
(which request of the device meets which fault), whatever the interleaving of devices.

Faults, each with its own rate per HTTP request (only on `/graphql` POSTs):

``drop``       the request reaches the server and is processed (committed); the answer
               is read and thrown away, and the client sees a reset connection.
``timeout``    the request is sent, but the client gives up after `timeout_after`
               seconds (the answer may or may not have come by then; it is thrown away)
               and sees `ReadTimeout`. The server may or may not have processed it.
``duplicate``  the same request is sent twice at the same time (a proxy or a client
               retrying too eagerly); the client gets one of the two answers.
``cut``        a raw TCP connection sends the headers and part of the body, then closes:
               the server sees a truncated request. The client sees `WriteError`.
``gateway``    a 502 from a "proxy", without reaching the server.

The server restart (SIGKILL in the middle of the storm) is not in this layer: see
`bench.fleet.server.Supervisor`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

KINDS = ("drop", "timeout", "duplicate", "cut", "gateway")
_OP_BYTES = re.compile(rb'"query"\s*:\s*"\s*(?:query|mutation|subscription)\s+(\w+)')


@dataclass(frozen=True)
class FaultConfig:
    drop: float = 0.0
    timeout: float = 0.0
    duplicate: float = 0.0
    cut: float = 0.0
    gateway: float = 0.0
    #: How long a "timeout" waits for the answer before giving up.
    timeout_after: float = 0.4

    @classmethod
    def default_on(cls) -> FaultConfig:
        return cls(drop=0.04, timeout=0.02, duplicate=0.04, cut=0.02, gateway=0.01)

    @classmethod
    def parse(cls, text: str) -> FaultConfig:
        """`on`, `off`, or `drop=0.05,timeout=0.02,...` (rates per request)."""
        text = text.strip().lower()
        if text in ("off", "none", "0"):
            return cls()
        if text in ("on", "default"):
            return cls.default_on()
        values: dict[str, float] = {}
        for part in text.split(","):
            name, _, raw = part.partition("=")
            name = name.strip().replace("-", "_")
            if name not in (*KINDS, "timeout_after"):
                raise ValueError(f"unknown fault '{name}' (one of {', '.join(KINDS)})")
            values[name] = float(raw)
        return cls(**values)

    @property
    def any(self) -> bool:
        return any(getattr(self, k) > 0 for k in KINDS)

    def describe(self) -> str:
        return ", ".join(f"{k} {getattr(self, k):.1%}" for k in KINDS) if self.any else "off"


@dataclass
class FaultStats:
    injected: Counter[str] = field(default_factory=Counter)
    #: injected faults by (kind, GraphQL operation)
    by_op: Counter[tuple[str, str]] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    #: requests that failed on their own (server down, connection refused, ...)
    natural_errors: Counter[str] = field(default_factory=Counter)


@dataclass
class ResultTap:
    """Every push result a device actually received (answers thrown away by a fault are
    not here): (clientId, mutationId) → canonical JSON digests seen. The verifier checks
    that each equals the result the server stored, and that a replay is identical."""

    seen: dict[tuple[str, int], set[str]] = field(default_factory=dict)

    def record(self, request_body: dict[str, Any], response_body: Any) -> None:
        try:
            client_id = request_body["variables"]["input"]["clientId"]
            results = response_body["data"]["syncPush"]["results"]
        except (KeyError, TypeError):
            return
        for r in results or ():
            if (r.get("error") or {}).get("code") == "MUTATION_GAP":
                continue  # not a result: nothing is stored for it
            self.seen.setdefault((client_id, int(r["mutationId"])), set()).add(digest(r))


def digest(result: dict[str, Any]) -> str:
    """A digest of a push result as the wire shows it (key order does not matter)."""
    keep = {k: result.get(k) for k in ("mutationId", "status", "id", "version", "data",
                                        "conflictId", "error", "warnings")}
    text = json.dumps(keep, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()


class FaultTransport(httpx.AsyncBaseTransport):
    """Wraps a real `httpx.AsyncHTTPTransport` and injects faults per device."""

    def __init__(self, inner: httpx.AsyncBaseTransport, config: FaultConfig, seed: int,
                 tap: ResultTap | None = None, max_in_flight: int | None = None) -> None:
        self.inner = inner
        #: Requests handed to the inner transport at once (its connection limit). The
        #: others wait here, in a FIFO semaphore, instead of in httpcore's pool: httpcore
        #: rescans its whole queue of waiting requests against every connection whenever a
        #: request arrives or finishes, which with 1,000+ devices waiting took two thirds
        #: of the fleet process's CPU (the simulator, not the server, was the bottleneck).
        self._gate = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        self.config = config
        self.seed = seed
        self.enabled = config.any
        self.stats = FaultStats()
        self.tap = tap
        self._rngs: dict[str, random.Random] = {}
        #: Called (op, kind) whenever a fault is injected (for logging/tests).
        self.on_fault: Callable[[str, str], None] | None = None
        self.latencies: dict[str, list[float]] = {}

    def _rng(self, device: str) -> random.Random:
        rng = self._rngs.get(device)
        if rng is None:
            h = hashlib.sha256(f"{self.seed}/faults/{device}".encode()).digest()
            rng = self._rngs[device] = random.Random(int.from_bytes(h[:8], "big"))
        return rng

    def _choose(self, device: str) -> str | None:
        if not self.enabled:
            return None
        x = self._rng(device).random()
        for kind in KINDS:
            rate = getattr(self.config, kind)
            if x < rate:
                return kind
            x -= rate
        return None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body_bytes = await request.aread()
        # The operation name from the start of the document (`{"query":"mutation Push(`),
        # without parsing the whole body: only pushes are parsed (for the result tap).
        m = _OP_BYTES.search(body_bytes[:200])
        op = m.group(1).decode() if m else "?"
        body: Any = None
        if op == "Push":
            try:
                body = json.loads(body_bytes)
            except ValueError:
                body = None
        agent = request.headers.get("user-agent", "")
        device = agent.split("/", 1)[1] if agent.startswith("fleet/") else agent
        self.stats.requests[op] += 1
        kind = self._choose(device) if request.method == "POST" else None
        if kind is not None:
            self.stats.injected[kind] += 1
            self.stats.by_op[(kind, op)] += 1
            if self.on_fault:
                self.on_fault(op, kind)
        started = time.monotonic()
        try:
            if kind == "gateway":
                return httpx.Response(502, text="bad gateway (injected)", request=request)
            if kind == "cut":
                await self._cut(request, body_bytes, self._rng(device))
                raise httpx.WriteError("connection cut mid-body (injected)", request=request)
            if kind == "duplicate":
                a, b = await asyncio.gather(self._forward(request, body_bytes),
                                            self._forward(request, body_bytes),
                                            return_exceptions=True)
                pick = a if self._rng(device).random() < 0.5 else b
                other = b if pick is a else a
                if isinstance(pick, BaseException):
                    pick, other = other, pick
                if isinstance(pick, BaseException):
                    raise pick
                return self._deliver(request, body, pick)
            if kind == "timeout":
                task = asyncio.ensure_future(self._forward(request, body_bytes))
                done, _ = await asyncio.wait({task}, timeout=self.config.timeout_after)
                if not done:
                    task.cancel()
                    with contextlib.suppress(BaseException):  # cancelled or failed: both fine
                        await task
                else:
                    task.exception()  # consume it
                raise httpx.ReadTimeout("no answer in time (injected)", request=request)
            response = await self._forward(request, body_bytes)
            if kind == "drop":
                raise httpx.ReadError("connection reset after the server answered (injected)",
                                      request=request)
            return self._deliver(request, body, response)
        except httpx.TransportError as e:
            if kind is None:
                self.stats.natural_errors[type(e).__name__] += 1
            raise
        finally:
            self.latencies.setdefault(op, []).append(time.monotonic() - started)

    def _deliver(self, request: httpx.Request, body: Any,
                 response: tuple[int, list[tuple[str, str]], bytes]) -> httpx.Response:
        status, headers, content = response
        if self.tap is not None and status == 200 and isinstance(body, dict):
            with contextlib.suppress(ValueError):
                self.tap.record(body, json.loads(content))
        return httpx.Response(status, headers=headers, content=content, request=request)

    async def _forward(self, request: httpx.Request,
                       body_bytes: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        clone = httpx.Request(request.method, request.url, headers=request.headers,
                              content=body_bytes, extensions=request.extensions)
        async with self._gate or contextlib.nullcontext():
            response = await self.inner.handle_async_request(clone)
            try:
                content = await response.aread()
            finally:
                await response.aclose()
        headers = [(k, v) for k, v in response.headers.items()
                   if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        return response.status_code, headers, content

    @staticmethod
    async def _cut(request: httpx.Request, body: bytes, rng: random.Random) -> None:
        """Send the headers and a part of the body on a raw connection, then close it."""
        url = urlsplit(str(request.url))
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(url.hostname, url.port or 80), 5)
        except (OSError, TimeoutError):
            return  # the server is down: nothing reached it either way
        head = [f"POST {url.path or '/'} HTTP/1.1", f"host: {url.netloc}",
                f"content-length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in request.headers.items()
                 if k.lower() not in ("host", "content-length", "transfer-encoding")]
        part = body[: max(1, int(len(body) * rng.uniform(0.1, 0.9)))]
        try:
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + part)
            await writer.drain()
            await asyncio.sleep(0.01)
        except OSError:
            pass
        finally:
            writer.transport.abort()
        del reader

    async def aclose(self) -> None:
        await self.inner.aclose()
