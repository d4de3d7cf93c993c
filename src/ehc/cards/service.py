"""Card rules: registration (one card per person, from any channel, the bulk importer's batches
included), family, newborns, temporary cards, and the lifecycle. Knows nothing of HTTP; every
function takes a ``Ctx``, but the batch forms the importer calls inside its own transaction (they
take its connection). The queries are in ``repository.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Select, bindparam, null, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ..audit import service as audit
from ..identity.service import (
    Applicant,
    Document,
    DocumentType,
    Verifier,
    canonical_name,
    get_verifier,
    normalise_phone,
    parse_document,
)
from ..kit import dialect, ids
from ..kit.clock import utcnow
from ..kit.context import Actor, Ctx
from ..kit.errors import Conflict, Invalid, NotFound, Problem, field_error
from ..mpi import service as mpi
from . import repository as repo
# Part of this face too: ``Card``, ``CardStatus`` and ``FamilyBinding`` (other domains type with them
# and compare statuses), and the wire models ``FamilyMemberIn`` and ``NewbornIn`` (``me`` takes them).
from .models import Card, CardEvent, CardStatus, FamilyBinding
from .schemas import FamilyMemberIn, NewbornIn, RegistrationIn

S = CardStatus
_LIVE = frozenset({S.PENDING_REVIEW, S.REJECTED, S.NORMAL, S.LOST})  # every status but cancelled

# action -> (statuses it may start from, statuses it may end in). The one table of allowed status
# changes: every change of a card's status goes through ``_change_status``, which checks it here.
# An action with one end status always ends there; ``modify`` ends where the re-verification says
# (or stays), ``unmerge`` ends in the status the card had before the merge cancelled it.
TRANSITIONS: dict[str, tuple[frozenset[CardStatus], frozenset[CardStatus]]] = {
    "approve": (frozenset({S.PENDING_REVIEW}), frozenset({S.NORMAL})),
    "reject": (frozenset({S.PENDING_REVIEW}), frozenset({S.REJECTED})),
    "report_lost": (frozenset({S.NORMAL}), frozenset({S.LOST})),
    "recover": (frozenset({S.LOST}), frozenset({S.NORMAL})),
    "reissue": (frozenset({S.NORMAL, S.LOST}), frozenset({S.NORMAL})),
    "cancel": (_LIVE, frozenset({S.CANCELLED})),
    "modify": (_LIVE, _LIVE),
    "unmerge": (frozenset({S.CANCELLED}), _LIVE),
}
# The actions an operator asks for by name (``transition``); ``modify`` and ``unmerge`` have their
# own functions, which decide the end status.
ACTIONS = ("approve", "reject", "report_lost", "recover", "reissue", "cancel")
# Actions that make a new issue of the card (sequence + 1): the codes of the earlier issue stop working.
NEW_ISSUE = frozenset({"reissue", "unmerge"})
# The status a new card starts in: normal, or pending review when the verifier cannot confirm.
ISSUE_STATUSES = frozenset({S.NORMAL, S.PENDING_REVIEW})


@dataclass(frozen=True)
class CardChange:
    """One step of a card's life, as other domains see it (never the card's row itself)."""

    ehc_id: str
    person_id: str
    sequence: int  # after the step
    sequence_before: int
    status: CardStatus  # after the step
    from_status: CardStatus
    action: str


# Another domain's reaction to a step of a card's life (the QR domain revokes static codes of a lost,
# cancelled or reissued card, ``me`` ends the sessions drawing its dynamic codes), called inside the
# same transaction with the step.
TransitionHook = Callable[[Ctx, CardChange], None]
_transition_hooks: list[TransitionHook] = []


def on_transition(hook: TransitionHook) -> TransitionHook:
    """Register a reaction to card transitions (see ``TransitionHook``); ``ehc.wiring`` does, once."""
    _transition_hooks.append(hook)
    return hook


# Actions whose reason must be given (they take something away from the holder).
REASON_REQUIRED = {"reject", "cancel", "report_lost"}
RELATIONS = ("child", "parent", "spouse", "grandchild", "grandparent", "sibling", "other")


# What an applicant gives, in the order forms and import files show it: the one list of these fields.
REGISTRATION_FIELDS = ("name", "document_type", "document_number", "sex", "birth_date", "phone", "address",
                       "region_code")


@dataclass(frozen=True)
class Registration:
    """What an applicant gives, as received (normalised and validated by ``register``)."""

    name: str
    document_type: str
    document_number: str
    sex: str | None = None
    birth_date: date | None = None
    phone: str | None = None
    address: str | None = None
    region_code: str | None = None


def registration_of(body: RegistrationIn) -> Registration:
    """An application as the wire (API, pages) carries it (a ``FamilyMemberIn`` is one too)."""
    return Registration(
        name=body.name,
        document_type=body.document.type,
        document_number=body.document.number,
        sex=body.sex,
        birth_date=body.birth_date,
        phone=body.phone,
        address=body.address,
        region_code=body.region_code,
    )


@dataclass(frozen=True)
class Issued:
    card: Card
    person: mpi.Person
    created: bool  # False when the document already had a card: the existing one is returned
    # A person created by this registration: the details and identifiers just sealed onto them, in
    # clear, so the answer need not read and open them again (``issued_holder``). None otherwise.
    given: tuple[mpi.Demographics, list[mpi.Identifier]] | None = None


# -- registration ---------------------------------------------------------------------------------

def register(ctx: Ctx, application: Registration) -> Issued:
    """Register a person from a legal document and issue their card, or return the card they have.

    Never two cards for one person: the document's blind index is unique in the master index, so a
    concurrent registration of the same document loses the race and returns the winner's card.
    """
    errors: list[dict] = []
    document = collect_field_errors(errors, parse_document, application.document_type, application.document_number)
    details = validated_details(errors, application, document)
    if errors:
        raise Invalid("The application has invalid fields.", code="application_invalid", errors=errors)
    return _issue_for(ctx, details, document_identifier(document), document=document)


def collect_field_errors(errors: list[dict], fn, *args):  # noqa: ANN001, ANN202
    """Run one validator, adding its field errors to ``errors``: one answer lists every bad field.
    Public so the bulk importer applies exactly these checks."""
    try:
        return fn(*args)
    except Invalid as exc:
        errors.extend(exc.errors or [field_error("", exc.code, exc.detail)])
        return None


def validated_details(errors: list[dict], given: "Registration | Changes", document: Document | None) -> mpi.Demographics:
    name = collect_field_errors(errors, canonical_name, given.name) if given.name is not None else None
    phone = collect_field_errors(errors, normalise_phone, given.phone) if given.phone else None
    region = given.region_code or (document.region_code if document else None)
    if region is not None and not (len(region) == 6 and region.isdigit()):
        errors.append(field_error("region_code", "region_code_invalid", "A region code is 6 digits (GB/T 2260)."))
    if given.sex is not None and given.sex not in ("0", "1", "2", "9"):
        errors.append(field_error("sex", "sex_invalid", "Sex is a GB/T 2261.1 code: 0, 1, 2 or 9."))
    return mpi.Demographics(
        name=name,
        sex=given.sex or (document.sex if document else None) or "0",
        birth_date=given.birth_date or (document.birth_date if document else None),
        phone=phone,
        address=(given.address or "").strip() or None,
        region_code=region,
    )


def document_identifier(document: Document) -> mpi.Identifier:
    return mpi.Identifier(f"doc:{document.type.value}", document.number)


def _issue_for(
    ctx: Ctx,
    details: mpi.Demographics,
    identifier: mpi.Identifier,
    *,
    document: Document | None,
    verify: bool = True,
) -> Issued:
    # The person goes in straight away: the document's unique blind index says whether someone holds
    # it already (registered before, or by a concurrent registration that committed first, which this
    # insert waits for), and then theirs is the card. No look-up first: most applicants are new, and a
    # refusal below (the verifier's) rolls the insert back with the rest of the transaction.
    try:
        person = mpi.create_person(ctx, details, [identifier])
    except mpi.IdentifierTaken as taken:
        return _existing(ctx, mpi.resolve(ctx, taken.person_id), details)

    status, verifier = S.NORMAL, None
    if verify and document is not None:
        status, verifier = issue_status(get_verifier(ctx.settings.verifier), details, document)
    if document is not None:
        # The same person may already be in the index under another document or none (an emergency
        # patient, a hospital's list): candidates go to the master index's review queue.
        mpi.screen_registration(ctx, person, details, identifier)
    card = _new_card(ctx, person, status, verifier)
    return Issued(card=card, person=person, created=True, given=(details, [identifier]))


def issue_status(verifier: Verifier, details: mpi.Demographics, document: Document) -> tuple[CardStatus, str]:
    """The real-name verifier decides a new card's status: normal when it confirms the details,
    pending review when it cannot tell; a 422 ``real_name_verification_failed`` when they do not
    match. Returns the status and the verifier's name. The bulk importer decides with it too."""
    result = verifier.verify(
        Applicant(name=details.name or "", sex=details.sex, birth_date=details.birth_date, document=document)
    )
    if result.outcome == "failed":
        raise Invalid(
            "Real-name verification failed: the details do not match the document.",
            code="real_name_verification_failed",
            errors=result.errors,
        )
    return (S.NORMAL if result.outcome == "passed" else S.PENDING_REVIEW), result.verifier


def _existing(ctx: Ctx, person: mpi.Person, details: mpi.Demographics) -> Issued:
    on_file = mpi.demographics(ctx, person, purpose="card.register")
    if details.name and on_file.name and details.name != on_file.name:
        # Same document, another name: a typo or an impostor. Never hand out the card either way.
        raise Conflict(
            "This document is already registered under a different name. Please go to a service "
            "window with the document to correct the record.",
            code="document_registered_other_name",
        )
    card = card_of_person(ctx, person)
    if card is None:  # a person from another source (e.g. a hospital's patient list) gets a card now
        card = _new_card(ctx, person, S.NORMAL, None)
        return Issued(card=card, person=person, created=True)
    return Issued(card=card, person=person, created=False)


# A QR code carries only the first 80 bits of the card id (docs/qr-format.md §5.2): no two cards may share them.
CARD_ID_PREFIX = repo.CARD_ID_PREFIX  # hex digits
_FRESH_ID_TRIES = 8  # 2^-80 per try and card: a second clash means the id generator is broken


def card_id_prefix(ehc_id: str) -> str:
    return ehc_id[:CARD_ID_PREFIX]


def card_by_id_prefix(ctx: Ctx, prefix: str) -> Card | None:
    """The card whose id starts with ``prefix`` (upper-case hex), as a QR code's card reference is
    resolved (docs/qr-format.md §5.2): a range scan of the primary key."""
    return repo.by_id_prefix(ctx.session, prefix)


@functools.cache  # built once: a statement is cheap to run and costly to build
def _card_and_holder_statement() -> Select:
    return _with_holder(repo.with_id_prefix_param())


def card_and_holder_by_id_prefix(ctx: Ctx, prefix: str) -> tuple[Card, mpi.Person, list[tuple[str, str]]] | None:
    """As :func:`card_by_id_prefix`, with the holder's master index row (as on the card, before any
    merge) and their identifiers still sealed, in one round trip (PostgreSQL): the online QR check
    needs all three. Nothing is opened or recorded here (``mpi.open_holder``, audited, does that)."""
    return _card_and_holder_row(ctx, _card_and_holder_statement(), repo.id_prefix_params(prefix))


def _with_holder(card_query: Select) -> Select:
    # The card's holder (its person row, as on the card) and their identifiers as sealed pairs.
    holder = mpi.Person
    return (card_query.add_columns(holder, mpi.sealed_identifiers_column(holder.id))
            .join(holder, holder.id == Card.person_id))


def _card_and_holder_row(ctx: Ctx, statement: Select,
                         params: dict[str, str]) -> tuple[Card, mpi.Person, list[tuple[str, str]]] | None:
    row = ctx.session.execute(statement, params).first()
    return None if row is None else (row[0], row[1], [(system, value) for system, value in row[2]])


def card_id_prefix_taken(session: Session | Connection, ehc_id: str) -> bool:
    """Whether a card's id starts with the same 80 bits."""
    return repo.id_prefix_taken(session, card_id_prefix(ehc_id))


def fresh_card_id(session: Session | Connection) -> str:
    """A random card id whose 80-bit prefix no card has yet (the batch issue's redraws; a single card's
    issue, ``_new_card``, draws the same way and lets its insert check the prefix)."""
    for _ in range(_FRESH_ID_TRIES):
        candidate = ids.new_card_id()
        if not card_id_prefix_taken(session, candidate):
            return candidate
    raise Problem("No free card id was found; try again.", code="card_id_unavailable", status=503,
                  title="Service unavailable")


def _new_card(ctx: Ctx, person: mpi.Person, status: CardStatus, verifier: str | None, *, temporary: bool = False) -> Card:
    if status not in ISSUE_STATUSES:
        raise ValueError(f"A card is not issued {status.value}.")
    now = utcnow()
    card = Card(
        person_id=person.id,
        status=status.value,
        sequence=1,
        temporary=temporary,
        channel=ctx.actor.channel.value,
        institution_id=ctx.actor.institution_id,
        operator=ctx.actor.operator,
        verifier=verifier,
        issued_at=now,
        updated_at=now,
    )
    # The id drawn as ``fresh_card_id`` draws it, but checked by the insert itself: the unique index on
    # the 80-bit prefix refuses a taken one (then a fresh draw), in one statement instead of a probe
    # and an insert. The card goes in with its "register" event and audit event.
    postgresql = dialect.is_postgresql(ctx.session)
    for _ in range(_FRESH_ID_TRIES):
        card.ehc_id = ids.new_card_id()
        if postgresql:  # the card, its event and audit event in one statement
            if _issue_with_events(ctx, card, status):
                return card
        elif repo.insert_new(ctx.session, card):
            _record(ctx, card, "register", None, status, None)
            return card
        if not card_id_prefix_taken(ctx.session, card.ehc_id):
            # Refused for its holder: a concurrent issue of this person's card committed first.
            raise Conflict("A card is being issued to this person at this moment; try again.", code="card_issue_busy")
    raise Problem("No free card id was found; try again.", code="card_id_unavailable", status=503,
                  title="Service unavailable")


_ISSUE_WITH_EVENTS = repo.IssueWithEvents(audit.access_insert)


def _issue_with_events(ctx: Ctx, card: Card, status: CardStatus) -> bool:
    """:func:`repo.insert_new` and :func:`_record` of the "register" step in one statement
    (``repo.IssueWithEvents``, PostgreSQL): whether the card went in. The audit event is the one
    :func:`_record` writes; when the trail wants it written otherwise (this unit of work recorded
    this person and purpose already, or a resident's own card: ``audit.access_values``), it goes
    through ``audit.record_access`` after the card, as :func:`_record` does."""
    purpose = _purpose("register", card)
    actor = ctx.actor
    values = audit.access_values(ctx, card.person_id, "change", purpose)
    written = _ISSUE_WITH_EVENTS(ctx.session, card, {
        "action": "register", "from_status": None, "to_status": status.value, "reason": None,
        "actor_kind": actor.kind, "actor_id": actor.id, "institution_id": actor.institution_id,
        "operator": actor.operator, "channel": actor.channel.value, "at": card.issued_at}, values)
    if written is None:
        return False
    if values is not None:
        audit.recorded_by_statement(ctx, card.person_id, "change", purpose, written[1])
    else:
        audit.record_access(ctx, card.person_id, "change", purpose)
    return True


# -- issuing in batches (the bulk importer) -------------------------------------------------------
# The same issue as ``_new_card``, for a batch the importer's workers prepared: the status comes from
# ``issue_status``, the id is drawn as ``fresh_card_id`` draws and its 80-bit prefix made free when the
# batch is written, and each card gets its "register" event. A batch's card is a row
# ``(key, person_id, ehc_id, status, verifier)``.

def batch_card(key: int, person_id: str, status: CardStatus, verifier: str | None) -> tuple:
    """A new card of a batch, drawn in a worker (which has no database: ``issue_batch`` checks the id)."""
    if status not in ISSUE_STATUSES:
        raise ValueError(f"A card is not issued {status.value}.")
    return (key, person_id, ids.new_card_id(), status.value, verifier)


def issue_batch(connection: Connection, cards: list[tuple], lost: set[int], actor: Actor, now: datetime) -> None:
    """Issue a batch's cards (``batch_card``) but those whose key is in ``lost`` (the master index
    gave their document to someone else), with their "register" events, in the caller's transaction.

    The prefixes are checked with one query for the batch; a card whose prefix is taken (by an
    existing card or an earlier one of the batch) gets a fresh id as ``fresh_card_id`` draws it. A
    card committed elsewhere with the same prefix after the check still meets the unique index on
    the prefix: the write fails with an ``IntegrityError`` and nothing of the batch is kept.
    """
    rows = sorted(row for row in cards if row[0] not in lost)
    if not rows:
        return
    taken = repo.id_prefixes_taken(connection, [card_id_prefix(row[2]) for row in rows])
    seen: set[str] = set()
    for index, row in enumerate(rows):
        ehc_id = row[2]
        while card_id_prefix(ehc_id) in seen or card_id_prefix(ehc_id) in taken:
            ehc_id = fresh_card_id(connection)
        seen.add(card_id_prefix(ehc_id))
        if ehc_id != row[2]:
            rows[index] = (*row[:2], ehc_id, *row[3:])
    repo.insert_rows(connection, rows, "register", actor, now)


# -- family, newborns and temporary cards ---------------------------------------------------------

def bind_family_member(ctx: Ctx, guardian_card_id: str, member: Registration, relation: str) -> Issued:
    """Register (or find) a family member and bind them to the guardian, who must hold an active card."""
    guardian_card = _guardian_card(ctx, guardian_card_id, relation)
    issued = register(ctx, member)
    _bind(ctx, guardian_card, issued.person, relation)
    return issued


@dataclass(frozen=True)
class Newborn:
    sex: str
    birth_date: date
    name: str | None = None  # newborns are often registered before they are named
    birth_certificate: str | None = None
    birth_order: int = 1  # 1 for a single birth; 1, 2, ... for twins and more
    multiple_birth: bool = False


def register_newborn(ctx: Ctx, parent_card_id: str, baby: Newborn) -> Issued:
    """A newborn's card, registered with a parent's data and bound to that parent.

    With a birth certificate, the certificate identifies the baby. Without one, the baby is known
    by parent + birth date + birth order, so registering the same twin twice finds the same card.
    """
    parent_card = _guardian_card(ctx, parent_card_id, "child")
    if not 1 <= baby.birth_order <= 9:
        raise Invalid("Birth order is 1 to 9.", code="birth_order_invalid",
                      errors=[field_error("birth_order", "birth_order_invalid", "Birth order is 1 to 9.")])
    if baby.birth_order > 1 and not baby.multiple_birth:
        raise Invalid("A birth order above 1 is only valid for a multiple birth.", code="birth_order_invalid",
                      errors=[field_error("birth_order", "birth_order_invalid", "Set multiple_birth for twins and more.")])
    parent = mpi.resolve(ctx, parent_card.person_id)
    parent_details = mpi.demographics(ctx, parent, purpose="card.newborn")
    # An unnamed newborn is recorded the way maternity wards do: "<parent's name>之子/之女"
    # ("son/daughter of"), corrected with `modify` once the baby is named.
    name = canonical_name(baby.name) if baby.name else _newborn_placeholder(parent_details.name, baby.sex)
    details = mpi.Demographics(
        name=name,
        sex=baby.sex,
        birth_date=baby.birth_date,
        phone=parent_details.phone,
        address=parent_details.address,
        region_code=parent_details.region_code,
    )
    if baby.birth_certificate:
        document = parse_document(DocumentType.BIRTH_CERTIFICATE, baby.birth_certificate)
        identifier = document_identifier(document)
    else:
        document = None
        identifier = mpi.Identifier("newborn", f"{parent.id}:{baby.birth_date.isoformat()}:{baby.birth_order}")
    if document is not None:
        issued = _issue_for(ctx, details, identifier, document=document)
    else:
        issued = _issue_for(ctx, details, identifier, document=None, verify=False)
        if issued.created:
            issued.card.verifier = "parent-card"
    _bind(ctx, parent_card, issued.person, "child")
    return issued


def _newborn_placeholder(parent_name: str | None, sex: str) -> str | None:
    if not parent_name:
        return None
    return f"{parent_name}之{'子' if sex == '1' else '女' if sex == '2' else '婴'}"


def register_temporary(ctx: Ctx, *, sex: str = "0", approximate_birth_year: int | None = None, note: str) -> Issued:
    """A card for an unidentified emergency patient, so care can be recorded before anyone knows
    who they are. It is merged into the real person's card once they are identified."""
    if not note.strip():
        raise Invalid("Describe the patient (where found, apparent age, marks).", code="note_required",
                      errors=[field_error("note", "note_required", "A description is required.")])
    details = mpi.Demographics(
        name=None,
        sex=sex,
        birth_date=date(approximate_birth_year, 7, 1) if approximate_birth_year else None,
        note=note.strip(),
    )
    person = mpi.create_person(ctx, details, [], temporary=True)
    card = _new_card(ctx, person, S.NORMAL, "emergency", temporary=True)
    return Issued(card=card, person=person, created=True)


def merge_temporary(ctx: Ctx, temporary_card_id: str, real_card_id: str, reason: str) -> Card:
    """Fold a temporary card into the identified person's card: everything linked moves over."""
    temp_card = get_card(ctx, temporary_card_id)
    real_card = get_card(ctx, real_card_id)
    if not temp_card.temporary:
        raise Conflict("Only a temporary card can be merged into another card.", code="card_not_temporary")
    if real_card.temporary:
        raise Conflict("Merge into the identified person's card, not another temporary one.",
                       code="merge_target_temporary")
    if real_card.status not in (S.NORMAL, S.LOST):
        raise Conflict("The identified person's card is not active.", code="merge_target_inactive")
    source = mpi.resolve(ctx, temp_card.person_id)
    target = mpi.resolve(ctx, real_card.person_id)
    mpi.merge(ctx, source, target, reason or "temporary card identified")
    for person in (source, target):
        audit.record_access(ctx, person.id, "change", "card.merge")
    return real_card


def move_card_links(ctx: Ctx, merge: mpi.Merge, source: mpi.Person, target: mpi.Person) -> None:
    """On any merge: the source's card is cancelled (its uses point to the surviving card through the
    master index) and its family bindings move to the target. Each is recorded as a merge move, so
    an unmerge restores exactly them (``undo_card_cancel and undo_family_moves``).

    A binding the target already has (the same guardian and member), or one that would bind the
    target to themself, stays on the tombstone: moving it would duplicate or make nonsense, and
    leaving it is what an unmerge needs anyway."""
    card = card_of_person(ctx, source)
    if card is not None and card.status != S.CANCELLED:
        _change_status(ctx, card, "cancel", f"merged into {target.id}: {merge.reason}")
        mpi.record_move(ctx, merge, "card", card.ehc_id)
    for side in ("guardian", "member"):
        for binding in repo.bindings_where(ctx.session, side, source.id):
            guardian = target.id if side == "guardian" else binding.guardian_person_id
            member = target.id if side == "member" else binding.member_person_id
            if guardian == member or repo.binding(ctx.session, guardian, member) is not None:
                continue
            setattr(binding, f"{side}_person_id", target.id)
            ctx.session.flush()
            mpi.record_move(ctx, merge, "family_binding", f"{binding.id}:{side}")
    ctx.session.flush()


def undo_card_cancel(ctx: Ctx, merge: mpi.Merge, source: mpi.Person, target: mpi.Person, refs: list[str]) -> None:
    """The source's card, cancelled by the merge, gets back the status it had before it (the
    ``unmerge`` step in its history). A cancellation is otherwise final: only an unmerge undoes one.

    The card comes back as a new issue (sequence + 1), as a reissue would: the codes of before the
    merge were revoked when it was cancelled (on the revocation list too) and stay revoked; the
    holder draws or prints fresh ones. Transition hooks see the action ``unmerge``."""
    for ehc_id in refs:
        card = repo.get(ctx.session, ehc_id)
        if card is None or card.person_id != source.id or card.status != S.CANCELLED:
            raise Conflict("The merged person's card has changed since the merge.", code="unmerge_card_changed")
        cancelled = repo.last_event(ctx.session, ehc_id, "cancel")
        before = CardStatus(cancelled.from_status) if cancelled and cancelled.from_status else S.NORMAL
        _change_status(ctx, card, "unmerge", f"merge {merge.id} undone", to=before)


def undo_family_moves(ctx: Ctx, merge: mpi.Merge, source: mpi.Person, target: mpi.Person, refs: list[str]) -> None:
    for ref in refs:
        binding_id, _, side = ref.partition(":")
        binding = repo.binding_by_id(ctx.session, int(binding_id))
        if binding is None:  # unbound since: nothing to move back
            continue
        if getattr(binding, f"{side}_person_id") != target.id:
            raise Conflict("A family binding the merge moved has changed since.", code="unmerge_family_changed")
        setattr(binding, f"{side}_person_id", source.id)
    ctx.session.flush()


def family_of(ctx: Ctx, card_id: str) -> list[tuple[FamilyBinding, Card | None]]:
    card = get_card(ctx, card_id)
    person = mpi.resolve(ctx, card.person_id)
    audit.record_access(ctx, person.id, "read", "card.family")  # who a holder's family is: theirs to know
    bindings = repo.bindings_of_guardian(ctx.session, person.id)
    return [(b, card_of_person(ctx, mpi.resolve(ctx, b.member_person_id))) for b in bindings]


def guardian_binding(ctx: Ctx, guardian: mpi.Person, card: Card) -> FamilyBinding | None:
    """The binding by which ``guardian`` looks after the holder of ``card``, or None."""
    member = mpi.resolve(ctx, card.person_id)
    return repo.binding(ctx.session, guardian.id, member.id)


def holder_and_guardians(ctx: Ctx, person_id: str) -> set[str]:
    """The person ids of a card's holder (``person_id`` as on the card, and after merges) and of the
    guardians bound to them: the people who act for the card."""
    holder_ids = {person_id, mpi.resolve(ctx, person_id).id}
    return holder_ids | repo.guardian_ids(ctx.session, holder_ids)


def holders_for_phone(ctx: Ctx, phone: str) -> list[tuple[Card, mpi.Person]]:
    """The card holders who act for themselves with this (normalised) mobile number.

    Children and elderly people are usually registered with their guardian's phone. A holder counts
    here when their card was registered with this phone, the card is not cancelled and not temporary,
    and they are *not* bound as a family member of someone who has the same phone: those are looked
    after through their guardian's account. Several adults of one household may remain (e.g. a
    couple sharing a phone); the caller tells them apart.
    """
    people = {person.id: person for person in mpi.find_by_phone(ctx, phone)}
    rows = [(card, people[card.person_id]) for card in repo.uncancelled_of(ctx.session, list(people))]
    guarded = repo.guarded_among(ctx.session, {person.id for _, person in rows})
    return [(card, person) for card, person in rows if person.id not in guarded]


def _guardian_card(ctx: Ctx, card_id: str, relation: str) -> Card:
    if relation not in RELATIONS:
        raise Invalid(f"Relation must be one of: {', '.join(RELATIONS)}.", code="relation_invalid",
                      errors=[field_error("relation", "relation_invalid", "Unknown relation.")])
    card = get_card(ctx, card_id)
    if card.status != S.NORMAL:
        raise Conflict("The guardian's own card must be active before binding family members.",
                       code="guardian_card_not_active")
    return card


def _bind(ctx: Ctx, guardian_card: Card, member: mpi.Person, relation: str) -> None:
    guardian = mpi.resolve(ctx, guardian_card.person_id)
    if guardian.id == member.id:
        raise Conflict("A card holder cannot bind themself as a family member.", code="family_self_binding")
    # One binding at a time per guardian, so the count below and the insert are one step: without it,
    # thirty concurrent additions all count three members and all add one.
    dialect.serialise(ctx.session, f"cards.family:{guardian.id}")
    if repo.binding(ctx.session, guardian.id, member.id) is not None:
        return
    if repo.count_members(ctx.session, guardian.id) >= ctx.settings.family_limit:
        raise Conflict(
            f"A guardian may bind at most {ctx.settings.family_limit} family members.",
            code="family_limit_reached",
        )
    repo.add_binding(ctx.session, guardian.id, member.id, relation)
    for person in (guardian, member):
        audit.record_access(ctx, person.id, "change", "card.family")


# -- lookups --------------------------------------------------------------------------------------

def get_card(ctx: Ctx, ehc_id: str) -> Card:
    card = repo.get(ctx.session, ehc_id.strip().upper()) if ehc_id else None
    if card is None:
        raise NotFound("No card with this EHC ID.", code="card_not_found")
    return card


def card_of_person(ctx: Ctx, person: mpi.Person) -> Card | None:
    return repo.of_person(ctx.session, person.id)


def find_by_document(ctx: Ctx, document_type: str, number: str) -> Card:
    """The card of whoever holds this document (after merges, the surviving person's card)."""
    return _card_and_holder_by_document(ctx, document_type, number)[0]


# The holder's columns the window's look-up reads with the card (their names are none of the card's).
_LOOKUP_HOLDER = ("id", "merged_into", "name_sealed", "birth_date_sealed", "phone_sealed", "address_sealed",
                  "note_sealed", "sex", "birth_year", "region_code")
@functools.cache  # built once: a statement is cheap to run and costly to build
def _lookup_statements() -> tuple[Select, Select]:
    """The card of whoever holds the identifier with the blind index ``blind_index`` as stored (merges
    not followed), its holder's ``persons`` row and their identifiers still sealed, in one row; and,
    in the same statement, the audit event of reading them (``audit.access_insert``, its person the
    holder found), written only when there is a card and its holder is not merged into another person.
    The second statement is the same read without the event. Core, of the tables: a row, not objects."""
    cards, persons = Card.__table__, mpi.Person.__table__
    found = (select(*cards.c, *(persons.c[name] for name in _LOOKUP_HOLDER),
                    mpi.sealed_identifiers_column(persons.c.id).label("sealed_identifiers"))
             .select_from(cards.join(persons, persons.c.id == cards.c.person_id))
             .where(cards.c.person_id == mpi.identifier_holder_column(bindparam("blind_index")))
             .cte("found"))
    live = select(found.c.person_id).where(found.c.merged_into.is_(None)).subquery("live")
    audited = audit.access_insert(live, person_id=live.c.person_id).cte("audited")
    return (select(found, select(audited.c.id).scalar_subquery().label("event_id")),
            select(found, null().label("event_id")))


def lookup(ctx: Ctx, document_type: str, number: str, *, purpose: str) -> tuple[object, object, mpi.Demographics,
                                                                                list[mpi.Identifier]]:
    """``find_by_document`` then ``holder``, as the window's look-up answers, audited under ``purpose``
    as ``holder`` is: the card, its holder, their details and identifiers.

    On PostgreSQL one statement reads the card, its holder's ``persons`` row and their sealed
    identifiers by the document's blind index, and writes the audit event of the read
    (:func:`_lookup_statements`); the card and the holder are then that one row (their columns, read-only,
    not ORM objects), opened only once the event that records the read is written. When this unit of
    work has already recorded under ``purpose``, or the actor is a resident (the trail's rules need the
    person first: ``audit.access_values_found``), the same read goes without the event and the opening
    records it (``mpi.open_read``). A holder merged into another person, a document nobody holds or a
    holder without a card (no event written then), and SQLite, take the steps one by one, as the
    online QR check does: the master index resolves the holder (merges followed) to find the card,
    and that person is opened, not resolved a second time."""
    identifier = document_identifier(parse_document(document_type, number))
    if dialect.name(ctx.session) == "postgresql":
        values = audit.access_values_found(ctx, "read", purpose)
        with_event, without = _lookup_statements()
        if ctx.session.autoflush:  # as an ORM query does: what the session holds is written first
            ctx.session.flush()
        row = ctx.session.connection().execute(with_event if values is not None else without,
                                               {"blind_index": identifier.blind_index(ctx), **(values or {})}).first()
        if row is not None and row.merged_into is None:
            sealed = [(system, value) for system, value in row.sealed_identifiers]
            if row.event_id is not None:
                audit.recorded_by_statement(ctx, row.id, "read", purpose, row.event_id)
                return (row, row, *mpi.open_holder(ctx, row, sealed, recorded_as=row.event_id))
            return (row, row, *mpi.open_read(ctx, row, sealed, purpose=purpose))
    card, person = _card_and_holder_of(ctx, identifier)
    return (card, *_opened(ctx, person, purpose))


def _card_and_holder_by_document(ctx: Ctx, document_type: str, number: str) -> tuple[Card, mpi.Person]:
    return _card_and_holder_of(ctx, document_identifier(parse_document(document_type, number)))


def _card_and_holder_of(ctx: Ctx, identifier: mpi.Identifier) -> tuple[Card, mpi.Person]:
    person = mpi.find_by_identifier(ctx, identifier)
    card = card_of_person(ctx, person) if person is not None else None
    if card is None:
        raise NotFound("No card is registered for this document.", code="card_not_found")
    return card, person


def holder(ctx: Ctx, card: Card, *, purpose: str) -> tuple[mpi.Person, mpi.Demographics, list[mpi.Identifier]]:
    """The holder's details in clear, for an answer that shows them (masked) or a rule that needs them.
    Recorded in the audit trail under ``purpose`` (see ``mpi.demographics``)."""
    return _opened(ctx, mpi.resolve(ctx, card.person_id), purpose)


def _opened(ctx: Ctx, person: mpi.Person, purpose: str) -> tuple[mpi.Person, mpi.Demographics, list[mpi.Identifier]]:
    return (person, mpi.demographics(ctx, person, purpose=purpose),
            mpi.identifiers_of(ctx, person, purpose=purpose))


def issued_holder(ctx: Ctx, issued: Issued, *, purpose: str) -> tuple[mpi.Person, mpi.Demographics, list[mpi.Identifier]]:
    """:func:`holder` of a card just issued: for a person this registration created, the details
    and identifiers it sealed onto them (what opening them would give), recorded in the audit trail
    as :func:`holder` records them; for anyone else, read and opened as :func:`holder` does."""
    if issued.given is None:
        return holder(ctx, issued.card, purpose=purpose)
    details, identifiers = issued.given
    person = mpi.resolve(ctx, issued.card.person_id)
    if person.id != issued.person.id:  # merged meanwhile: cannot happen in the registering transaction
        return holder(ctx, issued.card, purpose=purpose)
    audit.record_access(ctx, person.id, "read", purpose)  # as mpi.demographics and mpi.identifiers_of do
    return person, details, list(identifiers)


def registry_is_empty(session: Session) -> bool:
    """No card has been issued yet (the demo fills only an empty platform)."""
    return not repo.any_card(session)


def card_ids_by_person(session: Session) -> dict[str, str]:
    """Every card's id by its holder's person id, for a batch job outside a request (linkage)."""
    return repo.card_ids_by_person(session)


def history(ctx: Ctx, card: Card) -> list[CardEvent]:
    return repo.events_of(ctx.session, card.ehc_id)


# -- lifecycle ------------------------------------------------------------------------------------

def transition(ctx: Ctx, ehc_id: str, action: str, reason: str | None = None) -> Card:
    """Take one of the ``ACTIONS`` on a card (reject, report lost, ...); approving is ``review``'s."""
    if action == "approve":
        raise Invalid("Approving an application needs the document the holder shows (review).",
                      code="document_check_required",
                      errors=[field_error("document", "document_check_required", "The document shown is required.")])
    card = get_card(ctx, ehc_id)
    if action not in ACTIONS:
        raise Invalid(f"Unknown card action {action!r}.", code="card_action_unknown")
    return _change_status(ctx, card, action, reason)


# The verifier's name on a card approved after a person checked the document itself.
DOCUMENT_SEEN = "document-seen"


def review(ctx: Ctx, ehc_id: str, decision: str, *, document_type: str | None = None,
           document_number: str | None = None, reason: str | None = None) -> Card:
    """Decide an application the verifier sent to review (a passport, a permit, a document it could not
    check), once a person has seen the document.

    Approving needs the document the holder shows: it must be the very document the application was
    made with (its blind index names the card's holder), else 409 ``review_document_mismatch`` and the
    card stays pending; the card then counts as verified by a person (``DOCUMENT_SEEN``). Rejecting
    needs a reason; the document is optional (it may be why). Both are steps of the card's history with
    the operator, channel and reason, as every transition is."""
    if decision not in ("approve", "reject"):
        raise Invalid("A review decides approve or reject.", code="review_decision_invalid",
                      errors=[field_error("decision", "review_decision_invalid", "approve or reject")])
    card = get_card(ctx, ehc_id)
    _allowed(card, decision)
    if decision == "reject":
        return _change_status(ctx, card, "reject", reason)
    if not (document_type and document_number):
        raise Invalid("Approving an application needs the document the holder shows.",
                      code="document_check_required",
                      errors=[field_error("document", "document_check_required", "The document shown is required.")])
    document = parse_document(document_type, document_number)
    shown = mpi.find_by_identifier(ctx, document_identifier(document))
    if shown is None or shown.id != mpi.resolve(ctx, card.person_id).id:
        raise Conflict("The document shown is not the one this application was made with.",
                       code="review_document_mismatch")
    card.verifier = DOCUMENT_SEEN
    note_text = f"document {document.type.value} checked in person"
    return _change_status(ctx, card, "approve", f"{note_text}: {reason.strip()}" if reason and reason.strip() else note_text)


def _allowed(card: Card, action: str, message: str | None = None) -> CardStatus:
    """The card's status, if ``action`` may start from it (``TRANSITIONS``); else a 409."""
    current = CardStatus(card.status)
    if current not in TRANSITIONS[action][0]:
        raise Conflict(
            message or f"Cannot {action.replace('_', ' ')} a card whose status is {current.value}.",
            code="card_transition_not_allowed",
            status_now=current.value,
            action=action,
        )
    return current


def _change_status(ctx: Ctx, card: Card, action: str, reason: str | None, *, to: CardStatus | None = None) -> Card:
    """THE write path of a card's status: checks ``TRANSITIONS``, makes a new issue for the actions
    that do, runs the transition hooks and records the step in the card's history."""
    allowed_to = TRANSITIONS[action][1]
    current = _allowed(card, action)
    if to is None:
        (to,) = allowed_to
    if to not in allowed_to:
        raise ValueError(f"{action} does not lead to {to.value}.")
    reason = (reason or "").strip() or None
    if action in REASON_REQUIRED and not reason:
        raise Invalid("A reason is required for this action.", code="reason_required",
                      errors=[field_error("reason", "reason_required", "Say why.")])
    sequence_before = card.sequence
    card.status = to.value
    if action in NEW_ISSUE:
        card.sequence += 1
    ctx.session.flush()
    change = CardChange(ehc_id=card.ehc_id, person_id=card.person_id, sequence=card.sequence,
                        sequence_before=sequence_before, status=to, from_status=current, action=action)
    for hook in _transition_hooks:
        hook(ctx, change)
    _record(ctx, card, action, current, to, reason)
    return card


@dataclass(frozen=True)
class Changes:
    """Fields to change; None leaves a field as it is."""

    name: str | None = None
    sex: str | None = None
    birth_date: date | None = None
    phone: str | None = None
    address: str | None = None
    region_code: str | None = None

    @property
    def touches_identity(self) -> bool:
        return any(v is not None for v in (self.name, self.sex, self.birth_date))


def modify(ctx: Ctx, ehc_id: str, changes: Changes, reason: str | None = None) -> Card:
    """Change a holder's details. A change to name, sex or birth date is re-verified against the
    document; if the verifier cannot confirm it the card goes (back) to review."""
    card = get_card(ctx, ehc_id)
    current = _allowed(card, "modify", "A cancelled card cannot be modified.")
    person, on_file, identifiers = holder(ctx, card, purpose="card.modify")
    document = next((parse_document(i.system[4:], i.value) for i in identifiers if i.system.startswith("doc:")), None)
    errors: list[dict] = []
    new = validated_details(errors, changes, None)
    if errors:
        raise Invalid("The changes have invalid fields.", code="application_invalid", errors=errors)
    details = mpi.Demographics(
        name=new.name if changes.name is not None else on_file.name,
        sex=changes.sex or on_file.sex,
        birth_date=changes.birth_date or on_file.birth_date,
        phone=new.phone if changes.phone is not None else on_file.phone,
        address=new.address if changes.address is not None else on_file.address,
        region_code=changes.region_code or on_file.region_code,
        note=on_file.note,
    )
    to = current
    if document is not None and changes.touches_identity and current != S.LOST:
        result = get_verifier(ctx.settings.verifier).verify(
            Applicant(name=details.name or "", sex=details.sex, birth_date=details.birth_date, document=document)
        )
        if result.outcome == "failed":
            raise Invalid("The new details do not match the document.", code="real_name_verification_failed",
                          errors=result.errors)
        card.verifier = result.verifier
        # A rejected application that is corrected goes back to review rather than straight to normal.
        to = S.NORMAL if result.outcome == "passed" and current != S.REJECTED else S.PENDING_REVIEW
    mpi.update_demographics(ctx, person, details)
    return _change_status(ctx, card, "modify", reason, to=to)


def note(ctx: Ctx, card: Card, action: str, reason: str | None) -> None:
    """Record in the card's history a step of another domain that leaves its status as it is (the QR
    domain's ``pin_cleared``): who, when, why, as for every other step."""
    status = CardStatus(card.status)
    _record(ctx, card, action, status, status, reason)


# The audit purpose of each step of a card's life (everything not listed is "card.lifecycle").
_AUDIT_PURPOSE = {"register": "card.register", "modify": "card.modify", "pin_cleared": "card.pin"}


def _purpose(action: str, card: Card) -> str:
    return "card.temporary" if action == "register" and card.temporary else _AUDIT_PURPOSE.get(action, "card.lifecycle")


def _record(ctx: Ctx, card: Card, action: str, from_status: CardStatus | None, to: CardStatus, reason: str | None) -> None:
    actor = ctx.actor
    audit.record_access(ctx, card.person_id, "change", _purpose(action, card))
    repo.add_event(
        ctx.session,
        CardEvent(
            ehc_id=card.ehc_id,
            action=action,
            from_status=from_status.value if from_status else None,
            to_status=to.value,
            reason=reason,
            actor_kind=actor.kind,
            actor_id=actor.id,
            institution_id=actor.institution_id,
            operator=actor.operator,
            channel=actor.channel.value,
        ),
    )
    ctx.session.flush()


# -- statistics -----------------------------------------------------------------------------------

def statistics_events(session: Session, after_id: int, limit: int) -> list[dict]:
    """The card registry's source for the statistics pipeline (``wiring`` registers it): each card
    event after ``after_id`` as the facts a statistic needs. The person id is there for the pipeline
    to look up the coarse profile (age band, sex, document type); it is never stored. The institution
    is the card's issuing one, for every event of the card, so the stock of cards by status adds up
    by region."""
    return [{"id": row.id, "at": row.at, "kind": row.action, "channel": row.channel,
             "institution_id": row.card_institution or row.institution_id, "person_id": row.person_id,
             "from_status": row.from_status, "to_status": row.to_status}
            for row in repo.events_after(session, after_id, limit)]


# The bulk importer (``importer.py``) is the batch form of the functions above and builds on them.
# It is bound as a module, last: whichever of the two a process imports first, neither needs a name of
# the other while it loads.
from . import importer  # noqa: E402


def import_csv(platform, path, **options):  # noqa: ANN001, ANN003, ANN201
    """Migrate a resident registry file (``ehc cards import``): see ``importer.import_csv``."""
    return importer.import_csv(platform, path, **options)
