"""S3 for `moderation check`: list the objects under a prefix, page by page, and read one object.

Imported only when an input is in S3. Both go through the AWS transports (one client, timeouts,
one retry owner, the one error table); a failed listing says what was being listed and which
permission is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from moderation.aws.s3 import ListedObject, S3ImageReader, S3Objects
from moderation.errors import AWSError, ImageSourceError
from moderation.image import ObjectHead, S3Object

__all__ = ["ListedObject", "S3Lister"]


class S3Lister:
    """Lists objects (ListObjectsV2) and reads them as intake's `S3Reader`, on one S3 client."""

    def __init__(self, client: Any | None = None, *, region: str | None = None) -> None:
        self.reader = S3ImageReader(client, region=region)
        # The listing shares the reader's client (and so its connection pool).
        self.listing = S3Objects(self.reader.client, retry=self.reader.retry)

    def head(self, bucket: str, key: str, version_id: str | None) -> ObjectHead:
        """HEAD, as the image reader does it."""
        return self.reader.head(bucket, key, version_id)

    def read(self, location: S3Object, *, limit: int, byte_range: str | None = None) -> bytes:
        """GET, as the image reader does it."""
        return self.reader.read(location, limit=limit, byte_range=byte_range)

    def objects(
        self, bucket: str, prefix: str, *, page_size: int | None = None
    ) -> Iterator[ListedObject]:
        """Every object under `prefix` (`S3Objects.objects`). Raises `ImageSourceError` (the
        bucket does not exist, listing is denied, S3 failed after retries) when the page that
        fails is requested."""
        uri = f"s3://{bucket}/{prefix}"
        try:
            yield from self.listing.objects(bucket, prefix, page_size=page_size)
        except AWSError as exc:
            if exc.kind == "not found":
                message = f"s3 bucket not found: {bucket} (listing {uri})"
            elif exc.kind == "denied":
                message = (
                    f"s3 listing denied: {uri} (the caller needs s3:ListBucket on bucket {bucket})"
                )
            else:
                message = str(exc)
            raise ImageSourceError(
                message, code=exc.code, retryable=exc.retryable, attempts=exc.attempts
            ) from exc
