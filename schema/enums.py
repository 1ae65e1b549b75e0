"""Enumerations shared by tables, GraphQL types and sync validation.

Values are stored as lower-case strings (a CHECK constraint guards them), exposed to
GraphQL as enums and to sync clients as the same lower-case strings.
"""

from __future__ import annotations

import enum
from typing import Any

import sqlalchemy as sa


class Role(enum.StrEnum):
    REP = "rep"
    MANAGER = "manager"
    ADMIN = "admin"


class AccountTier(enum.StrEnum):
    A = "a"
    B = "b"
    C = "c"
    D = "d"


class AccountStatus(enum.StrEnum):
    ACTIVE = "active"
    ON_HOLD = "on_hold"
    INACTIVE = "inactive"


class LeadStatus(enum.StrEnum):
    NEW = "new"
    CONTACTED = "contacted"
    QUALIFIED = "qualified"
    CONVERTED = "converted"
    DISQUALIFIED = "disqualified"


class LeadSource(enum.StrEnum):
    FIELD = "field"
    WEB = "web"
    CAMPAIGN = "campaign"
    REFERRAL = "referral"
    PHONE = "phone"
    EVENT = "event"
    OTHER = "other"


class OrderStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class VisitOutcome(enum.StrEnum):
    ORDER_TAKEN = "order_taken"
    NO_ORDER = "no_order"
    FOLLOW_UP = "follow_up"
    CLOSED = "closed"


class CaseCategory(enum.StrEnum):
    WRONG_INVOICE = "wrong_invoice"
    DAMAGED_GOODS = "damaged_goods"
    LATE_DELIVERY = "late_delivery"
    MISSING_ITEMS = "missing_items"
    PRICING = "pricing"
    PRODUCT_QUALITY = "product_quality"
    OTHER = "other"


class CaseStatus(enum.StrEnum):
    NEW = "new"
    WORKING = "working"
    ESCALATED = "escalated"
    CLOSED = "closed"


class CasePriority(enum.StrEnum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class InvoiceStatus(enum.StrEnum):
    OPEN = "open"
    PAID = "paid"
    CANCELLED = "cancelled"


class TaskKind(enum.StrEnum):
    CALL = "call"
    VISIT = "visit"
    FOLLOW_UP = "follow_up"
    ANNIVERSARY = "anniversary"
    BIRTHDAY = "birthday"
    OTHER = "other"


def enum_column(enum_cls: type[enum.StrEnum], name: str) -> Any:
    """A VARCHAR with a CHECK constraint holding the enum's values (portable, no PG types)."""
    return sa.Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(m.value) for m in enum_cls),
        values_callable=lambda cls: [m.value for m in cls],
        validate_strings=True,
    )
