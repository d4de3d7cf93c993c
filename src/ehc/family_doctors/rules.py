"""The family-doctor rules that need no database: the platform's default policy, the code lists
(team roles, package kinds, conditions, reasons to change team), eligibility of a person for a
package (data, per region, never a code branch per package), and when a package's services fall due.

Defaults (docs/family-doctors.md): a lead doctor holds at most 2,000 contracted residents, a contract
runs 365 days, the renewal reminder goes out 30 days before it ends. Each is a regional policy
(``fd_policies``); the most specific region that set one wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from ..kit.errors import Invalid, field_error

DEFAULT_CAPACITY = 2000
DEFAULT_TERM_DAYS = 365
DEFAULT_REMINDER_DAYS = 30
# Reasons a resident may change team before the term ends, unless a region lists its own.
DEFAULT_CHANGE_REASONS = ("moved", "team_dissolved", "doctor_left", "care_needs_changed")
CHANGE_REASON_LABELS = {
    "moved": ("Moved out of the service area", "迁出服务区域"),
    "team_dissolved": ("The team was dissolved", "团队解散"),
    "doctor_left": ("The lead doctor left", "签约医生离岗"),
    "care_needs_changed": ("Care needs changed (a specialist team is needed)", "健康需求变化（需专科团队）"),
    "dissatisfied": ("Not satisfied with the service", "对服务不满意"),
}

TEAM_ROLES = ("lead_gp", "nurse", "public_health", "specialist")
TEAM_ROLE_LABELS = {
    "lead_gp": ("Lead general practitioner", "全科医生（团队长）"),
    "nurse": ("Nurse", "护士"),
    "public_health": ("Public-health worker", "公卫人员"),
    "specialist": ("Specialist (partner hospital)", "专科医生（合作医院）"),
}
# The staff roles (kit.roles) that may hold each team role.
TEAM_ROLE_STAFF = {
    "lead_gp": frozenset({"family_doctor", "doctor"}),
    "nurse": frozenset({"nurse"}),
    "public_health": frozenset({"nurse", "doctor", "family_doctor"}),
    "specialist": frozenset({"doctor"}),
}

PACKAGE_KINDS = ("basic", "elderly", "hypertension", "diabetes", "maternal_child", "mental_illness", "disability",
                 "other")
SERVICE_KINDS = ("follow_up", "check_up", "other")
# Recorded conditions (key populations). Pregnancy is recorded like a condition; age groups are not.
CONDITIONS = {
    "hypertension": ("Hypertension", "高血压"),
    "diabetes_t2": ("Type 2 diabetes", "2型糖尿病"),
    "pregnancy": ("Pregnancy", "孕产期"),
    "severe_mental_illness": ("Severe mental illness", "严重精神障碍"),
    "tuberculosis": ("Tuberculosis", "肺结核"),
    "disability": ("Disability", "残疾"),
}
SEXES = ("1", "2")  # GB/T 2261.1: male, female
# Care-step codes a visit's card use is reported with (docs/codes.md): a follow-up is a consultation
# (diagnosis), a check-up an examination; a consent scan at signing is "other".
SCENE_OF_KIND = {"follow_up": "010102", "check_up": "010104", "other": "000000"}
CONSENT_SCENE = "000000"


def invalid(field_name: str, code: str, message: str) -> Invalid:
    return Invalid(message, code=code, errors=[field_error(field_name, code, message)])


@dataclass(frozen=True)
class PolicyTerms:
    region_code: str  # "" for the platform's defaults
    capacity_per_lead: int = DEFAULT_CAPACITY
    term_days: int = DEFAULT_TERM_DAYS
    reminder_days: int = DEFAULT_REMINDER_DAYS
    change_reasons: tuple[str, ...] = DEFAULT_CHANGE_REASONS


def policy_regions(region_code: str | None) -> list[str]:
    """The regions whose policy applies to ``region_code``, most specific first: 510104, 510100, 510000."""
    if not region_code or len(region_code) != 6:
        return []
    found = [region_code, region_code[:4] + "00", region_code[:2] + "0000"]
    return list(dict.fromkeys(found))


# -- eligibility: data, checked the same way for every package --------------------------------------

ELIGIBILITY_KEYS = {"min_age", "max_age", "sex", "conditions"}


def check_eligibility(rule: Any) -> dict[str, Any]:
    """A package's eligibility as stored: ``min_age``/``max_age`` (whole years), ``sex`` (1 or 2),
    ``conditions`` (any one of them recorded). An empty rule admits everyone."""
    if not isinstance(rule, dict) or set(rule) - ELIGIBILITY_KEYS:
        raise invalid("eligibility", "eligibility_invalid",
                      f"Eligibility is an object with any of: {', '.join(sorted(ELIGIBILITY_KEYS))}.")
    out: dict[str, Any] = {}
    for key in ("min_age", "max_age"):
        value = rule.get(key)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 150:
                raise invalid(f"eligibility.{key}", "eligibility_invalid", "An age is a whole number of years, 0-150.")
            out[key] = value
    if rule.get("sex") is not None:
        if rule["sex"] not in SEXES:
            raise invalid("eligibility.sex", "eligibility_invalid", "Sex is 1 (male) or 2 (female).")
        out["sex"] = rule["sex"]
    conditions = rule.get("conditions") or []
    if not isinstance(conditions, list) or any(c not in CONDITIONS for c in conditions):
        raise invalid("eligibility.conditions", "eligibility_invalid",
                      f"Conditions are any of: {', '.join(CONDITIONS)}.")
    if conditions:
        out["conditions"] = sorted(set(conditions))
    return out


@dataclass(frozen=True)
class Resident:
    """What eligibility looks at: age on the day, sex, conditions on record."""

    age: int | None
    sex: str | None
    conditions: frozenset[str] = field(default_factory=frozenset)


def age_on(birth: date | None, day: date) -> int | None:
    if birth is None:
        return None
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def eligibility_problem(rule: dict[str, Any], who: Resident) -> str | None:
    """Why ``who`` may not sign a package with ``rule``, as a stable code, or None."""
    if "min_age" in rule and (who.age is None or who.age < rule["min_age"]):
        return "too_young"
    if "max_age" in rule and (who.age is None or who.age > rule["max_age"]):
        return "too_old"
    if "sex" in rule and who.sex != rule["sex"]:
        return "sex"
    if rule.get("conditions") and not set(rule["conditions"]) & who.conditions:
        return "condition_not_recorded"
    return None


# -- services: what is promised and when it falls due -------------------------------------------------

def check_services(services: Any) -> list[dict[str, Any]]:
    """A package's services: ``code``, ``kind`` (follow_up, check_up, other), ``name``, ``yearly_count``."""
    if not isinstance(services, list) or not services or len(services) > 30:
        raise invalid("services", "services_invalid", "A package lists 1 to 30 services.")
    out, seen = [], set()
    for i, item in enumerate(services):
        where = f"services.{i}"
        if not isinstance(item, dict):
            raise invalid(where, "services_invalid", "A service is an object.")
        code = item.get("code")
        if not isinstance(code, str) or not code.replace("_", "").isalnum() or not 1 <= len(code) <= 32 or code in seen:
            raise invalid(f"{where}.code", "services_invalid", "A service code is 1-32 letters, digits or _, unique.")
        if item.get("kind") not in SERVICE_KINDS:
            raise invalid(f"{where}.kind", "services_invalid", f"A service kind is one of {', '.join(SERVICE_KINDS)}.")
        count = item.get("yearly_count")
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 52:
            raise invalid(f"{where}.yearly_count", "services_invalid", "A yearly count is 1 to 52.")
        name = " ".join(str(item.get("name") or code).split())[:100]
        seen.add(code)
        out.append({"code": code, "kind": item["kind"], "name": name, "yearly_count": count})
    return out


def due_by(count: int, start: date, end: date, day: date) -> int:
    """How many of ``count`` services spread evenly over the term [start, end] are due by ``day``:
    the k-th falls due at the end of the k-th equal part of the term (four follow-ups a year: at 3,
    6, 9 and 12 months)."""
    if day < start:
        return 0
    term = (end - start).days + 1
    elapsed = min((day - start).days + 1, term)
    return count * elapsed // term


def next_due(count: int, done: int, start: date, end: date) -> date | None:
    """The day the next service (after ``done``) falls due, or None when all are done."""
    if done >= count:
        return None
    term = (end - start).days + 1
    # the smallest elapsed e with count * e // term >= done + 1
    elapsed = -(-(done + 1) * term // count)
    return start + timedelta(days=elapsed - 1)
