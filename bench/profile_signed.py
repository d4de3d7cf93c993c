"""Where a signed request's own cost goes, part by part, in one process on a scratch PostgreSQL
database (and Redis when it answers) or SQLite: what ``GET /api/v1/apps/ping`` signed costs over the same
request unsigned, without HTTP.

Parts, each timed alone over N requests (CPU of this process and wall time, medians of the wall):
parsing the headers and building the string to sign; the SM2 verification; reading the app and key
row through a session of its own (begin, SELECT, commit: what the request's session pays for it);
the nonce claim in Redis (one script) and in the database (a unit of work committed to disk); then
``apps.service.admit`` whole, with the app keys' cache (``apps.service._KEYS``) as it runs and with
the cache emptied before every request (the code before the cache). Not a benchmark row
(``bench/run.py`` does not run it): the profile summary in docs/benchmarks.md comes from it.
Run: ``.venv/bin/python bench/profile_signed.py [N] [postgresql|sqlite]``.
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_qr_verify import _platform  # noqa: E402
from bench_signed import _scratch_pg, prepare, redis_available  # noqa: E402


def _time(label: str, count: int, fn) -> None:  # noqa: ANN001
    walls = []
    cpu_before = time.process_time()
    for i in range(count):
        started = time.perf_counter()
        fn(i)
        walls.append(time.perf_counter() - started)
    cpu = (time.process_time() - cpu_before) / count
    print(f"  {label:<62} {1e6 * statistics.median(walls):8.0f} µs wall (median) {1e6 * cpu:8.0f} µs CPU")


class _WithoutGeneration:
    def __init__(self, store) -> None:  # noqa: ANN001
        self.store = store

    def checking(self, engine, session=None):  # noqa: ANN001, ANN201
        return self.store.checking(engine, session)

    def claim(self, *args):  # noqa: ANN002, ANN201
        return self.store.claim(*args)._replace(keys_generation=None)


def main(count: int = 2000, database: str = "postgresql") -> None:  # noqa: PLR0915 (one linear script)
    import redis

    from ehc.apps import repository, signing
    from ehc.apps import service as apps
    from ehc.kit.clock import utcnow

    scratch = tempfile.TemporaryDirectory()
    url, drop = _scratch_pg() if database == "postgresql" else (f"sqlite:///{scratch.name}/profile.sqlite3", scratch.cleanup)
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            creds = prepare(url, tmp / "keys", tmp)
            platform = _platform(url, tmp / "keys", tmp)
            from ehc.crypto import SM2PrivateKey

            key = SM2PrivateKey.from_pem(creds["pem"].encode())
            app_id, key_id = creds["app_id"], creds["key_id"]

            def signed_requests() -> list[apps.SignedRequest]:
                return [apps.SignedRequest("GET", "/api/v1/apps/ping", "", b"", signing.sign(
                    key, method="GET", path="/api/v1/apps/ping", query="", body=b"", app_id=app_id, key_id=key_id))
                    for _ in range(count)]

            requests = signed_requests()
            parsed = [signing.parse_headers(r.headers) for r in requests]
            messages = [signing.string_to_sign(method="GET", path="/api/v1/apps/ping", query="", body=b"",
                                               timestamp=p.timestamp, nonce=p.nonce, app_id=app_id,
                                               key_id=key_id).encode() for p in parsed]
            with platform.db.engine.connect() as connection:
                pem = repository.app_and_key(connection, app_id, key_id)[2]
            public = apps._public_key(pem)
            print(f"{count} signed GET /api/v1/apps/ping, {database}; 1-min load average {os.getloadavg()[0]:.1f}")

            def headers(i: int) -> None:
                p = signing.parse_headers(requests[i].headers)
                signing.string_to_sign(method="GET", path="/api/v1/apps/ping", query="", body=b"",
                                       timestamp=p.timestamp, nonce=p.nonce, app_id=app_id, key_id=key_id)

            _time("headers parsed, string to sign built", count, headers)
            _time("SM2 verification (public key parsed once)", count,
                  lambda i: public.verify(parsed[i].signature, messages[i]))

            def key_row(_i: int) -> None:
                with platform.db.session() as session:
                    repository.app_and_key(session.connection(), app_id, key_id)

            _time("app and key row, in a session (begin, SELECT, commit)", count, key_row)
            expires = utcnow() + timedelta(seconds=600)
            stores = {"database": apps.DatabaseNonces()}
            if redis_available() and database == "postgresql":
                client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
                stores["redis"] = apps.SharedNonces(client, f"ehc-profile-{os.getpid()}:")
            for name, store in stores.items():
                def claim(_i: int, store=store) -> None:  # noqa: ANN001
                    with store.checking(platform.db.engine) as connection:
                        store.claim(connection, app_id, secrets.token_hex(16), expires, utcnow())

                _time(f"nonce claim in {name} (with the keys' generation)", count, claim)

            for name, store in stores.items():
                for cached in (True, False):
                    batch = signed_requests()
                    # Without the cache, as before it: a claim that reports no generation keeps nothing,
                    # and the row read before the claim is the only one.
                    used = store if cached else _WithoutGeneration(store)

                    def admit(i: int, used=used, batch=batch) -> None:  # noqa: ANN001
                        with platform.db.session() as session:
                            apps.admit(platform.db.engine, batch[i], nonces=used, session=session)

                    apps._KEYS.clear()
                    _time(f"admit, nonce in {name}, " + ("keys cached" if cached else "no cache (as before)"),
                          count, admit)
            print(f"1-min load average after: {os.getloadavg()[0]:.1f}")
            platform.db.dispose()
    finally:
        drop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000, sys.argv[2] if len(sys.argv) > 2 else "postgresql")
