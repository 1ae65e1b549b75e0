"""Login throttling shared by every server instance (it lives in the database).

Failures are counted per email and per client address in a fixed window; past the limit
the caller is told how long to wait. Unknown email and wrong password look the same.

The limit is checked twice. Before the password check, so that a throttled caller costs
no argon2. And again where the attempt is decided, with the keys' rows locked: guesses
sent at the same moment all pass the first check, but only those decided while the keys
are under the limit get a real answer. The rest are told RATE_LIMITED whatever the
password was, so they learn nothing. Only failures count, so an office behind one
address signing many people in at once is not throttled. A success forgets its email's
failures, never the address's: an attacker's own sign-ins must not reset the count of
the guesses they spray from that address.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.identity.tables import LoginAttempt
from sync.model import dialect_name, table_of, utcnow


async def retry_after(session: AsyncSession, keys: list[str], max_failures: int,
                      window_s: int) -> int:
    """Seconds to wait before another try, or 0 when the caller may try now."""
    now = utcnow()
    rows = (await session.execute(
        sa.select(LoginAttempt).where(col(LoginAttempt.key).in_(keys)))).scalars()
    return _wait(rows, max_failures, window_s, now)


async def settle(session: AsyncSession, email_key: str, address_key: str, failed: bool,
                 max_failures: int, window_s: int) -> int:
    """Decide a checked attempt in the current write transaction. Returns the seconds
    to wait when a key reached the limit meanwhile (the attempt must then be answered
    RATE_LIMITED, and nothing is counted); otherwise counts the failure, or forgets the
    email's failures after a success, and returns 0."""
    now = utcnow()
    keys = sorted((email_key, address_key))
    insert = postgresql.insert if dialect_name(session) == "postgresql" else sqlite.insert
    # Every key gets a row first, so that concurrent deciders have a row to queue on.
    await session.execute(insert(table_of(LoginAttempt)).on_conflict_do_nothing(), [
        {"key": key, "window_start": now, "failures": 0} for key in keys])
    rows = (await session.execute(
        sa.select(LoginAttempt).where(col(LoginAttempt.key).in_(keys))
        .order_by(col(LoginAttempt.key)).with_for_update())).scalars().all()
    wait = _wait(rows, max_failures, window_s, now)
    if wait:
        return wait
    if not failed:
        await session.execute(sa.delete(LoginAttempt).where(col(LoginAttempt.key) == email_key))
        return 0
    for row in rows:
        if row.window_start + timedelta(seconds=window_s) <= now:
            row.window_start, row.failures = now, 1
        else:
            row.failures += 1
    return 0


def _wait(rows: Iterable[LoginAttempt], max_failures: int, window_s: int,
          now: datetime) -> int:
    wait = 0
    for row in rows:
        end = row.window_start + timedelta(seconds=window_s)
        if row.failures >= max_failures and end > now:
            wait = max(wait, int((end - now).total_seconds()) + 1)
    return wait
