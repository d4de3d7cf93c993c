"""``ehc audit``: the audit trail (verify its hash chain, search it)."""

from __future__ import annotations

from datetime import datetime
from itertools import islice
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..audit import service
from ..audit.schemas import AuditEventOut
from ..kit.codes import Channel
from ..kit.context import Actor
from ..kit.errors import Invalid, Problem
from .common import beijing, console, err, fail, open_platform

app = typer.Typer(help="The audit trail: verify its hash chain, search it.", no_args_is_help=True)


@app.command("verify")
def audit_verify(
    anchor: Annotated[Optional[str], typer.Option(
        help="SEQ:HASH noted from an earlier run: also detects a chain cut short or rewritten since")] = None,
) -> None:
    """Walk the hash chain from seq 1; name the first edited, deleted or reordered event. Exit 1 if broken."""
    expected = None
    if anchor is not None:
        seq, _, digest = anchor.partition(":")
        if not (seq.isdigit() and int(seq) >= 1 and len(digest) == 64):
            err.print("[red]error[/red] --anchor is SEQ:HASH, e.g. 1200:3f5a... (64 hex characters)")
            raise typer.Exit(2)
        expected = (int(seq), digest.lower())
    platform = open_platform()
    with platform.db.session() as session:  # first chain any event still in intake, in its own unit of work
        service.chain_pending(session)
    with platform.db.session() as session:
        report = service.verify_chain(platform.ctx(session, Actor.system("audit-verify", Channel.CONSOLE)), anchor=expected)
    if report.intact:
        console.print(report.summary())
        return
    err.print(f"[red]{report.summary()}[/red]")
    raise typer.Exit(1)


@app.command("search")
def audit_search(
    ehc_id: Annotated[Optional[str], typer.Option(help="Events about this card's holder")] = None,
    actor: Annotated[Optional[str], typer.Option(help="Actor id (staff account id, app id, CLI operator)")] = None,
    institution: Optional[str] = None,
    purpose: Annotated[Optional[str], typer.Option(help="e.g. card.lookup")] = None,
    action: Annotated[Optional[str], typer.Option(help="read or change")] = None,
    since: Annotated[Optional[str], typer.Option(help="ISO time with zone, inclusive (2026-01-31T08:00:00+08:00)")] = None,
    until: Annotated[Optional[str], typer.Option(help="ISO time with zone, exclusive")] = None,
    limit: Annotated[int, typer.Option(help="At most this many events, newest first")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line")] = False,
) -> None:
    """Search the audit trail, as auditors do through GET /api/v1/audit/events."""
    platform = open_platform()
    try:
        with platform.db.session() as session:
            ctx = platform.ctx(session, Actor.system("audit-search", Channel.CONSOLE))
            try:
                times = {name: datetime.fromisoformat(value) if value else None
                         for name, value in (("since", since), ("until", until))}
            except ValueError as exc:
                raise Invalid(f"Not an ISO time: {exc}.", code="time_invalid") from None
            filters = service.Filters(
                person_ids=service.person_ids_for_card(ctx, ehc_id) if ehc_id else None,
                actor_id=actor, institution_id=institution, purpose=purpose, action=action, **times)
            events = [AuditEventOut.model_validate(e, from_attributes=True)
                      for e in islice(service.iter_events(ctx, filters), max(limit, 0))]
    except Problem as problem:
        fail(problem)
    if as_json:
        for e in events:
            typer.echo(e.model_dump_json())
        return
    table = Table("seq", "at (UTC)", "action", "purpose", "person", "actor", "institution", "channel")
    for e in events:
        who = f"{e.actor_kind}:{e.operator or e.actor_id or '-'}" + (f" ({e.actor_role})" if e.actor_role else "")
        table.add_row(str(e.seq), beijing(e.at), e.action, e.purpose, e.person_id, who,
                      e.institution_id or "", e.channel)
    console.print(table)
    console.print(f"{len(events)} events")
