"""The QR domain's public face: what other domains and the doors call (docs/qr-format.md).

Nothing is defined here; each rule lives in the module that owns it and is re-exported:

- ``online.py``: issuing codes, verifying one online and recording the card use, single use of
  dynamic codes, a card's use history.
- ``uses.py``: offline uses uploaded in batches, and the monitoring of uses (lists, summaries).
- ``lists.py``: the signed trust and revocation lists offline terminals cache.
- ``second_factor.py``: the PIN and the texted code a printed (static) code needs at some steps.
- ``codec/``: the pure format; its care-step and channel codes, the TLV container a payment
  channel builds its part of a two-in-one code with, and a code's text drawn as a PNG (``render_png``,
  what ``/api/v1/me/qr/dynamic.png`` answers; the bill's payment code page shows the same image).

The printed A7 label (``label.py``) is not re-exported: only the QR API prints it, and it loads a PDF
library nothing else needs.
"""

from __future__ import annotations

from .codec import render_png, tlv
from .codec.codes import SCAN_CHANNELS, SCENES, SECOND_FACTOR_SCENES, check_use_codes, online_only
from .lists import (
    RevocationSinceInvalid,
    RevocationSinceUnknown,
    parse_since,
    revocation_list,
    revoke_on_transition,
    root_key_info,
    trust_list,
    withdraw_qr_key,
)
from .online import (
    DYNAMIC_VALIDITY,
    PAYMENT_PURPOSE,
    REFRESH_AFTER,
    VERIFY_PURPOSE,
    Issued,
    PaymentChannel,
    QRReplayed,
    QRRevoked,
    Use,
    Verified,
    issue_dynamic,
    issue_static,
    last_scan_at,
    open_code,
    payment_part,
    purge_used_codes,
    uses_of,
    verify,
)
from .second_factor import (
    PinStatus,
    Proof,
    SecondFactorInvalid,
    SecondFactorLocked,
    SecondFactorRequired,
    SecondFactorUnavailable,
    SmsRateLimited,
    SmsSent,
    card_of_static_code,
    check_pin,
    clear_pin,
    pin_status,
    send_sms_code,
    set_pin,
)
from .uses import (
    MAX_BATCH,
    MONITOR_ROLES,
    BatchResult,
    Filters,
    Grouping,
    ItemResult,
    OfflineUse,
    Outcome,
    Page,
    Summary,
    SummaryRow,
    check_batch_size,
    list_uses,
    may_monitor,
    statistics_events,
    summarise,
    upload,
    used_on_day,
)
from .uses import MAX_PAGE as MAX_USES_PAGE

__all__ = [
    "DYNAMIC_VALIDITY",
    "MAX_BATCH",
    "MAX_USES_PAGE",
    "MONITOR_ROLES",
    "REFRESH_AFTER",
    "SCAN_CHANNELS",
    "SCENES",
    "SECOND_FACTOR_SCENES",
    "VERIFY_PURPOSE",
    "BatchResult",
    "Filters",
    "Grouping",
    "Issued",
    "ItemResult",
    "OfflineUse",
    "Outcome",
    "Page",
    "PinStatus",
    "Proof",
    "QRReplayed",
    "QRRevoked",
    "RevocationSinceInvalid",
    "RevocationSinceUnknown",
    "SecondFactorInvalid",
    "SecondFactorLocked",
    "SecondFactorRequired",
    "SecondFactorUnavailable",
    "SmsRateLimited",
    "SmsSent",
    "Summary",
    "SummaryRow",
    "Use",
    "Verified",
    "card_of_static_code",
    "check_batch_size",
    "check_pin",
    "check_use_codes",
    "clear_pin",
    "issue_dynamic",
    "issue_static",
    "last_scan_at",
    "list_uses",
    "may_monitor",
    "online_only",
    "open_code",
    "parse_since",
    "pin_status",
    "purge_used_codes",
    "render_png",
    "revocation_list",
    "revoke_on_transition",
    "root_key_info",
    "send_sms_code",
    "set_pin",
    "summarise",
    "used_on_day",
    "tlv",
    "trust_list",
    "uses_of",
    "verify",
    "withdraw_qr_key",
    "statistics_events",
]
