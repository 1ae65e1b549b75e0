"""Login throttling shared by every server instance (it lives in the database).

Failures are counted per email and per client address in a fixed window; past the limit
the caller is told how long to wait. Unknown email and wrong password look the same.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.identity.tables import LoginAttempt
from sync.model import utcnow


async def retry_after(session: AsyncSession, keys: list[str], max_failures: int,
                      window_s: int) -> int:
    """Seconds to wait before another try, or 0 when the caller may try now."""
    now = utcnow()
    rows = (await session.execute(
        sa.select(LoginAttempt).where(col(LoginAttempt.key).in_(keys)))).scalars()
    wait = 0
    for row in rows:
        end = row.window_start + timedelta(seconds=window_s)
        if row.failures >= max_failures and end > now:
            wait = max(wait, int((end - now).total_seconds()) + 1)
    return wait


async def record_failure(session: AsyncSession, keys: list[str], window_s: int) -> None:
    now = utcnow()
    for key in keys:
        row = await session.get(LoginAttempt, key, with_for_update=True)
        if row is None:
            session.add(LoginAttempt(key=key, window_start=now, failures=1))
        elif row.window_start + timedelta(seconds=window_s) <= now:
            row.window_start, row.failures = now, 1
        else:
            row.failures += 1


async def clear(session: AsyncSession, keys: list[str]) -> None:
    await session.execute(sa.delete(LoginAttempt).where(col(LoginAttempt.key).in_(keys)))
