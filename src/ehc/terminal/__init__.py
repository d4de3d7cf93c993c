"""``ehc.terminal``: what a scanner, kiosk or hospital system runs to verify health-card QR codes
with no network (docs/terminal.md, docs/qr-format.md §9, §11, §12).

    from ehc.terminal import Terminal

    with Terminal("/var/lib/ehc-terminal", terminal_id="K01", department="0300") as t:
        t.pin_root(open("root.pem", "rb").read())          # once, out of band
        t.sync("https://ehc.example")                        # with network: trust + revocation lists
        accepted = t.verify(text, scene="0101011", channel="0200")   # offline
        t.upload(ehc_client)                                 # later: the queued card uses, in batches
"""

from .images import ImageUnreadable, code_from_image, read_image
from .lists import (
    ListMalformed,
    ListSerialLower,
    ListSignatureInvalid,
    Revocations,
    TerminalProblem,
    TrustedKey,
    TrustList,
    open_envelope,
)
from .terminal import (
    BATCH_MAX,
    EXIT_CODES,
    MAX_LIST_AGE,
    SKEW,
    Accepted,
    ListStale,
    QRReplayed,
    QRRevoked,
    RevocationListMissing,
    RootKeyMismatch,
    RootKeyMissing,
    SyncFailed,
    SyncReport,
    Terminal,
    TrustListMissing,
    UploadReport,
    check_use_codes,
    exit_code,
)

__all__ = [
    "BATCH_MAX",
    "EXIT_CODES",
    "MAX_LIST_AGE",
    "SKEW",
    "Accepted",
    "ImageUnreadable",
    "ListMalformed",
    "ListSerialLower",
    "ListSignatureInvalid",
    "ListStale",
    "QRReplayed",
    "QRRevoked",
    "RevocationListMissing",
    "Revocations",
    "RootKeyMismatch",
    "RootKeyMissing",
    "SyncFailed",
    "SyncReport",
    "Terminal",
    "TerminalProblem",
    "TrustList",
    "TrustListMissing",
    "TrustedKey",
    "UploadReport",
    "check_use_codes",
    "code_from_image",
    "exit_code",
    "open_envelope",
    "read_image",
]
