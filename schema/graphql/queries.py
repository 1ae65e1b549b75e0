"""Read side: `me`, `node(id:)`, and a scoped connection per entity."""

from __future__ import annotations

import uuid
from datetime import date
from enum import Enum
from typing import Any

import sqlalchemy as sa
import strawberry
from sqlmodel import col
from strawberry.types import Info

from schema import enums as E
from schema.accounts.tables import Account as AccountRow
from schema.accounts.tables import Contact as ContactRow
from schema.activities.tables import Task as TaskRow
from schema.activities.tables import VisitNote as VisitNoteRow
from schema.billing.tables import Invoice as InvoiceRow
from schema.catalog.tables import PriceEntry as PriceEntryRow
from schema.catalog.tables import Product as ProductRow
from schema.graphql import types as T
from schema.graphql.loaders import load_one
from schema.graphql.pagination import Connection, SortDirection, paginate
from schema.graphql.typegen import build
from schema.identity.tables import Territory as TerritoryRow
from schema.identity.tables import User as UserRow
from schema.leads.tables import Lead as LeadRow
from schema.orders.tables import Order as OrderRow
from schema.scope import readable
from schema.service.tables import Case as CaseRow
from sync.model import table_of


def _id(value: strawberry.ID | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return uuid.UUID(int=0)  # matches nothing: a malformed id finds no rows, no error


@strawberry.type
class Me:
    id: strawberry.ID
    email: str
    full_name: str
    role: E.Role
    manager_id: strawberry.ID | None
    territory_id: strawberry.ID | None


@strawberry.enum
class AccountSort(Enum):
    NAME = "name"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"


@strawberry.input
class AccountFilter:
    territory_id: strawberry.ID | None = None
    owner_id: strawberry.ID | None = None
    name_contains: str | None = None
    tier: E.AccountTier | None = None
    segment: str | None = None
    city: str | None = None


@strawberry.enum
class OrderSort(Enum):
    ORDER_DATE = "order_date"
    TOTAL = "total_cents"
    UPDATED_AT = "updated_at"


@strawberry.input
class OrderFilter:
    account_id: strawberry.ID | None = None
    rep_id: strawberry.ID | None = None
    status: list[E.OrderStatus] | None = None
    date_from: date | None = None
    date_to: date | None = None


@strawberry.input
class LeadFilter:
    status: list[E.LeadStatus] | None = None
    source: E.LeadSource | None = None
    owner_id: strawberry.ID | None = None
    company_contains: str | None = None


@strawberry.input
class ProductFilter:
    category: str | None = None
    active: bool | None = None
    search: str | None = None


@strawberry.input
class ActivityFilter:
    account_id: strawberry.ID | None = None
    done: bool | None = None
    open_only: bool | None = None


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def _scoped(info: Info, model: Any) -> sa.Select[Any]:
    return readable(sa.select(model.__table__), model, info.context.me)


@strawberry.type
class Query:
    @strawberry.field(description="The signed-in user.")
    async def me(self, info: Info) -> Me:
        me = info.context.me
        row = await info.context.session.get(UserRow, me.user_id)
        return Me(id=strawberry.ID(str(row.id)), email=row.email, full_name=row.full_name,
                  role=row.role,
                  manager_id=strawberry.ID(str(row.manager_id)) if row.manager_id else None,
                  territory_id=strawberry.ID(str(row.territory_id)) if row.territory_id else None)

    @strawberry.field(description="Any object by its id, if it is in your scope.")
    async def node(self, info: Info, id: strawberry.ID) -> T.Node | None:
        key = _id(id)
        ctx = info.context
        # One statement finds which tables hold the id; the load is then scoped. Ids are
        # unique per table only: a record someone else created with the same id in
        # another table must not hide the one this caller may read.
        probe = sa.union_all(*[
            sa.select(sa.literal(name).label("t")).select_from(model).where(model.id == key)
            for name, (_cls, model) in T.NODE_TYPES.items()
        ])
        for table in (await ctx.session.execute(probe)).scalars():
            cls, model = T.NODE_TYPES[table]
            row = await load_one(ctx, model, key)
            if row is not None:
                return build(cls, row)
        return None

    @strawberry.field
    async def account(self, info: Info, id: strawberry.ID) -> T.Account | None:
        row = await load_one(info.context, AccountRow, _id(id))
        return None if row is None else build(T.Account, row)

    @strawberry.field
    async def accounts(self, info: Info, filter: AccountFilter | None = None,
                       sort: AccountSort = AccountSort.NAME,
                       direction: SortDirection = SortDirection.ASC,
                       first: int | None = 50, after: str | None = None) -> Connection[T.Account]:
        stmt = _scoped(info, AccountRow)
        f = filter or AccountFilter()
        if f.territory_id:
            stmt = stmt.where(col(AccountRow.territory_id) == _id(f.territory_id))
        if f.owner_id:
            stmt = stmt.where(col(AccountRow.owner_id) == _id(f.owner_id))
        if f.name_contains:
            stmt = stmt.where(sa.func.lower(col(AccountRow.name))
                              .like(_like(f.name_contains), escape="\\"))
        if f.tier:
            stmt = stmt.where(col(AccountRow.tier) == f.tier)
        if f.segment:
            stmt = stmt.where(col(AccountRow.segment) == f.segment)
        if f.city:
            stmt = stmt.where(col(AccountRow.city) == f.city)
        t = table_of(AccountRow)
        return await paginate(info.context, stmt, t.c[sort.value], t.c.id, direction,
                              first, after, lambda r: build(T.Account, r))

    @strawberry.field
    async def contacts(self, info: Info, account_id: strawberry.ID | None = None,
                       name_contains: str | None = None, first: int | None = 50,
                       after: str | None = None) -> Connection[T.Contact]:
        stmt = _scoped(info, ContactRow)
        if account_id:
            stmt = stmt.where(col(ContactRow.account_id) == _id(account_id))
        if name_contains:
            full = sa.func.lower(col(ContactRow.first_name) + " " + col(ContactRow.last_name))
            stmt = stmt.where(full.like(_like(name_contains), escape="\\"))
        t = table_of(ContactRow)
        return await paginate(info.context, stmt, t.c.last_name, t.c.id, SortDirection.ASC,
                              first, after, lambda r: build(T.Contact, r))

    @strawberry.field
    async def leads(self, info: Info, filter: LeadFilter | None = None, first: int | None = 50,
                    after: str | None = None) -> Connection[T.Lead]:
        stmt = _scoped(info, LeadRow)
        f = filter or LeadFilter()
        if f.status:
            stmt = stmt.where(col(LeadRow.status).in_(f.status))
        if f.source:
            stmt = stmt.where(col(LeadRow.source) == f.source)
        if f.owner_id:
            stmt = stmt.where(col(LeadRow.owner_id) == _id(f.owner_id))
        if f.company_contains:
            stmt = stmt.where(sa.func.lower(col(LeadRow.company))
                              .like(_like(f.company_contains), escape="\\"))
        t = table_of(LeadRow)
        return await paginate(info.context, stmt, t.c.updated_at, t.c.id, SortDirection.DESC,
                              first, after, lambda r: build(T.Lead, r))

    @strawberry.field
    async def products(self, info: Info, filter: ProductFilter | None = None,
                       first: int | None = 50, after: str | None = None) -> Connection[T.Product]:
        stmt = _scoped(info, ProductRow)
        f = filter or ProductFilter()
        if f.category:
            stmt = stmt.where(col(ProductRow.category) == f.category)
        if f.active is not None:
            stmt = stmt.where(col(ProductRow.active).is_(f.active))
        if f.search:
            pattern = _like(f.search)
            stmt = stmt.where(sa.or_(
                sa.func.lower(col(ProductRow.name)).like(pattern, escape="\\"),
                sa.func.lower(col(ProductRow.sku)).like(pattern, escape="\\")))
        t = table_of(ProductRow)
        return await paginate(info.context, stmt, t.c.sku, t.c.id, SortDirection.ASC, first,
                              after, lambda r: build(T.Product, r))

    @strawberry.field
    async def price_entries(self, info: Info, product_id: strawberry.ID | None = None,
                            account_id: strawberry.ID | None = None, first: int | None = 50,
                            after: str | None = None) -> Connection[T.PriceEntry]:
        stmt = _scoped(info, PriceEntryRow)
        if product_id:
            stmt = stmt.where(col(PriceEntryRow.product_id) == _id(product_id))
        if account_id:
            stmt = stmt.where(col(PriceEntryRow.account_id) == _id(account_id))
        t = table_of(PriceEntryRow)
        return await paginate(info.context, stmt, t.c.valid_from, t.c.id, SortDirection.DESC,
                              first, after, lambda r: build(T.PriceEntry, r))

    @strawberry.field
    async def orders(self, info: Info, filter: OrderFilter | None = None,
                     sort: OrderSort = OrderSort.ORDER_DATE,
                     direction: SortDirection = SortDirection.DESC,
                     first: int | None = 50, after: str | None = None) -> Connection[T.Order]:
        stmt = _scoped(info, OrderRow)
        f = filter or OrderFilter()
        if f.account_id:
            stmt = stmt.where(col(OrderRow.account_id) == _id(f.account_id))
        if f.rep_id:
            stmt = stmt.where(col(OrderRow.rep_id) == _id(f.rep_id))
        if f.status:
            stmt = stmt.where(col(OrderRow.status).in_(f.status))
        if f.date_from:
            stmt = stmt.where(col(OrderRow.order_date) >= f.date_from)
        if f.date_to:
            stmt = stmt.where(col(OrderRow.order_date) <= f.date_to)
        t = table_of(OrderRow)
        return await paginate(info.context, stmt, t.c[sort.value], t.c.id, direction, first,
                              after, lambda r: build(T.Order, r))

    @strawberry.field
    async def invoices(self, info: Info, account_id: strawberry.ID | None = None,
                       status: E.InvoiceStatus | None = None, first: int | None = 50,
                       after: str | None = None) -> Connection[T.Invoice]:
        stmt = _scoped(info, InvoiceRow)
        if account_id:
            stmt = stmt.where(col(InvoiceRow.account_id) == _id(account_id))
        if status:
            stmt = stmt.where(col(InvoiceRow.status) == status)
        t = table_of(InvoiceRow)
        return await paginate(info.context, stmt, t.c.due_date, t.c.id, SortDirection.ASC,
                              first, after, lambda r: build(T.Invoice, r))

    @strawberry.field
    async def visit_notes(self, info: Info, filter: ActivityFilter | None = None,
                          first: int | None = 50, after: str | None = None) -> Connection[T.VisitNote]:
        stmt = _scoped(info, VisitNoteRow)
        if filter and filter.account_id:
            stmt = stmt.where(col(VisitNoteRow.account_id) == _id(filter.account_id))
        t = table_of(VisitNoteRow)
        return await paginate(info.context, stmt, t.c.visited_at, t.c.id, SortDirection.DESC,
                              first, after, lambda r: build(T.VisitNote, r))

    @strawberry.field
    async def cases(self, info: Info, filter: ActivityFilter | None = None,
                    first: int | None = 50, after: str | None = None) -> Connection[T.Case]:
        stmt = _scoped(info, CaseRow)
        if filter and filter.account_id:
            stmt = stmt.where(col(CaseRow.account_id) == _id(filter.account_id))
        if filter and filter.open_only:
            stmt = stmt.where(col(CaseRow.status) != E.CaseStatus.CLOSED)
        t = table_of(CaseRow)
        return await paginate(info.context, stmt, t.c.opened_at, t.c.id, SortDirection.DESC,
                              first, after, lambda r: build(T.Case, r))

    @strawberry.field
    async def tasks(self, info: Info, filter: ActivityFilter | None = None,
                    first: int | None = 50, after: str | None = None) -> Connection[T.Task]:
        stmt = _scoped(info, TaskRow)
        if filter and filter.account_id:
            stmt = stmt.where(col(TaskRow.account_id) == _id(filter.account_id))
        if filter and filter.done is not None:
            stmt = stmt.where(col(TaskRow.done).is_(filter.done))
        t = table_of(TaskRow)
        return await paginate(info.context, stmt, t.c.due_date, t.c.id, SortDirection.ASC,
                              first, after, lambda r: build(T.Task, r))

    @strawberry.field
    async def territories(self, info: Info, first: int | None = 50,
                          after: str | None = None) -> Connection[T.Territory]:
        t = table_of(TerritoryRow)
        return await paginate(info.context, _scoped(info, TerritoryRow), t.c.code, t.c.id,
                              SortDirection.ASC, first, after, lambda r: build(T.Territory, r))
