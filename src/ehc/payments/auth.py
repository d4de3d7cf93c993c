"""Who may do what with payments.

- A hospital's cashiers and its hospital systems send bills, see their institution's bills, settle a
  bill by scanning the resident's code, and refund (another institution's bill answers 404).
- Residents link their insurance and bank card (and their family members', as guardian), see their
  bills and receipts, draw a payment code for a bill and confirm a payment in the app.
- Reconciliation and the ledger check are the platform's finance: platform admins and auditors.
- The bank's callbacks come unauthenticated and are accepted only with the bank's SM2 signature.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ..kit.auth import AnyCtx, ResidentCtx, require_roles
from ..kit.context import Ctx
from ..kit.roles import HOSPITAL_SYSTEM, Role

Cashier = Annotated[Ctx, Depends(require_roles(Role.CASHIER, Role.WINDOW_CLERK, HOSPITAL_SYSTEM))]
BillReader = Annotated[Ctx, Depends(require_roles(Role.CASHIER, Role.WINDOW_CLERK, Role.INSTITUTION_ADMIN,
                                                  HOSPITAL_SYSTEM))]
Payer = ResidentCtx
Finance = Annotated[Ctx, Depends(require_roles(Role.PLATFORM_ADMIN, Role.AUDITOR))]
CallbackCaller = AnyCtx
