"""Who may do what with QR codes.

- A resident draws dynamic codes for their own card and their guarded family members' (``me.auth``).
- Window work prints static codes (``cards.auth.CardClerk``: clerks, admins, the hospital system).
- Verifying a code records a card use at an institution: the staff who scan at their desks (window,
  kiosk, workstation, cashier, family doctor) and the institution's hospital systems. Not the
  commission's roles nor the institution's admin: they scan nothing, and a use needs an institution.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ..accounts.auth import require_roles
from ..accounts.roles import HOSPITAL_SYSTEM, Role
from ..cards.auth import CardClerk
from ..kit.context import Ctx
from ..me.auth import Resident

QRPrinter = CardClerk
QRHolder = Resident
QRVerifier = Annotated[
    Ctx,
    Depends(require_roles(Role.WINDOW_CLERK, Role.DOCTOR, Role.NURSE, Role.FAMILY_DOCTOR, Role.CASHIER,
                          HOSPITAL_SYSTEM)),
]
