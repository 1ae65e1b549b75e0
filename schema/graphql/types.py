"""The CRM's GraphQL object types. Scalar fields come from the tables (see typegen);
relations are resolved through scoped DataLoaders."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlmodel import col
from strawberry.types import Info

from schema.accounts.tables import Account as AccountRow
from schema.accounts.tables import Contact as ContactRow
from schema.activities.tables import Task as TaskRow
from schema.activities.tables import VisitNote as VisitNoteRow
from schema.billing.tables import Invoice as InvoiceRow
from schema.catalog.tables import PriceEntry as PriceEntryRow
from schema.catalog.tables import Product as ProductRow
from schema.enums import CaseStatus, InvoiceStatus
from schema.graphql import enums as _enums
from schema.graphql.loaders import load_many, load_one
from schema.graphql.scalars import Cents
from schema.graphql.typegen import build, columns
from schema.identity.tables import Territory as TerritoryRow
from schema.identity.tables import User as UserRow
from schema.leads.tables import Lead as LeadRow
from schema.orders.tables import Order as OrderRow
from schema.orders.tables import OrderLine as OrderLineRow
from schema.service.tables import Case as CaseRow

if TYPE_CHECKING:
    from schema.analytics.gql_customers import RfmScoreType


@strawberry.interface(description="An object with a globally unique id (a UUID).")
class Node:
    id: strawberry.ID


@strawberry.type(description="A person who signs in; other users see only this summary.")
class UserSummary:
    id: strawberry.ID
    full_name: str
    email: str
    role: _enums.Role


def user_summary(row: Any) -> UserSummary | None:
    if row is None:
        return None
    return UserSummary(id=strawberry.ID(str(row["id"])), full_name=row["full_name"],
                       email=row["email"], role=row["role"])


def _ctx(info: Info) -> Any:
    return info.context


@strawberry.type
class _HasAccount:
    account_id: strawberry.ID

    @strawberry.field
    async def account(self, info: Info) -> Account | None:
        return _maybe(Account, await load_one(_ctx(info), AccountRow, self.account_id))


def _maybe(cls: Any, row: Any) -> Any:
    return None if row is None else build(cls, row)


@strawberry.type
class _TerritoryFields:
    pass


@columns(TerritoryRow)
class Territory(_TerritoryFields, Node):
    pass


@strawberry.type
class _AccountFields:
    id: strawberry.ID
    owner_id: strawberry.ID | None
    territory_id: strawberry.ID | None

    @strawberry.field
    async def owner(self, info: Info) -> UserSummary | None:
        return user_summary(await load_one(_ctx(info), UserRow, self.owner_id, scoped=False))

    @strawberry.field
    async def territory(self, info: Info) -> Territory | None:
        return _maybe(Territory, await load_one(_ctx(info), TerritoryRow, self.territory_id))

    @strawberry.field
    async def contacts(self, info: Info) -> list[Contact]:
        rows = await load_many(_ctx(info), ContactRow, "account_id", self.id,
                               order_by=col(ContactRow.last_name))
        return [build(Contact, r) for r in rows]

    @strawberry.field(description="Most recent first; at most `first` (capped at 50).")
    async def orders(self, info: Info, first: int = 10) -> list[Order]:
        rows = await load_many(_ctx(info), OrderRow, "account_id", self.id,
                               order_by=(col(OrderRow.order_date).desc(), col(OrderRow.id).desc()))
        return [build(Order, r) for r in rows[: max(0, min(first, 50))]]

    @strawberry.field
    async def invoices(self, info: Info, open_only: bool = False) -> list[Invoice]:
        rows = await load_many(_ctx(info), InvoiceRow, "account_id", self.id,
                               order_by=col(InvoiceRow.due_date))
        return [build(Invoice, r) for r in rows
                if not open_only or r["status"] is InvoiceStatus.OPEN]

    @strawberry.field(description="Sum of open invoice amounts (accounting's balance).")
    async def balance_cents(self, info: Info) -> Cents:
        rows = await load_many(_ctx(info), InvoiceRow, "account_id", self.id,
                               order_by=col(InvoiceRow.due_date))
        return sum(r["amount_open_cents"] for r in rows if r["status"] is InvoiceStatus.OPEN)

    @strawberry.field
    async def overdue_cents(self, info: Info) -> Cents:
        rows = await load_many(_ctx(info), InvoiceRow, "account_id", self.id,
                               order_by=col(InvoiceRow.due_date))
        today = date.today()
        return sum(r["amount_open_cents"] for r in rows
                   if r["status"] is InvoiceStatus.OPEN and r["due_date"] < today)

    @strawberry.field
    async def open_cases(self, info: Info) -> list[Case]:
        rows = await load_many(_ctx(info), CaseRow, "account_id", self.id,
                               order_by=col(CaseRow.opened_at).desc(),
                               where=col(CaseRow.status) != CaseStatus.CLOSED)
        return [build(Case, r) for r in rows]

    @strawberry.field
    async def visit_notes(self, info: Info, first: int = 10) -> list[VisitNote]:
        rows = await load_many(_ctx(info), VisitNoteRow, "account_id", self.id,
                               order_by=col(VisitNoteRow.visited_at).desc())
        return [build(VisitNote, r) for r in rows[: max(0, min(first, 50))]]

    @strawberry.field
    async def tasks(self, info: Info, open_only: bool = True) -> list[Task]:
        rows = await load_many(_ctx(info), TaskRow, "account_id", self.id,
                               order_by=col(TaskRow.due_date))
        return [build(Task, r) for r in rows if not open_only or not r["done"]]

    @strawberry.field(description="RFM scores and segment as of yesterday (company-wide "
                      "quintiles, docs/manager-queries.md#customer-segments-rfm); null "
                      "without a sale in the last two years. `segment` is the sales channel.")
    async def rfm_score(self, info: Info) -> Annotated[
            RfmScoreType, strawberry.lazy("schema.analytics.gql_customers")] | None:
        # Imported here: schema.analytics builds on these types.
        from schema.analytics.gql_customers import account_rfm_score

        return await account_rfm_score(info, self.id)


@columns(AccountRow, description="A customer: the central record of the CRM.")
class Account(_AccountFields, Node):
    pass


@strawberry.type
class _ContactFields(_HasAccount):
    pass


@columns(ContactRow)
class Contact(_ContactFields, Node):
    pass


@strawberry.type
class _LeadFields:
    owner_id: strawberry.ID | None
    converted_account_id: strawberry.ID | None

    @strawberry.field
    async def owner(self, info: Info) -> UserSummary | None:
        return user_summary(await load_one(_ctx(info), UserRow, self.owner_id, scoped=False))

    @strawberry.field
    async def converted_account(self, info: Info) -> Account | None:
        return _maybe(Account, await load_one(_ctx(info), AccountRow, self.converted_account_id))


@columns(LeadRow)
class Lead(_LeadFields, Node):
    pass


@strawberry.type
class _ProductFields:
    pass


@columns(ProductRow, private=("unit_cost_cents",))
class Product(_ProductFields, Node):
    pass


@strawberry.type
class _PriceEntryFields:
    product_id: strawberry.ID

    @strawberry.field
    async def product(self, info: Info) -> Product | None:
        return _maybe(Product, await load_one(_ctx(info), ProductRow, self.product_id))


@columns(PriceEntryRow)
class PriceEntry(_PriceEntryFields, Node):
    pass


@strawberry.type
class _OrderLineFields:
    product_id: strawberry.ID

    @strawberry.field
    async def product(self, info: Info) -> Product | None:
        # Lines may name a product that was since archived: visible through its order.
        return _maybe(Product, await load_one(_ctx(info), ProductRow, self.product_id,
                                              scoped=False))


@columns(OrderLineRow, exclude=("order_id",), private=("unit_cost_cents",))
class OrderLine(_OrderLineFields):
    pass


@strawberry.type
class _OrderFields(_HasAccount):
    id: strawberry.ID
    rep_id: strawberry.ID

    @strawberry.field
    async def lines(self, info: Info) -> list[OrderLine]:
        rows = await load_many(_ctx(info), OrderLineRow, "order_id", self.id, scoped=False,
                               order_by=col(OrderLineRow.line_no))
        return [build(OrderLine, r) for r in rows]

    @strawberry.field
    async def rep(self, info: Info) -> UserSummary | None:
        return user_summary(await load_one(_ctx(info), UserRow, self.rep_id, scoped=False))


@columns(OrderRow, private=("cost_cents",), description="A sales order with its lines.")
class Order(_OrderFields, Node):
    pass


@strawberry.type
class _InvoiceFields(_HasAccount):
    pass


@columns(InvoiceRow)
class Invoice(_InvoiceFields, Node):
    pass


@strawberry.type
class _VisitNoteFields(_HasAccount):
    author_id: strawberry.ID

    @strawberry.field
    async def author(self, info: Info) -> UserSummary | None:
        return user_summary(await load_one(_ctx(info), UserRow, self.author_id, scoped=False))


@columns(VisitNoteRow)
class VisitNote(_VisitNoteFields, Node):
    pass


@strawberry.type
class _CaseFields(_HasAccount):
    pass


@columns(CaseRow)
class Case(_CaseFields, Node):
    pass


@strawberry.type
class _TaskFields:
    account_id: strawberry.ID | None
    assignee_id: strawberry.ID

    @strawberry.field
    async def account(self, info: Info) -> Account | None:
        return _maybe(Account, await load_one(_ctx(info), AccountRow, self.account_id))

    @strawberry.field
    async def assignee(self, info: Info) -> UserSummary | None:
        return user_summary(await load_one(_ctx(info), UserRow, self.assignee_id, scoped=False))


@columns(TaskRow)
class Task(_TaskFields, Node):
    pass

#: Node types by table name, for node(id:) and the sync adapters.
NODE_TYPES: dict[str, tuple[Any, Any]] = {
    "account": (Account, AccountRow), "contact": (Contact, ContactRow), "lead": (Lead, LeadRow),
    "product": (Product, ProductRow), "price_entry": (PriceEntry, PriceEntryRow),
    "sales_order": (Order, OrderRow), "invoice": (Invoice, InvoiceRow),
    "visit_note": (VisitNote, VisitNoteRow), "support_case": (Case, CaseRow),
    "task": (Task, TaskRow), "territory": (Territory, TerritoryRow),
}

