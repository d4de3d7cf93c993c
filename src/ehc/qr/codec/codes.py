"""The care-step (scene) codes card use is reported with (docs/codes.md)."""

from __future__ import annotations

from ...kit.codes import Channel
from ...kit.errors import Invalid, field_error

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

# The care steps at which a printed (static) code needs a second factor (a PIN or a code texted to
# the holder's phone, docs/qr-format.md §9.1): those that move money or open records on the strength
# of the code alone.
# - Payment (010105 and its sub-codes): the code authorises a charge to the holder's account or
#   insurance; a photocopy of the paper must not be enough to spend someone's money.
# - Reports (010108 and its sub-codes): lab and imaging results, mostly collected at self-service
#   kiosks and report printers with nobody checking a face; they are the records a static code opens.
# Not listed, on purpose: registration, diagnosis, examination, prescribing, dispensing, surgery and
# inpatient steps happen face to face with clinical staff, whose own access to records is governed
# and audited by their role; and these are exactly the steps the elderly without a smartphone, the
# people static codes exist for, must not be turned away from. "Other" (000000) is not a reason to
# open records either.
SECOND_FACTOR_SCENES = frozenset({"010105", "0101051", "0101052", "0101053", "010108", "0101081", "0101082"})


def online_only(code_type: int, scene: str) -> bool:
    """Whether a scan can only be accepted online: a static code (type 1) at a step that needs the
    second factor, which only the platform can check (docs/qr-format.md §9.3). Terminals refuse it
    offline, and the platform refuses it in an offline upload."""
    return code_type == 1 and scene in SECOND_FACTOR_SCENES

# The channels a scan happens on: the national ones and the hospital system extension.
SCAN_CHANNELS = frozenset({Channel.WINDOW, Channel.KIOSK, Channel.WORKSTATION, Channel.OFFICIAL_ACCOUNT,
                           Channel.MINI_PROGRAM, Channel.HOSPITAL_SYSTEM})


def check_use_codes(scene: str, channel: str) -> None:
    """A scan is reported with a care step and a channel from the national lists (online, offline)."""
    errors = []
    if scene not in SCENES:
        errors.append(field_error("scene", "scene_unknown", "not a care-step code (docs/codes.md)"))
    if channel not in {str(c) for c in SCAN_CHANNELS}:
        errors.append(field_error("channel", "channel_unknown", "not a card-use channel code"))
    if errors:
        raise Invalid("The card-use codes are not in the national lists.", code="card_use_codes_invalid",
                      errors=errors)
