"""Intake against files from Pillow's and libvips' own test suites (tests/fixtures/images/corpora,
provenance in its README.md): each one exposed a defect."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat

from moderation.aws.s3 import S3ImageReader
from moderation.errors import InvalidImage
from moderation.image import ImageIntake, Limits

CORPORA = Path(__file__).parent / "fixtures" / "images" / "corpora"
ORIENTED = sorted((CORPORA / "pillow").glob("*orientation*"), key=lambda p: p.name)


def upright_reference(path: Path) -> Image.Image:
    """The picture as Pillow's own `exif_transpose` shows it."""
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


@pytest.mark.parametrize("path", ORIENTED, ids=lambda p: p.name)
def test_oriented_files_come_out_as_exif_transpose_shows_them(path):
    # GIVEN a file with an orientation (EXIF in JPEG/WebP, a TIFF tag, PNG raw-profile or XMP)
    reference = upright_reference(path)
    # WHEN intake prepares it
    image = ImageIntake(limits=Limits(min_side=1)).prepare(path)
    # THEN its size and pixels are the upright ones, turned once
    assert (image.width, image.height) == reference.size
    assert image.detect_bytes is not None
    out = Image.open(io.BytesIO(image.detect_bytes)).convert("RGB")
    assert out.size == reference.size
    mean_difference = max(ImageStat.Stat(ImageChops.difference(out, reference)).mean)
    assert mean_difference < 8, f"{path.name}: pixels differ by {mean_difference:.1f} on average"


def test_the_orientation_table_covers_every_format_pillow_orients():
    suffixes = {p.suffix for p in ORIENTED}
    assert suffixes == {".jpg", ".webp", ".tif", ".png"}
    assert len(ORIENTED) == 8 + 7 + 7 + 2


BROKEN = [
    "pillow/truncated_jpeg.jpg",
    "pillow/ultrahdr.jpg",
    "libvips/truncated.jpg",
    "pillow/truncated_image.png",
    "pillow/truncated_end_chunk.png",
    "pillow/broken_data_stream.png",  # a bad CRC inside IDAT
]


def refusal(prepare) -> tuple[str, str]:
    with pytest.raises(InvalidImage) as caught:
        prepare()
    return caught.value.kind, caught.value.reason


@pytest.mark.parametrize("name", BROKEN)
def test_broken_files_get_the_same_refusal_from_every_source(s3, name):
    # GIVEN a truncated or corrupt file from Pillow's or libvips' test suite, also in S3
    path = CORPORA / name
    data = path.read_bytes()
    s3.put_object(Bucket="uploads", Key=name, Body=data)
    intake = ImageIntake(s3=S3ImageReader(s3))
    # WHEN it is given as bytes, as a path and as s3://
    answers = {
        "bytes": refusal(lambda: intake.prepare(data)),
        "path": refusal(lambda: intake.prepare(path)),
        "s3": refusal(lambda: intake.prepare(f"s3://uploads/{name}")),
    }
    # THEN all three refuse it, for the same reason
    assert len(set(answers.values())) == 1, answers
    kind, reason = answers["s3"]
    assert kind == "image"
    assert reason.startswith("truncated or corrupt"), reason


TAKEN = "(this library takes JPEG, PNG, WebP, GIF, BMP and TIFF)"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        # a decompression bomb: our own pixel bound, with the canvas the first frame asks for
        (
            "pillow/decompression_bomb.gif",
            "image is 65535x66601 px (4364696535 pixels), over the 100000000-pixel bound",
        ),
        # valid images in formats intake does not take: named, not "not an image"
        ("pillow/hopper.psd", f"unsupported format: psd {TAKEN}"),
        ("pillow/hopper.avif", f"unsupported format: avif {TAKEN}"),
        ("pillow/hopper.heif", f"unsupported format: heic {TAKEN}"),
        ("pillow/hopper.ico", f"unsupported format: ico {TAKEN}"),
        ("libvips/world.jp2", f"unsupported format: jpeg2000 {TAKEN}"),
        ("libvips/targa.tga", f"unsupported format: tga {TAKEN}"),
        # a BMP variant Pillow does not decode is not a corrupt file
        ("pillow/pal2.bmp", "unsupported bmp variant: Unsupported BMP pixel depth (2)"),
        # Pillow's bound on decompressed text chunks, named as a bound
        (
            "pillow/png_decompression_dos.png",
            # Pillow's own words follow (their case and suffix vary between releases)
            "png metadata decompresses past Pillow's bound: decompressed data too large...",
        ),
    ],
)
def test_each_refusal_names_the_real_reason(name, reason):
    with pytest.raises(InvalidImage) as caught:
        ImageIntake().prepare(CORPORA / name)
    if reason.endswith("..."):
        assert caught.value.reason.lower().startswith(reason[:-3].lower())
    else:
        assert caught.value.reason == reason
    assert caught.value.kind == "image"


def test_a_tga_without_its_footer_is_not_guessed_from_random_bytes():
    # TGA has no signature at its start: Pillow's TGA plugin parses anything that fits. Only the
    # version-2 footer names it; other bytes stay "not an image".
    with pytest.raises(InvalidImage) as caught:
        ImageIntake().prepare(b"\x00\x00\x02" + bytes(200))
    assert caught.value.reason == "not an image (no known magic bytes)"
