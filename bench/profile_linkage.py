"""The pure-Python steps of batch linkage (``mpi.linkage.job.link_file``) timed alone, without a
database: checking the list (``index.clean_list``), the shared evidence rules and grading
(``decide.weigh`` + ``decide.decide``) and clustering the list (``cluster.clusters``).

``prepare`` builds a hard legacy list (``synth.generate(..., hard=True)``, text columns as a hospital
writes them) and its index once, scores the pairs with Splink, and keeps it all in
``bench/out/profile_linkage/<rows>.pkl``; each later run times the steps from that file, so before
and after runs (another checkout on ``PYTHONPATH``) see the same input. ``--save`` writes each step's
output next to it, ``--compare A B`` tells whether two saved outputs are identical.

    PYTHONPATH=src python bench/profile_linkage.py prepare 200000
    PYTHONPATH=src python bench/profile_linkage.py steps 200000 [--workers N] [--save NAME] [--profile STEP]
    python bench/profile_linkage.py compare 200000 NAME_A NAME_B
"""

from __future__ import annotations

import os
import pickle
import resource
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "profile_linkage"
SEXES = {"1": ("1", "男", "M", "male"), "2": ("2", "女", "F", "female"), "0": ("", "未知", "U", "")}


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _platform(keys_dir: Path):
    from ehc.crypto import KeyStore
    from ehc.kit.context import Vault

    if not KeyStore(keys_dir).exists:
        KeyStore.init(keys_dir)
    return SimpleNamespace(vault=Vault(KeyStore(keys_dir)), settings=SimpleNamespace(keys_dir=keys_dir))


def prepare(rows: int) -> None:
    import pandas as pd

    from ehc.mpi import synth
    from ehc.mpi.linkage import clean, model

    duplicates = int(rows / 1.25 / 1.21)  # a quarter more not in the index, a fifth more extra cards
    index_rows, queries, _ = synth.generate(n_people=int(duplicates * 1.2), n_duplicates=duplicates, seed=20267,
                                            hard=True)
    raw = pd.DataFrame(
        [(line, f"ZY{line:07d}", q.name, SEXES[q.sex][line % 4], q.birth_date.replace("-", "/"), q.phone or "",
          "01" if q.id_number else "", q.id_number or "", q.address or "", "")
         for line, q in enumerate(queries.itertuples(index=False), start=2)],
        columns=["line", "mrn", "name", "sex", "birth_date", "phone", "id_type", "id_number", "address", "region_code"])
    index = pd.DataFrame([clean.frame_row(r.rec_id, clean.name_for_matching(r.name) or None, r.sex, r.birth_date,
                                          r.phone, clean.normalise_address(r.address) or None, r.region_code,
                                          f"doc:01:{r.id_number}" if r.id_number else None)
                          for r in index_rows.itertuples(index=False)], columns=list(clean.FRAME_COLUMNS), dtype=object)
    records = clean.clean_rows(raw).frame  # blind = the text itself, as the index frame above has it
    with tempfile.TemporaryDirectory(prefix="ehc-profile-link-") as workdir:
        scored = model.score_pairs(index, records[list(clean.FRAME_COLUMNS)], workdir=Path(workdir))
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / f"{rows}.pkl", "wb") as out:
        pickle.dump({"raw": raw, "index": index, "records": records, "pairs": scored.pairs}, out)
    print(f"{len(raw)} list rows, {len(index)} people, {len(scored.pairs)} scored pairs")


def steps(rows: int, workers: int | None, save: str | None, profile: str | None) -> None:
    import cProfile
    import inspect
    import pstats

    from ehc.mpi.linkage import cluster, decide, index as linkage_index

    with open(OUT / f"{rows}.pkl", "rb") as data:
        given = pickle.load(data)
    platform = _platform(OUT / "keys")
    raw, people, records, pairs = given["raw"], given["index"], given["records"], given["pairs"]
    parallel = {"workers": workers} if "workers" in inspect.signature(cluster.clusters).parameters else {}
    outputs, report = {}, []

    def timed(name, run):
        load, wall, cpu = os.getloadavg()[0], time.perf_counter(), _cpu()
        if profile == name:
            profiler = cProfile.Profile()
            result = profiler.runcall(run)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        else:
            result = run()
        report.append(f"{name}: {time.perf_counter() - wall:.1f} s wall, {_cpu() - cpu:.1f} s CPU (load {load:.1f})")
        outputs[name] = result
        return result

    timed("clean_list", lambda: linkage_index.clean_list(platform, raw, workers=workers))

    def grade():
        hits = decide.document_hits(people, records)
        rest = pairs[~pairs["record_id"].isin(hits["record_id"])]
        weigh_parallel = {"workers": workers} if "workers" in inspect.signature(decide.weigh).parameters else {}
        return decide.decide(decide.weigh(rest, people, records, **weigh_parallel), hits)

    decisions = timed("grading", grade)
    certain = decisions[decisions["grade"] == "certain"].drop_duplicates("record_id")
    links = [{"record_id": r, "person_id": p} for r, p in zip(certain["record_id"], certain["person_id"])]
    timed("clusters", lambda: cluster.clusters(records, links, **parallel))
    print(f"{len(records)} rows, workers {workers}, code {Path(cluster.__file__).parents[3]}")
    print("\n".join(report))
    if save:
        cleaned = outputs["clean_list"]
        with open(OUT / f"{rows}-{save}.out.pkl", "wb") as out:
            pickle.dump({"clean_list": (cleaned.frame, cleaned.rejects, cleaned.notes), "grading": outputs["grading"],
                         "clusters": outputs["clusters"]}, out)


def compare(rows: int, a: str, b: str) -> None:
    import pandas as pd

    loaded = []
    for name in (a, b):
        with open(OUT / f"{rows}-{name}.out.pkl", "rb") as data:
            loaded.append(pickle.load(data))
    left, right = loaded
    same = True
    for step in ("clean_list", "grading", "clusters"):
        x, y = left[step], right[step]
        if step == "clean_list":
            ok = x[1] == y[1] and x[2] == y[2] and x[0].equals(y[0])
        else:
            ok = x.equals(y)
            if not ok and list(x.columns) == list(y.columns) and len(x) == len(y):
                ok = bool((x.reset_index(drop=True).astype(str) == y.reset_index(drop=True).astype(str)).all().all())
        same &= ok
        print(f"{step}: {'identical' if ok else 'DIFFERENT'} ({len(x[0]) if step == 'clean_list' else len(x)} rows)")
    print("all identical" if same else "outputs differ")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    command, size = sys.argv[1], int(sys.argv[2])
    args = sys.argv[3:]

    def option(flag, default=None):
        return args[args.index(flag) + 1] if flag in args else default

    if command == "prepare":
        prepare(size)
    elif command == "steps":
        chosen = option("--workers")
        steps(size, None if chosen is None else int(chosen), option("--save"), option("--profile"))
    else:
        compare(size, args[0], args[1])
