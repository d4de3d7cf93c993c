"""Staff pages: sign-in, the staff home, and the institution admin's pages (departments, terminals,
staff; keys live in ``web/keys.py``).

The fourth door into the same services as the API: a page finds out who is signed in from the
``ehc_staff`` cookie (the bearer token of ``POST /api/v1/auth/staff/token``, HttpOnly, SameSite=Lax),
applies the very role rule of the API's typed dependency (``institutions.auth.InstitutionAdmin``)
and the service's reach (``institutions.service.managed_institution``), then calls the service. A
role that may not manage institutions gets a 403 page; an institution out of reach is "not found",
exactly as the API answers.
"""

from __future__ import annotations

from fastapi import APIRouter

from . import card_uses, institution, keys, mpi_review, printing, sign_in

router = APIRouter()
router.include_router(sign_in.router)
router.include_router(printing.router)
router.include_router(institution.router)
router.include_router(mpi_review.router)
router.include_router(keys.router)
router.include_router(card_uses.router)
