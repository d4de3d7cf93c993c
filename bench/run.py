"""Run the project's benchmarks and write their tables into ``docs/benchmarks.md``.

Usage: ``.venv/bin/python bench/run.py [NAME ...] [--quick]`` (``make bench`` runs them all).
NAME is the part after ``bench_`` (``sm2`` for ``bench/bench_sm2.py``); without names every
``bench/bench_*.py`` runs, in alphabetical order.

Convention for every ``bench/bench_NAME.py``:

- it defines ``main(quick: bool = False) -> list[dict]``; each row has the keys of ``ROW_KEYS``:
  ``figure`` (what is measured), ``value`` and ``unit`` (the median), ``reference`` (what it is
  compared with, measured in the same run, or None), ``reference_value``, ``ratio``
  (value / reference_value), ``goal`` (e.g. ``">= 0.9x"``, or None), ``met`` (bool or None) and
  ``notes`` (how it was measured: runs, spread, sizes);
- it reports medians of several runs and, where a figure has a natural reference (OpenSSL's native
  speed, a raw PostgreSQL ``COPY``, a bare endpoint of the same server), measures that reference
  in the same run and reports the ratio;
- ``--quick`` shortens runs for a smoke check; quick figures are marked as such in the docs;
- run alone (``python bench/bench_NAME.py``) it prints its rows.

Each benchmark owns the part of ``docs/benchmarks.md`` between ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->``; this script rewrites only the sections of the benchmarks it ran and leaves
everything else in the file as it was. A benchmark is never a test: a missed goal does not fail
anything, and a benchmark that crashes is reported in its section (the script then exits 1).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fcntl
import importlib.util
import os
import platform
import re
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
DOC = ROOT / "docs" / "benchmarks.md"
LOCK = BENCH_DIR / "out" / "benchmarks.md.lock"  # bench/out/ is git-ignored
ROW_KEYS = ("figure", "value", "unit", "reference", "reference_value", "ratio", "goal", "met", "notes")

INTRO = """# Benchmarks

Headline figures of the platform, measured by the scripts in `bench/` (one script per figure,
each owning one section below). Every figure is the median of several runs (the count and the
spread are in each row's notes); where a figure has a natural reference (OpenSSL's native speed, a
raw PostgreSQL `COPY`, a bare endpoint of the same server) the reference is measured in the same
run and the ratio reported, because the machines here are shared and noisy: absolute numbers move
between runs, ratios much less. Each section is stamped with the date, the CPU model and `nproc` of
the machine that produced it.

Rerun everything with `make bench`, or some with `.venv/bin/python bench/run.py sm2 ...`
(`--quick` for a short smoke run). Benchmarks are never tests: a missed goal fails nothing.
"""


def available() -> dict[str, Path]:
    return {p.stem.removeprefix("bench_"): p for p in sorted(BENCH_DIR.glob("bench_*.py"))}


def load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH_DIR))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH_DIR))
    return module


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, nproc {nproc}, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def _fmt_num(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value != value:
        return "n/a"
    if isinstance(value, (int, float)) and abs(value) >= 100:
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _cell(text) -> str:
    return "—" if text in (None, "") else str(text).replace("|", "\\|").replace("\n", " ")


def render(name: str, rows: list[dict] | None, *, quick: bool, seconds: float, error: str | None) -> str:
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        f"<!-- bench:{name} -->",
        f"## {name} (`bench/bench_{name}.py`)",
        "",
        f"Measured {stamp} on {machine()}; took {seconds:.0f} s"
        + ("; **quick run** (shortened, smoke figures only)" if quick else "")
        + ".",
        "",
    ]
    if error:
        lines += ["**The benchmark failed:**", "", "```", error.strip(), "```"]
    else:
        lines += [
            "| Figure | Value | Unit | Reference | Reference value | Ratio | Goal | Met | Notes |",
            "|---|---:|---|---|---:|---:|---|---|---|",
        ]
        for row in rows or []:
            met = {True: "yes", False: "**no**", None: "—"}[row.get("met")]
            ratio = row.get("ratio")
            lines.append(
                "| "
                + " | ".join(
                    [
                        _cell(row["figure"]),
                        _fmt_num(row["value"]),
                        _cell(row["unit"]),
                        _cell(row.get("reference")),
                        _fmt_num(row.get("reference_value")),
                        "—" if ratio is None else f"{ratio:.2f}x",
                        _cell(row.get("goal")),
                        met,
                        _cell(row.get("notes")),
                    ]
                )
                + " |"
            )
    lines.append(f"<!-- /bench:{name} -->")
    return "\n".join(lines)


def write_section(name: str, section: str) -> None:
    """Replace (or append) this benchmark's section; other sections stay byte for byte."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two benchmarks finishing at once must not lose a section
        text = DOC.read_text() if DOC.exists() else INTRO
        pattern = re.compile(
            rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S
        )
        if pattern.search(text):
            text = pattern.sub(lambda _: section, text, count=1)
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
        tmp = DOC.with_suffix(".md.tmp")
        tmp.write_text(text)
        tmp.replace(DOC)


def check_rows(name: str, rows) -> None:
    if not isinstance(rows, list) or not rows:
        raise TypeError(f"bench_{name}.main() must return a non-empty list of rows")
    for row in rows:
        missing = [k for k in ROW_KEYS if k not in row]
        if missing:
            raise TypeError(f"bench_{name}: row {row.get('figure')!r} lacks {missing}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke check")
    parser.add_argument("--no-write", action="store_true", help="print only, leave docs/ alone")
    args = parser.parse_args(argv)

    found = available()
    names = [n.removeprefix("bench_").removesuffix(".py") for n in args.names] or list(found)
    unknown = [n for n in names if n not in found]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {sorted(found)}")

    failed = False
    for name in names:
        print(f"== bench_{name}{' (quick)' if args.quick else ''}", flush=True)
        start = _dt.datetime.now()
        rows, error = None, None
        try:
            rows = load(name, found[name]).main(quick=args.quick)
            check_rows(name, rows)
        except Exception:
            error = traceback.format_exc()
            failed = True
            print(error, file=sys.stderr)
        seconds = (_dt.datetime.now() - start).total_seconds()
        for row in rows or []:
            ratio = "" if row.get("ratio") is None else f"  ({row['ratio']:.2f}x {row.get('reference_value')})"
            print(f"  {row['figure']}: {_fmt_num(row['value'])} {row['unit']}{ratio}", flush=True)
        if not args.no_write:
            write_section(name, render(name, rows, quick=args.quick, seconds=seconds, error=error))
    if not args.no_write:
        print(f"wrote {DOC}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
