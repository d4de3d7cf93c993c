"""A clinician's view of a patient's health records (doctors, nurses), under the resident's consent: the
same rule and the same audited read as ``GET /api/v1/records/patients/{ehc_id}``."""

from __future__ import annotations


from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ...institutions import service as institutions
from ...kit.errors import Forbidden
from ...records import service as records
from ...records.auth import RecordReader
from .. import i18n
from ..core import CHINA, PageRoute
from .common import staff_page, page_under

router = APIRouter(route_class=PageRoute, include_in_schema=False)

ClinicianPage = page_under(RecordReader)


@router.get("/staff/records/{ehc_id}", response_class=HTMLResponse)
def patient_records(request: Request, ehc_id: str, staff: ClinicianPage) -> HTMLResponse:
    t = i18n.translator(i18n.negotiate(request))
    ctx = staff.ctx
    person = records.person_of_card(ctx, ehc_id)
    try:
        found = records.require_some(ctx, records.access(ctx, person))
    except Forbidden:
        return staff_page(request, staff, "staff_records.html", rows=None, ehc_id=ehc_id.upper(),
                          department=ctx.actor.department)
    rows = []
    for e in records.timeline(ctx, found):
        where = institutions.find_institution(ctx.session, e.institution_id)
        rows.append({"when": t.date(e.effective_at.astimezone(CHINA).date()) if e.effective_at else "",
                     "kind": t(f"records.kind_{e.resource_type}"), "title": e.title, "status": e.status or "",
                     "where": where.name if where else e.institution_id,
                     "sensitive": t(f"records.sensitive_{e.sensitivity}") if e.sensitivity else ""})
    return staff_page(request, staff, "staff_records.html", rows=rows, ehc_id=ehc_id.upper(), basis=found.basis,
                      department=ctx.actor.department)
