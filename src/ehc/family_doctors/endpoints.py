"""Family-doctor API: thin. Parse, authorise (family_doctors/auth.py), call family_doctors/service.py,
shape the answer. Writes that create something take an ``Idempotency-Key``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response

from ..kit import idempotency
from ..kit.context import Ctx
from . import service
from .auth import (
    Anyone,
    ContractDesk,
    CoverageReader,
    PackageAuthor,
    PolicySetter,
    RegionalReader,
    Resident,
    TeamManager,
    TeamReader,
    TeamWorker,
)
from .schemas import (
    AreasIn,
    ChangeTeamIn,
    ConditionIn,
    ConditionOut,
    ContractOut,
    CoverageOut,
    CoverageRowOut,
    EventOut,
    ContractLookupIn,
    MemberIn,
    MemberOut,
    OutreachOut,
    PackageIn,
    PackageOut,
    PolicyIn,
    PolicyOut,
    ProgressOut,
    ReasonIn,
    ReferralIn,
    ReferralOut,
    ServiceRecordIn,
    ServiceRecordOut,
    SignIn,
    TeamIn,
    TeamOut,
    WorkItemOut,
    WorkListOut,
)

router = APIRouter(prefix="/api/v1/family-doctors", tags=["family doctors"])
me_router = APIRouter(prefix="/api/v1/me/family-doctor", tags=["family doctors"])
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


# -- shaping answers ------------------------------------------------------------------------------

def policy_out(p: service.PolicyTerms) -> PolicyOut:
    return PolicyOut(region_code=p.region_code, capacity_per_lead=p.capacity_per_lead, term_days=p.term_days,
                     reminder_days=p.reminder_days, change_reasons=list(p.change_reasons))


def team_out(ctx: Ctx, team: service.Team) -> TeamOut:
    v = service.team_view(ctx, team)
    return TeamOut(id=team.id, institution_id=team.institution_id, institution_name=v.institution_name,
                   name=team.name, status=team.status, lead_staff_id=team.lead_staff_id,
                   members=[MemberOut(staff_id=m.staff_id, name=n, role=m.role, institution_id=m.institution_id)
                            for m, n in v.members], areas=v.areas, contracted=v.contracted, capacity=v.capacity)


def progress_out(p: service.ServiceProgress) -> ProgressOut:
    return ProgressOut(package_code=p.package_code, code=p.code, kind=p.kind, name=p.name, promised=p.promised,
                       done=p.done, due_now=p.due_now, overdue=p.overdue, next_due=p.next_due)


def contract_out(ctx: Ctx, c: service.Contract, *, name: bool = False, relation: str | None = None) -> ContractOut:
    return ContractOut(
        id=c.id, team_id=c.team_id, institution_id=c.institution_id, status=c.status, start_date=c.start_date,
        end_date=c.end_date, terms=c.terms, price_public_fen=c.price_public_fen,
        price_insurance_fen=c.price_insurance_fen, price_resident_fen=c.price_resident_fen, channel=c.channel,
        signed_by_kind=c.signed_by_kind, consent_card_use=c.consent_use_id, previous_id=c.previous_id,
        end_reason=c.end_reason, progress=[progress_out(p) for p in service.progress(ctx, c)],
        resident_name=service.resident_name(ctx, c) if name else None, relation=relation)


def record_out(ctx: Ctx, d: service.Delivery) -> ServiceRecordOut:
    out = ServiceRecordOut.model_validate(d, from_attributes=True)
    out.notes = service.delivery_notes(ctx, d)
    return out


def coverage_out(rows: list[service.CoverageRow], total: service.CoverageRow) -> CoverageOut:
    def one(r: service.CoverageRow) -> CoverageRowOut:
        return CoverageRowOut(**{k: v for k, v in r.__dict__.items()}, contracted_share=r.share("contracted"))

    return CoverageOut(rows=[one(r) for r in rows], total=one(total))


def _once(ctx: Ctx, key: str | None, route: str, payload: dict[str, Any], response: Response, do, load):  # noqa: ANN001, ANN202
    result, _ = idempotency.run_once(ctx, key, route, payload, response, lambda: (do(), True),
                                     ref=lambda row: row.id, load=load)
    return result


# -- policies -------------------------------------------------------------------------------------

@router.get("/policies/{region_code}", response_model=PolicyOut, summary="The policy in force in a region")
def get_policy(region_code: str, ctx: Anyone) -> PolicyOut:
    return policy_out(service.policy_for(ctx, region_code))


@router.put("/policies/{region_code}", response_model=PolicyOut, summary="Set a region's family-doctor policy")
def put_policy(region_code: str, body: PolicyIn, ctx: PolicySetter) -> PolicyOut:
    return policy_out(service.set_policy(ctx, region_code, **body.model_dump()))


# -- teams ----------------------------------------------------------------------------------------

@router.post("/teams", response_model=TeamOut, status_code=201, summary="Form a team at a centre")
def create_team(body: TeamIn, ctx: TeamManager, response: Response, idempotency_key: IdempotencyKey = None) -> TeamOut:
    team = _once(ctx, idempotency_key, "fd.team", body.model_dump(), response,
                 lambda: service.create_team(ctx, body.institution_id, name=body.name,
                                             lead_staff_id=body.lead_staff_id, areas=body.areas),
                 lambda ref: service.managed_team(ctx, ref))
    return team_out(ctx, team)


@router.get("/teams", response_model=list[TeamOut], summary="A centre's teams")
def list_teams(ctx: TeamReader, institution_id: Annotated[str, Query(max_length=24)]) -> list[TeamOut]:
    return [team_out(ctx, t) for t in service.teams_of(ctx, institution_id)]


@router.get("/teams/{team_id}", response_model=TeamOut)
def get_team(team_id: str, ctx: TeamReader) -> TeamOut:
    return team_out(ctx, service.visible_team(ctx, team_id))


@router.post("/teams/{team_id}/members", response_model=TeamOut, status_code=201)
def add_member(team_id: str, body: MemberIn, ctx: TeamManager) -> TeamOut:
    service.add_member(ctx, team_id, staff_id=body.staff_id, role=body.role)
    return team_out(ctx, service.managed_team(ctx, team_id))


@router.delete("/teams/{team_id}/members/{staff_id}", status_code=204)
def remove_member(team_id: str, staff_id: str, ctx: TeamManager) -> Response:
    service.remove_member(ctx, team_id, staff_id)
    return Response(status_code=204)


@router.put("/teams/{team_id}/areas", response_model=TeamOut, summary="Set the team's service area")
def set_areas(team_id: str, body: AreasIn, ctx: TeamManager) -> TeamOut:
    return team_out(ctx, service.set_areas(ctx, team_id, body.areas))


@router.post("/teams/{team_id}/dissolve", response_model=TeamOut)
def dissolve(team_id: str, body: ReasonIn, ctx: TeamManager) -> TeamOut:
    return team_out(ctx, service.dissolve_team(ctx, team_id, body.reason))


@router.get("/teams/{team_id}/work-list", response_model=WorkListOut, summary="Overdue services of the team's residents")
def work_list(team_id: str, ctx: TeamWorker) -> WorkListOut:
    found = service.work_list(ctx, team_id)
    return WorkListOut(team_id=found.team.id, overdue_total=found.overdue_total, ending_soon=found.ending_soon,
                       overdue=[WorkItemOut(contract_id=i.contract.id, resident_name=i.name,
                                            end_date=i.contract.end_date, overdue=[progress_out(p) for p in i.overdue])
                                for i in found.overdue])


@router.get("/teams/{team_id}/outreach", response_model=list[OutreachOut],
            summary="Residents of the team's area without a contract (names masked)")
def outreach(team_id: str, ctx: TeamWorker, after: Annotated[str, Query(max_length=32)] = "",
             limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[OutreachOut]:
    return [OutreachOut(**i.__dict__) for i in service.outreach(ctx, team_id, after=after, limit=limit)]


# -- packages -------------------------------------------------------------------------------------

@router.post("/packages", response_model=PackageOut, status_code=201, summary="Define a service package")
def create_package(body: PackageIn, ctx: PackageAuthor, response: Response,
                   idempotency_key: IdempotencyKey = None) -> PackageOut:
    values = body.model_dump()
    values["eligibility"] = body.eligibility.model_dump(exclude_none=True)
    package = _once(ctx, idempotency_key, "fd.package", values, response,
                    lambda: service.create_package(ctx, **values), lambda ref: service.get_package(ctx, ref))
    return PackageOut.of(package)


@router.get("/packages", response_model=list[PackageOut], summary="The packages a centre's teams offer")
def list_packages(ctx: Anyone, institution_id: Annotated[str, Query(max_length=24)]) -> list[PackageOut]:
    return [PackageOut.of(p) for p in service.packages_for(ctx, institution_id)]


@router.post("/packages/{package_id}/revise", response_model=PackageOut, status_code=201,
             summary="A new version of a package (signed contracts keep their terms)")
def revise_package(package_id: str, body: PackageIn, ctx: PackageAuthor) -> PackageOut:
    values = body.model_dump(exclude={"region_code", "institution_id"})
    values["eligibility"] = body.eligibility.model_dump(exclude_none=True)
    return PackageOut.of(service.revise_package(ctx, package_id, **values))


# -- conditions -----------------------------------------------------------------------------------

@router.post("/conditions", response_model=ConditionOut, status_code=201, summary="Record a condition (key population)")
def record_condition(body: ConditionIn, ctx: TeamWorker) -> ConditionOut:
    return ConditionOut.model_validate(service.record_condition(ctx, body.ehc_id, body.code), from_attributes=True)


# -- contracts (staff) ------------------------------------------------------------------------------

@router.post("/contracts", response_model=ContractOut, status_code=201,
             summary="Sign a resident at the window (card) or at home (their dynamic QR code as consent)")
def sign(body: SignIn, ctx: ContractDesk, response: Response, idempotency_key: IdempotencyKey = None) -> ContractOut:
    contract = _once(ctx, idempotency_key, "fd.sign", body.model_dump(), response,
                     lambda: service.sign(ctx, body.team_id, package_ids=body.package_ids, ehc_id=body.ehc_id,
                                          code=body.code),
                     lambda ref: service.get_contract(ctx, ref))
    return contract_out(ctx, contract, name=True)


@router.post("/contracts/lookup", response_model=list[ContractOut], summary="A card holder's contracts with your teams")
def lookup(body: ContractLookupIn, ctx: ContractDesk) -> list[ContractOut]:
    return [contract_out(ctx, c, name=True) for c in service.contracts_of_card(ctx, body.ehc_id)]


@router.get("/contracts/{contract_id}", response_model=ContractOut)
def get_contract(contract_id: str, ctx: ContractDesk) -> ContractOut:
    return contract_out(ctx, service.get_contract(ctx, contract_id), name=True)


@router.get("/contracts/{contract_id}/events", response_model=list[EventOut])
def contract_events(contract_id: str, ctx: ContractDesk) -> list[EventOut]:
    contract = service.get_contract(ctx, contract_id)
    return [EventOut.model_validate(e, from_attributes=True) for e in service.history(ctx, contract)]


@router.post("/contracts/{contract_id}/renew", response_model=ContractOut, status_code=201)
def renew(contract_id: str, ctx: ContractDesk, response: Response, idempotency_key: IdempotencyKey = None) -> ContractOut:
    contract = _once(ctx, idempotency_key, f"fd.renew:{contract_id}", {}, response,
                     lambda: service.renew(ctx, contract_id), lambda ref: service.get_contract(ctx, ref))
    return contract_out(ctx, contract)


@router.post("/contracts/{contract_id}/terminate", response_model=ContractOut, summary="End a contract (reason required)")
def terminate(contract_id: str, body: ReasonIn, ctx: ContractDesk) -> ContractOut:
    return contract_out(ctx, service.terminate(ctx, contract_id, body.reason))


@router.post("/contracts/{contract_id}/change-team", response_model=ContractOut, status_code=201)
def change_team(contract_id: str, body: ChangeTeamIn, ctx: ContractDesk, response: Response,
                idempotency_key: IdempotencyKey = None) -> ContractOut:
    contract = _once(ctx, idempotency_key, f"fd.change:{contract_id}", body.model_dump(), response,
                     lambda: service.change_team(ctx, contract_id, body.team_id, body.reason),
                     lambda ref: service.get_contract(ctx, ref))
    return contract_out(ctx, contract)


# -- delivery and referral ---------------------------------------------------------------------------

@router.post("/contracts/{contract_id}/services", response_model=ServiceRecordOut, status_code=201,
             summary="Record a follow-up or check-up (with the visit's card use when a code is scanned)")
def record_service(contract_id: str, body: ServiceRecordIn, ctx: TeamWorker, response: Response,
                   idempotency_key: IdempotencyKey = None) -> ServiceRecordOut:
    measurements = service.Measurements(**body.model_dump(include={"systolic_mmhg", "diastolic_mmhg",
                                                                  "glucose_mmol_x10", "weight_kg_x10", "notes"}))
    row = _once(ctx, idempotency_key, f"fd.service:{contract_id}", body.model_dump(mode="json"), response,
                lambda: service.record_service(ctx, contract_id, body.service_code, measurements, code=body.code,
                                               performed_at=body.performed_at),
                lambda ref: service.get_delivery(ctx, ref))
    return record_out(ctx, row)


@router.get("/contracts/{contract_id}/services", response_model=list[ServiceRecordOut])
def list_services(contract_id: str, ctx: TeamWorker) -> list[ServiceRecordOut]:
    contract = service.get_contract(ctx, contract_id)
    return [record_out(ctx, d) for d in service.deliveries(ctx, contract)]


@router.post("/contracts/{contract_id}/referrals", response_model=ReferralOut, status_code=201,
             summary="Refer the resident to a specialist (booked into the hospital's referral quota)")
def refer(contract_id: str, body: ReferralIn, ctx: TeamWorker, response: Response,
          idempotency_key: IdempotencyKey = None) -> ReferralOut:
    row = _once(ctx, idempotency_key, f"fd.referral:{contract_id}", body.model_dump(), response,
                lambda: service.refer(ctx, contract_id, **body.model_dump()),
                lambda ref: service.get_referral(ctx, ref))
    return ReferralOut.of(row)


# -- coverage -------------------------------------------------------------------------------------

@router.get("/coverage/centres/{institution_id}", response_model=CoverageOut, summary="Coverage per team of a centre")
def centre_coverage(institution_id: str, ctx: CoverageReader) -> CoverageOut:
    return coverage_out(*service.centre_coverage(ctx, institution_id))


@router.get("/coverage/regions/{region_code}", response_model=CoverageOut, summary="Coverage per centre of a region")
def regional_coverage(region_code: str, ctx: RegionalReader) -> CoverageOut:
    return coverage_out(*service.regional_coverage(ctx, region_code))


# -- the resident ----------------------------------------------------------------------------------

@me_router.get("", response_model=list[ContractOut], summary="My family doctor (and my family members')")
def my_family_doctor(ctx: Resident) -> list[ContractOut]:
    return [contract_out(ctx, m.contract, relation=m.relation) for m in service.my_family_doctor(ctx)]


@me_router.get("/teams", response_model=list[TeamOut], summary="Teams serving my (or a family member's) area")
def my_teams(ctx: Resident, member: Annotated[str | None, Query(max_length=64)] = None) -> list[TeamOut]:
    _, teams, _ = service.offer_for(ctx, member)
    return [team_out(ctx, t) for t in teams]


@me_router.post("/contracts", response_model=ContractOut, status_code=201, summary="Sign for myself or a family member")
def me_sign(body: SignIn, ctx: Resident, response: Response, idempotency_key: IdempotencyKey = None) -> ContractOut:
    contract = _once(ctx, idempotency_key, "fd.me.sign", body.model_dump(), response,
                     lambda: service.sign(ctx, body.team_id, package_ids=body.package_ids, ehc_id=body.ehc_id),
                     lambda ref: service.get_contract(ctx, ref))
    return contract_out(ctx, contract)


@me_router.post("/contracts/{contract_id}/renew", response_model=ContractOut, status_code=201)
def me_renew(contract_id: str, ctx: Resident, response: Response, idempotency_key: IdempotencyKey = None) -> ContractOut:
    contract = _once(ctx, idempotency_key, f"fd.me.renew:{contract_id}", {}, response,
                     lambda: service.renew(ctx, contract_id), lambda ref: service.get_contract(ctx, ref))
    return contract_out(ctx, contract)


@me_router.post("/contracts/{contract_id}/terminate", response_model=ContractOut)
def me_terminate(contract_id: str, body: ReasonIn, ctx: Resident) -> ContractOut:
    return contract_out(ctx, service.terminate(ctx, contract_id, body.reason))


@me_router.post("/contracts/{contract_id}/change-team", response_model=ContractOut, status_code=201)
def me_change_team(contract_id: str, body: ChangeTeamIn, ctx: Resident) -> ContractOut:
    return contract_out(ctx, service.change_team(ctx, contract_id, body.team_id, body.reason))
