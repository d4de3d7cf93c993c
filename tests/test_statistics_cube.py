"""The daily and the month cube: maintained by the refresh in the transaction that stores the events,
exactly once (batches, reruns, refreshes racing), they hold what grouping the events gives, and every
flow indicator read from them answers exactly what the events answer (every breakdown, period and
region level; windows of whole months, cut months, none), over a generated set of card, card-use,
booking and family-doctor events; on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest
from conftest import _drop_pg_database, _pg_database
from factories import make_institution, uscc
from sqlalchemy import delete, func, insert, select
from test_statistics import CHENGDU_HOSPITAL, DAY, DEYANG_HOSPITAL, SHENZHEN_HOSPITAL, Activity, Data

from ehc.db import Database
from ehc.kit.context import Actor
from ehc.migrate import upgrade
from ehc.statistics import service as stats
from ehc.statistics.models import CubeCell, MonthCubeCell, StatEvent

HOSPITALS = ((CHENGDU_HOSPITAL, "510104"), (DEYANG_HOSPITAL, "510603"), (SHENZHEN_HOSPITAL, "440305"))
SCENES = ("0101011", "0101012", "010102", "010103")
CHANNELS = ("0100", "0200", "0300", "0500")


@pytest.fixture
def generated(platform, institution) -> None:  # noqa: ANN001
    """A few hundred events over three weeks in three counties of two provinces, fed in small batches,
    a second time while more arrive, and by racing refreshes."""
    make_institution(platform, DEYANG_HOSPITAL, uscc=uscc("510600", 2), name="Deyang Hospital", region_code="510603")
    make_institution(platform, SHENZHEN_HOSPITAL, uscc=uscc("440300", 3), name="Shenzhen Hospital",
                     region_code="440305")
    rng = random.Random(2026)
    data = Data(platform)
    activity = Activity(platform, data)

    def some_cards_and_uses(count: int) -> None:
        for _ in range(count):
            hospital, region = rng.choice(HOSPITALS)
            day = DAY + timedelta(days=rng.randrange(21))
            cards = data.cards(rng.randint(1, 3), institution=hospital, channel=rng.choice(CHANNELS), day=day,
                               hour=rng.randrange(24), born=rng.choice((1950, 1980, 2000, 2015, 2024)),
                               sex=rng.choice("12"), document=rng.choice(("01", "03")))
            for ehc_id in cards:
                if rng.random() < 0.3:
                    data.event(ehc_id, rng.choice(("report_lost", "cancel", "modify")), "normal",
                               rng.choice(("lost", "cancelled", "normal")), day=day + timedelta(days=1))
            data.uses(rng.randint(1, 6), institution=hospital, region=region, scene=rng.choice(SCENES),
                      channel=rng.choice(CHANNELS), day=day, hour=rng.randrange(24))

    some_cards_and_uses(25)
    places = {h: activity.period(h) for h, _ in HOSPITALS}
    for person in activity.people(12, CHENGDU_HOSPITAL):
        hospital = rng.choice(HOSPITALS)[0]
        actions = rng.choice(([("hold", "held"), ("confirm", "booked"), ("arrive", "arrived")],
                              [("hold", "held"), ("confirm", "booked"), ("no_show", "no_show")],
                              [("waitlist_offer", "held"), ("confirm", "booked")],
                              [("hold", "held"), ("confirm", "booked"), ("cancel", "cancelled")]))
        activity.booking(person, places[hospital], hospital, actions, channel=rng.choice(CHANNELS),
                         from_waitlist=actions[0][0] == "waitlist_offer", day=DAY + timedelta(days=rng.randrange(21)))
    team = activity.team(DEYANG_HOSPITAL)
    for person in activity.people(6, DEYANG_HOSPITAL):
        contract = activity.contract(person, team, DEYANG_HOSPITAL)
        activity.contract_event(contract, "sign", "window", day=DAY + timedelta(days=rng.randrange(7)))
        activity.contract_event(contract, "service", "follow_up: bp", day=DAY + timedelta(days=rng.randrange(7, 21)))
    stats.refresh(platform.db, batch=9)  # many batches, each its own transaction
    some_cards_and_uses(10)  # more arrive; racing refreshes take them in
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: stats.refresh(platform.db, batch=11), range(4)))
    assert stats.refresh(platform.db).total == 0


def test_the_cube_holds_what_the_events_give(platform, generated) -> None:  # noqa: ANN001
    with platform.db.session() as session:
        assert stats.cube_differences(session) == {}
        assert session.scalar(select(func.count()).select_from(CubeCell)) > 0
        # Every event is counted once in each dimension.
        by_dimension = dict(session.execute(select(CubeCell.dimension, func.sum(CubeCell.count))
                                            .group_by(CubeCell.dimension)).all())
        by_month_dimension = dict(session.execute(select(MonthCubeCell.dimension, func.sum(MonthCubeCell.count))
                                                  .group_by(MonthCubeCell.dimension)).all())
        months = set(session.scalars(select(MonthCubeCell.month).distinct()))
        prefectures = set(session.scalars(select(MonthCubeCell.region_code).distinct()))
    assert len(set(by_dimension.values())) == 1 and set(by_dimension) == set(stats.CUBE_DIMENSIONS)
    assert by_month_dimension == by_dimension
    assert months == {date(2026, 11, 1), date(2026, 12, 1)} and prefectures == {"510100", "510600", "440300"}
    # Rebuilding from the events (after a bulk load that bypassed the refresh) gives the same cubes.
    with platform.db.session() as session:
        session.execute(delete(MonthCubeCell).where(MonthCubeCell.dimension == "sex"))
        assert stats.cube_differences(session)
    stats.rebuild_cube(platform.db)
    with platform.db.session() as session:
        assert stats.cube_differences(session) == {}


# (period, region, first day, last day): the events span 2026-11-20 to 2026-12-13.
WINDOWS = (("day", None, DAY, DAY + timedelta(days=22)), ("week", "510000", DAY, DAY + timedelta(days=22)),
           ("month", "510600", DAY, DAY + timedelta(days=22)), ("total", "510603", DAY, DAY + timedelta(days=22)),
           ("total", "440000", DAY, DAY + timedelta(days=22)),
           # Whole months (the month cube alone), a cut first month, a cut last month, at every level it serves.
           ("month", None, date(2026, 11, 1), date(2026, 12, 31)),
           ("total", "510000", date(2026, 11, 1), date(2026, 12, 31)),
           ("month", "510000", date(2026, 11, 20), date(2026, 12, 31)),
           ("total", "510100", date(2026, 11, 1), date(2026, 12, 5)),
           ("month", "440300", date(2026, 10, 3), date(2026, 12, 9)),
           # A stock's November from the month cube, its December days from the daily cube.
           ("day", "510000", date(2026, 12, 2), date(2026, 12, 9)),
           ("total", None, date(2026, 10, 31), date(2027, 1, 1)))
WHOLE_MONTHS = WINDOWS[5:7]


def test_whole_months() -> None:
    assert stats.whole_months(date(2026, 11, 1), date(2026, 12, 31)) == (date(2026, 11, 1), date(2026, 12, 31))
    assert stats.whole_months(date(2026, 11, 2), date(2027, 1, 30)) == (date(2026, 12, 1), date(2026, 12, 31))
    assert stats.whole_months(date(2026, 2, 1), date(2026, 2, 28)) == (date(2026, 2, 1), date(2026, 2, 28))
    assert stats.whole_months(date(2026, 11, 2), date(2026, 12, 30)) is None
    assert stats.whole_months(date(2026, 11, 20), date(2026, 11, 30)) is None


def test_every_indicator_from_the_cubes_answers_as_the_events(platform, generated) -> None:  # noqa: ANN001
    """The flows, and the stocks by status (entries minus exits up to each period's end, from the
    cubes' to-status and from-status)."""
    compared = 0
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        assert any(stats.table(ctx, stats.Query(stock, period="total", start=date(2026, 1, 1), end=date(2026, 12, 31)),
                               audit_purpose=False).protected.total for stock in stats.STOCKS)
        for indicator in stats.INDICATORS:
            for by in (None, *stats.INDICATORS[indicator]):
                for period, region, start, end in WINDOWS:
                    query = stats.Query(indicator, by=by, period=period, region=region, start=start, end=end)
                    cubes = stats.table(ctx, query, audit_purpose=False)
                    daily = stats.table(ctx, query, audit_purpose=False, month_cube=False)
                    raw = stats.table(ctx, query, audit_purpose=False, cube=False)
                    for cube in (cubes, daily):
                        assert (cube.rows, cube.columns, cube.drill) == (raw.rows, raw.columns, raw.drill), query
                        assert cube.protected.cells == raw.protected.cells, query
                        assert cube.records() == raw.records(), query
                    compared += 1
    assert compared > 600


def test_whole_months_are_read_from_the_month_cube(platform, generated) -> None:  # noqa: ANN001
    """Without the daily cube, questions of whole months still answer (from the month cube alone); a
    county's, or cut months, do not."""
    questions = [stats.Query(indicator, by=by, period=period, region=region, start=start, end=end)
                 for indicator in ("card_uses", "cards_issued", "bookings_made", "contracts_signed")
                 for by in (None, *stats.INDICATORS[indicator]) for period, region, start, end in WHOLE_MONTHS]
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        before = [stats.table(ctx, q, audit_purpose=False).records() for q in questions]
        cut = stats.Query("card_uses", period="month", region="510000", start=DAY, end=date(2026, 12, 31))
        county = stats.Query("card_uses", period="month", region="510104", start=date(2026, 11, 1),
                             end=date(2026, 12, 31))
        other = [stats.table(ctx, q, audit_purpose=False).records() for q in (cut, county)]
        session.execute(delete(CubeCell))
        assert [stats.table(ctx, q, audit_purpose=False).records() for q in questions] == before
        assert any(r["count"] != "0" for records in before for r in records)
        assert [stats.table(ctx, q, audit_purpose=False).records() for q in (cut, county)] != other
        session.rollback()


def test_the_migration_fills_the_cube_from_the_events_already_stored(database_url, tmp_path) -> None:  # noqa: ANN001
    """A platform upgraded with a year of events: the cube is made from them (as the refresh would)."""
    # On a database of its own, as test_migrations does: the session's shared one stays at head.
    name = f"ehc_cube_{secrets.token_hex(3)}"
    url = f"sqlite:///{tmp_path / 'cube.sqlite3'}" if database_url.startswith("sqlite") else _pg_database(name)
    try:
        upgrade(url, "0025")
        rng = random.Random(7)
        db = Database(url)
        with db.session() as session:
            session.execute(insert(StatEvent), [
                {"source": rng.choice(("card_use", "card")), "source_id": n, "kind": rng.choice(("use", "register")),
                 "day": DAY + timedelta(days=rng.randrange(5)), "hour": rng.randrange(24),
                 "region_code": rng.choice(("510104", "440305")), "institution_id": rng.choice((None, "i1", "i2")),
                 "channel": rng.choice((None, "0100")), "care_step": rng.choice((None, "010102")),
                 "terminal_type": None, "document_type": "01", "age_band": rng.choice((None, "18-44")),
                 "sex": rng.choice("12"), "from_status": None, "to_status": rng.choice((None, "normal"))}
                for n in range(1, 301)])
        upgrade(url)
        with db.session() as session:
            assert session.scalar(select(func.sum(CubeCell.count)).where(CubeCell.dimension == "hour")) == 300
            assert session.scalar(select(func.sum(MonthCubeCell.count))
                                  .where(MonthCubeCell.dimension == "channel")) == 300
            assert stats.cube_differences(session) == {}
        db.dispose()
    finally:
        if not url.startswith("sqlite"):
            _drop_pg_database(name)
