"""Profile of the card lookup at the window (``POST /api/v1/cards/lookup``), in one process on a scratch
PostgreSQL database. Prints the statements and commits a lookup costs, its wall and CPU time (a pass
without the profiler), and where the time goes (a second pass under cProfile, timed in CPU time).

``service`` (the default): without HTTP, a window clerk's bearer token and account, then
``cards.service.lookup`` (blind index; card, holder and sealed identifiers; the holder unsealed in an
audited read), then the commit, as the endpoint's dependencies and body do.

``http``: the same lookup through the whole ASGI app in-process (httpx's ASGI transport: middleware,
the caller's identification, FastAPI's validation and response model, the client's own cost too;
sync code inline rather than in worker threads, so that cProfile sees it), and the empty endpoint
``GET /api/v1/apps/ping`` the same way, for the HTTP layer's share.

Not a benchmark row. Run: ``.venv/bin/python bench/profile_lookup.py [N] [service|http]``.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_qr_verify import _platform  # noqa: E402
from inprocess_app import InProcessApp  # noqa: E402
from bench_signed import DOCUMENT, _scratch_pg, prepare  # noqa: E402
from statement_count import StatementCount  # noqa: E402


def main(count: int = 500, mode: str = "service") -> None:
    from ehc.accounts import service as accounts
    from ehc.cards import service as cards
    from ehc.kit.codes import Channel

    # Rate limits off, as in the API benchmark: every request comes from one address.
    os.environ.update({"EHC_RATE_LIMIT_APP": "0", "EHC_RATE_LIMIT_IDENTITY": "0", "EHC_RATE_LIMIT_ANONYMOUS": "0"})
    url, drop = _scratch_pg()
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            creds = prepare(url, tmp / "keys", tmp)
            platform = _platform(url, tmp / "keys", tmp)
            sql = StatementCount(platform.db.engine, 100)  # the measured work's statements only
            empty_cpu = None

            if mode == "http":
                app = InProcessApp(platform)
                headers = {"Authorization": f"Bearer {creds['token']}"}
                body = {"document": {"type": "01", "number": DOCUMENT}}

                def one() -> float:
                    started = time.perf_counter()
                    answer = app.request("POST", "/api/v1/cards/lookup", json=body, headers=headers)
                    assert answer.status_code == 200, answer.text
                    return time.perf_counter() - started

                def empty(n: int) -> float:
                    before = time.process_time()
                    for _ in range(n):
                        assert app.request("GET", "/api/v1/apps/ping").status_code == 200
                    return (time.process_time() - before) / n
            else:
                def one() -> float:
                    started = time.perf_counter()
                    with platform.db.session() as session:
                        actor = accounts.actor_for_token(session, creds["token"], Channel.WINDOW)
                        ctx = platform.ctx(session, actor)
                        if hasattr(cards, "lookup"):  # as the endpoint does it
                            cards.lookup(ctx, "01", DOCUMENT, purpose="card.lookup")
                        else:  # the code before it (run with PYTHONPATH at an older checkout, to compare)
                            card = cards.find_by_document(ctx, "01", DOCUMENT)
                            cards.holder(ctx, card, purpose="card.lookup")
                    return time.perf_counter() - started

            for _ in range(50):
                one()
            if mode == "http":
                empty(100)
            times = []
            sql.on = True
            before = time.process_time()
            for _ in range(count):
                times.append(one())
            cpu = time.process_time() - before
            sql.on = False
            if mode == "http":
                empty_cpu = empty(count)
            sql.report(f"{mode}: {count} lookups", count, times, cpu)
            if empty_cpu is not None:
                print(f"GET /api/v1/apps/ping through the same app and client: {1000 * empty_cpu:.2f} ms CPU a request "
                      f"(ratio of CPU {empty_cpu / (cpu / count):.2f}x)")
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            for _ in range(count):
                one()
            profiler.disable()
            stats = pstats.Stats(profiler)
            print(f"{stats.total_calls / count:,.0f} Python function calls a lookup (cProfile's count)")
            stats.sort_stats("cumulative").print_stats(r"ehc/|commit|execute|pydantic|starlette|fastapi", 45)
            stats.sort_stats("tottime").print_stats(30)
            if os.environ.get("EHC_PROFILE_DUMP"):  # for a closer look: pstats.Stats(path).print_callers(...)
                stats.dump_stats(os.environ["EHC_PROFILE_DUMP"])
            if mode == "http":
                app.close()
            platform.db.dispose()
    finally:
        drop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500, sys.argv[2] if len(sys.argv) > 2 else "service")
