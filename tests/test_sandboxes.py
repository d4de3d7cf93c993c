"""The insurance and bank sandboxes, as the platform meets them: real processes (``ehc sandbox ...``) on
their own data directories, reached over HTTP, every signed answer checked with the key from ``/key``.

Covers the policy arithmetic on the worked example of docs/sandboxes.md, idempotency, reversal and
cancel refusing late arrivals, refund limits, every fault kind, callbacks (to a small receiver run
here), the statements' formats, and a ``kill -9`` right after an acknowledged write.
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sandbox_services import Receiver, Service

CHINA = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture(scope="module")
def insurance_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = Service("insurance", tmp_path_factory.mktemp("sandboxes") / "insurance")
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def bank_service(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Service]:
    service = Service("bank", tmp_path_factory.mktemp("sandboxes") / "bank", "--callback-url",
                      receiver.url + "/default")
    service.start()
    yield service
    service.stop()


@pytest.fixture
def ins(insurance_service: Service) -> Service:
    insurance_service.client.delete("/admin/faults")
    return insurance_service


@pytest.fixture
def bank(bank_service: Service) -> Service:
    bank_service.client.delete("/admin/faults")
    return bank_service


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def add_person(ins: Service, *, scheme: str = "employee", name: str = "张三", balance: int = 20_000,
               fund_paid: int = 0, deductible_met: int = 0) -> str:
    number = f"110105{uuid.uuid4().int % 10**12:012d}"
    answer = ins.post("/admin/persons", {"document_type": "01", "document_number": number, "name": name,
                                         "scheme": scheme, "account_balance_fen": balance,
                                         "ytd_fund_paid_fen": fund_paid, "ytd_deductible_met_fen": deductible_met})
    assert answer.status_code == 200, answer.text
    return answer.json()["insured_id"]


# The worked example of docs/sandboxes.md: one item of each category.
ITEMS = [
    {"code": "A001", "name": "阿莫西林胶囊", "category": "A", "quantity": 2, "unit_price_fen": 5_000},
    {"code": "B001", "name": "CT 检查", "category": "B", "quantity": 1, "unit_price_fen": 33_333},  # share 100‰
    {"code": "C001", "name": "自费营养品", "category": "C", "quantity": 1, "unit_price_fen": 8_000},
]


def bill(insured_id: str, level: int = 3, use_account: bool = True, items: list | None = None) -> dict:
    return {"insured_id": insured_id, "institution_level": level, "items": items or ITEMS, "use_account": use_account}


def split_of(answer: httpx.Response) -> tuple[int, ...]:
    assert answer.status_code == 200, answer.text
    a = answer.json()
    return a["total_fen"], a.get("deductible_fen"), a["fund_fen"], a["account_fen"], a["cash_fen"]


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def china_day(iso_at: str) -> str:
    return datetime.fromisoformat(iso_at).astimezone(CHINA).date().isoformat()


# --- insurance: the policy --------------------------------------------------------------------------

def test_worked_example_employee_then_state_moves(ins: Service) -> None:
    insured = add_person(ins, balance=20_000, deductible_met=50_000)
    pre = ins.post("/v1/presettle", bill(insured))
    # total 10000 + 33333 + 8000; eligible 10000 + (33333 - ceil(3333.3)) + 0 = 39999;
    # deductible left 30000; fund (39999 - 30000) * 800 // 1000 = 7999; self 43334, account first 20000.
    assert split_of(pre) == (51_333, 30_000, 7_999, 20_000, 23_334)
    assert [(li["amount_fen"], li["eligible_fen"]) for li in pre.json()["lines"]] == [
        (10_000, 10_000), (33_333, 29_999), (8_000, 0)]
    before = ins.get(f"/v1/insured/{insured}").json()
    assert ins.get(f"/v1/insured/{insured}").json() == before  # presettle changed nothing
    assert before["deductible_remaining_fen"] == 30_000 and before["account_balance_fen"] == 20_000

    sid = new_id("S")
    done = ins.post("/v1/settle", {"settlement_id": sid, **bill(insured)})
    body = done.json()
    assert (body["total_fen"], body["fund_fen"], body["account_fen"], body["cash_fen"]) == (51_333, 7_999, 20_000,
                                                                                           23_334)
    assert body["settlement_id"] == sid and body["insurer_ref"].startswith("YB") and body["settled_at"].endswith("Z")
    after = ins.get(f"/v1/insured/{insured}").json()
    assert after == {"insured_id": insured, "scheme": "employee", "account_balance_fen": 0, "ytd_fund_paid_fen": 7_999,
                     "deductible_remaining_fen": 0, "cap_remaining_fen": 40_000_000 - 7_999}
    # The next bill meets no deductible and has no account left.
    assert split_of(ins.post("/v1/presettle", bill(insured))) == (51_333, 0, 31_999, 0, 19_334)


def test_resident_pays_no_account_and_lower_ratios(ins: Service) -> None:
    fresh = add_person(ins, scheme="resident", balance=5_000)
    # Deductible 60000 swallows all 39999 eligible.
    assert split_of(ins.post("/v1/presettle", bill(fresh))) == (51_333, 39_999, 0, 0, 51_333)
    met = add_person(ins, scheme="resident", balance=5_000, deductible_met=60_000)
    assert split_of(ins.post("/v1/presettle", bill(met, level=3))) == (51_333, 0, 21_999, 0, 29_334)  # 550‰
    assert split_of(ins.post("/v1/presettle", bill(met, level=2))) == (51_333, 0, 25_999, 0, 25_334)  # 650‰
    assert split_of(ins.post("/v1/presettle", bill(met, level=1))) == (51_333, 0, 31_999, 0, 19_334)  # 800‰
    employee = add_person(ins, deductible_met=80_000, balance=0)
    assert split_of(ins.post("/v1/presettle", bill(employee, level=1))) == (51_333, 0, 35_999, 0, 15_334)  # 900‰
    # The deductible is partly met by a bill: resident, level 1, 100000 of A items.
    big = [{"code": "A9", "name": "", "category": "A", "quantity": 10, "unit_price_fen": 10_000}]
    assert split_of(ins.post("/v1/presettle", bill(fresh, level=1, items=big))) == (100_000, 60_000, 32_000, 0,
                                                                                   68_000)


def test_cap_b_share_rounding_and_account_choice(ins: Service) -> None:
    capped = add_person(ins, fund_paid=39_995_000, deductible_met=80_000, balance=1_000_000)
    # 39999 * 800 // 1000 = 31999, but only 5000 of the year's cap is left.
    assert split_of(ins.post("/v1/presettle", bill(capped, use_account=False))) == (51_333, 0, 5_000, 0, 46_333)
    assert split_of(ins.post("/v1/presettle", bill(capped))) == (51_333, 0, 5_000, 46_333, 0)
    # B with a 150‰ self share: ceil(30001 * 0.15) = ceil(4500.15) = 4501 self-paid, 25500 eligible.
    items = [{"code": "B2", "name": "", "category": "B", "self_share_permille": 150, "quantity": 1,
              "unit_price_fen": 30_001}]
    pre = ins.post("/v1/presettle", bill(capped, items=items, use_account=False)).json()
    assert pre["lines"][0]["eligible_fen"] == 25_500 and pre["fund_fen"] == 5_000
    empty = add_person(ins, deductible_met=80_000, balance=0)
    assert split_of(ins.post("/v1/presettle", bill(empty, level=2, items=items))) == (30_001, 0, 21_675, 0, 8_326)


def test_verify_needs_document_and_name(ins: Service) -> None:
    number = f"11010519{uuid.uuid4().int % 10**9:09d}x"
    body = {"document_type": "01", "document_number": number, "name": "王小明", "scheme": "resident",
            "account_balance_fen": 0}
    insured = ins.post("/admin/persons", body).json()["insured_id"]
    assert insured.startswith("INS") and len(insured) == 15
    again = ins.post("/admin/persons", {**body, "scheme": "employee"}).json()["insured_id"]
    assert again == insured  # the same document: updated, same id
    ok = ins.post("/v1/insured/verify", {"document_type": "01", "document_number": number.upper(), "name": "王小明"})
    assert ok.json() == {"insured_id": insured, "scheme": "employee", "name_masked": "王*明"}
    for wrong in ({"name": "王小红"}, {"document_number": number[:-1] + "1"}, {"document_type": "02"}):
        answer = ins.post("/v1/insured/verify", {"document_type": "01", "document_number": number, "name": "王小明",
                                                 **wrong})
        assert answer.status_code == 404 and answer.json()["code"] == "not_insured"
    assert ins.get("/v1/insured/INS000000000000").json()["code"] == "not_insured"
    # The document number is not stored in the clear.
    assert number.upper().encode() not in (ins.data / "insurance.sqlite3").read_bytes()


def test_invalid_requests_and_money_is_integers(ins: Service) -> None:
    insured = add_person(ins)
    for broken in ({"institution_level": 4}, {"items": []}, {"use_account": "maybe"},
                   {"items": [{**ITEMS[0], "unit_price_fen": 50.5}]}, {"items": [{**ITEMS[0], "unit_price_fen": 50.0}]},
                   {"items": [{**ITEMS[0], "category": "D"}]}, {"items": [{**ITEMS[0], "quantity": 0}]}):
        answer = ins.post("/v1/settle", {"settlement_id": new_id("S"), **bill(insured), **broken})
        assert answer.status_code == 422 and answer.json()["code"] == "invalid", broken
    unknown = ins.post("/v1/settle", {"settlement_id": new_id("S"), **bill("INS999999999999")})
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_insured"


# --- insurance: idempotency, reversal, refunds ------------------------------------------------------

def test_settle_is_idempotent(ins: Service) -> None:
    insured = add_person(ins, balance=20_000, deductible_met=80_000)
    sid = new_id("S")
    first = ins.post("/v1/settle", {"settlement_id": sid, **bill(insured)})
    again = ins.post("/v1/settle", {"settlement_id": sid, **bill(insured)})
    assert first.status_code == again.status_code == 200 and first.content == again.content
    state = ins.get(f"/v1/insured/{insured}").json()
    assert state["account_balance_fen"] == 20_000 - first.json()["account_fen"] == 666
    assert state["ytd_fund_paid_fen"] == first.json()["fund_fen"] == 31_999
    other = ins.post("/v1/settle", {"settlement_id": sid, **bill(insured, items=ITEMS[:2])})
    assert other.status_code == 409 and other.json()["code"] == "idempotency_mismatch"
    assert ins.get(f"/v1/insured/{insured}").json() == state


def test_reverse_restores_and_refuses_a_late_settle(ins: Service) -> None:
    insured = add_person(ins, balance=20_000, deductible_met=50_000)
    before = ins.get(f"/v1/insured/{insured}").json()
    sid = new_id("S")
    settled = ins.post("/v1/settle", {"settlement_id": sid, **bill(insured)}).json()
    reversed_ = ins.post("/v1/reverse", {"settlement_id": sid, "reason": "till crashed"})
    assert reversed_.json() == {"settlement_id": sid, "status": "reversed"}
    assert ins.get(f"/v1/insured/{insured}").json() == before
    assert ins.post("/v1/reverse", {"settlement_id": sid, "reason": "again"}).content == reversed_.content
    assert ins.get(f"/v1/insured/{insured}").json() == before
    query = ins.get(f"/v1/settlements/{sid}").json()
    assert query["status"] == "reversed" and query["insurer_ref"] == settled["insurer_ref"]
    again = ins.post("/v1/settle", {"settlement_id": sid, **bill(insured)})
    assert again.status_code == 409 and again.json()["code"] == "already_reversed"
    refund = ins.post("/v1/refunds", {"refund_id": new_id("R"), "settlement_id": sid, "fund_fen": 1, "account_fen": 0})
    assert refund.status_code == 409 and refund.json()["code"] == "already_reversed"

    # The caller gave up on a settle that never arrived, and reversed it: the insurer remembers.
    ghost = new_id("S")
    assert ins.post("/v1/reverse", {"settlement_id": ghost, "reason": "timeout"}).json() == {
        "settlement_id": ghost, "status": "none"}
    late = ins.post("/v1/settle", {"settlement_id": ghost, **bill(insured)})
    assert late.status_code == 409 and late.json()["code"] == "already_reversed"
    assert ins.get(f"/v1/insured/{insured}").json() == before
    unknown = ins.get(f"/v1/settlements/{ghost}")
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_settlement"


def test_refund_limits(ins: Service) -> None:
    insured = add_person(ins, balance=20_000, deductible_met=50_000)
    sid = new_id("S")
    ins.post("/v1/settle", {"settlement_id": sid, **bill(insured)})  # fund 7999, account 20000
    rid = new_id("R")
    first = ins.post("/v1/refunds", {"refund_id": rid, "settlement_id": sid, "fund_fen": 5_000, "account_fen": 10_000})
    assert first.json() == {"refund_id": rid, "settlement_id": sid, "status": "refunded", "fund_fen": 5_000,
                            "account_fen": 10_000}
    state = ins.get(f"/v1/insured/{insured}").json()
    assert state["account_balance_fen"] == 10_000 and state["ytd_fund_paid_fen"] == 2_999
    repeat = ins.post("/v1/refunds", {"refund_id": rid, "settlement_id": sid, "fund_fen": 5_000, "account_fen": 10_000})
    assert repeat.content == first.content
    assert ins.get(f"/v1/insured/{insured}").json() == state
    mismatch = ins.post("/v1/refunds", {"refund_id": rid, "settlement_id": sid, "fund_fen": 1, "account_fen": 0})
    assert mismatch.status_code == 409 and mismatch.json()["code"] == "idempotency_mismatch"
    for fund, account in ((3_000, 0), (0, 10_001)):
        over = ins.post("/v1/refunds", {"refund_id": new_id("R"), "settlement_id": sid, "fund_fen": fund,
                                        "account_fen": account})
        assert over.status_code == 409 and over.json()["code"] == "refund_exceeds"
    rest = ins.post("/v1/refunds", {"refund_id": new_id("R"), "settlement_id": sid, "fund_fen": 2_999,
                                    "account_fen": 10_000})
    assert rest.status_code == 200
    query = ins.get(f"/v1/settlements/{sid}").json()
    assert (query["status"], query["refunded_fund_fen"], query["refunded_account_fen"]) == ("settled", 7_999, 20_000)
    unknown = ins.post("/v1/refunds", {"refund_id": new_id("R"), "settlement_id": new_id("S"), "fund_fen": 1,
                                       "account_fen": 0})
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_settlement"


def test_insurance_statement(ins: Service) -> None:
    insured = add_person(ins, balance=20_000, deductible_met=50_000)
    kept, undone, rid = new_id("S"), new_id("S"), new_id("R")
    settled = ins.post("/v1/settle", {"settlement_id": kept, **bill(insured)}).json()
    ins.post("/v1/settle", {"settlement_id": undone, **bill(insured, use_account=False)})
    ins.post("/v1/reverse", {"settlement_id": undone, "reason": "test"})
    ins.post("/v1/refunds", {"refund_id": rid, "settlement_id": kept, "fund_fen": 100, "account_fen": 200})
    answer = ins.get(f"/v1/statements/{china_day(settled['settled_at'])}")
    assert answer.headers["content-type"].startswith("text/csv")
    lines = answer.text.splitlines()
    assert lines[0] == "record,platform_id,insurer_ref,settlement_id,fund_fen,account_fen,at"
    rows = [r for r in csv.DictReader(io.StringIO(answer.text)) if r["settlement_id"] in (kept, undone)]
    assert [(r["record"], r["platform_id"], r["fund_fen"], r["account_fen"]) for r in rows] == [
        ("SETTLE", kept, "7999", "20000"), ("SETTLE", undone, "31999", "0"), ("REVERSE", undone, "31999", "0"),
        ("REFUND", rid, "100", "200")]
    assert rows[0]["insurer_ref"] == settled["insurer_ref"] == rows[3]["insurer_ref"]
    assert all(datetime.fromisoformat(r["at"]).tzinfo for r in rows)
    assert ins.get("/v1/statements/2001-01-01").text == lines[0] + "\n"
    for wrong in ("2001-13-01", "20010101", "1700000000", "2001-1-1"):
        answer = ins.get(f"/v1/statements/{wrong}")
        assert answer.status_code == 422 and answer.json()["code"] == "invalid", wrong


# --- insurance: faults ------------------------------------------------------------------------------

def test_insurance_faults(ins: Service) -> None:
    insured = add_person(ins, balance=20_000, deductible_met=80_000)

    def settle(sid: str, **kw) -> httpx.Response:  # noqa: ANN003
        return ins.post("/v1/settle", {"settlement_id": sid, **bill(insured)}, **kw)

    ins.fault("settle", "timeout", delay=0.5)
    sid, started = new_id("S"), time.monotonic()
    answer = settle(sid)
    assert answer.status_code == 504 and answer.json()["code"] == "timeout" and time.monotonic() - started >= 0.5
    assert ins.get(f"/v1/settlements/{sid}").status_code == 404

    ins.fault("settle", "error")
    assert settle(sid).status_code == 500
    assert ins.get(f"/v1/settlements/{sid}").status_code == 404
    assert settle(sid).status_code == 200  # the fault served its one call

    ins.fault("settle", "error_after_effect")
    sid = new_id("S")
    assert settle(sid).status_code == 500
    assert ins.get(f"/v1/settlements/{sid}").json()["status"] == "settled"
    assert settle(sid).status_code == 200  # the retry gets the first answer

    # Succeeded after the caller gave up: the caller reverses, and the state comes back.
    before = ins.get(f"/v1/insured/{insured}").json()
    ins.fault("settle", "late", delay=1.0)
    sid = new_id("S")
    with pytest.raises(httpx.ReadTimeout):
        settle(sid, timeout=0.3)
    # The effect is committed before the delay; on a loaded machine it may still be under way.
    assert eventually(lambda: ins.get(f"/v1/settlements/{sid}").json().get("status") == "settled")
    assert ins.post("/v1/reverse", {"settlement_id": sid, "reason": "gave up"}).json()["status"] == "reversed"
    assert ins.get(f"/v1/insured/{insured}").json() == before

    # Queued per operation, for ``times`` calls; listed and cleared.
    ins.fault("query", "error", times=2)
    ins.fault("verify", "timeout", delay=0.1)
    listed = ins.get("/admin/faults").json()["faults"]
    assert {(f["operation"], f["fault"], f["remaining"]) for f in listed} == {("query", "error", 2),
                                                                              ("verify", "timeout", 1)}
    assert ins.get(f"/v1/settlements/{sid}").status_code == 500
    assert ins.get(f"/v1/settlements/{sid}").status_code == 500
    assert ins.get(f"/v1/settlements/{sid}").status_code == 200
    assert ins.client.delete("/admin/faults").json() == {"faults": []}
    assert ins.get("/admin/faults").json() == {"faults": []}
    for op in ("presettle", "reverse", "refund"):
        ins.fault(op, "error")
    assert ins.post("/v1/presettle", bill(insured)).status_code == 500
    assert ins.post("/v1/reverse", {"settlement_id": new_id("S")}).status_code == 500
    assert ins.post("/v1/refunds", {"refund_id": new_id("R"), "settlement_id": sid, "fund_fen": 1,
                                    "account_fen": 0}).status_code == 500
    for wrong in ({"operation": "charge", "fault": "error"}, {"operation": "settle", "fault": "explode"},
                  {"operation": "settle", "fault": "callback_twice"}, {"operation": "settle", "fault": "error",
                                                                      "times": 0}):
        answer = ins.post("/admin/faults", wrong)
        assert answer.status_code == 422 and answer.json()["code"] == "invalid"


# --- bank -------------------------------------------------------------------------------------------

def add_account(bank: Service, balance: int = 100_000, name: str = "李四") -> tuple[str, str]:
    account_no = f"6222{uuid.uuid4().int % 10**15:015d}"
    assert bank.post("/admin/accounts", {"account_no": account_no, "name": name, "balance_fen": balance}).json() == {
        "account_no": account_no}
    token = bank.post("/v1/tokens", {"account_no": account_no, "holder_name": name})
    assert token.json()["masked"] == f"6222 **** **** {account_no[-4:]}"
    assert token.json()["token"].startswith("tok_") and len(token.json()["token"]) == 28
    return account_no, token.json()["token"]


def balance(bank: Service, account_no: str) -> int:
    return bank.get(f"/admin/accounts/{account_no}").json()["balance_fen"]


def charge(bank: Service, charge_id: str, token: str, amount: int, **kw) -> httpx.Response:  # noqa: ANN003
    extra = {k: kw.pop(k) for k in ("callback_url",) if k in kw}
    return bank.post("/v1/charges", {"charge_id": charge_id, "token": token, "amount_fen": amount,
                                     "description": "门诊缴费", **extra}, **kw)


def test_tokens(bank: Service) -> None:
    account_no, _ = add_account(bank)
    for wrong in ({"holder_name": "王五"}, {"account_no": "6222000000000000"}):
        answer = bank.post("/v1/tokens", {"account_no": account_no, "holder_name": "李四", **wrong})
        assert answer.status_code == 404 and answer.json()["code"] == "unknown_account"


def test_charge_idempotent_declines_and_callbacks(bank: Service, receiver: Receiver) -> None:
    account_no, token = add_account(bank, balance=10_000)
    cid = new_id("C")
    first = charge(bank, cid, token, 6_000)
    body = first.json()
    assert (body["status"], body["reason"], body["amount_fen"]) == ("succeeded", None, 6_000)
    assert body["bank_ref"].startswith("BK") and body["charge_id"] == cid
    assert charge(bank, cid, token, 6_000).content == first.content
    assert balance(bank, account_no) == 4_000
    mismatch = charge(bank, cid, token, 6_001)
    assert mismatch.status_code == 409 and mismatch.json()["code"] == "idempotency_mismatch"
    # The default callback URL (--callback-url), once, signed, the answer's own bytes.
    (call,) = receiver.wait("charge_id", cid)
    assert call["path"] == "/default" and call["body"] == first.content
    assert bank.verifies(call["body"], call["signature"])
    query = bank.get(f"/v1/charges/{cid}").json()
    assert (query["status"], query["amount_fen"], query["refunded_fen"]) == ("succeeded", 6_000, 0)

    poor = new_id("C")
    declined = charge(bank, poor, token, 4_001, callback_url=receiver.url + "/mine")
    assert declined.status_code == 200
    assert (declined.json()["status"], declined.json()["reason"]) == ("declined", "insufficient_funds")
    assert balance(bank, account_no) == 4_000
    (call,) = receiver.wait("charge_id", poor)
    assert call["path"] == "/mine" and call["body"] == declined.content
    assert charge(bank, poor, token, 4_001).content == declined.content
    unknown = charge(bank, new_id("C"), "tok_" + "0" * 24, 100)
    assert (unknown.json()["status"], unknown.json()["reason"]) == ("declined", "token_unknown")
    for amount in (0, -5, 10.0):
        assert charge(bank, new_id("C"), token, amount).status_code == 422
    missing = bank.get(f"/v1/charges/{new_id('C')}")
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_charge"
    time.sleep(0.2)
    assert len(receiver.for_id("charge_id", cid)) == 1  # a repeat is not called back again


def test_concurrent_repeats_charge_once(bank: Service) -> None:
    """The platform retrying while its first call is still in flight: one effect, one answer."""
    account_no, token = add_account(bank, balance=10_000)
    cid = new_id("C")
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: charge(bank, cid, token, 1_000).content, range(6)))
    assert len(set(answers)) == 1 and json.loads(answers[0])["status"] == "succeeded"
    assert balance(bank, account_no) == 9_000


def test_cancel_refuses_a_late_charge(bank: Service) -> None:
    account_no, token = add_account(bank, balance=10_000)
    cid = new_id("C")
    assert bank.post(f"/v1/charges/{cid}/cancel").json() == {"charge_id": cid, "status": "cancelled"}
    assert bank.post(f"/v1/charges/{cid}/cancel").json() == {"charge_id": cid, "status": "cancelled"}
    late = charge(bank, cid, token, 1_000)
    assert (late.json()["status"], late.json()["reason"]) == ("declined", "cancelled")
    assert balance(bank, account_no) == 10_000
    assert bank.get(f"/v1/charges/{cid}").json()["status"] == "declined"
    done = new_id("C")
    charge(bank, done, token, 1_000)
    refused = bank.post(f"/v1/charges/{done}/cancel")
    assert refused.status_code == 409 and refused.json()["code"] == "already_charged"
    assert balance(bank, account_no) == 9_000


def test_bank_refunds(bank: Service, receiver: Receiver) -> None:
    account_no, token = add_account(bank, balance=10_000)
    cid = new_id("C")
    charge(bank, cid, token, 10_000)
    rid = new_id("F")
    first = bank.post("/v1/refunds", {"refund_id": rid, "charge_id": cid, "amount_fen": 6_000,
                                      "callback_url": receiver.url + "/refunds"})
    body = first.json()
    assert (body["refund_id"], body["charge_id"], body["status"], body["amount_fen"]) == (rid, cid, "succeeded", 6_000)
    assert balance(bank, account_no) == 6_000
    assert bank.post("/v1/refunds", {"refund_id": rid, "charge_id": cid, "amount_fen": 6_000}).content == first.content
    assert balance(bank, account_no) == 6_000
    (call,) = receiver.wait("refund_id", rid)
    assert call["path"] == "/refunds" and call["body"] == first.content and bank.verifies(call["body"], call["signature"])
    mismatch = bank.post("/v1/refunds", {"refund_id": rid, "charge_id": cid, "amount_fen": 5_000})
    assert mismatch.status_code == 409 and mismatch.json()["code"] == "idempotency_mismatch"
    over = bank.post("/v1/refunds", {"refund_id": new_id("F"), "charge_id": cid, "amount_fen": 4_001})
    assert over.status_code == 409 and over.json()["code"] == "refund_exceeds"
    assert bank.post("/v1/refunds", {"refund_id": new_id("F"), "charge_id": cid, "amount_fen": 4_000}).status_code == 200
    assert balance(bank, account_no) == 10_000
    assert bank.get(f"/v1/charges/{cid}").json()["refunded_fen"] == 10_000
    unknown = bank.post("/v1/refunds", {"refund_id": new_id("F"), "charge_id": new_id("C"), "amount_fen": 1})
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_charge"
    poor = new_id("C")
    charge(bank, poor, token, 1_000_000)
    declined = bank.post("/v1/refunds", {"refund_id": new_id("F"), "charge_id": poor, "amount_fen": 1})
    assert declined.status_code == 409 and declined.json()["code"] == "not_charged"


def test_bank_faults(bank: Service, receiver: Receiver) -> None:
    account_no, token = add_account(bank, balance=100_000)

    bank.fault("charge", "timeout", delay=0.5)
    cid, started = new_id("C"), time.monotonic()
    answer = charge(bank, cid, token, 1_000)
    assert answer.status_code == 504 and time.monotonic() - started >= 0.5
    bank.fault("charge", "error")
    assert charge(bank, cid, token, 1_000).status_code == 500
    assert bank.get(f"/v1/charges/{cid}").status_code == 404 and balance(bank, account_no) == 100_000

    bank.fault("charge", "error_after_effect")
    cid = new_id("C")
    assert charge(bank, cid, token, 1_000).status_code == 500
    assert bank.get(f"/v1/charges/{cid}").json()["status"] == "succeeded" and balance(bank, account_no) == 99_000
    receiver.wait("charge_id", cid)  # the effect happened, so did its callback

    bank.fault("charge", "late", delay=1.0)
    cid = new_id("C")
    with pytest.raises(httpx.ReadTimeout):
        charge(bank, cid, token, 1_000, timeout=0.3)
    assert eventually(lambda: bank.get(f"/v1/charges/{cid}").json().get("status") == "succeeded")
    refused = bank.post(f"/v1/charges/{cid}/cancel")
    assert refused.status_code == 409 and refused.json()["code"] == "already_charged"

    bank.fault("charge", "callback_twice")
    cid = new_id("C")
    first = charge(bank, cid, token, 1_000)
    twice = receiver.wait("charge_id", cid, count=2)
    assert [c["body"] for c in twice] == [first.content, first.content]
    assert all(bank.verifies(c["body"], c["signature"]) for c in twice)

    bank.fault("refund", "callback_late", delay=1.0)
    rid = new_id("F")
    answered = time.monotonic()
    assert bank.post("/v1/refunds", {"refund_id": rid, "charge_id": cid, "amount_fen": 500}).status_code == 200
    time.sleep(0.2)
    assert receiver.for_id("refund_id", rid) == []  # not yet
    (call,) = receiver.wait("refund_id", rid, timeout=5.0)
    assert call["at"] - answered >= 1.0

    for op, path in (("token", "/v1/tokens"), ("query", f"/v1/charges/{cid}")):
        bank.fault(op, "error")
        answer = bank.post(path, {"account_no": account_no, "holder_name": "李四"}) if op == "token" else bank.get(path)
        assert answer.status_code == 500 and answer.json()["code"] == "internal_error"
    bank.fault("refund", "timeout", delay=0.1)
    assert bank.post("/v1/refunds", {"refund_id": new_id("F"), "charge_id": cid, "amount_fen": 1}).status_code == 504
    assert bank.post("/admin/faults", {"operation": "cancel", "fault": "error"}).status_code == 422


def test_bank_statement(bank: Service) -> None:
    _, token = add_account(bank, balance=10_000)
    ok, poor, rid = new_id("C"), new_id("C"), new_id("F")
    first = charge(bank, ok, token, 7_000).json()
    charge(bank, poor, token, 5_000)
    bank.post("/v1/refunds", {"refund_id": rid, "charge_id": ok, "amount_fen": 2_500})
    day = china_day(first["at"])
    answer = bank.get(f"/v1/statements/{day}")
    assert answer.headers["content-type"].startswith("text/plain")
    lines = answer.text.splitlines()
    header, details, trailer = lines[0].split("|"), [line.split("|") for line in lines[1:-1]], lines[-1].split("|")
    assert header == ["H", day.replace("-", ""), str(len(details))]
    assert all(d[0] == "D" and len(d) == 7 and len(d[6]) == 6 and d[6].isdigit() for d in details)
    mine = [d[1:6] for d in details if d[2] in (ok, poor, rid)]
    assert [(m[0], m[1], m[3], m[4]) for m in mine] == [("CHG", ok, "7000", "succeeded"),
                                                         ("CHG", poor, "5000", "declined"),
                                                         ("RFD", rid, "2500", "succeeded")]
    assert mine[0][2] == first["bank_ref"]
    net = sum(int(d[4]) for d in details if d[1] == "CHG" and d[5] == "succeeded") - sum(
        int(d[4]) for d in details if d[1] == "RFD")
    assert trailer == ["T", str(net)]
    assert bank.get("/v1/statements/2001-01-01").text == "H|20010101|0\nT|0\n"


# --- crash safety -----------------------------------------------------------------------------------

def test_kill_9_loses_no_acknowledged_write(insurance_service: Service, bank_service: Service) -> None:
    ins, bank = insurance_service, bank_service
    insured = add_person(ins, balance=20_000, deductible_met=50_000)
    account_no, token = add_account(bank, balance=10_000)
    sid, cid = new_id("S"), new_id("C")
    settled = ins.post("/v1/settle", {"settlement_id": sid, **bill(insured)})
    ins.kill()
    charged = charge(bank, cid, token, 3_000)
    bank.kill()
    assert settled.status_code == charged.status_code == 200
    ins_key, bank_key = ins.public_key, bank.public_key
    ins.start()
    bank.start()
    assert (ins.public_key, bank.public_key) == (ins_key, bank_key)  # the same key from the data directory
    assert ins.get(f"/v1/settlements/{sid}").json()["insurer_ref"] == settled.json()["insurer_ref"]
    assert ins.get(f"/v1/insured/{insured}").json()["account_balance_fen"] == 0
    assert ins.post("/v1/settle", {"settlement_id": sid, **bill(insured)}).content == settled.content
    assert bank.get(f"/v1/charges/{cid}").json()["status"] == "succeeded"
    assert balance(bank, account_no) == 7_000
    assert charge(bank, cid, token, 3_000).content == charged.content
    assert ins.signed > 0 and bank.signed > 0
