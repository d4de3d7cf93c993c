"""The audit trail's wire format: the auditor's full events and the resident's access log."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

# What each purpose means, for people reading a log (the resident's "who looked at my data").
PURPOSES: dict[str, tuple[str, str]] = {
    "card.view": ("Viewed the card and its holder", "查看电子健康卡及持卡人信息"),
    "card.lookup": ("Looked up the card by identity document", "凭证件查询电子健康卡"),
    "card.desk": ("Opened the card at a service window (status, history, family)", "服务窗口查看电子健康卡（状态、办理记录、家庭成员）"),
    "card.register": ("Registered a card", "注册电子健康卡"),
    "card.modify": ("Changed the holder's details", "修改持卡人信息"),
    "card.lifecycle": ("Changed the card's status (lost, reissue, cancel, review)", "变更卡状态（挂失、补办、注销、审核）"),
    "card.family": ("Family members: binding and listing", "家庭成员绑定与查询"),
    "card.newborn": ("Registered a newborn with a parent's card", "凭父母卡登记新生儿"),
    "card.temporary": ("Temporary card for an unidentified patient", "为身份不明患者办理临时卡"),
    "card.merge": ("Merged a temporary card into the identified person's card", "临时卡合并至本人卡"),
    "card.verify": ("Scanned the card's QR code (registration, payment, care)", "扫描电子健康卡二维码（挂号、缴费、诊疗）"),
    "card.pin": ("Set, changed or cleared the card's PIN (second factor for printed codes)",
                 "设置、修改或清除健康卡密码（纸质二维码的二次验证）"),
    "card.second_factor": ("Sent a one-time code to the holder's phone to confirm a printed code's use",
                           "向持卡人手机发送验证码，确认纸质二维码的使用"),
    "card.print": ("Printed the card's QR code label (masked name)", "打印电子健康卡二维码标签（姓名部分隐藏）"),
    "mpi.lookup": ("Found the person by a hospital number, social security or insurance number",
                   "凭医院患者号、社保卡号或医保号查找本人"),
    "mpi.identifiers": ("Linked, unlinked or listed hospital and insurance numbers", "关联、解除或查看医院及医保号码"),
    "mpi.review": ("Reviewed a possible duplicate record", "审核疑似重复档案"),
    "mpi.merge": ("Merged or separated duplicate records of the same person", "合并或拆分同一人的重复档案"),
    "mpi.match": ("Compared a hospital's patient with the master index and found this person as a candidate",
                  "医院患者与主索引比对，本人为候选匹配"),
    "fhir.read": ("Read the patient's record in the master index (FHIR)", "通过FHIR接口查看主索引中的患者信息"),
    "fhir.pix": ("Looked up the patient's numbers at other services (IHE PIXm)", "查询患者在各机构的标识号（IHE PIXm）"),
    "fhir.search": ("Searched the master index by identity details (IHE PDQm)", "按身份信息检索主索引（IHE PDQm）"),
    "account.sign_in": ("Sign-in on a shared phone: checked the document number's last characters",
                        "共用手机号登录：核对证件号后四位"),
    "family_doctor.contract": ("Family doctor: signed, viewed or changed the contract", "家庭医生：签约、查看或变更签约"),
    "family_doctor.service": ("Family doctor: recorded a follow-up or check-up", "家庭医生：记录随访或体检"),
    "family_doctor.work_list": ("Family doctor: the team's work list (services due)", "家庭医生：团队工作清单（待办服务）"),
    "family_doctor.reminder": ("Family doctor: renewal reminder sent by text message", "家庭医生：短信提醒续约"),
    "family_doctor.condition": ("Family doctor: recorded a condition (key population)", "家庭医生：登记重点人群疾病"),
    "family_doctor.referral": ("Family doctor: referred to a specialist", "家庭医生：转诊至专科"),
    "family_doctor.outreach": ("Family doctor: the team's outreach list of its area (name masked)",
                               "家庭医生：团队服务区域未签约居民名单（姓名部分隐藏）"),
    "appointment.book": ("Booked, changed or looked up an appointment", "预约挂号：预约、改约、取消或查询"),
    "appointment.notify": ("Texted an appointment notice to the holder's phone", "向持卡人手机发送预约通知"),
    "records.read": ("Read health records under consent (or its own records as their publisher)",
                     "依授权查阅健康档案（或作为发布机构查阅本机构记录）"),
    "records.publish": ("Published or corrected a health record", "发布或更正健康档案记录"),
    "records.break_glass": ("Emergency read of health records without consent (break-glass)", "急救时未经授权查阅健康档案（紧急授权）"),
    "records.guardian": ("Your guardian read or kept your health records", "监护人查阅或维护您的健康档案"),
    "records.consent": ("Your guardian granted or revoked access to your health records", "监护人授予或撤销健康档案查阅授权"),
    "records.summary": ("Printed the health record summary (name masked)", "打印健康档案摘要（姓名部分隐藏）"),
}


class AuditEventOut(BaseModel):
    """One chained event, as auditors see it (every field, the link included)."""

    seq: int
    at: datetime
    action: str = Field(description="read or change")
    purpose: str = Field(examples=["card.lookup"])
    person_id: str = Field(description="Master index id of the resident whose data was accessed")
    actor_kind: str = Field(description="staff, machine, system, anonymous or resident")
    actor_id: str | None
    actor_role: str | None
    institution_id: str | None
    operator: str | None
    channel: str = Field(description="Card-use channel code: 0100 window, 0200 kiosk, 0300 workstation, ...")
    request_id: str | None
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_before: int | None = Field(
        None, description="Pass as `before` to get the next (older) page; absent on the last page")


class AccessLogEntry(BaseModel):
    """One access to the resident's data, as the resident sees it: who (by institution, role and a
    masked operator), why, when, through which channel. ``ref`` lets them quote it in a complaint."""

    ref: int = Field(description="The event's number in the audit trail")
    at: datetime
    action: str = Field(description="read or change")
    purpose: str
    purpose_label: str
    purpose_label_zh: str
    channel: str
    institution_id: str | None
    actor_kind: str
    actor_role: str | None
    operator: str | None = Field(None, description="Masked: the first character and stars")


class AccessLogPage(BaseModel):
    items: list[AccessLogEntry]
    next_before: int | None = None


def access_log_entry(event) -> AccessLogEntry:  # noqa: ANN001
    """An event as the resident sees it (the API and the resident's page)."""
    label = PURPOSES.get(event.purpose, (event.purpose, event.purpose))
    return AccessLogEntry(
        ref=event.seq,
        at=event.at,
        action=event.action,
        purpose=event.purpose,
        purpose_label=label[0],
        purpose_label_zh=label[1],
        channel=event.channel,
        institution_id=event.institution_id,
        actor_kind=event.actor_kind,
        actor_role=event.actor_role,
        # A resident learns where and in which role, not a staff member's account name: enough to
        # recognise a visit or to quote ``ref`` in a complaint, which an auditor resolves in full.
        operator=_mask(event.operator) if event.actor_kind in ("staff", "machine") else None,
    )


def _mask(value: str | None) -> str | None:
    if not value:
        return None
    return value[0] + "*" * min(len(value) - 1, 6) if len(value) > 1 else "*"
