"""Amazon S3: every S3 call the library makes, on the shared transport.

- `S3ImageReader`, the `S3Reader` behind `s3://` inputs: HEAD and (ranged) GET. Every failure
  leaves as `InvalidImage` (the object is missing, or may not be read: the image cannot be
  moderated) or `ImageSourceError` (anything else, with `retryable` saying whether another try may
  pass).
- `S3Objects`, the rest (listing a prefix, conditional puts, reads by ETag, tags, copy, delete),
  for the audit sink, the policy source, the CLI and the Lambda handler. Every failure leaves as
  `AWSError`, classified by the transport's one table.

The same rules as the other transports: a client built here has connect and read timeouts and
botocore's retries off, and this layer retries (throttling, 5xx, connection failures, timeouts:
every call here is safe to repeat); an injected client keeps its own configuration. Objects are
named by (bucket, key, version id) arguments, never by a string parsed again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
)

from moderation.aws.transport import (
    CONNECTION_ERRORS,
    AWSService,
    AWSTransport,
    Failure,
    classify,
    error_code,
    http_status,
    is_retryable,
    plural_attempts,
)
from moderation.errors import ImageSourceError, InvalidImage
from moderation.image import ObjectHead, S3Object
from moderation.s3location import S3Location

__all__ = ["ListedObject", "S3ImageReader", "S3Objects", "StoredObject", "s3_name"]


def s3_name(bucket: str, key: str = "", version_id: str | None = None) -> str:
    """How messages name an object: `s3://bucket/key`, with `?versionId=` when there is one."""
    version = f"?versionId={version_id}" if version_id else ""
    return f"s3://{bucket}/{key}{version}"


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
        return is_retryable(exc)

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
            failure = classify(exc)
            if failure is Failure.NOT_FOUND:
                return InvalidImage(f"s3 object not found: {uri}", kind="gone")
            if failure is Failure.DENIED:
                return InvalidImage(
                    f"s3 object may not be read: {uri} ({operation} denied: the caller needs "
                    "s3:GetObject on it, and s3:GetObjectVersion to read a given version)",
                    kind="denied",
                )
            if failure is Failure.CHANGED:
                return ImageSourceError(
                    f"s3 object changed while it was read: {uri}",
                    code=code,
                    retryable=True,
                    attempts=requests,
                )
            return ImageSourceError(
                f"s3 {operation} failed for {uri} ({code or status}, {tried}): {said}",
                code=code,
                retryable=is_retryable(exc),
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


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One object of a listing: its key, ETag (without quotes), size and LastModified (S3's
    clock, whole seconds)."""

    key: str
    etag: str | None
    size: int
    last_modified: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object's bytes and the version they are (None in a bucket without versioning)."""

    body: bytes
    version_id: str | None


class S3Objects(AWSService):
    """S3 calls other than reading an image: listing, conditional puts and reads, tags, copy,
    delete. Every failure is `AWSError` (`kind` `not found`, `denied`, `changed`, ...)."""

    service = "s3"
    permissions: ClassVar[Mapping[str, str]] = MappingProxyType(
        {
            "HeadObject": "s3:GetObject",
            "ListObjectsV2": "s3:ListBucket on the bucket",
            "ListObjectVersions": "s3:ListBucketVersions on the bucket",
            "CopyObject": "s3:GetObject on the source and s3:PutObject on the target",
        }
    )

    def head(self, bucket: str, key: str, version_id: str | None = None) -> Mapping[str, Any]:
        """HeadObject's answer (ContentLength, ETag, VersionId, Metadata)."""
        params = _address(bucket, key, version_id)
        call = lambda: self._client.head_object(**params)  # noqa: E731
        return self.call("HeadObject", call, s3_name(bucket, key, version_id))

    def get(
        self,
        bucket: str,
        key: str,
        *,
        limit: int,
        version_id: str | None = None,
        if_match: str | None = None,
        byte_range: str | None = None,
    ) -> bytes:
        """At most `limit` bytes of the object; with `if_match` (an ETag, quoted or not) a changed
        object fails as `changed` instead of mixing two uploads."""
        params = _address(bucket, key, version_id)
        if if_match:
            params["IfMatch"] = if_match if if_match.startswith('"') else f'"{if_match}"'
        if byte_range:
            params["Range"] = byte_range

        def get() -> bytes:
            # The body is read inside the attempt: a connection dropped mid-body is retried too.
            body = self._client.get_object(**params)["Body"]
            try:
                return bytes(body.read(limit))
            finally:
                body.close()

        return self.call("GetObject", get, s3_name(bucket, key, version_id))

    def read(self, bucket: str, key: str, *, limit: int) -> StoredObject:
        """At most `limit` bytes of the current version of the object, and its version id."""

        def get() -> StoredObject:
            answer = self._client.get_object(Bucket=bucket, Key=key)
            body = answer["Body"]
            try:
                data = bytes(body.read(limit))
            finally:
                body.close()
            version = answer.get("VersionId")
            return StoredObject(data, str(version) if version and version != "null" else None)

        return self.call("GetObject", get, s3_name(bucket, key))

    def put_new(self, bucket: str, key: str, body: bytes, *, content_type: str) -> int:
        """Create the object, which must not exist (`If-None-Match: *`; `changed` if it does),
        with a SHA-256 checksum S3 verifies; the requests it took."""
        params = {
            "Bucket": bucket,
            "Key": key,
            "Body": body,
            "ContentType": content_type,
            "IfNoneMatch": "*",
            "ChecksumAlgorithm": "SHA256",
        }
        call = lambda: self._client.put_object(**params)  # noqa: E731
        return self.invoke("PutObject", call, s3_name(bucket, key)).requests

    def objects(
        self, bucket: str, prefix: str, *, page_size: int | None = None
    ) -> Iterator[ListedObject]:
        """Every object under `prefix`, in S3's (UTF-8 binary) key order, one page at a time (a
        prefix of millions is never held in memory). `page_size` is MaxKeys (S3's default, at
        most 1,000, when None). Keys ending in `/` (console folder markers) are left out."""
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
            if token is not None:
                params["ContinuationToken"] = token
            if page_size is not None:
                params["MaxKeys"] = page_size
            page = self.call("ListObjectsV2", self._lister(params), s3_name(bucket, prefix))
            for entry in page.get("Contents") or ():
                key = str(entry["Key"])
                if key.endswith("/"):
                    continue
                etag = str(entry.get("ETag") or "").strip('"') or None
                modified = entry.get("LastModified")
                yield ListedObject(
                    key=key,
                    etag=etag,
                    size=int(entry.get("Size") or 0),
                    last_modified=modified if isinstance(modified, datetime) else None,
                )
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def deleted(self, bucket: str, prefix: str) -> Iterator[str]:
        """The keys under `prefix` whose current version is a delete marker (deleted in a
        versioned bucket, their versions kept), in key order."""
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        while True:
            page = self.call(
                "ListObjectVersions", self._versions_lister(params), s3_name(bucket, prefix)
            )
            for marker in page.get("DeleteMarkers") or ():
                if marker.get("IsLatest"):
                    yield str(marker["Key"])
            if not page.get("IsTruncated"):
                return
            params = {
                "Bucket": bucket,
                "Prefix": prefix,
                "KeyMarker": page.get("NextKeyMarker"),
                "VersionIdMarker": page.get("NextVersionIdMarker"),
            }

    def folders(self, bucket: str, prefix: str) -> Iterator[str]:
        """The "folders" right under `prefix` (S3's CommonPrefixes with delimiter `/`), each
        ending in `/`, in key order."""
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "Delimiter": "/"}
            if token is not None:
                params["ContinuationToken"] = token
            page = self.call("ListObjectsV2", self._lister(params), s3_name(bucket, prefix))
            for common in page.get("CommonPrefixes") or ():
                yield str(common["Prefix"])
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def tags(self, bucket: str, key: str, version_id: str | None = None) -> list[dict[str, str]]:
        """The object's tags, as S3's TagSet."""
        params = _address(bucket, key, version_id)
        call = lambda: self._client.get_object_tagging(**params)  # noqa: E731
        answer = self.call("GetObjectTagging", call, s3_name(bucket, key, version_id))
        return [{"Key": t["Key"], "Value": t["Value"]} for t in answer.get("TagSet") or ()]

    def set_tags(
        self,
        bucket: str,
        key: str,
        version_id: str | None,
        tag_set: Sequence[Mapping[str, str]],
    ) -> None:
        """Replace the object's tags with `tag_set` (none left: the tagging is deleted)."""
        params: dict[str, Any] = _address(bucket, key, version_id)
        if tag_set:
            params["Tagging"] = {"TagSet": [dict(t) for t in tag_set]}
            call = lambda: self._client.put_object_tagging(**params)  # noqa: E731
            self.call("PutObjectTagging", call, s3_name(bucket, key, version_id))
        else:
            call = lambda: self._client.delete_object_tagging(**params)  # noqa: E731
            self.call("DeleteObjectTagging", call, s3_name(bucket, key, version_id))

    def copy(
        self,
        bucket: str,
        key: str,
        version_id: str | None,
        *,
        to_bucket: str,
        if_match: str | None = None,
        tagging: str | None = None,
    ) -> None:
        """Copy the object (metadata kept) to `to_bucket` under the same key; `tagging` (a URL
        query) replaces its tags there; `if_match` (an ETag) fails a changed source as `changed`."""
        source = _address(bucket, key, version_id)
        params: dict[str, Any] = {
            "Bucket": to_bucket,
            "Key": key,
            "CopySource": source,
            "MetadataDirective": "COPY",
        }
        if tagging is not None:
            params["TaggingDirective"] = "REPLACE"
            params["Tagging"] = tagging
        if if_match:
            params["CopySourceIfMatch"] = if_match if if_match.startswith('"') else f'"{if_match}"'
        call = lambda: self._client.copy_object(**params)  # noqa: E731
        self.call("CopyObject", call, s3_name(bucket, key, version_id))

    def delete(self, bucket: str, key: str, version_id: str | None = None) -> None:
        """Delete the object (that version of it, with `version_id`)."""
        params = _address(bucket, key, version_id)
        call = lambda: self._client.delete_object(**params)  # noqa: E731
        self.call("DeleteObject", call, s3_name(bucket, key, version_id))

    def _lister(self, params: Mapping[str, Any]) -> Callable[[], Any]:
        return lambda: self._client.list_objects_v2(**params)

    def _versions_lister(self, params: Mapping[str, Any]) -> Callable[[], Any]:
        return lambda: self._client.list_object_versions(**params)


def _address(bucket: str, key: str, version_id: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        params["VersionId"] = version_id
    return params
