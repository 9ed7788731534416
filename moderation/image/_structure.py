"""Whether a JPEG or PNG file is complete and intact, read from its structure; no pixel decoded.

A JPEG is walked marker by marker: SOI, segments with their declared lengths, then after each
SOS the entropy-coded data up to the next marker, until EOI. A PNG is walked chunk by chunk: each
length, type and CRC32, IHDR first, one run of IDAT, IEND last. A file cut short (by an upload, a
proxy, a full disk) always fails one of these; so does a PNG with a flipped bit anywhere.

What the walk cannot see is damage that keeps the structure valid: corrupt JPEG entropy data
(libjpeg only warns about it and decodes grey blocks) or a PNG whose compressed pixel stream is
short but whose CRCs were computed over the damage. Rekognition refuses such a file itself.

GIF frames are counted here too, by walking the blocks, because Pillow's own count has no bound.
"""

from __future__ import annotations

import re
import zlib
from typing import NamedTuple

__all__ = ["GifFrames", "StructureError", "gif_frames", "jpeg_end", "png_end"]


class StructureError(ValueError):
    """The file's structure is broken; the message says how, for a human."""


_JPEG_TRUNCATED = "file is truncated (no end-of-image marker)"

# Markers with no length after them: EOI, a stuffed byte out of place, TEM, restart markers.
_NO_LENGTH = frozenset({0xD9, 0x00, 0x01, *range(0xD0, 0xD8)})
# Start-of-frame markers (every coding process); C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# In entropy-coded data a 0xFF byte is followed by 0x00 (a stuffed data byte), a restart marker
# (D0-D7, part of the scan) or more 0xFF fill: any other byte makes it the marker ending the scan.
_SCAN_GOES_ON = frozenset({0x00, 0xFF, *range(0xD0, 0xD8)})
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
# A memchr step costs about what the pattern takes to read 300 to 450 bytes (benchmarks/image.py
# times both): with 0xFF bytes closer together than this, the pattern is the faster of the two.
_DENSE_GAP = 400
_STEPS = 16  # 0xFF bytes per look at how close together they are
_BLOCK = (None,) * _STEPS  # counts them off: iterating a tuple is cheaper than a range (no ints)


def _scan_end(data: bytes, pos: int, *, dense_gap: int = _DENSE_GAP) -> int:
    """The offset of the marker that ends the entropy-coded data starting at `pos`; -1 if none.

    Two ways to find it give the same offset at different costs: jumping from one 0xFF to the
    next with `bytes.index` (memchr) costs a Python step per 0xFF, the compiled `_SCAN_END` costs
    a C step per byte. Camera photos have a 0xFF every 130 to 300 bytes, where the pattern is up
    to twice as fast; smooth, heavily compressed images have one every 600 or more, where memchr
    is faster. So the walk starts with memchr and hands the rest of the scan to the pattern once
    `_STEPS` consecutive 0xFF bytes came less than `dense_gap` bytes apart on average.
    """
    index = data.index
    goes_on = _SCAN_GOES_ON
    try:
        while True:
            start = pos
            for _ in _BLOCK:
                # The step is as short as it can be: the follower's offset, and its test; no 0xFF
                # left raises ValueError, a 0xFF as the last byte IndexError (both: no marker).
                pos = index(b"\xff", pos) + 1
                if data[pos] not in goes_on:
                    return pos - 1
            if pos - start < _STEPS * dense_gap:
                found = _SCAN_END.search(data, pos)
                return -1 if found is None else found.start()
    except (ValueError, IndexError):
        return -1


def jpeg_end(data: bytes) -> int:
    """The offset just past the JPEG's end-of-image marker; raises `StructureError` if there is
    none, or if a segment runs past the end of `data` (both mean the file was cut short).

    Bytes after EOI (camera trailers, MPF secondary images) are not looked at.
    """
    n = len(data)
    if not data.startswith(b"\xff\xd8"):
        raise StructureError("no start-of-image marker")
    pos = 2
    have_frame = have_scan = False
    while True:
        # libjpeg skips stray bytes between segments (with a warning); so does Pillow: so do we.
        pos = data.find(b"\xff", pos) + 1
        if pos == 0:
            raise StructureError(_JPEG_TRUNCATED)
        while pos < n and data[pos] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos >= n:
            raise StructureError(_JPEG_TRUNCATED)
        marker = data[pos]
        pos += 1
        if marker in _NO_LENGTH:
            if marker == 0xD9:
                if not have_scan:
                    raise StructureError("end-of-image marker before any image data")
                return pos
            continue  # a stuffed byte out of place, TEM, or a restart marker
        if marker == 0xD8:
            raise StructureError("second start-of-image marker")
        if pos + 2 > n:
            raise StructureError(f"segment 0xFF{marker:02X} runs past the end of the file")
        length = data[pos] << 8 | data[pos + 1]
        if length < 2:
            raise StructureError(f"segment 0xFF{marker:02X} has an invalid length ({length})")
        pos += length
        if pos > n:
            raise StructureError(
                f"segment 0xFF{marker:02X} runs past the end of the file (file is truncated)"
            )
        if marker in _SOF:
            have_frame = True
        elif marker == 0xDA:
            if not have_frame:
                raise StructureError("scan before the frame header")
            have_scan = True
            pos = _scan_end(data, pos)
            if pos < 0:
                raise StructureError(_JPEG_TRUNCATED)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_end(data: bytes) -> tuple[int, bytes | None]:
    """(offset just past the IEND chunk, payload of the first eXIf chunk or None).

    Raises `StructureError` when a chunk runs past the end of `data`, a CRC does not match, IHDR
    is not first, there is no IDAT or more than one run of them, or IEND is missing. Bytes after
    IEND are not looked at. The eXIf chunk is returned because it may follow the pixel data,
    where Pillow only finds it after decoding them.
    """
    n = len(data)
    if not data.startswith(_PNG_SIGNATURE):
        raise StructureError("no PNG signature")
    view = memoryview(data)
    pos = len(_PNG_SIGNATURE)
    idat = 0  # 0: none yet, 1: inside the run of IDAT chunks, 2: after it
    exif: bytes | None = None
    while True:
        if pos + 8 > n:
            raise StructureError("file is truncated (no IEND chunk)")
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if not kind.isalpha():  # ASCII letters only, per the PNG specification
            raise StructureError(f"invalid chunk type {kind!r}")
        name = kind.decode("ascii")
        if length > 0x7FFFFFFF:
            raise StructureError(f"invalid length for the {name} chunk")
        end = pos + 12 + length
        if end > n:
            raise StructureError(f"{name} chunk runs past the end of the file (file is truncated)")
        if zlib.crc32(view[pos + 4 : end - 4]) != int.from_bytes(data[end - 4 : end], "big"):
            raise StructureError(f"bad CRC in {name} chunk")
        if pos == len(_PNG_SIGNATURE) and kind != b"IHDR":
            raise StructureError(f"first chunk is {name}, not IHDR")
        if kind == b"IDAT":
            if idat == 2:
                # Decoders read one run of IDAT; pixels in a second run are never shown.
                raise StructureError("IDAT chunks are not consecutive")
            idat = 1
        elif idat == 1:
            idat = 2
        if kind == b"eXIf" and exif is None:
            exif = bytes(view[pos + 8 : end - 4])
        if kind == b"IEND":
            if idat == 0:
                raise StructureError("no IDAT chunk")
            return end, exif
        pos = end


class GifFrames(NamedTuple):
    """How many frames a GIF has, and the canvas its frames need."""

    frames: int
    width: int
    height: int


def gif_frames(data: bytes, *, stop_after: int) -> GifFrames:
    """Count the GIF's frames (image descriptors), no further than `stop_after + 1` (a caller
    that sees more knows the bound is exceeded), and the canvas they need: the logical screen,
    grown to hold any frame that reaches past it (Pillow grows its canvas the same way).

    Mirrors Pillow's reading: unknown bytes between blocks are skipped, the trailer or the end of
    the data ends the count.
    """
    n = len(data)
    if n < 13:
        return GifFrames(0, 0, 0)
    width = int.from_bytes(data[6:8], "little")
    height = int.from_bytes(data[8:10], "little")
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    count = 0
    while pos < n:
        tag = data[pos]
        if tag == 0x3B:  # trailer
            break
        if tag == 0x21:  # extension: label, then data sub-blocks
            pos = _skip_sub_blocks(data, pos + 2)
        elif tag == 0x2C:  # image descriptor, local colour table, LZW code size, sub-blocks
            if pos + 10 > n:
                break
            count += 1
            if count > stop_after:
                break
            left, top, w, h = (
                int.from_bytes(data[pos + i : pos + i + 2], "little") for i in (1, 3, 5, 7)
            )
            width, height = max(width, left + w), max(height, top + h)
            local = data[pos + 9]
            pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
            pos = _skip_sub_blocks(data, pos + 1)
        else:
            pos += 1
    return GifFrames(count, width, height)


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    n = len(data)
    while pos < n:
        size = data[pos]
        pos += 1
        if size == 0:
            break
        pos += size
    return pos
