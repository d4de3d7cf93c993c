"""Property-based fuzzing of every parser of outside input: whatever arrives, the parser answers or refuses
with its own documented error, never another exception (which a door would turn into a 500 or a crash).

Parsers: QR text (``EHC1:``, two-in-one ``EHCM1:``) and QR images, TLV, Base45, ID numbers of every
document type (and phones and names), CSV import rows, the signed-request headers (parsed, and checked
by the platform end to end), FHIR bodies ($match, PDQm searches).

The number of examples comes from a hypothesis profile: ``ci`` in ``make test``, ``fuzz`` under
``make fuzz`` (``FUZZ_LONG=1``; ``FUZZ_PARSER_EXAMPLES`` sets how many).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import string
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timezone

import pytest
from factories import hospital_system, make_staff, person
from test_fhir import ID_CARD
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from ehc.apps import signing
from ehc.cards import importer
from ehc.crypto import KeyStore, SM2PrivateKey
from ehc.identity import service as identity
from ehc.kit import tlv
from ehc.kit.context import Vault
from ehc.kit.errors import Invalid
from ehc.qr import codec
from ehc.qr.codec import base45
from ehc.terminal import images

settings.register_profile("ci", max_examples=100, deadline=None, derandomize=False,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=int(os.environ.get("FUZZ_PARSER_EXAMPLES", "20000")), deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PROFILE = settings.get_profile("fuzz" if os.environ.get("FUZZ_LONG") == "1" else "ci")
# Parsers behind the HTTP doors cost a request per example (and run on both databases): a tenth.
HTTP_PROFILE = settings(PROFILE, max_examples=max(15, PROFILE.max_examples // 10))

# What each parser was given and what it refused (printed at the end: `make fuzz` records the figures).
TALLY: Counter = Counter()


def tally(outcome: str) -> None:
    TALLY[os.environ.get("PYTEST_CURRENT_TEST", "?").split("::")[-1].split(" ")[0].split("[")[0], outcome] += 1


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    tests = sorted({name for name, _ in TALLY})
    for name in tests:
        print(f"\n{name}: {TALLY[name, 'tried']} tried, {TALLY[name, 'refused']} refused, "
              f"{TALLY[name, 'tried'] - TALLY[name, 'refused']} accepted, 0 unexpected exceptions", end="")
    print()


NOW = datetime(2026, 5, 1, 8, 0, tzinfo=timezone.utc)
B45 = st.text(alphabet=base45.ALPHABET + "a\u00e9\u4e2d\x00", max_size=120)


def mutations(data: bytes | str):  # noqa: ANN201
    """``data`` with a few bytes (characters) changed, inserted or cut: what a scratched label gives."""
    kind = str if isinstance(data, str) else bytes
    alphabet = st.characters() if kind is str else st.integers(0, 255)

    @st.composite
    def mutate(draw):  # noqa: ANN001, ANN202
        items = list(data)
        for _ in range(draw(st.integers(1, 4))):
            where = draw(st.integers(0, len(items)))
            action = draw(st.sampled_from(["flip", "insert", "cut"]))
            if action == "insert" or not items:
                items.insert(where, draw(alphabet))
            elif action == "cut":
                del items[min(where, len(items) - 1)]
            else:
                items[min(where, len(items) - 1)] = draw(alphabet)
        return "".join(items) if kind is str else bytes(items)

    return mutate()


# -- Base45 and TLV ------------------------------------------------------------------------------------

@PROFILE
@given(B45)
@example("GGW")  # a group over 0xFFFF
@example("A")
def test_base45_decodes_canonically_or_refuses(text: str) -> None:
    tally("tried")
    try:
        data = base45.b45decode(text)
    except ValueError:
        tally("refused")
        return
    assert base45.b45encode(data) == text  # strict: one text for one byte string


@PROFILE
@given(st.binary(max_size=200))
def test_base45_round_trips_any_bytes(data: bytes) -> None:
    tally("tried")
    assert base45.b45decode(base45.b45encode(data)) == data


TLV_BYTES = st.one_of(
    st.binary(max_size=300),
    st.lists(st.tuples(st.sampled_from([b"\x4f", b"\x53", b"\x61", b"\x85", b"\x9f\x26", b"\x5f\x20"]),
                       st.binary(max_size=300)), max_size=4)
    .map(lambda items: b"".join(tlv.encode(tag, value) for tag, value in items)),
)


@PROFILE
@given(st.one_of(TLV_BYTES, TLV_BYTES.flatmap(lambda data: mutations(data) if data else st.just(data))))
@example(b"\x61\x81\x05abcde")  # a long form that the short one would do
@example(b"\x9f")
def test_tlv_decodes_exactly_or_refuses(data: bytes) -> None:
    tally("tried")
    try:
        items = tlv.decode(data)
    except ValueError:
        tally("refused")
        return
    assert b"".join(tlv.encode(tag, value) for tag, value in items) == data


# -- QR text ------------------------------------------------------------------------------------------

REF_SECRET = bytes(range(32))
QR_KEY = SM2PrivateKey.generate()
SIGNER = codec.Signer("Q0a1b2c", QR_KEY)
CARD = {"ref_secret": REF_SECRET, "ehc_id": "AB" * 32, "sequence": 1, "now": NOW}
STATIC = codec.issue_static(SIGNER, **CARD).text
DYNAMIC = codec.issue_dynamic(SIGNER, **CARD).text
PAYMENT = tlv.encode(b"\x61", tlv.encode(b"\x4f", bytes.fromhex("A0000003330101")) + tlv.encode(b"\x57", b"\x12" * 8))
TWO_IN_ONE = codec.combine(
    codec.issue_dynamic(SIGNER, **CARD, payment_template=PAYMENT),
    PAYMENT)


def keys(key_id: str):  # noqa: ANN201
    return QR_KEY.public_key if key_id == SIGNER.key_id else None


QR_TEXT = st.one_of(
    st.text(max_size=200),
    st.sampled_from([codec.PREFIX, codec.MULTI_PREFIX, "EHC2:", "EHCM9:"]).flatmap(
        lambda prefix: st.one_of(B45, st.binary(max_size=120).map(base45.b45encode), TLV_BYTES.map(base45.b45encode))
        .map(lambda rest: prefix + rest)),
    st.sampled_from([STATIC, DYNAMIC, TWO_IN_ONE]).flatmap(mutations),
    # well-formed Base45 of a payload altered byte by byte: reaches every field check and the signature
    st.sampled_from([STATIC, DYNAMIC]).flatmap(
        lambda text: mutations(base45.b45decode(text[len(codec.PREFIX):])).map(
            lambda raw: codec.PREFIX + base45.b45encode(raw))),
)


@PROFILE
@given(QR_TEXT)
@example(STATIC)
@example(DYNAMIC)
@example(TWO_IN_ONE)
def test_qr_text_is_read_or_rejected(text: str) -> None:
    tally("tried")
    try:
        split = codec.split(text)
        payload = codec.verify(split.code, keys, now=NOW)
    except codec.QRRejected:
        tally("refused")
        return
    assert payload.key_id == SIGNER.key_id  # only the codes we signed, unchanged, get here
    assert text in (STATIC, DYNAMIC, TWO_IN_ONE) or split.code.to_bytes() in {
        codec.split(t).code.to_bytes() for t in (STATIC, DYNAMIC, TWO_IN_ONE)}


@PROFILE
@given(st.binary(max_size=120))
def test_qr_payload_bytes_are_decoded_or_rejected(raw: bytes) -> None:
    tally("tried")
    try:
        codec.decode_bytes(raw)
    except codec.QRRejected:
        tally("refused")


# -- QR images -----------------------------------------------------------------------------------------

def _png(text: str) -> bytes:
    return codec.render_png(text, scale=2, border=2).data


PNG = _png(STATIC)


def _as_jpeg(data: bytes) -> bytes:
    out = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("L").save(out, "JPEG", quality=40)
    return out.getvalue()


IMAGE_BYTES = st.one_of(
    st.binary(max_size=400),
    st.sampled_from([b"\x89PNG\r\n\x1a\n", b"GIF89a", b"\xff\xd8\xff", b"BM", b"II*\x00", b"RIFF"]).flatmap(
        lambda magic: st.binary(max_size=300).map(lambda rest: magic + rest)),
    st.sampled_from([PNG, _as_jpeg(PNG)]).flatmap(mutations),
)


@PROFILE
@given(IMAGE_BYTES)
@example(PNG)
def test_qr_images_are_read_or_refused(data: bytes) -> None:
    tally("tried")
    try:
        texts = images.read_image(io.BytesIO(data))
    except images.ImageUnreadable:
        tally("refused")
        return
    assert all(isinstance(t, str) for t in texts)


# -- ID numbers, phones and names ----------------------------------------------------------------------

DOCUMENT_TYPES = [t.value for t in identity.DocumentType]
NUMBER_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=string.digits + "Xx- \u3000\uff10\uff38\u200b", max_size=24),
    st.builds(lambda born, seq: person("王五", born, seq)["document"]["number"],
              st.dates(date(1900, 1, 1), date(2024, 12, 31)), st.integers(0, 999)).flatmap(
        lambda number: st.one_of(st.just(number), mutations(number))),
)


@PROFILE
@given(st.one_of(st.sampled_from(DOCUMENT_TYPES), st.text(max_size=4)), NUMBER_TEXT)
def test_document_numbers_parse_or_are_invalid(doc_type: str, raw: str) -> None:
    tally("tried")
    try:
        document = identity.parse_document(doc_type, raw)
    except Invalid as refused:
        assert refused.code.startswith("document_") and refused.errors
        tally("refused")
        return
    # A parsed number is normal: parsing it again gives the same document; masking keeps its length.
    assert identity.parse_document(document.type, document.number) == document
    assert len(identity.mask_number(document)) == len(document.number)


@PROFILE
@given(st.one_of(st.text(max_size=30), st.text(alphabet=string.digits + "+-() \uff11", max_size=20),
                 st.from_regex(r"(\+86|0086)?[ -]?1[3-9][0-9]{9}", fullmatch=True).flatmap(
                     lambda phone: st.one_of(st.just(phone), mutations(phone)))))
def test_phones_normalise_or_are_invalid(raw: str) -> None:
    tally("tried")
    try:
        phone = identity.normalise_phone(raw)
    except Invalid:
        tally("refused")
        return
    assert identity.normalise_phone(phone) == phone


@PROFILE
@given(st.text(max_size=40))
def test_names_are_canonical_or_invalid(raw: str) -> None:
    tally("tried")
    try:
        name = identity.canonical_name(raw)
    except Invalid:
        tally("refused")
        return
    assert identity.canonical_name(name) == name


# -- CSV import rows ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def preparer(tmp_path_factory: pytest.TempPathFactory) -> importer._Preparer:
    path = tmp_path_factory.mktemp("importkeys") / "store"
    KeyStore.init(path)
    columns = {name: index for index, name in enumerate(importer.COLUMNS)}
    return importer._Preparer(Vault(KeyStore(path)), "local-document", columns, copy=False)


CELL = st.one_of(st.text(max_size=30), st.sampled_from(["01", "03", "99", "1", "2", "1985-06-01", "13912345678"]))
VALID_ROW = st.builds(
    lambda born, seq: [v if isinstance(v, str) else "" for v in (
        "王五", "01", person("王五", born, seq)["document"]["number"], "1", born.isoformat(), "13912345678", "", "")],
    st.dates(date(1900, 1, 1), date(2024, 12, 31)), st.integers(0, 999))


@PROFILE
@given(st.lists(st.one_of(st.lists(CELL, max_size=10), VALID_ROW.flatmap(
    lambda row: st.lists(st.sampled_from(range(len(row))), max_size=3).flatmap(
        lambda spots: st.lists(CELL, min_size=len(spots), max_size=len(spots)).map(
            lambda cells: [cells[spots.index(i)] if i in spots else v for i, v in enumerate(row)])))),
    min_size=1, max_size=5))
def test_import_rows_are_prepared_or_reported(preparer: importer._Preparer, rows: list[list[str]]) -> None:
    tally("tried")
    prepared = preparer.prepare([(line, fields) for line, fields in enumerate(rows, start=2)])
    # every row is accounted for: a card, a rejection, a failure, a later decision, or a blank line
    decided = ({line for line, _ in prepared.people} | {r.line for r in prepared.rejects}
               | {line for line, *_ in prepared.failed} | set(prepared.slow))
    blank = {line for line, fields in enumerate(rows, start=2) if not any(f.strip() for f in fields)}
    assert decided | blank == set(range(2, len(rows) + 2))
    if prepared.rejects or prepared.failed:
        tally("refused")


@PROFILE
@given(st.one_of(st.text(max_size=300),
                 st.text(max_size=300).map(lambda rest: ",".join(importer.COLUMNS) + "\n" + rest),
                 st.lists(st.lists(CELL, max_size=9), max_size=4).map(
                     lambda rows: _csv([list(importer.COLUMNS)] + rows))))
def test_an_import_file_is_read_or_refused(text: str) -> None:
    """What the importer reads before any row: the header, then the records (csv.Error is the csv module's
    own refusal of a malformed file, reported by the import command)."""
    tally("tried")
    try:
        header = next(csv.reader(io.StringIO(text)), [])
        columns = importer._column_map(header)
        for _line, fields in importer._records(io.StringIO(text, newline=""), 0):
            importer._values(columns, fields)
    except (importer.ImportFailed, csv.Error):
        tally("refused")


def _csv(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


# -- signed-request headers ----------------------------------------------------------------------------

HEADER_VALUE = st.one_of(st.none(), st.text(max_size=80), st.text(alphabet=string.ascii_letters + string.digits
                                                                   + "_-+/=", max_size=120))


WELL_FORMED = {signing.HEADER_APP_ID: st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True),
               signing.HEADER_KEY_ID: st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True),
               signing.HEADER_TIMESTAMP: st.integers(0, 10**12 - 1).map(str),
               signing.HEADER_NONCE: st.from_regex(r"[A-Za-z0-9_-]{16,64}", fullmatch=True),
               signing.HEADER_SIGNATURE: st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode())}


@PROFILE
@given(st.one_of(st.fixed_dictionaries({name: HEADER_VALUE for name in signing.SIGNATURE_HEADERS}),
                 st.fixed_dictionaries(WELL_FORMED),
                 st.sampled_from(signing.SIGNATURE_HEADERS).flatmap(lambda odd: st.fixed_dictionaries(
                     {name: HEADER_VALUE if name == odd else valid for name, valid in WELL_FORMED.items()}))))
def test_signing_headers_parse_or_are_malformed(headers: dict) -> None:
    tally("tried")
    present = {name: value for name, value in headers.items() if value is not None}
    try:
        parsed = signing.parse_headers(present)
    except signing.MalformedHeaders:
        tally("refused")
        return
    assert parsed.signature and signing.NONCE_PATTERN.fullmatch(parsed.nonce)


@PROFILE
@given(st.text(max_size=120))
def test_any_query_has_a_canonical_form(query: str) -> None:
    tally("tried")
    canonical = signing.canonical_query(query)
    assert signing.canonical_query(canonical) == canonical


def _der_like() -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(min_size=1, max_size=80),
                     st.binary(max_size=70).map(lambda b: b"\x30" + bytes([len(b)]) + b))


@HTTP_PROFILE
@given(signature=_der_like(), skew=st.integers(-400, 400), nonce=st.from_regex(r"[A-Za-z0-9_-]{16,64}", fullmatch=True),
       operator=st.one_of(st.none(), st.text(max_size=80)), channel=st.one_of(st.none(), st.text(max_size=8)))
def test_signed_requests_with_any_signature_are_refused_cleanly(  # noqa: ANN001
        client, platform, institution, signature: bytes, skew: int, nonce: str, operator, channel) -> None:
    """End to end: a registered app and key, any signature, timestamp, operator and channel: a 401 (or 400
    for an unusable header), never a 500, never accepted."""
    auth = _app(platform, institution)
    headers = {signing.HEADER_APP_ID: auth.app_id, signing.HEADER_KEY_ID: auth.key_id,
               signing.HEADER_TIMESTAMP: str(int(datetime.now(timezone.utc).timestamp()) + skew),
               signing.HEADER_NONCE: nonce, signing.HEADER_SIGNATURE: base64.b64encode(signature).decode()}
    if operator is not None:
        headers[signing.HEADER_OPERATOR] = operator
    if channel is not None:
        headers[signing.HEADER_CHANNEL] = channel
    try:
        answer = client.post("/api/v1/apps/ping", content=b"{}", headers=headers)
    except UnicodeEncodeError:
        assume(False)  # a header that HTTP cannot carry never reaches the platform
    tally("tried")
    assert answer.status_code in (400, 401), answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    tally("refused")


_apps: dict = {}  # one app per test (its platform), reused by every example


def _app(platform, institution):  # noqa: ANN001, ANN202
    if _apps.get("platform") is not platform:
        _apps.update(platform=platform, auth=hospital_system(platform, institution))
    return _apps["auth"]


# -- FHIR bodies ---------------------------------------------------------------------------------------

SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
JSON = st.recursive(SCALAR,
                    lambda inner: st.one_of(st.lists(inner, max_size=4),
                                            st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=20)
FHIR_FIELD = st.sampled_from(["name", "birthDate", "gender", "telecom", "identifier", "address", "extension", "text",
                              "family", "given", "system", "value", "use", "url", "valueCode", "line", "district"])
PATIENT = st.recursive(
    st.one_of(st.text(max_size=20), st.sampled_from(["1985-06-01", "male", "urn:oid:2.16.840.1.113883.2.23.1.1",
                                                     "phone", "official", "13912345678"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(FHIR_FIELD, inner, max_size=4)),
    max_leaves=15).map(lambda body: {**(body if isinstance(body, dict) else {}), "resourceType": "Patient"})


# Patients as a hospital sends them, with fields that may each be off
PATIENT_AS_SENT = st.fixed_dictionaries({"resourceType": st.just("Patient")}, optional={
    "name": st.lists(st.fixed_dictionaries({}, optional={
        "family": st.sampled_from(["王", "欧阳", "Smith", ""]) | st.text(max_size=6),
        "given": st.lists(st.sampled_from(["小明", "建国", "John"]) | st.text(max_size=6), max_size=2),
        "text": st.text(max_size=10), "use": st.sampled_from(["official", "usual", "nickname"])}), max_size=2),
    "birthDate": st.dates(date(1900, 1, 1), date(2030, 1, 1)).map(str) | st.sampled_from(["1985", "1985-06"]),
    "gender": st.sampled_from(["male", "female", "other", "unknown"]),
    "telecom": st.lists(st.fixed_dictionaries({"system": st.sampled_from(["phone", "sms", "email"]),
                                               "value": st.sampled_from(["13912345678", "+86 139 1234 5678"])
                                               | st.text(max_size=14)}), max_size=2),
    "identifier": st.lists(st.fixed_dictionaries({
        "system": st.sampled_from([ID_CARD, "urn:oid:1.2.156.112604.1.2.99", "http://example.org/mrn"]),
        "value": NUMBER_TEXT.filter(bool)}), max_size=2),
    "address": st.lists(st.fixed_dictionaries({}, optional={"text": st.text(max_size=12),
                                                            "district": st.text(max_size=6)}), max_size=1),
})


def _parameters(patient: dict, count) -> dict:  # noqa: ANN001
    parameters = [{"name": "resource", "resource": patient}]
    if count is not None:
        parameters.append({"name": "count", "valueInteger": count})
    return {"resourceType": "Parameters", "parameter": parameters}


@HTTP_PROFILE
@given(st.one_of(JSON, st.builds(_parameters, PATIENT | PATIENT_AS_SENT, st.one_of(st.none(), st.integers(-5, 200)))))
def test_fhir_match_bodies_answer_an_outcome_or_a_bundle(client, platform, institution, body) -> None:  # noqa: ANN001
    tally("tried")
    answer = client.post("/fhir/Patient/$match", content=json.dumps(body),
                         headers={**_clerk(platform, client, institution), "Content-Type": "application/fhir+json"})
    assert answer.status_code < 500, answer.text
    assert answer.json()["resourceType"] in ("Bundle", "OperationOutcome")
    if answer.status_code >= 400:
        tally("refused")


@HTTP_PROFILE
@given(st.lists(st.tuples(st.sampled_from(["identifier", "family", "given", "name", "birthdate", "gender",
                                           "telecom", "_count", "name:exact", "given:contains", "x"]),
                          st.text(max_size=30)), min_size=1, max_size=4))
def test_fhir_searches_answer_an_outcome_or_a_bundle(client, platform, institution, params) -> None:  # noqa: ANN001
    tally("tried")
    answer = client.get("/fhir/Patient", params=params, headers=_clerk(platform, client, institution))
    assert answer.status_code < 500, answer.text
    assert answer.json()["resourceType"] in ("Bundle", "OperationOutcome")
    if answer.status_code >= 400:
        tally("refused")


_clerks: dict = {}  # one clerk per test (its platform), reused by every example


def _clerk(platform, client, institution) -> dict[str, str]:  # noqa: ANN001
    if _clerks.get("platform") is not platform:
        _clerks.update(platform=platform, headers=make_staff(platform, client, "window_clerk", institution))
    return _clerks["headers"]
