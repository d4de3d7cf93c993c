"""The linkage job: read, clean, open the index, score, decide, apply, report (``ehc mpi link FILE``;
the steps are described in the package docstring). Reached through ``mpi.service.link_file``."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pandas as pd

from ...institutions import service as institutions
from ...kit import ids
from ...kit.clock import utcnow
from ...kit.errors import NotFound
from .. import repository
from ..models import LinkJob
from .apply import apply_decisions, certain_of
from .cluster import clusters, pairs_before_links
from .common import LinkInputError, LinkPlatform
from .decide import Thresholds, decide, document_hits, weigh
from .index import clean_list, export_index
from .input import read_patient_list
from .model import Scored, score_pairs
from .report import LinkResult, write_outputs, write_report

__all__ = ["LinkInputError", "LinkResult", "Progress", "Thresholds", "link_file"]

Progress = Callable[[str, int | None, int | None], None]
T = TypeVar("T")


def link_file(platform: LinkPlatform, path: Path, institution_id: str, *, backend: str = "duckdb", out: Path | None = None,
              dry_run: bool = False, thresholds: Thresholds = Thresholds(), workers: int | None = None,
              operator: str = "cli", progress: Progress | None = None) -> LinkResult:
    """Link a hospital's patient list to the index (see the module docstring). Raises
    :class:`LinkInputError` for a file that cannot be linked and ``NotFound`` for an unknown
    institution; bad rows never raise, they are rejected."""
    say = progress or (lambda _step, _done, _total: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    _require_institution(platform, institution_id)
    rows = read_patient_list(path)
    job_id = None if dry_run else ids.new_id()
    out_dir = Path(out) if out else platform.settings.data_dir / "mpi-links" / (job_id or f"dry-run-{ids.new_id()[:8]}")
    out_dir.mkdir(parents=True, exist_ok=True)
    if job_id:
        _start_job(platform, job_id, institution_id, path, backend, out_dir)
    try:
        say("reading the list", 0, len(rows))
        mark = time.perf_counter()
        cleaned = clean_list(platform, rows, workers=workers)
        records = cleaned.frame
        timings["read and check the list"] = time.perf_counter() - mark
        say("reading the list", len(rows), len(rows))

        mark = time.perf_counter()
        say("opening the index", 0, None)
        index = export_index(platform, workers=workers, progress=lambda done, total: say("opening the index", done, total))
        timings["open the index (unseal)"] = time.perf_counter() - mark

        result = LinkResult(job_id=job_id, out_dir=out_dir, records=len(records), rejected=len(cleaned.rejects),
                            index_size=len(index), dry_run=dry_run)
        with tempfile.TemporaryDirectory(prefix="ehc-link-") as workdir:
            decisions, scored = _score_and_decide(index, records, backend, Path(workdir), thresholds, say, timings,
                                                  workers)
        mark = time.perf_counter()
        say("writing links", None, None)
        # The list's duplicates are looked for alongside the writes, which wait on the database most of
        # their time: with the links as decided, the pairs those put in one cluster set aside until the
        # links are written (``cluster.pairs_before_links``).
        decided = dict(certain_of(decisions)[["record_id", "person_id"]].itertuples(index=False, name=None))
        with ThreadPoolExecutor(1, thread_name_prefix="ehc-link-cluster") as alongside:
            searching = alongside.submit(_timed, pairs_before_links, records, decided, workers=workers)
            outcome = apply_decisions(platform, decisions, records, index, institution_id, job_id, operator, dry_run)
            timings["write links and reviews"] = time.perf_counter() - mark
            found, searched = searching.result()
        timings["cluster the list: pairs found alongside the writes"] = searched
        mark = time.perf_counter()
        say("clustering the list", None, None)
        clustered = clusters(records, [link for link in outcome.links if link["status"] != "conflict"], found=found)
        result.clusters = clustered["cluster"].nunique() if len(clustered) else 0
        timings["cluster the list (duplicates within it)"] = time.perf_counter() - mark
        mark = time.perf_counter()
        say("writing the outputs", None, None)
        write_outputs(out_dir, outcome, cleaned.rejects, records, index, notes=cleaned.notes, clustered=clustered)
        result.linked, result.already_linked = outcome.new_links, outcome.already_linked
        result.conflicts, result.queued, result.unmatched = outcome.conflicts, outcome.queued, outcome.unmatched
        timings["write the outputs"] = time.perf_counter() - mark
        timings["total"] = time.perf_counter() - started
        result.timings = timings
        write_report(out_dir / "report.html", result, scored, thresholds, backend, Path(path).name)
    except BaseException as exc:
        if job_id:
            _finish_job(platform, job_id, None, error=f"{type(exc).__name__}: {exc}"[:2000])
        raise
    if job_id:
        _finish_job(platform, job_id, result)
    return result


def _timed(step: Callable[..., T], *args: object, **kwargs: object) -> tuple[T, float]:
    started = time.perf_counter()
    return step(*args, **kwargs), time.perf_counter() - started


def _score_and_decide(index: pd.DataFrame, records: pd.DataFrame, backend: str, workdir: Path,
                      thresholds: Thresholds, say: Progress, timings: dict,
                      workers: int | None = None) -> tuple[pd.DataFrame, Scored]:
    if records.empty or index.empty:
        empty = pd.DataFrame(columns=["record_id", "person_id", "match_weight", "match_probability", "comparison"])
        return decide(empty, document_hits(index, records) if len(index) and len(records) else empty), Scored(empty)
    say(f"training the model ({backend})", None, None)
    scored = score_pairs(index, records, backend=backend, workdir=workdir, threshold=thresholds.possible,
                         step=lambda name: say(f"{name} ({backend})", None, None))
    timings.update({f"splink: {k}": v for k, v in scored.timings.items()})
    mark = time.perf_counter()
    say("grading the pairs", None, None)
    hits = document_hits(index, records)
    # Rows linked by their document are decided without their scored pairs (``decide`` sets those
    # aside): weighing them would be wasted work, most of a large list's ID-number rows.
    pairs = scored.pairs[~scored.pairs["record_id"].isin(hits["record_id"])]
    decisions = decide(weigh(pairs, index, records, workers=workers), hits, thresholds)
    timings["shared evidence rules and grading"] = time.perf_counter() - mark
    return decisions, scored


def _require_institution(platform: LinkPlatform, institution_id: str) -> None:
    with platform.db.session() as session:
        if institutions.find_institution(session, institution_id) is None:
            raise NotFound(f"No institution {institution_id!r}.", code="institution_not_found")


def _start_job(platform: LinkPlatform, job_id: str, institution_id: str, path: Path, backend: str,
               out_dir: Path) -> None:
    with platform.db.session() as session:
        repository.add_link_job(session, LinkJob(id=job_id, institution_id=institution_id, file_name=Path(path).name[:255],
                            backend=backend, status="running", output_dir=str(out_dir)))


def _finish_job(platform: LinkPlatform, job_id: str, result: LinkResult | None, *, error: str | None = None) -> None:
    with platform.db.session() as session:
        job = repository.link_job(session, job_id)
        if job is None:
            return
        job.finished_at = utcnow()
        if result is None:
            job.status, job.error = "failed", error
            return
        job.status = "done"
        job.records, job.linked, job.queued, job.unmatched = (
            result.records, result.linked, result.queued, result.unmatched)

