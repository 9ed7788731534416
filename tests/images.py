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


def photo_jpeg(size: tuple[int, int] = (1000, 700), max_bytes: int = 100_000) -> bytes:
    """A detailed, noisy photo-like JPEG just under `max_bytes` (the quality is searched for)."""
    from PIL import ImageFilter

    base = Image.linear_gradient("L").resize(size).convert("RGB")
    grain = noise(size).filter(ImageFilter.GaussianBlur(1.2))
    im = Image.blend(base, grain, 0.6)
    data = b""
    for quality in range(95, 5, -5):
        data = encode(im, "jpeg", quality=quality)
        if len(data) <= max_bytes:
            return data
    return data


def animation(
    fmt: str, colors: Sequence[Any], size: tuple[int, int] = (100, 100), **params: Any
) -> bytes:
    """An animation ("gif", "webp" or "png" for APNG) with one plain frame per colour.

    Pillow's writers fold a frame identical to the one before it into that one (longer
    duration), so consecutive colours must differ; see `repeated_gif_frame` for identical frames.
    """
    frames = [Image.new("RGB", size, color) for color in colors]
    return encode(
        frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **params
    )


def repeated_gif_frame(color: Any, n: int, size: tuple[int, int] = (100, 100)) -> bytes:
    """A GIF of `n` frames that are all the same picture (built by hand: see `animation`)."""
    single = encode(Image.new("RGB", size, color), "gif")
    # Header, logical screen descriptor and global colour table, then blocks up to the trailer.
    flags = single[10]
    start = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    pos = start
    while single[pos] == 0x21:  # extensions (none needed here) before the image descriptor
        pos += 2
        while single[pos]:
            pos += single[pos] + 1
        pos += 1
    assert single[pos] == 0x2C and single[-1] == 0x3B
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    delay = b"\x21\xf9\x04\x00\x0a\x00\x00\x00"  # 100 ms, no transparency
    frame = delay + single[pos:-1]
    return single[:start] + loop + frame * n + b"\x3b"


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, payload and the CRC over type and payload."""
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, offset of the chunk, payload length) for each chunk of a well-formed PNG."""
    chunks = []
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append((data[pos + 4 : pos + 8], pos, length))
        pos += 12 + length
    return chunks


def big_png(width: int, height: int) -> bytes:
    """A complete, valid all-black 1-bit PNG of any size, made with zlib in a few milliseconds.

    Decoding it is what would be expensive: 10,000 x 10,000 px takes 100 MB in Pillow.
    """
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte "none", then the packed bits
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", b"".join(parts))
        + png_chunk(b"IEND", b"")
    )


def spy_decodes(monkeypatch: Any) -> list[tuple[str | None, tuple[int, int]]]:
    """Record (format, size at decode time) for every pixel decode of an image file by Pillow.

    Every plugin decodes through `ImageFile.load` (WebP's own `load` calls it too); the size is
    taken when the decode starts, so a JPEG decoded at a reduced scale shows its reduced size.
    """
    from PIL import ImageFile

    calls: list[tuple[str | None, tuple[int, int]]] = []
    real = ImageFile.ImageFile.load

    def load(self: ImageFile.ImageFile) -> Any:
        if self.tile:  # a decode is about to happen (an image already loaded has no tiles left)
            calls.append((self.format, self.size))
        return real(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return calls
