"""Base45 (RFC 9285): bytes as text in the QR alphanumeric set, strict both ways.

Decoding is canonical: every accepted text maps to exactly one byte string and back, so a changed
character can never decode to the same bytes. Lower-case letters, characters outside the 45-set,
a dangling single character and groups whose value overflows are all refused with ``ValueError``.
"""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}


def b45encode(data: bytes) -> str:
    out: list[str] = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        e, rest = divmod(n, 45 * 45)
        d, c = divmod(rest, 45)
        out += (ALPHABET[c], ALPHABET[d], ALPHABET[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out += (ALPHABET[c], ALPHABET[d])
    return "".join(out)


_triples: dict[str, bytes] | None = None


def _triple_table() -> dict[str, bytes]:
    """Every valid 3-character group and its 2 bytes (65,536 entries, built on first use): decoding a
    code is then one dictionary look-up a group, which a terminal does for every scan."""
    global _triples
    if _triples is None:
        _triples = {ALPHABET[n % 45] + ALPHABET[n // 45 % 45] + ALPHABET[n // 2025]: n.to_bytes(2, "big")
                    for n in range(0x10000)}
    return _triples


def b45decode(text: str) -> bytes:
    whole = len(text) - len(text) % 3
    if len(text) % 3 != 1:
        triples = _triple_table()
        try:
            head = b"".join([triples[text[i:i + 3]] for i in range(0, whole, 3)])
            if whole == len(text):
                return head
            last = _VALUE[text[-2]] + _VALUE[text[-1]] * 45
            if last <= 0xFF:
                return head + bytes((last,))
        except KeyError:
            pass  # a character outside the set or a group out of range: said precisely below
    return _decode_checked(text)


def _decode_checked(text: str) -> bytes:
    """The plain decoder, which names what is wrong (also the reference the fast path must match)."""
    try:
        values = [_VALUE[c] for c in text]
    except KeyError as exc:
        raise ValueError(f"not a Base45 character: {exc.args[0]!r}") from None
    if len(values) % 3 == 1:
        raise ValueError("Base45 text length leaves a single dangling character")
    out = bytearray()
    for i in range(0, len(values), 3):
        group = values[i : i + 3]
        if len(group) == 3:
            n = group[0] + group[1] * 45 + group[2] * 45 * 45
            if n > 0xFFFF:
                raise ValueError("Base45 group out of range")
            out += n.to_bytes(2, "big")
        else:
            n = group[0] + group[1] * 45
            if n > 0xFF:
                raise ValueError("Base45 final group out of range")
            out.append(n)
    return bytes(out)
