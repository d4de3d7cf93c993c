from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UtcDateTime
from ..kit.clock import utcnow


class Institution(Base):
    __tablename__ = "institutions"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    # Unified social credit code (GB 32100), the institution's legal identity.
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(24))  # hospital | community_centre | clinic | pharmacy
    region_code: Mapped[str] = mapped_column(String(6), index=True)  # GB/T 2260
    level: Mapped[str | None] = mapped_column(String(8))  # e.g. 3A, 2B, 1
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
