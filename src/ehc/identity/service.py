"""Identity's public face: document types (CV02.01.101), the GB 11643 check, names and phones, and
real-name verifiers. Everything here is pure: no database, no HTTP. Other domains and the doors
import this module; the modules behind it (``documents``, ``contact``, ``verification``) are internal.
"""

from .contact import canonical_name, mask_name, mask_phone, normalise_phone
from .documents import (
    FEMALE,
    LABELS,
    MALE,
    Document,
    DocumentType,
    document_type,
    mask_number,
    normalise_number,
    parse_document,
    read_resident_id,
    resident_id_from_15,
)
# Synthetic people for the demo, the tests and the master index's test sets (made one way everywhere).
from .synthetic import (
    chinese_name,
    make_uscc,
    mobile_phone,
    organisation_code,
    resident_id_number,
    street_address,
)
from .verification import (
    DEFAULT_VERIFIER,
    FAILED,
    PASSED,
    REVIEW,
    Applicant,
    LocalDocumentVerifier,
    VerificationResult,
    Verifier,
    get_verifier,
    register_verifier,
    registered_verifiers,
    unregister_verifier,
)

__all__ = [
    "DEFAULT_VERIFIER",
    "FAILED",
    "FEMALE",
    "LABELS",
    "MALE",
    "PASSED",
    "REVIEW",
    "Applicant",
    "Document",
    "DocumentType",
    "LocalDocumentVerifier",
    "VerificationResult",
    "Verifier",
    "canonical_name",
    "document_type",
    "get_verifier",
    "mask_name",
    "mask_number",
    "mask_phone",
    "normalise_number",
    "normalise_phone",
    "parse_document",
    "read_resident_id",
    "resident_id_from_15",
    "register_verifier",
    "registered_verifiers",
    "resident_id_number", "chinese_name", "make_uscc", "mobile_phone", "organisation_code", "street_address",
    "unregister_verifier",
]
