"""Who may do what with cards."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ..kit.auth import AnyCtx, require_roles
from ..kit.roles import HOSPITAL_SYSTEM, Role
from ..kit.context import Ctx

# Anyone may apply: the public website (anonymous), or staff registering at a window or workstation.
Applicant = AnyCtx

# Window work: change a holder's details, report lost, recover, reissue, cancel, bind family members,
# merge temporary cards. It changes or ends an existing card (a cancellation is final), so it is the
# card window's job, not a clinician's. A hospital system (signed machine API) does the same work for
# the clerk at its own window, so it passes here too; the clerk's name travels as the request's operator.
CardClerk = Annotated[
    Ctx,
    Depends(require_roles(Role.WINDOW_CLERK, Role.INSTITUTION_ADMIN, Role.PLATFORM_ADMIN, HOSPITAL_SYSTEM)),
]

# Work at a window or at a clinical workstation: look a card up and read it (and its history and
# family), and issue the cards a ward needs: a temporary card for an unidentified emergency patient,
# a newborn's card. Doctors and nurses do this too.
CardStaff = Annotated[
    Ctx,
    Depends(require_roles(Role.WINDOW_CLERK, Role.NURSE, Role.DOCTOR, Role.INSTITUTION_ADMIN, Role.PLATFORM_ADMIN,
                          HOSPITAL_SYSTEM)),
]

# Approve or reject an application that the verifier sent to review: a person's judgement, so not
# open to hospital systems.
CardReviewer = Annotated[Ctx, Depends(require_roles(Role.WINDOW_CLERK, Role.INSTITUTION_ADMIN, Role.PLATFORM_ADMIN))]
