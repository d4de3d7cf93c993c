"""Who may do what with health records. Consent (service.access) then decides which records a reader sees."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ..kit.auth import ResidentCtx, require_roles
from ..kit.context import Ctx
from ..kit.roles import HOSPITAL_SYSTEM, Role

# A hospital's systems publish and correct records (signed API), never a person at a desk: what they send
# is the hospital's chart.
RecordPublisher = Annotated[Ctx, Depends(require_roles(HOSPITAL_SYSTEM))]
# Clinicians (doctors, nurses) and their hospital's systems read a patient's records, under consent.
RecordReader = Annotated[Ctx, Depends(require_roles(Role.DOCTOR, Role.NURSE, HOSPITAL_SYSTEM))]
# Auditors and platform admins review break-glass reads across residents.
BreakGlassReviewer = Annotated[Ctx, Depends(require_roles(Role.AUDITOR, Role.PLATFORM_ADMIN))]
# The resident: their own timeline, download, consents and break-glass notices.
RecordOwner = ResidentCtx
