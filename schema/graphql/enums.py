"""The domain enums, exposed to GraphQL (names are the upper-case member names).

`strawberry.enum` registers each class in place and returns it, so these are the very
classes of `schema.enums`; importing this module is what makes them GraphQL enums.
"""

import strawberry

from schema.enums import (
    AccountStatus,
    AccountTier,
    CaseCategory,
    CasePriority,
    CaseStatus,
    InvoiceStatus,
    LeadSource,
    LeadStatus,
    OrderStatus,
    Role,
    TaskKind,
    VisitOutcome,
)

for _enum in (Role, AccountTier, AccountStatus, LeadStatus, LeadSource, OrderStatus,
              VisitOutcome, CaseCategory, CaseStatus, CasePriority, InvoiceStatus, TaskKind):
    strawberry.enum(_enum)

__all__ = [
    "AccountStatus", "AccountTier", "CaseCategory", "CasePriority", "CaseStatus",
    "InvoiceStatus", "LeadSource", "LeadStatus", "OrderStatus", "Role", "TaskKind",
    "VisitOutcome",
]
