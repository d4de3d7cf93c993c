"""The sealing key leaks: rotate, re-seal everything in the background (resumable, with progress),
withdraw the old key; on both DBs. The QR issuing key's drill is in test_terminal.py (rotate, withdraw,
terminals refuse its codes after their next sync) and a hospital app key's in test_signed_api.py
(revoke: nothing it signs is accepted); docs/operations.md walks through all three."""

from __future__ import annotations

import subprocess
from datetime import date

import pytest
from factories import make_staff, person, run_ehc
from fastapi.testclient import TestClient
from sqlalchemy import select

from ehc.app import create_app
from ehc.crypto import KeyStore, SealBroken
from ehc.kit import resealing
from ehc.kit.context import Vault
from ehc.models import metadata
from ehc.mpi.models import Person
from ehc.platform import Platform
from ehc.wiring import register_hooks


def test_every_sealed_column_of_the_schema_is_declared_for_resealing():
    register_hooks()
    in_schema = {f"{table.name}.{column.name}" for table in metadata.tables.values() for column in table.columns
                 if column.name.endswith("_sealed")}
    assert in_schema == {sealed.name for sealed in resealing.registered()}


def restarted(platform: Platform) -> Platform:
    """The same platform after a restart: the key store read again from its directory."""
    keys = KeyStore(platform.settings.keys_dir)
    return Platform(settings=platform.settings, db=platform.db, keys=keys, vault=Vault(keys))


def ehc(platform: Platform, *args: str) -> subprocess.CompletedProcess:
    return run_ehc(platform.settings, *args)


def residents(n: int, start: int = 0) -> list[dict]:
    return [person("李秀英", date(1970 + i % 30, 1 + i % 12, 1 + i % 28), start + i, i % 2 == 0,
                   phone=f"139{start + i:08d}", address="成都市青羊区") for i in range(n)]


def test_a_leaked_sealing_key_is_rotated_resealed_and_withdrawn(own_keys, institution):
    old_key = own_keys.keys.active("sealing").id
    with TestClient(create_app(own_keys)) as client:
        for body in residents(7):
            assert client.post("/api/v1/cards", json=body).status_code == 201
        assert client.post("/api/v1/auth/resident/otp", json={"phone": "13900000001"}).status_code == 202

    with own_keys.db.session() as session:
        first = session.scalars(select(Person)).first()
        stale = (first.name_sealed, f"person.name:{first.id}")  # as an old backup still holds it

    # 1. Rotate: from the restart on, new values are sealed under the new key; old ones still open.
    own_keys.keys.rotate("sealing")
    platform = restarted(own_keys)
    new_key = platform.keys.active("sealing").id
    with TestClient(create_app(platform)) as client:
        assert client.post("/api/v1/cards", json=residents(1, start=50)[0]).status_code == 201
    before = resealing.count_under(platform.db.engine, old_key)
    assert before["persons.name_sealed"] == 7 and before["person_identifiers.value_sealed"] >= 7
    assert before["sms_outbox.phone_sealed"] == 1

    # The old key cannot be withdrawn while anything is sealed under it.
    refused = ehc(platform, "keys", "withdraw", old_key)
    assert refused.returncode == 2 and "ehc keys reseal" in refused.stderr

    # 2. Re-seal, interrupted after two batches of three (a kill at any point loses nothing)...
    resealing.reseal(platform.db.engine, platform.vault, batch_size=3, limit_batches=2)
    middle = resealing.count_under(platform.db.engine, old_key)
    assert sum(middle.values()) == sum(before.values()) - 6
    # ...then run again from the command line: it goes on where it stopped, showing its progress.
    done = ehc(platform, "keys", "reseal", "--batch-size", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "persons.phone_sealed: 3/7" in done.stdout and f"under {new_key}" in done.stdout
    assert sum(resealing.count_under(platform.db.engine, old_key).values()) == 0

    # 3. Withdraw the old key: it opens nothing from now on, and everything still opens.
    withdrawn = ehc(platform, "keys", "withdraw", old_key)
    assert withdrawn.returncode == 0, withdrawn.stderr
    after = restarted(platform)
    assert after.keys.withdrawn(old_key)
    with TestClient(create_app(after)) as client:
        clerk = make_staff(after, client, "window_clerk", institution)
        for body in residents(7):
            found = client.post("/api/v1/cards/lookup", json={"document": body["document"]}, headers=clerk)
            assert found.status_code == 200, found.text
            assert found.json()["holder"]["name"] == "李*英" and found.json()["holder"]["phone"].endswith(body["phone"][-4:])
    with after.db.session() as session:
        for row in session.scalars(select(Person)):
            assert row.name_sealed.startswith(f"{new_key}.")
            after.vault.open(row.name_sealed, f"person.name:{row.id}")
    # A value sealed under the withdrawn key (an old backup's copy) no longer opens.
    assert stale[0].startswith(f"{old_key}.")
    with pytest.raises(SealBroken, match="withdrawn"):
        after.vault.open(*stale)


def test_the_active_sealing_key_cannot_be_withdrawn(own_keys):
    active = own_keys.keys.active("sealing").id
    answer = ehc(own_keys, "keys", "withdraw", active)
    assert answer.returncode == 2 and "rotate it first" in answer.stderr
