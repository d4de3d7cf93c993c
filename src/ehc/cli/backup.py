"""``ehc backup`` and ``ehc restore``: the database and the key store in one file (``ehc.backup``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import backup as backups
from ..config import get_settings
from ..crypto.passphrase import MIN_PASSPHRASE
from .common import console, err

PassphraseFile = Annotated[Optional[Path], typer.Option(
    "--passphrase-file", exists=True, dir_okay=False,
    help="Read the passphrase from this file (first line); else EHC_BACKUP_PASSPHRASE, else a prompt")]


def _passphrase(path: Path | None, *, confirm: bool) -> str:
    if path is not None:
        lines = path.read_text(encoding="utf-8").splitlines()
        text = lines[0] if lines else ""
    else:
        text = os.environ.get("EHC_BACKUP_PASSPHRASE") or typer.prompt(
            "Passphrase for the key store", hide_input=True, confirmation_prompt=confirm)
    if len(text) < MIN_PASSPHRASE:
        err.print(f"[red]error[/red] a passphrase has at least {MIN_PASSPHRASE} characters")
        raise typer.Exit(2)
    return text


def _refusing(work: Callable[[], backups.Manifest]) -> backups.Manifest:
    """Run ``work``; a refusal (wrong passphrase, a damaged file, a database that is not empty) is
    printed and ends the command with status 2."""
    try:
        return work()
    except backups.BackupError as exc:
        err.print(f"[red]error[/red] {exc}")
        raise typer.Exit(2) from None


def _shown(table: str, rows: int) -> None:
    console.print(f"{table}: {rows:,} rows", highlight=False)


def backup(
    file: Annotated[Path, typer.Argument(help="Where to write the backup (replaced only once complete)")],
    passphrase_file: PassphraseFile = None,
) -> None:
    """Back up the database (one consistent snapshot) and the key store (encrypted under a passphrase)."""
    secret = _passphrase(passphrase_file, confirm=True)
    manifest = _refusing(lambda: backups.backup(get_settings(), file, secret, on_table=_shown))
    rows = sum(t["rows"] for t in manifest.tables.values())
    console.print(f"backup written to {file}: {len(manifest.tables)} tables, {rows:,} rows, schema {manifest.revision}; "
                  "keep the passphrase apart from the file")


def restore(
    file: Annotated[Path, typer.Argument(help="A file written by `ehc backup`", exists=True, dir_okay=False)],
    passphrase_file: PassphraseFile = None,
) -> None:
    """Rebuild the platform from a backup, on an empty database (EHC_DATABASE_URL) and an empty key
    directory (EHC_KEYS_DIR)."""
    secret = _passphrase(passphrase_file, confirm=False)
    manifest = _refusing(lambda: backups.restore(get_settings(), file, secret, on_table=_shown))
    console.print(f"restored the backup of {manifest.created_at} ({manifest.source_dialect}, schema {manifest.revision})")
