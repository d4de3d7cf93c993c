"""``ehc verify`` and ``ehc terminal``: QR verification, online or offline, and the offline terminal's
cache (sync the signed lists, upload card uses; docs/terminal.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from ..config import get_settings
from ..kit.errors import Problem
from ..terminal import Terminal, TerminalProblem, code_from_image, exit_code
from .common import app_client, console, err

if TYPE_CHECKING:
    from ..client import EhcClient

app = typer.Typer(help="An offline terminal: sync the signed lists, upload card uses.", no_args_is_help=True)
TerminalDir = Annotated[Path | None, typer.Option("--cache", envvar="EHC_TERMINAL_DIR",
                                                  help="Terminal cache directory (default EHC_DATA_DIR/terminal)")]
ApiUrl = Annotated[str, typer.Option("--url", envvar="EHC_API_URL", help="Platform address")]
AppId = Annotated[str, typer.Option(envvar="EHC_APP_ID")]
AppKeyId = Annotated[str, typer.Option(envvar="EHC_KEY_ID")]
AppKey = Annotated[Path | None, typer.Option(envvar="EHC_APP_KEY", help="SM2 private key PEM file")]


def _terminal(cache: Path | None, terminal_id: str | None = None, department: str | None = None) -> Terminal:
    return Terminal(cache or get_settings().data_dir / "terminal", terminal_id=terminal_id, department=department)


def _code_text(image_or_text: str) -> str:
    """The code's text: read from the QR image when the argument names a file, else the argument.
    A two-in-one code is longer than a file name may be, so a failed look-up is not an error."""
    try:
        is_file = Path(image_or_text).is_file()
    except OSError:  # "File name too long" and the like: it is the code's text
        is_file = False
    return code_from_image(image_or_text) if is_file else image_or_text


def _refuse(problem, *, terminal: bool = False) -> NoReturn:  # noqa: ANN001 - a Problem or the client's EhcError
    err.print(f"[red]refused[/red] {problem.code}: {problem.detail}")
    raise typer.Exit(exit_code(problem.code, terminal=terminal))


def verify_code(
    image_or_text: Annotated[str, typer.Argument(help="An image file showing the QR code, or the code's text")],
    offline: Annotated[bool, typer.Option("--offline", help="Verify against the cached lists, no network")] = False,
    cache: TerminalDir = None,
    scene: Annotated[str, typer.Option(help="Care-step code of this use (docs/codes.md)")] = "000000",
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
    try:
        text = _code_text(image_or_text)
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
        if record and not accepted.queued:
            console.print("  [yellow]use not queued[/yellow]: this terminal has no id (--terminal-id or EHC_TERMINAL_ID, "
                          "as the institution registered it)")
        return
    _verify_online(text, scene, channel, terminal_id, department, app_client(base_url, app_id, key_id, private_key))


def _verify_online(text: str, scene: str, channel: str, terminal_id: str | None, department: str | None,
                   client: EhcClient) -> None:
    # heavy: the signed client brings httpx (half a second); only commands that call the platform need it
    from ..client import EhcError

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


@app.command("sync")
def terminal_sync(
    base_url: ApiUrl = "http://127.0.0.1:8000",
    root_key: Annotated[Path | None, typer.Option(help="Pin this root public key (PEM), handed over out of band")] = None,
    root_fingerprint: Annotated[str | None, typer.Option(help="Pin the platform's root key if its SM3 fingerprint is this")] = None,
    cache: TerminalDir = None,
) -> None:
    """Fetch the trust list and the revocation changes into the cache (checked against the pinned root key)."""
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


@app.command("status")
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


@app.command("upload")
def terminal_upload(
    cache: TerminalDir = None,
    base_url: ApiUrl = "http://127.0.0.1:8000",
    app_id: AppId = "",
    key_id: AppKeyId = "",
    private_key: AppKey = None,
) -> None:
    """Send the card uses verified offline to the platform (signed, batches of 500); answered ones leave the queue."""
    # heavy: the signed client brings httpx (half a second); only commands that call the platform need it
    from ..client import EhcError

    with _terminal(cache) as terminal, app_client(base_url, app_id, key_id, private_key) as client:
        try:
            report = terminal.upload(client)
        except EhcError as problem:
            err.print(f"[red]error[/red] {problem.code}: {problem.detail} (the uses stay queued)")
            raise typer.Exit(2) from None
    outcomes = ", ".join(f"{n} {outcome}" for outcome, n in sorted(report.outcomes.items())) or "nothing to send"
    console.print(f"uploaded {report.sent}: {outcomes}; {report.left} still queued")
