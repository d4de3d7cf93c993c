"""Who may do what with QR codes.

- A resident draws dynamic codes for their own card and their guarded family members' (``me.auth``).
- Window work prints static codes (the card window's people: clerks, admins, the hospital system).
- Card uses are monitored by an institution's admin and its hospital systems, and by the commission's
  regional operators, auditors and platform admins (``CardUseMonitor``).
- Verifying a code records a card use at an institution: the staff who scan at their desks (window,
  kiosk, workstation, cashier, family doctor) and the institution's hospital systems. Not the
  commission's roles nor the institution's admin: they scan nothing, and a use needs an institution.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ..kit.auth import ResidentCtx, require_roles
from ..kit.roles import HOSPITAL_SYSTEM, Role
from ..kit.context import Ctx

# The same people as the card window's work (cards.auth.CardClerk).
QRPrinter = Annotated[
    Ctx,
    Depends(require_roles(Role.WINDOW_CLERK, Role.INSTITUTION_ADMIN, Role.PLATFORM_ADMIN, HOSPITAL_SYSTEM)),
]
QRHolder = ResidentCtx
QRVerifier = Annotated[
    Ctx,
    Depends(require_roles(Role.WINDOW_CLERK, Role.DOCTOR, Role.NURSE, Role.FAMILY_DOCTOR, Role.CASHIER,
                          HOSPITAL_SYSTEM)),
]

# Monitoring: an institution's admin and its hospital systems (their institution), the commission's
# regional operators and auditors (their region, or everywhere for a national auditor), platform
# admins (everywhere). Desk staff scan; they do not watch their colleagues' scans.
CardUseMonitor = Annotated[
    Ctx, Depends(require_roles(Role.INSTITUTION_ADMIN, Role.REGIONAL_OPERATOR, Role.AUDITOR, Role.PLATFORM_ADMIN,
                               HOSPITAL_SYSTEM))
]
