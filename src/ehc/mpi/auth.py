"""Who may use the master index's API (the role part; which identifier systems, regions and reviews
a caller reaches is decided in ``xref.py`` and ``review.py``, and answers 403 / 404 there).

- Bind and unbind cross-references: the hospital at work, i.e. its systems over the signed API and
  its window, doctor, nurse and admin staff (``xref.check_bind`` then limits them to their own
  numbers, and social security / insurance numbers to window work).
- Look people up by an identifier and list their cross-references: the same hospital callers, and
  the health commission's regional operators (their region) and platform admins. Not family
  doctors or cashiers (they scan codes, they do not manage identities), nor auditors (they read the
  audit trail, not the index).
- The review queue: regional operators, platform admins, and institution admins for their own
  institution's submitted records. A person's judgement: no hospital system.
- Merging and unmerging two people of the index: regional operators and platform admins only. A
  temporary emergency card's merge stays window work (``POST /api/v1/cards/{id}/merge``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ..kit.auth import require_roles
from ..kit.roles import HOSPITAL_SYSTEM, Role
from ..kit.context import Ctx

_HOSPITAL = (Role.WINDOW_CLERK, Role.DOCTOR, Role.NURSE, Role.INSTITUTION_ADMIN, HOSPITAL_SYSTEM)
_COMMISSION = (Role.REGIONAL_OPERATOR, Role.PLATFORM_ADMIN)

XrefBinder = Annotated[Ctx, Depends(require_roles(*_HOSPITAL))]
XrefReader = Annotated[Ctx, Depends(require_roles(*_HOSPITAL, *_COMMISSION))]
MatchReviewer = Annotated[Ctx, Depends(require_roles(*_COMMISSION, Role.INSTITUTION_ADMIN))]
MergeOperator = Annotated[Ctx, Depends(require_roles(*_COMMISSION))]
# Real-time matching: the hospital at work, as for binding its numbers (see match in endpoints.py).
MatchSubmitter = Annotated[Ctx, Depends(require_roles(*_HOSPITAL))]
