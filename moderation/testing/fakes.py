"""Detectors and judges with fixed answers, and ones that always fail, for tests of the engine.

All of them satisfy the `Detector` / `Judge` Protocols of `moderation.ports`, keep every call they
receive in `.calls`, and mark what they return as offline: detections and judgments from the static
fakes say `provider="static"`.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from typing import Final, Literal

from moderation.decision import TokenUsage, Verdict, VerdictKind
from moderation.detection import ContentType, Detection, Label
from moderation.errors import DetectorError, JudgeError
from moderation.image import PreparedImage
from moderation.ports import JudgeRequest, Judgment
from moderation.taxonomy import TAXONOMY
from moderation.testing._calls import DetectCall, JudgeCall
from moderation.testing.recorded import NoRecording

__all__ = [
    "ContentTypeSpec",
    "FailingDetector",
    "FailingJudge",
    "ImageKey",
    "LabelSpec",
    "StaticDetector",
    "StaticJudge",
    "static_detection",
]

#: A label as `("Explicit Nudity", 92.0)` (parent and level from the taxonomy) or a `Label`.
LabelSpec = Label | tuple[str, float]
#: A content type as `("Animated", 97.0)` or a `ContentType`.
ContentTypeSpec = ContentType | tuple[str, float]
#: An image as its hex sha256, or as its bytes (hashed here).
ImageKey = str | bytes

STATIC: Final = "static"
_SHA256: Final = re.compile(r"[0-9a-fA-F]{64}")


def _confidence(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: confidence must be a number from 0 to 100, got {value!r}")
    if not 0 <= value <= 100 or not math.isfinite(value):
        raise ValueError(f"{where}: confidence must be a number from 0 to 100, got {value!r}")
    return float(value)


def _pair(spec: object, what: str) -> tuple[str, float]:
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(f"a {what} is a ({what} name, confidence) pair, got {spec!r}")
    name, confidence = spec
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a {what} name must be non-empty text, got {name!r}")
    return name, _confidence(confidence, name)


def _label(spec: LabelSpec) -> Label:
    if isinstance(spec, Label):
        return spec
    name, confidence = _pair(spec, "label")
    # Rekognition reports parent and level with every 7.0 label; take them from the taxonomy. A
    # name the taxonomy does not know (a custom adapter's label) is a top-level label.
    category = TAXONOMY.lookup(name)
    return Label(
        name=name,
        parent=category.parent if category else None,
        level=category.level if category else 1,
        confidence=confidence,
    )


def _content_type(spec: ContentTypeSpec) -> ContentType:
    if isinstance(spec, ContentType):
        return spec
    name, confidence = _pair(spec, "content type")
    return ContentType(name=name, confidence=confidence)


def static_detection(
    labels: Iterable[LabelSpec] = (),
    content_types: Iterable[ContentTypeSpec] = (),
    *,
    model_version: str | None = "7.0",
) -> Detection:
    """A `Detection` with `provider="static"` from simple `(name, confidence)` pairs.

    Parent and level of a pair come from `moderation.taxonomy.TAXONOMY`; ValueError for a
    confidence outside 0-100 or a malformed pair.
    """
    return Detection(
        provider=STATIC,
        model_version=model_version,
        labels=tuple(_label(spec) for spec in labels),
        content_types=tuple(_content_type(spec) for spec in content_types),
    )


def _sha256_of(key: ImageKey) -> str:
    if isinstance(key, bytes):
        return hashlib.sha256(key).hexdigest()
    if isinstance(key, str) and _SHA256.fullmatch(key):
        return key.lower()
    raise ValueError(f"an image is keyed by its 64-hex-digit sha256 or by its bytes, got {key!r}")


class StaticDetector:
    """A Detector that reports fixed labels: the same for every image, or chosen per image.

    `StaticDetector()` sees nothing in any image. `StaticDetector([("Explicit Nudity", 92.0)])`
    reports that label for every image. `images={sha256_or_bytes: labels_or_Detection}` answers per
    image; an image not listed gets the top-level `labels`/`content_types` when either was given,
    and raises `NoRecording` (a `DetectorError`) when neither was, so a forgotten image is never
    silently clean.

    Like Rekognition, labels below the policy's `min_confidence` are left out. Detections say
    `provider="static"`. Every call is kept in `.calls` (`DetectCall`).
    """

    def __init__(
        self,
        labels: Iterable[LabelSpec] | None = None,
        content_types: Iterable[ContentTypeSpec] | None = None,
        *,
        model_version: str | None = "7.0",
        images: Mapping[ImageKey, Iterable[LabelSpec] | Detection] | None = None,
    ) -> None:
        has_default = images is None or labels is not None or content_types is not None
        self.default: Detection | None = (
            static_detection(labels or (), content_types or (), model_version=model_version)
            if has_default
            else None
        )
        self.images: dict[str, Detection] = {}
        for key, answer in (images or {}).items():
            detection = (
                answer
                if isinstance(answer, Detection)
                else static_detection(answer, model_version=model_version)
            )
            self.images[_sha256_of(key)] = detection
        self.calls: list[DetectCall] = []
        self._answers: dict[tuple[int, float], tuple[Detection, Detection]] = {}

    def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
        """This image's detection (labels at or above `min_confidence`); NoRecording if none."""
        self.calls.append(DetectCall(image, min_confidence))
        found = self.images.get(image.sha256) if image.sha256 is not None else None
        if found is None:
            found = self.default
        if found is None:
            what = f"sha256 {image.sha256}" if image.sha256 else "this S3 image (not downloaded)"
            raise NoRecording(
                f"StaticDetector has no detection for {what}: it was given per-image answers "
                "only (pass labels=[] to see nothing in other images)"
            )
        # The same answer to the same question is the same (frozen) object: a copy per call cost
        # an "instant" detector more than the engine's own detect stage (benchmarks/overhead.py).
        key = (id(found), min_confidence)
        kept = self._answers.get(key)
        if kept is not None and kept[0] is found:
            return kept[1]
        answer = found.model_copy(
            update={
                "provider": STATIC,
                "min_confidence": min_confidence,
                "labels": tuple(x for x in found.labels if x.confidence >= min_confidence),
            }
        )
        self._answers[key] = (found, answer)
        return answer


class StaticJudge:
    """A Judge that gives one fixed answer to every request, with `provider="static"`.

    `StaticJudge("reject", rationale=..., categories=[...])` answers with that verdict;
    `StaticJudge.blocked()` as a model whose content filter refused; `StaticJudge.invalid()` as a
    model that gave no usable answer. Every call is kept in `.calls` (`JudgeCall`), so a test can
    assert the judge was, or was not, asked.
    """

    def __init__(
        self,
        verdict: VerdictKind | Literal["approve", "reject", "unsure"],
        rationale: str = "",
        categories: Iterable[str] = (),
        *,
        usage: TokenUsage | None = None,
    ) -> None:
        self.status: Literal["verdict", "blocked", "invalid"] = "verdict"
        self.verdict: Verdict | None = Verdict(
            verdict=VerdictKind(verdict), categories=tuple(categories), rationale=rationale
        )
        self.detail: str | None = None
        self.stop_reason: str | None = "tool_use"
        self.usage = usage
        self.calls: list[JudgeCall] = []

    @classmethod
    def blocked(
        cls,
        detail: str = "content_filtered: the model's content filter stopped the reply",
        *,
        stop_reason: str = "content_filtered",
    ) -> StaticJudge:
        """A judge whose every answer is a refusal (the engine applies the policy's on_blocked)."""
        judge = cls("unsure")
        judge.status, judge.verdict = "blocked", None
        judge.detail, judge.stop_reason = detail, stop_reason
        return judge

    @classmethod
    def invalid(
        cls, detail: str = "text-only reply, no tool call", *, stop_reason: str = "end_turn"
    ) -> StaticJudge:
        """A judge whose every answer is unusable (the engine applies the policy's on_error)."""
        judge = cls("unsure")
        judge.status, judge.verdict = "invalid", None
        judge.detail, judge.stop_reason = detail, stop_reason
        return judge

    def judge(self, image: PreparedImage, request: JudgeRequest) -> Judgment:
        """The fixed judgment, for the request's model and the prompt a real call would send."""
        from moderation.judge import build_converse_request, prompt_sha256

        self.calls.append(JudgeCall(image, request))
        # The real prompt is built (and hashed, with BedrockJudge's default settings) so that an
        # image the judge could not be sent fails here as it would against Bedrock.
        fmt, data = image.judge_image()
        kwargs = build_converse_request(request, fmt, data, max_tokens=512, temperature=0.0)
        return Judgment(
            status=self.status,
            verdict=self.verdict,
            detail=self.detail,
            model_id=request.model_id,
            prompt_sha256=prompt_sha256(kwargs),
            stop_reason=self.stop_reason,
            usage=self.usage,
            latency_ms=None,
            attempts=1,
            provider=STATIC,
        )


class FailingDetector:
    """A Detector that raises `error` on every call (default: a DetectorError); see `.calls`."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error if error is not None else DetectorError("FailingDetector: always fails")
        self.calls: list[DetectCall] = []

    def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
        """Never returns: raises `self.error`."""
        self.calls.append(DetectCall(image, min_confidence))
        # A fresh traceback each time, so one instance raised many times does not grow one.
        raise self.error.with_traceback(None)


class FailingJudge:
    """A Judge that raises `error` on every call (default: a JudgeError); see `.calls`."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error if error is not None else JudgeError("FailingJudge: always fails")
        self.calls: list[JudgeCall] = []

    def judge(self, image: PreparedImage, request: JudgeRequest) -> Judgment:
        """Never returns: raises `self.error`."""
        self.calls.append(JudgeCall(image, request))
        raise self.error.with_traceback(None)
