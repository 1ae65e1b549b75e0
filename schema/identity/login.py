"""Login throttling shared by every server instance (it lives in the database).

Attempts are counted per email and per client address in a fixed window; past the limit
the caller is told how long to wait. An attempt is counted *before* its password is
checked, in one locked step with the limit check, so guesses sent at the same moment
cannot all slip in before the first failure is recorded. A success takes its attempt
back: it forgets the email's failures and returns the address its one attempt (an
office behind one address signs many people in; a success must not reset the count
for an address that also sprays guesses). Unknown email and wrong password look the
same.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.identity.tables import LoginAttempt
from sync.model import dialect_name, table_of, utcnow


async def reserve(session: AsyncSession, keys: list[str], max_attempts: int,
                  window_s: int) -> int:
    """Count one attempt against every key and return 0, or, when a key is already at
    the limit, count nothing and return the seconds to wait. Run it in a write
    transaction of its own: it locks the keys' rows until commit."""
    now = utcnow()
    window = timedelta(seconds=window_s)
    table = table_of(LoginAttempt)
    insert = postgresql.insert if dialect_name(session) == "postgresql" else sqlite.insert
    # Create missing rows first, so that every key has a row to lock.
    await session.execute(insert(table).on_conflict_do_nothing(), [
        {"key": key, "window_start": now, "failures": 0} for key in keys])
    rows = (await session.execute(
        sa.select(LoginAttempt).where(col(LoginAttempt.key).in_(keys))
        .order_by(col(LoginAttempt.key)).with_for_update())).scalars().all()
    wait = 0
    for row in rows:
        if row.window_start + window <= now:
            row.window_start, row.failures = now, 0
        elif row.failures >= max_attempts:
            wait = max(wait, int((row.window_start + window - now).total_seconds()) + 1)
    if wait:
        return wait
    for row in rows:
        row.failures += 1
    return 0


async def succeeded(session: AsyncSession, email_key: str, address_key: str) -> None:
    """A reserved attempt signed in: forget the email's failures and give the address
    its attempt back."""
    await session.execute(sa.delete(LoginAttempt).where(col(LoginAttempt.key) == email_key))
    await session.execute(
        sa.update(LoginAttempt).where(col(LoginAttempt.key) == address_key,
                                      col(LoginAttempt.failures) > 0)
        .values(failures=col(LoginAttempt.failures) - 1))
