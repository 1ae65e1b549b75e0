from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from schema.enums import OrderStatus, enum_column
from sync.model import SyncedModel, UTCDateTime, new_id


class Order(SyncedModel, table=True):
    """A sales order. Totals are computed by the server from its lines, never taken
    from a client."""

    __tablename__ = "sales_order"
    number: str | None = Field(default=None, max_length=32, unique=True)
    # Indexed by ix_sales_order_account_date, whose first column it is.
    account_id: uuid.UUID = Field(foreign_key="account.id")
    contact_id: uuid.UUID | None = Field(default=None, foreign_key="contact.id")
    rep_id: uuid.UUID = Field(foreign_key="user_account.id", index=True)
    order_date: date = Field(index=True)
    # Not indexed: six values, never looked up alone (migration 0008).
    status: OrderStatus = Field(
        default=OrderStatus.DRAFT, sa_type=enum_column(OrderStatus, "order_status")
    )
    status_reason_code: str | None = Field(default=None, max_length=64)
    status_reason: str | None = Field(default=None, max_length=500)
    subtotal_cents: int = Field(default=0, sa_type=sa.BigInteger)
    discount_cents: int = Field(default=0, sa_type=sa.BigInteger)
    total_cents: int = Field(default=0, sa_type=sa.BigInteger)
    cost_cents: int = Field(default=0, sa_type=sa.BigInteger)
    currency: str = Field(default="EUR", max_length=3)
    po_number: str | None = Field(default=None, max_length=64)
    notes: str | None = Field(default=None)
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    __table_args__ = (sa.Index("ix_sales_order_account_date", "account_id", "order_date"),)


class OrderLine(SQLModel, table=True):
    """A line of an order. Lines travel inside their order on the wire and are
    versioned with it, so they carry no sync columns of their own."""

    __tablename__ = "order_line"
    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    # Indexed by uq_order_line_no (order_id, line_no).
    order_id: uuid.UUID = Field(foreign_key="sales_order.id")
    line_no: int
    product_id: uuid.UUID = Field(foreign_key="product.id", index=True)
    quantity: int
    unit_price_cents: int = Field(sa_type=sa.BigInteger)
    discount_bp: int = Field(default=0)
    line_total_cents: int = Field(sa_type=sa.BigInteger)
    unit_cost_cents: int = Field(default=0, sa_type=sa.BigInteger)

    __table_args__ = (
        sa.CheckConstraint("quantity > 0", name="qty_positive"),
        sa.CheckConstraint("discount_bp BETWEEN 0 AND 10000", name="discount_range"),
        sa.UniqueConstraint("order_id", "line_no", name="uq_order_line_no"),
    )
