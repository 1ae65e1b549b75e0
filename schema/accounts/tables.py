from __future__ import annotations

import uuid
from datetime import date

import sqlalchemy as sa
from sqlmodel import Field

from schema.enums import AccountStatus, AccountTier, enum_column
from sync.model import SyncedModel


class Account(SyncedModel, table=True):
    """A customer. Its id is also the scope key of everything under it."""

    __tablename__ = "account"
    name: str = Field(max_length=200, index=True)
    segment: str | None = Field(default=None, max_length=64, description="channel: retail, horeca…")
    tier: AccountTier = Field(default=AccountTier.C, sa_type=enum_column(AccountTier, "tier"))
    status: AccountStatus = Field(
        default=AccountStatus.ACTIVE, sa_type=enum_column(AccountStatus, "account_status")
    )
    street: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100, index=True)
    postal_code: str | None = Field(default=None, max_length=20)
    region: str | None = Field(default=None, max_length=100)
    country: str | None = Field(default=None, max_length=2)
    lat: float | None = Field(default=None)
    lon: float | None = Field(default=None)
    phone: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=320)
    territory_id: uuid.UUID | None = Field(default=None, foreign_key="territory.id", index=True)
    owner_id: uuid.UUID | None = Field(default=None, foreign_key="user_account.id", index=True)
    credit_limit_cents: int = Field(default=0, sa_type=sa.BigInteger,
                                    sa_column_kwargs={"info": {"least": 0}})
    payment_terms_days: int = Field(default=30, sa_column_kwargs={"info": {"least": 0}})
    currency: str = Field(default="EUR", max_length=3)
    customer_since: date | None = Field(default=None)
    notes: str | None = Field(default=None)

    __table_args__ = (
        sa.CheckConstraint("credit_limit_cents >= 0", name="credit_limit_nonneg"),
        sa.CheckConstraint("payment_terms_days >= 0", name="terms_nonneg"),
    )


class Contact(SyncedModel, table=True):
    __tablename__ = "contact"
    account_id: uuid.UUID = Field(foreign_key="account.id", index=True)
    first_name: str = Field(max_length=100)
    last_name: str = Field(max_length=100)
    title: str | None = Field(default=None, max_length=100)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    birthday: date | None = Field(default=None)
    is_primary: bool = Field(default=False)
    notes: str | None = Field(default=None)
