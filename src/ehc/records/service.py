"""Health records' rules: publishing FHIR R4 resources, versions, the queue of records waiting for their
subject, consent, break-glass, the timeline and ``$everything``. Every function takes a ``Ctx``.

Publishing (a hospital system, signed): the resource is checked with the ``fhir.resources`` R4B models
(wire-compatible with R4 for every type taken here); its subject is the hospital's own number
(``mrn:<own institution>``) or the EHC ID; the subject, any contained Patient and the narrative are
removed, and the rest is sealed with SM4 under the resource id and version. A number the master index
does not know yet leaves the record waiting (``person_id`` empty) until the number is bound
(:func:`attach_pending`, an ``mpi.on_identifier_bound`` hook). A correction (``PUT``) is a new version;
a DocumentReference that ``relatesTo.replaces`` another makes a new version of that one, ``superseded``.
The same body sent twice by the same hospital (a retry) is stored once: a keyed digest is unique.

Reading: the resident reads everything of their own, and so does a guardian bound to them in the card
registry (a family member they look after; audited as the guardian's read). Anyone else reads what
consent allows (:func:`access`, the one home of the rule): the publishing hospital its own records; the
treating institution, for :data:`SCAN_WINDOW` after the resident's dynamic QR code was verified there,
every non-sensitive category; an institution the resident granted (categories, purpose, period), those
categories; a grant naming a department admits only readers of that department (a staff account placed
in it, a hospital system's call naming it in ``X-EHC-Department``: ``Actor.department``); a resident's
``deny`` for an institution (or one department of it) overrides the scan. Sensitive categories
(:data:`SENSITIVE`) only when a grant names them. A clinician in an emergency reads everything by giving a reason (break-glass):
flagged, texted to the resident, listed for auditors. Every read by anyone but the resident is recorded
in the audit trail, which the resident sees.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..accounts import service as accounts
from ..audit import service as audit
from ..cards import service as cards
from ..identity import service as identity
from ..institutions import service as institutions
from ..kit import dialect, ids
from ..kit.clock import CHINA, in_china, utcnow
from ..kit.codes import Channel
from ..kit.context import Ctx
from ..kit.errors import Conflict, Forbidden, Invalid, NotFound, Problem, field_error
from ..kit.resealing import SealedColumn
from ..kit.roles import HOSPITAL_SYSTEM, Role
from ..mpi import service as mpi
from ..qr import service as qr
from . import printout, repository
from .models import BreakGlass, Consent, OwnEntry, RecordVersion

log = logging.getLogger("ehc.records")

# The types a hospital publishes, the element naming the patient, and the consent category of each.
SUBJECT = {"Encounter": "subject", "Condition": "subject", "Observation": "subject", "DiagnosticReport": "subject",
           "MedicationRequest": "subject", "Immunization": "patient", "AllergyIntolerance": "patient",
           "Procedure": "subject", "DocumentReference": "subject"}
CATEGORY = {"Encounter": "encounters", "Condition": "conditions", "Observation": "observations",
            "DiagnosticReport": "reports", "MedicationRequest": "medications", "Immunization": "immunizations",
            "AllergyIntolerance": "allergies", "Procedure": "procedures", "DocumentReference": "documents"}
CATEGORIES = tuple(CATEGORY.values())
RESOURCE_TYPES = tuple(SUBJECT)  # what hospitals publish
SENSITIVE = ("mental", "reproductive", "infectious")
PURPOSES = ("treatment", "referral", "insurance", "research", "other")
# Regional policy (the defaults): the treating institution reads for this long after a scan of the
# resident's dynamic code at one of its care steps; nobody else without a grant.
SCAN_WINDOW = timedelta(hours=24)
MAX_ATTACHMENT = 20 * 1024 * 1024  # decoded bytes of one attachment
MAX_GRANT = timedelta(days=366)
BREAK_GLASS_ROLES = frozenset({Role.DOCTOR.value, Role.NURSE.value, HOSPITAL_SYSTEM})
READ_PURPOSE = "records.read"
PUBLISH_PURPOSE = "records.publish"
BREAK_GLASS_PURPOSE = "records.break_glass"
CONSENT_PURPOSE = "records.consent"
GUARDIAN_PURPOSE = "records.guardian"  # a guardian read a family member's records
SUMMARY_PURPOSE = "records.summary"  # the holder's name, masked, on the printable summary

# HL7 v3 ActCode confidentiality labels a hospital may put in meta.security, and our category for each.
_SECURITY_LABELS = {"PSY": "mental", "PSYTHPN": "mental", "ETH": "mental", "SUD": "mental", "HIV": "infectious",
                    "STD": "infectious", "TBOOBJ": "infectious", "SEX": "reproductive", "SDV": "reproductive",
                    "REPRO": "reproductive"}


def _icd10_sensitivity(code: str) -> str | None:
    """The sensitive category of an ICD-10 code: mental (F), reproductive (O, N96-N98, Z30-Z39), HIV and
    notifiable infections (A00-A09, A15-A19, A50-A64, B15-B24)."""
    code = code.strip().upper().replace(".", "")
    if len(code) < 3 or not code[1:3].isdigit():
        return None
    letter, number = code[0], int(code[1:3])
    if letter == "F":
        return "mental"
    if letter == "O" or (letter == "N" and 96 <= number <= 98) or (letter == "Z" and 30 <= number <= 39):
        return "reproductive"
    if (letter == "A" and (number <= 9 or 15 <= number <= 19 or 50 <= number <= 64)) or (letter == "B" and 15 <= number <= 24):
        return "infectious"
    return None


def sensitivity_of(resource: dict) -> str | None:
    for label in (resource.get("meta") or {}).get("security") or []:
        if isinstance(label, dict) and label.get("code") in _SECURITY_LABELS:
            return _SECURITY_LABELS[label["code"]]
    for element in ("code", "reasonCode"):
        concepts = resource.get(element)
        for concept in concepts if isinstance(concepts, list) else [concepts]:
            for coding in (concept or {}).get("coding") or []:
                if "icd" in str(coding.get("system", "")).lower() and (found := _icd10_sensitivity(str(coding.get("code", "")))):
                    return found
    return None


# -- parsing and checking ------------------------------------------------------------------------------

def _bad_body(detail: str) -> Problem:
    return Problem(detail, code="fhir_body_invalid", status=400, title="Invalid body")


def _invalid_resource(error: ValidationError, kind: str) -> Problem:
    errors = [field_error(kind + "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in e["loc"]),
                          "fhir_resource_invalid", e["msg"]) for e in error.errors()[:10]]
    return Problem(f"The {kind} is not a valid FHIR resource.", code="fhir_resource_invalid", status=400,
                   title="Invalid resource", errors=errors)


def check_type(resource_type: str) -> str:
    if resource_type not in SUBJECT:
        raise Problem(f"Records of type '{resource_type}' are not taken; send one of {', '.join(SUBJECT)}.",
                      code="record_type_not_supported", status=422, title="Type not supported")
    return resource_type


def _check_attachments(resource: dict) -> None:
    for index, content in enumerate(resource.get("content") or []):
        data = ((content or {}).get("attachment") or {}).get("data") if isinstance(content, dict) else None
        if not isinstance(data, str):
            continue
        if len(data) * 3 // 4 > MAX_ATTACHMENT:
            raise Problem(f"An attachment is at most {MAX_ATTACHMENT // (1024 * 1024)} MB.",
                          code="record_attachment_too_large", status=413, title="Attachment too large",
                          errors=[field_error(f"DocumentReference.content[{index}].attachment.data",
                                              "record_attachment_too_large", "too large")])
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise Problem("An attachment's data is not base64.", code="fhir_resource_invalid", status=400,
                          errors=[field_error(f"DocumentReference.content[{index}].attachment.data",
                                              "fhir_resource_invalid", "not base64")]) from None


def parse(body: object, expected_type: str) -> dict:
    """The resource, checked: JSON object, the URL's type, a type we take, valid against the R4B model."""
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise _bad_body("Send a FHIR resource (application/fhir+json) with its resourceType.")
    check_type(expected_type)
    if body["resourceType"] != expected_type:
        raise Problem(f"The body is a {body['resourceType']}, the URL says {expected_type}.",
                      code="record_type_mismatch", status=400, title="Type mismatch",
                      errors=[field_error("resourceType", "record_type_mismatch", "does not match the URL")])
    if expected_type == "DocumentReference":
        _check_attachments(body)
    try:
        get_fhir_model_class(expected_type).model_validate(body)
    except ValidationError as error:
        raise _invalid_resource(error, expected_type) from None
    return body


# -- the subject -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Subject:
    person: mpi.Person | None  # None: waiting for the number to be bound
    pending_index: str | None = None


SystemOf = Callable[[str], "str | None"]  # a FHIR identifier system URI -> the index's system (the FHIR door's)
EHC_ID_SYSTEM = "ehc-id"


def _subject_problem(detail: str, code: str, status: int = 422) -> Problem:
    return Problem(detail, code=code, status=status, title="Subject not accepted",
                   errors=[field_error("subject", code, detail)])


def _person_of_card(ctx: Ctx, ehc_id: str) -> mpi.Person:
    try:
        card = cards.get_card(ctx, ehc_id.strip().upper())
    except NotFound:
        raise _subject_problem("No card has this EHC ID.", "record_subject_not_found") from None
    return mpi.resolve(ctx, card.person_id)


def resolve_subject(ctx: Ctx, resource: dict, system_of: SystemOf) -> Subject:
    element = SUBJECT[resource["resourceType"]]
    reference = resource.get(element)
    if not isinstance(reference, dict):
        raise _subject_problem(f"{resource['resourceType']}.{element} is required: the hospital's own patient "
                               "number or the EHC ID.", "record_subject_required", 400)
    text = reference.get("reference")
    if isinstance(text, str) and text.startswith("Patient/"):
        return Subject(_person_of_card(ctx, text[len("Patient/"):]))
    identifier = reference.get("identifier") or {}
    system, value = identifier.get("system"), identifier.get("value")
    if not isinstance(system, str) or not isinstance(value, str):
        raise _subject_problem("Give the subject as Patient/<EHC ID> or an identifier (system and value).",
                               "record_subject_required", 400)
    internal = system_of(system)
    if internal == EHC_ID_SYSTEM:
        return Subject(_person_of_card(ctx, value))
    own = ctx.actor.institution_id
    if internal is None or internal not in (f"mrn:{own}", f"oldcard:{own}"):
        raise _subject_problem("The subject must be your own patient number (mrn of your institution) or the "
                               "EHC ID; another system's numbers are not yours to file under.",
                               "record_subject_system_not_allowed")
    parsed = mpi.normalise(mpi.parse_system(internal, ctx.actor), value)
    person = mpi.find_by_identifier(ctx, parsed)
    if person is None:
        return Subject(None, parsed.blind_index(ctx))
    return Subject(mpi.resolve(ctx, person.id))


# -- storing -----------------------------------------------------------------------------------------------

def body_context(resource_id: str, version: int) -> str:
    return f"records:{resource_id}:{version}"


def sealed_columns() -> list[SealedColumn]:
    return [SealedColumn(RecordVersion.__table__.c.body_sealed, lambda row: body_context(row.resource_id, row.version)),
            SealedColumn(BreakGlass.__table__.c.reason_sealed, lambda row: f"records.break_glass:{row.id}"),
            SealedColumn(OwnEntry.__table__.c.body_sealed, lambda row: own_context(row.id))]


def _strip(resource: dict) -> dict:
    """What is kept at rest: no subject, no contained Patient, no narrative, no id or meta but the
    security labels (the platform sets id, versionId and lastUpdated)."""
    kept = {k: v for k, v in resource.items() if k not in ("id", "meta", "text", SUBJECT[resource["resourceType"]])}
    if "contained" in kept:
        kept["contained"] = [c for c in kept["contained"] if c.get("resourceType") not in ("Patient", "RelatedPerson")]
        if not kept["contained"]:
            del kept["contained"]
    security = (resource.get("meta") or {}).get("security")
    if security:
        kept["meta"] = {"security": security}
    return kept


def _when(value: object) -> datetime | None:
    """A FHIR date or dateTime as a UTC instant (a date without a zone is a day in China time)."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    try:
        if "T" in value:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return (moment if moment.tzinfo else moment.replace(tzinfo=CHINA)).astimezone(UTC)
        parts = [int(p) for p in value.split("-")] + [1, 1]
        return datetime.combine(date(parts[0], parts[1], parts[2]), time(), CHINA).astimezone(UTC)
    except ValueError:
        return None


def effective_at(resource: dict) -> datetime | None:
    for path in ("effectiveDateTime", "effectivePeriod.start", "onsetDateTime", "performedDateTime",
                 "performedPeriod.start", "occurrenceDateTime", "period.start", "authoredOn", "issued", "date",
                 "context.period.start", "recordedDate"):
        value: Any = resource
        for step in path.split("."):
            value = value.get(step) if isinstance(value, dict) else None
        if (moment := _when(value)) is not None:
            return moment
    return None


def _digest(ctx: Ctx, *parts: str) -> str:
    return ctx.vault.blind("records.digest", "\x00".join(parts))


def _canonical(resource: dict) -> str:
    return json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Stored:
    row: RecordVersion
    created: bool


def _insert(ctx: Ctx, row: RecordVersion, kept: dict) -> Stored:
    """Insert a version (a savepoint): a concurrent twin with the same digest wins, and we answer it."""
    row.body_sealed = ctx.vault.seal(_canonical(kept), body_context(row.resource_id, row.version))
    try:
        with ctx.session.begin_nested():
            ctx.session.add(row)
    except IntegrityError:
        twin = repository.by_digest(ctx.session, row.digest)
        if twin is None:
            raise Conflict("Another correction of this record was stored at the same moment; send it again.",
                           code="record_version_conflict") from None
        return Stored(twin, False)
    return Stored(row, True)


def publish(ctx: Ctx, body: object, resource_type: str, system_of: SystemOf) -> Stored:
    """``POST /fhir/{type}``: a new resource (201), or the one stored before for the same body (200)."""
    resource = parse(body, resource_type)
    digest = _digest(ctx, ctx.actor.institution_id or "", "create", _canonical(resource))
    if (earlier := repository.by_digest(ctx.session, digest)) is not None:
        return Stored(earlier, False)
    subject = resolve_subject(ctx, resource, system_of)
    kept = _strip(resource)
    replaces = _replaced(ctx, resource)
    row = RecordVersion(resource_id=ids.new_id(), version=1, resource_type=resource_type,
                        institution_id=ctx.actor.institution_id, person_id=subject.person.id if subject.person else None,
                        pending_index=subject.pending_index, sensitivity=sensitivity_of(resource),
                        effective_at=effective_at(resource), recorded_at=utcnow(), current=True, replaces=replaces,
                        digest=digest, size=len(_canonical(kept)))
    stored = _insert(ctx, row, kept)
    if stored.created:
        if replaces is not None:
            _supersede(ctx, replaces)
        if subject.person is not None:
            audit.record_access(ctx, subject.person.id, "change", PUBLISH_PURPOSE)
    return stored


def _replaced(ctx: Ctx, resource: dict) -> str | None:
    """The DocumentReference this one replaces (relatesTo code ``replaces``): one of the publisher's own."""
    for relation in resource.get("relatesTo") or []:
        if relation.get("code") != "replaces":
            continue
        target = ((relation.get("target") or {}).get("reference") or "").removeprefix("DocumentReference/")
        old = repository.current(ctx.session, target)
        if old is None or old.resource_type != "DocumentReference" or old.institution_id != ctx.actor.institution_id:
            raise Problem("relatesTo.target must be one of your own DocumentReferences.", code="record_replaces_unknown",
                          status=422, errors=[field_error("DocumentReference.relatesTo.target", "record_replaces_unknown",
                                                          "unknown document")])
        return target
    return None


def _supersede(ctx: Ctx, resource_id: str) -> None:
    old = repository.current(ctx.session, resource_id)
    body = _open(ctx, old)
    if body.get("status") == "superseded":
        return
    body["status"] = "superseded"
    _new_version(ctx, old, body, _digest(ctx, "supersede", resource_id, str(old.version)))


def _new_version(ctx: Ctx, old: RecordVersion, kept: dict, digest: str) -> Stored:
    old.current = False
    ctx.session.flush()
    row = RecordVersion(resource_id=old.resource_id, version=old.version + 1, resource_type=old.resource_type,
                        institution_id=old.institution_id, person_id=old.person_id, pending_index=old.pending_index,
                        sensitivity=sensitivity_of(kept), effective_at=effective_at(kept) or old.effective_at,
                        recorded_at=utcnow(), current=True, replaces=old.replaces, digest=digest,
                        size=len(_canonical(kept)))
    return _insert(ctx, row, kept)


def correct(ctx: Ctx, body: object, resource_type: str, resource_id: str, system_of: SystemOf) -> Stored:
    """``PUT /fhir/{type}/{id}``: a correction by the publisher, stored as the next version. Corrections of
    one resource take turns (``kit.dialect.serialise``; the unique (resource, version) is the backstop)."""
    resource = parse(body, resource_type)
    if resource.get("id") not in (None, resource_id):
        raise Problem("The body's id differs from the URL's.", code="record_id_mismatch", status=400,
                      errors=[field_error(f"{resource_type}.id", "record_id_mismatch", "does not match the URL")])
    digest = _digest(ctx, ctx.actor.institution_id or "", "update", resource_id, _canonical(resource))
    dialect.serialise(ctx.session, f"records:{resource_id}")
    if (earlier := repository.by_digest(ctx.session, digest)) is not None:
        return Stored(earlier, False)
    old = repository.current(ctx.session, resource_id)
    if old is None or old.resource_type != resource_type:
        raise NotFound("No such record.", code="record_not_found")
    if old.institution_id != ctx.actor.institution_id:
        raise Forbidden("Only the hospital that published a record corrects it.", code="record_not_yours")
    subject = resolve_subject(ctx, resource, system_of)
    if subject.person is not None and old.person_id is not None and subject.person.id != mpi.resolve(ctx, old.person_id).id:
        raise _subject_problem("A correction cannot move a record to another patient.", "record_subject_changed")
    stored = _new_version(ctx, old, _strip(resource), digest)
    if old.person_id is not None:
        audit.record_access(ctx, old.person_id, "change", PUBLISH_PURPOSE)
    return stored


def attach_pending(ctx: Ctx, bound: list[tuple[str, mpi.Identifier, str]]) -> None:
    """``mpi.on_identifier_bound`` hook: records waiting for these numbers attach to their people. A batch
    linkage binds thousands at once: one look-up finds the few numbers records are waiting for."""
    person_of = {blind_index: (person_id, identifier.system) for person_id, identifier, blind_index in bound
                 if identifier.system.split(":")[0] in ("mrn", "oldcard")}
    if not person_of:
        return
    for pending_index in repository.waiting_indexes(ctx.session, list(person_of)):
        person_id, system = person_of[pending_index]
        attached = repository.attach_pending(ctx.session, pending_index, person_id)
        if attached:
            log.info("records attached", extra={"count": attached, "system": system})


def move_on_merge(ctx: Ctx, merge: mpi.Merge, source: mpi.Person, target: mpi.Person) -> None:
    """``mpi.on_merge`` hook: the source's records go to the target, each recorded for the undo."""
    moved = repository.resource_ids_of(ctx.session, source.id)
    repository.move(ctx.session, moved, source.id, target.id)
    for resource_id in moved:
        mpi.record_move(ctx, merge, "record", resource_id)


def undo_merge_moves(ctx: Ctx, merge: mpi.Merge, source: mpi.Person, target: mpi.Person, refs: list[str]) -> None:
    repository.move(ctx.session, refs, target.id, source.id)


def pending_count(ctx: Ctx) -> int:
    return repository.pending_count(ctx.session, ctx.actor.institution_id or "")


# -- consent -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Access:
    """What a caller may read of a person's records, and on what basis."""

    person: mpi.Person
    basis: str  # self | guardian | break_glass | consent | own (the publisher's own records only)
    everything: bool = False
    categories: frozenset[str] = frozenset()
    institution_id: str | None = None

    def allows(self, row: RecordVersion) -> bool:
        if self.everything or (self.institution_id is not None and row.institution_id == self.institution_id):
            return True
        kind = CATEGORY[row.resource_type]
        return kind in self.categories and (row.sensitivity is None or row.sensitivity in self.categories)


def _grant_categories(consent: Consent) -> set[str]:
    named = set(consent.categories.split(","))
    return (named - {"all"}) | (set(CATEGORIES) if "all" in named else set())


def is_live(consent: Consent, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return consent.revoked_at is None and consent.starts_at <= now and (consent.ends_at is None or now < consent.ends_at)


def applies(consent: Consent, institution_id: str, department: str | None, now: datetime | None = None) -> bool:
    """Whether a consent row speaks to a reader of ``institution_id`` working in ``department`` now: live,
    for that institution, and for the whole institution or that very department (a reader who names no
    department is not admitted, nor refused, by a department's grant or denial)."""
    return (consent.institution_id == institution_id and is_live(consent, now)
            and (consent.department is None or consent.department == department))


def access(ctx: Ctx, person: mpi.Person, *, break_glass: str | None = None) -> Access:
    """The caller's access to ``person``'s records (``person`` resolved), audited; 403
    ``records_consent_required`` when there is no basis at all."""
    actor = ctx.actor
    person_ids = mpi.ids_of(ctx, person)
    if actor.kind == "resident":
        if actor.id in person_ids:
            return Access(person, "self", everything=True)
        if actor.id in cards.holder_and_guardians(ctx, person.id):
            # A guardian acts for the family member they look after, as for appointments and family
            # doctors; the member's "who looked at my data" shows it.
            audit.record_access(ctx, person.id, "read", GUARDIAN_PURPOSE)
            return Access(person, "guardian", everything=True)
    if break_glass is not None:
        return _break_glass(ctx, person, break_glass)
    institution = actor.institution_id
    if institution is None:
        raise Forbidden("Health records are read by the treating institution, under the resident's consent.",
                        code="records_consent_required")
    now = utcnow()
    categories: set[str] = set()
    denied: set[str] = set()
    for consent in repository.consents_of(ctx.session, person_ids):
        if not applies(consent, institution, actor.department, now):
            continue
        (categories if consent.effect == "allow" else denied).update(_grant_categories(consent))
    if qr.last_scan_at(ctx, person_ids, institution, now - SCAN_WINDOW) is not None:
        categories.update(set(CATEGORIES) - denied)
    audit.record_access(ctx, person.id, "read", READ_PURPOSE)
    return Access(person, "consent" if categories else "own", categories=frozenset(categories), institution_id=institution)


def _break_glass(ctx: Ctx, person: mpi.Person, reason: str) -> Access:
    actor = ctx.actor
    reason = reason.strip()
    if not (actor.roles & BREAK_GLASS_ROLES):
        raise Forbidden("Break-glass is for clinicians (doctors, nurses) and their hospital's systems.",
                        code="break_glass_not_allowed")
    if len(reason) < 5:
        raise Invalid("Say why this is an emergency (at least a few words).", code="break_glass_reason_required",
                      errors=[field_error("reason", "break_glass_reason_required", "a reason is required")])
    event_id = ids.new_id()
    ctx.session.add(BreakGlass(id=event_id, person_id=person.id, institution_id=actor.institution_id,
                               actor_kind=actor.kind, actor_id=actor.id, at=utcnow(),
                               reason_sealed=ctx.vault.seal(reason[:500], f"records.break_glass:{event_id}")))
    audit.record_access(ctx, person.id, "read", BREAK_GLASS_PURPOSE)
    phone = mpi.demographics(ctx, person, purpose=BREAK_GLASS_PURPOSE).phone
    if phone:
        where = institutions.find_institution(ctx.session, actor.institution_id) if actor.institution_id else None
        at = utcnow().astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
        accounts.send_sms(ctx, phone, f"【健康卡】{where.name if where else '医疗机构'}于{at}因急救查阅了您的健康档案。"
                                      f"Your health records were read in an emergency by "
                                      f"{where.name if where else 'a hospital'} at {at}. See 'Who looked at my data'.")
    log.warning("break-glass read", extra={"person_id": person.id, "institution_id": actor.institution_id,
                                           "actor_id": actor.id})
    return Access(person, "break_glass", everything=True)


def require_some(ctx: Ctx, found: Access) -> Access:
    """A read path that has nothing to show without consent (a timeline, ``$everything``) refuses, unless
    the caller's institution published records of this person itself."""
    if found.basis == "own" and not found.categories and not repository.published_any(
            ctx.session, mpi.ids_of(ctx, found.person), found.institution_id or ""):
        raise Forbidden("No consent covers your institution: scan the resident's dynamic code, ask for a grant, "
                        "or give a break-glass reason in an emergency.", code="records_consent_required")
    return found


def _categories(given: Iterable[str]) -> str:
    named = sorted({c.strip() for c in given if c and c.strip()})
    unknown = [c for c in named if c not in CATEGORIES + SENSITIVE + ("all",)]
    if not named or unknown:
        raise Invalid(f"Categories: all, {', '.join(CATEGORIES + SENSITIVE)}.", code="consent_categories_invalid",
                      errors=[field_error("categories", "consent_categories_invalid", "unknown or empty")])
    return ",".join(named)


def grant(ctx: Ctx, person: mpi.Person, *, effect: str, institution_id: str, categories: Iterable[str],
          purpose: str, days: int | None, department: str | None = None) -> Consent:
    """The resident (or their guardian) allows or denies an institution, or one department of it (a code of
    the institution's departments), their records of chosen categories, for a purpose and a period (days;
    a deny may be open-ended)."""
    if effect not in ("allow", "deny"):
        raise Invalid("effect is allow or deny.", code="consent_effect_invalid",
                      errors=[field_error("effect", "consent_effect_invalid", "allow | deny")])
    if institutions.find_institution(ctx.session, institution_id) is None:
        raise Invalid("No such institution.", code="institution_not_found",
                      errors=[field_error("institution_id", "institution_not_found", "unknown")])
    if purpose not in PURPOSES:
        raise Invalid(f"purpose is one of {', '.join(PURPOSES)}.", code="consent_purpose_invalid",
                      errors=[field_error("purpose", "consent_purpose_invalid", "unknown purpose")])
    if effect == "allow" and (days is None or not 1 <= days <= MAX_GRANT.days):
        raise Invalid("An allowance lasts 1 to 366 days.", code="consent_period_invalid",
                      errors=[field_error("days", "consent_period_invalid", "1..366")])
    department = institutions.department_of(ctx.session, institution_id, department, field="department")
    now = utcnow()
    consent = Consent(id=ids.new_id(), person_id=person.id, effect=effect, institution_id=institution_id,
                      department=department, categories=_categories(categories), purpose=purpose, starts_at=now,
                      ends_at=now + timedelta(days=days) if days else None, created_at=now)
    ctx.session.add(consent)
    ctx.session.flush()
    audit.record_access(ctx, person.id, "change", CONSENT_PURPOSE)  # a guardian's grant (the resident's own is not logged)
    return consent


def consents(ctx: Ctx, person: mpi.Person) -> list[Consent]:
    return repository.consents_of(ctx.session, mpi.ids_of(ctx, person))


def revoke(ctx: Ctx, person: mpi.Person, consent_id: str) -> Consent:
    consent = next((c for c in consents(ctx, person) if c.id == consent_id), None)
    if consent is None:
        raise NotFound("No such consent.", code="consent_not_found")
    if consent.revoked_at is None:
        consent.revoked_at = utcnow()
        audit.record_access(ctx, person.id, "change", CONSENT_PURPOSE)
    return consent


def resident_subject(ctx: Ctx, member: str | None = None) -> mpi.Person:
    """Whose records a signed-in resident acts on: their own, or (``member``, an EHC ID) a family member
    they guard in the card registry; any other card answers 404 ``card_not_found``, as the family pages do."""
    me = mpi.resolve(ctx, ctx.actor.id)
    if not member:
        return me
    try:
        card = cards.get_card(ctx, member.strip().upper())
    except (NotFound, Invalid):
        raise NotFound("No card with this EHC ID.", code="card_not_found") from None
    if cards.guardian_binding(ctx, me, card) is None:
        raise NotFound("No card with this EHC ID.", code="card_not_found")
    return mpi.resolve(ctx, card.person_id)


@dataclass(frozen=True)
class BreakGlassRead:
    id: str
    at: datetime
    institution_id: str | None
    actor_kind: str
    actor_id: str | None
    reason: str


def _break_glass_read(ctx: Ctx, row: BreakGlass) -> BreakGlassRead:
    return BreakGlassRead(row.id, row.at, row.institution_id, row.actor_kind, row.actor_id,
                          ctx.vault.open(row.reason_sealed, f"records.break_glass:{row.id}"))


def break_glass_reads(ctx: Ctx, person: mpi.Person) -> list[BreakGlassRead]:
    """The resident's own list of emergency reads of their records."""
    return [_break_glass_read(ctx, b) for b in repository.break_glass_of(ctx.session, mpi.ids_of(ctx, person))]


def break_glass_review(ctx: Ctx, limit: int = 100) -> list[BreakGlassRead]:
    """The auditors' review list: the latest emergency reads across residents (no person named)."""
    return [_break_glass_read(ctx, b) for b in repository.recent_break_glass(ctx.session, limit)]


# -- reading -----------------------------------------------------------------------------------------------

def _open(ctx: Ctx, row: RecordVersion) -> dict:
    return json.loads(ctx.vault.open(row.body_sealed, body_context(row.resource_id, row.version)))


def binary_id(row: RecordVersion, index: int) -> str:
    return f"{row.resource_id}-{row.version}-{index}"


def resource_json(ctx: Ctx, row: RecordVersion, ehc_id: str | None, *, inline: bool = False, check: bool = True) -> dict:
    """The FHIR resource as served: our id, versionId, lastUpdated, and the subject as Patient/<EHC ID>.
    A document's attachments are served by reference (``Binary/<id>``, IHE MHD ITI-68) unless ``inline``."""
    body = _open(ctx, row)
    if not inline:
        for index, content in enumerate(body.get("content") or []):
            attachment = content.get("attachment") or {}
            if "data" in attachment:
                attachment["size"] = len(base64.b64decode(attachment.pop("data")))
                attachment["url"] = f"Binary/{binary_id(row, index)}"
    meta = {"versionId": str(row.version), "lastUpdated": row.recorded_at.isoformat(), **(body.pop("meta", None) or {})}
    subject = {"reference": f"Patient/{ehc_id}"} if ehc_id else {"display": "waiting for the master index"}
    resource = {"resourceType": row.resource_type, "id": row.resource_id, "meta": meta,
                SUBJECT[row.resource_type]: subject, **body}
    if not check:  # validated whole on the way in; only our id, meta and subject were added
        return resource
    return get_fhir_model_class(row.resource_type).model_validate(resource).model_dump(mode="json", exclude_none=True)


def ehc_id_of(ctx: Ctx, person_id: str | None) -> str | None:
    if person_id is None:
        return None
    card = cards.card_of_person(ctx, mpi.resolve(ctx, person_id))
    return card.ehc_id if card else None


def read(ctx: Ctx, resource_type: str, resource_id: str, *, version: int | None = None,
         break_glass: str | None = None) -> dict:
    """One resource (its current version, or ``version``), if the caller may read it."""
    check_type(resource_type)
    row = repository.version(ctx.session, resource_id, version) if version else repository.current(ctx.session, resource_id)
    if row is None or row.resource_type != resource_type:
        raise NotFound("No such record.", code="record_not_found")
    _check_row(ctx, row, break_glass)
    return resource_json(ctx, row, ehc_id_of(ctx, row.person_id))


def _check_row(ctx: Ctx, row: RecordVersion, break_glass: str | None) -> None:
    if row.person_id is None:  # waiting for its subject: only the publisher sees it
        if row.institution_id != ctx.actor.institution_id:
            raise NotFound("No such record.", code="record_not_found")
        return
    found = access(ctx, mpi.resolve(ctx, row.person_id), break_glass=break_glass)
    if not found.allows(row):
        raise Forbidden("The resident's consent does not cover this record.", code="records_consent_required")


def history(ctx: Ctx, resource_type: str, resource_id: str, *, break_glass: str | None = None) -> list[dict]:
    check_type(resource_type)
    rows = repository.history(ctx.session, resource_id)
    if not rows or rows[0].resource_type != resource_type:
        raise NotFound("No such record.", code="record_not_found")
    _check_row(ctx, rows[0], break_glass)
    ehc_id = ehc_id_of(ctx, rows[0].person_id)
    return [resource_json(ctx, row, ehc_id) for row in rows]


def person_of_card(ctx: Ctx, ehc_id: str) -> mpi.Person:
    try:
        card = cards.get_card(ctx, (ehc_id or "").strip().upper())
    except NotFound:
        raise NotFound("No patient with this id.", code="patient_not_found") from None
    return mpi.resolve(ctx, card.person_id)


# Searching by a patient identifier (IHE MHD ITI-67 ``patient.identifier``): the EHC ID or a hospital's
# patient number; never a national document number (a search is not a way to look people up).
_SEARCH_SYSTEMS = ("mrn", "oldcard")


def person_of_identifier(ctx: Ctx, token: str, system_of: SystemOf, *, break_glass: bool = False) -> mpi.Person:
    """The person a ``system|value`` token names: the EHC ID, or a hospital number the master index holds.
    An unknown number of another institution answers as a known one without consent would (403), so the
    search does not tell a stranger which numbers exist there; the EHC ID and the caller's own numbers,
    which the caller knows anyway, answer 404."""
    system, bar, value = (token or "").partition("|")
    if not bar or not system.strip() or not value.strip():
        raise Invalid("patient.identifier is system|value.", code="record_search_identifier_invalid",
                      errors=[field_error("patient.identifier", "record_search_identifier_invalid", "system|value")])
    internal = system_of(system)
    if internal == EHC_ID_SYSTEM:
        return person_of_card(ctx, value)
    if internal is None or internal.split(":")[0] not in _SEARCH_SYSTEMS:
        raise Invalid("Search by the EHC ID or a hospital's patient number (mrn).", code="record_search_system_not_allowed",
                      errors=[field_error("patient.identifier", "record_search_system_not_allowed", "not searchable")])
    parsed = mpi.normalise(mpi.parse_system(internal, ctx.actor), value)
    person = mpi.find_by_identifier(ctx, parsed)
    if person is not None:
        return person
    own = internal.split(":", 1)[1] == ctx.actor.institution_id
    if own or break_glass:
        raise NotFound("No patient with this id.", code="patient_not_found")
    raise Forbidden("No consent covers your institution: scan the resident's dynamic code, ask for a grant, "
                    "or give a break-glass reason in an emergency.", code="records_consent_required")


# A DocumentReference's statuses (FHIR R4 document-reference-status); other types' statuses are searched as given.
DOCUMENT_STATUSES = ("current", "superseded", "entered-in-error")


def statuses_of(resource_type: str, text: str | None) -> tuple[str, ...]:
    """The ``status`` search parameter: one token or several, comma-separated (FHIR's OR)."""
    chosen = tuple(s.strip() for s in (text or "").split(",") if s.strip())
    allowed = DOCUMENT_STATUSES if resource_type == "DocumentReference" else None
    bad = [s for s in chosen if (allowed is not None and s not in allowed) or not s.replace("-", "").isalpha()]
    if bad:
        raise Invalid(f"status is one of {', '.join(allowed or ('a status code',))}.", code="record_search_status_invalid",
                      errors=[field_error("status", "record_search_status_invalid", ", ".join(bad)[:100])])
    return chosen


def search(ctx: Ctx, found: Access, resource_type: str, statuses: tuple[str, ...] = ()) -> list[dict]:
    """FHIR search (IHE MHD ITI-67 for DocumentReference): the person's readable current versions of one
    type as served, those with one of ``statuses`` when given (the status is in the sealed body)."""
    ehc_id = ehc_id_of(ctx, found.person.id)
    served = [resource_json(ctx, row, ehc_id) for row in records_of(ctx, found, Filters(types=(check_type(resource_type),)))]
    return [r for r in served if not statuses or r.get("status") in statuses]


@dataclass(frozen=True)
class Filters:
    types: tuple[str, ...] = ()
    institution_id: str | None = None
    since: date | None = None
    until: date | None = None  # inclusive


def _day_start(day: date | None) -> datetime | None:
    return datetime.combine(day, time(), CHINA).astimezone(UTC) if day else None


def records_of(ctx: Ctx, found: Access, filters: Filters = Filters(), *, limit: int | None = None) -> list[RecordVersion]:
    for kind in filters.types:
        check_type(kind)
    rows = repository.timeline(ctx.session, mpi.ids_of(ctx, found.person), types=filters.types,
                               institution_id=filters.institution_id, since=_day_start(filters.since),
                               until=_day_start(filters.until + timedelta(days=1)) if filters.until else None,
                               limit=limit if found.everything else None)  # else consent filters first
    allowed = [row for row in rows if found.allows(row)]
    return allowed[:limit] if limit else allowed


@dataclass(frozen=True)
class Entry:
    resource_id: str
    version: int
    resource_type: str
    category: str
    sensitivity: str | None
    institution_id: str
    effective_at: datetime | None
    title: str
    status: str | None


def _title(body: dict) -> str:
    for element in ("code", "vaccineCode", "medicationCodeableConcept", "type", "description"):
        value = body.get(element)
        value = value[0] if isinstance(value, list) and value else value
        if isinstance(value, str):
            return value[:200]
        if isinstance(value, dict):
            text = value.get("text") or next((c.get("display") or c.get("code") for c in value.get("coding") or []
                                              if c.get("display") or c.get("code")), None)
            if text:
                quantity = body.get("valueQuantity") or {}
                if "value" in quantity:
                    text = f"{text}: {quantity['value']} {quantity.get('unit', '')}".strip()
                return str(text)[:200]
    return ""


def timeline(ctx: Ctx, found: Access, filters: Filters = Filters(), *, limit: int = 200) -> list[Entry]:
    entries = []
    for row in records_of(ctx, found, filters, limit=limit):
        body = _open(ctx, row)
        entries.append(Entry(row.resource_id, row.version, row.resource_type, CATEGORY[row.resource_type],
                             row.sensitivity, row.institution_id, row.effective_at, _title(body),
                             body.get("status") or body.get("clinicalStatus", {}).get("text")))
    return entries


def everything(ctx: Ctx, found: Access, base: str, patient: dict | None = None) -> dict:
    """``Patient/$everything``: the person's readable records (current versions) as a FHIR searchset Bundle."""
    ehc_id = ehc_id_of(ctx, found.person.id)
    entries = [{"fullUrl": f"{base}/Patient/{ehc_id}", "resource": patient, "search": {"mode": "match"}}] if patient else []
    for row in records_of(ctx, found):
        entries.append({"fullUrl": f"{base}/{row.resource_type}/{row.resource_id}",
                        "resource": resource_json(ctx, row, ehc_id, inline=True, check=False),
                        "search": {"mode": "include"}})
    return {"resourceType": "Bundle", "id": ids.new_id(), "type": "searchset", "total": len(entries),
            "meta": {"lastUpdated": utcnow().isoformat()}, "entry": entries}


# -- IHE MHD: Provide Document Bundle (ITI-65) and Retrieve Document (ITI-68) ------------------------------

def attachment(ctx: Ctx, binary: str, *, break_glass: str | None = None) -> tuple[str, bytes]:
    """ITI-68: the bytes of one attachment of one version of a document, under the same consent as the
    document. ``binary`` is ``<resource id>-<version>-<index>`` (the ``Binary/`` url the document carries)."""
    parts = binary.split("-")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise NotFound("No such document.", code="record_not_found")
    row = repository.version(ctx.session, parts[0], int(parts[1]))
    if row is None or row.resource_type != "DocumentReference":
        raise NotFound("No such document.", code="record_not_found")
    _check_row(ctx, row, break_glass)
    contents = _open(ctx, row).get("content") or []
    index = int(parts[2])
    found = (contents[index].get("attachment") or {}) if index < len(contents) else {}
    if "data" not in found:
        raise NotFound("No such document.", code="record_not_found")
    return found.get("contentType") or "application/octet-stream", base64.b64decode(found["data"])


@dataclass(frozen=True)
class Provided:
    """One entry of an ITI-65 answer: the stored resource, or None for a SubmissionSet List or a Binary."""

    stored: Stored | None
    binary_of: Stored | None = None


def provide(ctx: Ctx, bundle: object, system_of: SystemOf) -> list[Provided]:
    """ITI-65 Provide Document Bundle: a transaction Bundle of a SubmissionSet (List), DocumentReferences
    and the Binaries their attachments point to (``urn:uuid:`` fullUrls). Every DocumentReference is
    published with its Binary's bytes inline, all or nothing (the request's one transaction)."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
        raise _bad_body("ITI-65 takes a FHIR Bundle of type transaction.")
    entries = bundle.get("entry") or []
    binaries = {e.get("fullUrl"): e.get("resource") for e in entries
                if isinstance(e, dict) and (e.get("resource") or {}).get("resourceType") == "Binary"}
    answers: list[Provided] = []
    stored_by_binary: dict[str, Stored] = {}
    for index, entry in enumerate(entries):
        resource = (entry or {}).get("resource") if isinstance(entry, dict) else None
        kind = (resource or {}).get("resourceType")
        if kind in ("List", "Binary"):
            answers.append(Provided(None))
            continue
        if kind != "DocumentReference":
            raise Problem(f"Entry {index}: ITI-65 takes a List, DocumentReferences and Binaries, not {kind}.",
                          code="record_type_not_supported", status=422,
                          errors=[field_error(f"Bundle.entry[{index}].resource", "record_type_not_supported", str(kind))])
        resource = json.loads(json.dumps(resource))
        used = []
        for content in resource.get("content") or []:
            attachment = content.get("attachment") or {}
            url = attachment.get("url")
            if url in binaries:
                attachment["data"] = binaries[url].get("data")
                attachment.setdefault("contentType", binaries[url].get("contentType"))
                del attachment["url"]
                used.append(url)
        stored = publish(ctx, resource, "DocumentReference", system_of)
        stored_by_binary.update({url: stored for url in used})
        answers.append(Provided(stored))
    return [Provided(None, stored_by_binary.get(e.get("fullUrl"))) if a.stored is None and
            (e.get("resource") or {}).get("resourceType") == "Binary" else a for a, e in zip(answers, entries, strict=True)]


# -- the basic health record (居民健康档案首页) ---------------------------------------------------------------

# The first page's sections, in the order of the national form; what the resident may add themselves
# (immunisations come only from the hospitals that gave them), and the section each own kind goes to.
SECTIONS = ("blood_type", "allergies", "chronic_conditions", "operations", "family_history", "immunizations")
OWN_KINDS = ("blood_type", "allergy", "condition", "operation", "family_history")
_OWN_SECTION = {"blood_type": "blood_type", "allergy": "allergies", "condition": "chronic_conditions",
                "operation": "operations", "family_history": "family_history"}
ABO = ("A", "B", "AB", "O")
RH = ("positive", "negative", "unknown")
MAX_OWN_ENTRIES = 200  # per person: a page, not a store
MAX_OWN_TEXT = 200
# Blood group observations (LOINC): ABO and Rh together, ABO alone, Rh alone.
_BLOOD_GROUP = frozenset({"882-1", "883-9", "10331-7"})
# ICD-10 blocks counted as chronic on the first page whatever the clinical status: hypertension (I10-I15),
# diabetes (E10-E14), COPD (J44), ischaemic heart disease (I20-I25), chronic kidney disease (N18) and
# neoplasms (C00-D48).
_CHRONIC = (("I", 10, 15), ("E", 10, 14), ("J", 44, 44), ("I", 20, 25), ("N", 18, 18), ("C", 0, 99), ("D", 0, 48))
# A record its hospital withdrew or that never happened is not on the page.
_WITHDRAWN = frozenset({"entered-in-error", "refuted", "not-done"})
SUMMARY_TYPES = ("AllergyIntolerance", "Condition", "Procedure", "Immunization", "Observation")


def is_chronic(code: str) -> bool:
    code = code.strip().upper().replace(".", "")
    if len(code) < 3 or not code[1:3].isdigit():
        return False
    return any(code[0] == letter and low <= int(code[1:3]) <= high for letter, low, high in _CHRONIC)


def own_context(entry_id: str) -> str:
    return f"records.own:{entry_id}"


@dataclass(frozen=True)
class SummaryItem:
    """One line of the first page: from a hospital's record (``source`` "record", the resource id, the
    publisher and the record's date) or the resident's own entry (``source`` "self", the entry's id)."""

    id: str
    section: str
    text: str
    source: str  # record | self
    institution_id: str | None
    institution_name: str | None
    on: date | None
    sensitivity: str | None


@dataclass(frozen=True)
class Summary:
    sections: dict[str, list[SummaryItem]]


def _codes(concept: object) -> set[str]:
    return {str(c.get("code")) for c in (concept or {}).get("coding") or [] if isinstance(c, dict)} \
        if isinstance(concept, dict) else set()


def _section_of(kind: str, body: dict) -> str | None:
    """Where a hospital's record goes on the first page, or None when it is not first-page material."""
    if body.get("status") in _WITHDRAWN or _codes(body.get("verificationStatus")) & _WITHDRAWN:
        return None
    if kind == "AllergyIntolerance":
        return "allergies"
    if kind == "Immunization":
        return "immunizations"
    if kind == "Procedure":
        return "operations"
    if kind == "Condition":
        icd = [str(c.get("code", "")) for c in (body.get("code") or {}).get("coding") or []
               if "icd" in str(c.get("system", "")).lower()]
        if any(is_chronic(c) for c in icd) or "active" in _codes(body.get("clinicalStatus")):
            return "chronic_conditions"
        return None
    if kind == "Observation" and _codes(body.get("code")) & _BLOOD_GROUP:
        return "blood_type"
    return None


def _record_text(kind: str, body: dict) -> str:
    title = _title(body)
    value = body.get("valueCodeableConcept")
    if kind == "Observation" and isinstance(value, dict):
        said = value.get("text") or next((c.get("display") or c.get("code") for c in value.get("coding") or []
                                          if c.get("display") or c.get("code")), "")
        return f"{title}: {said}"[:200] if said else title
    return title


def blood_type_text(abo: str, rh: str) -> str:
    return abo + {"positive": " Rh+", "negative": " Rh-"}.get(rh, "")


def _own_item(ctx: Ctx, entry: OwnEntry) -> SummaryItem:
    body = json.loads(ctx.vault.open(entry.body_sealed, own_context(entry.id)))
    text = blood_type_text(body["abo"], body["rh"]) if entry.kind == "blood_type" else body["text"]
    return SummaryItem(entry.id, _OWN_SECTION[entry.kind], text, "self", None, None,
                       date.fromisoformat(body["on"]) if body.get("on") else None, None)


def summary(ctx: Ctx, found: Access) -> Summary:
    """The first page of the basic health record: the current versions of the hospitals' records that
    belong there (allergies, chronic conditions, operations, immunisations, a blood group), each with its
    hospital and date, and the resident's own entries. ``found`` is the resident's own access (sensitive
    records included: it is their data)."""
    sections: dict[str, list[SummaryItem]] = {s: [] for s in SECTIONS}
    names: dict[str, str] = {}
    for row in records_of(ctx, found, Filters(types=SUMMARY_TYPES)):
        body = _open(ctx, row)
        section = _section_of(row.resource_type, body)
        if section is None:
            continue
        if row.institution_id not in names:
            place = institutions.find_institution(ctx.session, row.institution_id)
            names[row.institution_id] = place.name if place else row.institution_id
        sections[section].append(SummaryItem(
            row.resource_id, section, _record_text(row.resource_type, body), "record", row.institution_id,
            names[row.institution_id], row.effective_at.astimezone(CHINA).date() if row.effective_at else None,
            row.sensitivity))
    for entry in repository.own_entries_of(ctx.session, mpi.ids_of(ctx, found.person)):
        item = _own_item(ctx, entry)
        sections[item.section].append(item)
    return Summary(sections)


def _own_invalid(detail: str, code: str, field: str) -> Invalid:
    return Invalid(detail, code=code, errors=[field_error(field, code, detail)])


def add_own_entry(ctx: Ctx, person: mpi.Person, *, kind: str, text: str = "", abo: str | None = None,
                  rh: str | None = None, on: date | None = None) -> SummaryItem:
    """The resident adds an item to their own first page. A blood type replaces the one they gave before."""
    if kind not in OWN_KINDS:
        raise _own_invalid(f"kind is one of {', '.join(OWN_KINDS)}.", "summary_kind_invalid", "kind")
    body: dict[str, Any]
    if kind == "blood_type":
        if abo not in ABO:
            raise _own_invalid("The ABO group is A, B, AB or O.", "summary_blood_type_invalid", "abo")
        if (rh or "unknown") not in RH:
            raise _own_invalid("Rh is positive, negative or unknown.", "summary_blood_type_invalid", "rh")
        body = {"abo": abo, "rh": rh or "unknown"}
    else:
        text = " ".join((text or "").split())
        if not 1 <= len(text) <= MAX_OWN_TEXT:
            raise _own_invalid(f"Say what it is in 1 to {MAX_OWN_TEXT} characters.", "summary_text_invalid", "text")
        body = {"text": text}
    if on is not None and on > utcnow().astimezone(CHINA).date():
        raise _own_invalid("The date cannot be in the future.", "summary_date_invalid", "on")
    body["on"] = on.isoformat() if on else None
    # One writer a person at a time, so the limit holds under concurrent requests (PostgreSQL).
    dialect.serialise(ctx.session, f"records.own:{person.id}")
    earlier = repository.own_entries_of(ctx.session, mpi.ids_of(ctx, person))
    if kind == "blood_type":
        for old in earlier:
            if old.kind == "blood_type":
                ctx.session.delete(old)
    elif len(earlier) >= MAX_OWN_ENTRIES:
        raise Conflict(f"At most {MAX_OWN_ENTRIES} entries of your own; remove some first.",
                       code="summary_entries_limit")
    audit.record_access(ctx, person.id, "change", GUARDIAN_PURPOSE)  # a guardian's entry (not logged for the resident's own)
    entry = OwnEntry(id=ids.new_id(), person_id=person.id, kind=kind, created_at=utcnow())
    entry.body_sealed = ctx.vault.seal(_canonical(body), own_context(entry.id))
    ctx.session.add(entry)
    ctx.session.flush()
    return _own_item(ctx, entry)


def remove_own_entry(ctx: Ctx, person: mpi.Person, entry_id: str) -> None:
    """The resident removes one of their own entries (a hospital's record is the hospital's to correct)."""
    entry = next((e for e in repository.own_entries_of(ctx.session, mpi.ids_of(ctx, person)) if e.id == entry_id), None)
    if entry is None:
        raise NotFound("No such entry of yours.", code="summary_entry_not_found")
    audit.record_access(ctx, person.id, "change", GUARDIAN_PURPOSE)
    ctx.session.delete(entry)
    ctx.session.flush()


RECENT_ON_PRINT = 20  # the timeline's most recent records on the printable summary


def _masked_card(ehc_id: str) -> str:
    # As the pages show a card id: its first and last eight characters.
    return f"{ehc_id[:8]}…{ehc_id[-8:]}"


def summary_pdf(ctx: Ctx, found: Access) -> bytes:
    """The printable summary (one A4 PDF, headings in Chinese and English): the holder's masked name and
    card id, the first page's sections and the :data:`RECENT_ON_PRINT` most recent records."""
    person = found.person
    name = mpi.demographics(ctx, person, purpose=SUMMARY_PURPOSE).name
    card = cards.card_of_person(ctx, person)
    sections = {key: [printout.Line(i.text, i.institution_name or "" if i.source == "record" else "", i.on,
                                    i.sensitivity is not None) for i in items]
                for key, items in summary(ctx, found).sections.items()}
    entries = timeline(ctx, found, limit=RECENT_ON_PRINT)
    names: dict[str, str] = {}
    for institution_id in {e.institution_id for e in entries}:
        place = institutions.find_institution(ctx.session, institution_id)
        names[institution_id] = place.name if place else institution_id
    recent = [printout.Recent(e.effective_at.astimezone(CHINA).date() if e.effective_at else None, e.resource_type,
                              e.title, names[e.institution_id]) for e in entries]
    return printout.render(masked_name=identity.mask_name(name) if name else "",
                           masked_card=_masked_card(card.ehc_id) if card else "",
                           printed_on=utcnow().astimezone(CHINA).date(), sections=sections, recent=recent)


# -- statistics -------------------------------------------------------------------------------------

def statistics_events(session: Session, after_id: int, limit: int) -> list[dict]:
    """The records' source for the statistics pipeline (``wiring`` registers it): one event per
    stored version, its kind the resource type for a first version and ``correction`` for a later
    one, at the publishing hospital, through the hospital system's channel. The sensitive categories
    are not told apart: a count of mental-health records by county could point at a person."""
    return [{"id": row_id, "at": at, "kind": resource_type if version == 1 else "correction",
             "institution_id": institution_id, "person_id": person_id, "channel": Channel.HOSPITAL_SYSTEM.value}
            for row_id, at, resource_type, version, institution_id, person_id
            in repository.versions_after(session, after_id, limit)]


# A visit is counted once the card uses of its day have had time to arrive: a terminal that scanned
# the card offline uploads the use later (docs/qr-format.md §9.1), and a visit counted before would
# stay "without the card".
VISIT_SETTLE = timedelta(hours=2)


def visit_statistics_events(session: Session, after_id: int, limit: int) -> list[dict]:
    """The visits' source for the statistics pipeline (``wiring`` registers it): one event per
    Encounter a hospital published (its first version), at the visit's start, of kind ``with_card``
    when the patient's card was verified at that hospital on that China day, else ``without_card``
    (a patient whose hospital number is not linked yet had no card there). Encounters published less
    than :data:`VISIT_SETTLE` ago wait: the source stops before the first of them, so the watermark
    does not pass it."""
    settled = utcnow() - VISIT_SETTLE
    visits = []
    for row_id, recorded_at, effective_at, institution_id, person_id in repository.first_encounters_after(
            session, after_id, limit):
        if recorded_at > settled:
            break
        visits.append((row_id, effective_at or recorded_at, institution_id, person_id))
    with_card = qr.used_on_day(session, [(person_id, institution_id, in_china(at).date())
                                         for _, at, institution_id, person_id in visits if person_id])
    return [{"id": row_id, "at": at, "institution_id": institution_id, "person_id": person_id,
             "channel": Channel.HOSPITAL_SYSTEM.value,
             "kind": "with_card" if (person_id, institution_id, in_china(at).date()) in with_card else "without_card"}
            for row_id, at, institution_id, person_id in visits]
