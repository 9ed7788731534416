"""Turn what a caller uploads into something Rekognition and the Bedrock judge accept.

`ImageIntake.prepare` takes bytes, a local path, a binary file object, an `S3Location` or an
`s3://` string (parsed once, by `S3Location.parse`) and returns
a `PreparedImage`: the original's identity (sha256, size, sniffed format, oriented dimensions) plus
either bytes for `Image.Bytes` (JPEG/PNG, <= 5 MB, <= 10,000 px a side) or an `S3Object` reference
when the object in S3 can be used as it is. Every source gets the same checks: an S3 object is read
whole and checked as bytes are. Anything that cannot be moderated as an image is refused with
`InvalidImage` before any AWS call; the reason is a short sentence meant for a human.

Limits are the services' own: Rekognition takes JPEG or PNG only, bytes <= 5 MB, an S3 object
<= 15 MB, 80..10,000 px a side; a Bedrock image block is <= 3.75 MB (we also cap the long edge at
1568 px, the size Claude scales images to anyway).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import stat
import threading
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol, TypeAlias, runtime_checkable

from moderation.errors import ImageSourceError, InvalidImage, InvalidS3Location
from moderation.image._convert import scaled_size, to_detect
from moderation.image._decode import (
    PLAIN_MODES,
    Inspected,
    decoded,
    inspect,
    unsupported_format,
)
from moderation.image._frames import Frame, check_animation_bound, collect_frames
from moderation.image._limits import DEFAULT_LIMITS as _DEFAULT_LIMITS
from moderation.image._limits import Limits
from moderation.image._sniff import DetectFormat, ImageFormat, sniff
from moderation.s3location import SCHEME, S3Location

__all__ = [
    "Frame",
    "ImageFormat",
    "ImageIntake",
    "Limits",
    "ObjectHead",
    "PreparedImage",
    "S3Location",
    "S3Object",
    "S3Reader",
    "sniff",
]

# The formats intake takes, as a refusal of any other names them.
_TAKEN = "this library takes JPEG, PNG, WebP, GIF, BMP and TIFF"

Source: TypeAlias = bytes | bytearray | memoryview | S3Location | str | os.PathLike[str] | BinaryIO


@dataclass(frozen=True, slots=True)
class S3Object(S3Location):
    """An S3 image as the HEAD request made when it was prepared saw it: its location (the
    version HEAD saw pinned, when the bucket is versioned), its ETag and its size."""

    etag: str | None = None
    size: int | None = None


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

    def read(self, location: S3Object, *, limit: int, byte_range: str | None = None) -> bytes:
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

    def fresh(self) -> _JudgeCache:
        """An empty cache with the same limits and reader."""
        return _JudgeCache(self.limits, self.s3)


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """An image that passed intake, in the shape the detector and the judge need.

    `width`/`height` are the original's, after EXIF orientation (`detect_bytes` may be smaller).
    Exactly one of `detect_bytes` (for `Image.Bytes`) and `s3_object()` (for `Image.S3Object`)
    is set. `sha256` is None only for a `PreparedImage` built by hand from an S3 location.

    `n_frames` is the number of frames of an animation or pages of a TIFF (1 for a still image);
    `frames` holds the images chosen for detection when `prepare` was given `max_frames` > 1:
    every distinct scene, a frame alone or several tiled on a sheet (`Frame.shows`), frame 0
    first; it is empty otherwise. `detect_bytes` is always the first frame alone.

    `original` is the upload's bytes as given, for a local input (bytes, a file, a stream): the
    review desk stores them for a reviewer (docs/review.md). None for an S3 object.
    """

    sha256: str | None
    size: int
    format: ImageFormat
    width: int
    height: int
    detect_bytes: bytes | None = field(repr=False)
    detect_format: DetectFormat | None
    s3: S3Object | None
    converted: bool
    frames: tuple[Frame, ...] = ()
    n_frames: int = 1
    _judge: _JudgeCache = field(default_factory=_JudgeCache, compare=False, repr=False)
    # The upload's bytes as given (bytes, a file, a stream), for a copy a reviewer can see later;
    # None for an S3 object (it stays where it is) and for images built by hand.
    original: bytes | None = field(default=None, compare=False, repr=False)

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

    def frame_image(self, frame: Frame) -> PreparedImage:
        """This image with `frame`'s pixels: same identity (sha256, size, format, dimensions,
        S3 location, n_frames), `detect_bytes`/`detect_format` of the frame, no `frames`.

        Lets a detector be called once per frame, and the judge shown the frame that needs it.
        `frame` must be one of `self.frames` (ValueError otherwise).
        """
        if frame not in self.frames:
            raise ValueError(f"frame {frame.index} is not one of this image's frames")
        return dataclasses.replace(
            self,
            detect_bytes=frame.detect_bytes,
            detect_format=frame.detect_format,
            converted=True,  # the frame's bytes are an encoding of decoded pixels
            frames=(),
            _judge=self._judge.fresh(),
        )


class ImageIntake:
    """Validates and prepares images for moderation; safe to share between threads."""

    def __init__(
        self,
        *,
        limits: Limits = _DEFAULT_LIMITS,
        s3: S3Reader | None = None,
    ) -> None:
        """`s3` reads `s3://` inputs (`moderation.aws.s3.S3ImageReader`, or any `S3Reader`):
        intake is given its reader and never builds one. Without it, an `s3://` input is an
        `ImageSourceError` saying so."""
        self._limits = limits
        self._s3 = s3

    @property
    def limits(self) -> Limits:
        return self._limits

    def prepare(self, source: Source, *, max_frames: int = 1) -> PreparedImage:
        """Validate `source` and make it ready for detection; raises `InvalidImage` if it is not.

        `source` is bytes-like, a local path (`str` or `os.PathLike`), a binary file object (read
        from its current position, which is restored afterwards), an `S3Location`, or a string
        `s3://bucket/key[?versionId=V]` (see `S3Location.parse`; a string that names no object is
        `InvalidImage`). An S3 object that does not exist or may not be read is `InvalidImage`;
        any other S3 failure is `ImageSourceError`.

        With `max_frames` > 1, an animation (GIF, WebP, APNG) or a multi-page TIFF also gets up
        to that many detector images, chosen by content, in `PreparedImage.frames`; see `Frame`
        and docs/images.md.
        """
        if isinstance(max_frames, bool) or not isinstance(max_frames, int):
            raise TypeError(f"max_frames must be an int, not {type(max_frames).__name__}")
        if max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, not {max_frames}")
        if isinstance(source, bytes | bytearray | memoryview):
            self._check_input_size(memoryview(source).nbytes)  # before copying a huge buffer
            data = source if isinstance(source, bytes) else memoryview(source).tobytes()
            return self._prepare_local(data, max_frames)
        if isinstance(source, S3Location):
            return self._prepare_s3(source, max_frames)
        if isinstance(source, str) and source.startswith(SCHEME):
            try:
                location = S3Location.parse(source)
            except InvalidS3Location as exc:
                raise InvalidImage(f"malformed s3 uri: {exc}") from None
            return self._prepare_s3(location, max_frames)
        if isinstance(source, str | os.PathLike):
            data = self._read_path(source)
            return self._prepare_local(data, max_frames)
        if hasattr(source, "read"):
            data = self._read_stream(source)
            return self._prepare_local(data, max_frames)
        raise TypeError(
            "ImageIntake.prepare() takes bytes, bytearray, memoryview, a path (str or os.PathLike),"
            f" an S3Location, an s3:// URI or a binary file object, not {type(source).__name__}"
        )

    # -- local inputs ------------------------------------------------------------------------

    def _prepare_local(self, data: bytes, max_frames: int) -> PreparedImage:
        """A local input prepared, keeping its bytes as `original` (the review desk's copy)."""
        return self._prepare_bytes(data, s3=None, reader=None, max_frames=max_frames)

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
            raise InvalidImage(f"file not found: {name}", kind="gone") from None
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
        self, data: bytes, *, s3: S3Object | None, reader: S3Reader | None, max_frames: int
    ) -> PreparedImage:
        """The one set of checks every source gets (bytes, a path, a stream, an S3 object)."""
        limits = self._limits
        info = self._inspect(data)
        # Bytes after a JPEG's EOI or a PNG's IEND are no part of the picture (camera trailers,
        # appended files): the detector gets the image without them; the hash is the upload's.
        body = data if info.end >= len(data) else data[: info.end]
        want_frames = max_frames > 1 and info.n_frames > 1
        if want_frames:
            check_animation_bound(info, limits)  # before decoding anything
        plain = (
            info.fmt in ("jpeg", "png")
            and info.orientation == 1
            and max(info.width, info.height) <= limits.max_side
            and info.mode in PLAIN_MODES[info.fmt]
        )
        # A local input keeps its bytes as `original` (the review desk's copy); S3's stay there.
        original = data if s3 is None else None
        identity = _Identity(hashlib.sha256(data).hexdigest(), len(data), info, original)
        if s3 is not None and plain and not want_frames and len(data) <= limits.s3_max_bytes:
            # Checked whole, and Rekognition reads it from S3 itself: nothing to upload.
            return identity.prepared(None, None, s3, converted=False, judge=(limits, reader))
        passthrough = plain and len(body) <= limits.detect_max_bytes
        # Pixels are decoded only when the detector cannot take the file as it is, or when frames
        # are wanted; the structural check in `inspect` stands in for a decode everywhere else.
        size = scaled_size(info.width, info.height, limits.max_side)
        frames: tuple[Frame, ...] = ()
        detect_format: DetectFormat
        if want_frames:
            chosen, first = collect_frames(info, max_frames, limits)
            frames = tuple(chosen)
            if passthrough:
                detect_format, detect_bytes = ("jpeg" if info.fmt == "jpeg" else "png"), body
            else:  # the first frame, converted for the detector: what a still gets
                detect_format, detect_bytes = first
        elif passthrough:  # Rekognition takes it as it is: no decode, no re-encode
            detect_format, detect_bytes = ("jpeg" if info.fmt == "jpeg" else "png"), body
        else:
            with decoded(info, size, limits) as im:
                detect_format, detect_bytes = to_detect(
                    im, info.orientation, size, limits.detect_max_bytes, consume=True
                )
        return identity.prepared(
            detect_bytes,
            detect_format,
            s3,
            converted=not passthrough,
            judge=(limits, reader),
            frames=frames,
        )

    def _inspect(self, data: bytes) -> Inspected:
        """Sniff and inspect `data` (structure, header, dimensions); refuse what is not usable."""
        if not data:
            raise InvalidImage("empty input")
        self._check_input_size(len(data))
        fmt = sniff(data)
        if fmt is None:
            other = unsupported_format(data)
            if other is not None:
                raise InvalidImage(f"unsupported format: {other} ({_TAKEN})")
            raise InvalidImage("not an image (no known magic bytes)")
        return inspect(data, fmt, self._limits)

    # -- S3 ----------------------------------------------------------------------------------

    @property
    def s3(self) -> S3Reader | None:
        """The reader of `s3://` inputs this intake was given, if any."""
        return self._s3

    def _reader(self) -> S3Reader:
        if self._s3 is None:
            raise ImageSourceError(_NO_READER)
        return self._s3

    def _prepare_s3(self, source: S3Location, max_frames: int) -> PreparedImage:
        limits = self._limits
        bucket, key, version = source.bucket, source.key, source.version_id
        reader = self._reader()
        head = reader.head(bucket, key, version)
        size, etag = head.size, head.etag
        if not version and head.version_id and head.version_id != "null":
            # Pin the version HEAD saw, so every later read (and Rekognition) sees the same object.
            version = head.version_id
        location = S3Object(bucket=bucket, key=key, version_id=version, etag=etag, size=size)
        if size == 0:
            raise InvalidImage("empty input")
        self._check_input_size(size)
        # The whole object, in one GET, gets exactly the checks bytes and paths get: a header or
        # a ranged read of the tail cannot see a broken stream in the middle (docs/images.md).
        data = reader.read(location, limit=limits.max_input_bytes + 1)
        return self._prepare_bytes(data, s3=location, reader=reader, max_frames=max_frames)


@dataclass(frozen=True, slots=True)
class _Identity:
    """What every PreparedImage of one upload shares, whatever is sent to the detector."""

    sha256: str
    size: int
    info: Inspected
    original: bytes | None

    def prepared(
        self,
        detect_bytes: bytes | None,
        detect_format: DetectFormat | None,
        s3: S3Object | None,
        *,
        converted: bool,
        judge: tuple[Limits, S3Reader | None],
        frames: tuple[Frame, ...] = (),
    ) -> PreparedImage:
        return PreparedImage(
            sha256=self.sha256,
            size=self.size,
            format=self.info.fmt,
            width=self.info.width,
            height=self.info.height,
            detect_bytes=detect_bytes,
            detect_format=detect_format,
            s3=s3,
            converted=converted,
            frames=frames,
            n_frames=self.info.n_frames,
            _judge=_JudgeCache(*judge),
            original=self.original,
        )


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


_NO_READER = (
    "intake has no S3 reader for an s3:// input: give it one, "
    "ImageIntake(s3=moderation.aws.s3.S3ImageReader(...)) (an Engine gives its intake one)"
)


def _make_judge_image(
    image: PreparedImage, limits: Limits, reader: S3Reader | None
) -> tuple[DetectFormat, bytes]:
    """The judge's (format, bytes): the bytes the detector got when they fit, else one decode of
    them, reduced (JPEG draft, `Image.reduce`) before the final LANCZOS resize.

    Intake's detect bytes are the starting point whenever there are any: for a converted image
    they are already upright, in a plain mode and (for a large one) a JPEG libjpeg can decode at
    a fraction of its size, so the original is never decoded a second time.
    """
    if image.detect_bytes is not None:
        data = image.detect_bytes
    elif image.s3 is not None:
        if reader is None:
            raise ImageSourceError(_NO_READER)
        data = reader.read(image.s3, limit=limits.max_input_bytes + 1)
        if len(data) > limits.max_input_bytes:
            raise InvalidImage(f"input is over the {limits.max_input_bytes}-byte bound")
    else:
        raise ValueError("PreparedImage has neither detect_bytes nor an S3 location")
    fmt = sniff(data)
    if fmt is None:
        raise InvalidImage("not an image (no known magic bytes)")
    info = inspect(data, fmt, limits, count_frames=False)
    body = data if info.end >= len(data) else data[: info.end]
    if (
        fmt in ("jpeg", "png")
        and info.orientation == 1
        and max(info.width, info.height) <= limits.judge_max_edge
        and len(body) <= limits.judge_max_bytes
        and info.mode in PLAIN_MODES[fmt]
    ):
        return ("jpeg" if fmt == "jpeg" else "png"), body
    size = scaled_size(info.width, info.height, limits.judge_max_edge)
    with decoded(info, size, limits) as im:
        return to_detect(im, info.orientation, size, limits.judge_max_bytes, consume=True)
