"""The rules of the FHIR identity services: read a Patient, ``$match``, PIXm ``$ihe-pix``, PDQm search.

Each function takes a ``Ctx`` and plain values and returns FHIR JSON (validated with the ``fhir.resources``
R4B models on the way out); errors are :class:`~ehc.kit.errors.Problem`s, which the FHIR router answers as
OperationOutcomes. Every person whose details are opened is recorded in the audit trail under a ``fhir.*``
purpose, as everywhere else (``mpi.demographics``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import urlencode

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.patient import Patient
from pydantic import ValidationError

from ..accounts import service as accounts
from ..cards import service as cards
from ..institutions import service as institutions
from ..kit.clock import utcnow
from ..kit.context import Ctx
from ..kit.errors import Forbidden, Invalid, NotFound, Problem, field_error
from ..identity import service as identity
from ..mpi import service as mpi
from ..mpi.service import Person
from . import patient as mapping
from .outcome import warnings_json
from .patient import EHC_ID_SYSTEM, Authority, PersonView

MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
MATCH_COUNT_DEFAULT, MATCH_COUNT_MAX = 10, 50
SEARCH_COUNT_DEFAULT, SEARCH_COUNT_MAX = 20, 100
_INACTIVE = (cards.CardStatus.CANCELLED.value, cards.CardStatus.REJECTED.value)


def authority(ctx: Ctx) -> Authority:
    return Authority(ctx.actor)


def _visible(ctx: Ctx, person: Person) -> bool:
    """Commission operators reach only the people of their region (``mpi.xref``); others everyone."""
    return mpi.may_see_person(ctx.actor, accounts.staff_region(ctx.session, ctx.actor), person.region_code)


# -- reading people ------------------------------------------------------------------------------------

def _view(ctx: Ctx, person: Person, card: cards.Card, purpose: str) -> PersonView:
    """Open a person's details for a Patient resource (recorded in the audit trail under ``purpose``)."""
    return PersonView(ehc_id=card.ehc_id, active=card.status not in _INACTIVE,
                      details=mpi.demographics(ctx, person, purpose=purpose),
                      identifiers=mpi.identifiers_of(ctx, person, purpose=purpose))


def _card(ctx: Ctx, person: Person) -> cards.Card | None:
    return cards.card_of_person(ctx, person)


def _patient_not_found() -> NotFound:
    return NotFound("No patient with this id.", code="patient_not_found")


def read_patient(ctx: Ctx, patient_id: str) -> dict:
    """``GET Patient/{id}``: the id is a card's EHC ID. A card whose person was merged into another answers
    an inactive Patient linked ``replaced-by`` the survivor, with no personal details."""
    try:
        card = cards.get_card(ctx, patient_id)
    except NotFound:
        raise _patient_not_found() from None
    person = mpi.resolve(ctx, card.person_id)
    if not _visible(ctx, person):
        raise _patient_not_found()
    if person.id != card.person_id:
        survivor = _card(ctx, person)
        view = PersonView(ehc_id=card.ehc_id, active=False, details=mpi.Demographics(name=None, sex="0"),
                          replaced_by=survivor.ehc_id if survivor else None)
    else:
        view = _view(ctx, person, card, "fhir.read")
    return _validated(Patient, mapping.patient_json(view, authority(ctx)))


def _validated(model, body: dict) -> dict:
    """Check what we send against the R4B model; a failure is our bug, so it surfaces as a 500."""
    return model.model_validate(body).model_dump(mode="json", exclude_none=True)


# -- $match --------------------------------------------------------------------------------------------

def _invalid_resource(error: ValidationError, where: str) -> Problem:
    errors = [field_error(where + "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in e["loc"]),
                          "fhir_resource_invalid", e["msg"]) for e in error.errors()[:10]]
    return Problem(f"The {where} is not a valid FHIR resource.", code="fhir_resource_invalid", status=400,
                   title="Invalid resource", errors=errors)


def _match_parameters(body: object) -> tuple[dict, int, bool]:
    """The Patient, count and onlyCertainMatches of a ``$match`` Parameters resource."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise Problem("Send a FHIR Parameters resource (application/fhir+json).", code="fhir_body_invalid",
                      status=400, title="Invalid body")
    try:
        Parameters.model_validate(body)
    except ValidationError as error:
        raise _invalid_resource(error, "Parameters") from None
    given = {p.get("name"): p for p in body.get("parameter") or []}
    resource = (given.get("resource") or {}).get("resource")
    if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
        raise Problem("The 'resource' parameter must hold the Patient to match.", code="match_resource_missing",
                      status=400, title="Patient missing")
    count = (given.get("count") or {}).get("valueInteger", MATCH_COUNT_DEFAULT)
    if not isinstance(count, int) or not 1 <= count <= MATCH_COUNT_MAX:
        raise Problem(f"'count' is a whole number from 1 to {MATCH_COUNT_MAX}.", code="match_count_invalid",
                      status=400, title="Invalid count")
    only_certain = (given.get("onlyCertainMatches") or {}).get("valueBoolean", False) is True
    return resource, count, only_certain


def match(ctx: Ctx, body: object, base: str) -> dict:
    """``POST Patient/$match``: the index's candidates for a submitted Patient, as a scored searchset.

    Read-only: nothing is linked or queued here (a hospital links through the master index's own API).
    """
    resource, count, only_certain = _match_parameters(body)
    try:
        Patient.model_validate(resource)
    except ValidationError as error:
        raise _invalid_resource(error, "Patient") from None
    submitted = mapping.record_from(resource)
    if not submitted.has_anything:
        raise Invalid("The Patient has nothing to match on: give a name, birth date, mobile phone or identifier.",
                      code="match_nothing_to_match")
    candidates = mpi.match(ctx, submitted.record, limit=count)
    warnings = list(submitted.warnings)
    if only_certain:
        candidates = [c for c in candidates if c.grade == "certain"]
        if len(candidates) > 1:
            # $match: with onlyCertainMatches, several certain matches mean none can be relied on.
            warnings.append("Several certain matches: none is returned with onlyCertainMatches.")
            candidates = []
    entries = []
    for candidate in candidates[:count]:
        person = mpi.resolve(ctx, candidate.person_id)
        card = _card(ctx, person) if _visible(ctx, person) else None
        if card is None:
            continue
        view = _view(ctx, person, card, mpi.MATCH_PURPOSE)  # the same audit event the matcher recorded
        patient = mapping.patient_json(view, authority(ctx))
        entries.append({
            "fullUrl": f"{base}/Patient/{card.ehc_id}",
            "resource": patient,
            "search": {"extension": [{"url": MATCH_GRADE, "valueCode": candidate.grade}], "mode": "match",
                       "score": round(candidate.probability, 6)},
        })
    return _bundle(entries, warnings, f"{base}/Patient/$match")


def _bundle(entries: list[dict], warnings: list[str], self_url: str) -> dict:
    bundle: dict = {
        "resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": utcnow().isoformat()},
        "type": "searchset", "total": len(entries), "link": [{"relation": "self", "url": self_url}],
        "entry": list(entries),
    }
    if warnings:
        bundle["entry"].append({"resource": warnings_json(warnings), "search": {"mode": "outcome"}})
    if not bundle["entry"]:
        del bundle["entry"]
    return _validated(Bundle, bundle)


# -- PIXm $ihe-pix ---------------------------------------------------------------------------------------

def _known_domain(ctx: Ctx, uri: str) -> str | None:
    """Our system for a FHIR system URI, if it names a domain we hold (an existing institution's, for
    hospital numbers)."""
    system = mapping.internal_system(uri)
    institution = mapping.institution_of(system) if system else None
    if institution is not None and institutions.find_institution(ctx.session, institution) is None:
        return None
    return system


def _pix_not_found() -> NotFound:
    return NotFound("sourceIdentifier Patient Identifier not found", code="pix_source_not_found")


def _card_by_id(ctx: Ctx, ehc_id: str) -> cards.Card | None:
    try:
        return cards.get_card(ctx, ehc_id)
    except NotFound:
        return None


def _holder(ctx: Ctx, identifier: mpi.Identifier) -> Person | None:
    """The (surviving) person behind an identifier, the EHC ID included."""
    if identifier.system == EHC_ID_SYSTEM:
        card = _card_by_id(ctx, identifier.value)
        return mpi.resolve(ctx, card.person_id) if card else None
    return mpi.find_by_identifier(ctx, identifier)


def _check_lookup(ctx: Ctx, system: str) -> None:
    """May the caller find people by this system (``mpi.xref``: not by another hospital's numbers)?"""
    if system != EHC_ID_SYSTEM:
        mpi.check_lookup(ctx.actor, mpi.parse_system(system))


def _source_person(ctx: Ctx, system: str, value: str) -> Person:
    _check_lookup(ctx, system)
    try:
        identifier = mapping.normalise_value(system, value)
    except Problem:
        raise _pix_not_found() from None  # a number that breaks its type's rules is held by nobody
    person = _holder(ctx, identifier)
    if person is None or not _visible(ctx, person):
        raise _pix_not_found()
    return person


def pix(ctx: Ctx, source: str | None, targets: list[str]) -> dict:
    """``GET Patient/$ihe-pix`` (IHE PIXm, ITI-83): the identifiers of the person behind ``source``
    (``system|value``) in the domains the caller may see, and the Patient's reference.

    As the profile says: an unknown source domain is 400, an unknown person 404, a target domain we do not
    know, or one the caller may not see (the two look the same), 403 ``targetSystem not found``.
    """
    if not source or "|" not in source or not all(part.strip() for part in source.split("|", 1)):
        raise Problem("sourceIdentifier is required, as system|value.", code="pix_source_identifier_invalid",
                      status=400, title="Invalid sourceIdentifier")
    source_uri, value = (part.strip() for part in source.split("|", 1))
    system = _known_domain(ctx, source_uri)
    if system is None:
        raise Problem("sourceIdentifier Assigning Authority not found", code="pix_source_system_unknown",
                      status=400, title="Unknown source domain")
    wanted: set[str] = set()
    caller = authority(ctx)
    for uri in targets:
        target = _known_domain(ctx, uri)
        if target is None or not caller.may_see(target):
            raise Forbidden("targetSystem not found", code="pix_target_system_not_found")
        wanted.add(target)
    person = _source_person(ctx, system, value)
    card = _card(ctx, person)
    found = [mpi.Identifier(EHC_ID_SYSTEM, card.ehc_id)] if card else []
    found += mpi.identifiers_of(ctx, person, purpose="fhir.pix")
    parameters: list[dict] = []
    for identifier in found:
        if identifier.system == system or not caller.may_see(identifier.system):
            continue  # never the source's own domain (ITI-83); only domains within the caller's authority
        if wanted and identifier.system not in wanted:
            continue
        parameters.append({"name": "targetIdentifier", "valueIdentifier": {
            "use": "official", "system": mapping.fhir_system(identifier.system), "value": identifier.value}})
    if card is not None:
        parameters.append({"name": "targetId", "valueReference": {"reference": f"Patient/{card.ehc_id}"}})
    body: dict = {"resourceType": "Parameters"}
    if parameters:
        body["parameter"] = parameters
    return _validated(Parameters, body)


# -- PDQm search -----------------------------------------------------------------------------------------

SEARCH_PARAMETERS = ("_id", "identifier", "family", "given", "birthdate", "gender", "telecom", "_count", "_format",
                     "active", "address", "address-city", "address-state", "address-country", "address-postalcode")
_COUNTRY = {"cn", "chn", "china", "中国", "中华人民共和国"}


@dataclass
class Criteria:
    """A PDQm query, parsed. Repeated parameters all apply (AND); commas in a token are alternatives (OR)."""

    ids: list[set[str]] = field(default_factory=list)
    identifiers: list[list[mpi.Identifier]] = field(default_factory=list)
    names: list[tuple[str, str, str]] = field(default_factory=list)  # (family|given, value, modifier)
    birthdates: list[str] = field(default_factory=list)  # YYYY, YYYY-MM or YYYY-MM-DD
    genders: list[set[str]] = field(default_factory=list)
    phones: list[set[str]] = field(default_factory=list)
    active: list[bool | None] = field(default_factory=list)  # None: "true,false", either
    addresses: list[list[str]] = field(default_factory=list)  # alternatives, each "contains", case-insensitive
    count: int = SEARCH_COUNT_DEFAULT  # 0: only the total (a count-only bundle)
    used: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _unsupported(message: str) -> Problem:
    return Problem(message, code="pdq_parameter_invalid", status=400, title="Invalid search parameter")


def parse_search(ctx: Ctx, params: list[tuple[str, str]]) -> Criteria:
    criteria = Criteria()
    for raw_name, raw_value in params:
        name, _, modifier = raw_name.partition(":")
        value = raw_value.strip()
        if name not in SEARCH_PARAMETERS or (modifier and name not in ("family", "given")):
            criteria.warnings.append(f"Search parameter '{raw_name}' is not supported and was ignored.")
            continue
        if name == "_format":
            continue
        if not value:
            raise _unsupported(f"Search parameter '{raw_name}' has no value.")
        criteria.used.append((raw_name, raw_value))
        _add_criterion(ctx, criteria, name, modifier, value)
    return criteria


def _add_criterion(ctx: Ctx, criteria: Criteria, name: str, modifier: str, value: str) -> None:
    alternatives = [v.strip() for v in value.split(",") if v.strip()]
    if name == "_count":
        if not value.isdigit() or not 0 <= int(value) <= SEARCH_COUNT_MAX:
            raise _unsupported(f"_count is a whole number from 0 (the total only) to {SEARCH_COUNT_MAX}.")
        criteria.count = int(value)
    elif name == "active":
        if any(v not in ("true", "false") for v in alternatives):
            raise _unsupported("active is true or false.")
        criteria.active.append(alternatives[0] == "true" if len(set(alternatives)) == 1 else None)
    elif name == "address-country":
        criteria.addresses.append(["\x01cn"] if any(v.casefold() in _COUNTRY for v in alternatives) else ["\0"])
    elif name == "address-postalcode":
        criteria.addresses.append(["\0"])  # not recorded: nobody matches
    elif name.startswith("address"):
        criteria.addresses.append([v.casefold() for v in alternatives])
    elif name == "_id":
        criteria.ids.append({v.upper() for v in alternatives})
    elif name == "identifier":
        criteria.identifiers.append([_identifier_token(ctx, v) for v in alternatives])
    elif name in ("family", "given"):
        if modifier not in ("", "exact"):
            raise _unsupported(f"Only the :exact modifier is supported on {name}.")
        criteria.names.append((name, value, modifier))
    elif name == "birthdate":
        day = value.removeprefix("eq")
        if not _is_fhir_date(day):
            raise _unsupported("birthdate is a date (YYYY, YYYY-MM or YYYY-MM-DD), optionally prefixed 'eq'.")
        criteria.birthdates.append(day)
    elif name == "gender":
        if any(v not in ("male", "female", "other", "unknown") for v in alternatives):
            raise _unsupported("gender is male, female, other or unknown.")
        criteria.genders.append(set(alternatives))
    elif name == "telecom":
        criteria.phones.append({_phone_token(v) for v in alternatives})


def _is_fhir_date(text: str) -> bool:
    for pattern, length in (("%Y", 4), ("%Y-%m", 7), ("%Y-%m-%d", 10)):
        if len(text) == length:
            try:
                date.fromisoformat(text if length == 10 else (text + "-01-01")[:10])
                return True
            except ValueError:
                return False
    return False


def _identifier_token(ctx: Ctx, token: str) -> mpi.Identifier:
    uri, bar, value = token.partition("|")
    if not bar or not uri or not value:
        raise _unsupported("identifier is searched as system|value (the system is required).")
    system = _known_domain(ctx, uri)
    if system is None:
        raise _unsupported(f"Unknown identifier system {uri!r}.")
    _check_lookup(ctx, system)
    try:
        return mapping.normalise_value(system, value)
    except Problem:
        return mpi.Identifier(system, "\0")  # cannot be held by anyone: the search finds nobody


def _phone_token(token: str) -> str:
    system, bar, value = token.partition("|")
    if bar and system not in ("phone", "sms", ""):
        raise _unsupported("telecom is searched as phone|<mobile number> or the number alone.")
    try:
        return identity.normalise_phone(value if bar else token)
    except Problem:
        return "\0"


def search(ctx: Ctx, params: list[tuple[str, str]], base: str) -> dict:
    """``GET Patient?...`` (IHE PDQm, ITI-78) on sealed data.

    The candidates come from an exact, blind-indexed lookup (``_id``, ``identifier``, ``telecom``) or,
    for a name with a birth date, from the real-time matcher's blocking keys; then every criterion is
    applied to each candidate's opened details with FHIR's rules (names: case-insensitive "starts with",
    or equal with ``:exact``, on the Chinese and the pinyin name). Anything else would mean decrypting
    the whole index, so it is refused (``pdq_search_too_broad``).
    """
    criteria = parse_search(ctx, params)
    caller = authority(ctx)
    matched = []
    for person, card in _pool(ctx, criteria):
        view = _view(ctx, person, card, "fhir.search")
        patient = mapping.patient_json(view, caller)
        if _satisfies(view, patient, criteria):
            matched.append((card, patient))
    entries = [{"fullUrl": f"{base}/Patient/{card.ehc_id}", "resource": patient, "search": {"mode": "match"}}
               for card, patient in matched[:criteria.count]]  # _count=0: none, the total only
    bundle = _bundle(entries, criteria.warnings, f"{base}/Patient?{urlencode(criteria.used)}")
    bundle["total"] = len(matched)
    return bundle


def _pool(ctx: Ctx, criteria: Criteria) -> list[tuple[Person, cards.Card]]:
    people: list[Person] = []
    if criteria.ids:
        people = [mpi.resolve(ctx, card.person_id) for card in
                  (_card_by_id(ctx, ehc_id) for ehc_id in criteria.ids[0]) if card is not None]
    elif criteria.identifiers:
        people = [p for p in (_holder(ctx, i) for i in criteria.identifiers[0]) if p is not None]
    elif criteria.phones:
        people = [p for phone in criteria.phones[0] if phone != "\0" for p in mpi.find_by_phone(ctx, phone)]
    elif any(n == "family" for n, _, _ in criteria.names) and criteria.birthdates and len(criteria.birthdates[0]) == 10:
        people = _blocked_pool(ctx, criteria)
    else:
        raise Problem(
            "Search by _id, identifier or telecom, or by family name (and given name) with a full birthdate: "
            "the index is sealed, so a broader search is not possible.",
            code="pdq_search_too_broad", status=400, title="Search too broad")
    unique: dict[str, tuple[Person, cards.Card]] = {}
    for person in people:
        card = _card(ctx, person) if _visible(ctx, person) else None
        if card is not None and person.id not in unique:
            unique[person.id] = (person, card)
    return list(unique.values())


def _blocked_pool(ctx: Ctx, criteria: Criteria) -> list[Person]:
    """The people sharing a blocking key (``mpi.matching.keys``) with the family name (and given name, sex, phone)
    and the birth date: the same keys the real-time matcher starts from."""
    family = next(v for n, v, _ in criteria.names if n == "family")
    given = next((v for n, v, _ in criteria.names if n == "given"), "")
    # A Chinese family name alone gets a stand-in given character, so that the matcher's name parser
    # reads it as a surname (欧阳 alone would read as surname 欧); only the surname key is used then.
    name = mapping.joined_name(family, given or ("某" if mapping.is_cjk(family) else ""))
    sex = None
    if criteria.genders and len(criteria.genders[0]) == 1:
        sex = mapping.SEX.get(next(iter(criteria.genders[0])))
    phone = next(iter(criteria.phones[0])) if criteria.phones and len(criteria.phones[0]) == 1 else None
    keys = mpi.match_blind_keys(ctx.vault, name, sex, date.fromisoformat(criteria.birthdates[0]), phone, None)
    limit = max(criteria.count * 5, 100)
    ids = mpi.people_sharing(ctx.session, keys, limit=limit)
    return [mpi.resolve(ctx, person_id) for person_id in ids]


def _satisfies(view: PersonView, patient: dict, criteria: Criteria) -> bool:
    details = view.details
    held = {(i.system, i.value) for i in view.identifiers} | {(EHC_ID_SYSTEM, view.ehc_id)}
    checks = [
        all(view.ehc_id in ids for ids in criteria.ids),
        all(any((i.system, i.value) in held for i in group) for group in criteria.identifiers),
        all(details.phone in phones for phones in criteria.phones),
        all(mapping.GENDER.get(details.sex, "unknown") in genders for genders in criteria.genders),
        all(details.birth_date is not None and details.birth_date.isoformat().startswith(day)
            for day in criteria.birthdates),
        all(_name_matches(details.name, part, value, modifier) for part, value, modifier in criteria.names),
        all(wanted is None or view.active == wanted for wanted in criteria.active),
        all(any(_address_matches(details.address, v) for v in group) for group in criteria.addresses),
    ]
    return all(checks)


def _address_matches(address: str | None, wanted: str) -> bool:
    """An address criterion on the person's own address text ("\x01cn": in China, which every one is)."""
    if wanted == "\x01cn":
        return True
    return bool(address) and wanted in address.casefold()


def _name_matches(name: str | None, part: str, value: str, modifier: str) -> bool:
    """FHIR string search on family or given, against the Chinese name and its pinyin (searched on the
    person's real name, whatever the caller is shown)."""
    if not name:
        return False
    candidates: list[str] = []
    for human in mapping.human_names(name, masked=False):
        if part == "family" and human.get("family"):
            candidates.append(human["family"])
        if part == "given":
            candidates.extend(human.get("given") or [])
    if not candidates:
        candidates = [name]  # a name we do not split: either part searches the whole name
    if modifier == "exact":
        return value in candidates
    wanted = value.casefold()
    return any(c.casefold().startswith(wanted) for c in candidates)
