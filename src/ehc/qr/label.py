"""The static code printed as a PDF label (docs/qr-format.md §7): an A7 page a window prints and
hands over, or sticks on a paper record.

What is on it: the platform's name, the static QR code at 1 mm a module (the spec asks for at least
0.5 mm), the holder's masked name, the card's issue date and a short instruction, in Chinese and
English. The QR symbol is drawn as vector rectangles from segno's module matrix, so it prints sharp
at any resolution and reads back exactly (``tests/test_qr_issue_surfaces.py`` renders the PDF with
``pdftoppm`` and decodes it with zxing-cpp).

Chinese text needs a CJK font, found by ``kit.fonts``: Debian's Noto Sans CJK (``fonts-noto-cjk``, a
TrueType collection: fpdf2 reads face 2, Simplified Chinese, and subsets it, so a label is ~10 KB). Without
the font the label is still printed, in English only and without the name, and says why in
:attr:`Label.font_note`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from fpdf import FPDF

from ..cards import service as cards
from ..cards.service import Card
from ..identity.service import mask_name
from ..kit import fonts
from ..kit.clock import CHINA
from ..kit.context import Ctx
from . import codec, online

PRINT_PURPOSE = "card.print"  # audit: the holder's (masked) name is read to print it
PAGE = (74.0, 105.0)  # A7 portrait, millimetres
MODULE_MM = 1.0  # 49 modules with the quiet zone: a 49 mm square on a 74 mm page
MIN_MODULE_MM = 0.5
# Noto Sans CJK, found by kit.fonts (shared with the records summary); a name of this module so a test can
# point it elsewhere.
CJK_FONTS = fonts.CJK_FONTS
NO_CJK_NOTE = "no CJK font found (install Debian's fonts-noto-cjk): English text only, holder's name left out"

TITLE = ("电子健康卡", "Electronic Health Card")
INSTRUCTION = ("就诊、缴费时出示此码。卡片挂失或补办后此码作废。",
               "Show this code at the window or cashier. It stops working once the card is reported lost or reissued.")


@dataclass(frozen=True)
class Label:
    pdf: bytes
    text: str  # the EHC1: code printed on it
    version: int  # its QR version (6 for a static code)
    module_mm: float
    font_note: str | None  # why the label has no Chinese text, when it has none


def label_for(ctx: Ctx, card: Card) -> Label:
    """Issue a static code for the card's current issue and lay it out on a label (audited read)."""
    issued = online.issue_static(ctx, card).text
    _, details, _ = cards.holder(ctx, card, purpose=PRINT_PURPOSE)
    masked = mask_name(details.name) if details.name else ""
    return render_label(issued, holder=masked, issued_on=_china_date(card.issued_at))


def _china_date(moment: datetime) -> date:
    # The date the holder remembers is the local one; SQLite hands timestamps back without a zone (UTC).
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(CHINA).date()


def render_label(text: str, *, holder: str, issued_on: date, module_mm: float = MODULE_MM) -> Label:
    if module_mm < MIN_MODULE_MM:
        raise ValueError(f"printed codes need at least {MIN_MODULE_MM} mm a module")
    qr = codec.qr_symbol(text)
    pdf = FPDF(unit="mm", format=PAGE)
    pdf.set_margins(4, 4, 4)
    pdf.set_auto_page_break(False)
    pdf.set_title("EHC QR label")
    pdf.set_creator("ehc")
    if fonts.add_cjk_font(pdf, "cjk", CJK_FONTS):
        family, note = "cjk", None
    else:
        family, note = "helvetica", NO_CJK_NOTE
    pdf.add_page()
    width = PAGE[0]

    def line(y: float, size: float, words: str) -> None:
        pdf.set_font(family, size=size)
        pdf.set_xy(4, y)
        pdf.multi_cell(width - 8, size * 0.45, words, align="C")

    line(4, 10, f"{TITLE[0]}  {TITLE[1]}" if note is None else TITLE[1])
    side = _draw_qr(pdf, qr, top=11, module_mm=module_mm)
    y = 11 + side + 1.5
    if holder and note is None:
        line(y, 12, holder)
        y += 6
    line(y, 7.5, ("" if note is not None else "发卡日期 ") + f"Issued {issued_on.isoformat()}")
    y += 4.5
    line(y, 6.5, INSTRUCTION[1] if note is not None else f"{INSTRUCTION[0]}\n{INSTRUCTION[1]}")
    return Label(bytes(pdf.output()), text, int(qr.version), module_mm, note)


def _draw_qr(pdf: FPDF, qr, *, top: float, module_mm: float) -> float:
    """Black rectangles on white, one per horizontal run of dark modules; quiet zone of 4 included."""
    rows = [list(row) for row in qr.matrix_iter(border=4)]
    side = len(rows) * module_mm
    left = (PAGE[0] - side) / 2
    pdf.set_fill_color(255, 255, 255)
    pdf.rect(left, top, side, side, style="F")
    pdf.set_fill_color(0, 0, 0)
    for r, row in enumerate(rows):
        c = 0
        while c < len(row):
            if not row[c]:
                c += 1
                continue
            start = c
            while c < len(row) and row[c]:
                c += 1
            pdf.rect(left + start * module_mm, top + r * module_mm, (c - start) * module_mm, module_mm, style="F")
    return side
