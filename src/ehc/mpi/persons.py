"""Master index rules: find or create the one person behind an identifier; merge and unmerge people.

Other domains call these functions through ``mpi.service``; they never query ``persons`` or
``person_identifiers`` directly (the queries are in ``mpi.repository``, the sealing in ``mpi.sealed``).

Merging, and the contract for other domains
-------------------------------------------
``merge(ctx, source, target, reason)`` folds ``source`` into ``target``: it writes a ``Merge`` row,
moves the source's identifier rows to the target, calls every registered merge hook, and leaves the
source as a tombstone (``status="merged"``, ``merged_into=target``) so old references still resolve.
``unmerge(ctx, merge_id, reason)`` undoes exactly that, so a wrong merge costs nothing permanent.

A domain that links data to a person takes part with two registrations:

- ``on_merge(hook)`` a hook ``hook(ctx, merge, source, target)``, called inside the merge's transaction.
  For every thing it moves (or changes) it calls ``record_move(ctx, merge, kind, ref)``, with a
  ``kind`` of its own (``card``, ``family_binding`` ...; at most 24 characters) and a ``ref`` (at most
  64 characters) by which its undo finds the thing again. Things it leaves alone are not recorded.
- ``on_unmerge(kind, undo)`` an undo ``undo(ctx, merge, source, target, refs)``, called with the refs of
  its kind, in the order they were recorded, inside the unmerge's transaction. It moves them back,
  or raises ``Conflict`` when a later change makes that unsafe; the whole unmerge then rolls back.

An unmerge refuses (409) when the merge is already undone, when the target is no longer active (it
was merged into someone else since: undo that merge first), or when a move has a kind nobody
registered an undo for (half an unmerge would be worse than none).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError

from ..audit import service as audit
from ..kit import dialect, ids
from ..kit.clock import utcnow
from ..kit.context import Ctx
from ..kit.errors import Conflict, NotFound
from .matching import keys
from .models import Merge, MergeMove, Person, PersonIdentifier
from . import bulk, repository
from .repository import find_by_identifier, resolve
from .sealed import demographics, identifier_row, identifiers_of, seal_context, seal_demographics
from .values import Demographics, Identifier

__all__ = ["Demographics", "Identifier", "demographics", "find_by_identifier", "identifiers_of", "resolve",
           "seal_context"]

MergeHook = Callable[[Ctx, Merge, Person, Person], None]
UnmergeHook = Callable[[Ctx, Merge, Person, Person, list[str]], None]
_merge_hooks: list[MergeHook] = []
_unmerge_hooks: dict[str, UnmergeHook] = {}
IdentifierHook = Callable[[Ctx, list[tuple[str, Identifier, str]]], None]
_identifier_hooks: list[IdentifierHook] = []
MERGE_PURPOSE = "mpi.merge"


def on_merge(hook: MergeHook) -> MergeHook:
    """Register a domain's reaction to a merge (move its links from the source to the target, and
    ``record_move`` each). See the module docstring for the contract."""
    _merge_hooks.append(hook)
    return hook


def on_unmerge(kind: str, hook: UnmergeHook) -> UnmergeHook:
    """Register the undo of the moves of ``kind``."""
    _unmerge_hooks[kind] = hook
    return hook


def on_identifier_bound(hook: IdentifierHook) -> IdentifierHook:
    """Register a domain's reaction to identifiers newly bound to people (``add_identifier``, one;
    ``add_identifiers``, many), inside the binding's transaction: ``hook(ctx, [(person id, identifier,
    its blind index), ...])``, the person ids those of active people. Records published under a hospital number the
    index did not know yet attach to the person then."""
    _identifier_hooks.append(hook)
    return hook


def record_move(ctx: Ctx, merge: Merge, kind: str, ref: str) -> None:
    """Note one thing a merge moved, so that ``unmerge`` can move exactly it back."""
    if len(kind) > 24 or len(ref) > 64:
        raise ValueError("a merge move's kind is at most 24 and its ref at most 64 characters")
    ctx.session.add(MergeMove(merge_id=merge.id, kind=kind, ref=ref))


class IdentifierTaken(Exception):
    """Another person already holds one of the identifiers (a concurrent registration won)."""

    def __init__(self, person_id: str) -> None:
        super().__init__(person_id)
        self.person_id = person_id


def ids_of(ctx: Ctx, person: Person) -> list[str]:
    """The person's id and the ids of everyone merged into them, directly or through others: every
    id under which something about this person may have been recorded."""
    found, frontier = [person.id], [person.id]
    while frontier:
        frontier = [pid for pid in repository.merged_into(ctx.session, frontier) if pid not in found]
        found.extend(frontier)
    return found


def find_by_phone(ctx: Ctx, phone: str) -> list[Person]:
    """Active, identified people registered with this (normalised) mobile number, oldest first.
    Families share phones, so there may be several."""
    return repository.active_people_by_phone_index(ctx.session, ctx.vault.blind("phone", phone))


def create_person(
    ctx: Ctx, details: Demographics, identifiers: list[Identifier], *, temporary: bool = False
) -> Person:
    """Insert a person and their identifiers, all or nothing.

    Raises ``IdentifierTaken`` when an identifier already belongs to someone, including when a
    concurrent transaction committed it a moment ago: the unique blind index is the arbiter. Each
    identifier goes in with ``ON CONFLICT DO NOTHING`` (which waits for a concurrent insert of the
    same blind index to commit or roll back), so a registration needs no savepoint: when one is held
    already, what this call wrote is deleted again, in the caller's transaction.
    """
    now = utcnow()
    person = Person(id=ids.new_person_id(), status="active", merged_into=None, temporary=temporary, created_at=now,
                    updated_at=now)
    sealer = ctx.vault.pinned()  # one key for the person's fields and identifiers
    seal_demographics(ctx, person, details, sealer)
    if len(identifiers) == 1 and dialect.is_postgresql(ctx.session):
        # A registration: the person, the identifier and (with it) the match keys in one statement.
        row = identifier_row(ctx, person.id, identifiers[0], sealer)
        if not repository.insert_person_claiming(
                ctx.session, person, {"system": row.system, "value_sealed": row.value_sealed,
                                      "blind_index": row.blind_index, "created_at": now},
                keys.blind_keys(ctx.vault, details.name, details.sex, details.birth_date, details.phone,
                                details.region_code, details.address)):
            _identifier_held(ctx, person, identifiers[0])
        return repository.attach(ctx.session, person)
    repository.insert_person(ctx.session, person)  # every column set: one statement, no flush
    if identifiers:
        claim = _identifier_insert(ctx.session)
        for identifier in identifiers:
            row = identifier_row(ctx, person.id, identifier, sealer)
            inserted = ctx.session.execute(claim, {"person_id": person.id, "system": row.system,
                                                   "value_sealed": row.value_sealed,
                                                   "blind_index": row.blind_index, "created_at": now}).first()
            if inserted is None:
                _identifier_held(ctx, person, identifier)
    repository.attach(ctx.session, person)
    _write_match_keys(ctx, person, details, fresh=True)
    return person


def _identifier_held(ctx: Ctx, person: Person, identifier: Identifier) -> None:
    """``identifier`` was held already: the person just written is taken back, and the holder named."""
    holder = find_by_identifier(ctx, identifier)
    repository.delete_person(ctx.session, person.id)
    if holder is None:  # held a moment ago, gone now (its transaction rolled back): never two
        raise Conflict("This identifier is being registered at this moment; try again.", code="identifier_busy")
    raise IdentifierTaken(holder.id)


def _identifier_insert(session) -> object:  # noqa: ANN001
    return _identifier_insert_statement(dialect.name(session))


@functools.cache  # one a dialect, built once: a statement is cheap to run and costly to build
def _identifier_insert_statement(dialect_name: str) -> object:
    """The identifier's ``INSERT ... ON CONFLICT DO NOTHING`` (its unique blind index decides)."""
    return dialect.insert_ignore(PersonIdentifier.__table__, ["blind_index"], "id", dialect_name)


def add_identifier(ctx: Ctx, person: Person, identifier: Identifier) -> bool:
    """Bind ``identifier`` to ``person``: True when newly bound, False when it already was (binding
    twice is harmless). Another holder, even one committed a moment ago by a concurrent
    transaction, answers 409 ``identifier_taken`` without saying who."""
    holder = find_by_identifier(ctx, identifier)
    if holder is not None:
        if holder.id == person.id:
            return False
        raise _taken()
    try:
        with ctx.session.begin_nested():
            ctx.session.add(identifier_row(ctx, person.id, identifier))
    except IntegrityError:
        holder = find_by_identifier(ctx, identifier)
        if holder is not None and holder.id == person.id:
            return False
        raise _taken() from None
    for hook in _identifier_hooks:
        hook(ctx, [(resolve(ctx, person.id).id, identifier, identifier.blind_index(ctx))])
    return True


def add_identifiers(ctx: Ctx, bindings: list[tuple[str, Identifier, str]]) -> set[str]:
    """``add_identifier`` for many at once (batch linkage): ``(active person id, identifier, its blind
    index)`` each, written in bulk (``mpi.bulk.bind_identifiers``). Returns the blind indexes not bound
    because someone holds them (including a holder committed a moment ago, or the same person: the
    caller tells these apart). The hooks hear of the rest; auditing is the caller's."""
    lost = bulk.bind_identifiers(ctx.session.connection(), ctx.vault, bindings, utcnow())
    bound = [binding for binding in bindings if binding[2] not in lost]
    if bound:
        for hook in _identifier_hooks:
            hook(ctx, bound)
    return lost


def resolve_many(ctx: Ctx, person_ids: list[str]) -> dict[str, str]:
    """``resolve`` for many ids: id -> the surviving person's id. One query per 500 ids; only the
    merged ones (few) are followed one by one. An unknown id is 404, as in ``resolve``."""
    wanted = list(dict.fromkeys(person_ids))
    merged = repository.merged_into_of(ctx.session, wanted)
    missing = set(wanted) - set(merged)
    if missing:
        raise NotFound("No such person in the master index.", code="person_not_found")
    return {pid: (pid if into is None else resolve(ctx, pid).id) for pid, into in merged.items()}


def remove_identifier(ctx: Ctx, person: Person, identifier: Identifier) -> None:
    """Unbind ``identifier`` from ``person`` (a wrong link). 404 when this person does not hold it."""
    row = repository.identifier_row_by_blind_index(ctx.session, identifier.blind_index(ctx))
    if row is None or resolve(ctx, row.person_id).id != person.id:
        raise NotFound("This person holds no such identifier.", code="identifier_not_found")
    ctx.session.delete(row)
    ctx.session.flush()


def _taken() -> Conflict:
    return Conflict("This identifier already belongs to another person.", code="identifier_taken")


def update_demographics(ctx: Ctx, person: Person, details: Demographics) -> None:
    seal_demographics(ctx, person, details)
    ctx.session.flush()
    _write_match_keys(ctx, person, details)


def _write_match_keys(ctx: Ctx, person: Person, details: Demographics, *, fresh: bool = False) -> None:
    """The real-time matcher's blocking keys follow the details (``mpi.matching.keys``). Merges leave
    them alone: the matcher follows a merged person to the survivor, and an unmerge needs nothing back.
    ``fresh``: a person created just now, who has no keys to replace."""
    keys.write(ctx.session, ctx.vault, person.id, details.name, details.sex, details.birth_date, details.phone,
               details.region_code, details.address, replace=not fresh)


def merge(ctx: Ctx, source: Person, target: Person, reason: str, *, review_id: int | None = None) -> Merge:
    """Merge ``source`` into ``target``: identifiers move, every domain's hook moves its links, and
    the source stays as a tombstone pointing at the target, so old references still resolve. The
    returned ``Merge`` lists every move, for ``unmerge``."""
    if source.id == target.id:
        raise Conflict("A person cannot be merged into themself.", code="merge_same_person")
    if source.status == "merged" or target.status == "merged":
        raise Conflict("Only active people can be merged.", code="merge_inactive_person")
    actor = ctx.actor
    record = Merge(source_person_id=source.id, target_person_id=target.id, reason=reason, actor_kind=actor.kind,
                   actor_id=actor.id, review_id=review_id, at=utcnow())
    ctx.session.add(record)
    ctx.session.flush()  # the id the moves point at
    for row in repository.identifier_rows(ctx.session, source.id):
        row.person_id = target.id
        record_move(ctx, record, "identifier", str(row.id))
    for hook in _merge_hooks:
        hook(ctx, record, source, target)
    source.status = "merged"
    source.merged_into = target.id
    ctx.session.flush()
    for person in (source, target):
        audit.record_access(ctx, person.id, "change", MERGE_PURPOSE)
    return record


def get_merge(ctx: Ctx, merge_id: int) -> Merge:
    merge = ctx.session.get(Merge, merge_id) if isinstance(merge_id, int) else None
    if merge is None:
        raise NotFound("No such merge.", code="merge_not_found")
    return merge


def moves_of(ctx: Ctx, merge: Merge) -> list[MergeMove]:
    return repository.merge_moves(ctx.session, merge.id)


def unmerge(ctx: Ctx, merge_id: int, reason: str) -> Merge:
    """Undo a merge: move back exactly what it moved, reactivate the source, mark the merge undone.

    Refuses (409) when it is already undone, when the target has been merged into someone else since
    (undo that later merge first), or when a domain cannot undo its part."""
    merge = get_merge(ctx, merge_id)
    if merge.undone_at is not None:
        raise Conflict("This merge has been undone already.", code="merge_already_undone")
    source = ctx.session.get(Person, merge.source_person_id)
    target = ctx.session.get(Person, merge.target_person_id)
    if target.status != "active":
        raise Conflict("The surviving person has been merged again since: undo that merge first.",
                       code="unmerge_target_merged")
    if source.status != "merged" or source.merged_into != target.id:
        raise Conflict("The merged person has changed since the merge.", code="unmerge_source_changed")
    moves = moves_of(ctx, merge)
    by_kind: dict[str, list[str]] = {}
    for move in moves:
        by_kind.setdefault(move.kind, []).append(move.ref)
    unknown = sorted(set(by_kind) - set(_unmerge_hooks) - {"identifier"})
    if unknown:
        raise Conflict(f"No undo is registered for moves of kind {', '.join(unknown)}.", code="unmerge_unsupported")
    _move_identifiers_back(ctx, source, target, by_kind.pop("identifier", []))
    source.status = "active"
    source.merged_into = None
    ctx.session.flush()
    for kind, refs in by_kind.items():
        _unmerge_hooks[kind](ctx, merge, source, target, refs)
    merge.undone_at = utcnow()
    merge.undone_by = ctx.actor.id or ctx.actor.kind
    merge.undo_reason = reason
    ctx.session.flush()
    for person in (source, target):
        audit.record_access(ctx, person.id, "change", MERGE_PURPOSE)
    return merge


def _move_identifiers_back(ctx: Ctx, source: Person, target: Person, refs: list[str]) -> None:
    """Identifier rows the merge moved go back to the source. A row unbound since (a wrong link
    removed on purpose, audited) stays gone; one that left the target some other way is a conflict."""
    for ref in refs:
        row = ctx.session.get(PersonIdentifier, int(ref))
        if row is None:
            continue
        if row.person_id != target.id:
            raise Conflict("An identifier the merge moved belongs to someone else now.",
                           code="unmerge_identifier_moved")
        row.person_id = source.id
