"""Turn what a caller uploads into something Rekognition and the Bedrock judge accept.

`ImageIntake.prepare` takes bytes, a local path, a binary file object or an `s3://` URI and returns
a `PreparedImage`: the original's identity (sha256, size, sniffed format, oriented dimensions) plus
either bytes for `Image.Bytes` (JPEG/PNG, <= 5 MB, <= 10,000 px a side) or an `S3Object` reference
when the object in S3 can be used as it is. Anything that cannot be moderated as an image is refused
with `InvalidImage` before any AWS call; the reason is a short sentence meant for a human.

Limits are the services' own: Rekognition takes JPEG or PNG only, bytes <= 5 MB, an S3 object
<= 15 MB, 80..10,000 px a side; a Bedrock image block is <= 3.75 MB (we also cap the long edge at
1568 px, the size Claude scales images to anyway).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import stat
import threading
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal, Protocol, TypeAlias, runtime_checkable
from urllib.parse import unquote

from PIL import ExifTags, Image, ImageFile, ImageOps, PngImagePlugin

from moderation.errors import InvalidImage

__all__ = [
    "ImageFormat",
    "ImageIntake",
    "Limits",
    "ObjectHead",
    "PreparedImage",
    "S3Location",
    "S3Reader",
    "sniff",
]

ImageFormat: TypeAlias = Literal["jpeg", "png", "webp", "gif", "bmp", "tiff"]
DetectFormat: TypeAlias = Literal["jpeg", "png"]

Source: TypeAlias = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO

# The first bytes of an S3 object fetched to sniff it and read its dimensions. Enough for the
# header of a JPEG (markers up to the start of scan, EXIF included) or a PNG (chunks up to IDAT).
_HEADER_RANGE = "bytes=0-65535"

# Pillow's plugin id for each format we accept.
_PIL_FORMAT: dict[ImageFormat, str] = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "gif": "GIF",
    "bmp": "BMP",
    "tiff": "TIFF",
}

# Pixel modes that Rekognition and Bedrock read without trouble; anything else (CMYK JPEG, 16-bit
# grey PNG, ...) is converted even when the container is already JPEG or PNG.
_PLAIN_MODES: dict[str, frozenset[str]] = {
    "jpeg": frozenset({"L", "RGB"}),
    "png": frozenset({"1", "L", "LA", "P", "RGB", "RGBA"}),
}

# First try the quality the brief asks for, then cheaper ones; below the last one, shrink instead.
_JPEG_QUALITIES = (90, 75, 60)

# Sizes a BMP's DIB header can have (BITMAPCOREHEADER .. BITMAPV5HEADER). "BM" alone is two ASCII
# letters that plenty of text files start with.
_BMP_DIB_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})

# What botocore itself accepts as a bucket name; checking it here turns a typo into InvalidImage
# instead of a botocore ParamValidationError.
_BUCKET_RE = re.compile(r"^[A-Za-z0-9._-]{1,255}$")

_PILLOW_LIMIT_LOCK = threading.Lock()


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


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied by `ImageIntake`; the defaults are the services' own limits."""

    max_input_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 100_000_000
    min_side: int = 80
    max_side: int = 10_000
    detect_max_bytes: int = 5 * 1024 * 1024
    s3_max_bytes: int = 15 * 1024 * 1024
    judge_max_edge: int = 1568
    judge_max_bytes: int = 3_750_000

    def __post_init__(self) -> None:
        for name in (
            "max_input_bytes",
            "max_pixels",
            "min_side",
            "max_side",
            "detect_max_bytes",
            "s3_max_bytes",
            "judge_max_edge",
            "judge_max_bytes",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, not {value!r}")
        if self.min_side > self.max_side:
            raise ValueError(
                f"Limits.min_side ({self.min_side}) is larger than max_side ({self.max_side})"
            )


_DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class S3Location:
    """Where an S3 image lives, as seen by the HEAD request made when it was prepared."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None

    @property
    def uri(self) -> str:
        """`s3://bucket/key`, with `?versionId=` when the version is known."""
        version = f"?versionId={self.version_id}" if self.version_id else ""
        return f"s3://{self.bucket}/{self.key}{version}"


@dataclass(frozen=True, slots=True)
class ObjectHead:
    """What a HEAD request says about an S3 object."""

    size: int
    etag: str | None = None
    version_id: str | None = None


@runtime_checkable
class S3Reader(Protocol):
    """Reads S3 objects for intake: the port behind `s3://` inputs (`moderation.aws.s3`).

    Both methods raise `InvalidImage` when the object does not exist or may not be read, and
    `ImageSourceError` for any other failure (after the reader's own retries).
    """

    def head(self, bucket: str, key: str, version_id: str | None) -> ObjectHead:
        """Size, ETag and version of the object."""
        ...

    def read(self, location: S3Location, *, limit: int, byte_range: str | None = None) -> bytes:
        """At most `limit` bytes of the object HEAD saw (same version, or same ETag)."""
        ...


class _JudgeCache:
    """The mutable corner of a frozen `PreparedImage`: its judge image, made once, under a lock."""

    __slots__ = ("_lock", "_value", "limits", "s3")

    def __init__(self, limits: Limits = _DEFAULT_LIMITS, s3: S3Reader | None = None) -> None:
        self.limits = limits
        self.s3 = s3
        self._lock = threading.Lock()
        self._value: tuple[DetectFormat, bytes] | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Locks and S3 clients do not pickle: a copy (another process, deepcopy) starts with an
        # empty cache and, for an S3 image, a reader built from the default session.
        return _JudgeCache, (self.limits,)

    def get(self, image: PreparedImage) -> tuple[DetectFormat, bytes]:
        # The lock is held while downloading/encoding so that concurrent callers wait for the one
        # result instead of each doing the work; a failure is not cached, the next call retries.
        with self._lock:
            if self._value is None:
                self._value = _make_judge_image(image, self.limits, self.s3)
            return self._value


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """An image that passed intake, in the shape the detector and the judge need.

    `width`/`height` are the original's, after EXIF orientation (`detect_bytes` may be smaller).
    Exactly one of `detect_bytes` (for `Image.Bytes`) and `s3_object()` (for `Image.S3Object`)
    is set. `sha256` is None only for an S3 image that was never downloaded.
    """

    sha256: str | None
    size: int
    format: ImageFormat
    width: int
    height: int
    detect_bytes: bytes | None = field(repr=False)
    detect_format: DetectFormat | None
    s3: S3Location | None
    converted: bool
    _judge: _JudgeCache = field(default_factory=_JudgeCache, compare=False, repr=False)

    def s3_object(self) -> dict[str, str] | None:
        """Rekognition's `Image.S3Object` for this image; None when `detect_bytes` is to be sent."""
        if self.detect_bytes is not None or self.s3 is None:
            return None
        ref = {"Bucket": self.s3.bucket, "Name": self.s3.key}
        if self.s3.version_id:
            ref["Version"] = self.s3.version_id
        return ref

    def judge_image(self) -> tuple[DetectFormat, bytes]:
        """(format, bytes) for a Bedrock image block, within judge_max_edge and judge_max_bytes.

        Computed on the first call and cached; for an S3 image that was not downloaded at intake,
        the first call downloads it (the same version, or the same ETag, as at intake).
        """
        return self._judge.get(self)


class ImageIntake:
    """Validates and prepares images for moderation; safe to share between threads."""

    def __init__(
        self,
        *,
        limits: Limits = _DEFAULT_LIMITS,
        s3: S3Reader | None = None,
        s3_client: Any | None = None,
    ) -> None:
        """`s3` reads `s3://` inputs; or pass a boto3 `s3_client` to wrap in the AWS reader.

        With neither, an AWS reader is built from the default session on the first S3 input.
        """
        if s3 is not None and s3_client is not None:
            raise TypeError("pass either s3 (an S3Reader) or s3_client (a boto3 client), not both")
        self._limits = limits
        self._s3 = s3
        self._s3_client = s3_client
        self._s3_lock = threading.Lock()

    @property
    def limits(self) -> Limits:
        return self._limits

    def prepare(self, source: Source) -> PreparedImage:
        """Validate `source` and make it ready for detection; raises `InvalidImage` if it is not.

        `source` is bytes-like, a local path (`str` or `os.PathLike`), a binary file object (read
        from its current position, which is restored afterwards) or `s3://bucket/key[?versionId=]`.
        An S3 object that does not exist or may not be read is `InvalidImage`; any other S3
        failure is `ImageSourceError`.
        """
        if isinstance(source, bytes | bytearray | memoryview):
            self._check_input_size(memoryview(source).nbytes)  # before copying a huge buffer
            data = source if isinstance(source, bytes) else memoryview(source).tobytes()
            return self._prepare_bytes(data, s3=None, reader=None)
        if isinstance(source, str) and source.startswith("s3://"):
            return self._prepare_s3(source)
        if isinstance(source, str | os.PathLike):
            return self._prepare_bytes(self._read_path(source), s3=None, reader=None)
        if hasattr(source, "read"):
            return self._prepare_bytes(self._read_stream(source), s3=None, reader=None)
        raise TypeError(
            "ImageIntake.prepare() takes bytes, bytearray, memoryview, a path (str or os.PathLike),"
            f" an s3:// URI or a binary file object, not {type(source).__name__}"
        )

    # -- local inputs ------------------------------------------------------------------------

    def _check_input_size(self, n: int) -> None:
        limit = self._limits.max_input_bytes
        if n > limit:
            raise InvalidImage(f"input is {n} bytes, over the {limit}-byte bound")

    def _read_path(self, path: str | os.PathLike[str]) -> bytes:
        name = os.fspath(path)
        limit = self._limits.max_input_bytes
        try:
            info = os.stat(name)
            if not stat.S_ISREG(info.st_mode):
                raise InvalidImage(f"not a regular file: {name}")
            self._check_input_size(info.st_size)  # before reading a byte of it
            with open(name, "rb") as f:
                data = f.read(limit + 1)  # the file may have grown since stat
        except (FileNotFoundError, NotADirectoryError):
            raise InvalidImage(f"file not found: {name}") from None
        if len(data) > limit:
            raise InvalidImage(f"input is over the {limit}-byte bound")
        return data

    def _read_stream(self, stream: BinaryIO) -> bytes:
        if isinstance(stream, io.TextIOBase):
            raise TypeError(
                "ImageIntake.prepare() needs a binary file object (open the file in 'rb' mode),"
                " not a text stream"
            )
        limit = self._limits.max_input_bytes
        start = _tell(stream)
        try:
            if start is not None:
                end = stream.seek(0, io.SEEK_END)
                stream.seek(start)
                self._check_input_size(end - start)
            data = _read_at_most(stream, limit + 1)
        finally:
            # Restore the caller's position whatever happened; a non-seekable stream (a pipe, a
            # socket) cannot be rewound and is consumed.
            if start is not None:
                stream.seek(start)
        if len(data) > limit:
            raise InvalidImage(f"input is over the {limit}-byte bound")
        return data

    def _prepare_bytes(
        self, data: bytes, *, s3: S3Location | None, reader: S3Reader | None
    ) -> PreparedImage:
        limits = self._limits
        if not data:
            raise InvalidImage("empty input")
        self._check_input_size(len(data))
        fmt = sniff(data)
        if fmt is None:
            raise InvalidImage("not an image (no known magic bytes)")
        im, orientation, (width, height) = _decode(data, fmt, limits)
        digest = hashlib.sha256(data).hexdigest()
        cache = _JudgeCache(limits, reader)
        detect_format: DetectFormat
        passthrough = (
            fmt in ("jpeg", "png")
            and len(data) <= limits.detect_max_bytes
            and orientation == 1
            and max(width, height) <= limits.max_side
            and im.mode in _PLAIN_MODES[fmt]
        )
        if passthrough:  # Rekognition takes it as it is: no re-encode
            detect_format, detect_bytes = ("jpeg" if fmt == "jpeg" else "png"), data
        else:
            detect_format, detect_bytes = _convert(
                im,
                orientation,
                max_edge=limits.max_side,
                max_bytes=limits.detect_max_bytes,
            )
        return PreparedImage(
            sha256=digest,
            size=len(data),
            format=fmt,
            width=width,
            height=height,
            detect_bytes=detect_bytes,
            detect_format=detect_format,
            s3=s3,
            converted=not passthrough,
            _judge=cache,
        )

    # -- S3 ----------------------------------------------------------------------------------

    def _reader(self) -> S3Reader:
        with self._s3_lock:
            if self._s3 is None:
                # Imported here: only S3 inputs need boto3 (slow to import, and not the core's).
                from moderation.aws.s3 import S3ImageReader

                self._s3 = S3ImageReader(self._s3_client)
            return self._s3

    def _prepare_s3(self, uri: str) -> PreparedImage:
        limits = self._limits
        bucket, key, version = _parse_s3_uri(uri)
        reader = self._reader()
        head = reader.head(bucket, key, version)
        size, etag = head.size, head.etag
        if not version and head.version_id and head.version_id != "null":
            # Pin the version HEAD saw, so every later read (and Rekognition) sees the same object.
            version = head.version_id
        location = S3Location(bucket=bucket, key=key, version_id=version, etag=etag, size=size)
        if size == 0:
            raise InvalidImage("empty input")
        self._check_input_size(size)

        prefix = reader.read(location, limit=65536, byte_range=_HEADER_RANGE)
        fmt = sniff(prefix)
        if fmt is None:
            raise InvalidImage("not an image (no known magic bytes)")
        whole = prefix if len(prefix) >= size else None
        header = _probe_header(prefix, fmt)
        if header is not None:
            mode, (width, height) = header
            _check_dimensions(width, height, limits)  # refuse without downloading the rest
            if (
                fmt in ("jpeg", "png")
                and size <= limits.s3_max_bytes
                and max(width, height) <= limits.max_side
                and mode in _PLAIN_MODES[fmt]
            ):
                # Rekognition reads it from S3 itself: no download, no conversion. Orientation is
                # not a reason to download here (the brief keeps S3 references as they are).
                return PreparedImage(
                    # The ranged GET may have returned the whole (small) object: hash it then.
                    sha256=hashlib.sha256(whole).hexdigest() if whole is not None else None,
                    size=size,
                    format=fmt,
                    width=width,
                    height=height,
                    detect_bytes=None,
                    detect_format=None,
                    s3=location,
                    converted=False,
                    _judge=_JudgeCache(limits, reader),
                )
        if whole is None:
            whole = reader.read(location, limit=limits.max_input_bytes + 1)
        return self._prepare_bytes(whole, s3=location, reader=reader)


# -- helpers -----------------------------------------------------------------------------------


def _tell(stream: BinaryIO) -> int | None:
    """The stream's position if it can be restored later, else None."""
    try:
        if not stream.seekable():
            return None
        return stream.tell()
    except (AttributeError, OSError):
        return None


def _read_at_most(stream: BinaryIO, n: int) -> bytes:
    """Up to `n` bytes; raw streams may return short reads, so loop until EOF or `n`."""
    chunks: list[bytes] = []
    total = 0
    while total < n:
        chunk: object = stream.read(n - total)
        if chunk is None:  # a non-blocking raw stream with nothing available yet
            break
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise TypeError(
                "ImageIntake.prepare() needs a binary file object; its read() returned"
                f" {type(chunk).__name__}, not bytes"
            )
        if not chunk:
            break
        chunks.append(bytes(chunk))
        total += len(chunks[-1])
    return b"".join(chunks)


def _allow_pillow_pixels(max_pixels: int) -> None:
    """Make sure Pillow's process-wide decompression-bomb limit is at least ours.

    We check the pixel count ourselves before decoding; Pillow repeats the check in places (frame
    seeks, tile loads, crops) with its own lower default (~89.5 M), where it warns and, at twice
    that, raises. Raising its limit to ours keeps every image we accept clear of both. It is only
    ever raised, never lowered or disabled.
    """
    with _PILLOW_LIMIT_LOCK:
        current = Image.MAX_IMAGE_PIXELS
        if current is not None and current < max_pixels:
            Image.MAX_IMAGE_PIXELS = max_pixels


def _open(data: bytes, fmt: ImageFormat) -> ImageFile.ImageFile:
    """Parse the header of `data` with the plugin for `fmt`; no pixel is decoded yet.

    The plugin is called directly rather than through `Image.open`: that tries no format other
    than the sniffed one, and it skips Pillow's own decompression-bomb check there, which would warn
    or raise (with its own threshold and wording) before we can measure the image against ours.
    """
    Image.init()  # registers the WebP and TIFF plugins; a no-op after the first call
    try:
        factory, _accept = Image.OPEN[_PIL_FORMAT[fmt]]
    except KeyError:
        raise InvalidImage(f"{fmt} images are not supported by this Pillow build") from None
    return factory(io.BytesIO(data), "")


def _orientation(im: Image.Image, *, header_only: bool) -> int:
    """EXIF Orientation (1-8); 1 when absent or unreadable (viewers ignore broken EXIF too)."""
    if header_only and isinstance(im, PngImagePlugin.PngImageFile) and "exif" not in im.info:
        # PngImageFile.getexif() decodes the whole image to look for an eXIf chunk after IDAT.
        return 1
    try:
        value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # a malformed EXIF block can fail in many ways; it is not worth refusing
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _oriented(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    # Orientations 5-8 turn the picture by 90 degrees.
    return (size[1], size[0]) if orientation >= 5 else size


def _check_dimensions(width: int, height: int, limits: Limits) -> None:
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


def _decode(
    data: bytes, fmt: ImageFormat, limits: Limits
) -> tuple[ImageFile.ImageFile, int, tuple[int, int]]:
    """Open, bound-check and fully decode `data`; returns (image, orientation, oriented size).

    Dimensions are checked from the header, before decoding, so a decompression bomb is refused
    without allocating it. Then `load()` forces a full decode, which is what finds truncated or
    corrupt files (as long as the process keeps Pillow's default LOAD_TRUNCATED_IMAGES = False).
    """
    _allow_pillow_pixels(limits.max_pixels)
    # Decoders fed hostile input raise a zoo of exception types (OSError, SyntaxError, ValueError,
    # EOFError, struct.error, IndexError, DecompressionBombError, ...): every one of them means
    # the file is not a usable image. Our own InvalidImage passes through untouched.
    try:
        im = _open(data, fmt)
        orientation = _orientation(im, header_only=True)
        _check_dimensions(*_oriented(im.size, orientation), limits)
        im.load()
        # An eXIf chunk after IDAT (PNG) is only seen once the image is decoded.
        orientation = _orientation(im, header_only=False)
    except InvalidImage:
        raise
    except Exception as exc:
        raise InvalidImage(f"truncated or corrupt {fmt}: {_describe(exc)}") from exc
    return im, orientation, _oriented(im.size, orientation)


def _probe_header(prefix: bytes, fmt: ImageFormat) -> tuple[str, tuple[int, int]] | None:
    """(mode, oriented size) from the first bytes of a file, or None if they do not
    hold the whole header (the caller then fetches the whole file)."""
    try:
        im = _open(prefix, fmt)
        orientation = _orientation(im, header_only=True)
        return im.mode, _oriented(im.size, orientation)
    except Exception:  # partial data: any failure just means "read the rest"
        return None


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _convert(
    im: Image.Image, orientation: int, *, max_edge: int, max_bytes: int
) -> tuple[DetectFormat, bytes]:
    """Re-encode as PNG (if it has alpha) or JPEG: upright, <= max_edge a side, <= max_bytes."""
    if orientation != 1:
        im = ImageOps.exif_transpose(im)
    im, alpha = _plain_mode(im)
    im = _fit_edge(im, max_edge)
    return _encode_within(im, max_bytes, alpha=alpha)


def _plain_mode(im: Image.Image) -> tuple[Image.Image, bool]:
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


def _fit_edge(im: Image.Image, max_edge: int) -> Image.Image:
    width, height = im.size
    longest = max(width, height)
    if longest <= max_edge:
        return im
    scale = max_edge / longest
    size = (
        max(1, min(max_edge, round(width * scale))),
        max(1, min(max_edge, round(height * scale))),
    )
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


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


def _encode_within(im: Image.Image, max_bytes: int, *, alpha: bool) -> tuple[DetectFormat, bytes]:
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


def _make_judge_image(
    image: PreparedImage, limits: Limits, reader: S3Reader | None
) -> tuple[DetectFormat, bytes]:
    if image.detect_bytes is not None:
        data = image.detect_bytes
    elif image.s3 is not None:
        if reader is None:
            from moderation.aws.s3 import S3ImageReader

            reader = S3ImageReader()
        data = reader.read(image.s3, limit=limits.max_input_bytes + 1)
        if len(data) > limits.max_input_bytes:
            raise InvalidImage(f"input is over the {limits.max_input_bytes}-byte bound")
    else:
        raise ValueError("PreparedImage has neither detect_bytes nor an S3 location")
    fmt = sniff(data)
    if fmt is None:
        raise InvalidImage("not an image (no known magic bytes)")
    im, orientation, (width, height) = _decode(data, fmt, limits)
    if (
        fmt in ("jpeg", "png")
        and orientation == 1
        and max(width, height) <= limits.judge_max_edge
        and len(data) <= limits.judge_max_bytes
        and im.mode in _PLAIN_MODES[fmt]
    ):
        return ("jpeg" if fmt == "jpeg" else "png"), data
    return _convert(
        im, orientation, max_edge=limits.judge_max_edge, max_bytes=limits.judge_max_bytes
    )


def _parse_s3_uri(uri: str) -> tuple[str, str, str | None]:
    """(bucket, key, version) from `s3://bucket/key[?versionId=V]`; the key is taken verbatim."""
    rest = uri.removeprefix("s3://")
    version: str | None = None
    marker = "?versionId="
    if marker in rest:
        rest, _, raw_version = rest.rpartition(marker)
        version = unquote(raw_version)
        if not version:
            raise InvalidImage(f"malformed s3 uri (empty versionId): {uri}")
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        raise InvalidImage(f"malformed s3 uri (expected s3://bucket/key): {uri}")
    if not _BUCKET_RE.match(bucket):
        raise InvalidImage(f"malformed s3 uri (invalid bucket name {bucket!r}): {uri}")
    return bucket, key, version
