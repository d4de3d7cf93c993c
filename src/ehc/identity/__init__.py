"""Identity: documents (CV02.01.101), names and phones, and real-name verification.

Everything here is pure: no database, no HTTP. Services parse what residents type with these
functions before sealing it or computing a blind index from it.
"""

from ehc.identity.contact import mask_name, mask_phone, normalise_name, normalise_phone
from ehc.identity.documents import (
    FEMALE,
    LABELS,
    MALE,
    Document,
    DocumentType,
    document_type,
    mask_number,
    normalise_number,
    parse_document,
)
from ehc.identity.verification import (
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
    "document_type",
    "get_verifier",
    "mask_name",
    "mask_number",
    "mask_phone",
    "normalise_name",
    "normalise_number",
    "normalise_phone",
    "parse_document",
    "register_verifier",
    "registered_verifiers",
    "unregister_verifier",
]
