"""Step 2: the index side. The active people of the index as a linkage frame, their sealed fields
opened in memory (in worker processes for large jobs); and the list's rows cleaned in workers too."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from ...crypto import KeyStore
from ...kit.context import Vault
from .. import repository
from ..lookups import ehc_ids_by_person
from ..sealed import open_people
from .clean import FRAME_COLUMNS, CleanRows, clean_rows, frame_row, name_for_matching, normalise_address
from .common import LinkPlatform, collector_paused, default_workers, worker_pool

_WORKER_VAULT: Vault | None = None  # the key store a worker process opened once (see _init_worker)


def _init_worker(keys_dir: str) -> None:
    global _WORKER_VAULT
    _WORKER_VAULT = Vault(KeyStore(Path(keys_dir)))


def _open_people(rows: list[tuple], vault: Vault | None = None) -> list[tuple]:
    """Unseal a chunk of people (``mpi.sealed.open_people``, the batch form of the one place sealed
    data is opened) and build their linkage rows. Runs in a worker process (or inline)."""
    opened = open_people(vault or _WORKER_VAULT, rows)
    return [frame_row(person_id, name_for_matching(name) if name else None, sex, birth, phone,
                      normalise_address(address) if address else None, region, id_key)
            for person_id, name, birth, phone, address, sex, region, id_key in opened]


def _clean_chunk(rows: pd.DataFrame, vault: Vault | None = None) -> CleanRows:
    vault = vault or _WORKER_VAULT
    with collector_paused():
        return clean_rows(rows, blind=lambda key: vault.blind("identifier", key))


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _frame_rows(rows: list[tuple]) -> list[tuple]:
    """Linkage rows from demographics already in clear: ``(person_id, name, sex, birth_date, phone,
    address, region_code, id_key)``."""
    return [frame_row(pid, name_for_matching(name) if name else None, sex, birth, phone,
                      normalise_address(address) if address else None, region, id_key)
            for pid, name, sex, birth, phone, address, region, id_key in rows]


def index_frame(rows: list[tuple], *, workers: int | None = None, chunk: int = 50_000) -> pd.DataFrame:
    """The index side from demographics in clear (benchmarks: an already-unsealed export), with
    the pinyin keys derived in worker processes like :func:`export_index` does."""
    workers = default_workers(len(rows)) if workers is None else workers
    if workers:
        with worker_pool(workers) as pool:
            built = [row for part in pool.map(_frame_rows, _chunks(rows, chunk)) for row in part]
    else:
        built = _frame_rows(rows)
    return pd.DataFrame(built, columns=list(FRAME_COLUMNS), dtype=object)


def export_index(platform: LinkPlatform, *, workers: int | None = None, chunk: int = 20_000,
                 progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """The active people of the index as a linkage frame (``unique_id`` = person id), plus
    ``card_id``. Personal fields are unsealed in memory only; documents stay blind indexes."""
    with platform.db.session() as session:
        documents = repository.document_blind_indexes(session)
        cards = ehc_ids_by_person(session)
        sealed = [(*row, documents.get(row[0])) for row in repository.active_people_sealed(session)]
    workers = default_workers(len(sealed)) if workers is None else workers
    opened: list[tuple] = []
    if workers:
        with worker_pool(workers, initializer=_init_worker, initargs=(str(platform.settings.keys_dir),)) as pool:
            for part in pool.map(_open_people, _chunks(sealed, chunk)):
                opened.extend(part)
                if progress:
                    progress(len(opened), len(sealed))
    else:
        for part in _chunks(sealed, chunk):
            opened.extend(_open_people(part, platform.vault))
            if progress:
                progress(len(opened), len(sealed))
    frame = pd.DataFrame(opened, columns=list(FRAME_COLUMNS), dtype=object)
    frame["card_id"] = frame["unique_id"].map(cards)
    return frame


def clean_list(platform: LinkPlatform, rows: pd.DataFrame, *, workers: int | None = None, chunk: int = 50_000) -> CleanRows:
    """:func:`clean_rows` with the platform's blind index, in worker processes for long lists.
    Duplicate MRNs across chunks are caught after the chunks come back."""
    workers = default_workers(len(rows)) if workers is None else workers
    if not workers:
        return _clean_chunk(rows, platform.vault)
    parts = [rows.iloc[start:start + chunk] for start in range(0, len(rows), chunk)]
    with worker_pool(workers, initializer=_init_worker, initargs=(str(platform.settings.keys_dir),)) as pool:
        results = list(pool.map(_clean_chunk, parts))
    frame = pd.concat([r.frame for r in results], ignore_index=True)
    rejects = [reject for r in results for reject in r.rejects]
    duplicate = frame["mrn"].duplicated(keep="first")
    rejects += [(int(line), mrn, "mrn_duplicate") for line, mrn in frame.loc[duplicate, ["line", "mrn"]].values]
    dropped = set(frame.loc[duplicate, "line"])
    notes = [note for r in results for note in r.notes if note[0] not in dropped]
    return CleanRows(frame=frame[~duplicate].reset_index(drop=True), rejects=sorted(rejects), notes=sorted(notes))

