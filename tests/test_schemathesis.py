"""Schemathesis over the whole OpenAPI document, on a live server, on SQLite and PostgreSQL, as every kind
of caller: 0 server errors and 0 answers that break the document (status, content type, schema).

Bounded here (``make test``): each caller fuzzes the operations the authorisation matrix lets it through
(the anonymous caller every operation; refusals are cheap and the same for everyone), one example per
operation plus the stateful phase. ``make fuzz`` runs every caller over every operation, longer
(``FUZZ_EXAMPLES``, ``FUZZ_STEPS``, ``FUZZ_PHASES``; see ``api_fuzz.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from api_fuzz import LONG, Outcome, run
from conftest import _empty_tables
from factories import PASSWORD, bearer, card_holder, hospital_system, live, make_institution, make_staff, person
from test_authz_matrix import CALLERS, FHIR_MATRIX, HOSPITAL, MATRIX, RESIDENT

from ehc.app import create_app
from ehc.config import Settings
from ehc.crypto import KeyStore
from ehc.db import Database
from ehc.kit.context import Vault
from ehc.platform import Platform

REGIONS = {"regional_operator": "510100"}
COMMISSION = {"regional_operator", "auditor", "platform_admin"}


@pytest.fixture(scope="module")
def fuzz_platform(database_url: str, keys_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The platform with rate limits off: the run is about answers, not about being throttled."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("fuzz"), database_url=database_url, keys_dir=keys_dir,
                        rate_limit_app=0, rate_limit_identity=0, rate_limit_anonymous=0)
    keys = KeyStore(settings.keys_dir)
    db = Database(settings.database_url)
    _empty_tables(db)
    yield Platform(settings=settings, db=db, keys=keys, vault=Vault(keys))
    db.dispose()


@pytest.fixture(scope="module")
def world(fuzz_platform: Platform) -> Iterator[dict]:
    """A live server with data to reach: an institution, a resident with a card and a family member, a
    temporary card, a hospital app; the ids go to schemathesis as values to try in paths."""
    platform = fuzz_platform
    with live(create_app(platform)) as url, httpx.Client(base_url=url) as client:
        institution = make_institution(platform, "inst-fuzz-01", uscc="12510000MB1234567X", name="Fuzz Hospital",
                                       kind="hospital", region_code="510104", level="3A")
        holder = person("李四", date(1980, 2, 3), 17, phone="13912340001")
        ehc_id, resident = card_holder(client, platform, holder)
        child = client.post("/api/v1/me/family", headers=resident,
                            json={**person("李小四", date(2015, 5, 6), 18, male=False), "relation": "child"})
        assert child.status_code == 201, child.text
        # Each resident run signs in afresh with this (texted codes are one a minute per phone).
        assert client.post("/api/v1/me/password", headers=resident, json={"new_password": PASSWORD}).status_code == 204
        clerk = make_staff(platform, client, "window_clerk", institution)
        temporary = client.post("/api/v1/cards/temporary", headers=clerk, json={"sex": "1", "note": "found asleep"})
        assert temporary.status_code == 201, temporary.text
        app = hospital_system(platform, institution)
        yield {"url": url, "client": client, "platform": platform, "institution": institution,
               "phone": holder["phone"],
               "values": {"ehc_id": [ehc_id, child.json()["ehc_id"], temporary.json()["ehc_id"]],
                          "patient_id": [ehc_id], "institution_id": [institution], "app_id": [app.app_id],
                          "key_id": [app.key_id]}}


def allowed(caller: str) -> list[str] | None:
    """The operations a caller fuzzes in the bounded run: those the matrix lets it through."""
    if LONG or caller == "anonymous":
        return None
    return [f"{method} {path}" for (method, path), callers in {**MATRIX, **FHIR_MATRIX}.items() if caller in callers]


def credentials(world: dict, caller: str) -> dict:
    """Fresh credentials for this run: an earlier caller may have revoked a key, disabled an account or
    reported the resident's card lost (which ends their sign-ins); that is the fuzzing working."""
    platform, client = world["platform"], world["client"]
    if caller == RESIDENT:
        # Signing out would end the run's identity; every other operation of the resident is fuzzed.
        token = client.post("/api/v1/auth/resident/token", json={"phone": world["phone"], "password": PASSWORD})
        assert token.status_code == 200, token.text
        return {"headers": bearer(token.json()["access_token"]), "exclude": ["POST /api/v1/auth/resident/sign-out"]}
    if caller == HOSPITAL:
        return {"signer": hospital_system(platform, world["institution"])}
    if caller == "anonymous":
        return {}
    return {"headers": make_staff(platform, client, caller, None if caller in COMMISSION else world["institution"],
                                  region=REGIONS.get(caller))}


@pytest.mark.parametrize("caller", CALLERS)
def test_no_server_error_and_every_answer_as_documented(world: dict, caller: str, database_url: str) -> None:
    position = CALLERS.index(caller)
    if not LONG and caller != "anonymous" and position % 2 != database_url.startswith("sqlite"):
        pytest.skip("bounded run: this caller is fuzzed on the other database (make fuzz runs both)")
    outcome: Outcome = run(world["url"], caller, only=allowed(caller), values=world["values"],
                           **credentials(world, caller))
    print(outcome.summary())
    assert outcome.cases > 0
    assert not outcome.errors, "\n".join(outcome.errors)
    assert outcome.server_errors == 0 and not outcome.failures, "\n".join(outcome.failures)
