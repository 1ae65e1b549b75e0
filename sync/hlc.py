"""Hybrid logical clock stamps: wall milliseconds, a counter, and the writer's node id.

Stamps are fixed-width strings, so comparing strings compares clocks. Device times feed
the clock but are clamped to the server's time plus a tolerated skew, so a phone whose
clock runs in the future cannot win every last-writer-wins decision.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime


def stamp(ms: int, counter: int, node: str) -> str:
    return f"{ms:015d}:{counter:05d}:{node}"


def stamp_ms(hlc: str) -> int:
    return int(hlc.split(":", 1)[0])


@dataclass(frozen=True)
class ClientStamp:
    hlc: str
    #: How far the device clock was ahead of the server when it was clamped, else None.
    clamped_ms: int | None


class HybridClock:
    def __init__(self, node: str, max_skew_ms: int = 300_000) -> None:
        self.node = node
        self.max_skew_ms = max_skew_ms
        self._last_ms = 0
        self._counter = 0
        self._lock = threading.Lock()

    @staticmethod
    def wall_ms() -> int:
        return time.time_ns() // 1_000_000

    def now(self) -> str:
        """A stamp for a write made by the server itself, later than any it issued."""
        with self._lock:
            wall = self.wall_ms()
            if wall > self._last_ms:
                self._last_ms, self._counter = wall, 0
            else:
                self._counter += 1
            return stamp(self._last_ms, self._counter, self.node)

    def for_client(self, client_time: datetime | None, client_id: str) -> ClientStamp:
        """The stamp of an offline edit made at `client_time` on device `client_id`.

        The edit keeps its own (past) time so a later server edit beats an older offline
        one; a time in the future beyond the tolerated skew is clamped to now.
        """
        wall = self.wall_ms()
        if client_time is None:
            return ClientStamp(stamp(wall, 0, client_id), None)
        ms = int(client_time.timestamp() * 1000)
        if ms > wall + self.max_skew_ms:
            return ClientStamp(stamp(wall, 0, client_id), ms - wall)
        return ClientStamp(stamp(max(ms, 0), 0, client_id), None)
