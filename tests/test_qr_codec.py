"""EHC-QR version 1 codec (docs/qr-format.md): Base45, the signed payload, two-in-one, images.

Every image we draw is read back by a real decoder (zxing-cpp) from the real PNG / SVG bytes; the
signature is checked by the ``openssl`` command as an independent implementation.
"""

from __future__ import annotations

import re
import secrets
import shutil
import struct
import subprocess
import zlib
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehc.crypto import SM2PrivateKey
from ehc.qr import codec
from ehc.qr.codec import (
    MULTI_PREFIX,
    PREFIX,
    CodeType,
    Payload,
    QRExpired,
    QRKeyUnknown,
    QRMalformed,
    QRNotYetValid,
    QRPaymentMismatch,
    QRRejected,
    QRSignatureInvalid,
    QRVersionUnsupported,
    Signer,
    combine,
    decode,
    issue_dynamic,
    issue_static,
    national_plaintext,
    open_card_ref,
    read,
    render_png,
    render_svg,
    revocation_id,
    split,
    tlv,
    verify,
)
from ehc.qr.codec.base45 import ALPHABET, b45decode, b45encode

NOW = datetime(2026, 11, 26, 8, 30, tzinfo=UTC)
KEY = SM2PrivateKey.generate()
OTHER_KEY = SM2PrivateKey.generate()
SIGNER = Signer("Q1a2b3c", KEY)
KEYS = {"Q1a2b3c": KEY.public_key}.get
SECRET = secrets.token_bytes(32)
CARD = secrets.token_hex(32).upper()
PAYMENT = tlv.encode(
    b"\x61",
    tlv.encode(b"\x4f", bytes.fromhex("A000000333010101"))  # a UnionPay debit AID, as a sandbox channel would
    + tlv.encode(b"\x57", bytes.fromhex("6212345678901234D2912101000000000F"))
    # EMVCo CPM: the cryptogram and its companions in the application specific transparent template 63
    + tlv.encode(b"\x63", tlv.encode(b"\x9f\x27", b"\x80") + tlv.encode(b"\x9f\x36", b"\x00\x01")
                 + tlv.encode(b"\x9f\x26", bytes.fromhex("1122334455667788"))),
)
QR_ALNUM = re.compile(r"[0-9A-Z $%*+\-./:]*")


def dynamic(**kw):
    args = {"ref_secret": SECRET, "ehc_id": CARD, "sequence": 1, "now": NOW, **kw}
    return issue_dynamic(SIGNER, **args)


# ------------------------------------------------------------------------------------------------
# Base45 (RFC 9285) and BER-TLV
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, text",
    [(b"AB", "BB8"), (b"Hello!!", "%69 VD92EX0"), (b"base-45", "UJCLQE7W581"), (b"ietf!", "QED8WEX0"), (b"", "")],
)
def test_base45_rfc9285_vectors(raw, text):
    assert b45encode(raw) == text
    assert b45decode(text) == raw


@pytest.mark.parametrize("bad", ["GGW", "ZZZ", "A", "BB8A", "bb8", "BB8!", "UJCLQE7W58é", ":::"])
def test_base45_refuses_non_canonical_text(bad):
    with pytest.raises(ValueError):
        b45decode(bad)


@given(st.binary(max_size=300))
def test_base45_round_trip_in_the_alphanumeric_set(data):
    text = b45encode(data)
    assert QR_ALNUM.fullmatch(text)
    assert b45decode(text) == data


@given(st.lists(st.tuples(st.sampled_from([b"\x4f", b"\x57", b"\x61", b"\x9f\x26", b"\x85"]), st.binary(max_size=400)), max_size=4))
def test_tlv_round_trip(items):
    assert tlv.decode(b"".join(tlv.encode(t, v) for t, v in items)) == items


@pytest.mark.parametrize("bad", ["4f", "4f05aabb", "4f8105" + "aa" * 5, "9f", "4f83000001aa", "00"])
def test_tlv_refuses_broken_encodings(bad):
    with pytest.raises(ValueError):
        tlv.decode(bytes.fromhex(bad))


# ------------------------------------------------------------------------------------------------
# Round trips
# ------------------------------------------------------------------------------------------------
def test_dynamic_code_round_trip_and_only_the_platform_learns_the_card():
    code = dynamic(sequence=7)
    assert code.text.startswith(PREFIX) and QR_ALNUM.fullmatch(code.text)
    payload = read(code.text, KEYS, now=NOW + timedelta(seconds=30))
    assert payload.type is CodeType.DYNAMIC and payload.key_id == "Q1a2b3c"
    assert payload.issued_at == int(NOW.timestamp()) and payload.validity == 120
    assert payload.expires_at == payload.issued_at + 120
    ref = open_card_ref(SECRET, payload)
    assert CARD.startswith(ref.ehc_id_prefix) and len(ref.ehc_id_prefix) == 20 and ref.sequence == 7
    # No personal data and not even the card id, in any form, in the code.
    raw = decode(code.text).to_bytes()
    assert bytes.fromhex(CARD)[:4] not in raw and CARD[:8] not in code.text
    # Another platform secret opens it to garbage, not to this card.
    assert not CARD.startswith(open_card_ref(secrets.token_bytes(32), payload).ehc_id_prefix)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(list(CodeType)),
    validity=st.integers(1, 3600),
    sequence=st.integers(0, 0xFFFF),
    card=st.binary(min_size=32, max_size=32).map(lambda b: b.hex().upper()),
    issued=st.integers(0, 2**32 - 1),
    key_id=st.from_regex(r"Q[0-9a-f]{6}", fullmatch=True),
    with_payment=st.booleans(),
)
def test_codec_round_trip_for_arbitrary_fields(kind, validity, sequence, card, issued, key_id, with_payment):
    now = datetime.fromtimestamp(issued, UTC)
    signer = Signer(key_id, KEY)
    extra = {"payment_template": PAYMENT} if with_payment else {}
    if kind is CodeType.DYNAMIC:
        code = issue_dynamic(signer, ref_secret=SECRET, ehc_id=card, sequence=sequence, now=now, validity=validity, **extra)
    else:
        code = issue_static(signer, ref_secret=SECRET, ehc_id=card, sequence=sequence, now=now, **extra)
    text = combine(code, PAYMENT) if with_payment else code.text
    parts = split(text)
    assert parts.payment_template == (PAYMENT if with_payment else None)
    payload = verify(parts.code, {key_id: KEY.public_key}.get, now=now)
    assert payload == code.payload
    assert Payload.from_bytes(payload.to_bytes()) == payload
    assert payload.type is kind and payload.key_id == key_id and payload.issued_at == issued
    assert payload.validity == (validity if kind is CodeType.DYNAMIC else 0)
    ref = open_card_ref(SECRET, payload)
    assert (ref.ehc_id_prefix, ref.sequence) == (card[:20], sequence)


def test_signature_verifies_with_openssl(tmp_path):
    openssl = shutil.which("openssl") or "/usr/bin/openssl"
    code = dynamic()
    (tmp_path / "pub.pem").write_bytes(KEY.public_key.to_pem())
    (tmp_path / "msg").write_bytes(code.payload_bytes)
    r, s = int.from_bytes(code.signature[:32], "big"), int.from_bytes(code.signature[32:], "big")
    (tmp_path / "sig").write_bytes(encode_dss_signature(r, s))

    def ossl_verify(msg: str) -> bool:
        res = subprocess.run(
            [openssl, "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey", str(tmp_path / "pub.pem"),
             "-in", str(tmp_path / msg), "-sigfile", str(tmp_path / "sig"), "-pkeyopt", "distid:1234567812345678"],
            capture_output=True, timeout=30, check=False,
        )
        return res.returncode == 0 and b"Verified Successfully" in res.stdout

    assert ossl_verify("msg")
    (tmp_path / "msg2").write_bytes(code.payload_bytes[:-1] + bytes([code.payload_bytes[-1] ^ 1]))
    assert not ossl_verify("msg2")


# ------------------------------------------------------------------------------------------------
# Corruption: nothing altered is ever accepted
# ------------------------------------------------------------------------------------------------
FIXED = dynamic(sequence=3)
FIXED_RAW = FIXED.to_bytes()
FIXED_TWO = combine(dynamic(payment_template=PAYMENT), PAYMENT)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, len(FIXED_RAW) - 1), mask=st.integers(1, 255))
def test_any_corrupted_byte_is_rejected(index, mask):
    raw = bytearray(FIXED_RAW)
    raw[index] ^= mask
    text = PREFIX + b45encode(bytes(raw))
    with pytest.raises(QRRejected) as caught:
        read(text, KEYS, now=NOW)
    if index >= len(FIXED_RAW) - 64:
        assert caught.value.code == "qr_signature_invalid"


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_any_changed_character_is_rejected(data):
    text = data.draw(st.sampled_from([FIXED.text, FIXED_TWO]))
    i = data.draw(st.integers(0, len(text) - 1))
    c = data.draw(st.sampled_from(ALPHABET + "abz!é\n").filter(lambda ch: ch != text[i]))
    changed = text[:i] + c + text[i + 1 :]
    with pytest.raises(QRRejected):
        verify(split(changed).code, KEYS, now=NOW)


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(0, len(FIXED.text) - 1), extra=st.text(ALPHABET, max_size=3))
def test_truncated_or_extended_text_is_rejected(cut, extra):
    for text in [FIXED.text[:cut]] + ([FIXED.text + extra] if extra else []):
        with pytest.raises(QRRejected):
            read(text, KEYS, now=NOW)


@pytest.mark.parametrize(
    "text, code",
    [
        ("", "qr_malformed"),
        ("HC1:NCFOXN%TS3DH", "qr_malformed"),
        ("https://example.org/", "qr_malformed"),
        (PREFIX + "bb8", "qr_malformed"),
        (PREFIX + "BB8", "qr_malformed"),
        ("EHC2:" + FIXED.text[5:], "qr_version_unsupported"),
        ("EHCM2:" + FIXED.text[5:], "qr_version_unsupported"),
        (MULTI_PREFIX + b45encode(b"\x85\x05CPV02"), "qr_malformed"),
        (MULTI_PREFIX + b45encode(b"\x85\x05CPV01"), "qr_malformed"),
    ],
)
def test_malformed_codes_have_precise_codes(text, code):
    with pytest.raises(QRRejected) as caught:
        read(text, KEYS, now=NOW) if not text.startswith(MULTI_PREFIX) else split(text)
    assert caught.value.code == code and caught.value.status == 422


def test_a_later_payload_version_is_reported_as_unsupported_not_forged():
    raw = bytearray(FIXED_RAW)
    raw[0] = 2
    with pytest.raises(QRVersionUnsupported):
        decode(PREFIX + b45encode(bytes(raw)))


def test_reserved_flags_and_wrong_lengths_are_malformed():
    for flags in (0x02, 0x40):
        raw = bytearray(FIXED_RAW)
        raw[1] |= flags
        with pytest.raises(QRMalformed):
            decode(PREFIX + b45encode(bytes(raw)))
    static_with_expiry = bytearray(FIXED_RAW)
    static_with_expiry[1] = 1
    with pytest.raises(QRMalformed):
        decode(PREFIX + b45encode(bytes(static_with_expiry)))


# ------------------------------------------------------------------------------------------------
# Keys and time
# ------------------------------------------------------------------------------------------------
def test_wrong_and_unknown_keys():
    with pytest.raises(QRKeyUnknown) as caught:
        read(FIXED.text, {}.get, now=NOW)
    assert caught.value.code == "qr_key_unknown"
    with pytest.raises(QRSignatureInvalid) as caught:
        read(FIXED.text, {"Q1a2b3c": OTHER_KEY.public_key}.get, now=NOW)
    assert caught.value.code == "qr_signature_invalid"
    # A forger with his own key, claiming our key id, is refused.
    forged = issue_dynamic(Signer("Q1a2b3c", OTHER_KEY), ref_secret=SECRET, ehc_id=CARD, sequence=1, now=NOW)
    with pytest.raises(QRSignatureInvalid):
        read(forged.text, KEYS, now=NOW)
    # Signed by a second, trusted key: accepted under its own id only.
    rotated = issue_dynamic(Signer("Q0ff0ff", OTHER_KEY), ref_secret=SECRET, ehc_id=CARD, sequence=1, now=NOW)
    both = {"Q1a2b3c": KEY.public_key, "Q0ff0ff": OTHER_KEY.public_key}.get
    assert read(rotated.text, both, now=NOW).key_id == "Q0ff0ff"
    assert read(FIXED.text, both, now=NOW).key_id == "Q1a2b3c"


def test_dynamic_validity_window_with_clock_skew():
    code = dynamic(validity=120)
    skew = codec.DEFAULT_SKEW
    read(code.text, KEYS, now=NOW)
    read(code.text, KEYS, now=NOW + timedelta(seconds=120 + skew - 1))
    read(code.text, KEYS, now=NOW - timedelta(seconds=skew))
    with pytest.raises(QRExpired) as caught:
        read(code.text, KEYS, now=NOW + timedelta(seconds=120 + skew))
    assert caught.value.code == "qr_expired"
    with pytest.raises(QRNotYetValid) as caught:
        read(code.text, KEYS, now=NOW - timedelta(seconds=skew + 1))
    assert caught.value.code == "qr_not_yet_valid"
    with pytest.raises(QRExpired):
        read(code.text, KEYS, now=NOW + timedelta(seconds=121), skew=0)


def test_forged_validity_cannot_extend_a_code():
    raw = bytearray(dynamic(validity=60).to_bytes())
    raw[9:11] = (3600).to_bytes(2, "big")
    with pytest.raises(QRSignatureInvalid):
        read(PREFIX + b45encode(bytes(raw)), KEYS, now=NOW + timedelta(seconds=600))


def test_static_code_never_expires_and_carries_the_revocation_id():
    a = issue_static(SIGNER, ref_secret=SECRET, ehc_id=CARD, sequence=2, now=NOW)
    b = issue_static(SIGNER, ref_secret=SECRET, ehc_id=CARD, sequence=2, now=NOW + timedelta(days=3))
    later = read(a.text, KEYS, now=NOW + timedelta(days=3650))
    assert later.type is CodeType.STATIC and later.expires_at is None and later.validity == 0
    rid = revocation_id(SECRET, CARD, 2)
    assert a.payload.nonce == b.payload.nonce == rid  # every print of one card issue: same revocation id
    assert revocation_id(SECRET, CARD, 3) != rid  # a reissue gets a new one
    assert open_card_ref(SECRET, b.payload).sequence == 2


def test_misuse_is_refused_at_issue_time():
    with pytest.raises(ValueError):
        Signer("Q12", KEY)
    with pytest.raises(ValueError):
        dynamic(validity=0)
    with pytest.raises(ValueError):
        dynamic(validity=3601)
    with pytest.raises(ValueError):
        dynamic(ehc_id="not-a-card")
    with pytest.raises(ValueError):
        dynamic(ehc_id=" ".join([CARD[:32], CARD[32:]]))
    with pytest.raises(ValueError):
        dynamic(now=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError):
        dynamic(ref_secret=b"short")
    with pytest.raises(ValueError):
        dynamic(payment_template=b"\x4f\x01\x00")
    with pytest.raises(ValueError):  # combining with a payment part it was not issued for
        combine(dynamic(), PAYMENT)


# ------------------------------------------------------------------------------------------------
# Unlinkability
# ------------------------------------------------------------------------------------------------
def test_two_dynamic_codes_of_one_card_cannot_be_linked():
    codes = [dynamic() for _ in range(200)]  # same card, same issue, same second
    tails = [c.to_bytes()[11:31] for c in codes]  # nonce + card reference: all that differs per card
    assert len({c.payload.card_ref for c in codes}) == len(codes)
    assert len({c.payload.nonce for c in codes}) == len(codes)
    # Pairs of the same card look like pairs of unrelated cards: about half the 160 bits differ,
    # and no 4-byte run of one card reference appears in another (chance: ~2e-8 per pair).
    for a, b in pairwise(tails):
        distance = (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()
        assert 40 <= distance <= 120
    for a, b in pairwise(codes):
        ra, rb = a.payload.card_ref, b.payload.card_ref
        assert not any(ra[i : i + 4] in rb for i in range(len(ra) - 3))
    # Bit by bit, the references of one card are balanced: no bit is stuck to the card's value.
    for bit in range(96):
        ones = sum((int.from_bytes(c.payload.card_ref, "big") >> bit) & 1 for c in codes)
        assert 50 <= ones <= 150


# ------------------------------------------------------------------------------------------------
# Two codes in one
# ------------------------------------------------------------------------------------------------
def test_two_in_one_container_splits_for_the_cashier():
    code = dynamic(payment_template=PAYMENT)
    text = combine(code, PAYMENT)
    assert text.startswith(MULTI_PREFIX) and QR_ALNUM.fullmatch(text)
    items = tlv.decode(b45decode(text[len(MULTI_PREFIX):]))
    assert items[0] == (b"\x85", b"CPV01")
    assert [t for t, _ in items] == [b"\x85", b"\x61", b"\x61"]
    parts = split(text)
    assert parts.payment_template == PAYMENT
    assert verify(parts.code, KEYS, now=NOW) == code.payload
    # The health part cut out and re-wrapped as EHC1: is refused: a bound part is valid only in its
    # container (docs/qr-format.md §8, step 3).
    with pytest.raises(QRPaymentMismatch) as rewrapped:
        read(parts.code.text, KEYS, now=NOW)
    assert rewrapped.value.code == "qr_payment_mismatch"
    assert read(dynamic().text, KEYS, now=NOW)  # an unbound code reads as ever


def test_two_in_one_refuses_a_spliced_payment_part():
    other = tlv.encode(b"\x61", tlv.encode(b"\x4f", bytes.fromhex("A000000333010102")) + tlv.encode(b"\x9f\x26", b"\x00" * 8))
    code = dynamic(payment_template=PAYMENT)
    good = b45decode(combine(code, PAYMENT)[len(MULTI_PREFIX):])
    spliced = good[: len(good) - len(PAYMENT)] + other
    with pytest.raises(QRPaymentMismatch) as caught:
        split(MULTI_PREFIX + b45encode(spliced))
    assert caught.value.code == "qr_payment_mismatch"
    # A health code issued without a payment part, wrapped with someone's payment token.
    bare = dynamic()
    health = tlv.encode(b"\x61", tlv.encode(b"\x4f", codec.HEALTH_AID) + tlv.encode(b"\x53", bare.to_bytes()))
    with pytest.raises(QRPaymentMismatch):
        split(MULTI_PREFIX + b45encode(tlv.encode(b"\x85", b"CPV01") + health + PAYMENT))
    with pytest.raises(QRMalformed):  # two payment applications
        split(MULTI_PREFIX + b45encode(spliced + other))


# ------------------------------------------------------------------------------------------------
# Sizes, images, decoded back by zxing-cpp
# ------------------------------------------------------------------------------------------------
def _png_to_gray(png: bytes) -> tuple[bytes, int, int]:
    """A small PNG reader (greyscale or palette, 1-8 bit, all five filters), so zxing-cpp reads the
    exact bytes we serve without adding an image library."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    i, idat, palette = 8, b"", None
    while i < len(png):
        (n,) = struct.unpack(">I", png[i : i + 4])
        kind, body = png[i + 4 : i + 8], png[i + 8 : i + 8 + n]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert color in (0, 3) and interlace == 0
        elif kind == b"PLTE":
            palette = body
        elif kind == b"IDAT":
            idat += body
        i += 12 + n
    raw = zlib.decompress(idat)
    stride = (width * depth + 7) // 8
    bpp = max(1, depth // 8)
    rows, prev, pos = [], bytearray(stride), 0
    for _ in range(height):
        ftype, line = raw[pos], bytearray(raw[pos + 1 : pos + 1 + stride])
        pos += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if ftype == 1:
                line[x] = (line[x] + a) & 0xFF
            elif ftype == 2:
                line[x] = (line[x] + b) & 0xFF
            elif ftype == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    out = bytearray()
    top = (1 << depth) - 1
    for line in rows:
        for x in range(width):
            bit = x * depth
            v = (line[bit // 8] >> (8 - depth - bit % 8)) & top
            out.append(palette[v * 3] if palette else v * 255 // top)
    return bytes(out), width, height


def _svg_to_gray(svg: bytes, px: int = 4) -> tuple[bytes, int, int]:
    """Rasterise segno's SVG (one path of horizontal strokes, 1 module wide) at ``px`` pixels a module."""
    text = svg.decode()
    size = int(re.search(r'width="(\d+)"', text).group(1)) // int(re.search(r"scale\((\d+)\)", text).group(1))
    assert '<path fill="#fff"' in text  # an opaque white background under the modules (§7)
    d = re.search(r'<path class="qrline"[^>]* d="([^"]+)"', text).group(1)  # the dark modules
    grid = [[255] * size for _ in range(size)]
    x = y = 0.0
    for op, args in re.findall(r"([MmHhVv])([-\d. ]+)", d.replace(",", " ")):
        nums = [float(v) for v in args.split()]
        if op == "M":
            x, y = nums
        elif op == "m":
            x, y = x + nums[0], y + nums[1]
        elif op == "h":
            for col in range(int(x), int(x + nums[0])):
                grid[int(y)][col] = 0
            x += nums[0]
        else:
            raise AssertionError(f"unexpected path command {op}")
    out = bytearray()
    for row in grid:
        line = bytes(v for v in row for _ in range(px))
        out += line * px
    return bytes(out), size * px, size * px


def _zxing_read(gray: bytes, width: int, height: int) -> list[str]:
    image = memoryview(gray).cast("B", (height, width))
    found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    return [(b.text, b.symbology_identifier, b.ec_level) for b in found]


def _three_kinds():
    dyn = dynamic()
    sta = issue_static(SIGNER, ref_secret=SECRET, ehc_id=CARD, sequence=1, now=NOW)
    two = combine(dynamic(payment_template=PAYMENT), PAYMENT)
    return {"dynamic": dyn.text, "static": sta.text, "two-in-one": two}


def test_sizes_and_qr_versions():
    texts = _three_kinds()
    versions = {k: render_png(t).version for k, t in texts.items()}
    lengths = {k: len(t) for k, t in texts.items()}
    # The figures stated in docs/qr-format.md §10.
    assert lengths["dynamic"] == lengths["static"] == 148  # budget: 150
    assert versions["dynamic"] == versions["static"] == 6  # budget: 8
    assert versions["two-in-one"] <= 10
    for text in texts.values():
        assert codec.qr_symbol(text).mode == "alphanumeric"
        assert codec.qr_symbol(text).error == "M"


@settings(max_examples=8, deadline=None)
@given(sequence=st.integers(0, 0xFFFF), validity=st.integers(1, 3600))
def test_every_dynamic_png_decodes_back_with_zxing(sequence, validity):
    code = dynamic(sequence=sequence, validity=validity)
    image = render_png(code.text, scale=4)
    assert image.media_type == "image/png" and image.version <= 8
    found = _zxing_read(*_png_to_gray(image.data))
    assert [t for t, _, _ in found] == [code.text]
    assert read(found[0][0], KEYS, now=NOW) == code.payload


@pytest.mark.parametrize("kind", ["dynamic", "static", "two-in-one"])
def test_png_and_svg_images_decode_back_with_zxing(kind):
    text = _three_kinds()[kind]
    png, svg = render_png(text), render_svg(text)
    assert png.version == svg.version
    assert svg.media_type == "image/svg+xml" and svg.data.startswith(b"<svg")
    for gray in (_png_to_gray(png.data), _svg_to_gray(svg.data)):
        found = _zxing_read(*gray)
        assert len(found) == 1
        decoded, symbology, ec_level = found[0]
        assert decoded == text and ec_level == "M" and symbology == "]Q1"
        parts = split(decoded)
        assert verify(parts.code, KEYS, now=NOW).type is (CodeType.STATIC if kind == "static" else CodeType.DYNAMIC)
        assert parts.payment_template == (PAYMENT if kind == "two-in-one" else None)


# ------------------------------------------------------------------------------------------------
# The national plaintext form
# ------------------------------------------------------------------------------------------------
def test_national_plaintext_form():
    dyn = read(dynamic(validity=120).text, KEYS, now=NOW)
    assert national_plaintext(CARD, dyn) == f"{CARD}:0:20261126163200"  # 08:32 UTC = 16:32 Beijing time
    sta = issue_static(SIGNER, ref_secret=SECRET, ehc_id=CARD, sequence=1, now=NOW).payload
    assert national_plaintext(CARD.lower(), sta) == f"{CARD}:1"


# ------------------------------------------------------------------------------------------------
# The worked example of docs/qr-format.md §14 stays true
# ------------------------------------------------------------------------------------------------
EXAMPLE_PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoEcz1UBgi0DQgAEO0UpDevlJPjzcTwpfXRDGOYrKrpE
2tSvXnKkUSNy42BOlSEsOsiezAYFYIDBdfyI5elcelCOliYHV5aifBN+0g==
-----END PUBLIC KEY-----
"""
EXAMPLE_TEXT = (
    "EHC1:V50*D3WS7501N01%AF5H7GSOA3TD-0 2CS*KHW3V-TKUK1%S7B9SVK55PO1KECF*TMXQ0 .1CQNYIS-5EFS996GFE3G2CFG84"
    "%OAYNOAM+MN64J+NTFE1ZDMK9N3QSYS4IYF+PFBXOO/C34"
)
EXAMPLE_CARD = "6A0C1E2F3B4D5C6E7F8091A2B3C4D5E6F708192A3B4C5D6E7F8091A2B3C4D5E6"


def test_the_spec_example_verifies():
    from pathlib import Path

    from ehc.crypto import SM2PublicKey

    spec = (Path(__file__).resolve().parents[1] / "docs" / "qr-format.md").read_text()
    assert EXAMPLE_TEXT in spec and EXAMPLE_PUBLIC_KEY.strip() in spec
    keys = {"Q1a2b3c": SM2PublicKey.from_pem(EXAMPLE_PUBLIC_KEY)}.get
    issued = datetime(2026, 11, 26, 8, 30, tzinfo=UTC)
    payload = read(EXAMPLE_TEXT, keys, now=issued + timedelta(seconds=60))
    assert payload.to_bytes().hex() == "01001a2b3c6b07ee0800788f3a61c2d4e5f607425f6aa52b1d6cecb9a38ee4"
    assert len(EXAMPLE_TEXT) == 148 and render_png(EXAMPLE_TEXT).version == 6
    secret = bytes(range(32))
    ref = open_card_ref(secret, payload)
    assert (ref.ehc_id_prefix, ref.sequence) == (EXAMPLE_CARD[:20], 2)
    assert national_plaintext(EXAMPLE_CARD, payload) in spec
    assert revocation_id(secret, EXAMPLE_CARD, 2).hex() in spec
    with pytest.raises(QRExpired):
        read(EXAMPLE_TEXT, keys, now=issued + timedelta(days=1))
