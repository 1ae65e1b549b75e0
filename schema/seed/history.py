"""One account's history: the account, its contacts and prices, orders and invoices."""

from __future__ import annotations

import math
import random
import uuid
from datetime import date, timedelta
from typing import Any

from schema.enums import AccountStatus, AccountTier, InvoiceStatus, OrderStatus
from schema.orders.pricing import PriceFacts, line_total, unit_price
from schema.seed import activities
from schema.seed.catalog import MONTH_FACTORS, season
from schema.seed.plan import PAYERS, PAYMENT_TERMS, TIERS, AccountPlan, Bundle, World
from schema.seed.rand import (
    ascii_slug,
    at,
    month_starts,
    new_rng,
    poisson,
    rid,
    weighted,
    work_time,
    working_days,
)
from schema.seed.words import CHANNELS, COMPANY_PATTERNS, FIRST_NAMES, LAST_NAMES, STREETS, TITLES

MEAN_MONTH = sum(MONTH_FACTORS) / 12
CANCEL_REASONS = (
    ("CUSTOMER_REQUEST", "The customer asked to cancel the order."),
    ("OUT_OF_STOCK", "Items were out of stock at the warehouse."),
    ("DUPLICATE", "Duplicate of another order taken the same day."),
)
OPEN = (OrderStatus.SUBMITTED, OrderStatus.CONFIRMED)


def account_bundle(plan: AccountPlan, world: World) -> Bundle:
    rng = new_rng(plan.rng_key)
    bundle = Bundle()
    account = _account(rng, plan)
    bundle.add("account", account)
    days = _order_days(rng, plan, world)
    account["customer_since"] = days[0]
    account["created_at"] = at(days[0], 8)
    contacts = _contacts(rng, plan, account, world)
    for c in contacts:
        bundle.add("contact", c)
    core = world.catalog.core_list(rng, rng.randint(8, 20))
    prices = _account_prices(rng, plan, world, core, bundle)
    if plan.acquired:
        activities.converted_lead(rng, plan, account, contacts[0], bundle)
    payer = rng.choices(PAYERS, [p[1] for p in PAYERS])[0]
    for day in days:
        _order(rng, plan, world, day, core, prices, contacts, payer[2], bundle)
    _credit(rng, plan, account, bundle, world)
    activities.visits_cases_tasks(rng, plan, world, account, contacts, bundle)
    return bundle


def _account(rng: random.Random, plan: AccountPlan) -> dict[str, Any]:
    region = plan.rep.region
    country = region.country
    channel = weighted(rng, CHANNELS)
    city, postal = rng.choice(region.cities)
    name = rng.choice(COMPANY_PATTERNS[channel]).format(n=rng.choice(LAST_NAMES[country]), c=city)
    lat: float | None = None
    lon: float | None = None
    if rng.random() >= 0.03:
        sigma_km = 3.0 if rng.random() < 0.7 else 15.0
        lat = round(plan.rep.centre[0] + rng.gauss(0, sigma_km / 111), 6)
        lon = round(plan.rep.centre[1] + rng.gauss(0, sigma_km / (111 * math.cos(
            math.radians(plan.rep.centre[0])))), 6)
    domain = f"{ascii_slug(name, '-')}.example"
    return {
        "id": plan.id, "name": name, "segment": channel, "tier": AccountTier(plan.tier),
        "status": AccountStatus.ON_HOLD if plan.on_hold else AccountStatus.ACTIVE,
        "street": f"{rng.choice(STREETS[country])} {rng.randint(1, 120)}", "city": city,
        "postal_code": postal, "region": region.name, "country": country, "lat": lat, "lon": lon,
        "phone": f"{region.phone_prefix} {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
        "email": f"orders@{domain}" if rng.random() < 0.6 else None,
        "territory_id": plan.rep.territory_id, "owner_id": plan.rep.id,
        "credit_limit_cents": 0, "payment_terms_days": int(weighted(rng, PAYMENT_TERMS)),
        "currency": "EUR", "customer_since": None,
        "notes": "Credit hold: overdue invoices." if plan.on_hold else None,
        "created_at": None,
    }


def _contacts(rng: random.Random, plan: AccountPlan, account: dict[str, Any],
              world: World) -> list[dict[str, Any]]:
    country = account["country"]
    domain = f"{ascii_slug(account['name'], '-')}.example"
    out = []
    for i in range(rng.choices((1, 2, 3, 4), (35, 35, 20, 10))[0]):
        first, last = rng.choice(FIRST_NAMES[country]), rng.choice(LAST_NAMES[country])
        birthday = None
        if rng.random() < 0.6:
            birthday = date(rng.randint(1955, 2000), 1, 1) + timedelta(days=rng.randint(0, 364))
        if plan.showcase and i == 0:  # a birthday this week on the demo rep's first account
            birthday = date(1980, 1, 1)
            soon = world.today + timedelta(days=3)
            birthday = birthday.replace(month=soon.month, day=min(soon.day, 28))
        out.append({
            "id": rid(rng), "account_id": account["id"], "first_name": first, "last_name": last,
            "title": rng.choice(TITLES), "is_primary": i == 0, "birthday": birthday,
            "email": f"{ascii_slug(first)}.{ascii_slug(last)}@{domain}"
            if rng.random() < 0.7 else None,
            "phone": f"{plan.rep.region.phone_prefix} {rng.randint(100, 999)} "
                     f"{rng.randint(1000, 9999)}" if rng.random() < 0.95 else None,
            "created_at": account["created_at"],
        })
    return out


def _account_prices(rng: random.Random, plan: AccountPlan, world: World, core: list[int],
                    bundle: Bundle) -> dict[uuid.UUID, list[PriceFacts]]:
    """Negotiated prices for some A and B accounts, valid for the current calendar year."""
    catalog = world.catalog
    prices = {p.facts.id: list(catalog.general_prices.get(p.facts.id, ()))
              for p in catalog.products}
    share = {"a": 0.5, "b": 0.2}.get(plan.tier, 0.0)
    if rng.random() >= share:
        return prices
    start, end = date(world.today.year, 1, 1), date(world.today.year + 1, 1, 1)
    for idx in rng.sample(core, min(len(core), rng.randint(2, 4))):
        facts = catalog.products[idx].facts
        price = round(facts.unit_price_cents * rng.uniform(0.88, 0.95))
        prices[facts.id].append(PriceFacts(facts.id, plan.id, price, None, start, end))
        bundle.add("priceEntry", {"id": rid(rng), "product_id": facts.id, "account_id": plan.id,
                                  "unit_price_cents": price, "discount_bp": None,
                                  "valid_from": start, "valid_to": end})
    return prices


def _order_days(rng: random.Random, plan: AccountPlan, world: World) -> list[date]:
    """Order days: a won account's first order is on its start day (it made them a
    customer); an existing one's first order in the window comes whenever it comes."""
    end = min(plan.churn or world.today, world.today)
    days = [plan.start] if plan.acquired else []
    for first, last in month_starts(plan.start + timedelta(days=1 if plan.acquired else 0), end):
        wd = working_days(first, last)
        if not wd:
            continue
        trend = 1 + 0.04 * (first - world.history_start).days / 365
        slow = 0.4 if plan.slow_from and first >= plan.slow_from else 1.0
        lam = (plan.order_rate / 12 * MONTH_FACTORS[first.month - 1] / MEAN_MONTH * trend * slow
               * len(wd) / 21.7)
        days += sorted(rng.choice(wd) for _ in range(poisson(rng, lam)))
    return days or [rng.choice(working_days(plan.start, plan.start + timedelta(days=90)))]


def _status(rng: random.Random, plan: AccountPlan, age: int) -> tuple[OrderStatus, str | None,
                                                                      str | None]:
    if age > 14:
        r = rng.random()
        if r < 0.95:
            return OrderStatus.FULFILLED, None, None
        if r < 0.99:
            code, why = rng.choice(CANCEL_REASONS)
            return OrderStatus.CANCELLED, code, why
        return (OrderStatus.REJECTED, "CREDIT_LIMIT_EXCEEDED",
                "The order total exceeded the credit still available.")
    if plan.on_hold:
        return (OrderStatus.REJECTED, "ACCOUNT_ON_HOLD",
                "The account is on hold or inactive; call the back office.")
    if age <= 2:
        return rng.choices((OrderStatus.DRAFT, OrderStatus.SUBMITTED, OrderStatus.CONFIRMED),
                           (25, 50, 25))[0], None, None
    return rng.choices((OrderStatus.SUBMITTED, OrderStatus.CONFIRMED, OrderStatus.FULFILLED),
                       (20, 40, 40))[0], None, None


def _discount(rng: random.Random, status: OrderStatus) -> int:
    r = rng.random()
    if r < 0.70:
        return 0
    if r < 0.95 or status is not OrderStatus.FULFILLED:
        return rng.randrange(200, 1001, 50)
    return rng.randrange(1100, 2501, 100)  # above a rep's limit: approved by a manager


def _order(rng: random.Random, plan: AccountPlan, world: World, day: date, core: list[int],
           prices: dict[uuid.UUID, list[PriceFacts]], contacts: list[dict[str, Any]],
           pay_days: tuple[int, int], bundle: Bundle) -> None:
    catalog, observed, tier = world.catalog, world.observed, TIERS[plan.tier]
    status, code, reason = _status(rng, plan, (world.today - day).days)
    order_id = rid(rng)
    n_lines = max(1, min(8, round(rng.gauss(tier.lines, 1.5))))
    basket = catalog.basket(rng, core, n_lines, day)
    lines, subtotal, discount, total, cost = [], 0, 0, 0, 0
    for no, idx in enumerate(basket, start=1):
        product = catalog.products[idx]
        facts = product.facts
        boost = season(product.category, day.month)
        qty = product.pack * max(1, round(rng.expovariate(1 / (1.5 * tier.quantity)) * boost))
        price, list_disc = unit_price(facts, plan.id, day, prices[facts.id])
        disc = max(list_disc, _discount(rng, status))
        amount = line_total(qty, price, disc)
        subtotal, discount = subtotal + qty * price, discount + qty * price - amount
        total, cost = total + amount, cost + qty * facts.unit_cost_cents
        lines.append({"id": rid(rng), "line_no": no, "product_id": facts.id, "quantity": qty,
                      "unit_price_cents": price, "discount_bp": disc, "line_total_cents": amount,
                      "unit_cost_cents": facts.unit_cost_cents})
        if status is OrderStatus.FULFILLED:
            observed.category_month[product.category][day.month - 1] += amount
    items = set(basket)
    for k, rule in enumerate(catalog.rules):
        a, c = rule.antecedent in items, rule.consequent in items
        observed.rule_counts.update([(k, "a")] * a + [(k, "c")] * c + [(k, "ac")] * (a and c))
    observed.orders += 1
    observed.orders_by_month[day.strftime("%Y-%m")] += 1
    submitted = None if status is OrderStatus.DRAFT else work_time(rng, day)
    confirmed = submitted + timedelta(hours=rng.randint(1, 6)) \
        if submitted and status in (OrderStatus.CONFIRMED, OrderStatus.FULFILLED) else None
    bundle.add("order", {
        "id": order_id, "number": None if status is OrderStatus.DRAFT
        else world.numbers.next("SO", day.year),
        "account_id": plan.id, "contact_id": rng.choice(contacts)["id"], "rep_id": plan.rep.id,
        "order_date": day, "status": status, "status_reason_code": code, "status_reason": reason,
        "subtotal_cents": subtotal, "discount_cents": discount, "total_cents": total,
        "cost_cents": cost, "currency": "EUR",
        "po_number": f"PO-{rng.randint(10000, 99999)}" if rng.random() < 0.2 else None,
        "notes": "Phoned in by the customer." if rng.random() < 0.1 else None,
        "submitted_at": submitted, "confirmed_at": confirmed,
        "created_at": submitted or work_time(rng, day), "_children": lines,
    })
    if status is OrderStatus.FULFILLED:
        observed.revenue[str(plan.id)] = observed.revenue.get(str(plan.id), 0) + total
        _invoice(rng, plan, world, order_id, day, total, pay_days, bundle)


def _invoice(rng: random.Random, plan: AccountPlan, world: World, order_id: uuid.UUID,
             day: date, amount: int, pay_days: tuple[int, int], bundle: Bundle) -> None:
    issue = min(world.today, day + timedelta(days=rng.randint(0, 2)))
    terms = bundle.rows["account"][0]["payment_terms_days"]
    due = issue + timedelta(days=terms)
    paid = due + timedelta(days=rng.randint(*pay_days))
    unpaid = pay_days[0] > 90 and rng.random() < 0.5
    open_cents = amount if unpaid or paid > world.today else 0
    if open_cents and due < world.today and rng.random() < 0.1:
        open_cents = amount // 2  # partly paid
    bundle.add("invoice", {
        "id": rid(rng), "number": world.numbers.next("INV", issue.year), "account_id": plan.id,
        "order_id": order_id, "issue_date": issue, "due_date": due, "amount_cents": amount,
        "amount_open_cents": open_cents,
        "status": InvoiceStatus.OPEN if open_cents else InvoiceStatus.PAID,
        "created_at": at(issue, 6),
    })


def _credit(rng: random.Random, plan: AccountPlan, account: dict[str, Any], bundle: Bundle,
            world: World) -> None:
    """A credit line of 1.5-2x monthly purchases that most next orders fit in; near-limit
    accounts get barely more than what they already owe."""
    year_ago = world.today - timedelta(days=365)
    orders = [o for o in bundle.rows["order"]
              if o["status"] in (*OPEN, OrderStatus.FULFILLED) and o["order_date"] > year_ago]
    months = max(1.0, min(12.0, (world.today - max(plan.start, year_ago)).days / 30.4))
    monthly = sum(o["total_cents"] for o in orders) / months
    avg = sum(o["total_cents"] for o in orders) / len(orders) if orders else 20_000
    exposure = sum(i["amount_open_cents"] for i in bundle.rows["invoice"]) + sum(
        o["total_cents"] for o in bundle.rows["order"] if o["status"] in OPEN)
    if plan.near_limit:
        limit = math.ceil((exposure + 0.3 * avg) / 1_000) * 1_000
        world.observed.near_limit.append({
            "account_id": str(plan.id), "name": account["name"], "credit_limit_cents": limit,
            "exposure_cents": exposure, "headroom_cents": limit - exposure,
            "average_order_cents": round(avg)})
    else:
        want = max(rng.uniform(1.5, 2.0) * monthly, exposure + 2 * avg, 50_000)
        limit = math.ceil(want / 10_000) * 10_000
    account["credit_limit_cents"] = limit
