"""Sending scheduled reports upward: each file of a schedule marked ``send_upstream`` goes to the
upper-level platform (a province's to the national one), signed the way this platform's own API is.

**The upload** (docs/statistics.md, "Sending reports upward")::

    POST <EHC_UPSTREAM_URL>?report=daily_report&region=510000&from=2026-11-20&to=2026-11-20
                           &schedule=12&due=2026-11-21&sha256=<hex>
    Content-Type: text/csv; charset=utf-8            (application/vnd.apache.parquet for Parquet)
    Idempotency-Key: <app id>:<schedule>:<due day>   (the same at every try)
    X-EHC-App-Id, X-EHC-Key-Id, X-EHC-Timestamp, X-EHC-Nonce, X-EHC-Signature   (EHC-SM2-V1)
    <the file's bytes>

The upper platform registered this one as an app (``EHC_UPSTREAM_APP_ID``, ``EHC_UPSTREAM_KEY_ID``)
with the public half of the SM2 key in ``EHC_UPSTREAM_KEY_FILE``. The report's description is in the
query string, so the signature covers it as it covers the body's SM3.

**Exactly once on the receiver's side, at least once on ours.** A try first takes a lease on the
file in a transaction of its own (``next_send_at`` moved ahead, the attempt counted), then sends
outside any transaction, then records the answer. A 2xx answer means received: ``sent_at`` is set and
the answer's ``id``, if any, kept as the receipt. Anything else (a refusal, a 5xx, a timeout, no
connection, a file altered on disk) is recorded as the last error and tried again after 1, 2, 4 ...
minutes, at most an hour apart. A crash between sending and recording leaves the lease to expire and
the file is sent again with the same Idempotency-Key, which the receiver answers as the first time.
Two runners at once (several workers) take each lease once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from ..client import SM2Auth
from ..crypto import SM2PrivateKey
from ..kit import dialect
from ..kit.clock import utcnow
from ..kit.context import Ctx
from . import repository as repo
from .models import ReportDelivery, ReportSchedule

log = logging.getLogger("ehc.statistics.sending")

SEND_LOCK = "ehc.statistics.send"
LEASE = timedelta(minutes=5)  # longer than a try can take (TIMEOUT): no second runner sends meanwhile
TIMEOUT = 60.0  # seconds for one upload
FIRST_RETRY = timedelta(minutes=1)
LONGEST_WAIT = timedelta(hours=1)
BATCH = 50  # files sent per run at most; the rest at the next run


@dataclass(frozen=True)
class Upstream:
    url: str
    app_id: str
    key_id: str
    key: SM2PrivateKey


def upstream_of(settings: Any) -> Upstream | None:
    """The upper-level platform, when ``EHC_UPSTREAM_URL`` is set; ``ValueError`` saying what is missing
    when it is set but the rest is not usable."""
    if not settings.upstream_url:
        return None
    if not (settings.upstream_app_id and settings.upstream_key_id and settings.upstream_key_file):
        raise ValueError("EHC_UPSTREAM_URL is set: EHC_UPSTREAM_APP_ID, EHC_UPSTREAM_KEY_ID and "
                         "EHC_UPSTREAM_KEY_FILE are needed too")
    try:
        key = SM2PrivateKey.from_pem(Path(settings.upstream_key_file).read_bytes())
    except (OSError, ValueError) as exc:
        raise ValueError(f"EHC_UPSTREAM_KEY_FILE {settings.upstream_key_file}: not a readable SM2 private key "
                         f"({type(exc).__name__})") from None
    return Upstream(settings.upstream_url, settings.upstream_app_id, settings.upstream_key_id, key)


def retry_after(attempts: int) -> timedelta:
    """How long after its ``attempts``-th failed try a file is tried again."""
    return min(FIRST_RETRY * 2 ** max(0, attempts - 1), LONGEST_WAIT)


@dataclass
class SendRun:
    sent: list[tuple[int, str]] = field(default_factory=list)  # (delivery, receipt)
    failed: list[tuple[int, str]] = field(default_factory=list)  # (delivery, error)


@dataclass(frozen=True)
class _Try:
    delivery_id: int
    attempt: int
    media_type: str
    path: Path
    sha256: str
    params: dict[str, str]
    idempotency_key: str


def send_due(db: Any, make_ctx: Callable[[Session], Ctx], media_types: dict[str, str], reports_dir: Callable[[Ctx], Path],
             *, http: httpx.Client | None = None) -> SendRun:
    """Send every file waiting to go upward whose next try is due; nothing when no upper platform is
    configured. Each file: lease, send, record (module docstring). Leases and retries follow the
    clock, whatever day a runner was asked to run as."""
    run = SendRun()
    with db.session() as session:
        ctx = make_ctx(session)
        try:
            upstream = upstream_of(ctx.settings)
        except ValueError as exc:
            log.error("scheduled reports are not sent upward: %s", exc)
            return run
        if upstream is None:
            return run
        waiting = repo.deliveries_to_send(session, utcnow(), BATCH)
    client = http or httpx.Client(timeout=TIMEOUT)
    try:
        for delivery_id in waiting:
            attempt = _lease(db, make_ctx, delivery_id, upstream, media_types, reports_dir, utcnow())
            if attempt is None:  # sent meanwhile, or another runner holds it
                continue
            receipt, error = _send(client, upstream, attempt)
            _record(db, attempt, receipt, error)
            if error is None:
                run.sent.append((delivery_id, receipt or ""))
            else:
                log.warning("report file %s not received upstream (try %d): %s", delivery_id, attempt.attempt, error)
                run.failed.append((delivery_id, error))
    finally:
        if http is None:
            client.close()
    return run


def _lease(db: Any, make_ctx: Callable[[Session], Ctx], delivery_id: int, upstream: Upstream,
           media_types: dict[str, str], reports_dir: Callable[[Ctx], Path], now: datetime) -> _Try | None:
    with db.session() as session:
        dialect.serialise(session, f"{SEND_LOCK}:{delivery_id}")
        row: ReportDelivery | None = repo.delivery_by_id(session, delivery_id)
        if row is None or row.sent_at is not None or (row.next_send_at is not None and row.next_send_at > now):
            return None
        schedule: ReportSchedule | None = repo.schedule(session, row.schedule_id)
        if schedule is None:
            return None
        row.send_attempts += 1
        row.next_send_at = now + LEASE
        params = {"report": schedule.report, "region": schedule.region_code or "national",
                  "from": row.start.isoformat(), "to": row.end.isoformat(), "schedule": str(schedule.id),
                  "due": row.due_on.isoformat(), "sha256": row.sha256}
        if schedule.report == "table":
            params.update(indicator=schedule.indicator or "", by=schedule.breakdown or "", period=schedule.period or "")
        return _Try(delivery_id, row.send_attempts, media_types[schedule.format], reports_dir(make_ctx(session)) / row.path,
                    row.sha256, params, f"{upstream.app_id}:{schedule.id}:{row.due_on.isoformat()}")


def _send(client: httpx.Client, upstream: Upstream, attempt: _Try) -> tuple[str | None, str | None]:
    """(receipt, None) when received; (None, what went wrong) otherwise."""
    try:
        body = attempt.path.read_bytes()
    except OSError:
        return None, "file_missing: the report's file is no longer in the data directory"
    if hashlib.sha256(body).hexdigest() != attempt.sha256:
        return None, "file_altered: the report's file differs from the one delivered"
    try:
        answer = client.post(upstream.url, params=attempt.params, content=body,
                             headers={"Content-Type": attempt.media_type, "Idempotency-Key": attempt.idempotency_key},
                             auth=SM2Auth(upstream.app_id, upstream.key_id, upstream.key))
    except httpx.HTTPError as exc:
        return None, f"unreachable: {type(exc).__name__}"
    if answer.is_success:
        try:
            data = answer.json()
        except ValueError:
            data = {}
        return str(data.get("id", "") if isinstance(data, dict) else "")[:64], None
    code = ""
    try:
        problem = answer.json()
        code = str(problem.get("code", "")) if isinstance(problem, dict) else ""
    except ValueError:
        pass
    return None, f"http_{answer.status_code}{': ' + code if code else ''}"


def _record(db: Any, attempt: _Try, receipt: str | None, error: str | None) -> None:
    with db.session() as session:
        dialect.serialise(session, f"{SEND_LOCK}:{attempt.delivery_id}")
        row = repo.delivery_by_id(session, attempt.delivery_id)
        if row is None:
            return
        now = utcnow()
        if error is None:
            row.sent_at, row.receipt, row.send_error, row.next_send_at = now, receipt, None, None
        else:
            row.send_error, row.next_send_at = error[:200], now + retry_after(attempt.attempt)
