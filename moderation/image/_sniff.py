"""Which image format a file is, from its first bytes alone."""

from __future__ import annotations

from typing import Literal, TypeAlias

__all__ = ["DetectFormat", "ImageFormat", "sniff"]

ImageFormat: TypeAlias = Literal["jpeg", "png", "webp", "gif", "bmp", "tiff"]
DetectFormat: TypeAlias = Literal["jpeg", "png"]

# Sizes a BMP's DIB header can have (BITMAPCOREHEADER .. BITMAPV5HEADER). "BM" alone is two ASCII
# letters that plenty of text files start with.
_BMP_DIB_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


def sniff(data: bytes | bytearray | memoryview) -> ImageFormat | None:
    """The image format announced by the magic bytes at the start of `data`, or None.

    Only the content counts: a file name or a declared content type is never consulted.
    """
    head = bytes(data[:32])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"BM") and len(head) >= 18:
        if int.from_bytes(head[14:18], "little") in _BMP_DIB_SIZES:
            return "bmp"
        return None
    # Classic TIFF (42) and BigTIFF (43), little- and big-endian.
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "tiff"
    return None
