"""``ehc staff``: staff accounts."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..accounts import service
from .common import CONSOLE, console, ctx_run

app = typer.Typer(help="Staff accounts.", no_args_is_help=True)


@app.command("add")
def staff_add(
    username: str,
    role: Annotated[str, typer.Option(help="window_clerk, doctor, nurse, family_doctor, cashier, institution_admin, regional_operator, auditor, platform_admin")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    institution: Optional[str] = None,
    region: Optional[str] = None,
    name: Optional[str] = None,
) -> None:
    """Create a staff account."""
    account = ctx_run(lambda ctx: service.create_staff(ctx, username=username, password=password, role=role,
                                                       display_name=name, institution_id=institution,
                                                       region_code=region),
                      "cli", CONSOLE, None)
    console.print(f"staff account {account.username} ({account.role}) created")
