"""Images made on the fly with Pillow for tests, so that no binary fixture is committed."""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Sequence
from typing import Any

from PIL import ExifTags, Image

RED = (255, 0, 0)
BLUE = (0, 0, 255)
GREEN = (0, 255, 0)

# Pillow's encoder name for each format name used by moderation.image.
PIL_FORMATS = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "gif": "GIF",
    "bmp": "BMP",
    "tiff": "TIFF",
}


def encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    """`im` saved as `fmt` ("jpeg", "png", "webp", "gif", "bmp", "tiff"), as bytes."""
    buffer = io.BytesIO()
    im.save(buffer, PIL_FORMATS[fmt], **params)
    return buffer.getvalue()


def solid(
    fmt: str,
    size: tuple[int, int] = (120, 90),
    color: Any = RED,
    mode: str = "RGB",
    **params: Any,
) -> bytes:
    """A one-colour image of `size` in `mode`, encoded as `fmt`."""
    return encode(Image.new(mode, size, color), fmt, **params)


def halves(size: tuple[int, int] = (200, 100), left: Any = RED, right: Any = BLUE) -> Image.Image:
    """An RGB image whose left half is `left` and right half `right`: shows rotations and flips."""
    im = Image.new("RGB", size, right)
    im.paste(left, (0, 0, size[0] // 2, size[1]))
    return im


def with_orientation(im: Image.Image, orientation: int, fmt: str = "jpeg") -> bytes:
    """`im` encoded with an EXIF Orientation tag (pixels stored as given, not rotated)."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return encode(im, fmt, exif=exif.tobytes())


def noise(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Random pixels: compresses badly, so the encoded size is predictable and large."""
    bands = len(mode)  # "RGB" -> 3, "RGBA" -> 4, "L" -> 1
    return Image.frombytes(mode, size, os.urandom(size[0] * size[1] * bands))


def noise_jpeg(side: int, quality: int = 100) -> bytes:
    """A square JPEG of random pixels; 1800 px at quality 100 is about 6.4 MB."""
    return encode(noise((side, side)), "jpeg", quality=quality)


def animated_gif(frames: Sequence[Any], size: tuple[int, int] = (100, 100)) -> bytes:
    """A GIF with one frame per colour in `frames`."""
    images = [Image.new("RGB", size, color) for color in frames]
    return encode(images[0], "gif", save_all=True, append_images=images[1:], duration=100, loop=0)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares `width` x `height` (1-bit grey) but holds almost no pixel data.

    Costs nothing to build at any size, which is the point: it lets a test check that a
    decompression bomb is refused from its header without the pixels ever being allocated.
    """

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


def decode(data: bytes) -> Image.Image:
    """Fully decode `data` (raises if it is truncated or corrupt)."""
    im = Image.open(io.BytesIO(data))
    im.load()
    return im
