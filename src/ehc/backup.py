"""Backup and restore of a whole platform: the database and the key store, in one file.

``ehc backup FILE`` writes a tar archive:

* ``tables/NNN-<table>.jsonl.gz``: every row of every table, one JSON object a line, read in one
  consistent snapshot (a repeatable-read transaction on PostgreSQL, one read transaction on SQLite).
  Values are the database's own (sealed fields stay sealed, blind indexes stay blind), so the file
  holds no more personal data than the database does;
* ``keys.enc``: the key store (a tar of its directory) encrypted under the operator's passphrase
  (``crypto.passphrase``: Argon2id, SM4-GCM). Without the passphrase the sealed fields stay closed,
  so the file can travel to off-site storage like any other;
* ``manifest.json``: the format, the schema revision, and each member's row count and SM3 digest.

``ehc restore FILE`` rebuilds a platform on an empty database and an empty key directory: it opens
the key store first (a wrong passphrase changes nothing), checks every digest, migrates the database
to the backup's revision, loads every table in one transaction (counts checked), then migrates to
the code's head. A restore works across the two databases (a PostgreSQL backup restores onto
SQLite and back): the rows are read and written through SQLAlchemy, typed by the target's schema.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import shutil
import tarfile
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, MetaData, Table, func, select, text, update
from sqlalchemy import types as sqltypes
from sqlalchemy.exc import SAWarning

from .config import Settings
from .crypto import KeyStore, passphrase
from .crypto.sm3 import sm3_hasher
from .db import make_engine
from .kit.clock import utcnow
from .kit.partitions import partition_tables
from .migrate import upgrade

FORMAT = 1
# alembic_version: the manifest carries the revision instead. app_keys_generation: a token the
# migration seeds, not data; the restored platform's processes read apps' keys afresh under its own.
SKIPPED_TABLES = {"alembic_version", "app_keys_generation"}
BATCH = 1000

Progress = Callable[[str, int], None]  # (table, rows)


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Manifest:
    format: int
    created_at: str
    revision: str | None
    source_dialect: str
    tables: dict[str, dict[str, Any]]  # name -> {"member", "rows", "sm3"}
    keys_sm3: str

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "Manifest":
        if raw.get("format") != FORMAT:
            raise BackupError(f"backup format {raw.get('format')!r} is not one this version reads ({FORMAT})")
        return cls(**{k: raw[k] for k in ("format", "created_at", "revision", "source_dialect", "tables", "keys_sm3")})


# -- values on the way out and in -----------------------------------------------------------------

def _out(value: Any) -> Any:
    if isinstance(value, datetime):
        # UTC always; a naive value is SQLite's way of storing a UTC moment.
        return (value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (bytes, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _decoder(column_type: sqltypes.TypeEngine) -> Callable[[Any], Any]:
    if isinstance(column_type, sqltypes.DateTime):
        keep_zone = bool(getattr(column_type, "timezone", False))
        return lambda v: (lambda moment: moment if keep_zone else moment.replace(tzinfo=None))(datetime.fromisoformat(v))
    if isinstance(column_type, sqltypes.Date):
        return date.fromisoformat
    if isinstance(column_type, sqltypes._Binary):
        return base64.b64decode
    if isinstance(column_type, sqltypes.Numeric) and not isinstance(column_type, sqltypes.Float):
        return Decimal
    return lambda v: v


def _reflect(conn: Connection) -> list[Table]:
    metadata = MetaData()
    # A partitioned table's rows are read and written through it (card_uses), never through its
    # partitions: those are the months the target database keeps for itself.
    partitions = partition_tables(conn)
    with warnings.catch_warnings():
        # Expression indexes are not reflected; rows are all a backup needs of the schema.
        warnings.simplefilter("ignore", SAWarning)
        metadata.reflect(conn, only=lambda name, _metadata: name not in partitions)
    return [table for table in metadata.sorted_tables if table.name not in SKIPPED_TABLES]


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


# -- backup -----------------------------------------------------------------------------------------

def backup(settings: Settings, out: Path, passphrase_text: str, on_table: Progress | None = None) -> Manifest:
    """Write the platform's database and key store to ``out`` (replaced only once complete)."""
    keys = KeyStore(settings.keys_dir)
    if not keys.exists:
        raise BackupError(f"no key store at {settings.keys_dir}")
    keys_blob = passphrase.encrypt(_tar_directory(settings.keys_dir), passphrase_text)
    engine = make_engine(settings.database_url)
    partial = out.with_name(out.name + ".partial")
    tables: dict[str, dict[str, Any]] = {}
    try:
        with tarfile.open(partial, "w") as archive:
            with _snapshot(engine) as conn:
                revision = _revision(conn)
                for number, table in enumerate(_reflect(conn)):
                    member = f"tables/{number:03d}-{table.name}.jsonl.gz"
                    rows, digest = _add_table(archive, member, conn, table)
                    tables[table.name] = {"member": member, "rows": rows, "sm3": digest}
                    if on_table:
                        on_table(table.name, rows)
            _add_bytes(archive, "keys.enc", keys_blob)
            manifest = Manifest(FORMAT, utcnow().isoformat(), revision, engine.dialect.name, tables,
                                _digest(keys_blob))
            _add_bytes(archive, "manifest.json", json.dumps(manifest.__dict__, indent=2).encode())
        os.chmod(partial, 0o600)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
        engine.dispose()
    return manifest


class _snapshot:
    """One consistent read of the whole database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __enter__(self) -> Connection:
        if self.engine.dialect.name == "postgresql":
            self.conn = self.engine.connect().execution_options(isolation_level="REPEATABLE READ")
            self.conn.begin()
            self.conn.execute(text("SET TRANSACTION READ ONLY"))
        else:
            self.conn = self.engine.connect()
            self.conn.begin()
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.rollback()
        self.conn.close()


def _add_table(archive: tarfile.TarFile, member: str, conn: Connection, table: Table) -> tuple[int, str]:
    rows = 0
    with tempfile.TemporaryFile() as scratch:
        with gzip.GzipFile(fileobj=scratch, mode="wb", mtime=0) as packed:
            order = list(table.primary_key.columns) or list(table.columns)
            result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(select(table).order_by(*order))
            for row in result.mappings():
                packed.write(json.dumps({k: _out(v) for k, v in row.items()}, ensure_ascii=False).encode() + b"\n")
                rows += 1
        scratch.seek(0)
        hasher = sm3_hasher()
        for chunk in iter(lambda: scratch.read(1 << 20), b""):
            hasher.update(chunk)
        size = scratch.tell()
        scratch.seek(0)
        info = tarfile.TarInfo(member)
        info.size, info.mtime, info.mode = size, int(utcnow().timestamp()), 0o600
        archive.addfile(info, scratch)
    return rows, hasher.finalize().hex()


def _add_bytes(archive: tarfile.TarFile, member: str, data: bytes) -> None:
    info = tarfile.TarInfo(member)
    info.size, info.mtime, info.mode = len(data), int(utcnow().timestamp()), 0o600
    archive.addfile(info, io.BytesIO(data))


def _digest(data: bytes) -> str:
    hasher = sm3_hasher()
    hasher.update(data)
    return hasher.finalize().hex()


def _tar_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(Path(directory).iterdir()):
            if path.is_file():
                archive.add(path, arcname=path.name)
    return buffer.getvalue()


# -- restore ----------------------------------------------------------------------------------------

def read_manifest(archive_path: Path) -> Manifest:
    with tarfile.open(archive_path, "r") as archive:
        return Manifest.from_json(json.loads(_read(archive, "manifest.json")))


def restore(settings: Settings, archive_path: Path, passphrase_text: str, on_table: Progress | None = None) -> Manifest:
    """Rebuild the platform from ``archive_path`` on an empty database and an empty key directory."""
    keys_dir = Path(settings.keys_dir)
    if keys_dir.exists() and any(keys_dir.iterdir()):
        raise BackupError(f"{keys_dir} is not empty: restore into a new key directory (EHC_KEYS_DIR)")
    with tarfile.open(archive_path, "r") as archive:
        manifest = Manifest.from_json(json.loads(_read(archive, "manifest.json")))
        keys_blob = _read(archive, "keys.enc")
        if _digest(keys_blob) != manifest.keys_sm3:
            raise BackupError("the key store in this backup is damaged (its digest does not match)")
        try:
            keys_tar = passphrase.decrypt(keys_blob, passphrase_text)
        except Exception as exc:
            raise BackupError("wrong passphrase, or the key store in this backup is damaged") from exc
        for name, entry in manifest.tables.items():
            if _digest(_read(archive, entry["member"])) != entry["sm3"]:
                raise BackupError(f"table {name} in this backup is damaged (its digest does not match)")

        upgrade(settings.database_url, manifest.revision or "base")
        engine = make_engine(settings.database_url)
        try:
            with engine.begin() as conn:
                target = {table.name: table for table in _reflect(conn)}
                missing = set(manifest.tables) - set(target)
                if missing:
                    raise BackupError(f"the database lacks tables the backup has: {', '.join(sorted(missing))}")
                full = [name for name, table in target.items() if conn.scalar(select(func.count()).select_from(table))]
                if full:
                    raise BackupError(f"the database is not empty ({', '.join(full[:3])}...): restore into a new one")
                for name in target:  # dependency order
                    if name in manifest.tables:
                        loaded = _load_table(conn, target[name], archive, manifest.tables[name]["member"])
                        if loaded != manifest.tables[name]["rows"]:
                            raise BackupError(f"table {name}: {loaded} rows read, the manifest says "
                                              f"{manifest.tables[name]['rows']}")
                        if on_table:
                            on_table(name, loaded)
                if engine.dialect.name == "postgresql":
                    _reset_sequences(conn, list(target.values()))
        finally:
            engine.dispose()
    _write_keys(keys_tar, keys_dir)
    upgrade(settings.database_url)  # a backup of an older version: bring the schema up to this one
    return manifest


def _read(archive: tarfile.TarFile, member: str) -> bytes:
    try:
        extracted = archive.extractfile(member)
    except KeyError:
        raise BackupError(f"not a complete backup: {member} is missing") from None
    if extracted is None:
        raise BackupError(f"not a complete backup: {member} is not a file")
    return extracted.read()


def _rows(archive: tarfile.TarFile, member: str) -> Iterator[dict[str, Any]]:
    extracted = archive.extractfile(member)
    assert extracted is not None  # checked with the digests
    with gzip.GzipFile(fileobj=extracted) as lines:
        for line in lines:
            yield json.loads(line)


def _load_table(conn: Connection, table: Table, archive: tarfile.TarFile, member: str) -> int:
    decoders = {c.name: _decoder(c.type) for c in table.columns}
    # A column pointing into its own table (a merged person's ``merged_into``) is filled in after all
    # the table's rows are in, so the order of the rows does not matter.
    own = [fk.parent.name for fk in table.foreign_keys if fk.column.table.name == table.name]
    (key,) = table.primary_key.columns if len(table.primary_key.columns) == 1 else (None,)
    later: list[dict[str, Any]] = []
    batch: list[dict[str, Any]] = []
    loaded = 0
    for raw in _rows(archive, member):
        row = {name: (None if value is None else decoders[name](value)) for name, value in raw.items()
               if name in decoders}
        if own and key is not None and any(row.get(name) is not None for name in own):
            later.append({"_key": row[key.name], **{name: row[name] for name in own}})
            row.update({name: None for name in own})
        batch.append(row)
        if len(batch) >= BATCH:
            conn.execute(table.insert(), batch)
            loaded += len(batch)
            batch = []
    if batch:
        conn.execute(table.insert(), batch)
        loaded += len(batch)
    for values in later:
        conn.execute(update(table).where(key == values.pop("_key")).values(values))
    return loaded


def _reset_sequences(conn: Connection, tables: list[Table]) -> None:
    """Rows came with their ids: move each id sequence past the largest, or the next insert collides."""
    for table in tables:
        for column in table.primary_key.columns:
            if isinstance(column.type, sqltypes.Integer):
                sequence = conn.scalar(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name})
                if sequence:
                    conn.execute(text(f'SELECT setval(:s, COALESCE((SELECT MAX("{column.name}") FROM "{table.name}"), 0) + 1, false)'),
                                 {"s": sequence})


def _write_keys(keys_tar: bytes, keys_dir: Path) -> None:
    staging = keys_dir.with_name(keys_dir.name + ".restoring")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, mode=0o700)
    with tarfile.open(fileobj=io.BytesIO(keys_tar), mode="r") as archive:
        for member in archive.getmembers():
            if not member.isfile() or "/" in member.name or member.name.startswith("."):
                raise BackupError(f"unexpected entry {member.name!r} in the backup's key store")
            data = archive.extractfile(member).read()  # type: ignore[union-attr]
            fd = os.open(staging / member.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
    if keys_dir.exists():
        keys_dir.rmdir()  # empty, checked before anything was done
    staging.replace(keys_dir)
    KeyStore(keys_dir)  # reads back: a damaged store fails here, not at the first request
