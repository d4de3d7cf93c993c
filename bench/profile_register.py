"""Profile of one card registration as ``POST /api/v1/cards`` serves it, in one process on a scratch
PostgreSQL database: the endpoint's own work without the server (the body parsed into
``RegistrationIn``, ``cards.endpoints.register`` with an anonymous website caller: validation,
the master index (blind index, match keys, candidate search), the card, its event, the audit trail,
the answer's unsealed details) and the commit, then the answer serialised as the API does. Each
registration a distinct valid resident (the API benchmark's generator). It prints the SQL statements
and commits a registration costs, its wall and CPU time (a pass without the profiler), and where the
time goes (a second pass under cProfile, timed in CPU time: cumulative and own).

``http`` as the second argument runs the same registrations through the whole ASGI app in-process
(httpx's ASGI transport: middleware, the caller's identification, FastAPI's validation and response
model, the client's own cost too; sync code inline rather than in threads), and ``GET /healthz`` the
same way, for the HTTP layer's share.

Not a benchmark row (``bench/run.py`` does not run it): the profile summary in docs/benchmarks.md
comes from it. Run: ``.venv/bin/python bench/profile_register.py [N] [service|http] [key]``
(``key``: each registration with its own Idempotency-Key, as a careful client sends).
"""

from __future__ import annotations

import cProfile
import inspect
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_import import residents  # noqa: E402
from bench_qr_verify import _platform  # noqa: E402
from inprocess_app import InProcessApp  # noqa: E402
from bench_signed import _scratch_pg  # noqa: E402
from statement_count import StatementCount  # noqa: E402


def _bodies(count: int, offset: int) -> list[dict]:
    return [{"name": r[0], "document": {"type": r[1], "number": r[2]}, "sex": r[3], "birth_date": r[4],
             "phone": r[5], "address": r[6]} for r in residents(count, offset=offset)]


def main(count: int = 400, mode: str = "service", keyed: bool = False) -> None:
    from fastapi import Response

    from ehc.cards import endpoints
    from ehc.cards.schemas import CardOut, RegistrationIn
    from ehc.crypto import KeyStore
    from ehc.kit.context import Actor
    from ehc.migrate import upgrade

    # Rate limits off, as in the API benchmark: every request comes from one address.
    os.environ.update({"EHC_RATE_LIMIT_APP": "0", "EHC_RATE_LIMIT_IDENTITY": "0", "EHC_RATE_LIMIT_ANONYMOUS": "0"})
    url, drop = _scratch_pg()
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            KeyStore.init(tmp / "keys")
            upgrade(url)
            platform = _platform(url, tmp / "keys", tmp)
            sql = StatementCount(platform.db.engine, 110)  # the measured work's statements only

            serial = [0]

            def key() -> str | None:
                serial[0] += 1
                return f"profile-register-{os.getpid()}-{serial[0]}" if keyed else None

            if mode == "http":
                app = InProcessApp(platform)

                def one(body: dict) -> float:
                    started = time.perf_counter()
                    headers = {"Idempotency-Key": k} if (k := key()) else {}
                    answer = app.request("POST", "/api/v1/cards", json=body, headers=headers)
                    assert answer.status_code == 201, answer.text
                    return time.perf_counter() - started

                def healthz_cpu(n: int = 500) -> float:
                    before = time.process_time()
                    for _ in range(n):
                        assert app.request("GET", "/healthz").status_code == 200
                    return (time.process_time() - before) / n
            else:
                # The endpoint's own code: the server runs it in a worker thread, with the commit
                # (``kit.deps.one_hop``); here the session below commits.
                register = inspect.unwrap(endpoints.register)

                def one(body: dict) -> float:
                    started = time.perf_counter()
                    parsed = RegistrationIn.model_validate(body)
                    with platform.db.session() as session:  # the request's one transaction, committed
                        ctx = platform.ctx(session, Actor.anonymous())
                        out = register(parsed, ctx, Response(), key())
                    CardOut.model_validate(out).model_dump_json()
                    return time.perf_counter() - started

            for body in _bodies(50, 50_000_000):  # warm up
                one(body)
            # CPU time, not wall: on a shared machine the waits for PostgreSQL would drown the rest.
            profiler = cProfile.Profile(time.process_time)
            # Two passes: the first unprofiled (wall and CPU time as served), the second under cProfile
            # (where the time goes, inflated by the profiler); statements counted in the first.
            times, cpu = [], 0.0
            for profiled, offset in ((False, 0), (True, 10_000_000)):
                bodies = _bodies(count, offset)
                sql.on = not profiled
                before = time.process_time()
                if profiled:
                    profiler.enable()
                for body in bodies:
                    took = one(body)
                    if not profiled:
                        times.append(took)
                if profiled:
                    profiler.disable()
                else:
                    cpu = time.process_time() - before
                sql.on = False
            sql.report(f"{mode}{' with Idempotency-Key' if keyed else ''}: {count} registrations", count, times, cpu)
            stats = pstats.Stats(profiler)
            print(f"{stats.total_calls / count:,.0f} Python function calls a registration (cProfile's count, the "
                  f"figure load does not move)")
            stats.sort_stats("cumulative").print_stats(r"ehc/|commit|execute|pydantic|starlette|fastapi", 45)
            stats.sort_stats("tottime").print_stats(30)
            if os.environ.get("EHC_PROFILE_DUMP"):  # for a closer look: pstats.Stats(path).print_callers(...)
                stats.dump_stats(os.environ["EHC_PROFILE_DUMP"])
            if mode == "http":
                healthz_cpu(100)
                print(f"GET /healthz through the same app and client: {1000 * healthz_cpu():.2f} ms CPU a request")
                app.close()
            platform.db.dispose()
    finally:
        drop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400, sys.argv[2] if len(sys.argv) > 2 else "service",
         "key" in sys.argv[3:])
