"""Identifier systems of the master index, and who may bind, look up and see which.

Every identifier that leads to a person is a ``(system, value)`` pair, sealed at rest and found by a
unique keyed blind index (``mpi.values.Identifier``): one identifier can never lead to two people.

=====================  ==========================================================================
system                 what it is
=====================  ==========================================================================
``doc:NN``             an identity document (CV02.01.101 type NN), bound at card registration
``newborn``            a newborn without a birth certificate: parent + birth date + birth order
``mrn:<institution>``  a hospital's own patient number (medical record number, 病案号/患者ID)
``oldcard:<inst.>``    a card number of the hospital's own pre-platform patient card (就诊卡)
``ssc``                the social security card's card number (社会保障卡卡号)
``mi``                 the medical insurance number (医保编号 / 个人医保编码)
=====================  ==========================================================================

Why ``ssc`` is the *card* number: the social security number printed on the card is, by law, the
holder's resident ID number, which the index already holds as ``doc:01``; what differs between
cards (and what a hospital's insurance interface reads) is the 9-character card number.

Who may do what (the endpoints' role checks decide who reaches the API at all; these rules decide
which *systems* a caller reaches, and answer 403 ``identifier_system_not_allowed`` otherwise):

- Bind / unbind: a hospital (its system over the signed API, its window, doctor, nurse or admin
  staff) binds only its *own* ``mrn:<own id>`` and ``oldcard:<own id>``; ``ssc`` and ``mi`` are
  window work (window clerk, institution admin, the hospital system acting for its window).
  ``doc:*`` and ``newborn`` are never bound here: they come from registration, with real-name
  verification.
- Look up: a hospital looks up by its own local systems and by the national ones (``ssc``, ``mi``,
  ``doc:*``); health-commission operators by any system, but only people of their region; a
  platform admin anything.
- See: a hospital sees its own local numbers in clear (it gave them), the national identifiers
  masked, and *not at all* other institutions' local numbers: which hospital a person is known at
  is itself health information (a psychiatric or infectious-diseases hospital). Commission roles
  see every system, values masked.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..kit.roles import HOSPITAL_SYSTEM, Role
from ..accounts import service as accounts
from ..audit import service as audit
from ..identity.service import mask_number, normalise_number, parse_document
from ..institutions import service as institutions
from ..kit.codes import Channel
from ..kit.context import Actor, Ctx
from ..kit.errors import Forbidden, Invalid, NotFound, field_error
from . import lookups
from . import persons as mpi
from .lookups import CardRef
from .models import IdentifierUnbind, Merge, Person
from .values import Identifier

if TYPE_CHECKING:  # a name for annotations; the card service itself is reached inside functions
    from ..cards.service import Card

LOCAL_KINDS = ("mrn", "oldcard")  # per institution
NATIONAL_KINDS = ("ssc", "mi")
BINDABLE_KINDS = LOCAL_KINDS + NATIONAL_KINDS

_LOCAL_VALUE = re.compile(r"[0-9A-Z][0-9A-Z._/-]{0,39}")  # after normalisation
_SSC_VALUE = re.compile(r"[0-9A-Z]{9}")
_MI_VALUE = re.compile(r"[0-9A-Z]{6,32}")
_INSTITUTION_ID = re.compile(r"[0-9A-Za-z_-]{1,24}")
_DOC_SYSTEM = re.compile(r"doc:[0-9]{2}")

# Roles that do window work with national identifiers (social security, insurance).
_WINDOW_ROLES = frozenset({Role.WINDOW_CLERK.value, Role.INSTITUTION_ADMIN.value, HOSPITAL_SYSTEM})


@dataclass(frozen=True)
class System:
    """A parsed identifier system: its kind (``mrn``, ``ssc``, ``doc``...) and, for a hospital's
    local numbers, the institution whose numbering it is."""

    kind: str
    institution_id: str | None = None
    raw: str = ""

    @property
    def local(self) -> bool:
        return self.kind in LOCAL_KINDS


def _system_error(detail: str) -> Invalid:
    return Invalid(detail, code="identifier_system_invalid",
                   errors=[field_error("system", "identifier_system_invalid", detail)])


def _value_error(detail: str) -> Invalid:
    return Invalid(detail, code="identifier_value_invalid",
                   errors=[field_error("value", "identifier_value_invalid", detail)])


def parse_system(text: str, actor: Actor | None = None) -> System:
    """``mrn:<inst>`` / ``oldcard:<inst>`` / ``ssc`` / ``mi`` / ``doc:NN`` / ``newborn``.

    A bare ``mrn`` or ``oldcard`` means the caller's own institution's (a hospital need not spell
    out its own id).
    """
    text = (text or "").strip()
    kind, _, institution = text.partition(":")
    if kind in LOCAL_KINDS:
        if not institution and actor is not None:
            institution = institutions.own_institution(actor) or ""
        if not _INSTITUTION_ID.fullmatch(institution):
            raise _system_error(f"{kind} needs the institution: {kind}:<institution id>.")
        return System(kind, institution, f"{kind}:{institution}")
    if kind in NATIONAL_KINDS and not institution:
        return System(kind, None, kind)
    if _DOC_SYSTEM.fullmatch(text):
        return System("doc", None, text)
    if text == "newborn":
        return System("newborn", None, text)
    raise _system_error("Unknown identifier system: use mrn:<institution>, oldcard:<institution>, ssc, mi or doc:NN.")


def normalise(system: System, value: str) -> Identifier:
    """The canonical identifier: spaces and zero-width characters removed, full-width characters
    made half-width, ASCII letters upper-cased (the document rules, ``identity.normalise_number``),
    then the system's format checked."""
    if not isinstance(value, str) or not value.strip():
        raise _value_error("An identifier value is required.")
    if system.kind == "doc":
        return Identifier(system.raw, parse_document(system.raw[4:], value).number)
    if system.kind == "newborn":
        raise _system_error("Newborn keys are made by newborn registration, not looked up or bound by hand.")
    text = normalise_number("99", value)
    if system.local:
        if not _LOCAL_VALUE.fullmatch(text):
            raise _value_error("A hospital's patient or card number is 1-40 letters, digits, and . _ / - "
                               "(starting with a letter or digit).")
    elif system.kind == "ssc":
        text = text.replace("-", "")
        if not _SSC_VALUE.fullmatch(text):
            raise _value_error("A social security card number is 9 letters or digits.")
    elif system.kind == "mi":
        text = text.replace("-", "")
        if not _MI_VALUE.fullmatch(text):
            raise _value_error("A medical insurance number is 6-32 letters or digits.")
    return Identifier(system.raw, text)


def parse(system: str, value: str, actor: Actor | None = None) -> Identifier:
    return normalise(parse_system(system, actor), value)


# -- who reaches which system ---------------------------------------------------------------------

def _not_allowed(detail: str) -> Forbidden:
    return Forbidden(detail, code="identifier_system_not_allowed")


def _commission(actor: Actor) -> bool:
    return actor.kind == "staff" and bool(actor.roles & {Role.REGIONAL_OPERATOR.value, Role.PLATFORM_ADMIN.value})


def check_bind(actor: Actor, system: System) -> None:
    """May ``actor`` bind (or unbind) identifiers of ``system``? Raises 403 when not."""
    if system.kind not in BINDABLE_KINDS:
        raise _not_allowed("Documents and newborn keys are bound by card registration only.")
    if system.local:
        if institutions.own_institution(actor) != system.institution_id:
            raise _not_allowed("An institution binds only its own patient and card numbers.")
        return
    if not (actor.roles & _WINDOW_ROLES) or institutions.own_institution(actor) is None:
        raise _not_allowed("Social security and insurance numbers are bound at a service window.")


def check_lookup(actor: Actor, system: System) -> None:
    """May ``actor`` find a person by an identifier of ``system``? (Region: ``may_see_person``.)"""
    if institutions.reaches_everywhere(actor) or _commission(actor):
        return
    if system.local and institutions.own_institution(actor) != system.institution_id:
        raise _not_allowed("An institution looks people up only by its own local numbers.")


def commission_region(actor: Actor, operator_region: str | None) -> str | None:
    """The region prefix a commission caller is limited to: None for everywhere, "" for nowhere;
    institution callers are not limited by region (their limit is by system)."""
    if institutions.reaches_everywhere(actor):
        return None
    if actor.kind == "staff" and Role.REGIONAL_OPERATOR.value in actor.roles:
        return operator_region or ""
    return None


def may_see_person(actor: Actor, operator_region: str | None, person_region: str | None) -> bool:
    region = commission_region(actor, operator_region)
    if region is None:
        return True
    return bool(region) and bool(person_region) and institutions.in_region(person_region, region)


def view(actor: Actor, identifier: Identifier) -> str | None:
    """The value as ``actor`` may see it: clear, masked, or None (not to be listed at all)."""
    system = parse_system(identifier.system)
    if system.local:
        own = institutions.own_institution(actor)
        if own is not None:
            return identifier.value if own == system.institution_id else None
        return mask_value(identifier)
    return mask_value(identifier)


def mask_value(identifier: Identifier) -> str:
    """Masked like a document number: a resident ID keeps 3 + 4 characters, anything else 1 + 2."""
    if identifier.system.startswith("doc:"):
        try:
            return mask_number((identifier.system[4:], identifier.value))
        except Invalid:
            pass
    value = identifier.value
    if len(value) <= 3:
        return "*" * len(value)
    return value[0] + "*" * (len(value) - 3) + value[-2:]


# -- binding, unbinding, looking up ----------------------------------------------------------------

IDENTIFIERS_PURPOSE = "mpi.identifiers"
LOOKUP_PURPOSE = "mpi.lookup"
REGISTRATION_SCENE = "010101"  # the care step a binding scan is recorded under when none is given
log = logging.getLogger("ehc.mpi")


@dataclass(frozen=True)
class Scan:
    """A resident's scanned code, and the card use it records (scene and channel as for
    ``POST /api/v1/qr/verify``)."""

    code: str
    scene: str = REGISTRATION_SCENE
    channel: str | None = None  # by default the caller's channel (window, workstation, hospital system)
    terminal_id: str | None = None
    department: str | None = None


@dataclass(frozen=True)
class Bound:
    person: Person
    card: CardRef | None
    identifier: Identifier
    created: bool
    use_id: int | None  # the card use the scan recorded, if bound by a scanned code


def _operator_region(ctx: Ctx) -> str | None:
    return accounts.staff_region(ctx.session, ctx.actor)


def person_for_ref(ctx: Ctx, ref: str) -> tuple[Person, CardRef | None]:
    """A person by their card's EHC ID (64 hex characters) or their master-index id (32), after
    merges; 404 when out of the caller's region, exactly as when there is no such person."""
    ref = (ref or "").strip().upper()
    if len(ref) == 32:
        try:
            person = mpi.resolve(ctx, ref)
        except NotFound:
            raise NotFound("No such person.", code="person_not_found") from None
    else:
        card = lookups.get_card(ctx, ref)
        person = mpi.resolve(ctx, card.person_id)
    if not may_see_person(ctx.actor, _operator_region(ctx), person.region_code):
        raise NotFound("No such person.", code="person_not_found")
    return person, lookups.card_of_person(ctx, person)


ScanVerifier = Callable[[Ctx, "Scan", str], tuple[CardRef, int]]
"""The QR domain's online verify path, whole (signature, expiry, revocation, single use), given the
scan and the channel to record the card use under: ``(card, card use id)``. The door that takes the
scan passes it (``mpi.endpoints``: ``qr.service.verify``), so the index does not depend on the QR
domain, which is built on the card registry, which is built on the index."""


def bind(ctx: Ctx, system: str, value: str, *, scan: Scan | None = None, ref: str | None = None,
         verify_scan: ScanVerifier | None = None) -> Bound:
    """Bind a hospital's number (or a social security / insurance number) to the person behind a
    scanned code (checked by ``verify_scan``) or a card looked up before. Binding the same thing
    twice answers the same."""
    parsed = parse_system(system, ctx.actor)
    check_bind(ctx.actor, parsed)
    identifier = normalise(parsed, value)
    if (scan is None) == (ref is None):
        raise Invalid("Give either the scanned code or the card's EHC ID.", code="bind_target_required",
                      errors=[field_error("code", "bind_target_required", "code or ehc_id")])
    use_id = None
    if scan is not None:
        if verify_scan is None:
            raise ValueError("binding by a scanned code needs the QR domain's verify path (verify_scan)")
        # A bind by scan *is* a card use (the resident shows the code at the hospital's registration,
        # the hospital files its number), so it is recorded as one, under ``scan.scene``.
        card, use_id = verify_scan(ctx, scan, scan_channel(ctx, scan))
        person = mpi.resolve(ctx, card.person_id)
    else:
        person, card = person_for_ref(ctx, ref)
    created = mpi.add_identifier(ctx, person, identifier)
    audit.record_access(ctx, person.id, "change", IDENTIFIERS_PURPOSE)
    return Bound(person, card, identifier, created, use_id)


def scan_channel(ctx: Ctx, scan: Scan) -> str:
    """The channel a binding scan's card use is recorded under: the one given, else the caller's
    (a hospital system when the caller came through the website)."""
    return scan.channel or (ctx.actor.channel.value if ctx.actor.channel != Channel.WEBSITE
                            else Channel.HOSPITAL_SYSTEM.value)


def unbind(ctx: Ctx, system: str, value: str, ref: str, reason: str) -> Person:
    """Remove a wrong link. The reason is required and kept with who and when (``mpi_identifier_unbinds``);
    the audit trail records the change to the person's data."""
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("Say why the link is wrong.", code="reason_required",
                      errors=[field_error("reason", "reason_required", "A reason is required.")])
    parsed = parse_system(system, ctx.actor)
    check_bind(ctx.actor, parsed)
    identifier = normalise(parsed, value)
    person, _ = person_for_ref(ctx, ref)
    mpi.remove_identifier(ctx, person, identifier)
    audit.record_access(ctx, person.id, "change", IDENTIFIERS_PURPOSE)
    actor = ctx.actor
    ctx.session.add(IdentifierUnbind(person_id=person.id, system=identifier.system, reason=reason[:500],
                                     actor_kind=actor.kind, actor_id=actor.id, institution_id=actor.institution_id))
    log.info("identifier unbound", extra={"person_id": person.id, "system": parsed.raw, "actor_kind": actor.kind,
                                          "actor_id": actor.id})
    return person


def lookup(ctx: Ctx, system: str, value: str) -> tuple[Person, CardRef | None]:
    """The person an identifier leads to, within the caller's authority; audited."""
    parsed = parse_system(system, ctx.actor)
    check_lookup(ctx.actor, parsed)
    person = mpi.find_by_identifier(ctx, normalise(parsed, value))
    if person is None or not may_see_person(ctx.actor, _operator_region(ctx), person.region_code):
        raise NotFound("No person is known by this identifier.", code="person_not_found")
    audit.record_access(ctx, person.id, "read", LOOKUP_PURPOSE)
    return person, lookups.card_of_person(ctx, person)


def visible_identifiers(ctx: Ctx, person: Person) -> list[tuple[str, str]]:
    """The person's cross-references the caller may see, as (system, value shown); see ``view``."""
    shown = []
    for identifier in mpi.identifiers_of(ctx, person, purpose=IDENTIFIERS_PURPOSE):
        value = view(ctx.actor, identifier)
        if value is not None:
            shown.append((identifier.system, value))
    return shown


# -- merging two people of the index (operators) ---------------------------------------------------

def merge_people(ctx: Ctx, source_ref: str, target_ref: str, reason: str) -> Merge:
    """An operator merges two people the index holds twice (by their cards' EHC IDs or master-index
    ids); both must be in the operator's region. Reversible with ``undo_merge``."""
    reason = _reason(reason)
    source, _ = person_for_ref(ctx, source_ref)
    target, _ = person_for_ref(ctx, target_ref)
    return mpi.merge(ctx, source, target, reason)


def undo_merge(ctx: Ctx, merge_id: int, reason: str) -> Merge:
    reason = _reason(reason)
    merge = visible_merge(ctx, merge_id)
    return mpi.unmerge(ctx, merge.id, reason)


def visible_merge(ctx: Ctx, merge_id: int) -> Merge:
    """A merge whose surviving person is in the caller's region (404 otherwise, as a missing one)."""
    merge = mpi.get_merge(ctx, merge_id)
    region = _operator_region(ctx)
    for person_id in (merge.source_person_id, merge.target_person_id):
        person = ctx.session.get(Person, person_id)
        if not may_see_person(ctx.actor, region, person.region_code):
            raise NotFound("No such merge.", code="merge_not_found")
    return merge


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("Say why.", code="reason_required",
                      errors=[field_error("reason", "reason_required", "A reason is required.")])
    return reason
