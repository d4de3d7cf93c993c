"""Who may do what with cards."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ..accounts.auth import AnyCtx, require_roles
from ..accounts.roles import HOSPITAL_SYSTEM, Role
from ..kit.context import Ctx

# Anyone may apply: the public website (anonymous), or staff registering at a window or workstation.
Applicant = AnyCtx

# Window work: look up, review, report lost, reissue, cancel, temporary cards. A hospital system
# (signed machine API) does the same work for the clerk at its own window, so it passes here too;
# the clerk's name travels as the request's operator.
CardClerk = Annotated[
    Ctx,
    Depends(require_roles(Role.WINDOW_CLERK, Role.NURSE, Role.DOCTOR, Role.INSTITUTION_ADMIN, Role.PLATFORM_ADMIN,
                          HOSPITAL_SYSTEM)),
]

# Approve or reject an application that the verifier sent to review: a person's judgement, so not
# open to hospital systems.
CardReviewer = Annotated[Ctx, Depends(require_roles(Role.WINDOW_CLERK, Role.INSTITUTION_ADMIN, Role.PLATFORM_ADMIN))]
