"""Estimate the real-time matcher's Fellegi-Sunter parameters; writes ``fs_model.json``.

    .venv/bin/python -m ehc.mpi.matching.estimate   # rewrites src/ehc/mpi/matching/fs_model.json

Reproducible: a generated Chinese test set (:mod:`ehc.mpi.synth`, fixed seed ``SEED``), blocked with
the matcher's own blocking keys (in memory), then:

* ``u`` (how often two different people agree at each level) from random pairs of the index, which
  are different people but for a negligible few;
* ``m`` (how often a true match does) counted on the generated set's known true pairs;
* the prior: the share of true pairs among the blocked candidate pairs.

Why not expectation-maximisation (EM, :func:`fit`, kept for lists without truth such as FEBRL)? On
Chinese data it absorbs households into the "match" class: relatives share a surname, an address, a
phone and a region, so EM learns that true matches often have different names, birth dates and
document numbers. Counting on a generated set whose truth is known does not have that problem.

Grade thresholds are scores (sums of weights, ``SCORE_THRESHOLDS``), chosen on a held-out generated
set (another seed) so that ``certain``, which links without a person looking, made no false link
there; the benchmark (``bench/bench_mpi_accuracy.py``) reports what they give.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date

from .. import synth
from . import keys as match_keys
from .matcher import CANDIDATE_LIMIT, FIELDS, LEVELS, MODEL_FILE, Model, Side, compare

THRESHOLDS = {"certain": 0.999, "probable": 0.9, "possible": 0.5}  # posterior probabilities, for fit()
SCORE_THRESHOLDS = {"certain": 24.0, "probable": 14.0, "possible": 6.0}  # for the shipped model
FLOOR = 1e-5  # no level is impossible: a weight is at most log2(1 / FLOOR) ~ 16.6 in either direction
SEED, PEOPLE, DUPLICATES = 2026, 20_000, 10_000


def side_of_row(row: dict) -> Side:
    """A generated (or FEBRL) row as a comparison side."""
    documents = {row.get("document_system") or "doc:01": row["id_number"]} if row.get("id_number") else {}
    born = row.get("birth_date")
    return Side(row.get("name"), row.get("sex"), date.fromisoformat(born) if born else None, row.get("phone"),
                row.get("address"), row.get("region_code"), documents)


def block(index: Sequence[Side], queries: Sequence[Side], *, limit: int = CANDIDATE_LIMIT) -> list[tuple[int, int]]:
    """Candidate pairs (query position, index position), as the matcher would pick them."""
    by_key: dict[str, list[int]] = {}
    by_document: dict[tuple[str, str], int] = {}
    for position, side in enumerate(index):
        for key in _keys(side):
            by_key.setdefault(key, []).append(position)
        for item in side.documents.items():
            by_document[item] = position
    pairs = []
    for q, side in enumerate(queries):
        direct = [by_document[item] for item in side.documents.items() if item in by_document]
        shared = Counter(p for key in _keys(side) for p in by_key.get(key, ()))
        ranked = sorted(shared.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        for position in dict.fromkeys(direct + [p for p, _ in ranked]):
            pairs.append((q, position))
    return pairs


def _keys(side: Side) -> list[str]:
    sex = side.sex if side.sex in ("1", "2") else None
    return match_keys.clear_keys(side.name, sex, side.birth_date, side.phone, side.region_code)


def _frequencies(comparisons: Iterable[dict[str, str | None]], weights: Iterable[float] | None = None):
    counts = {f: dict.fromkeys(LEVELS[f], 0.0) for f in FIELDS}
    weights = weights if weights is not None else iter(lambda: 1.0, None)
    for levels, w in zip(comparisons, weights):
        for f, level in levels.items():
            if level is not None:
                counts[f][level] += w
    return {
        f: {level: max(count / max(sum(c.values()), 1e-12), FLOOR) for level, count in c.items()}
        for f, c in counts.items()
    }


def estimate_u(index: Sequence[Side], *, pairs: int = 100_000, seed: int = 1) -> dict[str, dict[str, float]]:
    rng = random.Random(seed)
    n = len(index)
    sample = ((index[rng.randrange(n)], index[rng.randrange(n)]) for _ in range(pairs))
    return _frequencies(compare(a, b) for a, b in sample if a is not b)


def expectation_maximisation(comparisons: list[dict[str, str | None]], u: dict, *, iterations: int = 30,
                             prior: float = 0.2) -> tuple[dict, float]:
    """m and the prior, u held fixed."""
    m = {f: {level: (0.9 if i == 0 else 0.1 / (len(levels) - 1)) for i, level in enumerate(levels)}
         for f, levels in LEVELS.items()}
    for _ in range(iterations):
        posteriors = []
        for levels in comparisons:
            log_ratio = math.log(prior / (1 - prior))
            for f, level in levels.items():
                if level is not None:
                    log_ratio += math.log(m[f][level] / u[f][level])
            posteriors.append(1 / (1 + math.exp(-max(min(log_ratio, 700), -700))))
        prior = min(max(sum(posteriors) / len(posteriors), FLOOR), 1 - FLOOR)
        m = _frequencies(comparisons, posteriors)
    return m, prior


def thresholds_for(prior: float) -> dict[str, float]:
    """Score thresholds from posterior probability thresholds: score >= log2(p/(1-p)) - prior log-odds."""
    prior_log_odds = math.log2(prior / (1 - prior))
    return {grade: round(math.log2(p / (1 - p)) - prior_log_odds, 3) for grade, p in THRESHOLDS.items()}


def fit(index: Sequence[Side], queries: Sequence[Side], *, source: str) -> Model:
    """A model for these lists by EM (unsupervised: no truth needed), probability thresholds."""
    comparisons = [compare(queries[q], index[i]) for q, i in block(index, queries)]
    u = estimate_u(index)
    m, prior = expectation_maximisation(comparisons, u)
    return Model(m=_rounded(m), u=_rounded(u), prior=round(prior, 6), thresholds=thresholds_for(prior), source=source)


def fit_known(index: Sequence[Side], queries: Sequence[Side], truth: Iterable[tuple[int, int]], *,
              source: str, u_from: str = "blocked") -> Model:
    """A model counted on known true pairs (query position, index position): m from them, u from random
    index pairs, the prior from the blocked pairs."""
    truth = set(truth)
    blocked = block(index, queries)
    m = _frequencies(compare(queries[q], index[i]) for q, i in truth)
    if u_from == "blocked":
        u = _frequencies(compare(queries[q], index[i]) for q, i in blocked if (q, i) not in truth)
    else:
        u = estimate_u(index)
    prior = min(max(len(truth & set(blocked)) / max(len(blocked), 1), FLOOR), 1 - FLOOR)
    return Model(m=_rounded(m), u=_rounded(u), prior=round(prior, 6), thresholds=thresholds_for(prior), source=source)


def _rounded(table: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {f: {level: float(f"{p:.6g}") for level, p in levels.items()} for f, levels in table.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(MODEL_FILE))
    args = parser.parse_args(argv)
    index, queries, truth = synth.generate(PEOPLE, DUPLICATES, SEED)
    index_position = {rec_id: k for k, rec_id in enumerate(index.rec_id)}
    query_position = {rec_id: k for k, rec_id in enumerate(queries.rec_id)}
    model = fit_known(
        [side_of_row(r) for r in index.to_dict("records")], [side_of_row(r) for r in queries.to_dict("records")],
        [(query_position[q], index_position[i]) for i, q in zip(truth.index_rec_id, truth.query_rec_id)],
        source=f"python -m ehc.mpi.matching.estimate: synth.generate({PEOPLE}, {DUPLICATES}, seed={SEED}); u from random "
               "index pairs, m from the known true pairs, prior from the blocked pairs",
        u_from="random",
    )
    model = Model(m=model.m, u=model.u, prior=model.prior, thresholds=SCORE_THRESHOLDS, source=model.source)
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(model.to_json(), out, indent=1, ensure_ascii=False)
        out.write("\n")
    print(json.dumps(model.to_json(), indent=1))


if __name__ == "__main__":
    main()
