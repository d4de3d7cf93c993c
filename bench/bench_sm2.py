"""SM2 signatures of ``ehc.crypto`` against OpenSSL's native speed, measured in the same run.

Headline figures: SM2 signs/s and verifies/s on one thread, each the median of 5 runs of ~2 s,
with ``openssl speed -seconds 2 sm2`` run between our rounds (interleaved, so machine noise hits
both sides alike). Like ``openssl speed``, every operation signs or verifies a 20-byte message and
computes Z_A afresh (DigestSignInit + DigestSign per operation). Goal: ours / OpenSSL >= 0.9.

Informative rows: SM4-GCM seals/s and opens/s of a typical 20-byte name through ``Sealer``, and
blind index (HMAC-SM3) lookups/s of an 18-character document number.

Run alone: ``.venv/bin/python bench/bench_sm2.py [--quick]``; or through ``bench/run.py``.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from ehc.crypto import BlindIndex, KeyStore, Sealer, SM2PrivateKey

GOAL_RATIO = 0.9
MESSAGE = bytes(range(20))  # openssl speed signs 20 bytes
NAME = "爱新觉罗·溥仪"  # 20 bytes of UTF-8: a typical sealed name
DOCUMENT = "11010119900307447X"

_SPEED_LINE = re.compile(
    r"SM2\s*\(CurveSM2\)\s+[\d.]+s\s+[\d.]+s\s+(?P<sign>[\d.]+)\s+(?P<verify>[\d.]+)"
)


def rate(op: Callable[[], object], seconds: float) -> float:
    """Operations per second of ``op`` run back to back for about ``seconds``."""
    op()  # warm up
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    now = start
    while now < deadline:
        op()
        count += 1
        now = time.perf_counter()
    return count / (now - start)


def openssl_speed(seconds: int) -> tuple[float, float, str]:
    """(signs/s, verifies/s, version) from ``openssl speed -seconds N sm2``; NaN when unavailable."""
    exe = shutil.which("openssl")
    if exe is None:
        return float("nan"), float("nan"), "openssl not found"
    version = " ".join(subprocess.run([exe, "version"], capture_output=True, text=True).stdout.split()[:2])
    out = subprocess.run(
        [exe, "speed", "-seconds", str(seconds), "sm2"], capture_output=True, text=True
    ).stdout
    match = _SPEED_LINE.search(out)
    if not match:
        return float("nan"), float("nan"), f"{version}: could not parse `openssl speed` output"
    return float(match["sign"]), float(match["verify"]), version


def _spread(values: list[float]) -> str:
    return f"{len(values)} runs, {min(values):,.0f}-{max(values):,.0f}"


def _row(figure, value, unit, *, reference=None, reference_value=None, goal=None, notes=""):
    ratio = met = None
    if reference_value is not None and reference_value == reference_value and reference_value > 0:
        ratio = round(value / reference_value, 3)
        if goal is not None:
            met = ratio >= GOAL_RATIO
    elif reference_value is not None:  # NaN: the reference could not be measured
        reference_value = None
    return {
        "figure": figure,
        "value": round(value, 1),
        "unit": unit,
        "reference": reference,
        "reference_value": None if reference_value is None else round(reference_value, 1),
        "ratio": ratio,
        "goal": goal,
        "met": met,
        "notes": notes,
    }


def main(quick: bool = False) -> list[dict]:
    runs = 3 if quick else 5
    seconds = 0.5 if quick else 2.0
    ossl_seconds = 1 if quick else 2

    key = SM2PrivateKey.generate()
    public = key.public_key
    signature = key.sign(MESSAGE)
    assert public.verify(signature, MESSAGE)

    ours_sign, ours_verify, ref_sign, ref_verify = [], [], [], []
    version = ""
    for _ in range(runs):
        ours_sign.append(rate(lambda: key.sign(MESSAGE), seconds))
        ours_verify.append(rate(lambda: public.verify(signature, MESSAGE), seconds))
        s, v, version = openssl_speed(ossl_seconds)
        ref_sign.append(s)
        ref_verify.append(v)

    reference = f"`openssl speed -seconds {ossl_seconds} sm2` ({version}), interleaved in the same run"
    rows = [
        _row(
            "SM2 sign, one thread",
            statistics.median(ours_sign),
            "signs/s",
            reference=reference,
            reference_value=statistics.median(ref_sign),
            goal=f">= {GOAL_RATIO}x",
            notes=f"ehc.crypto (tongsuopy), 20-byte message, Z_A per op; ours {_spread(ours_sign)}; "
            f"openssl {_spread(ref_sign)}",
        ),
        _row(
            "SM2 verify, one thread",
            statistics.median(ours_verify),
            "verifies/s",
            reference=reference,
            reference_value=statistics.median(ref_verify),
            goal=f">= {GOAL_RATIO}x",
            notes=f"ehc.crypto (tongsuopy), DER signature, Z_A per op; ours {_spread(ours_verify)}; "
            f"openssl {_spread(ref_verify)}",
        ),
    ]

    with tempfile.TemporaryDirectory() as tmp:
        store = KeyStore.init(Path(tmp) / "keys")
        sealer = Sealer(store)
        index = BlindIndex(store)
        sealed = sealer.seal(NAME, "person.name")
        assert sealer.open(sealed, "person.name") == NAME
        seals = [rate(lambda: sealer.seal(NAME, "person.name"), seconds / 2) for _ in range(runs)]
        opens = [rate(lambda: sealer.open(sealed, "person.name"), seconds / 2) for _ in range(runs)]
        lookups = [rate(lambda: index("person.document", DOCUMENT), seconds / 2) for _ in range(runs)]

    name_bytes = len(NAME.encode())
    rows += [
        _row(
            "Seal a name (SM4-GCM via Sealer)",
            statistics.median(seals),
            "seals/s",
            notes=f"informative; {name_bytes}-byte UTF-8 name, fresh nonce, base64url text out; "
            f"{_spread(seals)}",
        ),
        _row(
            "Open a sealed name (SM4-GCM via Sealer)",
            statistics.median(opens),
            "opens/s",
            notes=f"informative; same value, tag checked; {_spread(opens)}",
        ),
        _row(
            "Blind index (HMAC-SM3)",
            statistics.median(lookups),
            "ops/s",
            notes=f"informative; 18-character document number, hex out; {_spread(lookups)}",
        ),
    ]
    return rows


if __name__ == "__main__":
    for row in main(quick="--quick" in sys.argv[1:]):
        print(row)
