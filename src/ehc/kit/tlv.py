"""The BER-TLV subset EMVCo's consumer-presented QR (QRCPS) uses: one- and two-byte tags, definite
lengths (short form, ``81 xx``, ``82 xx xx``). Strict: trailing bytes or overlong lengths are refused."""

from __future__ import annotations


def encode(tag: bytes, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        length = bytes([n])
    elif n <= 0xFF:
        length = b"\x81" + bytes([n])
    elif n <= 0xFFFF:
        length = b"\x82" + n.to_bytes(2, "big")
    else:
        raise ValueError("TLV value too long")
    return tag + length + value


def decode(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split ``data`` into (tag, value) pairs, one level deep; raises ``ValueError`` if anything is off."""
    items: list[tuple[bytes, bytes]] = []
    i = 0
    while i < len(data):
        start = i
        if data[i] in (0x00, 0xFF):
            raise ValueError("padding bytes are not allowed")
        i += 1
        if data[start] & 0x1F == 0x1F:
            if i >= len(data) or data[i] & 0x80:
                raise ValueError("bad multi-byte tag")
            i += 1
        tag = data[start:i]
        if i >= len(data):
            raise ValueError("truncated length")
        first = data[i]
        i += 1
        if first < 0x80:
            n = first
        elif first in (0x81, 0x82):
            k = first - 0x80
            if i + k > len(data):
                raise ValueError("truncated length")
            n = int.from_bytes(data[i : i + k], "big")
            i += k
            if n < (0x80 if k == 1 else 0x100):
                raise ValueError("length not in its shortest form")
        else:
            raise ValueError("unsupported length form")
        if i + n > len(data):
            raise ValueError("value runs past the end")
        items.append((tag, data[i : i + n]))
        i += n
    return items
