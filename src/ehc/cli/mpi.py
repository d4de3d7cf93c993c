"""``ehc mpi``: the master patient index (blocking keys, batch linkage; docs/master-index.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..kit.errors import Problem
from ..mpi import service as mpi
from .common import Operator, console, err, fail, open_platform

app = typer.Typer(help="The master patient index: batch linkage of a hospital's list (link) and the real-time "
                       "matcher's blocking keys (rebuild-keys). Matching one patient and the review queue are "
                       "in the API (POST /api/v1/mpi/match, /api/v1/mpi/reviews) and the staff pages.",
                  no_args_is_help=True)


@app.command("rebuild-keys")
def mpi_rebuild_keys(
    batch: Annotated[int, typer.Option(help="People per committed batch", min=100)] = 2000,
) -> None:
    """Recompute every person's blind blocking keys for real-time matching from their sealed details."""
    platform = open_platform()
    done = mpi.rebuild_match_keys(platform.db, platform.vault, batch=batch,
                        progress=lambda n: err.print(f"{n} people", end="\r"))
    console.print(f"Blocking keys rebuilt for {done} people.")


_LINK_HELP = (
    "Link a hospital's legacy patient list (CSV with a header row, or Parquet) to the master index with "
    "Splink. Columns: mrn (required: the hospital's patient number; 住院号/病案号 also work), name, sex, "
    "birth_date, phone, id_type, id_number, address, region_code.\n\n"
    "Certain matches get the number as identifier mrn:<institution>; probable and possible ones go to the "
    "review queue. Writes links.csv, review.csv (masked: the pairs this run queued, or found already waiting), "
    "unmatched.csv, rejects.csv (rows with nothing to link), notes.csv (fields fixed or set aside), "
    "clusters.csv (patients on several rows) and report.html. "
    "Re-running the same file links nothing twice and queues no pair twice."
)


@app.command("link", help=_LINK_HELP)
def mpi_link(
    file: Annotated[Path, typer.Argument(help="The patient list: .csv (UTF-8) or .parquet", dir_okay=False)],
    institution: Annotated[str, typer.Option(help="The hospital's institution id (its numbers become mrn:<id>)")],
    backend: Annotated[str, typer.Option(help="duckdb (default, in process) or spark (local[2] here)")] = "duckdb",
    out: Annotated[Path | None, typer.Option(help="Output directory (default: <data dir>/mpi-links/<job id>)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Score and write the outputs; link and queue nothing")] = False,
    workers: Annotated[int | None, typer.Option(min=0, help="Worker processes for checking the list, opening the index, grading and clustering (default: one per core for more than 20,000 rows, 300,000 for grading and clustering; 0: none)")] = None,
    operator: Operator = "cli",
) -> None:
    """Batch linkage of a patient list to the master index (see ``ehc.mpi.linkage``)."""

    if backend not in ("duckdb", "spark"):
        err.print(f"[red]error[/red] backend_unknown: {backend!r} is not a backend; use duckdb or spark")
        raise typer.Exit(2)
    platform = open_platform()
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=20),
                        MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=True)
    tasks: dict[str, object] = {}

    def step(name: str, done: int | None, total: int | None) -> None:
        if name not in tasks:
            tasks[name] = progress.add_task(name, total=total)
        progress.update(tasks[name], completed=done or 0, total=total)
        for other, task in tasks.items():  # one step at a time: earlier ones are finished
            if other != name:
                progress.update(task, completed=progress.tasks[task].total or 1, total=progress.tasks[task].total or 1)

    try:
        with progress:
            result = mpi.link_file(platform, file, institution, backend=backend, out=out, dry_run=dry_run,
                               workers=workers, operator=operator, progress=step)
    except mpi.LinkInputError as problem:
        err.print(f"[red]error[/red] {problem.code}: {problem.detail}")
        raise typer.Exit(2) from None
    except Problem as problem:
        fail(problem)
    finally:
        platform.db.dispose()
    summary = Table.grid(padding=(0, 2))
    summary.add_row("job", result.job_id or "dry run: nothing linked or queued")
    summary.add_row("rows", f"{result.records + result.rejected:,} ({result.rejected:,} rejected)")
    summary.add_row("linked", f"{result.linked:,} new, {result.already_linked:,} already, {result.conflicts:,} conflicts")
    summary.add_row("to review", f"{result.queued:,} pairs")
    summary.add_row("several rows", f"{result.clusters:,} patients (clusters.csv)")
    summary.add_row("unmatched", f"{result.unmatched:,}")
    summary.add_row("time", f"{result.timings.get('total', 0):.1f} s")
    summary.add_row("outputs", str(result.out_dir))
    console.print(summary)
