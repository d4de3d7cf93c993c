"""Migrate an existing resident registry into the platform: ``ehc cards import FILE.csv``.

The file
--------
UTF-8 CSV (a byte-order mark is fine; ``--encoding gb18030`` for older exports) with a header row.
Columns, matched by name (case and surrounding spaces ignored, any order, unknown columns ignored):

=================  ========  ===================================================================
column             required  content
=================  ========  ===================================================================
name               yes       the name as on the document
document_type      no        CV02.01.101 code (01 resident ID card, 03 passport, ...); blank = 01
document_number    yes       the document number, as typed (spaces, lower-case ``x`` are fine)
sex                no        GB/T 2261.1: 1 male, 2 female, 0/9 unknown; blank = from the ID
birth_date         no        ``YYYY-MM-DD``; blank = from the ID number
phone              no        mainland mobile number
address            no        free text, up to 200 characters
region_code        no        GB/T 2260, 6 digits; blank = from the ID number
=================  ========  ===================================================================

Every row goes through the rules of :func:`ehc.cards.service.register`: the same parsing and
normalisation (``ehc.identity``), the same field checks, the same real-name verifier
(``settings.verifier``): a row the verifier sends to review gets a card *pending review*, a row it
fails is rejected. Cards are issued through channel 0900 (batch import) by the actor
``system:<operator>``, and each new holder's audit trail records the registration (``card.register``). A document that already has a card (registered through the API, or earlier
in the file) keeps its person and card and counts as *already registered*; the same document under
another name is rejected as ``document_registered_other_name``, as the service does.

Rejected rows are listed in a report CSV: the line of the file where the record starts (the header
is line 1), the document type, the document number *masked* (``510***********123X``), the
service's problem code, the first field error's code, field and message (digit runs in messages
are starred out too). The report is rebuilt from the database at the end of every run, so it is
complete even after an interrupted run was resumed.

Resuming
--------
A job row (:class:`~ehc.cards.models.ImportJob`) is keyed by the SM3 digest of the file's bytes.
The content, not path + size + mtime: a copy of the file on another machine or a ``touch`` must
resume the same job, and an edited file must never resume a job whose ``rows_done`` counted
records of other content. Hashing costs one extra sequential read (SM3 runs at ~200 MB/s, about
half a second for a million residents). Each batch commits in ONE transaction with the job's
progress (``rows_done`` and the counters), so an interruption at any point leaves both in step,
and a re-run skips exactly the records already committed. Two runs of the same file at the same
time cannot both count a batch: progress is advanced with a compare-and-set on ``rows_done``.

How it is fast
--------------
The file is read as a stream, ``batch_size`` records at a time; a bounded number of batches is in
flight. Worker processes (``workers``, default: one per core) do the CPU work: parse, validate,
verify, seal every personal field with SM4-GCM (bound to the new person's id) and compute the
HMAC-SM3 blind indexes; the card's status comes from ``service.issue_status`` and its id from
``service.batch_card``, as for one registration. Each loads the key store itself and looks up the
active sealing key once per batch (``Vault.pinned``), not once per value; a key rotation is followed
from the next batch on. The main process only writes, one transaction per batch, through
:mod:`ehc.mpi.bulk` (through ``mpi.service``) for the master index, ``service.issue_batch`` for the
cards and their events (the same 80-bit id-prefix rule as ``service.fresh_card_id``, checked with one
query per batch) and :mod:`ehc.audit.bulk` for the audit trail (no other domain writes their tables).

On PostgreSQL every table of a batch is written with ``COPY``: persons, identifiers (blind indexes),
match keys, cards, card events, audit events and rejections; the job's progress is one
compare-and-set ``UPDATE``. That is safe because the batch first looks up, with one query each,
which of its documents and card-id prefixes are held already. A registration through the API that
commits one of them after the look-up makes the database refuse the COPY (the unique indexes); the
batch's transaction then rolls back whole and the batch is written again the careful way: staged in
a temporary table and inserted with ``ON CONFLICT DO NOTHING``, which yields to a concurrent holder
row by row. Elsewhere (SQLite, one writer at a time) the same rows go in with ``executemany``. The
few rows whose document is already held, or that repeat an earlier row, go one by one through
``service.register`` itself in the same transaction, so the existing-card and other-name rules are
the service's own code.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import multiprocessing
import os
import re
import signal
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..audit import service as audit_bulk
from ..crypto import KeyStore, sm3_hasher
from ..identity.service import get_verifier, mask_number, normalise_number
from ..kit import dialect, ids
from ..kit.clock import utcnow
from ..kit.codes import Channel
from ..kit.context import Actor, Vault
from ..kit.copytext import copy_line
from ..kit.errors import Invalid, Problem, field_error
from ..mpi import service as mpi_bulk
from . import service
from .models import CardStatus, ImportJob, ImportRejection
from .schemas import DocumentIn, RegistrationIn

COLUMNS = service.REGISTRATION_FIELDS
REQUIRED = ("name", "document_number")
DEFAULT_BATCH_SIZE = 5000
REPORT_HEADER = ("line", "document_type", "document_number_masked", "problem", "code", "field", "message")

Record = tuple[int, list[str]]  # (line where the record starts, its fields)


def _wire_limits() -> dict[str, int]:
    """The API's wire limits (``schemas.RegistrationIn``), so a row is refused exactly where a request
    would be; in the order of the fields."""
    limits = {}
    for model, prefix in ((RegistrationIn, ""), (DocumentIn, "document_")):
        for name, info in model.model_fields.items():
            limits.update({prefix + name: m.max_length for m in info.metadata if getattr(m, "max_length", None)})
    return {name: limits[name] for name in COLUMNS if name in limits}


MAX_LENGTH = _wire_limits()


@dataclass
class ImportProgress:
    """Where an import stands; handed to ``on_batch`` after every committed batch."""

    job_id: str
    file_name: str
    rows_total: int  # records in the file (an estimate from its line count, exact for one-line records)
    rows_done: int = 0  # records committed, over every run of this file
    resumed_from: int = 0  # records already done when this run started
    created: int = 0
    already_registered: int = 0
    pending_review: int = 0
    rejected: int = 0
    finished: bool = False
    report: Path | None = None


@dataclass
class _Rejection:
    line: int
    document_type: str | None
    document_masked: str | None
    problem: str
    code: str
    field: str | None
    message: str


@dataclass
class _Prepared:
    """A batch, prepared by a worker: what to bulk-write, what to refuse, what needs the service."""

    persons: mpi_bulk.PersonBatch
    people: list[tuple[int, str]]  # (line, new person id) of the bulk rows, in file order
    cards: list[tuple]  # ``service.batch_card`` rows
    pending: list[int]  # lines (of bulk rows) whose card is pending review
    rejects: list[_Rejection]
    slow: list[int]  # lines repeating a document held by an earlier line of this batch
    # Rows the verifier failed: (line, identifier blind index, rejection, an earlier line of the batch
    # holds the document). The service runs the verifier only for documents nobody holds yet, so these
    # are refused only if nobody held the document before them.
    failed: list[tuple[int, str, _Rejection, bool]] = field(default_factory=list)


class ImportFailed(Problem):
    status = 422
    code = "import_failed"
    title = "Import failed"


# -- the file ---------------------------------------------------------------------------------------

def file_digest(path: Path) -> tuple[str, int, int]:
    """SM3 of the file's bytes (hex), its size and its number of lines, in one streaming read."""
    digest = sm3_hasher()
    size = lines = 0
    last = b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":
        lines += 1
    return digest.finalize().hex(), size, lines


def _column_map(header: list[str]) -> dict[str, int]:
    positions: dict[str, int] = {}
    for index, raw in enumerate(header):
        name = raw.strip().lower().lstrip("\ufeff")
        if name in COLUMNS:
            if name in positions:
                raise ImportFailed(f"The header names the column {name!r} twice.", code="import_header_invalid")
            positions[name] = index
    missing = [c for c in REQUIRED if c not in positions]
    if missing:
        raise ImportFailed(
            f"The header row lacks the column(s) {', '.join(missing)}; expected some of: {', '.join(COLUMNS)}.",
            code="import_header_invalid",
        )
    return positions


def _records(fh, skip: int) -> Iterator[Record]:  # noqa: ANN001
    """Records after the header, each with the line where it starts; the first ``skip`` are passed over."""
    reader = csv.reader(fh)
    next(reader, None)
    end = reader.line_num
    for index, fields in enumerate(reader, start=1):
        start, end = end + 1, reader.line_num
        if index > skip:
            yield start, fields


# -- preparing a batch (worker processes) -------------------------------------------------------------

_DIGITS = re.compile(r"[0-9]{4,}")


def _scrub(message: str) -> str:
    """Messages may quote parts of a number (its birth date); the report never shows them."""
    return _DIGITS.sub(lambda m: "*" * len(m.group()), message)


def _mask(doc_type: str | None, number: str | None) -> str | None:
    if not number:
        return None
    try:
        return mask_number((doc_type or "01", normalise_number(doc_type or "01", number)))
    except Exception:  # unknown type: the generic rule (first one and last two characters)
        number = "".join(number.split())
        return "*" * len(number) if len(number) <= 3 else number[0] + "*" * (len(number) - 3) + number[-2:]


def _values(columns: dict[str, int], fields: list[str]) -> dict[str, str | None]:
    """A record's cells by column name; cells are stripped, blank ones are None."""
    out: dict[str, str | None] = {}
    for name in COLUMNS:
        index = columns.get(name)
        value = fields[index].strip() if index is not None and index < len(fields) else ""
        out[name] = value or None
    return out


def _registration(values: dict[str, str | None], errors: list[dict]) -> service.Registration:
    """The application as the API would receive it: its wire limits first, then the service's types."""
    for name, limit in MAX_LENGTH.items():
        value = values[name]
        if value is not None and len(value) > limit:
            errors.append(field_error(name, "string_too_long", f"At most {limit} characters."))
    birth_date = None
    if values["birth_date"]:
        try:
            birth_date = date.fromisoformat(values["birth_date"])
        except ValueError:
            errors.append(field_error("birth_date", "birth_date_malformed", "A birth date is written YYYY-MM-DD."))
    return service.Registration(
        name=values["name"] or "",
        document_type=values["document_type"] or "01",
        document_number=values["document_number"] or "",
        sex=values["sex"],
        birth_date=birth_date,
        phone=values["phone"],
        address=values["address"],
        region_code=values["region_code"],
    )


def _rejection(line: int, values: dict[str, str | None], problem: str, errors: list[dict],
               message: str) -> _Rejection:
    first = errors[0] if errors else {"code": problem, "field": None}
    doc_type = values["document_type"] or "01"
    return _Rejection(line, doc_type[:8], _mask(doc_type, values["document_number"]), problem, first["code"],
                      first.get("field"), _scrub("; ".join(e["message"] for e in errors) if errors else message))


class _Preparer:
    """Turns raw records into a :class:`_Prepared` batch. One per process."""

    def __init__(self, vault: Vault, verifier_name: str, columns: dict[str, int], copy: bool) -> None:
        self.vault = vault
        self.verifier = get_verifier(verifier_name)
        self.columns = columns
        self.copy = copy

    def prepare(self, records: list[Record]) -> _Prepared:
        persons = mpi_bulk.PersonBatchBuilder(self.vault, copy=self.copy)
        people: list[tuple[int, str]] = []
        cards: list[tuple] = []
        pending: list[int] = []
        rejects: list[_Rejection] = []
        slow: list[int] = []
        failed: list[tuple[int, str, _Rejection, bool]] = []
        first_line: dict[str, int] = {}  # identifier blind index -> first line of this batch that holds it
        for line, fields in records:
            if not any(f.strip() for f in fields):
                continue  # a blank line: nothing to import, nothing to report
            values = _values(self.columns, fields)
            # -- exactly service.register: collect every field error, then verify --
            errors: list[dict] = []
            application = _registration(values, errors)
            document = service.collect_field_errors(errors, service.parse_document, application.document_type,
                                        application.document_number)
            details = service.validated_details(errors, application, document)
            if errors:
                problem = "validation_failed" if any(e["code"] in ("string_too_long", "birth_date_malformed")
                                                     for e in errors) else "application_invalid"
                rejects.append(_rejection(line, values, problem, errors, "The application has invalid fields."))
                continue
            identifier = service.document_identifier(document)
            blind = mpi_bulk.identifier_blind_index(self.vault, identifier)
            earlier = first_line.get(blind)
            try:
                status, verifier = service.issue_status(self.verifier, details, document)
            except Invalid as refused:
                rejection = _rejection(line, values, refused.code, refused.errors, refused.detail)
                failed.append((line, blind, rejection, earlier is not None))
                continue
            if earlier is not None:
                slow.append(line)  # the service decides: same name -> already registered, else refused
                continue
            first_line[blind] = line
            if status is CardStatus.PENDING_REVIEW:
                pending.append(line)
            person_id = ids.new_person_id()
            persons.add(line, person_id, details, identifier, blind)
            people.append((line, person_id))
            cards.append(service.batch_card(line, person_id, status, verifier))
        return _Prepared(persons.build(), people, cards, pending, rejects, slow, failed)


_worker: _Preparer | None = None


def _init_worker(keys_dir: str, verifier_name: str, columns: dict[str, int], copy: bool) -> None:
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    _worker = _Preparer(Vault(KeyStore(Path(keys_dir))), verifier_name, columns, copy)


def _prepare_in_worker(records: list[Record]) -> _Prepared:
    assert _worker is not None
    return _worker.prepare(records)


# -- writing a batch (main process) ---------------------------------------------------------------

def _record_progress(connection: Connection, job_id: str, rows_before: int, rows_after: int,
                     counts: dict[str, int], now: datetime) -> None:
    """Advance the job in the batch's transaction: compare-and-set, so a concurrent run of the same file fails."""
    result = connection.execute(
        update(ImportJob)
        .where(ImportJob.id == job_id, ImportJob.rows_done == rows_before)
        .values(
            rows_done=rows_after,
            created=ImportJob.created + counts["created"],
            already_registered=ImportJob.already_registered + counts["already_registered"],
            pending_review=ImportJob.pending_review + counts["pending_review"],
            rejected=ImportJob.rejected + counts["rejected"],
            updated_at=now,
        )
    )
    if result.rowcount != 1:
        raise ImportFailed("Another run of this import advanced it meanwhile; let it finish, then re-run.",
                           code="import_running_elsewhere", status=409)


class _Writer:
    def __init__(self, platform, job_id: str, actor: Actor, columns: dict[str, int]) -> None:  # noqa: ANN001
        self.platform = platform
        self.job_id = job_id
        self.actor = actor
        self.columns = columns

    def write(self, connection: Connection, records: list[Record], prepared: _Prepared, rows_before: int,
              rows_after: int) -> dict[str, int]:
        """One batch, one transaction: people, cards, events, rejections and the job's progress.

        On PostgreSQL the batch is first written the fast way (``COPY`` straight into the tables once
        its documents and card ids were found free). If a registration through the API committed one
        of them in between, the database refuses the batch (unique index), the transaction rolls back
        whole, and the batch is written again the careful way (``mpi.service.create_persons``).
        """
        try:
            return self._write(connection, records, prepared, rows_before, rows_after, careful=False)
        except IntegrityError:
            return self._write(connection, records, prepared, rows_before, rows_after, careful=True)

    def _write(self, connection: Connection, records: list[Record], prepared: _Prepared, rows_before: int,
               rows_after: int, *, careful: bool) -> dict[str, int]:
        now = utcnow()
        counts = {"created": 0, "already_registered": 0, "pending_review": 0, "rejected": 0}
        with connection.begin():
            # Held before this batch? Checked first, so a later line of the batch cannot count.
            unheld = [f for f in prepared.failed if not f[3]]
            held = mpi_bulk.held_identifiers(connection, [f[1] for f in unheld]) if unheld else set()
            lost = mpi_bulk.create_persons(connection, prepared.persons, now, careful=careful)
            service.issue_batch(connection, prepared.cards, set(lost), self.actor, now)
            counts["created"] = prepared.persons.count - len(lost)
            counts["pending_review"] = sum(1 for line in prepared.pending if line not in lost)
            rejects = list(prepared.rejects)
            to_service = set(lost) | set(prepared.slow)
            for line, blind, rejection, earlier in prepared.failed:
                if earlier or blind in held:
                    to_service.add(line)
                else:
                    rejects.append(rejection)
            if to_service:
                rejects += self._through_service(connection, records, sorted(to_service), counts)
            counts["rejected"] = len(rejects)
            if rejects:
                self._reject(connection, rejects)
            _record_progress(connection, self.job_id, rows_before, rows_after, counts, now)
            # As the service does for every registration: a "card.register" change in each new
            # holder's audit trail (rows that went through the service recorded their own). Last, as
            # it holds the audit chain's lock until the commit.
            audit_bulk.record_changes(connection, [pid for line, pid in prepared.people if line not in lost],
                                      "card.register", self.actor, at=now)
        return counts

    def _reject(self, connection: Connection, rejects: list[_Rejection]) -> None:
        columns = ("job_id", "line", "document_type", "document_masked", "problem", "code", "field", "message")
        rows = [(self.job_id, r.line, r.document_type, r.document_masked, r.problem, r.code, r.field, r.message)
                for r in rejects]
        if dialect.can_copy(connection):
            dialect.copy_rows(connection, "card_import_rejections", columns, "".join(map(copy_line, rows)).encode())
        else:
            connection.execute(insert(ImportRejection.__table__), [dict(zip(columns, row)) for row in rows])

    def _through_service(self, connection: Connection, records: list[Record], lines: list[int],
                         counts: dict[str, int]) -> list[_Rejection]:
        """Rows whose document someone already holds: ``service.register`` itself decides, row by row."""
        by_line = dict(records)
        rejects: list[_Rejection] = []
        # The session joins the batch's transaction (it never commits or closes it itself).
        with Session(bind=connection) as session:
            ctx = self.platform.ctx(session, self.actor)
            for line in lines:
                values = _values(self.columns, by_line[line])
                savepoint = session.begin_nested()
                try:
                    issued = service.register(ctx, _registration(values, []))
                except Problem as problem:
                    savepoint.rollback()
                    rejects.append(_rejection(line, values, problem.code, problem.errors, problem.detail))
                    continue
                savepoint.commit()
                if issued.created:
                    counts["created"] += 1
                    if issued.card.status == CardStatus.PENDING_REVIEW:
                        counts["pending_review"] += 1
                else:
                    counts["already_registered"] += 1
            session.flush()
        return rejects


# -- the job --------------------------------------------------------------------------------------

def _job(platform, digest: str, path: Path, size: int, operator: str) -> ImportJob:  # noqa: ANN001
    with platform.db.session() as session:
        job = session.scalar(select(ImportJob).where(ImportJob.digest == digest))
        if job is not None:
            return job
    try:
        with platform.db.session() as session:
            job = ImportJob(id=ids.new_id(), digest=digest, file_name=path.name[:255], file_size=size,
                            status="running", rows_done=0, created=0, already_registered=0, pending_review=0,
                            rejected=0, operator=operator)
            session.add(job)
        return job
    except IntegrityError:  # another run of the same file created it a moment ago
        with platform.db.session() as session:
            return session.scalars(select(ImportJob).where(ImportJob.digest == digest)).one()


def write_report(platform, job_id: str, path: Path) -> int:  # noqa: ANN001
    """Write every rejection of the job, in file order, to ``path``; returns how many."""
    count = 0
    with platform.db.session() as session, open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(REPORT_HEADER)
        rows = session.execute(
            select(ImportRejection.line, ImportRejection.document_type, ImportRejection.document_masked,
                   ImportRejection.problem, ImportRejection.code, ImportRejection.field, ImportRejection.message)
            .where(ImportRejection.job_id == job_id)
            .order_by(ImportRejection.line)
            .execution_options(yield_per=5000)
        )
        for row in rows:
            writer.writerow(["" if v is None else v for v in row])
            count += 1
    return count


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def import_csv(
    platform,  # noqa: ANN001 - ehc.platform.Platform
    path: str | os.PathLike,
    *,
    operator: str = "cli",
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    report: str | os.PathLike | None = None,
    encoding: str = "utf-8-sig",
    on_start: Callable[[ImportProgress], None] | None = None,
    on_batch: Callable[[ImportProgress], None] | None = None,
) -> ImportProgress:
    """Import (or resume importing) a resident registry CSV; see the module docstring for the format.

    ``workers`` = 0 prepares batches in this process (no pool); ``None`` = one worker per core.
    ``report``: where to write the rejected rows (CSV), if anywhere. ``on_start`` is called once
    the job is known, ``on_batch`` after each committed batch.
    """
    if batch_size < 1:
        raise ImportFailed("The batch size must be at least 1.", code="import_batch_size_invalid")
    path = Path(path)
    codecs.lookup(encoding)
    digest, size, lines = file_digest(path)
    with open(path, encoding=encoding, newline="") as fh:
        columns = _column_map(next(csv.reader(fh), []))
    workers = default_workers() if workers is None else max(0, workers)
    actor = Actor.system(operator, Channel.BATCH_IMPORT)
    job = _job(platform, digest, path, size, operator)
    progress = ImportProgress(
        job_id=job.id, file_name=job.file_name, rows_total=max(lines - 1, job.rows_done),
        rows_done=job.rows_done, resumed_from=job.rows_done, created=job.created,
        already_registered=job.already_registered, pending_review=job.pending_review, rejected=job.rejected,
        finished=job.status == "done",
    )
    if not progress.finished:
        _run(platform, path, encoding, columns, job.id, actor, progress, batch_size, workers, on_start, on_batch)
    elif on_start:
        on_start(progress)
    if report is not None:
        progress.report = Path(report)
        write_report(platform, job.id, progress.report)
    return progress


def _run(platform, path: Path, encoding: str, columns: dict[str, int], job_id: str, actor: Actor,  # noqa: ANN001
         progress: ImportProgress, batch_size: int, workers: int,
         on_start: Callable | None, on_batch: Callable | None) -> None:
    copy = dialect.can_copy(platform.db.engine)
    writer = _Writer(platform, job_id, actor, columns)
    pool = None
    local = None
    if workers:
        # fork: workers start at once and inherit registered verifiers; they touch no database.
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        pool = context.Pool(workers, initializer=_init_worker,
                            initargs=(str(platform.settings.keys_dir), platform.settings.verifier, columns, copy))
    else:
        local = _Preparer(platform.vault, platform.settings.verifier, columns, copy)
    if on_start:
        on_start(progress)
    try:
        with open(path, encoding=encoding, newline="") as fh, platform.db.engine.connect() as connection:
            batches = _batches(_records(fh, progress.rows_done), batch_size)
            in_flight: deque = deque()
            window = 2 * workers + 1 if pool else 1

            def submit() -> bool:
                batch = next(batches, None)
                if batch is None:
                    return False
                in_flight.append((batch, pool.apply_async(_prepare_in_worker, (batch[1],)) if pool else None))
                return True

            while len(in_flight) < window and submit():
                pass
            while in_flight:
                (consumed, records), future = in_flight.popleft()
                prepared = future.get() if future is not None else local.prepare(records)
                submit()
                before = progress.rows_done
                counts = writer.write(connection, records, prepared, before, before + consumed)
                progress.rows_done += consumed
                progress.rows_total = max(progress.rows_total, progress.rows_done)
                for name, value in counts.items():
                    setattr(progress, name, getattr(progress, name) + value)
                if on_batch:
                    on_batch(progress)
            with connection.begin():
                now = utcnow()
                connection.execute(update(ImportJob).where(ImportJob.id == job_id)
                                   .values(status="done", finished_at=now, updated_at=now))
        progress.finished = True
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _batches(records: Iterator[Record], size: int) -> Iterator[tuple[int, list[Record]]]:
    """(how many records, the records) per batch; blank records count too, so resuming skips them alike."""
    while True:
        batch = list(itertools.islice(records, size))
        if not batch:
            return
        yield len(batch), batch
