"""The demo province (`ehc demo`): built through the card services, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import os
import random
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from factories import resident_sign_in
from payments_world import services
from sqlalchemy import func, select
from stdnum import numdb
from stdnum.cn import ric, uscc

from ehc.accounts.models import StaffAccount
from ehc.cards import service as cards
from ehc.cards.models import Card, CardEvent, FamilyBinding
from ehc.demo import (
    ADMIN_PASSWORD,
    CLERK_PASSWORD,
    INSTITUTIONS,
    OPERATOR_PASSWORD,
    REFERENCE_DAY,
    REGIONS,
    build_demo,
    make_uscc,
    organisation_code,
    plan_demo,
    resident_id_number,
)
from ehc.institutions.models import Institution
from ehc.institutions.service import create_institution
from ehc.kit.clock import CHINA
from ehc.kit.codes import Channel
from ehc.kit.context import Actor
from ehc.kit.errors import Conflict, Invalid
from ehc.mpi.models import MatchReview, Person, PersonIdentifier
from ehc.payments.models import Bill
from ehc.platform import Platform
from ehc.qr.models import CardUse

RESIDENTS = 60
SEED = 7


def counts(platform: Platform) -> dict[str, int]:
    with platform.db.session() as session:
        return {model.__tablename__: session.scalar(select(func.count()).select_from(model))
                for model in (Institution, StaffAccount, Person, Card, CardEvent, FamilyBinding)}


def sign_in(client, username: str, password: str) -> dict[str, str]:  # noqa: ANN001
    answer = client.post("/api/v1/auth/staff/token", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


# -- the generators, without a database -----------------------------------------------------------

def test_document_generators_agree_with_independent_implementations():
    rng = random.Random(1)
    for _ in range(2000):
        region = rng.choice(list(REGIONS))
        born = date(rng.randint(1935, 2022), rng.randint(1, 12), rng.randint(1, 28))
        male = rng.random() < 0.5
        number = resident_id_number(region, born, rng.randrange(500), male)
        assert ric.calc_check_digit(number) == number[-1] and ric.get_birth_date(number) == born
        assert int(number[16]) % 2 == male
    # GB 11714 organisation code of a real USCC (the example in python-stdnum's documentation).
    assert organisation_code("60003734") == "600037341"
    assert make_uscc("91", "110000", "60003734") == "91110000600037341L"


def test_region_table_matches_gb_t_2260():
    """Every code of the table names the same district in python-stdnum's copy of GB/T 2260."""
    table = numdb.get("cn/loc")
    for code, (city, district, _) in REGIONS.items():
        def name(region: str) -> str:
            return re.sub(r"^\[[0-9-]+\]", "", dict(table.info(region))[region[2:]]["county"])

        assert dict(table.info(code))[code[:2]] == {"province": "四川省"}
        assert name(code) == district and name(code[:4] + "00") == city


def test_the_plan_is_reproducible_and_realistic():
    plan = plan_demo(RESIDENTS, SEED)
    assert plan.residents == plan_demo(RESIDENTS, SEED).residents and plan.babies == plan_demo(RESIDENTS, SEED).babies
    assert [r.document_number for r in plan_demo(RESIDENTS, SEED + 1).residents] != [r.document_number for r in plan.residents]
    now = REFERENCE_DAY
    numbers = [r.document_number for r in plan.residents]
    assert len(set(numbers)) == len(numbers) == RESIDENTS
    for r in plan.residents:
        if r.document_type == "01":
            assert ric.calc_check_digit(r.document_number) == r.document_number[-1]
            assert r.document_number[:6] == r.region_code in REGIONS
            assert date(1935, 1, 1) <= r.birth_date <= date(2022, 12, 31)
            assert ric.get_birth_date(r.document_number) == r.birth_date
            assert int(r.document_number[16]) % 2 == (r.sex == "1")
        else:
            assert re.fullmatch(r"E[0-9]{8}", r.document_number)
        if r.relation == "child":
            assert r.surname == plan.residents[r.guardian].surname
    assert sum(r.document_type == "03" for r in plan.residents) == 5
    assert {r.relation for r in plan.residents} == {None, "child", "parent", "spouse"}
    assert any(r.relation == "child" and r.age_on(now) < 18 for r in plan.residents)
    assert any(r.relation == "parent" and r.age_on(now) >= 68 for r in plan.residents)
    twins = [b for b in plan.babies if b.multiple_birth]
    assert [b.birth_order for b in twins] == [1, 2] and len({(b.parent, b.birth_date) for b in twins}) == 1
    assert any(b.birth_certificate for b in plan.babies) and any(not b.birth_certificate for b in plan.babies)
    assert all(re.fullmatch(r"[A-Z][0-9]{9}", b.birth_certificate) for b in plan.babies if b.birth_certificate)


# -- the demo, built --------------------------------------------------------------------------------

# Building a demo costs ten password hashes (argon2), so two tests each build one and run several
# checks on it.

@pytest.fixture
def demo(platform: Platform):
    summary = build_demo(platform, RESIDENTS, SEED)
    assert not summary.skipped
    return summary


def test_demo_province(platform, client, demo):
    assert not demo.payers and "EHC_INSURANCE_URL" in demo.payments_skipped  # no services configured here
    check_institutions(platform, demo)
    check_one_card_each(platform, client, demo)
    check_card_states(platform, demo)
    check_staff_sign_in(platform, client, demo)
    check_activity(platform, client, demo)
    check_if_empty_adds_nothing(platform, demo)


def test_demo_families(platform, client, demo):
    check_families_and_limit(platform, client, demo)
    check_twins(platform, client, demo)


def check_institutions(platform, demo) -> None:
    with platform.db.session() as session:
        rows = session.scalars(select(Institution)).all()
    assert len(rows) == len(INSTITUTIONS) == len(demo.institutions) == 10
    assert all(uscc.is_valid(i.uscc) and len(i.uscc) == 18 and i.region_code in REGIONS for i in rows)
    assert {i.kind for i in rows} == {"hospital", "community_centre", "clinic", "pharmacy"}
    assert {i.level for i in rows if i.kind == "hospital"} >= {"3A", "2A"}
    assert all(i.uscc[2:8] == i.region_code for i in rows)


def check_one_card_each(platform, client, demo) -> None:
    plan = plan_demo(RESIDENTS, SEED)
    n = counts(platform)
    assert demo.residents == RESIDENTS and demo.newborns == len(plan.babies) == 4
    assert n["persons"] == n["cards"] == demo.cards == RESIDENTS + len(plan.babies)
    with platform.db.session() as session:
        assert session.scalar(select(func.count(func.distinct(Card.person_id)))) == n["cards"]
        registered = Counter(session.scalars(select(CardEvent.ehc_id).where(CardEvent.action == "register")))
        assert set(registered.values()) == {1} and len(registered) == n["cards"]
        channels = Counter(session.scalars(select(Card.channel)))
        window = session.scalars(select(Card).where(Card.channel.in_([Channel.WINDOW, Channel.KIOSK]))).all()
    assert set(channels) >= {"0100", "0200", "0401", "0402", "0500"} and channels == Counter(demo.by_channel)
    assert all(c.institution_id for c in window) and all(c.operator for c in window if c.channel == "0100")

    # A clerk finds every resident's card by their document; a second registration returns it.
    clerk = sign_in(client, "clerk", CLERK_PASSWORD)
    seen = set()
    for r in plan.residents:
        found = client.post("/api/v1/cards/lookup", headers=clerk,
                            json={"document": {"type": r.document_type, "number": r.document_number}})
        assert found.status_code == 200, found.text
        card = found.json()
        assert card["holder"]["sex"] == r.sex and card["holder"]["birth_year"] == r.birth_date.year
        seen.add(card["ehc_id"])
    assert len(seen) == RESIDENTS
    again = client.post("/api/v1/cards", json={"name": plan.residents[0].name, "document": {
        "type": plan.residents[0].document_type, "number": plan.residents[0].document_number.lower()}})
    assert again.status_code == 200 and again.json()["created"] is False and again.json()["ehc_id"] in seen
    assert counts(platform)["cards"] == n["cards"]


def check_activity(platform, client, demo) -> None:
    """Issue 10: the tour's later pages had nothing to show. Card uses of the last days (several
    institutions, channels, care steps), terminals at the admin's hospital, and review pairs."""
    now = datetime.now(UTC)
    with platform.db.session() as session:
        uses = session.scalars(select(CardUse)).all()
        statuses = {c.ehc_id: c.status for c in session.scalars(select(Card))}
        reviews = session.scalars(select(MatchReview).where(MatchReview.status == "open")).all()
    assert len(uses) == sum(demo.card_uses.values()) >= 12
    assert len({u.institution_id for u in uses}) >= 3 and len({u.scene for u in uses}) >= 4
    assert set(demo.card_uses) >= {"0100", "0200", "0300"} and {u.channel for u in uses} == set(demo.card_uses)
    assert all(now - timedelta(days=8) < u.at.replace(tzinfo=u.at.tzinfo or UTC) < now for u in uses)
    assert len({u.at.astimezone(CHINA).date() if u.at.tzinfo else u.at.date() for u in uses}) >= 3
    assert all(u.code_type == 0 and not u.replay and statuses[u.ehc_id] == "normal" for u in uses)
    assert all(u.terminal_id for u in uses if u.channel in ("0100", "0200", "0300"))
    assert len(reviews) == demo.review_pairs >= 2 and all(r.source == "realtime" for r in reviews)

    # What the demo admin sees: terminals of every role, and the hospital's card uses.
    admin = sign_in(client, "admin", ADMIN_PASSWORD)
    hospital = demo.institutions[0][0]
    terminals = client.get(f"/api/v1/institutions/{hospital}/terminals", headers=admin)
    assert terminals.status_code == 200, terminals.text
    assert {t["role"] for t in terminals.json()} == {"window", "kiosk", "workstation"} and len(terminals.json()) >= 5
    seen = client.get("/api/v1/card-uses", headers=admin)
    assert seen.status_code == 200, seen.text
    assert seen.json()["items"] and all(u["institution_id"] == hospital for u in seen.json()["items"])

    # What the operator sees: the pairs, on the review queue.
    operator = sign_in(client, "operator", OPERATOR_PASSWORD)
    queue = client.get("/api/v1/mpi/reviews", headers=operator)
    assert queue.status_code == 200, queue.text
    assert len([r for r in queue.json()["items"] if r["status"] == "open"]) == demo.review_pairs


def check_families_and_limit(platform, client, demo) -> None:
    plan = plan_demo(RESIDENTS, SEED)
    limit = platform.settings.family_limit
    with platform.db.session() as session:
        per_guardian = Counter(session.scalars(select(FamilyBinding.guardian_person_id)))
        relations = Counter(session.scalars(select(FamilyBinding.relation)))
    assert sum(per_guardian.values()) == demo.family_bindings and len(per_guardian) == demo.guardians
    assert max(per_guardian.values()) == limit  # one family is full, none beyond
    assert set(relations) == {"child", "parent", "spouse"}
    adults = sum(r.document_type == "01" and r.age_on(REFERENCE_DAY) >= 18 for r in plan.residents)
    assert 0.25 <= demo.guardians / adults <= 0.45  # about a third of adults bind family

    full = next(e for e in demo.examples if e.label == "guardian whose family is full")
    clerk = sign_in(client, "clerk", CLERK_PASSWORD)
    family = client.get(f"/api/v1/cards/{full.ehc_id}/family", headers=clerk)
    assert family.status_code == 200 and len(family.json()) == limit
    assert len({m["card"]["ehc_id"] for m in family.json()}) == limit
    extra = client.post(f"/api/v1/cards/{full.ehc_id}/family", headers=clerk, json={
        "name": "王小新", "relation": "child",
        "document": {"type": "01", "number": resident_id_number("510104", date(2015, 5, 5), 321, True)}})
    assert extra.status_code == 409 and extra.json()["code"] == "family_limit_reached"


def check_twins(platform, client, demo) -> None:
    plan = plan_demo(RESIDENTS, SEED)
    twins = [b for b in plan.babies if b.multiple_birth]
    parent = next(e for e in demo.examples if e.label == "parent of twins")
    assert parent.document_number == plan.residents[twins[0].parent].document_number
    family = client.get(f"/api/v1/cards/{parent.ehc_id}/family",
                        headers=sign_in(client, "clerk", CLERK_PASSWORD)).json()
    bound = [m for m in family if m["card"]["holder"]["birth_year"] == twins[0].birth_date.year]
    babies = [m["card"] for m in bound]
    assert len(babies) == 2 and babies[0]["ehc_id"] != babies[1]["ehc_id"]
    assert all(m["relation"] == "child" for m in bound)
    # Registering the second twin again finds the same card: parent + birth date + birth order.
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system())
        again = cards.register_newborn(ctx, parent.ehc_id, cards.Newborn(
            sex=twins[1].sex, birth_date=twins[1].birth_date, name=twins[1].name, birth_order=2, multiple_birth=True))
        assert again.created is False and again.card.ehc_id in {b["ehc_id"] for b in babies}
        systems = Counter(session.scalars(select(PersonIdentifier.system)))
    with_certificate = sum(1 for b in plan.babies if b.birth_certificate)
    assert systems["doc:08"] == with_certificate >= 1 and systems["newborn"] == len(plan.babies) - with_certificate
    assert systems["doc:01"] == RESIDENTS - 5 and systems["doc:03"] == 5


def check_card_states(platform, demo) -> None:
    with platform.db.session() as session:
        statuses = Counter(session.scalars(select(Card.status)))
        reissued = session.scalars(select(Card).where(Card.sequence == 2)).all()
        reasons = set(session.scalars(select(CardEvent.reason).where(CardEvent.action.in_(["cancel", "report_lost", "reject"]))))
    assert statuses == Counter(demo.by_status)
    assert statuses["lost"] == 2 and statuses["cancelled"] == 1 and statuses["rejected"] == 1
    assert statuses["pending_review"] == 3 and statuses["normal"] == demo.cards - 7
    assert len(reissued) == 1 and reissued[0].status == "normal"
    assert None not in reasons and len(reasons) == 3


def check_staff_sign_in(platform, client, demo) -> None:
    printed = {s.username: s for s in demo.staff}
    for username, password, role in (("clerk", CLERK_PASSWORD, "window_clerk"),
                                     ("admin", ADMIN_PASSWORD, "institution_admin"),
                                     ("operator", OPERATOR_PASSWORD, "platform_admin")):
        assert printed[username].password == password and printed[username].role == role
        sign_in(client, username, password)
    assert client.post("/api/v1/auth/staff/token", json={"username": "clerk", "password": "wrong-password"}).status_code == 401
    with platform.db.session() as session:
        clerk = session.scalar(select(StaffAccount).where(StaffAccount.username == "clerk"))
        first = session.scalar(select(Institution).where(Institution.name == INSTITUTIONS[0].name))
        window_cards = session.scalars(select(Card).where(Card.operator == "clerk")).all()
    assert clerk.institution_id == first.id and printed["clerk"].institution == first.name
    assert all(c.institution_id == first.id for c in window_cards)


def check_if_empty_adds_nothing(platform, demo) -> None:
    before = counts(platform)
    assert build_demo(platform, RESIDENTS, SEED, if_empty=True).skipped
    with pytest.raises(Conflict) as refused:
        build_demo(platform, RESIDENTS, SEED)
    assert refused.value.code == "demo_not_empty"
    assert counts(platform) == before


def test_demo_gives_residents_bills_when_the_payment_services_answer(platform, client, tmp_path):
    """With the insurance service and the bank running (as ``make run`` starts them), a few demo
    residents are insured, hold a bank account, have both linked and have open bills to pay."""
    with services(tmp_path / "services") as (insurer, bank):
        settings = dataclasses.replace(platform.settings, insurance_url=insurer.url, bank_url=bank.url)
        summary = build_demo(dataclasses.replace(platform, settings=settings), RESIDENTS, SEED)
    assert summary.payments_skipped is None and len(summary.payers) == 3, summary.payments_skipped
    assert {p.scheme for p in summary.payers} == {"employee", "resident"}
    payer = summary.payers[0]
    headers = resident_sign_in(client, platform, payer.phone)
    bills = client.get("/api/v1/me/bills", headers=headers).json()
    assert len(bills) == payer.bills and all(b["status"] == "open" for b in bills)
    assert sum(b["total_fen"] for b in bills) == payer.owed_fen
    assert {b["institution_name"] for b in bills} == {INSTITUTIONS[0].name}
    links = client.get("/api/v1/me/payments/links", headers=headers)
    assert links.status_code == 200 and {link["kind"] for link in links.json()} == {"insurance", "bank"}
    with platform.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Bill)) == sum(p.bills for p in summary.payers)


def test_demo_leaves_payments_out_when_a_service_does_not_answer(platform):
    settings = dataclasses.replace(platform.settings, insurance_url="http://127.0.0.1:9", bank_url="http://127.0.0.1:9")
    summary = build_demo(dataclasses.replace(platform, settings=settings), RESIDENTS, SEED)
    assert summary.cards and not summary.payers
    assert "insurance service at http://127.0.0.1:9 does not answer" in summary.payments_skipped


def test_demo_refuses_production_and_silly_sizes(platform):
    production = dataclasses.replace(platform, settings=dataclasses.replace(platform.settings, environment="production"))
    with pytest.raises(Conflict) as refused:
        build_demo(production, RESIDENTS, SEED)
    assert refused.value.code == "demo_refused_in_production"
    with pytest.raises(Invalid) as small:
        build_demo(platform, 5, SEED)
    assert small.value.code == "demo_size_invalid"
    assert counts(platform)["cards"] == counts(platform)["institutions"] == 0


def test_create_institution_checks_the_credit_code(platform):
    good = make_uscc("12", "510104", "12345678")
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    with platform.db.session() as session:
        for code in (bad, good[:17], "I" * 18):
            with pytest.raises(Invalid) as invalid:
                create_institution(session, uscc=code, name="测试医院", kind="hospital", region_code="510104")
            assert invalid.value.code == "uscc_invalid" and invalid.value.errors[0]["field"] == "uscc"
        with pytest.raises(Invalid) as kind:
            create_institution(session, uscc=good, name="测试医院", kind="spa", region_code="510104")
        assert kind.value.code == "kind_invalid"
        made = create_institution(session, uscc=good.lower(), name=" 测试  医院 ", kind="hospital",
                                  region_code="510104", level="3A")
        assert made.uscc == good and made.name == "测试 医院"
        with pytest.raises(Conflict) as taken:
            create_institution(session, uscc=good, name="另一家", kind="clinic", region_code="510104")
        assert taken.value.code == "uscc_taken"


# -- the command ------------------------------------------------------------------------------------

def test_ehc_demo_command(platform, settings):
    env = {**os.environ, "EHC_DATABASE_URL": settings.database_url, "EHC_KEYS_DIR": str(settings.keys_dir),
           "EHC_DATA_DIR": str(settings.data_dir), "COLUMNS": "200",
           "EHC_INSURANCE_URL": "", "EHC_BANK_URL": ""}  # no payment services here: the demo says so

    def ehc(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ehc.cli", *args], env=env, capture_output=True, text=True,
                              timeout=180)

    first = ehc("demo", "--residents", "25", "--seed", "3")
    assert first.returncode == 0, first.stderr + first.stdout
    for text in ("clerk", CLERK_PASSWORD, "admin", ADMIN_PASSWORD, "operator", OPERATOR_PASSWORD,
                 INSTITUTIONS[0].name, "residents registered", "pending_review", "parent of twins",
                 "No payment demo data"):
        assert text in first.stdout
    built = counts(platform)
    assert built["cards"] == 25 + len(plan_demo(25, 3).babies) and built["institutions"] == 10

    again = ehc("demo", "--residents", "25", "--seed", "3", "--if-empty")
    assert again.returncode == 0 and "not built" in again.stdout
    refused = ehc("demo", "--residents", "25")
    assert refused.returncode == 2 and "demo_not_empty" in refused.stderr
    assert counts(platform) == built
