"""Lead conversion: the lead becomes an account and a contact, linked back to the lead.

A server command (online), as in Salesforce and Dynamics: it is the only way a lead
reaches CONVERTED. The account and contact are created through the sync engine like
any client write (same scope, validation and defaults); the lead's own update is a
server write through the same write path, so every device hears of all three.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from schema.enums import LeadStatus
from schema.leads.tables import Lead, LeadStatusChange
from schema.registry import registry
from sync.hlc import HybridClock
from sync.model import dialect_name, new_id, table_of, utcnow
from sync.protocol import MutationIn, SyncError
from sync.push import PushEngine
from sync.registry import Viewer
from sync.writer import ChangeSet, RowWrite, flush

_clock = HybridClock("convert")
CONVERTIBLE = (LeadStatus.NEW, LeadStatus.CONTACTED, LeadStatus.QUALIFIED)


@dataclass
class Conversion:
    lead_id: uuid.UUID
    account_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    error: SyncError | None = None


async def convert_lead(session: AsyncSession, engine: PushEngine, viewer: Viewer,
                       lead_id: uuid.UUID, account_name: str | None = None) -> Conversion:
    t = table_of(Lead)
    stmt = sa.select(t).where(t.c.id == lead_id, t.c.deleted.is_(False))
    if viewer.keys is not None:
        stmt = stmt.where(t.c.scope_key.in_(viewer.keys))
    if dialect_name(session) == "postgresql":
        stmt = stmt.with_for_update()
    lead = (await session.execute(stmt)).mappings().first()
    if lead is None:
        return Conversion(lead_id, error=SyncError("NOT_FOUND", "no such lead in your scope", "id"))
    if lead["status"] not in CONVERTIBLE:
        return Conversion(lead_id, error=SyncError(
            "INVALID_TRANSITION", f"a {lead['status'].name} lead cannot be converted", "status"))
    account_id, contact_id = new_id(), new_id()
    account: dict[str, Any] = {"name": account_name or lead["company"], "email": lead["email"],
                               "phone": lead["phone"]}
    if viewer.privileged and lead["owner_id"] is not None:
        account["ownerId"] = str(lead["owner_id"])  # the lead's rep keeps the customer
    if lead["territory_id"] is not None and viewer.privileged:
        account["territoryId"] = str(lead["territory_id"])
    contact = {"accountId": str(account_id), "firstName": lead["first_name"] or "",
               "lastName": lead["last_name"] or lead["company"], "email": lead["email"],
               "phone": lead["phone"], "isPrimary": True}
    outs = await engine.apply(session, viewer, [
        MutationIn(0, "account", "CREATE", str(account_id), None, _present(account)),
        MutationIn(0, "contact", "CREATE", str(contact_id), None, _present(contact)),
    ])
    refused = next((o for o in outs if o.status == "REJECTED"), None)
    if refused is not None:
        raise ConversionRefused(refused.error or SyncError("REJECTED", "conversion refused"))
    now = utcnow()
    change = {"status": LeadStatus.CONVERTED, "converted_account_id": account_id,
              "converted_contact_id": contact_id, "converted_at": now, "status_changed_at": now}
    spec = registry["lead"]
    changes = ChangeSet(actor_id=viewer.user_id)
    changes.add(RowWrite(spec, lead_id, "update", change, {c: lead[c] for c in change},
                         lead["version"] + 1, lead["scope_key"], None, _clock.now()))
    await flush(session, changes)
    await session.execute(sa.insert(LeadStatusChange).values(
        id=new_id(), lead_id=lead_id, from_status=lead["status"].value,
        to_status=LeadStatus.CONVERTED.value, at=now))
    return Conversion(lead_id, account_id, contact_id)


class ConversionRefused(Exception):
    """Raised so the unit of work rolls back the half-made conversion."""

    def __init__(self, error: SyncError) -> None:
        super().__init__(error.message)
        self.error = error


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


