"""Amazon S3 as the `S3Reader` behind `s3://` inputs: HEAD and (ranged) GET, on the shared base.

The same rules as the other transports: a client built here has connect and read timeouts and
botocore's retries off, and this layer retries (throttling, 5xx, connection failures, timeouts:
reads are idempotent); an injected client keeps its own configuration. Every failure leaves as
`InvalidImage` (the object is missing, or may not be read: the image cannot be moderated) or
`ImageSourceError` (anything else, with `retryable` saying whether another try may pass).
"""

from __future__ import annotations

from typing import Any, Final

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
)

from moderation.aws._base import (
    CONNECTION_ERRORS,
    AWSTransport,
    any_of,
    codes,
    error_code,
    http_status,
    instances,
    plural_attempts,
    transient_status,
)
from moderation.errors import ImageSourceError, InvalidImage
from moderation.image import ObjectHead, S3Object
from moderation.s3location import S3Location

__all__ = ["S3ImageReader"]

_NOT_FOUND_CODES: Final = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})
_DENIED_CODES: Final = frozenset({"403", "AccessDenied", "Forbidden", "AllAccessDisabled"})
_RETRYABLE_CODES: Final = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError", "503"}
)
# Reads are idempotent: connection failures and read timeouts are retried too.
_RETRYABLE: Final = any_of(codes(*_RETRYABLE_CODES), transient_status, instances(CONNECTION_ERRORS))


class S3ImageReader(AWSTransport):
    """Reads images from S3 for intake, with timeouts, one retry owner and typed errors."""

    service = "s3"
    default_connect_timeout = 3.0
    default_read_timeout = 10.0

    def failure(self, message: str) -> Exception:
        """Failures to read S3 that are not the object's are ImageSourceErrors."""
        return ImageSourceError(message)

    def retryable(self, exc: BaseException) -> bool:
        """Throttling, 5xx, connection failures and timeouts: reads are safe to repeat."""
        return _RETRYABLE(exc)

    def head(self, bucket: str, key: str, version_id: str | None) -> ObjectHead:
        """Size, ETag and version of `s3://bucket/key`."""
        params = {"Bucket": bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        uri = S3Location(bucket, key, version_id).uri
        head = self.invoke("HeadObject", lambda: self._client.head_object(**params), uri).value
        version = head.get("VersionId")
        return ObjectHead(
            size=int(head.get("ContentLength") or 0),
            etag=str(head.get("ETag") or "").strip('"') or None,
            version_id=str(version) if version else None,
        )

    def read(self, location: S3Object, *, limit: int, byte_range: str | None = None) -> bytes:
        """At most `limit` bytes of the object HEAD saw: the pinned version, or failing that
        the same ETag (If-Match), so that a concurrent overwrite fails instead of mixing two."""
        params = {"Bucket": location.bucket, "Key": location.key}
        if location.version_id:
            params["VersionId"] = location.version_id
        elif location.etag:
            params["IfMatch"] = f'"{location.etag}"'
        if byte_range:
            params["Range"] = byte_range

        def get() -> bytes:
            # The body is read inside the attempt: a connection dropped mid-body is retried too.
            response = self._client.get_object(**params)
            body = response["Body"]
            try:
                return bytes(body.read(limit))
            finally:
                body.close()

        return self.invoke("GetObject", get, location.uri).value

    def translate(
        self, exc: BaseException, operation: str, requests: int, context: Any = None
    ) -> Exception:
        """`InvalidImage` for a missing or unreadable object; `ImageSourceError` otherwise."""
        uri = str(context)
        code = error_code(exc)
        status = http_status(exc)
        tried = plural_attempts(requests)
        if isinstance(exc, ClientError):
            said = str(exc.response.get("Error", {}).get("Message") or code or status)
            # HEAD answers have no body: a missing key or bucket shows up only as the status.
            if code == "NoSuchBucket":
                return InvalidImage(f"s3 object not found: {uri}", kind="gone")
            if code in _NOT_FOUND_CODES or status == 404:
                return InvalidImage(f"s3 object not found: {uri}", kind="gone")
            if code in _DENIED_CODES or status == 403:
                return InvalidImage(
                    f"s3 object may not be read: {uri} ({operation} denied: the caller needs "
                    "s3:GetObject on it, and s3:GetObjectVersion to read a given version)",
                    kind="denied",
                )
            if code == "PreconditionFailed" or status == 412:
                return ImageSourceError(
                    f"s3 object changed while it was read: {uri}",
                    code=code,
                    retryable=True,
                    attempts=requests,
                )
            return ImageSourceError(
                f"s3 {operation} failed for {uri} ({code or status}, {tried}): {said}",
                code=code,
                retryable=_RETRYABLE(exc),
                attempts=requests,
            )
        if isinstance(exc, NoCredentialsError):
            return ImageSourceError(
                f"s3 {operation} for {uri}: no AWS credentials found", attempts=requests
            )
        if isinstance(exc, BotoCoreError):
            return ImageSourceError(
                f"s3 {operation} failed for {uri} ({type(exc).__name__}, {tried}): {exc}",
                retryable=isinstance(exc, CONNECTION_ERRORS),
                attempts=requests,
            )
        return ImageSourceError(
            f"s3 {operation} for {uri} failed ({type(exc).__name__}, {tried}): {exc}",
            attempts=requests,
        )
