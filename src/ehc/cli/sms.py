"""``ehc sms``: text messages to residents (the development outbox)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from ..accounts import service as accounts
from ..identity.service import normalise_phone
from ..kit.errors import Problem
from .common import beijing, console, err, fail, open_platform

app = typer.Typer(help="Text messages to residents (development outbox).", no_args_is_help=True)


@app.command("outbox")
def sms_outbox(
    limit: Annotated[int, typer.Option(help="How many of the most recent messages")] = 20,
    phone: Annotated[Optional[str], typer.Option(help="Only messages to this mobile number")] = None,
) -> None:
    """Show what the development SMS sender "sent" (EHC_SMS_SENDER=outbox), newest first."""
    platform = open_platform()
    try:
        wanted = normalise_phone(phone) if phone else None
    except Problem as problem:
        fail(problem)
    with platform.db.session() as session:
        messages = accounts.outbox(session, platform.vault, phone=wanted, limit=limit)
    if platform.settings.sms_sender != "outbox":
        err.print(f"note: the SMS sender is {platform.settings.sms_sender!r}; the outbox only fills with 'outbox'")
    table = Table("sent at (UTC)", "phone", "text")
    for message in messages:
        table.add_row(beijing(message.at), message.phone, message.text)
    console.print(table)
