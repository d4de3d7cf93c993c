"""Resident pages: sign in with a text-message code (or a password), "my card" with the family
members one looks after, reporting a card lost, "who looked at my data", where my card was used and
my password, my bills and my payment links.

The same services as the resident API (``/api/v1/me``): sign-in rules in ``accounts/residents.py``,
which cards a resident reaches in ``me/service.py`` (the resident's own and those bound to them as
guardian; any other is "not found"), card rules in ``cards/service.py``, the access log in
``audit/service.py``, shaped exactly as the API shapes it (``audit.schemas.access_log_entry``: operators masked).

The sign-in is the ``ehc_resident`` cookie (``accounts.auth.set_resident_cookie``: HttpOnly,
SameSite=Lax, Secure over HTTPS). Between asking for a code and typing it, the phone number waits in
a short-lived cookie sealed with the platform's SM4 key, so it is neither in a URL nor readable in
the browser.
"""

from __future__ import annotations

from fastapi import APIRouter

from . import access_log, account, appointments, card, family_doctor, payments, records, sign_in

router = APIRouter()
router.include_router(sign_in.router)
router.include_router(card.router)
router.include_router(access_log.router)
router.include_router(family_doctor.router)
router.include_router(appointments.router)
router.include_router(records.router)
router.include_router(account.router)
router.include_router(payments.router)
