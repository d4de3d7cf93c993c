"""What the family-doctor pages of both audiences share: money in yuan from fen, the progress table's
rows, labels and a refusal's message in the page's language, and the coverage chart (an SVG drawn
here: no script, no inline style, nothing loaded from elsewhere)."""

from __future__ import annotations

from typing import Any

from ..family_doctors import service as fd
from ..kit.errors import Problem
from . import forms, i18n
from .core import problem_params, yuan


def money(fen: int) -> str:
    return yuan(fen)


def relation_label(t: i18n.Translator, relation: str) -> str:
    if relation == "self":
        return t("family_doctor.me.myself")
    key = f"relations.{relation}"
    return t(key) if t.has(key) else relation


def fd_message(t: i18n.Translator, problem: Problem) -> str:
    """A refusal in the page's language: the family-doctor messages first, then the shared ones."""
    key = f"family_doctor.errors.{problem.code}"
    if t.has(key):
        return t(key, **problem_params(problem))
    return forms.message(t, problem.code, problem_params(problem), problem.detail)


def progress_rows(t: i18n.Translator, progress: list[fd.ServiceProgress]) -> list[dict[str, Any]]:
    return [{"name": p.name, "kind": t(f"family_doctor.kind.{p.kind}"), "promised": p.promised, "done": p.done,
             "due": p.due_now, "overdue": p.overdue, "next": t.date(p.next_due) if p.next_due else "—"}
            for p in progress]


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "—"


def coverage_view(rows: list[fd.CoverageRow], total: fd.CoverageRow) -> dict[str, Any]:
    """The table's rows and an SVG bar chart of the contracted share per row (width in SVG units)."""
    def one(r: fd.CoverageRow) -> dict[str, Any]:
        return {"label": r.label, "residents": r.residents, "contracted": r.contracted,
                "share": share(r.contracted, r.residents),
                "elderly": f"{r.elderly_contracted}/{r.elderly} ({share(r.elderly_contracted, r.elderly)})",
                "children": f"{r.children_contracted}/{r.children} ({share(r.children_contracted, r.children)})",
                "hypertension": f"{r.hypertension_contracted}/{r.hypertension}",
                "diabetes": f"{r.diabetes_contracted}/{r.diabetes}",
                "pregnant": f"{r.pregnant_contracted}/{r.pregnant}",
                "services": f"{r.services_delivered}/{r.services_promised}",
                "bar": round(300 * min(1.0, r.contracted / r.residents), 1) if r.residents else 0,
                "bar_label": share(r.contracted, r.residents)}

    items = [one(r) for r in rows]
    for i, item in enumerate(items):
        item["y"] = 8 + 28 * i
    return {"rows": items, "total": one(total), "height": 16 + 28 * len(items)}
