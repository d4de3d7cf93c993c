"""Step 4: grade each row's candidates: certain links, probable and possible go to review, the rest is
unmatched; and the measures the benchmarks compare the model with. Pure pandas, no database."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import pandas as pd

from ..matching import evidence, names, places
from ..matching.matcher import Side, compare, default_model, tf_adjustment
from .common import collector_paused, comparing_pool, default_workers


@dataclass(frozen=True)
class Thresholds:
    """Grades by posterior match probability; ``margin`` (match weight) is how far a certain best
    candidate must stand above the runner-up, else the pair goes to review."""

    certain: float = 0.99
    probable: float = 0.90
    possible: float = 0.50
    margin: float = 5.0


GRADE_ORDER = {"certain": 0, "probable": 1, "possible": 2}


def document_hits(index: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """(record_id, person_id) pairs holding the same document: a link without scoring."""
    left = records.loc[records["id_key"].notna(), ["unique_id", "id_key"]]
    right = index.loc[index["id_key"].notna(), ["unique_id", "id_key"]].drop_duplicates("id_key", keep=False)
    hits = left.merge(right, on="id_key", suffixes=("_record", "_person"))
    return pd.DataFrame({"record_id": hits["unique_id_record"].astype(str),
                         "person_id": hits["unique_id_person"].astype(str)})


def _side(row: tuple) -> Side:
    name, sex, birth, phone, address, region = row
    return Side(name, sex, date.fromisoformat(birth) if isinstance(birth, str) else None, phone, address, region)


def _value(item: object) -> object:
    return None if item is None or (isinstance(item, float) and math.isnan(item)) else item


def _read_sides(frame: pd.DataFrame, fields: list[str]) -> dict[str, tuple[Side, names.Parsed, str | None]]:
    """Each row read once for the comparisons it takes part in: its side, its name as
    :func:`..matching.names.parse` reads it (from the frame's pinyin columns when it has them:
    :func:`.clean.frame_row` read them, and a list or index of a million names holds more distinct
    names than ``parse`` keeps) and its region code, else the county its address names."""
    read = "surname_py" in frame.columns and "given_py" in frame.columns
    columns = ["unique_id", *fields] + (["surname_py", "given_py"] if read else [])
    sides = {}
    for uid, *row in frame[columns].itertuples(index=False):
        values = [_value(v) for v in row]
        side = _side(tuple(values[:6]))
        parsed = names.parse_read(side.name, values[6], values[7]) if read else names.parse(side.name)
        sides[uid] = (side, parsed, side.region_code or places.region_of(side.address))
    return sides


FIELDS = ["name", "sex", "birth_date", "phone", "address", "region_code"]
PAIRS_PER_TASK = 50_000  # scored pairs a worker process weighs at a time
PARALLEL_PAIRS = 300_000  # worker processes by default only from this many pairs on (each takes 1.5 s to start)


def weigh(pairs: pd.DataFrame, index: pd.DataFrame, records: pd.DataFrame, *, workers: int | None = 0) -> pd.DataFrame:
    """The shared evidence rules on Splink's scored pairs (the same as the real-time matcher's,
    :mod:`..matching.evidence`), adding ``cap`` (the best grade the pair's evidence allows; ``""``:
    no cap) and adjusting the weight:

    * term frequency: an agreeing name shared by ``k`` people of the index born the same year weighs
      ``log2(k)`` less (:func:`..matching.matcher.tf_adjustment`);
    * a record's ID number failing its check, one keystroke from the person's: the real-time model's
      weight for a document one digit off (Splink saw no document for it).

    ``workers``: worker processes weighing shares of the pairs (``None``: one per core from
    :data:`PARALLEL_PAIRS` pairs on; ``0``, the default: in this process); the answer is the same
    either way.
    """
    if pairs.empty:
        return pairs.assign(cap=pd.Series(dtype=object))
    if workers is None:
        workers = default_workers(len(pairs)) if len(pairs) >= PARALLEL_PAIRS else 0
    # The workers get ready while the frames are cut here.
    pool = comparing_pool(workers) if workers and len(pairs) >= 2 * PAIRS_PER_TASK else None
    try:
        caps, weights = _weigh_all(pairs, index, records, pool)
    finally:
        if pool:
            pool.shutdown()
    out = pairs.copy()
    out["match_weight"] = weights
    out["match_probability"] = [1 / (1 + 2.0 ** -min(max(w, -60), 60)) for w in weights]
    out["cap"] = caps
    return out


def _weigh_all(pairs: pd.DataFrame, index: pd.DataFrame, records: pd.DataFrame, pool) -> tuple[list[str], list[float]]:
    # Only the people and rows the pairs name (a 1M index has far more people than candidates).
    read = [c for c in ("surname_py", "given_py") if c in index.columns and c in records.columns]
    candidates = index.loc[index["unique_id"].isin(pairs["person_id"]), ["unique_id", *FIELDS, *read, "id_key"]]
    listed = records[records["unique_id"].isin(pairs["record_id"])]
    shares = index.groupby(["name_py", "birth_year"]).size().to_dict()
    share = [shares.get((py, year), 1) for py, year in listed[["name_py", "birth_year"]].itertuples(index=False)]
    extra = [c for c in ("id_near", "id_system") if c in records.columns]
    listed = listed[["unique_id", *FIELDS, *read, "id_key", *extra]].assign(share=share)
    scored = pairs[["record_id", "person_id", "match_weight"]]
    if pool is None:
        return _weigh_task((scored, candidates, listed))
    tasks = []
    for start in range(0, len(scored), PAIRS_PER_TASK):
        part = scored.iloc[start:start + PAIRS_PER_TASK]
        tasks.append(pool.submit(_weigh_task, (part, candidates[candidates["unique_id"].isin(part["person_id"])],
                                               listed[listed["unique_id"].isin(part["record_id"])])))
    caps, weights = [], []
    for task in tasks:
        part_caps, part_weights = task.result()
        caps += part_caps
        weights += part_weights
    return caps, weights


def _weigh_task(task: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> tuple[list[str], list[float]]:
    with collector_paused():
        return _weigh_part(*task)


def _weigh_part(pairs: pd.DataFrame, candidates: pd.DataFrame, listed: pd.DataFrame) -> tuple[list[str], list[float]]:
    """``(caps, weights)`` of these pairs (``record_id, person_id, match_weight``), in their order;
    ``candidates`` and ``listed`` hold (at least) the people and rows they name, ``listed`` with each
    row's name ``share`` of the index. Runs in a worker process or inline."""
    people, rows = _read_sides(candidates, FIELDS), _read_sides(listed, FIELDS)
    person_key = dict(zip(candidates["unique_id"], candidates["id_key"]))
    record_key = dict(zip(listed["unique_id"], listed["id_key"]))
    near = dict(zip(listed["unique_id"], listed["id_near"])) if "id_near" in listed else {}
    system = dict(zip(listed["unique_id"], listed["id_system"])) if "id_system" in listed else {}
    record_share = dict(zip(listed["unique_id"], listed["share"]))
    model = default_model()
    typo_weight = model.weight("document", "typo")
    caps, weights = [], []
    for record_id, person_id, weight in pairs.itertuples(index=False):
        (mine_side, mine_name, mine_region), (their_side, their_name, their_region) = rows[record_id], people[person_id]
        levels = compare(mine_side, their_side, parsed=(mine_name, their_name), regions=(mine_region, their_region))
        mine, theirs = _value(record_key.get(record_id)), _value(person_key.get(person_id))
        if mine and theirs and (mine == theirs or not near.get(record_id)):
            levels["document"] = "exact" if mine == theirs else "different"
        elif theirs and near.get(record_id):
            levels["document"] = "typo" if theirs in near[record_id] else "different"
            weight += typo_weight if levels["document"] == "typo" else 0.0
        weight -= tf_adjustment(levels["name"], record_share.get(record_id, 1))
        checked = system.get(record_id, "doc:01") == "doc:01"  # a resident ID whose check holds
        close = evidence.birth_close(mine_side.birth_date, their_side.birth_date)
        caps.append(evidence.ceiling(levels, checked_document=checked, close_birth=close) or "")
        weights.append(weight)
    return caps, weights


def decide(pairs: pd.DataFrame, documents: pd.DataFrame, thresholds: Thresholds = Thresholds(),
           *, review_candidates: int = 3) -> pd.DataFrame:
    """One row per (record, candidate) that is acted on: ``grade`` certain (``reason`` document or
    model) or probable/possible (up to ``review_candidates`` per record, best first). Records that
    appear nowhere are unmatched."""
    columns = ["record_id", "person_id", "match_weight", "match_probability", "comparison", "grade", "reason"]
    doc = documents.drop_duplicates("record_id").assign(
        match_weight=float("inf"), match_probability=1.0, comparison="{}", grade="certain", reason="document")
    rest = pairs[~pairs["record_id"].isin(doc["record_id"])]
    rest = rest[rest["match_probability"] >= thresholds.possible]
    rest = rest.sort_values(["record_id", "match_weight"], ascending=[True, False], kind="stable")
    cap = rest["cap"] if "cap" in rest else pd.Series("", index=rest.index, dtype=object)
    rank = rest.groupby("record_id", sort=False).cumcount()
    best = rest[rank == 0].set_index("record_id")
    runner_up = rest[rank == 1].set_index("record_id")["match_weight"].reindex(best.index)
    close = runner_up.notna() & (runner_up > best["match_weight"] - thresholds.margin)
    probability = best["match_probability"]
    allowed = pd.Series(~cap[rank == 0].isin(["probable", "possible"]).to_numpy(), index=best.index)
    certain = (probability >= thresholds.certain) & ~close & allowed
    certain_ids = set(best.index[certain])
    linked = best[certain].reset_index().assign(grade="certain", reason="model")

    queued = rest[(~rest["record_id"].isin(certain_ids)) & (rank < review_candidates)].copy()
    queued["grade"] = "possible"
    queued.loc[(queued["match_probability"] >= thresholds.probable) & (cap.reindex(queued.index) != "possible"),
               "grade"] = "probable"
    queued["reason"] = "model"
    queued.loc[cap.reindex(queued.index).isin(["probable", "possible"]), "reason"] = "evidence"
    # A certain-looking best candidate with a close runner-up is ambiguous: both go to review as probable.
    ambiguous = set(best.index[(probability >= thresholds.certain) & close])
    queued.loc[queued["record_id"].isin(ambiguous) & (queued["match_probability"] >= thresholds.certain),
               "reason"] = "ambiguous"
    return pd.concat([doc[columns], linked[columns], queued[columns]], ignore_index=True)


def accuracy(decisions: pd.DataFrame, truth: set[tuple[str, str]], grades: tuple[str, ...] = ("certain",)) -> dict:
    """Precision, recall and F1 of the links of these grades against true (record, person) pairs."""
    chosen = decisions[decisions["grade"].isin(grades)]
    if "certain" not in grades or len(grades) > 1:
        chosen = chosen.drop_duplicates("record_id")  # the best candidate of each record
    found = set(zip(chosen["record_id"], chosen["person_id"]))
    true_positive = len(found & truth)
    precision = true_positive / len(found) if found else 1.0
    recall = true_positive / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "links": len(found), "true_links": true_positive}


def deterministic_links(index: pd.DataFrame, records: pd.DataFrame) -> set[tuple[str, str]]:
    """The plain rule the model is compared with: same document number, else same name and birth
    date (only when exactly one person of the index has that name and date)."""
    links = set(zip(*document_hits(index, records).values.T)) if len(records) else set()
    done = {record for record, _ in links}
    keyed = index.dropna(subset=["name", "birth_date"]).drop_duplicates(["name", "birth_date"], keep=False)
    rest = records[~records["unique_id"].isin(done)].dropna(subset=["name", "birth_date"])
    hits = rest.merge(keyed, on=["name", "birth_date"], suffixes=("_record", "_person"))
    links |= set(zip(hits["unique_id_record"].astype(str), hits["unique_id_person"].astype(str)))
    return links

