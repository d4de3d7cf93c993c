"""The institution registry's wire format."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from .codes import KIND_LABELS, TERMINAL_CHANNEL, TERMINAL_LABELS, TerminalRole, department_label, level_label
from .models import Department, Institution, Terminal


class InstitutionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uscc: str = Field(max_length=32, description="Unified social credit code (GB 32100), 18 characters",
                      examples=["12510104MB0000000X"])
    name: str = Field(max_length=200, examples=["锦江区第一人民医院"])
    kind: str = Field(max_length=24, description="hospital, community_centre, clinic or pharmacy")
    region_code: str = Field(max_length=6, description="GB/T 2260 region code", examples=["510104"])
    level: str | None = Field(None, max_length=8, description="3A, 3B, 2A, 2B, 1 ... or none", examples=["3A"])


class InstitutionChanges(BaseModel):
    """Only the fields given change; ``level: null`` (or "none") makes the institution ungraded."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    kind: str | None = Field(None, max_length=24)
    region_code: str | None = Field(None, max_length=6)
    level: str | None = Field(None, max_length=8)


class InstitutionOut(BaseModel):
    id: str
    uscc: str
    name: str
    kind: str
    kind_label: str
    kind_label_zh: str
    region_code: str
    level: str | None
    level_label: str
    level_label_zh: str
    created_at: datetime
    updated_at: datetime | None

    @classmethod
    def of(cls, institution: Institution) -> "InstitutionOut":
        kind_en, kind_zh = KIND_LABELS.get(institution.kind, (institution.kind, institution.kind))
        level_en, level_zh = level_label(institution.level)
        return cls(id=institution.id, uscc=institution.uscc, name=institution.name, kind=institution.kind,
                   kind_label=kind_en, kind_label_zh=kind_zh, region_code=institution.region_code,
                   level=institution.level, level_label=level_en, level_label_zh=level_zh,
                   created_at=institution.created_at, updated_at=institution.updated_at)


class InstitutionPage(BaseModel):
    items: list[InstitutionOut]
    total: int
    limit: int
    offset: int


class DepartmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(max_length=4, description="Standard 4-digit department code", examples=["0300"])
    name: str | None = Field(None, max_length=100, description="Local name; the standard label when omitted",
                             examples=["心血管内科"])


class DepartmentChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100)


class DepartmentOut(BaseModel):
    code: str
    name: str
    standard_label: str
    standard_label_zh: str
    institution_id: str
    created_at: datetime
    updated_at: datetime | None

    @classmethod
    def of(cls, department: Department) -> "DepartmentOut":
        english, chinese = department_label(department.code)
        return cls(code=department.code, name=department.name, standard_label=english, standard_label_zh=chinese,
                   institution_id=department.institution_id, created_at=department.created_at,
                   updated_at=department.updated_at)


class TerminalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    terminal_id: str = Field(max_length=32, description="The institution's id of the terminal", examples=["W01"])
    role: str = Field(max_length=16, description="window, kiosk, workstation or other")
    type_code: str | None = Field(None, max_length=2, description="01 window, 02 kiosk, 99 other; follows from role")
    department_code: str | None = Field(None, max_length=4)
    name: str | None = Field(None, max_length=100, examples=["门诊一楼 1 号窗口"])


class TerminalChanges(BaseModel):
    """Only the fields given change; ``department_code: null`` takes the terminal out of its department."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=100)
    department_code: str | None = Field(None, max_length=4)
    status: str | None = Field(None, max_length=8, description="active or retired")


class TerminalOut(BaseModel):
    terminal_id: str
    institution_id: str
    role: str
    role_label: str
    role_label_zh: str
    type_code: str
    channel: str | None
    name: str | None
    department_code: str | None
    status: str
    created_at: datetime
    updated_at: datetime | None
    retired_at: datetime | None

    @classmethod
    def of(cls, terminal: Terminal, department_code: str | None) -> "TerminalOut":
        role = TerminalRole(terminal.role)
        english, chinese = TERMINAL_LABELS[role]
        channel = TERMINAL_CHANNEL[role]
        return cls(terminal_id=terminal.terminal_id, institution_id=terminal.institution_id, role=role.value,
                   role_label=english, role_label_zh=chinese, type_code=terminal.type_code,
                   channel=channel.value if channel else None, name=terminal.name,
                   department_code=department_code, status=terminal.status, created_at=terminal.created_at,
                   updated_at=terminal.updated_at, retired_at=terminal.retired_at)


class CodeLabel(BaseModel):
    code: str
    label: str
    label_zh: str
