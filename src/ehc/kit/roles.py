"""Roles, in one place. Each domain's ``auth.py`` says which roles may do what there."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    # Institution staff
    WINDOW_CLERK = "window_clerk"
    DOCTOR = "doctor"
    NURSE = "nurse"
    FAMILY_DOCTOR = "family_doctor"
    CASHIER = "cashier"
    INSTITUTION_ADMIN = "institution_admin"
    # Health commission
    REGIONAL_OPERATOR = "regional_operator"
    AUDITOR = "auditor"
    PLATFORM_ADMIN = "platform_admin"


INSTITUTION_ROLES = frozenset(
    {Role.WINDOW_CLERK, Role.DOCTOR, Role.NURSE, Role.FAMILY_DOCTOR, Role.CASHIER, Role.INSTITUTION_ADMIN}
)
COMMISSION_ROLES = frozenset({Role.REGIONAL_OPERATOR, Role.AUDITOR, Role.PLATFORM_ADMIN})

# Not a staff role: the pseudo-role of a hospital system calling the signed machine API (apps/).
# It can never be given to a staff account; domains list it where a system may act like window staff.
HOSPITAL_SYSTEM = "hospital_system"
