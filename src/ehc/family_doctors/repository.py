"""The family-doctor queries. No rules (``service.py``), no unsealing, no audit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from .models import Condition, Contract, ContractEvent, Delivery, Package, Policy, Referral, Team, TeamArea, TeamMember

ACTIVE = "active"


# -- policies -------------------------------------------------------------------------------------

def policies(session: Session, regions: Sequence[str]) -> dict[str, Policy]:
    if not regions:
        return {}
    return {p.region_code: p for p in session.scalars(select(Policy).where(Policy.region_code.in_(list(regions))))}


def all_policies(session: Session) -> list[Policy]:
    return list(session.scalars(select(Policy).order_by(Policy.region_code)))


# -- teams ----------------------------------------------------------------------------------------

def team(session: Session, team_id: str) -> Team | None:
    return session.get(Team, team_id) if isinstance(team_id, str) else None


def teams_of(session: Session, institution_id: str) -> list[Team]:
    return list(session.scalars(select(Team).where(Team.institution_id == institution_id).order_by(Team.created_at,
                                                                                                    Team.id)))


def members(session: Session, team_id: str) -> list[TeamMember]:
    return list(session.scalars(select(TeamMember).where(TeamMember.team_id == team_id).order_by(TeamMember.id)))


def member(session: Session, team_id: str, staff_id: str) -> TeamMember | None:
    return session.scalar(select(TeamMember).where(TeamMember.team_id == team_id, TeamMember.staff_id == staff_id))


def teams_of_staff(session: Session, staff_id: str) -> list[Team]:
    return list(session.scalars(select(Team).join(TeamMember, TeamMember.team_id == Team.id)
                                .where(TeamMember.staff_id == staff_id, Team.status == ACTIVE).order_by(Team.name)))


def areas(session: Session, team_ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {t: [] for t in team_ids}
    if team_ids:
        for row in session.scalars(select(TeamArea).where(TeamArea.team_id.in_(list(team_ids)))
                                   .order_by(TeamArea.region_code)):
            out[row.team_id].append(row.region_code)
    return out


def replace_areas(session: Session, team_id: str, codes: Iterable[str]) -> None:
    for row in session.scalars(select(TeamArea).where(TeamArea.team_id == team_id)):
        session.delete(row)
    session.flush()
    for code in codes:
        session.add(TeamArea(team_id=team_id, region_code=code))
    session.flush()


def teams_serving(session: Session, region_code: str) -> list[Team]:
    """Active teams whose service area contains ``region_code`` (an area is a prefix of it)."""
    if not region_code:
        return []
    query = (select(Team).join(TeamArea, TeamArea.team_id == Team.id)
             .where(Team.status == ACTIVE, func.substr(region_code, 1, func.length(TeamArea.region_code))
                    == TeamArea.region_code).distinct().order_by(Team.name))
    return list(session.scalars(query))


# -- packages -------------------------------------------------------------------------------------

def package(session: Session, package_id: str) -> Package | None:
    return session.get(Package, package_id) if isinstance(package_id, str) else None


def packages(session: Session, *, region_prefixes: Sequence[str], institution_id: str | None,
             active_only: bool = True) -> list[Package]:
    """Region-wide packages of these regions, and the institution's own."""
    reach = [and_(Package.institution_id.is_(None), Package.region_code.in_(list(region_prefixes)))]
    if institution_id:
        reach.append(Package.institution_id == institution_id)
    query = select(Package).where(or_(*reach))
    if active_only:
        query = query.where(Package.status == ACTIVE)
    return list(session.scalars(query.order_by(Package.kind, Package.code, Package.created_at)))


def successor(session: Session, package_id: str) -> Package | None:
    return session.scalar(select(Package).where(Package.replaces == package_id))


# -- conditions -----------------------------------------------------------------------------------

def conditions_of(session: Session, person_ids: Sequence[str]) -> set[str]:
    return set(session.scalars(select(Condition.code).where(Condition.person_id.in_(list(person_ids)))))


def condition(session: Session, person_id: str, code: str) -> Condition | None:
    return session.scalar(select(Condition).where(Condition.person_id == person_id, Condition.code == code))


def condition_rows(session: Session, person_id: str) -> list[Condition]:
    return list(session.scalars(select(Condition).where(Condition.person_id == person_id).order_by(Condition.code)))


# -- contracts ------------------------------------------------------------------------------------

def contract(session: Session, contract_id: str) -> Contract | None:
    return session.get(Contract, contract_id) if isinstance(contract_id, str) else None


def active_contract(session: Session, person_id: str) -> Contract | None:
    return session.scalar(select(Contract).where(Contract.active_person_id == person_id))


def contracts_of_person(session: Session, person_ids: Sequence[str]) -> list[Contract]:
    return list(session.scalars(select(Contract).where(Contract.person_id.in_(list(person_ids)))
                                .order_by(Contract.created_at.desc(), Contract.id)))


def actively_contracted(session: Session, person_ids: Sequence[str]) -> set[str]:
    """Which of these people have an active contract (with any team)."""
    if not person_ids:
        return set()
    return set(session.scalars(select(Contract.active_person_id).where(Contract.active_person_id.in_(list(person_ids)))))


def count_active_for_lead(session: Session, lead_staff_id: str) -> int:
    return session.scalar(select(func.count()).select_from(Contract)
                          .where(Contract.lead_staff_id == lead_staff_id, Contract.status == ACTIVE)) or 0


def active_of_team(session: Session, team_id: str, *, limit: int | None = None) -> list[Contract]:
    query = (select(Contract).where(Contract.team_id == team_id, Contract.status == ACTIVE)
             .order_by(Contract.start_date, Contract.id))
    return list(session.scalars(query.limit(limit) if limit else query))


def recent_of_team(session: Session, team_id: str, limit: int) -> list[Contract]:
    return list(session.scalars(select(Contract).where(Contract.team_id == team_id)
                                .order_by(Contract.created_at.desc(), Contract.id).limit(limit)))


def ending_by(session: Session, day: date) -> list[Contract]:
    """Active contracts ending on or before ``day`` (candidates for a reminder)."""
    return list(session.scalars(select(Contract).where(Contract.status == ACTIVE, Contract.end_date <= day,
                                                       Contract.reminded_at.is_(None))
                                .order_by(Contract.end_date, Contract.id)))


def ended_before(session: Session, day: date) -> list[Contract]:
    return list(session.scalars(select(Contract).where(Contract.status == ACTIVE, Contract.end_date < day)
                                .order_by(Contract.end_date, Contract.id)))


def add_event(session: Session, event: ContractEvent) -> None:
    session.add(event)


def events_after(session: Session, after_id: int, limit: int) -> list[tuple]:
    """(event, the contract's centre, person, whether the contract had ended before the event) of the
    contract events after ``after_id``, in id order (the statistics source)."""
    earlier = ContractEvent.__table__.alias("earlier")
    ended_before = (select(earlier.c.id).where(earlier.c.contract_id == ContractEvent.contract_id,
                                               earlier.c.action == "expire", earlier.c.id < ContractEvent.id)
                    .exists())
    return [tuple(row) for row in session.execute(
        select(ContractEvent, Contract.institution_id, Contract.person_id, ended_before)
        .join(Contract, Contract.id == ContractEvent.contract_id)
        .where(ContractEvent.id > after_id).order_by(ContractEvent.id).limit(limit))]


def events_of(session: Session, contract_ids: Sequence[str]) -> list[ContractEvent]:
    return list(session.scalars(select(ContractEvent).where(ContractEvent.contract_id.in_(list(contract_ids)))
                                .order_by(ContractEvent.at, ContractEvent.id)))


# -- deliveries -----------------------------------------------------------------------------------

def delivered_counts(session: Session, contract_ids: Sequence[str]) -> dict[tuple[str, str], int]:
    """(contract id, service code) -> services delivered."""
    if not contract_ids:
        return {}
    rows = session.execute(select(Delivery.contract_id, Delivery.service_code, func.count())
                           .where(Delivery.contract_id.in_(list(contract_ids)))
                           .group_by(Delivery.contract_id, Delivery.service_code))
    return {(c, s): n for c, s, n in rows}


def deliveries_of(session: Session, contract_ids: Sequence[str], limit: int = 200) -> list[Delivery]:
    return list(session.scalars(select(Delivery).where(Delivery.contract_id.in_(list(contract_ids)))
                                .order_by(Delivery.performed_at.desc(), Delivery.id).limit(limit)))


def delivered(session: Session, contract_id: str, service_code: str) -> int:
    return session.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.contract_id == contract_id, Delivery.service_code == service_code)) or 0


# -- referrals ------------------------------------------------------------------------------------

def referral(session: Session, referral_id: str) -> Referral | None:
    return session.get(Referral, referral_id) if isinstance(referral_id, str) else None


def referrals_of(session: Session, contract_ids: Sequence[str]) -> list[Referral]:
    return list(session.scalars(select(Referral).where(Referral.contract_id.in_(list(contract_ids)))
                                .order_by(Referral.created_at.desc(), Referral.id)))


# -- coverage -------------------------------------------------------------------------------------

def _group(group: str):  # noqa: ANN202
    return Contract.team_id if group == "team" else Contract.institution_id


def contracted_by(session: Session, group: str, *, institution_ids: Sequence[str], born_by: int, born_from: int):  # noqa: ANN201
    """Active contracts of these institutions grouped by team or institution: all, 65+, under 6, with
    hypertension, diabetes and pregnancy on record, and services promised.

    The conditions of a centre's few thousand residents are looked up per contract (the (person,
    code) unique index answers); a region's hundreds of thousands are joined to the conditions
    aggregated per person once (one pass over the table beats a look-up per contract there)."""
    if not institution_ids:
        return []
    column = _group(group)
    if group == "team":
        def flag(code: str):  # noqa: ANN202
            return select(Condition.id).where(Condition.person_id == Contract.person_id, Condition.code == code).exists()

        flags, source = [flag("hypertension"), flag("diabetes_t2"), flag("pregnancy")], Contract.__table__
    else:
        cond = (select(Condition.person_id,
                       func.max(case((Condition.code == "hypertension", 1), else_=0)).label("htn"),
                       func.max(case((Condition.code == "diabetes_t2", 1), else_=0)).label("dm"),
                       func.max(case((Condition.code == "pregnancy", 1), else_=0)).label("preg"))
                .group_by(Condition.person_id).subquery())
        flags = [cond.c.htn == 1, cond.c.dm == 1, cond.c.preg == 1]
        source = Contract.__table__.outerjoin(cond, cond.c.person_id == Contract.person_id)
    query = (select(column,
                    func.count(),
                    func.coalesce(func.sum(case((Contract.birth_year <= born_by, 1), else_=0)), 0),
                    func.coalesce(func.sum(case((Contract.birth_year >= born_from, 1), else_=0)), 0),
                    *[func.coalesce(func.sum(case((f, 1), else_=0)), 0) for f in flags],
                    func.coalesce(func.sum(Contract.services_due), 0))
             .select_from(source)
             .where(Contract.status == ACTIVE, Contract.institution_id.in_(list(institution_ids))).group_by(column))
    return list(session.execute(query))


def delivered_by(session: Session, group: str, *, institution_ids: Sequence[str]) -> dict[str, int]:
    """Services delivered under active contracts of these institutions, by team or institution."""
    if not institution_ids:
        return {}
    column = _group(group)
    query = (select(column, func.count()).select_from(Delivery).join(Contract, Contract.id == Delivery.contract_id)
             .where(Contract.status == ACTIVE, Contract.institution_id.in_(list(institution_ids))).group_by(column))
    return dict(session.execute(query).all())


def areas_of_institutions(session: Session, institution_ids: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if institution_ids:
        rows = session.execute(select(Team.institution_id, TeamArea.region_code).join(Team, Team.id == TeamArea.team_id)
                               .where(Team.institution_id.in_(list(institution_ids)), Team.status == ACTIVE))
        for institution_id, code in rows:
            out.setdefault(institution_id, []).append(code)
    return out


def conditions_by_region(session: Session, prefixes: Sequence[str]) -> dict[tuple[str, str], int]:
    """(region code, condition) -> people with it on record, in the regions of ``prefixes`` (six
    digits matched exactly, shorter ones as prefixes)."""
    exact = [p for p in prefixes if len(p) >= 6]
    reach = ([Condition.region_code.in_(exact)] if exact else []) + [Condition.region_code.like(f"{p}%")
                                                                     for p in prefixes if len(p) < 6]
    if not reach:
        return {}
    rows = session.execute(select(Condition.region_code, Condition.code, func.count()).where(or_(*reach))
                           .group_by(Condition.region_code, Condition.code))
    return {(region, code): n for region, code, n in rows}


def institutions_with_teams(session: Session) -> list[str]:
    return list(session.scalars(select(Team.institution_id).distinct()))


def person_rows(session: Session, model, person_ids: Sequence[str]) -> list:  # noqa: ANN001
    """Rows of a family-doctor table (contracts, conditions, services, referrals) of these people."""
    return list(session.scalars(select(model).where(model.person_id.in_(list(person_ids)))))
