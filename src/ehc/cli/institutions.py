"""``ehc institutions``: the institution registry (institutions, departments, terminals)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from ..institutions import service
from ..institutions.schemas import DepartmentOut, InstitutionOut, TerminalOut
from ..kit.context import Ctx
from .common import CONSOLE, Operator, console, ctx_run

app = typer.Typer(help="The institution registry: institutions, departments, terminals.", no_args_is_help=True)


@app.command("create")
def institutions_create(
    uscc: Annotated[str, typer.Option(help="Unified social credit code (GB 32100)")],
    name: Annotated[str, typer.Option(help="Registered name")],
    kind: Annotated[str, typer.Option(help="hospital, community_centre, clinic or pharmacy")],
    region: Annotated[str, typer.Option(help="GB/T 2260 region code, e.g. 510104")],
    level: Annotated[Optional[str], typer.Option(help="3A, 3B, 2A, 2B, 1 ... or none")] = None,
    operator: Operator = "cli",
) -> None:
    """Register an institution (the platform acting: no regional limit)."""
    def do(ctx: Ctx) -> None:
        made = service.register_institution(ctx, uscc=uscc, name=name, kind=kind, region_code=region, level=level)
        console.print_json(InstitutionOut.of(made).model_dump_json())

    ctx_run(do, operator, CONSOLE, None)


@app.command("list")
def institutions_list(
    region: Annotated[Optional[str], typer.Option(help="Only within this GB/T 2260 region")] = None,
    kind: Annotated[Optional[str], typer.Option(help="hospital, community_centre, clinic or pharmacy")] = None,
    limit: int = 500,
) -> None:
    """Show registered institutions."""
    def do(ctx: Ctx) -> None:
        items, total = service.list_institutions(ctx, kind=kind, region_code=region, limit=limit)
        table = Table("id", "name", "kind", "level", "region", "USCC", title=f"{total} institution(s)")
        for item in map(InstitutionOut.of, items):
            table.add_row(item.id, item.name, item.kind, item.level or "", item.region_code, item.uscc)
        console.print(table)

    ctx_run(do, "cli", CONSOLE, None)


@app.command("add-department")
def institutions_add_department(
    institution: str,
    code: Annotated[str, typer.Argument(help="Standard 4-digit department code, e.g. 0300")],
    name: Annotated[Optional[str], typer.Option(help="Local name (default: the standard label)")] = None,
    operator: Operator = "cli",
) -> None:
    """Add a department to an institution."""
    def do(ctx: Ctx) -> None:
        made = service.add_department(ctx, service.managed_institution(ctx, institution), code=code, name=name)
        console.print_json(DepartmentOut.of(made).model_dump_json())

    ctx_run(do, operator, CONSOLE, None)


@app.command("add-terminal")
def institutions_add_terminal(
    institution: str,
    terminal_id: str,
    role: Annotated[str, typer.Option(help="window, kiosk, workstation or other")],
    department: Annotated[Optional[str], typer.Option(help="Department code")] = None,
    name: Optional[str] = None,
    operator: Operator = "cli",
) -> None:
    """Register a terminal (window 01, kiosk 02, workstation/other 99) at an institution."""
    def do(ctx: Ctx) -> None:
        made = service.register_terminal(ctx, service.managed_institution(ctx, institution), terminal_id=terminal_id,
                                         role=role, department_code=department, name=name)
        console.print_json(TerminalOut.of(made, department).model_dump_json())

    ctx_run(do, operator, CONSOLE, None)
