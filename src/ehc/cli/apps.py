"""``ehc apps``: hospital systems, their SM2 public keys, and signed calls."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..apps import service
from ..apps.schemas import app_out, key_out
from ..crypto import SM2PrivateKey
from ..kit.context import Ctx
from ..config import get_settings
from .common import CONSOLE, Operator, app_client, beijing, console, ctx_run, err, fail

app = typer.Typer(help="Hospital systems: apps, their SM2 public keys, and signed calls.", no_args_is_help=True)


def _warn_without_redis() -> None:
    """Servers sharing state through Redis learn of a key change from Redis: a change made without it
    reaches them only with the next change they hear of (docs/operations.md)."""
    settings = get_settings()
    if not settings.redis_url and not settings.is_sqlite:
        err.print("[yellow]EHC_REDIS_URL is not set here: servers that share Redis keep their cached keys "
                  "until the next change announced through it. Run this with the servers' EHC_REDIS_URL "
                  "and EHC_REDIS_PREFIX.[/yellow]")


def _print_app(ctx: Ctx, made) -> None:  # noqa: ANN001
    console.print_json(app_out(made, service.keys_of(ctx, made)).model_dump_json())


@app.command("create")
def apps_create(
    institution: Annotated[str, typer.Option(help="Institution id the app belongs to")],
    name: Annotated[str, typer.Option(help="What the system is, e.g. 'HIS outpatient'")],
    operator: Operator = "cli",
) -> None:
    """Register an app of an institution; prints its app id."""
    _warn_without_redis()
    ctx_run(lambda ctx: _print_app(ctx, service.create_app(ctx, name=name, institution_id=institution)),
            operator, CONSOLE, None)


@app.command("list")
def apps_list(institution: Annotated[Optional[str], typer.Option(help="Only this institution's apps")] = None) -> None:
    """Show apps and their active keys."""
    def do(ctx: Ctx) -> None:
        table = Table("app id", "institution", "name", "active keys", "created")
        for made in service.list_apps(ctx, institution):
            keys = service.keys_of(ctx, made)
            active = ", ".join(k.key_id for k in keys if k.status == "active") or "-"
            table.add_row(made.id, made.institution_id, made.name, active, beijing(made.created_at, seconds=False))
        console.print(table)

    ctx_run(do, "cli", CONSOLE, None)


@app.command("show")
def apps_show(app_id: str) -> None:
    """Show an app and every key it ever registered."""
    ctx_run(lambda ctx: _print_app(ctx, service.get_app(ctx, app_id)), "cli", CONSOLE, None)


@app.command("add-key")
def apps_add_key(
    app_id: str,
    public_key: Annotated[typer.FileText, typer.Argument(help="SM2 public key PEM file ('-' for stdin)")],
    operator: Operator = "cli",
) -> None:
    """Register an SM2 public key for an app (to rotate: add the new key, switch, revoke the old)."""
    pem = public_key.read()
    _warn_without_redis()
    ctx_run(lambda ctx: console.print_json(key_out(service.add_key(ctx, app_id, pem)).model_dump_json()),
            operator, CONSOLE, None)


@app.command("revoke-key")
def apps_revoke_key(app_id: str, key_id: str, operator: Operator = "cli") -> None:
    """Revoke a key: requests signed with it are refused from now on."""
    _warn_without_redis()
    ctx_run(lambda ctx: console.print_json(key_out(service.revoke_key(ctx, app_id, key_id)).model_dump_json()),
            operator, CONSOLE, None)


@app.command("keygen")
def apps_keygen(out: Annotated[Path, typer.Argument(help="Private key file to write (PEM, mode 600); the public key goes to OUT.pub")]) -> None:
    """Make an SM2 key pair for an app (the same as `openssl genpkey -algorithm SM2`)."""
    key = SM2PrivateKey.generate()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.to_pem())
    public = out.with_name(out.name + ".pub")
    public.write_bytes(key.public_key.to_pem())
    console.print(f"private key {out}, public key {public}; key id once registered: {service.key_id_for(key.public_key)}")


@app.command("call")
def apps_call(
    method: Annotated[str, typer.Argument(help="GET, POST, PATCH ...")],
    path: Annotated[str, typer.Argument(help="e.g. /api/v1/cards/lookup")],
    body: Annotated[Optional[str], typer.Option("--json", help="JSON body, or @file")] = None,
    param: Annotated[Optional[list[str]], typer.Option(help="Query parameter k=v (repeatable)")] = None,
    base_url: Annotated[str, typer.Option(envvar="EHC_API_URL", help="Platform address")] = "http://127.0.0.1:8000",
    app_id: Annotated[str, typer.Option(envvar="EHC_APP_ID")] = "",
    key_id: Annotated[str, typer.Option(envvar="EHC_KEY_ID")] = "",
    private_key: Annotated[Optional[Path], typer.Option(envvar="EHC_APP_KEY", help="SM2 private key PEM file")] = None,
    operator: Annotated[Optional[str], typer.Option(help="Who at the hospital is acting (X-EHC-Operator)")] = None,
    channel: Annotated[Optional[str], typer.Option(help="Channel code (X-EHC-Channel); default 0600")] = None,
    idempotency_key: Annotated[Optional[str], typer.Option(help="Idempotency-Key for calls that create")] = None,
) -> None:
    """Send one signed request (EHC-SM2-V1) with ehc.client and print the answer."""
    # heavy: the signed client brings httpx (half a second); only commands that call the platform need it
    from ..client import EhcError

    signed = app_client(base_url, app_id, key_id, private_key, operator=operator, channel=channel)
    payload = None
    if body is not None:
        payload = json.loads(Path(body[1:]).read_text() if body.startswith("@") else body)
    params = dict(p.split("=", 1) for p in param or [])
    with signed as client:
        try:
            answer = client.request(method.upper(), path, json=payload, params=params or None,
                                    idempotency_key=idempotency_key)
        except EhcError as problem:
            fail(problem)
    console.print_json(json.dumps(answer, ensure_ascii=False))
