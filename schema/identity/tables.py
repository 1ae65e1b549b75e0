from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from schema.enums import Role, enum_column
from sync.model import SyncedModel, UTCDateTime, new_id, utcnow


class Territory(SyncedModel, table=True):
    __tablename__ = "territory"
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=200)
    region: str | None = Field(default=None, max_length=100)


class User(SQLModel, table=True):
    """A person who logs in. Not replicated to devices; managed by admins and the CLI."""

    __tablename__ = "user_account"
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    full_name: str = Field(max_length=200)
    password_hash: str = Field(max_length=255)
    role: Role = Field(sa_type=enum_column(Role, "role"))
    manager_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id", index=True)
    territory_id: uuid.UUID | None = Field(default=None, foreign_key="territory.id", index=True)
    active: bool = Field(default=True)
    max_discount_bp: int = Field(default=1000, description="Largest line discount, basis points")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    deactivated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RefreshToken(SQLModel, table=True):
    """One issued refresh token. Rotation links tokens of a login into a family."""

    __tablename__ = "refresh_token"
    id: uuid.UUID = Field(primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    family_id: uuid.UUID = Field(index=True)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class LoginAttempt(SQLModel, table=True):
    """Failed-login counters per key (email or client address), shared by all instances."""

    __tablename__ = "login_attempt"
    key: str = Field(primary_key=True, max_length=400)
    window_start: datetime = Field(sa_type=UTCDateTime)
    failures: int = Field(default=0, sa_type=sa.Integer)
