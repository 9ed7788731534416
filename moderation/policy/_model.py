"""The resolved policy: immutable models that triage reads. Built only by `PolicyStore`."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from functools import cached_property
from typing import Any, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler
from pydantic_core import core_schema

from moderation.errors import InvalidTenant
from moderation.taxonomy import TAXONOMY

__all__ = [
    "DEFAULT_POLICY",
    "Band",
    "Budget",
    "CategoryRule",
    "ContentTypeName",
    "EscalationPolicy",
    "FrozenDict",
    "Policy",
    "PolicyRef",
    "QaSample",
    "ReviewRules",
    "Thresholds",
    "validate_tenant",
]

DEFAULT_POLICY = "default"
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_TENANT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A budget window longer than a month is a typo (`per: 1y` was meant as something else), and a
# window of 10**400 seconds overflows to inf.
MAX_BUDGET_WINDOW_SECONDS = 31 * 86400
DEFAULT_MAX_FRAMES = 4
# A desk item is due a day after it is created unless the policy's `review.sla` says otherwise.
DEFAULT_SLA_SECONDS = 86400.0
MAX_REVIEWERS = 5
MAX_REVIEW_PRIORITY = 100

ContentTypeName = Literal["animated", "illustrated"]
CONTENT_TYPES: tuple[ContentTypeName, ...] = ("animated", "illustrated")


def validate_tenant(tenant: object) -> str:
    """The tenant id itself if it is safe to use as a file name; `InvalidTenant` otherwise."""
    if not isinstance(tenant, str) or not _TENANT_ID.fullmatch(tenant):
        raise InvalidTenant(
            f"invalid tenant id {tenant!r}: tenant ids match ^[a-z0-9][a-z0-9_-]{{0,63}}$"
        )
    return tenant


K = TypeVar("K")
V = TypeVar("V")


class FrozenDict(Mapping[K, V], Generic[K, V]):
    """A read-only dict: reads like one, compares equal to one, cannot be changed; hashable.

    Used inside frozen models, whose cached hash of their contents a mutable dict would make stale.
    Pydantic validates it as a dict and serialises it as one.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        self._data: dict[K, V] = dict(data)

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._data,))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        key, value = get_args(source) or (Any, Any)
        as_dict = handler.generate_schema(dict[key, value])  # type: ignore[valid-type]
        return core_schema.no_info_after_validator_function(
            cls,
            as_dict,
            serialization=core_schema.plain_serializer_function_ser_schema(
                dict, return_schema=as_dict
            ),
        )


class Band(StrEnum):
    """Where one label's confidence falls under a rule."""

    REJECT = "reject"
    REVIEW = "review"
    ESCALATE = "escalate"
    IGNORE = "ignore"


class Thresholds(BaseModel):
    """The confidence bands of one rule; `allow` means the category is never acted on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    allow: bool = False
    reject: float | None = None
    review: float | None = None
    escalate: float | None = None

    def band(self, confidence: float) -> Band:
        """The band `confidence` falls in: reject, then review, then escalate, else ignore."""
        if self.allow:
            return Band.IGNORE
        for band, bound in (
            (Band.REJECT, self.reject),
            (Band.REVIEW, self.review),
            (Band.ESCALATE, self.escalate),
        ):
            if bound is not None and confidence >= bound:
                return band
        return Band.IGNORE


class CategoryRule(BaseModel):
    """The rule for one taxonomy category, with optional thresholds for animated/illustrated images.

    An override replaces the base thresholds whole when the image is of that content type.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    thresholds: Thresholds
    animated: Thresholds | None = None
    illustrated: Thresholds | None = None

    def for_content(self, content_type: ContentTypeName | None) -> Thresholds:
        """The thresholds that apply to an image of `content_type` (None: a photo)."""
        override = getattr(self, content_type) if content_type else None
        return override if override is not None else self.thresholds


class Budget(BaseModel):
    """At most `calls` judge calls per tenant in any window of `per_seconds`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    calls: int
    per_seconds: float


class EscalationPolicy(BaseModel):
    """What happens to borderline images: which judge, with what guidance, and how it fails."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    judge: Literal["bedrock", "none"] = "none"
    model_id: str | None = None
    guidance: str = ""
    on_error: Literal["review", "reject"] = "review"
    on_blocked: Literal["review", "reject"] = "review"
    budget: Budget | None = None


class QaSample(BaseModel):
    """The fractions (0..1) of automatic approvals and rejections sent to the desk as blind QA."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    approved: float = 0.0
    rejected: float = 0.0


class ReviewRules(BaseModel):
    """The review desk's rules for one tenant (the policy's `review:` section).

    `sla_seconds`: an item is due that long after it is created; items past it go first and are
    flagged. `reviewers`: agreeing verdicts needed for a final verdict. `priority`: canonical
    category -> priority (higher first; a finding's category counts through its nearest ancestor
    written here). `blur`: canonical categories whose images are blurred until a reviewer asks.
    `golden_rate`: the fraction of the tenant's new desk items that also bring one golden item
    (an image with a known answer, shown like any review item) into the queue.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sla_seconds: float = DEFAULT_SLA_SECONDS
    reviewers: int = 1
    priority: FrozenDict[str, int] = FrozenDict()
    blur: tuple[str, ...] = ()
    qa_sample: QaSample = QaSample()
    golden_rate: float = 0.0

    def priority_of(self, categories: Iterable[str]) -> int:
        """The highest priority of `categories`, each through its nearest ancestor listed; 0 if
        none is."""
        return max((self._nearest(self.priority, name) or 0 for name in categories), default=0)

    def blurred(self, categories: Iterable[str]) -> bool:
        """Whether an image with findings in `categories` is blurred (a category or an ancestor
        of it is listed under `blur`)."""
        blur = dict.fromkeys(self.blur, True)
        return any(self._nearest(blur, name) for name in categories)

    @staticmethod
    def _nearest(table: Mapping[str, V], name: str) -> V | None:
        canonical = TAXONOMY.canonical(name)
        if canonical is None:
            return None
        for candidate in (canonical, *TAXONOMY.ancestors(canonical)):
            if candidate in table:
                return table[candidate]
        return None


class PolicyRef(BaseModel):
    """Which rules a decision was made under: enough to prove two decisions share them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    chain: tuple[str, ...]
    sha256: str
    # Which version of the policy source the store had loaded (an AppConfig version, or a digest
    # of the files for a directory or S3 prefix): None for a store built from in-memory documents.
    version: str | None = None


class Policy(BaseModel):
    """One tenant's resolved, validated rules. Built by `PolicyStore`; immutable.

    `max_frames` is how many frames of an animated image are sent to the detector (one call each).
    `categories` is read-only: `sha256` is computed once and must not go stale.
    `shadow` names other policies of the same store that the engine evaluates beside this one and
    records, without acting on them: it changes no decision, so it is not part of `sha256`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    chain: tuple[str, ...]
    description: str = ""
    min_confidence: float = 50.0
    content_type_min_confidence: float = 50.0
    max_frames: int = DEFAULT_MAX_FRAMES
    default: Thresholds
    categories: FrozenDict[str, CategoryRule] = FrozenDict()
    escalation: EscalationPolicy = EscalationPolicy()
    on_detector_error: Literal["raise", "review"] = "raise"
    shadow: tuple[str, ...] = ()
    # The `review:` section as resolved, or None where no file in the chain writes one: then the
    # desk uses `ReviewRules()`'s defaults (`review_rules`), and the hash is what it was before
    # the section existed.
    review: ReviewRules | None = None
    # The version of the policy source this policy was loaded from (see PolicyRef.version): a
    # label of where the rules came from, not a rule, so it is not part of `sha256`.
    version: str | None = None

    def rule_for(self, name: str) -> CategoryRule | None:
        """The rule written for exactly this category (any spelling), or None."""
        canonical = TAXONOMY.canonical(name)
        return self.categories.get(canonical) if canonical else None

    @property
    def review_rules(self) -> ReviewRules:
        """The desk's rules for this tenant: the `review:` section, or the defaults."""
        return self.review if self.review is not None else ReviewRules()

    def canonical_json(self) -> str:
        """The effective rules as canonical JSON: no id, chain, description, shadow or version;
        sorted keys; `review` only where a file writes the section.

        `shadow` is left out because shadows never change a decision: replay compares these hashes.
        """
        left_out = {"id", "chain", "description", "shadow", "version"}
        if self.review is None:
            left_out.add("review")
        body = self.model_dump(mode="json", exclude=left_out)
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @cached_property
    def sha256(self) -> str:
        """Hash of the effective rules; equal hashes mean equal decisions for equal detections."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    @cached_property
    def ref(self) -> PolicyRef:
        """This policy's identity for a decision record (made once: every decision under this
        policy records the same one)."""
        return PolicyRef(id=self.id, chain=self.chain, sha256=self.sha256, version=self.version)
