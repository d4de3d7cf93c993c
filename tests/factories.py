"""Test factories: plain functions that make what tests need (institutions, hospital systems, staff,
card holders signed in, a live server). The fixtures in ``conftest.py`` are built from these; a test
that needs more than one of a kind, or one with other details, calls them directly."""

from __future__ import annotations

import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from residents import resident_id
from stdnum.cn import uscc as stdnum_uscc

from ehc.accounts import service as accounts
from ehc.accounts import sms
from ehc.apps import service as apps
from ehc.client import SM2Auth
from ehc.crypto import SM2PrivateKey
from ehc.institutions.models import Institution
from ehc.kit.context import Actor

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "correct horse battery"
# The card holder of the ``holder`` fixture (override ``holder_person`` in a module for another one).
HOLDER_PERSON = {"name": "王小明", "document": {"type": "01", "number": resident_id(born=date(1985, 6, 1), sequence=41)},
                 "sex": "1", "birth_date": "1985-06-01", "phone": "13912345670"}


def uscc(region: str, serial: int) -> str:
    """A valid unified social credit code of a public institution ("12") in ``region``."""
    body = f"12{region}{serial:08d}X"
    return body + stdnum_uscc.calc_check_digit(body)


def person(name: str, born: date, sequence: int, male: bool = True, *, region: str = "510104", **extra) -> dict:
    """A card application's body for a resident with a valid ID card number (``extra``: phone, relation...)."""
    return {"name": name, "document": {"type": "01", "number": resident_id(region, born, sequence, male)},
            "sex": "1" if male else "2", "birth_date": born.isoformat(), **extra}


def make_institution(platform, institution_id: str, *, uscc: str, name: str, kind: str = "hospital",  # noqa: ANN001
                     region_code: str, level: str | None = None) -> str:
    """An institution row as it stands in the registry, with exactly the given details."""

    with platform.db.session() as session:
        session.add(Institution(id=institution_id, uscc=uscc, name=name, kind=kind, region_code=region_code,
                                level=level))
    return institution_id


def hospital_system(platform, institution_id: str, name: str = "HIS") -> SM2Auth:  # noqa: ANN001
    """An app of the institution with one fresh SM2 key: the ``SM2Auth`` that signs its calls."""

    key = SM2PrivateKey.generate()
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        app = apps.create_app(ctx, name=name, institution_id=institution_id)
        return SM2Auth(app.id, apps.add_key(ctx, app.id, key.public_key.to_pem().decode()).key_id, key)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_staff(platform, client, role: str, institution: str | None,  # noqa: ANN001
               region: str | None = None, department: str | None = None) -> dict[str, str]:
    """Create a staff account directly and sign it in; ``region`` for health-commission roles, ``department``
    (a department code the institution has) for staff placed in one."""

    username = f"{role}-{secrets.token_hex(3)}"
    with platform.db.session() as session:
        accounts.create_staff(platform.ctx(session, Actor.system()), username=username, password=PASSWORD, role=role,
                             institution_id=institution, region_code=region, department_code=department)
    answer = client.post("/api/v1/auth/staff/token", json={"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return bearer(answer.json()["access_token"])


def sms_code(platform, phone: str) -> str:  # noqa: ANN001
    """The six-digit code in the last text message sent to ``phone``."""

    with platform.db.session() as session:
        return re.search(r"\d{6}", sms.outbox(session, platform.vault, phone=phone, limit=1)[0].text).group()


def resident_sign_in(client, platform, phone: str) -> dict[str, str]:  # noqa: ANN001
    """Sign a resident in with a texted code: their Authorization headers."""
    assert client.post("/api/v1/auth/resident/otp", json={"phone": phone}).status_code == 202
    answer = client.post("/api/v1/auth/resident/token", json={"phone": phone, "code": sms_code(platform, phone)})
    assert answer.status_code == 200, answer.text
    return bearer(answer.json()["access_token"])


def card_holder(client, platform, person: dict) -> tuple[str, dict[str, str]]:  # noqa: ANN001
    """A resident who applied on the website and signed in: (their ehc_id, their headers)."""
    made = client.post("/api/v1/cards", json=person)
    assert made.status_code == 201, made.text
    return made.json()["ehc_id"], resident_sign_in(client, platform, person["phone"])


@contextmanager
def live(app) -> Iterator[str]:  # noqa: ANN001
    """Serve ``app`` with a real uvicorn on a free local port, in a background thread: its base URL."""
    import uvicorn  # heavy: only the live-server tests need it

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = server.force_exit = True  # don't wait for a browser's keep-alive connections
        thread.join(timeout=10)
        sock.close()


def run_ehc(settings, *args: str, env: dict[str, str] | None = None):  # noqa: ANN001, ANN201
    """Run the ``ehc`` command on ``settings``' database and key store, in a child process."""
    import os
    import subprocess
    import sys

    full = {**os.environ, "EHC_DATABASE_URL": settings.database_url, "EHC_KEYS_DIR": str(settings.keys_dir),
            "EHC_DATA_DIR": str(settings.data_dir), "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "ehc.cli", *args], env=full, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
