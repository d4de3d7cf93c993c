"""Master index rules: find or create the one person behind an identifier; merge people.

Other domains call these functions; they never query ``persons`` or ``person_identifiers`` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..audit import service as audit
from ..kit import ids
from ..kit.context import Ctx
from ..kit.errors import Conflict, NotFound
from .models import Person, PersonIdentifier

MergeHook = Callable[[Ctx, Person, Person, str], None]
_merge_hooks: list[MergeHook] = []


def on_merge(hook: MergeHook) -> MergeHook:
    """Register a domain's reaction to a merge (move its links from the source to the target).

    Each domain that links data to a person registers one, so a merge moves everything without the
    master index knowing every domain's tables.
    """
    _merge_hooks.append(hook)
    return hook


@dataclass(frozen=True)
class Demographics:
    """A person's details in clear, in memory only; sealed before they touch the database."""

    name: str | None
    sex: str
    birth_date: date | None = None
    phone: str | None = None
    address: str | None = None
    region_code: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Identifier:
    system: str  # "doc:01", "newborn", later "mrn:<institution>", "ssc", ...
    value: str  # normalised

    def blind_index(self, ctx: Ctx) -> str:
        return ctx.vault.blind("identifier", f"{self.system}:{self.value}")


class IdentifierTaken(Exception):
    """Another person already holds one of the identifiers (a concurrent registration won)."""

    def __init__(self, person_id: str) -> None:
        super().__init__(person_id)
        self.person_id = person_id


def resolve(ctx: Ctx, person_id: str) -> Person:
    """The surviving person for an id, following merges."""
    person = ctx.session.get(Person, person_id)
    if person is None:
        raise NotFound("No such person in the master index.", code="person_not_found")
    seen = {person.id}
    while person.merged_into:
        person = ctx.session.get(Person, person.merged_into)
        if person is None or person.id in seen:
            raise Conflict("The master index has a broken merge chain.", code="merge_chain_broken")
        seen.add(person.id)
    return person


def ids_of(ctx: Ctx, person: Person) -> list[str]:
    """The person's id and the ids of everyone merged into them, directly or through others: every
    id under which something about this person may have been recorded."""
    found, frontier = [person.id], [person.id]
    while frontier:
        frontier = [pid for pid in ctx.session.scalars(select(Person.id).where(Person.merged_into.in_(frontier)))
                    if pid not in found]
        found.extend(frontier)
    return found


def find_by_identifier(ctx: Ctx, identifier: Identifier) -> Person | None:
    person_id = ctx.session.scalar(
        select(PersonIdentifier.person_id).where(PersonIdentifier.blind_index == identifier.blind_index(ctx))
    )
    return None if person_id is None else resolve(ctx, person_id)


def find_by_phone(ctx: Ctx, phone: str) -> list[Person]:
    """Active, identified people registered with this (normalised) mobile number, oldest first.
    Families share phones, so there may be several."""
    return list(ctx.session.scalars(
        select(Person)
        .where(Person.phone_index == ctx.vault.blind("phone", phone), Person.status == "active",
               Person.temporary.is_(False))
        .order_by(Person.created_at, Person.id)
    ))


def create_person(
    ctx: Ctx, details: Demographics, identifiers: list[Identifier], *, temporary: bool = False
) -> Person:
    """Insert a person and their identifiers atomically (a savepoint).

    Raises ``IdentifierTaken`` when an identifier already belongs to someone, including when a
    concurrent transaction committed it a moment ago: the unique blind index is the arbiter.
    """
    person = Person(id=ids.new_person_id(), temporary=temporary)
    _write_demographics(ctx, person, details)
    savepoint = ctx.session.begin_nested()
    try:
        ctx.session.add(person)
        ctx.session.flush()
        for identifier in identifiers:
            ctx.session.add(_identifier_row(ctx, person.id, identifier))
        ctx.session.flush()
    except IntegrityError:
        savepoint.rollback()
        for identifier in identifiers:
            holder = find_by_identifier(ctx, identifier)
            if holder is not None:
                raise IdentifierTaken(holder.id) from None
        raise
    savepoint.commit()
    return person


def add_identifier(ctx: Ctx, person: Person, identifier: Identifier) -> None:
    holder = find_by_identifier(ctx, identifier)
    if holder is not None:
        if holder.id == person.id:
            return
        raise Conflict("This identifier already belongs to another person.", code="identifier_taken")
    ctx.session.add(_identifier_row(ctx, person.id, identifier))
    ctx.session.flush()


def identifiers_of(ctx: Ctx, person: Person, *, purpose: str) -> list[Identifier]:
    """A person's identifiers in clear. Opening them is an access to personal data: it is recorded in
    the audit trail under ``purpose`` (e.g. ``card.view``), unless the resident reads their own."""
    audit.record_access(ctx, person.id, "read", purpose)
    rows = ctx.session.scalars(
        select(PersonIdentifier).where(PersonIdentifier.person_id == person.id).order_by(PersonIdentifier.id)
    )
    return [Identifier(row.system, ctx.vault.open(row.value_sealed, _context(row.system))) for row in rows]


def demographics(ctx: Ctx, person: Person, *, purpose: str) -> Demographics:
    """A person's details in clear. Like ``identifiers_of``, recorded in the audit trail under
    ``purpose``; one unit of work opening both leaves one event per person and purpose."""
    audit.record_access(ctx, person.id, "read", purpose)

    def open_(field: str) -> str | None:
        return ctx.vault.open_optional(getattr(person, f"{field}_sealed"), seal_context(person.id, field))

    birth = open_("birth_date")
    return Demographics(
        name=open_("name"),
        sex=person.sex,
        birth_date=date.fromisoformat(birth) if birth else None,
        phone=open_("phone"),
        address=open_("address"),
        region_code=person.region_code,
        note=open_("note"),
    )


def update_demographics(ctx: Ctx, person: Person, details: Demographics) -> None:
    _write_demographics(ctx, person, details)
    ctx.session.flush()


def merge(ctx: Ctx, source: Person, target: Person, reason: str) -> Person:
    """Merge ``source`` into ``target``: identifiers move, every domain's hook moves its links, and
    the source stays as a tombstone pointing at the target, so old references still resolve."""
    if source.id == target.id:
        raise Conflict("A person cannot be merged into themself.", code="merge_same_person")
    if source.status == "merged" or target.status == "merged":
        raise Conflict("Only active people can be merged.", code="merge_inactive_person")
    for row in ctx.session.scalars(select(PersonIdentifier).where(PersonIdentifier.person_id == source.id)):
        row.person_id = target.id
    for hook in _merge_hooks:
        hook(ctx, source, target, reason)
    source.status = "merged"
    source.merged_into = target.id
    ctx.session.flush()
    return target


def seal_context(person_id: str, field: str) -> str:
    """Sealed person fields are bound to their row: a value copied onto another person won't open."""
    return f"person.{field}:{person_id}"


def _context(system: str) -> str:
    return f"identifier.{system}"


def _identifier_row(ctx: Ctx, person_id: str, identifier: Identifier) -> PersonIdentifier:
    return PersonIdentifier(
        person_id=person_id,
        system=identifier.system,
        value_sealed=ctx.vault.seal(identifier.value, _context(identifier.system)),
        blind_index=identifier.blind_index(ctx),
    )


def _write_demographics(ctx: Ctx, person: Person, details: Demographics) -> None:
    def seal(value: str | None, field: str) -> str | None:
        return ctx.vault.seal_optional(value, seal_context(person.id, field))

    person.name_sealed = seal(details.name, "name")
    person.birth_date_sealed = seal(details.birth_date.isoformat() if details.birth_date else None, "birth_date")
    person.phone_sealed = seal(details.phone, "phone")
    person.phone_index = ctx.vault.blind("phone", details.phone) if details.phone else None
    person.address_sealed = seal(details.address, "address")
    person.note_sealed = seal(details.note, "note")
    person.sex = details.sex
    person.birth_year = details.birth_date.year if details.birth_date else None
    person.region_code = details.region_code
