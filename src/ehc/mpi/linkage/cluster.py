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

import math
from collections import Counter
from datetime import date

import pandas as pd

from ..matching import evidence
from ..matching import keys as match_keys
from ..matching import names, places
from ..matching.matcher import Side, compare, default_model

BLOCK_LIMIT = 30  # rows per blocking key compared with each other; larger blocks are common-name noise


def _value(item: object) -> object:
    return None if item is None or (isinstance(item, float) and math.isnan(item)) else item


def _pinyin(name: str | None) -> str:
    return names.parse(name).pinyin


def within_list_pairs(records: pd.DataFrame) -> list[tuple[str, str]]:
    """Pairs of rows of the list graded certain against each other (the real-time rule)."""
    model = default_model()
    sides, keyed = {}, {}
    blocks: dict[str, list[str]] = {}
    for uid, name, sex, birth, phone, address, region, id_key in records[
            ["unique_id", "name", "sex", "birth_date", "phone", "address", "region_code", "id_key"]
    ].itertuples(index=False):
        born = date.fromisoformat(birth) if isinstance(birth, str) else None
        side = Side(_value(name), _value(sex), born, _value(phone), _value(address), _value(region))
        sides[uid], keyed[uid] = side, _value(id_key)
        # Lists without region codes: the county read from the address (matching.places) for the keys;
        # the road and house number with the surname or the given name are keys too.
        keys = match_keys.clear_keys(side.name, side.sex, born, side.phone,
                                     side.region_code or places.region_of(side.address), side.address)
        if keyed[uid]:
            keys.append(f"doc|{keyed[uid]}")
        for key in keys:
            blocks.setdefault(key, []).append(uid)
    shares = Counter((_pinyin(s.name), s.birth_date.year) for s in sides.values() if s.name and s.birth_date)
    seen: set[tuple[str, str]] = set()
    found = []
    for members in blocks.values():
        if len(members) < 2 or len(members) > BLOCK_LIMIT:
            continue
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                pair = (a, b) if a < b else (b, a)
                if pair in seen:
                    continue
                seen.add(pair)
                levels = compare(sides[a], sides[b])
                if keyed[a] and keyed[b]:
                    levels["document"] = "exact" if keyed[a] == keyed[b] else "different"
                side = sides[a]
                share = shares.get((_pinyin(side.name), side.birth_date.year), 1) if side.name and side.birth_date else 1
                score, _ = model.score(levels, share)
                grade = next((g for g in evidence.GRADES if score >= model.thresholds[g]), None)
                close = evidence.birth_close(sides[a].birth_date, sides[b].birth_date)
                if evidence.capped(grade, levels, close_birth=close) == "certain":
                    found.append(pair)
    return found


def clusters(records: pd.DataFrame, links: list[dict]) -> pd.DataFrame:
    """``record_id, cluster, person_id`` for the rows in clusters of two or more: rows linked to one
    person, and rows certain against each other (:func:`within_list_pairs`). ``person_id`` is the
    person the cluster's rows are linked to (empty when none is; several when the index itself
    holds the patient twice)."""
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
    for a, b in within_list_pairs(records):
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
