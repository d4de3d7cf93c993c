"""Step 6: what a linkage job leaves behind: links.csv, review.csv (masked), unmatched.csv,
rejects.csv and report.html (counts, timings, Splink's charts)."""

from __future__ import annotations

import csv
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from splink.internals.html_utils import chart_html

from ...identity import service as identity
from .apply import Outcome
from .clean import NOTES, REJECTS
from .decide import Thresholds
from .model import Scored

@dataclass
class LinkResult:
    """What a linkage job did: the counts, the timings, where the outputs are."""

    job_id: str | None
    out_dir: Path
    records: int = 0
    rejected: int = 0
    linked: int = 0  # new links written (or that would be, in a dry run)
    already_linked: int = 0
    conflicts: int = 0  # the MRN already belongs to another person: left alone, listed in links.csv
    queued: int = 0  # review pairs added
    clusters: int = 0  # groups of two or more rows of the list that are one patient (clusters.csv)
    unmatched: int = 0
    index_size: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    dry_run: bool = False


def _mask_name(name: object) -> str:
    return identity.mask_name(name) if isinstance(name, str) and name else ""


def _mask_phone(phone: object) -> str:
    return identity.mask_phone(phone) if isinstance(phone, str) and phone else ""


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _number(value: object, digits: int) -> str:
    if value is None or (isinstance(value, float) and (math.isnan(value))):
        return ""
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{float(value):.{digits}f}"


def write_outputs(out_dir: Path, outcome: Outcome, rejects: list, records: pd.DataFrame, index: pd.DataFrame,
                  notes: list = (), clustered: pd.DataFrame | None = None) -> None:
    """links.csv (MRN -> card id, else person id), review.csv (both sides masked), unmatched.csv,
    rejects.csv (line, MRN, reason codes and their explanation; never the row's personal data),
    notes.csv (rows kept with a field fixed or set aside: what was done, in words)."""
    mrn_of = dict(zip(records["unique_id"], records["mrn"]))
    card_of = dict(zip(index["unique_id"], index["card_id"])) if "card_id" in index else {}

    def ref(person_id: str) -> tuple[str, str]:
        card = card_of.get(person_id)
        return (card, "card") if isinstance(card, str) else (person_id, "person")

    _write_csv(out_dir / "links.csv",
               ["mrn", "person_ref", "ref_kind", "match_weight", "match_probability", "reason", "status"],
               [[mrn_of[link["record_id"]], *ref(link["person_id"]), _number(link["match_weight"], 2),
                 _number(link["match_probability"], 6), link["reason"], link["status"]] for link in outcome.links])
    shown = ["name", "birth_date", "phone", "sex"]
    mine = records.set_index("unique_id")[shown].reindex(list({item["record_id"]: 0 for item in outcome.reviews}))
    theirs = index.set_index("unique_id")[shown].reindex(list({item["person_id"]: 0 for item in outcome.reviews}))

    def side(frame: pd.DataFrame, key: str) -> list[str]:
        name, birth, phone, sex = frame.loc[key].tolist()
        birth = birth if isinstance(birth, str) else ""
        return [_mask_name(name), birth[:4], _mask_phone(phone), sex if isinstance(sex, str) else ""]

    review_rows = [[item["review_id"] or "", mrn_of[item["record_id"]], item["grade"], _number(item["match_weight"], 2),
                    _number(item["match_probability"], 6), *ref(item["person_id"]),
                    *side(mine, item["record_id"]), *side(theirs, item["person_id"]), item.get("status", "queued")]
                   for item in outcome.reviews]
    _write_csv(out_dir / "review.csv",
               ["review_id", "mrn", "grade", "match_weight", "match_probability", "person_ref", "ref_kind",
                "list_name", "list_birth_year", "list_phone", "list_sex",
                "index_name", "index_birth_year", "index_phone", "index_sex", "status"], review_rows)
    _write_csv(out_dir / "unmatched.csv", ["mrn", "reason"],
               [[mrn_of[rid], "no candidate above the possible threshold"] for rid in outcome.unmatched_ids])
    _write_csv(out_dir / "rejects.csv", ["line", "mrn", "reasons", "explanation"],
               [[*r, "; ".join(REJECTS.get(code, code) for code in r[2].split())] for r in rejects])
    if clustered is not None:
        _write_csv(out_dir / "clusters.csv", ["cluster", "mrn", "person_ref", "ref_kind"],
                   [[cluster, mrn_of[rid], *(ref(person.split()[0]) if person else ("", "new"))]
                    for rid, cluster, person in clustered[["record_id", "cluster", "person_id"]].itertuples(index=False)])
    _write_csv(out_dir / "notes.csv", ["line", "mrn", "notes", "explanation"],
               [[*n, "; ".join(NOTES.get(code, code) for code in n[2].split())] for n in notes])


def write_report(path: Path, result: LinkResult, scored: Scored, thresholds: Thresholds, backend: str,
                 file_name: str) -> None:
    """One self-contained HTML page: counts, timings, thresholds and Splink's charts (Vega-Lite
    specs, drawn by the Vega libraries Splink ships, inlined so the page works offline)."""
    def row(label: str, value: object) -> str:
        return f"<tr><th>{html.escape(label)}</th><td>{html.escape(str(value))}</td></tr>"

    counts = [
        ("file", file_name), ("backend", backend), ("job", result.job_id or "dry run (nothing written)"),
        ("people in the index", f"{result.index_size:,}"), ("rows checked", f"{result.records + result.rejected:,}"),
        ("rejected rows", f"{result.rejected:,}"), ("new links", f"{result.linked:,}"),
        ("already linked", f"{result.already_linked:,}"), ("conflicts (MRN held by another person)", f"{result.conflicts:,}"),
        ("review pairs queued", f"{result.queued:,}"), ("unmatched", f"{result.unmatched:,}"),
        ("patients on several rows (clusters.csv)", f"{result.clusters:,}"),
        ("prior (chance a random pair matches)", f"{scored.prior:.3g}" if scored.prior else "-"),
        ("thresholds", (f"certain >= {thresholds.certain}, probable >= {thresholds.probable}, "
                        f"possible >= {thresholds.possible}; runner-up margin {thresholds.margin} (match weight)")),
    ]
    timing_rows = "".join(row(name, f"{seconds:.2f} s") for name, seconds in result.timings.items())
    chart_parts = []
    for title, spec in scored.charts.items():
        chart_parts.append(f"<h2>{html.escape(title)}</h2>" + chart_html(spec, inline=True))
        chart_parts.append(f'<script type="application/json" class="vega-lite-spec">{json.dumps(spec, default=float)}</script>')
    body = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Batch linkage report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
        f"<h1>Batch linkage report</h1><table>{''.join(row(k, v) for k, v in counts)}</table>"
        f"<h2>Timings</h2><table>{timing_rows}</table>"
        + ("".join(chart_parts) if chart_parts else "<p>No model was trained (empty list or index).</p>")
        + "</body></html>"
    )
    path.write_text(body, encoding="utf-8")

