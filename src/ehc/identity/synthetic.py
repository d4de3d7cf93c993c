"""Synthetic residents: document numbers with correct check characters, names, phones and addresses.

Pure functions of their arguments and a seeded ``random.Random`` (no database, no clock), shared by
the demo province (``ehc.demo``), the master-index test sets (``ehc.mpi.synth``) and the tests, so a
synthetic GB 11643 number is made one way everywhere.
"""

from __future__ import annotations

import random
from datetime import date

from faker import Faker
from stdnum.cn import uscc as stdnum_uscc

_RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_RIC_CHECK = "10X98765432"
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN_NAME_CHARACTERS = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英"


def resident_id_number(region: str, born: date, sequence: int, male: bool) -> str:
    """GB 11643: region (6) + birth date (8) + sequence (2) + sex digit (odd = male) + check.

    ``sequence`` picks the three-digit order code: ``sequence // 5 % 100`` its first two digits,
    ``sequence % 5`` (with the sex) its last, so 500 sequences give 500 numbers per sex and day."""
    sex_digit = (sequence % 5) * 2 + (1 if male else 0)
    body = f"{region}{born:%Y%m%d}{sequence // 5 % 100:02d}{sex_digit}"
    return body + _RIC_CHECK[sum(int(d) * w for d, w in zip(body, _RIC_WEIGHTS)) % 11]


def organisation_code(digits: str) -> str:
    """GB 11714 organisation code: 8 digits + check character (0-9 or X)."""
    check = 11 - sum(int(d) * w for d, w in zip(digits, _ORG_WEIGHTS)) % 11
    return digits + {10: "X", 11: "0"}.get(check, str(check))


def make_uscc(registrar: str, region: str, org_digits: str) -> str:
    """GB 32100: registrar + entity type (2) + region (6) + organisation code (9) + check."""
    body = f"{registrar}{region}{organisation_code(org_digits)}"
    return stdnum_uscc.validate(body + stdnum_uscc.calc_check_digit(body))


def chinese_name(rng: random.Random) -> str:
    """A common surname and a one- or two-character given name."""
    surname = rng.choice(SURNAMES)
    return surname + "".join(rng.choice(GIVEN_NAME_CHARACTERS) for _ in range(rng.randint(1, 2)))


def mobile_phone(rng: random.Random) -> str:
    """An 11-digit mainland mobile number (13x)."""
    return f"13{rng.randint(0, 9)}{rng.randint(0, 99999999):08d}"


def street_address(fake: Faker, rng: random.Random, province: str, city: str, district: str) -> str:
    """A flat in a district: street and number, building, unit, floor and door."""
    return (f"{province}{city}{district}{fake.street_name()}{rng.randint(1, 399)}号"
            f"{rng.randint(1, 24)}栋{rng.randint(1, 4)}单元{rng.randint(1, 32)}{rng.randint(1, 4):02d}室")
