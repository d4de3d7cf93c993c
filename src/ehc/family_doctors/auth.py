"""Who may do what with family doctors, as typed dependencies (the role part; which team, contract
or region a caller reaches is the service's: out of reach answers 404, docs/family-doctors.md).

- Teams, their members and areas: the centre's admin (and platform admins).
- Packages: a region's operator (region-wide), a centre's admin (its own), platform admins.
- A region's policy (capacity, term, reminder, reasons to change team): its operator, platform admins.
- The contract desk (sign at the window or at home, look up, renew, end, change team): window clerks
  and the centre's admin, the team's clinicians (family doctors, doctors, nurses), the centre's own
  hospital systems; the service keeps each to their own centre's teams.
- Team work (record services and conditions, the work list, referrals): the team's clinicians and
  the centre's hospital systems.
- Coverage: a centre's admin and its clinicians; the region's operators and auditors.
- Residents act for themselves and the family members they guard (``/api/v1/me/family-doctor``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ..kit.auth import AnyCtx, ResidentCtx, require_roles
from ..kit.context import Ctx
from ..kit.roles import HOSPITAL_SYSTEM, INSTITUTION_ROLES, Role

CLINICIANS = (Role.FAMILY_DOCTOR, Role.DOCTOR, Role.NURSE)

TeamManager = Annotated[Ctx, Depends(require_roles(Role.INSTITUTION_ADMIN, Role.PLATFORM_ADMIN))]
PackageAuthor = Annotated[Ctx, Depends(require_roles(Role.INSTITUTION_ADMIN, Role.REGIONAL_OPERATOR,
                                                     Role.PLATFORM_ADMIN))]
PolicySetter = Annotated[Ctx, Depends(require_roles(Role.REGIONAL_OPERATOR, Role.PLATFORM_ADMIN))]
TeamReader = Annotated[Ctx, Depends(require_roles(*INSTITUTION_ROLES, Role.REGIONAL_OPERATOR, Role.AUDITOR,
                                                  Role.PLATFORM_ADMIN, HOSPITAL_SYSTEM))]
ContractDesk = Annotated[Ctx, Depends(require_roles(Role.WINDOW_CLERK, Role.INSTITUTION_ADMIN, *CLINICIANS,
                                                    Role.PLATFORM_ADMIN, HOSPITAL_SYSTEM))]
TeamWorker = Annotated[Ctx, Depends(require_roles(*CLINICIANS, Role.PLATFORM_ADMIN, HOSPITAL_SYSTEM))]
CoverageReader = Annotated[Ctx, Depends(require_roles(Role.INSTITUTION_ADMIN, *CLINICIANS, Role.REGIONAL_OPERATOR,
                                                      Role.AUDITOR, Role.PLATFORM_ADMIN))]
RegionalReader = Annotated[Ctx, Depends(require_roles(Role.REGIONAL_OPERATOR, Role.AUDITOR, Role.PLATFORM_ADMIN))]
# Packages and policies are public reference data (what a package offers and costs, the region's rules).
Anyone = AnyCtx
Resident = ResidentCtx
