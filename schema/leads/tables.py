from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from schema.enums import LeadSource, LeadStatus, enum_column
from sync.model import SyncedModel, UTCDateTime, new_id, utcnow


class Lead(SyncedModel, table=True):
    __tablename__ = "lead"
    company: str = Field(max_length=200)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    source: LeadSource = Field(default=LeadSource.FIELD, sa_type=enum_column(LeadSource, "source"))
    status: LeadStatus = Field(default=LeadStatus.NEW, sa_type=enum_column(LeadStatus, "status"), index=True)
    status_reason: str | None = Field(default=None, max_length=200)
    score: int = Field(default=0, sa_column_kwargs={"info": {"least": 0, "most": 100}})
    estimated_value_cents: int = Field(default=0, sa_type=sa.BigInteger)
    owner_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id", index=True)
    territory_id: uuid.UUID | None = Field(default=None, foreign_key="territory.id", index=True)
    converted_account_id: uuid.UUID | None = Field(default=None, foreign_key="account.id")
    converted_contact_id: uuid.UUID | None = Field(default=None, foreign_key="contact.id")
    converted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status_changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    __table_args__ = (sa.CheckConstraint("score BETWEEN 0 AND 100", name="score_range"),)


class LeadStatusChange(SQLModel, table=True):
    """Append-only history of lead stages, for funnel timing (days in stage)."""

    __tablename__ = "lead_status_change"
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    lead_id: uuid.UUID = Field(foreign_key="lead.id", index=True)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str = Field(max_length=16)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
