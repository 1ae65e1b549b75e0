from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlmodel import Field

from schema.enums import TaskKind, VisitOutcome, enum_column
from sync.model import SyncedModel, UTCDateTime


class VisitNote(SyncedModel, table=True):
    """A rep's visit at an account. Append-only: only its author may edit it."""

    __tablename__ = "visit_note"
    account_id: uuid.UUID = Field(foreign_key="account.id", index=True)
    author_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    visited_at: datetime = Field(sa_type=UTCDateTime, index=True)
    check_in_lat: float | None = Field(default=None)
    check_in_lon: float | None = Field(default=None)
    outcome: VisitOutcome = Field(
        default=VisitOutcome.NO_ORDER, sa_type=enum_column(VisitOutcome, "outcome")
    )
    body: str = Field(default="")


class Task(SyncedModel, table=True):
    __tablename__ = "task"
    title: str = Field(max_length=200)
    description: str | None = Field(default=None)
    kind: TaskKind = Field(default=TaskKind.OTHER, sa_type=enum_column(TaskKind, "task_kind"))
    due_date: date = Field(index=True)
    assignee_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    account_id: uuid.UUID | None = Field(default=None, foreign_key="account.id", index=True)
    contact_id: uuid.UUID | None = Field(default=None, foreign_key="contact.id")
    lead_id: uuid.UUID | None = Field(default=None, foreign_key="lead.id")
    done: bool = Field(default=False)
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    dedupe_key: str | None = Field(default=None, max_length=200, unique=True)
