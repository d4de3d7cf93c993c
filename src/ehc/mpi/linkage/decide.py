"""Step 4: grade each row's candidates: certain links, probable and possible go to review, the rest is
unmatched; and the measures the benchmarks compare the model with. Pure pandas, no database."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


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
    rank = rest.groupby("record_id", sort=False).cumcount()
    best = rest[rank == 0].set_index("record_id")
    runner_up = rest[rank == 1].set_index("record_id")["match_weight"].reindex(best.index)
    close = runner_up.notna() & (runner_up > best["match_weight"] - thresholds.margin)
    probability = best["match_probability"]
    certain = (probability >= thresholds.certain) & ~close
    certain_ids = set(best.index[certain])
    linked = best[certain].reset_index().assign(grade="certain", reason="model")

    queued = rest[(~rest["record_id"].isin(certain_ids)) & (rank < review_candidates)].copy()
    queued["grade"] = "possible"
    queued.loc[queued["match_probability"] >= thresholds.probable, "grade"] = "probable"
    queued["reason"] = "model"
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

