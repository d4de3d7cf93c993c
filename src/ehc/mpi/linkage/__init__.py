"""Batch linkage of a hospital's legacy patient list to the master index (``ehc mpi link FILE``).

A hospital hands over its patient list (CSV or Parquet: its own patient number ``mrn`` and whatever
demographics it has). Each row is linked to the one person of the index it describes, so the
hospital's number becomes an identifier of that person (``mrn:<institution id>``).

The steps, each a module of this package:

1. :mod:`.input` reads the file (:func:`~.input.read_patient_list`); :mod:`.clean` checks each row
   (bad rows go to the rejects with reason codes, nothing crashes) and derives the matching keys
   (toneless pinyin, the document's blind index).
2. :mod:`.index` opens the active people of the index in this process (their sealed fields are
   unsealed in memory through ``mpi.sealed.open_people``, in worker processes when there are many;
   nothing in clear is written outside the job's temporary directory, which is deleted at the end).
3. :mod:`.model` trains a Fellegi-Sunter model with Splink (DuckDB by default, Spark for national
   scale): u by random sampling, m by EM over two blocking rules, the prior from two near-certain
   rules; then scores the candidate pairs of the prediction blocking rules.
4. :mod:`.decide` grades each row's best candidate: *certain* links, *probable* and *possible* go
   to the review queue, anything else is unmatched. The same document number short-circuits to
   certain. A certain candidate with a close runner-up is only probable (twins, relatives).
5. :mod:`.apply` applies the decisions in one transaction, in bulk (idempotent: a re-run links
   nothing twice and queues no pair twice); :mod:`.report` writes ``links.csv``, ``review.csv`` (masked),
   ``unmatched.csv``, ``rejects.csv`` and ``report.html`` (counts, timings, Splink's charts);
   :mod:`.job` runs them all (:func:`~.job.link_file`) and keeps the ``mpi_link_jobs`` row.

The frames the model sees have these columns (both sides), so the accuracy benchmarks can feed
FEBRL or synthetic sets straight into :func:`.model.score_pairs` and :func:`.decide.decide`:
``unique_id, name, name_py, surname_py, given_py, name_initial, sex, birth_date,
birth_date_swapped, birth_year, phone, address, region_code, id_key``.

The steps need pandas and Splink (over a second to import), so this package's face stays light: it
offers :class:`LinkInputError` and :func:`link_file`, which loads the steps when a job runs. Other
domains and the doors reach both through ``mpi.service``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .common import LinkInputError, LinkPlatform

if TYPE_CHECKING:
    from .decide import Thresholds
    from .job import Progress
    from .report import LinkResult

__all__ = ["LinkInputError", "link_file"]


def link_file(platform: LinkPlatform, path: Path, institution_id: str, *, backend: str = "duckdb",
              out: Path | None = None, dry_run: bool = False, thresholds: Thresholds | None = None,
              workers: int | None = None, operator: str = "cli", progress: Progress | None = None) -> LinkResult:
    """Link a hospital's patient list to the index (:func:`.job.link_file`; default thresholds when
    none are given). Raises :class:`LinkInputError` for a file that cannot be linked and ``NotFound``
    for an unknown institution."""
    # heavy: the steps import pandas and Splink (over a second); only a linkage job needs them
    from . import job

    return job.link_file(platform, path, institution_id, backend=backend, out=out, dry_run=dry_run,
                         thresholds=thresholds or job.Thresholds(), workers=workers, operator=operator,
                         progress=progress)
