"""``ehc cards``: the card registry (register, look up, show, lifecycle steps, bulk import)."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ..cards import service
from ..cards.schemas import card_out
from ..kit.clock import in_china, utcnow
from ..kit.context import Ctx
from ..kit.errors import Problem
from .common import CONSOLE, ChannelOpt, Operator, beijing, console, ctx_run, err, fail, open_platform

app = typer.Typer(help="The card registry.", no_args_is_help=True)


def _print_card(ctx: Ctx, card, created: bool | None = None, *, purpose: str) -> None:  # noqa: ANN001
    person, details, identifiers = service.holder(ctx, card, purpose=purpose)  # recorded in the audit trail
    console.print_json(card_out(card, person, details, identifiers, created=created).model_dump_json())


@app.command("register")
def cards_register(
    name: str,
    document_number: str,
    document_type: str = "01",
    sex: Optional[str] = None,
    birth_date: Optional[str] = None,
    phone: Optional[str] = None,
    address: Optional[str] = None,
    operator: Operator = "cli",
    channel: ChannelOpt = CONSOLE,
    institution: Optional[str] = None,
) -> None:
    """Register a resident and issue their card (or show the card they already have)."""
    def do(ctx: Ctx) -> None:
        issued = service.register(ctx, service.Registration(
            name=name, document_type=document_type, document_number=document_number, sex=sex,
            birth_date=date.fromisoformat(birth_date) if birth_date else None, phone=phone, address=address))
        _print_card(ctx, issued.card, issued.created, purpose="card.register")

    ctx_run(do, operator, channel, institution)


@app.command("lookup")
def cards_lookup(document_number: str, document_type: str = "01", operator: Operator = "cli") -> None:
    """Find the card of a document holder."""
    ctx_run(lambda ctx: _print_card(ctx, service.find_by_document(ctx, document_type, document_number),
                                    purpose="card.lookup"),
            operator, CONSOLE, None)


@app.command("show")
def cards_show(ehc_id: str, history: bool = False, operator: Operator = "cli") -> None:
    """Show a card (holder masked), and with --history every step of its life."""
    def do(ctx: Ctx) -> None:
        card = service.get_card(ctx, ehc_id)
        _print_card(ctx, card, purpose="card.view")
        if history:
            for e in service.history(ctx, card):
                console.print(f"{beijing(e.at)} {e.action:<12} {e.from_status or '-':>14} -> {e.to_status:<14} "
                              f"{e.actor_kind}:{e.operator or e.actor_id or '-'} {e.reason or ''}")

    ctx_run(do, operator, CONSOLE, None)


def _transition_command(action: str) -> None:
    def command(
        ehc_id: str,
        reason: Annotated[Optional[str], typer.Option(help="Why (required to reject, cancel, report lost)")] = None,
        operator: Operator = "cli",
        channel: ChannelOpt = CONSOLE,
        institution: Optional[str] = None,
    ) -> None:
        ctx_run(lambda ctx: _print_card(ctx, service.transition(ctx, ehc_id, action, reason),
                                        purpose="card.lifecycle"),
                operator, channel, institution)

    command.__doc__ = f"{action.replace('_', ' ').capitalize()} a card."
    app.command(action.replace("_", "-"))(command)


for _action in ("reject", "report_lost", "recover", "reissue", "cancel"):
    _transition_command(_action)


@app.command("approve")
def cards_approve(
    ehc_id: str,
    document_number: Annotated[str, typer.Option(help="The number on the document the holder shows")],
    document_type: Annotated[str, typer.Option(help="Its CV02.01.101 code (03 passport, ...)")] = "01",
    reason: Annotated[Optional[str], typer.Option(help="A note for the card's history")] = None,
    operator: Operator = "cli",
    channel: ChannelOpt = CONSOLE,
    institution: Optional[str] = None,
) -> None:
    """Approve an application pending review, once you have seen the document (it must be the one applied with)."""
    ctx_run(lambda ctx: _print_card(ctx, service.review(ctx, ehc_id, "approve", document_type=document_type,
                                                        document_number=document_number, reason=reason),
                                    purpose="card.lifecycle"),
            operator, channel, institution)


_IMPORT_HELP = (
    "Migrate an existing resident registry (CSV) into the card registry. Re-run the same file to resume.\n\n"
    "Columns (matched by header name, any order; unknown columns are ignored): name, document_type "
    "(CV02.01.101 code; blank = 01 resident ID card), document_number, sex (1 male, 2 female), birth_date "
    "(YYYY-MM-DD), phone, address, region_code (GB/T 2260). Only name and document_number are required.\n\n"
    "Every row follows the rules of a registration through the API (same checks, same real-name verifier): "
    "a document that already has a card keeps it and counts as already registered; the same document under "
    "another name is rejected (document_registered_other_name). Cards are issued on channel 0900 (batch "
    "import).\n\n"
    "The job is keyed by the SM3 digest of the file's content: re-running an interrupted import continues "
    "after the last committed batch; re-running a finished one only writes the report. The report lists "
    "each rejected row's line number, masked document number and reason codes."
)


@app.command("import", help=_IMPORT_HELP)
def cards_import(
    file: Annotated[Path, typer.Argument(help="The registry as CSV, with a header row", exists=True, dir_okay=False)],
    report: Annotated[Optional[Path], typer.Option(help="Write the rejected rows here (CSV; masked numbers only)")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per transaction (each commits with the job's progress)")] = 5000,
    workers: Annotated[Optional[int], typer.Option(min=0, help="Worker processes preparing rows (default: one per core; 0: none)")] = None,
    encoding: Annotated[str, typer.Option(help="The file's text encoding, e.g. gb18030 for older exports")] = "utf-8-sig",
    operator: Operator = "cli",
    progress_every: Annotated[float, typer.Option(
        min=0, help="When the output is not a terminal (cron, CI, a log file): print a progress line at most "
                    "this often, in seconds (0: after every batch)")] = 10.0,
) -> None:
    """Migrate a resident registry from CSV (see ``ehc.cards.importer`` for the format and design)."""
    platform = open_platform()
    # A live bar on a terminal; elsewhere (redirected to a file) a bar prints nothing until the end,
    # so plain progress lines are printed instead.
    plain = not console.is_terminal
    last_line = {"at": 0.0}
    progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console)
    task = None
    started: dict[str, float] = {}

    def describe(p) -> str:  # noqa: ANN001
        return f"[green]{p.created:,} new[/] {p.already_registered:,} known [red]{p.rejected:,} rejected[/]"

    def on_start(p) -> None:  # noqa: ANN001
        nonlocal task
        if p.finished:
            console.print(f"this file was already imported (job {p.job_id}); nothing to do")
            return
        if p.resumed_from:
            console.print(f"resuming job {p.job_id} after row {p.resumed_from:,}")
        started.update(at=time.monotonic(), rows=p.rows_done)
        if plain:
            console.print(f"import job {p.job_id}: {p.rows_total:,} rows to read, starting at row {p.rows_done:,}",
                          highlight=False)
            return
        progress.start()
        task = progress.add_task(describe(p), total=p.rows_total, completed=p.rows_done, rate="")

    def on_batch(p) -> None:  # noqa: ANN001
        now = time.monotonic()
        rate = (p.rows_done - started["rows"]) / max(now - started["at"], 1e-6)
        if not plain:
            progress.update(task, description=describe(p), total=p.rows_total, completed=p.rows_done,
                            rate=f"{rate:,.0f}/s")
        elif now - last_line["at"] >= progress_every or p.rows_done >= p.rows_total:
            last_line["at"] = now
            left = f", about {(p.rows_total - p.rows_done) / rate:,.0f} s left" if rate > 0 else ""
            console.print(f"{in_china(utcnow()):%Y-%m-%d %H:%M:%S} rows {p.rows_done:,}/{p.rows_total:,} "
                          f"({100 * p.rows_done / max(p.rows_total, 1):.0f}%): {p.created:,} new, "
                          f"{p.already_registered:,} known, {p.rejected:,} rejected; {rate:,.0f} rows/s{left}",
                          highlight=False, markup=False)

    def stop() -> None:
        if task is not None:
            progress.stop()

    try:
        result = service.import_csv(platform, file, operator=operator, batch_size=batch_size, workers=workers,
                            report=report, encoding=encoding, on_start=on_start, on_batch=on_batch)
    except Problem as problem:
        stop()
        fail(problem)
    except KeyboardInterrupt:
        stop()
        err.print("[yellow]interrupted[/yellow]: committed batches are kept; run the same command again to resume")
        raise typer.Exit(130) from None
    finally:
        stop()
        platform.db.dispose()
    summary = Table.grid(padding=(0, 2))
    summary.add_row("rows", f"{result.rows_done:,}" + (f" (resumed after {result.resumed_from:,})"
                                                       if result.resumed_from and result.resumed_from < result.rows_done else ""))
    summary.add_row("new cards", f"{result.created:,} (pending review: {result.pending_review:,})")
    summary.add_row("already registered", f"{result.already_registered:,}")
    summary.add_row("rejected", f"{result.rejected:,}" + (f" -> {result.report}" if result.report else ""))
    console.print(summary)
    if result.rejected and result.report is None:
        console.print("re-run with --report FILE to list the rejected rows (nothing is imported twice)")
