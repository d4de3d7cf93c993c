"""ehc.identity: document numbers, names and phones, real-name verification."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ehc.identity.service import (
    DEFAULT_VERIFIER,
    LABELS,
    Applicant,
    Document,
    DocumentType,
    LocalDocumentVerifier,
    VerificationResult,
    Verifier,
    get_verifier,
    mask_name,
    mask_number,
    mask_phone,
    canonical_name,
    normalise_number,
    normalise_phone,
    parse_document,
    register_verifier,
    unregister_verifier,
)
from ehc.kit.clock import today
from ehc.kit.errors import Invalid

# --- an independent GB 11643 implementation, straight from the standard ---------------------------

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"


def check_char(first17: str) -> str:
    return CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, WEIGHTS)) % 11]


def make_ric(region: str, born: date, sequence: int) -> str:
    body = f"{region}{born:%Y%m%d}{sequence:03d}"
    return body + check_char(body)


regions = st.integers(0, 999_999).map(lambda n: f"{n:06d}")
birth_dates = st.dates(min_value=date(1900, 1, 1), max_value=today())
sequences = st.integers(0, 999)
valid_rics = st.builds(make_ric, regions, birth_dates, sequences)


def codes(exc: Invalid) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in exc.errors]


def reject(doc_type, raw) -> Invalid:
    with pytest.raises(Invalid) as info:
        parse_document(doc_type, raw)
    return info.value


# --- resident ID card ----------------------------------------------------------------------------


def test_resident_id_parses_and_derives_birth_date_sex_region():
    doc = parse_document("01", "11010519491231002x")
    assert doc == Document(DocumentType.RESIDENT_ID, "11010519491231002X", date(1949, 12, 31), "2", "110105")
    assert doc.blind_key == "01:11010519491231002X"

    male = parse_document(DocumentType.RESIDENT_ID, "360426199101010071")
    assert (male.birth_date, male.sex, male.region_code) == (date(1991, 1, 1), "1", "360426")


@settings(max_examples=200)
@given(region=regions, born=birth_dates, sequence=sequences)
def test_any_valid_resident_id_parses_back_to_its_birth_date_and_sex(region, born, sequence):
    number = make_ric(region, born, sequence)
    doc = parse_document("01", number)
    assert doc.number == number
    assert doc.birth_date == born
    assert doc.sex == ("1" if sequence % 2 else "2")
    assert doc.region_code == region


@settings(max_examples=200)
@given(number=valid_rics, position=st.integers(0, 17), replacement=st.sampled_from("0123456789X"))
def test_any_single_character_change_is_rejected(number, position, replacement):
    if number[position] == replacement:
        replacement = "0" if replacement != "0" else "1"
    changed = number[:position] + replacement + number[position + 1 :]
    error = reject("01", changed)
    if replacement == "X" and position < 17:
        assert error.code == "document_number_malformed"
    else:
        assert error.code == "document_checksum_mismatch"
    assert codes(error) == [("document_number", error.code)]


FULL_WIDTH = {c: chr(ord(c) + 0xFEE0) for c in "0123456789Xx"}


@given(
    number=valid_rics,
    data=st.data(),
)
def test_spaces_lower_case_and_full_width_forms_normalise_to_the_same_number(number, data):
    chars = []
    for c in number:
        if c == "X" and data.draw(st.booleans()):
            c = "x"
        if data.draw(st.booleans()):
            c = FULL_WIDTH[c]
        chars.append(c + data.draw(st.sampled_from(["", "", " ", "\u3000", "\t", "\u00a0"])))
    messy = data.draw(st.sampled_from(["", " ", "\u3000"])) + "".join(chars)
    assert normalise_number("01", messy) == number
    assert parse_document("01", messy).number == number


@settings(max_examples=300)
@given(doc_type=st.sampled_from(list(DocumentType)), raw=st.text())
def test_parse_raises_nothing_but_invalid_on_arbitrary_text(doc_type, raw):
    try:
        doc = parse_document(doc_type, raw)
    except Invalid as exc:
        assert exc.errors and exc.errors[0]["field"] == "document_number"
    else:
        assert doc.number == normalise_number(doc_type, doc.number)  # normalising is idempotent


@given(doc_type=st.text(max_size=4), raw=st.text(max_size=40))
def test_unknown_or_arbitrary_types_raise_only_invalid(doc_type, raw):
    try:
        parse_document(doc_type, raw)
    except Invalid:
        pass


def test_unknown_document_type():
    error = reject("10", "E12345678")
    assert codes(error) == [("document_type", "document_type_unknown")]


def test_fifteen_digit_first_generation_number_is_refused_with_a_clear_message():
    error = reject("01", "110105491231002")
    assert codes(error) == [("document_number", "resident_id_first_generation")]
    assert "15-digit" in error.detail and "18-digit" in error.detail and "not converted" in error.detail


@pytest.mark.parametrize(
    "raw", ["", "   ", "1101051949123100", "1101051949123100212", "11010519491231X02X", "1101051949123100Y"]
)
def test_malformed_resident_ids(raw):
    assert reject("01", raw).code == "document_number_malformed"


def test_impossible_and_future_birth_dates_are_refused():
    body = "110105" + "19900230" + "001"
    assert reject("01", body + check_char(body)).code == "document_birth_date_invalid"
    body = "110105" + "19901301" + "001"
    assert reject("01", body + check_char(body)).code == "document_birth_date_invalid"
    tomorrow = today() + timedelta(days=1)
    error = reject("01", make_ric("110105", tomorrow, 1))
    assert codes(error) == [("document_number", "document_birth_date_invalid")]
    assert "future" in error.detail
    assert reject("01", make_ric("110105", date(1066, 10, 14), 1)).code == "document_birth_date_invalid"
    assert parse_document("01", make_ric("110105", today(), 2)).birth_date == today()


def test_unknown_region_codes_are_accepted_and_returned():
    # stdnum's validate() would refuse this (no such county); we only check checksum and date.
    doc = parse_document("01", make_ric("990000", date(2000, 2, 29), 5))
    assert doc.region_code == "990000"


# --- other document types ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc_type", "raw", "number"),
    [
        ("03", "e1234 5678", "E12345678"),
        ("03", "g12345678", "G12345678"),
        ("03", "AB123", "AB123"),
        ("03", "X" * 17, "X" * 17),
        ("06", "H1234567(8)", "H12345678"),
        ("06", "ｍ１２３４５６７８９０", "M1234567890"),
        ("06", "H-1234-5678", "H12345678"),
        ("07", "12345678", "12345678"),
        ("07", "1234567890", "1234567890"),
        ("08", "p 123456789", "P123456789"),
        ("02", "110105-1949", "110105-1949"),
        ("04", "军字第1234567号", "军字第1234567号"),
        ("05", "11010519491231002x", "11010519491231002X"),
        ("99", "usa-123456789", "USA-123456789"),
    ],
)
def test_other_types_normalise_and_accept(doc_type, raw, number):
    doc = parse_document(doc_type, raw)
    assert doc.number == number
    assert (doc.birth_date, doc.sex, doc.region_code) == (None, None, None)
    assert doc.blind_key == f"{doc_type}:{number}"


@pytest.mark.parametrize(
    ("doc_type", "raw"),
    [
        ("03", "E123"),
        ("03", "E" * 18),
        ("03", "E1234567#"),
        ("06", "H1234567"),
        ("06", "H123456789"),
        ("06", "A12345678"),
        ("07", "123456789"),
        ("07", "H12345678"),
        ("08", "123456789"),
        ("08", "AB12345678"),
        ("02", "123"),
        ("04", "----"),
        ("05", "A" * 33),
        ("99", "AB#12"),
    ],
)
def test_other_types_reject_bad_formats(doc_type, raw):
    error = reject(doc_type, raw)
    assert codes(error) == [("document_number", "document_number_malformed")]


def test_every_type_has_english_and_chinese_labels():
    assert set(LABELS) == set(DocumentType)
    assert LABELS[DocumentType.RESIDENT_ID] == ("Resident ID card", "居民身份证")
    assert all(en and zh for en, zh in LABELS.values())


def test_masking_keeps_length_and_hides_the_middle():
    ric = parse_document("01", "11010519491231002X")
    assert mask_number(ric) == "110***********002X"
    assert mask_number(("03", "E12345678")) == "E******78"
    assert mask_number((DocumentType.TAIWAN_PERMIT, "12345678")) == "1*****78"
    assert mask_number(("99", "ABC")) == "***"


@given(number=valid_rics)
def test_masked_resident_ids_hide_the_birth_date(number):
    masked = mask_number(("01", number))
    assert len(masked) == 18 and number[6:14] not in masked and masked[:3] == number[:3]


# --- phones and names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["13812345678", "138 1234 5678", "138-1234-5678", "+86 138 1234 5678", "008613812345678",
            "8613812345678", "＋８６１３８１２３４５６７８", " (+86) 138-1234-5678 "]
)
def test_phone_forms_normalise(raw):
    assert normalise_phone(raw) == "13812345678"


@pytest.mark.parametrize("raw", ["", "1381234567", "138123456789", "12812345678", "02812345678",
                                 "+1 415 555 0100", "0044 7700 900123", "1381234567a", "86138123456789"])
def test_bad_phones(raw):
    with pytest.raises(Invalid) as info:
        normalise_phone(raw)
    assert codes(info.value) == [("phone", "phone_malformed")]


@given(rest=st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True),
       prefix=st.sampled_from(["", "+86", "0086", "86", "+86 "]), sep=st.sampled_from(["", " ", "-"]))
def test_any_mainland_mobile_round_trips(rest, prefix, sep):
    raw = prefix + sep.join([rest[:3], rest[3:7], rest[7:]])
    assert normalise_phone(raw) == rest
    assert mask_phone(raw) == rest[:3] + "****" + rest[7:]


def test_mask_phone():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("garbage") == "*******"


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("  张三丰 ", "张三丰"),
        ("阿卜杜拉 • 买买提", "阿卜杜拉·买买提"),
        ("阿卜杜拉‧买买提", "阿卜杜拉·买买提"),
        ("阿卜杜拉．买买提", "阿卜杜拉·买买提"),
        ("阿卜杜拉・买买提", "阿卜杜拉·买买提"),
        ("阿卜杜拉.买买提", "阿卜杜拉·买买提"),
        ("ＪＯＨＮ\u3000\u3000Smith", "JOHN Smith"),
        ("John   F. Kennedy", "John F. Kennedy"),
        ("Conan O’Brien", "Conan O'Brien"),
        ("Jose\u0301", "José"),
        ("李", "李"),
    ],
)
def test_names_normalise(raw, name):
    assert canonical_name(raw) == name


@pytest.mark.parametrize("raw", ["", "   ", "·", "张·", "张··三", "Agent 007", "<script>", "---", "张" * 65])
def test_bad_names(raw):
    with pytest.raises(Invalid) as info:
        canonical_name(raw)
    assert codes(info.value) == [("name", "name_invalid")]


@given(st.text(max_size=80))
def test_normalise_name_raises_only_invalid_and_is_idempotent(raw):
    try:
        name = canonical_name(raw)
    except Invalid:
        return
    assert 1 <= len(name) <= 64
    assert canonical_name(name) == name


@pytest.mark.parametrize(
    ("name", "masked"),
    [("张三丰", "张*丰"), ("张三", "张*"), ("李", "*"), ("欧阳娜娜", "欧**娜"), ("阿卜杜拉·买买提", "阿***·**提"),
     ("John Smith", "J*** S****"), ("Mary-Jane Watson", "M***-J*** W*****")],
)
def test_mask_name(name, masked):
    assert mask_name(name) == masked


# --- verification --------------------------------------------------------------------------------

RIC = parse_document("01", "11010519491231002X")  # female, born 1949-12-31


def verify(applicant: Applicant) -> VerificationResult:
    return get_verifier().verify(applicant)


def test_matching_applicant_passes():
    result = verify(Applicant("张三", "2", date(1949, 12, 31), RIC))
    assert result == VerificationResult("local-document", "passed", [], "")
    assert verify(Applicant("张三", None, None, RIC)).outcome == "passed"  # nothing stated, nothing to contradict


def test_wrong_sex_and_birth_date_fail_with_codes():
    result = verify(Applicant("张三", "1", date(1950, 1, 1), RIC))
    assert result.outcome == "failed"
    assert [(e["field"], e["code"]) for e in result.errors] == [
        ("sex", "sex_mismatch"),
        ("birth_date", "birth_date_mismatch"),
    ]
    assert [e["code"] for e in verify(Applicant("张三", "1", None, RIC)).errors] == ["sex_mismatch"]


def test_future_birth_date_fails_for_any_document():
    passport = parse_document("03", "E12345678")
    result = verify(Applicant("John Smith", None, today() + timedelta(days=1), passport))
    assert result.outcome == "failed"
    assert ("birth_date", "birth_date_in_future") in [(e["field"], e["code"]) for e in result.errors]


def test_hand_built_document_with_bad_number_fails():
    forged = Document(DocumentType.RESIDENT_ID, "110105194912310021", date(1949, 12, 31), "2", "110105")
    result = verify(Applicant("张三", "2", date(1949, 12, 31), forged))
    assert result.outcome == "failed"
    assert [e["code"] for e in result.errors] == ["document_checksum_mismatch"]


@pytest.mark.parametrize("doc_type,number", [("03", "E12345678"), ("06", "H12345678"), ("07", "12345678"),
                                             ("02", "ABCD1234"), ("04", "军字第1234567号"), ("05", "A1234"),
                                             ("99", "USA123456")])
def test_documents_that_cannot_be_checked_locally_go_to_review(doc_type, number):
    result = verify(Applicant("John Smith", "1", date(1980, 5, 6), parse_document(doc_type, number)))
    assert result.outcome == "review" and result.errors == []
    assert "clerk" in result.note


def test_birth_certificate_needs_a_recent_birth_date():
    cert = parse_document("08", "P123456789")
    assert verify(Applicant("王小宝", "1", today() - timedelta(days=3), cert)).outcome == "passed"
    missing = verify(Applicant("王小宝", "1", None, cert))
    assert (missing.outcome, missing.errors[0]["code"]) == ("failed", "birth_date_required")
    adult = verify(Applicant("王大宝", "1", date(today().year - 19, 1, 1), cert))
    assert (adult.outcome, adult.errors[0]["code"]) == ("failed", "birth_date_out_of_range")


def test_invalid_name_fails():
    result = verify(Applicant("007", "2", None, RIC))
    assert result.outcome == "failed" and result.errors[0]["code"] == "name_invalid"


def test_registry_default_and_unknown():
    assert DEFAULT_VERIFIER == "local-document"
    default = get_verifier()
    assert isinstance(default, LocalDocumentVerifier) and get_verifier("local-document") is default
    assert isinstance(default, Verifier)
    with pytest.raises(KeyError, match="no-such-service"):
        get_verifier("no-such-service")


def test_custom_verifier_is_registered_and_returned():
    class AlwaysReview:
        name = "test-always-review"

        def verify(self, applicant: Applicant) -> VerificationResult:
            return VerificationResult(self.name, "review", [], "testing")

    custom = AlwaysReview()
    register_verifier(custom)
    try:
        assert get_verifier("test-always-review") is custom
        assert get_verifier("test-always-review").verify(Applicant("张三", None, None, RIC)).outcome == "review"
        with pytest.raises(ValueError, match="already registered"):
            register_verifier(AlwaysReview())
        assert get_verifier() is not custom  # the default is unchanged
    finally:
        unregister_verifier("test-always-review")
    with pytest.raises(KeyError):
        get_verifier("test-always-review")


def test_result_outcome_is_checked():
    with pytest.raises(ValueError):
        VerificationResult("x", "maybe")
