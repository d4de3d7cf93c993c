"""The real-time matcher: Chinese names, blind blocking keys, Fellegi-Sunter grades, the match API
(link a certain match, queue the undecided, idempotent on retry); on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import date

import pytest
from residents import resident_id
from sqlalchemy import func, select, text

from ehc.audit.models import AuditEvent
from ehc.kit.clock import utcnow
from ehc.kit.context import Actor
from ehc.mpi import bulk, matching
from ehc.mpi.matching import keys, names
from ehc.mpi import service as mpi
from ehc.mpi.matching import Record
from ehc.mpi.models import MatchKey, MatchReview

URL = "/api/v1/mpi/match"
BORN = date(1985, 6, 1)
WANG = mpi.Demographics(name="王慧敏", sex="2", birth_date=BORN, phone="13912345671",
                        address="四川省成都市锦江区人民路12号3栋2单元401室", region_code="510104")
DOC = resident_id(born=BORN, sequence=41, male=False)


def problem(answer, status: int, code: str) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == code, answer.text
    return answer.json()


# -- names and keys (pure) ---------------------------------------------------------------------------

@pytest.mark.parametrize(("a", "b", "level"), [
    ("王慧", "王慧", "exact"),
    ("王慧", "王 慧", "exact"),  # spaces, full-width, middle dots do not count
    ("阿卜杜拉·买买提", "阿卜杜拉 • 买买提", "exact"),
    ("王慧", "王惠", "homophone"),  # same pinyin without tones
    ("陈晓", "陈小", "homophone"),
    ("王明", "王朋", "close"),  # similar shape
    ("王明", "王小明", "close"),  # nickname forms
    ("王明", "王明明", "close"),
    ("王建明", "王建华", "close"),  # one character of the given name
    ("张伟", "李伟", "different"),  # another surname is another family
    ("欧阳娜娜", "欧阳娜", "close"),
    ("John Smith", "Jon Smith", "close"),  # latin names degrade to edit distance ...
    ("Jonathan Smith", "Jonathon Smithe", "fuzzy"),  # ... and Jaro-Winkler
    ("John Smith", "Mary Jones", "different"),
    ("王慧", None, None),
])
def test_name_levels(a, b, level) -> None:
    assert names.compare(a, b) == level
    assert names.compare(b, a) == level


def test_surnames_are_read_as_surnames_and_compound_surnames_split_whole() -> None:
    assert names.parse("单雄信").surname_pinyin == "shan"  # not "dan"
    assert names.parse("曾国藩").surname_pinyin == "zeng"
    assert names.parse("欧阳修").surname == "欧阳" and names.parse("欧阳修").given == "修"
    assert names.pinyin_with_tones("王慧") == "wang2 hui4"
    assert names.parse("SMITH, John").surname == "smith"


def test_blocking_keys_survive_the_usual_errors_and_reveal_nothing(platform) -> None:
    base = keys.clear_keys("王慧敏", "2", date(1985, 6, 1), "13912345671", "510104")
    swapped = keys.clear_keys("王慧敏", "2", date(1985, 1, 6), None, "510104")
    homophone = keys.clear_keys("王惠敏", "2", date(1985, 6, 1), None, None)
    assert set(base) & set(swapped) and set(base) & set(homophone)
    stored = keys.blind_keys(platform.vault, "王慧敏", "2", date(1985, 6, 1), "13912345671", "510104")
    assert len(stored) == len(base) and all(re.fullmatch(r"[a-p]{64}", k) for k in stored)
    # Unknown sex (0 or 9) blocks like missing sex.
    assert keys.clear_keys("王慧敏", "9", BORN, None, "510104") == keys.clear_keys("王慧敏", None, BORN, None, "510104")
    # A nickname with a wrong year, no phone, an abbreviated address: only the road + surname key meets.
    nickname = keys.clear_keys("王阿敏", "2", date(1986, 6, 1), None, None, "锦江区人民路12号")
    full = keys.clear_keys("王慧敏", "2", date(1985, 6, 1), "13912345671", "510104", WANG.address)
    assert set(nickname) & set(full) == {"a|人民路12|wang"}


def test_model_weights_point_the_right_way() -> None:
    model = matching.default_model()
    for field_name, levels in matching.LEVELS.items():
        assert model.weight(field_name, levels[0]) > 0 > model.weight(field_name, levels[-1]), field_name
    assert model.thresholds["certain"] > model.thresholds["probable"] > model.thresholds["possible"]


# -- the matcher on the index ------------------------------------------------------------------------

def _ctx(platform, session, actor: Actor | None = None):
    return platform.ctx(session, actor or Actor.system("test"))


def _person(platform, details: mpi.Demographics, document: str | None = None) -> str:
    with platform.db.session() as session:
        ids = [mpi.Identifier("doc:01", document)] if document else []
        return mpi.create_person(_ctx(platform, session), details, ids).id


def _match(platform, record: Record, actor: Actor | None = None) -> list[matching.Candidate]:
    with platform.db.session() as session:
        return matching.match(_ctx(platform, session, actor), record)


def _record(**changes) -> Record:
    fields = {"name": WANG.name, "sex": WANG.sex, "birth_date": WANG.birth_date, "phone": WANG.phone,
              "address": WANG.address, "region_code": WANG.region_code} | changes
    return Record(**fields)


def test_a_typed_again_patient_is_found_and_graded(platform) -> None:
    wang = _person(platform, WANG, DOC)
    # The same person, typed at another hospital: a homophone, day and month swapped, no phone.
    found = _match(platform, _record(name="王惠敏", birth_date=date(1985, 1, 6), phone=None))
    assert [c.person_id for c in found] == [wang]
    assert found[0].grade in ("certain", "probable")
    assert found[0].comparison["name"]["level"] == "homophone"
    assert found[0].comparison["birth_date"]["level"] == "swapped"
    assert found[0].comparison["phone"] == {"level": None, "weight": 0.0}
    assert "王" not in str(found[0].comparison)  # levels and weights only, no personal data
    # Everything the same: certain.
    assert _match(platform, _record())[0].grade == "certain"
    # A stranger: nobody.
    assert _match(platform, Record(name="李四海", sex="1", birth_date=date(1979, 2, 3))) == []


def test_the_document_number_is_decisive_and_a_conflicting_one_weighs_against(platform) -> None:
    wang = _person(platform, WANG, DOC)
    by_document = _match(platform, Record(name="王敏", document=mpi.Identifier("doc:01", DOC)))
    assert by_document[0].person_id == wang and by_document[0].grade == "certain"
    other_doc = resident_id(born=BORN, sequence=42, male=False)
    same_otherwise = _match(platform, _record(document=mpi.Identifier("doc:01", other_doc)))
    plain = _match(platform, _record())
    assert same_otherwise[0].score < plain[0].score - 16
    assert same_otherwise[0].grade != "certain"


def test_a_relative_in_the_same_household_is_never_taken_for_the_patient(platform) -> None:
    _person(platform, WANG, DOC)
    # Her brother: same surname, address, phone and region; another given name and birth date.
    brother = _record(name="王慧军", sex="1", birth_date=date(1988, 3, 9))
    assert all(c.grade == "possible" for c in _match(platform, brother))


def test_only_returned_candidates_are_recorded_in_the_audit_trail(platform, institution) -> None:
    wang = _person(platform, WANG, DOC)
    other = _person(platform, mpi.Demographics(name="王慧", sex="2", birth_date=BORN, region_code="510104"))
    clerk = Actor(kind="staff", channel=Actor.system().channel, id="clerk-1", institution_id=institution,
                  roles=frozenset({"window_clerk"}))
    found = _match(platform, _record(), clerk)
    returned = {c.person_id for c in found}
    assert wang in returned
    with platform.db.session() as session:
        events = session.execute(select(AuditEvent.person_id, AuditEvent.purpose)
                                 .where(AuditEvent.purpose == "mpi.match")).all()
    assert {person for person, _ in events} == returned
    assert (other in returned) == any(p == other for p, _ in events)


def test_keys_follow_updates_merges_and_rebuilds(platform) -> None:
    wang = _person(platform, WANG, DOC)
    with platform.db.session() as session:
        ctx = _ctx(platform, session)
        before = set(session.scalars(select(MatchKey.key).where(MatchKey.person_id == wang)))
        person = mpi.resolve(ctx, wang)
        mpi.update_demographics(ctx, person, mpi.Demographics(
            name="王慧敏", sex="2", birth_date=BORN, phone="13800001111", region_code="510104"))
    with platform.db.session() as session:
        after = set(session.scalars(select(MatchKey.key).where(MatchKey.person_id == wang)))
    assert before != after and before & after  # the phone key changed, the name keys stayed
    assert _match(platform, Record(name="王小敏", phone="13800001111"))[0].person_id == wang

    # A merged person's keys lead to the survivor.
    twin = _person(platform, mpi.Demographics(name="王慧敏", sex="2", birth_date=BORN, phone="13700002222",
                                              region_code="510104"))
    with platform.db.session() as session:
        ctx = _ctx(platform, session)
        mpi.merge(ctx, mpi.resolve(ctx, twin), mpi.resolve(ctx, wang), "duplicate")
    found = _match(platform, Record(name="王慧敏", sex="2", birth_date=BORN, phone="13700002222"))
    assert [c.person_id for c in found] == [wang]

    # Rebuilding from the sealed details gives the same keys.
    with platform.db.session() as session:
        snapshot = sorted(session.execute(select(MatchKey.person_id, MatchKey.key)).all())
        session.execute(text("DELETE FROM mpi_match_keys"))
    assert keys.rebuild(platform.db, platform.vault, batch=1) == 2
    with platform.db.session() as session:
        assert sorted(session.execute(select(MatchKey.person_id, MatchKey.key)).all()) == snapshot


def test_bulk_creation_writes_the_keys_in_the_same_pass(platform) -> None:
    postgres = platform.db.engine.dialect.name == "postgresql"
    builder = bulk.PersonBatchBuilder(platform.vault, copy=postgres)
    builder.add(1, "P" * 32, WANG, mpi.Identifier("doc:01", DOC))
    builder.add(2, "Q" * 32, WANG, mpi.Identifier("doc:01", DOC))  # loses the document: not created, no keys
    with platform.db.engine.begin() as conn:
        lost = bulk.create_persons(conn, builder.build(), utcnow())
    assert lost == {2: "Q" * 32}
    with platform.db.session() as session:
        assert session.scalar(select(func.count()).select_from(MatchKey).where(MatchKey.person_id == "Q" * 32)) == 0
        assert session.scalar(select(func.count()).select_from(MatchKey).where(MatchKey.person_id == "P" * 32)) == 7  # s n c p d, and road + surname, road + given name
    assert _match(platform, _record(name="王惠敏"))[0].person_id == "P" * 32


# -- the API ---------------------------------------------------------------------------------------

@pytest.fixture
def card(client, clerk) -> str:
    made = client.post("/api/v1/cards", headers=clerk, json={
        "name": WANG.name, "document": {"type": "01", "number": DOC}, "sex": WANG.sex,
        "birth_date": WANG.birth_date.isoformat(), "phone": WANG.phone, "address": WANG.address,
        "region_code": WANG.region_code})
    assert made.status_code == 201, made.text
    return made.json()["ehc_id"]


def _body(**changes) -> dict:
    return {"name": "王惠敏", "sex": "2", "birth_date": "1985-06-01", "phone": "13912345671",
            "address": WANG.address, "region_code": "510104"} | changes


def test_matching_answers_masked_candidates_by_card(client, clerk, card) -> None:
    answer = client.post(URL, json=_body(), headers=clerk)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["action"] is None
    [candidate] = body["candidates"]
    assert candidate["ehc_id"] == card and candidate["grade"] == "certain"
    assert candidate["holder"] == {"name": "王*敏", "sex": "2", "birth_year": 1985, "region_code": "510104",
                                   "phone": "139****5671"}
    assert "13912345671" not in answer.text and DOC not in answer.text and "王惠敏" not in answer.text


def test_a_certain_match_links_the_mrn_once(client, clerk, card, institution) -> None:
    body = _body(identifiers=[{"system": "mrn", "value": "MR-1001"}], link=True)
    first = client.post(URL, json=body, headers=clerk)
    assert first.status_code == 200, first.text
    assert first.json()["action"] == "linked" and first.json()["linked_ehc_id"] == card
    again = client.post(URL, json=body, headers=clerk)  # a retry changes nothing
    assert again.json()["action"] == "already_linked" and again.json()["linked_ehc_id"] == card
    found = client.get("/api/v1/mpi/persons", params={"system": "mrn", "value": "MR-1001"}, headers=clerk)
    assert found.status_code == 200 and found.json()["ehc_id"] == card


def test_undecided_matches_are_queued_once(client, platform, clerk, card, institution) -> None:
    # A nickname, day and month swapped, another phone and address: not sure enough to link.
    body = _body(name="王小敏", birth_date="1985-01-06", phone="13700000000", address="锦江区某街1号",
                 identifiers=[{"system": "mrn", "value": "MR-2002"}], link=True)
    first = client.post(URL, json=body, headers=clerk)
    assert first.status_code == 200, first.text
    assert first.json()["action"] == "queued", first.json()
    assert first.json()["candidates"][0]["grade"] in ("probable", "possible")
    again = client.post(URL, json=body, headers=clerk)
    assert again.json()["review_ids"] == first.json()["review_ids"]
    with platform.db.session() as session:
        rows = session.scalars(select(MatchReview)).all()
    assert len(rows) == 1 and rows[0].source == "realtime" and rows[0].institution_id == institution
    assert "MR-2002" not in (rows[0].record_sealed or "")
    problem(client.get("/api/v1/mpi/persons", params={"system": "mrn", "value": "MR-2002"}, headers=clerk),
            404, "person_not_found")


def test_bad_submissions_are_problems(client, clerk, platform, institution) -> None:
    problem(client.post(URL, json={"name": "王慧"}, headers=clerk), 422, "match_record_too_thin")
    bad = problem(client.post(URL, json=_body(phone="12345"), headers=clerk), 422, "match_record_invalid")
    assert bad["errors"][0]["field"] == "phone"
    problem(client.post(URL, json=_body(link=True), headers=clerk), 422, "link_identifier_required")
    problem(client.post(URL, json=_body(document={"type": "01", "number": DOC[:-2]}), headers=clerk),
            422, "match_record_invalid")  # 16 characters: no resident ID number at all
    problem(client.post(URL, json=_body(identifiers=[{"system": "mrn:inst-other", "value": "MR-1"}]),
                        headers=clerk), 403, "identifier_system_not_allowed")


def _mistyped(number: str) -> str:
    """One digit of the body typed wrong: the check character no longer holds."""
    return number[:8] + str((int(number[8]) + 1) % 10) + number[9:]


def test_dirty_identifiers_are_evidence_not_refusals(client, clerk, card) -> None:
    # A 15-digit first-generation number is the 18-digit one: decisive.
    old = DOC[:6] + DOC[8:17]
    answer = client.post(URL, json=_body(name="王某", phone=None, address=None,
                                         document={"type": "01", "number": old}), headers=clerk)
    assert answer.status_code == 200, answer.text
    assert answer.json()["candidates"][0]["ehc_id"] == card
    assert answer.json()["candidates"][0]["comparison"]["document"]["level"] == "exact"
    # A mistyped number (failed check character) is weighed as one digit off, never refused.
    answer = client.post(URL, json=_body(document={"type": "01", "number": _mistyped(DOC)}), headers=clerk)
    assert answer.status_code == 200, answer.text
    [candidate] = answer.json()["candidates"]
    assert candidate["comparison"]["document"]["level"] == "typo" and candidate["grade"] == "certain"
    # ... and its holder is found through it even when the name and birth date lead nowhere.
    answer = client.post(URL, json={"name": "李四", "birth_date": "1971-03-03",
                                    "document": {"type": "01", "number": _mistyped(DOC)}}, headers=clerk)
    assert answer.status_code == 200, answer.text
    assert [c["ehc_id"] for c in answer.json()["candidates"]] in ([], [card])
    assert all(c["grade"] != "certain" for c in answer.json()["candidates"])
    # Landlines and M/F are read as batch linkage reads them.
    answer = client.post(URL, json=_body(sex="F", phone="0571-88123456"), headers=clerk)
    assert answer.status_code == 200, answer.text
    assert answer.json()["candidates"][0]["comparison"]["sex"]["level"] == "same"


def test_a_guardians_document_does_not_link_the_child(client, clerk, card, institution) -> None:
    # The mother's ID number on her son's record: born 2015, male; the number says 1985, female.
    body = _body(name="王小宝", sex="1", birth_date="2015-03-09", document={"type": "01", "number": DOC},
                 identifiers=[{"system": "mrn", "value": "MR-3003"}], link=True)
    answer = client.post(URL, json=body, headers=clerk)
    assert answer.status_code == 200, answer.text
    assert answer.json()["action"] != "linked"
    assert all(c["grade"] != "certain" for c in answer.json()["candidates"])


def test_the_county_is_read_from_the_address_when_no_region_code_is_given(platform) -> None:
    from ehc.mpi.matching import places

    assert places.region_of("四川省成都市锦江区人民路12号") == "510104"
    assert places.region_of("锦江区人民路12号") == "510104"  # unique in the country
    assert places.region_of("江苏省南京市白下区中山路1号")[:4] == "3201"  # abolished in 2013, still read
    assert places.region_of("朝阳区建国路8号") is None  # Beijing or Changchun: not guessed
    wang = _person(platform, WANG)
    # A look-alike surname (玉 for 王), no phone, no region code: only birth date + sex + the city read
    # from the address meets.
    found = _match(platform, Record(name="玉慧敏", sex="2", birth_date=BORN, address=WANG.address))
    assert wang in [c.person_id for c in found]


def test_the_road_key_reads_a_roads_section_however_it_is_written() -> None:
    from ehc.mpi.matching import places

    assert places.street_of("四川省成都市锦江区人民路12号") == "人民路12"
    assert places.street_of("成都市锦江区红星路一段1号") == places.street_of("红星路1段1号附2号") == "红星路1段1"
    assert places.street_of("武侯区人民南路四段27号") == "人民南路4段27"
    assert places.street_of("科华北路十二段3号") == "科华北路12段3"
    assert places.street_of("红星路一段") is None  # no house number: nothing to block on


def test_a_birth_date_two_errors_off_needs_the_full_name_and_the_phone_or_the_address() -> None:
    close = matching.evidence.birth_close
    assert close(date(1967, 5, 9), date(1957, 5, 19))  # two digits
    assert close(date(1983, 12, 1), date(1983, 1, 12))  # day and month swapped ...
    assert close(date(1937, 8, 22), date(1937, 12, 8))  # ... and one digit wrong
    assert close(date(2010, 1, 1), date(2020, 7, 18))  # year only, the year one digit off
    assert close(date(1952, 6, 17), date(1952, 6, 26))  # one day off and one digit (16 -> 17 -> 26)
    assert not close(date(1960, 5, 27), date(1980, 11, 3))  # a parent and a child
    levels = {"name": "exact", "birth_date": "different", "sex": "same", "phone": "exact", "address": "different",
              "region": "different", "document": None}
    ceiling = matching.evidence.ceiling
    assert ceiling(levels) == "possible"
    assert ceiling(levels, close_birth=True) is None  # the same full name at the same mobile
    # A relative at the same phone and address has another name: still possible.
    assert ceiling({**levels, "name": "close", "address": "exact"}, close_birth=True) == "possible"
    # The county read from the address corroborates like a given region code.
    alike = {**levels, "birth_date": "exact", "phone": "different", "region": "exact"}
    assert ceiling(alike) is None
    assert ceiling({**alike, "region": "different"}) == "probable"
