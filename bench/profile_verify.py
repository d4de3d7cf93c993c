"""Profile of one online verification as a hospital system's signed call runs it, in one process on a
scratch PostgreSQL database: admitting the signed request (app and key, SM2, the nonce claim;
``apps.service.admit``) then ``qr.service.verify`` and the commit. It prints the SQL statements and
commits a verification costs, its wall and CPU time (a pass without the profiler), and where the time
goes (a second pass under cProfile, cumulative and own time).

Two ways of claiming the request nonce: ``database`` (the embedded fallback: a unit of work of its
own, committed to disk) and ``redis`` (as several workers run: ``SET NX EX``, the app and key read
through the request's own session). Not a benchmark row (``bench/run.py`` does not run it): the
profile summary in docs/benchmarks.md comes from it.
Run: ``.venv/bin/python bench/profile_verify.py [N] [database|redis]``.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_qr_verify import CARDS, _platform, add_cards, draw_codes  # noqa: E402
from bench_signed import _scratch_pg, prepare  # noqa: E402
from statement_count import StatementCount  # noqa: E402


def main(count: int = 400, nonces: str = "redis") -> None:
    import redis

    from ehc.apps import service as apps
    from ehc.apps import signing
    from ehc.crypto import SM2PrivateKey
    from ehc.qr import service as qr

    url, drop = _scratch_pg()
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            creds = prepare(url, tmp / "keys", tmp)
            platform = _platform(url, tmp / "keys", tmp)
            ehc_ids = add_cards(platform, CARDS)
            key = SM2PrivateKey.from_pem(creds["pem"].encode())
            store = (apps.SharedNonces(redis.Redis.from_url("redis://127.0.0.1:6379/0"), f"ehc-profile-{os.getpid()}:")
                     if nonces == "redis" else apps.DatabaseNonces())
            use = qr.Use(scene="0101012", channel="0600", terminal_id="W01", department="0300")
            sql = StatementCount(platform.db.engine, 90)  # the measured work's statements only

            def request(code: str) -> apps.SignedRequest:
                body = json.dumps({"code": code, "scene": "0101012", "channel": "0600"}).encode()
                headers = signing.sign(key, method="POST", path="/api/v1/qr/verify", query="", body=body,
                                       app_id=creds["app_id"], key_id=creds["key_id"])
                return apps.SignedRequest("POST", "/api/v1/qr/verify", "", body, headers)

            def one(signed: apps.SignedRequest, code: str) -> float:
                started = time.perf_counter()
                with platform.db.session() as session:  # the request's one transaction, committed
                    actor = apps.admit(platform.db.engine, signed, nonces=store, session=session)
                    qr.verify(platform.ctx(session, actor), code, use)
                return time.perf_counter() - started

            for code in draw_codes(platform, ehc_ids, 50):  # warm up
                one(request(code), code)
            profiler = cProfile.Profile()
            # Two passes: the first unprofiled (wall and CPU time as served), the second under cProfile
            # (where the time goes, inflated by the profiler); statements counted in the first.
            times, cpu = [], 0.0
            for profiled in (False, True):
                for start in range(0, count, 50):  # codes live 120 s: draw them in batches, just before use
                    codes = draw_codes(platform, ehc_ids, min(50, count - start))
                    signed = [request(code) for code in codes]  # signed in advance, as the load generator does
                    before = time.process_time()
                    sql.on = not profiled
                    if profiled:
                        profiler.enable()
                    for request_, code in zip(signed, codes):
                        took = one(request_, code)
                        if not profiled:
                            times.append(took)
                    if profiled:
                        profiler.disable()
                    else:
                        cpu += time.process_time() - before
                    sql.on = False
            sql.report(f"nonces in {nonces}: {count} signed verifications", count, times, cpu)
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(r"ehc/|commit|execute", 30)
            stats.sort_stats("tottime").print_stats(25)
            platform.db.dispose()
    finally:
        drop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400, sys.argv[2] if len(sys.argv) > 2 else "redis")
