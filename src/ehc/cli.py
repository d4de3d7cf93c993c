"""The ``ehc`` command: a third door into the same services as the API and the pages."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from .config import get_settings

app = typer.Typer(help="Electronic health card platform.", no_args_is_help=True)
keys_app = typer.Typer(help="The key store: root, QR issuing, sealing and blind-index keys.", no_args_is_help=True)
cards_app = typer.Typer(help="The card registry.", no_args_is_help=True)
staff_app = typer.Typer(help="Staff accounts.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail: verify its hash chain, search it.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(cards_app, name="cards")
app.add_typer(staff_app, name="staff")
sms_app = typer.Typer(help="Text messages to residents (development outbox).", no_args_is_help=True)
app.add_typer(sms_app, name="sms")
app.add_typer(audit_app, name="audit")
mpi_app = typer.Typer(help="The master patient index: link, match, review.", no_args_is_help=True)
app.add_typer(mpi_app, name="mpi")
# Piped output (scripts, tests) gets wide tables so ids are never cut short.
console = Console(width=None if sys.stdout.isatty() else 250)
err = Console(stderr=True)


def _platform():  # noqa: ANN202
    from .platform import Platform

    return Platform.from_settings()


def _fail(problem) -> None:  # noqa: ANN001
    err.print(f"[red]error[/red] {problem.code}: {problem.detail}")
    for e in getattr(problem, "errors", []) or []:
        err.print(f"  {e.get('field')}: {e.get('message')} ({e.get('code')})")
    raise typer.Exit(2)


# -- serving and schema ---------------------------------------------------------------------------

@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (PostgreSQL only; SQLite uses one)")] = 1,
) -> None:
    """Serve the API and the pages."""
    import uvicorn

    settings = get_settings()
    if settings.is_sqlite:
        workers = 1
    console.print(f"Serving on http://{host}:{port}  (API docs at /docs; database {settings.database_url.split('@')[-1]})")
    uvicorn.run("ehc.app:app_factory", factory=True, host=host, port=port, workers=workers, log_level="warning")


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from .migrate import upgrade

    upgrade(get_settings().database_url)
    console.print("database schema is up to date")


# -- keys -----------------------------------------------------------------------------------------

@keys_app.command("init")
def keys_init(if_missing: Annotated[bool, typer.Option("--if-missing", help="Do nothing when a store exists")] = False) -> None:
    """Create the key store (every missing key); never overwrites a key."""
    from .crypto import KeyStore
    from .crypto.keystore import KINDS

    settings = get_settings()
    existing = KeyStore(settings.keys_dir)
    if existing.exists and if_missing and all(existing.infos(kind) for kind in KINDS):
        return
    store = KeyStore.init(settings.keys_dir)  # adds only the kinds that are missing
    console.print(f"key store at {store.directory}: {', '.join(f'{k.kind}={k.id}' for k in store.infos())}")


@keys_app.command("list")
def keys_list() -> None:
    """Show every key with its id, kind and status (never the key material)."""
    from .crypto import KeyStore

    store = KeyStore(get_settings().keys_dir)
    table = Table("id", "kind", "status", "created", "not after", "fingerprint (SM3)")
    for k in store.infos():
        table.add_row(k.id, k.kind, k.status, k.created_at, k.not_after or "", (k.fingerprint or "")[:16])
    console.print(table)


@keys_app.command("rotate")
def keys_rotate(kind: Annotated[str, typer.Argument(help="sealing or qr")]) -> None:
    """Start using a new key of KIND; the old one is retired, kept to open or verify old material."""
    from .crypto import KeyStore, KeyStoreError

    try:
        info = KeyStore(get_settings().keys_dir).rotate(kind)
    except KeyStoreError as exc:
        err.print(f"[red]error[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(f"new active {kind} key: {info.id}")


@keys_app.command("withdraw")
def keys_withdraw(key_id: Annotated[str, typer.Argument(help="A retired QR key id, e.g. Q1a2b3c")]) -> None:
    """Take a retired QR key out of the trust list for good: every code it signed is refused from then on."""
    from .crypto import KeyStore, KeyStoreError
    from .qr.lists import withdraw_qr_key

    try:
        withdraw_qr_key(KeyStore(get_settings().keys_dir), key_id)
    except KeyStoreError as exc:
        err.print(f"[red]error[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(f"{key_id} withdrawn; restart the servers, terminals drop it at their next sync")


# -- staff ----------------------------------------------------------------------------------------

@staff_app.command("add")
def staff_add(
    username: str,
    role: Annotated[str, typer.Option(help="window_clerk, doctor, nurse, family_doctor, cashier, institution_admin, regional_operator, auditor, platform_admin")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    institution: Optional[str] = None,
    region: Optional[str] = None,
    name: Optional[str] = None,
) -> None:
    """Create a staff account."""
    from .accounts import service
    from .kit.errors import Problem

    platform = _platform()
    try:
        with platform.db.session() as session:
            account = service.create_staff(session, username=username, password=password, role=role,
                                           display_name=name, institution_id=institution, region_code=region)
    except Problem as problem:
        _fail(problem)
    console.print(f"staff account {account.username} ({account.role}) created")


# -- institutions ---------------------------------------------------------------------------------

institutions_app = typer.Typer(help="The institution registry: institutions, departments, terminals.",
                               no_args_is_help=True)
app.add_typer(institutions_app, name="institutions")


@institutions_app.command("create")
def institutions_create(
    uscc: Annotated[str, typer.Option(help="Unified social credit code (GB 32100)")],
    name: Annotated[str, typer.Option(help="Registered name")],
    kind: Annotated[str, typer.Option(help="hospital, community_centre, clinic or pharmacy")],
    region: Annotated[str, typer.Option(help="GB/T 2260 region code, e.g. 510104")],
    level: Annotated[Optional[str], typer.Option(help="3A, 3B, 2A, 2B, 1 ... or none")] = None,
    operator: Operator = "cli",
) -> None:
    """Register an institution (the platform acting: no regional limit)."""
    from .institutions import service
    from .institutions.schemas import InstitutionOut

    def do(ctx):  # noqa: ANN001, ANN202
        made = service.register_institution(ctx, uscc=uscc, name=name, kind=kind, region_code=region, level=level)
        console.print_json(InstitutionOut.of(made).model_dump_json())

    _ctx_run(do, operator, "0100", None)


@institutions_app.command("list")
def institutions_list(
    region: Annotated[Optional[str], typer.Option(help="Only within this GB/T 2260 region")] = None,
    kind: Annotated[Optional[str], typer.Option(help="hospital, community_centre, clinic or pharmacy")] = None,
    limit: int = 500,
) -> None:
    """Show registered institutions."""
    from .institutions import service
    from .institutions.schemas import InstitutionOut

    def do(ctx):  # noqa: ANN001, ANN202
        items, total = service.list_institutions(ctx, kind=kind, region_code=region, limit=limit)
        table = Table("id", "name", "kind", "level", "region", "USCC", title=f"{total} institution(s)")
        for item in map(InstitutionOut.of, items):
            table.add_row(item.id, item.name, item.kind, item.level or "", item.region_code, item.uscc)
        console.print(table)

    _ctx_run(do, "cli", "0100", None)


@institutions_app.command("add-department")
def institutions_add_department(
    institution: str,
    code: Annotated[str, typer.Argument(help="Standard 4-digit department code, e.g. 0300")],
    name: Annotated[Optional[str], typer.Option(help="Local name (default: the standard label)")] = None,
    operator: Operator = "cli",
) -> None:
    """Add a department to an institution."""
    from .institutions import service
    from .institutions.schemas import DepartmentOut

    def do(ctx):  # noqa: ANN001, ANN202
        made = service.add_department(ctx, service.managed_institution(ctx, institution), code=code, name=name)
        console.print_json(DepartmentOut.of(made).model_dump_json())

    _ctx_run(do, operator, "0100", None)


@institutions_app.command("add-terminal")
def institutions_add_terminal(
    institution: str,
    terminal_id: str,
    role: Annotated[str, typer.Option(help="window, kiosk, workstation or other")],
    department: Annotated[Optional[str], typer.Option(help="Department code")] = None,
    name: Optional[str] = None,
    operator: Operator = "cli",
) -> None:
    """Register a terminal (window 01, kiosk 02, workstation/other 99) at an institution."""
    from .institutions import service
    from .institutions.schemas import TerminalOut

    def do(ctx):  # noqa: ANN001, ANN202
        made = service.register_terminal(ctx, service.managed_institution(ctx, institution), terminal_id=terminal_id,
                                         role=role, department_code=department, name=name)
        console.print_json(TerminalOut.of(made, department).model_dump_json())

    _ctx_run(do, operator, "0100", None)


# -- sms ------------------------------------------------------------------------------------------

@sms_app.command("outbox")
def sms_outbox(
    limit: Annotated[int, typer.Option(help="How many of the most recent messages")] = 20,
    phone: Annotated[Optional[str], typer.Option(help="Only messages to this mobile number")] = None,
) -> None:
    """Show what the development SMS sender "sent" (EHC_SMS_SENDER=outbox), newest first."""
    from .accounts import sms
    from .identity import normalise_phone
    from .kit.errors import Problem

    platform = _platform()
    try:
        wanted = normalise_phone(phone) if phone else None
    except Problem as problem:
        _fail(problem)
    with platform.db.session() as session:
        messages = sms.outbox(session, platform.vault, phone=wanted, limit=limit)
    if platform.settings.sms_sender != "outbox":
        err.print(f"note: the SMS sender is {platform.settings.sms_sender!r}; the outbox only fills with 'outbox'")
    table = Table("sent at (UTC)", "phone", "text")
    for message in messages:
        table.add_row(f"{message.at:%Y-%m-%d %H:%M:%S}", message.phone, message.text)
    console.print(table)


# -- cards ----------------------------------------------------------------------------------------

def _ctx_run(fn, operator: str, channel: str, institution: str | None):  # noqa: ANN001, ANN202
    from .kit.codes import Channel
    from .kit.context import Actor
    from .kit.errors import Problem

    platform = _platform()
    actor = Actor(kind="system", channel=Channel(channel), id=operator, operator=operator, institution_id=institution)
    try:
        with platform.db.session() as session:
            return fn(platform.ctx(session, actor))
    except Problem as problem:
        _fail(problem)


def _print_card(ctx, card, created: bool | None = None, *, purpose: str) -> None:  # noqa: ANN001
    from .cards import service
    from .cards.schemas import card_out

    person, details, identifiers = service.holder(ctx, card, purpose=purpose)  # recorded in the audit trail
    console.print_json(card_out(card, person, details, identifiers, created=created).model_dump_json())


Operator = Annotated[str, typer.Option(help="Who is acting (recorded in the card's history)")]
ChannelOpt = Annotated[str, typer.Option(help="Channel code: 0100 window, 0200 kiosk, 0500 website, ...")]


@cards_app.command("register")
def cards_register(
    name: str,
    document_number: str,
    document_type: str = "01",
    sex: Optional[str] = None,
    birth_date: Optional[str] = None,
    phone: Optional[str] = None,
    address: Optional[str] = None,
    operator: Operator = "cli",
    channel: ChannelOpt = "0100",
    institution: Optional[str] = None,
) -> None:
    """Register a resident and issue their card (or show the card they already have)."""
    from .cards import service

    def do(ctx):  # noqa: ANN001, ANN202
        issued = service.register(ctx, service.Registration(
            name=name, document_type=document_type, document_number=document_number, sex=sex,
            birth_date=date.fromisoformat(birth_date) if birth_date else None, phone=phone, address=address))
        _print_card(ctx, issued.card, issued.created, purpose="card.register")

    _ctx_run(do, operator, channel, institution)


@cards_app.command("lookup")
def cards_lookup(document_number: str, document_type: str = "01", operator: Operator = "cli") -> None:
    """Find the card of a document holder."""
    from .cards import service

    _ctx_run(lambda ctx: _print_card(ctx, service.find_by_document(ctx, document_type, document_number),
                                     purpose="card.lookup"),
             operator, "0100", None)


@cards_app.command("show")
def cards_show(ehc_id: str, history: bool = False, operator: Operator = "cli") -> None:
    """Show a card (holder masked), and with --history every step of its life."""
    from .cards import service

    def do(ctx):  # noqa: ANN001, ANN202
        card = service.get_card(ctx, ehc_id)
        _print_card(ctx, card, purpose="card.view")
        if history:
            for e in service.history(ctx, card):
                console.print(f"{e.at:%Y-%m-%d %H:%M:%S} {e.action:<12} {e.from_status or '-':>14} -> {e.to_status:<14} "
                              f"{e.actor_kind}:{e.operator or e.actor_id or '-'} {e.reason or ''}")

    _ctx_run(do, operator, "0100", None)


def _transition_command(action: str) -> None:
    def command(
        ehc_id: str,
        reason: Annotated[Optional[str], typer.Option(help="Why (required to reject, cancel, report lost)")] = None,
        operator: Operator = "cli",
        channel: ChannelOpt = "0100",
        institution: Optional[str] = None,
    ) -> None:
        from .cards import service

        _ctx_run(lambda ctx: _print_card(ctx, service.transition(ctx, ehc_id, action, reason),
                                         purpose="card.lifecycle"),
                 operator, channel, institution)

    command.__doc__ = f"{action.replace('_', ' ').capitalize()} a card."
    cards_app.command(action.replace("_", "-"))(command)


for _action in ("approve", "reject", "report_lost", "recover", "reissue", "cancel"):
    _transition_command(_action)


# -- demo -----------------------------------------------------------------------------------------

@app.command()
def demo(
    residents: Annotated[int, typer.Option(help="How many residents to register")] = 1000,
    seed: Annotated[int, typer.Option(help="Same seed, same residents")] = 2026,
    if_empty: Annotated[bool, typer.Option("--if-empty", help="Do nothing when any card exists")] = False,
) -> None:
    """Build a demo province: institutions, residents with families and newborns, demo staff accounts."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .demo import build_demo, print_summary
    from .kit.errors import Problem

    platform = _platform()
    with Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("demo", total=None)
        try:
            summary = build_demo(platform, residents, seed, if_empty=if_empty,
                                 progress=lambda stage, done, total: bar.update(task, description=stage,
                                                                                completed=done, total=total))
        except Problem as problem:
            bar.stop()
            _fail(problem)
    print_summary(summary, console)


# -- apps (hospital systems on the signed machine API) -------------------------------------------

apps_app = typer.Typer(help="Hospital systems: apps, their SM2 public keys, and signed calls.", no_args_is_help=True)
app.add_typer(apps_app, name="apps")


def _print_app(ctx, made) -> None:  # noqa: ANN001
    from .apps import service
    from .apps.schemas import app_out

    console.print_json(app_out(made, service.keys_of(ctx, made)).model_dump_json())


@apps_app.command("create")
def apps_create(
    institution: Annotated[str, typer.Option(help="Institution id the app belongs to")],
    name: Annotated[str, typer.Option(help="What the system is, e.g. 'HIS outpatient'")],
    operator: Operator = "cli",
) -> None:
    """Register an app of an institution; prints its app id."""
    from .apps import service

    _ctx_run(lambda ctx: _print_app(ctx, service.create_app(ctx, name=name, institution_id=institution)),
             operator, "0100", None)


@apps_app.command("list")
def apps_list(institution: Annotated[Optional[str], typer.Option(help="Only this institution's apps")] = None) -> None:
    """Show apps and their active keys."""
    from .apps import service

    def do(ctx):  # noqa: ANN001, ANN202
        table = Table("app id", "institution", "name", "active keys", "created")
        for made in service.list_apps(ctx, institution):
            keys = service.keys_of(ctx, made)
            active = ", ".join(k.key_id for k in keys if k.status == "active") or "-"
            table.add_row(made.id, made.institution_id, made.name, active, f"{made.created_at:%Y-%m-%d %H:%M}")
        console.print(table)

    _ctx_run(do, "cli", "0100", None)


@apps_app.command("show")
def apps_show(app_id: str) -> None:
    """Show an app and every key it ever registered."""
    from .apps import service

    _ctx_run(lambda ctx: _print_app(ctx, service.get_app(ctx, app_id)), "cli", "0100", None)


@apps_app.command("add-key")
def apps_add_key(
    app_id: str,
    public_key: Annotated[typer.FileText, typer.Argument(help="SM2 public key PEM file ('-' for stdin)")],
    operator: Operator = "cli",
) -> None:
    """Register an SM2 public key for an app (to rotate: add the new key, switch, revoke the old)."""
    from .apps import service
    from .apps.schemas import key_out

    pem = public_key.read()
    _ctx_run(lambda ctx: console.print_json(key_out(service.add_key(ctx, app_id, pem)).model_dump_json()),
             operator, "0100", None)


@apps_app.command("revoke-key")
def apps_revoke_key(app_id: str, key_id: str, operator: Operator = "cli") -> None:
    """Revoke a key: requests signed with it are refused from now on."""
    from .apps import service
    from .apps.schemas import key_out

    _ctx_run(lambda ctx: console.print_json(key_out(service.revoke_key(ctx, app_id, key_id)).model_dump_json()),
             operator, "0100", None)


@apps_app.command("keygen")
def apps_keygen(out: Annotated[Path, typer.Argument(help="Private key file to write (PEM, mode 600); the public key goes to OUT.pub")]) -> None:
    """Make an SM2 key pair for an app (the same as `openssl genpkey -algorithm SM2`)."""
    import os

    from .apps.service import key_id_for
    from .crypto import SM2PrivateKey

    key = SM2PrivateKey.generate()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.to_pem())
    public = out.with_name(out.name + ".pub")
    public.write_bytes(key.public_key.to_pem())
    console.print(f"private key {out}, public key {public}; key id once registered: {key_id_for(key.public_key)}")


@apps_app.command("call")
def apps_call(
    method: Annotated[str, typer.Argument(help="GET, POST, PATCH ...")],
    path: Annotated[str, typer.Argument(help="e.g. /api/v1/cards/lookup")],
    body: Annotated[Optional[str], typer.Option("--json", help="JSON body, or @file")] = None,
    param: Annotated[Optional[list[str]], typer.Option(help="Query parameter k=v (repeatable)")] = None,
    base_url: Annotated[str, typer.Option(envvar="EHC_API_URL", help="Platform address")] = "http://127.0.0.1:8000",
    app_id: Annotated[str, typer.Option(envvar="EHC_APP_ID")] = "",
    key_id: Annotated[str, typer.Option(envvar="EHC_KEY_ID")] = "",
    private_key: Annotated[Optional[Path], typer.Option(envvar="EHC_APP_KEY", help="SM2 private key PEM file")] = None,
    operator: Annotated[Optional[str], typer.Option(help="Who at the hospital is acting (X-EHC-Operator)")] = None,
    channel: Annotated[Optional[str], typer.Option(help="Channel code (X-EHC-Channel); default 0600")] = None,
    idempotency_key: Annotated[Optional[str], typer.Option(help="Idempotency-Key for calls that create")] = None,
) -> None:
    """Send one signed request (EHC-SM2-V1) with ehc.client and print the answer."""
    from .client import EhcClient, EhcError

    if not (app_id and key_id and private_key):
        err.print("[red]error[/red] --app-id, --key-id and --private-key (or EHC_APP_ID, EHC_KEY_ID, EHC_APP_KEY) are needed")
        raise typer.Exit(2)
    payload = None
    if body is not None:
        payload = json.loads(Path(body[1:]).read_text() if body.startswith("@") else body)
    params = dict(p.split("=", 1) for p in param or [])
    with EhcClient(base_url, app_id, key_id, private_key.read_bytes(), operator=operator, channel=channel) as client:
        try:
            answer = client.request(method.upper(), path, json=payload, params=params or None,
                                    idempotency_key=idempotency_key)
        except EhcError as problem:
            _fail(problem)
    console.print_json(json.dumps(answer, ensure_ascii=False))


# -- registry migration ---------------------------------------------------------------------------

_IMPORT_HELP = (
    "Migrate an existing resident registry (CSV) into the card registry. Re-run the same file to resume.\n\n"
    "Columns (matched by header name, any order; unknown columns are ignored): name, document_type "
    "(CV02.01.101 code; blank = 01 resident ID card), document_number, sex (1 male, 2 female), birth_date "
    "(YYYY-MM-DD), phone, address, region_code (GB/T 2260). Only name and document_number are required.\n\n"
    "Every row follows the rules of a registration through the API (same checks, same real-name verifier): "
    "a document that already has a card keeps it and counts as already registered; the same document under "
    "another name is rejected (document_registered_other_name). Cards are issued on channel 0900 (batch "
    "import).\n\n"
    "The job is keyed by the SM3 digest of the file's content: re-running an interrupted import continues "
    "after the last committed batch; re-running a finished one only writes the report. The report lists "
    "each rejected row's line number, masked document number and reason codes."
)


@cards_app.command("import", help=_IMPORT_HELP)
def cards_import(
    file: Annotated[Path, typer.Argument(help="The registry as CSV, with a header row", exists=True, dir_okay=False)],
    report: Annotated[Optional[Path], typer.Option(help="Write the rejected rows here (CSV; masked numbers only)")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per transaction (each commits with the job's progress)")] = 5000,
    workers: Annotated[Optional[int], typer.Option(min=0, help="Worker processes preparing rows (default: one per core; 0: none)")] = None,
    encoding: Annotated[str, typer.Option(help="The file's text encoding, e.g. gb18030 for older exports")] = "utf-8-sig",
    operator: Operator = "cli",
) -> None:
    """Migrate a resident registry from CSV (see ``ehc.cards.importer`` for the format and design)."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .cards.importer import import_csv
    from .kit.errors import Problem

    platform = _platform()
    progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console)
    task = None
    started: dict[str, float] = {}

    def describe(p) -> str:  # noqa: ANN001
        return f"[green]{p.created:,} new[/] {p.already_registered:,} known [red]{p.rejected:,} rejected[/]"

    def on_start(p) -> None:  # noqa: ANN001
        nonlocal task
        if p.finished:
            console.print(f"this file was already imported (job {p.job_id}); nothing to do")
            return
        if p.resumed_from:
            console.print(f"resuming job {p.job_id} after row {p.resumed_from:,}")
        progress.start()
        task = progress.add_task(describe(p), total=p.rows_total, completed=p.rows_done, rate="")
        started.update(at=time.monotonic(), rows=p.rows_done)

    def on_batch(p) -> None:  # noqa: ANN001
        rate = (p.rows_done - started["rows"]) / max(time.monotonic() - started["at"], 1e-6)
        progress.update(task, description=describe(p), total=p.rows_total, completed=p.rows_done,
                        rate=f"{rate:,.0f}/s")

    def stop() -> None:
        if task is not None:
            progress.stop()

    try:
        result = import_csv(platform, file, operator=operator, batch_size=batch_size, workers=workers,
                            report=report, encoding=encoding, on_start=on_start, on_batch=on_batch)
    except Problem as problem:
        stop()
        _fail(problem)
    except KeyboardInterrupt:
        stop()
        err.print("[yellow]interrupted[/yellow]: committed batches are kept; run the same command again to resume")
        raise typer.Exit(130) from None
    finally:
        stop()
        platform.db.dispose()
    summary = Table.grid(padding=(0, 2))
    summary.add_row("rows", f"{result.rows_done:,}" + (f" (resumed after {result.resumed_from:,})"
                                                       if result.resumed_from and result.resumed_from < result.rows_done else ""))
    summary.add_row("new cards", f"{result.created:,} (pending review: {result.pending_review:,})")
    summary.add_row("already registered", f"{result.already_registered:,}")
    summary.add_row("rejected", f"{result.rejected:,}" + (f" -> {result.report}" if result.report else ""))
    console.print(summary)
    if result.rejected and result.report is None:
        console.print("re-run with --report FILE to list the rejected rows (nothing is imported twice)")


# -- audit trail ----------------------------------------------------------------------------------

@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[Optional[str], typer.Option(
        help="SEQ:HASH noted from an earlier run: also detects a chain cut short or rewritten since")] = None,
) -> None:
    """Walk the hash chain from seq 1; name the first edited, deleted or reordered event. Exit 1 if broken."""
    from .audit import service
    from .kit.context import Actor

    expected = None
    if anchor is not None:
        seq, _, digest = anchor.partition(":")
        if not (seq.isdigit() and int(seq) >= 1 and len(digest) == 64):
            err.print("[red]error[/red] --anchor is SEQ:HASH, e.g. 1200:3f5a... (64 hex characters)")
            raise typer.Exit(2)
        expected = (int(seq), digest.lower())
    platform = _platform()
    with platform.db.session() as session:  # first chain any event still in intake, in its own unit of work
        service.chain_pending(session)
    with platform.db.session() as session:
        report = service.verify_chain(platform.ctx(session, Actor.system("audit-verify")), anchor=expected)
    if report.intact:
        console.print(report.summary())
        return
    err.print(f"[red]{report.summary()}[/red]")
    raise typer.Exit(1)


@audit_app.command("search")
def audit_search(
    ehc_id: Annotated[Optional[str], typer.Option(help="Events about this card's holder")] = None,
    actor: Annotated[Optional[str], typer.Option(help="Actor id (staff account id, app id, CLI operator)")] = None,
    institution: Optional[str] = None,
    purpose: Annotated[Optional[str], typer.Option(help="e.g. card.lookup")] = None,
    action: Annotated[Optional[str], typer.Option(help="read or change")] = None,
    since: Annotated[Optional[str], typer.Option(help="ISO time with zone, inclusive (2026-01-31T08:00:00+08:00)")] = None,
    until: Annotated[Optional[str], typer.Option(help="ISO time with zone, exclusive")] = None,
    limit: Annotated[int, typer.Option(help="At most this many events, newest first")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line")] = False,
) -> None:
    """Search the audit trail, as auditors do through GET /api/v1/audit/events."""
    from datetime import datetime
    from itertools import islice

    from .audit import service
    from .audit.schemas import AuditEventOut
    from .kit.context import Actor
    from .kit.errors import Invalid, Problem

    platform = _platform()
    try:
        with platform.db.session() as session:
            ctx = platform.ctx(session, Actor.system("audit-search"))
            try:
                times = {name: datetime.fromisoformat(value) if value else None
                         for name, value in (("since", since), ("until", until))}
            except ValueError as exc:
                raise Invalid(f"Not an ISO time: {exc}.", code="time_invalid") from None
            filters = service.Filters(
                person_ids=service.person_ids_for_card(ctx, ehc_id) if ehc_id else None,
                actor_id=actor, institution_id=institution, purpose=purpose, action=action, **times)
            events = [AuditEventOut.model_validate(e, from_attributes=True)
                      for e in islice(service.iter_events(ctx, filters), max(limit, 0))]
    except Problem as problem:
        _fail(problem)
    if as_json:
        for e in events:
            typer.echo(e.model_dump_json())
        return
    table = Table("seq", "at (UTC)", "action", "purpose", "person", "actor", "institution", "channel")
    for e in events:
        who = f"{e.actor_kind}:{e.operator or e.actor_id or '-'}" + (f" ({e.actor_role})" if e.actor_role else "")
        table.add_row(str(e.seq), f"{e.at:%Y-%m-%d %H:%M:%S}", e.action, e.purpose, e.person_id, who,
                      e.institution_id or "", e.channel)
    console.print(table)
    console.print(f"{len(events)} events")


# -- master index: the real-time matcher's blocking keys (docs/master-index.md) -----------------------


@mpi_app.command("rebuild-keys")
def mpi_rebuild_keys(
    batch: Annotated[int, typer.Option(help="People per committed batch", min=100)] = 2000,
) -> None:
    """Recompute every person's blind blocking keys for real-time matching from their sealed details."""
    from .mpi import keys

    platform = _platform()
    done = keys.rebuild(platform.db, platform.vault, batch=batch,
                        progress=lambda n: err.print(f"{n} people", end="\r"))
    console.print(f"Blocking keys rebuilt for {done} people.")


# -- QR verification and offline terminals (docs/terminal.md) -------------------------------------

terminal_app = typer.Typer(help="An offline terminal: sync the signed lists, upload card uses.", no_args_is_help=True)
app.add_typer(terminal_app, name="terminal")
TerminalDir = Annotated[Path | None, typer.Option("--cache", envvar="EHC_TERMINAL_DIR",
                                                  help="Terminal cache directory (default EHC_DATA_DIR/terminal)")]
ApiUrl = Annotated[str, typer.Option("--url", envvar="EHC_API_URL", help="Platform address")]
AppId = Annotated[str, typer.Option(envvar="EHC_APP_ID")]
AppKeyId = Annotated[str, typer.Option(envvar="EHC_KEY_ID")]
AppKey = Annotated[Path | None, typer.Option(envvar="EHC_APP_KEY", help="SM2 private key PEM file")]


def _terminal(cache: Path | None, terminal_id: str | None = None, department: str | None = None):
    from .terminal import Terminal

    return Terminal(cache or get_settings().data_dir / "terminal", terminal_id=terminal_id, department=department)


def _refuse(problem, *, terminal: bool = False) -> None:
    from .terminal import exit_code

    err.print(f"[red]refused[/red] {problem.code}: {problem.detail}")
    raise typer.Exit(exit_code(problem.code, terminal=terminal))


def _app_client(base_url: str, app_id: str, key_id: str, private_key: Path | None):
    from .client import EhcClient

    if not (app_id and key_id and private_key):
        err.print("[red]error[/red] --app-id, --key-id and --private-key (or EHC_APP_ID, EHC_KEY_ID, EHC_APP_KEY) "
                  "are needed")
        raise typer.Exit(2)
    return EhcClient(base_url, app_id, key_id, private_key.read_bytes())


@app.command("verify")
def verify_code(
    image_or_text: Annotated[str, typer.Argument(help="An image file showing the QR code, or the code's text")],
    offline: Annotated[bool, typer.Option("--offline", help="Verify against the cached lists, no network")] = False,
    cache: TerminalDir = None,
    scene: Annotated[str, typer.Option(help="Care-step code of this use (DOMAIN.md)")] = "000000",
    channel: Annotated[str, typer.Option(help="Channel code of this use")] = "0300",
    terminal_id: Annotated[str | None, typer.Option(envvar="EHC_TERMINAL_ID")] = None,
    department: Annotated[str | None, typer.Option(envvar="EHC_DEPARTMENT")] = None,
    record: Annotated[bool, typer.Option(help="Offline: queue the use for upload")] = True,
    base_url: ApiUrl = "http://127.0.0.1:8000",
    app_id: AppId = "",
    key_id: AppKeyId = "",
    private_key: AppKey = None,
) -> None:
    """Verify a health-card QR code: online (the platform names the holder) or --offline (signature,
    expiry and revocation only; the card stays unknown). Exits 0 when accepted, 10-20 per refusal."""
    from .kit.errors import Problem
    from .terminal import TerminalProblem, code_from_image

    try:
        text = code_from_image(image_or_text) if Path(image_or_text).is_file() else image_or_text
    except Problem as problem:
        _refuse(problem)
    if offline:
        try:
            with _terminal(cache, terminal_id, department) as terminal:
                accepted = terminal.verify(text, scene=scene, channel=channel, record=record)
        except TerminalProblem as problem:
            _refuse(problem, terminal=True)
        except Problem as problem:
            _refuse(problem)
        kind = "static" if accepted.code_type == 1 else "dynamic"
        console.print(f"[green]accepted[/green] offline: {kind} code{' (two in one)' if accepted.two_in_one else ''}, "
                      f"key {accepted.key_id}")
        console.print(f"  issued  {accepted.issued_at:%Y-%m-%d %H:%M:%S}Z")
        expiry = f"{accepted.expires_at:%Y-%m-%d %H:%M:%S}Z" if accepted.expires_at else "never (printed code)"
        console.print(f"  expires {expiry}")
        console.print("  card    not visible offline" + ("; use queued for upload" if accepted.queued else ""))
        return
    _verify_online(text, scene, channel, terminal_id, department, _app_client(base_url, app_id, key_id, private_key))


def _verify_online(text: str, scene: str, channel: str, terminal_id: str | None, department: str | None,
                   client) -> None:
    from .client import EhcError

    body = {"code": text, "scene": scene, "channel": channel, "terminal_id": terminal_id, "department": department}
    with client:
        try:
            answer = client.request("POST", "/api/v1/qr/verify", json=body)
        except EhcError as problem:
            _refuse(problem)
        except Exception as exc:  # noqa: BLE001 - network: say so plainly
            err.print(f"[red]error[/red] cannot reach the platform: {exc}")
            raise typer.Exit(2) from None
    console.print(f"[green]accepted[/green] online: card {answer['ehc_id']} ({answer['status']})")
    console.print_json(json.dumps(answer, ensure_ascii=False))


@terminal_app.command("sync")
def terminal_sync(
    base_url: ApiUrl = "http://127.0.0.1:8000",
    root_key: Annotated[Path | None, typer.Option(help="Pin this root public key (PEM), handed over out of band")] = None,
    root_fingerprint: Annotated[str | None, typer.Option(help="Pin the platform's root key if its SM3 fingerprint is this")] = None,
    cache: TerminalDir = None,
) -> None:
    """Fetch the trust list and the revocation changes into the cache (checked against the pinned root key)."""
    from .terminal import TerminalProblem

    with _terminal(cache) as terminal:
        try:
            if root_key is not None:
                terminal.pin_root(root_key.read_bytes())
            elif root_fingerprint:
                terminal.pin_fingerprint(base_url, root_fingerprint)
            report = terminal.sync(base_url)
        except TerminalProblem as problem:
            _refuse(problem, terminal=True)
    console.print(f"trust list serial {report.trust_serial}: keys {', '.join(report.keys)}")
    console.print(f"revocation list serial {report.revocation_serial}: {report.revoked} printed codes revoked")


@terminal_app.command("status")
def terminal_status(cache: TerminalDir = None) -> None:
    """What the cache holds: the pinned root, the lists' serials and ages, uses waiting for upload."""
    with _terminal(cache) as terminal:
        console.print(f"root key   {terminal.root.fingerprint if terminal.root else 'not pinned'}")
        if terminal.trust:
            console.print(f"trust list serial {terminal.trust.serial}, issued {terminal.trust.issued_at:%Y-%m-%d %H:%M}Z, "
                          f"keys {', '.join(sorted(terminal.trust.keys))}")
        if terminal.revocations:
            console.print(f"revocations serial {terminal.revocations.serial}, {len(terminal.revocations.rids)} ids")
        console.print(f"queued uses {terminal.pending()}")


@terminal_app.command("upload")
def terminal_upload(
    cache: TerminalDir = None,
    base_url: ApiUrl = "http://127.0.0.1:8000",
    app_id: AppId = "",
    key_id: AppKeyId = "",
    private_key: AppKey = None,
) -> None:
    """Send the card uses verified offline to the platform (signed, batches of 500); answered ones leave the queue."""
    from .client import EhcError

    with _terminal(cache) as terminal, _app_client(base_url, app_id, key_id, private_key) as client:
        try:
            report = terminal.upload(client)
        except EhcError as problem:
            err.print(f"[red]error[/red] {problem.code}: {problem.detail} (the uses stay queued)")
            raise typer.Exit(2) from None
    outcomes = ", ".join(f"{n} {outcome}" for outcome, n in sorted(report.outcomes.items())) or "nothing to send"
    console.print(f"uploaded {report.sent}: {outcomes}; {report.left} still queued")


# -- master index: batch linkage (docs/master-index.md) -------------------------------------------

_LINK_HELP = (
    "Link a hospital's legacy patient list (CSV with a header row, or Parquet) to the master index with "
    "Splink. Columns: mrn (required: the hospital's patient number; 住院号/病案号 also work), name, sex, "
    "birth_date, phone, id_type, id_number, address, region_code.\n\n"
    "Certain matches get the number as identifier mrn:<institution>; probable and possible ones go to the "
    "review queue. Writes links.csv, review.csv (masked), unmatched.csv, rejects.csv and report.html. "
    "Re-running the same file links nothing twice and queues no pair twice."
)


@mpi_app.command("link", help=_LINK_HELP)
def mpi_link(
    file: Annotated[Path, typer.Argument(help="The patient list: .csv (UTF-8) or .parquet", dir_okay=False)],
    institution: Annotated[str, typer.Option(help="The hospital's institution id (its numbers become mrn:<id>)")],
    backend: Annotated[str, typer.Option(help="duckdb (default, in process) or spark (local[2] here)")] = "duckdb",
    out: Annotated[Path | None, typer.Option(help="Output directory (default: <data dir>/mpi-links/<job id>)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Score and write the outputs; link and queue nothing")] = False,
    operator: Operator = "cli",
) -> None:
    """Batch linkage of a patient list to the master index (see ``ehc.mpi.linkage``)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from .kit.errors import Problem
    from .mpi.linkage import LinkInputError, link_file

    if backend not in ("duckdb", "spark"):
        err.print(f"[red]error[/red] backend_unknown: {backend!r} is not a backend; use duckdb or spark")
        raise typer.Exit(2)
    platform = _platform()
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=20),
                        MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=True)
    tasks: dict[str, object] = {}

    def step(name: str, done: int | None, total: int | None) -> None:
        if name not in tasks:
            tasks[name] = progress.add_task(name, total=total)
        progress.update(tasks[name], completed=done or 0, total=total)
        for other, task in tasks.items():  # one step at a time: earlier ones are finished
            if other != name:
                progress.update(task, completed=progress.tasks[task].total or 1, total=progress.tasks[task].total or 1)

    try:
        with progress:
            result = link_file(platform, file, institution, backend=backend, out=out, dry_run=dry_run,
                               operator=operator, progress=step)
    except LinkInputError as problem:
        err.print(f"[red]error[/red] {problem.code}: {problem.detail}")
        raise typer.Exit(2) from None
    except Problem as problem:
        _fail(problem)
    finally:
        platform.db.dispose()
    summary = Table.grid(padding=(0, 2))
    summary.add_row("job", result.job_id or "dry run: nothing linked or queued")
    summary.add_row("rows", f"{result.records + result.rejected:,} ({result.rejected:,} rejected)")
    summary.add_row("linked", f"{result.linked:,} new, {result.already_linked:,} already, {result.conflicts:,} conflicts")
    summary.add_row("to review", f"{result.queued:,} pairs")
    summary.add_row("unmatched", f"{result.unmatched:,}")
    summary.add_row("time", f"{result.timings.get('total', 0):.1f} s")
    summary.add_row("outputs", str(result.out_dir))
    console.print(summary)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
