"""An S3 image reader built on its first use, so that what holds one need not import boto3.

The engine gives its intake this reader when it was given no intake: an `s3://` input then builds
an `S3ImageReader` (region from `region`, else AWS_REGION or boto3's) from the session of the
`one_session()` block the reader was made in (the wiring's), else a session of its own, and every
later input uses it. Importing this module imports neither boto3 nor botocore.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from moderation.aws.session import current_session

if TYPE_CHECKING:
    from moderation.aws.s3 import S3ImageReader
    from moderation.image import ObjectHead, S3Object

__all__ = ["DeferredS3Reader"]


class DeferredS3Reader:
    """An `S3Reader` that builds an `S3ImageReader(**options)` on the first call."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        shared = current_session()
        if shared is not None and "session" not in options and "client" not in options:
            self._options = {**options, "session": shared}
        self._reader: S3ImageReader | None = None
        self._pool = 0  # the workers ensure_pool was asked for before the reader was built
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DeferredS3Reader(built={self._reader is not None})"

    @property
    def reader(self) -> S3ImageReader:
        """The S3ImageReader, built now if it was not yet."""
        with self._lock:
            if self._reader is None:
                from moderation.aws.s3 import S3ImageReader

                self._reader = S3ImageReader(**self._options)
                if self._pool:
                    self._reader.ensure_pool(self._pool)
            return self._reader

    def head(self, bucket: str, key: str, version_id: str | None) -> ObjectHead:
        """`S3ImageReader.head`."""
        return self.reader.head(bucket, key, version_id)

    def read(self, location: S3Object, *, limit: int, byte_range: str | None = None) -> bytes:
        """`S3ImageReader.read`."""
        return self.reader.read(location, limit=limit, byte_range=byte_range)

    def ensure_pool(self, n: int) -> bool:
        """`S3ImageReader.ensure_pool`; before the reader is built, the size it is built with."""
        with self._lock:
            reader = self._reader
            if reader is None:
                self._pool = max(self._pool, n)
                return False
        return reader.ensure_pool(n)
