"""Intake checks JPEG and PNG files from their structure and decodes pixels only when it must."""

from __future__ import annotations

import hashlib
import random
import re
import struct
from pathlib import Path

import pytest
from images import (
    BLUE,
    RED,
    big_png,
    decode,
    encode,
    halves,
    noise,
    photo_jpeg,
    png_chunk,
    png_chunks,
    solid,
    spy_decodes,
    with_orientation,
)
from PIL import Image

from moderation.errors import InvalidImage
from moderation.image import ImageIntake, Limits
from moderation.image._structure import StructureError, _scan_end, jpeg_end

PHOTO = photo_jpeg((400, 300), max_bytes=30_000)
PNG = encode(noise((200, 150)), "png")


def near(actual, expected, tolerance=12):
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def refused(data: bytes, limits: Limits | None = None) -> str:
    with pytest.raises(InvalidImage) as caught:
        ImageIntake(limits=limits or Limits()).prepare(data)
    return caught.value.reason


def scan_start(jpeg: bytes) -> int:
    """Offset of the first byte of entropy-coded data (just after the first SOS segment)."""
    sos = jpeg.index(b"\xff\xda")
    (length,) = struct.unpack(">H", jpeg[sos + 2 : sos + 4])
    return sos + 2 + length


def without_chunks(data: bytes, kind: bytes) -> bytes:
    """`data` less every chunk of type `kind`."""
    kept = [data[:8]]
    for chunk, offset, length in png_chunks(data):
        if chunk != kind:
            kept.append(data[offset : offset + 12 + length])
    return b"".join(kept)


# -- nothing is decoded for a JPEG or PNG that goes to the detector as it is ---------------------


@pytest.mark.parametrize(
    "data",
    [
        PHOTO,
        encode(noise((300, 200)), "jpeg", progressive=True),
        encode(noise((300, 200)), "jpeg", restart_marker_blocks=2),
        encode(noise((120, 100), mode="L"), "jpeg"),
        PNG,
        encode(noise((100, 100), mode="RGBA"), "png"),
        encode(Image.new("P", (100, 100), 3), "png"),
    ],
    ids=["jpeg", "progressive", "restart-markers", "grey-jpeg", "png", "rgba-png", "p-png"],
)
def test_plain_jpeg_and_png_are_not_decoded(data, monkeypatch):
    decodes = spy_decodes(monkeypatch)
    image = ImageIntake().prepare(data)
    assert decodes == []
    assert image.detect_bytes == data
    assert image.converted is False
    assert image.sha256 == hashlib.sha256(data).hexdigest()


def test_ten_thousand_pixel_square_png_is_not_decoded(monkeypatch):
    # 100 M pixels, within every bound: decoding it would take 100 MB (1 bit/px) to 400 MB (RGB).
    data = big_png(10_000, 10_000)
    decodes = spy_decodes(monkeypatch)
    image = ImageIntake().prepare(data)
    assert decodes == []
    assert (image.width, image.height, image.converted) == (10_000, 10_000, False)
    assert image.detect_bytes == data


@pytest.mark.parametrize(
    ("data", "decoded"),
    [
        (encode(noise((300, 200)), "webp"), "WEBP"),
        (solid("jpeg", color=(0, 255, 255, 0), mode="CMYK"), "JPEG"),
        (with_orientation(halves((200, 100)), 6), "JPEG"),
        (solid("png", size=(12_000, 100), mode="1", color=1), "PNG"),
    ],
    ids=["webp", "cmyk", "orientation", "over-max-side"],
)
def test_images_that_need_conversion_are_decoded_once(data, decoded, monkeypatch):
    decodes = spy_decodes(monkeypatch)
    image = ImageIntake().prepare(data)
    assert image.converted is True
    assert [fmt for fmt, _ in decodes] == [decoded]


# -- JPEG structure ------------------------------------------------------------------------------


def test_jpeg_cut_in_the_middle_of_the_scan_is_refused():
    cut = PHOTO[: (scan_start(PHOTO) + len(PHOTO)) // 2]
    reason = refused(cut)
    assert reason.startswith("truncated or corrupt jpeg: ")
    assert "truncated" in reason.removeprefix("truncated or corrupt jpeg: ")


def test_jpeg_without_end_of_image_marker_is_refused():
    assert PHOTO.endswith(b"\xff\xd9")
    reason = refused(PHOTO[:-2])
    assert reason == "truncated or corrupt jpeg: file is truncated (no end-of-image marker)"


def test_jpeg_whose_segment_runs_past_the_end_is_refused():
    # A comment segment that claims 60,000 bytes, in a file that ends long before that.
    data = PHOTO[:2] + b"\xff\xfe" + struct.pack(">H", 60_000) + b"a comment" + PHOTO[2:]
    assert len(data) < 60_000
    reason = refused(data)
    assert reason.startswith("truncated or corrupt jpeg: ")
    assert "past the end" in reason or "truncated" in reason.lower()


def test_jpeg_segment_running_past_the_end_after_the_frame_header_is_refused():
    # Past the headers Pillow reads: only a walk of the markers finds it.
    start = scan_start(PHOTO)
    sos = PHOTO.rindex(b"\xff\xda", 0, start)
    bogus = b"\xff\xfe" + struct.pack(">H", 65_000) + b"x" * 10
    data = PHOTO[:sos] + bogus
    reason = refused(data)
    assert reason.startswith("truncated or corrupt jpeg: ")
    assert "past the end" in reason


def test_jpeg_end_marker_inside_a_comment_does_not_hide_a_truncated_scan():
    with_comment = encode(noise((300, 200)), "jpeg", comment=b"ends here \xff\xd9 or not")
    cut = with_comment[: (scan_start(with_comment) + len(with_comment)) // 2]
    assert b"\xff\xd9" in cut
    assert refused(cut).startswith("truncated or corrupt jpeg: ")


def test_jpeg_with_bytes_after_the_end_marker_is_accepted_without_them(monkeypatch):
    # Phones append trailers (and MPF secondary images) after EOI; decoders stop at EOI.
    data = PHOTO + b"TRAILER" * 100
    decodes = spy_decodes(monkeypatch)
    image = ImageIntake().prepare(data)
    assert decodes == []
    assert image.detect_bytes == PHOTO  # only the image goes to the detector
    assert image.converted is False
    assert (image.size, image.sha256) == (len(data), hashlib.sha256(data).hexdigest())


def test_jpeg_end_marker_before_any_scan_is_refused():
    header = PHOTO[: PHOTO.index(b"\xff\xda")]
    reason = refused(header + b"\xff\xd9")
    assert reason.startswith("truncated or corrupt jpeg: ")


# -- the entropy-coded data's end: memchr steps and the compiled pattern agree ------------------

FIXTURES = Path(__file__).parent / "fixtures" / "images" / "corpora"
CONTINUES = {0x00, 0xFF, *range(0xD0, 0xD8)}  # stuffed byte, fill, restart marker


def reference_scan_end(data: bytes, pos: int) -> int:
    """Byte by byte: the first 0xFF at or after `pos` followed by a byte that ends the scan."""
    for i in range(pos, len(data) - 1):
        if data[i] == 0xFF and data[i + 1] not in CONTINUES:
            return i
    return -1


def scan_starts(data: bytes) -> list[int]:
    """Where each scan's entropy-coded data starts, walking the markers with the reference."""
    starts, pos = [], 2
    while 0 <= pos < len(data) - 3:
        while data[pos] == 0xFF and data[pos + 1] == 0xFF:  # fill before a marker
            pos += 1
        marker = data[pos + 1]
        if data[pos] != 0xFF or marker == 0xD9:
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
        if marker == 0xDA:
            starts.append(pos)
            pos = reference_scan_end(data, pos)
    return starts


def with_fill(data: bytes) -> bytes:
    """`data` with 0xFF fill bytes before every restart marker and the end-of-image marker."""
    start = scan_starts(data)[0]
    scan = data[start:]
    for rst in range(0xD0, 0xD8):
        scan = scan.replace(bytes([0xFF, rst]), bytes([0xFF, 0xFF, 0xFF, rst]))
    return data[:start] + scan.replace(b"\xff\xd9", b"\xff\xff\xff\xd9")


def generated_jpegs() -> dict[str, bytes]:
    restart = encode(noise((300, 200)), "jpeg", restart_marker_blocks=2)
    return {
        "photo": PHOTO,
        "dense": encode(noise((300, 200)), "jpeg", quality=95),
        "sparse": photo_jpeg((400, 300), max_bytes=12_000),
        "progressive": encode(noise((300, 200)), "jpeg", progressive=True),
        "restart-markers": restart,
        "fill-bytes": with_fill(restart),
        "progressive-restart-fill": with_fill(
            encode(noise((200, 160)), "jpeg", progressive=True, restart_marker_blocks=1)
        ),
    }


JPEGS = {
    **{f.name: f.read_bytes() for f in sorted(FIXTURES.glob("*/*.jpg"))},
    **generated_jpegs(),
}


@pytest.mark.parametrize("name", sorted(JPEGS))
def test_scan_end_is_the_same_by_memchr_by_pattern_and_by_reference(name):
    data = JPEGS[name]
    starts = scan_starts(data)
    assert starts, "the file has no scan"
    cut = data[: (starts[0] + len(data)) // 2]  # a truncated scan: no marker ends it
    for jpeg, pos in [*((data, s) for s in starts), (cut, starts[0])]:
        expected = reference_scan_end(jpeg, pos)
        memchr_only = _scan_end(jpeg, pos, dense_gap=0)
        pattern_at_once = _scan_end(jpeg, pos, dense_gap=len(jpeg))
        assert memchr_only == pattern_at_once == _scan_end(jpeg, pos) == expected


def test_generated_scans_hold_what_they_are_named_for():
    jpegs = generated_jpegs()
    assert len(scan_starts(jpegs["progressive"])) > 1
    assert b"\xff\xd0" in jpegs["restart-markers"][scan_starts(jpegs["restart-markers"])[0] :]
    assert b"\xff\xff\xff\xd0" in jpegs["fill-bytes"]
    assert b"\xff\xff\xff\xd9" in jpegs["progressive-restart-fill"]
    ImageIntake().prepare(jpegs["progressive-restart-fill"])  # fill bytes are valid JPEG


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (b"", -1),  # the walk starts at the end of the data
        (b"abc", -1),  # no 0xFF left
        (b"ab\xff", -1),  # a 0xFF as the last byte: its follower is not there
        (b"ab\xff\x00cd\xff", -1),  # the same after a stuffed byte
        (b"ab\xff\xff\xff", -1),  # fill bytes up to the end
        (b"ab\xff\xd3\xff\x00", -1),  # a restart marker, then a stuffed byte at the end
        (b"ab\xff\xff\xd9", 3),  # fill, then the marker: it is the last 0xFF's offset
        (b"ab\xff\x00\xff\xc4", 4),
    ],
)
def test_scan_end_at_the_edges_of_the_data(tail, expected):
    # Every way of walking, from every start, on data that ends in each way a walk can run out.
    for dense_gap in (0, len(tail) + 1, None):
        gap = {} if dense_gap is None else {"dense_gap": dense_gap}
        for lead in (b"", b"x" * 40, b"\xff\x00" * 40):  # 40 0xFF: more than one block of steps
            data = lead + tail
            want = -1 if expected < 0 else len(lead) + expected
            assert _scan_end(data, len(lead), **gap) == want == reference_scan_end(data, len(lead))


TRUNCATED = "file is truncated (no end-of-image marker)"


def reference_jpeg_end(data: bytes) -> int | str:
    """Byte by byte: the offset just past EOI, or the message the walk refuses `data` with."""
    n = len(data)
    if data[:2] != b"\xff\xd8":
        return "no start-of-image marker"
    pos, frame, scan = 2, False, False
    while True:
        while pos < n and data[pos] != 0xFF:  # stray bytes between segments
            pos += 1
        while pos < n and data[pos] == 0xFF:  # the marker's 0xFF and any fill before it
            pos += 1
        if pos >= n:
            return TRUNCATED
        marker, pos = data[pos], pos + 1
        if marker == 0xD9:
            return pos if scan else "end-of-image marker before any image data"
        if marker in CONTINUES or marker == 0x01:
            continue
        if marker == 0xD8:
            return "second start-of-image marker"
        if pos + 2 > n:
            return f"segment 0xFF{marker:02X} runs past the end of the file"
        length = data[pos] * 256 + data[pos + 1]
        if length < 2:
            return f"segment 0xFF{marker:02X} has an invalid length ({length})"
        pos += length
        if pos > n:
            return f"segment 0xFF{marker:02X} runs past the end of the file (file is truncated)"
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            frame = True
        elif marker == 0xDA:
            if not frame:
                return "scan before the frame header"
            scan = True
            pos = reference_scan_end(data, pos)
            if pos < 0:
                return TRUNCATED


def walked(data: bytes) -> int | str:
    try:
        return jpeg_end(data)
    except StructureError as exc:
        return str(exc)


def test_jpeg_end_is_the_reference_walk_on_every_cut_and_every_byte_made_a_marker():
    # A small JPEG with all there is to walk: progressive scans, restart markers, fill bytes.
    pixels = Image.frombytes("RGB", (24, 16), random.Random(16).randbytes(24 * 16 * 3))
    small = with_fill(
        encode(pixels, "jpeg", progressive=True, restart_marker_blocks=1, comment=b"hi")
    )
    assert walked(small) == len(small)
    header = small[: small.index(b"\xff\xda")]
    cases = [
        *(small[:cut] for cut in range(len(small))),
        header + b"\xff\xd9",
        small[:2] + small,
        small[:2] + b"\xff\xfe\x00\x01" + small[2:],  # a segment length below 2
    ]
    for i in range(len(small)):  # each byte made 0xFF, and each with a bit flipped
        cases.append(small[:i] + b"\xff" + small[i + 1 :])
        cases.append(small[:i] + bytes([small[i] ^ 0x20]) + small[i + 1 :])
    refusals = set()
    for data in cases:
        expected = reference_jpeg_end(data)
        assert walked(data) == expected
        if isinstance(expected, str):
            refusals.add(re.sub(r"0xFF..|\d+", "#", expected))
    assert len(refusals) == 8  # every way the walk refuses a file


# -- PNG structure -------------------------------------------------------------------------------


def test_png_with_a_bad_crc_in_idat_is_refused():
    _, offset, length = next(c for c in png_chunks(PNG) if c[0] == b"IDAT")
    broken = bytearray(PNG)
    broken[offset + 8 + length] ^= 0xFF  # first byte of the IDAT's CRC
    assert refused(bytes(broken)) == "truncated or corrupt png: bad CRC in IDAT chunk"


def test_png_with_a_flipped_bit_in_idat_data_is_refused():
    _, offset, length = next(c for c in png_chunks(PNG) if c[0] == b"IDAT")
    broken = bytearray(PNG)
    broken[offset + 8 + length // 2] ^= 0x01
    assert refused(bytes(broken)) == "truncated or corrupt png: bad CRC in IDAT chunk"


def test_png_missing_iend_is_refused():
    assert png_chunks(PNG)[-1][0] == b"IEND"
    reason = refused(PNG[:-12])
    assert reason == "truncated or corrupt png: file is truncated (no IEND chunk)"


def test_png_chunk_running_past_the_end_is_refused():
    reason = refused(PNG[:-20])
    assert reason.startswith("truncated or corrupt png: ")
    assert "past the end" in reason


def test_png_with_trailing_garbage_is_accepted_without_it(monkeypatch):
    data = PNG + b"<html>not part of the picture</html>"
    decodes = spy_decodes(monkeypatch)
    image = ImageIntake().prepare(data)
    assert decodes == []
    assert image.detect_bytes == PNG
    assert image.converted is False
    assert (image.size, image.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert decode(image.detect_bytes).size == (200, 150)


def split_idat(png: bytes, between: bytes) -> bytes:
    """`png` with its pixel data in two IDAT chunks and `between` (chunks) in the middle."""
    _, offset, length = next(c for c in png_chunks(png) if c[0] == b"IDAT")
    pixels = png[offset + 8 : offset + 8 + length]
    half = len(pixels) // 2
    return (
        png[:offset]
        + png_chunk(b"IDAT", pixels[:half])
        + between
        + png_chunk(b"IDAT", pixels[half:])
        + png[offset + 12 + length :]
    )


def test_png_split_into_consecutive_idat_chunks_is_accepted():
    image = ImageIntake().prepare(split_idat(PNG, b""))
    assert image.converted is False


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (
            lambda png: png[:8] + png_chunk(b"tEXt", b"k\x00v") + png[8:],
            "first chunk is tEXt, not IHDR",
        ),
        (lambda png: without_chunks(png, b"IDAT"), "no IDAT chunk"),
        (
            lambda png: split_idat(png, png_chunk(b"tEXt", b"k\x00v")),
            "IDAT chunks are not consecutive",
        ),
        (lambda png: png[:-12] + b"\x00\x00\x00\x00I#ND" + png[-4:], "invalid chunk type"),
    ],
    ids=["ihdr-not-first", "no-idat", "idat-split", "bad-type"],
)
def test_png_chunk_order_is_checked(mangle, reason):
    got = refused(mangle(PNG))
    assert got.startswith("truncated or corrupt png: ")
    assert reason in got


def test_png_exif_after_the_pixels_still_orients_it(monkeypatch):
    # Pillow sees an eXIf chunk after IDAT only once the image is decoded; the chunk walk sees it.
    plain = encode(halves((200, 100)), "png")
    exif = Image.Exif()
    exif[0x0112] = 6
    payload = exif.tobytes()
    if payload.startswith(b"Exif\x00\x00"):
        payload = payload[6:]
    data = plain[:-12] + png_chunk(b"eXIf", payload) + plain[-12:]
    image = ImageIntake().prepare(data)
    assert (image.width, image.height, image.converted) == (100, 200, True)
    out = decode(image.detect_bytes).convert("RGB")
    assert near(out.getpixel((50, 5)), RED)  # the left half went on top
    assert near(out.getpixel((50, 195)), BLUE)


def test_refusals_that_need_no_decode_still_come_first():
    # The pixel bound is checked before anything else, whatever the file's structure.
    data = big_png(10_001, 10_000)
    assert refused(data) == (
        "image is 10001x10000 px (100010000 pixels), over the 100000000-pixel bound"
    )
