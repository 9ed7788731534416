"""The judge image: one decode, reduced before resampling, and intake's conversion reused."""

from __future__ import annotations

import pytest
from images import BLUE, RED, decode, encode, halves, noise, solid, spy_decodes, with_orientation
from PIL import Image

from moderation.image import ImageIntake, Limits, ObjectHead


def near(actual, expected, tolerance=24):
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def test_large_jpeg_is_decoded_once_at_a_reduced_scale(monkeypatch):
    data = encode(halves((3200, 2400)), "jpeg", quality=90)
    decodes = spy_decodes(monkeypatch)
    image = ImageIntake().prepare(data)
    fmt, judged = image.judge_image()
    # libjpeg decodes at 1/2 scale (1600x1200, still above the 1568 px edge), never at full size.
    assert decodes == [("JPEG", (1600, 1200))]
    assert fmt == "jpeg"
    out = decode(judged)
    assert out.size == (1568, 1176)
    assert near(out.getpixel((10, 600)), RED)
    assert near(out.getpixel((1560, 600)), BLUE)


class MemoryS3:
    """An `S3Reader` over a dict of objects: what intake and the judge read, and how."""

    def __init__(self, objects):
        self.objects = objects
        self.reads = []

    def head(self, bucket, key, version_id):
        return ObjectHead(size=len(self.objects[key]), etag="etag")

    def read(self, location, *, limit, byte_range=None):
        self.reads.append(byte_range)
        data = self.objects[location.key]
        if byte_range is not None:
            first, last = byte_range.removeprefix("bytes=").split("-")
            return data[int(first) : int(last) + 1]
        return data[:limit]


def test_s3_jpeg_with_an_orientation_is_turned_at_intake_as_bytes_are(monkeypatch):
    # Stored 2400x1000, shown 1000x2400: read whole from S3 and converted upright at intake, as
    # the same bytes given directly are; the judge starts from those upright bytes.
    data = with_orientation(halves((2400, 1000)), 6)
    s3 = MemoryS3({"tall.jpg": data})
    image = ImageIntake(limits=Limits(judge_max_edge=600), s3=s3).prepare("s3://bkt/tall.jpg")
    assert (image.width, image.height, image.converted) == (1000, 2400, True)
    assert image.s3_object() is None
    assert s3.reads == [None]
    as_bytes = ImageIntake(limits=Limits(judge_max_edge=600)).prepare(data)
    assert image.detect_bytes == as_bytes.detect_bytes
    decodes = spy_decodes(monkeypatch)
    fmt, judged = image.judge_image()
    # The upright detect bytes (1000x2400 -> 600 on the long edge) are decoded at 1/4 scale.
    assert decodes == [("JPEG", (250, 600))]
    assert s3.reads == [None]  # nothing downloaded again
    out = decode(judged)
    assert (fmt, out.size) == ("jpeg", (250, 600))
    assert near(out.getpixel((125, 10)), RED)  # turned: the left half is on top
    assert near(out.getpixel((125, 590)), BLUE)


def test_large_png_is_reduced_before_the_final_resize(monkeypatch):
    data = encode(halves((1000, 800)), "png")
    limits = Limits(judge_max_edge=400)
    image = ImageIntake(limits=limits).prepare(data)
    factors = []
    real = Image.Image.reduce

    def reduce(self, factor, box=None):
        factors.append(factor)
        return real(self, factor, box)

    monkeypatch.setattr(Image.Image, "reduce", reduce)
    decodes = spy_decodes(monkeypatch)
    fmt, judged = image.judge_image()
    assert decodes == [("PNG", (1000, 800))]
    assert factors == [2]  # 1000 -> 500 by averaging, then 500 -> 400 with LANCZOS
    assert fmt == "jpeg"
    assert decode(judged).size == (400, 320)


def test_small_converted_image_is_judged_from_intakes_conversion_without_decoding(monkeypatch):
    data = encode(noise((300, 200)), "webp", quality=90)
    image = ImageIntake().prepare(data)
    assert image.converted is True
    decodes = spy_decodes(monkeypatch)
    assert image.judge_image() == (image.detect_format, image.detect_bytes)
    assert decodes == []


def test_small_pass_through_image_is_judged_without_decoding(monkeypatch):
    data = solid("png", size=(300, 200))
    decodes = spy_decodes(monkeypatch)
    image = ImageIntake().prepare(data)
    assert image.judge_image() == ("png", data)
    assert decodes == []


def test_large_converted_image_is_not_decoded_from_the_original_again(monkeypatch):
    data = encode(halves((1600, 1200)), "webp", quality=90)
    limits = Limits(judge_max_edge=400)
    image = ImageIntake(limits=limits).prepare(data)
    decodes = spy_decodes(monkeypatch)
    _, judged = image.judge_image()
    # Intake's upright JPEG, decoded at 1/4 scale: the WebP is not decoded a second time.
    assert decodes == [("JPEG", (400, 300))]
    assert decode(judged).size == (400, 300)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_judge_image_of_a_large_webp_keeps_its_look(mode):
    im = halves((1800, 900)).convert(mode)
    data = encode(im, "webp", lossless=True)
    _, judged = ImageIntake(limits=Limits(judge_max_edge=300)).prepare(data).judge_image()
    out = decode(judged).convert("RGB")
    assert out.size == (300, 150)
    assert near(out.getpixel((10, 75)), RED)
    assert near(out.getpixel((290, 75)), BLUE)
