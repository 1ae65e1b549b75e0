"""The audit log: security-relevant events, queryable by admins.

Events are written in the same unit of work as what they describe (a refused login is
recorded even though nothing else changes; a token-reuse revocation and its record
commit together).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from sync.model import UTCDateTime, new_id, utcnow

LOGIN_SUCCEEDED = "login_succeeded"
LOGIN_FAILED = "login_failed"
LOGIN_THROTTLED = "login_throttled"
TOKEN_REUSED = "token_reused"
SCOPE_REFUSED = "scope_refused"
CONFLICT_RESOLVED = "conflict_resolved"


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    kind: str = Field(max_length=32, index=True)
    user_id: uuid.UUID | None = Field(default=None, index=True)
    email: str | None = Field(default=None, max_length=320)
    client_address: str | None = Field(default=None, max_length=64)
    detail: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON(none_as_null=True))


async def record(session: AsyncSession, kind: str, *, user_id: uuid.UUID | None = None,
                 email: str | None = None, address: str | None = None,
                 detail: dict[str, Any] | None = None) -> None:
    await session.execute(sa.insert(AuditEvent).values(
        id=new_id(), at=utcnow(), kind=kind, user_id=user_id, email=email,
        client_address=address, detail=detail))
