"""The card-use table by month on PostgreSQL (migration 0029, ``kit.partitions``, ``qr.partitions``):
the migration keeps every row and id, the verify path writes into its month, a use of a month without
partition waits in DEFAULT until the upkeep makes its month, a month-bounded query reads one month,
old months leave only when asked. SQLite keeps one table, and the same calls do nothing there."""

from __future__ import annotations

import re
import secrets
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from conftest import _drop_pg_database, _pg_database
from sqlalchemy import create_engine, select, text
from typer.testing import CliRunner

from ehc.cards.models import Card
from ehc.cli import app as cli
from ehc.kit import partitions
from ehc.kit.clock import utcnow
from ehc.kit.context import Actor
from ehc.migrate import alembic_config, upgrade
from ehc.qr import service as qr
from ehc.qr.models import CardUse
from ehc.statistics import service as stats

USE = qr.Use(scene="0101011", channel="0100")


def _revision_before_partitions() -> str:
    """The revision before the migration that partitions card_uses, found by its file (ids get renumbered)."""
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    [mine] = [r for r in scripts.walk_revisions() if r.path.endswith("_card_uses_month_partitions.py")]
    return mine.down_revision


def _postgresql_only(platform) -> None:  # noqa: ANN001
    if platform.db.engine.dialect.name != "postgresql":
        pytest.skip("month partitions are PostgreSQL's")


def _home(session, use_id: int) -> str:  # noqa: ANN001
    """The partition a use is stored in."""
    return session.scalar(text("SELECT tableoid::regclass::text FROM card_uses WHERE id = :id"), {"id": use_id})


def _verify_at(platform, ehc_id: str, now: datetime) -> int:  # noqa: ANN001
    """A dynamic code drawn and verified at ``now`` through the real verify path (on PostgreSQL the one
    statement that claims the code, records the use and the audit event); the use's id."""
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        card = session.get(Card, ehc_id)
        return qr.verify(ctx, qr.issue_dynamic(ctx, card, now=now).text, USE, now=now).use.id


# -- the migration ----------------------------------------------------------------------------------

ROWS = [  # (at, the month partition it belongs to: China calendar months)
    (datetime(2025, 1, 15, 3, 0, tzinfo=UTC), "card_uses_2025_01"),
    (datetime(2025, 7, 31, 15, 59, tzinfo=UTC), "card_uses_2025_07"),  # 23:59 China time
    (datetime(2025, 7, 31, 16, 0, tzinfo=UTC), "card_uses_2025_08"),  # already 1 August in China
    (datetime(2026, 3, 2, 8, 0, tzinfo=UTC), "card_uses_2026_03"),
    (datetime(2026, 3, 9, 8, 0, tzinfo=UTC), "card_uses_2026_03"),
]


def test_the_migration_keeps_every_row_and_id_and_goes_back(database_url):  # noqa: ANN001
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's card_uses stays one table: the migration does nothing there")
    name = f"ehc_partitions_{secrets.token_hex(3)}"
    url = _pg_database(name)
    engine = create_engine(url)
    try:
        before_partitions = _revision_before_partitions()
        upgrade(url, before_partitions)
        with engine.begin() as conn:
            for at, _ in ROWS + [(datetime(2025, 5, 1, tzinfo=UTC), None)]:
                conn.execute(text(
                    "INSERT INTO card_uses (ehc_id, person_id, scene, channel, code_type, actor_kind, at, replay, offline,"
                    " recorded_at) VALUES ('E', 'P', '0101011', '0100', 0, 'system', :at, false, false, :at)"), {"at": at})
            conn.execute(text("DELETE FROM card_uses WHERE at = '2025-05-01T00:00:00Z'"))  # a gap in the ids
            before = dict(conn.execute(text("SELECT id, at FROM card_uses")).all())
            last_id = conn.scalar(text("SELECT last_value FROM card_uses_id_seq"))
        assert len(before) == len(ROWS) and last_id == len(ROWS) + 1

        upgrade(url)
        with engine.begin() as conn:
            assert dict(conn.execute(text("SELECT id, at FROM card_uses")).all()) == before
            homes = dict(conn.execute(text("SELECT at, tableoid::regclass::text FROM card_uses")).all())
            assert homes == {at: home for at, home in ROWS}
            names = {p.name for p in partitions.partitions(conn, "card_uses")}
            this_month = partitions.month_of(utcnow())
            ahead = {partitions.partition_name("card_uses", partitions.add_months(this_month, n)) for n in range(4)}
            assert names == {home for _, home in ROWS} | ahead | {"card_uses_default"}
            assert conn.scalar(text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'pk_card_uses'")) == (
                "PRIMARY KEY (id, at)")
            new_id = conn.scalar(text(
                "INSERT INTO card_uses (ehc_id, person_id, scene, channel, code_type, actor_kind, at) "
                "VALUES ('E', 'P', '0101011', '0100', 0, 'system', now()) RETURNING id"))
            assert new_id == last_id + 1  # the same sequence, going on
            before[new_id] = conn.scalar(text("SELECT at FROM card_uses WHERE id = :id"), {"id": new_id})

        command.downgrade(alembic_config(url), before_partitions)
        with engine.begin() as conn:
            assert dict(conn.execute(text("SELECT id, at FROM card_uses")).all()) == before
            assert conn.scalar(text("SELECT relkind FROM pg_class WHERE relname = 'card_uses'")) == "r"
            assert conn.scalar(text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'pk_card_uses'")) == "PRIMARY KEY (id)"
            assert conn.scalar(text("SELECT count(*) FROM pg_class WHERE relname LIKE 'card\\_uses\\_2%'")) == 0
            assert conn.scalar(text(
                "INSERT INTO card_uses (ehc_id, person_id, scene, channel, code_type, actor_kind, at) "
                "VALUES ('E', 'P', '0101011', '0100', 0, 'system', now()) RETURNING id")) == new_id + 1
    finally:
        engine.dispose()
        _drop_pg_database(name)


# -- writing --------------------------------------------------------------------------------------

def test_the_verify_path_writes_into_the_month_of_the_use(platform, holder):  # noqa: ANN001
    _postgresql_only(platform)
    ehc_id, _ = holder
    now = utcnow()
    use_id = _verify_at(platform, ehc_id, now)
    with platform.db.session() as session:
        assert _home(session, use_id) == partitions.partition_name("card_uses", partitions.month_of(now))
        # Looked up by its id alone, as the ORM does: the id is still the row's identity.
        assert session.get(CardUse, use_id).at == now


def test_a_use_of_a_month_without_partition_waits_in_default_until_the_upkeep(platform, holder):  # noqa: ANN001
    _postgresql_only(platform)
    ehc_id, _ = holder
    old = datetime(2024, 2, 10, 2, 0, tzinfo=UTC)
    first = _verify_at(platform, ehc_id, old)  # never an error: DEFAULT takes it
    second = _verify_at(platform, ehc_id, old + timedelta(days=3))
    with platform.db.session() as session:
        assert {_home(session, first), _home(session, second)} == {"card_uses_default"}
        # PostgreSQL would refuse to make the month over rows in DEFAULT; the upkeep moves them.
        made = qr.keep_use_partitions(session)
    assert "card_uses_2024_02" in made
    with platform.db.session() as session:
        assert {_home(session, first), _home(session, second)} == {"card_uses_2024_02"}
        assert session.scalar(text("SELECT count(*) FROM card_uses_default")) == 0
        assert {u.id for u in session.scalars(select(CardUse).where(CardUse.ehc_id == ehc_id))} >= {first, second}
        # The moved month has the table's indexes, its primary key among them.
        indexes = set(session.scalars(text("SELECT indexdef FROM pg_indexes WHERE tablename = 'card_uses_2024_02'")))
        assert any("(id, at)" in d for d in indexes) and any("(key_id, nonce)" in d for d in indexes)
        assert qr.keep_use_partitions(session) == []  # nothing left to do
    assert _verify_at(platform, ehc_id, old + timedelta(days=5))  # the month takes new uses


def test_the_upkeep_makes_the_months_ahead(platform):  # noqa: ANN001
    _postgresql_only(platform)
    later = datetime(2031, 5, 20, tzinfo=UTC)
    with platform.db.session() as session:
        made = qr.keep_use_partitions(session, ahead=2, now=later)
        assert made == ["card_uses_2031_05", "card_uses_2031_06", "card_uses_2031_07"]
        assert qr.keep_use_partitions(session, ahead=2, now=later) == []
        start, end = partitions.month_bounds(date(2031, 6, 1))
        assert start.isoformat() == "2031-06-01T00:00:00+08:00" and end.isoformat() == "2031-07-01T00:00:00+08:00"


def test_a_month_bounded_query_reads_only_that_month(platform):  # noqa: ANN001
    _postgresql_only(platform)
    month = partitions.month_of(utcnow())
    start, end = partitions.month_bounds(month)
    with platform.db.session() as session:
        plan = "\n".join(session.scalars(text(
            f"EXPLAIN SELECT count(*) FROM card_uses WHERE at >= '{start.isoformat()}' AND at < '{end.isoformat()}'")))
    assert set(re.findall(r" on (card_uses_\w+)", plan)) == {partitions.partition_name("card_uses", month)}, plan


def test_old_months_leave_only_when_asked(platform):  # noqa: ANN001
    _postgresql_only(platform)
    with platform.db.session() as session:
        qr.keep_use_partitions(session, ahead=1, now=datetime(2023, 1, 5, tzinfo=UTC))  # 2023-01, 2023-02
    runner = CliRunner()
    env = {"EHC_DATABASE_URL": platform.settings.database_url, "EHC_KEYS_DIR": str(platform.settings.keys_dir)}
    listed = runner.invoke(cli, ["card-uses", "partitions", "--list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "card_uses_2023_01" in listed.output and "card_uses_default" in listed.output
    asked = runner.invoke(cli, ["card-uses", "prune", "--before", "2023-02"], env=env)
    assert asked.exit_code == 0 and "would take out" in asked.output and "card_uses_2023_01" in asked.output
    with platform.db.session() as session:
        assert "card_uses_2023_01" in {p.name for p in qr.use_partitions(session)}  # nothing done without --yes
    for wrong in (["--before", "2023-13"], ["--before", "2023-01", "--keep-months", "3"], []):
        refused = runner.invoke(cli, ["card-uses", "prune", *wrong, "--yes"], env=env)
        assert refused.exit_code == 2 and "error" in refused.output, (wrong, refused.output)
    done = runner.invoke(cli, ["card-uses", "prune", "--before", "2023-02", "--yes"], env=env)
    assert done.exit_code == 0 and "detached" in done.output, done.output
    with platform.db.session() as session:
        names = {p.name for p in qr.use_partitions(session)}
        assert "card_uses_2023_01" not in names and "card_uses_2023_02" in names
        # Left as a table of its own, to archive; dropped when the operator says so.
        assert session.scalar(text("SELECT to_regclass('card_uses_2023_01')")) is not None
        session.execute(text("DROP TABLE card_uses_2023_01"))
        assert qr.detach_use_partitions(session, date(2023, 3, 1), drop=True) == ["card_uses_2023_02"]
        assert session.scalar(text("SELECT to_regclass('card_uses_2023_02')")) is None


def test_serve_keeps_them_before_each_statistics_refresh(platform):  # noqa: ANN001
    kept = threading.Event()
    refresher = stats.start_refresher(platform.db, 0.05, upkeep=lambda: kept.set() or qr.partition_upkeep(platform.db))
    try:
        assert kept.wait(10)
    finally:
        refresher.stop()


def test_sqlite_keeps_one_table(platform):  # noqa: ANN001
    if platform.db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's side")
    with platform.db.session() as session:
        assert qr.keep_use_partitions(session) == [] and qr.use_partitions(session) == []
        assert qr.detach_use_partitions(session, date(2030, 1, 1)) == []
