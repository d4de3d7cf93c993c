"""The FHIR door (``/fhir``): thin. Parse, authorise (fhir/auth.py), call fhir/service.py, answer FHIR JSON.

Every answer is ``application/fhir+json``; every error, including a refused sign-in, a rate limit or a
route we do not serve, is an OperationOutcome (``outcome.py``) rather than the problem+json of
``/api/v1``, because that is what FHIR clients read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..kit.auth import RawBody
from ..kit.errors import Problem
from ..kit.http import request_id, value_problem
from . import service
from .auth import IdentityReader
from .capability import capability_statement
from .outcome import FHIR_JSON, outcome_json
from .records import build_router as records_router
from .records import provide as provide_documents
from .scheduling import build_router as scheduling_router

log = logging.getLogger("ehc.fhir")


class FhirJSON(JSONResponse):
    media_type = FHIR_JSON


# What the OpenAPI document says every FHIR operation may answer besides its resource: an
# OperationOutcome (kit.openapi adds problem+json only where a door says nothing).
_OUTCOME_SCHEMA = {"type": "object", "required": ["resourceType", "issue"],
                   "properties": {"resourceType": {"enum": ["OperationOutcome"]}, "issue": {"type": "array", "items": {"type": "object"}}}}
OUTCOME_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": f"OperationOutcome ({issue})", "content": {FHIR_JSON: {"schema": _OUTCOME_SCHEMA}}}
    for status, issue in ((400, "invalid"), (401, "login"), (403, "forbidden"), (404, "not-found"),
                          (409, "conflict"), (422, "business-rule"), (429, "throttled"))
}


def outcome_response(request: Request, problem: Problem) -> JSONResponse:
    headers = {"X-Request-ID": request_id(request)}
    if "retry_after" in problem.extra:
        headers["Retry-After"] = str(problem.extra["retry_after"])
    return FhirJSON(outcome_json(problem, request_id(request)), status_code=problem.status, headers=headers)


def _as_problem(error: Exception) -> Problem:
    if isinstance(error, Problem):
        return error
    if isinstance(error, RequestValidationError):
        errors = [{"field": ".".join(str(p) for p in e.get("loc", ())[1:]), "code": e.get("type", "invalid"),
                   "message": e.get("msg", "")} for e in error.errors()]
        return Problem("The request is not valid.", code="validation_failed", status=400, errors=errors)
    if isinstance(error, StarletteHTTPException):
        return Problem(str(error.detail), code="http_error", status=error.status_code)
    if (refused := value_problem(error)) is not None:
        return refused
    log.exception("unhandled error on a FHIR route", exc_info=error)
    return Problem("The platform failed to handle this request; it has been logged under this request id.",
                   code="internal_error", status=500, title="Internal error")


class FhirRoute(APIRoute):
    """A route whose errors, raised anywhere (dependencies included), answer as OperationOutcomes."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def fhir_handler(request: Request) -> Response:
            try:
                refuse_xml(request)
                return await handler(request)
            except Exception as error:  # noqa: BLE001 - every failure leaves as an OperationOutcome
                return outcome_response(request, _as_problem(error))

        return fhir_handler


def refuse_xml(request: Request) -> None:
    """This server speaks FHIR JSON only: ``_format=xml`` or an Accept naming XML but no JSON is answered
    406, never JSON the client did not ask for (FHIR R4 http.html#mime-type)."""
    fmt = request.query_params.get("_format", "").strip().lower()
    accept = request.headers.get("accept", "").lower()
    # XML as FHIR knows it; a browser's application/xhtml+xml asks for a page, not for FHIR XML.
    asks_xml = any(kind in accept for kind in ("application/fhir+xml", "application/xml", "text/xml"))
    if "xml" in fmt or (not fmt and asks_xml and "json" not in accept and "*/*" not in accept):
        raise Problem("This server answers FHIR JSON only (application/fhir+json).", code="fhir_format_not_supported",
                      status=406, title="Not acceptable")


router = APIRouter(prefix="/fhir", tags=["fhir"], route_class=FhirRoute, default_response_class=FhirJSON,
                   responses=OUTCOME_RESPONSES)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def _fhir(body: dict, status_code: int = 200) -> JSONResponse:
    return FhirJSON(body, status_code=status_code)


@router.get("/metadata", summary="CapabilityStatement (public)")
def metadata(request: Request) -> JSONResponse:
    return _fhir(capability_statement(_base(request)))


@router.post("/Patient/$match", summary="Patient $match: scored candidates from the master index")
def patient_match(request: Request, ctx: IdentityReader, body: RawBody) -> JSONResponse:
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        raise Problem("The body is not JSON.", code="fhir_body_invalid", status=400, title="Invalid body") from None
    return _fhir(service.match(ctx, parsed, _base(request)))


@router.get("/Patient/$ihe-pix", summary="IHE PIXm (ITI-83): cross-referenced identifiers")
def patient_pix(request: Request, ctx: IdentityReader) -> JSONResponse:
    sources = request.query_params.getlist("sourceIdentifier")
    if len(sources) > 1:
        raise Problem("Give exactly one sourceIdentifier.", code="pix_source_identifier_invalid", status=400)
    targets = [t for value in request.query_params.getlist("targetSystem") for t in value.split(",") if t.strip()]
    return _fhir(service.pix(ctx, sources[0] if sources else None, targets))


@router.get("/Patient", summary="IHE PDQm (ITI-78): search patients")
def patient_search(request: Request, ctx: IdentityReader) -> JSONResponse:
    return _fhir(service.search(ctx, request.query_params.multi_items(), _base(request)))


@router.get("/Patient/{patient_id}", summary="Read a Patient (id: the EHC ID)")
def patient_read(patient_id: str, ctx: IdentityReader) -> JSONResponse:
    return _fhir(service.read_patient(ctx, patient_id))


# Appointments (issue 14): Schedule, Slot, Appointment and IHE Scheduling (fhir/scheduling.py), before the
# records' /{resource_type} patterns.
router.include_router(scheduling_router(FhirRoute))
# Health records (issue 16): publish, correct, read, _history, search, Patient/$everything (fhir/records.py).
router.include_router(records_router(FhirRoute))
router.add_api_route("", provide_documents, methods=["POST"], summary="IHE MHD ITI-65: Provide Document Bundle")


@router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def not_supported(path: str) -> JSONResponse:
    raise Problem(f"This FHIR server does not support '{path}'; see /fhir/metadata.",
                  code="fhir_interaction_not_supported", status=404, title="Not supported")
