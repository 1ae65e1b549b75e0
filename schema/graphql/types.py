"""The CRM's GraphQL object types. Scalar fields come from the tables (see typegen);
relations are resolved through scoped DataLoaders."""

from __future__ import annotations

from datetime import date
from typing import Any

import strawberry
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
from schema.graphql.typegen import build, column_type
from schema.identity.tables import Territory as TerritoryRow
from schema.identity.tables import User as UserRow
from schema.leads.tables import Lead as LeadRow
from schema.orders.tables import Order as OrderRow
from schema.orders.tables import OrderLine as OrderLineRow
from schema.service.tables import Case as CaseRow


@strawberry.interface(description="An object with a globally unique id (a UUID).")
class Node:
    id: strawberry.ID


@strawberry.type(description="A person who signs in; other users see only this summary.")
class UserSummary:
    id: strawberry.ID
    full_name: str
    email: str
    role: _enums.Role  # type: ignore[valid-type]


def user_summary(row: Any) -> UserSummary | None:
    if row is None:
        return None
    return UserSummary(id=str(row["id"]), full_name=row["full_name"], email=row["email"],
                       role=row["role"])


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


Territory = column_type("Territory", TerritoryRow.__table__, (_TerritoryFields, Node))


@strawberry.type
class _AccountFields:
    id: strawberry.ID
    owner_id: strawberry.ID | None
    territory_id: strawberry.ID | None

    @strawberry.field
    async def owner(self, info: Info) -> UserSummary | None:
        return user_summary(await load_one(_ctx(info), UserRow, self.owner_id, scoped=False))

    @strawberry.field
    async def territory(self, info: Info) -> Territory | None:  # type: ignore[valid-type]
        return _maybe(Territory, await load_one(_ctx(info), TerritoryRow, self.territory_id))

    @strawberry.field
    async def contacts(self, info: Info) -> list[Contact]:
        rows = await load_many(_ctx(info), ContactRow, "account_id", self.id,
                               order_by=ContactRow.last_name)
        return [build(Contact, r) for r in rows]

    @strawberry.field(description="Most recent first; at most `first` (capped at 50).")
    async def orders(self, info: Info, first: int = 10) -> list[Order]:
        rows = await load_many(_ctx(info), OrderRow, "account_id", self.id,
                               order_by=(OrderRow.order_date.desc(), OrderRow.id.desc()))
        return [build(Order, r) for r in rows[: max(0, min(first, 50))]]

    @strawberry.field
    async def invoices(self, info: Info, open_only: bool = False) -> list[Invoice]:
        rows = await load_many(_ctx(info), InvoiceRow, "account_id", self.id,
                               order_by=InvoiceRow.due_date)
        return [build(Invoice, r) for r in rows
                if not open_only or r["status"] is InvoiceStatus.OPEN]

    @strawberry.field(description="Sum of open invoice amounts (accounting's balance).")
    async def balance_cents(self, info: Info) -> Cents:  # type: ignore[valid-type]
        rows = await load_many(_ctx(info), InvoiceRow, "account_id", self.id,
                               order_by=InvoiceRow.due_date)
        return sum(r["amount_open_cents"] for r in rows if r["status"] is InvoiceStatus.OPEN)

    @strawberry.field
    async def overdue_cents(self, info: Info) -> Cents:  # type: ignore[valid-type]
        rows = await load_many(_ctx(info), InvoiceRow, "account_id", self.id,
                               order_by=InvoiceRow.due_date)
        today = date.today()
        return sum(r["amount_open_cents"] for r in rows
                   if r["status"] is InvoiceStatus.OPEN and r["due_date"] < today)

    @strawberry.field
    async def open_cases(self, info: Info) -> list[Case]:
        rows = await load_many(_ctx(info), CaseRow, "account_id", self.id,
                               order_by=CaseRow.opened_at.desc(),
                               where=CaseRow.status != CaseStatus.CLOSED)
        return [build(Case, r) for r in rows]

    @strawberry.field
    async def visit_notes(self, info: Info, first: int = 10) -> list[VisitNote]:
        rows = await load_many(_ctx(info), VisitNoteRow, "account_id", self.id,
                               order_by=VisitNoteRow.visited_at.desc())
        return [build(VisitNote, r) for r in rows[: max(0, min(first, 50))]]

    @strawberry.field
    async def tasks(self, info: Info, open_only: bool = True) -> list[Task]:
        rows = await load_many(_ctx(info), TaskRow, "account_id", self.id,
                               order_by=TaskRow.due_date)
        return [build(Task, r) for r in rows if not open_only or not r["done"]]


Account = column_type("Account", AccountRow.__table__, (_AccountFields, Node),
                      description="A customer: the central record of the CRM.")


@strawberry.type
class _ContactFields(_HasAccount):
    pass


Contact = column_type("Contact", ContactRow.__table__, (_ContactFields, Node))


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


Lead = column_type("Lead", LeadRow.__table__, (_LeadFields, Node))


@strawberry.type
class _ProductFields:
    pass


Product = column_type("Product", ProductRow.__table__, (_ProductFields, Node),
                      private=("unit_cost_cents",))


@strawberry.type
class _PriceEntryFields:
    product_id: strawberry.ID

    @strawberry.field
    async def product(self, info: Info) -> Product | None:  # type: ignore[valid-type]
        return _maybe(Product, await load_one(_ctx(info), ProductRow, self.product_id))


PriceEntry = column_type("PriceEntry", PriceEntryRow.__table__, (_PriceEntryFields, Node))


@strawberry.type
class _OrderLineFields:
    product_id: strawberry.ID

    @strawberry.field
    async def product(self, info: Info) -> Product | None:  # type: ignore[valid-type]
        # Lines may name a product that was since archived: visible through its order.
        return _maybe(Product, await load_one(_ctx(info), ProductRow, self.product_id,
                                              scoped=False))


OrderLine = column_type("OrderLine", OrderLineRow.__table__, (_OrderLineFields,),
                        exclude=("order_id",), private=("unit_cost_cents",))


@strawberry.type
class _OrderFields(_HasAccount):
    id: strawberry.ID
    rep_id: strawberry.ID

    @strawberry.field
    async def lines(self, info: Info) -> list[OrderLine]:  # type: ignore[valid-type]
        rows = await load_many(_ctx(info), OrderLineRow, "order_id", self.id, scoped=False,
                               order_by=OrderLineRow.line_no)
        return [build(OrderLine, r) for r in rows]

    @strawberry.field
    async def rep(self, info: Info) -> UserSummary | None:
        return user_summary(await load_one(_ctx(info), UserRow, self.rep_id, scoped=False))


Order = column_type("Order", OrderRow.__table__, (_OrderFields, Node),
                    private=("cost_cents",), description="A sales order with its lines.")


@strawberry.type
class _InvoiceFields(_HasAccount):
    pass


Invoice = column_type("Invoice", InvoiceRow.__table__, (_InvoiceFields, Node))


@strawberry.type
class _VisitNoteFields(_HasAccount):
    author_id: strawberry.ID

    @strawberry.field
    async def author(self, info: Info) -> UserSummary | None:
        return user_summary(await load_one(_ctx(info), UserRow, self.author_id, scoped=False))


VisitNote = column_type("VisitNote", VisitNoteRow.__table__, (_VisitNoteFields, Node))


@strawberry.type
class _CaseFields(_HasAccount):
    pass


Case = column_type("Case", CaseRow.__table__, (_CaseFields, Node))


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


Task = column_type("Task", TaskRow.__table__, (_TaskFields, Node))

#: Node types by table name, for node(id:) and the sync adapters.
NODE_TYPES: dict[str, tuple[Any, Any]] = {
    "account": (Account, AccountRow), "contact": (Contact, ContactRow), "lead": (Lead, LeadRow),
    "product": (Product, ProductRow), "price_entry": (PriceEntry, PriceEntryRow),
    "sales_order": (Order, OrderRow), "invoice": (Invoice, InvoiceRow),
    "visit_note": (VisitNote, VisitNoteRow), "support_case": (Case, CaseRow),
    "task": (Task, TaskRow), "territory": (Territory, TerritoryRow),
}

