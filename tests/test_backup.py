"""Backup and restore (`ehc backup`, `ehc restore`): the database and the key store, the keys under
an operator's passphrase. A backup of each database is restored onto the other kind."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from conftest import _drop_pg_database, _pg_database
from factories import person, run_ehc
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, func, select

from ehc.accounts import service as accounts
from ehc.app import create_app
from ehc.backup import SKIPPED_TABLES
from ehc.cards.models import Card
from ehc.crypto import KeyStore
from ehc.db import Database
from ehc.kit.context import Actor, Vault
from ehc.kit.partitions import partition_tables
from ehc.platform import Platform
from ehc.qr import service as qr

PASSPHRASE = "correct horse battery staple"
CLERK_PASSWORD = "clerk password 123"


@pytest.fixture
def other_database(database_url: str, tmp_path: Path):
    """An empty database of the other kind than the test's, to restore into."""
    if database_url.startswith("sqlite"):
        name = f"ehc_restore_{secrets.token_hex(4)}"
        yield _pg_database(name)
        _drop_pg_database(name)
    else:
        yield f"sqlite:///{tmp_path / 'restored' / 'ehc.sqlite3'}"


def counts(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            metadata = MetaData()
            partitions = partition_tables(conn)  # a partitioned table's rows are counted in it (card_uses)
            metadata.reflect(conn, only=lambda name, _metadata: name not in partitions)
            return {t.name: conn.scalar(select(func.count()).select_from(t)) for t in metadata.sorted_tables
                    if t.name not in SKIPPED_TABLES}  # what a backup leaves out
    finally:
        db.dispose()


def test_a_backup_restores_onto_the_other_database_and_opens_everything(own_keys, institution, other_database,
                                                                       tmp_path):
    source = own_keys
    with source.db.session() as session:
        accounts.create_staff(source.ctx(session, Actor.system()), username="clerk-li", password=CLERK_PASSWORD,
                              role="window_clerk", institution_id=institution)
    people = [person("张伟", date(1960 + i, 1 + i, 10 + i), 30 + i, i % 2 == 0, phone=f"1380000{i:04d}")
              for i in range(6)]
    with TestClient(create_app(source)) as client:
        clerk = {"Authorization": "Bearer " + client.post("/api/v1/auth/staff/token", json={
            "username": "clerk-li", "password": CLERK_PASSWORD}).json()["access_token"]}
        answers = [client.post("/api/v1/cards", json=body) for body in people]
        assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
        ehc_ids = [a.json()["ehc_id"] for a in answers]
        # An emergency card merged into its identified holder (a person pointing at another).
        temp = client.post("/api/v1/cards/temporary", headers=clerk, json={
            "sex": "1", "approximate_birth_year": 1960, "note": "brought in unconscious"})
        assert temp.status_code == 201, temp.text
        assert client.post(f"/api/v1/cards/{temp.json()['ehc_id']}/merge", json={"into": ehc_ids[0]},
                           headers=clerk).status_code == 200
        assert client.post("/api/v1/cards/lookup", json={"document": people[1]["document"]}, headers=clerk).status_code == 200
    with source.db.session() as session:
        static = qr.issue_static(source.ctx(session, Actor.system()), session.get(Card, ehc_ids[2])).text

    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_text(PASSPHRASE + "\n")
    archive = tmp_path / "platform.ehcbak"
    made = run_ehc(source.settings, "backup", str(archive), "--passphrase-file", str(passphrase_file))
    assert made.returncode == 0, made.stdout + made.stderr
    assert "persons:" in made.stdout and archive.stat().st_mode & 0o077 == 0
    raw = archive.read_bytes()
    for body in people:  # nothing personal in clear in the file (the table files are compressed too)
        assert body["document"]["number"].encode() not in raw and body["phone"].encode() not in raw

    target = replace(source.settings, database_url=other_database, keys_dir=tmp_path / "restored-keys",
                     data_dir=tmp_path / "restored-data")
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase at all\n")
    refused = run_ehc(target, "restore", str(archive), "--passphrase-file", str(wrong))
    assert refused.returncode == 2 and "wrong passphrase" in refused.stderr
    assert not target.keys_dir.exists()  # nothing was touched

    restored = run_ehc(target, "restore", str(archive), "--passphrase-file", str(passphrase_file))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert counts(other_database) == counts(source.settings.database_url)

    keys = KeyStore(target.keys_dir)
    platform = Platform(settings=target, db=Database(other_database), keys=keys, vault=Vault(keys))
    try:
        with TestClient(create_app(platform)) as client:
            token = client.post("/api/v1/auth/staff/token", json={"username": "clerk-li", "password": CLERK_PASSWORD})
            assert token.status_code == 200, token.text  # the staff accounts came back too
            clerk = {"Authorization": "Bearer " + token.json()["access_token"]}
            for body, ehc_id in zip(people, ehc_ids):  # blind indexes find, sealed fields open
                found = client.post("/api/v1/cards/lookup", json={"document": body["document"]}, headers=clerk)
                assert found.status_code == 200 and found.json()["ehc_id"] == ehc_id
                assert found.json()["holder"]["name"] == "张*"
            verified = client.post("/api/v1/qr/verify", json={"code": static, "scene": "0101011", "channel": "0100"},
                                   headers=clerk)
            assert verified.status_code == 200 and verified.json()["ehc_id"] == ehc_ids[2], verified.text
            # New rows get fresh ids after the restored ones (sequences moved past them).
            assert client.post("/api/v1/cards", json=person("王芳", date(1991, 2, 3), 77, False)).status_code == 201
        chain = run_ehc(target, "audit", "verify")
        assert chain.returncode == 0, chain.stdout + chain.stderr
    finally:
        platform.db.dispose()

    # A second restore onto the same (now full) database is refused.
    again = replace(target, keys_dir=tmp_path / "again-keys")
    full = run_ehc(again, "restore", str(archive), "--passphrase-file", str(passphrase_file))
    assert full.returncode == 2 and "not empty" in full.stderr
