"""The ``ehc`` command: a third door into the same services as the API and the pages.

One module per command group; this one only puts them together into ``app`` (the ``ehc`` entry point).
"""

from __future__ import annotations

import typer

from . import (appointments, apps, audit, backup, card_uses, cards, demo, family_doctors, institutions, keys, mpi, payments, sandbox,
               server, sms, staff, stats, terminal)

app = typer.Typer(help="Electronic health card platform.", no_args_is_help=True)
app.command()(server.serve)
app.command()(server.migrate)
app.add_typer(keys.app, name="keys")
app.add_typer(cards.app, name="cards")
app.add_typer(card_uses.app, name="card-uses")
app.add_typer(staff.app, name="staff")
app.add_typer(sms.app, name="sms")
app.add_typer(audit.app, name="audit")
app.add_typer(mpi.app, name="mpi")
app.add_typer(institutions.app, name="institutions")
app.command()(demo.demo)
app.add_typer(apps.app, name="apps")
app.add_typer(terminal.app, name="terminal")
app.add_typer(stats.app, name="stats")
app.command("verify")(terminal.verify_code)
app.command()(backup.backup)
app.command()(backup.restore)
app.add_typer(family_doctors.app, name="family-doctors")
app.add_typer(appointments.app, name="appointments")
app.add_typer(payments.app, name="payments")
app.add_typer(sandbox.app, name="sandbox")


def main() -> None:  # pragma: no cover
    app()
