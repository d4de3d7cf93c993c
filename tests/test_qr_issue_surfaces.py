"""Getting a code: two-in-one codes with the sandbox payment channel, and the static code's PDF label.
On SQLite and PostgreSQL; every image (the PDF too, rendered by poppler's pdftoppm) is read back
with zxing-cpp, and every code read back is verified by the platform's own verify endpoint."""

from __future__ import annotations

import dataclasses
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zxingcpp
from factories import make_staff
from test_qr_codec import _png_to_gray
from test_qr_service import PERSON, draw, refused, scan

from ehc.app import create_app
from ehc.kit import tlv
from ehc.payments import sandbox
from ehc.payments.service import MEDICAL_PAYMENT, PaymentTokenInvalid
from ehc.qr import codec, label
from ehc.qr.codec.base45 import b45decode, b45encode


def _read(gray: bytes, width: int, height: int) -> zxingcpp.Barcode:
    found = zxingcpp.read_barcodes(memoryview(gray).cast("B", (height, width)),
                                   formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1, f"expected one QR code, found {len(found)}"
    return found[0]


def read_png(png: bytes) -> zxingcpp.Barcode:
    return _read(*_png_to_gray(png))


def raster(pdf: bytes, tmp_path: Path, dpi: int = 300) -> tuple[bytes, int, int]:
    """The first page as a printer would see it: 8-bit grey pixels, width, height (poppler's pdftoppm)."""
    (tmp_path / "label.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", str(dpi), "-gray", "-singlefile", str(tmp_path / "label.pdf"),
                    str(tmp_path / "label")], check=True)
    magic, size, depth, pixels = (tmp_path / "label.pgm").read_bytes().split(b"\n", 3)
    width, height = map(int, size.split())
    assert magic == b"P5" and depth == b"255" and len(pixels) == width * height
    return pixels, width, height


def read_pdf(pdf: bytes, tmp_path: Path, dpi: int = 300) -> zxingcpp.Barcode:
    """Render the first page at ``dpi`` and decode it."""
    return _read(*raster(pdf, tmp_path, dpi))


def now() -> datetime:
    return datetime.now(UTC)


# -- two codes in one --------------------------------------------------------------------------------

def test_a_two_in_one_code_splits_into_a_bound_sandbox_payment_and_a_health_code(client, platform, his, holder):
    ehc_id, resident = holder
    answer = client.post("/api/v1/me/qr/dynamic?payment=sandbox", headers=resident)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["payment_channel"] == "sandbox" and body["refresh_after"] == 60
    text = body["text"]
    assert text.startswith("EHCM1:") and len(text) == 272  # §10: a 55-byte payment template
    assert ehc_id not in text

    parts = codec.split(text)
    template = parts.payment_template
    assert template is not None and len(template) == sandbox.TEMPLATE_SIZE
    assert parts.code.payload.payment_binding == codec.payment_binding(template)  # the binding holds
    token = sandbox.validate(platform.keys, template, purpose=MEDICAL_PAYMENT, now=now())
    assert token.channel == "sandbox" and len(token.token) == 16 and token.token.startswith(sandbox.TOKEN_PREFIX)

    # One-time per draw: a second code's payment part shares no token or cryptogram (§5.4).
    second = codec.split(draw_two_in_one(client, resident)).payment_template
    other = sandbox.validate(platform.keys, second, purpose=MEDICAL_PAYMENT, now=now())
    assert other.token != token.token and second[-8:] != template[-8:]

    # The health part verifies on the existing endpoint, once.
    verified = scan(client, text, auth=his)
    assert verified.status_code == 200, verified.text
    assert verified.json()["ehc_id"] == ehc_id and verified.json()["code_type"] == 0
    refused(scan(client, text, auth=his), "qr_replayed")

    # Nobody grafts another draw's payment token onto a health code: the signed binding says no.
    grafted = _graft(draw_two_in_one(client, resident), second)
    refused(scan(client, grafted, auth=his), "qr_payment_mismatch")


def draw_two_in_one(client, headers) -> str:
    answer = client.post("/api/v1/me/qr/dynamic", params={"payment": "sandbox"}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["text"]


def _graft(text: str, payment_template: bytes) -> str:
    """The same container with its payment template swapped for another one."""
    raw = b45decode(text[len(codec.MULTI_PREFIX):])
    own = codec.split(text).payment_template
    assert raw.endswith(own)
    return codec.MULTI_PREFIX + b45encode(raw[: -len(own)] + payment_template)


def test_the_two_in_one_png_decodes_at_qr_version_10(client, his, holder):
    _, resident = holder
    answer = client.get("/api/v1/me/qr/dynamic.png?payment=sandbox", headers=resident)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png" and answer.headers["cache-control"] == "no-store"
    seen = read_png(answer.content)
    assert seen.text.startswith("EHCM1:") and seen.ec_level == "M"
    assert seen.extra["Version"] == "10" == answer.headers["x-ehc-qr-version"]  # §10
    assert answer.headers["x-ehc-refresh-after"] == "60"
    assert scan(client, seen.text, auth=his).status_code == 200

    single = read_png(client.get("/api/v1/me/qr/dynamic.png", headers=resident).content)
    assert single.text.startswith("EHC1:") and single.extra["Version"] == "6"


def test_unknown_payment_channels_and_inactive_cards_are_refused(client, platform, holder):
    _, resident = holder
    for route in ("/api/v1/me/qr/dynamic", "/api/v1/me/qr/dynamic.png"):
        method = client.post if route.endswith("dynamic") else client.get
        answer = method(route, params={"payment": "visa-of-dreams"}, headers=resident)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "payment_channel_unknown" and "sandbox" in answer.json()["detail"]

    # The sandbox moves no money: a production platform does not offer it.
    production = dataclasses.replace(platform, settings=dataclasses.replace(platform.settings,
                                                                             environment="production"))
    from fastapi.testclient import TestClient

    with TestClient(create_app(production), raise_server_exceptions=False) as prod:
        answer = prod.post("/api/v1/me/qr/dynamic?payment=sandbox", headers=resident)
        assert answer.status_code == 422 and answer.json()["code"] == "payment_channel_unknown", answer.text

    lost = client.post("/api/v1/me/card/report-lost", json={"reason": "phone lost"}, headers=resident)
    assert lost.status_code == 200, lost.text
    answer = client.post("/api/v1/me/qr/dynamic?payment=sandbox", headers=resident)
    assert answer.status_code == 409 and answer.json()["code"] == "card_not_active", answer.text


def test_the_sandbox_refuses_what_it_did_not_make():
    channel = sandbox.SandboxChannel(b"k" * 32)
    moment = datetime(2026, 11, 26, 8, 30, tzinfo=UTC)
    template = channel.template_for(None, purpose=MEDICAL_PAYMENT, now=moment)
    assert channel.validate(template, purpose=MEDICAL_PAYMENT, now=moment).expiry == "2612"
    assert codec.payment_binding(template)  # one 61 template, as the codec requires

    def refuses(candidate: bytes, **over) -> None:
        kwargs = {"purpose": MEDICAL_PAYMENT, "now": moment, **over}
        with pytest.raises(PaymentTokenInvalid):
            channel.validate(candidate, **kwargs)

    refuses(template, purpose="cash-withdrawal")  # made for another purpose
    refuses(template, now=datetime(2027, 1, 1, tzinfo=UTC))  # expired
    for i in range(len(template)):  # any altered byte
        refuses(template[:i] + bytes([template[i] ^ 0x01]) + template[i + 1:])
    refuses(template + b"\x00")
    with pytest.raises(PaymentTokenInvalid):  # another secret: not our sandbox
        sandbox.SandboxChannel(b"o" * 32).validate(template, purpose=MEDICAL_PAYMENT, now=moment)
    assert sandbox.luhn_digit("7992739871") == "3"  # the ISO/IEC 7812 worked example

    # The cryptogram's old place, directly in 61, is not where CPM puts it: refused.
    (_, inner), = tlv.decode(template)
    items = tlv.decode(inner)
    (_, transparent), = [item for item in items if item[0] == b"\x63"]
    flat = b"".join(tlv.encode(tag, value) for tag, value in items if tag != b"\x63")
    refuses(tlv.encode(b"\x61", flat + transparent))


def test_the_sandbox_puts_the_cryptogram_where_emvco_cpm_does():
    """Issue 10: CPM carries 9F26 and its companions in the application specific transparent template
    63 inside the application template 61, so a real issuer's kernel finds them there."""
    channel = sandbox.SandboxChannel(b"k" * 32)
    moment = datetime(2026, 11, 26, 8, 30, tzinfo=UTC)
    template = channel.template_for(None, purpose=MEDICAL_PAYMENT, now=moment)
    assert len(template) == sandbox.TEMPLATE_SIZE == 55
    (tag, inner), = tlv.decode(template)
    items = tlv.decode(inner)
    assert tag == b"\x61" and [t for t, _ in items] == [b"\x4f", b"\x50", b"\x57", b"\x63"]
    assert not {b"\x9f\x26", b"\x9f\x27", b"\x9f\x36"} & {t for t, _ in items}  # none directly in 61
    transparent = dict(tlv.decode(items[3][1]))
    assert list(transparent) == [b"\x9f\x27", b"\x9f\x36", b"\x9f\x26"]
    assert transparent[b"\x9f\x27"] == b"\x80"  # an ARQC
    assert len(transparent[b"\x9f\x36"]) == 2 and len(transparent[b"\x9f\x26"]) == 8
    assert sandbox.token_of(template) == channel.validate(template, purpose=MEDICAL_PAYMENT, now=moment).token

    # The counter is covered by the cryptogram: another ATC with the same cryptogram is refused.
    atc = transparent[b"\x9f\x36"]
    moved = template.replace(b"\x9f\x36\x02" + atc, b"\x9f\x36\x02" + bytes([atc[0] ^ 1, atc[1]]))
    with pytest.raises(PaymentTokenInvalid):
        channel.validate(moved, purpose=MEDICAL_PAYMENT, now=moment)
    # Fresh per draw (a per-card counter would link two payment parts of one card, §5.4).
    atcs = {dict(tlv.decode(dict(tlv.decode(tlv.decode(channel.template_for(None, purpose=MEDICAL_PAYMENT,
                                                                         now=moment))[0][1]))[b"\x63"]))[b"\x9f\x36"]
            for _ in range(20)}
    assert len(atcs) > 1


# -- the PDF label ---------------------------------------------------------------------------------

def test_a_clerk_prints_a_pdf_label_that_reads_back_and_verifies(client, platform, institution, his, holder,
                                                               tmp_path):
    ehc_id, resident = holder
    clerk = make_staff(platform, client, "window_clerk", institution)
    answer = client.get(f"/api/v1/cards/{ehc_id}/qr/static.pdf", headers=clerk)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf" and answer.content.startswith(b"%PDF-")
    assert "x-ehc-label-note" not in answer.headers  # the CJK font was found

    seen = read_pdf(answer.content, tmp_path)
    assert seen.text.startswith("EHC1:") and seen.extra["Version"] == "6"
    verified = scan(client, seen.text, auth=his)
    assert verified.status_code == 200, verified.text
    assert verified.json()["ehc_id"] == ehc_id and verified.json()["code_type"] == 1

    words = subprocess.run(["pdftotext", "-", "-"], input=answer.content, capture_output=True, check=True).stdout
    words = words.decode()
    assert "王*明" in words and PERSON["name"] not in words and ehc_id not in words
    assert "电子健康卡" in words and "Issued" in words

    # Reading the holder's name to print it is in the resident's "who looked at my data".
    log = client.get("/api/v1/me/access-log", headers=resident).json()["items"]
    assert any(e["purpose"] == "card.print" and e["institution_id"] == institution for e in log)

    nurse = make_staff(platform, client, "nurse", institution)
    assert client.get(f"/api/v1/cards/{ehc_id}/qr/static.pdf", headers=nurse).status_code == 403
    missing = client.get(f"/api/v1/cards/{'0' * 64}/qr/static.pdf", headers=clerk)
    assert missing.status_code == 404 and missing.json()["code"] == "card_not_found"


def test_label_modules_are_at_least_half_a_millimetre_and_it_prints_without_a_cjk_font(tmp_path, monkeypatch):
    text = "EHC1:" + "A" * 143
    made = label.render_label(text, holder="王*明", issued_on=datetime(2026, 11, 26).date())
    assert made.module_mm >= label.MIN_MODULE_MM and made.version == 6 and made.font_note is None
    assert read_pdf(made.pdf, tmp_path).text == text
    with pytest.raises(ValueError):
        label.render_label(text, holder="", issued_on=datetime(2026, 11, 26).date(), module_mm=0.4)

    monkeypatch.setattr(label, "CJK_FONTS", ((tmp_path / "no-such-font.ttc", 0),))
    plain = label.render_label(text, holder="王*明", issued_on=datetime(2026, 11, 26).date())
    assert plain.font_note == label.NO_CJK_NOTE
    assert read_pdf(plain.pdf, tmp_path).text == text


@pytest.mark.parametrize("dpi", [300, 600])
def test_label_modules_print_on_whole_dots_without_seams(tmp_path, dpi):
    """Issue 10: modules at sizes rounded to 0.01 pt left grey hairlines between neighbouring dark modules.
    Rasterised at print resolutions, every pixel of a dark module is black (no seam can hide between two),
    a light module is white inside (poppler may shade the one pixel column that touches a dark edge), and
    a run of adjacent dark modules has no lighter pixel anywhere along it."""
    text = "EHC1:" + "A" * 143
    made = label.render_label(text, holder="王*明", issued_on=datetime(2026, 11, 26).date())
    assert made.module_mm >= label.MIN_MODULE_MM
    pixels, width, _ = raster(made.pdf, tmp_path, dpi)
    scale = dpi / 72
    left, top, module = (v * scale for v in made.grid_pt)
    for v in (left, top, module):
        assert abs(v - round(v)) < 1e-6, "the grid must fall on whole device pixels"
    left, top, module = round(left), round(top), round(module)
    matrix = [list(row) for row in codec.qr_symbol(text).matrix_iter(border=4)]

    def px(x: int, y: int) -> int:
        return pixels[y * width + x]

    for r, row in enumerate(matrix):
        for c, dark in enumerate(row):
            x0, y0 = left + c * module, top + r * module
            block = [px(x, y) for y in range(y0, y0 + module) for x in range(x0, x0 + module)]
            inside = [px(x, y) for y in range(y0 + 1, y0 + module - 1) for x in range(x0 + 1, x0 + module - 1)]
            if dark:
                assert set(block) == {0}, (dpi, r, c, sorted(set(block)))
            else:
                assert set(inside) == {255} and min(block) > 127, (dpi, r, c, sorted(set(block)))
    # The longest horizontal run of dark modules, sampled along its middle row edge to edge: one black line.
    r, c, n = max(((r, c, n) for r, row in enumerate(matrix) for c in range(len(row))
                   for n in [next((k for k in range(len(row) - c) if not row[c + k]), len(row) - c)]
                   if row[c] and (c == 0 or not row[c - 1])), key=lambda run: run[2])
    assert n >= 7
    y = top + r * module + module // 2
    assert max(px(x, y) for x in range(left + c * module, left + (c + n) * module)) == 0
    assert read_pdf(made.pdf, tmp_path, dpi).text == text
