"""Triage: a policy applied to a detection. Pure and deterministic; no I/O.

Each label is matched to the most specific rule the policy has for it (its own category, else its
parent, else its grandparent, else `default`) and falls into a band. The aggregate action is
reject if any label is rejected, else review if any is, else escalate if any is, else approve.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from moderation.detection import Detection, Label
from moderation.policy import Band, ContentTypeName, Policy, Thresholds
from moderation.policy._model import CONTENT_TYPES
from moderation.taxonomy import TAXONOMY, normalize

__all__ = ["Action", "Finding", "Matched", "Triage", "evaluate", "lineage"]


class Action(StrEnum):
    """What triage says should happen to the image."""

    APPROVE = "approve"
    REJECT = "reject"
    REVIEW = "review"
    ESCALATE = "escalate"


Matched = Literal["label", "parent", "grandparent", "ancestor", "default"]
_MATCHED: tuple[Matched, ...] = ("label", "parent", "grandparent")
_BAND_RANK = {Band.IGNORE: 0, Band.ESCALATE: 1, Band.REVIEW: 2, Band.REJECT: 3}
_ACTION_OF = {
    Band.IGNORE: Action.APPROVE,
    Band.ESCALATE: Action.ESCALATE,
    Band.REVIEW: Action.REVIEW,
    Band.REJECT: Action.REJECT,
}


class Finding(BaseModel):
    """One label, the rule that matched it, the thresholds applied and the band it fell in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    parent: str | None
    level: int
    confidence: float
    rule: str
    matched: Matched
    content_type: ContentTypeName | None = None
    thresholds: Thresholds
    band: Band
    note: str | None = None

    def describe(self) -> str:
        """A one-line human reason: `Violence 97.1% >= reject 95 (rule Violence, via parent)`."""
        if self.note:
            return f"{self.label} {self.confidence:.1f}%: {self.note}"
        bound = (
            getattr(self.thresholds, self.band.value, None) if self.band != Band.IGNORE else None
        )
        rule = "default rule" if self.rule == "default" else f"rule '{self.rule}'"
        via = f", matched by {self.matched}" if self.matched not in ("label", "default") else ""
        kind = f", {self.content_type} thresholds" if self.content_type else ""
        if bound is None:
            what = "allowed" if self.thresholds.allow else "below every threshold"
            return f"{self.label} {self.confidence:.1f}%: {what} ({rule}{via}{kind})"
        return f"{self.label} {self.confidence:.1f}% >= {self.band} {bound:g} ({rule}{via}{kind})"


class Triage(BaseModel):
    """The outcome of applying one policy to one detection, with a finding per label."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Action
    findings: tuple[Finding, ...] = ()
    content_types: tuple[ContentTypeName, ...] = ()

    @property
    def deciding(self) -> Finding | None:
        """The finding that set the action (highest band, then confidence); None on approve."""
        acting = [f for f in self.findings if f.band != Band.IGNORE]
        if not acting:
            return None
        return max(acting, key=lambda f: (_BAND_RANK[f.band], f.confidence, f.level, f.label))

    def at(self, band: Band) -> tuple[Finding, ...]:
        """The findings that fell in `band`, most confident first."""
        return tuple(
            sorted((f for f in self.findings if f.band == band), key=lambda f: -f.confidence)
        )


def lineage(label: Label, parents: Mapping[str, str | None]) -> tuple[str, ...]:
    """The label and its ancestors, nearest first, as names a policy may have rules for.

    Known names take the taxonomy's tree. Unknown ones (newer than our taxonomy, or from 6.1) follow
    the response's own ParentName links until a known or 6.1 name joins the tree.
    """
    if label.name in TAXONOMY:
        canonical = TAXONOMY.canonical(label.name)
        assert canonical is not None
        return (canonical, *TAXONOMY.ancestors(canonical))
    chain = [label.name]
    current: str | None = label.name
    seen = {normalize(label.name)}
    while current is not None:
        mapped = TAXONOMY.legacy_parent(current)
        if mapped is not None:
            return (*chain, mapped, *TAXONOMY.ancestors(mapped))
        nxt = label.parent if current == label.name else parents.get(normalize(current))
        if nxt is None or normalize(nxt) in seen:
            break
        seen.add(normalize(nxt))
        if nxt in TAXONOMY:
            canonical = TAXONOMY.canonical(nxt)
            assert canonical is not None
            return (*chain, canonical, *TAXONOMY.ancestors(canonical))
        chain.append(nxt)
        current = nxt
    return tuple(chain)


def _content_types(policy: Policy, detection: Detection) -> list[tuple[float, ContentTypeName]]:
    found: list[tuple[float, ContentTypeName]] = []
    for ct in detection.content_types:
        key = normalize(ct.name)
        for name in CONTENT_TYPES:
            if key == name and ct.confidence >= policy.content_type_min_confidence:
                found.append((ct.confidence, name))
    # Most confident first; among equals, the name order is fixed so triage stays deterministic.
    return sorted(found, key=lambda item: (-item[0], item[1]))


# Rekognition reports a parent and its child at the same confidence, give or take float noise
# (87.42389 against 87.42367): such a parent still counts as no more confident than the child.
_COVER_REL_TOL = 1e-6
_COVER_ABS_TOL = 0.01  # percentage points


def _no_more_confident(ancestor: float, descendant: float) -> bool:
    return ancestor <= descendant or math.isclose(
        ancestor, descendant, rel_tol=_COVER_REL_TOL, abs_tol=_COVER_ABS_TOL
    )


def _ancestor_keys(
    label: Label, chain: tuple[str, ...], parents: Mapping[str, str | None]
) -> frozenset[str]:
    """Normalised names of every ancestor of `label`: the taxonomy's and the response's own."""
    keys = {normalize(name) for name in chain[1:]}
    seen = {normalize(label.name)}
    current = label.parent
    while current is not None:
        key = normalize(current)
        if key in seen:
            break
        seen.add(key)
        keys.add(key)
        current = parents.get(key)
    keys.discard(normalize(label.name))
    return frozenset(keys)


def _covering(
    detection: Detection, lineages: list[tuple[str, ...]], parents: Mapping[str, str | None]
) -> dict[int, tuple[str, float]]:
    """For each covered label, the descendant that covers it (the most confident one settled).

    A label is covered by a descendant reported in the same response, where descendant means by
    the response's ParentName links or by the taxonomy tree, if it is no more confident than that
    descendant. Confidences within `_COVER_ABS_TOL` percentage points (or a relative
    `_COVER_REL_TOL`) of each other count as equal: they are one score with float noise.

    Fail-safe: two labels that are each other's ancestor (a garbled response, or one that
    contradicts the taxonomy) cover neither, and a label is only covered through a chain that
    ends at a label judged on its own, so no response can make every label ignore the others.
    """
    labels = detection.labels
    keys = [normalize(label.name) for label in labels]
    ancestors = [
        _ancestor_keys(label, chain, parents) for label, chain in zip(labels, lineages, strict=True)
    ]
    # candidates[i]: labels that may cover label i (its descendants, at least as confident).
    candidates: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        for j, other in enumerate(labels):
            if (
                i != j
                and keys[i] in ancestors[j]
                and keys[j] not in ancestors[i]
                and _no_more_confident(label.confidence, other.confidence)
            ):
                candidates.setdefault(i, []).append(j)
    decided = {i for i in range(len(labels)) if i not in candidates}
    covered: dict[int, tuple[str, float]] = {}
    progress = True
    while progress:
        progress = False
        for i, options in candidates.items():
            if i in decided:
                continue
            grounded = [j for j in options if j in decided]
            if grounded:
                best = max(grounded, key=lambda j: (labels[j].confidence, -j))
                covered[i] = (labels[best].name, labels[best].confidence)
                decided.add(i)
                progress = True
    return covered


def evaluate(policy: Policy, detection: Detection) -> Triage:
    """Apply `policy` to `detection`: a finding per label and the aggregate action.

    Note: a label that is only the ancestor of a more specific label in the same response (as
    confident or less, float noise aside) is covered by it and ignored, so that a rule for
    `Kissing on the Lips` is not overridden by the rule for its parent category, which
    Rekognition reports alongside. Ancestry is the taxonomy's or the response's own ParentName
    links (a 6.x `Suggestive` is covered by its child `Female Swimwear Or Underwear`). An ancestor
    more confident than all its reported descendants is judged on its own (see `_covering`).
    """
    parents = {normalize(label.name): label.parent for label in detection.labels}
    kinds = _content_types(policy, detection)
    lineages = [lineage(label, parents) for label in detection.labels]
    covered = _covering(detection, lineages, parents)
    findings: list[Finding] = []
    for i, label in enumerate(detection.labels):
        rule_name, matched, thresholds, content_type = "default", "default", policy.default, None
        for depth, name in enumerate(lineages[i]):
            rule = policy.rule_for(name)
            if rule is None:
                continue
            rule_name = rule.name
            matched = _MATCHED[depth] if depth < len(_MATCHED) else "ancestor"
            thresholds = rule.thresholds
            for _, kind in kinds:
                if getattr(rule, kind) is not None:
                    thresholds, content_type = rule.for_content(kind), kind
                    break
            break
        note = None
        if i in covered:
            band = Band.IGNORE
            note = f"covered by the more specific label '{covered[i][0]}'"
        elif label.confidence < policy.min_confidence:
            band = Band.IGNORE
            note = f"below the policy's min_confidence {policy.min_confidence:g}"
        else:
            band = thresholds.band(label.confidence)
        findings.append(
            Finding(
                label=label.name,
                parent=label.parent,
                level=label.level,
                confidence=label.confidence,
                rule=rule_name,
                matched=matched,
                content_type=content_type,
                thresholds=thresholds,
                band=band,
                note=note,
            )
        )
    worst = max((_BAND_RANK[f.band] for f in findings), default=0)
    band = next(b for b, rank in _BAND_RANK.items() if rank == worst)
    return Triage(
        action=_ACTION_OF[band],
        findings=tuple(findings),
        content_types=tuple(kind for _, kind in kinds),
    )
