"""Blocking keys of the master index: which people a submitted patient is compared with.

Scoring a submitted patient against every person of a national index is out of the question; the
matcher compares it only with the people who share at least one *blocking key* with it. A key is a
coarse combination of fields, chosen so that a true duplicate with the usual errors still shares one:

``s``  surname pinyin + birth year + {month, day} as an unordered pair (day and month swapped still agree;
       a homophone surname still agrees);
``n``  whole-name pinyin + birth year (a typo in the day or month, a changed surname character);
``c``  whole-name pinyin + city (first four digits of the region code: a wrong birth date);
``p``  mobile phone;
``d``  birth date + sex + city (any name error, when the birth date is right);
``a``  road and house number + surname pinyin, ``g`` road and house number + given-name pinyin (a
       nickname or a changed character together with a wrong birth date; the same tokens as batch
       linkage blocks on, :func:`.places.street_of`).

The document number is a key too, but it is not stored here: every identifier already has a unique
blind index in ``person_identifiers``, and the matcher looks the submitted document up there.

Keys are stored only as blind indexes (HMAC-SM3 under the index key, context ``match``): the table
``mpi_match_keys`` reveals nothing about anyone, and nobody without the key can test a guess.
They are rewritten whenever a person's details change (``persons.update_demographics``), written
with new people (``persons.create_person``, ``bulk.PersonBatchBuilder``), moved by merges, and can be
rebuilt from the sealed details (``ehc mpi rebuild-keys``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from sqlalchemy import delete, insert, update
from sqlalchemy.orm import Session

from ...db import Database
from ...kit.context import Vault
from .. import repository
from ..models import MatchKey
from ..repository import people_sharing
from ..sealed import details_for_matching
from . import names, places

__all__ = ["blind_keys", "clear_keys", "keys_of", "move", "name_year_key", "people_sharing", "rebuild", "write"]

CONTEXT = "match"


def clear_keys(name: str | None, sex: str | None, birth_date: date | None, phone: str | None,
               region_code: str | None, address: str | None = None) -> list[str]:
    """The blocking keys in clear (in memory only), without duplicates, in a fixed order."""
    city = region_code[:4] if region_code and len(region_code) >= 4 else None
    return keys_of(names.parse(name), sex, birth_date, phone, city, places.street_of(address))


def keys_of(parsed: names.Parsed, sex: str | None, birth_date: date | None, phone: str | None, city: str | None,
            street: str | None) -> list[str]:
    """:func:`clear_keys` from the parts already read: the name as :func:`.names.parse` reads it, the
    city (first four digits of the region code) and the road and house number
    (:func:`.places.street_of` of the address)."""
    keys: list[str] = []
    if parsed.text and birth_date:
        month_day = "-".join(sorted((f"{birth_date.month:02d}", f"{birth_date.day:02d}")))
        keys.append(f"s|{parsed.surname_pinyin}|{birth_date.year}|{month_day}")
        keys.append(f"n|{parsed.pinyin}|{birth_date.year}")
    if parsed.text and city:
        keys.append(f"c|{parsed.pinyin}|{city}")
    if phone:
        keys.append(f"p|{phone}")
    if birth_date and city:
        keys.append(f"d|{birth_date.isoformat()}|{sex if sex in ('1', '2') else '0'}|{city}")
    if parsed.text and street:
        keys.append(f"a|{street}|{parsed.surname_pinyin}")
        if parsed.given_pinyin:
            keys.append(f"g|{street}|{parsed.given_pinyin}")
    return list(dict.fromkeys(keys))


def name_year_key(vault: Vault, name: str | None, birth_date: date | None) -> str | None:
    """The stored ``n`` key (whole-name pinyin + birth year): how many hold it is the name's
    frequency for the term-frequency adjustment."""
    parsed = names.parse(name)
    if not parsed.text or birth_date is None:
        return None
    return vault.blind(CONTEXT, f"n|{parsed.pinyin}|{birth_date.year}").translate(_LETTERS)


# Hex digits written as letters (0-9 -> g-p): a stored key never contains a run of digits, so a scan
# of the database for leaked phone or document numbers never trips over one.
_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def blind_keys(vault: Vault, name: str | None, sex: str | None, birth_date: date | None, phone: str | None,
               region_code: str | None, address: str | None = None) -> list[str]:
    """The blocking keys as stored: blind indexes (HMAC-SM3), 64 letters each."""
    return [vault.blind(CONTEXT, key).translate(_LETTERS)
            for key in clear_keys(name, sex, birth_date, phone, region_code, address)]


def write(session: Session, vault: Vault, person_id: str, name: str | None, sex: str | None,
          birth_date: date | None, phone: str | None, region_code: str | None, address: str | None = None,
          *, replace: bool = True) -> None:
    """Replace a person's keys with those of these details (``replace=False``: a person who has none
    yet, created in this transaction)."""
    if replace:
        session.execute(delete(MatchKey).where(MatchKey.person_id == person_id))
    keys = blind_keys(vault, name, sex, birth_date, phone, region_code, address)
    if keys:
        session.execute(insert(MatchKey), [{"person_id": person_id, "key": key} for key in keys])


def move(session: Session, source_id: str, target_id: str) -> None:
    """A merge: the source's keys now lead to the target (the same person, maybe spelt otherwise)."""
    session.execute(update(MatchKey).where(MatchKey.person_id == source_id).values(person_id=target_id))


def rebuild(db: Database, vault: Vault, *, batch: int = 2000, progress: Callable[[int], None] | None = None) -> int:
    """Recompute every person's keys from their sealed details (after a change of the key rules or
    of the index key), one committed batch at a time; returns how many people were done. Merged
    people keep keys too: the matcher follows them to the survivor."""
    done, after = 0, ""
    while True:
        with db.session() as session:
            people = repository.people_after(session, after, batch)
            if not people:
                return done
            ids = [person.id for person in people]
            session.execute(delete(MatchKey).where(MatchKey.person_id.in_(ids)))
            rows = []
            for person in people:
                details = details_for_matching(vault, person)
                rows.extend({"person_id": person.id, "key": key} for key in blind_keys(
                    vault, details.name, person.sex, details.birth_date, details.phone, person.region_code,
                    details.address))
            if rows:
                session.execute(insert(MatchKey), rows)
            done += len(people)
            after = ids[-1]
        if progress:
            progress(done)
