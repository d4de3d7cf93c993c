"""Who may read the audit trail: a resident their own access log, auditors all of it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ..kit.auth import ResidentCtx as Resident
from ..kit.auth import require_roles
from ..kit.roles import Role
from ..kit.context import Ctx

# A signed-in resident: their own access log, and those of the family members bound to them (the
# resident API's rule, ``me/auth.py`` and ``me/service.py``).
ResidentSelf = Resident

# Search the whole trail: the health commission's auditors, and platform admins.
AuditReader = Annotated[Ctx, Depends(require_roles(Role.AUDITOR, Role.PLATFORM_ADMIN))]
