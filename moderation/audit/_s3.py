"""The S3 audit sink: one object per decision, written once and never overwritten.

Each decision becomes `{prefix}/{tenant}/{yyyy}/{mm}/{dd}/{decision_id}.json` (the UTC date it was
made), holding the Decision's JSON. The put is conditional (`If-None-Match: *`): S3 refuses it
when the key already exists, so a decision can never replace another record. S3 checks the body
against a SHA-256 checksum the client sends. boto3 is imported on first use, not with the package.
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import TYPE_CHECKING, Any

from moderation.decision import Decision
from moderation.errors import ConfigurationError, ModerationError
from moderation.s3location import bucket_problem

if TYPE_CHECKING:
    from moderation._retry import RetryPolicy

__all__ = ["S3AuditError", "S3AuditLog"]

# A key part must not be able to climb out of its folder or name another tenant's.
_KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_RETRYABLE_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError", "503"}
)


class S3AuditError(ModerationError, OSError):
    """A decision could not be stored in S3; `code` is the AWS error code when there was one."""

    def __init__(self, message: str, *, code: str | None = None, requests: int = 1) -> None:
        self.code = code
        self.requests = requests
        super().__init__(message)


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
        from moderation.aws._base import aws_client, client_retries_itself

        self._client, self._retry = aws_client(
            "s3",
            client=client,
            session=None,
            region=region,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retry=retry,
            failure=lambda message: ConfigurationError([f"audit sink: {message}"]),
        )
        self._owns_retries = client is None or not client_retries_itself(client)

    @property
    def client(self) -> Any:
        """The boto3 S3 client puts go through (built here or injected)."""
        return self._client

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

    def append(self, decision: Decision) -> None:
        """Put the decision's object; S3AuditError if it exists already or could not be stored."""
        from moderation._retry import call_with_retries
        from moderation.aws._base import requests_sent_before

        key = self.key_for(decision)
        body = decision.model_dump_json().encode()

        def put() -> Any:
            return self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                IfNoneMatch="*",
                ChecksumAlgorithm="SHA256",
            )

        try:
            call_with_retries(put, policy=self._retry, retryable=self._retryable)
        except Exception as exc:
            requests = requests_sent_before(exc)
            error = self._translate(exc, key, requests)
            # A put whose answer was lost and whose retry found the object: it is ours if the
            # stored bytes are exactly this decision's (a second decision never has its id).
            if error.code == "PreconditionFailed" and requests > 1 and self._holds(key, body):
                return
            raise error from exc

    def _retryable(self, exc: BaseException) -> bool:
        from moderation.aws._base import CONNECTION_ERRORS, error_code, transient_status

        if not self._owns_retries:
            return False
        return (
            error_code(exc) in _RETRYABLE_CODES
            or transient_status(exc)
            or isinstance(exc, CONNECTION_ERRORS)
        )

    def _holds(self, key: str, body: bytes) -> bool:
        try:
            stored = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                return bytes(stored.read()) == body
            finally:
                stored.close()
        except Exception:
            return False

    def _translate(self, exc: BaseException, key: str, requests: int) -> S3AuditError:
        from moderation.aws._base import error_code, http_status, plural_attempts

        uri = f"s3://{self.bucket}/{key}"
        code = error_code(exc)
        status = http_status(exc)
        tried = plural_attempts(requests)
        if code == "PreconditionFailed" or status == 412:
            return S3AuditError(
                f"audit object {uri} exists already: refusing to overwrite it ({tried})",
                code="PreconditionFailed",
                requests=requests,
            )
        if code in ("AccessDenied", "403") or status == 403:
            return S3AuditError(
                f"audit object {uri} may not be written: the caller needs s3:PutObject on it "
                f"({tried})",
                code=code,
                requests=requests,
            )
        if code == "NoSuchBucket":
            return S3AuditError(f"audit bucket {self.bucket} does not exist", code=code)
        said = f"{code or type(exc).__name__}: {exc}"
        return S3AuditError(
            f"audit object {uri} could not be written ({said}; {tried})",
            code=code,
            requests=requests,
        )
