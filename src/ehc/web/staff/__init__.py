"""Staff pages: sign-in and the staff home (``sign_in``), printing a card's static code
(``printing``), the institution admin's pages (``institution``: departments, terminals, staff;
``keys``: hospital systems' apps and keys), the master index's review queue (``mpi_review``) and
card-use monitoring (``card_uses``), the window clerk's card desk (``desk``), the cashier's bills and
finance's reconciliation (``payments``), the statistics console (``statistics``) and its report
scheduler (``statistics_schedules``).

The fourth door into the same services as the API: a page finds out who is signed in from the
``ehc_staff`` cookie (the bearer token of ``POST /api/v1/auth/staff/token``, HttpOnly, SameSite=Lax),
resolved as the API resolves it (``accounts.auth.page_actor``), applies the very role rule of the
API's typed dependency (e.g. ``institutions.auth.InstitutionAdmin``) and the service's reach
(``institutions.service.managed_institution``), then calls the service. A role that may not manage
institutions gets a 403 page; an institution out of reach is "not found", exactly as the API answers.
"""

from __future__ import annotations

from fastapi import APIRouter

from . import (appointments, card_uses, desk, family_doctors, institution, keys, mpi_review, payments, printing, records,
               sign_in, statistics, statistics_schedules)

router = APIRouter()
router.include_router(sign_in.router)
router.include_router(printing.router)
router.include_router(institution.router)
router.include_router(mpi_review.router)
router.include_router(keys.router)
router.include_router(card_uses.router)
router.include_router(family_doctors.router)
router.include_router(appointments.router)
router.include_router(records.router)
router.include_router(statistics_schedules.router)
router.include_router(statistics.router)
router.include_router(desk.router)
router.include_router(payments.router)
