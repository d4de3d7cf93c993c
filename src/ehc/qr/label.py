"""The static code printed as a PDF label (docs/qr-format.md §7): an A7 page a window prints and
hands over, or sticks on a paper record.

What is on it: the platform's name, the static QR code at 1 mm a module (the spec asks for at least
0.5 mm), the holder's masked name, the card's issue date and a short instruction, in Chinese and
English. The QR symbol is drawn from segno's module matrix as vectors, so it prints sharp at any
resolution and reads back exactly (``tests/test_qr_issue_surfaces.py`` renders the PDF with ``pdftoppm``
at 300 and 600 dpi, decodes it with zxing-cpp and looks for seams).

Why the symbol is one path on a grid of whole printer dots: drawn as separate rectangles at sizes rounded
to 0.01 pt, two neighbouring dark modules each half-cover the device pixel on their shared edge, and an
anti-aliasing rasteriser paints that pixel grey, a hairline seam a cheap scanner can read as light. So the
page is laid out in points, the module is a whole number of 1/300-inch dots (0.24 pt; two dots at 600 dpi),
the symbol's corner sits on a dot, and all dark modules, merged into horizontal runs, are filled as ONE
path: the rasteriser then covers their union, so there is no inner edge left to half-paint at any
resolution, and every module edge falls on a whole pixel at 300 and 600 dpi.

Chinese text needs a CJK font, found by ``kit.fonts``: Debian's Noto Sans CJK (``fonts-noto-cjk``, a
TrueType collection: fpdf2 reads face 2, Simplified Chinese, and subsets it, so a label is ~10 KB). Without
the font the label is still printed, in English only and without the name, and says why in
:attr:`Label.font_note`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime

from fpdf import FPDF
from fpdf.enums import PathPaintRule

from ..cards import service as cards
from ..cards.service import Card
from ..identity.service import mask_name
from ..kit import fonts
from ..kit.clock import CHINA
from ..kit.context import Ctx
from . import codec, online

PRINT_PURPOSE = "card.print"  # audit: the holder's (masked) name is read to print it
PAGE = (74.0, 105.0)  # A7 portrait, millimetres
MM = 72 / 25.4  # points in a millimetre: the PDF is laid out in points, so the QR grid is exact
DOT = 0.24  # points in one printer dot at 300 dpi (72/300); two dots at 600 dpi
MODULE_MM = 1.0  # asked for; drawn as 12 dots = 2.88 pt = 1.016 mm (49 modules: a 49.8 mm square)
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
    module_mm: float  # as drawn: the size asked for, to a whole number of 300 dpi dots
    font_note: str | None  # why the label has no Chinese text, when it has none
    # Where the symbol is, quiet zone included, in points from the page's top left: (left, top, module).
    grid_pt: tuple[float, float, float] = (0.0, 0.0, 0.0)


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
    # Points, with the page to 0.01 pt (what a PDF writes), so the grid below is not rounded again.
    pdf = FPDF(unit="pt", format=(round(PAGE[0] * MM, 2), round(PAGE[1] * MM, 2)))
    pdf.set_margins(4 * MM, 4 * MM, 4 * MM)
    pdf.set_auto_page_break(False)
    pdf.set_title("EHC QR label")
    pdf.set_creator("ehc")
    if fonts.add_cjk_font(pdf, "cjk", CJK_FONTS):
        family, note = "cjk", None
    else:
        family, note = "helvetica", NO_CJK_NOTE
    pdf.add_page()
    width = PAGE[0]

    def line(y: float, size: float, words: str) -> None:  # y and the widths in mm, the font size in pt
        pdf.set_font(family, size=size)
        pdf.set_xy(4 * MM, y * MM)
        pdf.multi_cell((width - 8) * MM, size * 0.45 * MM, words, align="C")

    line(4, 10, f"{TITLE[0]}  {TITLE[1]}" if note is None else TITLE[1])
    dots = max(round(module_mm * MM / DOT), math.ceil(MIN_MODULE_MM * MM / DOT))
    left, top, side = _draw_qr(pdf, qr, top_mm=11, module_dots=dots)
    y = 11 + side * DOT / MM + 1.5
    if holder and note is None:
        line(y, 12, holder)
        y += 6
    line(y, 7.5, ("" if note is not None else "发卡日期 ") + f"Issued {issued_on.isoformat()}")
    y += 4.5
    line(y, 6.5, INSTRUCTION[1] if note is not None else f"{INSTRUCTION[0]}\n{INSTRUCTION[1]}")
    return Label(bytes(pdf.output()), text, int(qr.version), round(dots * DOT / MM, 4), note,
                 (round(left * DOT, 2), round(top * DOT, 2), round(dots * DOT, 2)))


def _draw_qr(pdf: FPDF, qr, *, top_mm: float, module_dots: int) -> tuple[int, int, int]:
    """The symbol, quiet zone of 4 included, on white: its dark modules merged into horizontal runs and
    filled as one path on the 300 dpi dot grid (see the module's docstring). Returns its left, top and
    side, in dots."""
    rows = [list(row) for row in qr.matrix_iter(border=4)]
    side = len(rows) * module_dots  # in dots
    left = round((round(PAGE[0] * MM, 2) / DOT - side) / 2)  # centred, on a dot
    top = round(top_mm * MM / DOT)

    def pt(dots: int) -> float:
        return round(dots * DOT, 2)  # a multiple of 0.24: exact in the PDF's two decimals

    pdf.set_fill_color(255, 255, 255)
    pdf.rect(pt(left), pt(top), pt(side), pt(side), style="F")
    with pdf.new_path() as path:
        path.style.fill_color = "#000000"
        path.style.stroke_color = None
        path.style.paint_rule = PathPaintRule.FILL_NONZERO  # overlapping or touching runs fill as their union
        for r, row in enumerate(rows):
            c = 0
            while c < len(row):
                if not row[c]:
                    c += 1
                    continue
                start = c
                while c < len(row) and row[c]:
                    c += 1
                path.rectangle(pt(left + start * module_dots), pt(top + r * module_dots),
                               pt((c - start) * module_dots), pt(module_dots))
    return left, top, side
