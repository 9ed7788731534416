"""The content-addressed image store: reviewers' copies of images that are not in S3.

An image given as bytes or a local file is gone once `moderate()` returns; the desk keeps a copy,
keyed by the sha256 of its bytes, so a reviewer sees it days later. Two backends: a directory and
an S3 prefix (`open_image_store(spec)`). Every key is checked (64 lowercase hex characters) before
a path or an S3 key is made of it.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from moderation.errors import AWSError, ConfigurationError, ReviewError
from moderation.s3location import SCHEME, InvalidS3Location, S3Prefix

if TYPE_CHECKING:
    from moderation.review._desk import ReviewDesk

__all__ = [
    "MAX_STORED_IMAGE",
    "DirectoryImageStore",
    "ImageStore",
    "PurgeCount",
    "S3ImageStore",
    "check_key",
    "image_key",
    "open_image_store",
    "purge_closed_images",
]

#: The largest image `get` reads back from S3 (any input the intake accepts is smaller).
MAX_STORED_IMAGE = 256 * 1024 * 1024

_KEY = re.compile(r"[0-9a-f]{64}")


def image_key(data: bytes) -> str:
    """The key `data` is stored under: its sha256, in hex."""
    return hashlib.sha256(data).hexdigest()


def check_key(key: object) -> str:
    """`key` when it is a store key (64 lowercase hex characters); ReviewError otherwise."""
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        raise ReviewError(f"an image key is a sha256 in hex (64 characters 0-9a-f), got {key!r}")
    return key


@runtime_checkable
class ImageStore(Protocol):
    """Images by the sha256 of their bytes: `put` is idempotent, `get` of a missing key raises
    `KeyError`, `delete` of a missing key does nothing."""

    def put(self, data: bytes) -> str:
        """Store `data` (once) and return its key, the sha256 of `data` in hex."""

    def get(self, key: str) -> bytes:
        """The bytes stored under `key`; KeyError when there are none."""

    def exists(self, key: str) -> bool:
        """True when `key` is stored."""

    def delete(self, key: str) -> None:
        """Remove `key`'s image; nothing happens when it is not stored."""


class DirectoryImageStore:
    """Images as files under `path/ab/abcdef...` (fanned out by the key's first two characters).

    A put writes a temporary file in the target folder, fsyncs it and renames it into place, so
    a reader never sees half an image and a crash leaves at most a stray `.tmp` file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _file(self, key: str) -> Path:
        key = check_key(key)
        return self.path / key[:2] / key

    def put(self, data: bytes) -> str:
        """Store `data` and return its key; an image already stored is not written again."""
        key = image_key(bytes(data))
        target = self._file(key)
        if target.exists():
            return key
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(target, data)
        return key

    def get(self, key: str) -> bytes:
        """The stored bytes; KeyError for a key not stored."""
        try:
            return self._file(key).read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        """True when the image is stored."""
        return self._file(key).is_file()

    def delete(self, key: str) -> None:
        """Remove the image; a key not stored is ignored."""
        self._file(key).unlink(missing_ok=True)


def _write_atomically(target: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `target`, fsync, then rename it onto `target`."""
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (where the platform lets a folder be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class S3ImageStore:
    """Images as objects `prefix + ab/abcdef...` in `bucket`, on the library's S3 transport.

    A put is a conditional create (`If-None-Match: *`) with a SHA-256 checksum S3 verifies: an
    object already there is the same image, so it is left alone. Failures are `AWSError`.
    `s3` is an `S3Objects`, or a boto3 S3 client to build one on (tests).
    """

    def __init__(
        self, bucket: str, prefix: str = "", *, s3: Any = None, region: str | None = None
    ) -> None:
        from moderation.aws.s3 import S3Objects

        self.location = S3Prefix(bucket, prefix)
        self._s3 = s3 if isinstance(s3, S3Objects) else S3Objects(s3, region=region)

    def _key(self, key: str) -> str:
        key = check_key(key)
        return f"{self.location.prefix}{key[:2]}/{key}"

    def put(self, data: bytes) -> str:
        """Store `data` and return its key; an image already stored is not written again."""
        key = image_key(bytes(data))
        if self.exists(key):
            return key
        try:
            self._s3.put_new(
                self.location.bucket,
                self._key(key),
                bytes(data),
                content_type="application/octet-stream",
            )
        except AWSError as exc:
            if exc.kind != "changed":  # `changed`: another writer stored the same image first
                raise
        return key

    def get(self, key: str) -> bytes:
        """The stored bytes; KeyError for a key not stored."""
        try:
            return self._s3.get(self.location.bucket, self._key(key), limit=MAX_STORED_IMAGE)
        except AWSError as exc:
            if exc.kind == "not found":
                raise KeyError(key) from None
            raise

    def exists(self, key: str) -> bool:
        """True when the image is stored."""
        try:
            self._s3.head(self.location.bucket, self._key(key))
        except AWSError as exc:
            if exc.kind == "not found":
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        """Remove the image; a key not stored is ignored (S3 deletes idempotently)."""
        self._s3.delete(self.location.bucket, self._key(key))


def open_image_store(spec: str, *, region: str | None = None) -> ImageStore:
    """The store `spec` names: `s3://bucket/prefix` (its client in `region`, else the default
    session's) or a directory (created on first put)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigurationError(
            ["MODERATION_REVIEW_IMAGES: give a directory or s3://bucket/prefix"]
        )
    if spec.startswith(SCHEME):
        try:
            where = S3Prefix.parse(spec)
        except InvalidS3Location as exc:
            raise ConfigurationError([f"MODERATION_REVIEW_IMAGES: {exc}"]) from None
        prefix = (
            where.prefix if not where.prefix or where.prefix.endswith("/") else where.prefix + "/"
        )
        return S3ImageStore(where.bucket, prefix, region=region)
    return DirectoryImageStore(spec)


@dataclass(frozen=True, slots=True)
class PurgeCount:
    """What a purge did: images `deleted`, and keys whose image was already `gone`."""

    deleted: int = 0
    gone: int = 0


def purge_closed_images(desk: ReviewDesk, store: ImageStore, before: datetime) -> PurgeCount:
    """Delete the stored images of the desk's decided items created before `before`, but never
    one that another item (open, leased, or created since) still holds (`desk.closed_images`)."""
    deleted = gone = 0
    for key in desk.closed_images(before):
        if store.exists(key):
            store.delete(key)
            deleted += 1
        else:
            gone += 1
    return PurgeCount(deleted, gone)
