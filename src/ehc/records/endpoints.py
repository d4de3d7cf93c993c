"""The records API (``/api/v1``): the resident's timeline, download, consents and break-glass notices; a
clinician's view of a patient's timeline; the auditors' break-glass list. Publishing is on the FHIR door."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from urllib.parse import unquote

from fastapi import APIRouter, Header, Query, Request, Response

from ..mpi import service as mpi
from . import service
from .auth import BreakGlassReviewer, RecordOwner, RecordReader
from .schemas import BreakGlassOut, ConsentIn, ConsentOut, EntryOut, SummaryEntryIn, SummaryItemOut, SummaryOut, TimelineOut

router = APIRouter(prefix="/api/v1", tags=["records"])
BreakGlassHeader = Annotated[str | None, Header(alias="X-Break-Glass-Reason")]


def filters(type: list[str] | None = None, institution: str | None = None,  # noqa: A002 - the query's name
            since: date | None = None, until: date | None = None) -> service.Filters:
    return service.Filters(tuple(type or ()), institution, since, until)


def _timeline(ctx, found: service.Access, chosen: service.Filters, limit: int) -> TimelineOut:  # noqa: ANN001
    return TimelineOut(basis=found.basis, entries=[EntryOut(**vars(e)) for e in service.timeline(ctx, found, chosen, limit=limit)])


def _consent(consent) -> ConsentOut:  # noqa: ANN001
    return ConsentOut(id=consent.id, effect=consent.effect, institution_id=consent.institution_id,
                      department=consent.department, categories=consent.categories.split(","), purpose=consent.purpose,
                      starts_at=consent.starts_at, ends_at=consent.ends_at, revoked_at=consent.revoked_at,
                      active=service.is_live(consent))


# ``member``: the EHC ID of a family member the resident guards (card registry): a guardian reads the
# member's records and manages their grants as the member would; any other card is 404 card_not_found.
Member = Annotated[str | None, Query(max_length=64, description="EHC ID of a family member you guard")]


def _me(ctx, member: str | None = None) -> mpi.Person:  # noqa: ANN001
    return service.resident_subject(ctx, member)


@router.get("/me/records", response_model=TimelineOut, summary="My records across every hospital, newest first")
def my_timeline(ctx: RecordOwner, member: Member = None, type: Annotated[list[str] | None, Query()] = None,  # noqa: A002
                institution: str | None = None, since: date | None = None, until: date | None = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> TimelineOut:
    return _timeline(ctx, service.access(ctx, _me(ctx, member)), filters(type, institution, since, until), limit)


@router.get("/me/records/everything", summary="Everything, as a FHIR Bundle (Patient/$everything)")
def my_everything(request: Request, ctx: RecordOwner, member: Member = None) -> dict:
    return service.everything(ctx, service.access(ctx, _me(ctx, member)), str(request.base_url).rstrip("/") + "/fhir")


def _summary(summary: service.Summary) -> SummaryOut:
    return SummaryOut(**{section: [SummaryItemOut(**vars(i)) for i in items] for section, items in summary.sections.items()})


@router.get("/me/records/summary", response_model=SummaryOut,
            summary="My basic health record's first page: blood type, allergies, chronic conditions, operations ...")
def my_summary(ctx: RecordOwner, member: Member = None) -> SummaryOut:
    return _summary(service.summary(ctx, service.access(ctx, _me(ctx, member))))


@router.get("/me/records/summary.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}, "description": "One A4 PDF"}},
            summary="My basic health record as a printable PDF, in Chinese and English")
def my_summary_pdf(ctx: RecordOwner, member: Member = None) -> Response:
    pdf = service.summary_pdf(ctx, service.access(ctx, _me(ctx, member)))
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": 'attachment; filename="health-record-summary.pdf"'})


@router.post("/me/records/summary/entries", response_model=SummaryItemOut, status_code=201,
             summary="Add an entry of my own to the first page")
def my_summary_entry(body: SummaryEntryIn, ctx: RecordOwner, member: Member = None) -> SummaryItemOut:
    return SummaryItemOut(**vars(service.add_own_entry(ctx, _me(ctx, member), kind=body.kind, text=body.text, abo=body.abo,
                                                       rh=body.rh, on=body.on)))


@router.delete("/me/records/summary/entries/{entry_id}", status_code=204, summary="Remove an entry of my own")
def my_summary_entry_remove(entry_id: str, ctx: RecordOwner, member: Member = None) -> Response:
    service.remove_own_entry(ctx, _me(ctx, member), entry_id)
    return Response(status_code=204)


@router.get("/me/records/consents", response_model=list[ConsentOut], summary="My consent grants and denials")
def my_consents(ctx: RecordOwner, member: Member = None) -> list[ConsentOut]:
    return [_consent(c) for c in service.consents(ctx, _me(ctx, member))]


@router.post("/me/records/consents", response_model=ConsentOut, status_code=201, summary="Allow or deny an institution")
def my_grant(body: ConsentIn, ctx: RecordOwner, member: Member = None) -> ConsentOut:
    return _consent(service.grant(ctx, _me(ctx, member), effect=body.effect, institution_id=body.institution_id,
                                  categories=body.categories, purpose=body.purpose, days=body.days,
                                  department=body.department))


@router.post("/me/records/consents/{consent_id}/revoke", response_model=ConsentOut, summary="Revoke a grant at once")
def my_revoke(consent_id: str, ctx: RecordOwner, member: Member = None) -> ConsentOut:
    return _consent(service.revoke(ctx, _me(ctx, member), consent_id))


@router.get("/me/records/break-glass", response_model=list[BreakGlassOut], summary="Emergency reads of my records")
def my_break_glass(ctx: RecordOwner, member: Member = None) -> list[BreakGlassOut]:
    return [BreakGlassOut(**vars(b)) for b in service.break_glass_reads(ctx, _me(ctx, member))]


@router.get("/records/patients/{ehc_id}", response_model=TimelineOut, summary="A patient's records (clinicians, under consent)")
def patient_timeline(ehc_id: str, ctx: RecordReader, break_glass: BreakGlassHeader = None,
                     type: Annotated[list[str] | None, Query()] = None,  # noqa: A002
                     institution: str | None = None, since: date | None = None, until: date | None = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> TimelineOut:
    found = service.access(ctx, service.person_of_card(ctx, ehc_id),
                           break_glass=unquote(break_glass) if break_glass is not None else None)
    return _timeline(ctx, service.require_some(ctx, found), filters(type, institution, since, until), limit)


@router.get("/records/break-glass", response_model=list[BreakGlassOut], summary="Break-glass reads to review (auditors)")
def break_glass_review(ctx: BreakGlassReviewer) -> list[BreakGlassOut]:
    return [BreakGlassOut(**vars(b)) for b in service.break_glass_review(ctx)]
