"""Every error the library raises, under one root.

Kept in one module so that adapters, the core and the CLI can all import it without import loops.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "AWSError",
    "AuditError",
    "ConfigurationError",
    "DetectionParseError",
    "DetectorError",
    "ImageSourceError",
    "InvalidImage",
    "InvalidS3Location",
    "InvalidTenant",
    "JudgeError",
    "LeaseLost",
    "ModerationError",
    "PolicyError",
    "Problem",
    "ReplayError",
    "ReviewError",
    "TuningError",
    "UnknownItem",
    "UnknownTenant",
]


class ModerationError(Exception):
    """Root of every error this library raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong (or worth a warning) in a policy file, with where it is and how to fix it."""

    file: str
    path: str
    message: str
    hint: str | None = None
    line: int | None = None
    severity: Literal["error", "warning"] = "error"

    def render(self) -> str:
        """`file:line: key.path: message (hint)`, the shape editors and CI logs understand."""
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        key = f" {self.path}:" if self.path else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}:{key} {self.message}{hint}"


class PolicyError(ModerationError, ValueError):
    """The policies could not be loaded; `problems` lists every error found, not just the first."""

    def __init__(self, problems: Iterable[Problem], warnings: Iterable[Problem] = ()) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.warnings: tuple[Problem, ...] = tuple(warnings)
        super().__init__(self.rendered())

    def rendered(self) -> str:
        """All problems, one per line, preceded by a count."""
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the policies:"
        return "\n".join([head, *(f"  {p.render()}" for p in self.problems)])


class InvalidTenant(ModerationError, ValueError):
    """A tenant id that is not `^[a-z0-9][a-z0-9_-]{0,63}$` (it could name a path)."""


class UnknownTenant(ModerationError, LookupError):
    """A tenant with no policy file, in a store that does not fall back to the default policy."""


class DetectionParseError(ModerationError, ValueError):
    """A detector response that does not have the shape of a DetectModerationLabels answer."""


class InvalidImage(ModerationError, ValueError):
    """The input cannot be moderated as an image; `reason` says why.

    Intake raises it before any AWS call (empty, not an image, corrupt, too small, too large); the
    detector raises it when Rekognition itself refuses the image (format, size, S3 object).
    `kind` tells the causes apart for code that must act on them: "image" (the bytes are not a
    moderatable image), "gone" (the S3 object or bucket does not exist) or "denied" (the caller
    may not read the S3 object).
    """

    def __init__(self, reason: str, *, kind: Literal["image", "gone", "denied"] = "image") -> None:
        self.reason = reason
        self.kind = kind
        super().__init__(reason)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep `kind` across pickling (multiprocessing, concurrent.futures).
        return _rebuild_invalid_image, (self.reason, self.kind)


def _rebuild_invalid_image(reason: str, kind: Literal["image", "gone", "denied"]) -> InvalidImage:
    return InvalidImage(reason, kind=kind)


class DetectorError(ModerationError):
    """The detector (Rekognition) failed after retries, or refused for a reason not the image's.

    `code` is the AWS error code when the service answered with one (None for connection errors
    and malformed responses); `attempts` is how many calls were made (0 when unknown).
    """

    def __init__(self, message: str, *, code: str | None = None, attempts: int = 0) -> None:
        self.code = code
        self.attempts = attempts
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep `code` and `attempts` across pickling (multiprocessing, concurrent.futures).
        return _rebuild_detector_error, (str(self), self.code, self.attempts)


def _rebuild_detector_error(message: str, code: str | None, attempts: int) -> DetectorError:
    return DetectorError(message, code=code, attempts=attempts)


class JudgeError(ModerationError):
    """The judge (Bedrock) failed after retries or answered with something that is not a verdict.

    `code` is the AWS error code when the service answered with one (None for connection errors,
    timeouts and local failures); `attempts` is how many calls were made (0 when unknown).
    """

    def __init__(self, message: str, *, code: str | None = None, attempts: int = 0) -> None:
        self.code = code
        self.attempts = attempts
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep `code` and `attempts` across pickling (multiprocessing, concurrent.futures).
        return _rebuild_judge_error, (str(self), self.code, self.attempts)


def _rebuild_judge_error(message: str, code: str | None, attempts: int) -> JudgeError:
    return JudgeError(message, code=code, attempts=attempts)


class AuditError(ModerationError):
    """The decision could not be written to the audit log; `decision` holds it, unreturned.

    `moderate()` raises this rather than return a decision nobody can later account for.
    """

    def __init__(self, message: str, decision: object) -> None:
        self.decision = decision
        super().__init__(message)


class ImageSourceError(ModerationError):
    """The image could not be read from where it lives (S3), for a reason that is not the image's.

    `retryable` is True for failures that may pass on another try (timeouts, connection errors,
    throttling, 5xx); False for ones that will not (no credentials, a missing bucket, a bad
    configuration). `code` is the AWS error code when there was one.
    """

    def __init__(
        self, message: str, *, code: str | None = None, retryable: bool = False, attempts: int = 0
    ) -> None:
        self.code = code
        self.retryable = retryable
        self.attempts = attempts
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_source_error, (str(self), self.code, self.retryable, self.attempts)


def _rebuild_source_error(
    message: str, code: str | None, retryable: bool, attempts: int
) -> ImageSourceError:
    return ImageSourceError(message, code=code, retryable=retryable, attempts=attempts)


class AWSError(ModerationError):
    """An AWS request failed (after retries) for a reason the transport's one table names.

    `kind` is what went wrong, the same word whichever module made the request: `not found`,
    `denied`, `changed` (a precondition failed), `throttled`, `unavailable` (5xx), `connection`,
    `no credentials`, `refused` (any other answer) or `failed` (anything else). `code` is the AWS
    error code when there was one; `operation` the API call (`PutObject`); `resource` what it was
    about (`s3://bucket/key`, a table, a queue); `retryable` whether another try may pass;
    `attempts` how many requests were sent.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        operation: str = "",
        resource: str = "",
        code: str | None = None,
        retryable: bool = False,
        attempts: int = 0,
    ) -> None:
        self.kind = kind
        self.operation = operation
        self.resource = resource
        self.code = code
        self.retryable = retryable
        self.attempts = attempts
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_aws_error, (
            type(self),
            str(self),
            {
                "kind": self.kind,
                "operation": self.operation,
                "resource": self.resource,
                "code": self.code,
                "retryable": self.retryable,
                "attempts": self.attempts,
            },
        )


def _rebuild_aws_error(cls: type[AWSError], message: str, fields: dict[str, Any]) -> AWSError:
    error = cls.__new__(cls, message)
    AWSError.__init__(error, message, **fields)
    return error


class ConfigurationError(ModerationError, ValueError):
    """The environment does not configure a working engine; `problems` names every bad variable."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the configuration:"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


class ReplayError(ModerationError, ValueError):
    """A strict replay met a record it could not replay; `file` and `line` (1-based) say where.

    `file` is None for decisions given as objects rather than read from a log (`line` then counts
    them from 1).
    """

    def __init__(self, message: str, *, file: str | None, line: int | None) -> None:
        self.file = file
        self.line = line
        self.reason = message
        where = f"{file or '<decisions>'}:{line}" if line is not None else file or "<decisions>"
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_replay_error, (self.reason, self.file, self.line)


def _rebuild_replay_error(message: str, file: str | None, line: int | None) -> ReplayError:
    return ReplayError(message, file=file, line=line)


class InvalidS3Location(ModerationError, ValueError):
    """A bucket, key, version or `s3://` string that names no S3 object (or prefix) that can
    exist; the message says what is wrong."""


class ReviewError(ModerationError):
    """The review desk refused a request: a bad verdict, reviewer, rule or appeal; the message
    says what is wrong."""


class UnknownItem(ReviewError, LookupError):
    """An item id or decision id the review desk does not hold."""


class LeaseLost(ReviewError):
    """A verdict or skip from a reviewer who does not hold the item's lease: it expired and
    another reviewer took the item, it was never theirs, or the item is already decided."""


class TuningError(ModerationError, ValueError):
    """`moderation tune` cannot work from what it was given: a bad rate or confidence, no labels
    for the tenant, a policy file it cannot read or edit; the message says what is wrong."""
