"""The Chinese-demographics test-set generator: shape, determinism, known truth, realistic errors."""

from __future__ import annotations

from datetime import date

import pytest
from pypinyin import Style, lazy_pinyin
from stdnum.cn import ric

from ehc.mpi import synth


@pytest.fixture(scope="module")
def small_set():
    return synth.generate(2_000, 1_000, seed=11)


def test_frames_have_the_documented_columns(small_set):
    index, queries, truth = small_set
    assert list(index.columns) == list(synth.COLUMNS)
    assert list(queries.columns) == list(synth.COLUMNS)
    assert list(truth.columns) == ["index_rec_id", "query_rec_id"]
    assert len(index) == 2_000
    assert len(queries) == 1_000 + 250  # duplicates + people not in the index
    assert len(truth) == 1_000
    assert index.rec_id.is_unique and queries.rec_id.is_unique


def test_same_seed_same_set_other_seed_other_set(small_set):
    index, queries, truth = synth.generate(2_000, 1_000, seed=11)
    assert index.equals(small_set[0]) and queries.equals(small_set[1]) and truth.equals(small_set[2])
    other_index, _, _ = synth.generate(2_000, 1_000, seed=12)
    assert not other_index.equals(index)


def test_truth_pairs_are_the_same_person_and_outsiders_have_none(small_set):
    index, queries, truth = small_set
    true_of = dict(zip(index.rec_id, index.true_id)) | dict(zip(queries.rec_id, queries.true_id))
    assert all(true_of[a] == true_of[b] for a, b in zip(truth.index_rec_id, truth.query_rec_id))
    outsiders = set(queries.rec_id) - set(truth.query_rec_id)
    assert len(outsiders) == 250
    assert not set(queries[queries.rec_id.isin(outsiders)].true_id) & set(index.true_id)


def test_values_are_well_formed(small_set):
    index, queries, _ = small_set
    for frame in (index, queries):
        for number in frame.id_number.dropna():
            assert len(number) == 18 and ric.calc_check_digit(number) == number[-1]
        for phone in frame.phone.dropna():
            assert len(phone) == 11 and phone.startswith("1")
        for born in frame.birth_date:
            date.fromisoformat(born)
        assert set(frame.sex) <= {"0", "1", "2"}
        assert frame.region_code.str.fullmatch(r"\d{6}").all()
    # Most hospital records lack the ID number; few index records do.
    assert 0.5 < queries.id_number.isna().mean() < 0.75
    assert index.id_number.isna().mean() < 0.1


def test_duplicates_carry_the_promised_kinds_of_error(small_set):
    index, queries, truth = small_set
    pairs = truth.merge(index, left_on="index_rec_id", right_on="rec_id").merge(
        queries, left_on="query_rec_id", right_on="rec_id", suffixes=("_i", "_q"))
    homophone = shape = nickname = swapped = phone_missing = 0
    shapes = synth.similar_shapes()
    for row in pairs.itertuples():
        a, b = row.name_i, row.name_q
        if a != b and len(a) == len(b):
            diff = [(x, y) for x, y in zip(a, b) if x != y]
            if len(diff) == 1:
                x, y = diff[0]
                if lazy_pinyin(x, style=Style.NORMAL) == lazy_pinyin(y, style=Style.NORMAL):
                    homophone += 1
                elif y in shapes.get(x, ()):
                    shape += 1
        if b[1:].startswith(("小", "阿")) or (len(b) >= 3 and b[-1] == b[-2] and a[-1] == b[-1]):
            nickname += 1
        di, dq = date.fromisoformat(row.birth_date_i), date.fromisoformat(row.birth_date_q)
        if di != dq and (di.month, di.day) == (dq.day, dq.month):
            swapped += 1
        if row.phone_i and row.phone_q is None:
            phone_missing += 1
    assert min(homophone, shape, nickname, swapped, phone_missing) > 5, (homophone, shape, nickname, swapped)
    unchanged = (pairs.name_i == pairs.name_q) & (pairs.birth_date_i == pairs.birth_date_q)
    assert 0.3 < unchanged.mean() < 0.95


def test_relatives_share_surname_and_address_but_are_other_people(small_set):
    index, _, _ = small_set
    shared = index[index.duplicated("address", keep=False)]
    assert len(shared) > 100
    for _, group in shared.groupby("address"):
        assert group.true_id.is_unique
        assert group.name.str[0].nunique() == 1 or group.name.str[:2].isin(synth.COMPOUND_SURNAMES).any()


def test_hard_sets_carry_the_legacy_noise():
    index, queries, truth = synth.generate(3_000, 1_000, seed=5, hard=True)
    assert list(queries.columns) == [*synth.COLUMNS, "noise"] and queries.region_code.isna().all()
    kinds = set(queries.noise.str.split().explode().dropna())
    assert {"id_15_digits", "id_mistyped", "landline", "year_only", "date_one_day_off", "doppelganger",
            "card2"} <= kinds
    noisy = queries.set_index("rec_id")
    assert all(len(n) == 15 for n in noisy.loc[noisy.noise.str.contains("id_15"), "id_number"])
    assert not any(ric.is_valid(n) for n in noisy.loc[noisy.noise.str.contains("id_mistyped"), "id_number"])
    # Several cards of one patient: the same person on two or three rows, each linked to the index person.
    per_person = queries.groupby("true_id").size()
    assert 1 < per_person.max() <= 3 and (per_person > 1).mean() > 0.1
    true_of = dict(zip(index.rec_id, index.true_id)) | dict(zip(queries.rec_id, queries.true_id))
    assert all(true_of[a] == true_of[b] for a, b in zip(truth.index_rec_id, truth.query_rec_id))
    # Look-alikes not in the index share name, sex and birth date with someone who is.
    alike = queries[queries.noise.str.contains("doppelganger")]
    keyed = set(zip(index.name, index.sex, index.birth_date))
    shared = sum((r.name, r.sex, r.birth_date) in keyed for r in alike.itertuples())
    assert len(alike) and shared > 0.3 * len(alike)  # the rest were typed with errors, as every row may be
    assert not set(alike.true_id) & set(index.true_id)
    # The plain generator is unchanged by the hard mode's existence.
    assert "noise" not in synth.generate(200, 50, seed=5)[1].columns
