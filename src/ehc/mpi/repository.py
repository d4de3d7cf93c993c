"""The master index's queries: people, their identifiers, review rows and link jobs. No rules, no
unsealing (that is :mod:`.sealed`), no audit."""

from __future__ import annotations

import functools
from collections.abc import Iterable

from sqlalchemy import ARRAY, String, bindparam, case, delete, func, insert, or_, select, text
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.orm import Session, make_transient_to_detached

from ..kit import dialect
from ..kit.context import Ctx
from ..kit.errors import Conflict, NotFound
from .models import LinkJob, MatchKey, MatchReview, MergeMove, Person, PersonIdentifier
from .values import Identifier


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


@functools.cache  # built once: a statement is cheap to run and costly to build
def _insert_person_statement():  # noqa: ANN202
    return insert(Person.__table__)


def insert_person(session: Session, person: Person) -> None:
    """Insert a new person whose every column is set, in one statement without the unit of work's
    flush (a registration's hot path); :func:`attach` then makes it the session's, as if loaded."""
    session.execute(_insert_person_statement(), {c.name: getattr(person, c.key) for c in Person.__table__.columns})


@functools.cache  # built once
def _person_claiming_statement():  # noqa: ANN202
    persons, identifiers, match_keys = Person.__table__, PersonIdentifier.__table__, MatchKey.__table__
    person = (pg_insert(persons).values({c.name: bindparam(c.name, type_=c.type) for c in persons.columns})
              .returning(persons.c.id).cte("person"))
    columns = ("system", "value_sealed", "blind_index", "created_at")
    claimed = (pg_insert(identifiers).from_select(
        ["person_id", *columns],
        select(person.c.id, *(bindparam(f"identifier_{name}", type_=identifiers.c[name].type) for name in columns)))
        .on_conflict_do_nothing(index_elements=[identifiers.c.blind_index])
        .returning(identifiers.c.id).cte("claimed"))
    keyed = (insert(match_keys).from_select(
        ["person_id", "key"],
        select(person.c.id, func.unnest(bindparam("keys", type_=ARRAY(String(64)))))
        .where(select(claimed.c.id).exists()))
        .returning(match_keys.c.id).cte("keyed"))
    return select(select(claimed.c.id).scalar_subquery(), select(func.count()).select_from(keyed).scalar_subquery())


def insert_person_claiming(session: Session, person: Person, identifier: dict, keys: list[str]) -> bool:
    """PostgreSQL: :func:`insert_person`, its one identifier (``identifier``: ``system``,
    ``value_sealed``, ``blind_index``, ``created_at``) unless its unique blind index is held already
    (``ON CONFLICT DO NOTHING``, which waits for a concurrent insert of it to commit or roll back), and,
    only with the identifier, its match keys: one statement. Whether the identifier went in; if not,
    the person alone was written (the caller takes it back, :func:`delete_person`)."""
    params = {c.name: getattr(person, c.key) for c in Person.__table__.columns}
    params.update({f"identifier_{name}": value for name, value in identifier.items()}, keys=keys)
    return session.connection().execute(_person_claiming_statement(), params).first()[0] is not None


def attach(session: Session, person: Person) -> Person:
    """A person written by :func:`insert_person` (or read elsewhere) into the session, as loaded."""
    make_transient_to_detached(person)
    session.add(person)
    return person


def delete_person(session: Session, person_id: str) -> None:
    """Take back a person :func:`insert_person` wrote in this transaction, with their identifiers
    (nothing else points at them yet)."""
    session.execute(delete(PersonIdentifier).where(PersonIdentifier.person_id == person_id))
    session.execute(delete(Person).where(Person.id == person_id))


def find_by_identifier(ctx: Ctx, identifier: Identifier) -> Person | None:
    # The holder's row with the identifier's, in one round trip; merges are then followed as ``resolve``
    # does (the row just read is found in the session, not read again).
    person = ctx.session.scalar(
        select(Person).join(PersonIdentifier, PersonIdentifier.person_id == Person.id)
        .where(PersonIdentifier.blind_index == identifier.blind_index(ctx))
    )
    return None if person is None else resolve(ctx, person.id)


def merged_into_of(session: Session, person_ids: list[str]) -> dict[str, str | None]:
    """person id -> the id they were merged into (None for an active person), for those that exist."""
    found: dict[str, str | None] = {}
    for among in dialect.each_in(session, Person.id, person_ids):
        found.update(session.execute(select(Person.id, Person.merged_into).where(among)).all())
    return found


def merged_into(session: Session, person_ids: list[str]) -> list[str]:
    """Ids of the people merged directly into any of these."""
    return list(session.scalars(select(Person.id).where(Person.merged_into.in_(person_ids))))


def active_people_by_phone_index(session: Session, phone_index: str) -> list[Person]:
    """Active, identified people with this phone blind index, oldest first."""
    return list(session.scalars(
        select(Person)
        .where(Person.phone_index == phone_index, Person.status == "active", Person.temporary.is_(False))
        .order_by(Person.created_at, Person.id)
    ))


def identifier_row_by_blind_index(session: Session, blind_index: str) -> PersonIdentifier | None:
    return session.scalar(select(PersonIdentifier).where(PersonIdentifier.blind_index == blind_index))


def merge_moves(session: Session, merge_id: int) -> list[MergeMove]:
    return list(session.scalars(select(MergeMove).where(MergeMove.merge_id == merge_id).order_by(MergeMove.id)))


def identifier_rows(session: Session, person_id: str) -> list[PersonIdentifier]:
    return list(session.scalars(
        select(PersonIdentifier).where(PersonIdentifier.person_id == person_id).order_by(PersonIdentifier.id)))


def sealed_identifiers_column(person_id: ColumnElement) -> ColumnElement:
    """A column of the identifiers of ``person_id`` as sealed ``[system, value_sealed]`` pairs in id
    order (a JSON array, PostgreSQL), for a caller that reads them in the same round trip as the
    card they belong to. Nothing is opened here (:func:`.sealed.open_holder` does, audited)."""
    pair = func.json_build_array(PersonIdentifier.system, PersonIdentifier.value_sealed)
    return (select(func.coalesce(func.json_agg(aggregate_order_by(pair, PersonIdentifier.id)), text("'[]'::json")))
            .where(PersonIdentifier.person_id == person_id).scalar_subquery())


def identifier_holder_column(blind_index: ColumnElement) -> ColumnElement:
    """The id of the person who holds the identifier with ``blind_index`` (as stored: merges are not
    followed), as a scalar subquery, for a caller that reads what belongs to that person in the same
    round trip (the card look-up at the window). The blind index is unique: one person or none."""
    return select(PersonIdentifier.person_id).where(PersonIdentifier.blind_index == blind_index).scalar_subquery()


def sealed_documents(session: Session, person_ids: list[str], systems: Iterable[str]) -> list[tuple[str, str, str]]:
    """(person id, system, sealed value) of these people's identifiers of these systems."""
    return [(person_id, system, sealed) for person_id, system, sealed in session.execute(
        select(PersonIdentifier.person_id, PersonIdentifier.system, PersonIdentifier.value_sealed)
        .where(PersonIdentifier.person_id.in_(person_ids), PersonIdentifier.system.in_(list(systems))))]


def people(session: Session, person_ids: list[str]) -> list[Person]:
    return list(session.scalars(select(Person).where(Person.id.in_(person_ids))))


def people_after(session: Session, after: str, limit: int) -> list[Person]:
    """Every person (merged ones too) with an id above ``after``, in id order: a page of a full pass."""
    return list(session.scalars(select(Person).where(Person.id > after).order_by(Person.id).limit(limit)))


def people_sharing(session: Session, keys: Iterable[str], *, limit: int) -> list[str]:
    """Ids of the people holding any of these matching keys, most keys shared first, at most ``limit``."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return []
    shared = func.count().label("shared")
    rows = session.execute(
        select(MatchKey.person_id, shared).where(MatchKey.key.in_(wanted))
        .group_by(MatchKey.person_id).order_by(shared.desc(), MatchKey.person_id).limit(limit)
    )
    return [person_id for person_id, _ in rows]


@functools.cache  # built once: a statement is cheap to run and costly to build
def _candidates_sharing_statement():  # noqa: ANN202
    persons, match_keys, identifiers = Person.__table__, MatchKey.__table__, PersonIdentifier.__table__
    shared = func.count().label("shared")
    top = (select(match_keys.c.person_id, shared)
           .where(match_keys.c.key.in_(bindparam("keys", expanding=True)),
                  match_keys.c.person_id != bindparam("exclude"))
           .group_by(match_keys.c.person_id).order_by(shared.desc(), match_keys.c.person_id)
           .limit(bindparam("limit")).subquery())
    document = (select(identifiers.c.value_sealed)
                .where(identifiers.c.person_id == persons.c.id, identifiers.c.system == bindparam("system"))
                .order_by(identifiers.c.id.desc()).limit(1).scalar_subquery())
    holding = (select(func.count()).select_from(match_keys).where(match_keys.c.key == bindparam("name_key"))
               .scalar_subquery())
    return (select(persons, document.label("document_sealed"), holding.label("holding"))
            .join(top, top.c.person_id == persons.c.id)
            .order_by(top.c.shared.desc(), persons.c.id))


def candidates_sharing(session: Session, keys: Iterable[str], *, limit: int, name_key: str | None,
                       system: str | None, exclude: str | None = None) -> tuple[list[tuple[Person, str | None]], int | None]:
    """:func:`people_sharing` with what the matcher then reads of them, in one round trip: each
    person's row and their sealed identifier of ``system`` (None: none, or no ``system`` asked), most
    keys shared first, and how many people hold ``name_key`` (:func:`count_holding`; 1 without one;
    None when nobody shares a key: the caller counts if it still needs to). ``exclude``: a person left
    out (a registration's own, whose keys were written a moment ago). Nothing is opened here. The
    people are rows of their table (every column, read-only), not ORM objects: the matcher only
    reads them."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return [], None
    if session.autoflush:  # as the ORM's own query did: what the session holds is written first
        session.flush()
    rows = session.connection().execute(_candidates_sharing_statement(), {
        "keys": wanted, "limit": limit, "system": system or "", "name_key": name_key or "",
        "exclude": exclude or ""}).all()
    if not rows:
        return [], None
    return [(row, row.document_sealed) for row in rows], max(rows[0].holding or 0, 1) if name_key else 1


def count_holding(session: Session, key: str) -> int:
    """How many people hold this matching key (at least 1: a count of none reads as one)."""
    return max(session.scalar(select(func.count()).select_from(MatchKey).where(MatchKey.key == key)) or 0, 1)


def open_reviews_sealed(session: Session, *, source: str, institution_id: str | None,
                        right_person_id: str | None = None) -> list[MatchReview]:
    """Open review rows of this source and institution that carry a sealed record."""
    query = select(MatchReview).where(
        MatchReview.source == source, MatchReview.status == "open", MatchReview.institution_id == institution_id,
        MatchReview.record_sealed.is_not(None))
    if right_person_id is not None:
        query = query.where(MatchReview.right_person_id == right_person_id)
    return list(session.scalars(query))


# -- batch linkage -------------------------------------------------------------------------------------

def document_blind_indexes(session: Session) -> dict[str, str]:
    """person id -> blind index of their document (a resident ID card wins over other kinds)."""
    documents: dict[str, str] = {}
    for person_id, _system, blind_index in session.execute(
        select(PersonIdentifier.person_id, PersonIdentifier.system, PersonIdentifier.blind_index)
        .where(PersonIdentifier.system.like("doc:%")).order_by(PersonIdentifier.system.desc())
    ):
        documents[person_id] = blind_index  # doc:01 comes last, so it wins
    return documents


def active_people_sealed(session: Session) -> list[tuple]:
    """(id, name, birth date, phone, address sealed; sex, region code) of the active, identified people."""
    return [tuple(row) for row in session.execute(
        select(Person.id, Person.name_sealed, Person.birth_date_sealed, Person.phone_sealed,
               Person.address_sealed, Person.sex, Person.region_code)
        .where(Person.status == "active", Person.temporary.is_(False)).order_by(Person.id)
    )]


def holders_of(session: Session, blind_indexes: list[str]) -> dict[str, str]:
    """blind index -> person id, for those of these identifiers someone holds."""
    found: dict[str, str] = {}
    for among in dialect.each_in(session, PersonIdentifier.blind_index, blind_indexes):
        found.update(session.execute(select(PersonIdentifier.blind_index, PersonIdentifier.person_id).where(among)).all())
    return found


def add_link_job(session: Session, job: LinkJob) -> None:
    session.add(job)


def link_job(session: Session, job_id: str) -> LinkJob | None:
    return session.get(LinkJob, job_id)


def population_by_region(session: Session, region_prefixes: Iterable[str], *, born_by: int,
                         born_from: int) -> dict[str, tuple[int, int, int]]:
    """Active, non-temporary people in the regions starting with ``region_prefixes``, by their region
    code: (all, born in or before ``born_by``, born in or after ``born_from``), from the coarse clear
    fields. A six-digit prefix is matched exactly (the index serves it), a shorter one as a prefix."""
    prefixes = sorted(set(region_prefixes))
    exact = [p for p in prefixes if len(p) >= 6]
    partial = [p for p in prefixes if len(p) < 6]
    if not prefixes:
        return {}
    reach = ([Person.region_code.in_(exact)] if exact else []) + [Person.region_code.like(f"{p}%") for p in partial]
    rows = session.execute(select(
        Person.region_code, func.count(),
        func.coalesce(func.sum(case((Person.birth_year <= born_by, 1), else_=0)), 0),
        func.coalesce(func.sum(case((Person.birth_year >= born_from, 1), else_=0)), 0),
    ).where(or_(*reach), Person.status == "active", Person.temporary.is_(False)).group_by(Person.region_code))
    return {code: (int(n), int(old), int(young)) for code, n, old, young in rows}


def people_in_regions(session: Session, region_codes: Iterable[str], *, excluding: Iterable[str] = (),
                      after: str = "", limit: int = 50) -> list[Person]:
    """Active, non-temporary people whose region is one of ``region_codes``, by id after ``after``,
    leaving out ``excluding`` (person ids)."""
    codes = sorted(set(region_codes))
    if not codes:
        return []
    query = select(Person).where(Person.region_code.in_(codes), Person.status == "active",
                                 Person.temporary.is_(False), Person.id > after)
    skip = list(excluding)
    if skip:
        query = query.where(Person.id.not_in(skip))
    return list(session.scalars(query.order_by(Person.id).limit(limit)))
def statistics_profiles(session: Session, person_ids: Iterable[str]) -> dict[str, tuple[str, int | None, str | None,
                                                                                       str | None]]:
    """(sex, birth year, region code, document type) of each person, the coarse fields in clear."""
    ids = sorted(set(person_ids))
    profiles: dict[str, tuple[str, int | None, str | None, str | None]] = {}
    documents: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for person_id, system in session.execute(
                select(PersonIdentifier.person_id, PersonIdentifier.system)
                .where(PersonIdentifier.person_id.in_(chunk), PersonIdentifier.system.startswith("doc:"))
                .order_by(PersonIdentifier.id)):
            documents.setdefault(person_id, system[4:6])
        for person_id, sex, birth_year, region in session.execute(
                select(Person.id, Person.sex, Person.birth_year, Person.region_code).where(Person.id.in_(chunk))):
            profiles[person_id] = (sex, birth_year, region, documents.get(person_id))
    return profiles
