"""Between a person of the master index and a FHIR Patient.

Out: a person, their card, their demographics and identifiers become a Patient whose ``id`` is the card's
EHC ID (the reference every other API uses for a person; 64 random hex characters, so it reveals nothing).
What a caller sees depends on their :class:`Authority`:

* a hospital (its systems and staff) sees its own identifier domains in full (``mrn:<its id>``,
  ``oldcard:<its id>``); a person carrying one of them is that hospital's patient, so the hospital also
  sees the name (with its family/given split and pinyin), full birth date, phone and address, as its own
  registration desk already does;
* everyone else sees what the card API shows window staff: masked name, birth year, masked phone, no
  street address, and the resource is labelled ``MASKED`` (``meta.security``);
* identifiers follow ``mpi.xref.view``: document, social security and medical insurance numbers are
  masked (a masked ``Identifier.value`` is for display only, never for matching), other hospitals'
  numbers are left out (where a person is known is itself health information).

In: a Patient submitted to ``$match`` becomes a :class:`ehc.mpi.matching.Record` (:func:`record_from`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from ..identity.service import canonical_name, mask_name, mask_phone, normalise_phone
from ..institutions import service as institutions
from ..kit.context import Actor
from ..kit.errors import Problem
from ..mpi import service as mpi
from ..mpi.service import Demographics, Identifier, Record

BASE = "https://ehc.example/fhir"
SID = f"{BASE}/sid"
# WS/T 500 (shared health documents) names the resident ID card number with this OID; Chinese regional
# platforms use it as the FHIR identifier system too.
RESIDENT_ID_CARD = "urn:oid:2.16.156.10011.1.3"
EHC_ID = f"{SID}/ehc-id"  # the card's EHC ID: also the Patient's logical id
SOCIAL_SECURITY = f"{SID}/ssc"
MEDICAL_INSURANCE = f"{SID}/mi"
REGION_CODE = f"{BASE}/StructureDefinition/region-code"  # GB/T 2260 code on Address
NAME_REPRESENTATION = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation"
MASKED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "MASKED",
          "display": "masked"}

EHC_ID_SYSTEM = "ehc-id"  # how this module names the EHC ID domain internally (not a person_identifiers system)
_INSTITUTION_DOMAINS = ("mrn", "oldcard")
_ID_PATTERN = re.compile(r"[A-Za-z0-9_\-]{1,24}")
_DOC_TYPES = ("01", "02", "03", "04", "05", "06", "07", "08", "99")

# GB/T 2261.1 sex codes -> FHIR administrative-gender, and back (0 unknown, 9 unstated).
GENDER = {"1": "male", "2": "female", "0": "unknown", "9": "unknown"}
SEX = {"male": "1", "female": "2"}

_CJK_NAME = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]{2,6}")

# -- identifier systems ---------------------------------------------------------------------------------

def fhir_system(system: str) -> str | None:
    """The FHIR system URI of one of our identifier systems; None for those that never leave the platform
    (a newborn's registration key)."""
    if system == "doc:01":
        return RESIDENT_ID_CARD
    if system.startswith("doc:"):
        return f"{SID}/doc-{system[4:]}"
    if system == EHC_ID_SYSTEM:
        return EHC_ID
    if system == "ssc":
        return SOCIAL_SECURITY
    if system == "mi":
        return MEDICAL_INSURANCE
    kind, _, institution = system.partition(":")
    if kind in _INSTITUTION_DOMAINS and institution:
        return f"{SID}/{kind}/{institution}"
    return None


def internal_system(uri: str) -> str | None:
    """Our identifier system for a FHIR system URI, or None when we do not know the domain. Institution
    domains are recognised by their shape; whether the institution exists is the caller's question."""
    uri = uri.strip()
    if uri == RESIDENT_ID_CARD:
        return "doc:01"
    if uri == EHC_ID:
        return EHC_ID_SYSTEM
    if uri == SOCIAL_SECURITY:
        return "ssc"
    if uri == MEDICAL_INSURANCE:
        return "mi"
    if uri.startswith(f"{SID}/doc-") and uri[len(SID) + 5:] in _DOC_TYPES and uri[len(SID) + 5:] != "01":
        return f"doc:{uri[len(SID) + 5:]}"
    for kind in _INSTITUTION_DOMAINS:
        prefix = f"{SID}/{kind}/"
        if uri.startswith(prefix) and _ID_PATTERN.fullmatch(uri[len(prefix):]):
            return f"{kind}:{uri[len(prefix):]}"
    return None


def institution_of(system: str) -> str | None:
    """The institution a hospital-assigned identifier system belongs to (``mrn:<id>`` -> ``<id>``)."""
    kind, _, institution = system.partition(":")
    return institution if kind in _INSTITUTION_DOMAINS and institution else None


def normalise_value(system: str, value: str, actor: Actor | None = None) -> Identifier:
    """An identifier as the index stores it (``mpi.xref`` rules: documents by their type's rules, hospital
    and insurance numbers by their formats); ``Invalid`` when the value does not fit."""
    if system == EHC_ID_SYSTEM:
        return Identifier(system, value.strip().upper())
    return mpi.normalise(mpi.parse_system(system, actor), value)


# -- who sees what --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Authority:
    """What a caller may see, by ``mpi.xref``'s rules: a hospital sees its own local numbers in clear,
    national identifiers masked and other hospitals' numbers not at all; commission roles see every
    system masked."""

    actor: Actor

    @property
    def institution_id(self) -> str | None:
        return institutions.own_institution(self.actor)

    def owns(self, system: str) -> bool:
        return self.institution_id is not None and institution_of(system) == self.institution_id

    def shown(self, identifier: Identifier) -> str | None:
        """The value as this caller sees it: clear, masked, or None (not listed)."""
        return mpi.view(self.actor, identifier)

    def may_see(self, system: str) -> bool:
        """May this caller receive identifiers of ``system`` in full (PIXm target domains)?"""
        return system == EHC_ID_SYSTEM or self.owns(system)

    def treats(self, identifiers: list[Identifier]) -> bool:
        """Is the person this caller's patient (they hold one of the caller's own numbers)?"""
        return any(self.owns(i.system) for i in identifiers)


# -- names ----------------------------------------------------------------------------------------------

def split_chinese_name(name: str) -> tuple[str, str] | None:
    """``张建国`` -> (``张``, ``建国``), ``欧阳修`` -> (``欧阳``, ``修``), as the matcher splits names
    (``mpi.matching.names``); None for names that are not 2-6 Chinese characters (minority names with a middle
    dot, foreign names): they keep only ``text``."""
    if not _CJK_NAME.fullmatch(name):
        return None
    parsed = mpi.parse_name(name)
    return parsed.surname, parsed.given


def human_names(name: str, *, masked: bool) -> list[dict]:
    """The official name; for a Chinese name seen in full, its family/given split and, as a second
    HumanName marked syllabic (ISO 21090 ``SYL``), its pinyin (the matcher's reading: surnames such as
    单 read Shan)."""
    if masked:
        return [{"use": "official", "text": mask_name(name)}]
    parts = split_chinese_name(name)
    if parts is None:
        return [{"use": "official", "text": name}]
    family, given = parts
    parsed = mpi.parse_name(name)
    family_pinyin, given_pinyin = parsed.surname_pinyin.capitalize(), parsed.given_pinyin.capitalize()
    ideographic = {"extension": [{"url": NAME_REPRESENTATION, "valueCode": "IDE"}],
                   "use": "official", "text": name, "family": family, "given": [given]}
    syllabic = {"extension": [{"url": NAME_REPRESENTATION, "valueCode": "SYL"}],
                "use": "official", "text": f"{family_pinyin} {given_pinyin}",
                "family": family_pinyin, "given": [given_pinyin]}
    return [ideographic, syllabic]


# -- a person as a Patient ------------------------------------------------------------------------------

@dataclass
class PersonView:
    """Everything the mapping needs about one person, already opened (and audited) by the caller."""

    ehc_id: str
    active: bool
    details: Demographics
    identifiers: list[Identifier] = field(default_factory=list)
    replaced_by: str | None = None  # the surviving card's EHC ID when this person was merged away


def patient_json(view: PersonView, authority: Authority) -> dict:
    """A FHIR Patient (R4) as JSON, shaped by what ``authority`` may see."""
    full = authority.treats(view.identifiers)
    patient: dict = {"resourceType": "Patient", "id": view.ehc_id, "active": view.active}
    if not full:
        patient["meta"] = {"security": [MASKED]}
    patient["identifier"] = _identifiers(view, authority)
    if view.replaced_by:
        patient["link"] = [{"other": {"reference": f"Patient/{view.replaced_by}"}, "type": "replaced-by"}]
        return patient
    details = view.details
    if details.name:
        patient["name"] = human_names(details.name, masked=not full)
    if details.phone:
        patient["telecom"] = [{"system": "phone", "use": "mobile",
                               "value": details.phone if full else mask_phone(details.phone)}]
    patient["gender"] = GENDER.get(details.sex, "unknown")
    if details.birth_date:
        patient["birthDate"] = details.birth_date.isoformat() if full else str(details.birth_date.year)
    address = _address(details, full)
    if address:
        patient["address"] = [address]
    return patient


def _identifiers(view: PersonView, authority: Authority) -> list[dict]:
    out = [{"use": "usual", "system": EHC_ID, "value": view.ehc_id}]
    for identifier in view.identifiers:
        uri = fhir_system(identifier.system)
        shown = authority.shown(identifier) if uri else None
        if shown is None:
            continue
        out.append({"use": "official" if identifier.system.startswith("doc:") else "secondary", "system": uri,
                    "value": shown})
    return out


def _address(details: Demographics, full: bool) -> dict | None:
    address: dict = {}
    if details.region_code:
        address["extension"] = [{"url": REGION_CODE, "valueCode": details.region_code}]
    if full and details.address:
        address["use"] = "home"
        address["text"] = details.address
    if address:
        address["country"] = "CN"
    return address or None


# -- a submitted Patient as a matching record -----------------------------------------------------------

@dataclass
class Submitted:
    """A submitted Patient as the matcher takes it, with warnings about what was left out."""

    record: Record
    warnings: list[str] = field(default_factory=list)

    @property
    def has_anything(self) -> bool:
        r = self.record
        return bool(r.name or r.birth_date or r.phone or r.document or r.identifiers)


def record_from(patient: dict) -> Submitted:
    """The matcher's record for a (validated) Patient: name, gender, birth date, mobile phone, address,
    region code, document and other identifiers. Parts we cannot use are left out with a warning."""
    warnings: list[str] = []
    name = _submitted_name(patient.get("name") or [], warnings)
    birth = _submitted_birth_date(patient.get("birthDate"), warnings)
    phone = _submitted_phone(patient.get("telecom") or [], warnings)
    address, region = _submitted_address(patient.get("address") or [])
    document, others = _submitted_identifiers(patient.get("identifier") or [], warnings)
    record = Record(name=name, sex=SEX.get(patient.get("gender") or ""), birth_date=birth, phone=phone,
                    address=address, region_code=region, document=document, identifiers=tuple(others))
    return Submitted(record, warnings)


def _submitted_name(names: list[dict], warnings: list[str]) -> str | None:
    # The official name first; the ideographic one before a pinyin rendering.
    ordered = sorted(names, key=lambda n: (n.get("use") not in (None, "official"), _representation(n) == "SYL"))
    for name in ordered:
        text = name.get("text") or _joined(name)
        if text:
            try:
                return canonical_name(text)
            except Problem:
                warnings.append("Patient.name: not a valid personal name; left out of matching.")
                return None
    return None


def _representation(name: dict) -> str | None:
    return next((e.get("valueCode") for e in name.get("extension") or [] if e.get("url") == NAME_REPRESENTATION),
                None)


def _joined(name: dict) -> str:
    return joined_name(name.get("family") or "", " ".join(name.get("given") or []))


def is_cjk(text: str) -> bool:
    return bool(text) and _CJK_NAME.fullmatch(text + "一") is not None


def joined_name(family: str, given: str) -> str:
    """A name from its parts: Chinese in Chinese order without a space (张 + 建国), others given first."""
    if split_chinese_name(family + given) or (not given and is_cjk(family)):
        return family + given
    return " ".join(p for p in (given, family) if p)


def _submitted_birth_date(value: str | None, warnings: list[str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        warnings.append("Patient.birthDate: only a full date (YYYY-MM-DD) is used for matching.")
        return None


def _submitted_phone(telecoms: list[dict], warnings: list[str]) -> str | None:
    for telecom in telecoms:
        if telecom.get("system") in (None, "phone", "sms") and telecom.get("value"):
            try:
                return normalise_phone(telecom["value"])
            except Problem:
                warnings.append("Patient.telecom: only mainland mobile numbers are used for matching.")
    return None


def _submitted_address(addresses: list[dict]) -> tuple[str | None, str | None]:
    for address in addresses:
        region = next((e.get("valueCode") for e in address.get("extension") or [] if e.get("url") == REGION_CODE),
                      None)
        parts = [address.get(k) for k in ("state", "city", "district")] + list(address.get("line") or [])
        text = address.get("text") or "".join(p for p in parts if p) or None
        if text or region:
            return text, region if region and re.fullmatch(r"\d{6}", region) else None
    return None, None


def _submitted_identifiers(identifiers: list[dict], warnings: list[str]) -> tuple[Identifier | None,
                                                                                  list[Identifier]]:
    document: Identifier | None = None
    others: list[Identifier] = []
    for position, given in enumerate(identifiers):
        where = f"Patient.identifier[{position}]"
        system = internal_system(given.get("system") or "")
        if system is None or system == EHC_ID_SYSTEM or not given.get("value"):
            warnings.append(f"{where}: unknown identifier system; left out of matching.")
            continue
        try:
            identifier = normalise_value(system, given["value"])
        except Problem as problem:
            warnings.append(f"{where}: {problem.detail}")
            continue
        if system.startswith("doc:") and document is None:
            document = identifier
        else:
            others.append(identifier)
    return document, others
