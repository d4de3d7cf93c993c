"""Institution registry API: thin. Parse, authorise (auth.py), call service.py, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from . import service
from .auth import InstitutionReader, InstitutionRegistrar, ManagedInstitution, VisibleInstitution
from .codes import DEPARTMENTS, KIND_LABELS, TERMINAL_LABELS, TERMINAL_TYPE
from .schemas import (
    CodeLabel,
    DepartmentChanges,
    DepartmentIn,
    DepartmentOut,
    InstitutionChanges,
    InstitutionIn,
    InstitutionOut,
    InstitutionPage,
    TerminalChanges,
    TerminalIn,
    TerminalOut,
)

router = APIRouter(prefix="/api/v1/institutions", tags=["institutions"])


def _changes(body: InstitutionChanges | TerminalChanges) -> dict:
    # Only the fields the client sent: absent means "leave it", null means "clear it".
    return {name: getattr(body, name) for name in body.model_fields_set}


@router.post("", response_model=InstitutionOut, status_code=201, summary="Register an institution")
def create_institution(body: InstitutionIn, ctx: InstitutionRegistrar) -> InstitutionOut:
    return InstitutionOut.of(service.register_institution(ctx, **body.model_dump()))


@router.get("", response_model=InstitutionPage, summary="Institutions you may see (your region, your own)")
def list_institutions(
    ctx: InstitutionReader,
    kind: str | None = None,
    region_code: Annotated[str | None, Query(max_length=6, description="Within this GB/T 2260 region")] = None,
    name: Annotated[str | None, Query(max_length=200, description="Name contains")] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> InstitutionPage:
    items, total = service.list_institutions(ctx, kind=kind, region_code=region_code, name=name,
                                             limit=limit, offset=offset)
    return InstitutionPage(items=[InstitutionOut.of(i) for i in items], total=total, limit=limit, offset=offset)


@router.get("/codes/departments", response_model=list[CodeLabel], summary="Standard department codes")
def department_codes() -> list[CodeLabel]:
    return [CodeLabel(code=code, label=en, label_zh=zh) for code, (en, zh) in DEPARTMENTS.items()]


@router.get("/codes/kinds", response_model=list[CodeLabel], summary="Institution kinds")
def kind_codes() -> list[CodeLabel]:
    return [CodeLabel(code=code, label=en, label_zh=zh) for code, (en, zh) in KIND_LABELS.items()]


@router.get("/codes/terminal-roles", response_model=list[CodeLabel],
            summary="Terminal roles (the label says the terminal type code each one reports)")
def terminal_codes() -> list[CodeLabel]:
    return [CodeLabel(code=role.value, label=f"{en} (type {TERMINAL_TYPE[role].value})", label_zh=zh)
            for role, (en, zh) in TERMINAL_LABELS.items()]


@router.get("/{institution_id}", response_model=InstitutionOut)
def get_institution(scoped: VisibleInstitution) -> InstitutionOut:
    return InstitutionOut.of(scoped.institution)


@router.patch("/{institution_id}", response_model=InstitutionOut, summary="Change name, kind, region or level")
def update_institution(institution_id: str, body: InstitutionChanges, ctx: InstitutionRegistrar) -> InstitutionOut:
    return InstitutionOut.of(service.update_institution(ctx, institution_id, **_changes(body)))


# -- departments ----------------------------------------------------------------------------------

@router.get("/{institution_id}/departments", response_model=list[DepartmentOut])
def list_departments(scoped: VisibleInstitution) -> list[DepartmentOut]:
    return [DepartmentOut.of(d) for d in service.list_departments(scoped.ctx.session, scoped.institution)]


@router.post("/{institution_id}/departments", response_model=DepartmentOut, status_code=201)
def add_department(body: DepartmentIn, scoped: ManagedInstitution) -> DepartmentOut:
    return DepartmentOut.of(service.add_department(scoped.ctx, scoped.institution, code=body.code, name=body.name))


@router.get("/{institution_id}/departments/{code}", response_model=DepartmentOut)
def get_department(code: str, scoped: VisibleInstitution) -> DepartmentOut:
    return DepartmentOut.of(service.get_department(scoped.ctx.session, scoped.institution, code))


@router.patch("/{institution_id}/departments/{code}", response_model=DepartmentOut, summary="Rename a department")
def rename_department(code: str, body: DepartmentChanges, scoped: ManagedInstitution) -> DepartmentOut:
    return DepartmentOut.of(service.rename_department(scoped.ctx, scoped.institution, code, name=body.name))


@router.delete("/{institution_id}/departments/{code}", status_code=204, response_class=Response,
               summary="Remove a department no terminal belongs to")
def remove_department(code: str, scoped: ManagedInstitution) -> Response:
    service.remove_department(scoped.ctx, scoped.institution, code)
    return Response(status_code=204)


# -- terminals ------------------------------------------------------------------------------------

def _terminal_out(scoped, terminal) -> TerminalOut:  # noqa: ANN001
    return TerminalOut.of(terminal, service.department_code_of(scoped.ctx.session, terminal))


@router.get("/{institution_id}/terminals", response_model=list[TerminalOut])
def list_terminals(
    scoped: VisibleInstitution, status: Annotated[str | None, Query(description="active or retired")] = None
) -> list[TerminalOut]:
    return [_terminal_out(scoped, t) for t in service.list_terminals(scoped.ctx.session, scoped.institution, status)]


@router.post("/{institution_id}/terminals", response_model=TerminalOut, status_code=201)
def register_terminal(body: TerminalIn, scoped: ManagedInstitution) -> TerminalOut:
    return _terminal_out(scoped, service.register_terminal(scoped.ctx, scoped.institution, **body.model_dump()))


@router.get("/{institution_id}/terminals/{terminal_id}", response_model=TerminalOut)
def get_terminal(terminal_id: str, scoped: VisibleInstitution) -> TerminalOut:
    return _terminal_out(scoped, service.get_terminal(scoped.ctx.session, scoped.institution, terminal_id))


@router.patch("/{institution_id}/terminals/{terminal_id}", response_model=TerminalOut,
              summary="Rename, move between departments, retire or reactivate a terminal")
def update_terminal(terminal_id: str, body: TerminalChanges, scoped: ManagedInstitution) -> TerminalOut:
    return _terminal_out(scoped, service.update_terminal(scoped.ctx, scoped.institution, terminal_id,
                                                         **_changes(body)))
