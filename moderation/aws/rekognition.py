"""Amazon Rekognition `DetectModerationLabels` as a `moderation.ports.Detector`.

One retry owner per call: a client this module builds has botocore's retries off
and tenacity retries instead; an injected client that retries by itself gets exactly one attempt
from this layer. Every failure leaves `detect` as `InvalidImage` (the service refused the image)
or `DetectorError` (anything else), never as a raw botocore exception.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
)
from pydantic import ValidationError

from moderation.aws.transport import (
    CONNECTION_ERRORS,
    TRANSIENT_STATUS_CODES,
    AWSTransport,
    RetryPolicy,
    any_of,
    codes,
    error_code,
    instances,
    plural_attempts,
    transient_status,
)
from moderation.detection import Detection
from moderation.errors import DetectionParseError, DetectorError, InvalidImage

if TYPE_CHECKING:
    from mypy_boto3_rekognition import RekognitionClient
    from mypy_boto3_rekognition.type_defs import (
        DetectModerationLabelsRequestTypeDef,
        ImageTypeDef,
        S3ObjectTypeDef,
    )

    from moderation.image import PreparedImage

__all__ = [
    "IMAGE_ERROR_CODES",
    "RETRYABLE_CODES",
    "RETRYABLE_EXCEPTIONS",
    "TRANSIENT_STATUS_CODES",
    "RekognitionDetector",
]

OPERATION: Final = "DetectModerationLabels"
IAM_ACTION: Final = "rekognition:DetectModerationLabels"

#: Error codes worth another attempt: the retryable errors that botocore 1.44's rekognition service
#: model lists for DetectModerationLabels. (`ServiceUnavailableException` is not in the model and
#: `LimitExceededException` is only raised by the job-starting operations; a 503 is still retried,
#: through TRANSIENT_STATUS_CODES.)
RETRYABLE_CODES: Final = frozenset(
    {"ThrottlingException", "ProvisionedThroughputExceededException", "InternalServerError"}
)

#: Connection-level failures, read timeouts included: DetectModerationLabels is cheap and has no
#: side effects, so it is safe to repeat.
RETRYABLE_EXCEPTIONS: Final = CONNECTION_ERRORS

#: Codes that mean "this image cannot be moderated": raised as `InvalidImage`, never retried.
IMAGE_ERROR_CODES: Final = frozenset(
    {"InvalidImageFormatException", "ImageTooLargeException", "InvalidS3ObjectException"}
)


_RETRYABLE: Final[Callable[[BaseException], bool]] = any_of(
    codes(*RETRYABLE_CODES), transient_status, instances(RETRYABLE_EXCEPTIONS)
)


class RekognitionDetector(AWSTransport):
    """A `Detector` backed by Amazon Rekognition `DetectModerationLabels`.

    Retries have exactly one owner, so attempts never multiply:

    - Without `client`, the detector builds one on its first call, from `session` (default: the
      enclosing `one_session()` block's, else one of its own: `AWSTransport`) for `region`, with
      botocore's retries switched off (`total_max_attempts: 1`), the given connect
      and read timeouts and `moderation/<version>` in the user agent. `retry` (default
      `RetryPolicy()`: 4 attempts, exponential backoff with full jitter, a 30 s deadline) then
      owns retries.
    - With an injected `client`, its configuration is used untouched: the timeouts are ignored,
      and `session` or `region` alongside it is a TypeError. If it retries by itself
      (`client_retries_itself`: anything but `total_max_attempts: 1` or `max_attempts: 0`,
      botocore's default included), the detector makes exactly ONE attempt (`retry.single()`)
      and botocore's retry policy decides; otherwise `retry` owns retries as above. Note that
      botocore reads `retries={"max_attempts": 3}` as 3 *retries*, i.e. 4 requests in all.

    Retried: the codes in `RETRYABLE_CODES`, HTTP 500/502/503/504, and connection errors
    (`RETRYABLE_EXCEPTIONS`). Not retried: everything else.

    `Detection.latency_ms` is the wall time (`time.perf_counter`) of the successful attempt only:
    backoff sleeps and failed attempts are not counted.

    With a `limiter` (a `moderation.limits.RateLimiter`), every attempt waits for its permission
    and throttles lower its rate; `ensure_pool(n)` widens a built client's connection pool for `n`
    threads (see `AWSTransport`).

    Safe to share between threads (boto3 clients are; the limiter, the throttle count and the
    client swap of `ensure_pool` are thread-safe).
    """

    service = "rekognition"
    default_connect_timeout = 3.0
    default_read_timeout = 10.0

    def __init__(
        self,
        client: Any | None = None,
        *,
        session: boto3.Session | None = None,
        region: str | None = None,
        project_version: str | None = None,
        retry: RetryPolicy | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
    ) -> None:
        self._project_version = project_version
        super().__init__(
            client,
            session=session,
            region=region,
            retry=retry,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )

    @property
    def client(self) -> RekognitionClient:
        """The boto3 Rekognition client calls go through (built here or injected)."""
        client: RekognitionClient = self._client
        return client

    @property
    def cache_id(self) -> str:
        """What makes this detector's answers interchangeable with another's in the detection
        cache (`moderation.dedupe`): the service, and the custom adapter when one is used."""
        return f"rekognition:{self._project_version}" if self._project_version else "rekognition"

    def retryable(self, exc: BaseException) -> bool:
        """Throttling, 5xx and connection failures (the call is cheap and idempotent)."""
        return _RETRYABLE(exc)

    def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
        """Labels at or above `min_confidence` (0-100) for `image`.

        Raises `InvalidImage` when the service refuses the image (format, size, unreadable S3
        object) or the image has neither bytes nor an S3 reference; `DetectorError` for every
        other failure, after retries (with `code`, `attempts` and the cause chained), whatever
        botocore raised; `ValueError` for a `min_confidence` that is not a number from 0 to 100.
        `DetectorError.attempts` counts requests where known: this layer's attempts plus the
        retries botocore reports (`ResponseMetadata.RetryAttempts`) for the last one, when the
        client retries by itself.
        """
        confidence = _check_confidence(min_confidence)
        request = self._request(image, confidence)
        done = self.invoke(
            OPERATION, lambda: self.client.detect_moderation_labels(**request), image
        )
        try:
            return Detection.from_rekognition(
                done.value, min_confidence=confidence, latency_ms=done.latency_ms
            )
        except (DetectionParseError, ValidationError) as exc:
            raise DetectorError(
                f"Rekognition {OPERATION} answered with a malformed response "
                f"(after {plural_attempts(done.requests)}): {exc}",
                attempts=done.requests,
            ) from exc

    # -- internals ---------------------------------------------------------------------------

    def _request(
        self, image: PreparedImage, confidence: float
    ) -> DetectModerationLabelsRequestTypeDef:
        source: ImageTypeDef
        if image.detect_bytes is not None:
            source = {"Bytes": image.detect_bytes}
        else:
            ref = image.s3_object()
            if not ref:
                raise InvalidImage("the image has neither bytes nor an S3 object to send")
            s3: S3ObjectTypeDef = {"Bucket": ref["Bucket"], "Name": ref["Name"]}
            if ref.get("Version"):
                s3["Version"] = ref["Version"]
            source = {"S3Object": s3}
        request: DetectModerationLabelsRequestTypeDef = {
            "Image": source,
            "MinConfidence": confidence,
        }
        if self._project_version:
            request["ProjectVersion"] = self._project_version
        return request

    def failure(self, message: str) -> Exception:
        """The detector's failures are DetectorErrors."""
        return DetectorError(message)

    def translate(
        self, exc: BaseException, operation: str, requests: int, context: Any = None
    ) -> Exception:
        """`InvalidImage` for a refused image, `DetectorError` for everything else."""
        if isinstance(exc, ClientError):
            return self._service_error(exc, requests, context)
        if isinstance(exc, BotoCoreError):
            return DetectorError(
                f"Rekognition {OPERATION} failed after {plural_attempts(requests)}: "
                f"{type(exc).__name__}: {exc}",
                attempts=requests,
            )
        # Anything else: botocore's parser fails with plain exceptions on a garbled body (a JSON
        # array where an object belongs raises AttributeError), and so would a bug of ours. The
        # message names the exception rather than guess which it was.
        return DetectorError(
            f"Rekognition {OPERATION} failed unexpectedly (after {plural_attempts(requests)}; "
            f"an unreadable response or a bug): {type(exc).__name__}: {exc}",
            attempts=requests,
        )

    def _service_error(self, exc: ClientError, n: int, image: PreparedImage | None) -> Exception:
        code = error_code(exc) or "UnknownError"
        message = str(exc.response.get("Error", {}).get("Message") or "").strip()
        detail = f"{code}: {message}" if message else code
        ref = image.s3_object() if image is not None and image.detect_bytes is None else None
        where = f" ({image.s3.uri})" if ref and image is not None and image.s3 else ""
        if code in IMAGE_ERROR_CODES:
            return InvalidImage(f"Rekognition refused the image{where}: {detail}")
        if code == "AccessDeniedException":
            on_project = f" on {self._project_version}" if self._project_version else ""
            needs = f"{IAM_ACTION}{on_project}"
            if ref:
                arn = f"arn:aws:s3:::{ref['Bucket']}/{ref['Name']}"
                needs += f" and s3:GetObject on {arn}"
                if ref.get("Version"):
                    needs += " (and s3:GetObjectVersion, to read a given version)"
            return DetectorError(
                f"Rekognition {OPERATION} was denied ({detail}); the caller's IAM identity "
                f"needs {needs}",
                code=code,
                attempts=n,
            )
        gave_up = " (retries exhausted)" if _RETRYABLE(exc) else ""
        return DetectorError(
            f"Rekognition {OPERATION} failed after {plural_attempts(n)}{gave_up}: {detail}",
            code=code,
            attempts=n,
        )


def _check_confidence(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"min_confidence must be a number from 0 to 100, got {value!r}")
    if not 0 <= value <= 100 or not math.isfinite(value):
        raise ValueError(f"min_confidence must be a number from 0 to 100, got {value!r}")
    return float(value)
