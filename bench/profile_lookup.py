"""Profile of the card lookup at the window (``POST /api/v1/cards/lookup`` without HTTP): a window
clerk's bearer token and account, ``cards.service.lookup`` (blind index, master-index query, card,
then the holder unsealed in an audited read), then the commit, in one process on a scratch PostgreSQL database. Prints
the statements and commits a lookup costs, its wall and CPU time, and where the time goes (cProfile).
Not a benchmark row. Run: ``.venv/bin/python bench/profile_lookup.py [N]``.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_qr_verify import _platform  # noqa: E402
from bench_signed import DOCUMENT, _scratch_pg, prepare  # noqa: E402
from statement_count import StatementCount  # noqa: E402


def main(count: int = 500) -> None:
    from ehc.accounts import service as accounts
    from ehc.cards import service as cards
    from ehc.kit.codes import Channel

    url, drop = _scratch_pg()
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            creds = prepare(url, tmp / "keys", tmp)
            platform = _platform(url, tmp / "keys", tmp)
            sql = StatementCount(platform.db.engine, 100)  # the measured work's statements only

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
            times = []
            sql.on = True
            before = time.process_time()
            for _ in range(count):
                times.append(one())
            cpu = (time.process_time() - before) / count
            sql.on = False
            print(f"{count} lookups: median {1000 * statistics.median(times):.2f} ms wall, {1000 * cpu:.2f} ms CPU; "
                  f"{sum(sql.statements.values()) / count:.1f} statements each; load {os.getloadavg()[0]:.1f}")
            for statement, n in sql.statements.most_common():
                print(f"  {n / count:4.1f} x {statement}")
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(count):
                one()
            profiler.disable()
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(r"ehc/", 30)
            platform.db.dispose()
    finally:
        drop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
