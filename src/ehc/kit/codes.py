"""National code lists the whole platform speaks (docs/codes.md): channels and terminal types.

Where a code list has no entry for something a deployment needs, the extension codes are marked.
"""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    WINDOW = "0100"  # hospital service window
    KIOSK = "0200"  # self-service kiosk
    WORKSTATION = "0300"  # doctor workstation
    OFFICIAL_ACCOUNT = "0401"  # official service account
    MINI_PROGRAM = "0402"  # mini-program
    WEBSITE = "0500"  # extension: the public website and app
    HOSPITAL_SYSTEM = "0600"  # extension: a hospital information system over the machine API
    # extension: a platform operator at the ``ehc`` command line (lifecycle steps, lookups, daily jobs);
    # never a place where a resident was served, so residents are not told they were at a window
    CONSOLE = "0800"
    BATCH_IMPORT = "0900"  # extension: migration of an existing resident registry


CHANNEL_LABELS = {
    Channel.WINDOW: ("Service window", "服务窗口"),
    Channel.KIOSK: ("Self-service kiosk", "自助机"),
    Channel.WORKSTATION: ("Doctor workstation", "医生工作站"),
    Channel.OFFICIAL_ACCOUNT: ("Official account", "服务号"),
    Channel.MINI_PROGRAM: ("Mini-program", "小程序"),
    Channel.WEBSITE: ("Public website", "公众服务网站"),
    Channel.HOSPITAL_SYSTEM: ("Hospital system", "医院信息系统"),
    Channel.CONSOLE: ("Platform operator (command line)", "平台运维人员（命令行）"),
    Channel.BATCH_IMPORT: ("Batch import", "批量导入"),
}

