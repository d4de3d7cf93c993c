"""What every command group shares: the consoles, opening the platform, failing with a problem,
running a function in one unit of work as a CLI actor, and the common options."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer
from rich.console import Console

from ..kit.clock import CHINA
from ..kit.codes import Channel
from ..kit.context import Actor, Ctx
from ..kit.errors import Problem
from ..platform import Platform

if TYPE_CHECKING:
    from ..client import EhcClient

T = TypeVar("T")

# Piped output (scripts, tests) gets wide tables so ids are never cut short.
console = Console(width=None if sys.stdout.isatty() else 250)
err = Console(stderr=True)

Operator = Annotated[str, typer.Option(help="Who is acting (recorded in the card's history)")]
# What an operator does at the command line is recorded, and shown to residents, as channel 0800 (the
# platform operator's console): only an operator who is really serving the resident at a window or a
# kiosk through this command says so with --channel.
CONSOLE = Channel.CONSOLE.value
ChannelOpt = Annotated[str, typer.Option(help="Channel code: 0800 command line (the default); 0100 window, "
                                              "0200 kiosk, ... only when the resident is being served there")]


def parse_day(text: str, name: str = "DAY") -> date:
    """A calendar day typed at the command line (yyyy-mm-dd); anything else ends the command with a
    clear message and exit code 2, as a usage error does."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        err.print(f"[red]error[/red] {name} is yyyy-mm-dd, not {text!r}")
        raise typer.Exit(2) from None


def beijing(moment, seconds: bool = True) -> str:  # noqa: ANN001 - an aware datetime (UTC at rest)
    """A stored time as the pages show it: Beijing time, with its offset said."""
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") + " +08:00"


def open_platform() -> Platform:
    return Platform.from_settings()


def fail(problem) -> NoReturn:  # noqa: ANN001 - a Problem, or the client's EhcError
    err.print(f"[red]error[/red] {problem.code}: {problem.detail}")
    for e in getattr(problem, "errors", []) or []:
        err.print(f"  {e.get('field')}: {e.get('message')} ({e.get('code')})")
    raise typer.Exit(2)


def ctx_run(fn: Callable[[Ctx], T], operator: str, channel: str = CONSOLE, institution: str | None = None) -> T:
    """Run ``fn`` in one unit of work, as the system acting through the CLI on ``channel`` (the operator's
    console unless the operator says they are serving the resident on another one)."""
    try:
        chosen = Channel(channel)
    except ValueError:
        err.print(f"[red]error[/red] channel_invalid: {channel!r} is not a channel code ("
                  + ", ".join(c.value for c in Channel) + ")")
        raise typer.Exit(2) from None
    platform = open_platform()
    actor = Actor(kind="system", channel=chosen, id=operator, operator=operator, institution_id=institution)
    try:
        with platform.db.session() as session:
            return fn(platform.ctx(session, actor))
    except Problem as problem:
        fail(problem)


def app_client(base_url: str, app_id: str, key_id: str, private_key: Path | None, *,
               operator: str | None = None, channel: str | None = None) -> EhcClient:
    """A client signing as an app (EHC-SM2-V1), or exit 2 when its credentials are not all given."""
    if not (app_id and key_id and private_key):
        err.print("[red]error[/red] --app-id, --key-id and --private-key (or EHC_APP_ID, EHC_KEY_ID, EHC_APP_KEY) "
                  "are needed")
        raise typer.Exit(2)
    # heavy: the signed client brings httpx (half a second); only commands that call the platform need it
    from ..client import EhcClient

    return EhcClient(base_url, app_id, key_id, private_key.read_bytes(), operator=operator, channel=channel)
