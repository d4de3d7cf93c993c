"""Synthetic residents for tests: valid resident ID numbers with known birth dates and sexes."""

from __future__ import annotations

import random
from datetime import date

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK = "10X98765432"


def resident_id(region: str = "510104", born: date = date(1990, 3, 7), sequence: int = 12, male: bool = True) -> str:
    """A valid 18-character resident ID; its 17th digit is odd for men and even for women."""
    sex_digit = 2 * (sequence % 5) + (1 if male else 0)
    body = f"{region}{born:%Y%m%d}{sequence % 100:02d}{sex_digit}"
    return body + CHECK[sum(int(d) * w for d, w in zip(body, WEIGHTS)) % 11]


def random_resident(rng: random.Random) -> dict:
    born = date(rng.randint(1930, 2020), rng.randint(1, 12), rng.randint(1, 28))
    male = rng.random() < 0.5
    surname = rng.choice("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗")
    given = "".join(rng.choice("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英") for _ in range(rng.randint(1, 2)))
    return {
        "name": surname + given,
        "document": {"type": "01", "number": resident_id("510104", born, rng.randint(0, 99), male)},
        "sex": "1" if male else "2",
        "birth_date": born.isoformat(),
        "phone": f"13{rng.randint(0, 9)}{rng.randint(0, 99999999):08d}",
    }
