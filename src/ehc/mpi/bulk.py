"""Bulk creation of people in the master index, for registry migrations (``ehc cards import``).

The rules are those of :func:`ehc.mpi.persons.create_person`, applied to thousands of people at a
time: every personal field is sealed and bound to the person's id (:func:`service.seal_context`),
each identifier is sealed under ``identifier.<system>`` and blind-indexed, and the unique blind
index decides who holds a document, also against registrations committed concurrently through the
API. This module is the only bulk writer of ``persons`` and ``person_identifiers``; other domains
hand it people and learn which of them were really created. :func:`bind_identifiers` binds
identifiers to people who exist already (batch linkage binds hospital numbers), under the same rule.

It has two halves, so the expensive part can run in worker processes:

* :class:`PersonBatchBuilder` is pure CPU (sealing, blind index) and needs only a vault. It encodes
  a batch as PostgreSQL ``COPY`` text (``copy=True``) or as row tuples (other databases).
* :func:`create_persons` writes a batch inside the caller's transaction and returns the keys of the
  people that were *not* created because their identifier is already held (by a person from an
  earlier batch, the API, or an earlier key of the same batch). Nothing is left behind for those.
  On PostgreSQL it looks the batch's blind indexes up and copies the rest straight into the
  tables; a holder committed in between makes it raise ``IntegrityError``, and the caller writes the
  batch again with ``careful=True`` (staging table, ``ON CONFLICT DO NOTHING``).

Keys are caller-chosen integers (the importer uses line numbers); within a batch, the lowest key
wins a contested identifier, so "first in the file wins" holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.engine import Connection

from ..kit import dialect
from ..kit.context import Vault
from ..kit.copytext import copy_value
from .matching import keys as match_keys
from .models import MatchKey, Person, PersonIdentifier
from .sealed import identifier_context, seal_context
from .values import Demographics, Identifier

# PostgreSQL: a batch goes straight into ``persons`` and ``person_identifiers`` with ``COPY`` once a
# look-up of its blind indexes found them free. A registration committed between that look-up and
# the COPY makes the COPY fail on the unique blind index (the caller then writes the batch again with
# ``careful=True``): through a staging table and ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``,
# which yields to concurrent holders row by row.
# The worker's lines, in COPY text; the main process adds the columns it alone knows (the time).
_PERSON_COLUMNS = ("id", "name_sealed", "birth_date_sealed", "phone_sealed", "phone_index", "address_sealed",
                   "sex", "birth_year", "region_code")
_IDENTIFIER_COLUMNS = ("person_id", "system", "value_sealed", "blind_index")
_STAGE = "mpi_bulk_stage"
_STAGE_COLUMNS = (
    "key", "person_id", "name_sealed", "birth_date_sealed", "phone_sealed", "phone_index", "address_sealed",
    "sex", "birth_year", "region_code", "system", "value_sealed", "blind_index",
)
_CREATE_STAGE = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} (
    key integer NOT NULL, person_id varchar(32) NOT NULL, name_sealed text, birth_date_sealed text,
    phone_sealed text, phone_index varchar(64), address_sealed text, sex varchar(1) NOT NULL,
    birth_year integer, region_code varchar(6), system varchar(40) NOT NULL, value_sealed text NOT NULL,
    blind_index varchar(64) NOT NULL
) ON COMMIT DELETE ROWS
"""
_COPY = f"COPY {_STAGE} ({', '.join(_STAGE_COLUMNS)}) FROM STDIN"
_INSERT_PERSONS = f"""
INSERT INTO persons (id, status, merged_into, temporary, name_sealed, birth_date_sealed, phone_sealed,
                     phone_index, address_sealed, note_sealed, sex, birth_year, region_code, created_at, updated_at)
SELECT person_id, 'active', NULL, false, name_sealed, birth_date_sealed, phone_sealed,
       phone_index, address_sealed, NULL, sex, birth_year, region_code, :now, :now
FROM {_STAGE}
"""
# Identifiers go in key order so that, inside one batch, the first key takes a contested document.
# ON CONFLICT DO NOTHING also waits for, then yields to, a concurrent transaction holding the same
# blind index. The statement answers with the people who did not get their identifier.
_INSERT_IDENTIFIERS = f"""
WITH won AS (
    INSERT INTO person_identifiers (person_id, system, value_sealed, blind_index, created_at)
    SELECT person_id, system, value_sealed, blind_index, :now FROM {_STAGE} ORDER BY key
    ON CONFLICT (blind_index) DO NOTHING
    RETURNING person_id
)
SELECT s.key, s.person_id FROM {_STAGE} s WHERE s.person_id NOT IN (SELECT person_id FROM won)
"""


def _copy_value(value: object) -> str:
    """One field in PostgreSQL COPY text format."""
    if value is None:
        return "\\N"
    text_ = str(value)
    if "\\" in text_ or "\t" in text_ or "\n" in text_ or "\r" in text_:
        text_ = text_.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text_


@dataclass
class PersonBatch:
    """People ready to write, sealed and blind-indexed: COPY text for PostgreSQL (``persons_text``,
    ``identifiers_text``, one line a person in ``entries`` order), else ``rows``."""

    count: int
    rows: list[tuple] | None = None
    match_keys: list[tuple[str, str]] | None = None  # (person id, blind blocking key), see ``mpi.matching.keys``
    persons_text: bytes | None = None
    identifiers_text: bytes | None = None
    entries: list[tuple[int, str, str]] | None = None  # (key, person id, identifier blind index)


class PersonBatchBuilder:
    """Seals and blind-indexes people into a :class:`PersonBatch`. Pure CPU; safe in a worker process."""

    def __init__(self, vault: Vault, *, copy: bool) -> None:
        self._vault = vault
        # One batch, one sealing key: looked up once, not for each of the batch's ~5 values a person.
        self._sealer = vault.pinned()
        self._copy = copy
        self._persons: list[str] = []
        self._identifiers: list[str] = []
        self._entries: list[tuple[int, str, str]] = []
        self._rows: list[tuple] = []
        self._keys: list[tuple[str, str]] = []

    def add(self, key: int, person_id: str, details: Demographics, identifier: Identifier,
            blind_index: str | None = None) -> None:
        """Add one person holding one identifier (what ``create_person(ctx, details, [identifier])`` writes).

        ``blind_index``: the identifier's, if the caller already has it from :func:`identifier_blind_index`.
        """
        vault = self._vault
        sealer = self._sealer

        def seal(value: str | None, field: str) -> str | None:
            return sealer.seal_optional(value, seal_context(person_id, field))

        if details.note is not None:
            raise ValueError("bulk creation does not take notes (temporary people are created one by one)")
        birth = details.birth_date
        row = (
            key,
            person_id,
            seal(details.name, "name"),
            seal(birth.isoformat() if birth else None, "birth_date"),
            seal(details.phone, "phone"),
            vault.blind("phone", details.phone) if details.phone else None,
            seal(details.address, "address"),
            details.sex,
            birth.year if birth else None,
            details.region_code,
            identifier.system,
            sealer.seal(identifier.value, identifier_context(identifier.system)),
            blind_index or identifier_blind_index(vault, identifier),
        )
        if self._copy:
            self._persons.append("\t".join([_copy_value(v) for v in row[1:10]]))
            self._identifiers.append(f"{person_id}\t{_copy_value(row[10])}\t{row[11]}\t{row[12]}")
            self._entries.append((key, person_id, row[12]))
        else:
            self._rows.append(row)
        # The real-time matcher's blocking keys, in the same pass (the details are in clear only here).
        self._keys.extend(
            (person_id, key)
            for key in match_keys.blind_keys(vault, details.name, details.sex, birth, details.phone,
                                             details.region_code, details.address)
        )

    def build(self) -> PersonBatch:
        if self._copy:
            return PersonBatch(count=len(self._entries), match_keys=self._keys, entries=self._entries,
                               persons_text="".join(line + "\n" for line in self._persons).encode(),
                               identifiers_text="".join(line + "\n" for line in self._identifiers).encode())
        return PersonBatch(count=len(self._rows), rows=self._rows, match_keys=self._keys)


def create_persons(connection: Connection, batch: PersonBatch, now: datetime, *,
                   careful: bool = False) -> dict[int, str]:
    """Write a batch inside the caller's transaction.

    Returns ``{key: person_id}`` of the people *not* created because their identifier is already
    held; none of their rows is written (or they are gone again, in the same transaction). Everyone
    else now exists, with the person id the builder was given.

    On PostgreSQL the batch is written with ``COPY`` straight into the tables after one look-up of
    its blind indexes; if a registration committed one of them in between, the COPY fails with an
    ``IntegrityError`` (unique blind index) and the caller's transaction is lost: write the batch
    again in a new transaction with ``careful=True`` (staging table, ``ON CONFLICT DO NOTHING``).
    """
    if batch.count == 0:
        return {}
    if batch.entries is not None:
        if careful:
            lost = _create_staged(connection, batch, now)
        else:
            lost = _create_copied(connection, batch, now)
    else:
        lost = _create_generic(connection, batch.rows or [], now)
    _write_match_keys(connection, batch.match_keys or [], set(lost.values()))
    return lost


def _write_match_keys(connection: Connection, rows: list[tuple[str, str]], lost: set[str]) -> None:
    """The created people's blocking keys (the people not created get none)."""
    rows = [row for row in rows if row[0] not in lost] if lost else rows
    if not rows:
        return
    if dialect.can_copy(connection):
        body = "".join(f"{person_id}\t{key}\n" for person_id, key in rows).encode()
        dialect.copy_rows(connection, "mpi_match_keys", ["person_id", "key"], body)
        return
    connection.execute(insert(MatchKey.__table__), [{"person_id": p, "key": k} for p, k in rows])


def _winners(entries: list[tuple[int, str, str]], taken: set[str]) -> dict[int, str]:
    """The keys that lose their identifier (held already, or by a lower key of the batch): ``{key: person id}``."""
    lost: dict[int, str] = {}
    for key, person_id, blind in sorted(entries):
        if blind in taken:
            lost[key] = person_id
        else:
            taken.add(blind)
    return lost


def _lines_without(text_: bytes, entries: list[tuple[int, str, str]], lost: dict[int, str]) -> bytes:
    lines = text_.split(b"\n")
    return b"".join(line + b"\n" for line, entry in zip(lines, entries) if entry[0] not in lost)


def _create_copied(connection: Connection, batch: PersonBatch, now: datetime) -> dict[int, str]:
    entries = batch.entries or []
    lost = _winners(entries, held_identifiers(connection, [entry[2] for entry in entries]))
    persons, identifiers = batch.persons_text or b"", batch.identifiers_text or b""
    if lost:
        persons, identifiers = _lines_without(persons, entries, lost), _lines_without(identifiers, entries, lost)
    if not persons:
        return lost
    at = copy_value(now).encode()
    dialect.copy_rows(connection, "persons", (*_PERSON_COLUMNS, "status", "temporary", "created_at", "updated_at"),
                      persons.replace(b"\n", b"\tactive\tf\t" + at + b"\t" + at + b"\n"))
    dialect.copy_rows(connection, "person_identifiers", (*_IDENTIFIER_COLUMNS, "created_at"),
                      identifiers.replace(b"\n", b"\t" + at + b"\n"))
    return lost


def _create_staged(connection: Connection, batch: PersonBatch, now: datetime) -> dict[int, str]:
    """The careful way: stage, then let ``ON CONFLICT DO NOTHING`` decide each identifier."""
    persons = (batch.persons_text or b"").split(b"\n")
    identifiers = (batch.identifiers_text or b"").split(b"\n")
    copy_text = b"".join(
        b"%d\t%s\t%s\n" % (entry[0], person, identifier.split(b"\t", 1)[1])
        for entry, person, identifier in zip(batch.entries or [], persons, identifiers)
    )
    connection.exec_driver_sql(_CREATE_STAGE)
    connection.exec_driver_sql(f"TRUNCATE {_STAGE}")
    raw = connection.connection.driver_connection  # psycopg 3, inside the same transaction
    with raw.cursor() as cursor, cursor.copy(_COPY) as copy:
        copy.write(copy_text)
    connection.execute(text(_INSERT_PERSONS), {"now": now})
    lost = {key: person_id for key, person_id in connection.execute(text(_INSERT_IDENTIFIERS), {"now": now})}
    if lost:
        connection.execute(
            text("DELETE FROM persons WHERE id = ANY(:ids)"), {"ids": list(lost.values())}
        )
    return lost


def _create_generic(connection: Connection, rows: list[tuple], now: datetime) -> dict[int, str]:
    """Any database without COPY (SQLite): pick the winners first, then insert them with executemany.

    SQLite has one writer at a time (the engine begins transactions IMMEDIATE), so what is held
    cannot change between the check and the insert.
    """
    lost = _winners([(r[0], r[1], r[12]) for r in rows], held_identifiers(connection, [r[12] for r in rows]))
    winners = sorted((r for r in rows if r[0] not in lost), key=lambda r: r[0])
    if winners:
        connection.execute(
            insert(Person.__table__),
            [
                {
                    "id": r[1], "status": "active", "merged_into": None, "temporary": False,
                    "name_sealed": r[2], "birth_date_sealed": r[3], "phone_sealed": r[4], "phone_index": r[5],
                    "address_sealed": r[6], "note_sealed": None, "sex": r[7], "birth_year": r[8],
                    "region_code": r[9], "created_at": now, "updated_at": now,
                }
                for r in winners
            ],
        )
        connection.execute(
            insert(PersonIdentifier.__table__),
            [
                {"person_id": r[1], "system": r[10], "value_sealed": r[11], "blind_index": r[12], "created_at": now}
                for r in winners
            ],
        )
    return lost


# Binding identifiers to existing people: staged with COPY, then inserted with ON CONFLICT DO NOTHING,
# which yields to a holder committed concurrently (it waits for an uncommitted one) row by row and
# answers with the rows it did insert. No retry, whatever happens between the caller's look-up and here.
_BIND_STAGE = "mpi_bind_stage"
_CREATE_BIND_STAGE = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {_BIND_STAGE} (
    n integer NOT NULL, person_id varchar(32) NOT NULL, system varchar(40) NOT NULL, value_sealed text NOT NULL,
    blind_index varchar(64) NOT NULL
) ON COMMIT DELETE ROWS
"""
_INSERT_BOUND = f"""
INSERT INTO person_identifiers (person_id, system, value_sealed, blind_index, created_at)
SELECT person_id, system, value_sealed, blind_index, :now FROM {_BIND_STAGE} ORDER BY n
ON CONFLICT (blind_index) DO NOTHING
RETURNING blind_index
"""


def bind_identifiers(connection: Connection, vault: Vault, bindings: Iterable[tuple[str, Identifier, str]],
                     now: datetime) -> set[str]:
    """Bind identifiers to people who exist, inside the caller's transaction: ``(person id,
    identifier, its blind index)`` each (what ``persons.add_identifier`` writes one at a time).

    Returns the blind indexes that were *not* bound because someone holds them already (an earlier
    binding, a registration committed a moment ago, or an earlier binding of the same call); the
    caller decides what that means. Audit and the bound-identifier hooks are the caller's.
    """
    sealer = vault.pinned()  # one call, one sealing key
    rows, seen, lost = [], set(), set()
    for person_id, identifier, blind in bindings:
        if blind in seen:
            lost.add(blind)
            continue
        seen.add(blind)
        rows.append((person_id, identifier.system, sealer.seal(identifier.value, identifier_context(identifier.system)),
                     blind))
    if not rows:
        return lost
    if dialect.can_copy(connection):
        connection.exec_driver_sql(_CREATE_BIND_STAGE)
        connection.exec_driver_sql(f"TRUNCATE {_BIND_STAGE}")
        payload = "".join(f"{n}\t{person_id}\t{copy_value(system)}\t{sealed}\t{blind}\n"
                          for n, (person_id, system, sealed, blind) in enumerate(rows)).encode()
        dialect.copy_rows(connection, _BIND_STAGE, ("n", "person_id", "system", "value_sealed", "blind_index"), payload)
        bound = set(connection.execute(text(_INSERT_BOUND), {"now": now}).scalars())
        return lost | (seen - bound)
    # SQLite: the transaction holds the only write lock (``kit.dialect``), so what is held cannot
    # change between this look-up and the insert.
    held = held_identifiers(connection, seen)
    free = [row for row in rows if row[3] not in held]
    if free:
        connection.execute(insert(PersonIdentifier.__table__), [
            {"person_id": person_id, "system": system, "value_sealed": sealed, "blind_index": blind, "created_at": now}
            for person_id, system, sealed, blind in free])
    return lost | held


def held_identifiers(connection: Connection, blind_indexes: Iterable[str]) -> set[str]:
    """Which of these identifier blind indexes someone already holds."""
    wanted = list(dict.fromkeys(blind_indexes))
    if dialect.is_postgresql(connection):  # one statement, an index probe per value
        return set(connection.execute(text("SELECT blind_index FROM person_identifiers WHERE blind_index = ANY(:v)"),
                                      {"v": wanted}).scalars())
    held: set[str] = set()
    query = select(PersonIdentifier.blind_index).where(
        PersonIdentifier.blind_index.in_(bindparam("values", expanding=True))
    )
    for start in range(0, len(wanted), 500):
        held.update(connection.scalars(query, {"values": wanted[start:start + 500]}))
    return held


@dataclass(frozen=True)
class _VaultOnly:
    vault: Vault


def identifier_blind_index(vault: Vault, identifier: Identifier) -> str:
    """``Identifier.blind_index`` without a session: the same function, so the two can never drift."""
    return identifier.blind_index(_VaultOnly(vault))  # type: ignore[arg-type]  # it only reads ctx.vault
