"""The master index's review queue: pairs a person decides on, both sides masked."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from ...institutions import service as institutions
from ...kit.errors import Problem
from ...mpi import service as mpi
from ...mpi.auth import MatchReviewer
from .. import forms, i18n
from ..core import CHINA, PageRoute
from ..forms import require_csrf, see_other
from .common import Staff, staff_page, page_under


router = APIRouter(route_class=PageRoute, include_in_schema=False)


# -- the master index's review queue ------------------------------------------------------------
# The same rule as the API (``mpi.auth.MatchReviewer``) and the same reach (``mpi.review``): a
# regional operator sees their region's pairs, a platform admin all, an institution admin their own
# institution's submitted records. Both sides are masked, exactly as ``GET /api/v1/mpi/reviews/{id}``.


ReviewerPage = page_under(MatchReviewer)


@router.get("/staff/mpi/reviews", response_class=HTMLResponse)
def mpi_reviews(request: Request, staff: ReviewerPage, status: str = "open", source: str = "") -> HTMLResponse:
    t = i18n.for_request(request)
    status = status if status in mpi.REVIEW_STATUSES else ""
    source = source if source in mpi.REVIEW_SOURCES else ""
    rows, total = mpi.list_reviews(staff.ctx, status=status or None, source=source or None, limit=200)
    names: dict[str, str] = {}
    items = [{"id": r.id, "created": t.date(r.created_at.astimezone(CHINA).date()), "source": r.source,
              "pair": "record" if r.record_sealed is not None else "persons", "grade": r.grade,
              "probability": percent(r.probability), "institution_id": institution_name(staff, r.institution_id, names),
              "status": r.status}
             for r in rows]
    return staff_page(request, staff, "staff_mpi_reviews.html", nav="staff_mpi_reviews", reviews=items, total=total,
                      filters={"status": status, "source": source})


def _review_page(request: Request, staff: Staff, review_id: int, error: str | None = None,
                 status_code: int = 200) -> HTMLResponse:
    row = mpi.get_review(staff.ctx, review_id)
    left, right = mpi.review_sides(staff.ctx, row)
    comparison = mpi.review_comparison(row)
    t = i18n.for_request(request)
    rows = []
    for name in mpi.REVIEW_FIELDS:
        compared = comparison.get(name)
        rows.append({"field": name, "left": left.fields.get(name), "right": right.fields.get(name),
                     "agreement": agreement(t, compared) if isinstance(compared, dict) else ""})
    view = {"id": row.id, "status": row.status, "grade": row.grade, "probability": percent(row.probability),
            "score": f"{row.score:+.1f}", "source": row.source, "note": row.note,
            "institution": institution_name(staff, row.institution_id, {}),
            "why": t(f"mpi_reviews.why_{why_not_certain(comparison)}") if row.grade != "certain" else ""}
    return staff_page(request, staff, "staff_mpi_review.html", status_code, nav="staff_mpi_reviews", review=view,
                      left=left, right=right, rows=rows, error=error)


def percent(probability: float) -> str:
    """A match probability as a reviewer reads it: "97.3%", and "> 99.9%" rather than a rounded 1.00."""
    return "> 99.9%" if probability >= 0.999 else f"{probability * 100:.1f}%"


def institution_name(staff: Staff, institution_id: str | None, seen: dict[str, str]) -> str:
    if not institution_id:
        return ""
    if institution_id not in seen:
        found = institutions.find_institution(staff.ctx.session, institution_id)
        seen[institution_id] = found.name if found is not None else institution_id
    return seen[institution_id]


def agreement(t: i18n.Translator, compared: dict) -> str:
    """How one field compares, in words, and how much it weighs for or against one person."""
    level = compared.get("level")
    key = f"mpi_reviews.level_{level or 'missing'}"
    words = t(key) if t.has(key) else str(level)
    weight = compared.get("weight")
    if not isinstance(weight, (int, float)) or abs(weight) < 0.05:
        return words
    return f"{words} · {t('mpi_reviews.weight_for' if weight > 0 else 'mpi_reviews.weight_against', w=f'{abs(weight):.1f}')}"


def why_not_certain(comparison: dict) -> str:
    """The evidence that kept a pair from "certain" (the matcher's rule, ``mpi.matching``): the documents
    differ, name and birth date do not both agree, or the total is below the threshold."""
    def level(name: str) -> str | None:
        value = comparison.get(name)
        return value.get("level") if isinstance(value, dict) else None

    if level("document") in ("different", "typo"):
        return "document"
    if level("name") not in ("exact", "homophone", "close", "fuzzy", "pinyin") or \
            level("birth_date") not in ("exact", "swapped", "typo"):
        return "identity"
    if level("document") is None:
        return "no_document"
    return "score"


@router.get("/staff/mpi/reviews/{review_id}", response_class=HTMLResponse)
def mpi_review(request: Request, staff: ReviewerPage, review_id: int) -> HTMLResponse:
    return _review_page(request, staff, review_id)


@router.post("/staff/mpi/reviews/{review_id}/{verdict}", response_class=HTMLResponse)
def mpi_decide(
    request: Request,
    staff: ReviewerPage,
    review_id: int,
    verdict: str,
    note: Annotated[str, Form(max_length=500)] = "",
    keep: Annotated[str, Form(max_length=8)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    require_csrf(request, staff.ctx, csrf_token)
    try:
        if verdict == "accept":
            mpi.accept_review(staff.ctx, review_id, note=note or None, keep=keep or None)
        elif verdict == "reject":
            mpi.reject_review(staff.ctx, review_id, reason)
        else:
            raise Problem("Unknown action.", code="bad_request")
    except Problem as problem:
        if problem.status == 404:
            raise
        staff.ctx.session.rollback()
        t = i18n.for_request(request)
        return _review_page(request, staff, review_id, forms.message(t, problem.code, forms.problem_params(problem),
                                                                     problem.detail), problem.status)
    return see_other(request, f"/staff/mpi/reviews/{review_id}", f"review_{verdict}ed", str(review_id))
