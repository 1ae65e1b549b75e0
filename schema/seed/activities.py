"""Field activity around an account (visit notes, cases, tasks) and the leads funnel."""

from __future__ import annotations

import math
import random
import uuid
from datetime import date, datetime, timedelta
from typing import Any

from schema.enums import (
    CaseCategory,
    CasePriority,
    CaseStatus,
    LeadSource,
    LeadStatus,
    TaskKind,
    VisitOutcome,
)
from schema.seed.plan import TIERS, AccountPlan, Bundle, UserPlan, World
from schema.seed.rand import (
    ascii_slug,
    at,
    month_starts,
    next_anniversary,
    poisson,
    rid,
    work_time,
    working_days,
)
from schema.seed.words import (
    CASE_SUBJECTS,
    COMPANY_PATTERNS,
    FIRST_NAMES,
    LAST_NAMES,
    LEAD_DISQUALIFY_REASONS,
    NOTE_TEMPLATES,
    WRONG_INVOICE_NOTE,
)

CASE_MIX = (("wrong_invoice", 30), ("late_delivery", 25), ("damaged_goods", 20),
            ("missing_items", 15), ("pricing", 10))
SOURCES = ((LeadSource.FIELD, 40), (LeadSource.CAMPAIGN, 20), (LeadSource.WEB, 15),
           (LeadSource.REFERRAL, 15), (LeadSource.PHONE, 10))
S = LeadStatus


def visits_cases_tasks(rng: random.Random, plan: AccountPlan, world: World,
                       account: dict[str, Any], contacts: list[dict[str, Any]],
                       bundle: Bundle) -> None:
    end = min(plan.churn or world.today, world.today)
    visits = [(o["order_date"], VisitOutcome.ORDER_TAKEN) for o in bundle.rows["order"]
              if rng.random() < 0.4]
    for first, last in month_starts(plan.start, end):
        days = working_days(first, last)
        for _ in range(poisson(rng, TIERS[plan.tier].visits * len(days) / 21.7) if days else 0):
            outcome = rng.choices((VisitOutcome.NO_ORDER, VisitOutcome.FOLLOW_UP,
                                   VisitOutcome.CLOSED), (60, 30, 10))[0]
            visits.append((rng.choice(days), outcome))
    visits.sort()
    invoices = bundle.rows["invoice"]
    for day, outcome in visits:
        when = work_time(rng, day)
        billed = [i for i in invoices if i["issue_date"] <= day]
        if billed and rng.random() < 0.02:
            _note(rng, plan, world, account, when, outcome, bundle, billed[-1]["number"])
            _case(rng, plan, world, contacts, "wrong_invoice", when, bundle, billed[-1]["number"])
            continue
        _note(rng, plan, world, account, when, outcome, bundle)
        if outcome is VisitOutcome.FOLLOW_UP:
            due = day + timedelta(days=rng.randint(3, 10))
            _task(rng, world, plan.rep, f"Follow up at {account['name']}", TaskKind.FOLLOW_UP,
                  due, bundle, account_id=plan.id, contact_id=contacts[0]["id"], created=when)
    span_years = max(0, (end - plan.start).days) / 365
    for _ in range(poisson(rng, 0.3 * span_years)):
        day = plan.start + timedelta(days=rng.randint(0, max(0, (end - plan.start).days)))
        category = rng.choices([c for c, _ in CASE_MIX], [w for _, w in CASE_MIX])[0]
        _case(rng, plan, world, contacts, category, work_time(rng, day), bundle)
    if plan.showcase and invoices:
        when = work_time(rng, world.today - timedelta(days=2))
        number = invoices[-1]["number"]
        _note(rng, plan, world, account, when, VisitOutcome.FOLLOW_UP, bundle, number)
        case = _case(rng, plan, world, contacts, "wrong_invoice", when, bundle, number,
                     status=CaseStatus.NEW)
        world.observed.showcase.update(account_id=str(plan.id), account=account["name"],
                                       wrong_invoice_case=case["number"], invoice=number)
    _reminders(rng, plan, world, account, contacts, bundle)


def _note(rng: random.Random, plan: AccountPlan, world: World, account: dict[str, Any],
          when: datetime, outcome: VisitOutcome, bundle: Bundle,
          invoice: str | None = None) -> None:
    product = rng.choice(world.catalog.products)
    if invoice:
        body = WRONG_INVOICE_NOTE.format(inv=invoice, p=product.row["name"])
    else:
        body = rng.choice(NOTE_TEMPLATES).format(p=product.row["name"], cat=product.category)
    lat = lon = None
    r = rng.random()
    if account["lat"] is not None and r >= 0.01:
        if r < 0.04:  # a check-in far (> 500 m) from the shop
            km, bearing = rng.uniform(0.6, 3.0), rng.uniform(0, 2 * math.pi)
            dlat, dlon = km * math.cos(bearing) / 111, km * math.sin(bearing) / 111
        else:
            dlat, dlon = rng.gauss(0, 0.00027), rng.gauss(0, 0.00027)
        lat, lon = round(account["lat"] + dlat, 6), round(account["lon"] + dlon, 6)
    bundle.add("visitNote", {
        "id": rid(rng), "account_id": plan.id, "author_id": plan.rep.id, "visited_at": when,
        "check_in_lat": lat, "check_in_lon": lon, "outcome": outcome, "body": body,
        "created_at": when,
    })


def _case(rng: random.Random, plan: AccountPlan, world: World, contacts: list[dict[str, Any]],
          category: str, opened: datetime, bundle: Bundle, invoice: str | None = None,
          status: CaseStatus | None = None) -> dict[str, Any]:
    age = (world.today - opened.date()).days
    closed: datetime | None = None
    if status is None:
        status = rng.choice((CaseStatus.NEW, CaseStatus.WORKING, CaseStatus.ESCALATED))
        r = rng.random()
        if age > 7 and r < 0.8:
            closed = opened + timedelta(days=rng.randint(0, 7), hours=rng.randint(1, 8))
        elif age > 30 and r < 0.97:
            closed = opened + timedelta(days=rng.randint(8, 30), hours=rng.randint(1, 8))
        if closed is not None:
            status = CaseStatus.CLOSED
    subject = CASE_SUBJECTS[category]
    row = {
        "id": rid(rng), "number": world.numbers.next("CS"), "account_id": plan.id,
        "contact_id": contacts[0]["id"], "category": CaseCategory(category),
        "priority": rng.choices((CasePriority.HIGH, CasePriority.NORMAL, CasePriority.LOW),
                                (15, 70, 15))[0] if invoice is None else CasePriority.HIGH,
        "subject": subject + (f" ({invoice})" if invoice else ""),
        "description": f"Reported by the customer during a visit. Invoice {invoice}."
        if invoice else "Reported by the customer.",
        "status": status, "resolution": "Resolved with the customer." if closed else None,
        "opened_by_id": plan.rep.id, "opened_at": opened, "closed_at": closed,
        "created_at": opened,
    }
    bundle.add("case", row)
    return row


def _task(rng: random.Random, world: World, rep: UserPlan, title: str, kind: TaskKind,
          due: date, bundle: Bundle, *, created: datetime, account_id: uuid.UUID | None = None,
          contact_id: uuid.UUID | None = None, lead_id: uuid.UUID | None = None,
          dedupe_key: str | None = None) -> None:
    done = due < world.today and rng.random() < 0.8
    done_at = min(at(due + timedelta(days=rng.randint(0, 4)), 16), at(world.today, 7)) \
        if done else None
    bundle.add("task", {
        "id": rid(rng), "title": title[:200], "description": None, "kind": kind,
        "due_date": due, "assignee_id": rep.id, "account_id": account_id,
        "contact_id": contact_id, "lead_id": lead_id, "done": done, "done_at": done_at,
        "dedupe_key": dedupe_key, "created_at": min(created, at(due, 7)),
    })


def _reminders(rng: random.Random, plan: AccountPlan, world: World, account: dict[str, Any],
               contacts: list[dict[str, Any]], bundle: Bundle) -> None:
    """Birthday and customer-anniversary tasks falling in the next 30 days."""
    horizon = world.today + timedelta(days=30)
    created = at(world.today - timedelta(days=1), 5)
    for c in contacts:
        if c["birthday"] is None:
            continue
        due = next_anniversary(c["birthday"], world.today)
        if due <= horizon:
            world.observed.upcoming_birthdays += 1
            _task(rng, world, plan.rep, f"Birthday: {c['first_name']} {c['last_name']}",
                  TaskKind.BIRTHDAY, due, bundle, created=created, account_id=plan.id,
                  contact_id=c["id"], dedupe_key=f"birthday:{c['id']}:{due.year}")
    since: date = account["customer_since"]
    due = next_anniversary(since, world.today)
    if due <= horizon and due.year > since.year and plan.churn is None:
        _task(rng, world, plan.rep, f"{due.year - since.year} years as a customer: "
              f"{account['name']}", TaskKind.ANNIVERSARY, due, bundle, created=created,
              account_id=plan.id, dedupe_key=f"anniversary:{plan.id}:{due.year}")


def _lead(rng: random.Random, rep: UserPlan, company: str, created: datetime,
          path: list[tuple[LeadStatus, datetime]], bundle: Bundle, *, owned: bool = True,
          **extra: Any) -> dict[str, Any]:
    country = rep.region.country
    first, last = rng.choice(FIRST_NAMES[country]), rng.choice(LAST_NAMES[country])
    status, changed = path[-1]
    score = {S.NEW: (10, 40), S.CONTACTED: (20, 60), S.QUALIFIED: (50, 90),
             S.DISQUALIFIED: (0, 30), S.CONVERTED: (60, 100)}[status]
    row = {
        "id": rid(rng), "company": company, "first_name": first, "last_name": last,
        "email": f"{ascii_slug(first)}@{ascii_slug(company, '-')}.example"
        if rng.random() < 0.7 else None,
        "phone": f"{rep.region.phone_prefix} {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
        "source": rng.choices([s for s, _ in SOURCES], [w for _, w in SOURCES])[0],
        "status": status, "score": rng.randint(*score),
        "status_reason": rng.choice(LEAD_DISQUALIFY_REASONS) if status is S.DISQUALIFIED
        else None,
        "estimated_value_cents": int(round(rng.lognormvariate(math.log(600_000), 0.6), -2)),
        "owner_id": rep.id if owned else None, "territory_id": rep.territory_id,
        "converted_account_id": None, "converted_contact_id": None, "converted_at": None,
        "status_changed_at": changed, "created_at": created, **extra,
    }
    bundle.add("lead", row)
    previous: LeadStatus | None = None
    for to, when in path:
        bundle.lead_history.append({"id": rid(rng), "lead_id": row["id"],
                                    "from_status": previous.value if previous else None,
                                    "to_status": to.value, "at": when})
        previous = to
    return row


def converted_lead(rng: random.Random, plan: AccountPlan, account: dict[str, Any],
                   contact: dict[str, Any], bundle: Bundle) -> None:
    converted = at(plan.start - timedelta(days=rng.randint(0, 5)), 10)
    created = converted - timedelta(days=max(2, round(21 * math.exp(rng.gauss(0, 0.5)))))
    span = converted - created
    path = [(S.NEW, created), (S.CONTACTED, created + span * 0.2),
            (S.QUALIFIED, created + span * 0.6), (S.CONVERTED, converted)]
    _lead(rng, plan.rep, account["name"], created, path, bundle, converted_account_id=plan.id,
          converted_contact_id=contact["id"], converted_at=converted,
          first_name=contact["first_name"], last_name=contact["last_name"])


def rep_leads(rng: random.Random, rep: UserPlan, world: World, count: int) -> Bundle:
    """A rep's open and disqualified leads, with their stage history; some still unrouted."""
    bundle = Bundle()
    for i in range(count):
        recent = i == 0 or rng.random() < 0.4
        age = rng.randint(0, 7 if i == 0 else 60) if recent else rng.randint(0, 729)
        created = work_time(rng, world.today - timedelta(days=age))
        if i == 0 or age < 30:
            stages = rng.choices(([S.NEW], [S.NEW, S.CONTACTED], [S.NEW, S.CONTACTED, S.QUALIFIED]),
                                 (50, 35, 15))[0] if i else [S.NEW]
        else:
            stages = rng.choices(
                ([S.NEW, S.CONTACTED], [S.NEW, S.CONTACTED, S.QUALIFIED], [S.NEW, S.DISQUALIFIED],
                 [S.NEW, S.CONTACTED, S.DISQUALIFIED]),
                (25, 35, 15, 25) if age < 120 else (10, 15, 25, 50))[0]
        path, when = [], created
        for stage in stages:
            path.append((stage, when))
            gap = timedelta(days=5 * math.exp(rng.gauss(0, 0.6)), hours=rng.randint(1, 8))
            when = min(when + gap, at(world.today, 6) if age else created)
        name = rng.choice(COMPANY_PATTERNS["retail"] + COMPANY_PATTERNS["horeca"]).format(
            n=rng.choice(LAST_NAMES[rep.region.country]), c=rng.choice(rep.region.cities)[0])
        lead = _lead(rng, rep, name, created, path, bundle, owned=rng.random() >= 0.1)
        if stages[-1] is S.QUALIFIED and lead["owner_id"] is not None and rng.random() < 0.5:
            due = path[-1][1].date() + timedelta(days=7)
            _task(rng, world, rep, f"Send an offer to {name}", TaskKind.CALL, due, bundle,
                  created=path[-1][1], lead_id=lead["id"])
    return bundle
