"""Reading images: headers and structure first (cheap), pixels only when asked, within a budget."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module

from PIL import ExifTags, Image, ImageFile

from moderation.errors import InvalidImage
from moderation.image._budget import decoded_bytes, shared_budget
from moderation.image._convert import stored_size
from moderation.image._limits import Limits
from moderation.image._sniff import ImageFormat, other_format
from moderation.image._structure import gif_frames, jpeg_end, png_end

__all__ = [
    "PLAIN_MODES",
    "Inspected",
    "check_dimensions",
    "corrupt",
    "decoded",
    "inspect",
    "open_image",
    "orientation_of",
    "pending_orientation",
    "unsupported_format",
]

# Pillow's plugin id for each format we accept.
_PIL_FORMAT: dict[ImageFormat, str] = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "gif": "GIF",
    "bmp": "BMP",
    "tiff": "TIFF",
}
# The Pillow module that registers each format's plugin when imported: `Image.init()` would
# import all of Pillow's forty-odd plugins (about 40 ms, on the first image of a cold start).
_PLUGIN_MODULE: dict[ImageFormat, str] = {
    "jpeg": "PIL.JpegImagePlugin",
    "png": "PIL.PngImagePlugin",
    "webp": "PIL.WebPImagePlugin",
    "gif": "PIL.GifImagePlugin",
    "bmp": "PIL.BmpImagePlugin",
    "tiff": "PIL.TiffImagePlugin",
}

# Pixel modes that Rekognition and Bedrock read without trouble; anything else (CMYK JPEG, 16-bit
# grey PNG, ...) is converted even when the container is already JPEG or PNG.
PLAIN_MODES: dict[str, frozenset[str]] = {
    "jpeg": frozenset({"L", "RGB"}),
    "png": frozenset({"1", "L", "LA", "P", "RGB", "RGBA"}),
}

# Counting a GIF's frames is a walk over all of its blocks (a TIFF's pages, over its directories);
# past this many it is not an image anyone uploads in earnest, and the count alone would cost a
# second of CPU.
MAX_GIF_FRAMES = 100_000

_PILLOW_LIMIT_LOCK = threading.Lock()


@dataclass(slots=True)
class Inspected:
    """What a file's header and structure say, with its pixels not yet decoded.

    `width`/`height` are as shown (after EXIF orientation); `end` is where the image's bytes end
    (after a JPEG's EOI or a PNG's IEND; trailing bytes are not the image's). `canvas` is the
    stored size an animation's frames are drawn on: a GIF frame may reach past the logical
    screen, and Pillow then grows the canvas.
    """

    fmt: ImageFormat
    image: ImageFile.ImageFile
    orientation: int
    width: int
    height: int
    end: int
    n_frames: int
    canvas: tuple[int, int]

    @property
    def mode(self) -> str:
        return self.image.mode


def corrupt(fmt: ImageFormat, exc: BaseException, *, max_pixels: int) -> InvalidImage:
    """The refusal for a file that cannot be read as the `fmt` it claims to be, naming the real
    reason: a decompression bomb by the pixel bound, a variant Pillow does not decode as such."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, Image.DecompressionBombError):
        found = _BOMB_PIXELS.search(text)
        pixels = f" ({found[1]} pixels)" if found else ""
        return InvalidImage(f"image is over the {max_pixels}-pixel bound{pixels}")
    if _UNSUPPORTED.match(text):
        return InvalidImage(f"unsupported {fmt} variant: {text}")
    if "decompressed data too large" in text.lower():  # Pillow 10 capitalises it
        return InvalidImage(f"{fmt} metadata decompresses past Pillow's bound: {text}")
    return InvalidImage(f"truncated or corrupt {fmt}: {text}")


# Pillow's wording for a decompression bomb ("Image size (N pixels) exceeds limit of ...") and
# for a valid file it does not decode ("Unsupported BMP bitfields layout", "unknown pixel mode").
_BOMB_PIXELS = re.compile(r"Image size \((\d+) pixels\)")
_UNSUPPORTED = re.compile(r"(unsupported|unknown pixel mode)\b", re.IGNORECASE)


def unsupported_format(data: bytes) -> str | None:
    """The name of the format `data` is in when it is an image (or document) intake does not
    take (PSD, AVIF, ICO, JPEG 2000, TGA, PDF, ...), else None.

    Pillow names what it has a plugin for, from the header alone (no pixel is decoded); plugins
    that identify a file by trying to parse it rather than by a signature (TGA, SPIDER, IM, ...)
    could name random bytes, so TGA counts only with its version-2 footer.
    """
    named = other_format(data)
    if named is not None:
        return named
    if data[-18:] == b"TRUEVISION-XFILE.\x00":
        return "tga"
    Image.init()
    for plugin, (factory, accept) in list(Image.OPEN.items()):
        if accept is None or plugin in _PIL_FORMAT.values():
            continue
        try:
            if not accept(data[:16]):
                continue
            with factory(io.BytesIO(data), "") as im:
                return str(im.format or plugin).lower()
        except Exception:  # not this plugin's file after all
            continue
    return None


def inspect(
    data: bytes, fmt: ImageFormat, limits: Limits, *, count_frames: bool = True
) -> Inspected:
    """Check `data` without decoding pixels: structure (JPEG, PNG), header, dimensions.

    Raises `InvalidImage` for a broken file or one outside `limits`. A decompression bomb is
    refused from its header, before anything is allocated for it.
    """
    _allow_pillow_pixels(limits.max_pixels)
    # Decoders fed hostile input raise a zoo of exception types (OSError, SyntaxError, ValueError,
    # EOFError, struct.error, IndexError, DecompressionBombError, ...): every one of them means
    # the file is not a usable image. Our own InvalidImage passes through untouched.
    try:
        end, png_exif = len(data), None
        if fmt == "jpeg":
            end = jpeg_end(data)
        elif fmt == "png":
            end, png_exif = png_end(data)
        elif fmt == "gif":
            # A first frame reaching past the logical screen grows the canvas Pillow allocates:
            # measure it before Pillow does (its own check would speak of its own bound).
            _, width, height = gif_frames(data, stop_after=1)
            if width * height > limits.max_pixels:
                check_dimensions(width, height, limits)
        im = open_image(data, fmt)
        if png_exif is not None and "exif" not in im.info:
            # Found after the pixel data, where Pillow would only see it once they are decoded.
            im.info["exif"] = b"Exif\x00\x00" + png_exif
        orientation = pending_orientation(im, fmt)
        width, height = shown_size(im, fmt, orientation)
        check_dimensions(width, height, limits)
        n_frames, canvas = _frames(im, fmt, data) if count_frames else (1, im.size)
    except InvalidImage:
        raise
    except Exception as exc:
        raise corrupt(fmt, exc, max_pixels=limits.max_pixels) from exc
    return Inspected(fmt, im, orientation, width, height, end, n_frames, canvas)


def _frames(im: ImageFile.ImageFile, fmt: ImageFormat, data: bytes) -> tuple[int, tuple[int, int]]:
    """(frame count, canvas size) of an animation; (1, size) for anything else."""
    if fmt == "gif":
        gif = gif_frames(data, stop_after=MAX_GIF_FRAMES)
        if gif.frames > MAX_GIF_FRAMES:
            raise InvalidImage(f"animation has more than {MAX_GIF_FRAMES} frames")
        return max(1, gif.frames), (max(im.width, gif.width), max(im.height, gif.height))
    if fmt in ("webp", "png"):  # animated WebP, APNG; Pillow reads the count from the header
        return max(1, int(getattr(im, "n_frames", 1))), im.size
    if fmt == "tiff":  # pages are frames: a harmless first page must not carry the rest
        return _tiff_pages(im)
    # An MPO JPEG's second image is a stereo view, a gain map (Ultra HDR) or a thumbnail of the
    # same shot: not a frame of its own (docs/images.md).
    return 1, im.size


def _tiff_pages(im: ImageFile.ImageFile) -> tuple[int, tuple[int, int]]:
    """(page count, the largest page's size as shown); each page's header is read, no pixel.

    Pages may differ in size: the canvas is the largest width and height, so that frames x
    canvas bounds the pixels decoding every page costs.
    """
    width, height, pages = 0, 0, 0
    try:
        while True:
            if pages >= MAX_GIF_FRAMES:
                raise InvalidImage(f"document has more than {MAX_GIF_FRAMES} pages")
            im.seek(pages)
            width, height = max(width, im.width), max(height, im.height)
            pages += 1
    except EOFError:  # past the last page
        pass
    finally:
        im.seek(0)
    return max(1, pages), (width, height)


@contextmanager
def decoded(info: Inspected, size: tuple[int, int], limits: Limits) -> Iterator[Image.Image]:
    """The first frame's pixels, decoded while holding the process-wide decode budget.

    `size` is the size (as shown) the caller will resample to: a JPEG is decoded by libjpeg at
    1/2, 1/4 or 1/8 scale when that still covers it, which divides time and memory by 4 to 64.
    """
    im = info.image
    if info.fmt == "jpeg":
        target = stored_size(size, info.orientation)
        if target[0] < im.width and target[1] < im.height:
            im.draft(None, target)  # picks the smallest scale that is still >= target
    budget = shared_budget(limits.decode_budget_bytes)
    with budget.hold(decoded_bytes(im.size, im.mode)):
        try:
            im.load()
        except Exception as exc:
            raise corrupt(info.fmt, exc, max_pixels=limits.max_pixels) from exc
        yield im


def open_image(data: bytes, fmt: ImageFormat) -> ImageFile.ImageFile:
    """Parse the header of `data` with the plugin for `fmt`; no pixel is decoded yet.

    The plugin is called directly rather than through `Image.open`: that tries no format other
    than the sniffed one, and it skips Pillow's own decompression-bomb check there, which would warn
    or raise (with its own threshold and wording) before we can measure the image against ours.
    """
    name = _PIL_FORMAT[fmt]
    if name not in Image.OPEN:  # once per format: even a no-op import costs more than the test
        import_module(_PLUGIN_MODULE[fmt])  # registers the plugin
    try:
        factory, _accept = Image.OPEN[name]
    except KeyError:
        raise InvalidImage(f"{fmt} images are not supported by this Pillow build") from None
    return factory(io.BytesIO(data), "")


def orientation_of(im: Image.Image) -> int:
    """The Orientation (1-8) `ImageOps.exif_transpose` would apply, read from the header; 1 when
    absent or unreadable (viewers ignore broken EXIF too).

    Pillow reads it from EXIF, from an ImageMagick "Raw profile type exif" text chunk or from XMP
    (`tiff:Orientation`); so does this.
    """
    try:
        if im.format == "PNG":
            # PngImageFile.getexif() decodes the whole image to look for metadata after IDAT; the
            # chunk walk has already found an eXIf there (and put it in info). The base class
            # reads the same sources from info alone, so ask it, on a stand-in.
            stand_in = Image.new("1", (1, 1))
            stand_in.info = dict(im.info)
            value = stand_in.getexif().get(ExifTags.Base.Orientation, 1)
        else:
            value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # a malformed EXIF block can fail in many ways; it is not worth refusing
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def pending_orientation(im: Image.Image, fmt: ImageFormat) -> int:
    """The orientation intake must still apply to `im`'s decoded pixels: `orientation_of`, except
    for formats whose Pillow plugin transposes the pixels itself when it loads them (TIFF: its
    header size is already the upright one), where applying it again would turn the picture twice.
    """
    return 1 if fmt in ORIENTED_BY_PILLOW else orientation_of(im)


def shown_size(im: Image.Image, fmt: ImageFormat, pending: int) -> tuple[int, int]:
    """The size of `im` as people see it, from its header alone.

    A format Pillow orients at load (TIFF) is turned whatever Pillow's version, but the size its
    header reports is the turned one only in newer releases (Pillow 10 reports the stored size
    until the pixels are loaded): take the stored size from the tags and turn it here, so every
    supported Pillow gives the same answer.
    """
    if fmt not in ORIENTED_BY_PILLOW:
        return stored_size(im.size, pending)
    tags = getattr(im, "tag_v2", {})
    width, height = tags.get(256), tags.get(257)  # ImageWidth, ImageLength: the stored axes
    if not (isinstance(width, int) and isinstance(height, int)):
        return im.size
    return stored_size((width, height), orientation_of(im))


# Formats whose Pillow plugin applies the Orientation tag at load (`TiffImageFile.load_end` calls
# `exif_transpose`); a test compares every oriented format with `exif_transpose`, so a Pillow that
# starts doing this for another format shows up there.
ORIENTED_BY_PILLOW: frozenset[ImageFormat] = frozenset({"tiff"})


def check_dimensions(width: int, height: int, limits: Limits) -> None:
    """Raise `InvalidImage` unless `width` x `height` is within the pixel and side bounds."""
    pixels = width * height
    if pixels > limits.max_pixels:
        raise InvalidImage(
            f"image is {width}x{height} px ({pixels} pixels),"
            f" over the {limits.max_pixels}-pixel bound"
        )
    if min(width, height) < limits.min_side:
        raise InvalidImage(
            f"image is {width}x{height} px; both sides must be at least {limits.min_side} px"
        )


def _allow_pillow_pixels(max_pixels: int) -> None:
    """Make sure Pillow's process-wide decompression-bomb limit is at least ours.

    We check the pixel count ourselves before decoding; Pillow repeats the check in places (frame
    seeks, tile loads, crops) with its own lower default (~89.5 M), where it warns and, at twice
    that, raises. Raising its limit to ours keeps every image we accept clear of both. It is only
    ever raised, never lowered or disabled.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit is None or limit >= max_pixels:  # as it nearly always is: no lock to take
        return
    with _PILLOW_LIMIT_LOCK:
        current = Image.MAX_IMAGE_PIXELS
        if current is not None and current < max_pixels:
            Image.MAX_IMAGE_PIXELS = max_pixels
