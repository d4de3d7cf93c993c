"""``ehc sandbox insurance`` and ``ehc sandbox bank``: the stand-in insurer and bank, each its own process.

They are not the platform: each keeps its own SQLite database and SM2 key in its data directory
(default ``$EHC_DATA_DIR/sandbox-insurance`` / ``sandbox-bank``) and is reached over HTTP only
(docs/sandboxes.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..config import get_settings
from .common import console

app = typer.Typer(help="Stand-in medical-insurance and bank services (separate processes, own databases).",
                  no_args_is_help=True)

DataDir = Annotated[Path | None, typer.Option("--data", help="Data directory (database and key)")]


def _serve(fastapi_app, host: str, port: int, what: str, data: Path) -> None:  # noqa: ANN001 - a FastAPI app
    import uvicorn  # only serving needs the server

    console.print(f"{what} sandbox on http://{host}:{port}  (data {data})")
    uvicorn.run(fastapi_app, host=host, port=port, log_level="warning")


@app.command()
def insurance(host: str = "127.0.0.1", port: int = 8701, data: DataDir = None) -> None:
    """Serve the medical-insurance sandbox."""
    # only this command needs the sandbox's app
    from ..sandboxes import insurance as service

    data = data or get_settings().data_dir / "sandbox-insurance"
    _serve(service.create_app(data), host, port, "insurance", data)


@app.command()
def bank(
    host: str = "127.0.0.1",
    port: int = 8702,
    data: DataDir = None,
    callback_url: Annotated[str | None, typer.Option(help="Where callbacks go when a request names none")] = None,
) -> None:
    """Serve the bank sandbox."""
    # only this command needs the sandbox's app
    from ..sandboxes import bank as service

    data = data or get_settings().data_dir / "sandbox-bank"
    _serve(service.create_app(data, callback_url), host, port, "bank", data)
