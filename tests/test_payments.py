"""Payments end to end, against the insurance service and the bank running as separate processes:
linking, the split, settlement by the two-in-one code and in the app, refunds, the bank's callbacks,
every fault at every step, concurrent confirmations, reconciliation and the ledger; on both databases."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from factories import HOLDER_PERSON
from payments_world import ITEMS, balance, insure, insured, open_account, platform_settings, services
from sqlalchemy import func, select, text

from ehc.config import Settings
from ehc.kit.clock import in_china, utcnow
from ehc.kit.context import Actor
from ehc.payments import service
from ehc.payments.models import LedgerEntry, Refund, Settlement
from ehc.qr.models import CardUse
from ehc.sandboxes.common import Signer, load_or_create_key

ACCOUNT = "6222020000001234"
SPLIT = {"total_fen": 35_000, "fund_fen": 22_400, "account_fen": 5_000, "cash_fen": 7_600}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    with services(tmp_path_factory.mktemp("payment-services")) as pair:
        yield pair


@pytest.fixture
def settings(database_url: str, keys_dir: Path, tmp_path: Path, world) -> Settings:  # noqa: ANN001
    return platform_settings(database_url, keys_dir, tmp_path, *world)


@pytest.fixture
def patient(world, holder, client) -> dict:  # noqa: ANN001
    """The holder, insured as an employee with the deductible met and 50.00 in the personal account,
    and a bank account with 1,000.00; both linked."""
    insurer, bank = world
    insurer.clear_faults()
    bank.clear_faults()
    insured_id = insure(insurer, HOLDER_PERSON, balance=5_000, deductible_met=80_000)
    open_account(bank, ACCOUNT, HOLDER_PERSON["name"], 100_000)
    ehc_id, headers = holder
    linked = client.post("/api/v1/me/payments/insurance", json={}, headers=headers)
    assert linked.status_code == 201, linked.text
    assert linked.json()["scheme"] == "employee" and insured_id not in linked.text
    card = client.post("/api/v1/me/payments/bank", json={"account_no": ACCOUNT}, headers=headers)
    assert card.status_code == 201, card.text
    assert card.json()["masked"].endswith("1234") and ACCOUNT not in card.text
    return {"ehc_id": ehc_id, "headers": headers, "insured_id": insured_id}


_bills = iter(range(1, 10**6))


def send_bill(client, his, ehc_id: str, items: list | None = None) -> dict:  # noqa: ANN001
    answer = client.post("/api/v1/payments/bills", auth=his,
                         json={"bill_no": f"B{next(_bills):06d}", "ehc_id": ehc_id, "items": items or ITEMS})
    assert answer.status_code == 201, answer.text
    return answer.json()


def finish(platform) -> None:  # noqa: ANN001
    """Run the outbox until nothing is due (what ``ehc serve``'s driver does every second)."""
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor.system("payments"))
        for _ in range(40):
            service.drive(ctx, wait=0)
            left = service.pending(ctx)
            if not left:
                return
            service.drive(ctx, [s.subject_id for s in left], wait=3.0)
    raise AssertionError("payment steps still due")


def books_balance(platform) -> None:  # noqa: ANN001
    with platform.db.session() as session:
        check = service.check_ledger(platform.ctx(session, Actor.system("test")))
    assert check.balanced, check.problems


class Reconciled(list):
    @property
    def clean(self) -> bool:
        return not self


def reconciled(platform) -> Reconciled:  # noqa: ANN001
    """Today's reconciliation, as far as this test's settlements and refunds go: the services are
    shared by the module's tests, so their statements also hold other tests' movements."""
    with platform.db.session() as session:
        result = service.reconcile(platform.ctx(session, Actor.system("test")), in_china(utcnow()).date())
        ours = set(session.scalars(select(Settlement.id))) | set(session.scalars(select(Refund.id)))
    return Reconciled(f for f in result.findings if f.finding not in ("matched", "repaired") and f.platform_id in ours)


def test_a_bill_splits_between_fund_account_and_bank_and_is_paid_in_the_app(client, platform, his, world, patient):
    insurer, bank = world
    bill = send_bill(client, his, patient["ehc_id"])
    assert bill["total_fen"] == 35_000 and bill["status"] == "open" and bill["institution_level"] == 3
    again = client.post("/api/v1/payments/bills", auth=his, json={"bill_no": bill["bill_no"],
                                                                 "ehc_id": patient["ehc_id"], "items": ITEMS})
    assert again.status_code == 200 and again.json()["id"] == bill["id"]  # a resent bill is stored once
    other = client.post("/api/v1/payments/bills", auth=his, json={"bill_no": bill["bill_no"],
                                                                 "ehc_id": patient["ehc_id"], "items": ITEMS[:1]})
    assert other.status_code == 409 and other.json()["code"] == "bill_no_reused"

    split = client.post(f"/api/v1/me/bills/{bill['id']}/presettle", headers=patient["headers"])
    assert split.status_code == 200 and {k: split.json()[k] for k in SPLIT} == SPLIT
    before = balance(bank, ACCOUNT)
    paid = client.post(f"/api/v1/me/bills/{bill['id']}/pay", headers=patient["headers"])
    assert paid.status_code == 200, paid.text
    body = paid.json()
    assert body["status"] == "paid" and body["receipt_no"] and body["cash_fen"] == 7_600
    assert before - balance(bank, ACCOUNT) == 7_600
    assert insured(insurer, patient["insured_id"])["account_balance_fen"] == 0
    seen = client.get(f"/api/v1/me/bills/{bill['id']}", headers=patient["headers"]).json()
    assert seen["status"] == "paid" and seen["settlement"]["receipt_no"] == body["receipt_no"]
    twice = client.post(f"/api/v1/me/bills/{bill['id']}/pay", headers=patient["headers"])
    assert twice.status_code == 409 and twice.json()["code"] == "bill_paid"
    books_balance(platform)
    assert reconciled(platform).clean


def test_the_cashier_scans_a_two_in_one_code_bound_to_the_bill(client, platform, his, world, patient):
    bill = send_bill(client, his, patient["ehc_id"])
    other = send_bill(client, his, patient["ehc_id"], ITEMS[:1])
    drawn = client.post(f"/api/v1/me/bills/{bill['id']}/code", headers=patient["headers"])
    assert drawn.status_code == 200 and drawn.json()["code"].startswith("EHCM1:")
    code = drawn.json()["code"]
    wrong = client.post(f"/api/v1/payments/bills/{other['id']}/settle", auth=his, json={"code": code})
    assert wrong.status_code == 422 and wrong.json()["code"] == "payment_code_altered"
    settled = client.post(f"/api/v1/payments/bills/{bill['id']}/settle", auth=his, json={"code": code})
    assert settled.status_code == 200 and settled.json()["status"] == "paid", settled.text
    with platform.db.session() as session:
        use = session.scalars(select(CardUse).where(CardUse.scene == "0101051")).one()
        assert use.ehc_id == patient["ehc_id"]
        assert session.scalar(select(Settlement.card_use_id)) == use.id
    other_code = client.post(f"/api/v1/me/bills/{other['id']}/code", headers=patient["headers"]).json()["code"]
    replay = client.post(f"/api/v1/payments/bills/{other['id']}/settle", auth=his, json={"code": code})
    assert replay.status_code == 422 and replay.json()["code"] == "payment_code_altered"
    again = client.post(f"/api/v1/payments/bills/{bill['id']}/settle", auth=his, json={"code": code})
    assert again.status_code == 409 and again.json()["code"] == "bill_paid"
    # Expired, and replayed, on a bill still open: the service decides with the moment it is given.
    with platform.db.session() as session:
        ctx = platform.ctx(session, Actor(kind="machine", channel="0600", id="his", institution_id="inst-test-01"))
        with pytest.raises(service.PaymentCodeExpired):
            service.settle_by_code(ctx, other["id"], other_code, now=utcnow() + timedelta(minutes=5))
    ok = client.post(f"/api/v1/payments/bills/{other['id']}/settle", auth=his, json={"code": other_code})
    assert ok.status_code == 200, ok.text
    refused = client.post(f"/api/v1/payments/bills/{bill['id']}/settle", auth=his, json={"code": other_code})
    assert refused.status_code == 409
    books_balance(platform)


def test_a_replayed_payment_code_is_refused_with_its_own_code(client, platform, his, world, patient):
    insurer, bank = world
    bill = send_bill(client, his, patient["ehc_id"])
    open_account(bank, ACCOUNT, HOLDER_PERSON["name"], 100)  # too little: the bank declines
    code = client.post(f"/api/v1/me/bills/{bill['id']}/code", headers=patient["headers"]).json()["code"]
    first = client.post(f"/api/v1/payments/bills/{bill['id']}/settle", auth=his, json={"code": code})
    assert first.status_code == 200 and first.json()["status"] == "failed", first.text
    assert "declined" in first.json()["failure"]
    replay = client.post(f"/api/v1/payments/bills/{bill['id']}/settle", auth=his, json={"code": code})
    assert replay.status_code == 409 and replay.json()["code"] == "payment_code_replayed"
    # The bank declined after the insurer settled: the insurer's share was reversed, the bill is open.
    assert insured(insurer, patient["insured_id"])["account_balance_fen"] == 5_000
    assert client.get(f"/api/v1/payments/bills/{bill['id']}", auth=his).json()["status"] == "open"
    books_balance(platform)
    assert reconciled(platform).clean


def test_refunds_reverse_both_shares_in_proportion(client, platform, his, world, patient):
    insurer, bank = world
    bill = send_bill(client, his, patient["ehc_id"])
    assert client.post(f"/api/v1/me/bills/{bill['id']}/pay", headers=patient["headers"]).json()["status"] == "paid"
    before = balance(bank, ACCOUNT)
    part = client.post(f"/api/v1/payments/bills/{bill['id']}/refunds", auth=his,
                       json={"refund_no": "RF1", "amount_fen": 17_500, "reason": "drug returned"})
    assert part.status_code == 201 and part.json()["status"] == "refunded", part.text
    shares = part.json()
    assert (shares["fund_fen"], shares["account_fen"], shares["cash_fen"]) == (11_200, 2_500, 3_800)
    assert balance(bank, ACCOUNT) - before == 3_800
    assert insured(insurer, patient["insured_id"])["account_balance_fen"] == 2_500
    same = client.post(f"/api/v1/payments/bills/{bill['id']}/refunds", auth=his,
                       json={"refund_no": "RF1", "amount_fen": 17_500, "reason": "drug returned"})
    assert same.status_code == 200 and same.json()["id"] == shares["id"]
    too_much = client.post(f"/api/v1/payments/bills/{bill['id']}/refunds", auth=his,
                           json={"refund_no": "RF2", "amount_fen": 17_501, "reason": "x"})
    assert too_much.status_code == 409 and too_much.json()["code"] == "refund_exceeds"
    rest = client.post(f"/api/v1/payments/bills/{bill['id']}/refunds", auth=his,
                       json={"refund_no": "RF3", "amount_fen": 17_500, "reason": "visit cancelled"})
    assert rest.json()["status"] == "refunded"
    assert (rest.json()["fund_fen"], rest.json()["account_fen"], rest.json()["cash_fen"]) == (11_200, 2_500, 3_800)
    assert client.get(f"/api/v1/payments/bills/{bill['id']}", auth=his).json()["status"] == "refunded"
    assert balance(bank, ACCOUNT) == before + 7_600
    books_balance(platform)
    assert reconciled(platform).clean


# -- every fault at every step ---------------------------------------------------------------------

FAULTS = ["timeout", "error", "error_after_effect", "late"]
STEPS = [("insurer", "presettle"), ("insurer", "settle"), ("bank", "charge"), ("insurer", "reverse"),
         ("insurer", "refund"), ("bank", "refund")]


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(("side", "operation"), STEPS)
def test_every_fault_ends_paid_once_or_open_with_nothing_charged(client, platform, his, world, patient, side,
                                                                  operation, fault):
    insurer, bank = world
    target = insurer if side == "insurer" else bank
    bill = send_bill(client, his, patient["ehc_id"])
    account_before = insured(insurer, patient["insured_id"])["account_balance_fen"]
    bank_before = balance(bank, ACCOUNT)
    if operation == "reverse":
        open_account(bank, ACCOUNT, HOLDER_PERSON["name"], 100)  # the bank declines, so the insurer reverses
        bank_before = 100
    if operation == "presettle":  # the resident looks at the split while the insurer misbehaves
        target.fault(operation, fault, delay=1.5)
        split = client.post(f"/api/v1/me/bills/{bill['id']}/presettle", headers=patient["headers"])
        assert split.status_code == 503 and split.json()["code"] == "payment_service_unreachable", split.text
    elif operation != "refund":
        target.fault(operation, fault, delay=1.5)
    answer = client.post(f"/api/v1/me/bills/{bill['id']}/pay", headers=patient["headers"])
    assert answer.status_code in (200, 202), answer.text
    if operation == "refund":
        finish(platform)
        target.fault(operation, fault, delay=1.5)
        made = client.post(f"/api/v1/payments/bills/{bill['id']}/refunds", auth=his,
                           json={"refund_no": "R-all", "amount_fen": 35_000, "reason": "cancelled"})
        assert made.status_code == 201, made.text
    finish(platform)
    target.clear_faults()
    state = client.get(f"/api/v1/payments/bills/{bill['id']}", auth=his).json()
    charged = bank_before - balance(bank, ACCOUNT)
    account_used = account_before - insured(insurer, patient["insured_id"])["account_balance_fen"]
    if operation == "refund":
        assert state["status"] == "refunded" and charged == 0 and account_used == 0
    elif state["status"] == "paid":
        assert charged == SPLIT["cash_fen"] and account_used == SPLIT["account_fen"]
        assert operation != "reverse"
    else:
        assert state["status"] == "open" and charged == 0 and account_used == 0, (state, charged, account_used)
    with platform.db.session() as session:
        paid = session.scalar(select(func.count()).select_from(Settlement).where(Settlement.status == "paid"))
        assert paid <= 1
    books_balance(platform)
    result = reconciled(platform)
    assert result.clean, result


def test_the_banks_callback_twice_or_late_is_applied_once(client, platform, his, world, patient, live_url):
    """The bank calls back the platform (a live server); a repeated or late notice changes nothing."""
    insurer, bank = world
    platform.settings = replace(platform.settings, public_url=live_url)
    bill = send_bill(client, his, patient["ehc_id"])
    bank.fault("charge", "callback_twice")
    with httpx.Client(base_url=live_url, timeout=30) as http:
        paid = http.post(f"/api/v1/me/bills/{bill['id']}/pay", headers=patient["headers"])
    assert paid.status_code == 200 and paid.json()["status"] == "paid", paid.text
    # A callback that comes late, after the answer settled everything: it changes nothing.
    second = send_bill(client, his, patient["ehc_id"])
    bank.fault("charge", "callback_late", delay=1.0)
    before = balance(bank, ACCOUNT)
    with httpx.Client(base_url=live_url, timeout=30) as http:
        http.post(f"/api/v1/me/bills/{second['id']}/pay", headers=patient["headers"])
    finish(platform)
    time.sleep(1.5)  # the late callback arrives after everything settled
    state = client.get(f"/api/v1/payments/bills/{second['id']}", auth=his).json()
    assert state["status"] == "paid"  # the personal account was spent by the first bill: all of it is cash
    assert before - balance(bank, ACCOUNT) == state["settlement"]["cash_fen"] == 12_600
    # A callback with a forged signature is refused.
    forged = client.post("/api/v1/payments/callbacks/bank", content=b'{"charge_id":"x","status":"succeeded"}',
                         headers={"X-Signature": "AAAA", "Content-Type": "application/json"})
    assert forged.status_code == 400 and forged.json()["code"] == "callback_signature"
    # Signed by the bank, but not a notice: a clear refusal, never a 500.
    signer = Signer(load_or_create_key(bank.data))
    for body in (b'["charge_id"]', b"42", b"not json"):
        odd = client.post("/api/v1/payments/callbacks/bank", content=body,
                          headers={"X-Signature": signer.signature(body), "Content-Type": "application/json"})
        assert odd.status_code == 400 and odd.json()["code"] == "callback_invalid", odd.text
    books_balance(platform)
    with platform.db.session() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "bank")) == 4


def test_no_plaintext_insured_id_or_bank_token_at_rest(client, platform, his, world, patient):
    bill = send_bill(client, his, patient["ehc_id"])
    client.post(f"/api/v1/me/bills/{bill['id']}/pay", headers=patient["headers"])
    with platform.db.engine.connect() as conn:
        dump = " ".join(str(row) for table in ("payment_links", "payment_settlements")
                        for row in conn.execute(text(f"SELECT * FROM {table}")))
    assert patient["insured_id"] not in dump and ACCOUNT not in dump and "tok_" not in dump


def test_the_ledger_refuses_to_change_a_posted_entry(client, platform, his, patient):
    send_bill(client, his, patient["ehc_id"])
    with platform.db.engine.connect() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(text("UPDATE payment_ledger SET debit_fen = debit_fen + 1"))


def test_concurrent_confirmations_of_one_bill_settle_once(client, platform, his, world, patient, live_url):
    """Two cashiers scanning two codes, the app, and a retry of each, at once on a real server."""
    insurer, bank = world
    bill = send_bill(client, his, patient["ehc_id"])
    codes = [client.post(f"/api/v1/me/bills/{bill['id']}/code", headers=patient["headers"]).json()["code"]
             for _ in range(4)]
    before = balance(bank, ACCOUNT)
    answers: list[httpx.Response] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def cashier(code: str) -> None:
        with httpx.Client(base_url=live_url, timeout=30) as http:
            start.wait()
            answer = http.post(f"/api/v1/payments/bills/{bill['id']}/settle", auth=his, json={"code": code})
            with lock:
                answers.append(answer)

    def app() -> None:
        with httpx.Client(base_url=live_url, timeout=30) as http:
            start.wait()
            answer = http.post(f"/api/v1/me/bills/{bill['id']}/pay", headers=patient["headers"])
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=cashier, args=(c,)) for c in codes] + [threading.Thread(target=app)
                                                                               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(200) + statuses.count(202) == 1, [(a.status_code, a.text[:120]) for a in answers]
    assert all(a.json()["code"] in ("settlement_in_progress", "bill_paid") for a in answers if a.status_code == 409)
    finish(platform)
    assert before - balance(bank, ACCOUNT) == SPLIT["cash_fen"]
    with platform.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Settlement)) == 1
    books_balance(platform)


def test_payments_answer_clearly_when_unlinked_or_unknown(client, platform, his, holder):
    ehc_id, headers = holder
    bill = send_bill(client, his, ehc_id)
    unlinked = client.post(f"/api/v1/me/bills/{bill['id']}/pay", headers=headers)
    assert unlinked.status_code == 409 and unlinked.json()["code"] == "no_payment_link"
    assert client.get("/api/v1/me/bills/nope", headers=headers).json()["code"] == "bill_not_found"
    foreign = client.post("/api/v1/me/payments/bank", json={"account_no": "999999999999"}, headers=headers)
    assert foreign.status_code == 409 and foreign.json()["code"] == "bank_account_refused"


def test_payments_feed_the_statistics_store(client, platform, his, world, patient):
    from ehc.statistics import service as statistics  # only this test reads the analytical store
    from ehc.statistics.models import StatEvent

    bill = send_bill(client, his, patient["ehc_id"])
    assert client.post(f"/api/v1/me/bills/{bill['id']}/pay", headers=patient["headers"]).json()["status"] == "paid"
    statistics.refresh(platform.db)
    with platform.db.session() as session:
        kinds = dict(session.execute(select(StatEvent.kind, func.count()).where(StatEvent.source == "payment")
                                     .group_by(StatEvent.kind)).all())
        regions = set(session.scalars(select(StatEvent.region_code).where(StatEvent.source == "payment")))
    assert kinds == {"bill": 1, "insurance": 1, "bank": 1} and regions == {"510104"}
