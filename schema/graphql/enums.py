"""The domain enums, exposed to GraphQL (names are the upper-case member names)."""

import strawberry

from schema import enums

Role = strawberry.enum(enums.Role)
AccountTier = strawberry.enum(enums.AccountTier)
AccountStatus = strawberry.enum(enums.AccountStatus)
LeadStatus = strawberry.enum(enums.LeadStatus)
LeadSource = strawberry.enum(enums.LeadSource)
OrderStatus = strawberry.enum(enums.OrderStatus)
VisitOutcome = strawberry.enum(enums.VisitOutcome)
CaseCategory = strawberry.enum(enums.CaseCategory)
CaseStatus = strawberry.enum(enums.CaseStatus)
CasePriority = strawberry.enum(enums.CasePriority)
InvoiceStatus = strawberry.enum(enums.InvoiceStatus)
TaskKind = strawberry.enum(enums.TaskKind)
