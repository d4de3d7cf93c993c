"""Health records on the FHIR door (issue 16): hospitals publish and correct resources, clinicians read
them under the resident's consent, ``_history``, search by patient (or its identifier, and status),
``Patient/$everything``.

Thin, as the identity routes: parse, authorise (records/auth.py), call ``records.service``, answer FHIR
JSON; errors are OperationOutcomes (the router's ``FhirRoute``). The FHIR system URIs of the subject's
identifier are this door's (``patient.internal_system``), handed to the service.
"""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import unquote

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response

from ..kit.auth import RawBody
from ..kit.errors import Invalid, Problem, field_error
from ..records import service as records
from ..records.auth import RecordPublisher, RecordReader
from . import service as identity
from .outcome import FHIR_JSON
from .patient import internal_system

BreakGlass = Annotated[str | None, Header(alias="X-Break-Glass-Reason")]


def base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"

def answer(body: dict | list, status_code: int = 200, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, media_type=FHIR_JSON, headers=headers)

def parsed(body: bytes) -> object:
    try:
        return json.loads(body) if body else None
    except ValueError:
        raise Problem("The body is not JSON.", code="fhir_body_invalid", status=400, title="Invalid body") from None

def stored(request: Request, ctx, result: records.Stored) -> JSONResponse:  # noqa: ANN001
    row = result.row
    location = f"{base(request)}/{row.resource_type}/{row.resource_id}/_history/{row.version}"
    ehc_id = records.ehc_id_of(ctx, row.person_id)
    return answer(records.resource_json(ctx, row, ehc_id), 201 if result.created else 200,
                  {"Location": location, "ETag": f'W/"{row.version}"'})

def reason(value: str | None) -> str | None:
    return unquote(value) if value is not None else None

def provide(request: Request, ctx: RecordPublisher, body: RawBody) -> JSONResponse:
    entries = []
    for provided in records.provide(ctx, parsed(body), internal_system):
        if provided.stored is not None:
            row = provided.stored.row
            response = {"status": "201 Created" if provided.stored.created else "200 OK",
                        "location": f"DocumentReference/{row.resource_id}/_history/{row.version}"}
        elif provided.binary_of is not None:
            response = {"status": "201 Created", "location": f"Binary/{records.binary_id(provided.binary_of.row, 0)}"}
        else:
            response = {"status": "200 OK"}
        entries.append({"response": response})
    return answer({"resourceType": "Bundle", "type": "transaction-response", "entry": entries})

def retrieve(binary_id: str, ctx: RecordReader, break_glass: BreakGlass = None) -> Response:
    content_type, data = records.attachment(ctx, binary_id, break_glass=reason(break_glass))
    return Response(data, media_type=content_type)

def patient_everything(request: Request, patient_id: str, ctx: RecordReader, break_glass: BreakGlass = None) -> JSONResponse:
    found = records.require_some(ctx, records.access(ctx, records.person_of_card(ctx, patient_id), break_glass=reason(break_glass)))
    return answer(records.everything(ctx, found, base(request), identity.read_patient(ctx, patient_id)))

def publish(request: Request, resource_type: str, ctx: RecordPublisher, body: RawBody) -> JSONResponse:
    return stored(request, ctx, records.publish(ctx, parsed(body), resource_type, internal_system))

def correct(request: Request, resource_type: str, resource_id: str, ctx: RecordPublisher, body: RawBody) -> JSONResponse:
    return stored(request, ctx, records.correct(ctx, parsed(body), resource_type, resource_id, internal_system))

def search(request: Request, resource_type: str, ctx: RecordReader, break_glass: BreakGlass = None) -> JSONResponse:
    """ITI-67 (and a search of any record type): ``patient=<EHC ID>`` or ``patient.identifier=system|value``,
    optionally ``status``, under the same consent."""
    records.check_type(resource_type)
    query = request.query_params
    identifier = query.get("patient.identifier") or query.get("subject.identifier")
    patient = (query.get("patient") or query.get("subject") or "").removeprefix("Patient/")
    statuses = records.statuses_of(resource_type, ",".join(query.getlist("status")))
    if identifier:
        person = records.person_of_identifier(ctx, identifier, internal_system, break_glass=break_glass is not None)
    elif patient:
        person = records.person_of_card(ctx, patient)
    else:
        raise Invalid("Search by patient=<EHC ID> or patient.identifier=<system>|<value>.", code="record_search_needs_patient",
                      errors=[field_error("patient", "record_search_needs_patient", "required")])
    found = records.require_some(ctx, records.access(ctx, person, break_glass=reason(break_glass)))
    entries = [{"fullUrl": f"{base(request)}/{resource['resourceType']}/{resource['id']}", "resource": resource,
                "search": {"mode": "match"}} for resource in records.search(ctx, found, resource_type, statuses)]
    return answer({"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries})

def read(resource_type: str, resource_id: str, ctx: RecordReader, break_glass: BreakGlass = None) -> JSONResponse:
    return answer(records.read(ctx, resource_type, resource_id, break_glass=reason(break_glass)))

def history(request: Request, resource_type: str, resource_id: str, ctx: RecordReader,
            break_glass: BreakGlass = None) -> JSONResponse:
    versions = records.history(ctx, resource_type, resource_id, break_glass=reason(break_glass))
    entries = [{"fullUrl": f"{base(request)}/{resource_type}/{resource_id}/_history/{v['meta']['versionId']}",
                "resource": v} for v in versions]
    return answer({"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries})

def vread(resource_type: str, resource_id: str, version_id: str, ctx: RecordReader,
          break_glass: BreakGlass = None) -> JSONResponse:
    if not version_id.isdigit():
        raise Invalid("versionId is a number.", code="record_version_invalid")
    return answer(records.read(ctx, resource_type, resource_id, version=int(version_id), break_glass=reason(break_glass)))


def build_router(route_class: type) -> APIRouter:
    """The records routes, in an order where the literal ones come before the patterns."""
    router = APIRouter(route_class=route_class)
    # ITI-65 posts to the base URL: "/fhir/" here (FHIR clients join paths to it), "/fhir" in endpoints.py.
    router.add_api_route("/", provide, methods=["POST"], summary="IHE MHD ITI-65: Provide Document Bundle")
    router.add_api_route("/Binary/{binary_id}", retrieve, methods=["GET"], summary="IHE MHD ITI-68: Retrieve Document (the attachment's bytes)")
    router.add_api_route("/Patient/{patient_id}/$everything", patient_everything, methods=["GET"], summary="Patient $everything: the records the caller may read")
    router.add_api_route("/{resource_type}", publish, methods=["POST"], summary="Publish a record (hospital systems)")
    router.add_api_route("/{resource_type}/{resource_id}", correct, methods=["PUT"], summary="Correct a record: a new version")
    router.add_api_route("/{resource_type}", search, methods=["GET"], summary="Search a patient's records of one type")
    router.add_api_route("/{resource_type}/{resource_id}", read, methods=["GET"], summary="Read a record (under consent)")
    router.add_api_route("/{resource_type}/{resource_id}/_history", history, methods=["GET"], summary="Every version of a record")
    router.add_api_route("/{resource_type}/{resource_id}/_history/{version_id}", vread, methods=["GET"], summary="One version of a record")
    return router
