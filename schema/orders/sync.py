"""Orders on the sync path: created offline with the device's id, validated and priced
by the server, kept as `rejected` with the reason when a business rule fails."""

from __future__ import annotations

import contextlib
import functools
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from schema.accounts.tables import Account
from schema.billing.tables import Invoice
from schema.catalog.tables import PriceEntry, Product
from schema.enums import AccountStatus, InvoiceStatus, OrderStatus
from schema.hooks import Hooks
from schema.identity.tables import User
from schema.orders.pricing import PriceFacts, ProductFacts, credit_available, line_total, unit_price
from schema.orders.tables import Order, OrderLine
from sync.codec import TableCodec, parse_uuid
from sync.model import among, dialect_name, table_of, utcnow
from sync.policies import WholeDocument
from sync.registry import ChildSpec, EntitySpec, Registry, Rejection, Viewer

#: Statuses whose totals count against the credit line until invoiced.
EXPOSED = (OrderStatus.SUBMITTED, OrderStatus.CONFIRMED, OrderStatus.FULFILLED)
#: Statuses after which a rep can no longer change the order.
LOCKED = (OrderStatus.CONFIRMED, OrderStatus.FULFILLED, OrderStatus.CANCELLED)
REP_STATUSES = (OrderStatus.DRAFT, OrderStatus.SUBMITTED, OrderStatus.CANCELLED)
#: The largest amount a BIGINT column holds.
MAX_CENTS = (1 << 63) - 1
#: How far back a rep may date an order: an order taken offline that long ago still
#: syncs, while older dates (which would price it on an expired price list) need the
#: back office. A day ahead allows for time zones.
ORDER_DATE_BACK = timedelta(days=31)
ORDER_DATE_AHEAD = timedelta(days=1)

LINE_CODEC = TableCodec(table_of(OrderLine), exclude=frozenset({"order_id", "unit_cost_cents"}))
LINE_INPUT = frozenset({"id", "product_id", "quantity", "discount_bp"})
#: What a client may set on a line, by wire name; anything else it sends is ignored.
LINE_INPUT_WIRE = frozenset(LINE_CODEC.by_column[c].wire for c in LINE_INPUT)


@dataclass
class OrderCtx:
    accounts: dict[uuid.UUID, sa.RowMapping] = field(default_factory=dict)
    products: dict[uuid.UUID, ProductFacts] = field(default_factory=dict)
    #: Price-list entries per product (a line only ever looks at its product's).
    prices: dict[uuid.UUID, list[PriceFacts]] = field(default_factory=dict)
    exposure: dict[uuid.UUID, int] = field(default_factory=dict)
    max_discount_bp: int = 0
    #: (product, account, day) → (unit price, list discount): a batch's orders mostly
    #: share their accounts, products and day.
    quotes: dict[tuple[uuid.UUID, uuid.UUID, date], tuple[int, int]] = field(
        default_factory=dict)
    #: When the batch is judged: its orders are submitted at the same instant.
    now: datetime = field(default_factory=utcnow)


def _parse_lines(raw: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    lines = []
    for i, item in enumerate(raw):
        try:
            parsed = LINE_CODEC.parse({k: v for k, v in item.items() if k in LINE_INPUT_WIRE})
        except ValueError as e:
            raise Rejection("INVALID_FIELD", f"lines[{i}]: {e}", f"lines[{i}]") from None
        if "product_id" not in parsed or "quantity" not in parsed:
            raise Rejection("MISSING_FIELD", f"lines[{i}] needs productId and quantity",
                            f"lines[{i}]")
        if parsed["quantity"] <= 0:
            raise Rejection("INVALID_QUANTITY", f"lines[{i}]: quantity must be above 0",
                            f"lines[{i}].quantity")
        if not 0 <= parsed.get("discount_bp", 0) <= 10_000:
            raise Rejection("INVALID_DISCOUNT", f"lines[{i}]: discountBp must be 0..10000",
                            f"lines[{i}].discountBp")
        lines.append(parsed)
    return lines


def _is_admin(viewer: Viewer) -> bool:
    """Admins have no discount ceiling; reps and managers have their own (user setting)."""
    return viewer.keys is None


def order_number(year: int) -> str:
    """A short human-facing number: 40 random bits drawn by the server, not taken from the
    client's id, so two devices can never collide on purpose or by accident (the unique
    index catches the 1-in-10^12 draw)."""
    return f"SO-{year}-{secrets.token_hex(5).upper()}"


@dataclass(frozen=True)
class _Queries:
    max_discount: sa.Executable
    accounts: sa.Executable
    exposure: sa.Executable
    products: sa.Executable
    prices: sa.Executable


@functools.cache
def _queries(dialect: str) -> _Queries:
    """What `prepare` reads, built once per dialect: building these statements cost a
    tenth of a push batch's CPU."""
    accounts = sa.select(col(Account.id), col(Account.credit_limit_cents),
                         col(Account.status), col(Account.owner_id)
                         ).where(among(dialect, col(Account.id), "accounts"))
    if dialect == "postgresql":
        # Serialise credit checks per account: two parallel submits cannot both pass.
        accounts = accounts.order_by(col(Account.id)).with_for_update()
    invoiced = sa.select(col(Invoice.order_id)).where(col(Invoice.order_id).is_not(None))
    unbilled = (
        sa.select(col(Order.account_id), sa.func.sum(col(Order.total_cents)))
        .where(among(dialect, col(Order.account_id), "accounts"),
               col(Order.status).in_(EXPOSED), col(Order.deleted).is_(False),
               sa.not_(among(dialect, col(Order.id), "batch")),
               col(Order.id).not_in(invoiced))
        .group_by(col(Order.account_id))
    )
    open_ar = (
        sa.select(col(Invoice.account_id), sa.func.sum(col(Invoice.amount_open_cents)))
        .where(among(dialect, col(Invoice.account_id), "accounts"),
               col(Invoice.status) == InvoiceStatus.OPEN, col(Invoice.deleted).is_(False))
        .group_by(col(Invoice.account_id))
    )
    return _Queries(
        max_discount=sa.select(col(User.max_discount_bp)).where(
            col(User.id) == sa.bindparam("user")),
        accounts=accounts,
        exposure=sa.union_all(unbilled, open_ar),
        products=sa.select(col(Product.id), col(Product.active), col(Product.deleted),
                           col(Product.unit_price_cents), col(Product.unit_cost_cents),
                           col(Product.name)).where(among(dialect, col(Product.id), "products")),
        prices=sa.select(
            col(PriceEntry.product_id), col(PriceEntry.account_id),
            col(PriceEntry.unit_price_cents), col(PriceEntry.discount_bp),
            col(PriceEntry.valid_from), col(PriceEntry.valid_to),
        ).where(
            among(dialect, col(PriceEntry.product_id), "products"),
            col(PriceEntry.deleted).is_(False),
            sa.or_(col(PriceEntry.account_id).is_(None),
                   among(dialect, col(PriceEntry.account_id), "accounts"))),
    )


class OrderHooks(Hooks):
    async def prepare(self, session: AsyncSession, viewer: Viewer,
                      rows: Sequence[Mapping[str, Any]]) -> OrderCtx:
        ctx = OrderCtx()
        account_ids = {r["account_id"] for r in rows if isinstance(r.get("account_id"), uuid.UUID)}
        product_ids: set[uuid.UUID] = set()
        for r in rows:
            for line in r.get("_children") or ():
                with contextlib.suppress(ValueError):
                    product_ids.add(parse_uuid(line.get("productId")))
            product_ids.update(c["product_id"] for c in r.get("_current_children") or ())
        # Core rows, not ORM entities, from statements built once: this runs for every
        # push batch with orders.
        q = _queries(dialect_name(session))
        ctx.max_discount_bp = (await session.execute(
            q.max_discount, {"user": viewer.user_id})).scalar_one_or_none() or 0
        if account_ids:
            accounts = {"accounts": list(account_ids)}
            ctx.accounts = {r.id: r._mapping for r in await session.execute(q.accounts, accounts)}
            # Stored orders of this batch are judged again: their old totals don't count.
            batch = {**accounts, "batch": [r["id"] for r in rows if r.get("_stored")]}
            for acc, total in await session.execute(q.exposure, batch):
                ctx.exposure[acc] = ctx.exposure.get(acc, 0) + int(total or 0)
        if product_ids:
            wanted = {"products": list(product_ids), "accounts": list(account_ids)}
            for p in await session.execute(q.products, wanted):
                ctx.products[p.id] = ProductFacts(p.id, p.active and not p.deleted,
                                                  p.unit_price_cents, p.unit_cost_cents, p.name)
            for e in await session.execute(q.prices, wanted):
                ctx.prices.setdefault(e.product_id, []).append(PriceFacts(*e))
        return ctx

    def observe(self, ctx: OrderCtx, entity: str, row: Mapping[str, Any]) -> None:
        if entity == "account":  # a prospect created earlier in the same push
            ctx.accounts[row["id"]] = row  # type: ignore[assignment]

    def defaults(self, viewer: Viewer, values: dict[str, Any]) -> dict[str, Any]:
        values.setdefault("status", OrderStatus.SUBMITTED)
        values.setdefault("order_date", utcnow().date())
        values["rep_id"] = viewer.user_id
        return values

    def on_create(self, viewer: Viewer, values: dict[str, Any], ctx: OrderCtx) -> dict[str, Any]:
        if "_children" not in values or values["_children"] is None:
            values["_children"] = []
        return self._evaluate(viewer, None, values, ctx)

    def on_update(self, viewer: Viewer, current: Mapping[str, Any], merged: dict[str, Any],
                  ctx: OrderCtx) -> dict[str, Any]:
        if merged["account_id"] != current["account_id"]:
            raise Rejection("IMMUTABLE_FIELD", "an order cannot move to another account; "
                            "cancel it and create a new one", "accountId")
        if not viewer.privileged and current["status"] in LOCKED:
            raise Rejection("ORDER_LOCKED", f"the order is already {current['status'].value}; "
                            "it can no longer be changed from the field")
        return self._evaluate(viewer, current, merged, ctx)

    def on_delete(self, viewer: Viewer, current: Mapping[str, Any], ctx: OrderCtx) -> None:
        if not viewer.privileged and current["status"] not in (OrderStatus.DRAFT, OrderStatus.REJECTED):
            raise Rejection("ORDER_LOCKED", "only draft or rejected orders can be deleted; "
                            "cancel a submitted order instead")

    def _evaluate(self, viewer: Viewer, current: Mapping[str, Any] | None,
                  row: dict[str, Any], ctx: OrderCtx) -> dict[str, Any]:
        status = OrderStatus(row["status"])
        if status is OrderStatus.REJECTED:
            # An edit of a rejected order (or an echo of the server's verdict) resubmits it:
            # the rep fixed what was wrong, the server judges it again.
            status = OrderStatus.SUBMITTED
        if not viewer.privileged and status not in REP_STATUSES:
            raise Rejection("INVALID_STATUS", f"an order can be sent as DRAFT, SUBMITTED or "
                            f"CANCELLED, not {status.name}", "status")
        account = ctx.accounts.get(row["account_id"])
        if account is None:
            raise Rejection("NOT_FOUND", "no such account in your scope", "accountId")
        raw = row.pop("_children", None)
        now = row.pop("_current_children", None) or []
        lines = _parse_lines(raw) if raw is not None else [
            {k: c[k] for k in ("id", "product_id", "quantity", "discount_bp")} for c in now]
        problems: list[tuple[str, str, str | None]] = []
        subtotal = discount = total = cost = 0
        priced: list[dict[str, Any]] = []
        for i, line in enumerate(lines):
            product = ctx.products.get(line["product_id"])
            if product is None:
                raise Rejection("NOT_FOUND", f"lines[{i}]: unknown product",
                                f"lines[{i}].productId")
            quote_key = (product.id, row["account_id"], row["order_date"])
            quote = ctx.quotes.get(quote_key)
            if quote is None:
                quote = ctx.quotes[quote_key] = unit_price(
                    product, row["account_id"], row["order_date"], ctx.prices.get(product.id, []))
            price, list_disc = quote
            manual = int(line.get("discount_bp") or 0)
            disc = max(list_disc, manual)
            if manual > max(list_disc, ctx.max_discount_bp) and not _is_admin(viewer):
                problems.append(("DISCOUNT_TOO_HIGH", f"lines[{i}]: a {manual / 100:.2f}% discount "
                                 f"exceeds your limit of {ctx.max_discount_bp / 100:.2f}%",
                                 f"lines[{i}].discountBp"))
            if not product.active:
                problems.append(("PRODUCT_INACTIVE", f"lines[{i}]: {product.name} is no longer "
                                 "sold", f"lines[{i}].productId"))
            gross = line["quantity"] * price
            amount = line_total(line["quantity"], price, disc)
            subtotal += gross
            discount += gross - amount
            total += amount
            cost += line["quantity"] * product.unit_cost_cents
            priced.append({
                "id": line.get("id") or uuid.uuid5(row["id"], str(i)), "line_no": i + 1,
                "product_id": product.id, "quantity": line["quantity"], "unit_price_cents": price,
                "discount_bp": disc, "line_total_cents": amount,
                "unit_cost_cents": product.unit_cost_cents,
            })
        dated = row["order_date"]
        if not viewer.privileged and (current is None or dated != current["order_date"]):
            today = ctx.now.date()
            if not today - ORDER_DATE_BACK <= dated <= today + ORDER_DATE_AHEAD:
                # The date picks the prices: a rep may not choose last year's promotion.
                problems.append(("ORDER_DATE_OUT_OF_RANGE", f"the order date {dated} is more "
                                 f"than {ORDER_DATE_BACK.days} days ago or in the future; date "
                                 "it the day it was taken, or ask the back office", "orderDate"))
        if max(subtotal, cost) > MAX_CENTS:  # not kept: it could not be stored either
            raise Rejection("AMOUNT_TOO_LARGE", "the order's amounts are too large to store; "
                            "check the quantities", "lines")
        row.update(subtotal_cents=subtotal, discount_cents=discount, total_cents=total,
                   cost_cents=cost, _children=priced)
        if status is OrderStatus.SUBMITTED:
            if not priced:
                problems.append(("NO_LINES", "an order needs at least one line", "lines"))
            if account["status"] is not AccountStatus.ACTIVE and account["status"] != "active":
                problems.append(("ACCOUNT_ON_HOLD", "the account is on hold or inactive; "
                                 "call the back office", "accountId"))
            left = credit_available(account["credit_limit_cents"],
                                    ctx.exposure.get(row["account_id"], 0))
            if left is not None and total > left:
                problems.append(("CREDIT_LIMIT_EXCEEDED", f"order total {total / 100:.2f} exceeds "
                                 f"the credit still available ({max(left, 0) / 100:.2f}); take a "
                                 "smaller order or ask for a credit review", None))
        if problems:
            code, message, fld = problems[0]
            if len(problems) > 1:
                message += f" (and {len(problems) - 1} more problem(s))"
            row.update(status=OrderStatus.REJECTED, status_reason_code=code,
                       status_reason=message)
            raise Rejection(code, message, fld, keep=row)
        row.update(status=status, status_reason_code=None, status_reason=None)
        if status is OrderStatus.SUBMITTED:
            ctx.exposure[row["account_id"]] = ctx.exposure.get(row["account_id"], 0) + total
            if current is None or current["status"] is not OrderStatus.SUBMITTED:
                row["submitted_at"] = ctx.now
            if not row.get("number"):
                row["number"] = order_number(row["order_date"].year)
        if status is OrderStatus.CONFIRMED and not row.get("confirmed_at"):
            row["confirmed_at"] = ctx.now
        return row


def register(registry: Registry) -> None:
    registry.register(EntitySpec(
        name="order", model=Order, policy=WholeDocument(), hooks=OrderHooks(),
        scope_of=lambda r: r["account_id"],
        server_columns=frozenset({
            "number", "rep_id", "status_reason_code", "status_reason", "subtotal_cents",
            "discount_cents", "total_cents", "cost_cents", "submitted_at", "confirmed_at",
        }),
        private_columns=frozenset({"cost_cents"}),
        child=ChildSpec("lines", table_of(OrderLine), "order_id", "line_no", LINE_CODEC),
        accept_after_move=True,
    ))

