"""The institution registry's queries: institutions, their departments and terminals."""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from .models import Department, Institution, Terminal


def institution(session: Session, institution_id: str) -> Institution | None:
    return session.get(Institution, institution_id)


def institutions_by_id(session: Session, institution_ids: list[str]) -> dict[str, Institution]:
    if not institution_ids:
        return {}
    return {i.id: i for i in session.scalars(select(Institution).where(Institution.id.in_(institution_ids)))}


def uscc_taken(session: Session, uscc: str) -> bool:
    return session.scalar(select(Institution.id).where(Institution.uscc == uscc)) is not None


def count_and_page(session: Session, query: Select, *, limit: int, offset: int) -> tuple[list[Institution], int]:
    """How many institutions ``query`` matches in all, and one page of them in registry order."""
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.scalars(query.order_by(Institution.region_code, Institution.name, Institution.id)
                           .limit(limit).offset(offset))
    return list(page), total


def departments(session: Session, institution_id: str) -> list[Department]:
    return list(session.scalars(
        select(Department).where(Department.institution_id == institution_id).order_by(Department.code)
    ))


def department(session: Session, institution_id: str, code: str) -> Department | None:
    return session.scalar(select(Department).where(Department.institution_id == institution_id,
                                                   Department.code == code))


def department_by_id(session: Session, department_id: str) -> Department | None:
    return session.get(Department, department_id)


def terminals_in_department(session: Session, department_id: str) -> int:
    """How many terminals (retired ones included) belong to a department."""
    return session.scalar(select(func.count()).where(Terminal.department_id == department_id)) or 0


def terminals(session: Session, institution_id: str, status: str | None = None) -> list[Terminal]:
    query = select(Terminal).where(Terminal.institution_id == institution_id)
    if status is not None:
        query = query.where(Terminal.status == status)
    return list(session.scalars(query.order_by(Terminal.terminal_id)))


def terminal(session: Session, institution_id: str | None, terminal_id: str) -> Terminal | None:
    """The terminal as the institution registered it, active or retired."""
    return session.scalar(select(Terminal).where(Terminal.institution_id == institution_id,
                                                 Terminal.terminal_id == terminal_id))


def terminal_types(session: Session, institution_ids: list[str]) -> dict[tuple[str, str], str]:
    """The type code of every terminal of these institutions, by (institution id, terminal id)."""
    return {(inst, term): type_code for inst, term, type_code in session.execute(
        select(Terminal.institution_id, Terminal.terminal_id, Terminal.type_code)
        .where(Terminal.institution_id.in_(institution_ids)))}
