"""Wire models of the statistics API."""

from __future__ import annotations

from datetime import date, datetime

from typing import Literal

from pydantic import BaseModel, Field


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


class ScheduleIn(BaseModel):
    report: Literal["daily_report", "table"]
    frequency: Literal["daily", "weekly"] = "daily"
    weekday: int | None = Field(default=None, ge=0, le=6)  # weekly: 0 Monday ... 6 Sunday
    format: Literal["csv", "parquet"] = "csv"
    indicator: str | None = Field(default=None, max_length=24)  # a table's
    by: str | None = Field(default=None, max_length=24)
    period: Literal["day", "week", "month"] | None = None
    region: str | None = Field(default=None, max_length=6)  # None: your whole region
    send_upstream: bool = False  # each file also to the upper-level platform (EHC_UPSTREAM_URL)


class ScheduleOut(BaseModel):
    id: int
    report: str
    indicator: str | None
    by: str | None
    period: str | None
    region: str | None  # None: the whole country
    frequency: str
    weekday: int | None
    format: str
    status: str
    send_upstream: bool
    created_by: str
    created_on: date


class DeliveryOut(BaseModel):
    id: int
    schedule_id: int
    due_on: date
    start: date  # the days the report covers
    end: date
    file_name: str
    size: int
    sha256: str
    created_at: datetime
    download: str  # the API path of the file
    # Sending upward (a schedule with send_upstream): received when, tries so far, the next try, the
    # last error, the receiver's name for it.
    sent_at: datetime | None = None
    send_attempts: int = 0
    next_send_at: datetime | None = None
    send_error: str | None = None
    receipt: str | None = None


class RunOut(BaseModel):
    made: list[DeliveryOut]


class CoverageFigureOut(BaseModel):
    covered: str  # as published: a count, "<5" or "x"
    population: str
    share: str  # "12.5%", or "—" where a count is withheld


class CoverageLineOut(BaseModel):
    institution_id: str | None  # None: the region
    name: str
    figures: dict[str, CoverageFigureOut]  # residents, elderly, children, hypertension, diabetes, pregnant, services_promised


class CoverageOut(BaseModel):
    region: str
    threshold: int
    centres: list[CoverageLineOut]
    total: CoverageLineOut
