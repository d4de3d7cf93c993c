"""Family-doctor rules (docs/family-doctors.md): teams at community health centres and township
hospitals, service packages, contracts (signing, renewal, termination, change of team, reminders),
the services a team delivers, referrals, and coverage. Knows nothing of HTTP; every function takes a
``Ctx``; the queries are in ``repository.py``, the pure rules and defaults in ``rules.py``.

Who reaches what:

- A centre's ``institution_admin`` (and platform admins, the CLI) forms teams, their members and
  service areas, and defines the centre's own packages; a region's operator sets the region's policy
  and region-wide packages. Both see coverage (figures only, no people).
- A team's members (and the centre's own hospital systems) work with the residents contracted to the
  team: sign at home on a scanned dynamic QR code, record services, refer, read the work list. Every
  read of a resident's data by them is audited (``audit.service.record_access``, visible to the
  resident); another team's resident is "not found".
- The centre's window staff sign residents at the window (contract desk) and look a contract up by
  card.
- A resident signs, renews, ends or changes team for themself or for a family member they guard.

Limits under races: one active contract per person is a unique constraint (``active_person_id``);
a lead doctor's capacity is counted under ``kit.dialect.serialise`` on the lead doctor, so two
signatures for one doctor take turns (SQLite: the write lock each transaction holds already).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..accounts import service as accounts
from ..audit import service as audit
from ..cards import service as cards
from ..identity.service import mask_name
from ..institutions import service as institutions
from ..kit import dialect, ids
from ..kit.clock import china_today, utcnow
from ..kit.codes import Channel
from ..kit.context import Actor, Ctx
from ..kit.resealing import SealedColumn
from ..kit.errors import Conflict, Forbidden, Invalid, NotFound, Problem
from ..kit.regions import region_problem, region_within
from ..kit.roles import Role
from ..mpi import service as mpi
from ..qr import service as qr
from . import repository as repo
from . import rules
from .models import Condition, Contract, ContractEvent, Delivery, Package, Policy, Referral, Team, TeamMember
from .rules import (
    CHANGE_REASON_LABELS,
    CONDITIONS,
    PACKAGE_KINDS,
    SERVICE_KINDS,
    TEAM_ROLE_LABELS,
    TEAM_ROLES,
    PolicyTerms,
    due_by,
    next_due,
)

__all__ = [
    "CHANGE_REASON_LABELS", "CONDITIONS", "PACKAGE_KINDS", "SERVICE_KINDS", "TEAM_ROLE_LABELS", "TEAM_ROLES",
    "Condition", "Contract", "ContractEvent", "Delivery", "Package", "Policy", "PolicyTerms", "Referral", "Team",
    "TeamMember",
]

ACTIVE = "active"
# Audit purposes (audit/schemas.py PURPOSES says what each means to the resident).
PURPOSE_CONTRACT = "family_doctor.contract"
PURPOSE_SERVICE = "family_doctor.service"
PURPOSE_WORK_LIST = "family_doctor.work_list"
PURPOSE_REMINDER = "family_doctor.reminder"
PURPOSE_CONDITION = "family_doctor.condition"
PURPOSE_REFERRAL = "family_doctor.referral"
PURPOSE_OUTREACH = "family_doctor.outreach"
TEAM_INSTITUTION_KINDS = ("community_centre",)  # and township hospitals: first-level hospitals (level 1)
MAX_REASON = 200
MEMBER_ROLES = frozenset({Role.FAMILY_DOCTOR.value, Role.DOCTOR.value, Role.NURSE.value})
DESK_ROLES = frozenset({Role.WINDOW_CLERK.value, Role.INSTITUTION_ADMIN.value})


# -- who is acting --------------------------------------------------------------------------------

def _everywhere(actor: Actor) -> bool:
    return actor.kind == "system" or (actor.kind == "staff" and Role.PLATFORM_ADMIN.value in actor.roles)


def _team_not_found() -> NotFound:
    return NotFound("No such family-doctor team.", code="team_not_found")


def _contract_not_found() -> NotFound:
    return NotFound("No such family-doctor contract.", code="contract_not_found")


def is_member(ctx: Ctx, team: Team) -> bool:
    actor = ctx.actor
    return actor.kind == "staff" and actor.id is not None and repo.member(ctx.session, team.id, actor.id) is not None


def works_for(ctx: Ctx, team: Team) -> bool:
    """May the actor work with this team's residents: a member, the centre's own systems, the platform."""
    actor = ctx.actor
    if _everywhere(actor) or (actor.kind == "machine" and actor.institution_id == team.institution_id):
        return True
    return is_member(ctx, team)


def at_desk(ctx: Ctx, team: Team) -> bool:
    """May the actor sign residents to this team at the centre's window (or work for the team)."""
    actor = ctx.actor
    if actor.kind == "staff" and actor.institution_id == team.institution_id and actor.roles & DESK_ROLES:
        return True
    return works_for(ctx, team)


def _manages(ctx: Ctx, institution_id: str) -> bool:
    return institutions.may_manage(ctx.actor, institution_id)


# -- policy ---------------------------------------------------------------------------------------

def _terms_of(row: Policy) -> PolicyTerms:
    return PolicyTerms(row.region_code, row.capacity_per_lead, row.term_days, row.reminder_days,
                       tuple(row.change_reasons or ()))


def policy_for(ctx: Ctx, region_code: str | None) -> PolicyTerms:
    """The policy that applies in ``region_code``: the most specific region that set one, else the defaults."""
    regions = rules.policy_regions(region_code)
    found = repo.policies(ctx.session, regions)
    for region in regions:
        if region in found:
            return _terms_of(found[region])
    return PolicyTerms("")


def list_policies(ctx: Ctx) -> list[PolicyTerms]:
    return [_terms_of(p) for p in repo.all_policies(ctx.session)]


def _operator_region(ctx: Ctx) -> str | None:
    return accounts.staff_region(ctx.session, ctx.actor)


def _may_set_region(ctx: Ctx, region_code: str) -> bool:
    if _everywhere(ctx.actor):
        return True
    own = _operator_region(ctx)
    return (ctx.actor.kind == "staff" and Role.REGIONAL_OPERATOR.value in ctx.actor.roles and bool(own)
            and region_within(region_code, own))


def _region(region_code: str, field_name: str = "region_code") -> str:
    problem = region_problem(region_code)
    if problem:
        raise rules.invalid(field_name, "region_code_invalid", problem)
    return region_code


def set_policy(ctx: Ctx, region_code: str, *, capacity_per_lead: int, term_days: int = rules.DEFAULT_TERM_DAYS,
               reminder_days: int = rules.DEFAULT_REMINDER_DAYS,
               change_reasons: list[str] | None = None) -> PolicyTerms:
    """Set a region's policy (its operator, a platform admin). Signed contracts keep their terms: a
    new capacity applies to the next signature, a new term length to the next contract."""
    _region(region_code)
    if not _may_set_region(ctx, region_code):
        raise Forbidden("This region is outside your reach.", code="region_out_of_scope")
    if not 1 <= capacity_per_lead <= 100_000:
        raise rules.invalid("capacity_per_lead", "capacity_invalid", "A capacity is 1 to 100,000 residents.")
    if not 30 <= term_days <= 1100 or not 0 <= reminder_days < term_days:
        raise rules.invalid("term_days", "term_invalid", "A term is 30-1100 days; the reminder comes within it.")
    reasons = list(dict.fromkeys(change_reasons if change_reasons is not None else rules.DEFAULT_CHANGE_REASONS))
    if any(r not in CHANGE_REASON_LABELS for r in reasons):
        raise rules.invalid("change_reasons", "change_reason_invalid",
                            f"Reasons are any of: {', '.join(CHANGE_REASON_LABELS)}.")
    row = ctx.session.get(Policy, region_code)
    if row is None:
        row = Policy(region_code=region_code)
        ctx.session.add(row)
    row.capacity_per_lead, row.term_days, row.reminder_days = capacity_per_lead, term_days, reminder_days
    row.change_reasons = reasons
    row.updated_by = ctx.actor.id or ctx.actor.kind
    row.updated_at = utcnow()
    ctx.session.flush()
    return _terms_of(row)


# -- teams ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TeamView:
    team: Team
    institution_name: str
    members: list[tuple[TeamMember, str]]  # (member, display name)
    areas: list[str]
    contracted: int
    capacity: int


def _name(raw: str | None, limit: int = 100) -> str:
    name = " ".join((raw or "").split())
    if not name or len(name) > limit:
        raise rules.invalid("name", "team_name_invalid", f"A name is 1 to {limit} characters.")
    return name


def _areas(codes: list[str], institution_region: str) -> list[str]:
    """Service-area codes: GB/T 2260 regions (6 digits) or township/street codes (9 or 12 digits)
    beginning with one, within the centre's province."""
    out = []
    for i, code in enumerate(codes or []):
        code = (code or "").strip() if isinstance(code, str) else ""
        if len(code) not in (6, 9, 12) or not code.isdigit() or region_problem(code[:6]):
            raise rules.invalid(f"areas.{i}", "area_invalid",
                                "An area is a GB/T 2260 region code (6 digits) or a township/street code (9 or 12).")
        if code[:2] != institution_region[:2]:
            raise rules.invalid(f"areas.{i}", "area_out_of_province", "A team serves its own province.")
        out.append(code)
    return list(dict.fromkeys(out))


def _team_institution(ctx: Ctx, institution_id: str) -> institutions.Institution:
    institution = institutions.managed_institution(ctx, institution_id)
    if institution.kind not in TEAM_INSTITUTION_KINDS and not (institution.kind == "hospital"
                                                               and institution.level in ("1", "1A", "1B", "1C")):
        raise Conflict("Family-doctor teams belong to community health centres and township hospitals.",
                       code="not_primary_care")
    return institution


def _staff_for(ctx: Ctx, staff_id: str, role: str, institution_id: str) -> accounts.StaffAccount:
    account = accounts.get_staff(ctx, staff_id) if isinstance(staff_id, str) else None
    if account is None or not account.active or account.institution_id is None:
        raise NotFound("No such staff member.", code="staff_not_found")
    if role != "specialist" and account.institution_id != institution_id:
        raise NotFound("No such staff member at this institution.", code="staff_not_found")
    if account.role not in rules.TEAM_ROLE_STAFF[role]:
        raise Conflict(f"A {role} is one of: {', '.join(sorted(rules.TEAM_ROLE_STAFF[role]))}.",
                       code="member_role_mismatch")
    return account


def create_team(ctx: Ctx, institution_id: str, *, name: str, lead_staff_id: str,
                areas: list[str] | None = None) -> Team:
    institution = _team_institution(ctx, institution_id)
    lead = _staff_for(ctx, lead_staff_id, "lead_gp", institution.id)
    team = Team(id=ids.new_id(), institution_id=institution.id, name=_name(name), lead_staff_id=lead.id,
                status=ACTIVE, created_at=utcnow())
    ctx.session.add(team)
    ctx.session.flush()
    ctx.session.add(TeamMember(team_id=team.id, staff_id=lead.id, role="lead_gp", institution_id=institution.id))
    repo.replace_areas(ctx.session, team.id, _areas(areas or [], institution.region_code))
    return team


def managed_team(ctx: Ctx, team_id: str) -> Team:
    team = repo.team(ctx.session, team_id)
    if team is None or not _manages(ctx, team.institution_id):
        raise _team_not_found()
    return team


def add_member(ctx: Ctx, team_id: str, *, staff_id: str, role: str) -> TeamMember:
    team = managed_team(ctx, team_id)
    if role not in TEAM_ROLES or role == "lead_gp":
        raise rules.invalid("role", "team_role_invalid", "A member is a nurse, public_health or specialist.")
    account = _staff_for(ctx, staff_id, role, team.institution_id)
    if repo.member(ctx.session, team.id, account.id) is not None:
        raise Conflict("This staff member is in the team already.", code="member_exists")
    row = TeamMember(team_id=team.id, staff_id=account.id, role=role, institution_id=account.institution_id)
    ctx.session.add(row)
    ctx.session.flush()
    return row


def remove_member(ctx: Ctx, team_id: str, staff_id: str) -> None:
    team = managed_team(ctx, team_id)
    row = repo.member(ctx.session, team.id, staff_id)
    if row is None:
        raise NotFound("No such member of this team.", code="member_not_found")
    if row.role == "lead_gp":
        raise Conflict("The lead doctor leaves only with the team (dissolve it).", code="lead_cannot_leave")
    ctx.session.delete(row)
    ctx.session.flush()


def set_areas(ctx: Ctx, team_id: str, areas: list[str]) -> Team:
    team = managed_team(ctx, team_id)
    institution = institutions.find_institution(ctx.session, team.institution_id)
    repo.replace_areas(ctx.session, team.id, _areas(areas, institution.region_code))
    return team


def teams_of(ctx: Ctx, institution_id: str) -> list[Team]:
    """An institution's teams, for anyone who may see the institution (404 otherwise)."""
    institutions.get_institution(ctx, institution_id)
    return repo.teams_of(ctx.session, institution_id)


def my_teams(ctx: Ctx) -> list[Team]:
    return repo.teams_of_staff(ctx.session, ctx.actor.id) if ctx.actor.kind == "staff" and ctx.actor.id else []


def team_view(ctx: Ctx, team: Team) -> TeamView:
    institution = institutions.find_institution(ctx.session, team.institution_id)
    names = []
    for row in repo.members(ctx.session, team.id):
        account = accounts.get_staff(ctx, row.staff_id)
        names.append((row, account.display_name if account else row.staff_id))
    return TeamView(team, institution.name if institution else team.institution_id, names,
                    repo.areas(ctx.session, [team.id])[team.id],
                    repo.count_active_for_lead(ctx.session, team.lead_staff_id),
                    policy_for(ctx, institution.region_code if institution else None).capacity_per_lead)


def visible_team(ctx: Ctx, team_id: str) -> Team:
    """A team, for anyone who may see its institution (residents: any active team, to choose one)."""
    team = repo.team(ctx.session, team_id)
    if team is None:
        raise _team_not_found()
    if ctx.actor.kind in ("resident", "anonymous"):
        if team.status != ACTIVE:
            raise _team_not_found()
        return team
    try:
        institutions.get_institution(ctx, team.institution_id)
    except NotFound:
        if not works_for(ctx, team):
            raise _team_not_found() from None
    return team


def teams_for_resident(ctx: Ctx, region_code: str | None) -> list[Team]:
    """The active teams serving a resident's region (their choice when signing)."""
    return repo.teams_serving(ctx.session, region_code or "")


def dissolve_team(ctx: Ctx, team_id: str, reason: str) -> Team:
    """A dissolved team signs nobody; its residents change team with the reason ``team_dissolved``."""
    team = managed_team(ctx, team_id)
    _reason(reason)
    team.status = "dissolved"
    ctx.session.flush()
    return team


# -- packages -------------------------------------------------------------------------------------

def _fen(value: Any, field_name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100_000_000:
        raise rules.invalid(field_name, "price_invalid", "A price is a whole number of fen, 0 to 1,000,000 yuan.")
    return value


def _package_scope(ctx: Ctx, region_code: str | None, institution_id: str | None) -> tuple[str, str | None]:
    if institution_id:
        institution = institutions.managed_institution(ctx, institution_id)
        return institution.region_code, institution.id
    if not region_code:
        raise rules.invalid("region_code", "region_code_invalid", "A package belongs to a region or to a centre.")
    _region(region_code)
    if not _may_set_region(ctx, region_code):
        raise Forbidden("This region is outside your reach.", code="region_out_of_scope")
    return region_code, None


def create_package(ctx: Ctx, *, code: str, kind: str, name: str, services: list[dict], eligibility: dict | None = None,
                   price_public_fen: int = 0, price_insurance_fen: int = 0, price_resident_fen: int = 0,
                   region_code: str | None = None, institution_id: str | None = None,
                   replaces: str | None = None) -> Package:
    """Define a package: a region's (its operator) or a centre's own (its admin)."""
    region, institution = _package_scope(ctx, region_code, institution_id)
    if kind not in PACKAGE_KINDS:
        raise rules.invalid("kind", "package_kind_invalid", f"A package kind is one of: {', '.join(PACKAGE_KINDS)}.")
    if not isinstance(code, str) or not code.replace("_", "").replace("-", "").isalnum() or not 1 <= len(code) <= 32:
        raise rules.invalid("code", "package_code_invalid", "A package code is 1-32 letters, digits, - or _.")
    package = Package(id=ids.new_id(), code=code, kind=kind, name=_name(name), region_code=region,
                      institution_id=institution, price_public_fen=_fen(price_public_fen, "price_public_fen"),
                      price_insurance_fen=_fen(price_insurance_fen, "price_insurance_fen"),
                      price_resident_fen=_fen(price_resident_fen, "price_resident_fen"),
                      eligibility=rules.check_eligibility(eligibility or {}), services=rules.check_services(services),
                      status=ACTIVE, replaces=replaces, created_at=utcnow())
    ctx.session.add(package)
    ctx.session.flush()
    return package


def revise_package(ctx: Ctx, package_id: str, **changes: Any) -> Package:
    """A new version of a package (the old one retires): signed contracts keep the terms they were
    signed on; renewals sign on the new version."""
    old = repo.package(ctx.session, package_id)
    if old is None or old.status != ACTIVE:
        raise NotFound("No such active package.", code="package_not_found")
    _package_scope(ctx, None if old.institution_id else old.region_code, old.institution_id)
    values = {"code": old.code, "kind": old.kind, "name": old.name, "services": old.services,
              "eligibility": old.eligibility, "price_public_fen": old.price_public_fen,
              "price_insurance_fen": old.price_insurance_fen, "price_resident_fen": old.price_resident_fen,
              **{k: v for k, v in changes.items() if v is not None}}
    old.status = "retired"
    ctx.session.flush()
    return create_package(ctx, **values, region_code=None if old.institution_id else old.region_code,
                          institution_id=old.institution_id, replaces=old.id)


def packages_for(ctx: Ctx, institution_id: str) -> list[Package]:
    """The active packages a centre's teams offer: its region's (and the province's, prefecture's) and its own."""
    institution = institutions.find_institution(ctx.session, institution_id)
    if institution is None:
        raise NotFound("No such institution.", code="institution_not_found")
    return repo.packages(ctx.session, region_prefixes=rules.policy_regions(institution.region_code),
                         institution_id=institution.id)


def get_package(ctx: Ctx, package_id: str) -> Package:
    package = repo.package(ctx.session, package_id)
    if package is None:
        raise NotFound("No such package.", code="package_not_found")
    return package


# -- conditions -----------------------------------------------------------------------------------

def record_condition(ctx: Ctx, ehc_id: str, code: str) -> Condition:
    """A clinician records a condition (a key population) for the card's holder."""
    if code not in CONDITIONS:
        raise rules.invalid("code", "condition_invalid", f"A condition is one of: {', '.join(CONDITIONS)}.")
    person = mpi.resolve(ctx, cards.get_card(ctx, ehc_id).person_id)
    row = repo.condition(ctx.session, person.id, code)
    if row is None:
        row = Condition(person_id=person.id, code=code, region_code=person.region_code,
                        recorded_by=ctx.actor.id or ctx.actor.kind, institution_id=ctx.actor.institution_id,
                        recorded_at=utcnow())
        with _unique(ctx, Conflict("This condition is recorded already.", code="condition_exists")):
            ctx.session.add(row)
    audit.record_access(ctx, person.id, "change", PURPOSE_CONDITION)
    return row


# -- contracts ------------------------------------------------------------------------------------

@contextmanager
def _unique(ctx: Ctx, conflict: Problem) -> Iterator[None]:
    """A write under a savepoint: a unique constraint lost to a concurrent writer becomes ``conflict``
    and the rest of the transaction survives."""
    try:
        with ctx.session.begin_nested():
            yield
            ctx.session.flush()
    except IntegrityError:
        raise conflict from None


def _reason(reason: str | None) -> str:
    text = " ".join((reason or "").split())
    if not text or len(text) > MAX_REASON:
        raise rules.invalid("reason", "reason_required", f"Give a reason (1 to {MAX_REASON} characters).")
    return text


def _event(ctx: Ctx, contract: Contract, action: str, reason: str | None = None) -> None:
    actor = ctx.actor
    repo.add_event(ctx.session, ContractEvent(contract_id=contract.id, action=action, actor_kind=actor.kind,
                                              actor_id=actor.id, institution_id=actor.institution_id,
                                              channel=str(actor.channel), reason=reason, at=utcnow()))


@dataclass(frozen=True)
class Signer:
    """Who the contract is for, and how consent was given."""

    person: mpi.Person
    kind: str  # self | guardian | window | home | system
    signed_by: str | None = None
    consent_use_id: int | None = None


def _resident_subject(ctx: Ctx, ehc_id: str | None) -> Signer:
    me = mpi.resolve(ctx, ctx.actor.id)
    if not ehc_id:
        return Signer(me, "self", me.id)
    try:
        card = cards.get_card(ctx, ehc_id)
    except NotFound:
        card = None
    if card is not None and mpi.resolve(ctx, card.person_id).id == me.id:
        return Signer(me, "self", me.id)
    if card is None or cards.guardian_binding(ctx, me, card) is None:
        raise NotFound("No card with this EHC ID.", code="card_not_found")
    return Signer(mpi.resolve(ctx, card.person_id), "guardian", me.id)


def signer_for(ctx: Ctx, team: Team, *, ehc_id: str | None = None, code: str | None = None) -> Signer:
    """The person signing and their consent, by who is acting:

    - a resident: themself, or a family member they guard (``ehc_id``);
    - a team member at the resident's home: ``code``, the resident's dynamic QR code, scanned as
      their consent (recorded as a card use on the member's channel);
    - the centre's window (or a hospital system, or the CLI): the card (``ehc_id``) of the resident
      at the window, or a scanned code.
    """
    actor = ctx.actor
    if actor.kind == "resident":
        return _resident_subject(ctx, ehc_id)
    if not at_desk(ctx, team):
        raise _team_not_found()
    if code:
        verified = qr.verify(ctx, code, qr.Use(scene=rules.CONSENT_SCENE, channel=str(actor.channel)))
        if verified.use.code_type != 0:
            raise Conflict("Consent at home needs the resident's dynamic code, shown on their phone.",
                           code="dynamic_code_required")
        kind = "home" if actor.channel == Channel.WORKSTATION else "window"
        return Signer(mpi.resolve(ctx, verified.card.person_id), kind, actor.id, verified.use.id)
    if actor.kind == "staff" and not actor.roles & DESK_ROLES:
        raise Invalid("A team member signs a resident by scanning their dynamic QR code as consent.",
                      code="consent_code_required")
    if not ehc_id:
        raise rules.invalid("ehc_id", "ehc_id_required", "Give the resident's card (EHC ID) or scan their code.")
    card = cards.get_card(ctx, ehc_id)
    if card.status != cards.CardStatus.NORMAL:
        raise Conflict("The resident's card is not active.", code="card_not_active")
    return Signer(mpi.resolve(ctx, card.person_id), "window" if actor.kind != "system" else "system", actor.id)


def _resident_facts(ctx: Ctx, person: mpi.Person, day: date, purpose: str) -> rules.Resident:
    details = mpi.demographics(ctx, person, purpose=purpose)
    conditions = frozenset(repo.conditions_of(ctx.session, mpi.ids_of(ctx, person)))
    return rules.Resident(rules.age_on(details.birth_date, day), details.sex, conditions)


def _chosen_packages(ctx: Ctx, team: Team, package_ids: list[str], who: rules.Resident) -> list[Package]:
    offered = {p.id: p for p in packages_for(ctx, team.institution_id)}
    if not package_ids:
        basic = [p for p in offered.values() if p.kind == "basic"]
        package_ids = [basic[0].id] if basic else []
    if not package_ids:
        raise rules.invalid("package_ids", "package_required", "Choose at least one package.")
    chosen = []
    for i, package_id in enumerate(dict.fromkeys(package_ids)):
        package = offered.get(package_id)
        if package is None:
            raise rules.invalid(f"package_ids.{i}", "package_not_offered", "This team does not offer this package.")
        problem = rules.eligibility_problem(package.eligibility, who)
        if problem:
            raise Conflict(f"The resident is not eligible for {package.name} ({problem}).",
                           code="package_not_eligible", errors=[{"field": f"package_ids.{i}",
                                                                 "code": f"not_eligible_{problem}",
                                                                 "message": package.name}])
        chosen.append(package)
    return chosen


def _terms(packages: list[Package]) -> list[dict[str, Any]]:
    return [{"package_id": p.id, "code": p.code, "kind": p.kind, "name": p.name,
             "price_public_fen": p.price_public_fen, "price_insurance_fen": p.price_insurance_fen,
             "price_resident_fen": p.price_resident_fen, "services": p.services} for p in packages]


def _check_capacity(ctx: Ctx, team: Team, region_code: str | None) -> None:
    """Under a lock on the lead doctor: refuse a contract beyond the region's capacity per lead."""
    dialect.serialise(ctx.session, f"family_doctor.lead:{team.lead_staff_id}")
    capacity = policy_for(ctx, region_code).capacity_per_lead
    if repo.count_active_for_lead(ctx.session, team.lead_staff_id) >= capacity:
        raise Conflict(f"The team's lead doctor holds {capacity} contracts, the region's limit.", code="team_full",
                       capacity=capacity)


def _new_contract(ctx: Ctx, team: Team, signer: Signer, packages: list[Package], start: date, end: date, *,
                  previous: Contract | None = None) -> Contract:
    person = signer.person
    terms = _terms(packages)
    contract = Contract(
        id=ids.new_id(), person_id=person.id, active_person_id=person.id, team_id=team.id,
        institution_id=team.institution_id, lead_staff_id=team.lead_staff_id, status=ACTIVE, start_date=start,
        end_date=end, package_ids=[p.id for p in packages], terms=terms,
        services_due=sum(s["yearly_count"] for t in terms for s in t["services"]),
        price_public_fen=sum(t["price_public_fen"] for t in terms),
        price_insurance_fen=sum(t["price_insurance_fen"] for t in terms),
        price_resident_fen=sum(t["price_resident_fen"] for t in terms),
        region_code=person.region_code, birth_year=person.birth_year, sex=person.sex or "0",
        channel=str(ctx.actor.channel), signed_by_kind=signer.kind, signed_by=signer.signed_by,
        consent_use_id=signer.consent_use_id, previous_id=previous.id if previous else None, created_at=utcnow())
    with _unique(ctx, Conflict("This resident has a family-doctor contract already.", code="contract_exists")):
        ctx.session.add(contract)
    return contract


def sign(ctx: Ctx, team_id: str, *, package_ids: list[str] | None = None, ehc_id: str | None = None,
         code: str | None = None) -> Contract:
    """Sign a resident to a team for a term (the region's policy: a year by default), on the terms of
    the chosen packages as they stand today. One active contract per person; the team's lead doctor
    holds at most the region's capacity."""
    team = visible_team(ctx, team_id)
    if team.status != ACTIVE:
        raise Conflict("This team has been dissolved.", code="team_dissolved")
    signer = signer_for(ctx, team, ehc_id=ehc_id, code=code)
    person = signer.person
    if repo.active_contract(ctx.session, person.id) is not None:
        raise Conflict("This resident has a family-doctor contract already.", code="contract_exists")
    institution = institutions.find_institution(ctx.session, team.institution_id)
    policy = policy_for(ctx, institution.region_code)
    start = china_today()
    packages = _chosen_packages(ctx, team, list(package_ids or []), _resident_facts(ctx, person, start,
                                                                                     PURPOSE_CONTRACT))
    _check_capacity(ctx, team, institution.region_code)
    contract = _new_contract(ctx, team, signer, packages, start, start + timedelta(days=policy.term_days - 1))
    _event(ctx, contract, "sign", signer.kind)
    audit.record_access(ctx, person.id, "change", PURPOSE_CONTRACT)
    return contract


def _reachable_contract(ctx: Ctx, contract_id: str, *, desk: bool = False) -> Contract:
    """A contract the actor may act on: the resident's own or a guarded member's; a member of its
    team (or the centre's window with ``desk``); else "not found"."""
    contract = repo.contract(ctx.session, contract_id)
    if contract is None:
        raise _contract_not_found()
    actor = ctx.actor
    if actor.kind == "resident":
        me = mpi.resolve(ctx, actor.id)
        holder = mpi.resolve(ctx, contract.person_id)
        if holder.id != me.id:
            card = cards.card_of_person(ctx, holder)
            if card is None or cards.guardian_binding(ctx, me, card) is None:
                raise _contract_not_found()
        return contract
    team = repo.team(ctx.session, contract.team_id)
    if not (at_desk(ctx, team) if desk else works_for(ctx, team)):
        raise _contract_not_found()
    return contract


def get_contract(ctx: Ctx, contract_id: str) -> Contract:
    contract = _reachable_contract(ctx, contract_id, desk=True)
    audit.record_access(ctx, contract.person_id, "read", PURPOSE_CONTRACT)
    return contract


def _active(contract: Contract) -> None:
    if contract.status != ACTIVE:
        raise Conflict(f"This contract is {contract.status}.", code="contract_not_active")


def _close(ctx: Ctx, contract: Contract, status: str, action: str, reason: str | None) -> None:
    contract.status = status
    contract.active_person_id = None
    contract.ended_at = utcnow()
    contract.end_reason = reason
    ctx.session.flush()
    _event(ctx, contract, action, reason)


def terminate(ctx: Ctx, contract_id: str, reason: str) -> Contract:
    """End a contract before its term (the resident, or the team/window): a reason is required."""
    contract = _reachable_contract(ctx, contract_id, desk=True)
    text = _reason(reason)
    _active(contract)
    dialect.serialise(ctx.session, f"family_doctor.lead:{contract.lead_staff_id}")
    _close(ctx, contract, "terminated", "terminate", text)
    audit.record_access(ctx, contract.person_id, "change", PURPOSE_CONTRACT)
    return contract


def _current_packages(ctx: Ctx, contract: Contract) -> list[Package]:
    """The contract's packages as offered today (a retired package by its newest version)."""
    out = []
    for package_id in contract.package_ids:
        package = repo.package(ctx.session, package_id)
        while package is not None and package.status != ACTIVE:
            package = repo.successor(ctx.session, package.id)
        if package is not None:
            out.append(package)
    return out


def renew(ctx: Ctx, contract_id: str) -> Contract:
    """Renew for another term from the day after the current one ends (within the reminder window, or
    after it ended). The old contract stays, ``renewed``, and the new one points to it (history)."""
    contract = _reachable_contract(ctx, contract_id, desk=True)
    team = repo.team(ctx.session, contract.team_id)
    institution = institutions.find_institution(ctx.session, team.institution_id)
    policy = policy_for(ctx, institution.region_code)
    today = china_today()
    if contract.status not in (ACTIVE, "ended"):
        raise Conflict(f"This contract is {contract.status}.", code="contract_not_active")
    if contract.status == ACTIVE and today < contract.end_date - timedelta(days=policy.reminder_days):
        raise Conflict("A contract is renewed in its last days, from the reminder on.", code="renewal_too_early",
                       from_date=(contract.end_date - timedelta(days=policy.reminder_days)).isoformat())
    if team.status != ACTIVE:
        raise Conflict("This team has been dissolved: choose another team.", code="team_dissolved")
    person = mpi.resolve(ctx, contract.person_id)
    start = max(contract.end_date + timedelta(days=1), today)
    packages = _current_packages(ctx, contract)
    who = _resident_facts(ctx, person, start, PURPOSE_CONTRACT)
    packages = [p for p in packages if rules.eligibility_problem(p.eligibility, who) is None]
    if not packages:
        raise Conflict("None of the contract's packages is offered to this resident any more.",
                       code="package_not_eligible")
    if contract.status == ACTIVE:  # the lead doctor's count does not change: one contract follows another
        dialect.serialise(ctx.session, f"family_doctor.lead:{team.lead_staff_id}")
        _close(ctx, contract, "renewed", "renew", None)
    else:
        _check_capacity(ctx, team, institution.region_code)
        contract.status = "renewed"
        _event(ctx, contract, "renew", None)
    renewed = _new_contract(ctx, team, Signer(person, "renewal", ctx.actor.id), packages, start,
                            start + timedelta(days=policy.term_days - 1), previous=contract)
    _event(ctx, renewed, "sign", "renewal")
    audit.record_access(ctx, person.id, "change", PURPOSE_CONTRACT)
    return renewed


def change_team(ctx: Ctx, contract_id: str, team_id: str, reason_code: str) -> Contract:
    """Move to another team before the term ends, only for one of the region's reasons; the new
    contract runs to the old one's end, on the same terms."""
    contract = _reachable_contract(ctx, contract_id, desk=True)
    _active(contract)
    old_team = repo.team(ctx.session, contract.team_id)
    institution = institutions.find_institution(ctx.session, old_team.institution_id)
    policy = policy_for(ctx, institution.region_code)
    if reason_code not in policy.change_reasons:
        raise rules.invalid("reason", "change_reason_not_allowed",
                            f"In this region a resident changes team for: {', '.join(policy.change_reasons)}.")
    new_team = repo.team(ctx.session, team_id)
    if new_team is None or new_team.status != ACTIVE:
        raise _team_not_found()
    if new_team.id == old_team.id:
        raise Conflict("This is the contract's team already.", code="same_team")
    person = mpi.resolve(ctx, contract.person_id)
    new_institution = institutions.find_institution(ctx.session, new_team.institution_id)
    _check_capacity(ctx, new_team, new_institution.region_code)
    _close(ctx, contract, "changed", "change_team", reason_code)
    packages = _current_packages(ctx, contract)
    offered = {p.id for p in packages_for(ctx, new_team.institution_id)}
    packages = [p for p in packages if p.id in offered] or [p for p in packages_for(ctx, new_team.institution_id)
                                                            if p.kind == "basic"][:1]
    if not packages:
        raise Conflict("The new team offers none of the contract's packages.", code="package_not_offered")
    moved = _new_contract(ctx, new_team, Signer(person, "change", ctx.actor.id), packages, china_today(),
                          max(contract.end_date, china_today()), previous=contract)
    _event(ctx, moved, "sign", f"change_team:{reason_code}")
    audit.record_access(ctx, person.id, "change", PURPOSE_CONTRACT)
    return moved


def contracts_of_card(ctx: Ctx, ehc_id: str) -> list[Contract]:
    """A card holder's contracts, newest first (the window's look-up; audited)."""
    card = cards.get_card(ctx, ehc_id)
    person = mpi.resolve(ctx, card.person_id)
    found = repo.contracts_of_person(ctx.session, mpi.ids_of(ctx, person))
    if ctx.actor.kind != "system":
        found = [c for c in found if at_desk(ctx, repo.team(ctx.session, c.team_id))]
    audit.record_access(ctx, person.id, "read", PURPOSE_CONTRACT)
    return found


def history(ctx: Ctx, contract: Contract) -> list[ContractEvent]:
    return repo.events_of(ctx.session, [contract.id])


# -- what the resident sees -------------------------------------------------------------------------

@dataclass(frozen=True)
class ServiceProgress:
    package_code: str
    code: str
    kind: str
    name: str
    promised: int
    done: int
    due_now: int
    next_due: date | None

    @property
    def overdue(self) -> int:
        return max(0, self.due_now - self.done)


def progress(ctx: Ctx, contract: Contract, day: date | None = None) -> list[ServiceProgress]:
    """What the contract's packages promised, what was done and what is due by ``day``."""
    day = day or china_today()
    counts = repo.delivered_counts(ctx.session, [contract.id])
    return _progress(contract, counts, day)


def _progress(contract: Contract, counts: dict[tuple[str, str], int], day: date) -> list[ServiceProgress]:
    out = []
    for term in contract.terms:
        for s in term["services"]:
            done = counts.get((contract.id, s["code"]), 0)
            out.append(ServiceProgress(term["code"], s["code"], s["kind"], s["name"], s["yearly_count"], done,
                                       due_by(s["yearly_count"], contract.start_date, contract.end_date, day),
                                       next_due(s["yearly_count"], done, contract.start_date, contract.end_date)))
    return out


@dataclass(frozen=True)
class MyContract:
    contract: Contract
    person_id: str
    relation: str  # self | a family relation
    team: Team | None
    progress: list[ServiceProgress]
    deliveries: list[Delivery]
    referrals: list[Referral]
    events: list[ContractEvent]


def my_family_doctor(ctx: Ctx) -> list[MyContract]:
    """The signed-in resident's contracts and those of the family members they guard: the current
    one of each person (or the last), with progress, services done and referrals."""
    me = mpi.resolve(ctx, ctx.actor.id)
    people: list[tuple[mpi.Person, str]] = [(me, "self")]
    card = cards.card_of_person(ctx, me)
    if card is not None:
        for binding, member_card in cards.family_of(ctx, card.ehc_id):
            if member_card is not None:
                people.append((mpi.resolve(ctx, member_card.person_id), binding.relation))
    out = []
    for person, relation in people:
        contracts = repo.contracts_of_person(ctx.session, mpi.ids_of(ctx, person))
        if not contracts:
            continue
        current = next((c for c in contracts if c.status == ACTIVE), contracts[0])
        out.append(MyContract(current, person.id, relation, repo.team(ctx.session, current.team_id),
                              progress(ctx, current), repo.deliveries_of(ctx.session, [current.id], 50),
                              repo.referrals_of(ctx.session, [current.id]),
                              repo.events_of(ctx.session, [c.id for c in contracts])))
    return out


def people_i_act_for(ctx: Ctx) -> list[tuple[str | None, str]]:
    """(card id, relation) of the signed-in resident (None, "self") and each family member they guard."""
    me = mpi.resolve(ctx, ctx.actor.id)
    card = cards.card_of_person(ctx, me)
    out: list[tuple[str | None, str]] = [(None, "self")]
    if card is not None:
        out += [(member.ehc_id, binding.relation) for binding, member in cards.family_of(ctx, card.ehc_id)
                if member is not None]
    return out


def resident_subject(ctx: Ctx, ehc_id: str | None) -> mpi.Person:
    """The resident, or a family member they guard (by card)."""
    return _resident_subject(ctx, ehc_id).person


def offer_for(ctx: Ctx, ehc_id: str | None = None) -> tuple[mpi.Person, list[Team], dict[str, list[Package]]]:
    """The teams serving the resident's (or guarded member's) region and the packages each offers
    that the person is eligible for."""
    person = resident_subject(ctx, ehc_id)
    who = _resident_facts(ctx, person, china_today(), PURPOSE_CONTRACT)
    teams = teams_for_resident(ctx, person.region_code)
    offered = {}
    for team in teams:
        offered[team.id] = [p for p in packages_for(ctx, team.institution_id)
                            if rules.eligibility_problem(p.eligibility, who) is None]
    return person, teams, offered


# -- delivery -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Measurements:
    systolic_mmhg: int | None = None
    diastolic_mmhg: int | None = None
    glucose_mmol_x10: int | None = None  # fasting glucose, tenths of mmol/L (5.6 mmol/L -> 56)
    weight_kg_x10: int | None = None  # tenths of kg
    notes: str | None = None


_RANGES = {"systolic_mmhg": (40, 300), "diastolic_mmhg": (20, 200), "glucose_mmol_x10": (10, 500),
           "weight_kg_x10": (5, 3500)}


def _check_measurements(m: Measurements) -> None:
    for name, (low, high) in _RANGES.items():
        value = getattr(m, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high):
            raise rules.invalid(name, "measurement_out_of_range", f"{name} is {low} to {high}.")
    if m.notes is not None and len(m.notes) > 2000:
        raise rules.invalid("notes", "notes_too_long", "Notes are at most 2,000 characters.")


def sealed_columns() -> list[SealedColumn]:
    """The domain's sealed columns with the context of each value, for re-sealing."""
    return [SealedColumn(Delivery.__table__.c.notes_sealed, lambda row: _notes_context(row.id))]


def _notes_context(delivery_id: str) -> str:
    return f"fd_deliveries.notes:{delivery_id}"


def record_service(ctx: Ctx, contract_id: str, service_code: str, measurements: Measurements, *,
                   code: str | None = None, performed_at: datetime | None = None) -> Delivery:
    """A team member records a follow-up or check-up against the contract. With ``code`` (the
    resident's QR code scanned at the visit) the visit's card use is recorded and linked. A
    service counts against its package's count for the term: one beyond it is refused."""
    contract = _reachable_contract(ctx, contract_id)
    _active(contract)
    service = next((s for t in contract.terms for s in t["services"] if s["code"] == service_code), None)
    if service is None:
        raise rules.invalid("service_code", "service_not_in_contract", "The contract's packages have no such service.")
    _check_measurements(measurements)
    when = performed_at or utcnow()
    if when.tzinfo is None or when > utcnow() + timedelta(minutes=5):
        raise rules.invalid("performed_at", "performed_at_invalid", "A visit's time has a zone and is not ahead.")
    use_id = None
    if code:
        verified = qr.verify(ctx, code, qr.Use(scene=rules.SCENE_OF_KIND[service["kind"]],
                                               channel=str(ctx.actor.channel)))
        if mpi.resolve(ctx, verified.card.person_id).id != mpi.resolve(ctx, contract.person_id).id:
            raise Conflict("This code is another resident's.", code="code_of_another_person")
        use_id = verified.use.id
    dialect.serialise(ctx.session, f"family_doctor.contract:{contract.id}")
    if repo.delivered(ctx.session, contract.id, service_code) >= service["yearly_count"]:
        raise Conflict(f"All {service['yearly_count']} of this service for the term are recorded.",
                       code="service_count_used")
    delivery_id = ids.new_id()
    row = Delivery(id=delivery_id, contract_id=contract.id, person_id=contract.person_id, team_id=contract.team_id,
                   service_code=service_code, kind=service["kind"], performed_at=when,
                   staff_id=ctx.actor.id if ctx.actor.kind == "staff" else None, channel=str(ctx.actor.channel),
                   card_use_id=use_id, systolic_mmhg=measurements.systolic_mmhg,
                   diastolic_mmhg=measurements.diastolic_mmhg, glucose_mmol_x10=measurements.glucose_mmol_x10,
                   weight_kg_x10=measurements.weight_kg_x10,
                   notes_sealed=ctx.vault.seal_optional(measurements.notes or None, _notes_context(delivery_id)),
                   created_at=utcnow())
    ctx.session.add(row)
    ctx.session.flush()
    # The delivery is a step of the contract too: its event (kind first) feeds the statistics source.
    _event(ctx, contract, "service", f"{service['kind']}: {service_code}")
    audit.record_access(ctx, contract.person_id, "change", PURPOSE_SERVICE)
    return row


def get_delivery(ctx: Ctx, delivery_id: str) -> Delivery:
    row = ctx.session.get(Delivery, delivery_id) if isinstance(delivery_id, str) else None
    if row is None:
        raise NotFound("No such service record.", code="service_record_not_found")
    _reachable_contract(ctx, row.contract_id)
    return row


def delivery_notes(ctx: Ctx, row: Delivery) -> str | None:
    return ctx.vault.open_optional(row.notes_sealed, _notes_context(row.id))


def deliveries(ctx: Ctx, contract: Contract) -> list[Delivery]:
    return repo.deliveries_of(ctx.session, [contract.id])


# -- the team's work list -------------------------------------------------------------------------

@dataclass(frozen=True)
class WorkItem:
    contract: Contract
    name: str | None  # the resident's name, for the team (audited)
    overdue: list[ServiceProgress]


@dataclass(frozen=True)
class WorkList:
    team: Team
    overdue: list[WorkItem]
    overdue_total: int
    recent: list[tuple[Contract, str | None]]
    ending_soon: int


def work_list(ctx: Ctx, team_id: str, *, day: date | None = None, limit: int = 50) -> WorkList:
    """The team's residents with services overdue (due by today and not yet done), oldest contract
    first, and the most recent contracts. Names are opened for the team, each read audited."""
    team = repo.team(ctx.session, team_id)
    if team is None or not works_for(ctx, team):
        raise _team_not_found()
    day = day or china_today()
    active = repo.active_of_team(ctx.session, team.id)
    counts = repo.delivered_counts(ctx.session, [c.id for c in active])
    late = []
    for contract in active:
        overdue = [p for p in _progress(contract, counts, day) if p.overdue]
        if overdue:
            late.append((contract, overdue))
    policy = policy_for(ctx, institutions.find_institution(ctx.session, team.institution_id).region_code)
    ending = sum(1 for c in active if c.end_date <= day + timedelta(days=policy.reminder_days))
    items = [WorkItem(c, _name_for_team(ctx, c.person_id, PURPOSE_WORK_LIST), o) for c, o in late[:limit]]
    recent = [(c, _name_for_team(ctx, c.person_id, PURPOSE_WORK_LIST))
              for c in repo.recent_of_team(ctx.session, team.id, 10)]
    return WorkList(team, items, len(late), recent, ending)


def _name_for_team(ctx: Ctx, person_id: str, purpose: str) -> str | None:
    return mpi.demographics(ctx, mpi.resolve(ctx, person_id), purpose=purpose).name


def resident_name(ctx: Ctx, contract: Contract) -> str | None:
    """The contracted resident's name, for the team or the window (audited)."""
    return _name_for_team(ctx, contract.person_id, PURPOSE_CONTRACT)


@dataclass(frozen=True)
class OutreachItem:
    """A resident of the team's area with no contract, as a team sees them for outreach: masked."""

    person_id: str
    masked_name: str | None
    birth_year: int | None
    sex: str
    region_code: str | None
    conditions: list[str]


def outreach(ctx: Ctx, team_id: str, *, after: str = "", limit: int = 50) -> list[OutreachItem]:
    """Residents of the team's service area without a family-doctor contract (with any team), for
    the team's outreach: names masked, each read audited (``family_doctor.outreach``), visible to
    the resident. Paged by ``after`` (the last person id of the previous page)."""
    team = repo.team(ctx.session, team_id)
    if team is None or not works_for(ctx, team):
        raise _team_not_found()
    codes = sorted({a[:6] for a in repo.areas(ctx.session, [team.id])[team.id]})
    found: list[mpi.Person] = []
    cursor = after
    while len(found) < limit:
        page = mpi.people_in_regions(ctx.session, codes, after=cursor, limit=limit)
        if not page:
            break
        signed = repo.actively_contracted(ctx.session, [p.id for p in page])
        found += [p for p in page if p.id not in signed]
        cursor = page[-1].id
    items = []
    for person in found[:limit]:
        name = mpi.demographics(ctx, person, purpose=PURPOSE_OUTREACH).name
        items.append(OutreachItem(person.id, mask_name(name) if name else None, person.birth_year, person.sex,
                                  person.region_code, sorted(repo.conditions_of(ctx.session, [person.id]))))
    return items


# -- reminders and expiry (the daily job) --------------------------------------------------------------

@dataclass
class DailyReport:
    reminded: int = 0
    unreachable: int = 0
    expired: int = 0
    failures: list[str] = field(default_factory=list)


REMINDER_TEXT = ("【电子健康卡】您的家庭医生签约将于{end}到期，请登录或到社区卫生服务中心续约。"
                 "Your family-doctor contract ends on {end}; renew online or at your health centre.")


def _phone_for(ctx: Ctx, person: mpi.Person) -> str | None:
    """The resident's phone, else a guardian's (children and the elderly are reached through them)."""
    details = mpi.demographics(ctx, person, purpose=PURPOSE_REMINDER)
    if details.phone:
        return details.phone
    for guardian_id in sorted(cards.holder_and_guardians(ctx, person.id) - set(mpi.ids_of(ctx, person))):
        phone = mpi.demographics(ctx, mpi.resolve(ctx, guardian_id), purpose=PURPOSE_REMINDER).phone
        if phone:
            return phone
    return None


def run_daily(ctx: Ctx, day: date | None = None) -> DailyReport:
    """The daily job (``ehc family-doctors daily``): contracts past their end become ``ended``, and
    those within their region's reminder window get one text message (through the accounts domain's
    SMS sender), once (``reminded_at``). Safe to run again the same day."""
    day = day or china_today()
    report = DailyReport()
    for contract in repo.ended_before(ctx.session, day):
        _close(ctx, contract, "ended", "expire", "term ended")
        report.expired += 1
    longest = max([p.reminder_days for p in list_policies(ctx)] + [rules.DEFAULT_REMINDER_DAYS])
    regions: dict[str, PolicyTerms] = {}
    for contract in repo.ending_by(ctx.session, day + timedelta(days=longest)):
        if contract.institution_id not in regions:
            institution = institutions.find_institution(ctx.session, contract.institution_id)
            regions[contract.institution_id] = policy_for(ctx, institution.region_code if institution else None)
        if contract.end_date - timedelta(days=regions[contract.institution_id].reminder_days) > day:
            continue
        phone = _phone_for(ctx, mpi.resolve(ctx, contract.person_id))
        contract.reminded_at = utcnow()
        if phone is None:
            report.unreachable += 1
            _event(ctx, contract, "remind", "no phone on record")
            continue
        accounts.send_sms(ctx, phone, REMINDER_TEXT.format(end=contract.end_date.isoformat()))
        _event(ctx, contract, "remind", None)
        report.reminded += 1
    ctx.session.flush()
    return report


# -- referral -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReferralTicket:
    """What the appointments domain needs to book a referral into a hospital's referral quota."""

    referral_id: str
    person_id: str
    from_team_id: str
    from_institution_id: str
    to_institution_id: str
    department_code: str
    reason: str


# The booking seam: the appointments domain registers ``book(ctx, ticket) -> booking reference`` (in
# ``ehc.wiring``); until one is registered a referral stays ``requested`` (the team books by phone).
ReferralBooker = Callable[[Ctx, ReferralTicket], str]
_booker: list[ReferralBooker] = []


def book_referrals_with(booker: ReferralBooker) -> None:
    _booker[:] = [booker]


def refer(ctx: Ctx, contract_id: str, *, to_institution_id: str, department_code: str, reason: str) -> Referral:
    """A team member refers the contracted resident to a specialist department; the booking into the
    hospital's family-doctor quota is made through the registered booker, carrying the referral."""
    contract = _reachable_contract(ctx, contract_id)
    _active(contract)
    if ctx.actor.kind == "staff" and not is_member(ctx, repo.team(ctx.session, contract.team_id)):
        raise _contract_not_found()
    target = institutions.find_institution(ctx.session, to_institution_id) if isinstance(to_institution_id, str) else None
    if target is None or target.kind != "hospital":
        raise rules.invalid("to_institution_id", "referral_target_invalid", "Refer to a hospital on the platform.")
    department = institutions.department_problem(department_code)
    if department:
        raise rules.invalid("department_code", "department_code_invalid", department)
    row = Referral(id=ids.new_id(), contract_id=contract.id, person_id=contract.person_id, team_id=contract.team_id,
                   staff_id=ctx.actor.id if ctx.actor.kind == "staff" else None, to_institution_id=target.id,
                   department_code=department_code, reason=_reason(reason), status="requested", created_at=utcnow())
    ctx.session.add(row)
    ctx.session.flush()
    if _booker:
        mark_referral_booked(ctx, row.id, _booker[0](ctx, referral_ticket(ctx, row.id)))
    audit.record_access(ctx, contract.person_id, "change", PURPOSE_REFERRAL)
    return row


def referral_ticket(ctx: Ctx, referral_id: str) -> ReferralTicket:
    """The referral as the appointments domain books it (from which team, to where, why)."""
    row = repo.referral(ctx.session, referral_id)
    if row is None:
        raise NotFound("No such referral.", code="referral_not_found")
    team = repo.team(ctx.session, row.team_id)
    return ReferralTicket(row.id, row.person_id, row.team_id, team.institution_id, row.to_institution_id,
                          row.department_code, row.reason)


def mark_referral_booked(ctx: Ctx, referral_id: str, booking_ref: str) -> Referral:
    row = repo.referral(ctx.session, referral_id)
    if row is None:
        raise NotFound("No such referral.", code="referral_not_found")
    if row.status == "booked" and row.booking_ref == booking_ref:
        return row
    if row.status != "requested":
        raise Conflict(f"This referral is {row.status}.", code="referral_not_open")
    row.status, row.booking_ref, row.booked_at = "booked", booking_ref, utcnow()
    ctx.session.flush()
    return row


def get_referral(ctx: Ctx, referral_id: str) -> Referral:
    row = repo.referral(ctx.session, referral_id)
    if row is None:
        raise NotFound("No such referral.", code="referral_not_found")
    _reachable_contract(ctx, row.contract_id)
    return row


def referrals(ctx: Ctx, contract: Contract) -> list[Referral]:
    return repo.referrals_of(ctx.session, [contract.id])


# -- statistics -----------------------------------------------------------------------------------

# A contract event's move between statuses, for the stock of contracts by status (``renew`` is
# worked out per event: from ``ended`` when the contract had expired before, else from ``active``).
_STATUS_MOVES: dict[str, tuple[str | None, str | None]] = {
    "sign": (None, ACTIVE), "terminate": (ACTIVE, "terminated"), "change_team": (ACTIVE, "changed"),
    "expire": (ACTIVE, "ended"), "merge": (ACTIVE, "terminated"), "unmerge": ("terminated", ACTIVE),
}


def _statistics_kind(event: ContractEvent) -> str:
    """``sign`` is a first signing; a renewal's and a change of team's new contract are
    ``sign_renewal`` and ``sign_change``; a delivered service is ``service_<kind>``."""
    reason = event.reason or ""
    if event.action == "sign" and reason == "renewal":
        return "sign_renewal"
    if event.action == "sign" and reason.startswith("change_team:"):
        return "sign_change"
    if event.action == "service":
        return "service_" + reason.partition(":")[0]
    return event.action


def statistics_events(session: Session, after_id: int, limit: int) -> list[dict]:
    """The family doctors' source for the statistics pipeline (``wiring`` registers it): each
    contract event (signing, renewal, end, change of team, reminder, a service delivered) after
    ``after_id``. The institution is the contract's centre; the person id serves the pipeline's coarse
    profile only (never stored)."""
    out = []
    for event, institution_id, person_id, had_ended in repo.events_after(session, after_id, limit):
        before, after = (("ended" if had_ended else ACTIVE), "renewed") if event.action == "renew" else \
            _STATUS_MOVES.get(event.action, (None, None))
        out.append({"id": event.id, "at": event.at, "kind": _statistics_kind(event), "channel": event.channel,
                    "institution_id": institution_id, "person_id": person_id, "from_status": before,
                    "to_status": after})
    return out


# -- coverage -------------------------------------------------------------------------------------

@dataclass
class CoverageRow:
    key: str  # a team id or an institution id
    label: str
    residents: int = 0  # in the service area
    contracted: int = 0
    elderly: int = 0  # 65+ in the area
    elderly_contracted: int = 0
    children: int = 0  # under 6 in the area
    children_contracted: int = 0
    hypertension: int = 0
    hypertension_contracted: int = 0
    diabetes: int = 0
    diabetes_contracted: int = 0
    pregnant: int = 0
    pregnant_contracted: int = 0
    services_promised: int = 0
    services_delivered: int = 0

    def share(self, part: str) -> float | None:
        whole = getattr(self, part if part != "contracted" else "residents")
        done = getattr(self, f"{part}_contracted" if part != "contracted" else "contracted")
        return round(done / whole, 4) if whole else None


def _age_years(day: date) -> tuple[int, int]:
    # birth years: 65+ this year (born in or before year - 65) and under 6 (born in or after year - 5)
    return day.year - 65, day.year - 5


@dataclass(frozen=True)
class _Population:
    """The people of a set of regions by region code, and their recorded conditions, read once and
    summed per team or centre (an area is a region code or a street code within one)."""

    people: dict[str, tuple[int, int, int]]
    conditions: dict[tuple[str, str], int]

    @classmethod
    def of(cls, ctx: Ctx, areas: list[str], born_by: int, born_from: int) -> "_Population":
        prefixes = sorted({a[:6] for a in areas})
        return cls(mpi.population_by_region(ctx.session, prefixes, born_by=born_by, born_from=born_from),
                   repo.conditions_by_region(ctx.session, prefixes))

    def fill(self, row: CoverageRow, areas: list[str]) -> None:
        codes = {a[:6] for a in areas}
        for region, (n, old, young) in self.people.items():
            if region in codes:
                row.residents += n
                row.elderly += old
                row.children += young
        for (region, code), n in self.conditions.items():
            if region in codes:
                if code == "hypertension":
                    row.hypertension += n
                elif code == "diabetes_t2":
                    row.diabetes += n
                elif code == "pregnancy":
                    row.pregnant += n


def _fill_contracts(row: CoverageRow, found: tuple) -> None:
    (_, row.contracted, row.elderly_contracted, row.children_contracted, row.hypertension_contracted,
     row.diabetes_contracted, row.pregnant_contracted, row.services_promised) = (int(v) if i else v
                                                                                  for i, v in enumerate(found))


_CONTRACT_FIGURES = ("contracted", "elderly_contracted", "children_contracted", "hypertension_contracted",
                     "diabetes_contracted", "pregnant_contracted", "services_promised", "services_delivered")


def _add_up(total: CoverageRow, rows: list[CoverageRow]) -> None:
    """The contract figures of ``rows`` summed into ``total`` (its population is read on its own:
    areas overlap, contracts do not)."""
    for row in rows:
        for name in _CONTRACT_FIGURES:
            setattr(total, name, getattr(total, name) + getattr(row, name))


def _coverage_reader(ctx: Ctx, institution_id: str) -> institutions.Institution:
    """The centre, if the actor sees it: its own staff (figures only, no people), the region's
    commission, platform admins; 404 otherwise."""
    return institutions.get_institution(ctx, institution_id)


def centre_coverage(ctx: Ctx, institution_id: str, day: date | None = None) -> tuple[list[CoverageRow], CoverageRow]:
    """Per team of a centre, and for the centre: residents of the service area and the contracted
    share, of key populations too (65+, under 6, hypertension, diabetes, pregnancy), and services
    promised vs delivered under active contracts."""
    institution = _coverage_reader(ctx, institution_id)
    born_by, born_from = _age_years(day or china_today())
    teams = repo.teams_of(ctx.session, institution.id)
    areas = repo.areas(ctx.session, [t.id for t in teams])
    found = {r[0]: r for r in repo.contracted_by(ctx.session, "team", institution_ids=[institution.id],
                                                 born_by=born_by, born_from=born_from)}
    delivered = repo.delivered_by(ctx.session, "team", institution_ids=[institution.id])
    population = _Population.of(ctx, [a for t in teams for a in areas[t.id]], born_by, born_from)
    rows = []
    for team in teams:
        row = CoverageRow(team.id, team.name)
        population.fill(row, areas[team.id])
        if team.id in found:
            _fill_contracts(row, found[team.id])
        row.services_delivered = delivered.get(team.id, 0)
        rows.append(row)
    total = CoverageRow(institution.id, institution.name)
    population.fill(total, [a for t in teams for a in areas[t.id]])
    _add_up(total, rows)
    return rows, total


def regional_coverage(ctx: Ctx, region_code: str, day: date | None = None) -> tuple[list[CoverageRow], CoverageRow]:
    """The regional rollup: per centre with teams in ``region_code`` (its operator, auditors, platform
    admins), and for the region."""
    _region(region_code)
    actor = ctx.actor
    if not _everywhere(actor):
        own = _operator_region(ctx)
        if Role.AUDITOR.value in actor.roles and own is None:
            own = region_code
        if not own or not region_within(region_code, own):
            raise Forbidden("This region is outside your reach.", code="region_out_of_scope")
    born_by, born_from = _age_years(day or china_today())
    centres = [i for i in institutions.institutions_by_id(ctx.session, repo.institutions_with_teams(ctx.session))
               .values() if region_within(i.region_code, region_code)]
    centres.sort(key=lambda i: (i.region_code, i.name))
    centre_ids = [c.id for c in centres]
    found = {r[0]: r for r in repo.contracted_by(ctx.session, "institution", institution_ids=centre_ids,
                                                 born_by=born_by, born_from=born_from)}
    delivered = repo.delivered_by(ctx.session, "institution", institution_ids=centre_ids)
    areas_of = repo.areas_of_institutions(ctx.session, centre_ids)
    population = _Population.of(ctx, [a for c in centres for a in areas_of.get(c.id, [])], born_by, born_from)
    rows = []
    for centre in centres:
        row = CoverageRow(centre.id, centre.name)
        population.fill(row, areas_of.get(centre.id, []))
        if centre.id in found:
            _fill_contracts(row, found[centre.id])
        row.services_delivered = delivered.get(centre.id, 0)
        rows.append(row)
    total = CoverageRow(region_code, region_code)
    population.fill(total, [a for c in centres for a in areas_of.get(c.id, [])])
    _add_up(total, rows)
    return rows, total


# -- merges in the master index -------------------------------------------------------------------
#
# A merge carries the source's contracts, services, referrals and recorded conditions to the target.
# Where both have an active contract, the target's stays and the source's is terminated ("merge");
# a condition the target already has stays on the source. Every move is recorded, so an unmerge
# moves exactly those back (``undo_merge_moves``) and reopens a contract the merge terminated.

MOVED = (("fd_deliveries", Delivery), ("fd_referrals", Referral), ("fd_conditions", Condition))


def move_on_merge(ctx: Ctx, merge: mpi.Merge, source: mpi.Person, target: mpi.Person) -> None:
    for contract in repo.person_rows(ctx.session, Contract, [source.id]):
        if contract.status == ACTIVE and repo.active_contract(ctx.session, target.id) is not None:
            _close(ctx, contract, "terminated", "merge", f"merged into {target.id}")
            mpi.record_move(ctx, merge, "fd_contract_end", contract.id)
            continue
        contract.person_id = target.id
        if contract.active_person_id is not None:
            contract.active_person_id = target.id
        ctx.session.flush()
        mpi.record_move(ctx, merge, "fd_contract", contract.id)
    target_conditions = repo.conditions_of(ctx.session, [target.id])
    for table, model in MOVED:
        for row in repo.person_rows(ctx.session, model, [source.id]):
            if model is Condition and row.code in target_conditions:
                continue
            row.person_id = target.id
            mpi.record_move(ctx, merge, "fd_row", f"{table}:{row.id}")
    ctx.session.flush()


def undo_contract_moves(ctx: Ctx, merge: mpi.Merge, source: mpi.Person, target: mpi.Person, refs: list[str]) -> None:
    for contract_id in refs:
        contract = repo.contract(ctx.session, contract_id)
        if contract is None or contract.person_id != target.id:
            raise Conflict("A contract the merge moved has changed since.", code="unmerge_contract_changed")
        contract.person_id = source.id
        if contract.active_person_id is not None:
            contract.active_person_id = source.id
    ctx.session.flush()


def undo_contract_ends(ctx: Ctx, merge: mpi.Merge, source: mpi.Person, target: mpi.Person, refs: list[str]) -> None:
    for contract_id in refs:
        contract = repo.contract(ctx.session, contract_id)
        if contract is None or contract.status != "terminated" or contract.person_id != source.id:
            raise Conflict("A contract the merge ended has changed since.", code="unmerge_contract_changed")
        contract.status, contract.active_person_id = ACTIVE, source.id
        contract.ended_at = contract.end_reason = None
        _event(ctx, contract, "unmerge", f"merge {merge.id} undone")
    ctx.session.flush()


def undo_row_moves(ctx: Ctx, merge: mpi.Merge, source: mpi.Person, target: mpi.Person, refs: list[str]) -> None:
    models = dict(MOVED)
    for ref in refs:
        table, _, row_id = ref.partition(":")
        model = models[table]
        row = ctx.session.get(model, int(row_id) if model is Condition else row_id)
        if row is None:
            continue
        if row.person_id != target.id:
            raise Conflict("A record the merge moved has changed since.", code="unmerge_record_changed")
        row.person_id = source.id
    ctx.session.flush()
