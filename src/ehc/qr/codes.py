"""The care-step (scene) codes card use is reported with (DOMAIN.md, "Using the card")."""

from __future__ import annotations

from ..kit.codes import Channel

SCENES: dict[str, str] = {
    "010101": "registration",
    "0101011": "registration: booked",
    "0101012": "registration: same day",
    "0101013": "registration: query",
    "0101014": "registration: guidance",
    "010102": "diagnosis",
    "010103": "dispensing",
    "010104": "examination",
    "010105": "payment",
    "0101051": "payment: outpatient",
    "0101052": "payment: paid",
    "0101053": "payment: inpatient",
    "010106": "prescribing",
    "010107": "surgery",
    "010108": "reports",
    "0101081": "reports: lab",
    "0101082": "reports: imaging",
    "010109": "inpatient",
    "000000": "other",
}

# The channels a scan happens on: the national ones and the hospital system extension.
SCAN_CHANNELS = frozenset({Channel.WINDOW, Channel.KIOSK, Channel.WORKSTATION, Channel.OFFICIAL_ACCOUNT,
                           Channel.MINI_PROGRAM, Channel.HOSPITAL_SYSTEM})
