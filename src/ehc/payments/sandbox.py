"""The sandbox payment channel: a stand-in for a bank or medical-insurance channel until the payment
issue lands (docs/qr-format.md §8.1). It moves no money.

Each draw builds one EMVCo application template, as a consumer-presented QR (CPM) carries it: the
application cryptogram and its companions sit in the application specific transparent template ``63``
inside the ``61``, where an issuer's CPM kernel looks for them::

    61 35
       4F 06 F0 45 48 43 53 42                  AID: proprietary F0 "EHCSB" (ISO 7816-5 "F" range)
       50 07 "SANDBOX"                          application label
       57 0C <token 16 digits> D <YYMM> 201     track-2 equivalent data, BCD, one-time token
       63 14                                    application specific transparent template
          9F 27 01 80                           cryptogram information data: an ARQC
          9F 36 02 <ATC>                        application transaction counter
          9F 26 08 <cryptogram>                 HMAC-SM3(K, AID ‖ track 2 ‖ 9F27 ‖ 9F36 ‖ purpose)[0:8]

55 bytes, always: the two-in-one code is QR version 10 at level M (§10). The token is fresh random
digits (with a Luhn check digit) on every draw, and so is the ATC: a real wallet counts its
transactions, but a counter per card would link two payment parts of one card, which §5.4 forbids,
and the sandbox keeps no state to count with. The cryptogram depends on both, so two payment parts of
one card share nothing but the constant fields (§5.4). The sandbox keeps no token vault: a real channel
maps a token to an account; here ``validate`` proves only that the platform's sandbox made the
template for that purpose and that it has not expired.

``K`` is derived from the key store's non-rotating ``index`` secret (``HMAC-SM3(index,
"ehc/payments-sandbox")``, the way §5.2 derives the card-reference secret), so no new key kind.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from ..cards.service import Card
from ..crypto import KeyStore, hmac_sm3
from ..kit import tlv
from .schemas import PaymentToken, PaymentTokenInvalid

NAME = "sandbox"
AID = bytes.fromhex("F04548435342")  # F0 "EHCSB"
LABEL = b"SANDBOX"
SERVICE_CODE = "201"  # international, integrated circuit card, normal authorisation
TOKEN_PREFIX = "99"  # the same for everyone: a sandbox token range, linking nothing
TEMPLATE_SIZE = 55
CID_ARQC = b"\x80"  # 9F27: the cryptogram is an authorisation request (EMV Book 3, cryptogram type 10)
_SECRET_LABEL = b"ehc/payments-sandbox"
_CRYPTOGRAM_SIZE = 8
_ATC_SIZE = 2
_TAGS = [b"\x4f", b"\x50", b"\x57", b"\x63"]  # of the 61 template, in this order
_CRYPTOGRAM_TAGS = [b"\x9f\x27", b"\x9f\x36", b"\x9f\x26"]  # of its 63 template, in this order


def luhn_digit(digits: str) -> str:
    """The check digit that makes ``digits + check`` pass the Luhn test (ISO/IEC 7812-1)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def _expiry(now: datetime) -> str:
    """YYMM of the month after ``now``: a one-time token needs no longer, track 2 says no finer."""
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return f"{year % 100:02d}{month:02d}"


def _track2(token: str, expiry: str) -> bytes:
    return bytes.fromhex(f"{token}D{expiry}{SERVICE_CODE}")


@dataclass(frozen=True)
class SandboxChannel:
    """Implements ``payments.service.PaymentChannel``."""

    secret: bytes
    name: str = NAME

    def _cryptogram(self, track2: bytes, cid: bytes, atc: bytes, purpose: str) -> bytes:
        return hmac_sm3(self.secret, AID + track2 + cid + atc + purpose.encode())[:_CRYPTOGRAM_SIZE]

    def template_for(self, card: Card, *, purpose: str, now: datetime) -> bytes:
        # The card only decides that there is a payment part; nothing of it enters the token.
        body = TOKEN_PREFIX + f"{secrets.randbelow(10**13):013d}"
        track2 = _track2(body + luhn_digit(body), _expiry(now))
        atc = secrets.token_bytes(_ATC_SIZE)  # random, not counted: see the module's docstring
        transparent = (tlv.encode(b"\x9f\x27", CID_ARQC) + tlv.encode(b"\x9f\x36", atc)
                       + tlv.encode(b"\x9f\x26", self._cryptogram(track2, CID_ARQC, atc, purpose)))
        inner = (tlv.encode(b"\x4f", AID) + tlv.encode(b"\x50", LABEL) + tlv.encode(b"\x57", track2)
                 + tlv.encode(b"\x63", transparent))
        return tlv.encode(b"\x61", inner)

    def validate(self, template: bytes, *, purpose: str, now: datetime) -> PaymentToken:
        """What the cashier side calls with the payment part it split off (``qr.codec.split``)."""
        items = _items(template)
        if [tag for tag, _ in items] != _TAGS:
            raise PaymentTokenInvalid("The sandbox template holds 4F, 50, 57, 63 in this order.")
        (_, aid), (_, label), (_, track2), (_, transparent) = items
        if aid != AID or label != LABEL:
            raise PaymentTokenInvalid("This payment application is not the sandbox's.")
        inside = _decode(transparent, "63 template")
        if [tag for tag, _ in inside] != _CRYPTOGRAM_TAGS:
            raise PaymentTokenInvalid("The sandbox's 63 template holds 9F27, 9F36, 9F26 in this order.")
        (_, cid), (_, atc), (_, cryptogram) = inside
        if cid != CID_ARQC or len(atc) != _ATC_SIZE:
            raise PaymentTokenInvalid("The cryptogram information or transaction counter is not the sandbox's.")
        token, expiry = _parse_track2(track2)
        if not hmac.compare_digest(cryptogram, self._cryptogram(track2, cid, atc, purpose)):
            raise PaymentTokenInvalid("The cryptogram does not match: altered, or made for another purpose.")
        if expiry < f"{now.year % 100:02d}{now.month:02d}":
            raise PaymentTokenInvalid("The payment token has expired.")
        return PaymentToken(NAME, token, expiry, purpose)


def _items(template: bytes) -> list[tuple[bytes, bytes]]:
    """The data objects of the one ``61`` template ``template`` is (the ``63`` inside left encoded)."""
    outer = _decode(template, "payment application template")
    if len(outer) != 1 or outer[0][0] != b"\x61":
        raise PaymentTokenInvalid("Not a payment application template: one 61 template expected.")
    return _decode(outer[0][1], "payment application template")


def _decode(data: bytes, what: str) -> list[tuple[bytes, bytes]]:
    try:
        return tlv.decode(data)
    except ValueError as exc:
        raise PaymentTokenInvalid(f"Not a {what}: {exc}.") from None


def _parse_track2(track2: bytes) -> tuple[str, str]:
    text = track2.hex().upper()
    token, sep, rest = text.partition("D")
    if (sep != "D" or len(token) != 16 or not token.isdigit() or len(rest) != 7 or not rest.isdigit()
            or luhn_digit(token[:-1]) != token[-1] or rest[4:] != SERVICE_CODE or not "01" <= rest[2:4] <= "12"):
        raise PaymentTokenInvalid("Track-2 data is not a sandbox token.")
    return token, rest[:4]


def token_of(template: bytes) -> str:
    """The one-time token inside a template this channel built (no check: ``validate`` checks)."""
    items = dict(_items(template))
    if b"\x57" not in items:
        raise PaymentTokenInvalid("No track-2 data in this payment template.")
    return _parse_track2(items[b"\x57"])[0]


def secret_from(keys: KeyStore) -> bytes:
    return hmac_sm3(keys.secret(keys.active("index").id), _SECRET_LABEL)


def for_keys(keys: KeyStore) -> SandboxChannel:
    return SandboxChannel(secret_from(keys))


def validate(keys: KeyStore, template: bytes, *, purpose: str, now: datetime) -> PaymentToken:
    """``sandbox.validate``: the cashier's check of a payment part, with the platform's keys."""
    return for_keys(keys).validate(template, purpose=purpose, now=now)
