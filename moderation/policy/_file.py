"""The policy file format, defined once: what one YAML file may say, key by key.

`PolicyStore` validates every file's data with `PolicyFile` (and maps pydantic's errors to its own
messages), and `policy_schema()` is generated from the same models, so the checker and the JSON
Schema that editors use cannot drift apart. What needs more than one file's data (category names
in the taxonomy, `extends` and `shadow` targets, band order after merging, `id` against the file
name, a model for `judge: bedrock`) is checked by the store, not here.

Every key may be `null`: in a tenant file that removes what the parent set (RFC 7396 merge patch).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

from moderation.policy._model import (
    DEFAULT_MAX_FRAMES,
    DEFAULT_SLA_SECONDS,
    MAX_BUDGET_WINDOW_SECONDS,
    MAX_REVIEW_PRIORITY,
    MAX_REVIEWERS,
    TENANT_PATTERN,
)

__all__ = [
    "DURATION_PATTERN",
    "MAX_FRAMES",
    "TAGS",
    "BudgetFile",
    "EscalationFile",
    "PlainRuleFile",
    "PolicyFile",
    "QaSampleFile",
    "ReviewFile",
    "RuleFile",
]

MAX_FRAMES = 20


def _positive_at_most(limit: int) -> str:
    """A regex (no lookaround, so every engine reads it alike) for decimals in (0, limit]."""

    def digits(n: int) -> str:
        return "" if n == 0 else r"\d" if n == 1 else rf"\d{{{n}}}"

    def span(low: int, high: int) -> str:
        return str(low) if low == high else f"[{low}-{high}]"

    below = str(limit - 1)
    integers = []  # 1 .. limit-1: the shorter numbers, then each digit of `below` in turn
    if len(below) > 1:
        integers.append("[1-9]" + (rf"\d{{0,{len(below) - 2}}}" if len(below) > 2 else ""))
    for i, digit in enumerate(below):
        low, high = (1 if i == 0 else 0), int(digit) - 1
        if high >= low:
            integers.append(below[:i] + span(low, high) + digits(len(below) - i - 1))
    integers.append(below)
    return (
        r"(?:0+\.\d*[1-9]\d*"  # 0.5
        + rf"|0*(?:{'|'.join(integers)})(?:\.\d+)?"  # 1 .. limit-1, any fraction
        + rf"|0*{limit}(?:\.0+)?)"  # limit itself
    )


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# 30s, 15m, 1.5h, 1d: positive, and at most 31 days in whichever unit it is written.
DURATION_PATTERN = (
    r"^\s*(?:"
    + "|".join(
        rf"{_positive_at_most(MAX_BUDGET_WINDOW_SECONDS // seconds)}\s*{unit}"
        for unit, seconds in _UNITS.items()
    )
    + r")\s*$"
)

# The tags of the tagged unions below. They appear in pydantic's error locations, which the store
# strips to get back the key path a person wrote.
TAGS = frozenset({"allow", "thresholds", "seconds", "duration", "policy", "policies"})


def _whole(value: Any) -> Any:
    # 8.0 is a whole number (JSON Schema's `integer` says so too); 8.5 and "8" are not.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Threshold = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
# Constraints before the validator: pydantic then keeps them as the int schema's own, which the
# JSON Schema shows as minimum/maximum.
Frames = Annotated[int, Field(ge=1, le=MAX_FRAMES), BeforeValidator(_whole)]
Calls = Annotated[int, Field(ge=0), BeforeValidator(_whole)]
Reviewers = Annotated[int, Field(ge=1, le=MAX_REVIEWERS), BeforeValidator(_whole)]
ReviewPriority = Annotated[int, Field(ge=0, le=MAX_REVIEW_PRIORITY), BeforeValidator(_whole)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


def _rule_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "allow"
    if isinstance(value, dict):
        return "thresholds"
    return None


def _shadow_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "policy"
    if isinstance(value, list):
        return "policies"
    return None


def _distinct(names: list[str]) -> list[str]:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise PydanticCustomError("shadow_duplicate", "'{name}' is named twice", {"name": name})
        seen.add(name)
    return names


def _per_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "duration"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "seconds"
    return None


PolicyId = Annotated[str, Field(pattern=TENANT_PATTERN)]

# One policy id, or a list of distinct ones (JSON Schema `uniqueItems`, checked alike here).
Shadow = Annotated[
    Annotated[PolicyId, Tag("policy")]
    | Annotated[
        list[PolicyId],
        AfterValidator(_distinct),
        Field(json_schema_extra={"uniqueItems": True}),
        Tag("policies"),
    ],
    Discriminator(
        _shadow_kind,
        custom_error_type="shadow_type",
        custom_error_message="a policy id or a list of policy ids",
    ),
]


class _FileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PlainRuleFile(_FileModel):
    """Bands: >= reject rejects, >= review goes to a person, >= escalate asks the judge."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    reject: Threshold | None = None
    review: Threshold | None = None
    escalate: Threshold | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, dict) and not value:
            raise PydanticCustomError("empty_rule", "an empty rule has no thresholds")
        return value


_RULE_ERROR = "a rule is `allow` or a mapping of thresholds"

PlainRule = Annotated[
    Annotated[Literal["allow"], Tag("allow")] | Annotated[PlainRuleFile, Tag("thresholds")],
    Discriminator(_rule_kind, custom_error_type="rule_type", custom_error_message=_RULE_ERROR),
]


class RuleFile(PlainRuleFile):
    """A category's rule; `animated`/`illustrated` replace it whole for those images."""

    animated: PlainRule | None = Field(
        default=None, description="Replaces the rule whole for animated images."
    )
    illustrated: PlainRule | None = Field(
        default=None, description="Replaces the rule whole for illustrated images."
    )


Rule = Annotated[
    Annotated[Literal["allow"], Tag("allow")] | Annotated[RuleFile, Tag("thresholds")],
    Discriminator(_rule_kind, custom_error_type="rule_type", custom_error_message=_RULE_ERROR),
]

Duration = Annotated[
    Annotated[
        float,
        Field(gt=0, le=MAX_BUDGET_WINDOW_SECONDS, allow_inf_nan=False),
        Tag("seconds"),
    ]
    | Annotated[str, Field(pattern=DURATION_PATTERN), Tag("duration")],
    Discriminator(_per_kind, custom_error_type="duration_type", custom_error_message="a duration"),
]


class BudgetFile(_FileModel):
    """At most `calls` judge calls per tenant in any sliding window of `per`."""

    calls: Calls = Field(description="Judge calls allowed per window.")
    per: Duration = Field(
        description="The window: 30s, 15m, 1h, 1d (at most 31 days), or a number of seconds."
    )


class EscalationFile(_FileModel):
    """What happens to borderline images."""

    judge: Literal["bedrock", "none"] | None = Field(
        default=None, description="bedrock: ask a model; none: borderline goes to review."
    )
    model_id: Annotated[str, Field(pattern=r"\S")] | None = Field(
        default=None, description="Bedrock model (or inference profile) id; needed for bedrock."
    )
    guidance: str | None = Field(
        default=None, description="What this tenant accepts, for the judge."
    )
    on_error: Literal["review", "reject"] | None = Field(
        default=None, description="What a failed judge call becomes (never approve: fail closed)."
    )
    on_blocked: Literal["review", "reject"] | None = Field(
        default=None, description="What a judge call stopped by the model's content filter becomes."
    )
    budget: BudgetFile | None = None


class QaSampleFile(_FileModel):
    """The fractions of automatic outcomes sent to the desk as blind QA items."""

    approved: Fraction | None = Field(
        default=None, description="Fraction (0..1) of automatic approvals sampled (default 0)."
    )
    rejected: Fraction | None = Field(
        default=None, description="Fraction (0..1) of automatic rejections sampled (default 0)."
    )


def _distinct_blur(names: list[str]) -> list[str]:
    # Spelling is forgiven later (the taxonomy check); the same text twice is plainly a slip.
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise PydanticCustomError("blur_duplicate", "'{name}' is named twice", {"name": name})
        seen.add(name)
    return names


class ReviewFile(_FileModel):
    """The human review desk's rules for this tenant."""

    sla: Duration | None = Field(
        default=None,
        description="How long an item may wait: 30m, 4h, 1d (at most 31 days), or seconds; "
        f"items past it go first and are flagged (default {DEFAULT_SLA_SECONDS / 3600:g}h).",
    )
    reviewers: Reviewers | None = Field(
        default=None,
        description=f"Agreeing verdicts needed for a final verdict, 1..{MAX_REVIEWERS} "
        "(default 1).",
    )
    priority: dict[str, ReviewPriority | None] | None = Field(
        default=None,
        description=f"Taxonomy category -> priority 0..{MAX_REVIEW_PRIORITY} (higher first; "
        "default 0); a category counts for its subcategories.",
    )
    blur: (
        Annotated[
            list[str],
            AfterValidator(_distinct_blur),
            Field(json_schema_extra={"uniqueItems": True}),
        ]
        | None
    ) = Field(
        default=None,
        description="Taxonomy categories (and their subcategories) whose images are blurred "
        "until the reviewer asks.",
    )
    qa_sample: QaSampleFile | None = None
    golden_rate: Fraction | None = Field(
        default=None,
        description="Fraction (0..1) of this tenant's desk items that also bring a golden item "
        "(a known answer, shown blind) into the queue (default 0).",
    )


class PolicyFile(_FileModel):
    """One tenant's moderation policy (policies/default.yaml or policies/tenants/<tenant>.yaml)."""

    id: Annotated[str, Field(pattern=TENANT_PATTERN)] = Field(
        default="", description="Must equal the file's tenant name."
    )
    description: str | None = None
    extends: Annotated[str, Field(pattern=TENANT_PATTERN)] | None = Field(
        default=None,
        description="The policy this one overrides; tenants extend `default` unless they say "
        "otherwise.",
    )
    min_confidence: Threshold | None = Field(
        default=None,
        description="MinConfidence sent to Rekognition; labels below never arrive (default 50).",
    )
    content_type_min_confidence: Threshold | None = Field(
        default=None,
        description="Confidence at which an Animated/Illustrated content type switches a rule to "
        "its override (default 50).",
    )
    max_frames: Frames | None = Field(
        default=None,
        description="Frames of an animated GIF/WebP sent to the detector, one call each "
        f"(default {DEFAULT_MAX_FRAMES}).",
    )
    default: PlainRule | None = Field(
        default=None, description="The rule for labels no category rule covers."
    )
    categories: dict[str, Rule | None] | None = None
    escalation: EscalationFile | None = None
    on_detector_error: Literal["raise", "review"] | None = Field(
        default=None, description="What a Rekognition failure becomes (default raise)."
    )
    shadow: Shadow | None = Field(
        default=None,
        description="Policies (ids in this store) evaluated beside this one on the same "
        "detection and recorded in each decision, never acted on. Not inherited through "
        "`extends`.",
    )
    review: ReviewFile | None = None
