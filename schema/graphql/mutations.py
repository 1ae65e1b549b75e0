"""Write side: create/update/delete per entity, through the same engine as sync push.

Every mutation returns a typed payload: `status` (APPLIED, MERGED, CONFLICT, REJECTED),
the resulting object when you may see it, a `conflictId` when a rule decided a
disagreement, and `errors` with a code, a message and the offending field.
"""


import uuid
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
import strawberry
from strawberry.types import Info

from schema.graphql import types as T
from schema.graphql.inputs import input_type, to_wire
from schema.graphql.typegen import build
from schema.leads.convert import ConversionRefused, convert_lead
from schema.registry import registry
from schema.scope import readable
from sync.model import new_id, table_of
from sync.protocol import MutationIn, MutationOp, MutationOut

N = TypeVar("N")


@strawberry.type(description="Why a write was refused or altered.")
class UserError:
    code: str
    message: str
    field: str | None = None


@strawberry.type
class MutationPayload(Generic[N]):
    status: str
    node: N | None
    conflict_id: strawberry.ID | None
    errors: list[UserError]


@strawberry.type
class DeletePayload:
    status: str
    id: strawberry.ID
    conflict_id: strawberry.ID | None
    errors: list[UserError]


async def execute(info: Info, entity: str, op: MutationOp, id: str, base_version: int | None,
                  fields: dict[str, Any] | None) -> MutationOut:
    ctx = info.context
    async with ctx.db.write() as session:
        out: MutationOut = (await ctx.push.apply(
            session, ctx.viewer, [MutationIn(0, entity, op, id, base_version, fields)]))[0]
    if ctx.notify is not None:
        ctx.notify()
    return out


def _conflict_id(out: MutationOut) -> strawberry.ID | None:
    return None if out.conflict_id is None else strawberry.ID(out.conflict_id)


def _errors(out: MutationOut) -> list[UserError]:
    errs = [out.error] if out.error else []
    errs += out.warnings
    return [UserError(code=e.code, message=e.message, field=e.field) for e in errs]


async def _payload(info: Info, cls: Any, model: Any, out: MutationOut) -> MutationPayload[Any]:
    node = None
    if out.version is not None and out.data is not None:
        async with info.context.db.read() as s:
            stmt = readable(sa.select(model.__table__).where(model.id == uuid.UUID(out.id)), model,
                            info.context.me)
            row = (await s.execute(stmt)).mappings().first()
        node = None if row is None else build(cls, row)
    return MutationPayload(status=out.status, node=node, conflict_id=_conflict_id(out),
                           errors=_errors(out))


def _crud(entity: str, type_name: str, cls: Any, model: Any) -> dict[str, Any]:
    spec = registry[entity]
    Input = input_type(spec, f"{type_name}Input")
    Payload = MutationPayload[cls]

    async def create(info: Info, input: Input, id: strawberry.ID | None = None) -> Payload:  # type: ignore[valid-type]
        out = await execute(info, entity, "CREATE", str(id or new_id()), None, to_wire(input))
        return await _payload(info, cls, model, out)

    async def update(info: Info, id: strawberry.ID, input: Input,  # type: ignore[valid-type]
                     base_version: int | None = None) -> Payload:
        out = await execute(info, entity, "UPDATE", str(id), base_version, to_wire(input))
        return await _payload(info, cls, model, out)

    async def delete(info: Info, id: strawberry.ID, base_version: int | None = None) -> DeletePayload:
        out = await execute(info, entity, "DELETE", str(id), base_version, None)
        return DeletePayload(status=out.status, id=id, conflict_id=_conflict_id(out),
                             errors=_errors(out))

    return {
        f"create_{_snake(type_name)}": strawberry.mutation(
            resolver=create, description=f"Create a {type_name}; pass `id` to choose its UUID."),
        f"update_{_snake(type_name)}": strawberry.mutation(
            resolver=update, description=f"Change a {type_name}. Send `baseVersion` (the "
            "version you edited) so concurrent edits merge instead of overwriting."),
        f"delete_{_snake(type_name)}": strawberry.mutation(resolver=delete),
    }


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


ENTITIES = [
    ("account", "Account", T.Account, T.AccountRow),
    ("contact", "Contact", T.Contact, T.ContactRow),
    ("lead", "Lead", T.Lead, T.LeadRow),
    ("order", "Order", T.Order, T.OrderRow),
    ("visitNote", "VisitNote", T.VisitNote, T.VisitNoteRow),
    ("case", "Case", T.Case, T.CaseRow),
    ("task", "Task", T.Task, T.TaskRow),
    ("product", "Product", T.Product, T.ProductRow),
    ("priceEntry", "PriceEntry", T.PriceEntry, T.PriceEntryRow),
    ("invoice", "Invoice", T.Invoice, T.InvoiceRow),
    ("territory", "Territory", T.Territory, T.TerritoryRow),
]

_namespace: dict[str, Any] = {}
for _entity, _name, _cls, _model in ENTITIES:
    _namespace.update(_crud(_entity, _name, _cls, _model))

EntityMutation = strawberry.type(type("EntityMutation", (), _namespace))


@strawberry.type
class ConvertLeadPayload:
    lead: T.Lead | None
    account: T.Account | None
    contact: T.Contact | None
    errors: list[UserError]


@strawberry.type
class LeadMutation:
    @strawberry.mutation(description="Convert a lead: creates its account and contact and "
                         "marks it CONVERTED (the only way to get there).")
    async def convert_lead(self, info: Info, id: strawberry.ID,
                           account_name: str | None = None) -> ConvertLeadPayload:
        ctx = info.context
        try:
            lead_id = uuid.UUID(str(id))
        except ValueError:
            lead_id = uuid.UUID(int=0)
        try:
            async with ctx.db.write() as session:
                result = await convert_lead(session, ctx.push, ctx.viewer, lead_id, account_name)
                if result.error is not None:
                    raise ConversionRefused(result.error)
        except ConversionRefused as refused:
            e = refused.error
            return ConvertLeadPayload(lead=None, account=None, contact=None,
                                      errors=[UserError(code=e.code, message=e.message,
                                                        field=e.field)])
        if ctx.notify is not None:
            ctx.notify()
        async with ctx.db.read() as s:
            def row(model: Any, rid: uuid.UUID | None) -> Any:
                return readable(sa.select(table_of(model)).where(table_of(model).c.id == rid),
                                model, ctx.me)
            lead = (await s.execute(row(T.LeadRow, result.lead_id))).mappings().first()
            account = (await s.execute(row(T.AccountRow, result.account_id))).mappings().first()
            contact = (await s.execute(row(T.ContactRow, result.contact_id))).mappings().first()
        return ConvertLeadPayload(
            lead=build(T.Lead, lead) if lead else None,
            account=build(T.Account, account) if account else None,
            contact=build(T.Contact, contact) if contact else None, errors=[])
