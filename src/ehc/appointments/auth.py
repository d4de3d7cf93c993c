"""Who may do what with appointments.

- The schedule (sessions and their free periods) is public: anyone may search it, as a hospital's
  timetable on its website is.
- Residents book, confirm, cancel, move and wait for themselves and the family members they guard
  (``/api/v1/me/appointments``).
- The desk books for a card shown to it: window clerks, family doctors (the referral quota) and the
  institution's hospital systems (its HIS, and its kiosks, which sign as the HIS with channel 0200 and
  name their terminal).
- Schedulers publish sessions, templates and holidays and suspend sessions: the institution's admin
  and its hospital systems (a HIS that keeps the timetable).
- Check-in scans a code at the department: clerks, doctors, nurses and the hospital systems; they and
  the admin see the day's list.
Which institution a caller reaches is their own (``service._scope``): another institution's session or
booking answers 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from ..kit.auth import AnyCtx, ResidentCtx, require_roles
from ..kit.context import Ctx
from ..kit.roles import HOSPITAL_SYSTEM, Role

ScheduleReader = AnyCtx
AppointmentHolder = ResidentCtx
BookingDesk = Annotated[Ctx, Depends(require_roles(Role.WINDOW_CLERK, Role.FAMILY_DOCTOR, HOSPITAL_SYSTEM))]
Scheduler = Annotated[Ctx, Depends(require_roles(Role.INSTITUTION_ADMIN, HOSPITAL_SYSTEM))]
CheckInDesk = Annotated[Ctx, Depends(require_roles(Role.WINDOW_CLERK, Role.DOCTOR, Role.NURSE, HOSPITAL_SYSTEM))]
DayListReader = Annotated[Ctx, Depends(require_roles(Role.WINDOW_CLERK, Role.DOCTOR, Role.NURSE,
                                                     Role.INSTITUTION_ADMIN, HOSPITAL_SYSTEM))]
