"""The Decision record: what was decided about one image, by which stage, from which evidence.

Immutable and JSON round-trippable, so a decision log can be replayed against a changed policy.
It never holds image bytes or credentials.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from moderation.detection import Detection
from moderation.policy import PolicyRef
from moderation.triage import Action, Triage

__all__ = [
    "SCHEMA_VERSION",
    "Cost",
    "DecidedBy",
    "Decision",
    "Escalation",
    "ImageIdentity",
    "Outcome",
    "S3Identity",
    "ShadowResult",
    "TokenUsage",
    "Verdict",
    "VerdictKind",
]

SCHEMA_VERSION = 1

ContextValue = str | int | float | bool | None
_MAX_CONTEXT_KEYS = 32
_MAX_CONTEXT_TEXT = 256


class Outcome(StrEnum):
    """What happens to the image."""

    APPROVED = "approved"
    REJECTED = "rejected"
    REVIEW = "review"


class DecidedBy(StrEnum):
    """Which stage made the decision: the policy's bands, the judge, or a fail-closed fallback."""

    POLICY = "policy"
    JUDGE = "judge"
    FALLBACK = "fallback"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class S3Identity(_Record):
    """An S3 object as it was when moderated."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None


class ImageIdentity(_Record):
    """Which image this was: its hash (or S3 identity), size, format and dimensions."""

    sha256: str | None = None
    size: int | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    s3: S3Identity | None = None
    converted: bool = False


class VerdictKind(StrEnum):
    """The judge's answer."""

    APPROVE = "approve"
    REJECT = "reject"
    UNSURE = "unsure"


class Verdict(_Record):
    """A validated verdict from the judge's forced tool call."""

    verdict: VerdictKind
    categories: tuple[str, ...] = ()
    rationale: str = ""


class TokenUsage(_Record):
    """Tokens a model call used, as the service reported them."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


class Escalation(_Record):
    """What happened when triage asked the judge: the call, its answer or its failure."""

    judge: str
    model_id: str | None = None
    prompt_sha256: str | None = None
    verdict: Verdict | None = None
    stop_reason: str | None = None
    usage: TokenUsage | None = None
    latency_ms: float | None = None
    attempts: int = 0
    error: str | None = None
    skipped: str | None = None


class Cost(_Record):
    """Estimated spend for this decision, in US dollars."""

    rekognition_usd: float = 0.0
    bedrock_usd: float = 0.0

    @property
    def total_usd(self) -> float:
        """Everything this decision is estimated to have cost."""
        return self.rekognition_usd + self.bedrock_usd


class ShadowResult(_Record):
    """What another policy would have said about the same detection (not acted on)."""

    policy: PolicyRef
    action: Action


class Decision(_Record):
    """The complete, auditable answer for one image."""

    schema_version: Literal[1] = 1  # SCHEMA_VERSION; bump both with a migration
    id: str
    created_at: AwareDatetime
    tenant: str
    context: dict[str, ContextValue] = Field(default_factory=dict)
    outcome: Outcome
    decided_by: DecidedBy
    reasons: tuple[str, ...] = ()
    image: ImageIdentity
    policy: PolicyRef
    detection: Detection | None = None
    triage: Triage | None = None
    escalation: Escalation | None = None
    shadow: tuple[ShadowResult, ...] = ()
    timings_ms: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=dict)
    cost: Cost | None = None
    engine_version: str
    error: str | None = None

    @field_validator("context")
    @classmethod
    def _small_context(cls, value: dict[str, ContextValue]) -> dict[str, ContextValue]:
        # The caller's ids, not a payload: bounded so that bytes or documents cannot ride along.
        if len(value) > _MAX_CONTEXT_KEYS:
            raise ValueError(f"context has {len(value)} keys; at most {_MAX_CONTEXT_KEYS}")
        for key, item in value.items():
            if len(key) > 64:
                raise ValueError(f"context key {key[:20]!r}… is over 64 characters")
            if isinstance(item, str) and len(item) > _MAX_CONTEXT_TEXT:
                raise ValueError(
                    f"context[{key!r}] is {len(item)} characters; at most {_MAX_CONTEXT_TEXT}"
                )
        return value

    @property
    def approved(self) -> bool:
        """True only when the image may be published."""
        return self.outcome is Outcome.APPROVED
