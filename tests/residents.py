"""Synthetic residents for tests: valid resident ID numbers with known birth dates and sexes.

The numbers, names and phones come from the platform's one generator (``ehc.identity.synthetic``),
the one the demo uses."""

from __future__ import annotations

import random
from datetime import date

from ehc.identity.synthetic import chinese_name, mobile_phone, resident_id_number


def resident_id(region: str = "510104", born: date = date(1990, 3, 7), sequence: int = 12, male: bool = True) -> str:
    """A valid 18-character resident ID; its 17th digit is odd for men and even for women. Order code:
    ``sequence % 100`` and, in the sex digit, ``sequence % 5``."""
    return resident_id_number(region, born, (sequence % 100) * 5 + sequence % 5, male)


def random_resident(rng: random.Random) -> dict:
    born = date(rng.randint(1930, 2020), rng.randint(1, 12), rng.randint(1, 28))
    male = rng.random() < 0.5
    name = chinese_name(rng)
    number = resident_id("510104", born, rng.randint(0, 99), male)
    return {
        "name": name,
        "document": {"type": "01", "number": number},
        "sex": "1" if male else "2",
        "birth_date": born.isoformat(),
        "phone": mobile_phone(rng),
    }
