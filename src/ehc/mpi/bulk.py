"""Bulk creation of people in the master index, for registry migrations (``ehc cards import``).

The rules are those of :func:`ehc.mpi.persons.create_person`, applied to thousands of people at a
time: every personal field is sealed and bound to the person's id (:func:`service.seal_context`),
each identifier is sealed under ``identifier.<system>`` and blind-indexed, and the unique blind
index decides who holds a document, also against registrations committed concurrently through the
API. This module is the only bulk writer of ``persons`` and ``person_identifiers``; other domains
hand it people and learn which of them were really created.

It has two halves, so the expensive part can run in worker processes:

* :class:`PersonBatchBuilder` is pure CPU (sealing, blind index) and needs only a vault. It encodes
  a batch as PostgreSQL ``COPY`` text (``copy=True``) or as row tuples (other databases).
* :func:`create_persons` writes a batch inside the caller's transaction and returns the keys of the
  people that were *not* created because their identifier is already held (by a person from an
  earlier batch, the API, or an earlier key of the same batch). Nothing is left behind for those.

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
from .matching import keys as match_keys
from .models import MatchKey, Person, PersonIdentifier
from .sealed import identifier_context, seal_context
from .values import Demographics, Identifier

# Staging columns, in COPY order. ``key`` orders the batch; the rest are the persons and
# person_identifiers columns the service would write.
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
    """People ready to write, sealed and blind-indexed: ``copy_text`` for PostgreSQL, else ``rows``."""

    count: int
    copy_text: bytes | None = None
    rows: list[tuple] | None = None
    match_keys: list[tuple[str, str]] | None = None  # (person id, blind blocking key), see ``mpi.matching.keys``


class PersonBatchBuilder:
    """Seals and blind-indexes people into a :class:`PersonBatch`. Pure CPU; safe in a worker process."""

    def __init__(self, vault: Vault, *, copy: bool) -> None:
        self._vault = vault
        # One batch, one sealing key: looked up once, not for each of the batch's ~5 values a person.
        self._sealer = vault.pinned()
        self._copy = copy
        self._lines: list[str] = []
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
            self._lines.append("\t".join([_copy_value(v) for v in row]))
        else:
            self._rows.append(row)
        # The real-time matcher's blocking keys, in the same pass (the details are in clear only here).
        self._keys.extend(
            (person_id, key)
            for key in match_keys.blind_keys(vault, details.name, details.sex, birth, details.phone,
                                             details.region_code)
        )

    def build(self) -> PersonBatch:
        if self._copy:
            body = "\n".join(self._lines)
            return PersonBatch(count=len(self._lines), copy_text=(body + "\n").encode() if body else b"",
                               match_keys=self._keys)
        return PersonBatch(count=len(self._rows), rows=self._rows, match_keys=self._keys)


def create_persons(connection: Connection, batch: PersonBatch, now: datetime) -> dict[int, str]:
    """Write a batch inside the caller's transaction.

    Returns ``{key: person_id}`` of the people *not* created because their identifier is already
    held; their rows are gone again (in the same transaction). Everyone else now exists, with the
    person id the builder was given.
    """
    if batch.count == 0:
        return {}
    if batch.copy_text is not None:
        lost = _create_postgresql(connection, batch.copy_text, now)
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


def _create_postgresql(connection: Connection, copy_text: bytes, now: datetime) -> dict[int, str]:
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
    rows = sorted(rows, key=lambda r: r[0])
    taken = held_identifiers(connection, [r[12] for r in rows])
    lost: dict[int, str] = {}
    winners = []
    for row in rows:
        if row[12] in taken:
            lost[row[0]] = row[1]
        else:
            taken.add(row[12])
            winners.append(row)
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


def held_identifiers(connection: Connection, blind_indexes: Iterable[str]) -> set[str]:
    """Which of these identifier blind indexes someone already holds."""
    wanted = list(dict.fromkeys(blind_indexes))
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
