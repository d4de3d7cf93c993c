"""The master index's value types: a person's details in clear and an identifier (in memory only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ..kit.context import Ctx


@dataclass(frozen=True)
class Demographics:
    """A person's details in clear, in memory only; sealed before they touch the database."""

    name: str | None
    sex: str
    birth_date: date | None = None
    phone: str | None = None
    address: str | None = None
    region_code: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Identifier:
    system: str  # "doc:01", "newborn", later "mrn:<institution>", "ssc", ...
    value: str  # normalised

    def blind_index(self, ctx: Ctx) -> str:
        return ctx.vault.blind("identifier", f"{self.system}:{self.value}")
