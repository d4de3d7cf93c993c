"""The audit trail: who read or changed whose data, as a hash chain that shows any tampering.

Runs on SQLite and PostgreSQL, through the HTTP API, the CLI and the service functions.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import date, datetime, timedelta, timezone

import gmalg
import pytest
from residents import resident_id
from sqlalchemy import func, select, text
from test_cards_api import application
from test_cli import _env, run

from ehc.audit import service as audit
from ehc.audit.models import AuditEvent
from ehc.cards import service as cards
from ehc.kit.codes import Channel
from ehc.kit.context import Actor

PROBLEM = "application/problem+json"


def _register(client, sequence: int = 21, **over) -> str:  # noqa: ANN001
    answer = client.post("/api/v1/cards", json=application(resident_id(born=date(1985, 6, 1), sequence=sequence), **over))
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["ehc_id"]


def _events(platform, **where) -> list[AuditEvent]:  # noqa: ANN001
    with platform.db.session() as session:
        query = select(AuditEvent).order_by(AuditEvent.id)
        for name, value in where.items():
            query = query.where(getattr(AuditEvent, name) == value)
        return list(session.scalars(query))


def _chain(platform) -> None:  # noqa: ANN001
    """Chain what waits in intake, as every reader of the trail does first (search, the access log,
    ``ehc audit verify``) and the sweeper of ``ehc serve``: a commit leaves its events unchained for
    the next batch, so ``seq`` and ``hash`` are read after this, not right after a commit."""
    with platform.db.session() as session:
        audit.chain_pending(session)


def _person_of(platform, ehc_id: str) -> str:  # noqa: ANN001
    with platform.db.session() as session:
        return cards.get_card(platform.ctx(session, Actor.system()), ehc_id).person_id


def _verify(platform, anchor=None) -> audit.ChainReport:  # noqa: ANN001
    with platform.db.session() as session:
        return audit.verify_chain(platform.ctx(session, Actor.system()), anchor=anchor)


def _clerk_actor(institution: str, operator: str = "clerk-a") -> Actor:
    return Actor(kind="staff", channel=Channel.WINDOW, id=f"id-{operator}", institution_id=institution,
                 operator=operator, roles=frozenset({"window_clerk"}))


def _accesses(platform, actor: Actor, person_ids: list[str], purpose: str = "card.view") -> None:  # noqa: ANN001
    """One unit of work per person, as separate requests would make them."""
    for person_id in person_ids:
        with platform.db.session() as session:
            audit.record_access(platform.ctx(session, actor), person_id, "read", purpose)


# -- what is recorded -----------------------------------------------------------------------------

def test_a_clerk_lookup_is_one_read_event_with_purpose_and_institution(client, clerk, platform, institution):
    ehc_id = _register(client)
    person = _person_of(platform, ehc_id)
    before = len(_events(platform))

    number = application(resident_id(born=date(1985, 6, 1), sequence=21))["document"]
    answer = client.post("/api/v1/cards/lookup", json={"document": number},
                         headers={**clerk, "X-Request-ID": "lookup-req-1"})
    assert answer.status_code == 200 and answer.json()["ehc_id"] == ehc_id

    _chain(platform)
    new = _events(platform)[before:]
    # The answer opened name, phone and document number: still one event.
    assert len(new) == 1, [(e.action, e.purpose) for e in new]
    event = new[0]
    assert (event.action, event.purpose, event.person_id) == ("read", "card.lookup", person)
    assert (event.actor_kind, event.actor_role, event.institution_id, event.channel) == (
        "staff", "window_clerk", institution, "0100")
    assert event.operator.startswith("window_clerk-") and event.actor_id
    assert event.request_id == "lookup-req-1" and event.seq == before + 1 and len(event.hash) == 64


def test_lookups_in_one_unit_of_work_leave_one_event_and_a_miss_none(client, platform, institution):
    # The look-up writes its event in the statement that reads the card (PostgreSQL) unless this unit
    # of work has recorded under its purpose already; either way one event per person and purpose,
    # none for a document nobody holds, and none kept when the unit of work rolls back.
    ehc_id = _register(client, sequence=23)
    person = _person_of(platform, ehc_id)
    number = resident_id(born=date(1985, 6, 1), sequence=23)
    before = len(_events(platform))
    with platform.db.session() as session:
        ctx = platform.ctx(session, _clerk_actor(institution))
        for _ in range(2):
            card, holder, details, identifiers = cards.lookup(ctx, "01", number, purpose="card.lookup")
            assert (card.ehc_id, holder.id) == (ehc_id, person) and details.name and identifiers
        cards.holder(ctx, cards.get_card(ctx, ehc_id), purpose="card.lookup")
    new = _events(platform)[before:]
    assert [(e.action, e.purpose, e.person_id) for e in new] == [("read", "card.lookup", person)]
    with platform.db.session() as session:
        ctx = platform.ctx(session, _clerk_actor(institution))
        with pytest.raises(Exception) as missing:
            cards.lookup(ctx, "01", resident_id(sequence=57), purpose="card.lookup")
        assert getattr(missing.value, "code", None) == "card_not_found"
    with pytest.raises(RuntimeError):
        with platform.db.session() as session:
            cards.lookup(platform.ctx(session, _clerk_actor(institution)), "01", number, purpose="card.lookup")
            raise RuntimeError("the request failed after the read")
    assert len(_events(platform)) == before + 1


def test_a_change_is_one_change_event_and_a_failed_request_leaves_nothing(client, clerk, platform):
    ehc_id = _register(client)
    person = _person_of(platform, ehc_id)
    before = len(_events(platform))

    changed = client.patch(f"/api/v1/cards/{ehc_id}", json={"address": "成都市锦江区红星路一段2号"}, headers=clerk)
    assert changed.status_code == 200, changed.text
    lost = client.post(f"/api/v1/cards/{ehc_id}/report-lost", json={"reason": "lost wallet"}, headers=clerk)
    assert lost.status_code == 200, lost.text
    new = _events(platform)[before:]
    # The PATCH read the details, changed them and answered with them: one event, a change.
    assert [(e.action, e.purpose, e.person_id) for e in new] == [
        ("change", "card.modify", person), ("change", "card.lifecycle", person)]

    # Refused after the holder's details were opened (a second report-lost; a known document
    # under another name): the transaction rolls back, and with it its events. No gap, no record.
    assert client.post(f"/api/v1/cards/{ehc_id}/report-lost", json={"reason": "again"}, headers=clerk).status_code == 409
    assert client.post("/api/v1/cards", json=application(name="王大明")).status_code == 409
    assert len(_events(platform)) == before + 2
    assert _verify(platform).intact


def test_a_resident_reading_their_own_data_leaves_no_event(client, platform):
    ehc_id = _register(client)
    person = _person_of(platform, ehc_id)
    before = len(_events(platform))

    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor(kind="resident", channel=Channel.MINI_PROGRAM, id=person))
        _, details, identifiers = cards.holder(ctx, cards.get_card(ctx, ehc_id), purpose="card.view")
        assert details.name == "王小明" and identifiers
    assert len(_events(platform)) == before

    # Another resident (a guardian, say) reading the same card is recorded.
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor(kind="resident", channel=Channel.MINI_PROGRAM, id="F" * 32))
        cards.holder(ctx, cards.get_card(ctx, ehc_id), purpose="card.family")
    new = _events(platform)[before:]
    assert [(e.actor_kind, e.actor_id, e.person_id, e.purpose) for e in new] == [
        ("resident", "F" * 32, person, "card.family")]


def test_a_read_in_a_rolled_back_savepoint_is_recorded_again_later(platform):
    with platform.db.session() as session:
        ctx = platform.ctx(session, _clerk_actor("inst-x"))
        savepoint = session.begin_nested()
        audit.record_access(ctx, "A" * 32, "read", "card.view")
        session.flush()
        savepoint.rollback()
        audit.record_access(ctx, "A" * 32, "read", "card.view")
    _chain(platform)
    assert [(e.seq, e.person_id) for e in _events(platform)] == [(1, "A" * 32)]


def test_savepoints_keep_one_event_per_person_and_purpose_and_undo_what_they_rolled_back(platform):
    """Events are written at once (a Core INSERT): what a savepoint rolled back is forgotten, what a
    released savepoint wrote stays the unit of work's one event, upgraded in place by a change."""
    with platform.db.session() as session:
        ctx = platform.ctx(session, _clerk_actor("inst-x"))
        audit.record_access(ctx, "A" * 32, "read", "card.view")
        savepoint = session.begin_nested()
        audit.record_access(ctx, "A" * 32, "change", "card.view")  # upgraded inside, then rolled back
        audit.record_access(ctx, "B" * 32, "read", "card.view")
        savepoint.rollback()
        with session.begin_nested():  # released: its event belongs to the transaction
            with session.begin_nested():
                audit.record_access(ctx, "C" * 32, "read", "card.view")
        audit.record_access(ctx, "C" * 32, "change", "card.view")
        audit.record_access(ctx, "B" * 32, "read", "card.view")
        audit.record_access(ctx, "A" * 32, "read", "card.view")
        session.commit()
        audit.record_access(ctx, "X" * 32, "read", "card.view")
        session.rollback()  # the whole transaction: nothing, and nothing remembered
        audit.record_access(ctx, "A" * 32, "read", "card.view")
        audit.record_access(ctx, "A" * 32, "change", "card.view")
        session.commit()
        audit.record_access(ctx, "A" * 32, "read", "card.view")  # a new unit of work: a new event
    _chain(platform)
    assert [(e.seq, e.person_id[0], e.action) for e in _events(platform)] == [
        (1, "A", "read"), (2, "C", "change"), (3, "B", "read"), (4, "A", "change"), (5, "A", "read")]


def test_purpose_and_action_are_checked():
    with pytest.raises(ValueError):
        audit.check_purpose("Card View")
    with pytest.raises(ValueError):
        audit.check_purpose("x" * 41)


# -- the chain ------------------------------------------------------------------------------------

def test_the_chain_is_gap_free_and_recomputable_with_an_independent_sm3(client, clerk, platform):
    for sequence in range(3):
        ehc_id = _register(client, sequence)
        assert client.get(f"/api/v1/cards/{ehc_id}", headers=clerk).status_code == 200
    _chain(platform)
    events = sorted(_events(platform), key=lambda e: e.seq)
    assert [e.seq for e in events] == list(range(1, len(events) + 1)) and len(events) >= 6
    prev = "0" * 64
    for e in events:
        # The format documented in docs/security.md, rebuilt here by hand and hashed with gmalg.
        body = {"v": 1, "seq": e.seq, "at": e.at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "action": e.action, "purpose": e.purpose, "person_id": e.person_id, "actor_kind": e.actor_kind,
                "actor_id": e.actor_id, "actor_role": e.actor_role, "institution_id": e.institution_id,
                "operator": e.operator, "channel": e.channel, "request_id": e.request_id}
        encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        h = gmalg.SM3()
        h.update(bytes.fromhex(prev) + encoded)
        assert e.prev_hash == prev and e.hash == h.value().hex()
        prev = e.hash
    report = _verify(platform)
    assert report.intact and report.events == len(events) and report.head_hash == prev


def _six_events(platform) -> list[AuditEvent]:  # noqa: ANN001
    _accesses(platform, _clerk_actor("inst-x"), [f"{i:032X}" for i in range(1, 7)])
    _chain(platform)
    return sorted(_events(platform), key=lambda e: e.seq)


TAMPERING = {
    # name: (SQL, the seq verify must name, the problem it must report)
    "edit a field": ("UPDATE audit_events SET institution_id = 'inst-y' WHERE seq = 3", 3, "edited"),
    "edit the time": ("UPDATE audit_events SET at = at + INTERVAL '1 hour' WHERE seq = 4", 4, "edited"),
    "delete a row": ("DELETE FROM audit_events WHERE seq = 3", 3, "missing"),
    "delete and renumber": ("DELETE FROM audit_events WHERE seq = 2; UPDATE audit_events SET seq = seq + 100 WHERE "
                            "seq > 2; UPDATE audit_events SET seq = seq - 101 WHERE seq > 100", 2, "reordered"),
    "swap two rows' seq": ("UPDATE audit_events SET seq = -1 WHERE seq = 4; UPDATE audit_events SET seq = 4 WHERE "
                           "seq = 5; UPDATE audit_events SET seq = 5 WHERE seq = -1", 4, "reordered"),
    "rewrite a hash": ("UPDATE audit_events SET hash = :forged WHERE seq = 2", 3, "relinked"),
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_tampering_is_detected_and_the_seq_named(platform, settings, tampering):
    _six_events(platform)
    assert _verify(platform).intact
    sql, seq, problem = TAMPERING[tampering]
    if platform.db.engine.dialect.name == "sqlite":
        sql = sql.replace("at + INTERVAL '1 hour'", "datetime(at, '+1 hour')")
    with platform.db.engine.begin() as conn:
        forged = None
        if ":forged" in sql:  # a hash rewritten so that seq 2 looks self-consistent after an edit
            conn.execute(text("UPDATE audit_events SET purpose = 'card.lookup' WHERE seq = 2"))
            row = conn.execute(select(AuditEvent.__table__).where(AuditEvent.seq == 2)).mappings().one()
            forged = audit.link(row["prev_hash"], row)
        for statement in sql.split("; "):
            conn.execute(text(statement), {"forged": forged} if forged else {})
    report = _verify(platform)
    assert not report.intact and (report.broken_seq, report.problem) == (seq, problem), report

    done = run(_env(settings), "audit", "verify", ok=False)
    assert done.returncode == 1 and f"chain broken at seq {seq}" in done.stderr, done.stderr


def test_verify_cli_and_an_anchor_catch_a_cut_off_end(platform, settings):
    events = _six_events(platform)
    done = run(_env(settings), "audit", "verify")
    assert "chain intact: 6 events" in done.stdout and events[-1].hash in done.stdout
    anchor = f"6:{events[-1].hash}"
    assert run(_env(settings), "audit", "verify", "--anchor", anchor).returncode == 0

    # Deleting from the end leaves a shorter chain that is intact on its own; the anchor shows it.
    with platform.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq >= 5"))
    assert _verify(platform).intact
    report = _verify(platform, anchor=(6, events[-1].hash))
    assert (report.intact, report.broken_seq, report.problem) == (False, 5, "truncated")
    done = run(_env(settings), "audit", "verify", "--anchor", anchor, ok=False)
    assert done.returncode == 1 and "truncated" in done.stderr
    assert run(_env(settings), "audit", "verify", "--anchor", "six", ok=False).returncode == 2


def test_events_left_in_intake_are_chained_by_the_next_chaining(platform):
    # A session joined to an outer transaction never calls Session.commit: its events wait in intake.
    _intake_only(platform, "B" * 32)
    assert _unchained(platform) == 1
    assert _verify(platform).unchained == 1
    _accesses(platform, _clerk_actor("inst-x"), ["C" * 32])
    # An audited commit never chains: its event is committed with the work, unchained, and the next
    # batch (here a reader of the trail, which chains first) links both, in intake order.
    assert _unchained(platform) == 2
    with platform.db.session() as session:
        found = audit.search(platform.ctx(session, Actor.system()), audit.Filters()).events
    assert [(e.seq, e.person_id) for e in found] == [(2, "C" * 32), (1, "B" * 32)]
    assert _unchained(platform) == 0
    assert [(e.seq, e.person_id) for e in sorted(_events(platform), key=lambda e: e.seq)] == [
        (1, "B" * 32), (2, "C" * 32)]
    assert _verify(platform).intact


def _unchained(platform) -> int:  # noqa: ANN001
    with platform.db.session() as session:
        return session.scalar(select(func.count()).where(AuditEvent.seq.is_(None)))


def _intake_only(platform, person_id: str) -> None:  # noqa: ANN001
    """An event committed by a session that never calls Session.commit (joined to an outer transaction)."""
    from sqlalchemy.orm import Session

    with platform.db.engine.connect() as conn, conn.begin():
        with Session(bind=conn) as session:
            audit.record_access(platform.ctx(session, _clerk_actor("inst-x")), person_id, "read", "card.view")
            session.flush()


# PostgreSQL only: SQLite serialises writers itself, so there is no chain lock to find taken.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_commit_does_not_wait_for_the_chain_lock(platform):
    assert platform.db.engine.dialect.name == "postgresql"
    holder = platform.db.engine.connect()
    holder.begin()
    holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": audit.CHAIN_LOCK_KEY})
    try:
        started = time.perf_counter()
        _accesses(platform, _clerk_actor("inst-x"), ["D" * 32])
        assert time.perf_counter() - started < 5  # committed without queueing behind the holder
        assert _unchained(platform) == 1  # ... and left its event for the next chaining
    finally:
        holder.rollback()
        holder.close()
    _accesses(platform, _clerk_actor("inst-x"), ["E" * 32])
    assert _unchained(platform) == 2  # a commit never chains: the next batch does
    _chain(platform)
    assert _unchained(platform) == 0
    assert [(e.seq, e.person_id) for e in sorted(_events(platform), key=lambda e: e.seq)] == [
        (1, "D" * 32), (2, "E" * 32)]
    assert _verify(platform).intact


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_reader_waits_for_a_chaining_under_way_and_sees_every_committed_event(platform):
    # Every audited commit leaves its event to the next batch; a reader must not answer from a
    # snapshot that misses events another process is chaining right now (its COMMIT not yet seen).
    _accesses(platform, _clerk_actor("inst-x"), ["H" * 32])
    holder = platform.db.engine.connect()
    holder.begin()
    holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": audit.CHAIN_LOCK_KEY})  # a sweeper mid-batch
    found: list = []

    def read() -> None:
        with platform.db.session() as session:
            found.extend((e.seq, e.person_id) for e in audit.search(platform.ctx(session, Actor.system()),
                                                                      audit.Filters()).events)

    reader = threading.Thread(target=read)
    try:
        reader.start()
        reader.join(0.5)
        assert reader.is_alive() and not found  # waiting for the chaining under way, not answering without it
    finally:
        holder.rollback()
        holder.close()
    reader.join(10)
    assert found == [(1, "H" * 32)]
    assert _verify(platform).intact


def test_the_sweeper_chains_what_was_left_waiting(platform):
    _intake_only(platform, "G" * 32)
    assert _unchained(platform) == 1
    sweeper = audit.start_sweeper(platform.db, interval=0.05)
    try:
        deadline = time.monotonic() + 10
        while _unchained(platform) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sweeper.stop()
    assert _unchained(platform) == 0 and _verify(platform).intact


def test_concurrent_appends_leave_a_gap_free_intact_chain(platform):
    writers, each = 8, 15
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(each):
                with platform.db.session() as session:
                    ctx = platform.ctx(session, _clerk_actor(f"inst-{n}", f"clerk-{n}"))
                    audit.record_access(ctx, f"{n:016X}{i:016X}", "read", "card.view")
                    audit.record_access(ctx, f"{n:016X}{i:016X}", "change", "card.modify")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    # A commit that found the chain lock taken left its events for the next chaining: do it, as
    # `ehc audit verify` and the server's sweeper do.
    with platform.db.session() as session:
        audit.chain_pending(session)
    events = _events(platform)
    assert sorted(e.seq for e in events) == list(range(1, 2 * writers * each + 1))
    report = _verify(platform)
    assert report.intact and report.events == 2 * writers * each


# -- reading the trail ----------------------------------------------------------------------------

def test_auditors_search_with_filters_and_pages(client, platform, institution):
    from factories import make_staff

    auditor = make_staff(platform, client, "auditor", None)
    clerk = make_staff(platform, client, "window_clerk", institution)
    a, b = _register(client, 31), _register(client, 32)
    for ehc_id in (a, b, a):
        assert client.get(f"/api/v1/cards/{ehc_id}", headers=clerk).status_code == 200
    _accesses(platform, _clerk_actor("inst-other", "nurse-9"), [_person_of(platform, a)], "card.lookup")

    def search(**params) -> dict:  # noqa: ANN003
        answer = client.get("/api/v1/audit/events", params=params, headers=auditor)
        assert answer.status_code == 200, answer.text
        return answer.json()

    about_a = search(ehc_id=a)["items"]
    assert {e["person_id"] for e in about_a} == {_person_of(platform, a)}
    assert [e["seq"] for e in about_a] == sorted((e["seq"] for e in about_a), reverse=True)  # newest first
    views = search(ehc_id=a, purpose="card.view")["items"]
    assert len(views) == 2 and all(e["institution_id"] == institution and e["actor_role"] == "window_clerk"
                                   for e in views)
    other = search(institution_id="inst-other")["items"]
    assert [(e["operator"], e["purpose"]) for e in other] == [("nurse-9", "card.lookup")]
    assert search(actor_id="id-nurse-9")["items"] == other
    assert {e["action"] for e in search(action="change")["items"]} == {"change"}

    everything = search(limit=200)["items"]
    first = search(limit=3)
    second = search(limit=3, before=first["next_before"])
    assert [e["seq"] for e in first["items"] + second["items"]] == [e["seq"] for e in everything][:6]
    now = datetime.now(timezone.utc)
    assert len(search(since=(now - timedelta(minutes=5)).isoformat(), limit=200)["items"]) == len(everything)
    assert search(until=(now - timedelta(minutes=5)).isoformat())["items"] == []

    naive = client.get("/api/v1/audit/events", params={"since": "2026-01-01T00:00:00"}, headers=auditor)
    assert naive.status_code == 422 and naive.json()["code"] == "time_zone_required"
    unknown = client.get("/api/v1/audit/events", params={"ehc_id": "0" * 64}, headers=auditor)
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith(PROBLEM)


def test_only_auditors_and_platform_admins_search(client, platform, institution):
    from factories import make_staff

    assert client.get("/api/v1/audit/events", headers=make_staff(platform, client, "platform_admin", None)).status_code == 200
    for role, inst in (("window_clerk", institution), ("doctor", institution), ("institution_admin", institution),
                       ("regional_operator", None)):
        answer = client.get("/api/v1/audit/events", headers=make_staff(platform, client, role, inst))
        assert answer.status_code == 403, role
        assert answer.headers["content-type"].startswith(PROBLEM) and answer.json()["code"] == "role_not_allowed"
    anonymous = client.get("/api/v1/audit/events")
    assert anonymous.status_code == 401 and anonymous.headers["content-type"].startswith(PROBLEM)
    # Staff have no access log of their own: theirs is not a resident's data.
    staff = client.get("/api/v1/me/access-log", headers=make_staff(platform, client, "auditor", None))
    assert staff.status_code == 403 and staff.json()["code"] == "resident_only"


def test_a_resident_sees_who_accessed_their_data_and_their_family_members(client, clerk, platform, institution):
    from test_residents import sign_in

    guardian = _register(client, 41)  # phone 13912345678, which the resident signs in with
    child = client.post(f"/api/v1/cards/{guardian}/family", headers=clerk, json={
        "name": "王小红", "document": {"type": "01", "number": resident_id(born=date(2015, 9, 1), sequence=3, male=False)},
        "sex": "2", "birth_date": "2015-09-01", "relation": "child"}).json()["ehc_id"]
    stranger = _register(client, 42, phone="13700001111")
    assert client.get(f"/api/v1/cards/{guardian}", headers=clerk).status_code == 200
    me = _person_of(platform, guardian)

    # The service function, as the resident's page uses it.
    with platform.db.session() as session:
        page = audit.access_log_for_person(platform.ctx(session, Actor.system()), me)
    assert page.events[0].purpose == "card.view" and page.events[0].institution_id == institution
    assert {e.person_id for e in page.events} == {me}

    resident = sign_in(client, platform)
    count = len(_events(platform))
    log = client.get("/api/v1/me/access-log", headers=resident)
    assert log.status_code == 200, log.text
    newest = log.json()["items"][0]
    assert (newest["purpose"], newest["action"], newest["institution_id"], newest["actor_role"]) == (
        "card.view", "read", institution, "window_clerk")
    assert newest["operator"].startswith("w*") and "window_clerk-" not in log.text  # masked
    assert newest["purpose_label"] and newest["ref"] == page.events[0].seq
    assert {e["action"] for e in log.json()["items"]} == {"read", "change"}  # registered, bound, viewed
    # Reading one's own card and one's own log is not an access to record.
    assert client.get("/api/v1/me/card", headers=resident).status_code == 200
    assert len(_events(platform)) == count

    kid = client.get("/api/v1/me/access-log", params={"member": child}, headers=resident)
    assert kid.status_code == 200 and {e["purpose"] for e in kid.json()["items"]} >= {"card.family", "card.register"}
    # The guardian looking at the child's card is itself an access to the child's data.
    assert client.get(f"/api/v1/me/family/{child}", headers=resident).status_code == 200
    guardian_look = client.get("/api/v1/me/access-log", params={"member": child}, headers=resident).json()["items"][0]
    assert (guardian_look["actor_kind"], guardian_look["purpose"], guardian_look["operator"]) == (
        "resident", "card.family", None)
    # Anyone else's card is "not found", as everywhere in the resident API.
    refused = client.get("/api/v1/me/access-log", params={"member": stranger}, headers=resident)
    assert refused.status_code == 404 and refused.json()["code"] == "card_not_found"
    assert client.get("/api/v1/me/access-log").status_code == 401


def test_cli_search_mirrors_the_api(client, clerk, platform, settings):
    ehc_id = _register(client, 51)
    assert client.get(f"/api/v1/cards/{ehc_id}", headers=clerk).status_code == 200
    out = run(_env(settings), "audit", "search", "--ehc-id", ehc_id, "--purpose", "card.view", "--json").stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 1 and rows[0]["person_id"] == _person_of(platform, ehc_id) and rows[0]["actor_role"] == "window_clerk"
    table = run(_env(settings), "audit", "search", "--action", "change").stdout
    assert "card.register" in table and "card.view" not in table
    bad = run(_env(settings), "audit", "search", "--since", "2026-01-01", ok=False)
    assert bad.returncode == 2 and "time_zone_required" in bad.stderr
