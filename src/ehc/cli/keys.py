"""``ehc keys``: the key store (root, QR issuing, sealing and blind-index keys)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..config import get_settings
from ..crypto import KeyStore, KeyStoreError
from ..crypto.keystore import KINDS
from ..qr.service import withdraw_qr_key
from .common import console, err

app = typer.Typer(help="The key store: root, QR issuing, sealing and blind-index keys.", no_args_is_help=True)


@app.command("init")
def keys_init(if_missing: Annotated[bool, typer.Option("--if-missing", help="Do nothing when a store exists")] = False) -> None:
    """Create the key store (every missing key); never overwrites a key."""
    settings = get_settings()
    existing = KeyStore(settings.keys_dir)
    if existing.exists and if_missing and all(existing.infos(kind) for kind in KINDS):
        return
    store = KeyStore.init(settings.keys_dir)  # adds only the kinds that are missing
    console.print(f"key store at {store.directory}: {', '.join(f'{k.kind}={k.id}' for k in store.infos())}")


@app.command("list")
def keys_list() -> None:
    """Show every key with its id, kind and status (never the key material)."""
    store = KeyStore(get_settings().keys_dir)
    table = Table("id", "kind", "status", "created", "not after", "fingerprint (SM3)")
    for k in store.infos():
        table.add_row(k.id, k.kind, k.status, k.created_at, k.not_after or "", (k.fingerprint or "")[:16])
    console.print(table)


@app.command("rotate")
def keys_rotate(kind: Annotated[str, typer.Argument(help="sealing or qr")]) -> None:
    """Start using a new key of KIND; the old one is retired, kept to open or verify old material."""
    try:
        info = KeyStore(get_settings().keys_dir).rotate(kind)
    except KeyStoreError as exc:
        err.print(f"[red]error[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(f"new active {kind} key: {info.id}")


@app.command("withdraw")
def keys_withdraw(key_id: Annotated[str, typer.Argument(help="A retired QR key id, e.g. Q1a2b3c")]) -> None:
    """Take a retired QR key out of the trust list for good: every code it signed is refused from then on."""
    try:
        withdraw_qr_key(KeyStore(get_settings().keys_dir), key_id)
    except KeyStoreError as exc:
        err.print(f"[red]error[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(f"{key_id} withdrawn; every server stops accepting it now, terminals at their next sync")
