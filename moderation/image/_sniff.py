"""Which image format a file is, from its first bytes alone."""

from __future__ import annotations

from typing import Literal, TypeAlias

__all__ = ["DetectFormat", "ImageFormat", "other_format", "sniff"]

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


# ISO base media file brands (the `ftyp` box) of image formats: HEIF and AVIF.
_FTYP_BRANDS = {
    b"avif": "avif",
    b"avis": "avif",
    b"heic": "heic",
    b"heix": "heic",
    b"hevc": "heic",
    b"heim": "heic",
    b"heis": "heic",
    b"mif1": "heif",
    b"msf1": "heif",
}

# Signatures of formats that are pictures or documents but that intake does not take, for a
# refusal that says so. Pillow identifies many more (see `_decode.unsupported_format`); these are
# the ones it has no plugin for, or that it cannot be trusted to name from a header alone.
_OTHER_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "pdf"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "jxl"),
    (b"\xff\x0a", "jxl"),
    (b"v/1\x01", "exr"),
    (b"#?RADIANCE", "hdr"),
    (b"#?RGBE", "hdr"),
    (b"II\xbc", "jpeg-xr"),
    (b"gimp xcf", "xcf"),
)


def other_format(data: bytes | bytearray | memoryview) -> str | None:
    """The name of an image or document format intake does not take, from its signature, or
    None. Only what `sniff` returned None for is worth asking about."""
    head = bytes(data[:64])
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12])
    for signature, name in _OTHER_SIGNATURES:
        if head.startswith(signature):
            return name
    if bytes(data[128:132]) == b"DICM":
        return "dicom"
    text = head.lstrip().lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in bytes(data[:1024])):
        return "svg"
    return None
