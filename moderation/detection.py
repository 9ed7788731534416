"""What a detector saw, independent of the provider: labels, content types, model version."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from moderation.errors import DetectionParseError
from moderation.taxonomy import TAXONOMY, normalize

__all__ = ["ContentType", "Detection", "Label", "select_frames"]


def select_frames(n_frames: int, max_frames: int) -> list[int]:
    """Up to `max_frames` frame indices spread evenly over `n_frames`, first and last included:
    round(i * (n - 1) / (k - 1)) for i in 0..k-1 (Python's round, halves to even)."""
    if n_frames <= 1 or max_frames <= 1:
        return [0]
    if max_frames >= n_frames:
        return list(range(n_frames))
    last, steps = n_frames - 1, max_frames - 1
    return sorted({round(i * last / steps) for i in range(max_frames)})


class Label(BaseModel):
    """One moderation label as reported: name, parent (None at the top), level 1-3, confidence."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    name: str
    parent: str | None = None
    level: int
    confidence: float


class ContentType(BaseModel):
    """What kind of picture it is (`Animated`, `Illustrated`), with the detector's confidence."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    name: str
    confidence: float


class Detection(BaseModel):
    """Everything the detector reported for one image, enough to re-run triage later."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    provider: str = "rekognition"
    model_version: str | None = None
    min_confidence: float | None = None
    project_version: str | None = None
    labels: tuple[Label, ...] = ()
    content_types: tuple[ContentType, ...] = ()
    latency_ms: float | None = None
    # For an animation: the 0-based index of the (first) frame of each image whose labels are
    # combined here, in the order they were sent (one detector call each; an image may be a
    # contact sheet of several frames, docs/images.md). Empty for a still image.
    frames: tuple[int, ...] = ()
    # True when this detection was not asked for this decision but reused from the dedupe cache
    # (the same image, by sha256, with the same detector settings, was detected before): it cost
    # nothing and `latency_ms` is the original call's.
    cached: bool = False

    def misses(
        self,
        *,
        min_confidence: float,
        max_frames: int,
        n_frames: int,
        looked_at: Iterable[int] | None = None,
    ) -> bool:
        """True when a policy asking for labels from `min_confidence` on up to `max_frames` of the
        image's `n_frames` frames may act on what this detection does not hold.

        That is: the policy asks for less confident labels than the detector was asked for
        (labels between the two never arrived), or it would look past the first frame of an
        animation that was judged on its first frame alone. Intake chooses frames by content
        (docs/images.md): a detection made with more than one frame allowed was shown every scene
        of the animation, whatever `max_frames` was, so only first-frame-only detections miss
        frames. `looked_at`: the frames known to have been looked at; by default `frames` (the
        first frame when none are listed).
        """
        if self.min_confidence is not None and min_confidence < self.min_confidence:
            return True
        if n_frames <= 1 or max_frames <= 1:
            return False
        seen = set(self.frames if looked_at is None else looked_at)
        return seen <= {0}

    @classmethod
    def combine(cls, parts: Sequence[tuple[int, Detection]]) -> Detection:
        """One detection for an animation from one per frame: `(frame index, detection)` pairs.

        Each label keeps its most confident report across the frames (an explicit frame makes the
        animation explicit, whatever the others show); content types likewise. Latency is the sum
        of the calls. Raises ValueError for no parts.
        """
        if not parts:
            raise ValueError("Detection.combine needs at least one frame's detection")
        labels: dict[str, Label] = {}
        kinds: dict[str, ContentType] = {}
        for _, part in parts:
            for label in part.labels:
                key = normalize(label.name)
                if key not in labels or label.confidence > labels[key].confidence:
                    labels[key] = label
            for kind in part.content_types:
                key = normalize(kind.name)
                if key not in kinds or kind.confidence > kinds[key].confidence:
                    kinds[key] = kind
        latencies = [p.latency_ms for _, p in parts]
        first = parts[0][1]
        return first.model_copy(
            update={
                "labels": tuple(labels.values()),
                "content_types": tuple(kinds.values()),
                "latency_ms": None if None in latencies else sum(x for x in latencies if x),
                "frames": tuple(index for index, _ in parts),
            }
        )

    @classmethod
    def from_rekognition(
        cls,
        response: Any,
        *,
        min_confidence: float | None = None,
        latency_ms: float | None = None,
    ) -> Detection:
        """Parse a `DetectModerationLabels` response, 7.0 or older; raises if it is malformed."""
        if not isinstance(response, Mapping):
            raise DetectionParseError(
                f"a DetectModerationLabels response is a JSON object, got {type(response).__name__}"
            )
        raw_labels = response.get("ModerationLabels")
        if not isinstance(raw_labels, Sequence) or isinstance(raw_labels, str | bytes):
            raise DetectionParseError(
                "ModerationLabels: missing or not a list; this is not a DetectModerationLabels "
                "response"
            )
        parsed = [_parse_label(item, i) for i, item in enumerate(raw_labels)]
        parents = {normalize(name): parent for name, parent, _, _ in parsed}
        labels = tuple(
            Label(
                name=name,
                parent=parent,
                level=level if level is not None else _derive_level(name, parent, parents),
                confidence=confidence,
            )
            for name, parent, level, confidence in parsed
        )
        content_types = tuple(
            _parse_content_type(item, i) for i, item in enumerate(_list(response, "ContentTypes"))
        )
        return cls(
            provider="rekognition",
            model_version=_optional_str(response, "ModerationModelVersion"),
            min_confidence=min_confidence,
            project_version=_optional_str(response, "ProjectVersion"),
            labels=labels,
            content_types=content_types,
            latency_ms=latency_ms,
        )


def _list(response: Mapping[str, Any], key: str) -> Sequence[Any]:
    value = response.get(key)
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise DetectionParseError(f"{key}: must be a list, got {type(value).__name__}")
    return value


def _optional_str(response: Mapping[str, Any], key: str) -> str | None:
    value = response.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DetectionParseError(f"{key}: must be text, got {value!r}")
    return value


def _confidence(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DetectionParseError(f"{where}: must be a number from 0 to 100, got {value!r}")
    # The range check first: it is False for NaN and infinities, and math.isfinite would raise
    # OverflowError on an int too large for a float (json.loads makes those from long literals).
    if not 0 <= value <= 100 or not math.isfinite(value):
        raise DetectionParseError(f"{where}: must be a number from 0 to 100, got {value!r}")
    return float(value)


def _parse_label(item: Any, i: int) -> tuple[str, str | None, int | None, float]:
    where = f"ModerationLabels[{i}]"
    if not isinstance(item, Mapping):
        raise DetectionParseError(f"{where}: must be an object, got {type(item).__name__}")
    name = item.get("Name")
    if not isinstance(name, str) or not name.strip():
        raise DetectionParseError(f"{where}.Name: must be non-empty text, got {name!r}")
    confidence = _confidence(item.get("Confidence"), f"{where}.Confidence")
    parent: str | None
    if "ParentName" in item:
        raw_parent = item["ParentName"]
        if raw_parent is not None and not isinstance(raw_parent, str):
            raise DetectionParseError(f"{where}.ParentName: must be text, got {raw_parent!r}")
        parent = raw_parent or None  # Rekognition says "" at the top level
    else:
        ancestors = TAXONOMY.ancestors(name)
        parent = ancestors[0] if ancestors else None
    level = item.get("TaxonomyLevel")
    # Strictly an int: `2.0 in (1, 2, 3)` is True, and a bool is an int to Python.
    if level is not None and (type(level) is not int or level not in (1, 2, 3)):
        raise DetectionParseError(
            f"{where}.TaxonomyLevel: must be the integer 1, 2 or 3, got {level!r}"
        )
    return name, parent, level, confidence


def _derive_level(name: str, parent: str | None, parents: Mapping[str, str | None]) -> int:
    """1 plus the label's ancestors, counted along the response's own ParentName links.

    Responses before taxonomy 7.0 carry no TaxonomyLevel, and their tree is not 7.0's: 6.x puts
    `Weapon Violence` directly under `Violence` (level 2, where 7.0 has it at level 3). A parent
    the response does not report is placed by the taxonomy when it knows the name, else taken as
    top level. A cycle of links ends the count; the result is capped at 3.
    """
    level, current, seen = 1, parent, {normalize(name)}
    while current is not None:
        key = normalize(current)
        if key in seen:
            break
        seen.add(key)
        if key in parents:
            level += 1
            current = parents[key]
        else:
            level += TAXONOMY.level(current) or 1
            break
    return min(level, 3)


def _parse_content_type(item: Any, i: int) -> ContentType:
    where = f"ContentTypes[{i}]"
    if not isinstance(item, Mapping):
        raise DetectionParseError(f"{where}: must be an object, got {type(item).__name__}")
    name = item.get("Name")
    if not isinstance(name, str) or not name:
        raise DetectionParseError(f"{where}.Name: must be non-empty text, got {name!r}")
    return ContentType(
        name=name, confidence=_confidence(item.get("Confidence"), f"{where}.Confidence")
    )
