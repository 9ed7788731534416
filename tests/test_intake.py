"""moderation.image: sniffing, refusals, conversion, S3 references and judge images."""

from __future__ import annotations

import hashlib
import io
import pickle
import threading
import warnings
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from images import (
    BLUE,
    GREEN,
    RED,
    animated_gif,
    decode,
    encode,
    halves,
    noise,
    noise_jpeg,
    png_header_only,
    solid,
    with_orientation,
)
from PIL import Image

import moderation.image._intake as intake_module
from moderation import S3Location
from moderation.aws.s3 import S3ImageReader
from moderation.errors import ImageSourceError, InvalidImage, ModerationError
from moderation.image import ImageIntake, Limits, PreparedImage, S3Object, sniff

MB = 1024 * 1024


def near(actual, expected, tolerance=12):
    """Colours survive lossy codecs approximately."""
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def refused(source, limits=None) -> str:
    intake = ImageIntake(limits=limits) if limits else ImageIntake()
    with pytest.raises(InvalidImage) as caught:
        intake.prepare(source)
    assert isinstance(caught.value, ModerationError)
    return caught.value.reason


# -- sniff ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "png"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "webp"),
        (b"GIF87a\x01\x00", "gif"),
        (b"GIF89a\x01\x00", "gif"),
        (b"BM" + b"\x00" * 12 + (40).to_bytes(4, "little"), "bmp"),
        (b"II*\x00\x08\x00\x00\x00", "tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "tiff"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),  # a RIFF that is not WebP
        (b"BMW is a car maker, not a bitmap", None),  # "BM" without a DIB header
        (b"GIF88a", None),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
        (b"%PDF-1.7", None),
        (b"", None),
    ],
)
def test_sniff_reads_magic_bytes(head, expected):
    assert sniff(head) == expected


def test_sniff_accepts_bytearray_and_memoryview():
    data = solid("png")
    assert sniff(bytearray(data)) == "png"
    assert sniff(memoryview(data)) == "png"


# -- every format ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "params", "detect_format", "converted"),
    [
        ("jpeg", {"quality": 95}, "jpeg", False),
        ("png", {}, "png", False),
        ("webp", {"quality": 95}, "jpeg", True),
        ("bmp", {}, "jpeg", True),
        ("tiff", {}, "jpeg", True),
    ],
)
def test_each_format_is_accepted(fmt, params, detect_format, converted):
    data = solid(fmt, size=(321, 123), color=GREEN, **params)
    image = ImageIntake().prepare(data)
    assert image.format == fmt
    assert (image.width, image.height) == (321, 123)
    assert image.detect_format == detect_format
    assert image.converted is converted
    assert image.size == len(data)
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert image.s3 is None
    assert image.s3_object() is None
    assert image.detect_bytes is not None
    if not converted:
        assert image.detect_bytes == data  # JPEG/PNG within limits go as they are
    out = decode(image.detect_bytes)
    assert out.format == detect_format.upper()
    assert out.size == (321, 123)
    assert near(out.convert("RGB").getpixel((10, 10)), GREEN)


def test_gif_first_frame_is_used():
    data = animated_gif([RED, BLUE, BLUE], size=(150, 100))
    image = ImageIntake().prepare(data)
    assert image.format == "gif"
    assert (image.width, image.height) == (150, 100)
    assert (image.detect_format, image.converted) == ("jpeg", True)
    assert near(decode(image.detect_bytes).convert("RGB").getpixel((75, 50)), RED)


@pytest.mark.parametrize(
    ("data", "detect_format", "pixel", "expected"),
    [
        # Real transparency keeps PNG (alpha) ...
        (solid("webp", color=(255, 0, 0, 0), mode="RGBA", lossless=True), "png", (5, 5), 0),
        (solid("png", color=(0, 0, 255, 100), mode="RGBA"), "png", (5, 5), 100),
        # ... an alpha channel that is opaque everywhere does not.
        (solid("tiff", color=(0, 255, 0, 255), mode="RGBA"), "jpeg", None, None),
    ],
)
def test_alpha_decides_png_or_jpeg(data, detect_format, pixel, expected):
    image = ImageIntake().prepare(data)
    assert image.detect_format == detect_format
    out = decode(image.detect_bytes)
    if pixel is not None:
        assert out.mode == "RGBA"
        assert out.getpixel(pixel)[3] == expected


def test_gif_with_transparency_becomes_png():
    im = Image.new("P", (100, 100), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.paste(1, (0, 0, 50, 100))
    data = encode(im, "gif", transparency=1)
    image = ImageIntake().prepare(data)
    assert image.detect_format == "png"
    out = decode(image.detect_bytes).convert("RGBA")
    assert out.getpixel((10, 50))[3] == 0
    assert out.getpixel((90, 50)) == (255, 0, 0, 255)


def test_cmyk_jpeg_is_converted_to_rgb():
    data = solid("jpeg", color=(0, 255, 255, 0), mode="CMYK")
    image = ImageIntake().prepare(data)
    assert (image.format, image.detect_format, image.converted) == ("jpeg", "jpeg", True)
    out = decode(image.detect_bytes)
    assert out.mode == "RGB"
    assert near(out.getpixel((5, 5)), RED, tolerance=30)


def test_sixteen_bit_grey_png_is_scaled_not_clipped():
    data = solid("png", size=(100, 100), color=40000, mode="I;16")
    image = ImageIntake().prepare(data)
    assert image.converted is True
    out = decode(image.detect_bytes)
    assert out.mode == "L"
    assert abs(out.getpixel((50, 50)) - 40000 // 256) <= 2  # not 255, as clipping would give


# -- sniffing ignores names -----------------------------------------------------------------


def test_png_named_jpg_is_png(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_bytes(solid("png"))
    image = ImageIntake().prepare(path)
    assert (image.format, image.detect_format) == ("png", "png")


def test_text_named_png_is_refused(tmp_path):
    path = tmp_path / "x.png"
    path.write_text("this is not a picture\n")
    assert refused(path) == "not an image (no known magic bytes)"


# -- refusals -------------------------------------------------------------------------------

JPEG = solid("jpeg", size=(400, 300), quality=90)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (b"", "empty input"),
        (b"hello, world", "not an image (no known magic bytes)"),
        (b"<html><body>hi</body></html>", "not an image (no known magic bytes)"),
        (solid("png", size=(50, 600)), "image is 50x600 px; both sides must be at least 80 px"),
        (solid("gif", size=(80, 79)), "image is 80x79 px; both sides must be at least 80 px"),
        # Stored 600x50 but EXIF says "rotate 90": the reason talks about what people see.
        (
            with_orientation(Image.new("RGB", (600, 50)), 6),
            "image is 50x600 px; both sides must be at least 80 px",
        ),
        (
            png_header_only(20_000, 20_000),
            "image is 20000x20000 px (400000000 pixels), over the 100000000-pixel bound",
        ),
        (
            png_header_only(10_001, 10_000),
            "image is 10001x10000 px (100010000 pixels), over the 100000000-pixel bound",
        ),
        (b"\x00" * 60_000_000, "input is 60000000 bytes, over the 52428800-byte bound"),
    ],
    ids=[
        "empty",
        "text",
        "html",
        "narrow",
        "short-gif",
        "narrow-after-orientation",
        "bomb-20000",
        "just-over-pixels",
        "too-many-bytes",
    ],
)
def test_refusals(source, reason):
    assert refused(source) == reason


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (JPEG[: len(JPEG) // 2], "jpeg"),
        (solid("png", size=(300, 300), mode="RGB", color=(1, 2, 3))[:-60], "png"),
        (b"\xff\xd8\xff" + b"\x00" * 200, "jpeg"),
        (b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "png"),
        (solid("webp", size=(200, 200))[:40], "webp"),
        (solid("tiff", size=(200, 200))[:300], "tiff"),
    ],
    ids=["jpeg-cut-in-half", "png-cut", "jpeg-garbage", "png-garbage", "webp-cut", "tiff-cut"],
)
def test_truncated_or_corrupt_files_are_refused(data, fmt):
    assert refused(data).startswith(f"truncated or corrupt {fmt}: ")


def test_truncated_jpeg_reason_names_the_problem():
    reason = refused(JPEG[: len(JPEG) // 2])
    assert reason.startswith("truncated or corrupt jpeg: ")
    assert "truncated" in reason.removeprefix("truncated or corrupt jpeg: ")


def test_bomb_is_refused_without_pillow_warning_even_with_warnings_as_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reason = refused(png_header_only(15_000, 15_000))
    assert reason == "image is 15000x15000 px (225000000 pixels), over the 100000000-pixel bound"


def test_pillow_limit_below_ours_does_not_get_in_the_way(monkeypatch):
    # Pillow's own bound (default ~89.5 M pixels) must not warn or raise for an image we accept.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = ImageIntake().prepare(solid("png", size=(100, 100)))
    assert (image.width, image.height) == (100, 100)
    pillow_limit = Image.MAX_IMAGE_PIXELS
    assert pillow_limit == Limits().max_pixels


def test_custom_limits_are_applied():
    limits = Limits(max_input_bytes=1000, min_side=10, max_pixels=5000)
    data = noise_jpeg(100, quality=90)
    assert len(data) > 1000
    assert refused(data, limits) == f"input is {len(data)} bytes, over the 1000-byte bound"
    small = solid("png", size=(80, 80))
    assert refused(small, limits) == "image is 80x80 px (6400 pixels), over the 5000-pixel bound"
    assert ImageIntake(limits=limits).prepare(solid("png", size=(10, 40))).height == 40


@pytest.mark.parametrize(
    "kwargs",
    [{"min_side": 0}, {"max_pixels": -1}, {"min_side": 200, "max_side": 100}, {"max_side": 1.5}],
)
def test_limits_are_validated(kwargs):
    with pytest.raises(ValueError, match="Limits"):
        Limits(**kwargs)


# -- conversion -----------------------------------------------------------------------------


def test_six_megabyte_jpeg_is_brought_under_five():
    data = noise_jpeg(1800, quality=100)
    assert len(data) > 5 * MB
    image = ImageIntake().prepare(data)
    assert image.converted is True
    assert image.detect_format == "jpeg"
    assert image.detect_bytes is not None
    assert len(image.detect_bytes) <= 5 * MB
    assert (image.width, image.height) == (1800, 1800)
    assert (image.size, image.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    out = decode(image.detect_bytes)
    assert out.format == "JPEG"
    assert out.size[0] == out.size[1] >= 1000


def test_progressive_downscale_when_quality_is_not_enough():
    limits = Limits(detect_max_bytes=60_000)
    image = ImageIntake(limits=limits).prepare(noise_jpeg(600, quality=95))
    assert image.detect_bytes is not None
    assert len(image.detect_bytes) <= 60_000
    out = decode(image.detect_bytes)
    assert out.size[0] == out.size[1] < 600
    assert (image.width, image.height) == (600, 600)


def test_too_big_transparent_png_falls_back_to_jpeg():
    im = noise((300, 300), mode="RGBA")
    im.putalpha(128)
    limits = Limits(detect_max_bytes=100_000)
    image = ImageIntake(limits=limits).prepare(encode(im, "webp", lossless=True))
    assert image.detect_format == "jpeg"
    assert image.detect_bytes is not None
    assert len(image.detect_bytes) <= 100_000
    assert decode(image.detect_bytes).mode == "RGB"


def test_side_over_max_side_is_downscaled():
    data = solid("png", size=(12_000, 100), mode="1", color=1)
    image = ImageIntake().prepare(data)
    assert (image.width, image.height) == (12_000, 100)
    assert image.converted is True
    out = decode(image.detect_bytes)
    assert out.size == (10_000, 83)


@pytest.mark.parametrize(
    ("orientation", "size", "top_left"),
    [
        (1, (200, 100), RED),
        (3, (200, 100), BLUE),  # rotated 180: right half (blue) comes to the left
        (6, (100, 200), RED),  # rotated 90 clockwise: left half (red) goes on top
        (8, (100, 200), BLUE),  # rotated 90 counter-clockwise: right half (blue) goes on top
    ],
)
def test_exif_orientation_is_applied(orientation, size, top_left):
    data = with_orientation(halves((200, 100)), orientation)
    image = ImageIntake().prepare(data)
    assert (image.width, image.height) == size
    assert image.converted is (orientation != 1)
    out = decode(image.detect_bytes)
    assert out.size == size
    assert near(out.getpixel((5, 5)), top_left, tolerance=40)
    if orientation != 1:
        assert out.getexif().get(0x0112, 1) == 1  # not rotated twice by whoever reads it next


# -- sources --------------------------------------------------------------------------------


def test_path_input_str_and_pathlike(tmp_path):
    path = tmp_path / "photo.jpeg"
    path.write_bytes(JPEG)
    for source in (path, str(path)):
        image = ImageIntake().prepare(source)
        assert image.detect_bytes == JPEG
        assert image.sha256 == hashlib.sha256(JPEG).hexdigest()


def test_missing_file_and_directory(tmp_path):
    missing = tmp_path / "nope.jpg"
    assert refused(missing) == f"file not found: {missing}"
    assert refused(str(missing)) == f"file not found: {missing}"
    assert refused(tmp_path) == f"not a regular file: {tmp_path}"


def test_big_file_is_refused_from_its_size_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.jpg"
    with path.open("wb") as f:
        f.truncate(60_000_000)  # sparse: costs no disk and no time

    def no_open(*args, **kwargs):
        raise AssertionError("the file was opened")

    monkeypatch.setattr("builtins.open", no_open)
    assert refused(path) == "input is 60000000 bytes, over the 52428800-byte bound"


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview], ids=lambda t: t.__name__)
def test_bytes_likes(wrap):
    image = ImageIntake().prepare(wrap(JPEG))
    assert image.detect_bytes == JPEG
    assert isinstance(image.detect_bytes, bytes)
    assert image.sha256 == hashlib.sha256(JPEG).hexdigest()


def test_stream_is_read_from_current_position_which_is_restored():
    stream = io.BytesIO(b"HEADER" + JPEG)
    stream.seek(6)
    image = ImageIntake().prepare(stream)
    assert image.detect_bytes == JPEG
    assert stream.tell() == 6


def test_stream_position_is_restored_on_error():
    stream = io.BytesIO(b"xx" + JPEG[:500])
    stream.seek(2)
    with pytest.raises(InvalidImage, match="truncated or corrupt jpeg"):
        ImageIntake().prepare(stream)
    assert stream.tell() == 2


def test_oversize_stream_is_refused_and_position_restored():
    stream = io.BytesIO(b"\x00" * 3000)
    stream.seek(1000)
    reason = refused(stream, Limits(max_input_bytes=1500))
    assert reason == "input is 2000 bytes, over the 1500-byte bound"
    assert stream.tell() == 1000


def test_real_file_object(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(JPEG)
    with path.open("rb") as f:
        assert ImageIntake().prepare(f).detect_bytes == JPEG
        assert f.tell() == 0
    with path.open("r", encoding="latin-1") as text, pytest.raises(TypeError, match="binary"):
        ImageIntake().prepare(text)


class Trickle(io.RawIOBase):
    """A non-seekable stream that returns at most 1000 bytes per read, like a pipe."""

    def __init__(self, data):
        self._data = memoryview(data)

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), 1000, len(self._data))
        buffer[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


def test_non_seekable_stream_with_short_reads():
    assert ImageIntake().prepare(Trickle(JPEG)).detect_bytes == JPEG
    reason = refused(Trickle(b"\x00" * 5000), Limits(max_input_bytes=2000))
    assert reason == "input is over the 2000-byte bound"


@pytest.mark.parametrize("source", [io.StringIO("abc"), 42, None, ["a"]], ids=repr)
def test_wrong_types_are_programming_errors(source):
    with pytest.raises(TypeError, match=r"prepare\(\)"):
        ImageIntake().prepare(source)


def test_prepared_image_repr_and_equality():
    a = ImageIntake().prepare(JPEG)
    b = ImageIntake().prepare(bytearray(JPEG))
    assert a == b  # the judge cache does not take part
    assert "detect_bytes" not in repr(a)
    assert len(repr(a)) < 400


def test_prepared_image_pickles_without_its_cache():
    limits = Limits(judge_max_edge=100)
    image = ImageIntake(limits=limits).prepare(JPEG)
    image.judge_image()
    copy = pickle.loads(pickle.dumps(image))
    assert copy == image
    fmt, judged = copy.judge_image()
    assert (fmt, decode(judged).size) == ("jpeg", (100, 75))  # the limits came along


# -- judge image ----------------------------------------------------------------------------


def test_judge_image_is_downscaled_and_cached():
    data = encode(halves((3000, 2000)), "jpeg", quality=90)
    image = ImageIntake().prepare(data)
    assert image.detect_bytes == data
    first = image.judge_image()
    fmt, judged = first
    assert fmt == "jpeg"
    assert len(judged) <= 3_750_000
    assert decode(judged).size == (1568, 1045)
    assert image.judge_image() is first


def test_judge_image_keeps_small_images_as_they_are():
    image = ImageIntake().prepare(JPEG)
    assert image.judge_image() == ("jpeg", JPEG)


def test_judge_image_keeps_transparency():
    data = solid("png", size=(2000, 500), color=(0, 0, 255, 60), mode="RGBA")
    fmt, judged = ImageIntake().prepare(data).judge_image()
    assert fmt == "png"
    out = decode(judged)
    assert out.size == (1568, 392)
    assert out.getpixel((10, 10))[3] == 60


def test_judge_image_respects_byte_limit():
    limits = Limits(judge_max_bytes=80_000)
    fmt, judged = ImageIntake(limits=limits).prepare(noise_jpeg(900, quality=80)).judge_image()
    assert fmt == "jpeg"
    assert len(judged) <= 80_000


def test_judge_image_is_made_once_under_concurrency(monkeypatch):
    calls = []
    real = intake_module._make_judge_image

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(intake_module, "_make_judge_image", counting)
    image = ImageIntake().prepare(encode(halves((2400, 1600)), "jpeg"))
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(image.judge_image())) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len(results) == 8
    assert all(result is results[0] for result in results)


# -- S3 (moto) ------------------------------------------------------------------------------


class Spy:
    """Wraps a boto3 client and records every operation called on it."""

    def __init__(self, client):
        self._client = client
        self.calls: list[tuple[str, dict]] = []

    def __getattr__(self, name):
        operation = getattr(self._client, name)

        def call(**params):
            self.calls.append((name, params))
            return operation(**params)

        return call

    def names(self):
        return [name for name, _ in self.calls]


def put(client, key, data, bucket="uploads"):
    return client.put_object(Bucket=bucket, Key=key, Body=data)


def test_s3_jpeg_is_checked_whole_then_referenced(s3):
    data = noise_jpeg(400, quality=85)
    assert 65_536 < len(data) < 5 * MB
    etag = put(s3, "photos/cat.jpg", data)["ETag"].strip('"')
    spy = Spy(s3)
    image = ImageIntake(s3=S3ImageReader(spy)).prepare("s3://uploads/photos/cat.jpg")
    # One HEAD, one GET of the whole object (the same version), as for bytes: the same checks.
    assert spy.calls == [
        ("head_object", {"Bucket": "uploads", "Key": "photos/cat.jpg"}),
        ("get_object", {"Bucket": "uploads", "Key": "photos/cat.jpg", "IfMatch": f'"{etag}"'}),
    ]
    assert image.detect_bytes is None
    assert image.detect_format is None
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert image.converted is False
    assert (image.format, image.width, image.height, image.size) == ("jpeg", 400, 400, len(data))
    assert image.s3 == S3Object("uploads", "photos/cat.jpg", None, etag, len(data))
    assert image.s3_object() == {"Bucket": "uploads", "Name": "photos/cat.jpg"}

    # The judge needs pixels: the first call downloads the object (once), whole.
    fmt, judged = image.judge_image()
    image.judge_image()
    assert fmt == "jpeg"
    assert spy.names() == ["head_object", "get_object", "get_object"]
    assert "Range" not in spy.calls[2][1]
    assert decode(judged).size == (400, 400)


def test_s3_small_object_read_whole_by_the_range_is_hashed(s3):
    data = solid("png", size=(300, 200))
    assert len(data) < 65_536
    put(s3, "a.png", data)
    spy = Spy(s3)
    image = ImageIntake(s3=S3ImageReader(spy)).prepare("s3://uploads/a.png")
    assert spy.names() == ["head_object", "get_object"]
    assert image.s3_object() == {"Bucket": "uploads", "Name": "a.png"}
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert (image.format, image.width, image.height) == ("png", 300, 200)


def test_s3_version_is_passed_through(s3):
    s3.create_bucket(Bucket="versioned")
    s3.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
    v1 = put(s3, "k.jpg", solid("jpeg", size=(100, 100)), bucket="versioned")["VersionId"]
    v2 = put(s3, "k.jpg", solid("jpeg", size=(200, 100)), bucket="versioned")["VersionId"]
    assert v1 != v2

    spy = Spy(s3)
    old = ImageIntake(s3=S3ImageReader(spy)).prepare(f"s3://versioned/k.jpg?versionId={v1}")
    assert old.s3_object() == {"Bucket": "versioned", "Name": "k.jpg", "Version": v1}
    assert (old.width, old.height) == (100, 100)
    assert [params.get("VersionId") for _, params in spy.calls] == [v1, v1]

    # Without a version in the URI, the one HEAD saw is pinned and used from then on.
    spy = Spy(s3)
    latest = ImageIntake(s3=S3ImageReader(spy)).prepare("s3://versioned/k.jpg")
    assert latest.s3_object() == {"Bucket": "versioned", "Name": "k.jpg", "Version": v2}
    assert (latest.width, latest.height) == (200, 100)
    assert spy.calls[1][1]["VersionId"] == v2
    assert "IfMatch" not in spy.calls[1][1]


def test_s3_webp_is_downloaded_and_converted(s3):
    data = encode(noise((300, 300)), "webp", quality=95)
    assert len(data) > 65_536  # so that the ranged GET is not the whole object
    put(s3, "w.webp", data)
    spy = Spy(s3)
    image = ImageIntake(s3=S3ImageReader(spy)).prepare("s3://uploads/w.webp")
    assert spy.names() == ["head_object", "get_object"]
    assert "Range" not in spy.calls[1][1]
    assert (image.format, image.detect_format, image.converted) == ("webp", "jpeg", True)
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert image.s3 is not None
    assert image.s3.key == "w.webp"
    assert image.s3_object() is None  # the converted bytes go to Rekognition instead
    assert decode(image.detect_bytes).size == (300, 300)


def test_s3_jpeg_with_a_large_header_is_read_once(s3):
    # A 100 KB ICC profile puts the frame header past the first 64 KiB.
    data = encode(Image.new("RGB", (300, 200), RED), "jpeg", icc_profile=b"\x00" * 100_000)
    put(s3, "icc.jpg", data)
    spy = Spy(s3)
    image = ImageIntake(s3=S3ImageReader(spy)).prepare("s3://uploads/icc.jpg")
    assert spy.names() == ["head_object", "get_object"]
    assert (image.width, image.height, image.converted) == (300, 200, False)
    assert image.s3_object() == {"Bucket": "uploads", "Name": "icc.jpg"}


def test_s3_png_damaged_in_the_middle_is_refused_like_its_bytes(s3):
    # GIVEN a PNG larger than 64 KiB with one byte flipped inside its pixel data, IEND intact: a
    # look at its header and its tail would pass it
    data = bytearray(encode(noise((300, 300)), "png"))
    assert len(data) > 65_536 and data.endswith(b"IEND\xaeB`\x82")
    data[len(data) // 2] ^= 0xFF
    put(s3, "damaged.png", bytes(data))
    intake = ImageIntake(s3=S3ImageReader(s3))
    # WHEN it is given from S3 and as bytes THEN both refuse it for the same reason
    with pytest.raises(InvalidImage) as from_s3:
        intake.prepare("s3://uploads/damaged.png")
    with pytest.raises(InvalidImage) as from_bytes:
        intake.prepare(bytes(data))
    assert from_s3.value.reason == from_bytes.value.reason
    assert from_s3.value.reason == "truncated or corrupt png: bad CRC in IDAT chunk"


def test_s3_refusals_cost_one_head_and_one_get(s3):
    put(s3, "narrow.png", solid("png", size=(50, 600)))
    put(s3, "bomb.png", png_header_only(20_000, 20_000))
    put(s3, "notes.txt", b"just some text, not an image" * 10)
    put(s3, "empty.jpg", b"")
    cases = {
        "narrow.png": "image is 50x600 px; both sides must be at least 80 px",
        "bomb.png": "image is 20000x20000 px (400000000 pixels), over the 100000000-pixel bound",
        "notes.txt": "not an image (no known magic bytes)",
        "empty.jpg": "empty input",
    }
    for key, reason in cases.items():
        spy = Spy(s3)
        assert refused_with(spy, f"s3://uploads/{key}") == reason
        assert len(spy.calls) <= 2, key


def test_s3_object_over_the_byte_bound_is_refused_after_head_only(s3):
    put(s3, "big.jpg", noise_jpeg(100))
    spy = Spy(s3)
    reason = refused_with(spy, "s3://uploads/big.jpg", Limits(max_input_bytes=1000))
    assert reason.endswith("bytes, over the 1000-byte bound")
    assert spy.names() == ["head_object"]


def test_s3_object_over_fifteen_megabytes_is_downloaded(s3):
    # Scaled down: an S3 limit of 50 kB stands for Rekognition's 15 MB.
    data = noise_jpeg(400, quality=85)
    put(s3, "large.jpg", data)
    spy = Spy(s3)
    limits = Limits(s3_max_bytes=50_000)
    image = ImageIntake(limits=limits, s3=S3ImageReader(spy)).prepare("s3://uploads/large.jpg")
    assert spy.names() == ["head_object", "get_object"]
    assert image.detect_bytes == data
    assert image.s3_object() is None


def refused_with(client, uri, limits=None, kind="image"):
    intake = ImageIntake(limits=limits or Limits(), s3=S3ImageReader(client))
    with pytest.raises(InvalidImage) as caught:
        intake.prepare(uri)
    assert caught.value.kind == kind
    return caught.value.reason


@pytest.mark.parametrize(
    "uri",
    ["s3://uploads/missing.jpg", "s3://no-such-bucket/a.jpg", "s3://archive/a.jpg?versionId=v9"],
)
def test_s3_not_found(s3, uri):
    s3.create_bucket(Bucket="archive")
    s3.put_bucket_versioning(Bucket="archive", VersioningConfiguration={"Status": "Enabled"})
    put(s3, "a.jpg", JPEG, bucket="archive")
    put(s3, "a.jpg", JPEG)
    assert refused_with(s3, uri, kind="gone") == f"s3 object not found: {uri}"


@pytest.mark.parametrize(
    "uri",
    [
        "s3://",
        "s3://bucket",
        "s3://bucket/",
        "s3:///key",
        "s3://bad bucket/k",
        "s3://bucket/k?versionId=",
        # Names S3 gives no bucket (botocore alone would send them): the one bucket-name rule.
        "s3://Not_A_Bucket/k.png",
        "s3://{{{bucket}}}/k.png",
        "s3://xn--bucket/k.png",
        "s3://192.168.5.4/k.png",
    ],
)
def test_malformed_s3_uri(uri):
    # No client call at all: the spy would fail the test on first use.
    reason = refused_with(object(), uri)
    assert reason.startswith("malformed s3 uri: ")
    assert uri in reason


def test_an_s3_location_is_read_as_the_object_it_names(s3):
    # GIVEN `cat.png` and another object whose key is `cat.png?versionId=null`
    put(s3, "cat.png", noise_jpeg(200))
    upload = solid("png", (120, 90))
    put(s3, "cat.png?versionId=null", upload)
    spy = Spy(s3)
    # WHEN the second is given as a location (never re-parsed from a string)
    image = ImageIntake(s3=S3ImageReader(spy)).prepare(
        S3Location("uploads", "cat.png?versionId=null")
    )
    # THEN that object is read and referenced, and no request names a version
    assert {params["Key"] for _, params in spy.calls} == {"cat.png?versionId=null"}
    assert all("VersionId" not in params for _, params in spy.calls)
    assert (image.format, image.width) == ("png", 120)
    assert image.s3_object() == {"Bucket": "uploads", "Name": "cat.png?versionId=null"}


def test_s3_access_denied_is_an_invalid_image_naming_the_permission():
    class Denied:
        def head_object(self, **params):
            raise ClientError(
                {
                    "Error": {"Code": "403", "Message": "Forbidden"},
                    "ResponseMetadata": {"HTTPStatusCode": 403},
                },
                "HeadObject",
            )

    with pytest.raises(InvalidImage, match="s3:GetObject") as caught:
        ImageIntake(s3=S3ImageReader(Denied())).prepare("s3://uploads/a.jpg")
    assert isinstance(caught.value.__cause__, ClientError)
    assert caught.value.kind == "denied"


def test_intake_is_given_its_s3_reader_and_without_one_says_so(s3):
    # GIVEN an intake built without an S3 reader (it never builds one: no import of moderation.aws)
    put(s3, "a.jpg", JPEG)
    # WHEN an s3:// input arrives THEN the error says how to give it one
    with pytest.raises(ImageSourceError, match=r"intake has no S3 reader .*S3ImageReader"):
        ImageIntake().prepare("s3://uploads/a.jpg")
    # AND an engine's own intake reads S3 with a reader built from the default session
    from moderation.aws.deferred import DeferredS3Reader

    image = ImageIntake(s3=DeferredS3Reader()).prepare("s3://uploads/a.jpg")
    assert image.s3_object() == {"Bucket": "uploads", "Name": "a.jpg"}


def test_prepared_image_built_by_hand_can_still_judge():
    # Other modules (fakes, replays) may construct PreparedImage directly.
    image = PreparedImage(
        sha256=None,
        size=len(JPEG),
        format="jpeg",
        width=400,
        height=300,
        detect_bytes=JPEG,
        detect_format="jpeg",
        s3=None,
        converted=False,
    )
    assert image.judge_image() == ("jpeg", JPEG)


def test_path_refusal_for_unreadable_path_type(tmp_path):
    # A str that is not s3:// is a path, even when it looks like a URL.
    assert refused("https://example.com/a.jpg") == "file not found: https://example.com/a.jpg"


def test_local_path_object_is_not_confused_with_s3():
    assert refused(Path("s3:/nope/x.jpg")) == "file not found: s3:/nope/x.jpg"
