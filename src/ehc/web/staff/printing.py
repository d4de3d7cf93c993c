"""Printing a card's static QR code at the window."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from ...cards import service as cards
from ...cards.service import CardStatus
from ...qr.auth import QRPrinter
from .. import i18n
from ..core import CHINA, PageRoute
from ..forms import see_other
from .common import page_under, staff_page


router = APIRouter(route_class=PageRoute, include_in_schema=False)


# -- printing a card's static QR code -----------------------------------------------------------

_EHC_ID = re.compile(r"[0-9A-F]{64}")


PrinterPage = page_under(QRPrinter)


@router.get("/staff/print", response_class=HTMLResponse)
def print_lookup(request: Request, staff: PrinterPage,
                 ehc_id: Annotated[str, Query(max_length=100)] = "") -> Response:
    """Type or scan a card's EHC ID, then print its static code."""
    typed = "".join(ehc_id.split()).upper()
    if typed and _EHC_ID.fullmatch(typed):
        return see_other(request, f"/staff/cards/{typed}/print")
    t = i18n.for_request(request)
    error = t("staff_print.id_invalid") if typed else ""
    return staff_page(request, staff, "staff_card_print.html", 422 if error else 200, nav="staff_print",
                      card=None, typed=ehc_id, error=error)


@router.get("/staff/cards/{ehc_id}/print", response_class=HTMLResponse)
def print_card(request: Request, staff: PrinterPage, ehc_id: str) -> HTMLResponse:
    """The card's static code, to print as PNG, SVG or an A7 PDF label (the QR API draws them)."""
    card = cards.get_card(staff.ctx, ehc_id)  # no personal data on this page: the PDF label's read is audited
    t = i18n.for_request(request)
    base = f"/api/v1/cards/{card.ehc_id}/qr/static"
    view = {
        "ehc_id": card.ehc_id,
        "ehc_id_groups": [card.ehc_id[i:i + 8] for i in range(0, 64, 8)],
        "status_label": t(f"status.{card.status}"),
        "status": card.status,
        "active": card.status == CardStatus.NORMAL.value,
        "issued": t.date(card.issued_at.astimezone(CHINA).date()),
        "png": base + ".png", "svg": base + ".svg", "pdf": base + ".pdf",
    }
    return staff_page(request, staff, "staff_card_print.html", nav="staff_print", card=view, typed="", error="")
