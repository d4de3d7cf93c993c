"""Who may see and who may manage which institution. Pure functions of the actor, so every rule
reads in one place and is tested without a database; the service applies them, ``auth.py`` turns
the role part of them into typed dependencies.

- The platform itself (CLI, batch jobs) and platform admins reach every institution.
- Regional operators reach the institutions of their region (GB/T 2260 prefix: an operator of
  510100 reaches 5101xx); they register and update institutions there. Without a region they reach
  nothing.
- Auditors read institutions of their region, or of the whole country when they have no region.
- Institution staff and the institution's own systems read their own institution; its
  ``institution_admin`` manages its departments, terminals and staff.

Anything outside an actor's reach answers 404, exactly as a missing institution does: whether an
institution is on the platform is not revealed to someone who may not see it. A role that may not
do something at all (a doctor adding a terminal) answers 403.
"""

from __future__ import annotations

from ..kit.roles import INSTITUTION_ROLES, Role
from ..kit.context import Actor
from ..kit.regions import region_within


def _is(actor: Actor, *roles: Role) -> bool:
    return actor.kind == "staff" and bool(actor.roles & {r.value for r in roles})


def everywhere(actor: Actor) -> bool:
    return actor.kind == "system" or _is(actor, Role.PLATFORM_ADMIN)


def visible_region(actor: Actor, operator_region: str | None) -> str | None:
    """The region whose institutions ``actor`` reads through the registry, "" for none, None for all."""
    if everywhere(actor):
        return None
    if _is(actor, Role.REGIONAL_OPERATOR):
        return operator_region or ""
    if _is(actor, Role.AUDITOR):
        return operator_region
    return ""


def own_institution(actor: Actor) -> str | None:
    """The institution an actor works for (its staff, its systems), if any."""
    if actor.institution_id and (actor.kind == "machine" or _is(actor, *INSTITUTION_ROLES)):
        return actor.institution_id
    return None


def may_see(actor: Actor, operator_region: str | None, institution_id: str, region_code: str) -> bool:
    if own_institution(actor) == institution_id:
        return True
    region = visible_region(actor, operator_region)
    return region is None or (region != "" and region_within(region_code, region))


def may_register_in(actor: Actor, operator_region: str | None, region_code: str) -> bool:
    """May ``actor`` register (or move) an institution in ``region_code``?"""
    if everywhere(actor):
        return True
    return _is(actor, Role.REGIONAL_OPERATOR) and bool(operator_region) and region_within(region_code, operator_region)


def may_manage(actor: Actor, institution_id: str) -> bool:
    """May ``actor`` manage the departments, terminals and staff of ``institution_id``?"""
    if everywhere(actor):
        return True
    return _is(actor, Role.INSTITUTION_ADMIN) and actor.institution_id == institution_id
