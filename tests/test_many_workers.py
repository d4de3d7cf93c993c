"""The platform as a province runs it: several server processes sharing one PostgreSQL and one Redis.

Two servers are started for real with ``ehc serve``: A with two worker processes (``--workers 2``),
B with one, on their own ports; requests alternate between them, so consecutive requests are served
by different processes. They show one rate limit across all of them, one nonce claim across all of
them, and a key rotation made by ``ehc keys rotate`` while they run seen by every one of them (no
500, nothing sealed with the retired key). PostgreSQL only: on SQLite the platform is one process.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest
import redis
from factories import PASSWORD, hospital_system, make_institution, sms_code
from residents import resident_id
from sqlalchemy import create_engine, text

from ehc.accounts import service as accounts
from ehc.apps import signing
from ehc.client import SM2Auth
from ehc.config import Settings
from ehc.crypto import KeyStore, SM2PrivateKey
from ehc.kit.context import Actor
from ehc.migrate import upgrade
from ehc.platform import Platform
from ehc.qr import codec

PG_ADMIN_URL = os.environ.get("EHC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("EHC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ANONYMOUS_PER_MINUTE = 20  # bursts of 5
TIMEOUT = 60.0  # seconds an answer may take: the servers share two cores with everything else


@dataclass
class Province:
    servers: list[str]  # base URLs: A (two workers), B (one)
    env: dict[str, str]
    keys_dir: Path
    platform: Platform  # this test process's own view of the same database and keys (no Redis)
    institution: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _admin(statement: str) -> None:
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(statement))
    engine.dispose()


def _wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 240  # each worker imports the whole platform: slow on a loaded machine
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ehc serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=10).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"ehc serve did not start: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Province]:
    name = f"ehc_workers_{os.getpid()}_{secrets.token_hex(3)}"
    _admin(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    home = tmp_path_factory.mktemp("province")
    keys_dir = home / "keys"
    KeyStore.init(keys_dir)
    prefix = f"ehc-test-{secrets.token_hex(4)}:"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "EHC_DATABASE_URL": url,
           "EHC_KEYS_DIR": str(keys_dir), "EHC_DATA_DIR": str(home), "EHC_REDIS_URL": REDIS_URL,
           "EHC_REDIS_PREFIX": prefix, "EHC_RATE_LIMIT_ANONYMOUS": str(ANONYMOUS_PER_MINUTE)}
    platform = Platform.from_settings(Settings(data_dir=home, database_url=url, keys_dir=keys_dir))
    institution = make_institution(platform, "inst-workers", uscc="12510000MB1234567X", name="Workers Hospital",
                                   kind="hospital", region_code="510104", level="3A")
    processes, servers = [], []
    try:
        for workers in (2, 1):
            port = _free_port()
            log = home / f"serve-{port}.log"
            with open(log, "wb") as out:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "ehc.cli", "serve", "--port", str(port), "--workers", str(workers)],
                    env=env, stdout=out, stderr=subprocess.STDOUT))
            servers.append(f"http://127.0.0.1:{port}")
            _wait_until_up(servers[-1], processes[-1], log)
        yield Province(servers, env, keys_dir, platform, institution)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        platform.db.dispose()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _from(address: str) -> dict[str, str]:
    """Requests from their own client address (uvicorn trusts X-Forwarded-For from 127.0.0.1), so each
    test has an anonymous allowance of its own."""
    return {"X-Forwarded-For": address}


def test_one_rate_limit_across_every_worker(province):  # noqa: ANN001
    statuses = []
    started = time.monotonic()
    for i in range(12):  # alternately to A and B, each on a new connection
        answer = httpx.get(province.servers[i % 2] + "/.well-known/ehc/root-key", headers=_from("10.7.0.1"),
                           timeout=TIMEOUT)
        statuses.append(answer.status_code)
    elapsed = time.monotonic() - started
    # One burst for the caller across three processes: 5 answered, then one more for every 3 s the
    # requests took (20 a minute), the rest refused. Buckets per process would have let all 12 through
    # (5 in each of three processes).
    allowed = ANONYMOUS_PER_MINUTE // 4 + int(elapsed * ANONYMOUS_PER_MINUTE / 60)
    assert statuses[:5] == [200] * 5 and set(statuses) == {200, 429}, statuses
    assert statuses.count(200) <= allowed < 12, (statuses, elapsed)


def _signed_ping(his) -> dict[str, str]:  # noqa: ANN001
    return signing.sign(his.private_key, method="GET", path="/api/v1/apps/ping", query="", body=b"",
                        app_id=his.app_id, key_id=his.key_id)


def test_one_nonce_claim_across_every_worker(province):  # noqa: ANN001
    his = hospital_system(province.platform, province.institution)
    headers = _signed_ping(his)
    first = httpx.get(province.servers[0] + "/api/v1/apps/ping", headers=headers, timeout=TIMEOUT)
    assert first.status_code == 200, first.text
    again = httpx.get(province.servers[1] + "/api/v1/apps/ping", headers=headers, timeout=TIMEOUT)
    assert again.status_code == 401 and again.json()["code"] == "nonce_replayed"

    # Twelve copies of one request racing through the three processes: one is let in.
    racing = _signed_ping(his)
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda i: httpx.get(province.servers[i % 2] + "/api/v1/apps/ping", headers=racing,
                                                          timeout=TIMEOUT),
                                range(12)))
    assert sorted(a.status_code for a in answers) == [200] + [401] * 11, [a.text for a in answers]
    with province.platform.db.engine.connect() as connection:  # claimed in Redis, not in the database
        assert connection.execute(text("SELECT COUNT(*) FROM app_nonces")).scalar_one() == 0


def _register(server: str, sequence: int, phone: str, address: str) -> str:
    person = {"name": "刘洋", "document": {"type": "01", "number": resident_id(born=date(1988, 3, 4), sequence=sequence)},
              "sex": "1", "birth_date": "1988-03-04", "phone": phone}
    made = httpx.post(server + "/api/v1/cards", json=person, headers=_from(address), timeout=TIMEOUT)
    assert made.status_code == 201, made.text
    return made.json()["ehc_id"]


def _sign_in(province, server: str, phone: str, address: str) -> dict[str, str]:  # noqa: ANN001
    assert httpx.post(server + "/api/v1/auth/resident/otp", json={"phone": phone}, headers=_from(address),
                      timeout=TIMEOUT).status_code == 202
    answer = httpx.post(server + "/api/v1/auth/resident/token", headers=_from(address), timeout=TIMEOUT,
                        json={"phone": phone, "code": sms_code(province.platform, phone)})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_a_key_rotation_from_the_cli_is_seen_by_every_worker(province):  # noqa: ANN001
    a, b = province.servers
    his = hospital_system(province.platform, province.institution)
    before = _register(a, 51, "13912340051", "10.7.1.1")
    holder = _sign_in(province, a, "13912340051", "10.7.1.1")
    retired = {kind: KeyStore(province.keys_dir).active(kind).id for kind in ("sealing", "qr")}

    for kind in ("sealing", "qr"):  # while the servers run, as an operator would
        done = subprocess.run([sys.executable, "-m", "ehc.cli", "keys", "rotate", kind], env=province.env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    active = {kind: KeyStore(province.keys_dir).active(kind).id for kind in ("sealing", "qr")}
    assert active != retired

    # New residents through both servers: sealed by whichever worker serves them, under the new key.
    after = [_register(server, 60 + i, f"139123401{i:02d}", f"10.7.2.{i}") for i, server in enumerate((b, a, b, a))]
    newcomer = _sign_in(province, b, "13912340100", "10.7.2.0")

    # Every worker reads what every other sealed, before and after the rotation: no 500.
    for i in range(8):
        server = province.servers[i % 2]
        for headers, ehc_id in ((holder, before), (newcomer, after[0])):
            card = httpx.get(server + "/api/v1/me/card", headers=headers, timeout=TIMEOUT)
            assert card.status_code == 200 and card.json()["ehc_id"] == ehc_id, card.text
            assert httpx.get(server + "/api/v1/me/access-log", headers=headers, timeout=TIMEOUT).status_code == 200
        code = httpx.post(server + "/api/v1/me/qr/dynamic", headers=holder, timeout=TIMEOUT)
        assert code.status_code == 200, code.text
        assert codec.decode(code.json()["text"]).payload.key_id == active["qr"]  # signed with the new QR key
        scanned = httpx.post(server + "/api/v1/qr/verify", auth=his, timeout=TIMEOUT,
                             json={"code": code.json()["text"], "scene": "0101011", "channel": "0100"})
        assert scanned.status_code == 200 and scanned.json()["ehc_id"] == before, scanned.text
        lookup = httpx.post(server + "/api/v1/cards/lookup", auth=his, timeout=TIMEOUT, json={"document": {
            "type": "01", "number": resident_id(born=date(1988, 3, 4), sequence=60 + i % 4)}})
        assert lookup.status_code == 200, lookup.text

    # Nothing was sealed with the retired key after the rotation.
    with province.platform.db.engine.connect() as connection:
        sealed = dict(connection.execute(text(
            "SELECT c.ehc_id, p.name_sealed FROM cards c JOIN persons p ON p.id = c.person_id")).all())
    assert sealed[before].startswith(retired["sealing"] + ".")
    assert all(sealed[ehc_id].startswith(active["sealing"] + ".") for ehc_id in after)


def test_one_dynamic_code_racing_through_every_worker_is_accepted_once(province):  # noqa: ANN001
    """The online check's one statement (claim, use, audit event) across processes: of twelve copies of
    one scanned code sent through the three processes at once, one is accepted, one use is recorded and
    one read of the holder's details audited; the chain, once chained, is intact."""
    his = hospital_system(province.platform, province.institution)
    ehc_id = _register(province.servers[0], 71, "13912340071", "10.7.3.1")
    holder = _sign_in(province, province.servers[0], "13912340071", "10.7.3.1")
    code = httpx.post(province.servers[1] + "/api/v1/me/qr/dynamic", headers=holder, timeout=TIMEOUT)
    assert code.status_code == 200, code.text
    body = {"code": code.json()["text"], "scene": "0101011", "channel": "0100"}
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda i: httpx.post(province.servers[i % 2] + "/api/v1/qr/verify", json=body,
                                                     auth=his, timeout=TIMEOUT),
                                range(12)))
    assert sorted(a.status_code for a in answers) == [200] + [422] * 11, [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 422} == {"qr_replayed"}
    with province.platform.db.engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM card_uses WHERE ehc_id = :e"), {"e": ehc_id}).scalar_one() == 1
        assert connection.execute(text(
            "SELECT COUNT(*) FROM audit_events e JOIN cards c ON c.person_id = e.person_id "
            "WHERE c.ehc_id = :e AND e.purpose = 'card.verify'"), {"e": ehc_id}).scalar_one() == 1
    checked = subprocess.run([sys.executable, "-m", "ehc.cli", "audit", "verify"], env=province.env,
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0 and "chain intact" in checked.stdout, checked.stdout + checked.stderr


def _pings(province, auth, count: int = 12) -> list[tuple[int, str | None]]:  # noqa: ANN001
    """``count`` signed pings at once through the three processes, each on a connection of its own (so
    both of A's workers take some): (status, code) of each."""
    def one(i: int) -> tuple[int, str | None]:
        answer = httpx.get(province.servers[i % 2] + "/api/v1/apps/ping", headers=_signed_ping(auth), timeout=TIMEOUT)
        return answer.status_code, answer.json().get("code")

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_a_key_revoked_from_the_cli_or_the_api_is_refused_by_every_worker(province, tmp_path):  # noqa: ANN001
    """Every worker caches the app's key; a key added from the CLI works at once on every one, and a key
    revoked from the CLI (another process, while the servers run) or through the API is refused by every
    one from the next request on."""
    his = hospital_system(province.platform, province.institution)
    assert _pings(province, his) == [(200, None)] * 12  # every process has read the key, and keeps it

    new_key = SM2PrivateKey.generate()
    pem = tmp_path / "new-key.pem"
    pem.write_bytes(new_key.public_key.to_pem())
    added = subprocess.run([sys.executable, "-m", "ehc.cli", "apps", "add-key", his.app_id, str(pem)],
                           env=province.env, capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    rotated = SM2Auth(his.app_id, json.loads(added.stdout)["key_id"], new_key)
    assert _pings(province, rotated) == [(200, None)] * 12  # at once, on every worker

    revoked = subprocess.run([sys.executable, "-m", "ehc.cli", "apps", "revoke-key", his.app_id, his.key_id],
                             env=province.env, capture_output=True, text=True, timeout=60)
    assert revoked.returncode == 0, revoked.stderr
    assert _pings(province, his) == [(401, "key_revoked")] * 12
    assert _pings(province, rotated) == [(200, None)] * 12

    # The API: the institution's admin revokes the new key; the next requests are refused everywhere.
    username = f"admin-{secrets.token_hex(3)}"
    with province.platform.db.session() as session:
        accounts.create_staff(province.platform.ctx(session, Actor.system()), username=username, password=PASSWORD,
                              role="institution_admin", institution_id=province.institution)
    token = httpx.post(province.servers[1] + "/api/v1/auth/staff/token", headers=_from("10.7.4.1"), timeout=TIMEOUT,
                       json={"username": username, "password": PASSWORD})
    assert token.status_code == 200, token.text
    answer = httpx.post(f"{province.servers[0]}/api/v1/apps/{his.app_id}/keys/{rotated.key_id}/revoke",
                        headers={"Authorization": f"Bearer {token.json()['access_token']}", **_from("10.7.4.1")},
                        timeout=TIMEOUT)
    assert answer.status_code == 200 and answer.json()["status"] == "revoked", answer.text
    assert _pings(province, rotated) == [(401, "key_revoked")] * 12
