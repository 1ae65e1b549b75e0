from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field

from schema.enums import CaseCategory, CasePriority, CaseStatus, enum_column
from sync.model import SyncedModel, UTCDateTime, utcnow


class Case(SyncedModel, table=True):
    """A complaint or support case. Reps open cases; service owns status and resolution."""

    __tablename__ = "support_case"
    number: str | None = Field(default=None, max_length=32, unique=True)
    account_id: uuid.UUID = Field(foreign_key="account.id", index=True)
    contact_id: uuid.UUID | None = Field(default=None, foreign_key="contact.id")
    category: CaseCategory = Field(sa_type=enum_column(CaseCategory, "case_category"))
    priority: CasePriority = Field(
        default=CasePriority.NORMAL, sa_type=enum_column(CasePriority, "case_priority")
    )
    subject: str = Field(max_length=200)
    description: str | None = Field(default=None)
    status: CaseStatus = Field(
        default=CaseStatus.NEW, sa_type=enum_column(CaseStatus, "case_status"), index=True
    )
    resolution: str | None = Field(default=None)
    opened_by_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    opened_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
