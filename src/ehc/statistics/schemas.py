"""Wire models of the statistics API."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel


class ColumnOut(BaseModel):
    value: str
    drill_region: str | None = None  # the region code to ask for to drill down into this column
    total: str  # as published: a count, "<5" or "x"


class RowOut(BaseModel):
    period: str
    cells: list[str]  # as published: a count, "<5" (under the threshold) or "x" (withheld so "<5" holds)
    total: str


class TableOut(BaseModel):
    indicator: str
    by: str | None
    period: str
    region: str | None  # None: the whole country
    start: date
    end: date
    threshold: int
    columns: list[ColumnOut]
    rows: list[RowOut]
    total: str


class ReportRowOut(BaseModel):
    report_date: date
    region_code: str
    institution_id: str
    care_step: str
    channel: str
    terminal_type: str
    uses: int


class ReportOut(BaseModel):
    report_date: date
    region: str | None
    rows: list[ReportRowOut]


class SourceOut(BaseModel):
    source: str
    last_id: int
    events: int
    updated_at: datetime | None


class RefreshOut(BaseModel):
    stored: dict[str, int]
    sources: list[SourceOut]
