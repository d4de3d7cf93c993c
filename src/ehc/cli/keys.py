"""``ehc keys``: the key store (root, QR issuing, sealing and blind-index keys)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..config import get_settings
from ..crypto import KeyStore, KeyStoreError
from ..crypto.keystore import KINDS
from ..kit import resealing
from ..qr.service import withdraw_qr_key
from .common import console, err, open_platform

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
def keys_withdraw(key_id: Annotated[str, typer.Argument(help="A retired QR or sealing key id, e.g. Q1a2b3c")]) -> None:
    """Stop trusting a retired key for good: a QR key's codes are refused from then on; a sealing key
    opens nothing (refused while values are still sealed under it: run `ehc keys reseal` first)."""
    store = KeyStore(get_settings().keys_dir)
    kind = next((info.kind for info in store.infos() if info.id == key_id), None)
    try:
        if kind == "sealing":
            platform = open_platform()
            try:
                remaining = sum(resealing.count_under(platform.db.engine, key_id).values())
            finally:
                platform.db.dispose()
            if remaining:
                err.print(f"[red]error[/red] {remaining:,} values are still sealed under {key_id}: "
                          "run `ehc keys reseal` first")
                raise typer.Exit(2)
            store.withdraw(key_id)
        else:
            withdraw_qr_key(store, key_id)
    except KeyStoreError as exc:
        err.print(f"[red]error[/red] {exc}")
        raise typer.Exit(2) from None
    if kind == "sealing":
        console.print(f"{key_id} withdrawn; every server stops opening anything with it now")
    else:
        console.print(f"{key_id} withdrawn; every server stops accepting it now, terminals at their next sync")


@app.command("reseal")
def keys_reseal(
    batch_size: Annotated[int, typer.Option(min=1, help="Values per transaction")] = 500,
) -> None:
    """Seal every value sealed under a retired key again under the active one (after `ehc keys rotate
    sealing`). Runs beside the servers; stop it at any time and run it again to go on."""
    platform = open_platform()
    try:
        def show(p: resealing.ColumnProgress) -> None:
            console.print(f"{p.column}: {p.done:,}/{p.total:,}", highlight=False)

        done = resealing.reseal(platform.db.engine, platform.vault, batch_size=batch_size, on_batch=show)
        left = {key: n for info in platform.keys.infos("sealing") if info.status != "active"
                for key, n in [(info.id, sum(resealing.count_under(platform.db.engine, info.id).values()))] if n}
    finally:
        platform.db.dispose()
    console.print(f"re-sealed {sum(p.done for p in done):,} values under {platform.keys.active('sealing').id}")
    if left:  # written meanwhile by a process that had not seen the rotation yet
        console.print(f"still under retired keys: {left}; run again")
