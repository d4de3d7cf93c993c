"""Real-name verification: does the person applying match the document they present?

Verification is one pluggable step. A verifier takes an :class:`Applicant` (the name, sex and birth
date the person states, and the parsed :class:`~ehc.identity.documents.Document`) and answers with a
:class:`VerificationResult` whose ``outcome`` is

* ``"passed"``  - the platform may issue the card;
* ``"review"``  - a window clerk must look at the document (the card waits as "pending review");
* ``"failed"``  - the application is refused; ``errors`` holds field errors
  (``{"field", "code", "message"}``, the same shape as :func:`ehc.kit.errors.field_error`).

The platform ships one verifier, ``"local-document"`` (:class:`LocalDocumentVerifier`), which checks
only what the document number itself encodes. It is the default (:data:`DEFAULT_VERIFIER`).

Production adapters
-------------------
A deployment that has access to a national identity service (the Ministry of Public Security's
citizen identity check, a real-person / face verification order from an identity provider) plugs
it in without touching this module:

1. Write a class that satisfies the :class:`Verifier` protocol: a ``name`` attribute (a short
   stable string, e.g. ``"mps-face"``) and ``verify(applicant) -> VerificationResult``. It calls the
   service, maps "identity matches" to ``"passed"``, "does not match" to ``"failed"`` with field
   errors (``name_mismatch``, ``document_not_found``, ``sex_mismatch``, ``birth_date_mismatch``...),
   and "service unavailable / inconclusive" to ``"review"`` with a ``note`` saying so, never to
   ``"passed"``. It should run :class:`LocalDocumentVerifier` first and return its failure
   unchanged, so an impossible number never costs a paid service call. It raises nothing for a
   mismatch; an exception means the adapter itself is broken.
2. Register an instance at import time with :func:`register_verifier`.
3. Select it with the ``EHC_VERIFIER`` setting (its ``name``; default ``"local-document"``). The
   service layer resolves that setting with :func:`get_verifier`, so an unknown name fails loudly
   at start-up (``KeyError``) rather than silently falling back to the local check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol, runtime_checkable

from ehc.identity.contact import canonical_name
from ehc.identity.documents import LABELS, Document, DocumentType, parse_document
from ehc.kit.clock import today
from ehc.kit.errors import Invalid, field_error

PASSED = "passed"
REVIEW = "review"
FAILED = "failed"
OUTCOMES = frozenset({PASSED, REVIEW, FAILED})

DEFAULT_VERIFIER = "local-document"

#: A birth certificate registers a child; older applicants must present an ID card or another document.
BIRTH_CERTIFICATE_MAX_AGE_YEARS = 18

#: GB/T 2261.1 codes meaning "not known" / "not stated": nothing to compare.
_SEX_UNSTATED = frozenset({"0", "9"})
_SEX_CODES = frozenset({"0", "1", "2", "9"})


@dataclass(frozen=True)
class Applicant:
    """What a person states when applying, and the document they present."""

    name: str
    sex: str | None
    birth_date: date | None
    document: Document


@dataclass(frozen=True)
class VerificationResult:
    verifier: str
    outcome: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, not {self.outcome!r}")

    @property
    def passed(self) -> bool:
        return self.outcome == PASSED


@runtime_checkable
class Verifier(Protocol):
    name: str

    def verify(self, applicant: Applicant) -> VerificationResult: ...


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a year that has none
        return day.replace(year=day.year - years, day=28)


class LocalDocumentVerifier:
    """Checks what the platform can check without any outside service.

    * Any document: the number must still parse for its type, the name must be a valid name, and a
      stated birth date must not be in the future.
    * Resident ID card: the sex and birth date the
      applicant states, when stated, must equal what the number encodes.
    * Birth certificate: the birth date must be stated and less than 18 years ago (newborn and child
      registration).
    * Every other type: the number's format was checked when it was parsed, but nothing ties it to
      the person, so the outcome is ``"review"``: a window clerk checks the document.

    The name is never compared with anything: only an identity service can do that.
    """

    name = DEFAULT_VERIFIER

    def verify(self, applicant: Applicant) -> VerificationResult:
        errors: list[dict[str, Any]] = []
        try:
            canonical_name(applicant.name)
        except Invalid as exc:
            errors.extend(exc.errors)
        if applicant.birth_date is not None and applicant.birth_date > today():
            errors.append(field_error("birth_date", "birth_date_in_future", "The birth date is in the future."))
        if applicant.sex not in (None, "") and applicant.sex not in _SEX_CODES:
            errors.append(
                field_error("sex", "sex_invalid", "Sex must be a GB/T 2261.1 code: 1 male, 2 female, 0 or 9 unknown.")
            )

        note = ""
        try:  # re-parse: a Document may have been built by hand rather than by parse_document
            doc = parse_document(applicant.document.type, applicant.document.number)
        except Invalid as exc:
            return VerificationResult(self.name, FAILED, errors + list(exc.errors))
        if doc.type is DocumentType.RESIDENT_ID:
            errors.extend(self._resident_id(applicant.sex, applicant.birth_date, doc))
        elif doc.type is DocumentType.BIRTH_CERTIFICATE:
            errors.extend(self._birth_certificate(applicant))
        else:
            note = (
                f"{LABELS[doc.type][0]} numbers cannot be checked against the holder locally; "
                "a window clerk must check the document."
            )
        if errors:
            return VerificationResult(self.name, FAILED, errors)
        if note:
            return VerificationResult(self.name, REVIEW, [], note)
        return VerificationResult(self.name, PASSED, [])

    @staticmethod
    def _resident_id(sex: str | None, birth_date: date | None, doc: Document) -> list[dict[str, Any]]:
        errors = []
        if sex in ("1", "2") and sex != doc.sex:
            errors.append(
                field_error("sex", "sex_mismatch", "The sex stated does not match the resident ID card number.")
            )
        if birth_date is not None and birth_date != doc.birth_date:
            errors.append(
                field_error(
                    "birth_date",
                    "birth_date_mismatch",
                    "The birth date stated does not match the resident ID card number.",
                )
            )
        return errors

    @staticmethod
    def _birth_certificate(applicant: Applicant) -> list[dict[str, Any]]:
        if applicant.birth_date is None:
            return [
                field_error(
                    "birth_date", "birth_date_required", "A birth date is required with a birth certificate."
                )
            ]
        if applicant.birth_date <= _years_before(today(), BIRTH_CERTIFICATE_MAX_AGE_YEARS):
            return [
                field_error(
                    "birth_date",
                    "birth_date_out_of_range",
                    f"A birth certificate is accepted only for children under {BIRTH_CERTIFICATE_MAX_AGE_YEARS}; "
                    "adults apply with a resident ID card or another document.",
                )
            ]
        return []


# --- registry ------------------------------------------------------------------------------------

_registry: dict[str, Verifier] = {}


def register_verifier(verifier: Verifier, *, replace: bool = False) -> Verifier:
    """Make ``verifier`` available under ``verifier.name``. Registering a different verifier under a
    name already taken is an error unless ``replace`` is true."""
    name = getattr(verifier, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError("A verifier needs a non-empty string name.")
    if not callable(getattr(verifier, "verify", None)):
        raise TypeError(f"Verifier {name!r} has no verify(applicant) method.")
    current = _registry.get(name)
    if current is not None and current is not verifier and not replace:
        raise ValueError(f"A verifier named {name!r} is already registered; pass replace=True to replace it.")
    _registry[name] = verifier
    return verifier


def unregister_verifier(name: str) -> None:
    """Remove a verifier (tests, plug-in unloading). Unknown names are ignored."""
    _registry.pop(name, None)


def get_verifier(name: str = DEFAULT_VERIFIER) -> Verifier:
    """The verifier registered under ``name``; ``KeyError`` naming the registered ones otherwise."""
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry)) or "none"
        raise KeyError(f"No identity verifier named {name!r} is registered (registered: {known}).") from None


def registered_verifiers() -> list[str]:
    return sorted(_registry)


register_verifier(LocalDocumentVerifier())
