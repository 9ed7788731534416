"""The narrow ports through which the engine reaches the outside: detector, judge, audit log.

Each has an AWS adapter (`moderation.aws`) and a fake or recording (`moderation.testing`); the
engine depends on these Protocols only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from moderation.decision import Decision, TokenUsage, Verdict
from moderation.detection import Detection
from moderation.review_records import AppealRecord, ReviewRecord
from moderation.triage import Finding

if TYPE_CHECKING:
    from moderation.image import PreparedImage

__all__ = ["AuditLog", "Detector", "Judge", "JudgeRequest", "Judgment", "RecordingAuditLog"]


@runtime_checkable
class Detector(Protocol):
    """Finds moderation labels in an image."""

    def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
        """Labels at or above `min_confidence`; raises InvalidImage or DetectorError."""
        ...


class JudgeRequest(BaseModel):
    """What the judge is asked about one image: the borderline findings, the tenant's guidance."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant: str
    model_id: str
    guidance: str
    findings: tuple[Finding, ...]


class Judgment(BaseModel):
    """What came back from the judge's model: a verdict, a refusal (`blocked`), or no usable answer.

    `invalid` covers max_tokens, malformed tool use, a missing or invalid tool input and text-only
    replies; `detail` says which. Transport and service failures raise JudgeError instead.
    `provider` names what produced it: "bedrock" for the service, "recorded" or "static" for the
    offline judges of `moderation.testing`, so an offline judgment is never taken for a real one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: Literal["verdict", "blocked", "invalid"]
    verdict: Verdict | None = None
    detail: str | None = None
    model_id: str
    prompt_sha256: str
    stop_reason: str | None = None
    usage: TokenUsage | None = None
    latency_ms: float | None = None
    attempts: int = 1
    provider: str = "bedrock"


@runtime_checkable
class Judge(Protocol):
    """Decides a borderline image with a multimodal model."""

    def judge(self, image: PreparedImage, request: JudgeRequest) -> Judgment:
        """The model's judgment; raises JudgeError when the service fails after retries."""
        ...


@runtime_checkable
class AuditLog(Protocol):
    """Keeps every decision. `append` returns only once the decision is stored."""

    def append(self, decision: Decision) -> None:
        """Store one decision durably, or raise."""
        ...


class RecordingAuditLog(AuditLog, Protocol):
    """An audit log that also keeps what people did about decisions (every sink of
    `moderation.audit`): the review desk writes its verdicts and appeals through this."""

    def append_record(self, record: Decision | ReviewRecord | AppealRecord) -> None:
        """Store one decision, review or appeal record durably (chained with the decisions in a
        chained log), or raise."""
        ...
