"""The review queue of the master index: candidate pairs the matcher could not decide.

Probable and possible matches, from the real-time matcher and from batch linkage, wait here for an
operator, who sees both sides masked and accepts (link or merge) or rejects.
"""

from __future__ import annotations

import json

from ..kit.context import Ctx
from .matching import Candidate, Record
from .models import MatchReview


def _record_json(record: Record) -> str:
    return json.dumps({
        "name": record.name, "sex": record.sex,
        "birth_date": record.birth_date.isoformat() if record.birth_date else None,
        "phone": record.phone, "address": record.address, "region_code": record.region_code,
        "document": [record.document.system, record.document.value] if record.document else None,
        "identifiers": [[i.system, i.value] for i in record.identifiers],
    }, ensure_ascii=False, separators=(",", ":"))


def enqueue(ctx: Ctx, candidate: Candidate, *, source: str, record: Record | None = None,
            left_person_id: str | None = None, institution_id: str | None = None,
            link_job_id: str | None = None) -> MatchReview:
    """Queue one undecided pair: a submitted ``record`` (sealed) or a person of the index
    (``left_person_id``) against ``candidate``'s person."""
    if (record is None) == (left_person_id is None):
        raise ValueError("a review pairs either a submitted record or a person with the candidate")
    row = MatchReview(
        source=source, link_job_id=link_job_id, institution_id=institution_id,
        left_person_id=left_person_id,
        record_sealed=None,
        right_person_id=candidate.person_id, score=candidate.score, probability=candidate.probability,
        grade=candidate.grade, comparison=json.dumps(candidate.comparison, separators=(",", ":")),
    )
    ctx.session.add(row)
    ctx.session.flush()  # the id binds the sealed record to this row
    if record is not None:
        row.record_sealed = ctx.vault.seal(_record_json(record), f"mpi_reviews:{row.id}:record")
    return row
