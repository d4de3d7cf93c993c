"""Statistics: the analytical store fed from card events and card uses without personal data,
incrementally and idempotently; the console's tables (region × period × indicator, drill-down,
a regional operator's scope), small-number protection that subtraction cannot undo, downloads, the
national daily report, and every query audited; on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import re
import io
import itertools
from datetime import UTC, date, datetime, timedelta

import pyarrow.parquet as pq
import pytest
from factories import make_institution, make_staff, uscc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, inspect, select

from ehc.appointments.models import Booking, ClinicSession, Period
from ehc.appointments.models import Event as BookingEvent
from ehc.audit.models import AuditEvent
from ehc.cards.models import Card, CardEvent
from ehc.family_doctors.models import Contract, ContractEvent, Team
from ehc.institutions import service as institutions
from ehc.kit.context import Actor
from ehc.mpi.models import Person, PersonIdentifier
from ehc.qr.models import CardUse
from ehc.statistics import service as stats
from ehc.statistics import suppression
from ehc.statistics.models import StatEvent, Watermark

CHENGDU_HOSPITAL = "inst-test-01"  # region 510104 (conftest)
DEYANG_HOSPITAL = "inst-stat-02"  # region 510603
SHENZHEN_HOSPITAL = "inst-stat-03"  # region 440305
DAY = date(2026, 11, 20)


def at(day: date, hour: int) -> datetime:
    """A moment of ``day`` at ``hour`` China time, in UTC."""
    return datetime(day.year, day.month, day.day, hour, 30, tzinfo=UTC) - timedelta(hours=8)


class Data:
    """Rows of the source domains, written directly: people, cards, their events, card uses."""

    def __init__(self, platform) -> None:  # noqa: ANN001
        self.platform = platform
        self.serial = itertools.count(1)

    def cards(self, count: int, *, institution: str, channel: str = "0100", day: date = DAY, hour: int = 10,
              born: int = 1980, sex: str = "1", document: str = "01") -> list[str]:
        made = []
        with self.platform.db.session() as session:
            for _ in range(count):
                n = next(self.serial)
                person_id, ehc_id = f"p{n:08d}", f"E{n:019d}{n:044d}"
                session.add(Person(id=person_id, sex=sex, birth_year=born, region_code="510104"))
                session.add(PersonIdentifier(person_id=person_id, system=f"doc:{document}", value_sealed="x",
                                             blind_index=f"b{n:063d}"))
                session.flush()
                session.add(Card(ehc_id=ehc_id, person_id=person_id, status="normal", channel=channel,
                                 institution_id=institution, issued_at=at(day, hour)))
                session.flush()
                session.add(CardEvent(ehc_id=ehc_id, action="register", from_status=None, to_status="normal",
                                      actor_kind="staff", channel=channel, institution_id=institution,
                                      at=at(day, hour)))
                made.append(ehc_id)
        return made

    def event(self, ehc_id: str, action: str, from_status: str, to_status: str, *, day: date = DAY) -> None:
        with self.platform.db.session() as session:
            session.add(CardEvent(ehc_id=ehc_id, action=action, from_status=from_status, to_status=to_status,
                                  actor_kind="staff", channel="0100", at=at(day, 11)))

    def uses(self, count: int, *, institution: str, region: str, scene: str = "0101012", channel: str = "0200",
             day: date = DAY, hour: int = 9, terminal: str | None = None, use_id: int | None = None) -> None:
        with self.platform.db.session() as session:
            person = session.scalar(select(Person.id).limit(1))
            for _ in range(count):
                session.add(CardUse(id=use_id, ehc_id="E", person_id=person, scene=scene, channel=channel,
                                    institution_id=institution, terminal_id=terminal, code_type=0,
                                    actor_kind="machine", at=at(day, hour), region_code=region))


@pytest.fixture
def data(platform, institution) -> Data:  # noqa: ANN001
    make_institution(platform, DEYANG_HOSPITAL, uscc=uscc("510600", 2), name="Deyang Hospital", region_code="510603")
    make_institution(platform, SHENZHEN_HOSPITAL, uscc=uscc("440300", 3), name="Shenzhen Hospital",
                     region_code="440305")
    return Data(platform)


def national(platform, query: stats.Query) -> stats.Table:  # noqa: ANN001
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        return stats.table(ctx, query, today=DAY)


def cell_map(table: stats.Table) -> dict[tuple[str, str], str]:
    return {(r, c): table.shown(i, j) for i, r in enumerate(table.rows) for j, c in enumerate(table.columns)}


# -- the pipeline --------------------------------------------------------------------------------

def test_refresh_feeds_the_store_once_with_no_personal_data(platform, data) -> None:  # noqa: ANN001
    cards = data.cards(6, institution=CHENGDU_HOSPITAL, born=2020, sex="2")
    data.event(cards[0], "report_lost", "normal", "lost")
    data.uses(7, institution=CHENGDU_HOSPITAL, region="510104")
    first = stats.refresh(platform.db, batch=4)  # several batches, each its own transaction
    assert first.stored == {"booking": 0, "card": 7, "card_use": 7, "family_doctor": 0, "payment": 0, "record": 0, "visit": 0}
    assert stats.refresh(platform.db).total == 0  # nothing new: nothing stored twice
    with platform.db.session() as session:
        assert session.scalar(select(func.count()).select_from(StatEvent)) == 14
        row = session.scalars(select(StatEvent).where(StatEvent.kind == "register")).first()
        assert (row.day, row.hour, row.region_code, row.age_band, row.sex, row.document_type, row.channel) == (
            DAY, 10, "510104", "0-6", "2", "01", "0100")
        assert {m.source: m.last_id > 0 for m in session.scalars(select(Watermark))} == {
            "booking": False, "card": True, "card_use": True, "family_doctor": False, "payment": False, "record": False, "visit": False}
    columns = {c["name"] for c in inspect(platform.db.engine).get_columns("stats_events")}
    assert not columns & {"ehc_id", "person_id", "name", "birth_date", "birth_year", "document_number", "phone"}
    # New events are taken in from the watermark on.
    data.uses(2, institution=DEYANG_HOSPITAL, region="510603")
    assert stats.refresh(platform.db).stored == {"booking": 0, "card": 0, "card_use": 2, "family_doctor": 0, "payment": 0, "record": 0, "visit": 0}


def test_an_event_committed_late_below_the_watermark_is_taken_in(platform, data) -> None:  # noqa: ANN001
    data.cards(1, institution=CHENGDU_HOSPITAL)
    data.uses(1, institution=CHENGDU_HOSPITAL, region="510104", use_id=50)
    stats.refresh(platform.db)
    # A transaction that drew id 40 before 50 was written commits only now.
    data.uses(1, institution=CHENGDU_HOSPITAL, region="510104", use_id=40)
    assert stats.refresh(platform.db).stored["card_use"] == 1
    with platform.db.session() as session:
        assert session.get(Watermark, "card_use").last_id == 50


def test_refreshes_racing_store_each_event_once(platform, data) -> None:  # noqa: ANN001
    """Six refreshes at once (the background job, the command, the API) leave each event stored once."""
    from concurrent.futures import ThreadPoolExecutor

    data.cards(3, institution=CHENGDU_HOSPITAL)
    data.uses(60, institution=CHENGDU_HOSPITAL, region="510104")
    with ThreadPoolExecutor(6) as pool:
        reports = list(pool.map(lambda _: stats.refresh(platform.db, batch=7), range(6)))
    assert sum(r.stored["card_use"] for r in reports) == 60
    assert sum(r.stored["card"] for r in reports) == 3
    with platform.db.session() as session:
        assert session.scalar(select(func.count()).select_from(StatEvent)) == 63


class Activity:
    """Rows of the appointments and family-doctor domains, written directly: sessions, bookings and
    their events; teams, contracts and their events."""

    def __init__(self, platform, data: Data) -> None:  # noqa: ANN001
        self.platform, self.data = platform, data
        self.serial = itertools.count(1)

    def people(self, count: int, institution: str) -> list[str]:
        ehc_ids = self.data.cards(count, institution=institution)
        with self.platform.db.session() as session:
            return [session.scalar(select(Card.person_id).where(Card.ehc_id == e)) for e in ehc_ids]

    def period(self, institution: str) -> tuple[str, int]:
        with self.platform.db.session() as session:
            ctx = self.platform.ctx(session, Actor.system())
            found = institutions.get_institution(ctx, institution)
            department = institutions.add_department(ctx, found, code="0300")
            starts = at(DAY + timedelta(days=3), 8)
            row = ClinicSession(id=f"s{next(self.serial):023d}", institution_id=institution,
                                department_id=department.id, department_code="0300", day=starts.date(),
                                starts_at=starts, ends_at=starts + timedelta(hours=1), category="general",
                                fee_fen=500, period_minutes=60, referral_release_at=starts)
            session.add(row)
            session.flush()
            period = Period(session_id=row.id, starts_at=starts, ends_at=starts + timedelta(hours=1), quota_online=50)
            session.add(period)
            session.flush()
            return row.id, period.id

    def booking(self, person_id: str, where: tuple[str, int], institution: str, actions: list[tuple[str, str]], *,
                channel: str = "0500", from_waitlist: bool = False, day: date = DAY) -> None:
        """A booking with its events: (action, status it moves to), each an hour apart from 8:00."""
        with self.platform.db.session() as session:
            n = next(self.serial)
            booking = Booking(id=f"b{n:023d}", reference=f"A{n:08d}", session_id=where[0], period_id=where[1],
                              institution_id=institution, person_id=person_id, ehc_id="E", status="held",
                              pool="online", channel=channel, from_waitlist=from_waitlist)
            session.add(booking)
            session.flush()
            status = None
            for hour, (action, to) in enumerate(actions, start=8):
                session.add(BookingEvent(booking_id=booking.id, session_id=where[0], action=action, from_status=status,
                                         to_status=to, actor_kind="resident", channel=channel, at=at(day, hour)))
                status = to or status
            booking.status = status

    def team(self, institution: str) -> str:
        with self.platform.db.session() as session:
            team = Team(id=f"t{next(self.serial):023d}", institution_id=institution, name="团队", lead_staff_id="s1")
            session.add(team)
            return team.id

    def contract(self, person_id: str, team: str, institution: str) -> str:
        with self.platform.db.session() as session:
            contract = Contract(id=f"c{next(self.serial):023d}", person_id=person_id, team_id=team,
                                institution_id=institution, lead_staff_id="s1", status="active", start_date=DAY,
                                end_date=DAY + timedelta(days=364), package_ids=[], terms=[], channel="0100",
                                signed_by_kind="window")
            session.add(contract)
            return contract.id

    def contract_event(self, contract_id: str, action: str, reason: str | None = None, *, day: date = DAY) -> None:
        with self.platform.db.session() as session:
            session.add(ContractEvent(contract_id=contract_id, action=action, actor_kind="staff", channel="0100",
                                      reason=reason, at=at(day, 10)))


@pytest.fixture
def activity(platform, data) -> Activity:  # noqa: ANN001
    return Activity(platform, data)


def raw_map(table: stats.Table) -> dict[tuple[str, str], int]:
    """The counts before protection (what the table's published cells were made from)."""
    return {(r, c): table.protected.cells[i][j] for i, r in enumerate(table.rows) for j, c in enumerate(table.columns)}


def test_booking_events_flow_into_the_booking_indicators(platform, client, data, activity) -> None:  # noqa: ANN001
    chengdu, shenzhen = activity.period(CHENGDU_HOSPITAL), activity.period(SHENZHEN_HOSPITAL)
    people = activity.people(16, CHENGDU_HOSPITAL)
    booked = [("hold", "held"), ("confirm", "booked"), ("notify", None)]  # a text sent is no statistic
    for person in people[:6]:  # online, then seen
        activity.booking(person, chengdu, CHENGDU_HOSPITAL, [*booked, ("arrive", "arrived")])
    for person in people[6:11]:  # at the window, missed
        activity.booking(person, chengdu, CHENGDU_HOSPITAL, [*booked, ("no_show", "no_show")], channel="0100")
    for person in people[11:15]:  # offered from the waitlist and taken
        activity.booking(person, chengdu, CHENGDU_HOSPITAL, [("waitlist_offer", "held"), ("confirm", "booked"),
                                                             ("arrive", "arrived")], from_waitlist=True)
    activity.booking(people[15], chengdu, CHENGDU_HOSPITAL, [*booked, ("cancel", "cancelled")])
    activity.booking(people[0], shenzhen, SHENZHEN_HOSPITAL, [*booked])  # another province
    with platform.db.session() as session:  # a refusal concerns no booking: not in the source
        session.add(BookingEvent(action="refused", actor_kind="resident", channel="0500", at=at(DAY, 9)))
    first = stats.refresh(platform.db, batch=7)  # several batches
    assert first.stored["booking"] == 6 * 3 + 5 * 3 + 4 * 3 + 3 + 2
    assert stats.refresh(platform.db).stored["booking"] == 0  # idempotent: nothing stored twice
    with platform.db.session() as session:
        kinds = dict(session.execute(select(StatEvent.kind, func.count()).where(StatEvent.source == "booking")
                                     .group_by(StatEvent.kind)).all())
    assert kinds == {"hold": 13, "confirm": 13, "waitlist_offer": 4, "waitlist_book": 4, "arrive": 10,
                     "no_show": 5, "cancel": 1}

    def total(indicator: str, by: str | None = None, region: str | None = None) -> stats.Table:
        return national(platform, stats.Query(indicator, by=by, period="total", region=region, start=DAY, end=DAY))

    made = total("bookings_made", "region")
    assert raw_map(made) == {("total", "510000"): 16, ("total", "440000"): 1}  # 12 + 4 from the waitlist
    assert cell_map(made)[("total", "440000")] == "<5"  # small numbers withheld as for every indicator
    assert raw_map(total("bookings_made", "channel")) == {("total", "0500"): 12, ("total", "0100"): 5}
    assert raw_map(total("booking_check_ins")) == {("total", "total"): 10}
    assert cell_map(total("booking_no_shows", "institution")) == {("total", CHENGDU_HOSPITAL): "5"}
    assert raw_map(total("waitlist_successes")) == {("total", "total"): 4}
    assert raw_map(total("bookings_cancelled")) == {("total", "total"): 1}
    assert raw_map(total("bookings_made", region="440000")) == {("total", "total"): 1}
    # A regional operator of Sichuan sees Sichuan's bookings only, through the API.
    operator = make_staff(platform, client, "regional_operator", None, region="510000")
    answer = client.get("/api/v1/statistics/table", headers=operator, params={
        "indicator": "bookings_made", "by": "region", "period": "total", "from": DAY.isoformat(),
        "to": DAY.isoformat()})
    assert answer.status_code == 200, answer.text
    assert [(c["value"], c["total"]) for c in answer.json()["columns"]] == [("510100", "16")]


def test_family_doctor_events_flow_into_the_contract_indicators(platform, client, data, activity) -> None:  # noqa: ANN001
    people = activity.people(8, CHENGDU_HOSPITAL)
    team = activity.team(CHENGDU_HOSPITAL)
    contracts = [activity.contract(p, team, CHENGDU_HOSPITAL) for p in people[:6]]
    for c in contracts:
        activity.contract_event(c, "sign", "window")
        activity.contract_event(c, "service", "follow_up: bp_follow_up")
    activity.contract_event(contracts[0], "service", "check_up: health_check")
    activity.contract_event(contracts[0], "remind")
    next_day, third_day = DAY + timedelta(days=1), DAY + timedelta(days=2)
    # Renewed in its last days: the old contract renewed, a new one signed as a renewal.
    activity.contract_event(contracts[0], "renew", day=next_day)
    activity.contract_event(activity.contract(people[6], team, CHENGDU_HOSPITAL), "sign", "renewal", day=next_day)
    activity.contract_event(contracts[1], "terminate", "moved away", day=next_day)
    activity.contract_event(contracts[2], "expire", "term ended", day=next_day)
    # Renewed after it had ended: from ended, not from active.
    activity.contract_event(contracts[2], "renew", day=third_day)
    activity.contract_event(activity.contract(people[7], team, CHENGDU_HOSPITAL), "sign", "renewal", day=third_day)
    assert stats.refresh(platform.db, batch=5).stored["family_doctor"] == 6 * 2 + 2 + 6
    assert stats.refresh(platform.db).stored["family_doctor"] == 0

    def counts(indicator: str, by: str | None = None, period: str = "total") -> dict[tuple[str, str], int]:
        return raw_map(national(platform, stats.Query(indicator, by=by, period=period, start=DAY, end=third_day)))

    assert counts("contracts_signed", "institution") == {("total", CHENGDU_HOSPITAL): 6}  # renewals are not new
    assert counts("contracts_renewed") == {("total", "total"): 2}
    assert counts("contracts_ended") == {("total", "total"): 2}
    assert counts("follow_ups_delivered", "region") == {("total", "510000"): 6}
    assert counts("check_ups_delivered") == {("total", "total"): 1}
    stock = counts("contracts_by_status", "status", period="day")
    day = {d: {s: stock[(d.isoformat(), s)] for s in stats.CONTRACT_STATUSES} for d in (DAY, next_day, third_day)}
    assert day[DAY] == {"active": 6, "ended": 0, "terminated": 0, "renewed": 0, "changed": 0}
    assert day[next_day] == {"active": 4, "ended": 1, "terminated": 1, "renewed": 1, "changed": 0}
    assert day[third_day] == {"active": 5, "ended": 0, "terminated": 1, "renewed": 2, "changed": 0}
    shown = cell_map(national(platform, stats.Query("contracts_by_status", by="status", period="day", start=DAY,
                                                    end=third_day)))
    assert shown[(DAY.isoformat(), "active")] == "6" and shown[(next_day.isoformat(), "ended")] in ("<5", "x")
    # The console offers the new indicators, labelled in both languages.
    operator = make_staff(platform, client, "regional_operator", None, region="510100")
    client.cookies.set("ehc_staff", operator["Authorization"].split()[1])
    try:
        for lang, label in (("en", "Family-doctor contracts signed"), ("zh", "家庭医生签约量")):
            page = client.get(f"/staff/statistics?indicator=contracts_signed&by=institution&period=month"
                              f"&from={DAY:%Y-%m-01}&to={third_day}&lang={lang}")
            assert page.status_code == 200 and label in page.text, page.text
    finally:
        client.cookies.clear()


# -- tables --------------------------------------------------------------------------------------

def test_cards_issued_by_channel_week_and_month_and_status_stock(platform, data) -> None:  # noqa: ANN001
    window = data.cards(12, institution=CHENGDU_HOSPITAL, channel="0100")
    data.cards(6, institution=CHENGDU_HOSPITAL, channel="0200", day=DAY + timedelta(days=5))
    for ehc_id in window[:6]:
        data.event(ehc_id, "report_lost", "normal", "lost", day=DAY + timedelta(days=1))
    stats.refresh(platform.db)
    month = national(platform, stats.Query("cards_issued", by="channel", period="month",
                                           start=date(2026, 11, 1), end=date(2026, 11, 30)))
    assert cell_map(month) == {("2026-11", "0100"): "12", ("2026-11", "0200"): "6"}
    weeks = national(platform, stats.Query("cards_issued", by="channel", period="week",
                                           start=date(2026, 11, 16), end=date(2026, 11, 29)))
    assert weeks.rows == ["2026-W47", "2026-W48"]
    assert cell_map(weeks)[("2026-W47", "0100")] == "12"
    assert cell_map(weeks)[("2026-W48", "0200")] == "6"
    stock = national(platform, stats.Query("cards_by_status", by="status", period="day",
                                           start=DAY, end=DAY + timedelta(days=1)))
    shown = cell_map(stock)
    assert (shown[(DAY.isoformat(), "normal")], shown[(DAY.isoformat(), "lost")]) == ("12", "0")
    next_day = (DAY + timedelta(days=1)).isoformat()
    assert (shown[(next_day, "normal")], shown[(next_day, "lost")]) == ("6", "6")


def test_card_use_by_region_drills_down_and_an_operator_sees_only_their_region(platform, client, data) -> None:  # noqa: ANN001
    data.cards(1, institution=CHENGDU_HOSPITAL)
    data.uses(20, institution=CHENGDU_HOSPITAL, region="510104")
    data.uses(8, institution=DEYANG_HOSPITAL, region="510603")
    data.uses(30, institution=SHENZHEN_HOSPITAL, region="440305")
    stats.refresh(platform.db)
    country = national(platform, stats.Query("card_uses", by="region", period="total", start=DAY, end=DAY))
    assert cell_map(country) == {("total", "440000"): "30", ("total", "510000"): "28"}
    province = national(platform, stats.Query("card_uses", by="region", period="total", region="510000",
                                              start=DAY, end=DAY))
    assert cell_map(province) == {("total", "510100"): "20", ("total", "510600"): "8"}
    assert province.drill == {"510100": "510100", "510600": "510600"}
    county = national(platform, stats.Query("card_uses", by="region", period="total", region="510104",
                                            start=DAY, end=DAY))
    assert county.columns == [CHENGDU_HOSPITAL]  # below a county: its institutions
    # A regional operator of Sichuan reads Sichuan and below, never Guangdong.
    operator = make_staff(platform, client, "regional_operator", None, region="510000")
    answer = client.get("/api/v1/statistics/table", headers=operator,
                        params={"indicator": "card_uses", "by": "region", "period": "total",
                                "from": DAY.isoformat(), "to": DAY.isoformat()})
    assert answer.status_code == 200, answer.text
    assert answer.json()["region"] == "510000"
    assert [c["value"] for c in answer.json()["columns"]] == ["510100", "510600"]
    refused = client.get("/api/v1/statistics/table", headers=operator,
                         params={"indicator": "card_uses", "region": "440305"})
    assert refused.status_code == 403 and refused.json()["code"] == "region_out_of_scope"
    clerk = make_staff(platform, client, "window_clerk", CHENGDU_HOSPITAL)
    assert client.get("/api/v1/statistics/table", headers=clerk,
                      params={"indicator": "card_uses"}).json()["code"] == "role_not_allowed"
    with platform.db.session() as session:
        purposes = set(session.scalars(select(AuditEvent.purpose).where(AuditEvent.person_id == "-")))
    assert "stats.card_uses" in purposes


def test_small_numbers_are_withheld_in_tables_and_downloads(platform, client, data) -> None:  # noqa: ANN001
    data.cards(1, institution=CHENGDU_HOSPITAL)
    data.uses(3, institution=CHENGDU_HOSPITAL, region="510104", scene="010102")
    data.uses(40, institution=CHENGDU_HOSPITAL, region="510104", scene="0101012")
    data.uses(9, institution=CHENGDU_HOSPITAL, region="510104", scene="010103")
    stats.refresh(platform.db)
    table = national(platform, stats.Query("card_uses", by="care_step", period="total", start=DAY, end=DAY))
    shown = cell_map(table)
    assert shown[("total", "010102")] == "<5"
    assert "x" in shown.values()  # a neighbour withheld too, or 52 - 40 - 9 would give it away
    assert table.protected.shown(("all",)) == "52"
    admin = make_staff(platform, client, "platform_admin", None)
    params = {"indicator": "card_uses", "by": "care_step", "period": "total", "from": DAY.isoformat(),
              "to": DAY.isoformat()}
    as_csv = client.get("/api/v1/statistics/table.csv", headers=admin, params=params)
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    records = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert {r["value"]: r["count"] for r in records}["010102"] == "<5"
    assert "3" not in {r["count"] for r in records}
    as_parquet = client.get("/api/v1/statistics/table.parquet", headers=admin, params=params)
    assert as_parquet.status_code == 200
    rows = pq.read_table(io.BytesIO(as_parquet.content)).to_pylist()
    assert {r["value"]: r["count"] for r in rows} == {r["value"]: r["count"] for r in records}


def test_daily_report_in_the_national_layout(platform, client, data) -> None:  # noqa: ANN001
    data.cards(1, institution=CHENGDU_HOSPITAL)
    data.uses(3, institution=CHENGDU_HOSPITAL, region="510104", scene="010102", channel="0100")
    data.uses(2, institution=CHENGDU_HOSPITAL, region="510104", scene="010102", channel="0100",
              day=DAY + timedelta(days=1))
    data.uses(4, institution=SHENZHEN_HOSPITAL, region="440305", scene="0101012", channel="0200")
    stats.refresh(platform.db)
    admin = make_staff(platform, client, "platform_admin", None)
    answer = client.get(f"/api/v1/statistics/reports/daily/{DAY.isoformat()}", headers=admin)
    assert answer.status_code == 200, answer.text
    assert [(r["institution_id"], r["care_step"], r["channel"], r["uses"]) for r in answer.json()["rows"]] == [
        (SHENZHEN_HOSPITAL, "0101012", "0200", 4), (CHENGDU_HOSPITAL, "010102", "0100", 3)]
    as_csv = client.get(f"/api/v1/statistics/reports/daily/{DAY.isoformat()}.csv", headers=admin)
    assert as_csv.text.splitlines()[0] == ",".join(stats.REPORT_FIELDS)
    operator = make_staff(platform, client, "regional_operator", None, region="510100")
    mine = client.get(f"/api/v1/statistics/reports/daily/{DAY.isoformat()}", headers=operator).json()["rows"]
    assert [r["institution_id"] for r in mine] == [CHENGDU_HOSPITAL]


def test_refused_questions_are_problems(platform, client, data) -> None:  # noqa: ANN001
    admin = make_staff(platform, client, "platform_admin", None)
    for params, code in (({"indicator": "nope"}, "indicator_unknown"),
                         ({"indicator": "card_uses", "by": "document_type"}, "breakdown_unknown"),
                         ({"indicator": "card_uses", "period": "year"}, "period_unknown"),
                         ({"indicator": "card_uses", "region": "99"}, "region_code_invalid"),
                         ({"indicator": "card_uses", "period": "day", "from": "2025-01-01", "to": "2026-01-01"},
                          "period_invalid"),
                         ({"indicator": "card_uses", "from": "2026-12-01", "to": "2026-11-01"}, "period_invalid")):
        answer = client.get("/api/v1/statistics/table", headers=admin, params=params)
        assert answer.status_code in (400, 422), (params, answer.text)
        assert answer.json()["code"] == code, (params, answer.json())


# -- small-number protection, attacked -------------------------------------------------------------

def _published(table: suppression.Protected, rows: int, cols: int) -> tuple[dict, dict]:
    relations = suppression.lines(rows, cols)
    entries = {e for line in relations for e, _ in line}
    return ({e: table.value(e) for e in entries if e not in table.withheld},
            {e: table.withheld[e] for e in entries if e in table.withheld})


def _subtract(published: dict, relations: list) -> dict:
    """The attack by subtraction: a line with one unknown entry gives it; repeat until nothing moves."""
    known = dict(published)
    moved = True
    while moved:
        moved = False
        for line in relations:
            unknown = [(e, c) for e, c in line if e not in known]
            if len(unknown) == 1:
                entry, coefficient = unknown[0]
                known[entry] = -sum(c * known[e] for e, c in line if e in known) // coefficient
                moved = True
    return known


counts = st.one_of(st.just(0), st.integers(1, 4), st.integers(5, 60))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 5).flatmap(lambda r: st.integers(1, 5).flatmap(
    lambda c: st.lists(st.lists(counts, min_size=c, max_size=c), min_size=r, max_size=r))))
def test_no_withheld_small_count_can_be_worked_out(cells: list[list[int]]) -> None:
    rows, cols = len(cells), len(cells[0])
    table = suppression.protect(cells)
    relations = suppression.lines(rows, cols)
    published, withheld = _published(table, rows, cols)
    # Every entry under the threshold is withheld as "<5", and nothing else is shown as "<5".
    for entry in {e for line in relations for e, _ in line}:
        assert (0 < table.value(entry) < 5) == (withheld.get(entry) == suppression.PRIMARY)
    # Subtracting neighbours from totals recovers no withheld entry...
    recovered = _subtract(published, relations)
    assert not set(recovered) & set(withheld)
    # ...nor does the best-informed reader (every published number, and what "<5" and "x" say):
    # each small count keeps at least two possible values.
    for entry, reason in withheld.items():
        if reason == suppression.PRIMARY:
            low, high = suppression.bounds(withheld, published, relations, entry)
            assert high > low, (cells, entry, low, high)
            assert low <= table.value(entry) <= high


# -- the command line ----------------------------------------------------------------------------

def test_ehc_stats_refresh_report_and_export(platform, settings, data, tmp_path) -> None:  # noqa: ANN001
    from factories import run_ehc

    data.cards(1, institution=CHENGDU_HOSPITAL)
    data.uses(6, institution=CHENGDU_HOSPITAL, region="510104", scene="010103", channel="0200")
    done = run_ehc(settings, "stats", "refresh")
    assert done.returncode == 0, done.stderr
    assert "card_use: 6 new events" in done.stdout
    report = run_ehc(settings, "stats", "report", DAY.isoformat())
    assert report.returncode == 0, report.stderr
    assert report.stdout.splitlines() == [",".join(stats.REPORT_FIELDS),
                                          f"{DAY},510104,{CHENGDU_HOSPITAL},010103,0200,99,6"]
    out = tmp_path / "dataset"
    first = run_ehc(settings, "stats", "export", str(out))
    assert first.returncode == 0 and "7 rows exported" in first.stdout, first.stderr
    data.uses(2, institution=DEYANG_HOSPITAL, region="510603")
    stats.refresh(platform.db)
    assert "2 rows exported" in run_ehc(settings, "stats", "export", str(out)).stdout
    assert "0 rows exported" in run_ehc(settings, "stats", "export", str(out)).stdout  # exactly once
    import duckdb

    counted = duckdb.sql(f"SELECT province, count(*) FROM read_parquet('{out}/**/*.parquet', hive_partitioning=1) "
                         "WHERE source = 'card_use' GROUP BY province ORDER BY province").fetchall()
    assert [(str(p), n) for p, n in counted] == [("51", 8)]


# -- the console ----------------------------------------------------------------------------------

def test_console_page_in_both_languages_with_downloads(platform, client, data) -> None:  # noqa: ANN001
    data.cards(1, institution=CHENGDU_HOSPITAL)
    data.uses(30, institution=CHENGDU_HOSPITAL, region="510104", scene="0101012")
    data.uses(2, institution=CHENGDU_HOSPITAL, region="510104", scene="010102")
    stats.refresh(platform.db)
    operator = make_staff(platform, client, "regional_operator", None, region="510100")
    client.cookies.set("ehc_staff", operator["Authorization"].split()[1])
    query = f"indicator=card_uses&by=care_step&period=month&from={DAY:%Y-%m-01}&to={DAY}"
    for lang, title, withheld in (("en", "Statistics", "&lt;5"), ("zh", "统计", "&lt;5")):
        page = client.get(f"/staff/statistics?{query}&lang={lang}")
        assert page.status_code == 200, page.text
        assert f"<h1>{title}</h1>" in page.text and withheld in page.text and "data-figure=" in page.text
        assert 'href="/staff/statistics"' in page.text  # in the navigation
    assert client.get(f"/staff/statistics.csv?{query}").text.count("<5") >= 1
    assert 'id="stats-map"' not in page.text  # a map only where the breakdown is by region
    data.uses(2, institution=CHENGDU_HOSPITAL, region="510105", scene="0101012")
    stats.refresh(platform.db)
    by_region = client.get(f"/staff/statistics?indicator=card_uses&by=region&period=month&from={DAY:%Y-%m-01}&to={DAY}")
    shapes = dict(re.findall(r'data-code="(\d{6})" d="[^"]+" fill="([^"]+)"', by_region.text))
    assert set(shapes) == {"510104", "510105"} and shapes["510105"] == "url(#map-withheld)", shapes
    assert "锦江区 510104" in by_region.text and "青羊区 510105: &lt;5" in by_region.text
    assert client.get(f"/staff/statistics.parquet?{query}").content[:4] == b"PAR1"
    refused = client.get(f"/staff/statistics?{query}&region=440305&lang=en")
    assert refused.status_code == 403 and "outside the region you operate in" in refused.text
    js = client.get("/staff/statistics/plotly.min.js")
    assert js.status_code == 200 and b"plotly" in js.content[:2000].lower()
    clerk = make_staff(platform, client, "window_clerk", CHENGDU_HOSPITAL)
    client.cookies.set("ehc_staff", clerk["Authorization"].split()[1])
    assert client.get("/staff/statistics").status_code == 403
    assert 'href="/staff/statistics"' not in client.get("/staff").text


def test_console_in_chromium(live_server, sqlite_platform, chromium) -> None:  # noqa: ANN001
    """A province's operator opens the console, sees the chart and the protected table, drills down."""
    from factories import ARTIFACTS
    from playwright.sync_api import expect

    from ehc.accounts import service as accounts
    from ehc.web import i18n

    platform = sqlite_platform
    make_institution(platform, CHENGDU_HOSPITAL, uscc=uscc("510100", 1), name="Chengdu Hospital", region_code="510104")
    make_institution(platform, DEYANG_HOSPITAL, uscc=uscc("510600", 2), name="Deyang Hospital", region_code="510603")
    with platform.db.session() as session:
        accounts.create_staff(platform.ctx(session, Actor.system()), username="stats.sc", password="correct horse battery",
                              role="regional_operator", institution_id=None, region_code="510000")
    data = Data(platform)
    data.cards(1, institution=CHENGDU_HOSPITAL)
    data.uses(40, institution=CHENGDU_HOSPITAL, region="510104", scene="0101012")
    data.uses(3, institution=DEYANG_HOSPITAL, region="510603", scene="010102")
    data.uses(25, institution=DEYANG_HOSPITAL, region="510603", scene="0101012")
    stats.refresh(platform.db)
    zh = i18n.catalogue("zh")
    problems: list[str] = []
    context = chromium.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(live_server)
               else (problems.append(f"outside request {route.request.url}"), route.abort()))
    page.goto(f"{live_server}/staff/sign-in?lang=zh")
    page.locator("#username").fill("stats.sc")
    page.locator("#password").fill("correct horse battery")
    page.get_by_role("button", name=zh["staff_sign_in.submit"]).click()
    page.wait_for_url("**/staff")
    page.get_by_role("link", name=zh["nav.staff_statistics"]).click()
    page.wait_for_url("**/staff/statistics")
    expect(page.locator("h1")).to_have_text(zh["statistics.title"])
    page.goto(f"{live_server}/staff/statistics?indicator=card_uses&by=region&period=month&from=2026-11-01&to=2026-11-30")
    expect(page.locator("#stats-chart .main-svg").first).to_be_visible()
    table = page.locator(".stats-table")
    expect(table).to_contain_text("510100")
    expect(table).to_contain_text("510600")
    # The same totals on a map drawn by the platform (no tiles): each region shaded, named, and a link
    # to its own drill-down, as the table's column heads are.
    shapes = page.locator("#stats-map path.map-region")
    expect(shapes).to_have_count(2)
    expect(page.locator('#stats-map path[data-code="510100"] title')).to_have_text("成都市 510100: 40")
    expect(table.get_by_role("link", name="德阳市 510600")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "staff-statistics-zh.png"), full_page=True)
    page.locator('#stats-map a:has(path[data-code="510600"])').click()
    page.wait_for_url(re.compile(r".*region=510600.*"))
    expect(page.locator('#stats-map path[data-code="510603"] title')).to_have_text("旌阳区 510603: 28")
    expect(table).to_contain_text("510603")
    page.goto(f"{live_server}/staff/statistics?indicator=card_uses&by=care_step&period=total&from=2026-11-01"
              "&to=2026-11-30&region=510600&lang=en")
    expect(page.locator(".stats-table td.withheld").filter(has_text="<5").first).to_be_visible()
    expect(page.locator("#stats-chart .main-svg").first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "staff-statistics-en.png"), full_page=True)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert "<5" in open(download.value.path(), encoding="utf-8").read()
    context.close()
    assert problems == []
