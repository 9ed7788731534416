"""S3 for `moderation check`: list the objects under a prefix, page by page, and HEAD one object.

Imported only when an input is in S3 (it imports botocore). The same transport as the image
reader (timeouts, one retry owner, typed errors); a failed listing says what was being listed
and which permission is missing.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from moderation.aws._base import error_code, http_status, plural_attempts
from moderation.aws.s3 import S3ImageReader
from moderation.errors import ImageSourceError
from moderation.s3location import S3Prefix

__all__ = ["ListedObject", "S3Lister"]

_LIST = "ListObjectsV2"


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One object of a listing: its key, ETag (without quotes) and size."""

    key: str
    etag: str | None
    size: int


class S3Lister(S3ImageReader):
    """Lists objects (ListObjectsV2) and reads ETags (HeadObject), with the reader's retries."""

    def objects(
        self, bucket: str, prefix: str, *, page_size: int | None = None
    ) -> Iterator[ListedObject]:
        """Every object under `prefix`, in S3's (UTF-8 binary) key order, one page at a time: a
        prefix of millions of objects is never held in memory. Keys ending in `/` (the folder
        markers the S3 console creates) are not objects to moderate and are left out.

        `page_size` (MaxKeys): objects per request; S3's default (at most 1,000) when None.

        Raises `ImageSourceError` (the bucket does not exist, listing is denied, S3 failed after
        retries) when the page that fails is requested.
        """
        where = S3Prefix(bucket, prefix)
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
            if token is not None:
                params["ContinuationToken"] = token
            if page_size is not None:
                params["MaxKeys"] = page_size
            call = functools.partial(self._client.list_objects_v2, **params)
            page = self.invoke(_LIST, call, where)
            for entry in page.value.get("Contents") or ():
                key = str(entry["Key"])
                if key.endswith("/"):
                    continue
                etag = str(entry.get("ETag") or "").strip('"') or None
                yield ListedObject(key=key, etag=etag, size=int(entry.get("Size") or 0))
            token = page.value.get("NextContinuationToken")
            if not page.value.get("IsTruncated") or not token:
                return

    def translate(
        self, exc: BaseException, operation: str, requests: int, context: Any = None
    ) -> Exception:
        """Listing failures name the bucket and the permission; the rest as the reader's."""
        if operation != _LIST:
            return super().translate(exc, operation, requests, context)
        uri = str(context)  # the S3Prefix listed
        bucket = context.bucket if isinstance(context, S3Prefix) else uri
        code = error_code(exc)
        status = http_status(exc)
        if isinstance(exc, ClientError) and (code == "NoSuchBucket" or status == 404):
            return ImageSourceError(f"s3 bucket not found: {bucket} (listing {uri})", code=code)
        if isinstance(exc, ClientError) and (
            code in ("AccessDenied", "AllAccessDisabled", "403") or status == 403
        ):
            return ImageSourceError(
                f"s3 listing denied: {uri} (the caller needs s3:ListBucket on bucket {bucket})",
                code=code,
            )
        error = super().translate(exc, operation, requests, context)
        if isinstance(error, ImageSourceError):
            return error
        return ImageSourceError(
            f"s3 {operation} failed for {uri} ({plural_attempts(requests)}): {error}",
            code=code,
            attempts=requests,
        )
