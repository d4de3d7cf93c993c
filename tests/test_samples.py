"""The sample files the README tour uses (issue 10, item 6), as a newcomer runs them: the resident
registry imports (20 cards, 2 rows in the report), the hospital's patient list reads with its Chinese
headers, and the match body finds its person."""

from __future__ import annotations

import json
from pathlib import Path

from ehc.cards import service as cards
from ehc.mpi.linkage.input import read_patient_list

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_the_tours_sample_files_work_as_the_readme_says(client, platform, clerk, tmp_path) -> None:  # noqa: ANN001
    done = cards.import_csv(platform, SAMPLES / "residents.csv", report=tmp_path / "rejected.csv", workers=1)
    assert done.finished and done.created == 20 and done.rejected == 2, done
    rejected = (tmp_path / "rejected.csv").read_text(encoding="utf-8-sig")
    assert "document_checksum_mismatch" in rejected

    patients = read_patient_list(SAMPLES / "patients.csv")
    assert len(patients) == 12 and {"mrn", "name", "id_number"} <= set(patients.columns)

    body = json.loads((SAMPLES / "match.json").read_text(encoding="utf-8"))
    answer = client.post("/api/v1/mpi/match", json=body, headers=clerk)
    assert answer.status_code == 200, answer.text
    assert answer.json()["candidates"] and answer.json()["candidates"][0]["grade"] in ("certain", "probable")
