"""Small deterministic helpers: ids, distributions, dates and text."""

from __future__ import annotations

import math
import random
import unicodedata
import uuid
from datetime import UTC, date, datetime, time, timedelta


def new_rng(key: str) -> random.Random:
    """A generator seeded from a string (hashed with SHA-512, so stable across runs).

    Demo data only: nothing here needs to be unpredictable.
    """
    return random.Random(key)  # noqa: S311


def rid(rng: random.Random) -> uuid.UUID:
    """A random (version 4) UUID drawn from `rng`, so the same seed gives the same ids."""
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:  # normal approximation; Knuth's loop underflows for large means
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def weighted(rng: random.Random, options: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([o for o, _ in options], [w for _, w in options])[0]


def working_days(start: date, end: date) -> list[date]:
    """Monday-Friday days in [start, end]."""
    days, d = [], start
    while d <= end:
        if d.weekday() < 5:
            days.append(d)
        d += timedelta(days=1)
    return days


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def work_time(rng: random.Random, day: date) -> datetime:
    """A time during the field day (stored as UTC)."""
    return at(day, rng.randint(7, 15), rng.randrange(0, 60, 5))


def month_starts(start: date, end: date) -> list[tuple[date, date]]:
    """(first, last) day of each calendar month overlapping [start, end], clipped to it."""
    out, first = [], date(start.year, start.month, 1)
    while first <= end:
        nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        out.append((max(first, start), min(nxt - timedelta(days=1), end)))
        first = nxt
    return out


def ascii_slug(text: str, sep: str = ".") -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = "".join(c if c.isalnum() else " " for c in plain.lower()).split()
    return sep.join(words)


def next_anniversary(day: date, today: date) -> date:
    """The next occurrence of `day`'s month and day on or after `today` (Feb 29 → Mar 1)."""
    for year in (today.year, today.year + 1):
        try:
            d = date(year, day.month, day.day)
        except ValueError:
            d = date(year, 3, 1)
        if d >= today:
            return d
    raise AssertionError("unreachable")
