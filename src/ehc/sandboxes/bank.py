"""The bank sandbox: accounts, payment tokens, charges (with cancel), refunds, signed callbacks and the
daily statement in the bank's own pipe-separated format.

A declined charge is an ordinary answer (200, ``status: declined``) that moves no money; it is kept
like a successful one (a repeat of its id gets the same answer). Every recorded charge and refund is
also POSTed, signed, to the callback URL (the request's, else the service's ``--callback-url``) from
a background thread.
"""

from __future__ import annotations

import secrets
import sqlite3
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from .common import (
    CHINA,
    Fault,
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
    send_callback,
    utcnow,
)

OPERATIONS = ("token", "charge", "refund", "query")
CALLBACK_OPERATIONS = ("charge", "refund")


class Account(BaseModel):
    account_no: str = Field(min_length=8, max_length=32, pattern=r"^[0-9]+$")
    name: str = Field(min_length=1, max_length=100)
    balance_fen: int = Field(ge=0, le=10**14, strict=True)


class TokenRequest(BaseModel):
    account_no: str = Field(min_length=1, max_length=32)
    holder_name: str = Field(min_length=1, max_length=100)


class Charge(BaseModel):
    charge_id: str = Field(min_length=1, max_length=64)
    token: str = Field(min_length=1, max_length=64)
    amount_fen: int = Field(gt=0, le=10**12, strict=True)
    description: str = Field("", max_length=200)
    callback_url: str | None = Field(None, max_length=500)


class Refund(BaseModel):
    refund_id: str = Field(min_length=1, max_length=64)
    charge_id: str = Field(min_length=1, max_length=64)
    amount_fen: int = Field(gt=0, le=10**12, strict=True)
    callback_url: str | None = Field(None, max_length=500)


SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    account_no TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    balance_fen INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    token TEXT PRIMARY KEY,
    account_no TEXT NOT NULL REFERENCES accounts(account_no),
    active INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS charges (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    charge_id TEXT NOT NULL UNIQUE,
    token TEXT NOT NULL,
    account_no TEXT,                            -- null when declined for an unknown token
    amount_fen INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,                       -- succeeded | declined
    reason TEXT,
    bank_ref TEXT NOT NULL UNIQUE,
    refunded_fen INTEGER NOT NULL DEFAULT 0,
    at TEXT NOT NULL,
    day TEXT NOT NULL,                          -- China date, YYYY-MM-DD
    answer BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS cancelled (          -- charge ids cancelled before the bank saw them
    charge_id TEXT PRIMARY KEY,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    refund_id TEXT NOT NULL UNIQUE,
    charge_id TEXT NOT NULL REFERENCES charges(charge_id),
    amount_fen INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    bank_ref TEXT NOT NULL UNIQUE,
    at TEXT NOT NULL,
    day TEXT NOT NULL,
    answer BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS charges_day ON charges(day, seq);
CREATE INDEX IF NOT EXISTS refunds_day ON refunds(day, seq)
"""


def mask_account(account_no: str) -> str:
    return f"{account_no[:4]} **** **** {account_no[-4:]}"


def _charge_view(row: sqlite3.Row) -> dict:
    return {"charge_id": row["charge_id"], "status": row["status"], "reason": row["reason"],
            "bank_ref": row["bank_ref"], "amount_fen": row["amount_fen"], "refunded_fen": row["refunded_fen"],
            "at": row["at"]}


def create_app(data_dir: Path, callback_url: str | None = None) -> FastAPI:
    data_dir = prepare(data_dir)
    signer = Signer(load_or_create_key(data_dir))
    store = Store(data_dir / "bank.sqlite3", SCHEMA)
    faults = Switchboard(OPERATIONS, CALLBACK_OPERATIONS)
    app = base_app("EHC bank sandbox", "A stand-in bank (docs/sandboxes.md).", signer, faults)
    app.state.store = store

    def notify(url: str | None, body: bytes, fault: Fault | None) -> None:
        target = url or callback_url
        if target:
            send_callback(signer, target, body, fault=fault)

    # -- admin --

    @app.post("/admin/accounts", tags=["admin"])
    def put_account(request: Account) -> JSONResponse:
        """Add an account or set its holder and balance."""
        with store.write() as conn:
            conn.execute("INSERT INTO accounts (account_no, name, balance_fen) VALUES (?, ?, ?) "
                         "ON CONFLICT (account_no) DO UPDATE SET name = excluded.name, balance_fen = excluded.balance_fen",
                         (request.account_no, request.name.strip(), request.balance_fen))
        return JSONResponse({"account_no": request.account_no})

    @app.get("/admin/accounts/{account_no}", tags=["admin"])
    def get_account(account_no: str) -> JSONResponse:
        with store.read() as conn:
            row = conn.execute("SELECT * FROM accounts WHERE account_no = ?", (account_no,)).fetchone()
        if row is None:
            raise SandboxError(404, "unknown_account", "no such account")
        return JSONResponse({"account_no": row["account_no"], "balance_fen": row["balance_fen"]})

    @app.delete("/admin/tokens/{token}", tags=["admin"])
    def deactivate_token(token: str) -> JSONResponse:
        """Make a token unusable (charges with it are then declined, ``token_unknown``)."""
        with store.write() as conn:
            found = conn.execute("UPDATE tokens SET active = 0 WHERE token = ?", (token,)).rowcount
        if not found:
            raise SandboxError(404, "unknown_token", "no such token")
        return JSONResponse({"token": token, "active": False})

    # -- tokens --

    @app.post("/v1/tokens", tags=["tokens"])
    def issue_token(request: TokenRequest) -> Response:
        """A payment token for an account whose holder is named right."""
        def effect() -> Response:
            with store.write() as conn:
                account = conn.execute("SELECT * FROM accounts WHERE account_no = ?",
                                       (request.account_no,)).fetchone()
                if account is None or account["name"] != request.holder_name.strip():
                    raise SandboxError(404, "unknown_account", "no account with this number and holder")
                token = "tok_" + secrets.token_hex(12)
                conn.execute("INSERT INTO tokens (token, account_no, active, created_at) VALUES (?, ?, 1, ?)",
                             (token, request.account_no, iso(utcnow())))
            return signer.json({"token": token, "masked": mask_account(request.account_no)})
        return run(signer, faults.take("token"), effect)

    # -- charges --

    @app.post("/v1/charges", tags=["charges"])
    def charge(request: Charge) -> Response:
        """Charge a token. Declined (insufficient funds, unknown token, cancelled) is a normal answer."""
        print_ = fingerprint({"token": request.token, "amount_fen": request.amount_fen})
        fault = faults.take("charge")

        def effect() -> Response:
            now = utcnow()
            with store.write() as conn:
                done = conn.execute("SELECT fingerprint, answer FROM charges WHERE charge_id = ?",
                                    (request.charge_id,)).fetchone()
                if done is not None:
                    if done["fingerprint"] != print_:
                        raise SandboxError(409, "idempotency_mismatch", "this charge id was used for another charge")
                    return signer.response(done["answer"])
                token = conn.execute("SELECT * FROM tokens WHERE token = ? AND active = 1",
                                     (request.token,)).fetchone()
                account_no = token["account_no"] if token is not None else None
                if conn.execute("SELECT 1 FROM cancelled WHERE charge_id = ?",
                                (request.charge_id,)).fetchone() is not None:
                    status, reason = "declined", "cancelled"
                elif token is None:
                    status, reason = "declined", "token_unknown"
                else:
                    moved = conn.execute("UPDATE accounts SET balance_fen = balance_fen - ? "
                                         "WHERE account_no = ? AND balance_fen >= ?",
                                         (request.amount_fen, account_no, request.amount_fen)).rowcount
                    status, reason = ("succeeded", None) if moved else ("declined", "insufficient_funds")
                bank_ref = new_ref("BK", now)
                answer = body_bytes({"charge_id": request.charge_id, "status": status, "reason": reason,
                                     "bank_ref": bank_ref, "amount_fen": request.amount_fen, "at": iso(now)})
                conn.execute("INSERT INTO charges (charge_id, token, account_no, amount_fen, fingerprint, status, "
                             "reason, bank_ref, at, day, answer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (request.charge_id, request.token, account_no, request.amount_fen, print_, status,
                              reason, bank_ref, iso(now), china_day(now).isoformat(), answer))
            notify(request.callback_url, answer, fault)
            return signer.response(answer)
        return run(signer, fault, effect)

    @app.post("/v1/charges/{charge_id}/cancel", tags=["charges"])
    def cancel(charge_id: str) -> Response:
        """Make sure a charge the caller gave up on never takes money."""
        now = utcnow()
        with store.write() as conn:
            row = conn.execute("SELECT status FROM charges WHERE charge_id = ?", (charge_id,)).fetchone()
            if row is not None and row["status"] == "succeeded":
                raise SandboxError(409, "already_charged", "the charge succeeded; refund it instead")
            conn.execute("INSERT INTO cancelled (charge_id, at) VALUES (?, ?) ON CONFLICT (charge_id) DO NOTHING",
                         (charge_id, iso(now)))
        return signer.json({"charge_id": charge_id, "status": "cancelled"})

    @app.get("/v1/charges/{charge_id}", tags=["charges"])
    def query(charge_id: str) -> Response:
        def effect() -> Response:
            with store.read() as conn:
                row = conn.execute("SELECT * FROM charges WHERE charge_id = ?", (charge_id,)).fetchone()
            if row is None:
                raise SandboxError(404, "unknown_charge", "no charge with this id")
            return signer.json(_charge_view(row))
        return run(signer, faults.take("query"), effect)

    # -- refunds --

    @app.post("/v1/refunds", tags=["refunds"])
    def refund(request: Refund) -> Response:
        """Give back (part of) a successful charge to its account."""
        print_ = fingerprint({"charge_id": request.charge_id, "amount_fen": request.amount_fen})
        fault = faults.take("refund")

        def effect() -> Response:
            now = utcnow()
            with store.write() as conn:
                done = conn.execute("SELECT fingerprint, answer FROM refunds WHERE refund_id = ?",
                                    (request.refund_id,)).fetchone()
                if done is not None:
                    if done["fingerprint"] != print_:
                        raise SandboxError(409, "idempotency_mismatch", "this refund id was used for another refund")
                    return signer.response(done["answer"])
                c = conn.execute("SELECT * FROM charges WHERE charge_id = ?", (request.charge_id,)).fetchone()
                if c is None:
                    raise SandboxError(404, "unknown_charge", "no charge with this id")
                if c["status"] != "succeeded":
                    raise SandboxError(409, "not_charged", "the charge was declined; nothing to refund")
                left = c["amount_fen"] - c["refunded_fen"]
                if request.amount_fen > left:
                    raise SandboxError(409, "refund_exceeds", f"at most {left} fen of this charge is left to refund")
                bank_ref = new_ref("BK", now)
                answer = body_bytes({"refund_id": request.refund_id, "charge_id": request.charge_id,
                                     "status": "succeeded", "amount_fen": request.amount_fen, "bank_ref": bank_ref,
                                     "at": iso(now)})
                conn.execute("UPDATE charges SET refunded_fen = refunded_fen + ? WHERE charge_id = ?",
                             (request.amount_fen, request.charge_id))
                conn.execute("UPDATE accounts SET balance_fen = balance_fen + ? WHERE account_no = ?",
                             (request.amount_fen, c["account_no"]))
                conn.execute("INSERT INTO refunds (refund_id, charge_id, amount_fen, fingerprint, bank_ref, at, day, "
                             "answer) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (request.refund_id, request.charge_id, request.amount_fen, print_, bank_ref, iso(now),
                              china_day(now).isoformat(), answer))
            notify(request.callback_url, answer, fault)
            return signer.response(answer)
        return run(signer, fault, effect)

    # -- statement --

    @app.get("/v1/statements/{day}", tags=["statement"])
    def statement(day: str) -> Response:
        """The day's charges and refunds (China date), in the bank's pipe-separated format."""
        on = parse_day(day)
        with store.read() as conn:
            charges = conn.execute("SELECT * FROM charges WHERE day = ? ORDER BY seq", (on.isoformat(),)).fetchall()
            refunds = conn.execute("SELECT * FROM refunds WHERE day = ? ORDER BY seq", (on.isoformat(),)).fetchall()
        details: list[tuple[str, str]] = []
        net = 0
        for c in charges:
            line = f"D|CHG|{c['charge_id']}|{c['bank_ref']}|{c['amount_fen']}|{c['status']}|{_hhmmss(c['at'])}"
            details.append((c["at"], line))
            if c["status"] == "succeeded":
                net += c["amount_fen"]
        for r in refunds:
            line = f"D|RFD|{r['refund_id']}|{r['bank_ref']}|{r['amount_fen']}|succeeded|{_hhmmss(r['at'])}"
            details.append((r["at"], line))
            net -= r["amount_fen"]
        details.sort(key=lambda d: d[0])  # stable: charges before refunds of the same second
        lines = [f"H|{on:%Y%m%d}|{len(details)}", *(d[1] for d in details), f"T|{net}"]
        return signer.response(("\n".join(lines) + "\n").encode(), media_type="text/plain; charset=utf-8")

    return app


def _hhmmss(at: str) -> str:
    return datetime.fromisoformat(at).astimezone(CHINA).strftime("%H%M%S")
