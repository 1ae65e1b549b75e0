from __future__ import annotations

import uuid
from datetime import date

import sqlalchemy as sa
from sqlmodel import Field

from schema.enums import InvoiceStatus, enum_column
from sync.model import SyncedModel


class Invoice(SyncedModel, table=True):
    """An accounts-receivable document from accounting. Read-only for reps; an account's
    balance is the sum of `amount_open_cents` over its open invoices."""

    __tablename__ = "invoice"
    number: str = Field(max_length=32, unique=True)
    account_id: uuid.UUID = Field(foreign_key="account.id", index=True)
    order_id: uuid.UUID | None = Field(default=None, foreign_key="sales_order.id", index=True)
    issue_date: date
    due_date: date = Field(index=True)
    amount_cents: int = Field(sa_type=sa.BigInteger)
    amount_open_cents: int = Field(sa_type=sa.BigInteger)
    status: InvoiceStatus = Field(
        default=InvoiceStatus.OPEN, sa_type=enum_column(InvoiceStatus, "invoice_status"), index=True
    )

    __table_args__ = (
        sa.CheckConstraint("amount_open_cents >= 0", name="open_nonneg"),
        sa.CheckConstraint("amount_open_cents <= amount_cents", name="open_le_amount"),
    )
