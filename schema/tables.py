"""Every table of the application, imported in one place for Alembic and the app."""

from schema.accounts.tables import Account, Contact
from schema.activities.tables import Task, VisitNote
from schema.analytics.tables import (
    AnalyticsRollup,
    BasketItemMonthly,
    BasketPairMonthly,
    SalesCategoryMonthly,
    SalesCategoryTotalMonthly,
    SalesFactMonthly,
    SalesOrderMonthly,
    SalesProductTotalMonthly,
)
from schema.audit import AuditEvent
from schema.billing.tables import Invoice
from schema.catalog.tables import PriceEntry, Product
from schema.identity.tables import LoginAttempt, RefreshToken, Territory, User
from schema.leads.tables import Lead, LeadStatusChange
from schema.orders.tables import Order, OrderLine
from schema.service.tables import Case
from sync.model import metadata
from sync.tables import Change, Client, Conflict, LogHead, MutationResult, ScopeKey

__all__ = [
    "Account", "AnalyticsRollup", "AuditEvent", "BasketItemMonthly", "BasketPairMonthly", "Case",
    "Change", "Client", "Conflict", "Contact", "Invoice", "Lead", "LeadStatusChange", "LogHead",
    "LoginAttempt", "MutationResult", "Order", "OrderLine", "PriceEntry", "Product",
    "RefreshToken", "SalesCategoryMonthly", "SalesCategoryTotalMonthly", "SalesFactMonthly",
    "SalesOrderMonthly", "SalesProductTotalMonthly", "ScopeKey", "Task", "Territory", "User",
    "VisitNote", "metadata",
]
