"""Step 4b: duplicates within the list. A patient with two or three old cards in one hospital appears
two or three times; the list is clustered so that each person's numbers come together, whether or
not that person is in the index.

Two rows are one patient when they are linked to the same person of the index, or when, compared
with each other as the real-time matcher compares a record with a person (the same blocking keys,
:func:`..matching.keys.clear_keys`; the same weights and the same decision rule,
:func:`..matching.matcher.score_pair` under :func:`..matching.evidence.capped`), they are
``certain``. Clusters are the connected rows; ``clusters.csv`` lists the clusters of two or more
rows. Nothing is linked through a cluster: a row that is not linked itself stays for review.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date
from typing import NamedTuple

import pandas as pd

from ..matching import evidence
from ..matching import keys as match_keys
from ..matching import names, places
from ..matching.matcher import Side, compare, default_model
from .common import collector_paused, comparing_pool, default_workers

BLOCK_LIMIT = 30  # rows per blocking key compared with each other; larger blocks are common-name noise
PAIRS_PER_TASK = 25_000  # pairs a worker process scores at a time
# Worker processes by default only from this many rows on: each costs about 1.5 s of CPU to start,
# more than the whole comparison of a list of 40,000 rows (measured: docs/benchmarks.md, mpi_batch).
PARALLEL_ROWS = 300_000

_FIELDS = ["unique_id", "name", "sex", "birth_date", "phone", "address", "region_code", "id_key"]
_READ = ["surname_py", "given_py", "city", "street"]  # what :func:`.clean.frame_row` read from the name and address


def within_list_pairs(records: pd.DataFrame, *, linked: dict[str, str] | None = None,
                      workers: int | None = None, deferred: list[Deferred] | None = None) -> list[tuple[str, str]]:
    """Pairs of rows of the list graded certain against each other (the real-time rule).

    ``linked`` (row -> the person of the index it is linked to): pairs of rows linked to the same
    person are in one cluster already and are not compared (they are left out of the answer). With
    ``deferred``, such pairs are set aside there instead, ready to be compared later
    (:func:`certain_deferred`): for ``linked`` taken from the decisions before the links are written,
    which the writes can still change (a conflict, a merged person).
    ``workers``: worker processes that score the pairs (default: one per core from
    :data:`PARALLEL_ROWS` rows on; ``0``: in this process); the answer is the same either way.

    Each row is read once: its name (from the pinyin the list's reader derived, when the frame
    carries it: :func:`.clean.frame_row`), its blocking keys (:func:`..matching.keys.keys_of`) and
    its name's share of the list; each candidate pair is then compared once, in the order the
    blocks give it, as :func:`..matching.matcher.compare` and the decision rule grade it."""
    with collector_paused():
        return _within_list_pairs(records, linked, workers, deferred)


def _within_list_pairs(records: pd.DataFrame, linked: dict[str, str] | None,
                       workers: int | None, deferred: list[Deferred] | None) -> list[tuple[str, str]]:
    if workers is None:
        workers = default_workers(len(records)) if len(records) >= PARALLEL_ROWS else 0
    pool = comparing_pool(workers) if workers else None  # getting ready while the rows are read here
    try:
        return _pairs_found(records, linked, pool, deferred)
    finally:
        if pool:
            pool.shutdown()


def _pairs_found(records: pd.DataFrame, linked: dict[str, str] | None, pool,
                 deferred: list[Deferred] | None) -> list[tuple[str, str]]:
    columns = _FIELDS + (_READ if all(c in records.columns for c in _READ) else [])
    frame = records[columns].astype(object)
    frame = frame.where(frame.notna(), None)  # NaN (a frame read back from a file) is a missing value
    rows: list[tuple] = []
    parsed: list[names.Parsed] = []
    years: list[int | None] = []
    blocks: dict[str, list[int]] = {}
    for number, (_uid, name, sex, birth, phone, address, region, id_key, *read) in enumerate(
            frame.itertuples(index=False)):
        born = date.fromisoformat(birth) if isinstance(birth, str) else None
        if read:
            surname_py, given_py, city, street = read
            reading = names.parse_read(name, surname_py, given_py)
            if region:
                city = region[:4] if len(region) >= 4 else None
            # else: the county read from the address (matching.places), as the reader did for ``city``
        else:
            reading = names.parse(name)
            found = region or places.region_of(address)
            city = found[:4] if found and len(found) >= 4 else None
            street = places.street_of(address)
        rows.append((name, sex, birth if born else None, phone, address, region, id_key,
                     reading.surname_pinyin, reading.given_pinyin))
        parsed.append(reading)
        years.append(born.year if born else None)
        # Lists without region codes: the county read from the address (matching.places) for the keys;
        # the road and house number with the surname or the given name are keys too.
        keys = match_keys.keys_of(reading, sex, born, phone, city, street)
        if id_key:
            keys.append(f"doc|{id_key}")
        for key in keys:
            blocks.setdefault(key, []).append(number)
    shares = Counter((p.pinyin, year) for p, row, year in zip(parsed, rows, years) if row[0] and year)
    shared = [shares.get((p.pinyin, year), 1) if row[0] and year else 1 for p, row, year in zip(parsed, rows, years)]
    uids = records["unique_id"].tolist()
    person = [linked.get(uid) for uid in uids] if linked else None
    count = len(rows)
    seen: set[int] = set()  # a pair of rows as one number: lower * count + higher
    candidates: list[tuple[int, int]] = []
    scored: list = []  # the workers' tasks, in the order of the pairs

    def score(part: list[tuple[int, int]]) -> None:
        needed = {n for pair in part for n in pair}
        scored.append(pool.submit(_certain_task, ({n: (rows[n], shared[n]) for n in needed}, part)))

    for members in blocks.values():
        if len(members) < 2 or len(members) > BLOCK_LIMIT:
            continue
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                pair = a * count + b if a < b else b * count + a
                if pair in seen:
                    continue
                seen.add(pair)
                if person and person[a] is not None and person[a] == person[b]:
                    if deferred is not None:  # kept with what comparing them needs, in this order
                        deferred.append(Deferred(uids[a], uids[b], (rows[a], shared[a]), (rows[b], shared[b])))
                    continue  # linked to the same person: one cluster already
                candidates.append((a, b))
        if pool and len(candidates) >= PAIRS_PER_TASK:  # scored in a worker while the next are found here
            score(candidates)
            candidates = []
    if pool:
        if candidates:
            score(candidates)
        certain = [pair for task in scored for pair in task.result()]
    else:
        certain = _certain(dict(enumerate(zip(rows, shared))), candidates)
    found = []
    for a, b in certain:
        left, right = uids[a], uids[b]
        found.append((left, right) if left < right else (right, left))
    return found


class Deferred(NamedTuple):
    """A pair of rows :func:`within_list_pairs` did not compare (linked to one person), with each
    row as :func:`_certain` reads it."""
    left: str
    right: str
    left_row: tuple
    right_row: tuple


def certain_deferred(deferred: list[Deferred], linked: dict[str, str]) -> list[tuple[str, str]]:
    """The deferred pairs that ``linked`` (the links as written) no longer puts in one cluster,
    compared now: those graded certain, as :func:`within_list_pairs` would have answered them."""
    open_pairs = [d for d in deferred if linked.get(d.left) is None or linked.get(d.left) != linked.get(d.right)]
    rows = {}
    for number, pair in enumerate(open_pairs):
        rows[2 * number], rows[2 * number + 1] = pair.left_row, pair.right_row
    certain = _certain(rows, [(2 * number, 2 * number + 1) for number in range(len(open_pairs))])
    found = []
    for a, _b in certain:
        left, right = open_pairs[a // 2].left, open_pairs[a // 2].right
        found.append((left, right) if left < right else (right, left))
    return found


def _certain_task(task: tuple[dict, list[tuple[int, int]]]) -> list[tuple[int, int]]:
    with collector_paused():
        return _certain(*task)


def _certain(rows: dict[int, tuple], pairs: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The pairs graded certain: compared as the real-time matcher compares a record with a person
    (the first row's name share for the term-frequency adjustment), graded under the shared rule.
    ``rows``: number -> ((name, sex, birth date, phone, address, region code, document key, surname
    pinyin, given pinyin), share). Runs in a worker process or inline."""
    model = default_model()
    read: dict[int, tuple[Side, names.Parsed, str | None]] = {}

    def side_of(n: int) -> tuple[Side, names.Parsed, str | None]:
        found = read.get(n)
        if found is None:
            name, sex, birth, phone, address, region, _key, surname_py, given_py = rows[n][0]
            side = Side(name, sex, date.fromisoformat(birth) if birth else None, phone, address, region)
            found = read[n] = (side, names.parse_read(name, surname_py, given_py),
                               region or places.region_of(address))
        return found

    certain = []
    for a, b in pairs:
        (side_a, parsed_a, region_a), (side_b, parsed_b, region_b) = side_of(a), side_of(b)
        levels = compare(side_a, side_b, parsed=(parsed_a, parsed_b), regions=(region_a, region_b))
        key_a, key_b = rows[a][0][6], rows[b][0][6]
        if key_a and key_b:
            levels["document"] = "exact" if key_a == key_b else "different"
        score = model.total(levels, rows[a][1])
        grade = next((g for g in evidence.GRADES if score >= model.thresholds[g]), None)
        close = evidence.birth_close(side_a.birth_date, side_b.birth_date)
        if evidence.capped(grade, levels, close_birth=close) == "certain":
            certain.append((a, b))
    return certain


def clusters(records: pd.DataFrame, links: list[dict], *, workers: int | None = None,
             found: PairsFound | None = None) -> pd.DataFrame:
    """``record_id, cluster, person_id`` for the rows in clusters of two or more: rows linked to one
    person, and rows certain against each other (:func:`within_list_pairs`). ``person_id`` is the
    person the cluster's rows are linked to (empty when none is; several when the index itself
    holds the patient twice). ``found``: the pairs :func:`pairs_before_links` found while the links
    were written (the same clusters, sooner)."""
    with collector_paused():
        return _clusters(records, links, workers, found)


class PairsFound(NamedTuple):
    certain: list[tuple[str, str]]
    deferred: list[Deferred]


def pairs_before_links(records: pd.DataFrame, decided: dict[str, str], *, workers: int | None = None) -> PairsFound:
    """:func:`within_list_pairs` with the links as decided (row -> person), before they are written:
    the slow part of :func:`clusters`, which can then run alongside the writes. Pairs of rows decided
    for the same person are deferred, for :func:`clusters` to compare once the links are final."""
    deferred: list[Deferred] = []
    certain = within_list_pairs(records, linked=decided, workers=workers, deferred=deferred)
    return PairsFound(certain, deferred)


def _clusters(records: pd.DataFrame, links: list[dict], workers: int | None, found: PairsFound | None) -> pd.DataFrame:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        # Both rows are members, the root too (a root is in ``parent`` only once it is set here).
        parent.setdefault(a, a)
        parent.setdefault(b, b)
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    person_of = {}
    by_person: dict[str, str] = {}
    for link in links:
        rid, pid = link["record_id"], link["person_id"]
        person_of[rid] = pid
        if pid in by_person:
            union(rid, by_person[pid])
        else:
            by_person[pid] = rid
    if found is None:
        pairs = within_list_pairs(records, linked=person_of, workers=workers)
    else:  # found with the links as decided: the deferred pairs the written links do not join, compared now
        pairs = found.certain + certain_deferred(found.deferred, person_of)
    for a, b in pairs:
        union(a, b)
    members: dict[str, list[str]] = {}
    for rid in set(parent) | set(person_of):
        members.setdefault(find(rid), []).append(rid)
    rows = []
    for number, group in enumerate(sorted((sorted(g) for g in members.values() if len(g) > 1)), start=1):
        people = sorted({person_of[r] for r in group if r in person_of})
        for rid in group:
            rows.append((rid, f"C{number:06d}", " ".join(people)))
    return pd.DataFrame(rows, columns=["record_id", "cluster", "person_id"])


def pair_accuracy(clustered: pd.DataFrame, truth_pairs: set[tuple[str, str]]) -> dict:
    """Precision, recall and F1 of the within-list duplicate pairs the clusters make."""
    found = set()
    for _, group in clustered.groupby("cluster"):
        ids = sorted(group["record_id"])
        found |= {(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]}
    hit = len(found & truth_pairs)
    precision = hit / len(found) if found else 1.0
    recall = hit / len(truth_pairs) if truth_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "pairs": len(found), "true_pairs": len(truth_pairs)}
