"""A key rotation made by one process is seen by every other at once, without a restart: the next
seal uses the new key (never the retired one), values sealed under it open everywhere, a withdrawn QR
key verifies nothing. Two ``KeyStore`` objects on one directory stand for two processes here; the
server and the CLI as real processes are in tests/test_many_workers.py."""

from __future__ import annotations

import dataclasses
from datetime import date
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from factories import card_holder, hospital_system
from residents import resident_id
from fastapi.testclient import TestClient
from sqlalchemy import text

from ehc.app import create_app
from ehc.crypto import KeyStore, KeyStoreError, Sealer
from ehc.kit.context import Vault
from ehc.platform import Platform
from ehc.qr import codec

SECOND = resident_id(born=date(1990, 1, 1), sequence=11)


@pytest.fixture
def store_dir(keys_dir: Path, tmp_path: Path) -> Path:
    """A copy of the session's key store that this test may rotate."""
    copy = tmp_path / "keys"
    shutil.copytree(keys_dir, copy)
    return copy


def test_a_rotation_elsewhere_is_used_by_the_next_seal_and_opens_here(store_dir):  # noqa: ANN001
    server, cli = KeyStore(store_dir), KeyStore(store_dir)
    before = Sealer(server).seal("王小明", "person.name")
    new = cli.rotate("sealing")
    sealed_here = Sealer(server).seal("王小明", "person.name")
    assert Sealer.key_id_of(sealed_here) == new.id != Sealer.key_id_of(before)  # never the retired key
    assert Sealer(server).open(Sealer(cli).seal("李四", "person.name"), "person.name") == "李四"
    assert Sealer(server).open(before, "person.name") == "王小明"  # the retired key still opens
    assert server.active("sealing").id == new.id


def test_qr_rotation_and_withdrawal_are_seen_by_every_store(store_dir):  # noqa: ANN001
    server, cli = KeyStore(store_dir), KeyStore(store_dir)
    old = server.active("qr").id
    new = cli.rotate("qr")
    assert server.active("qr").id == new.id and server.public_key(new.id) == cli.public_key(new.id)
    assert {i.id: i.status for i in server.infos("qr")}[old] == "retired"
    cli.withdraw(old)
    assert {i.id: i.status for i in server.infos("qr")}[old] == "withdrawn"
    with pytest.raises(KeyStoreError):
        server.withdraw(new.id)  # the active key: refused with what the other process wrote in mind


def test_rotations_racing_from_several_processes_lose_nothing(store_dir):  # noqa: ANN001
    stores = [KeyStore(store_dir) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        made = list(pool.map(lambda s: s.rotate("sealing").id, stores * 2))
    infos = KeyStore(store_dir).infos("sealing")
    assert set(made) <= {i.id for i in infos} and len(infos) == 1 + 8
    assert [i.status for i in infos].count("active") == 1
    assert all((store_dir / i.filename).is_file() for i in infos)


def test_the_server_keeps_answering_after_the_cli_rotates_every_kind(platform, store_dir, institution):  # noqa: ANN001
    keys = KeyStore(store_dir)
    server = Platform(settings=dataclasses.replace(platform.settings, keys_dir=store_dir), db=platform.db,
                      keys=keys, vault=Vault(keys))
    env = {**os.environ, "EHC_KEYS_DIR": str(store_dir), "EHC_DATA_DIR": str(store_dir.parent),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    his = hospital_system(server, institution)
    with TestClient(create_app(server), raise_server_exceptions=False) as client:
        ehc_id, me = card_holder(client, server, {"name": "张三", "document": {"type": "01", "number": resident_id(born=date(1985, 6, 1), sequence=16)},
                                                   "sex": "1", "birth_date": "1985-06-01", "phone": "13912345601"})
        for kind in ("sealing", "qr"):
            done = subprocess.run([sys.executable, "-m", "ehc.cli", "keys", "rotate", kind], env=env, capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == 0, done.stderr
        active = KeyStore(store_dir)
        # A card registered after the rotation is sealed under the new key only.
        made = client.post("/api/v1/cards", json={"name": "李四", "document": {"type": "01", "number": SECOND},
                                                  "sex": "1", "birth_date": "1990-01-01", "phone": "13912345602"})
        assert made.status_code == 201, made.text
        # The holder (sealed before) and the new resident (sealed after) both read back, no 500.
        for path in ("/api/v1/me/card", "/api/v1/me/access-log"):
            assert client.get(path, headers=me).status_code == 200, path
        code = client.post("/api/v1/me/qr/dynamic", headers=me)
        assert code.status_code == 200, code.text
        assert codec.decode(code.json()["text"]).payload.key_id == active.active("qr").id  # the new QR key
        scanned = client.post("/api/v1/qr/verify", json={"code": code.json()["text"], "scene": "0101011",
                                                         "channel": "0100"}, auth=his)
        assert scanned.status_code == 200 and scanned.json()["ehc_id"] == ehc_id, scanned.text
        lookup = client.post("/api/v1/cards/lookup", json={"document": {"type": "01", "number": SECOND}},
                             auth=his)
        assert lookup.status_code == 200, lookup.text
    with server.db.engine.connect() as connection:
        sealed = connection.execute(text("SELECT name_sealed FROM persons")).scalars().all()
    new_sealing = active.active("sealing").id
    assert sum(s.startswith(new_sealing + ".") for s in sealed) == 1  # 李四, after the rotation
    assert len({s.split(".")[0] for s in sealed}) == 2


def test_a_bulk_opener_opens_every_key_and_refuses_what_open_refuses(store_dir):  # noqa: ANN001
    """``Sealer.opener`` (batch linkage's export of the index) caches each key's cipher object: it opens
    values under the active and a retired key alike, and refuses a wrong context, garbled text and,
    from its next run on, a key withdrawn meanwhile."""
    from ehc.crypto import SealBroken

    store = KeyStore(store_dir)
    old = Sealer(store).seal("王小明", "person.name:P1")
    old_id = Sealer.key_id_of(old)
    store.rotate("sealing")
    new = Sealer(store).seal("李四", "person.name:P2")
    opener = Sealer(store).opener()
    assert opener.open(old, "person.name:P1") == "王小明"
    assert opener.open(new, "person.name:P2") == "李四"
    assert opener.open(old, "person.name:P1") == "王小明"  # the cached key object, again
    for sealed, context in ((old, "person.name:P2"), (old[:-4], "person.name:P1"), (old_id + ".!!", "person.name:P1"),
                            ("no-dot", "person.name:P1"), ("unknown-key.AAAA", "person.name:P1")):
        with pytest.raises(SealBroken):
            opener.open(sealed, context)
    KeyStore(store_dir).withdraw(old_id)
    with pytest.raises(SealBroken, match="withdrawn"):
        Sealer(store).opener().open(old, "person.name:P1")
    assert Sealer(store).opener().open(new, "person.name:P2") == "李四"
