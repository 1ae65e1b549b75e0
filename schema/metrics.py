"""Prometheus metrics about sync and the API (exposed by the server at /metrics)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("fieldsync_http_requests_total", "HTTP requests", ["method", "path", "status"])
LATENCY = Histogram("fieldsync_http_request_seconds", "HTTP request latency", ["method", "path"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
PUSHES = Counter("fieldsync_sync_pushes_total", "sync push requests")
PUSHED = Counter("fieldsync_sync_mutations_total", "pushed mutations by outcome", ["status"])
PULLS = Counter("fieldsync_sync_pulls_total", "sync pull pages")
PULLED = Counter("fieldsync_sync_changes_pulled_total", "changes sent by pulls", ["op"])
CONFLICTS = Counter("fieldsync_conflicts_total", "conflicts recorded, by policy rule", ["rule"])
REJECTIONS = Counter("fieldsync_rejections_total", "refused mutations, by code", ["code"])
LOG_HEAD = Gauge("fieldsync_change_log_head", "newest change sequence number seen")
LAG = Gauge("fieldsync_change_log_lag", "changes the slowest device active today has not pulled")


def count_push(statuses: Iterable[tuple[str, str | None]]) -> None:
    """One push: (status, error code) per mutation."""
    PUSHES.inc()
    # Counted first, one metric update per label: a labelled inc() costs microseconds,
    # and a batch carries hundreds of results.
    pushed, rejected = Tally[str](), Tally[str]()
    for status, code in statuses:
        pushed[status] += 1
        if status == "REJECTED" and code:
            rejected[code] += 1
    for status, n in pushed.items():
        PUSHED.labels(status).inc(n)
    for code, n in rejected.items():
        REJECTIONS.labels(code).inc(n)


def count_pull(ops: Iterable[str]) -> None:
    PULLS.inc()
    for op, n in Tally(ops).items():
        PULLED.labels(op).inc(n)
