"""Reading codes out of pictures: a photo or screenshot of a QR code → its text (zxing-cpp)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import zxingcpp
from PIL import Image, UnidentifiedImageError

from ..qr import codec


class ImageUnreadable(codec.QRRejected):
    code = "qr_image_unreadable"
    title = "No QR code found"


# What Pillow raises on a file it cannot decode: not only OSError (UnidentifiedImageError, "truncated"),
# its format plug-ins also raise SyntaxError ("broken PNG file"), ValueError ("Truncated IHDR chunk"),
# EOFError and struct.error on damaged data, and DecompressionBombError on absurd dimensions.
_UNDECODABLE = (OSError, UnidentifiedImageError, SyntaxError, ValueError, EOFError, struct.error,
                Image.DecompressionBombError)


def read_image(path: Path | str | BinaryIO) -> list[str]:
    """The text of every QR code zxing-cpp finds in the image (a file's path, or an open binary file),
    in reading order; :class:`ImageUnreadable` for anything that is not a picture Pillow can decode."""
    try:
        with Image.open(path) as image:
            found = zxingcpp.read_barcodes(image.convert("L"), formats=zxingcpp.BarcodeFormat.QRCode)
    except _UNDECODABLE as exc:
        raise ImageUnreadable(f"Cannot read {path} as an image: {exc}") from None
    return [b.text for b in found if b.valid]


def code_from_image(path: Path | str) -> str:
    """The one EHC code in the image (an image showing several QR codes is refused: which one?)."""
    texts = read_image(path)
    if not texts:
        raise ImageUnreadable(f"No QR code found in {path}.")
    if len(texts) > 1:
        raise ImageUnreadable(f"{len(texts)} QR codes in {path}: show one at a time.")
    return texts[0]
