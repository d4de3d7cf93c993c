"""Issuing and verifying health-card QR codes on the platform (docs/qr-format.md §5, §9, §13).

The codec (``codec/``) is pure; this module brings the key store, the card registry and the
database: the active QR key signs, the card-reference secret (key kind ``qrref``) hides the card,
the key store's QR keys (active and retired) verify, the card's sequence and status decide
revocation, ``qr_used_codes`` makes a dynamic code single use, ``card_uses`` records every use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import func, select

from ..audit import service as audit
from ..cards import service as cards
from ..cards.service import Card, CardStatus
from ..crypto import SM2PublicKey
from ..institutions import service as institutions
from ..kit import dialect
from ..kit.claims import Claims
from ..kit.clock import utcnow
from ..kit.context import Ctx
from ..kit.errors import Conflict
from ..mpi import service as mpi
from . import codec, repository
from . import second_factor as factors
from .codec.codes import check_use_codes
from .models import CardUse, UsedCode

DYNAMIC_VALIDITY = codec.DEFAULT_VALIDITY  # seconds a dynamic code is accepted, platform-wide (§3)
REFRESH_AFTER = 60  # seconds after which a phone redraws its dynamic code (settings.qr_refresh_seconds)
PAYMENT_PURPOSE = "medical-payment"  # what the payment part of a two-in-one code pays for
ONLINE_SKEW = 0  # the online check runs on the issuer's own clock (§9 step 8)
VERIFY_PURPOSE = "card.verify"
PURGE_EVERY = timedelta(seconds=60)  # per process: drop used-code rows whose code has expired anyway


class PaymentChannel(Protocol):
    """A source of payment applications for two-in-one codes (the payments domain implements it)."""

    name: str

    def template_for(self, card: Card, *, purpose: str, now: datetime) -> bytes:
        """A fresh ``61`` template for this card: a new one-time token on every call (§5.4), so
        that two codes of one card cannot be linked through their payment part."""
        ...


QRRevoked = codec.QRRevoked
QRReplayed = codec.QRReplayed


# -- keys ----------------------------------------------------------------------------------------
def _signer(ctx: Ctx) -> codec.Signer:
    keys = ctx.vault.keys
    info = keys.active("qr")
    return codec.Signer(info.id, keys.signing_key(info.id))


def ref_secret(ctx: Ctx) -> bytes:
    keys = ctx.vault.keys
    return keys.secret(keys.active("qrref").id)


def key_lookup(ctx: Ctx, code_type: codec.CodeType, now: datetime):  # noqa: ANN202
    """The store's QR keys: the active one; a retired one for dynamic codes until its ``not_after``,
    for static codes until it is withdrawn from the store (§9.2)."""
    keys = ctx.vault.keys

    def lookup(key_id: str) -> SM2PublicKey | None:
        for info in keys.infos("qr"):
            if info.id != key_id:
                continue
            if info.status not in ("active", "retired"):
                return None  # withdrawn (ehc keys withdraw): out of the trust list, verifies nothing (§11.2)
            if (info.status != "active" and code_type is codec.CodeType.DYNAMIC and info.not_after
                    and datetime.fromisoformat(info.not_after) < now):
                return None
            return keys.public_key(key_id)
        return None

    return lookup


# -- issuing -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Issued:
    text: str
    expires_at: datetime | None
    code_type: codec.CodeType


def _active_card(card: Card) -> None:
    if card.status != CardStatus.NORMAL:
        raise Conflict(f"This card's status is {card.status}; no code is issued for it.", code="card_not_active")


def issue_dynamic(ctx: Ctx, card: Card, *, now: datetime | None = None,
                  payment: PaymentChannel | None = None) -> Issued:
    """A fresh dynamic code for a normal card (revocation of dynamic codes is enforced here, §9.1).

    With ``payment`` (a ``payments.PaymentChannel``) it is a two-in-one ``EHCM1:`` code: the channel's
    one-time payment template first, then the health code signed with its binding (§8)."""
    _active_card(card)
    now = now or utcnow()
    template = payment.template_for(card, purpose=PAYMENT_PURPOSE, now=now) if payment is not None else None
    code = codec.issue_dynamic(_signer(ctx), ref_secret=ref_secret(ctx), ehc_id=card.ehc_id,
                               sequence=card.sequence, now=now, validity=DYNAMIC_VALIDITY, payment_template=template)
    expires = datetime.fromtimestamp(code.payload.expires_at, now.tzinfo)
    text = codec.combine(code, template) if template is not None else code.text
    return Issued(text, expires, codec.CodeType.DYNAMIC)


def issue_static(ctx: Ctx, card: Card, *, now: datetime | None = None) -> Issued:
    """A printable code for the card's current issue; a reissue or a loss revokes it."""
    _active_card(card)
    code = codec.issue_static(_signer(ctx), ref_secret=ref_secret(ctx), ehc_id=card.ehc_id,
                              sequence=card.sequence, now=now or utcnow())
    return Issued(code.text, None, codec.CodeType.STATIC)


# -- verifying online ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Use:
    scene: str
    channel: str
    terminal_id: str | None = None
    department: str | None = None


@dataclass(frozen=True)
class Verified:
    card: Card
    payload: codec.Payload
    person: object
    details: mpi.Demographics
    identifiers: list[mpi.Identifier]
    national_plaintext: str
    use: CardUse


def check_use(use: Use) -> None:
    check_use_codes(use.scene, use.channel)


def card_for(ctx: Ctx, ref: codec.CardRef) -> Card | None:
    prefix = ref.ehc_id_prefix
    return cards.card_by_id_prefix(ctx, prefix)


def open_code(ctx: Ctx, text: str, *, now: datetime) -> tuple[codec.Payload, Card]:
    """§9 steps 1-10 on the platform: the code's verified payload and its card, which is normal.
    Records nothing (``verify`` does). Raises a ``QRRejected``, or ``card_not_active``."""
    payload, ref = _signed_payload(ctx, text, now=now)
    return payload, _usable(card_for(ctx, ref), ref)


def _signed_payload(ctx: Ctx, text: str, *, now: datetime) -> tuple[codec.Payload, codec.CardRef]:
    """§9 steps 1-8: the code's signature, validity and card reference; the database is not read."""
    # A two-in-one code: verify its health part (the payment part is the payment channel's, §8).
    code = codec.split(text.strip() if isinstance(text, str) else text).code
    payload = codec.verify(code, key_lookup(ctx, code.payload.type, now), now=now, skew=ONLINE_SKEW)
    return payload, codec.open_card_ref(ref_secret(ctx), payload)


def _usable(card: Card | None, ref: codec.CardRef) -> Card:
    """§9 steps 9-10: the card the reference names is this issue of it, and normal."""
    if card is None or card.sequence != ref.sequence:
        raise QRRevoked("This code belongs to an earlier issue of the card: it no longer works.")
    if card.status in (CardStatus.LOST, CardStatus.CANCELLED):
        raise QRRevoked(f"The card is {card.status}: its codes no longer work.")
    if card.status != CardStatus.NORMAL:
        raise Conflict(f"This card's status is {card.status}.", code="card_not_active")
    return card


def payment_part(text: str) -> bytes | None:
    """The payment channel's ``61`` template of a two-in-one code (its binding to the signed health code
    checked, §8), or None for a health code alone. Raises a ``QRRejected`` for a malformed code."""
    return codec.split(text.strip() if isinstance(text, str) else text).payment_template


def verify(ctx: Ctx, text: str, use: Use, *, now: datetime | None = None,
           second_factor: factors.Proof | None = None) -> Verified:
    """Verify a code online (§9 steps 1-11) and record the card use. Raises a ``QRRejected``. A static
    code at a step in ``codes.SECOND_FACTOR_SCENES`` also needs ``second_factor`` (§9.3).

    A dynamic code on PostgreSQL, the path a province runs millions of times a day, takes two
    statements and no other at commit: the card with its holder and their sealed identifiers, then one
    that claims the code, records the use and the audit event together (:func:`_claim_and_record`). Every other
    case (static codes, SQLite, a holder merged into another person) takes the steps one by one."""
    check_use(use)
    now = now or utcnow()
    payload, ref = _signed_payload(ctx, text, now=now)
    if payload.type is codec.CodeType.DYNAMIC and dialect.name(ctx.session) == "postgresql":
        found = cards.card_and_holder_by_id_prefix(ctx, ref.ehc_id_prefix)
        card = _usable(found[0] if found is not None else None, ref)
        person, sealed = found[1], found[2]
        if person.merged_into is None:
            factors.require(ctx, card, payload.type, use.scene, second_factor)
            return _claim_and_record(ctx, card, person, sealed, payload, use, now)
    else:
        card = _usable(card_for(ctx, ref), ref)
    factors.require(ctx, card, payload.type, use.scene, second_factor)
    if payload.type is codec.CodeType.DYNAMIC:
        _claim(ctx, payload)
        _purge_due(ctx, now)
    person, details, identifiers = cards.holder(ctx, card, purpose=VERIFY_PURPOSE)
    row = CardUse(**_use_values(ctx, card, payload, use, now), region_code=region_of(ctx, ctx.actor.institution_id))
    ctx.session.add(row)
    ctx.session.flush()
    return Verified(card, payload, person, details, identifiers, codec.national_plaintext(card.ehc_id, payload), row)


def _use_values(ctx: Ctx, card: Card, payload: codec.Payload, use: Use, now: datetime) -> dict:
    # key id and nonce let offline uploads deduplicate against this use (§9.1); the region (added by
    # the caller) lets the commission's operators monitor their region's uses.
    actor = ctx.actor
    return {"ehc_id": card.ehc_id, "person_id": card.person_id, "scene": use.scene, "channel": use.channel,
            "institution_id": actor.institution_id, "terminal_id": use.terminal_id, "department": use.department,
            "code_type": int(payload.type), "actor_kind": actor.kind, "actor_id": actor.id, "operator": actor.operator,
            "at": now, "recorded_at": now, "key_id": payload.key_id, "nonce": payload.nonce.hex(),
            "offline": False, "replay": False}


_CLAIM_AND_RECORD = repository.ClaimAndRecord(institutions.region_of_institution, audit.access_insert)


def _claim_and_record(ctx: Ctx, card: Card, person: mpi.Person, sealed: list[tuple[str, str]],
                      payload: codec.Payload, use: Use, now: datetime) -> Verified:
    """A dynamic code's claim, its use and the audit event of the holder's details in one statement
    (``repository.ClaimAndRecord``): the same guarantees as the steps one by one, in one round trip.
    The code is claimed exactly once (the same unique (key id, nonce) row); the use and the event
    are written only by the statement that claimed it, and commit with it or not at all. The event
    is chained in the next batch (the sweeper of ``ehc serve`` within 0.2 s, or any reader of the
    trail, which chains first), as every audited commit's is (``audit.service``). The holder's details are
    opened only after the event that records their reading is written."""
    values = _use_values(ctx, card, payload, use, now)
    done = _CLAIM_AND_RECORD(
        ctx.session, {"key_id": payload.key_id, "nonce": payload.nonce.hex(), "expires_at": _code_expiry(payload)},
        values, audit.access_values(ctx, person.id, "read", VERIFY_PURPOSE))
    if done is None:
        raise QRReplayed("This code has been used already: show a fresh one.")
    use_id, region_code, event_id = done
    _purge_due(ctx, now)
    if event_id is not None:
        details, identifiers = mpi.open_holder(ctx, person, sealed, recorded_as=event_id)
    else:  # the trail records this read otherwise (or not: a resident's own), see audit.access_values
        details = mpi.demographics(ctx, person, purpose=VERIFY_PURPOSE)
        identifiers = mpi.identifiers_of(ctx, person, purpose=VERIFY_PURPOSE)
    row = CardUse(id=use_id, region_code=region_code, **values)  # as written; not loaded again
    return Verified(card, payload, person, details, identifiers, codec.national_plaintext(card.ehc_id, payload), row)


def region_of(ctx: Ctx, institution_id: str | None) -> str | None:
    """The GB/T 2260 region of the institution a use happens at, stored with the use."""
    institution = institutions.find_institution(ctx.session, institution_id) if institution_id else None
    return institution.region_code if institution is not None else None


# Single use: (key id, nonce) is unique; a row comes back only when this transaction claimed the
# pair, and a concurrent claim of the same code waits for the first transaction on PostgreSQL and
# then sees the conflict (kit.claims).
USED_CODES = Claims(UsedCode.__table__, ["key_id", "nonce"], returning="id", purge_every=PURGE_EVERY)


def claim_code(ctx: Ctx, key_id: str, nonce: str, expires_at: datetime) -> bool:
    """Mark a dynamic code used until ``expires_at``; False when it was used already."""
    return USED_CODES.claim(ctx.session, utcnow(), key_id=key_id, nonce=nonce, expires_at=expires_at)


def _code_expiry(payload: codec.Payload) -> datetime:
    """Until when a dynamic code's claim must stand: past it, the code is refused as expired anyway."""
    return datetime.fromtimestamp(payload.expires_at, utcnow().tzinfo) + timedelta(seconds=codec.DEFAULT_SKEW)


def _claim(ctx: Ctx, payload: codec.Payload) -> None:
    """Single use: the (key id, nonce) row is unique; the second claim of a code is a replay."""
    if not claim_code(ctx, payload.key_id, payload.nonce.hex(), _code_expiry(payload)):
        raise QRReplayed("This code has been used already: show a fresh one.")


def uses_of(ctx: Ctx, card: Card, *, limit: int = 50) -> list[CardUse]:
    """A card's uses, newest first (the holder's card-use history)."""
    query = select(CardUse).where(CardUse.ehc_id == card.ehc_id).order_by(CardUse.at.desc(), CardUse.id.desc())
    return list(ctx.session.scalars(query.limit(limit)))


def last_scan_at(ctx: Ctx, person_ids: list[str], institution_id: str, since: datetime) -> datetime | None:
    """When a dynamic code of one of these people (a person and those merged into them) was last verified
    at ``institution_id`` since ``since``: the resident showing the code at a care step (the records
    domain's default consent for the treating institution). None when not."""
    query = select(func.max(CardUse.at)).where(CardUse.person_id.in_(person_ids), CardUse.institution_id == institution_id,
                                               CardUse.code_type == int(codec.CodeType.DYNAMIC), CardUse.at >= since,
                                               CardUse.replay.is_(False))
    return ctx.session.scalar(query)


def purge_used_codes(ctx: Ctx, now: datetime) -> int:
    """Forget used dynamic codes past their expiry (+ skew): they are refused as expired by then."""
    return USED_CODES.purge(ctx.session, now)


def _purge_due(ctx: Ctx, now: datetime) -> None:
    USED_CODES.purge_due(ctx.session, now)
