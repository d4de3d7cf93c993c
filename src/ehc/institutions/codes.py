"""Code lists of the institution registry: kinds, levels, department codes and terminal types, with
labels in English and Chinese. GB/T 2260 region codes, which every domain checks, are in ``kit.regions``.

Department codes follow 《医疗机构诊疗科目名录》 (卫医发〔1994〕27号 and its later additions): two
digits of category then two of speciality, ``0300`` being internal medicine as a whole and ``0304``
cardiology within it. Every category is listed; specialities are listed for the four big clinical
categories (internal medicine, surgery, obstetrics and gynaecology, paediatrics). A code whose
category is known but whose speciality is not listed here is still accepted (labelled with its
category): the national list has more specialities than we transcribe, and refusing a hospital's
real department would be worse than a coarser label.
"""

from __future__ import annotations

import re
from enum import StrEnum

from ..kit.codes import Channel

# -- institution kinds and levels -----------------------------------------------------------------

KIND_LABELS: dict[str, tuple[str, str]] = {
    "hospital": ("Hospital", "医院"),
    "community_centre": ("Community health centre", "社区卫生服务中心"),
    "clinic": ("Clinic", "诊所"),
    "pharmacy": ("Pharmacy", "药店"),
}
KINDS = tuple(KIND_LABELS)

# Hospital grades (医院等级): level 1-3 (一级/二级/三级), optionally with the grade within the level
# (甲/乙/丙 = A/B/C). Institutions without a grade (clinics, pharmacies, new hospitals) have none.
LEVEL_PATTERN = re.compile(r"[123][ABC]?")
UNGRADED = "none"


def level_label(level: str | None) -> tuple[str, str]:
    if level is None:
        return ("Ungraded", "未定级")
    english = f"Level {level[0]}" + (f" grade {level[1]}" if len(level) > 1 else "")
    chinese = "一二三"[int(level[0]) - 1] + "级" + ({"A": "甲等", "B": "乙等", "C": "丙等"}.get(level[1:], ""))
    return english, chinese


# -- departments ----------------------------------------------------------------------------------

DEPARTMENTS: dict[str, tuple[str, str]] = {
    "0100": ("Preventive care", "预防保健科"),
    "0200": ("General practice", "全科医疗科"),
    "0300": ("Internal medicine", "内科"),
    "0301": ("Respiratory medicine", "呼吸内科专业"),
    "0302": ("Gastroenterology", "消化内科专业"),
    "0303": ("Neurology", "神经内科专业"),
    "0304": ("Cardiology", "心血管内科专业"),
    "0305": ("Haematology", "血液内科专业"),
    "0306": ("Nephrology", "肾病学专业"),
    "0307": ("Endocrinology", "内分泌专业"),
    "0308": ("Immunology", "免疫学专业"),
    "0309": ("Allergy", "变态反应专业"),
    "0310": ("Geriatrics", "老年病专业"),
    "0311": ("Internal medicine, other", "其他"),
    "0400": ("Surgery", "外科"),
    "0401": ("General surgery", "普通外科专业"),
    "0402": ("Neurosurgery", "神经外科专业"),
    "0403": ("Orthopaedics", "骨科专业"),
    "0404": ("Urology", "泌尿外科专业"),
    "0405": ("Thoracic surgery", "胸外科专业"),
    "0406": ("Cardiac and great vessel surgery", "心脏大血管外科专业"),
    "0407": ("Burns", "烧伤科专业"),
    "0408": ("Plastic surgery", "整形外科专业"),
    "0409": ("Surgery, other", "其他"),
    "0500": ("Obstetrics and gynaecology", "妇产科"),
    "0501": ("Gynaecology", "妇科专业"),
    "0502": ("Obstetrics", "产科专业"),
    "0503": ("Family planning", "计划生育专业"),
    "0504": ("Eugenics", "优生学专业"),
    "0505": ("Reproductive health and infertility", "生殖健康与不孕症专业"),
    "0506": ("Obstetrics and gynaecology, other", "其他"),
    "0600": ("Women's health care", "妇女保健科"),
    "0700": ("Paediatrics", "儿科"),
    "0701": ("Neonatology", "新生儿专业"),
    "0702": ("Paediatric infectious diseases", "小儿传染病专业"),
    "0703": ("Paediatric gastroenterology", "小儿消化专业"),
    "0704": ("Paediatric respiratory medicine", "小儿呼吸专业"),
    "0705": ("Paediatric cardiology", "小儿心脏病专业"),
    "0706": ("Paediatric nephrology", "小儿肾病专业"),
    "0707": ("Paediatric haematology", "小儿血液病专业"),
    "0708": ("Paediatric neurology", "小儿神经病学专业"),
    "0709": ("Paediatric endocrinology", "小儿内分泌专业"),
    "0710": ("Paediatric genetic diseases", "小儿遗传病专业"),
    "0711": ("Paediatric immunology", "小儿免疫专业"),
    "0712": ("Paediatrics, other", "其他"),
    "0800": ("Paediatric surgery", "小儿外科"),
    "0900": ("Child health care", "儿童保健科"),
    "1000": ("Ophthalmology", "眼科"),
    "1100": ("Otorhinolaryngology", "耳鼻咽喉科"),
    "1200": ("Stomatology", "口腔科"),
    "1300": ("Dermatology", "皮肤科"),
    "1400": ("Medical cosmetology", "医疗美容科"),
    "1500": ("Psychiatry", "精神科"),
    "1600": ("Infectious diseases", "传染科"),
    "1700": ("Tuberculosis", "结核病科"),
    "1800": ("Endemic diseases", "地方病科"),
    "1900": ("Oncology", "肿瘤科"),
    "2000": ("Emergency medicine", "急诊医学科"),
    "2100": ("Rehabilitation medicine", "康复医学科"),
    "2200": ("Sports medicine", "运动医学科"),
    "2300": ("Occupational diseases", "职业病科"),
    "2400": ("Hospice care", "临终关怀科"),
    "2500": ("Special and military medicine", "特种医学与军事医学科"),
    "2600": ("Anaesthesiology", "麻醉科"),
    "2700": ("Pain medicine", "疼痛科"),
    "2800": ("Critical care medicine", "重症医学科"),
    "3000": ("Medical laboratory", "医学检验科"),
    "3100": ("Pathology", "病理科"),
    "3200": ("Medical imaging", "医学影像科"),
    "5000": ("Traditional Chinese medicine", "中医科"),
    "5100": ("Ethnic minority medicine", "民族医学科"),
    "5200": ("Integrated Chinese and Western medicine", "中西医结合科"),
    "6900": ("Other clinical departments", "其他业务科室"),
}
_CATEGORIES = frozenset(code[:2] for code in DEPARTMENTS)


def department_problem(code: object) -> str | None:
    """Why ``code`` is not a standard department code, or None."""
    if not isinstance(code, str) or len(code) != 4 or not code.isdigit():
        return "A department code is 4 digits (category and speciality), e.g. 0300 internal medicine."
    if code[:2] not in _CATEGORIES:
        return f"{code[:2]} is not a department category of the national list (e.g. 03 internal medicine)."
    return None


def department_label(code: str) -> tuple[str, str]:
    """English and Chinese label of a department code (its category's, for an unlisted speciality)."""
    return DEPARTMENTS.get(code) or DEPARTMENTS[code[:2] + "00"]


# -- terminals ------------------------------------------------------------------------------------

class TerminalRole(StrEnum):
    """What a terminal is used for; it decides the terminal type and the channel of its scans."""

    WINDOW = "window"
    KIOSK = "kiosk"
    WORKSTATION = "workstation"
    OTHER = "other"


class TerminalType(StrEnum):
    """Terminal type of card-use monitoring."""

    WINDOW = "01"
    KIOSK = "02"
    OTHER = "99"


TERMINAL_TYPE = {
    TerminalRole.WINDOW: TerminalType.WINDOW,
    TerminalRole.KIOSK: TerminalType.KIOSK,
    TerminalRole.WORKSTATION: TerminalType.OTHER,
    TerminalRole.OTHER: TerminalType.OTHER,
}
# The channel a terminal's scans are reported under; "other" terminals have no national channel.
TERMINAL_CHANNEL: dict[TerminalRole, Channel | None] = {
    TerminalRole.WINDOW: Channel.WINDOW,
    TerminalRole.KIOSK: Channel.KIOSK,
    TerminalRole.WORKSTATION: Channel.WORKSTATION,
    TerminalRole.OTHER: None,
}
TERMINAL_LABELS = {
    TerminalRole.WINDOW: ("Service window", "服务窗口"),
    TerminalRole.KIOSK: ("Self-service kiosk", "自助机"),
    TerminalRole.WORKSTATION: ("Doctor workstation", "医生工作站"),
    TerminalRole.OTHER: ("Other terminal", "其他终端"),
}
TERMINAL_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
TERMINAL_STATUSES = ("active", "retired")
