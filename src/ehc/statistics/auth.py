"""Who reads statistics: the health commission's regional operators and auditors (their region and
below, ``service.operator_region``) and platform admins (the whole country). Feeding the store by
hand is the platform admins' (it also runs by itself in ``ehc serve``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ..kit.auth import require_roles
from ..kit.context import Ctx
from ..kit.roles import Role

StatsReader = Annotated[Ctx, Depends(require_roles(Role.REGIONAL_OPERATOR, Role.AUDITOR, Role.PLATFORM_ADMIN))]
StatsAdmin = Annotated[Ctx, Depends(require_roles(Role.PLATFORM_ADMIN))]
