"""The printable summary of a resident's basic health record: one A4 PDF, headings in Chinese and English,
that a resident takes to a doctor who is not on the platform (``GET /api/v1/me/records/summary.pdf``).

What is on it: the holder's masked name and card id (as the pages show them), the first page's sections
(each item with its hospital and date, or "self-reported"), and the most recent records of the timeline.
Laid out with fpdf2 from plain values (``service.summary_pdf`` gathers them); Chinese text needs the CJK
font ``kit.fonts`` finds. Without it the PDF is still made, in English, with other characters as "?".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from ..kit import fonts

TITLE = ("居民健康档案摘要", "Basic health record summary")
HEADINGS = {"blood_type": ("血型", "Blood type"), "allergies": ("过敏", "Allergies"),
            "chronic_conditions": ("慢性病", "Chronic conditions"), "operations": ("手术", "Operations"),
            "family_history": ("家族史", "Family history"), "immunizations": ("预防接种", "Immunisations")}
RECENT = ("近期记录", "Recent records")
KINDS = {"Encounter": ("就诊", "Visit"), "Condition": ("诊断", "Diagnosis"),
         "Observation": ("检查检验", "Measurement or lab"), "DiagnosticReport": ("报告", "Report"),
         "MedicationRequest": ("处方", "Prescription"), "Immunization": ("接种", "Vaccination"),
         "AllergyIntolerance": ("过敏", "Allergy"), "Procedure": ("手术操作", "Procedure"),
         "DocumentReference": ("文档", "Document")}
SELF_REPORTED = ("本人填写", "self-reported")
SENSITIVE = ("敏感", "sensitive")
NONE = ("无记录", "none recorded")
NOTE = ("本摘要由电子健康卡平台生成，内容来自各医院上传的记录及本人填写的内容，仅供参考。",
        "Made by the electronic health card platform from the hospitals' records and the resident's own "
        "entries; for information, not a medical certificate.")


@dataclass(frozen=True)
class Line:
    text: str
    source: str  # the hospital's name, or "" for the resident's own entry
    on: date | None
    sensitive: bool = False


@dataclass(frozen=True)
class Recent:
    on: date | None
    kind: str  # a FHIR resource type
    title: str
    where: str


class _Writer:
    """Bilingual text on the page: "中文 English" with the CJK font, English alone without it."""

    def __init__(self, pdf: FPDF, cjk: bool) -> None:
        self.pdf, self.cjk = pdf, cjk

    def words(self, pair: tuple[str, str]) -> str:
        return f"{pair[0]} {pair[1]}" if self.cjk else pair[1]

    def clean(self, text: str) -> str:
        # Helvetica has Latin-1 only; fpdf2 refuses other characters outright.
        return text if self.cjk else text.encode("latin-1", "replace").decode("latin-1")

    def font(self, size: float, bold: bool = False) -> None:
        # Noto Sans CJK Regular has no bold face in the file we embed: headings are set larger instead.
        self.pdf.set_font("cjk" if self.cjk else "helvetica", "B" if bold and not self.cjk else "", size)

    def para(self, text: str, size: float = 10, height: float = 5.5, bold: bool = False) -> None:
        self.font(size, bold)
        self.pdf.multi_cell(0, height, self.clean(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def render(*, masked_name: str, masked_card: str, printed_on: date, sections: dict[str, list[Line]],
           recent: list[Recent]) -> bytes:
    pdf = FPDF(unit="mm", format="A4")
    pdf.set_margins(15, 15, 15)
    pdf.set_auto_page_break(True, margin=15)
    pdf.set_title(TITLE[1])
    pdf.set_creator("ehc")
    w = _Writer(pdf, fonts.add_cjk_font(pdf))
    pdf.add_page()
    w.para(w.words(TITLE), 16, 9, bold=True)
    w.para(f"{w.words(('姓名', 'Name'))}: {masked_name}    {w.words(('健康卡号', 'Card'))}: {masked_card}    "
           f"{w.words(('打印日期', 'Printed'))}: {printed_on.isoformat()}", 9, 5)
    pdf.ln(2)
    for key, pair in HEADINGS.items():
        w.para(w.words(pair), 12.5, 7, bold=True)
        lines = sections.get(key) or []
        if not lines:
            w.para(f"  {w.words(NONE)}", 9.5, 5)
        for line in lines:
            source = line.source or w.words(SELF_REPORTED)
            when = f", {line.on.isoformat()}" if line.on else ""
            flag = f" [{w.words(SENSITIVE)}]" if line.sensitive else ""
            w.para(f"  - {line.text}{flag} ({source}{when})", 9.5, 5)
        pdf.ln(1.5)
    w.para(w.words(RECENT), 12.5, 7, bold=True)
    if not recent:
        w.para(f"  {w.words(NONE)}", 9.5, 5)
    widths = (22, 34, 82, 42)
    for item in recent:
        kind = KINDS.get(item.kind, (item.kind, item.kind))
        cells = (item.on.isoformat() if item.on else "", w.words(kind), item.title, item.where)
        w.font(8.5)
        top = pdf.get_y()
        if top > pdf.h - 30:
            pdf.add_page()
            top = pdf.get_y()
        bottom = top
        for offset, (width, text) in enumerate(zip(widths, cells, strict=True)):
            pdf.set_xy(15 + sum(widths[:offset]), top)
            pdf.multi_cell(width - 1, 4.5, w.clean(text), new_x=XPos.RIGHT, new_y=YPos.NEXT)
            bottom = max(bottom, pdf.get_y())
        pdf.set_xy(15, bottom + 0.8)
    pdf.ln(3)
    w.para(NOTE[1] if not w.cjk else f"{NOTE[0]}\n{NOTE[1]}", 7.5, 4)
    return bytes(pdf.output())
