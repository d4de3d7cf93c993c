"""The CJK font our PDFs embed (the QR label, the printable health record summary), found in one place.

Chinese text in a PDF needs a font that has it. We embed Debian's Noto Sans CJK (``fonts-noto-cjk``, a
TrueType collection; face 2 is Simplified Chinese), which fpdf2 subsets, so a page carries only the
glyphs it uses. Without it a PDF is still made, in English only, and says why (:data:`NO_CJK_NOTE`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# Where Debian and its derivatives put Noto Sans CJK, and the face of Simplified Chinese in each file.
CJK_FONTS: tuple[tuple[Path, int], ...] = (
    (Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"), 2),
    (Path("/usr/share/fonts/opentype/noto-cjk/NotoSansCJK-Regular.ttc"), 2),
    (Path("/usr/share/fonts/truetype/noto/NotoSansSC-Regular.ttf"), 0),
)
NO_CJK_NOTE = "no CJK font found (install Debian's fonts-noto-cjk): English text only"


def cjk_font(candidates: Iterable[tuple[Path, int]] = CJK_FONTS) -> tuple[Path, int] | None:
    """The first installed font of ``candidates`` (path, face in the collection), or None."""
    return next(((path, face) for path, face in candidates if path.is_file()), None)


def add_cjk_font(pdf, family: str = "cjk", candidates: Iterable[tuple[Path, int]] = CJK_FONTS) -> bool:  # noqa: ANN001 - an fpdf.FPDF; kit does not import fpdf
    """Register the CJK font on an ``fpdf.FPDF`` under ``family``; False when none is installed."""
    found = cjk_font(candidates)
    if found is None:
        return False
    pdf.add_font(family, fname=str(found[0]), collection_font_number=found[1])
    return True
