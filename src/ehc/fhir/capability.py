"""``GET /fhir/metadata``: the CapabilityStatement, what this FHIR server supports (public)."""

from __future__ import annotations

from functools import lru_cache

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from .. import __version__
from ..records import service as records
from . import patient as mapping

# The FHIR version we speak: R4, the version IHE PIXm and PDQm and Chinese regional platforms profile. The
# resources are built and checked with the fhir.resources R4B (4.3.0) models; for everything served here
# (Patient, Bundle, Parameters, OperationOutcome, CapabilityStatement) R4B and R4 are the same on the wire,
# and the tests parse every answer with fhirclient's R4 models too.
FHIR_VERSION = "4.0.1"
RELEASE_DATE = "2026-01-01"  # when this statement's content last changed

PIXM_MANAGER = "https://profiles.ihe.net/ITI/PIXm/CapabilityStatement/IHE.PIXm.Manager"
PDQM_SUPPLIER = "https://profiles.ihe.net/ITI/PDQm/CapabilityStatement/IHE.PDQm.Supplier"

_SEARCH_PARAMS = [
    ("_id", "token", "The EHC ID (the Patient's logical id)."),
    ("identifier", "token", (f"system|value, exact, blind-indexed: resident ID card ({mapping.RESIDENT_ID_CARD}), "
                             "other documents, EHC ID, your own hospital numbers, social security, insurance.")),
    ("telecom", "token", "A mainland mobile number (phone|number or the number alone), exact."),
    ("family", "string", ("Starts with, case-insensitive (or :exact), on the Chinese or pinyin family name. "
                          "Needs a full birthdate, or _id / identifier / telecom.")),
    ("given", "string", "As family, on the given name."),
    ("birthdate", "date", "eq only: YYYY, YYYY-MM or YYYY-MM-DD."),
    ("gender", "token", "male | female | other | unknown."),
    ("active", "token", "true | false: whether the card (the Patient) is in use."),
    ("address", "string", "Contains, case-insensitive, on the address text (the whole address, any part)."),
    ("address-city", "string", "As address (cities are part of the address text)."),
    ("address-state", "string", "As address (provinces are part of the address text)."),
    ("address-country", "string", "CN, China or 中国: every address here is in mainland China."),
    ("address-postalcode", "string", "Postal codes are not recorded: a search by one finds nobody."),
]


def _record_resources() -> list[dict]:
    """Health records (issue 16, docs/records.md): published by hospital systems, read under consent."""
    return [{"type": kind, "interaction": [{"code": c} for c in ("read", "vread", "update", "create", "history-instance",
                                                                 "search-type")],
             "versioning": "versioned", "readHistory": True, "updateCreate": False,
             "searchParam": [
                 {"name": "patient", "type": "reference", "documentation": "Patient/<EHC ID>; this or patient.identifier."},
                 {"name": "patient.identifier", "type": "token",
                  "documentation": f"system|value: the EHC ID ({mapping.EHC_ID}) or a hospital's patient number "
                                   f"({mapping.SID}/mrn/<institution id>), as IHE MHD ITI-67 searches."},
                 {"name": "status", "type": "token",
                  "documentation": ("current | superseded | entered-in-error, comma-separated for any of them."
                                    if kind == "DocumentReference" else "The resource's status code(s).")}]}
            for kind in records.SUBJECT]


def _scheduling_resources() -> list[dict]:
    """Appointments (issue 14, docs/appointments.md): the public timetable and the desk's bookings, with
    the IHE ITI Scheduling operations."""
    def search(*params: tuple[str, str, str]) -> list[dict]:
        return [{"name": n, "type": t, "documentation": d} for n, t, d in params]
    read_search = [{"code": "read"}, {"code": "search-type"}]
    where = (("institution", "token", "An institution id."), ("department", "token", "A department code."),
             ("practitioner", "string", "A doctor's name, exact."))
    return [
        {"type": "Schedule", "interaction": read_search, "documentation": "A session (one department's or doctor's "
         "sitting on one day); public.", "searchParam": search(("date", "date", "ge/le/eq on China days."), *where)},
        {"type": "Slot", "interaction": read_search, "documentation": "A period of a session; free when the "
         "caller's quota has a place; public.", "searchParam": search(
             ("schedule", "reference", "Schedule/<id>."), ("start", "date", "ge/le/eq on China days."),
             ("status", "token", "free | busy."), *where)},
        {"type": "Appointment", "interaction": read_search, "documentation": "A booking at the caller's "
         "institution (id: its reference); window clerks, doctors, nurses, the admin, hospital systems.",
         "searchParam": search(("patient", "reference", "Patient/<EHC ID>, required.")),
         "operation": [
             {"name": "find", "definition": "https://profiles.ihe.net/ITI/Scheduling/OperationDefinition/"
                                            "appointment-find", "documentation": "Proposed Appointments in free "
              "slots: start, end (days), institution, department, practitioner, patient, _count; public."},
             {"name": "hold", "definition": "https://profiles.ihe.net/ITI/Scheduling/OperationDefinition/"
                                            "appointment-hold", "documentation": "Hold a slot for a patient "
              "(pending); Idempotency-Key; window clerks, family doctors, hospital systems."},
             {"name": "book", "definition": "https://profiles.ihe.net/ITI/Scheduling/OperationDefinition/"
                                            "appointment-book", "documentation": "Confirm a held Appointment "
              "(its id), or book a slot directly; Idempotency-Key."},
         ]},
    ]


@lru_cache(maxsize=8)
def _statement(base: str) -> dict:
    body = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": RELEASE_DATE,
        "publisher": "Electronic health card platform",
        "kind": "instance",
        "instantiates": [PIXM_MANAGER, PDQM_SUPPLIER],
        "software": {"name": "ehc", "version": __version__},
        "implementation": {"description": "Master patient index: identity services (Patient $match, IHE PIXm "
                                          "$ihe-pix, IHE PDQm search)", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Errors are OperationOutcomes; issue.details.coding (system "
                             "https://ehc.example/problems) carries the platform's stable error code.",
            "security": {
                "cors": False,
                "description": "Hospital systems sign every request with SM2 (EHC-SM2-V1, see "
                               "docs/api-integration.md); staff send a bearer token from "
                               "POST /api/v1/auth/staff/token. Anonymous requests are refused (401), except "
                               "this statement and the timetable (Schedule, Slot, Appointment/$find).",
            },
            "resource": [{
                "type": "Patient",
                "profile": "http://hl7.org/fhir/StructureDefinition/Patient",
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "versioning": "no-version",
                "readHistory": False,
                "updateCreate": False,
                "searchParam": [{"name": n, "type": t, "documentation": d} for n, t, d in _SEARCH_PARAMS],
                "operation": [
                    {"name": "match", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-match",
                     "documentation": "Scored searchset with match grades (certain / probable / possible). "
                                      "Read-only: nothing is linked."},
                    {"name": "ihe-pix", "definition": "https://profiles.ihe.net/ITI/PIXm/OperationDefinition/"
                                                      "IHE.PIXm.pix",
                     "documentation": "IHE PIXm ITI-83: identifiers in the domains the caller may see."},
                    {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                     "documentation": "The Patient and every health record the caller may read under the resident's "
                                      "consent (or break-glass), as a searchset Bundle (docs/records.md)."},
                ],
            }, *_record_resources(), *_scheduling_resources()],
            "interaction": [{"code": "transaction", "documentation": "IHE MHD ITI-65 Provide Document Bundle"}],
        }],
    }
    return CapabilityStatement.model_validate(body).model_dump(mode="json", exclude_none=True)


def capability_statement(base: str) -> dict:
    return _statement(base)
