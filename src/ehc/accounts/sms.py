"""Sending text messages to residents: a small pluggable sender.

A sender is anything with ``send(phone, text)``; ``EHC_SMS_SENDER`` names the one in use.

* ``outbox`` (the default, development only): writes each message to the ``sms_outbox`` table,
  the phone sealed (SM4-GCM, bound to the row) and indexed by its blind index, the text in clear.
  The text of a sign-in message *is* the one-time code, so this sender is refused when
  ``EHC_ENV=production``. ``ehc sms outbox`` (and a development page) show what was "sent".
* A production deployment registers an adapter for its operator's SMS gateway at start-up::

      from ehc.accounts import sms

      class GatewaySender:
          def __init__(self, ctx): ...
          def send(self, phone: str, text: str) -> None:
              ...  # call the gateway; raise sms.SendFailed when it refuses

      sms.register_sender("my-gateway", GatewaySender)

  and sets ``EHC_SMS_SENDER=my-gateway``. Nothing of the message is kept by the platform then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..identity.service import normalise_phone
from ..kit import ids
from ..kit.context import Ctx, Vault
from ..kit.errors import Problem
from ..kit.resealing import SealedColumn
from .models import SmsOutboxMessage


class SmsSender(Protocol):
    def send(self, phone: str, text: str) -> None:
        """Deliver ``text`` to the normalised mainland mobile number ``phone``; raise ``SendFailed``."""


class SendFailed(Problem):
    status = 503
    code = "sms_send_failed"
    title = "Text message not sent"


SenderFactory = Callable[[Ctx], SmsSender]
_senders: dict[str, SenderFactory] = {}


def register_sender(name: str, factory: SenderFactory) -> None:
    _senders[name] = factory


def get_sender(ctx: Ctx) -> SmsSender:
    name = ctx.settings.sms_sender
    if name == "outbox" and ctx.settings.environment == "production":
        raise SendFailed("The development SMS outbox is not allowed in production; configure an SMS gateway.",
                         code="sms_sender_not_configured")
    factory = _senders.get(name)
    if factory is None:
        raise SendFailed(f"No SMS sender named {name!r} is registered.", code="sms_sender_not_configured")
    return factory(ctx)


# -- the development outbox -----------------------------------------------------------------------

def _context(message_id: str) -> str:
    return f"sms_outbox.phone:{message_id}"


def sealed_columns() -> list[SealedColumn]:
    """The outbox's sealed phone numbers with their contexts, for re-sealing."""
    return [SealedColumn(SmsOutboxMessage.__table__.c.phone_sealed, lambda row: _context(row.id))]


class OutboxSender:
    """Development sender: the message goes to the ``sms_outbox`` table, in the caller's transaction."""

    def __init__(self, ctx: Ctx) -> None:
        self._session = ctx.session
        self._vault = ctx.vault

    def send(self, phone: str, text: str) -> None:
        message_id = ids.new_id()
        self._session.add(SmsOutboxMessage(
            id=message_id,
            phone_index=self._vault.blind("phone", phone),
            phone_sealed=self._vault.seal(phone, _context(message_id)),
            text=text,
        ))
        self._session.flush()


register_sender("outbox", OutboxSender)


@dataclass(frozen=True)
class OutboxEntry:
    phone: str
    text: str
    at: datetime


def outbox(session: Session, vault: Vault, *, phone: str | None = None, limit: int = 20) -> list[OutboxEntry]:
    """The most recent outbox messages, newest first, phones opened (development use only)."""
    query = select(SmsOutboxMessage).order_by(SmsOutboxMessage.created_at.desc(), SmsOutboxMessage.id).limit(limit)
    if phone is not None:
        query = query.where(SmsOutboxMessage.phone_index == vault.blind("phone", normalise_phone(phone)))
    return [
        OutboxEntry(phone=vault.open(row.phone_sealed, _context(row.id)), text=row.text, at=row.created_at)
        for row in session.scalars(query)
    ]
