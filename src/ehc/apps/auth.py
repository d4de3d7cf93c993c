"""Who may do what with institution apps.

Managing an app and its keys takes an institution admin (their own institution's apps only: that
scope is checked in service.py, where the app's institution is known) or a platform admin. Hospital
systems themselves authenticate through ``accounts.auth.current_actor``, which hands signed requests
to ``service.authenticate``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ..kit.auth import AnyCtx, require_roles
from ..kit.roles import Role
from ..kit.context import Ctx

AppManager = Annotated[Ctx, Depends(require_roles(Role.INSTITUTION_ADMIN, Role.PLATFORM_ADMIN))]

# The signature check anyone can try: anonymous callers see "anonymous", signed ones their app.
AnyCaller = AnyCtx
