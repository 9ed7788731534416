"""Decoded pixels to bytes the services accept: upright, plain mode, within an edge and a size."""

from __future__ import annotations

import io
import math
from typing import Any

from PIL import Image

from moderation.errors import InvalidImage
from moderation.image._sniff import DetectFormat

__all__ = [
    "encode_plain",
    "encode_within",
    "fit",
    "plain_mode",
    "scaled_size",
    "stored_size",
    "to_detect",
    "upright",
]

# The quality we aim for first, then cheaper ones; below the last one, shrink instead.
_JPEG_QUALITIES = (90, 75, 60)

# What each EXIF orientation asks a viewer to do to the stored pixels (as ImageOps.exif_transpose).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def scaled_size(width: int, height: int, max_edge: int) -> tuple[int, int]:
    """(width, height) scaled down so the long edge is at most `max_edge`; unchanged if it is."""
    longest = max(width, height)
    if longest <= max_edge:
        return width, height
    scale = max_edge / longest
    return (
        max(1, min(max_edge, round(width * scale))),
        max(1, min(max_edge, round(height * scale))),
    )


def stored_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """A size as people see it (after orientation) in the stored pixels' axes, or the reverse."""
    # Orientations 5-8 turn the picture by 90 degrees.
    return (size[1], size[0]) if orientation >= 5 else size


def upright(im: Image.Image, orientation: int) -> Image.Image:
    """The image as EXIF `orientation` says to show it."""
    method = _TRANSPOSE.get(orientation)
    return im if method is None else im.transpose(method)


def fit(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`im` resampled to exactly `size`: reduced by a whole factor first when it is at least twice
    as large (cheap box averaging), then LANCZOS for the rest of the way."""
    if im.size == size:
        return im
    factor = min(im.width // size[0], im.height // size[1])
    if factor >= 2:
        im = im.reduce(factor)
    if im.size == size:
        return im
    return im.resize(size, Image.Resampling.LANCZOS)


def to_detect(
    im: Image.Image,
    orientation: int,
    size: tuple[int, int],
    max_bytes: int,
    *,
    consume: bool = False,
) -> tuple[DetectFormat, bytes]:
    """Encode as PNG (if it really uses alpha) or JPEG: upright, `size` (as shown), <= max_bytes.

    Mode conversion first (resampling a palette image would pick pixels, not average them), then
    the resize in stored axes, then the rotation, on the smaller image. With `consume`, the
    caller is done with `im`: its pixels are freed as soon as a copy of them exists, so the
    conversion never holds the decoded frame and more than one working copy at a time.
    """
    plain, alpha = plain_mode(im)
    if consume and plain is not im:
        im.close()
    return encode_plain(plain, orientation, size, max_bytes, alpha=alpha, consume=consume)


def encode_plain(
    im: Image.Image,
    orientation: int,
    size: tuple[int, int],
    max_bytes: int,
    *,
    alpha: bool,
    consume: bool = False,
) -> tuple[DetectFormat, bytes]:
    """`to_detect` for an image already in the mode `plain_mode` returned, with its alpha flag."""
    fitted = fit(im, stored_size(size, orientation))
    if consume and fitted is not im:
        im.close()
    turned = upright(fitted, orientation)
    if consume and turned is not fitted:
        fitted.close()
    return encode_within(turned, max_bytes, alpha=alpha)


def plain_mode(im: Image.Image) -> tuple[Image.Image, bool]:
    """The image in L, LA, RGB or RGBA, and whether it really uses transparency."""
    if im.mode.startswith("I"):
        # 16-bit grey: Pillow clips (rather than scales) when converting to L, which would turn
        # almost every pixel white; scale the 0..65535 range to 0..255 first.
        im = im.convert("I").point(_sixteen_to_eight).convert("L")
    elif im.mode == "F":
        im = im.convert("L")
    grey = im.mode in ("1", "L", "LA", "La")
    if im.has_transparency_data:
        im = im.convert("LA" if grey else "RGBA")
        lowest, _ = im.getchannel("A").getextrema()
        if isinstance(lowest, int | float) and lowest < 255:
            return im, True
        # An alpha channel that is opaque everywhere: drop it, so the image can be a JPEG.
    target = "L" if grey else "RGB"
    return (im if im.mode == target else im.convert(target)), False


def _sixteen_to_eight(value: Any) -> Any:
    # Called by Image.point() with a symbolic pixel expression for 32-bit integer images.
    return value * (1 / 256)


def _save(im: Image.Image, fmt: DetectFormat, quality: int = _JPEG_QUALITIES[0]) -> bytes:
    buffer = io.BytesIO()
    if fmt == "png":
        im.save(buffer, "PNG")
    else:
        im.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _flatten(im: Image.Image) -> Image.Image:
    """Composite a transparent image for JPEG. Mid grey, not white or black, keeps both dark and
    light content drawn on a transparent background visible to the detector."""
    rgba = im.convert("RGBA")
    background = Image.new("RGB", rgba.size, (128, 128, 128))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def encode_within(im: Image.Image, max_bytes: int, *, alpha: bool) -> tuple[DetectFormat, bytes]:
    """Encode as PNG (alpha) or JPEG within `max_bytes`: lower JPEG quality, then shrink."""
    if alpha:
        data = _save(im, "png")
        if len(data) <= max_bytes:
            return "png", data
        im = _flatten(im)  # too big as PNG: give up transparency for JPEG's compression
    data = b""
    for quality in _JPEG_QUALITIES:
        data = _save(im, "jpeg", quality)
        if len(data) <= max_bytes:
            return "jpeg", data
    while True:
        width, height = im.size
        if width <= 1 and height <= 1:
            raise InvalidImage(f"image cannot be encoded within {max_bytes} bytes")
        # JPEG size grows about linearly with the pixel count: aim the next size at the budget,
        # with a margin, and always shrink by at least 10% so the loop ends.
        factor = min(0.9, math.sqrt(max_bytes / len(data)) * 0.95)
        size = (max(1, int(width * factor)), max(1, int(height * factor)))
        im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        data = _save(im, "jpeg", _JPEG_QUALITIES[-1])
        if len(data) <= max_bytes:
            return "jpeg", data
