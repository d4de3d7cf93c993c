"""The one place the master index seals and opens personal data.

Every opening of a sealed person field, identifier or review record in ``mpi`` goes through a
function of this module, and says whether it is an access to report:

- :func:`demographics` and :func:`identifiers_of` are the reads of the API, the pages and the other
  domains (through ``mpi.service``): each records an audit event under ``purpose`` for anyone but
  the resident reading their own.
- :func:`details_for_matching` and :func:`documents_for_matching` are the matcher's comparison step:
  the matcher records an event for every candidate it returns (``matching.match``), not for the
  people it compared and left out.
- :func:`review_record` opens the hospital record a review pair carries (the hospital's own data,
  submitted by it; the reviewer's view of the index side is audited through :func:`demographics`).
- :func:`open_people` is the batch form for batch linkage and key rebuilds: it opens rows in memory
  (in worker processes for large jobs); the linkage job records a change event for every person it
  links, as ``mpi.linkage.apply`` does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date

from ..audit import service as audit
from ..crypto import Opener, PinnedSealer
from ..kit.context import Ctx, Vault
from . import repository
from ..kit.resealing import SealedColumn
from .models import MatchReview, Person, PersonIdentifier
from .values import Demographics, Identifier

PERSON_FIELDS = ("name", "birth_date", "phone", "address", "note")


def seal_context(person_id: str, field: str) -> str:
    """Sealed person fields are bound to their row: a value copied onto another person won't open."""
    return f"person.{field}:{person_id}"


def identifier_context(system: str) -> str:
    return f"identifier.{system}"


def review_context(review_id: int) -> str:
    return f"mpi_reviews:{review_id}:record"


def sealed_columns() -> list[SealedColumn]:
    """The master index's sealed columns with the context of each value, for re-sealing."""
    person = Person.__table__.c
    return [
        *(SealedColumn(person[f"{field}_sealed"], lambda row, field=field: seal_context(row.id, field))
          for field in PERSON_FIELDS),
        SealedColumn(PersonIdentifier.__table__.c.value_sealed, lambda row: identifier_context(row.system)),
        SealedColumn(MatchReview.__table__.c.record_sealed, lambda row: review_context(row.id)),
    ]


# -- sealing ------------------------------------------------------------------------------------------

def seal_demographics(ctx: Ctx, person: Person, details: Demographics, sealer: PinnedSealer | None = None) -> None:
    # One sealing key for the person's fields (``Vault.pinned``): the key store is consulted once,
    # not for every field; a caller sealing more for the same person passes its own ``sealer``.
    sealer = sealer or ctx.vault.pinned()

    def seal(value: str | None, field: str) -> str | None:
        return sealer.seal_optional(value, seal_context(person.id, field))

    person.name_sealed = seal(details.name, "name")
    person.birth_date_sealed = seal(details.birth_date.isoformat() if details.birth_date else None, "birth_date")
    person.phone_sealed = seal(details.phone, "phone")
    person.phone_index = ctx.vault.blind("phone", details.phone) if details.phone else None
    person.address_sealed = seal(details.address, "address")
    person.note_sealed = seal(details.note, "note")
    person.sex = details.sex
    person.birth_year = details.birth_date.year if details.birth_date else None
    person.region_code = details.region_code


def identifier_row(ctx: Ctx, person_id: str, identifier: Identifier,
                   sealer: PinnedSealer | None = None) -> PersonIdentifier:
    return PersonIdentifier(
        person_id=person_id,
        system=identifier.system,
        value_sealed=(sealer or ctx.vault).seal(identifier.value, identifier_context(identifier.system)),
        blind_index=identifier.blind_index(ctx),
    )


# -- opening ------------------------------------------------------------------------------------------

def _details(vault: Vault, person: Person, opener: Opener | None = None) -> Demographics:
    # One opener for the person's fields (``Vault.opener``): the key store is consulted once for
    # their sealing key (a stat of its manifest, the withdrawal check), not for every field.
    open_sealed = (opener or vault.opener()).open

    def open_(field: str) -> str | None:
        sealed = getattr(person, f"{field}_sealed")
        return None if sealed is None else open_sealed(sealed, seal_context(person.id, field))

    birth = open_("birth_date")
    return Demographics(name=open_("name"), sex=person.sex, birth_date=date.fromisoformat(birth) if birth else None,
                        phone=open_("phone"), address=open_("address"), region_code=person.region_code,
                        note=open_("note"))


def demographics(ctx: Ctx, person: Person, *, purpose: str) -> Demographics:
    """A person's details in clear. Like ``identifiers_of``, recorded in the audit trail under
    ``purpose``; one unit of work opening both leaves one event per person and purpose."""
    audit.record_access(ctx, person.id, "read", purpose)
    return _details(ctx.vault, person)


def identifiers_of(ctx: Ctx, person: Person, *, purpose: str) -> list[Identifier]:
    """A person's identifiers in clear. Opening them is an access to personal data: it is recorded in
    the audit trail under ``purpose`` (e.g. ``card.view``), unless the resident reads their own."""
    audit.record_access(ctx, person.id, "read", purpose)
    return _opened_identifiers(ctx.vault, ((row.system, row.value_sealed)
                                           for row in repository.identifier_rows(ctx.session, person.id)))


def open_holder(ctx: Ctx, person: Person, sealed_identifiers: Iterable[tuple[str, str]], *,
                recorded_as: int) -> tuple[Demographics, list[Identifier]]:
    """A person's details and identifiers (sealed ``(system, value)`` pairs, as
    :func:`.repository.sealed_identifiers_column` gives them) in clear, for a caller that has recorded
    the read in the audit trail itself, in the same statement that made the rest of its work (the
    online QR check: ``audit.service.access_insert``). ``recorded_as``: that event's id, required so
    that nothing opens through here without one. ``person``: the person's row, or any row with its
    ``id``, sealed fields, ``sex`` and ``region_code`` (the card look-up's one row)."""
    if not recorded_as:
        raise ValueError("open_holder needs the id of the audit event that records this read")
    return _opened_holder(ctx.vault, person, sealed_identifiers)


def open_read(ctx: Ctx, person: Person, sealed_identifiers: Iterable[tuple[str, str]], *,
              purpose: str) -> tuple[Demographics, list[Identifier]]:
    """:func:`demographics` and :func:`identifiers_of` together, for identifiers the caller read
    already, still sealed (as :func:`.repository.sealed_identifiers_column` gives them, in the round
    trip that read the person): the same one audit event under ``purpose``, nothing read again."""
    audit.record_access(ctx, person.id, "read", purpose)
    return _opened_holder(ctx.vault, person, sealed_identifiers)


def _opened_holder(vault: Vault, person: Person,
                   sealed_identifiers: Iterable[tuple[str, str]]) -> tuple[Demographics, list[Identifier]]:
    opener = vault.opener()  # one look-up in the key store for the person's fields and identifiers
    return _details(vault, person, opener), _opened_identifiers(vault, sealed_identifiers, opener)


def _opened_identifiers(vault: Vault, sealed_identifiers: Iterable[tuple[str, str]],
                        opener: Opener | None = None) -> list[Identifier]:
    open_sealed = (opener or vault.opener()).open
    return [Identifier(system, open_sealed(value, identifier_context(system))) for system, value in sealed_identifiers]


def details_for_matching(vault: Vault, person: Person) -> Demographics:
    """A person's details in clear for comparison (the matcher, a key rebuild). Not yet an access to
    report: the matcher records one for each candidate it returns."""
    return _details(vault, person)


def sealed_documents_for_matching(vault: Vault, system: str,
                                  sealed: Iterable[tuple[str, str | None]]) -> dict[str, dict[str, str]]:
    """:func:`documents_for_matching` for documents of one kind the caller read already, sealed
    (``(person id, sealed value or None)`` pairs): the same opening, not yet an access to report."""
    context = identifier_context(system)
    open_sealed = vault.opener().open  # the key store consulted once for the lot, not for every value
    return {person_id: {system: open_sealed(value, context)} for person_id, value in sealed if value is not None}


def documents_for_matching(ctx: Ctx, person_ids: list[str], systems: set[str]) -> dict[str, dict[str, str]]:
    """The candidates' documents of these kinds in clear (only those are compared), per person."""
    found: dict[str, dict[str, str]] = {}
    if not systems or not person_ids:
        return found
    for person_id, system, sealed in repository.sealed_documents(ctx.session, person_ids, systems):
        found.setdefault(person_id, {})[system] = ctx.vault.open(sealed, identifier_context(system))
    return found


def review_record(vault: Vault, review_id: int, sealed: str) -> dict:
    """The record a review pair carries (the submitting hospital's data), in clear."""
    return json.loads(vault.open(sealed, review_context(review_id)))


def open_people(vault: Vault, rows: Iterable[tuple]) -> list[tuple]:
    """The batch form: ``(person_id, name, birth_date, phone, address)`` sealed per row (as
    :func:`repository.active_people_sealed` gives them, extra columns kept after) in clear, in
    memory. Runs in a linkage worker process or inline."""
    open_ = vault.opener().open  # the key store consulted once per key for the whole run, not per value
    out = []
    for person_id, name_s, birth_s, phone_s, address_s, *rest in rows:
        out.append((person_id,
                    open_(name_s, seal_context(person_id, "name")) if name_s else None,
                    open_(birth_s, seal_context(person_id, "birth_date")) if birth_s else None,
                    open_(phone_s, seal_context(person_id, "phone")) if phone_s else None,
                    open_(address_s, seal_context(person_id, "address")) if address_s else None, *rest))
    return out
