"""``ehc demo``: build a demo province."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..kit.errors import Problem
from .common import console, fail, open_platform


def demo(
    residents: Annotated[int, typer.Option(help="How many residents to register")] = 1000,
    seed: Annotated[int, typer.Option(help="Same seed, same residents")] = 2026,
    if_empty: Annotated[bool, typer.Option("--if-empty", help="Do nothing when any card exists")] = False,
    wait_for_payments: Annotated[float, typer.Option(
        help="Seconds to wait for EHC_INSURANCE_URL and EHC_BANK_URL to answer before leaving payments out")] = 0.0,
) -> None:
    """Build a demo province: institutions, residents with families and newborns, demo staff accounts,
    terminals, a week of card uses, master-index pairs waiting for review, and bills to pay for a few
    residents when the insurance service and the bank answer."""
    from ..demo import build_demo, print_summary  # heavy: Faker's locale data; only this command needs it

    platform = open_platform()
    with Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("demo", total=None)
        try:
            summary = build_demo(platform, residents, seed, if_empty=if_empty, wait_for_payments=wait_for_payments,
                                 progress=lambda stage, done, total: bar.update(task, description=stage,
                                                                                completed=done, total=total))
        except Problem as problem:
            bar.stop()
            fail(problem)
    print_summary(summary, console)
