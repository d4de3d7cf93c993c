"""The medical-insurance sandbox: insured persons, the split of a bill between the fund, the personal
account and cash, settlements, reversals (冲正), refunds and the daily statement.

The policy is one table (``POLICY``) in permille integers; money is integer fen throughout. A bill is
split item by item (A: all eligible; B: a self-paid share first, rounded up to the fen; C: all
self-paid), then the year's deductible is taken from the eligible amount, the fund pays the level's
ratio of the rest (rounded down) within what is left of the yearly cap, and the employee scheme pays
the self-paid part from the personal account first when asked. Year-to-date figures are per calendar
year in China time.
"""

from __future__ import annotations

import csv
import io
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ..crypto import sm3
from .common import (
    SandboxError,
    Signer,
    Store,
    Switchboard,
    base_app,
    body_bytes,
    china_day,
    fingerprint,
    iso,
    load_or_create_key,
    new_ref,
    parse_day,
    prepare,
    run,
    utcnow,
)

OPERATIONS = ("verify", "presettle", "settle", "reverse", "refund", "query")


# --- the policy -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scheme:
    deductible_fen: int           # per calendar year
    yearly_cap_fen: int           # most the fund pays in a calendar year
    ratio_permille: dict[int, int]  # fund's share of what is eligible above the deductible, by institution level
    personal_account: bool        # whether the scheme has a personal account to pay the self-paid part


POLICY: dict[str, Scheme] = {
    #                    deductible   yearly cap           level 1  level 2  level 3   account
    "employee": Scheme(80_000, 40_000_000, {1: 900, 2: 850, 3: 800}, True),
    "resident": Scheme(60_000, 25_000_000, {1: 800, 2: 650, 3: 550}, False),
}
DEFAULT_B_SELF_SHARE_PERMILLE = 100  # category B: the self-paid share before the insurance looks at it


def ceil_permille(amount: int, permille: int) -> int:
    return -(-amount * permille // 1000)


def split(scheme: str, level: int, items: Sequence[Item], use_account: bool, *, balance_fen: int,
          ytd_fund_paid_fen: int, ytd_deductible_met_fen: int) -> dict[str, Any]:
    """The split of a bill: who pays what, in fen. Pure: no state is read or changed here."""
    policy = POLICY[scheme]
    lines, total, eligible = [], 0, 0
    for item in items:
        amount = item.quantity * item.unit_price_fen
        if item.category == "A":
            item_eligible = amount
        elif item.category == "B":
            item_eligible = amount - ceil_permille(amount, item.self_share_permille)
        else:
            item_eligible = 0
        lines.append({"code": item.code, "name": item.name, "category": item.category,
                      "amount_fen": amount, "eligible_fen": item_eligible})
        total += amount
        eligible += item_eligible
    deductible_remaining = max(0, policy.deductible_fen - ytd_deductible_met_fen)
    cap_remaining = max(0, policy.yearly_cap_fen - ytd_fund_paid_fen)
    deductible = min(eligible, deductible_remaining)
    ratio = policy.ratio_permille[level]
    fund = min((eligible - deductible) * ratio // 1000, cap_remaining)
    self_paid = total - fund
    account = min(self_paid, max(0, balance_fen)) if policy.personal_account and use_account else 0
    return {"total_fen": total, "eligible_fen": eligible, "deductible_fen": deductible, "ratio_permille": ratio,
            "fund_fen": fund, "self_fen": self_paid, "account_fen": account, "cash_fen": self_paid - account,
            "lines": lines}


# --- requests ---------------------------------------------------------------------------------------

Fen = int


class Person(BaseModel):
    document_type: str = Field(min_length=1, max_length=16)
    document_number: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=100)
    scheme: Literal["employee", "resident"]
    account_balance_fen: Fen = Field(ge=0, le=10**12, strict=True)
    ytd_fund_paid_fen: Fen = Field(0, ge=0, le=10**12, strict=True)
    ytd_deductible_met_fen: Fen = Field(0, ge=0, le=10**12, strict=True)


class Verify(BaseModel):
    document_type: str = Field(min_length=1, max_length=16)
    document_number: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=100)


class Item(BaseModel):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field("", max_length=200)
    category: Literal["A", "B", "C"]
    self_share_permille: int = Field(DEFAULT_B_SELF_SHARE_PERMILLE, ge=0, le=1000, strict=True)
    quantity: int = Field(ge=1, le=1_000_000, strict=True)
    unit_price_fen: Fen = Field(ge=0, le=10**10, strict=True)


class Bill(BaseModel):
    insured_id: str = Field(min_length=1, max_length=32)
    institution_level: Literal[1, 2, 3]
    items: list[Item] = Field(min_length=1, max_length=500)
    use_account: bool = True


class Settle(Bill):
    settlement_id: str = Field(min_length=1, max_length=64)


class Reverse(BaseModel):
    settlement_id: str = Field(min_length=1, max_length=64)
    reason: str = Field("", max_length=200)


class Refund(BaseModel):
    refund_id: str = Field(min_length=1, max_length=64)
    settlement_id: str = Field(min_length=1, max_length=64)
    fund_fen: Fen = Field(ge=0, le=10**14, strict=True)
    account_fen: Fen = Field(ge=0, le=10**14, strict=True)


# --- storage ----------------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS persons (
    insured_id TEXT PRIMARY KEY,
    document_key TEXT NOT NULL UNIQUE,          -- SM3 hex of "<type>:<number>"; the number is not kept
    name TEXT NOT NULL,
    scheme TEXT NOT NULL,
    account_balance_fen INTEGER NOT NULL,
    ytd_year INTEGER NOT NULL,                  -- the calendar year (China time) the two figures below are of
    ytd_fund_paid_fen INTEGER NOT NULL,
    ytd_deductible_met_fen INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS settlements (
    settlement_id TEXT PRIMARY KEY,
    insured_id TEXT NOT NULL REFERENCES persons(insured_id),
    insurer_ref TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    year INTEGER NOT NULL,
    total_fen INTEGER NOT NULL,
    deductible_fen INTEGER NOT NULL,
    fund_fen INTEGER NOT NULL,
    account_fen INTEGER NOT NULL,
    cash_fen INTEGER NOT NULL,
    status TEXT NOT NULL,                       -- settled | reversed
    refunded_fund_fen INTEGER NOT NULL DEFAULT 0,
    refunded_account_fen INTEGER NOT NULL DEFAULT 0,
    settled_at TEXT NOT NULL,
    answer BLOB NOT NULL                        -- the first answer, replayed to a repeat
);
CREATE TABLE IF NOT EXISTS reversals (
    settlement_id TEXT PRIMARY KEY,             -- also ids never settled: a late settle is then refused
    status TEXT NOT NULL,                       -- reversed | none
    reason TEXT NOT NULL,
    at TEXT NOT NULL,
    answer BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    refund_id TEXT PRIMARY KEY,
    settlement_id TEXT NOT NULL REFERENCES settlements(settlement_id),
    fund_fen INTEGER NOT NULL,
    account_fen INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    at TEXT NOT NULL,
    answer BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS operations (           -- the statement's lines
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record TEXT NOT NULL,                       -- SETTLE | REVERSE | REFUND
    platform_id TEXT NOT NULL,
    insurer_ref TEXT NOT NULL,
    settlement_id TEXT NOT NULL,
    fund_fen INTEGER NOT NULL,
    account_fen INTEGER NOT NULL,
    at TEXT NOT NULL,
    day TEXT NOT NULL                           -- China date, YYYY-MM-DD
);
CREATE INDEX IF NOT EXISTS operations_day ON operations(day, seq)
"""


def document_key(document_type: str, document_number: str) -> str:
    """SM3 hex of ``"<type>:<number>"`` (type and number trimmed, the number upper-cased: a final ``x``)."""
    return sm3(f"{document_type.strip()}:{document_number.strip().upper()}".encode()).hex()


def mask_name(name: str) -> str:
    """张三 -> 张*, 王小明 -> 王*明: enough for a clerk to confirm, not enough to learn a name."""
    if len(name) <= 1:
        return "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def _ytd(person: sqlite3.Row, year: int) -> tuple[int, int]:
    """(fund paid, deductible met) in ``year``: nothing yet when the figures kept are of another year."""
    if person["ytd_year"] != year:
        return 0, 0
    return person["ytd_fund_paid_fen"], person["ytd_deductible_met_fen"]


def _record(conn: sqlite3.Connection, record: str, platform_id: str, insurer_ref: str, settlement_id: str,
            fund: int, account: int, now: datetime) -> None:
    conn.execute("INSERT INTO operations (record, platform_id, insurer_ref, settlement_id, fund_fen, account_fen, "
                 "at, day) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 (record, platform_id, insurer_ref, settlement_id, fund, account, iso(now), china_day(now).isoformat()))


def _undo_ytd(conn: sqlite3.Connection, insured_id: str, year: int, fund: int, deductible: int, account: int) -> None:
    """Give back ``account`` to the balance and take ``fund``/``deductible`` off the year's figures
    (only if they are still that year's)."""
    person = conn.execute("SELECT * FROM persons WHERE insured_id = ?", (insured_id,)).fetchone()
    fund_paid, deductible_met = person["ytd_fund_paid_fen"], person["ytd_deductible_met_fen"]
    if person["ytd_year"] == year:
        fund_paid, deductible_met = max(0, fund_paid - fund), max(0, deductible_met - deductible)
    conn.execute("UPDATE persons SET account_balance_fen = account_balance_fen + ?, ytd_fund_paid_fen = ?, "
                 "ytd_deductible_met_fen = ? WHERE insured_id = ?", (account, fund_paid, deductible_met, insured_id))


# --- the service ------------------------------------------------------------------------------------

def create_app(data_dir: Path) -> FastAPI:
    data_dir = prepare(data_dir)
    signer = Signer(load_or_create_key(data_dir))
    store = Store(data_dir / "insurance.sqlite3", SCHEMA)
    faults = Switchboard(OPERATIONS)
    app = base_app("EHC insurance sandbox", "A stand-in medical-insurance service (docs/sandboxes.md).",
                   signer, faults)
    app.state.store = store

    def person_by_id(conn: sqlite3.Connection, insured_id: str) -> sqlite3.Row:
        person = conn.execute("SELECT * FROM persons WHERE insured_id = ?", (insured_id,)).fetchone()
        if person is None:
            raise SandboxError(404, "not_insured", "no insured person with this id")
        return person

    # -- admin --

    @app.post("/admin/persons", tags=["admin"])
    def put_person(request: Person) -> JSONResponse:
        """Add an insured person, or update the one with this document (same ``insured_id``)."""
        key = document_key(request.document_type, request.document_number)
        year = china_day(utcnow()).year
        values = (request.name.strip(), request.scheme, request.account_balance_fen, year,
                  request.ytd_fund_paid_fen, request.ytd_deductible_met_fen)
        with store.write() as conn:
            row = conn.execute("SELECT insured_id FROM persons WHERE document_key = ?", (key,)).fetchone()
            if row is not None:
                insured_id = row["insured_id"]
                conn.execute("UPDATE persons SET name = ?, scheme = ?, account_balance_fen = ?, ytd_year = ?, "
                             "ytd_fund_paid_fen = ?, ytd_deductible_met_fen = ? WHERE insured_id = ?",
                             (*values, insured_id))
            else:
                while True:
                    insured_id = f"INS{secrets.randbelow(10**12):012d}"
                    if conn.execute("SELECT 1 FROM persons WHERE insured_id = ?", (insured_id,)).fetchone() is None:
                        break
                conn.execute("INSERT INTO persons (insured_id, document_key, name, scheme, account_balance_fen, "
                             "ytd_year, ytd_fund_paid_fen, ytd_deductible_met_fen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (insured_id, key, *values))
        return JSONResponse({"insured_id": insured_id})

    # -- insured persons --

    @app.post("/v1/insured/verify", tags=["insured"])
    def verify(request: Verify) -> Response:
        """Whether a document and name belong to an insured person."""
        def effect() -> Response:
            key = document_key(request.document_type, request.document_number)
            with store.read() as conn:
                person = conn.execute("SELECT * FROM persons WHERE document_key = ?", (key,)).fetchone()
            if person is None or person["name"] != request.name.strip():
                raise SandboxError(404, "not_insured", "no insured person with this document and name")
            return signer.json({"insured_id": person["insured_id"], "scheme": person["scheme"],
                                "name_masked": mask_name(person["name"])})
        return run(signer, faults.take("verify"), effect)

    @app.get("/v1/insured/{insured_id}", tags=["insured"])
    def insured(insured_id: str) -> Response:
        """The person's scheme, personal account and what is left of this year's deductible and cap."""
        year = china_day(utcnow()).year
        with store.read() as conn:
            person = person_by_id(conn, insured_id)
        fund_paid, deductible_met = _ytd(person, year)
        policy = POLICY[person["scheme"]]
        return signer.json({
            "insured_id": person["insured_id"], "scheme": person["scheme"],
            "account_balance_fen": person["account_balance_fen"], "ytd_fund_paid_fen": fund_paid,
            "deductible_remaining_fen": max(0, policy.deductible_fen - deductible_met),
            "cap_remaining_fen": max(0, policy.yearly_cap_fen - fund_paid)})

    # -- settlement --

    def compute(conn: sqlite3.Connection, bill: Bill, year: int) -> tuple[sqlite3.Row, dict[str, Any]]:
        person = person_by_id(conn, bill.insured_id)
        fund_paid, deductible_met = _ytd(person, year)
        return person, split(person["scheme"], bill.institution_level, bill.items, bill.use_account,
                             balance_fen=person["account_balance_fen"], ytd_fund_paid_fen=fund_paid,
                             ytd_deductible_met_fen=deductible_met)

    @app.post("/v1/presettle", tags=["settlement"])
    def presettle(request: Bill) -> Response:
        """The split the insurer would make now; nothing is changed."""
        def effect() -> Response:
            with store.read() as conn:
                _, result = compute(conn, request, china_day(utcnow()).year)
            return signer.json({"insured_id": request.insured_id, "institution_level": request.institution_level,
                                **result})
        return run(signer, faults.take("presettle"), effect)

    @app.post("/v1/settle", tags=["settlement"])
    def settle(request: Settle) -> Response:
        """Settle a bill: the fund and the account pay their parts. Idempotent by ``settlement_id``."""
        print_ = fingerprint({"insured_id": request.insured_id, "institution_level": request.institution_level,
                              "use_account": request.use_account,
                              "items": [[i.code, i.category, i.self_share_permille if i.category == "B" else None,
                                         i.quantity, i.unit_price_fen] for i in request.items]})

        def effect() -> Response:
            now = utcnow()
            with store.write() as conn:
                if conn.execute("SELECT 1 FROM reversals WHERE settlement_id = ?",
                                (request.settlement_id,)).fetchone() is not None:
                    raise SandboxError(409, "already_reversed", "this settlement id was reversed; it cannot settle")
                done = conn.execute("SELECT fingerprint, answer FROM settlements WHERE settlement_id = ?",
                                    (request.settlement_id,)).fetchone()
                if done is not None:
                    if done["fingerprint"] != print_:
                        raise SandboxError(409, "idempotency_mismatch",
                                           "this settlement id was used for a different bill")
                    return signer.response(done["answer"])
                year = china_day(now).year
                person, result = compute(conn, request, year)
                fund_paid, deductible_met = _ytd(person, year)
                insurer_ref = new_ref("YB", now)
                answer = body_bytes({
                    "settlement_id": request.settlement_id, "insurer_ref": insurer_ref,
                    "total_fen": result["total_fen"], "fund_fen": result["fund_fen"],
                    "account_fen": result["account_fen"], "cash_fen": result["cash_fen"], "settled_at": iso(now)})
                conn.execute(
                    "INSERT INTO settlements (settlement_id, insured_id, insurer_ref, fingerprint, year, total_fen, "
                    "deductible_fen, fund_fen, account_fen, cash_fen, status, settled_at, answer) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'settled', ?, ?)",
                    (request.settlement_id, request.insured_id, insurer_ref, print_, year, result["total_fen"],
                     result["deductible_fen"], result["fund_fen"], result["account_fen"], result["cash_fen"],
                     iso(now), answer))
                conn.execute("UPDATE persons SET account_balance_fen = account_balance_fen - ?, ytd_year = ?, "
                             "ytd_fund_paid_fen = ?, ytd_deductible_met_fen = ? WHERE insured_id = ?",
                             (result["account_fen"], year, fund_paid + result["fund_fen"],
                              deductible_met + result["deductible_fen"], request.insured_id))
                _record(conn, "SETTLE", request.settlement_id, insurer_ref, request.settlement_id,
                        result["fund_fen"], result["account_fen"], now)
            return signer.response(answer)
        return run(signer, faults.take("settle"), effect)

    @app.post("/v1/reverse", tags=["settlement"])
    def reverse(request: Reverse) -> Response:
        """Undo a settlement (冲正); for an id never settled, remember it so a late settle is refused."""
        def effect() -> Response:
            now = utcnow()
            with store.write() as conn:
                done = conn.execute("SELECT answer FROM reversals WHERE settlement_id = ?",
                                    (request.settlement_id,)).fetchone()
                if done is not None:
                    return signer.response(done["answer"])
                s = conn.execute("SELECT * FROM settlements WHERE settlement_id = ?",
                                 (request.settlement_id,)).fetchone()
                status = "none" if s is None else "reversed"
                answer = body_bytes({"settlement_id": request.settlement_id, "status": status})
                conn.execute("INSERT INTO reversals (settlement_id, status, reason, at, answer) VALUES (?, ?, ?, ?, ?)",
                             (request.settlement_id, status, request.reason, iso(now), answer))
                if s is not None:
                    fund = s["fund_fen"] - s["refunded_fund_fen"]
                    account = s["account_fen"] - s["refunded_account_fen"]
                    _undo_ytd(conn, s["insured_id"], s["year"], fund, s["deductible_fen"], account)
                    conn.execute("UPDATE settlements SET status = 'reversed' WHERE settlement_id = ?",
                                 (request.settlement_id,))
                    _record(conn, "REVERSE", request.settlement_id, s["insurer_ref"], request.settlement_id,
                            fund, account, now)
            return signer.response(answer)
        return run(signer, faults.take("reverse"), effect)

    @app.post("/v1/refunds", tags=["settlement"])
    def refund(request: Refund) -> Response:
        """Give back part of a settlement: the account part to the balance, the fund part off the year."""
        print_ = fingerprint({"settlement_id": request.settlement_id, "fund_fen": request.fund_fen,
                              "account_fen": request.account_fen})

        def effect() -> Response:
            now = utcnow()
            with store.write() as conn:
                done = conn.execute("SELECT fingerprint, answer FROM refunds WHERE refund_id = ?",
                                    (request.refund_id,)).fetchone()
                if done is not None:
                    if done["fingerprint"] != print_:
                        raise SandboxError(409, "idempotency_mismatch",
                                           "this refund id was used for a different refund")
                    return signer.response(done["answer"])
                if request.fund_fen + request.account_fen <= 0:
                    raise SandboxError(422, "invalid", "a refund gives back something: fund_fen + account_fen > 0")
                s = conn.execute("SELECT * FROM settlements WHERE settlement_id = ?",
                                 (request.settlement_id,)).fetchone()
                if s is None:
                    raise SandboxError(404, "unknown_settlement", "no settlement with this id")
                if s["status"] == "reversed":
                    raise SandboxError(409, "already_reversed", "the settlement was reversed; nothing to refund")
                fund_left = s["fund_fen"] - s["refunded_fund_fen"]
                account_left = s["account_fen"] - s["refunded_account_fen"]
                if request.fund_fen > fund_left or request.account_fen > account_left:
                    raise SandboxError(409, "refund_exceeds",
                                       f"at most fund {fund_left} fen and account {account_left} fen are left")
                answer = body_bytes({"refund_id": request.refund_id, "settlement_id": request.settlement_id,
                                     "status": "refunded", "fund_fen": request.fund_fen,
                                     "account_fen": request.account_fen})
                conn.execute("INSERT INTO refunds (refund_id, settlement_id, fund_fen, account_fen, fingerprint, at, "
                             "answer) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (request.refund_id, request.settlement_id, request.fund_fen, request.account_fen,
                              print_, iso(now), answer))
                conn.execute("UPDATE settlements SET refunded_fund_fen = refunded_fund_fen + ?, "
                             "refunded_account_fen = refunded_account_fen + ? WHERE settlement_id = ?",
                             (request.fund_fen, request.account_fen, request.settlement_id))
                _undo_ytd(conn, s["insured_id"], s["year"], request.fund_fen, 0, request.account_fen)
                _record(conn, "REFUND", request.refund_id, s["insurer_ref"], request.settlement_id,
                        request.fund_fen, request.account_fen, now)
            return signer.response(answer)
        return run(signer, faults.take("refund"), effect)

    @app.get("/v1/settlements/{settlement_id}", tags=["settlement"])
    def query(settlement_id: str) -> Response:
        """A settlement as the insurer has it now."""
        def effect() -> Response:
            with store.read() as conn:
                s = conn.execute("SELECT * FROM settlements WHERE settlement_id = ?", (settlement_id,)).fetchone()
            if s is None:
                raise SandboxError(404, "unknown_settlement", "no settlement with this id")
            return signer.json({key: s[key] for key in (
                "settlement_id", "status", "insurer_ref", "total_fen", "fund_fen", "account_fen", "cash_fen",
                "refunded_fund_fen", "refunded_account_fen")})
        return run(signer, faults.take("query"), effect)

    @app.get("/v1/statements/{day}", tags=["statement"])
    def statement(day: str) -> Response:
        """The day's operations (China date) as CSV."""
        on = parse_day(day)
        with store.read() as conn:
            rows = conn.execute("SELECT * FROM operations WHERE day = ? ORDER BY seq", (on.isoformat(),)).fetchall()
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["record", "platform_id", "insurer_ref", "settlement_id", "fund_fen", "account_fen", "at"])
        for r in rows:
            writer.writerow([r["record"], r["platform_id"], r["insurer_ref"], r["settlement_id"], r["fund_fen"],
                             r["account_fen"], r["at"]])
        return signer.response(out.getvalue().encode(), media_type="text/csv; charset=utf-8")

    return app
