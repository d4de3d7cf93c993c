"""Errors on FHIR routes: an OperationOutcome, never problem+json.

FHIR clients (and the IHE PIXm/PDQm profiles) expect an ``OperationOutcome`` with a 4xx status, so the
routes under ``/fhir`` answer the platform's :class:`~ehc.kit.errors.Problem` that way. The problem's
stable ``code`` is kept, as ``issue[].details.coding`` in system :data:`PROBLEM_CODES` (the same codes,
and the same ``https://ehc.example/problems/<code>`` documentation, as the rest of the API); its
``detail`` is ``issue[].diagnostics``; field errors become one issue each, with a FHIRPath
``expression`` where one is known.
"""

from __future__ import annotations

import re
from typing import Any

from fhir.resources.R4B.operationoutcome import OperationOutcome

from ..kit.errors import Problem

FHIR_JSON = "application/fhir+json"
PROBLEM_CODES = "https://ehc.example/problems"
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")

# FHIR issue-type codes (http://hl7.org/fhir/issue-type) for our HTTP statuses and some of our codes.
_ISSUE_BY_STATUS = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
                    406: "not-supported", 409: "conflict", 413: "too-costly", 415: "not-supported",
                    422: "business-rule", 429: "throttled"}
_ISSUE_BY_CODE = {
    "fhir_body_invalid": "structure",
    "fhir_resource_invalid": "structure",
    "pix_source_system_unknown": "code-invalid",
    "pix_target_system_not_found": "code-invalid",
    "pdq_search_too_broad": "too-costly",
    "fhir_interaction_not_supported": "not-supported",
    "validation_failed": "invalid",
}


def issue_type(problem: Problem) -> str:
    if problem.code in _ISSUE_BY_CODE:
        return _ISSUE_BY_CODE[problem.code]
    if problem.status >= 500:
        return "exception"
    return _ISSUE_BY_STATUS.get(problem.status, "processing")


def outcome_json(problem: Problem, request_id: str | None = None) -> dict[str, Any]:
    """The OperationOutcome for a problem (validated against the R4B model before it leaves)."""
    coding = {"system": PROBLEM_CODES, "code": problem.code, "display": problem.title}
    issues = [{
        "severity": "fatal" if problem.status >= 500 else "error",
        "code": issue_type(problem),
        "details": {"coding": [coding], "text": problem.detail},
        "diagnostics": problem.detail,
    }]
    for error in problem.errors:
        issue: dict[str, Any] = {
            "severity": "error",
            "code": issue_type(problem),
            "details": {"coding": [{"system": PROBLEM_CODES, "code": error.get("code") or problem.code}],
                        "text": error.get("message") or problem.detail},
        }
        if error.get("field"):
            issue["expression"] = [error["field"]]
        issues.append(issue)
    body: dict[str, Any] = {"resourceType": "OperationOutcome", "issue": issues}
    if request_id and _FHIR_ID.fullmatch(request_id):
        # The request id, so a caller can quote it to the operators (the X-Request-ID header has it too).
        body["id"] = request_id
    return OperationOutcome.model_validate(body).model_dump(mode="json", exclude_none=True)


def warnings_json(messages: list[str]) -> dict[str, Any]:
    """An informational OperationOutcome (a searchset's ``outcome`` entry): what was ignored and why."""
    return OperationOutcome.model_validate({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "warning", "code": "informational", "diagnostics": m} for m in messages],
    }).model_dump(mode="json", exclude_none=True)
