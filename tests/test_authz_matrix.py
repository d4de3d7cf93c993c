"""The authorisation matrix: every route the app serves against every caller, on SQLite and PostgreSQL:
the /api/v1 endpoints (``MATRIX``), the FHIR door (``FHIR_MATRIX``: refusals are OperationOutcomes)
and the pages and everything else outside both (``PAGE_MATRIX``: refusals are a redirect to sign in or
the 403 page). Each list of routes is read from the app, so a new route fails here until it has an entry.

``MATRIX`` is the specification: for each route (method, path template) the callers the
authorisation layer lets through. It is written from the rules (each domain's ``auth.py`` and
``institutions/policy.py``, issue 3, ``docs/codes.md``), not copied from what the code happens to do.
Every route of the app must have an entry, so a new endpoint fails this test until someone decides
who may call it.

A caller is *denied* when the answer is 401 (anonymous: ``unauthenticated``) or 403
(``role_not_allowed``, ``resident_only``), as problem+json; anything else (200, 201, 204, 404, 409,
422, 429 ...) means the authorisation layer let the request through. A 5xx, or a 401/403 with any
other code (a token that stopped working, a refused signature), fails the test outright.

Which *objects* a caller reaches (a regional operator's region, an admin's own institution, a
resident's own family) is tested separately below: out of reach answers 404 by design.

Decisions where the code disagreed with what is clearly intended (fixed in the code, see the
comments in ``MATRIX``):

- Doctors and nurses may no longer change or end existing cards (modify, report lost, recover,
  reissue, cancel, bind family members, merge temporary cards). ``cards/auth.py`` called all of it
  "window work" yet let the workstation roles do it, a nurse could cancel a card for good. They keep
  what a ward needs: look a card up, read it, its history and family, temporary cards for
  unidentified emergency patients, newborns' cards (``CardStaff``).
- A hospital system reads its own institution in the registry (``institutions/policy.py`` says the
  institution's own systems do; ``InstitutionReader`` had left them out).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from conftest import _empty_tables
from factories import bearer, person, sms_code, uscc
from fastapi.testclient import TestClient
from test_fhir import FHIR_JSON, ID_CARD, match_parameters, outcome_code, valid

from ehc.accounts import residents as residents_service
from ehc.accounts import service as accounts
from ehc.app import create_app
from ehc.apps import service as apps
from ehc.cards.models import Card
from ehc.client import SM2Auth
from ehc.config import Settings
from ehc.crypto import KeyStore, SM2PrivateKey
from ehc.db import Database
from ehc.institutions import service as institutions
from ehc.kit.context import Actor, Vault
from ehc.kit.ratelimit import RateLimiter
from ehc.platform import Platform
from ehc.web import i18n

PROBLEM = "application/problem+json"
PASSWORD = "correct horse battery"

# -- the callers ------------------------------------------------------------------------------------

ANON = "anonymous"
CLERK = "window_clerk"
DOCTOR = "doctor"
NURSE = "nurse"
FAMILY_DOCTOR = "family_doctor"
CASHIER = "cashier"
INST_ADMIN = "institution_admin"  # of the test institution
REGIONAL = "regional_operator"  # region 510100, which holds the test institution (510104)
AUDITOR = "auditor"  # national (no region)
PLATFORM_ADMIN = "platform_admin"
RESIDENT = "resident"  # signed in, with their own card and a family member
HOSPITAL = "hospital_system"  # a signed machine call of an app of the test institution

CALLERS = (ANON, CLERK, DOCTOR, NURSE, FAMILY_DOCTOR, CASHIER, INST_ADMIN, REGIONAL, AUDITOR, PLATFORM_ADMIN,
           RESIDENT, HOSPITAL)
STAFF_CALLERS = CALLERS[1:10]
SHORT = {ANON: "anon", CLERK: "clerk", DOCTOR: "doc", NURSE: "nurse", FAMILY_DOCTOR: "famdr", CASHIER: "cash",
         INST_ADMIN: "iadm", REGIONAL: "regop", AUDITOR: "audit", PLATFORM_ADMIN: "padm", RESIDENT: "resid",
         HOSPITAL: "his"}

# -- who may call what --------------------------------------------------------------------------------

EVERYONE = frozenset(CALLERS)
NOBODY_BUT = frozenset  # reads better in the table: NOBODY_BUT({PLATFORM_ADMIN})
INSTITUTION_STAFF = frozenset({CLERK, DOCTOR, NURSE, FAMILY_DOCTOR, CASHIER, INST_ADMIN})

# cards/auth.py. CardClerk: window work that changes or ends an existing card. A hospital system does
# it for the clerk at its window. Not doctors or nurses (DECISION, fixed: they had it; "window work",
# and a cancellation is final), nor family doctors, cashiers or the commission's operators/auditors.
CARD_WINDOW = frozenset({CLERK, INST_ADMIN, PLATFORM_ADMIN, HOSPITAL})
# CardStaff: look up and read cards, temporary cards (emergency), newborns: window and workstation.
# Family doctors and cashiers stay out, as before: card use at their desks (scanning a QR code) is
# another API, not the card registry.
CARD_STAFF = CARD_WINDOW | {DOCTOR, NURSE}
# CardReviewer: approving a pending application is a person's judgement: no hospital system.
CARD_REVIEW = frozenset({CLERK, INST_ADMIN, PLATFORM_ADMIN})
# Applying for a card is open to anyone (the public website applies anonymously), so a cashier or an
# auditor applying gains nothing a visitor does not have.
APPLICANTS = EVERYONE

# institutions/auth.py. Readers: the commission within its reach, institution staff and (DECISION,
# fixed: policy.py grants it, auth.py had left it out) the institution's own hospital systems.
REGISTRY_READERS = frozenset({REGIONAL, AUDITOR, PLATFORM_ADMIN, HOSPITAL}) | INSTITUTION_STAFF
REGISTRARS = frozenset({REGIONAL, PLATFORM_ADMIN})  # register / change institutions (their region)
INSTITUTION_MANAGERS = frozenset({INST_ADMIN, PLATFORM_ADMIN})  # departments, terminals, staff
COMMISSION_ADMINS = NOBODY_BUT({PLATFORM_ADMIN})  # the commission's own accounts
# apps/auth.py: an institution's apps and keys; the platform never lets a system manage its own keys.
APP_MANAGERS = frozenset({INST_ADMIN, PLATFORM_ADMIN})
# audit/auth.py: the whole trail; me/auth.py: the resident's own API (staff use /api/v1/cards).
AUDIT_READERS = frozenset({AUDITOR, PLATFORM_ADMIN})
RESIDENT_ONLY = NOBODY_BUT({RESIDENT})
# qr/auth.py: a resident draws dynamic codes; window work prints static codes (CardClerk); the staff
# who scan at their desks and the institution's hospital systems verify a code, which records a card
# use at their institution (no admin, no commission role: they scan nothing, and a use needs an
# institution).
QR_PRINTERS = CARD_WINDOW
QR_VERIFIERS = frozenset({CLERK, DOCTOR, NURSE, FAMILY_DOCTOR, CASHIER, HOSPITAL})
# qr/endpoints/uses.py: card-use monitoring is for those who answer for an institution or a region
# (its admin, its own systems, the commission's operators and auditors); desk staff scan, not watch.
CARD_USE_MONITORS = frozenset({INST_ADMIN, REGIONAL, AUDITOR, PLATFORM_ADMIN, HOSPITAL})
# statistics/auth.py: aggregate statistics are the health commission's (no institution role, no system).
STATS_READERS = frozenset({REGIONAL, AUDITOR, PLATFORM_ADMIN})

# mpi/auth.py: cross-references are the hospital at work (its own numbers only, xref.py); look-ups
# also the commission's operators (their region) and platform admins; the review queue: the
# commission and an institution's admin (its own submitted records); merging people: the commission.
XREF_BINDERS = frozenset({CLERK, DOCTOR, NURSE, INST_ADMIN, HOSPITAL})
XREF_READERS = XREF_BINDERS | {REGIONAL, PLATFORM_ADMIN}
MATCH_REVIEWERS = frozenset({REGIONAL, PLATFORM_ADMIN, INST_ADMIN})
MERGE_OPERATORS = frozenset({REGIONAL, PLATFORM_ADMIN})
# family_doctors/auth.py: teams are the centre admin's; packages also the region's operator; the policy
# the operator's; the contract desk the window, the admin and the clinicians (and the centre's systems);
# team work the clinicians and the centre's systems; coverage the centre and the region (figures only).
FD_POLICY_SETTERS = frozenset({REGIONAL, PLATFORM_ADMIN})
FD_TEAM_MANAGERS = frozenset({INST_ADMIN, PLATFORM_ADMIN})
FD_TEAM_READERS = INSTITUTION_STAFF | {REGIONAL, AUDITOR, PLATFORM_ADMIN, HOSPITAL}
FD_PACKAGE_AUTHORS = frozenset({INST_ADMIN, REGIONAL, PLATFORM_ADMIN})
FD_TEAM_WORKERS = frozenset({FAMILY_DOCTOR, DOCTOR, NURSE, PLATFORM_ADMIN, HOSPITAL})
FD_DESK = FD_TEAM_WORKERS | {CLERK, INST_ADMIN}
FD_COVERAGE = frozenset({INST_ADMIN, FAMILY_DOCTOR, DOCTOR, NURSE, REGIONAL, AUDITOR, PLATFORM_ADMIN})
FD_REGIONAL_COVERAGE = frozenset({REGIONAL, AUDITOR, PLATFORM_ADMIN})

# appointments/auth.py
BOOKING_DESK = frozenset({CLERK, FAMILY_DOCTOR, HOSPITAL})
SCHEDULERS = frozenset({INST_ADMIN, HOSPITAL})
CHECK_IN_DESK = frozenset({CLERK, DOCTOR, NURSE, HOSPITAL})
DAY_LIST_READERS = frozenset({CLERK, DOCTOR, NURSE, INST_ADMIN, HOSPITAL})

# payments/auth.py: a hospital's cashiers, window and systems handle its bills (its admin reads them);
# reconciliation and the ledger are the platform's finance; the bank's callback carries its own signature.
PAYMENT_CASHIERS = frozenset({CASHIER, CLERK, HOSPITAL})
BILL_READERS = PAYMENT_CASHIERS | {INST_ADMIN}
FINANCE = frozenset({PLATFORM_ADMIN, AUDITOR})

MATRIX: dict[tuple[str, str], frozenset[str]] = {
    # accounts: signing in and out is for anyone (what a caller already holds does not matter)
    ("POST", "/api/v1/auth/staff/token"): EVERYONE,
    ("POST", "/api/v1/auth/resident/otp"): EVERYONE,
    ("POST", "/api/v1/auth/resident/token"): EVERYONE,
    ("POST", "/api/v1/auth/resident/sign-out"): EVERYONE,
    # apps: the signature check anyone can try; managing apps and keys
    ("GET", "/api/v1/apps/ping"): EVERYONE,
    ("POST", "/api/v1/apps/ping"): EVERYONE,
    ("POST", "/api/v1/apps"): APP_MANAGERS,
    ("GET", "/api/v1/apps"): APP_MANAGERS,
    ("GET", "/api/v1/apps/{app_id}"): APP_MANAGERS,
    ("POST", "/api/v1/apps/{app_id}/keys"): APP_MANAGERS,
    ("POST", "/api/v1/apps/{app_id}/keys/{key_id}/revoke"): APP_MANAGERS,
    # cards
    ("POST", "/api/v1/cards"): APPLICANTS,
    ("POST", "/api/v1/cards/lookup"): CARD_STAFF,
    ("GET", "/api/v1/cards/{ehc_id}"): CARD_STAFF,
    ("GET", "/api/v1/cards/{ehc_id}/events"): CARD_STAFF,
    ("GET", "/api/v1/cards/{ehc_id}/family"): CARD_STAFF,
    ("POST", "/api/v1/cards/temporary"): CARD_STAFF,
    ("POST", "/api/v1/cards/{ehc_id}/newborns"): CARD_STAFF,
    ("PATCH", "/api/v1/cards/{ehc_id}"): CARD_WINDOW,
    ("POST", "/api/v1/cards/{ehc_id}/report-lost"): CARD_WINDOW,
    ("POST", "/api/v1/cards/{ehc_id}/recover"): CARD_WINDOW,
    ("POST", "/api/v1/cards/{ehc_id}/reissue"): CARD_WINDOW,
    ("POST", "/api/v1/cards/{ehc_id}/cancel"): CARD_WINDOW,
    ("POST", "/api/v1/cards/{ehc_id}/family"): CARD_WINDOW,
    ("POST", "/api/v1/cards/{ehc_id}/merge"): CARD_WINDOW,
    ("POST", "/api/v1/cards/{ehc_id}/approve"): CARD_REVIEW,
    ("POST", "/api/v1/cards/{ehc_id}/reject"): CARD_REVIEW,
    # institutions: the registry, its code lists (public reference data), departments, terminals
    ("POST", "/api/v1/institutions"): REGISTRARS,
    ("GET", "/api/v1/institutions"): REGISTRY_READERS,
    ("GET", "/api/v1/institutions/codes/departments"): EVERYONE,
    ("GET", "/api/v1/institutions/codes/kinds"): EVERYONE,
    ("GET", "/api/v1/institutions/codes/terminal-roles"): EVERYONE,
    ("GET", "/api/v1/institutions/{institution_id}"): REGISTRY_READERS,
    ("PATCH", "/api/v1/institutions/{institution_id}"): REGISTRARS,
    ("GET", "/api/v1/institutions/{institution_id}/departments"): REGISTRY_READERS,
    ("GET", "/api/v1/institutions/{institution_id}/departments/{code}"): REGISTRY_READERS,
    ("POST", "/api/v1/institutions/{institution_id}/departments"): INSTITUTION_MANAGERS,
    ("PATCH", "/api/v1/institutions/{institution_id}/departments/{code}"): INSTITUTION_MANAGERS,
    ("DELETE", "/api/v1/institutions/{institution_id}/departments/{code}"): INSTITUTION_MANAGERS,
    ("GET", "/api/v1/institutions/{institution_id}/terminals"): REGISTRY_READERS,
    ("GET", "/api/v1/institutions/{institution_id}/terminals/{terminal_id}"): REGISTRY_READERS,
    ("POST", "/api/v1/institutions/{institution_id}/terminals"): INSTITUTION_MANAGERS,
    ("PATCH", "/api/v1/institutions/{institution_id}/terminals/{terminal_id}"): INSTITUTION_MANAGERS,
    # staff: an institution's (its admin, a platform admin; reading the list too), the commission's
    ("POST", "/api/v1/institutions/{institution_id}/staff"): INSTITUTION_MANAGERS,
    ("GET", "/api/v1/institutions/{institution_id}/staff"): INSTITUTION_MANAGERS,
    ("GET", "/api/v1/institutions/{institution_id}/staff/{staff_id}"): INSTITUTION_MANAGERS,
    ("PATCH", "/api/v1/institutions/{institution_id}/staff/{staff_id}"): INSTITUTION_MANAGERS,
    ("POST", "/api/v1/commission/staff"): COMMISSION_ADMINS,
    ("GET", "/api/v1/commission/staff"): COMMISSION_ADMINS,
    ("GET", "/api/v1/commission/staff/{staff_id}"): COMMISSION_ADMINS,
    ("PATCH", "/api/v1/commission/staff/{staff_id}"): COMMISSION_ADMINS,
    # the resident's own API, including who looked at their data
    ("GET", "/api/v1/me/card"): RESIDENT_ONLY,
    ("GET", "/api/v1/me/family"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/family"): RESIDENT_ONLY,
    ("GET", "/api/v1/me/family/{ehc_id}"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/family/{ehc_id}/report-lost"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/newborns"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/password"): RESIDENT_ONLY,
    ("GET", "/api/v1/me/access-log"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/card/report-lost"): RESIDENT_ONLY,
    # QR codes: drawing, printing, verifying (which records a card use)
    ("POST", "/api/v1/me/qr/dynamic"): RESIDENT_ONLY,
    ("GET", "/api/v1/me/qr/dynamic.png"): RESIDENT_ONLY,
    ("GET", "/api/v1/cards/{ehc_id}/qr/static.png"): QR_PRINTERS,
    ("GET", "/api/v1/cards/{ehc_id}/qr/static.svg"): QR_PRINTERS,
    ("GET", "/api/v1/cards/{ehc_id}/qr/static.pdf"): QR_PRINTERS,
    ("POST", "/api/v1/qr/verify"): QR_VERIFIERS,
    ("GET", "/api/v1/me/card-uses"): RESIDENT_ONLY,
    # the second factor for static codes: the holder sets the PIN (and a guardian for a family member),
    # window work clears a forgotten one, a verifier has a code texted to the holder (qr/endpoints/second_factor.py)
    ("GET", "/api/v1/me/card/pin"): RESIDENT_ONLY,
    ("PUT", "/api/v1/me/card/pin"): RESIDENT_ONLY,
    ("DELETE", "/api/v1/cards/{ehc_id}/pin"): QR_PRINTERS,
    ("POST", "/api/v1/qr/second-factor/sms"): QR_VERIFIERS,
    ("POST", "/api/v1/qr/uses/batch"): QR_VERIFIERS,  # uploading offline scans is scanning, later
    ("GET", "/api/v1/card-uses"): CARD_USE_MONITORS,
    ("GET", "/api/v1/card-uses/summary"): CARD_USE_MONITORS,
    # the audit trail
    ("GET", "/api/v1/audit/events"): AUDIT_READERS,
    # the master index: cross-references, the review queue, merges
    ("POST", "/api/v1/mpi/identifiers"): XREF_BINDERS,
    ("DELETE", "/api/v1/mpi/identifiers"): XREF_BINDERS,
    ("GET", "/api/v1/mpi/persons"): XREF_READERS,
    ("GET", "/api/v1/mpi/persons/{ref}/identifiers"): XREF_READERS,
    ("GET", "/api/v1/mpi/reviews"): MATCH_REVIEWERS,
    ("GET", "/api/v1/mpi/reviews/{review_id}"): MATCH_REVIEWERS,
    ("POST", "/api/v1/mpi/reviews/{review_id}/accept"): MATCH_REVIEWERS,
    ("POST", "/api/v1/mpi/reviews/{review_id}/reject"): MATCH_REVIEWERS,
    ("POST", "/api/v1/mpi/merges"): MERGE_OPERATORS,
    ("GET", "/api/v1/mpi/merges/{merge_id}"): MERGE_OPERATORS,
    ("POST", "/api/v1/mpi/merges/{merge_id}/undo"): MERGE_OPERATORS,
    # real-time matching: the hospital at work submits its patients, as it binds its numbers (mpi/endpoints.py)
    ("POST", "/api/v1/mpi/match"): XREF_BINDERS,
    # family doctors (family_doctors/auth.py): packages and policies are public reference data
    ("GET", "/api/v1/family-doctors/policies/{region_code}"): EVERYONE,
    ("PUT", "/api/v1/family-doctors/policies/{region_code}"): FD_POLICY_SETTERS,
    ("POST", "/api/v1/family-doctors/teams"): FD_TEAM_MANAGERS,
    ("GET", "/api/v1/family-doctors/teams"): FD_TEAM_READERS,
    ("GET", "/api/v1/family-doctors/teams/{team_id}"): FD_TEAM_READERS,
    ("POST", "/api/v1/family-doctors/teams/{team_id}/members"): FD_TEAM_MANAGERS,
    ("DELETE", "/api/v1/family-doctors/teams/{team_id}/members/{staff_id}"): FD_TEAM_MANAGERS,
    ("PUT", "/api/v1/family-doctors/teams/{team_id}/areas"): FD_TEAM_MANAGERS,
    ("POST", "/api/v1/family-doctors/teams/{team_id}/dissolve"): FD_TEAM_MANAGERS,
    ("GET", "/api/v1/family-doctors/teams/{team_id}/work-list"): FD_TEAM_WORKERS,
    ("GET", "/api/v1/family-doctors/teams/{team_id}/outreach"): FD_TEAM_WORKERS,
    ("POST", "/api/v1/family-doctors/packages"): FD_PACKAGE_AUTHORS,
    ("GET", "/api/v1/family-doctors/packages"): EVERYONE,
    ("POST", "/api/v1/family-doctors/packages/{package_id}/revise"): FD_PACKAGE_AUTHORS,
    ("POST", "/api/v1/family-doctors/conditions"): FD_TEAM_WORKERS,
    ("POST", "/api/v1/family-doctors/contracts"): FD_DESK,
    ("POST", "/api/v1/family-doctors/contracts/lookup"): FD_DESK,
    ("GET", "/api/v1/family-doctors/contracts/{contract_id}"): FD_DESK,
    ("GET", "/api/v1/family-doctors/contracts/{contract_id}/events"): FD_DESK,
    ("POST", "/api/v1/family-doctors/contracts/{contract_id}/renew"): FD_DESK,
    ("POST", "/api/v1/family-doctors/contracts/{contract_id}/terminate"): FD_DESK,
    ("POST", "/api/v1/family-doctors/contracts/{contract_id}/change-team"): FD_DESK,
    ("POST", "/api/v1/family-doctors/contracts/{contract_id}/services"): FD_TEAM_WORKERS,
    ("GET", "/api/v1/family-doctors/contracts/{contract_id}/services"): FD_TEAM_WORKERS,
    ("POST", "/api/v1/family-doctors/contracts/{contract_id}/referrals"): FD_TEAM_WORKERS,
    ("GET", "/api/v1/family-doctors/coverage/centres/{institution_id}"): FD_COVERAGE,
    ("GET", "/api/v1/family-doctors/coverage/regions/{region_code}"): FD_REGIONAL_COVERAGE,
    ("GET", "/api/v1/me/family-doctor"): RESIDENT_ONLY,
    ("GET", "/api/v1/me/family-doctor/teams"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/family-doctor/contracts"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/family-doctor/contracts/{contract_id}/renew"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/family-doctor/contracts/{contract_id}/terminate"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/family-doctor/contracts/{contract_id}/change-team"): RESIDENT_ONLY,
    # appointments/auth.py: the schedule is public; residents book for themselves and their family;
    # the desk (clerks, family doctors' referrals, the hospital system and its kiosks) books for a card;
    # schedulers (the admin, the HIS) publish and suspend; the department checks in by scan.
    ("GET", "/api/v1/appointments/sessions"): EVERYONE,
    ("GET", "/api/v1/appointments/sessions/{session_id}"): EVERYONE,
    ("POST", "/api/v1/me/appointments"): RESIDENT_ONLY,
    ("GET", "/api/v1/me/appointments"): RESIDENT_ONLY,
    ("GET", "/api/v1/me/appointments/{reference}"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/appointments/{reference}/confirm"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/appointments/{reference}/cancel"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/appointments/{reference}/move"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/waitlist"): RESIDENT_ONLY,
    ("GET", "/api/v1/me/waitlist"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/waitlist/{entry_id}/leave"): RESIDENT_ONLY,
    ("POST", "/api/v1/appointments/bookings"): BOOKING_DESK,
    ("GET", "/api/v1/appointments/bookings"): DAY_LIST_READERS,
    ("GET", "/api/v1/appointments/bookings/{reference}"): DAY_LIST_READERS,
    ("POST", "/api/v1/appointments/bookings/{reference}/confirm"): BOOKING_DESK,
    ("POST", "/api/v1/appointments/bookings/{reference}/cancel"): BOOKING_DESK,
    ("POST", "/api/v1/appointments/bookings/{reference}/move"): BOOKING_DESK,
    ("POST", "/api/v1/appointments/check-in"): CHECK_IN_DESK,
    ("GET", "/api/v1/appointments/templates"): SCHEDULERS,
    ("POST", "/api/v1/appointments/templates"): SCHEDULERS,
    ("POST", "/api/v1/appointments/templates/{template_id}/retire"): SCHEDULERS,
    ("POST", "/api/v1/appointments/closures"): SCHEDULERS,
    ("POST", "/api/v1/appointments/publish"): SCHEDULERS,
    ("POST", "/api/v1/appointments/sessions"): SCHEDULERS,
    ("GET", "/api/v1/appointments/schedule"): SCHEDULERS,
    ("GET", "/api/v1/appointments/sessions/{session_id}/suspension"): SCHEDULERS,
    ("POST", "/api/v1/appointments/sessions/{session_id}/suspend"): SCHEDULERS,
    # records/auth.py: the resident's own records and consents; clinicians (doctors, nurses) and their
    # hospital's systems read a patient's records under consent; auditors review break-glass reads.
    ("GET", "/api/v1/me/records"): RESIDENT_ONLY,
    ("GET", "/api/v1/me/records/everything"): RESIDENT_ONLY,
    ("GET", "/api/v1/me/records/consents"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/records/consents"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/records/consents/{consent_id}/revoke"): RESIDENT_ONLY,
    ("GET", "/api/v1/me/records/break-glass"): RESIDENT_ONLY,
    ("GET", "/api/v1/me/records/summary"): RESIDENT_ONLY,
    ("GET", "/api/v1/me/records/summary.pdf"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/records/summary/entries"): RESIDENT_ONLY,
    ("DELETE", "/api/v1/me/records/summary/entries/{entry_id}"): RESIDENT_ONLY,
    ("GET", "/api/v1/records/patients/{ehc_id}"): frozenset({DOCTOR, NURSE, HOSPITAL}),
    ("GET", "/api/v1/records/break-glass"): AUDIT_READERS,
    ("POST", "/api/v1/payments/bills"): PAYMENT_CASHIERS,
    ("GET", "/api/v1/payments/bills"): BILL_READERS,
    ("GET", "/api/v1/payments/bills/{bill_id}"): BILL_READERS,
    ("POST", "/api/v1/payments/bills/{bill_id}/presettle"): BILL_READERS,
    ("POST", "/api/v1/payments/bills/{bill_id}/settle"): PAYMENT_CASHIERS,
    ("POST", "/api/v1/payments/bills/{bill_id}/refunds"): PAYMENT_CASHIERS,
    ("POST", "/api/v1/payments/callbacks/bank"): EVERYONE,
    ("POST", "/api/v1/payments/reconciliation/{day}"): FINANCE,
    ("GET", "/api/v1/payments/reconciliation/{day}"): FINANCE,
    ("GET", "/api/v1/payments/ledger/check"): FINANCE,
    ("POST", "/api/v1/me/payments/insurance"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/payments/bank"): RESIDENT_ONLY,
    ("GET", "/api/v1/me/payments/links"): RESIDENT_ONLY,
    ("DELETE", "/api/v1/me/payments/links/{kind}"): RESIDENT_ONLY,
    ("GET", "/api/v1/me/bills"): RESIDENT_ONLY,
    ("GET", "/api/v1/me/bills/{bill_id}"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/bills/{bill_id}/presettle"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/bills/{bill_id}/code"): RESIDENT_ONLY,
    ("POST", "/api/v1/me/bills/{bill_id}/pay"): RESIDENT_ONLY,
    # statistics (statistics/auth.py): the commission's operators and auditors read (their region and
    # below), platform admins everything; feeding the store by hand is the platform admins'
    ("GET", "/api/v1/statistics/table"): STATS_READERS,
    ("GET", "/api/v1/statistics/table.csv"): STATS_READERS,
    ("GET", "/api/v1/statistics/table.parquet"): STATS_READERS,
    ("GET", "/api/v1/statistics/reports/daily/{day}"): STATS_READERS,
    ("GET", "/api/v1/statistics/reports/daily/{day}.csv"): STATS_READERS,
    ("GET", "/api/v1/statistics/coverage"): STATS_READERS,
    ("POST", "/api/v1/statistics/refresh"): COMMISSION_ADMINS,
    # report schedules: the same readers, each within their region (another region's is "not found")
    ("GET", "/api/v1/statistics/schedules"): STATS_READERS,
    ("POST", "/api/v1/statistics/schedules"): STATS_READERS,
    ("GET", "/api/v1/statistics/schedules/{schedule_id}"): STATS_READERS,
    ("POST", "/api/v1/statistics/schedules/{schedule_id}/pause"): STATS_READERS,
    ("POST", "/api/v1/statistics/schedules/{schedule_id}/resume"): STATS_READERS,
    ("POST", "/api/v1/statistics/schedules/{schedule_id}/run"): STATS_READERS,
    ("DELETE", "/api/v1/statistics/schedules/{schedule_id}"): STATS_READERS,
    ("GET", "/api/v1/statistics/schedules/{schedule_id}/deliveries"): STATS_READERS,
    ("GET", "/api/v1/statistics/schedules/{schedule_id}/deliveries/{delivery_id}/file"): STATS_READERS,
}


# -- the world the requests act on ------------------------------------------------------------------

HOLDER = person("张建国", date(1970, 1, 2), 33, True, phone="13912340002")  # the card staff work on
DOOMED = person("赵一民", date(1950, 10, 1), 37, True)
RESIDENT_PERSON = person("王小红", date(1985, 6, 1), 31, False, phone="13912340001")
RESIDENT_CHILD = person("王乐乐", date(2015, 3, 4), 32, True)
APPLICANT = person("李四海", date(1988, 8, 8), 35, True, phone="13912340005")


@dataclass
class App:
    app_id: str
    key_id: str
    key: SM2PrivateKey

    def auth(self) -> SM2Auth:
        return SM2Auth(self.app_id, self.key_id, self.key)


@dataclass
class World:
    platform: Platform
    client: TestClient
    institution: str  # A: the test institution, 510104
    other: str  # B: 440300, out of the regional operator's and A's admin's reach
    card: str = ""  # a card no matrix caller holds
    doomed: str = ""  # another one, reported lost, recovered, reissued and cancelled
    temporary: str = ""  # a temporary card, to merge into ``card``
    own_card: str = ""  # the resident's
    member: str = ""  # the resident's child, bound to them
    staff_id: str = ""  # a nurse of A nobody signs in as
    commission_staff_id: str = ""  # an auditor nobody signs in as
    app: App | None = None  # the hospital system (an app of A)
    managed_app: App | None = None  # another app of A, whose keys the managers add and revoke
    other_app: App | None = None  # an app of B
    other_staff_id: str = ""
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # a bearer token per caller
    spare: dict[str, dict[str, str]] = field(default_factory=dict)  # a second one, for signing out
    other_admin: dict[str, str] = field(default_factory=dict)  # B's institution admin

    def call(self, caller: str, method: str, url: str, body: dict | None = None, *, spare: bool = False):  # noqa: ANN201
        """One request as ``caller``: a bearer token, a signed machine call, or nothing at all."""
        self.client.cookies.clear()  # only what the caller sends identifies them
        content = json.dumps(body).encode() if body is not None else b""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        auth = None
        if caller == HOSPITAL:
            auth = self.app.auth()
        elif caller != ANON:
            headers.update((self.spare if spare else self.headers)[caller])
        return self.client.request(method, url, content=content, headers=headers, auth=auth)

    def visit(self, caller: str, method: str, url: str):  # noqa: ANN201
        """One page request as ``caller``, as a browser would send it (English, no redirects followed).

        A signed-in caller's token rides in *both* page cookies and the Authorization header, so a
        page must tell a staff token from a resident's; a hospital system signs the request."""
        self.client.cookies.clear()
        headers, auth, cookies = {"Accept-Language": "en"}, None, {}
        if caller == HOSPITAL:
            auth = self.app.auth()
        elif caller != ANON:
            headers.update(self.headers[caller])
            token = self.headers[caller]["Authorization"].removeprefix("Bearer ")
            cookies = {"ehc_staff": token, "ehc_resident": token}
        self.client.cookies.update(cookies)
        try:
            return self.client.request(method, url, headers=headers, auth=auth, follow_redirects=False)
        finally:
            self.client.cookies.clear()


def _new_app(ctx, institution: str, name: str) -> App:  # noqa: ANN001
    key = SM2PrivateKey.generate()
    made = apps.create_app(ctx, name=name, institution_id=institution)
    return App(made.id, apps.add_key(ctx, made.id, key.public_key.to_pem().decode()).key_id, key)


def _ok(answer, *statuses: int) -> dict:  # noqa: ANN001
    assert answer.status_code in (statuses or (200, 201)), answer.text
    return answer.json()


def _build(platform: Platform, client: TestClient) -> World:
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        a = institutions.create_institution(session, uscc=uscc("510104", 1), name="Test People's Hospital",
                                            kind="hospital", region_code="510104", level="3A")
        b = institutions.create_institution(session, uscc=uscc("440300", 2), name="Shenzhen Clinic",
                                            kind="clinic", region_code="440300")
        for inst in (a, b):
            institutions.add_department(ctx, inst, code="0300")
            institutions.register_terminal(ctx, inst, terminal_id="W01", role="window", department_code="0300")
        institutions.add_department(ctx, a, code="1000")  # the one the managers remove
        world = World(platform, client, a.id, b.id)
        world.app = _new_app(ctx, a.id, "HIS outpatient")
        world.managed_app = _new_app(ctx, a.id, "Kiosks")
        world.other_app = _new_app(ctx, b.id, "Shenzhen HIS")
        world.staff_id = accounts.create_staff(ctx, username="dummy.nurse", password=PASSWORD, role="nurse",
                                               institution_id=a.id).id
        world.other_staff_id = accounts.create_staff(ctx, username="other.nurse", password=PASSWORD,
                                                     role="nurse", institution_id=b.id).id
        world.commission_staff_id = accounts.create_staff(ctx, username="dummy.auditor", password=PASSWORD,
                                                          role="auditor").id
        accounts.create_staff(ctx, username="matrix.signin", password=PASSWORD, role="cashier",
                              institution_id=a.id)
        accounts.create_staff(ctx, username="other.admin", password=PASSWORD, role="institution_admin",
                              institution_id=b.id)
        for role in STAFF_CALLERS:
            account = accounts.create_staff(
                ctx, username=f"matrix.{role}", password=PASSWORD, role=role,
                institution_id=a.id if role in INSTITUTION_STAFF else None,
                region_code="510100" if role == REGIONAL else None)
            world.spare[role] = bearer(accounts.issue_token(session, "staff", account.id))

    # Tokens the way staff get them: signing in.
    for role in STAFF_CALLERS:
        world.headers[role] = bearer(_ok(client.post("/api/v1/auth/staff/token", json={
            "username": f"matrix.{role}", "password": PASSWORD}))["access_token"])
    world.other_admin = bearer(_ok(client.post("/api/v1/auth/staff/token", json={
        "username": "other.admin", "password": PASSWORD}))["access_token"])

    # Cards: one the staff work on, a temporary one; the resident applies on the website, signs in
    # with a code, and binds their child.
    clerk = world.headers[CLERK]
    world.card = _ok(client.post("/api/v1/cards", json=HOLDER, headers=clerk))["ehc_id"]
    world.doomed = _ok(client.post("/api/v1/cards", json=DOOMED, headers=clerk))["ehc_id"]
    world.temporary = _ok(client.post("/api/v1/cards/temporary", json={"note": "found at the gate"},
                                      headers=clerk))["ehc_id"]
    world.own_card = _ok(client.post("/api/v1/cards", json=RESIDENT_PERSON))["ehc_id"]
    phone = RESIDENT_PERSON["phone"]
    _ok(client.post("/api/v1/auth/resident/otp", json={"phone": phone}), 202)
    world.headers[RESIDENT] = bearer(_ok(client.post("/api/v1/auth/resident/token", json={
        "phone": phone, "code": sms_code(platform, phone)}))["access_token"])
    world.member = _ok(client.post("/api/v1/me/family", json={**RESIDENT_CHILD, "relation": "child"},
                                   headers=world.headers[RESIDENT]))["ehc_id"]
    with platform.db.session() as session:
        person_id = session.get(Card, world.own_card).person_id
        world.spare[RESIDENT] = bearer(accounts.issue_token(session, "resident", person_id))
    return world


@pytest.fixture(scope="module")
def world(database_url: str, keys_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One world per database for the whole module (the requests below only read it or change what
    no caller's identity depends on)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("authz"), database_url=database_url, keys_dir=keys_dir)
    keys = KeyStore(settings.keys_dir)
    db = Database(settings.database_url)
    _empty_tables(db)
    platform = Platform(settings=settings, db=db, keys=keys, vault=Vault(keys))
    for name in platform.limiters:  # hundreds of requests from a handful of identities
        platform.limiters[name] = RateLimiter(0)
    with pytest.MonkeyPatch.context() as patch:
        # Passwords are not what this module tests: the cheapest argon2id keeps a dozen accounts and
        # their sign-ins from costing seconds (a hash records its parameters, so checks stay valid).
        cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
        patch.setattr(accounts, "_hasher", cheap)
        patch.setattr(residents_service, "_hasher", cheap)
        with TestClient(create_app(platform), raise_server_exceptions=False) as client:
            yield _build(platform, client)
    db.dispose()


# -- the requests -----------------------------------------------------------------------------------

def _requests(w: World) -> dict[tuple[str, str], tuple[dict[str, str], dict | None]]:
    """For each route: path parameters other than the defaults, and a small body (or None)."""
    key_pem = SM2PrivateKey.generate().public_key.to_pem().decode()
    return {
        ("POST", "/api/v1/auth/staff/token"): ({}, {"username": "matrix.signin", "password": PASSWORD}),
        ("POST", "/api/v1/auth/resident/otp"): ({}, {"phone": "13912340009"}),  # 202, then 429 (one a minute)
        ("POST", "/api/v1/auth/resident/token"): ({}, {"phone": "13912340009"}),  # 422 credentials_required
        ("POST", "/api/v1/apps/ping"): ({}, {"hello": "world"}),
        ("POST", "/api/v1/apps"): ({}, {"name": "Matrix app", "institution_id": w.institution}),
        ("POST", "/api/v1/apps/{app_id}/keys"): ({}, {"public_key_pem": key_pem}),
        ("POST", "/api/v1/cards"): ({}, APPLICANT),
        ("POST", "/api/v1/cards/lookup"): ({}, {"document": HOLDER["document"]}),
        ("POST", "/api/v1/cards/temporary"): ({}, {"note": "unconscious, about 40"}),
        ("POST", "/api/v1/cards/{ehc_id}/newborns"): ({}, {"sex": "2", "birth_date": "2024-05-06"}),
        ("PATCH", "/api/v1/cards/{ehc_id}"): ({}, {"address": "成都市锦江区红星路一段1号", "reason": "moved"}),
        ("POST", "/api/v1/cards/{ehc_id}/report-lost"): ({"ehc_id": w.doomed}, {"reason": "lost wallet"}),
        ("POST", "/api/v1/cards/{ehc_id}/recover"): ({"ehc_id": w.doomed}, {}),
        ("POST", "/api/v1/cards/{ehc_id}/reissue"): ({"ehc_id": w.doomed}, {}),
        ("POST", "/api/v1/cards/{ehc_id}/cancel"): ({"ehc_id": w.doomed}, {"reason": "holder deceased"}),
        ("POST", "/api/v1/cards/{ehc_id}/approve"): ({}, {"document": HOLDER["document"]}),
        ("POST", "/api/v1/cards/{ehc_id}/reject"): ({}, {"reason": "documents do not match"}),
        ("POST", "/api/v1/cards/{ehc_id}/family"): (
            {}, {**person("张小军", date(1995, 5, 5), 34, True), "relation": "child"}),
        ("POST", "/api/v1/cards/{ehc_id}/merge"): ({"ehc_id": w.temporary}, {"into": w.card, "reason": "identified"}),
        ("POST", "/api/v1/institutions"): ({}, {"uscc": uscc("510104", 3), "name": "锦江区矩阵医院",
                                                "kind": "hospital", "region_code": "510104"}),
        ("PATCH", "/api/v1/institutions/{institution_id}"): ({}, {"name": "Test People's Hospital"}),
        ("POST", "/api/v1/institutions/{institution_id}/departments"): ({}, {"code": "0400"}),
        ("PATCH", "/api/v1/institutions/{institution_id}/departments/{code}"): ({}, {"name": "内科"}),
        ("DELETE", "/api/v1/institutions/{institution_id}/departments/{code}"): ({"code": "1000"}, None),
        ("POST", "/api/v1/institutions/{institution_id}/terminals"): ({}, {"terminal_id": "K01", "role": "kiosk"}),
        ("PATCH", "/api/v1/institutions/{institution_id}/terminals/{terminal_id}"): ({}, {"name": "1号窗口"}),
        ("POST", "/api/v1/institutions/{institution_id}/staff"): (
            {}, {"username": "matrix.new", "password": PASSWORD, "role": "nurse"}),
        ("PATCH", "/api/v1/institutions/{institution_id}/staff/{staff_id}"): ({}, {"display_name": "李护士"}),
        ("POST", "/api/v1/commission/staff"): ({}, {"username": "matrix.new.auditor", "password": PASSWORD,
                                                    "role": "auditor"}),
        ("GET", "/api/v1/commission/staff/{staff_id}"): ({"staff_id": w.commission_staff_id}, None),
        ("PATCH", "/api/v1/commission/staff/{staff_id}"): ({"staff_id": w.commission_staff_id},
                                                           {"display_name": "审计员"}),
        ("POST", "/api/v1/me/card/report-lost"): ({}, {"reason": "lost phone case"}),
        ("POST", "/api/v1/me/family"): ({}, {**person("王安安", date(2018, 9, 9), 36, False), "relation": "child"}),
        ("GET", "/api/v1/me/family/{ehc_id}"): ({"ehc_id": w.member}, None),
        ("POST", "/api/v1/me/family/{ehc_id}/report-lost"): ({"ehc_id": w.member}, {"reason": "lost"}),
        ("POST", "/api/v1/me/newborns"): ({}, {"sex": "1", "birth_date": "2024-07-08"}),
        ("POST", "/api/v1/me/password"): ({}, {"new_password": "a long and fine passphrase"}),
        ("POST", "/api/v1/qr/verify"): ({}, {"code": "EHC1:NOT A CODE", "scene": "0101011", "channel": "0100"}),
        ("PUT", "/api/v1/me/card/pin"): ({}, {"pin": "246802"}),
        ("DELETE", "/api/v1/cards/{ehc_id}/pin"): ({}, {"reason": "identity checked at the window"}),
        ("POST", "/api/v1/qr/second-factor/sms"): ({}, {"code": "EHC1:NOT A CODE"}),
        ("POST", "/api/v1/qr/uses/batch"): ({}, {"uses": [{"code": "EHC1:NOT A CODE", "scene": "0101011",
                                                           "channel": "0100", "terminal_id": "W01",
                                                           "at": "2026-01-01T08:00:00+08:00"}]}),
        ("POST", "/api/v1/mpi/identifiers"): ({}, {"system": "mrn", "value": "MX-0001", "ehc_id": w.card}),
        ("DELETE", "/api/v1/mpi/identifiers"): ({}, {"system": "mrn", "value": "MX-NONE", "ehc_id": w.card,
                                                     "reason": "typo"}),
        ("GET", "/api/v1/mpi/persons/{ref}/identifiers"): ({"ref": w.card}, None),
        ("GET", "/api/v1/mpi/reviews/{review_id}"): ({"review_id": "999999"}, None),
        ("POST", "/api/v1/mpi/reviews/{review_id}/accept"): ({"review_id": "999999"}, {}),
        ("POST", "/api/v1/mpi/reviews/{review_id}/reject"): ({"review_id": "999999"}, {"reason": "two people"}),
        ("POST", "/api/v1/mpi/merges"): ({}, {"source": "0" * 64, "target": w.card, "reason": "duplicate"}),
        ("GET", "/api/v1/mpi/merges/{merge_id}"): ({"merge_id": "999999"}, None),
        ("POST", "/api/v1/mpi/merges/{merge_id}/undo"): ({"merge_id": "999999"}, {"reason": "wrong"}),
        ("POST", "/api/v1/mpi/match"): ({}, {"name": "张三", "birth_date": "1990-01-01"}),
        **_family_doctor_requests(w),
    }


def _family_doctor_requests(w: World) -> dict[tuple[str, str], tuple[dict[str, str], dict | None]]:
    base, team, contract = "/api/v1/family-doctors", {"team_id": "no-such-team"}, {"contract_id": "no-such-contract"}
    package = {"code": "basic", "kind": "basic", "name": "基本服务包", "institution_id": w.institution,
               "services": [{"code": "check", "kind": "check_up", "yearly_count": 1}]}
    return {
        ("GET", f"{base}/policies/{{region_code}}"): ({"region_code": "510104"}, None),
        ("PUT", f"{base}/policies/{{region_code}}"): ({"region_code": "510104"}, {"capacity_per_lead": 2000}),
        ("POST", f"{base}/teams"): ({}, {"institution_id": w.institution, "name": "矩阵团队", "lead_staff_id": w.staff_id}),
        ("GET", f"{base}/teams/{{team_id}}"): (team, None),
        ("POST", f"{base}/teams/{{team_id}}/members"): (team, {"staff_id": w.staff_id, "role": "nurse"}),
        ("DELETE", f"{base}/teams/{{team_id}}/members/{{staff_id}}"): (team, None),
        ("PUT", f"{base}/teams/{{team_id}}/areas"): (team, {"areas": ["510104"]}),
        ("POST", f"{base}/teams/{{team_id}}/dissolve"): (team, {"reason": "merged teams"}),
        ("GET", f"{base}/teams/{{team_id}}/work-list"): (team, None),
        ("GET", f"{base}/teams/{{team_id}}/outreach"): (team, None),
        ("POST", f"{base}/packages"): ({}, package),
        ("POST", f"{base}/packages/{{package_id}}/revise"): ({"package_id": "no-such-package"}, package),
        ("POST", f"{base}/conditions"): ({}, {"ehc_id": w.card, "code": "hypertension"}),
        ("POST", f"{base}/contracts"): ({}, {"team_id": "no-such-team", "ehc_id": w.card}),
        ("POST", f"{base}/contracts/lookup"): ({}, {"ehc_id": w.card}),
        ("GET", f"{base}/contracts/{{contract_id}}"): (contract, None),
        ("GET", f"{base}/contracts/{{contract_id}}/events"): (contract, None),
        ("POST", f"{base}/contracts/{{contract_id}}/renew"): (contract, None),
        ("POST", f"{base}/contracts/{{contract_id}}/terminate"): (contract, {"reason": "moved"}),
        ("POST", f"{base}/contracts/{{contract_id}}/change-team"): (contract, {"team_id": "x", "reason": "moved"}),
        ("POST", f"{base}/contracts/{{contract_id}}/services"): (contract, {"service_code": "check"}),
        ("GET", f"{base}/contracts/{{contract_id}}/services"): (contract, None),
        ("POST", f"{base}/contracts/{{contract_id}}/referrals"): (contract, {"to_institution_id": w.institution,
                                                                         "department_code": "0304", "reason": "x"}),
        ("GET", f"{base}/coverage/regions/{{region_code}}"): ({"region_code": "510100"}, None),
        ("POST", "/api/v1/me/family-doctor/contracts"): ({}, {"team_id": "no-such-team"}),
        ("POST", "/api/v1/me/family-doctor/contracts/{contract_id}/renew"): (contract, None),
        ("POST", "/api/v1/me/family-doctor/contracts/{contract_id}/terminate"): (contract, {"reason": "moved"}),
        ("POST", "/api/v1/me/family-doctor/contracts/{contract_id}/change-team"): (
            contract, {"team_id": "x", "reason": "moved"}),
        ("POST", "/api/v1/me/appointments"): ({}, {"period_id": 999999}),
        ("POST", "/api/v1/me/appointments/{reference}/cancel"): ({}, {}),
        ("POST", "/api/v1/me/appointments/{reference}/move"): ({}, {"period_id": 999999}),
        ("POST", "/api/v1/me/waitlist"): ({}, {"period_id": 999999}),
        ("POST", "/api/v1/appointments/bookings"): ({}, {"period_id": 999999, "ehc_id": w.card}),
        ("POST", "/api/v1/appointments/bookings/{reference}/cancel"): ({}, {}),
        ("POST", "/api/v1/appointments/bookings/{reference}/move"): ({}, {"period_id": 999999}),
        ("POST", "/api/v1/appointments/check-in"): ({}, {"code": "EHC1:NOT A CODE"}),
        ("POST", "/api/v1/appointments/templates"): ({}, {"department_code": "0300", "weekday": 0, "start": "08:00",
                                                          "end": "09:00", "quota_online": 1}),
        ("POST", "/api/v1/appointments/closures"): ({}, {"day": "2030-01-01", "reason": "元旦"}),
        ("POST", "/api/v1/appointments/publish"): ({}, {"first": "2030-01-01", "last": "2030-01-07"}),
        ("POST", "/api/v1/appointments/sessions"): ({}, {"department_code": "0300", "day": "2030-01-02",
                                                         "start": "08:00", "end": "09:00", "quota_online": 1}),
        ("POST", "/api/v1/appointments/sessions/{session_id}/suspend"): ({}, {"reason": "停诊"}),
        ("POST", "/api/v1/me/records/consents"): ({}, {"institution_id": w.institution, "categories": ["all"], "days": 1}),
        ("POST", "/api/v1/me/records/consents/{consent_id}/revoke"): ({"consent_id": "none"}, None),
        ("POST", "/api/v1/me/records/summary/entries"): ({}, {"kind": "allergy", "text": "青霉素 penicillin"}),
        ("DELETE", "/api/v1/me/records/summary/entries/{entry_id}"): ({"entry_id": "none"}, None),
        ("GET", "/api/v1/records/patients/{ehc_id}"): ({"ehc_id": "F" * 64}, None),
        ("GET", "/api/v1/statistics/reports/daily/{day}"): ({"day": "2026-11-20"}, None),
        ("GET", "/api/v1/statistics/reports/daily/{day}.csv"): ({"day": "2026-11-20"}, None),
        ("POST", "/api/v1/statistics/schedules"): ({}, {"report": "daily_report"}),
        # No payment services in this world: each request stops at a missing object or a bad value
        # before the insurer or the bank would be asked.
        ("POST", "/api/v1/payments/reconciliation/{day}"): ({"day": "not-a-day"}, None),
        ("GET", "/api/v1/payments/reconciliation/{day}"): ({"day": "2026-11-20"}, None),
        ("POST", "/api/v1/me/payments/insurance"): ({}, {"member": "F" * 64}),
        ("POST", "/api/v1/me/payments/bank"): ({}, {"account_no": "622202000000", "member": "F" * 64}),
        ("DELETE", "/api/v1/me/payments/links/{kind}"): ({"kind": "bank"}, None),
    }


def _url(w: World, method: str, template: str, overrides: dict[str, str]) -> str:
    params = {"ehc_id": w.card, "institution_id": w.institution, "code": "0300", "terminal_id": "W01",
              "staff_id": w.staff_id, "app_id": w.managed_app.app_id, "key_id": w.managed_app.key_id,
              "session_id": "0" * 24, "bill_id": "0" * 24, "reference": "ANOTHERONE", "entry_id": "999999", "template_id": "0" * 24,
              "schedule_id": "999999", "delivery_id": "999999", **overrides}
    return template.format(**params)


def served_routes(app) -> set[tuple[str, str]]:  # noqa: ANN001
    """Every (method, path template) the app serves (HEAD, which Starlette adds to GET, left out)."""
    try:  # FastAPI >= 0.16x keeps included routers as routes of their own
        from fastapi.routing import iter_route_contexts
        routes = [(rc.path, rc.methods) for rc in iter_route_contexts(app.routes)]
    except ImportError:
        routes = [(r.path, getattr(r, "methods", None)) for r in app.routes]
    return {(method, path) for path, methods in routes for method in methods or () if method != "HEAD"}


def api_routes(app) -> set[tuple[str, str]]:  # noqa: ANN001
    """Every (method, path template) under /api/v1 that the app serves."""
    found = {(method, path) for method, path in served_routes(app) if path.startswith("/api/v1")}
    assert found, "no /api/v1 routes found: has the way to list them changed?"
    return found


# -- the matrix ---------------------------------------------------------------------------------------

def test_every_api_route_has_an_entry_in_the_matrix(world: World) -> None:
    served = api_routes(world.client.app)
    missing = sorted(served - MATRIX.keys())
    stale = sorted(MATRIX.keys() - served)
    assert not missing and not stale, (
        f"routes without an entry in MATRIX (decide who may call them): {missing}; "
        f"entries for routes that no longer exist: {stale}")


DENIAL_CODES = {401: {"unauthenticated"}, 403: {"role_not_allowed", "resident_only"}}


def test_authorisation_matrix(world: World) -> None:
    requests = _requests(world)
    # Signing out ends the token it is sent with: last, and with each caller's spare token.
    order = sorted(MATRIX, key=lambda k: k == ("POST", "/api/v1/auth/resident/sign-out"))
    seen: dict[tuple[str, str], dict[str, int]] = {}
    problems: list[str] = []
    for key in order:
        method, template = key
        overrides, body = requests.get(key, ({}, None))
        url = _url(world, method, template, overrides)
        seen[key] = {}
        for caller in CALLERS:
            answer = world.call(caller, method, url, body, spare=template.endswith("/sign-out"))
            status = seen[key][caller] = answer.status_code
            allowed = caller in MATRIX[key]
            where = f"{caller:18} {method} {template} -> {status}"
            if status >= 500:
                problems.append(f"{where}: server error {answer.text[:200]}")
            elif status in DENIAL_CODES:
                content_type = answer.headers.get("content-type", "")
                code = answer.json().get("code") if content_type.startswith(PROBLEM) else None
                expected = {"unauthenticated"} if caller == ANON else DENIAL_CODES[403]
                if status == 401 and caller != ANON or code not in expected:
                    problems.append(f"{where}: refused for another reason ({code or content_type}): {answer.text[:200]}")
                elif allowed:
                    problems.append(f"{where}: should be allowed ({code})")
            elif not allowed:
                problems.append(f"{where}: should be denied")
    assert not problems, "\n" + _table(seen) + "\n\n" + "\n".join(problems)


def _table(seen: dict[tuple[str, str], dict[str, int]]) -> str:
    """Rows: routes; columns: callers. ``ok`` allowed and ``.`` denied as specified; a mismatch shows
    the status with ``!``: ``!403`` refused though allowed, ``!200`` let through though denied."""
    width = max(len(f"{m} {p}") for m, p in seen)
    lines = [" " * (width + 3) + " ".join(f"{SHORT[c]:>5}" for c in CALLERS)]
    for (method, path), answers in seen.items():
        cells, bad = [], False
        for caller in CALLERS:
            status, allowed = answers[caller], caller in MATRIX[(method, path)]
            denied = status in (401, 403)
            if status < 500 and denied != allowed:
                cells.append("ok" if allowed else ".")
            else:
                cells.append(f"!{status}")
                bad = True
        lines.append(f"{'>>' if bad else '  '} {method + ' ' + path:{width}} " + " ".join(f"{c:>5}" for c in cells))
    return "\n".join(lines)


# -- scope: which objects a caller reaches --------------------------------------------------------------

def _refused(answer, code: str, status: int = 404) -> None:  # noqa: ANN001
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert answer.json()["code"] == code, answer.text


def test_regional_operator_sees_only_their_region(world: World) -> None:
    operator = world.headers[REGIONAL]  # region 510100
    client = world.client
    assert client.get(f"/api/v1/institutions/{world.institution}", headers=operator).status_code == 200
    assert client.get(f"/api/v1/institutions/{world.institution}/terminals/W01", headers=operator).status_code == 200
    listing = _ok(client.get("/api/v1/institutions?limit=200", headers=operator))
    ids = {i["id"] for i in listing["items"]}
    assert world.institution in ids and world.other not in ids
    assert listing["total"] == len(listing["items"]) and all(i["region_code"].startswith("5101") for i in listing["items"])
    assert _ok(client.get("/api/v1/institutions?region_code=440300", headers=operator))["total"] == 0

    # 440300 is out of reach: answered exactly like an institution that does not exist.
    missing = client.get("/api/v1/institutions/no-such-institution", headers=operator)
    _refused(missing, "institution_not_found")
    for method, path, body in (
        ("GET", "", None), ("PATCH", "", {"name": "x"}), ("GET", "/departments", None),
        ("GET", "/departments/0300", None), ("GET", "/terminals", None), ("GET", "/terminals/W01", None),
    ):
        answer = client.request(method, f"/api/v1/institutions/{world.other}{path}", json=body, headers=operator)
        _refused(answer, "institution_not_found")
        assert answer.json()["detail"] == missing.json()["detail"]
    _refused(client.post("/api/v1/institutions", json={"uscc": uscc("440300", 4), "name": "x", "kind": "clinic",
                                                        "region_code": "440300"}, headers=operator),
             "region_out_of_scope", 403)


def test_institution_admin_reaches_only_their_own_institution(world: World) -> None:
    admin, client = world.headers[INST_ADMIN], world.client
    base = f"/api/v1/institutions/{world.other}"
    for method, path, body in (
        ("GET", "", None),
        ("GET", "/departments", None), ("GET", "/departments/0300", None),
        ("POST", "/departments", {"code": "0500"}), ("PATCH", "/departments/0300", {"name": "x"}),
        ("DELETE", "/departments/0300", None),
        ("GET", "/terminals", None), ("GET", "/terminals/W01", None),
        ("POST", "/terminals", {"terminal_id": "W09", "role": "window"}), ("PATCH", "/terminals/W01", {"name": "x"}),
        ("GET", "/staff", None), ("GET", f"/staff/{world.other_staff_id}", None),
        ("POST", "/staff", {"username": "intruder", "password": PASSWORD, "role": "institution_admin"}),
        ("PATCH", f"/staff/{world.other_staff_id}", {"active": False}),
    ):
        _refused(client.request(method, base + path, json=body, headers=admin), "institution_not_found")
    # A's staff cannot be reached through A's path either when they belong to B.
    _refused(client.get(f"/api/v1/institutions/{world.institution}/staff/{world.other_staff_id}", headers=admin),
             "staff_not_found")

    other_app = world.other_app
    _refused(client.get(f"/api/v1/apps/{other_app.app_id}", headers=admin), "app_not_found")
    _refused(client.post(f"/api/v1/apps/{other_app.app_id}/keys",
                         json={"public_key_pem": SM2PrivateKey.generate().public_key.to_pem().decode()},
                         headers=admin), "app_not_found")
    _refused(client.post(f"/api/v1/apps/{other_app.app_id}/keys/{other_app.key_id}/revoke", headers=admin),
             "app_not_found")
    _refused(client.post("/api/v1/apps", json={"name": "x", "institution_id": world.other}, headers=admin),
             "institution_not_found")
    assert other_app.app_id not in {a["app_id"] for a in _ok(client.get("/api/v1/apps", headers=admin))}
    _refused(client.get(f"/api/v1/apps?institution_id={world.other}", headers=admin), "institution_not_found")
    # B's app still works: nothing above touched it.
    assert _ok(client.get("/api/v1/apps/ping", auth=other_app.auth()))["app_id"] == other_app.app_id

    # And the other way round: B's admin does not reach A.
    _refused(client.get(f"/api/v1/institutions/{world.institution}/staff", headers=world.other_admin),
             "institution_not_found")
    _refused(client.get(f"/api/v1/apps/{world.app.app_id}", headers=world.other_admin), "app_not_found")


def test_hospital_system_reads_only_its_own_institution(world: World) -> None:
    client, auth = world.client, world.app.auth()
    listing = _ok(client.get("/api/v1/institutions", auth=auth))
    assert [i["id"] for i in listing["items"]] == [world.institution]
    assert _ok(client.get(f"/api/v1/institutions/{world.institution}/terminals/W01", auth=auth))["terminal_id"] == "W01"
    _refused(client.get(f"/api/v1/institutions/{world.other}", auth=world.app.auth()), "institution_not_found")
    _refused(client.get(f"/api/v1/institutions/{world.other}/terminals", auth=world.app.auth()),
             "institution_not_found")


def test_resident_reaches_only_their_own_family(world: World) -> None:
    me, client = world.headers[RESIDENT], world.client
    mine = _ok(client.get(f"/api/v1/me/family/{world.member}", headers=me))
    assert mine["card"]["ehc_id"] == world.member and mine["relation"] == "child"
    family = {m["card"]["ehc_id"] for m in _ok(client.get("/api/v1/me/family", headers=me))}
    assert world.member in family and not family & {world.card, world.temporary, world.own_card}

    # A stranger's card, and the resident's own card asked for as a "family member", answer exactly
    # like a card that does not exist.
    missing = client.get("/api/v1/me/family/" + "0" * 64, headers=me)
    _refused(missing, "card_not_found")
    before = _ok(client.get(f"/api/v1/cards/{world.card}", headers=world.headers[CLERK]))["status"]
    for stranger in (world.card, world.temporary, world.own_card):
        for answer in (client.get(f"/api/v1/me/family/{stranger}", headers=me),
                       client.post(f"/api/v1/me/family/{stranger}/report-lost", json={"reason": "x"}, headers=me),
                       client.get(f"/api/v1/me/access-log?member={stranger}", headers=me)):
            _refused(answer, "card_not_found")
            assert answer.json()["detail"] == missing.json()["detail"]
    assert _ok(client.get(f"/api/v1/cards/{world.card}", headers=world.headers[CLERK]))["status"] == before


# -- who may call the FHIR routes (the authz matrix, for OperationOutcome answers) ----------------------

IDENTITY_READERS = frozenset({CLERK, DOCTOR, NURSE, INST_ADMIN, HOSPITAL, REGIONAL, PLATFORM_ADMIN})
RECORD_READERS = frozenset({DOCTOR, NURSE, HOSPITAL})
FHIR_MATRIX: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/fhir/metadata"): frozenset(CALLERS),
    ("POST", "/fhir/Patient/$match"): IDENTITY_READERS,
    ("GET", "/fhir/Patient/$ihe-pix"): IDENTITY_READERS,
    ("GET", "/fhir/Patient"): IDENTITY_READERS,
    ("GET", "/fhir/Patient/{patient_id}"): IDENTITY_READERS,
    # Health records (records/auth.py): hospital systems publish; clinicians and systems read, under consent.
    ("GET", "/fhir/Patient/{patient_id}/$everything"): RECORD_READERS,
    ("POST", "/fhir/{resource_type}"): NOBODY_BUT({HOSPITAL}),
    ("POST", "/fhir"): NOBODY_BUT({HOSPITAL}),  # IHE MHD ITI-65
    ("POST", "/fhir/"): NOBODY_BUT({HOSPITAL}),
    ("GET", "/fhir/Binary/{binary_id}"): RECORD_READERS,  # IHE MHD ITI-68
    ("PUT", "/fhir/{resource_type}/{resource_id}"): NOBODY_BUT({HOSPITAL}),
    ("GET", "/fhir/{resource_type}"): RECORD_READERS,
    ("GET", "/fhir/{resource_type}/{resource_id}"): RECORD_READERS,
    ("GET", "/fhir/{resource_type}/{resource_id}/_history"): RECORD_READERS,
    ("GET", "/fhir/{resource_type}/{resource_id}/_history/{version_id}"): RECORD_READERS,
    # Appointments (appointments/auth.py): the timetable is public; the desk books and reads its bookings.
    ("GET", "/fhir/Schedule"): EVERYONE,
    ("GET", "/fhir/Schedule/{schedule_id}"): EVERYONE,
    ("GET", "/fhir/Slot"): EVERYONE,
    ("GET", "/fhir/Slot/{slot_id}"): EVERYONE,
    ("GET", "/fhir/Appointment/$find"): EVERYONE,
    ("POST", "/fhir/Appointment/$find"): EVERYONE,
    ("POST", "/fhir/Appointment/$hold"): BOOKING_DESK,
    ("POST", "/fhir/Appointment/$book"): BOOKING_DESK,
    ("GET", "/fhir/Appointment"): DAY_LIST_READERS,
    ("GET", "/fhir/Appointment/{appointment_id}"): DAY_LIST_READERS,
    # Anything else under /fhir: a not-supported OperationOutcome for everyone.
    **{(method, "/fhir/{path:path}"): frozenset(CALLERS) for method in ("GET", "POST", "PUT", "PATCH", "DELETE")},
}


def fhir_routes(app) -> set[tuple[str, str]]:  # noqa: ANN001
    """Every (method, path template) under /fhir."""
    return {(method, path) for method, path in served_routes(app) if path.startswith("/fhir")}


def test_fhir_authorisation_matrix(world: World) -> None:
    assert fhir_routes(world.client.app) == set(FHIR_MATRIX), "decide who may call each FHIR route"
    number = HOLDER["document"]["number"]
    requests_ = {
        ("POST", "/fhir/Patient/$match"): match_parameters({"identifier": [{"system": ID_CARD, "value": number}]}),
    }
    urls = {"/fhir/Patient/$ihe-pix": f"/fhir/Patient/$ihe-pix?sourceIdentifier={ID_CARD}|{number}",
            "/fhir/Patient": f"/fhir/Patient?identifier={ID_CARD}|{number}",
            "/fhir/Patient/{patient_id}": f"/fhir/Patient/{world.card}",
            "/fhir/Patient/{patient_id}/$everything": f"/fhir/Patient/{'F' * 64}/$everything",
            "/fhir/{resource_type}": f"/fhir/Condition?patient={'F' * 64}",
            "/fhir/{resource_type}/{resource_id}": "/fhir/Condition/none",
            "/fhir/{resource_type}/{resource_id}/_history": "/fhir/Condition/none/_history",
            "/fhir/{resource_type}/{resource_id}/_history/{version_id}": "/fhir/Condition/none/_history/1",
            "/fhir/Binary/{binary_id}": "/fhir/Binary/none-1-0",
            "/fhir/{path:path}": "/fhir/Basic/1/x/y",
            "/fhir/Schedule/{schedule_id}": "/fhir/Schedule/none",
            "/fhir/Slot/{slot_id}": "/fhir/Slot/999999",
            "/fhir/Appointment": f"/fhir/Appointment?patient={world.card}",
            "/fhir/Appointment/{appointment_id}": "/fhir/Appointment/ANONE"}
    problems = []
    for (method, template), allowed in FHIR_MATRIX.items():
        for caller in CALLERS:
            answer = world.call(caller, method, urls.get(template, template), requests_.get((method, template)))
            where = f"{caller:18} {method} {template} -> {answer.status_code}"
            assert answer.headers["content-type"].startswith(FHIR_JSON), where
            body = valid(answer.json())
            if answer.status_code >= 500:
                problems.append(f"{where}: server error")
            elif answer.status_code in (401, 403):
                expected = "unauthenticated" if caller == ANON else "role_not_allowed"
                if outcome_code(body) != expected:
                    problems.append(f"{where}: refused for another reason ({outcome_code(body)})")
                elif caller in allowed:
                    problems.append(f"{where}: should be allowed")
            elif caller not in allowed:
                problems.append(f"{where}: should be denied")
    assert not problems, "\n".join(problems)
    assert RESIDENT not in IDENTITY_READERS  # residents read themselves through /api/v1/me


# -- the pages: the website, the resident's pages, the staff and admin pages ------------------------------
# A page refuses a caller it does not know (anonymous, a hospital system, a resident on a staff page, staff
# on a resident page) with a redirect to the sign-in of its area; a staff member whose role may not use
# a staff page gets the 403 error page. Everything else the app serves outside /api/v1 and /fhir (the
# trust lists, the health check, the API docs) is public.

STAFF = frozenset(STAFF_CALLERS)
PAGE_PRINTERS = QR_PRINTERS - {HOSPITAL}  # the API's QRPrinter rule; pages know no hospital systems
PAGE_MONITORS = CARD_USE_MONITORS - {HOSPITAL}  # the API's CardUseMonitor rule
PUBLIC = EVERYONE
# payments/auth.py: BillReader sees the institution's bills, Cashier settles one, Finance reconciles;
# the pages know no hospital systems.
PAGE_BILL_READERS = frozenset({CLERK, CASHIER, INST_ADMIN})
PAGE_CASHIERS = frozenset({CLERK, CASHIER})
PAGE_FINANCE = frozenset({PLATFORM_ADMIN, AUDITOR})

PAGE_MATRIX: dict[tuple[str, str], frozenset[str]] = {
    # the public website: applying, the card cookie's page, signing in and out
    ("GET", "/"): PUBLIC,
    ("GET", "/apply"): PUBLIC,
    ("POST", "/apply"): PUBLIC,
    ("GET", "/card"): PUBLIC,  # shows only the card this browser applied for (its signed cookie)
    ("GET", "/card/find"): PUBLIC,  # the document and the card number together bring the card back
    ("POST", "/card/find"): PUBLIC,
    ("GET", "/sign-in"): PUBLIC,
    ("POST", "/sign-in/send-code"): PUBLIC,
    ("GET", "/sign-in/code"): PUBLIC,
    ("POST", "/sign-in/code"): PUBLIC,
    ("POST", "/sign-in/password"): PUBLIC,
    ("POST", "/sign-out"): PUBLIC,
    ("GET", "/dev/outbox"): PUBLIC,  # development only: "not found" in production, for everyone
    ("GET", "/staff/sign-in"): PUBLIC,
    ("POST", "/staff/sign-in"): PUBLIC,
    ("POST", "/staff/sign-out"): PUBLIC,
    # the resident's own pages (me.auth's rule: residents only)
    ("GET", "/me"): RESIDENT_ONLY,
    ("GET", "/me/code"): RESIDENT_ONLY,
    ("GET", "/me/family/add"): RESIDENT_ONLY,
    ("POST", "/me/family/add"): RESIDENT_ONLY,
    ("GET", "/me/report-lost"): RESIDENT_ONLY,
    ("POST", "/me/report-lost"): RESIDENT_ONLY,
    ("GET", "/me/pin"): RESIDENT_ONLY,
    ("POST", "/me/pin"): RESIDENT_ONLY,
    ("GET", "/me/access-log"): RESIDENT_ONLY,
    ("GET", "/me/uses"): RESIDENT_ONLY,
    ("GET", "/me/password"): RESIDENT_ONLY,
    ("POST", "/me/password"): RESIDENT_ONLY,
    # staff pages: the home for every staff member, then each page with its API's rule
    ("GET", "/staff"): STAFF,
    ("GET", "/staff/print"): PAGE_PRINTERS,
    ("GET", "/staff/cards/{ehc_id}/print"): PAGE_PRINTERS,
    ("GET", "/staff/card-uses"): PAGE_MONITORS,
    ("GET", "/staff/mpi/reviews"): MATCH_REVIEWERS,
    ("GET", "/staff/mpi/reviews/{review_id}"): MATCH_REVIEWERS,
    ("POST", "/staff/mpi/reviews/{review_id}/{verdict}"): MATCH_REVIEWERS,
    ("GET", "/staff/statistics"): STATS_READERS,
    ("GET", "/staff/statistics.csv"): STATS_READERS,
    ("GET", "/staff/statistics.parquet"): STATS_READERS,
    ("GET", "/staff/statistics/plotly.min.js"): PUBLIC,  # the charts' library, as static as /static
    ("GET", "/staff/statistics/schedules"): STATS_READERS,
    ("GET", "/staff/statistics/coverage"): STATS_READERS,
    ("POST", "/staff/statistics/schedules"): STATS_READERS,
    ("POST", "/staff/statistics/schedules/{schedule_id}/{action}"): STATS_READERS,
    ("GET", "/staff/statistics/schedules/{schedule_id}/deliveries/{delivery_id}"): STATS_READERS,
    # the window clerk's card desk: each form with the rule of the API endpoint doing the same thing
    ("GET", "/staff/desk"): CARD_STAFF - {HOSPITAL},
    ("POST", "/staff/desk/find"): CARD_STAFF - {HOSPITAL},
    ("GET", "/staff/desk/cards/{ehc_id}"): CARD_STAFF - {HOSPITAL},
    ("GET", "/staff/desk/apply"): CARD_STAFF - {HOSPITAL},
    ("POST", "/staff/desk/apply"): CARD_STAFF - {HOSPITAL},
    ("POST", "/staff/desk/cards/{ehc_id}/newborn"): CARD_STAFF - {HOSPITAL},
    ("POST", "/staff/desk/cards/{ehc_id}/status/{action}"): CARD_WINDOW - {HOSPITAL},
    ("POST", "/staff/desk/cards/{ehc_id}/modify"): CARD_WINDOW - {HOSPITAL},
    ("POST", "/staff/desk/cards/{ehc_id}/family"): CARD_WINDOW - {HOSPITAL},
    ("POST", "/staff/desk/cards/{ehc_id}/review/{decision}"): CARD_REVIEW,
    ("POST", "/staff/desk/cards/{ehc_id}/pin/clear"): PAGE_PRINTERS,
    # admin pages: an institution, its departments, terminals, staff and keys (InstitutionAdmin)
    ("GET", "/staff/institution"): INSTITUTION_MANAGERS,
    ("GET", "/staff/institution/{institution_id}"): INSTITUTION_MANAGERS,
    ("GET", "/staff/institution/{institution_id}/departments"): INSTITUTION_MANAGERS,
    ("POST", "/staff/institution/{institution_id}/departments"): INSTITUTION_MANAGERS,
    ("POST", "/staff/institution/{institution_id}/departments/{code}/rename"): INSTITUTION_MANAGERS,
    ("POST", "/staff/institution/{institution_id}/departments/{code}/remove"): INSTITUTION_MANAGERS,
    ("GET", "/staff/institution/{institution_id}/terminals"): INSTITUTION_MANAGERS,
    ("POST", "/staff/institution/{institution_id}/terminals"): INSTITUTION_MANAGERS,
    ("POST", "/staff/institution/{institution_id}/terminals/{terminal_id}"): INSTITUTION_MANAGERS,
    ("GET", "/staff/institution/{institution_id}/staff"): INSTITUTION_MANAGERS,
    ("POST", "/staff/institution/{institution_id}/staff"): INSTITUTION_MANAGERS,
    ("POST", "/staff/institution/{institution_id}/staff/{staff_id}"): INSTITUTION_MANAGERS,
    ("GET", "/staff/institution/{institution_id}/keys"): INSTITUTION_MANAGERS,
    ("POST", "/staff/institution/{institution_id}/keys/apps"): INSTITUTION_MANAGERS,
    ("POST", "/staff/institution/{institution_id}/keys/apps/{app_id}"): INSTITUTION_MANAGERS,
    ("GET", "/staff/institution/{institution_id}/keys/apps/{app_id}/{key_id}/revoke"): INSTITUTION_MANAGERS,
    ("POST", "/staff/institution/{institution_id}/keys/apps/{app_id}/{key_id}/revoke"): INSTITUTION_MANAGERS,
    # family doctors: the resident's page; the work list, desk and contract pages (the API's desk and
    # team-work rules), the centre's teams and coverage (its admin)
    ("GET", "/me/family-doctor"): RESIDENT_ONLY,
    ("POST", "/me/family-doctor/sign"): RESIDENT_ONLY,
    ("POST", "/me/family-doctor/{contract_id}/{action}"): RESIDENT_ONLY,
    ("GET", "/staff/family-doctors"): FD_DESK - {HOSPITAL},
    ("POST", "/staff/family-doctors/sign"): FD_DESK - {HOSPITAL},
    ("GET", "/staff/family-doctors/contracts/{contract_id}"): FD_DESK - {HOSPITAL},
    ("POST", "/staff/family-doctors/contracts/{contract_id}/services"): FD_TEAM_WORKERS - {HOSPITAL},
    ("POST", "/staff/family-doctors/contracts/{contract_id}/referrals"): FD_TEAM_WORKERS - {HOSPITAL},
    ("GET", "/staff/family-doctors/centre"): FD_TEAM_MANAGERS,
    ("POST", "/staff/family-doctors/teams"): FD_TEAM_MANAGERS,
    # appointments: the resident's pages; the desk (its API's rules, without hospital systems), the scheduler
    ("GET", "/me/appointments"): RESIDENT_ONLY,
    ("GET", "/me/appointments/find"): RESIDENT_ONLY,
    ("GET", "/me/appointments/session/{session_id}"): RESIDENT_ONLY,
    ("POST", "/me/appointments/book"): RESIDENT_ONLY,
    ("GET", "/me/appointments/{reference}"): RESIDENT_ONLY,
    ("POST", "/me/appointments/{reference}/{action}"): RESIDENT_ONLY,
    ("GET", "/staff/appointments"): DAY_LIST_READERS - {HOSPITAL},
    ("POST", "/staff/appointments/check-in"): CHECK_IN_DESK - {HOSPITAL},
    ("POST", "/staff/appointments/book"): BOOKING_DESK - {HOSPITAL},
    ("GET", "/staff/appointments/schedule"): SCHEDULERS - {HOSPITAL},
    ("POST", "/staff/appointments/schedule"): SCHEDULERS - {HOSPITAL},
    ("GET", "/staff/appointments/schedule/{session_id}/suspend"): SCHEDULERS - {HOSPITAL},
    ("POST", "/staff/appointments/schedule/{session_id}/suspend"): SCHEDULERS - {HOSPITAL},
    # health records: the resident's timeline and consents; a clinician's view (records/auth.py RecordReader)
    ("GET", "/me/records"): RESIDENT_ONLY,
    ("GET", "/me/records/consents"): RESIDENT_ONLY,
    ("POST", "/me/records/consents"): RESIDENT_ONLY,
    ("POST", "/me/records/consents/{consent_id}/revoke"): RESIDENT_ONLY,
    ("GET", "/me/records/summary"): RESIDENT_ONLY,
    ("POST", "/me/records/summary"): RESIDENT_ONLY,
    ("POST", "/me/records/summary/entries/{entry_id}/remove"): RESIDENT_ONLY,
    ("GET", "/staff/records/{ehc_id}"): frozenset({DOCTOR, NURSE}),
    # payments: the resident's bills and payment links (Payer: residents only); the cashier's bills and
    # scan field (BillReader to see, Cashier to settle); finance's reconciliation and ledger (Finance)
    ("GET", "/me/bills"): RESIDENT_ONLY,
    ("GET", "/me/bills/{bill_id}"): RESIDENT_ONLY,
    ("POST", "/me/bills/{bill_id}/pay"): RESIDENT_ONLY,
    ("POST", "/me/bills/{bill_id}/code"): RESIDENT_ONLY,
    ("GET", "/me/payments"): RESIDENT_ONLY,
    ("POST", "/me/payments/insurance"): RESIDENT_ONLY,
    ("POST", "/me/payments/bank"): RESIDENT_ONLY,
    ("POST", "/me/payments/remove"): RESIDENT_ONLY,
    ("GET", "/staff/payments"): PAGE_BILL_READERS,
    ("GET", "/staff/payments/{bill_id}"): PAGE_BILL_READERS,
    ("POST", "/staff/payments/{bill_id}/settle"): PAGE_CASHIERS,
    ("GET", "/staff/payments/reconciliation"): PAGE_FINANCE,
    ("POST", "/staff/payments/reconciliation"): PAGE_FINANCE,
    ("GET", "/staff/payments/reconciliation.csv"): PAGE_FINANCE,
    # not pages, and public: what offline verifiers fetch, the health check, the API's documentation
    ("GET", "/.well-known/ehc/root-key"): PUBLIC,
    ("GET", "/.well-known/ehc/trust-list"): PUBLIC,
    ("GET", "/.well-known/ehc/revocations"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
}


def page_routes(app) -> set[tuple[str, str]]:  # noqa: ANN001
    """Every (method, path template) the app serves outside /api/v1 and /fhir."""
    found = {(method, path) for method, path in served_routes(app) if not path.startswith(("/api/v1", "/fhir"))}
    assert ("GET", "/me") in found, "no page routes found: has the way to list them changed?"
    return found


def test_every_page_has_an_entry_in_the_matrix(world: World) -> None:
    served = page_routes(world.client.app)
    missing = sorted(served - PAGE_MATRIX.keys())
    stale = sorted(PAGE_MATRIX.keys() - served)
    assert not missing and not stale, (
        f"pages without an entry in PAGE_MATRIX (decide who may open them): {missing}; "
        f"entries for pages that no longer exist: {stale}")


ROLE_REFUSED = i18n.catalogue("en")["errors.role_not_allowed"]


def _page_outcome(answer) -> str:  # noqa: ANN001
    """``sign-in`` (a redirect to /sign-in or /staff/sign-in), ``403`` (the role error page), ``error``
    (a server error), else ``through`` (the page, or what it answers a caller it let in: a 303 elsewhere,
    a CSRF refusal for a form sent without its token, "not found" for an object out of reach)."""
    location = answer.headers.get("location", "")
    if answer.status_code >= 500:
        return "error"
    if answer.status_code in (302, 303, 307) and location.split("?")[0] in ("/sign-in", "/staff/sign-in"):
        return "sign-in"
    if answer.status_code == 403 and ROLE_REFUSED in answer.text:
        return "403"
    return "through"


# An {action} in a page's path names one of the page's own actions.
_PAGE_ACTIONS = {"/staff/desk/": "report-lost", "/me/family-doctor/": "renew", "/me/appointments/": "confirm"}


def _page_url(w: World, template: str) -> str:
    action = next((a for prefix, a in _PAGE_ACTIONS.items() if template.startswith(prefix)), "x")
    return template.format(ehc_id=w.card, review_id="999999", verdict="accept", institution_id=w.institution,
                           code="0300", terminal_id="W01", staff_id=w.staff_id, app_id=w.managed_app.app_id,
                           key_id=w.managed_app.key_id, contract_id="no-such-contract", action=action,
                           session_id="0" * 24, reference="ANOTHERONE", consent_id="none", decision="approve",
                           bill_id="no-such-bill", entry_id="none", schedule_id="999999", delivery_id="999999")


def test_page_authorisation_matrix(world: World) -> None:
    problems = []
    seen: dict[tuple[str, str], dict[str, int]] = {}
    for (method, template), allowed in PAGE_MATRIX.items():
        seen[(method, template)] = {}
        for caller in CALLERS:
            answer = world.visit(caller, method, _page_url(world, template))
            seen[(method, template)][caller] = answer.status_code
            outcome = _page_outcome(answer)
            where = f"{caller:18} {method} {template} -> {answer.status_code} {answer.headers.get('location', '')}"
            if outcome == "error":
                problems.append(f"{where}: server error")
            elif caller in allowed:
                # A public page may send anyone to sign in as part of its own flow (the code form
                # without a code asked for); a page with a rule lets its callers in.
                if outcome == "403" or outcome == "sign-in" and allowed != PUBLIC:
                    problems.append(f"{where}: should be let through ({outcome})")
            else:
                # Staff whose role does not fit get the 403 page; anyone not signed in as staff (or, on the
                # resident's pages, not signed in as a resident) is sent to sign in, to the page's own area.
                staff_area = template.startswith("/staff")
                expected = "403" if staff_area and caller in STAFF else "sign-in"
                sign_in = "/staff/sign-in" if staff_area else "/sign-in"
                if outcome != expected:
                    problems.append(f"{where}: should be refused with {expected}, got {outcome}")
                elif expected == "sign-in" and not answer.headers["location"].startswith(sign_in):
                    problems.append(f"{where}: should be sent to {sign_in}")
                if answer.status_code == 200:
                    problems.append(f"{where}: a refused caller must never get the page")
    assert not problems, "\n" + _page_table(seen) + "\n\n" + "\n".join(problems)


def _page_table(seen: dict[tuple[str, str], dict[str, int]]) -> str:
    """Rows: pages; columns: callers; each cell the status the caller got (``*`` where it may open the page)."""
    width = max(len(f"{m} {p}") for m, p in seen)
    lines = [" " * (width + 1) + " ".join(f"{SHORT[c]:>6}" for c in CALLERS)]
    for (method, path), answers in seen.items():
        cells = [f"{answers[c]}{'*' if c in PAGE_MATRIX[(method, path)] else ''}" for c in CALLERS]
        lines.append(f"{method + ' ' + path:{width}} " + " ".join(f"{c:>6}" for c in cells))
    return "\n".join(lines)


def test_pages_reach_only_the_callers_own_objects(world: World) -> None:
    """Let in, a caller still sees only what is theirs: another institution, a card that is not the
    resident's or their family's, answer the "not found" page, never someone else's data."""
    other = world.other
    for path in (f"/staff/institution/{other}", f"/staff/institution/{other}/staff",
                 f"/staff/institution/{other}/keys"):
        answer = world.visit(INST_ADMIN, "GET", path)
        assert answer.status_code == 404 and "Shenzhen Clinic" not in answer.text, (path, answer.status_code)
    for path in (f"/me/report-lost?card={world.card}", f"/me/pin?card={world.card}",
                 f"/me/code?member={world.card}"):
        answer = world.visit(RESIDENT, "GET", path)
        assert answer.status_code == 404 and HOLDER["name"] not in answer.text, (path, answer.status_code)
    for path in (f"/me/report-lost?card={world.member}", f"/me/code?member={world.member}"):
        assert world.visit(RESIDENT, "GET", path).status_code == 200, path  # their child's card is theirs
