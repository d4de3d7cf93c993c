"""EHC-QR version 1: the signed payload, its text form and its image (spec: docs/qr-format.md).

Pure functions, no database and no clock of their own: the caller passes ``now``, the signer, the
card-reference secret and the key look-up. The platform issues with :func:`issue_dynamic` /
:func:`issue_static`; anyone reads with :func:`decode` then :func:`verify` (or :func:`read`, both);
only the platform resolves a code to its card with :func:`open_card_ref`.

Every refusal is a :class:`QRRejected` (a 422 ``Invalid``) with a stable ``code`` from the spec.
"""

from __future__ import annotations

import io
import re
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

import segno
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ...crypto import SM2PrivateKey, SM2PublicKey, hmac_sm3, sm3
from ...kit.clock import CHINA
from ...kit.errors import Invalid
from ...kit import tlv
from .base45 import b45decode, b45encode

VERSION = 1
PREFIX = "EHC1:"  # one signed code
MULTI_PREFIX = "EHCM1:"  # two-in-one: EMVCo CPM container (tag 85 + application templates 61)

DEFAULT_VALIDITY = 120  # seconds a dynamic code is accepted (it is redrawn every 60 s)
MAX_VALIDITY = 3600
DEFAULT_SKEW = 15  # seconds of clock difference an offline verifier tolerates on either side
# The platform's own online check runs on the issuer's clock and passes skew=0 for expiry, so a
# dynamic code is accepted there for exactly its validity (120 s by default).

NONCE_SIZE = 8
REF_SIZE = 12  # card handle (10) + sequence (2), encrypted
HANDLE_SIZE = 10
BINDING_SIZE = 8
SIG_SIZE = 64  # raw r || s, 32 bytes each
_HEADER = struct.Struct(">BB3sIH")  # version, flags, key id, issued_at, validity
BASE_SIZE = _HEADER.size + NONCE_SIZE + REF_SIZE  # 31 bytes

_FLAG_TYPE = 0x01
_FLAG_PAYMENT = 0x80
_FLAGS_KNOWN = _FLAG_TYPE | _FLAG_PAYMENT

HEALTH_AID = bytes.fromhex("F04548435152")  # proprietary AID (ISO 7816-5 "F" range): F0 "EHCQR"
PAYLOAD_FORMAT = b"CPV01"
_KEY_ID = re.compile(r"Q[0-9a-f]{6}")
_EHC_ID = re.compile(r"[0-9A-Fa-f]{64}")
_OTHER_VERSION = re.compile(r"EHCM?[0-9]+:")  # a later version's prefix: say so, do not call it junk


class CodeType(IntEnum):
    """Same numbers as the national plaintext form ``EHCID:type[:validity]``."""

    DYNAMIC = 0
    STATIC = 1


# -- errors --------------------------------------------------------------------------------------
class QRRejected(Invalid):
    code = "qr_malformed"
    title = "QR code rejected"


class QRMalformed(QRRejected):
    code = "qr_malformed"


class QRVersionUnsupported(QRRejected):
    code = "qr_version_unsupported"


class QRKeyUnknown(QRRejected):
    code = "qr_key_unknown"


class QRSignatureInvalid(QRRejected):
    code = "qr_signature_invalid"


class QRExpired(QRRejected):
    code = "qr_expired"


class QRNotYetValid(QRRejected):
    code = "qr_not_yet_valid"


class QRPaymentMismatch(QRRejected):
    code = "qr_payment_mismatch"


# Steps 9-11 (§9): refused by the platform online, or by a terminal from its lists and its own memory.
class QRRevoked(QRRejected):
    code = "qr_revoked"


class QRReplayed(QRRejected):
    code = "qr_replayed"


# -- the payload ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Payload:
    type: CodeType
    key_id: str  # "Q" + 6 lower-case hex digits
    issued_at: int  # Unix seconds, UTC
    validity: int  # seconds; 0 for static codes (no expiry)
    nonce: bytes  # 8 bytes: random (dynamic) or the revocation id (static)
    card_ref: bytes  # 12 bytes, encrypted; only the platform opens it
    payment_binding: bytes | None = None  # first 8 bytes of SM3(payment template), two-in-one only
    version: int = VERSION

    @property
    def expires_at(self) -> int | None:
        return None if self.type is CodeType.STATIC else self.issued_at + self.validity

    def to_bytes(self) -> bytes:
        flags = int(self.type) | (_FLAG_PAYMENT if self.payment_binding else 0)
        head = _HEADER.pack(self.version, flags, bytes.fromhex(self.key_id[1:]), self.issued_at, self.validity)
        return head + self.nonce + self.card_ref + (self.payment_binding or b"")

    @classmethod
    def from_bytes(cls, data: bytes) -> Payload:
        if len(data) < 1:
            raise QRMalformed("empty payload")
        if data[0] != VERSION:
            raise QRVersionUnsupported(f"EHC-QR version {data[0]} is not supported (this reader knows {VERSION})")
        if len(data) < _HEADER.size:
            raise QRMalformed("payload too short")
        version, flags, kid, issued_at, validity = _HEADER.unpack_from(data)
        if flags & ~_FLAGS_KNOWN:
            raise QRMalformed("reserved flag bits are set")
        expected = BASE_SIZE + (BINDING_SIZE if flags & _FLAG_PAYMENT else 0)
        if len(data) != expected:
            raise QRMalformed(f"payload is {len(data)} bytes, expected {expected}")
        kind = CodeType(flags & _FLAG_TYPE)
        if (kind is CodeType.STATIC) != (validity == 0) or validity > MAX_VALIDITY:
            raise QRMalformed("validity does not fit the code type")
        o = _HEADER.size
        return cls(
            type=kind,
            key_id="Q" + kid.hex(),
            issued_at=issued_at,
            validity=validity,
            nonce=data[o : o + NONCE_SIZE],
            card_ref=data[o + NONCE_SIZE : BASE_SIZE],
            payment_binding=data[BASE_SIZE:] if flags & _FLAG_PAYMENT else None,
            version=version,
        )


@dataclass(frozen=True)
class SignedCode:
    """A decoded code. Its signature is NOT checked yet: call :func:`verify` before trusting it."""

    payload: Payload
    payload_bytes: bytes
    signature: bytes  # raw r || s

    def to_bytes(self) -> bytes:
        return self.payload_bytes + self.signature

    @property
    def text(self) -> str:
        return PREFIX + b45encode(self.to_bytes())


@dataclass(frozen=True)
class Signer:
    key_id: str
    key: SM2PrivateKey

    def __post_init__(self) -> None:
        _check_key_id(self.key_id)


@dataclass(frozen=True)
class CardRef:
    """What the platform learns from a code: which card (by the first 10 bytes of its id) and issue."""

    ehc_id_prefix: str  # 20 upper-case hex digits; the card is the one whose ehc_id starts with it
    sequence: int


KeyLookup = Callable[[str], "SM2PublicKey | None"]


# -- issuing (platform side) ---------------------------------------------------------------------
def issue_dynamic(
    signer: Signer,
    *,
    ref_secret: bytes,
    ehc_id: str,
    sequence: int,
    now: datetime,
    validity: int = DEFAULT_VALIDITY,
    payment_template: bytes | None = None,
) -> SignedCode:
    """A fresh dynamic code: random nonce, so no two codes of one card share a byte pattern."""
    if not 0 < validity <= MAX_VALIDITY:
        raise ValueError(f"validity must be 1..{MAX_VALIDITY} seconds")
    return _issue(signer, ref_secret, ehc_id, sequence, now, CodeType.DYNAMIC, validity,
                  secrets.token_bytes(NONCE_SIZE), payment_template)


def issue_static(
    signer: Signer, *, ref_secret: bytes, ehc_id: str, sequence: int, now: datetime,
    payment_template: bytes | None = None,
) -> SignedCode:
    """A printable code with no expiry. Its nonce is the card issue's revocation id."""
    return _issue(signer, ref_secret, ehc_id, sequence, now, CodeType.STATIC, 0,
                  revocation_id(ref_secret, ehc_id, sequence), payment_template)


def revocation_id(ref_secret: bytes, ehc_id: str, sequence: int) -> bytes:
    """The 8 bytes a static code of this card issue carries as nonce, and the revocation list lists."""
    return hmac_sm3(_subkey(ref_secret, b"revocation-id"), _card_bytes(ehc_id) + _seq_bytes(sequence))[:NONCE_SIZE]


def open_card_ref(ref_secret: bytes, payload: Payload) -> CardRef:
    """Platform only: decrypt the card reference of a (verified) payload."""
    plain = _xor(payload.card_ref, _keystream(ref_secret, payload))
    return CardRef(ehc_id_prefix=plain[:HANDLE_SIZE].hex().upper(),
                   sequence=int.from_bytes(plain[HANDLE_SIZE:], "big"))


def _issue(
    signer: Signer, ref_secret: bytes, ehc_id: str, sequence: int, now: datetime,
    kind: CodeType, validity: int, nonce: bytes, payment_template: bytes | None,
) -> SignedCode:
    issued_at = _seconds(now)
    binding = payment_binding(payment_template) if payment_template is not None else None
    draft = Payload(kind, signer.key_id, issued_at, validity, nonce, bytes(REF_SIZE), binding)
    plain = _card_bytes(ehc_id)[:HANDLE_SIZE] + _seq_bytes(sequence)
    payload = Payload(kind, signer.key_id, issued_at, validity, nonce,
                      _xor(plain, _keystream(ref_secret, draft)), binding)
    data = payload.to_bytes()
    r, s = decode_dss_signature(signer.key.sign(data))
    return SignedCode(payload, data, r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def _subkey(secret: bytes, label: bytes) -> bytes:
    if len(secret) < 16:
        raise ValueError("the card-reference secret must be at least 16 bytes")
    return hmac_sm3(secret, b"EHC-QR1/" + label)


def _keystream(ref_secret: bytes, payload: Payload) -> bytes:
    # Bound to everything before the reference: version, flags, key id, issued_at, validity, nonce.
    header = payload.to_bytes()[: _HEADER.size + NONCE_SIZE]
    return hmac_sm3(_subkey(ref_secret, b"card-ref"), header)[:REF_SIZE]


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _card_bytes(ehc_id: str) -> bytes:
    if not isinstance(ehc_id, str) or not _EHC_ID.fullmatch(ehc_id):
        raise ValueError("ehc_id must be 64 hex digits")
    return bytes.fromhex(ehc_id)


def _seq_bytes(sequence: int) -> bytes:
    if not 0 <= sequence <= 0xFFFF:
        raise ValueError("card sequence out of range")
    return sequence.to_bytes(2, "big")


def _seconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("pass an aware datetime (UTC)")
    return int(moment.timestamp())


def _check_key_id(key_id: str) -> None:
    if not _KEY_ID.fullmatch(key_id):
        raise ValueError(f"QR key ids look like 'Q1a2b3c', not {key_id!r}")


# -- reading (anyone) ----------------------------------------------------------------------------
def decode(text: str) -> SignedCode:
    """``EHC1:`` text → payload + signature. Checks form only; the signature is checked by verify()."""
    if not isinstance(text, str) or not text.startswith(PREFIX):
        if isinstance(text, str) and _OTHER_VERSION.match(text):
            raise QRVersionUnsupported("this reader knows EHC-QR version 1 only")
        raise QRMalformed(f"not an EHC-QR code (expected the prefix {PREFIX})")
    try:
        raw = b45decode(text[len(PREFIX):])
    except ValueError as exc:
        raise QRMalformed(f"bad Base45: {exc}") from None
    return decode_bytes(raw)


def decode_bytes(raw: bytes) -> SignedCode:
    if len(raw) <= SIG_SIZE:
        raise QRMalformed("code too short")
    payload_bytes, signature = raw[:-SIG_SIZE], raw[-SIG_SIZE:]
    payload = Payload.from_bytes(payload_bytes)
    return SignedCode(payload, payload_bytes, signature)


def verify(code: SignedCode, keys: KeyLookup, *, now: datetime, skew: int = DEFAULT_SKEW) -> Payload:
    """Check, in the spec's order, key → signature → validity window. Returns the trusted payload."""
    public = keys(code.payload.key_id)
    if public is None:
        raise QRKeyUnknown(f"no trusted QR key {code.payload.key_id}")
    r = int.from_bytes(code.signature[:32], "big")
    s = int.from_bytes(code.signature[32:], "big")
    if r == 0 or s == 0 or not public.verify(encode_dss_signature(r, s), code.payload_bytes):
        raise QRSignatureInvalid("the signature does not match: forged or altered code")
    check_validity(code.payload, now=now, skew=skew)
    return code.payload


def check_validity(payload: Payload, *, now: datetime, skew: int = DEFAULT_SKEW) -> None:
    t = _seconds(now)
    if t + skew < payload.issued_at:
        raise QRNotYetValid("the code was issued in the future: check the clock")
    expires = payload.expires_at
    if expires is not None and t - skew >= expires:
        raise QRExpired("the code has expired: show a fresh one")


def read(text: str, keys: KeyLookup, *, now: datetime, skew: int = DEFAULT_SKEW) -> Payload:
    """decode + verify, for a single ``EHC1:`` code."""
    return verify(_single(text), keys, now=now, skew=skew)


def _single(text: str) -> SignedCode:
    """A single ``EHC1:`` code. A two-in-one code's health part, cut out and re-wrapped as ``EHC1:``,
    is refused (§8, step 3): it was signed bound to a payment part and is valid only together with it."""
    single = decode(text)
    if single.payload.payment_binding is not None:
        raise QRPaymentMismatch("this health code was issued bound to a payment part: it is valid only "
                                "inside its EHCM1: code")
    return single


# -- two codes in one (EMVCo consumer-presented QR container) ------------------------------------
def payment_binding(payment_template: bytes) -> bytes:
    """The 8 bytes that tie a health code to the payment template it travels with."""
    items = _parse(payment_template)
    if len(items) != 1 or items[0][0] != b"\x61":
        raise ValueError("the payment part must be one application template (tag 61)")
    return sm3(payment_template)[:BINDING_SIZE]


def combine(code: SignedCode, payment_template: bytes) -> str:
    """``EHCM1:`` text: tag 85 "CPV01", the health template, then the payment template."""
    if code.payload.payment_binding != payment_binding(payment_template):
        raise ValueError("issue the health code with this payment_template so the two are bound")
    health = tlv.encode(b"\x61", tlv.encode(b"\x4f", HEALTH_AID) + tlv.encode(b"\x53", code.to_bytes()))
    return MULTI_PREFIX + b45encode(tlv.encode(b"\x85", PAYLOAD_FORMAT) + health + payment_template)


@dataclass(frozen=True)
class Split:
    code: SignedCode
    payment_template: bytes | None  # the whole 61 template for the payment channel, as received


def split(text: str) -> Split:
    """Either form → the health code and, for two-in-one, the payment template (binding checked)."""
    if isinstance(text, str) and text.startswith(PREFIX):
        return Split(_single(text), None)
    if not isinstance(text, str) or not text.startswith(MULTI_PREFIX):
        return Split(decode(text), None)  # raises the precise error
    try:
        items = _parse(b45decode(text[len(MULTI_PREFIX):]))
    except ValueError as exc:
        raise QRMalformed(f"bad container: {exc}") from None
    if not items or items[0] != (b"\x85", PAYLOAD_FORMAT):
        raise QRMalformed("the container must start with tag 85 'CPV01'")
    health: SignedCode | None = None
    payments: list[bytes] = []
    for tag, value in items[1:]:
        if tag != b"\x61":
            raise QRMalformed(f"unexpected tag {tag.hex().upper()} in the container")
        try:
            inner = _parse(value)
        except ValueError as exc:
            raise QRMalformed(f"bad application template: {exc}") from None
        if not inner or inner[0][0] != b"\x4f":
            raise QRMalformed("an application template must start with its AID (tag 4F)")
        if inner[0][1] == HEALTH_AID:
            if health is not None or len(inner) != 2 or inner[1][0] != b"\x53":
                raise QRMalformed("exactly one health-card template, holding 4F and 53")
            health = decode_bytes(inner[1][1])
        else:
            payments.append(tlv.encode(b"\x61", value))
    if health is None:
        raise QRMalformed("no health-card application in the container")
    if len(payments) != 1:
        raise QRMalformed("a two-in-one code carries exactly one payment application")
    binding = health.payload.payment_binding
    if binding is None or binding != sm3(payments[0])[:BINDING_SIZE]:
        raise QRPaymentMismatch("the payment application is not the one this health code was issued with")
    return Split(health, payments[0])


def _parse(data: bytes) -> list[tuple[bytes, bytes]]:
    return tlv.decode(data)


# -- images --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Image:
    data: bytes
    version: int  # QR version (1..40) actually used, at error-correction level M
    media_type: str


def qr_symbol(text: str) -> segno.QRCode:
    """The QR symbol for a code's text: level M, never boosted, never Micro QR."""
    return segno.make_qr(text, error="m", boost_error=False)


def render_png(text: str, *, scale: int = 8, border: int = 4) -> Image:
    qr = qr_symbol(text)
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=scale, border=border)
    return Image(buf.getvalue(), int(qr.version), "image/png")


def render_svg(text: str, *, scale: int = 8, border: int = 4) -> Image:
    qr = qr_symbol(text)
    buf = io.BytesIO()
    # Black modules on an opaque white background, quiet zone included (docs/qr-format.md §7): an SVG
    # rasterised without a backdrop (transparent -> black in many tools) must stay readable.
    qr.save(buf, kind="svg", scale=scale, border=border, xmldecl=False, dark="#000", light="#fff")
    return Image(buf.getvalue(), int(qr.version), "image/svg+xml")


# -- the national plaintext form -----------------------------------------------------------------
def national_plaintext(ehc_id: str, payload: Payload) -> str:
    """``EHCID:type[:validity]`` for legacy hospital systems; validity = expiry, yyyyMMddHHmmss, UTC+8."""
    _card_bytes(ehc_id)
    head = f"{ehc_id.upper()}:{int(payload.type)}"
    if payload.expires_at is None:
        return head
    return head + ":" + datetime.fromtimestamp(payload.expires_at, CHINA).strftime("%Y%m%d%H%M%S")
