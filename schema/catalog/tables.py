from __future__ import annotations

import uuid
from datetime import date

import sqlalchemy as sa
from sqlmodel import Field

from sync.model import SyncedModel


class Product(SyncedModel, table=True):
    __tablename__ = "product"
    sku: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    category: str = Field(max_length=100, index=True)
    description: str | None = Field(default=None)
    unit_price_cents: int = Field(sa_type=sa.BigInteger, sa_column_kwargs={"info": {"least": 0}})
    unit_cost_cents: int = Field(sa_type=sa.BigInteger, sa_column_kwargs={"info": {"least": 0}})
    active: bool = Field(default=True)

    __table_args__ = (
        sa.CheckConstraint("unit_price_cents >= 0", name="price_nonneg"),
        sa.CheckConstraint("unit_cost_cents >= 0", name="cost_nonneg"),
    )


class PriceEntry(SyncedModel, table=True):
    """A price or discount for a product, for one account or (account NULL) for everyone,
    valid on [valid_from, valid_to). The most specific entry valid on the order date wins."""

    __tablename__ = "price_entry"
    product_id: uuid.UUID = Field(foreign_key="product.id", index=True)
    account_id: uuid.UUID | None = Field(default=None, foreign_key="account.id", index=True)
    unit_price_cents: int | None = Field(default=None, sa_type=sa.BigInteger)
    discount_bp: int | None = Field(default=None, description="basis points off the list price")
    valid_from: date
    valid_to: date | None = Field(default=None)

    __table_args__ = (
        sa.CheckConstraint(
            "(unit_price_cents IS NULL) <> (discount_bp IS NULL)", name="price_or_discount"
        ),
    )
