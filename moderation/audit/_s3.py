"""The S3 audit sink: one object per decision, written once and never overwritten.

Each decision becomes `{prefix}/{tenant}/{yyyy}/{mm}/{dd}/{decision_id}.json` (the UTC date it was
made), holding the Decision's JSON. The put is conditional (`If-None-Match: *`): S3 refuses it
when the key already exists, so a decision can never replace another record. S3 checks the body
against a SHA-256 checksum the client sends. The requests go through the AWS transport
(`moderation.aws.s3.S3Objects`), built on first use: boto3 is not imported with the package.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC
from typing import TYPE_CHECKING, Any

from moderation.audit._format import Entry
from moderation.decision import Decision
from moderation.errors import AWSError, ConfigurationError
from moderation.s3location import bucket_problem

if TYPE_CHECKING:
    from moderation._retry import RetryPolicy
    from moderation.aws.s3 import S3Objects

__all__ = ["S3AuditError", "S3AuditLog"]

# A key part must not be able to climb out of its folder or name another tenant's.
_KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class S3AuditError(AWSError, OSError):
    """A decision could not be stored in S3: an `AWSError` (`kind`, `code`, `attempts`) that is
    also an OSError, as every audit sink's write failure is; `requests` is `attempts`."""

    @property
    def requests(self) -> int:
        """Requests sent for the put (retries included)."""
        return self.attempts


class S3AuditLog:
    """Stores each decision as its own S3 object, refusing to overwrite one that exists."""

    connect_timeout = 3.0
    read_timeout = 10.0

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any | None = None,
        region: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        if (problem := bucket_problem(bucket)) is not None:
            raise ConfigurationError([f"audit bucket: {problem} (s3://bucket/prefix)"])
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        from moderation.aws.s3 import S3Objects

        if client is not None and region is not None:
            raise TypeError(
                "audit sink: pass either an injected client or a region to build one, not both"
            )
        try:
            self._s3: S3Objects = S3Objects(
                client,
                region=region,
                retry=retry,
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
            )
        except AWSError as exc:  # an invalid region name, a bad endpoint URL
            raise ConfigurationError([f"audit sink: {exc}"]) from exc

    @property
    def client(self) -> Any:
        """The boto3 S3 client puts go through (built here or injected)."""
        return self._s3.client

    @property
    def transport(self) -> S3Objects:
        """The AWS transport the puts go through (set its `limiter` to count them)."""
        return self._s3

    def __repr__(self) -> str:
        return f"S3AuditLog({self.bucket!r}, {self.prefix!r})"

    def key_for(self, decision: Decision) -> str:
        """The object key of `decision`: `{prefix}/{tenant}/{yyyy}/{mm}/{dd}/{id}.json`."""
        for what, value in (("tenant", decision.tenant), ("id", decision.id)):
            if not _KEY_PART.match(value):
                raise ValueError(f"decision {what} {value!r} cannot be part of an S3 key")
        day = decision.created_at.astimezone(UTC)
        key = f"{decision.tenant}/{day:%Y}/{day:%m}/{day:%d}/{decision.id}.json"
        return f"{self.prefix}/{key}" if self.prefix else key

    def key_for_record(self, record: Entry) -> str:
        """The object key of any record: a decision's (`key_for`), or for a review or appeal
        `{prefix}/reviews/{yyyy}/{mm}/{dd}/{decision_id}/{yyyymmddThhmmss.ffffff}Z-{kind}-{16
        hex}.json` (its UTC day and time, and the first hex digits of its body's SHA-256): a
        day's reviews list together (what a digest lists), a decision's in time order."""
        if isinstance(record, Decision):
            return self.key_for(record)
        if not _KEY_PART.match(record.decision_id):
            raise ValueError(f"decision id {record.decision_id!r} cannot be part of an S3 key")
        digest = hashlib.sha256(record.model_dump_json().encode()).hexdigest()[:16]
        at = record.at.astimezone(UTC)
        name = f"{at:%Y%m%dT%H%M%S.%f}Z-{record.kind}-{digest}.json"
        key = f"reviews/{at:%Y}/{at:%m}/{at:%d}/{record.decision_id}/{name}"
        return f"{self.prefix}/{key}" if self.prefix else key

    def append(self, decision: Decision) -> None:
        """Put the decision's object; S3AuditError if it exists already or could not be stored."""
        self.append_record(decision)

    def append_record(self, record: Entry) -> None:
        """Put the object of a decision, review or appeal record (`key_for_record`); raises as
        `append` does."""
        key = self.key_for_record(record)
        body = record.model_dump_json().encode()
        try:
            self._s3.put_new(self.bucket, key, body, content_type="application/json")
        except AWSError as exc:
            # A put whose answer was lost and whose retry found the object: it is ours if the
            # stored bytes are exactly this decision's (a second decision never has its id).
            if exc.kind == "changed" and exc.attempts > 1 and self._holds(key, body):
                return
            raise self._error(exc, key) from exc

    def _holds(self, key: str, body: bytes) -> bool:
        try:
            return self._s3.get(self.bucket, key, limit=len(body) + 1) == body
        except AWSError:
            return False

    def _error(self, exc: AWSError, key: str) -> S3AuditError:
        """The transport's error, with what it means for an audit record where that helps."""
        uri = f"s3://{self.bucket}/{key}"
        message = str(exc)
        if exc.kind == "changed":
            message = f"audit object {uri} exists already: refusing to overwrite it ({message})"
        elif exc.code == "NoSuchBucket":
            message = f"audit bucket {self.bucket} does not exist ({message})"
        return S3AuditError(
            message,
            kind=exc.kind,
            operation=exc.operation,
            resource=exc.resource,
            code=exc.code,
            retryable=exc.retryable,
            attempts=exc.attempts,
        )
