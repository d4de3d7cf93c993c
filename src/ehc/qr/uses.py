"""Card uses after the online scan: offline uses uploaded in batches, and monitoring.

**Batch upload** (docs/qr-format.md §9.1). A terminal that verified codes with no network (against
its cached trust list and revocation list) uploads those uses later. Each item is verified again as
the terminal did it *at the moment of the scan* (signature with the key valid then, time window
against ``at`` with the offline skew, a static code's revocation id not revoked at ``at``), the card
is resolved from the code, and the use is stored with ``offline=True``. Items fail one by one
(``rejected`` with the problem's code), never the batch.

Deduplication by (key id, nonce): a dynamic code already recorded at the same institution and
terminal is a ``duplicate`` (the terminal retrying an upload: nothing new is stored, the first
use's id is answered); recorded anywhere else (online, another terminal, another institution) it is
stored with ``replay=True`` and answered ``replay``, the after-the-fact replay detection §9.1
promises. A static code's nonce is its revocation id, shared by every use of the card issue, so a
static use is a duplicate only when terminal and moment match too.

**Monitoring.** Uses are listed and counted within the caller's reach, the registry's own rules
(``institutions.service``): an institution's admin and its hospital systems see their institution, a
regional operator (and a regional auditor) the institutions of their region, a national auditor and
platform admins everything. The rows carry no card id and no person: who used a card is the
resident's business (``GET /api/v1/me/card-uses``); monitoring is about where and for what.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from sqlalchemy import Select, and_, case, func, or_, select

from ..accounts import service as accounts
from ..kit.roles import Role
from ..audit.service import record_access
from ..institutions import service as institutions
from ..kit import dialect
from ..kit.clock import CHINA, in_china, utcnow
from ..kit.context import Ctx
from ..kit.errors import Invalid, Problem, field_error
from ..kit.regions import region_prefix, region_problem
from . import codec, repository
from .codec.codes import SCENES, online_only
from .models import CardUse
from .online import (
    VERIFY_PURPOSE,
    QRRevoked,
    Use,
    card_for,
    check_use,
    claim_code,
    key_lookup,
    ref_secret,
    region_of,
)

MAX_BATCH = 500
OFFLINE_SKEW = codec.DEFAULT_SKEW  # 15 s: the clock difference an offline terminal tolerates (§9 step 8)
# How old an offline use may be when it reaches the platform. Older uploads are refused: terminals
# upload daily, and a month-old "use" is more likely a replayed capture than a late terminal.
HORIZON = timedelta(days=30)
MAX_PAGE = 200
SUMMARY_DAYS = 31  # the default window of a summary, ending now
MAX_SUMMARY_DAYS = 366


class Outcome(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    REPLAY = "replay"
    REJECTED = "rejected"


class UseTooOld(Invalid):
    code = "use_too_old"


class UseInFuture(Invalid):
    code = "use_in_future"


class UseTimeInvalid(Invalid):
    code = "use_time_invalid"


class TerminalUnknown(Invalid):
    code = "terminal_unknown"


class OnlineOnly(Invalid):
    code = "second_factor_online_only"


# -- batch upload -------------------------------------------------------------------------------

@dataclass(frozen=True)
class OfflineUse:
    """One scan a terminal made offline: the code it read, the care step and channel codes, and when."""

    code: str
    scene: str
    channel: str
    terminal_id: str
    at: datetime
    department: str | None = None


@dataclass(frozen=True)
class ItemResult:
    index: int
    outcome: Outcome
    use_id: int | None = None
    ehc_id: str | None = None
    problem: str | None = None  # a rejected item's problem code
    detail: str | None = None


@dataclass
class BatchResult:
    items: list[ItemResult] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        seen = Counter(item.outcome.value for item in self.items)
        return {outcome.value: seen.get(outcome.value, 0) for outcome in Outcome}


def check_batch_size(count: int) -> None:
    if count > MAX_BATCH:
        raise Invalid(f"A batch holds at most {MAX_BATCH} card uses; split it.", code="batch_too_large",
                      errors=[field_error("uses", "batch_too_large", f"at most {MAX_BATCH} items")])
    if count < 1:
        raise Invalid("A batch holds at least one card use.", code="batch_empty",
                      errors=[field_error("uses", "batch_empty", "at least 1 item")])


def upload(ctx: Ctx, uses: Sequence[OfflineUse | Problem], *, now: datetime | None = None,
           horizon: timedelta = HORIZON) -> BatchResult:
    """Verify and record a terminal's offline uses, in the caller's transaction (one for the batch).

    Uploading the same batch again stores nothing and answers every stored item ``duplicate`` with
    the id of the use stored the first time. An item that is a ``Problem`` (the door found it malformed)
    is answered ``rejected`` with its code: one bad entry never fails the batch.
    """
    check_batch_size(len(uses))
    now = now or utcnow()
    _serialise_uploads(ctx)
    result = BatchResult()
    for index, use in enumerate(uses):
        if isinstance(use, Problem):  # refused before it got here (malformed): answered, not fatal
            result.items.append(ItemResult(index, Outcome.REJECTED, problem=use.code, detail=use.detail))
            continue
        try:
            result.items.append(_upload_one(ctx, index, use, now, horizon))
        except Problem as problem:
            result.items.append(ItemResult(index, Outcome.REJECTED, problem=problem.code, detail=problem.detail))
    return result


def _serialise_uploads(ctx: Ctx) -> None:
    """Two uploads of one institution (a retry racing the first try) take turns on PostgreSQL, so both
    cannot miss the other's rows; SQLite already has one writer at a time."""
    dialect.serialise(ctx.session, f"ehc.card_uses.batch:{ctx.actor.institution_id}")


def _upload_one(ctx: Ctx, index: int, use: OfflineUse, now: datetime, horizon: timedelta) -> ItemResult:
    check_use(Use(scene=use.scene, channel=use.channel, terminal_id=use.terminal_id, department=use.department))
    at = _scan_time(use.at, now, horizon)
    actor = ctx.actor
    _check_terminal(ctx, actor.institution_id, use.terminal_id)
    payload = _verify_at(ctx, use.code, at)
    if online_only(payload.type, use.scene):
        raise OnlineOnly("A printed code at a payment or report step needs a second factor, which only the "
                         "online verification checks: a terminal must not have accepted it offline.")
    card = card_for(ctx, codec.open_card_ref(ref_secret(ctx), payload))
    if card is None:
        raise QRRevoked("This code names no card on the platform.")
    nonce = payload.nonce.hex()
    static = payload.type is codec.CodeType.STATIC
    first = repository.first_use_of_code(ctx.session, payload.key_id, nonce, institution_id=actor.institution_id,
                                         terminal_id=use.terminal_id, at=at if static else None)
    if first is not None:
        return ItemResult(index, Outcome.DUPLICATE, use_id=first.id, ehc_id=first.ehc_id)
    # A static code is shown again and again by design; a dynamic one seen before is a replay.
    replay = not static and repository.first_use_of_code(ctx.session, payload.key_id, nonce) is not None
    row = CardUse(ehc_id=card.ehc_id, person_id=card.person_id, scene=use.scene, channel=use.channel,
                  institution_id=actor.institution_id, terminal_id=use.terminal_id, department=use.department,
                  code_type=int(payload.type), actor_kind=actor.kind, actor_id=actor.id, operator=actor.operator,
                  at=at, recorded_at=now, key_id=payload.key_id, nonce=nonce, offline=True, replay=replay,
                  region_code=region_of(ctx, actor.institution_id))
    ctx.session.add(row)
    ctx.session.flush()
    if not static:
        _claim_if_live(ctx, payload, now)
    # The platform opened the code to the card: recorded like an online scan, without unsealing
    # anything (the answer carries the card id, never the holder's details).
    record_access(ctx, card.person_id, "read", VERIFY_PURPOSE)
    return ItemResult(index, Outcome.REPLAY if replay else Outcome.RECORDED, use_id=row.id, ehc_id=card.ehc_id)


def _scan_time(at: datetime, now: datetime, horizon: timedelta) -> datetime:
    if at.tzinfo is None:
        raise UseTimeInvalid("The moment of the scan needs a time zone offset, e.g. 2026-11-26T16:30:00+08:00.")
    at = at.astimezone(UTC)
    if at > now + timedelta(seconds=OFFLINE_SKEW):
        raise UseInFuture("The moment of the scan is in the future: check the terminal's clock.")
    if at < now - horizon:
        raise UseTooOld(f"Offline uses are accepted for {horizon.days} days after the scan; this one is older.")
    return at


def _check_terminal(ctx: Ctx, institution_id: str | None, terminal_id: str) -> None:
    """The terminal must be one the institution registered (retired since is fine: the scan was before)."""
    if not institutions.terminal_registered(ctx.session, institution_id, terminal_id):
        raise TerminalUnknown(f"Terminal {terminal_id!r} is not registered for your institution.")


def _verify_at(ctx: Ctx, text_: str, at: datetime) -> codec.Payload:
    """§9 steps 1-9 as the terminal ran them at ``at``: keys trusted then, the offline skew, and for a
    static code the revocation list as it stood then."""
    code = codec.split(text_.strip()).code
    payload = codec.verify(code, key_lookup(ctx, code.payload.type, at), now=at, skew=OFFLINE_SKEW)
    if payload.type is codec.CodeType.STATIC and _revoked_at(ctx, payload.nonce.hex(), at):
        raise QRRevoked("This static code was on the revocation list when it was scanned.")
    return payload


def _revoked_at(ctx: Ctx, rid: str, at: datetime) -> bool:
    return repository.last_revocation_action(ctx.session, rid, at=at) == "add"


def _claim_if_live(ctx: Ctx, payload: codec.Payload, now: datetime) -> None:
    """A dynamic code uploaded while it is still valid is used up online too (single use, §9 step 11).
    Already claimed online: that use is in card_uses, and this one is flagged a replay."""
    expires = datetime.fromtimestamp(payload.expires_at, UTC) + timedelta(seconds=OFFLINE_SKEW)
    if expires > now:
        claim_code(ctx, payload.key_id, payload.nonce.hex(), expires)


# -- monitoring ---------------------------------------------------------------------------------

# The moments a card-use query may name: the platform's records start after the first and the second
# is far enough ahead for any "until" a person types.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Filters:
    institution_id: str | None = None
    region: str | None = None
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    scene: str | None = None
    channel: str | None = None
    offline: bool | None = None
    replay: bool | None = None


@dataclass(frozen=True)
class Page:
    items: list[CardUse]
    next_cursor: str | None


MONITOR_ROLES = frozenset({Role.INSTITUTION_ADMIN, Role.REGIONAL_OPERATOR, Role.AUDITOR, Role.PLATFORM_ADMIN})


def may_monitor(roles: frozenset[str]) -> bool:
    """Whether a staff member's roles include one that monitors card use (for the pages' navigation)."""
    return bool(roles & {r.value for r in MONITOR_ROLES})


def _reach(ctx: Ctx) -> list | None:
    """Conditions for the uses the actor may see: None for everything, [] for nothing."""
    actor = ctx.actor
    operator_region = None
    if actor.kind == "staff" and actor.roles & {Role.REGIONAL_OPERATOR.value, Role.AUDITOR.value}:
        operator_region = accounts.staff_region(ctx.session, actor)
    visible = institutions.visible_region(actor, operator_region)
    if visible is None:
        return None
    conditions = []
    if visible:
        conditions.append(CardUse.region_code.startswith(region_prefix(visible), autoescape=True))
    own = institutions.own_institution(actor)
    if own:
        conditions.append(CardUse.institution_id == own)
    return conditions


def _where(ctx: Ctx, query: Select, filters: Filters) -> Select | None:
    """``query`` narrowed to the actor's reach and the filters; None when nothing can match."""
    reach = _reach(ctx)
    if reach is not None:
        if not reach:
            return None
        query = query.where(or_(*reach))
    if filters.institution_id is not None:
        institutions.get_institution(ctx, filters.institution_id)  # 404 when out of reach
        query = query.where(CardUse.institution_id == filters.institution_id)
    if filters.region is not None:
        problem = region_problem(filters.region)
        if problem:
            raise Invalid(problem, code="region_code_invalid", errors=[field_error("region", "region_code_invalid",
                                                                                  problem)])
        query = query.where(CardUse.region_code.startswith(region_prefix(filters.region), autoescape=True))
    start, end = _period(filters)
    if start is not None:
        query = query.where(CardUse.at >= start)
    if end is not None:
        query = query.where(CardUse.at < end)
    for column, value in ((CardUse.scene, filters.scene), (CardUse.channel, filters.channel),
                          (CardUse.offline, filters.offline), (CardUse.replay, filters.replay)):
        if value is not None:
            query = query.where(column == value)
    return query


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise Invalid(f"'{name}' needs a time zone offset.", code="time_zone_missing",
                      errors=[field_error(name, "time_zone_missing", "add an offset, e.g. +08:00")])
    moment = moment.astimezone(UTC)
    if not EARLIEST <= moment < LATEST:
        # A year 59 or a bare number read as seconds since 1970 is a typing slip, not a question.
        raise Invalid(f"'{name}' must lie between {EARLIEST:%Y} and {LATEST:%Y}.", code="period_invalid",
                      errors=[field_error(name, "period_invalid", f"a moment from {EARLIEST:%Y} to {LATEST:%Y}")])
    return moment


def _period(filters: Filters) -> tuple[datetime | None, datetime | None]:
    """The filters' ``from`` and ``to`` in UTC, checked: each with an offset, plausible, in order."""
    start = _utc(filters.start, "from") if filters.start is not None else None
    end = _utc(filters.end, "to") if filters.end is not None else None
    if start is not None and end is not None and end <= start:
        raise Invalid("'from' must be before 'to'.", code="period_invalid",
                      errors=[field_error("from", "period_invalid", "from must be before to")])
    return start, end


def list_uses(ctx: Ctx, filters: Filters, *, limit: int = 50, cursor: str | None = None) -> Page:
    """Uses in reach, newest first, a page at a time (keyset: ``cursor`` is the previous page's last)."""
    limit = max(1, min(limit, MAX_PAGE))
    query = _where(ctx, select(CardUse), filters)
    if query is None:
        return Page([], None)
    if cursor:
        at, use_id = _decode_cursor(cursor)
        query = query.where(or_(CardUse.at < at, and_(CardUse.at == at, CardUse.id < use_id)))
    rows = list(ctx.session.scalars(query.order_by(CardUse.at.desc(), CardUse.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, _encode_cursor(rows[-1]) if more else None)


def _encode_cursor(use: CardUse) -> str:
    raw = f"{use.at.astimezone(UTC).isoformat()}|{use.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, use_id = raw.partition("|")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError("naive")
        return moment, int(use_id)
    except (ValueError, UnicodeDecodeError):
        raise Invalid("This page cursor was not made by this API.", code="cursor_invalid",
                      errors=[field_error("cursor", "cursor_invalid", "use next_cursor as given")]) from None


# -- summaries ----------------------------------------------------------------------------------

class Grouping(StrEnum):
    DAY = "day"  # by day (China Standard Time) and care step
    INSTITUTION = "institution"


@dataclass(frozen=True)
class SummaryRow:
    uses: int
    offline: int
    replays: int
    day: date | None = None
    scene: str | None = None
    institution_id: str | None = None
    institution_name: str | None = None
    region_code: str | None = None

    @property
    def scene_label(self) -> str | None:
        return SCENES.get(self.scene, self.scene) if self.scene else None


@dataclass(frozen=True)
class Summary:
    start: datetime
    end: datetime
    grouping: Grouping
    rows: list[SummaryRow]

    @property
    def total(self) -> int:
        return sum(r.uses for r in self.rows)


def summarise(ctx: Ctx, filters: Filters, grouping: Grouping = Grouping.DAY, *,
              now: datetime | None = None) -> Summary:
    """Counts of uses in reach, grouped by day and care step or by institution. Without ``start`` the
    window is the last 31 days; windows are at most 366 days long."""
    now = now or utcnow()
    start, end = _period(filters)
    end = end or now
    start = start or end - timedelta(days=SUMMARY_DAYS)
    if end - start > timedelta(days=MAX_SUMMARY_DAYS) or end <= start:
        raise Invalid(f"A summary covers more than 0 and at most {MAX_SUMMARY_DAYS} days.", code="period_invalid",
                      errors=[field_error("from", "period_invalid", "from must be before to, within a year")])
    filters = replace(filters, start=start, end=end)
    counts = (func.count(CardUse.id), func.sum(case((CardUse.offline.is_(True), 1), else_=0)),
              func.sum(case((CardUse.replay.is_(True), 1), else_=0)))
    if grouping is Grouping.DAY:
        day = _china_day(ctx)
        query = _where(ctx, select(day, CardUse.scene, *counts), filters)
        rows = [] if query is None else [
            SummaryRow(uses=n, offline=off or 0, replays=rep or 0, day=_as_date(d), scene=scene)
            for d, scene, n, off, rep in ctx.session.execute(query.group_by(day, CardUse.scene)
                                                             .order_by(day.desc(), CardUse.scene))
        ]
    else:
        query = _where(ctx, select(CardUse.institution_id, *counts), filters)
        grouped = [] if query is None else list(ctx.session.execute(
            query.group_by(CardUse.institution_id).order_by(func.count(CardUse.id).desc(), CardUse.institution_id)))
        names = institutions.institutions_by_id(ctx.session, [g[0] for g in grouped if g[0]])
        rows = [SummaryRow(uses=n, offline=off or 0, replays=rep or 0, institution_id=inst,
                           institution_name=names[inst].name if inst in names else None,
                           region_code=names[inst].region_code if inst in names else None)
                for inst, n, off, rep in grouped]
    return Summary(start, end, grouping, rows)


def _china_day(ctx: Ctx):
    """The calendar day of a use in China Standard Time, in each database's own date functions."""
    return dialect.china_date(ctx.session, CardUse.at)


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


# -- statistics ---------------------------------------------------------------------------------

def used_on_day(session, visits: Sequence[tuple[str, str, date]]) -> set[tuple[str, str, date]]:  # noqa: ANN001
    """Which of these (person, institution, China calendar day) saw that person's card verified at
    that institution on that day (replays of a dynamic code excluded): the statistics' "visit made
    with the card"."""
    wanted = set(visits)
    if not wanted:
        return set()
    days = [day for _, _, day in wanted]
    since = datetime.combine(min(days), time.min, CHINA)
    until = datetime.combine(max(days) + timedelta(days=1), time.min, CHINA)
    uses = repository.uses_between(session, sorted({person_id for person_id, _, _ in wanted}), since, until)
    # UtcDateTime columns come back aware.
    return {key for person_id, institution_id, at in uses
            if (key := (person_id, institution_id, in_china(at).date())) in wanted}


def statistics_events(session, after_id: int, limit: int) -> list[dict]:  # noqa: ANN001
    """The card uses' source for the statistics pipeline (``wiring`` registers it): each use after
    ``after_id`` as the facts a statistic needs (care step, channel, institution, terminal, region,
    time; the person id only for the pipeline to look up the age band and sex, never stored).
    A replayed dynamic code is kept as its own kind, ``replay``, so it is not counted as a use."""
    return [{"id": row.id, "at": row.at, "kind": "replay" if row.replay else "use", "care_step": row.scene,
             "channel": row.channel, "institution_id": row.institution_id, "terminal_id": row.terminal_id,
             "region_code": row.region_code, "person_id": row.person_id}
            for row in repository.uses_after(session, after_id, limit)]
