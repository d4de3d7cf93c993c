"""The audit trail's wire format: the auditor's full events and the resident's access log."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from .service import PURPOSES


class AuditEventOut(BaseModel):
    """One chained event, as auditors see it (every field, the link included)."""

    seq: int
    at: datetime
    action: str = Field(description="read or change")
    purpose: str = Field(examples=["card.lookup"])
    person_id: str = Field(description="Master index id of the resident whose data was accessed")
    actor_kind: str = Field(description="staff, machine, system, anonymous or resident")
    actor_id: str | None
    actor_role: str | None
    institution_id: str | None
    operator: str | None
    channel: str = Field(description="Card-use channel code: 0100 window, 0200 kiosk, 0300 workstation, ...")
    request_id: str | None
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_before: int | None = Field(
        None, description="Pass as `before` to get the next (older) page; absent on the last page")


class AccessLogEntry(BaseModel):
    """One access to the resident's data, as the resident sees it: who (by institution, role and a
    masked operator), why, when, through which channel. ``ref`` lets them quote it in a complaint."""

    ref: int = Field(description="The event's number in the audit trail")
    at: datetime
    action: str = Field(description="read or change")
    purpose: str
    purpose_label: str
    purpose_label_zh: str
    channel: str
    institution_id: str | None
    actor_kind: str
    actor_role: str | None
    operator: str | None = Field(None, description="Masked: the first character and stars")


class AccessLogPage(BaseModel):
    items: list[AccessLogEntry]
    next_before: int | None = None


def access_log_entry(event) -> AccessLogEntry:  # noqa: ANN001
    """An event as the resident sees it (the API and the resident's page)."""
    label = PURPOSES.get(event.purpose, (event.purpose, event.purpose))
    return AccessLogEntry(
        ref=event.seq,
        at=event.at,
        action=event.action,
        purpose=event.purpose,
        purpose_label=label[0],
        purpose_label_zh=label[1],
        channel=event.channel,
        institution_id=event.institution_id,
        actor_kind=event.actor_kind,
        actor_role=event.actor_role,
        # A resident learns where and in which role, not a staff member's account name: enough to
        # recognise a visit or to quote ``ref`` in a complaint, which an auditor resolves in full.
        operator=_mask(event.operator) if event.actor_kind in ("staff", "machine") else None,
    )


def _mask(value: str | None) -> str | None:
    if not value:
        return None
    return value[0] + "*" * min(len(value) - 1, 6) if len(value) > 1 else "*"
