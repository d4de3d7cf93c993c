"""Chinese-demographics test sets with known truth, for measuring record linkage (issue 5).

:func:`generate` draws an *index* of people (one record each, as the master index would hold them)
and a *query* list: corrupted copies of some of those people, as another hospital's system would
have typed them, plus people who are not in the index at all. The truth is known, so precision and
recall of any matcher can be counted.

Shape (plain pandas DataFrames, so Splink, DuckDB or a loop can use them)::

    index, queries, truth = generate(n_people=10_000, n_duplicates=5_000, seed=7)

``index`` and ``queries`` have the columns ``rec_id, name, sex, birth_date, phone, address,
region_code, id_number, true_id``:

* ``rec_id``: ``I0000001`` (index) / ``Q0000001`` (query), unique within the set;
* ``name``: Chinese name as typed (surname + given name, no spaces);
* ``sex``: GB/T 2261.1 code as text, ``"1"`` male, ``"2"`` female, ``"0"`` unknown;
* ``birth_date``: ISO ``YYYY-MM-DD``;
* ``phone``: 11-digit mainland mobile, or ``None`` (missing);
* ``address``: free text (province, county, street, building, room);
* ``region_code``: GB/T 2260 six-digit county code of the address;
* ``id_number``: 18-character resident ID card number, or ``None`` (missing);
* ``true_id``: the person behind the record (``P0000001``); the same in both frames for one person.

``truth`` has the columns ``index_rec_id, query_rec_id``: one row per query record that is a
duplicate of an index record (query records of people not in the index have no row).

Realism, in plain words:

* The index draws names from Faker's ``zh_CN`` surname frequencies and given names from Faker's
  list plus names built from common given-name characters, so many people share a name (as in
  China); about one person in eight is the relative of an earlier one (same surname, address,
  often the same phone), the hardest kind of non-match.
* Every duplicate gets 0 to 4 errors drawn from: a homophone character in the name (same pinyin
  without tones), a similar-shaped character (a small curated table), a nickname or alternate given
  name (明 -> 小明 / 明明 / 阿明), day and month swapped, a one-digit typo in the birth date or the
  phone, a missing phone, a new phone, a changed address (moved, maybe to another county), an
  abbreviated address, an unknown sex. Most hospitals' records lack the ID number (60% missing in
  queries), and a few index records lack it too (children, people registered without a document).

Deterministic: the same arguments give the same frames.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from stdnum import numdb

from ..identity import service as identity
from .matching.names import SIMILAR_SHAPES

COLUMNS = ("rec_id", "name", "sex", "birth_date", "phone", "address", "region_code", "id_number", "true_id")

# Characters that common given names are built from (beyond Faker's short list of full names).
GIVEN_CHARS = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华玉萍红娥玲芬燕彩春菊凤洁梅琳素云莲真环雪荣爱妹香月莺媛"
    "瑞凡佳嘉琼勤珍贞莉桂娣叶璧璐娅琦晶妍茜秋珊莎锦黛青倩婷姣婉娴瑾颖露瑶怡婵雁蓓纨仪荷丹蓉眉君琴蕊薇菁梦岚苑"
    "婕馨瑗琰韵融园艺咏卿聪澜纯毓悦昭冰爽琬茗羽希宁欣飘育滢馥筠柔竹霭凝晓欢霄枫芸菲寒伊亚宜可姬舒影荔枝思丽"
    "浩宇轩然子涵博文昊天俊峰鹏辉鑫磊斌志强建国建军永成海波振宏家豪晨阳泽睿诚嘉懿煜城懿轩烨伟祺智宸正豪昊然"
    "明杰立诚立轩立辉峻熙弘文熠彤鸿煊烨霖哲瀚鑫鹏致远俊驰雨泽烨磊晟睿天佑文昊修洁黎昕远航旭尧鸿涛伟祺荣轩越泽"
)

# Compound surnames come first when a name is split (欧阳 before 欧).
COMPOUND_SURNAMES = (
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒", "令狐",
    "夏侯", "澹台", "端木", "万俟", "单于", "呼延", "独孤", "南宫", "轩辕", "闻人", "西门", "百里", "东郭",
)

_STREET_WORDS = (
    "人民", "解放", "建设", "中山", "和平", "胜利", "新华", "朝阳", "文化", "光明", "长江", "黄河", "东风",
    "青年", "幸福", "红旗", "团结", "工业", "学府", "春熙", "滨江", "锦华", "府南", "天府", "金沙", "龙泉",
)
_STREET_SUFFIXES = ("路", "街", "大道", "巷")


@dataclass
class _Person:
    true_id: str
    surname: str
    given: str
    sex: str
    birth: date
    phone: str | None
    region: str
    address: str
    id_number: str | None
    guardian_id: str | None = None  # hard sets: a child's parent's ID number, which records carry


@lru_cache(maxsize=1)
def _regions() -> tuple[tuple[str, str], ...]:
    """(county code, "province + county") for a deterministic sample of real GB/T 2260 counties."""
    # heavy: Faker's locale data takes a while to load; only generated sets need it
    from faker.providers.ssn import zh_CN as ssn_zh

    database = numdb.get("cn/loc")
    found = []
    for code in ssn_zh.Provider.area_codes:
        if code.endswith("00"):
            continue
        parts: dict[str, str] = {}
        for _, names in database.info(code):
            parts.update(names)
        county, province = parts.get("county"), parts.get("province")
        if not county or not province:
            continue
        county = re.sub(r"\[[^\]]*\]", "", county.split(",")[-1])
        found.append((code, province + county))
    sample = random.Random(2260).sample(found, 400)
    return tuple(sorted(sample))


@lru_cache(maxsize=1)
def _names() -> tuple[tuple[str, ...], tuple[float, ...], tuple[str, ...], tuple[str, ...]]:
    # heavy: Faker's locale data takes a while to load; only generated sets need it
    from faker.providers.person import zh_CN as person_zh

    provider = person_zh.Provider
    surnames = tuple(provider.last_names)
    weights = tuple(float(w) for w in provider.last_names.values())
    return surnames, weights, tuple(provider.first_names_male), tuple(provider.first_names_female)


@lru_cache(maxsize=1)
def homophones() -> dict[str, tuple[str, ...]]:
    """For each character of the name pools, the other pool characters with the same toneless pinyin."""
    # heavy: pypinyin loads its dictionaries on import (about 0.25 s); only generated sets need it here
    from pypinyin import Style, lazy_pinyin

    surnames, _, male, female = _names()
    pool = sorted(set("".join(surnames) + "".join(male) + "".join(female) + GIVEN_CHARS))
    by_sound: dict[str, list[str]] = {}
    for char in pool:
        by_sound.setdefault(lazy_pinyin(char, style=Style.NORMAL)[0], []).append(char)
    return {
        char: tuple(other for other in group if other != char)
        for group in by_sound.values() if len(group) > 1 for char in group
    }


@lru_cache(maxsize=1)
def similar_shapes() -> dict[str, tuple[str, ...]]:
    table: dict[str, set[str]] = {}
    for group in SIMILAR_SHAPES:
        for char in group:
            table.setdefault(char, set()).update(c for c in group if c != char)
    return {char: tuple(sorted(others)) for char, others in table.items() if others}


def resident_id_number(region: str, born: date, sequence: int, male: bool) -> str:
    """GB 11643: region (6) + birth date (8) + sequence (2) + sex digit (odd = male) + check."""
    return identity.resident_id_number(region, born, sequence, male)


class _Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.surnames, self.surname_weights, self.male_names, self.female_names = _names()
        self.regions = _regions()
        self.place_of = dict(self.regions)
        self.cumulative_surnames = _cumulative(self.surname_weights)
        self.used_ids: set[str] = set()
        self.used_phones: set[str] = set()

    # -- fields ---------------------------------------------------------------------------------

    def surname(self) -> str:
        if self.rng.random() < 0.004:
            return self.rng.choice(COMPOUND_SURNAMES)
        return self.rng.choices(self.surnames, cum_weights=self.cumulative_surnames)[0]

    def given(self, male: bool) -> str:
        rng = self.rng
        if rng.random() < 0.35:
            return rng.choice(self.male_names if male else self.female_names)
        if rng.random() < 0.25:
            return rng.choice(GIVEN_CHARS)
        return rng.choice(GIVEN_CHARS) + rng.choice(GIVEN_CHARS)

    def birth(self) -> date:
        return date(1935, 1, 1) + timedelta(days=self.rng.randrange(365 * 90))

    def phone(self) -> str:
        while True:
            number = f"1{self.rng.choice('3456789')}{self.rng.randrange(10**9):09d}"
            if number not in self.used_phones:
                self.used_phones.add(number)
                return number

    def address(self, region: str) -> str:
        rng = self.rng
        place = self.place_of[region]
        street = rng.choice(_STREET_WORDS) + rng.choice(_STREET_SUFFIXES)
        return (f"{place}{street}{rng.randint(1, 399)}号{rng.randint(1, 24)}栋"
                f"{rng.randint(1, 4)}单元{rng.randint(1, 32)}{rng.randint(1, 4):02d}室")

    def id_number(self, region: str, born: date, male: bool) -> str:
        while True:
            number = resident_id_number(region, born, self.rng.randrange(500), male)
            if number not in self.used_ids:
                self.used_ids.add(number)
                return number

    # -- people ---------------------------------------------------------------------------------

    def person(self, index: int, relative_of: _Person | None, hard: bool = False) -> _Person:
        rng = self.rng
        male = rng.random() < 0.5
        birth = self.birth()
        guardian = None
        if relative_of is not None:
            surname, region, address = relative_of.surname, relative_of.region, relative_of.address
            phone = relative_of.phone if rng.random() < 0.5 else self.phone()
            if hard:  # a household: a child of the relative (sharing the phone), or a spouse
                kind = rng.random()
                if kind < 0.5 and relative_of.birth.year < 1995:
                    birth = _clamp(relative_of.birth + timedelta(days=rng.randrange(20 * 365, 35 * 365)))
                    phone, guardian = relative_of.phone, relative_of.id_number
                elif kind < 0.8:
                    surname = self.surname()
                    birth = _clamp(relative_of.birth + timedelta(days=rng.randrange(-5 * 365, 5 * 365)))
                    phone = relative_of.phone if rng.random() < 0.7 else phone
        else:
            surname = self.surname()
            region = rng.choice(self.regions)[0]
            address = self.address(region)
            phone = self.phone() if rng.random() < 0.9 else None
        id_number = self.id_number(region, birth, male) if rng.random() < 0.95 else None
        return _Person(f"P{index:07d}", surname, self.given(male), "1" if male else "2", birth, phone,
                       region, address, id_number, guardian if birth.year >= 2008 else None)

    def doppelganger(self, index: int, of: _Person) -> _Person:
        """Another person with the same name, sex and birth date: own phone, address, region, document."""
        region = self.rng.choice(self.regions)[0]
        return _Person(f"P{index:07d}", of.surname, of.given, of.sex, of.birth,
                       self.phone() if self.rng.random() < 0.9 else None, region, self.address(region),
                       self.id_number(region, of.birth, of.sex == "1") if self.rng.random() < 0.95 else None)

    # -- errors ---------------------------------------------------------------------------------

    def corrupt(self, person: _Person) -> dict:
        rng = self.rng
        record = {
            "surname": person.surname, "given": person.given, "sex": person.sex, "birth": person.birth,
            "phone": person.phone, "address": person.address, "region_code": person.region,
            "id_number": person.id_number if rng.random() < 0.4 else None,
        }
        errors = rng.choices((0, 1, 2, 3, 4), weights=(20, 35, 25, 14, 6))[0]
        for name in rng.sample(_ERRORS, errors):
            getattr(self, f"_error_{name}")(record)
        return record

    def corrupt_hard(self, person: _Person) -> dict:
        """:meth:`corrupt`, then what legacy hospital systems add (each noted in ``noise``): 15-digit
        and mistyped ID numbers, a guardian's ID on a child's record, landlines, year-only dates
        (``YYYY-01-01``), dates one day off; no region code (the list has none)."""
        rng = self.rng
        record = self.corrupt(person)
        noise = []
        if person.guardian_id and rng.random() < 0.5:
            record["id_number"] = person.guardian_id
            noise.append("guardian_id")
        elif record["id_number"]:
            number = record["id_number"]
            if rng.random() < 0.1 and number[6:8] == "19":
                record["id_number"] = number[:6] + number[8:17]
                noise.append("id_15_digits")
            elif rng.random() < 0.06:
                spot = rng.randrange(17)
                record["id_number"] = number[:spot] + str((int(number[spot]) + rng.randint(1, 9)) % 10) + number[spot + 1:]
                noise.append("id_mistyped")
        if rng.random() < 0.08:
            record["phone"] = f"0{rng.randint(10, 999)}-{rng.randint(2, 8)}{rng.randrange(10**7):07d}"
            noise.append("landline")
        roll = rng.random()
        if roll < 0.05:
            record["birth"] = record["birth"].replace(month=1, day=1)
            noise.append("year_only")
        elif roll < 0.10:
            record["birth"] = _clamp(record["birth"] + timedelta(days=rng.choice((-1, 1))))
            noise.append("date_one_day_off")
        record["region_code"] = None
        record["noise"] = " ".join(noise)
        return record

    def _error_homophone(self, record: dict) -> None:
        self._replace_name_char(record, homophones())

    def _error_shape(self, record: dict) -> None:
        self._replace_name_char(record, similar_shapes())

    def _replace_name_char(self, record: dict, table: dict[str, tuple[str, ...]]) -> None:
        name = record["surname"] + record["given"]
        spots = [i for i, char in enumerate(name) if char in table]
        if not spots:
            return
        spot = self.rng.choice(spots)
        changed = name[:spot] + self.rng.choice(table[name[spot]]) + name[spot + 1:]
        cut = len(record["surname"])
        record["surname"], record["given"] = changed[:cut], changed[cut:]

    def _error_nickname(self, record: dict) -> None:
        given = record["given"]
        last = given[-1]
        if len(given) == 1:
            record["given"] = self.rng.choice((f"小{last}", f"{last}{last}", f"阿{last}"))
        else:
            record["given"] = self.rng.choice((f"小{last}", f"{last}{last}", given[0]))

    def _error_swap_day_month(self, record: dict) -> None:
        birth: date = record["birth"]
        if birth.day <= 12 and birth.day != birth.month:
            record["birth"] = birth.replace(month=birth.day, day=birth.month)
        else:
            self._error_birth_typo(record)

    def _error_birth_typo(self, record: dict) -> None:
        birth: date = record["birth"]
        text = birth.isoformat().replace("-", "")
        for _ in range(20):
            spot = self.rng.choice((2, 3, 6, 7))  # decade/year digits and day digits: what gets mistyped
            digit = str((int(text[spot]) + self.rng.choice((1, -1, 2))) % 10)
            candidate = text[:spot] + digit + text[spot + 1:]
            try:
                record["birth"] = date(int(candidate[:4]), int(candidate[4:6]), int(candidate[6:]))
                return
            except ValueError:
                continue

    def _error_phone_missing(self, record: dict) -> None:
        record["phone"] = None

    def _error_phone_typo(self, record: dict) -> None:
        phone = record["phone"]
        if not phone:
            return
        spot = self.rng.randrange(3, 11)
        if self.rng.random() < 0.5 and spot < 10:
            record["phone"] = phone[:spot] + phone[spot + 1] + phone[spot] + phone[spot + 2:]
        else:
            record["phone"] = phone[:spot] + str((int(phone[spot]) + self.rng.randint(1, 9)) % 10) + phone[spot + 1:]

    def _error_phone_new(self, record: dict) -> None:
        record["phone"] = self.phone()

    def _error_moved(self, record: dict) -> None:
        if self.rng.random() < 0.6:
            record["region_code"] = self.rng.choice(self.regions)[0]
        record["address"] = self.address(record["region_code"])

    def _error_address_abbreviated(self, record: dict) -> None:
        address = record["address"]
        address = re.sub(r"^.*?(省|自治区|市)", "", address, count=1)
        address = re.sub(r"\d+单元\d+室$", "", address)
        record["address"] = address

    def _error_sex_unknown(self, record: dict) -> None:
        record["sex"] = "0"


_ERRORS = (
    "homophone", "shape", "nickname", "swap_day_month", "birth_typo", "phone_missing", "phone_typo",
    "phone_new", "moved", "address_abbreviated", "sex_unknown",
)


def _clamp(born: date) -> date:
    return min(born, date(2025, 12, 31))


def _cumulative(weights: tuple[float, ...]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


def _row(rec_id: str, person: _Person) -> tuple:
    return (rec_id, person.surname + person.given, person.sex, person.birth.isoformat(), person.phone,
            person.address, person.region, person.id_number, person.true_id)


def people(n_people: int, seed: int, *, relatives: float = 0.125):
    """The index people, one by one (for builders that do not want a DataFrame of a million rows)."""
    generator = _Generator(seed)
    yield from _people(generator, n_people, relatives)


def _people(generator: _Generator, n_people: int, relatives: float, hard: bool = False):
    recent: list[_Person] = []
    for index in range(1, n_people + 1):
        if hard and recent and generator.rng.random() < 0.02:
            person = generator.doppelganger(index, generator.rng.choice(recent))
            recent.append(person)
            if len(recent) > 200:
                recent.pop(0)
            yield person
            continue
        relative_of = generator.rng.choice(recent) if recent and generator.rng.random() < relatives else None
        person = generator.person(index, relative_of, hard)
        recent.append(person)
        if len(recent) > 200:
            recent.pop(0)
        yield person


def generate(n_people: int, n_duplicates: int, seed: int = 0, *, n_new: int | None = None,
             relatives: float = 0.125, hard: bool = False):
    """``(index, queries, truth)`` DataFrames; see the module docstring for their columns.

    ``n_duplicates`` query records are corrupted copies of distinct index people; ``n_new`` more
    (default: a quarter of ``n_duplicates``) are people who are not in the index.

    ``hard``: a legacy hospital list (:meth:`_Generator.corrupt_hard`): households (children with a
    parent's ID, spouses sharing phone and address), look-alike people (2% of the index, and 40% of
    the people not in the index, share a name, sex and birth date with someone of the index), 15-digit
    and mistyped ID numbers, landlines, year-only and one-day-off dates, no region codes, and several
    old cards per patient (16% of the people appear two or three times). ``queries`` then has one
    more column, ``noise``: the kinds of hard noise of each record (space-separated), ``doppelganger``
    for the look-alikes not in the index and ``card2``/``card3`` for the extra cards.
    """
    # heavy: pandas takes about 0.9 s to import; only the frame-building generator needs it
    import pandas as pd

    if n_duplicates > n_people:
        raise ValueError("n_duplicates cannot exceed n_people (one duplicate per person)")
    generator = _Generator(seed)
    index_people = list(_people(generator, n_people, relatives, hard))
    n_new = n_duplicates // 4 if n_new is None else n_new
    # People who are not in the index come from the same generator, so they look alike.
    outsiders, look_alikes = [], set()
    for i in range(n_new):
        if hard and generator.rng.random() < 0.4:
            outsiders.append(generator.doppelganger(n_people + 1 + i, generator.rng.choice(index_people)))
            look_alikes.add(outsiders[-1].true_id)
        else:
            outsiders.append(generator.person(n_people + 1 + i, None))
    duplicated = generator.rng.sample(index_people, n_duplicates)
    if hard:
        queries = []
        for person in duplicated + outsiders:
            cards = 1 + (generator.rng.random() < 0.16) + (generator.rng.random() < 0.05)
            for card in range(cards):
                record = generator.corrupt_hard(person)
                extra = ["doppelganger"] if person.true_id in look_alikes else []
                extra += [f"card{card + 1}"] if card else []
                record["noise"] = " ".join([record["noise"], *extra]).strip()
                queries.append((person, record))
    else:
        queries = [(person, generator.corrupt(person)) for person in duplicated + outsiders]
    generator.rng.shuffle(queries)

    index_rows = [_row(f"I{i + 1:07d}", person) for i, person in enumerate(index_people)]
    query_rows, truth_rows = [], []
    rec_of_person = {person.true_id: f"I{i + 1:07d}" for i, person in enumerate(index_people)}
    for number, (person, record) in enumerate(queries, start=1):
        rec_id = f"Q{number:07d}"
        query_rows.append((rec_id, record["surname"] + record["given"], record["sex"], record["birth"].isoformat(),
                           record["phone"], record["address"], record["region_code"], record["id_number"],
                           person.true_id) + ((record["noise"],) if hard else ()))
        if person.true_id in rec_of_person:
            truth_rows.append((rec_of_person[person.true_id], rec_id))
    return (
        pd.DataFrame(index_rows, columns=list(COLUMNS)),
        pd.DataFrame(query_rows, columns=list(COLUMNS) + (["noise"] if hard else [])),
        pd.DataFrame(truth_rows, columns=["index_rec_id", "query_rec_id"]),
    )


def stream(n_people: int, seed: int, *, query_every: int = 0, relatives: float = 0.125):
    """Index rows one by one, for builders of large indexes (a million people is no DataFrame job).

    Yields ``(row, query)``: ``row`` is a dict of :data:`COLUMNS` (``rec_id`` ``I...``); every
    ``query_every``-th person also gets ``query``, a corrupted copy as another hospital would type it
    (``rec_id`` ``Q...``, same ``true_id``), else ``None``. Deterministic for a seed.
    """
    generator = _Generator(seed)
    for person in _people(generator, n_people, relatives):
        number = int(person.true_id[1:])
        row = dict(zip(COLUMNS, _row(f"I{number:07d}", person)))
        query = None
        if query_every and number % query_every == 0:
            record = generator.corrupt(person)
            query = dict(zip(COLUMNS, (f"Q{number:07d}", record["surname"] + record["given"], record["sex"],
                                       record["birth"].isoformat(), record["phone"], record["address"],
                                       record["region_code"], record["id_number"], person.true_id)))
        yield row, query
