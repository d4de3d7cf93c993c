"""The boundaries docs/architecture.md describes hold: import-linter runs the contracts configured
in pyproject.toml (the project's own contract types are in tools/import_contracts.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([LINT_IMPORTS, "--no-cache", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_import_contracts_hold() -> None:
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


TOY_CONFIG = """
[importlinter]
root_package = toy
contract_types =
    public_faces: tools.import_contracts.PublicFacesContract
    local_imports: tools.import_contracts.LocalImportsContract

[importlinter:contract:faces]
name = faces
type = public_faces
domains =
    toy.cards
    toy.qr
public =
    service
doors =
    toy.web
door_faces =
    schemas

[importlinter:contract:local]
name = local
type = local_imports
packages =
    toy
"""


def _toy(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in {"toy/__init__.py": "", "toy/cards/__init__.py": "", "toy/qr/__init__.py": "",
                       "toy/web/__init__.py": "", "toy/cards/models.py": "TABLE = 1\n",
                       "toy/cards/schemas.py": "OUT = 1\n", "toy/cards/service.py": "RULE = 1\n",
                       ".importlinter": TOY_CONFIG, **files}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_a_domain_reaching_into_another_domains_tables_breaks_the_contract(tmp_path: Path) -> None:
    toy = _toy(tmp_path, {
        "toy/qr/service.py": "from toy.cards import service\nfrom toy.cards.models import TABLE\n",
        "toy/web/pages.py": "from toy.cards.schemas import OUT\nfrom toy.cards import service\n",
    })
    done = lint(toy, "--config", ".importlinter")
    assert done.returncode == 1, done.stdout
    assert "toy.qr.service -> toy.cards.models" in done.stdout
    # The service is every domain's public face, and a door may also use the schemas.
    assert "toy.web.pages" not in done.stdout
    assert "-> toy.cards.service" not in done.stdout


def test_an_import_inside_a_function_needs_a_reason(tmp_path: Path) -> None:
    toy = _toy(tmp_path, {
        "toy/qr/service.py": ("def quiet():\n    import json\n    return json\n\n\n"
                              "def explained():\n    # heavy: only this report needs it\n    import csv\n    return csv\n\n\n"
                              "def inline():\n    import zlib  # optional: not every build has it\n    return zlib\n"),
    })
    done = lint(toy, "--config", ".importlinter")
    assert done.returncode == 1, done.stdout
    assert "toy.qr.service (l.2)" in done.stdout
    assert "(l.8)" not in done.stdout and "(l.13)" not in done.stdout


# Modules that outside code (the CLI, benchmarks, tests, an integrator's scripts) may import first.
ENTRY_MODULES = [f"ehc.{d}.service" for d in ("accounts", "apps", "audit", "cards", "identity", "institutions", "me",
                                              "mpi", "payments", "qr")] + [
    "ehc.app", "ehc.cli", "ehc.client", "ehc.terminal", "ehc.demo", "ehc.cards.importer", "ehc.accounts.residents",
    "ehc.mpi.review", "ehc.mpi.xref", "ehc.mpi.synth", "ehc.mpi.linkage.clean", "ehc.mpi.linkage.model",
    "ehc.mpi.linkage.apply", "ehc.mpi.linkage.report", "ehc.qr.codec", "ehc.fhir.service"]


def test_entry_modules_import_first_on_their_own() -> None:
    """None of them depends on another module having been imported before it (an import cycle that
    the order the app loads things in would hide): each is imported first, in a fresh interpreter."""
    from concurrent.futures import ThreadPoolExecutor

    def fails(name: str) -> str | None:
        done = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, timeout=120)
        return f"{name}: {done.stderr.strip().splitlines()[-1]}" if done.returncode else None

    with ThreadPoolExecutor(2) as pool:
        failed = [f for f in pool.map(fails, ENTRY_MODULES) if f]
    assert failed == []
