"""Who may do what in the institution registry, as typed dependencies.

The role part is checked here (a role that may never do something gets 403 ``role_not_allowed``,
an anonymous caller 401). Which institutions a role reaches (a regional operator's region, an
admin's own institution) is ``policy.py``, applied by the service: out of reach is 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from ..kit.auth import require_roles
from ..kit.roles import HOSPITAL_SYSTEM, INSTITUTION_ROLES, Role
from ..kit.context import Ctx
from . import service
from .models import Institution

# Register and update institutions: the health commission's operators.
InstitutionRegistrar = Annotated[Ctx, Depends(require_roles(Role.REGIONAL_OPERATOR, Role.PLATFORM_ADMIN))]

# Read the registry: the commission (within its reach), institution staff and the institution's own
# hospital systems (their own institution: policy.own_institution), e.g. a HIS learning the terminal
# ids and department codes it reports card uses with.
InstitutionReader = Annotated[
    Ctx, Depends(require_roles(Role.REGIONAL_OPERATOR, Role.AUDITOR, Role.PLATFORM_ADMIN, *INSTITUTION_ROLES,
                               HOSPITAL_SYSTEM))
]

# Manage an institution's departments and terminals (its staff: accounts.auth).
InstitutionAdmin = Annotated[Ctx, Depends(require_roles(Role.INSTITUTION_ADMIN, Role.PLATFORM_ADMIN))]


@dataclass
class Scoped:
    """A request's unit of work together with the institution named in its path, already checked."""

    ctx: Ctx
    institution: Institution


def _visible(institution_id: str, ctx: InstitutionReader) -> Scoped:
    return Scoped(ctx, service.get_institution(ctx, institution_id))


def _managed(institution_id: str, ctx: InstitutionAdmin) -> Scoped:
    return Scoped(ctx, service.managed_institution(ctx, institution_id))


# The institution of the path, which the caller may read / manage (404 when out of reach).
VisibleInstitution = Annotated[Scoped, Depends(_visible)]
ManagedInstitution = Annotated[Scoped, Depends(_managed)]
