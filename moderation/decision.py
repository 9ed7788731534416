"""The Decision record: what was decided about one image, by which stage, from which evidence.

Immutable and JSON round-trippable, so a decision log can be replayed against a changed policy.
It never holds image bytes or credentials.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, Protocol

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
)

from moderation._frozen import FrozenDict, freeze
from moderation.detection import Detection
from moderation.policy._model import PolicyRef
from moderation.triage import Action, Triage

__all__ = [
    "BLOCKED_STOP_REASONS",
    "OUTCOME_OF_ACTION",
    "OUTCOME_OF_FALLBACK",
    "OUTCOME_OF_VERDICT",
    "SCHEMA_VERSION",
    "Cost",
    "DecidedBy",
    "Decision",
    "Escalation",
    "IdentifiedImage",
    "ImageIdentity",
    "JudgeAnswer",
    "Outcome",
    "S3Identity",
    "S3Object",
    "ShadowResult",
    "TokenUsage",
    "Verdict",
    "VerdictKind",
    "check_context",
    "decision_schema",
]

SCHEMA_VERSION = 1

ContextValue = str | int | float | bool | None
# Strict: bytes must not be coerced into text on their way into the audit log.
_StrictContextValue = StrictStr | StrictBool | StrictInt | StrictFloat | None
_MAX_CONTEXT_KEYS = 32
_MAX_CONTEXT_TEXT = 256


def check_context(value: object) -> dict[str, ContextValue]:
    """The caller's context if it is a small mapping of ids to scalars; ValueError otherwise.

    Bounded so that image bytes or whole documents cannot ride along into the audit log.
    """
    if not isinstance(value, dict):
        raise ValueError(f"context must be a dict of ids, got {type(value).__name__}")
    if len(value) > _MAX_CONTEXT_KEYS:
        raise ValueError(f"context has {len(value)} keys; at most {_MAX_CONTEXT_KEYS}")
    for key, item in value.items():
        if not isinstance(key, str) or not 0 < len(key) <= 64:
            raise ValueError(f"context key {key!r} must be text of 1 to 64 characters")
        if item is not None and not isinstance(item, str | int | float | bool):
            raise ValueError(f"context[{key!r}] must be text, a number, a bool or None")
        if isinstance(item, str) and len(item) > _MAX_CONTEXT_TEXT:
            raise ValueError(
                f"context[{key!r}] is {len(item)} characters; at most {_MAX_CONTEXT_TEXT}"
            )
    return value


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
    # No NaN or infinity anywhere: JSON has no spelling for them (pydantic writes null), so a
    # record holding one would not load back from the audit log.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class S3Identity(_Record):
    """An S3 object as it was when moderated."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None


class S3Object(Protocol):
    """Where an image was read from in S3: what `ImageIdentity.of` takes from it."""

    @property
    def bucket(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def version_id(self) -> str | None: ...
    @property
    def etag(self) -> str | None: ...


class IdentifiedImage(Protocol):
    """An image that passed intake (`moderation.image.PreparedImage`), as far as its identity
    goes: the decision model names what it reads without importing the image package."""

    @property
    def sha256(self) -> str | None: ...
    @property
    def size(self) -> int: ...
    @property
    def format(self) -> str: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def s3(self) -> S3Object | None: ...
    @property
    def converted(self) -> bool: ...
    @property
    def n_frames(self) -> int: ...


class ImageIdentity(_Record):
    """Which image this was: its hash (or S3 identity), size, format and dimensions."""

    sha256: str | None = None
    size: int | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    s3: S3Identity | None = None
    converted: bool = False
    n_frames: int = 1  # frames in the animation; 1 for a still image

    @classmethod
    def of(cls, image: IdentifiedImage) -> ImageIdentity:
        """The identity of a prepared image: never its bytes."""
        s3 = image.s3
        return cls(
            sha256=image.sha256,
            size=image.size,
            format=image.format,
            width=image.width,
            height=image.height,
            s3=None
            if s3 is None
            else S3Identity(bucket=s3.bucket, key=s3.key, version_id=s3.version_id, etag=s3.etag),
            converted=image.converted,
            n_frames=image.n_frames,
        )


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
    """Tokens a model call used, as the service reported them, prompt-cache reads and writes apart.

    Converse counts cached tokens outside `inputTokens`: `input_tokens` are the uncached ones, and
    `total_tokens` includes all four kinds. The cache fields default to 0, so records written
    before they existed still load.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0


# Converse stop reasons that mean the model's content filter or a guardrail refused to answer: the
# judge reports such a reply as `blocked` (the policy's `on_blocked` applies).
BLOCKED_STOP_REASONS: frozenset[str] = frozenset({"content_filtered", "guardrail_intervened"})

JudgeAnswer = Literal["verdict", "blocked", "invalid", "failed"]


class Escalation(_Record):
    """What happened when triage asked the judge: the call, its answer or its failure."""

    judge: str
    # Who answered: "bedrock" for the service; "recorded" or "static" for the test kit's judges.
    provider: str | None = None
    model_id: str | None = None
    prompt_sha256: str | None = None
    verdict: Verdict | None = None
    stop_reason: str | None = None
    usage: TokenUsage | None = None
    latency_ms: float | None = None
    attempts: int = 0
    error: str | None = None
    skipped: str | None = None

    @property
    def answer(self) -> JudgeAnswer | None:
        """What the judge gave: a `verdict`; a reply that was `blocked` (content filter,
        guardrail) or `invalid` (no usable verdict); `failed` (the call raised: timeout, service
        error); None when it was never asked (skipped: no judge, budget spent)."""
        if self.verdict is not None:
            return "verdict"
        if self.provider is not None:  # a reply came back, without a verdict
            return "blocked" if self.stop_reason in BLOCKED_STOP_REASONS else "invalid"
        if self.error is not None and self.skipped is None:
            return "failed"
        return None


class Cost(_Record):
    """Estimated spend for this decision, in US dollars."""

    rekognition_usd: float = 0.0
    bedrock_usd: float | None = 0.0  # None: the model's price is not in the pricing table

    @property
    def total_usd(self) -> float | None:
        """Everything this decision is estimated to have cost; None if a part is unknown."""
        if self.bedrock_usd is None:
            return None
        return self.rekognition_usd + self.bedrock_usd


class ShadowResult(_Record):
    """What another policy would have said about the same detection: recorded, never acted on.

    `outcome` is what the shadow would have decided where that needs no judge call of its own:
    triage's approve/reject/review; for escalate, a review when the shadow has `judge: none` (as
    the engine would), else the live judge's verdict when it decided the live decision
    (`verdict_reused`), else None ("would escalate"). `incomplete` is true when the detection may
    lack what the shadow would act on: its `min_confidence` is lower than the one the detector was
    asked with, or it would have sent other frames of an animation.
    """

    policy: PolicyRef
    action: Action
    outcome: Outcome | None = None
    verdict_reused: bool = False
    reasons: tuple[str, ...] = ()
    incomplete: bool = False


# What each stage's answer means for the image: triage's action (escalate has none of its own), a
# policy's fallback (`on_error`, `on_blocked`, `on_detector_error`), the judge's verdict. One
# definition for the engine, the shadows, replay and live judging.
OUTCOME_OF_ACTION: FrozenDict[Action, Outcome] = FrozenDict(
    {
        Action.APPROVE: Outcome.APPROVED,
        Action.REJECT: Outcome.REJECTED,
        Action.REVIEW: Outcome.REVIEW,
    }
)
OUTCOME_OF_FALLBACK: FrozenDict[str, Outcome] = FrozenDict(
    {"review": Outcome.REVIEW, "reject": Outcome.REJECTED}
)
OUTCOME_OF_VERDICT: FrozenDict[VerdictKind, Outcome] = FrozenDict(
    {
        VerdictKind.APPROVE: Outcome.APPROVED,
        VerdictKind.REJECT: Outcome.REJECTED,
        VerdictKind.UNSURE: Outcome.REVIEW,
    }
)


class Decision(_Record):
    """The complete, auditable answer for one image."""

    schema_version: Literal[1] = 1  # SCHEMA_VERSION; bump both with a migration
    id: str
    created_at: AwareDatetime
    tenant: str
    # Read-only mappings: a frozen record whose dicts could still be edited would not be frozen.
    context: Annotated[dict[str, _StrictContextValue], AfterValidator(freeze)] = Field(
        default_factory=FrozenDict
    )
    outcome: Outcome
    decided_by: DecidedBy
    reasons: tuple[str, ...] = ()
    image: ImageIdentity
    policy: PolicyRef
    # True when the tenant had no policy of its own and the store gave it the default one.
    policy_fallback: bool = False
    detection: Detection | None = None
    triage: Triage | None = None
    escalation: Escalation | None = None
    shadow: tuple[ShadowResult, ...] = ()
    timings_ms: Annotated[dict[str, Annotated[float, Field(ge=0)]], AfterValidator(freeze)] = Field(
        default_factory=FrozenDict
    )
    cost: Cost | None = None
    engine_version: str
    error: str | None = None

    @field_validator("context")
    @classmethod
    def _small_context(cls, value: dict[str, ContextValue]) -> dict[str, ContextValue]:
        return check_context(value)

    @property
    def reason(self) -> str:
        """The reason that decided the outcome: the last of `reasons`."""
        return self.reasons[-1] if self.reasons else ""

    @property
    def approved(self) -> bool:
        """True only when the image may be published."""
        return self.outcome is Outcome.APPROVED


def decision_schema() -> dict[str, Any]:
    """The JSON Schema of a serialised Decision."""
    return Decision.model_json_schema(mode="serialization")
