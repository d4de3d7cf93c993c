"""Institution rules: who may join the platform (hospitals, community health centres, clinics,
pharmacies), identified by their unified social credit code (GB 32100); their departments
(standard 4-digit codes) and terminals (windows, kiosks, workstations).

Two layers. ``create_institution`` is the bare rule (valid values, one institution per USCC) for
callers that are the platform itself: the demo, the CLI. Everything taking a ``Ctx`` also applies
who may do it (``policy.py``): health-commission operators register institutions in their region,
an institution's admin manages its departments and terminals. An institution outside the actor's
reach is answered exactly like a missing one (404 ``institution_not_found``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from stdnum.cn import uscc as stdnum_uscc
from stdnum.exceptions import InvalidChecksum, InvalidLength, ValidationError

from ..accounts import service as accounts
from ..kit import ids
from ..kit.clock import utcnow
from ..kit.context import Actor, Ctx
from ..kit.errors import Conflict, Forbidden, Invalid, NotFound, field_error
from ..kit.regions import region_prefix, region_problem, region_within
from . import policy, repository

# Besides its own functions, this module (the domain's public face) re-exports the registry's code
# lists (``codes.py``) and reach rules (``policy.py``) that other domains and the doors use.
from .codes import (
    DEPARTMENTS,
    KIND_LABELS,
    KINDS,
    LEVEL_PATTERN,
    TERMINAL_CHANNEL,
    TERMINAL_ID_PATTERN,
    TERMINAL_LABELS,
    TERMINAL_STATUSES,
    TERMINAL_TYPE,
    UNGRADED,
    TerminalRole,
    department_label,
    department_problem,
    level_label,
)
from .models import Department, Institution, Terminal
from .policy import everywhere, may_manage, may_register_in, may_see, own_institution, visible_region

MAX_PAGE = 500


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # "not given" in a partial update, as opposed to None ("clear it")


def _invalid(field: str, code: str, message: str) -> Invalid:
    return Invalid(message, code=code, errors=[field_error(field, code, message)])


@contextmanager
def _unique(session: Session, conflict: Conflict) -> Iterator[None]:
    """Insert or update under a savepoint; a unique constraint lost to a concurrent writer becomes
    the same 409 the pre-check gives, and the rest of the transaction survives."""
    try:
        with session.begin_nested():
            yield
    except IntegrityError:
        raise conflict from None


# -- values ---------------------------------------------------------------------------------------

def normalise_uscc(raw: str) -> str:
    """An 18-character unified social credit code, upper-cased, check character verified."""
    try:
        return stdnum_uscc.validate(raw if isinstance(raw, str) else "")
    except InvalidLength:
        message = "A unified social credit code has 18 characters."
    except InvalidChecksum:
        message = "The last character of this unified social credit code does not match the others (GB 32100)."
    except ValidationError:
        message = ("A unified social credit code is 8 digits (registrar, entity type, region) followed by 10 "
                   "digits or capital letters other than I, O, S, V and Z.")
    raise _invalid("uscc", "uscc_invalid", message)


def _name(raw: str | None, limit: int, field: str = "name") -> str:
    name = " ".join((raw or "").split())
    if not name or len(name) > limit:
        raise _invalid(field, f"{field}_invalid", f"A name is 1 to {limit} characters.")
    return name


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise _invalid("kind", "kind_invalid", f"Kind must be one of: {', '.join(KINDS)}.")
    return kind


def _region(region_code: str) -> str:
    problem = region_problem(region_code)
    if problem:
        raise _invalid("region_code", "region_code_invalid", problem)
    return region_code


def _level(level: str | None) -> str | None:
    """3A, 2B, 1 ... or None (also spelt "none") for an ungraded institution."""
    if level is None or (isinstance(level, str) and level.strip().lower() == UNGRADED):
        return None
    value = level.strip().upper() if isinstance(level, str) else ""
    if not LEVEL_PATTERN.fullmatch(value):
        raise _invalid("level", "level_invalid",
                       "A level is 1, 2 or 3, optionally followed by A, B or C (e.g. 3A), or none.")
    return value


# -- institutions ---------------------------------------------------------------------------------

def create_institution(
    session: Session,
    *,
    uscc: str,
    name: str,
    kind: str,
    region_code: str,
    level: str | None = None,
    institution_id: str | None = None,
) -> Institution:
    """Validate and insert an institution; its USCC must be valid and not already on the platform."""
    code = normalise_uscc(uscc)
    name = _name(name, 200)
    kind = _kind(kind)
    region_code = _region(region_code)
    level = _level(level)
    taken = Conflict("An institution with this unified social credit code is already registered.", code="uscc_taken")
    if repository.uscc_taken(session, code):
        raise taken
    institution = Institution(id=institution_id or ids.new_id(), uscc=code, name=name, kind=kind,
                              region_code=region_code, level=level)
    with _unique(session, taken):
        session.add(institution)
        session.flush()
    return institution


def _operator_region(ctx: Ctx) -> str | None:
    if ctx.actor.kind == "staff" and ctx.actor.roles & {"regional_operator", "auditor"}:
        return accounts.staff_region(ctx.session, ctx.actor)
    return None


def _not_found() -> NotFound:
    return NotFound("No such institution.", code="institution_not_found")


def _out_of_region(region_code: str) -> Forbidden:
    return Forbidden(f"Region {region_code} is outside the region you operate in.", code="region_out_of_scope",
                     errors=[field_error("region_code", "region_out_of_scope", "Outside your region.")])


def register_institution(
    ctx: Ctx, *, uscc: str, name: str, kind: str, region_code: str, level: str | None = None
) -> Institution:
    """A health-commission operator registers an institution, in their own region."""
    region = _region(region_code)
    if not policy.may_register_in(ctx.actor, _operator_region(ctx), region):
        raise _out_of_region(region)
    return create_institution(ctx.session, uscc=uscc, name=name, kind=kind, region_code=region, level=level)


def find_institution(session: Session, institution_id: str) -> Institution | None:
    """The institution by id, for other domains that have already decided who may see it."""
    return repository.institution(session, institution_id)


def institutions_by_id(session: Session, institution_ids: list[str]) -> dict[str, Institution]:
    """Institutions by id (those that exist), for other domains' reports naming where things happened."""
    return repository.institutions_by_id(session, institution_ids)


def get_institution(ctx: Ctx, institution_id: str) -> Institution:
    """The institution, if the actor may see it (404 otherwise, whether or not it exists)."""
    institution = repository.institution(ctx.session, institution_id)
    if institution is None or not policy.may_see(ctx.actor, _operator_region(ctx), institution.id,
                                                 institution.region_code):
        raise _not_found()
    return institution


def managed_institution(ctx: Ctx, institution_id: str) -> Institution:
    """The institution, if the actor manages it (its admin, a platform admin); 404 otherwise."""
    institution = repository.institution(ctx.session, institution_id)
    if institution is None or not policy.may_manage(ctx.actor, institution.id):
        raise _not_found()
    return institution


def update_institution(
    ctx: Ctx,
    institution_id: str,
    *,
    name: str | None = UNSET,
    kind: str = UNSET,
    region_code: str = UNSET,
    level: str | None = UNSET,
) -> Institution:
    """Change an institution's name, kind, region or level. Its USCC is its legal identity and never
    changes: a new legal entity is a new institution."""
    institution = get_institution(ctx, institution_id)
    region = _operator_region(ctx)
    if not policy.may_register_in(ctx.actor, region, institution.region_code):
        # Visible (an auditor, or the institution's own staff) but not theirs to change.
        raise Forbidden("You may not change this institution.", code="role_not_allowed")
    if name is not UNSET:
        institution.name = _name(name, 200)
    if kind is not UNSET:
        institution.kind = _kind(kind)
    if region_code is not UNSET:
        new_region = _region(region_code)
        if not policy.may_register_in(ctx.actor, region, new_region):
            raise _out_of_region(new_region)
        institution.region_code = new_region
    if level is not UNSET:
        institution.level = _level(level)
    institution.updated_at = utcnow()
    ctx.session.flush()
    return institution


def list_institutions(
    ctx: Ctx,
    *,
    kind: str | None = None,
    region_code: str | None = None,
    name: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Institution], int]:
    """Institutions the actor may see, filtered; a page of them and how many match in all."""
    query = select(Institution)
    visible = policy.visible_region(ctx.actor, _operator_region(ctx))
    if visible is not None:
        own = policy.own_institution(ctx.actor)
        conditions = []
        if visible:
            conditions.append(Institution.region_code.startswith(region_prefix(visible), autoescape=True))
        if own:
            conditions.append(Institution.id == own)
        if not conditions:
            return [], 0
        query = query.where(or_(*conditions))
    if kind is not None:
        query = query.where(Institution.kind == _kind(kind))
    if region_code is not None:
        query = query.where(Institution.region_code.startswith(region_prefix(_region(region_code)), autoescape=True))
    if name:
        query = query.where(Institution.name.contains(name.strip(), autoescape=True))
    return repository.count_and_page(ctx.session, query, limit=max(1, min(limit, MAX_PAGE)), offset=max(0, offset))


# -- departments ----------------------------------------------------------------------------------

def _department_code(code: str) -> str:
    problem = department_problem(code)
    if problem:
        raise _invalid("code", "department_code_invalid", problem)
    return code


def list_departments(session: Session, institution: Institution) -> list[Department]:
    return repository.departments(session, institution.id)


def get_department(session: Session, institution: Institution, code: str) -> Department:
    department = repository.department(session, institution.id, code)
    if department is None:
        raise NotFound(f"This institution has no department {code}.", code="department_not_found")
    return department


def department_of(session: Session, institution_id: str, code: str | None, *, field: str = "department") -> str | None:
    """``code`` when it is a department of the institution (None stays None), for other domains that name
    a department: a staff member's, a consent grant's, the one a hospital system's call is made for.
    422 ``department_not_found`` (on ``field``) otherwise."""
    if code is None or code == "":
        return None
    code = code.strip()
    if department_problem(code) is not None or repository.department(session, institution_id, code) is None:
        raise _invalid(field, "department_not_found", f"This institution has no department {code[:8]}.")
    return code


def add_department(ctx: Ctx, institution: Institution, *, code: str, name: str | None = None) -> Department:
    """A department under a standard code, named after the code's Chinese label unless a local
    name is given. One department per code in an institution."""
    code = _department_code(code)
    name = _name(name, 100) if name is not None else department_label(code)[1]
    taken = Conflict(f"This institution already has a department {code}.", code="department_code_taken")
    if repository.department(ctx.session, institution.id, code) is not None:
        raise taken
    department = Department(id=ids.new_id(), institution_id=institution.id, code=code, name=name)
    with _unique(ctx.session, taken):
        ctx.session.add(department)
        ctx.session.flush()
    return department


def rename_department(ctx: Ctx, institution: Institution, code: str, *, name: str) -> Department:
    department = get_department(ctx.session, institution, code)
    department.name = _name(name, 100)
    department.updated_at = utcnow()
    ctx.session.flush()
    return department


def remove_department(ctx: Ctx, institution: Institution, code: str) -> None:
    """Remove a department that no terminal belongs to (retired ones included: their history does)."""
    department = get_department(ctx.session, institution, code)
    used = repository.terminals_in_department(ctx.session, department.id)
    if used:
        raise Conflict(f"{used} terminal(s) belong to this department; move them first.",
                       code="department_in_use")
    ctx.session.delete(department)
    ctx.session.flush()


# -- terminals ------------------------------------------------------------------------------------

def _terminal_role(role: str) -> TerminalRole:
    try:
        return TerminalRole(role)
    except ValueError:
        raise _invalid("role", "terminal_role_invalid",
                       f"A terminal's role is one of: {', '.join(r.value for r in TerminalRole)}.") from None


def _department_id(session: Session, institution: Institution, code: str | None) -> str | None:
    if code is None:
        return None
    department = repository.department(session, institution.id, code)
    if department is None:
        raise _invalid("department_code", "department_not_found", f"This institution has no department {code}.")
    return department.id


def list_terminals(session: Session, institution: Institution, status: str | None = None) -> list[Terminal]:
    if status is not None and status not in TERMINAL_STATUSES:
        raise _invalid("status", "terminal_status_invalid", "Status is active or retired.")
    return repository.terminals(session, institution.id, status)


def get_terminal(session: Session, institution: Institution, terminal_id: str) -> Terminal:
    terminal = repository.terminal(session, institution.id, terminal_id)
    if terminal is None:
        raise NotFound(f"This institution has no terminal {terminal_id!r}.", code="terminal_not_found")
    return terminal


def terminal_registered(session: Session, institution_id: str | None, terminal_id: str) -> bool:
    """Whether the institution registered terminal ``terminal_id`` (retired since is fine): for card-use
    reports, which must name a terminal the institution registered when it scanned."""
    return repository.terminal(session, institution_id, terminal_id) is not None


def department_code_of(session: Session, terminal: Terminal) -> str | None:
    if terminal.department_id is None:
        return None
    department = repository.department_by_id(session, terminal.department_id)
    return department.code if department is not None else None


def register_terminal(
    ctx: Ctx,
    institution: Institution,
    *,
    terminal_id: str,
    role: str,
    type_code: str | None = None,
    department_code: str | None = None,
    name: str | None = None,
) -> Terminal:
    """Register a terminal. Its type follows from its role (window 01, kiosk 02, workstation and
    other 99); a type given alongside must agree."""
    if not isinstance(terminal_id, str) or not TERMINAL_ID_PATTERN.fullmatch(terminal_id):
        raise _invalid("terminal_id", "terminal_id_invalid",
                       "A terminal id is 1-32 letters, digits, dots, dashes or underscores, starting with a "
                       "letter or digit.")
    terminal_role = _terminal_role(role)
    expected = TERMINAL_TYPE[terminal_role]
    if type_code is not None and type_code != expected.value:
        raise _invalid("type_code", "terminal_type_mismatch",
                       f"A {terminal_role.value} terminal has type {expected.value}.")
    department_id = _department_id(ctx.session, institution, department_code)
    taken = Conflict(f"This institution already has a terminal {terminal_id!r} (terminal ids are never reused).",
                     code="terminal_id_taken")
    if repository.terminal(ctx.session, institution.id, terminal_id) is not None:
        raise taken
    terminal = Terminal(id=ids.new_id(), institution_id=institution.id, terminal_id=terminal_id,
                        type_code=expected.value, role=terminal_role.value,
                        name=_name(name, 100) if name is not None else None,
                        department_id=department_id, status="active")
    with _unique(ctx.session, taken):
        ctx.session.add(terminal)
        ctx.session.flush()
    return terminal


def update_terminal(
    ctx: Ctx,
    institution: Institution,
    terminal_id: str,
    *,
    name: str | None = UNSET,
    department_code: str | None = UNSET,
    status: str = UNSET,
) -> Terminal:
    """Rename, move to another department (or none), retire or bring back a terminal. Its id and
    role stay: a different device is a new terminal."""
    terminal = get_terminal(ctx.session, institution, terminal_id)
    if name is not UNSET:
        terminal.name = _name(name, 100) if name is not None else None
    if department_code is not UNSET:
        terminal.department_id = _department_id(ctx.session, institution, department_code)
    if status is not UNSET and status != terminal.status:
        if status not in TERMINAL_STATUSES:
            raise _invalid("status", "terminal_status_invalid", "Status is active or retired.")
        terminal.status = status
        terminal.retired_at = utcnow() if status == "retired" else None
    terminal.updated_at = utcnow()
    ctx.session.flush()
    return terminal


# -- for the domains that limit what a caller reaches by institution and region (mpi) ----------------

def reaches_everywhere(actor: Actor) -> bool:
    """The caller sees every institution and region (``policy.everywhere``)."""
    return policy.everywhere(actor)


def own_institution(actor: Actor) -> str | None:
    """The institution the caller acts for, if any (``policy.own_institution``)."""
    return policy.own_institution(actor)


def in_region(code: str, region: str) -> bool:
    """Region ``code`` lies within ``region`` (GB/T 2260 prefixes)."""
    return region_within(code, region)


def region_like(region: str) -> str:
    """A SQL LIKE pattern matching every region code within ``region``."""
    return region_prefix(region) + "%"


def region_of_institution(institution_id: ColumnElement[str | None]) -> ColumnElement[str | None]:
    """The region code of the institution ``institution_id`` refers to, as a SQL expression (NULL when
    there is no such institution), so a query of another domain can filter by it."""
    return select(Institution.region_code).where(Institution.id == institution_id).scalar_subquery()


def terminal_types(session: Session, institution_ids: list[str]) -> dict[tuple[str, str], str]:
    """The type code (01 window, 02 kiosk, 99 other) of the institutions' terminals, retired ones
    included, by (institution id, terminal id): for statistics of card use by terminal type."""
    return repository.terminal_types(session, sorted(set(institution_ids)))
