"""Who may do what with cards."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ..accounts.auth import AnyCtx, require_roles
from ..accounts.roles import Role
from ..kit.context import Ctx

# Anyone may apply: the public website (anonymous), or staff registering at a window or workstation.
Applicant = AnyCtx

# Window work: look up, review, report lost, reissue, cancel, temporary cards.
CardClerk = Annotated[
    Ctx,
    Depends(require_roles(Role.WINDOW_CLERK, Role.NURSE, Role.DOCTOR, Role.INSTITUTION_ADMIN, Role.PLATFORM_ADMIN)),
]

# Approve or reject an application that the verifier sent to review.
CardReviewer = Annotated[Ctx, Depends(require_roles(Role.WINDOW_CLERK, Role.INSTITUTION_ADMIN, Role.PLATFORM_ADMIN))]
