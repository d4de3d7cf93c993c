"""A demo province for the five-minute tour: institutions, residents, families, newborns, a few
cards in other states, staff accounts with known passwords, and the activity the tour's later pages
show: terminals (the admin's hospital has windows, kiosks and doctors' workstations), a week of card
uses scanned through the QR service, and master-index pairs a hospital's system sent that wait for a
human decision.

Every card is made through the card service (``register``, ``bind_family_member``,
``register_newborn``, ``transition``), so the demo obeys the same rules, seals the same way and
leaves the same history as real traffic. The people are synthetic (``Faker("zh_CN")``) and
reproducible: the same seed gives the same residents, documents and families. Card IDs stay random,
as they always are.

The plan (who exists, who binds whom) is computed first by :func:`plan_demo`, a pure function; then
:func:`build_demo` carries it out in one transaction, so a failure leaves nothing half-built.

``plan.py`` holds the plan, ``build.py`` carries it out; the synthetic people's document numbers and
addresses come from ``ehc.identity.synthetic``, shared with the tests and the master-index test sets.
"""

from __future__ import annotations

from ..identity.service import make_uscc, organisation_code, resident_id_number
from .build import DemoSummary, Example, Progress, StaffLogin, build_demo, print_summary
from .plan import (
    ADMIN_PASSWORD,
    CLERK_PASSWORD,
    INSTITUTIONS,
    OPERATOR_PASSWORD,
    REFERENCE_DAY,
    REGIONS,
    DemoPlan,
    plan_demo,
)

__all__ = [
    "ADMIN_PASSWORD", "CLERK_PASSWORD", "INSTITUTIONS", "OPERATOR_PASSWORD", "REFERENCE_DAY", "REGIONS",
    "DemoPlan", "DemoSummary", "Example", "Progress", "StaffLogin", "build_demo", "make_uscc",
    "organisation_code", "plan_demo", "print_summary", "resident_id_number",
]
