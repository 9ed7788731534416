"""The compiled triage path replay uses gives exactly what `evaluate()` gave before it existed.

The oracle below is `moderation.triage.evaluate` as it was before the compiled path (and its
caches) were added, copied verbatim but for names and one fix: a label below the policy's
min_confidence (in a detection asked from a lower minimum) is judged as absent from the response,
so it covers nothing (before, a child at 49.999 covered its parent at 50 under a minimum of 50,
and the parent escalated only where Rekognition had been asked from 50). `CompiledPolicy.action`,
`.evaluate` and the module's `evaluate` must agree with it on every generated policy and
detection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from profiles import examples

from moderation.detection import ContentType, Detection, Label
from moderation.policy import Band, ContentTypeName, Policy, PolicyStore
from moderation.policy._model import CONTENT_TYPES
from moderation.taxonomy import TAXONOMY, normalize
from moderation.triage import (
    _ACTION_OF,
    _BAND_RANK,
    _MATCHED,
    Action,
    CompiledPolicy,
    Finding,
    Triage,
    evaluate,
)

# --------------------------------------------------------------------------- the oracle


def old_lineage(label: Label, parents: Mapping[str, str | None]) -> tuple[str, ...]:
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


def old_content_types(policy: Policy, detection: Detection) -> list[tuple[float, ContentTypeName]]:
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


def old_no_more_confident(ancestor: float, descendant: float) -> bool:
    return ancestor <= descendant or math.isclose(
        ancestor, descendant, rel_tol=_COVER_REL_TOL, abs_tol=_COVER_ABS_TOL
    )


def old_ancestor_keys(
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


def old_covering(
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
        old_ancestor_keys(label, chain, parents)
        for label, chain in zip(labels, lineages, strict=True)
    ]
    # candidates[i]: labels that may cover label i (its descendants, at least as confident).
    candidates: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        for j, other in enumerate(labels):
            if (
                i != j
                and keys[i] in ancestors[j]
                and keys[j] not in ancestors[i]
                and old_no_more_confident(label.confidence, other.confidence)
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


def old_evaluate(policy: Policy, detection: Detection) -> Triage:
    """Apply `policy` to `detection`: a finding per label and the aggregate action.

    Note: a label that is only the ancestor of a more specific label in the same response (as
    confident or less, float noise aside) is covered by it and ignored, so that a rule for
    `Kissing on the Lips` is not overridden by the rule for its parent category, which
    Rekognition reports alongside. Ancestry is the taxonomy's or the response's own ParentName
    links (a 6.x `Suggestive` is covered by its child `Female Swimwear Or Underwear`). An ancestor
    more confident than all its reported descendants is judged on its own (see `_covering`).
    """
    parents = {normalize(label.name): label.parent for label in detection.labels}
    kinds = old_content_types(policy, detection)
    lineages = [old_lineage(label, parents) for label in detection.labels]
    # The fix: labels below the minimum are left out of the response the others are judged in.
    kept = [i for i, x in enumerate(detection.labels) if x.confidence >= policy.min_confidence]
    sent = Detection(labels=tuple(detection.labels[i] for i in kept))
    sent_parents = {normalize(label.name): label.parent for label in sent.labels}
    sent_lineages = [old_lineage(label, sent_parents) for label in sent.labels]
    for i, chain in zip(kept, sent_lineages, strict=True):
        lineages[i] = chain
    covering = old_covering(sent, sent_lineages, sent_parents)
    covered = {kept[i]: cover for i, cover in covering.items()}
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


# --------------------------------------------------------------------------- strategies

SETTINGS = settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NAMES = TAXONOMY.names()
UNKNOWN = ["Brand New Label", "Graphic Male Nudity", "Revealing Clothes", "Suggestive", "Drugs"]
confidences = st.one_of(
    st.floats(0, 100, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 30.0, 40.0, 49.999, 50.0, 60.0, 80.0, 80.005, 95.0, 100.0]),
)


@st.composite
def bands(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 5)) == 0:
        return "allow"
    low, mid, high = sorted(draw(st.lists(confidences, min_size=3, max_size=3)))
    keys = draw(
        st.lists(st.sampled_from(["escalate", "review", "reject"]), min_size=1, unique=True)
    )
    values = {"escalate": low, "review": mid, "reject": high}
    return {k: values[k] for k in sorted(keys)}


@st.composite
def rules(draw: st.DrawFn) -> Any:
    rule = draw(bands())
    if rule != "allow":
        for kind in CONTENT_TYPES:
            if draw(st.integers(0, 2)) == 0:
                rule[kind] = draw(bands())
    return rule


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    document = {
        "id": "default",
        "min_confidence": draw(st.sampled_from([0, 30, 40, 50])),
        "content_type_min_confidence": draw(st.sampled_from([0, 50, 80])),
        "default": draw(bands()),
        "categories": draw(st.dictionaries(st.sampled_from(NAMES), rules(), max_size=12)),
    }
    return PolicyStore.from_sources({"default": yaml.safe_dump(document)}).get("default")


@st.composite
def labels(draw: st.DrawFn) -> list[Label]:
    """A label, often with its taxonomy ancestors at the same confidence or near it (as
    Rekognition reports them), sometimes with a parent the taxonomy disagrees with."""
    name = draw(st.sampled_from(NAMES + UNKNOWN))
    confidence = draw(confidences)
    ancestors = TAXONOMY.ancestors(name)
    parent = ancestors[0] if ancestors else None
    how = draw(st.integers(0, 9))
    if how == 0:
        parent = draw(st.sampled_from([None, "Violence", "Suggestive", "Explicit", name]))
    level = TAXONOMY.level(name) or (2 if parent else 1)
    found = [Label(name=name, parent=parent, level=level, confidence=confidence)]
    if how >= 5:  # the ancestors too, at the same confidence give or take noise
        for i, ancestor in enumerate(ancestors):
            above = ancestors[i + 1] if i + 1 < len(ancestors) else None
            noise = draw(st.sampled_from([0.0, 0.004, -0.004, 5.0, -5.0]))
            found.append(
                Label(
                    name=ancestor,
                    parent=above,
                    level=TAXONOMY.level(ancestor) or 1,
                    confidence=min(100.0, max(0.0, confidence + noise)),
                )
            )
    return found


@st.composite
def detections(draw: st.DrawFn) -> Detection:
    found = [x for group in draw(st.lists(labels(), max_size=5)) for x in group]
    found = draw(st.permutations(found))
    kinds = draw(
        st.dictionaries(st.sampled_from(["Animated", "Illustrated", "Other"]), confidences)
    )
    return Detection(
        labels=tuple(found),
        content_types=tuple(ContentType(name=n, confidence=c) for n, c in kinds.items()),
    )


# --------------------------------------------------------------------------- properties


@pytest.mark.slow
@SETTINGS
@given(policies(), st.lists(detections(), min_size=1, max_size=6))
def test_the_compiled_path_answers_as_evaluate_did(policy: Policy, found: list[Detection]) -> None:
    compiled = CompiledPolicy(policy)  # one per policy, its caches warmed across detections
    for detection in found:
        expected = old_evaluate(policy, detection)
        assert compiled.action(detection) is expected.action
        assert compiled.evaluate(detection) == expected
        assert evaluate(policy, detection) == expected


def test_the_oracle_is_not_vacuous() -> None:
    """The property above compares real triage: a covered parent, a band and a content type."""
    policy = PolicyStore.from_sources(
        {
            "default": "id: default\nmin_confidence: 40\ndefault: {reject: 90, escalate: 60}\n"
            "categories:\n  Kissing on the Lips: allow\n"
            "  Violence: {reject: 95, escalate: 60, illustrated: {reject: 99}}\n"
        }
    ).get("default")
    kiss = Detection(
        labels=(
            Label(name="Kissing on the Lips", parent=TAXONOMY.ancestors("Kissing on the Lips")[0],
                  level=2, confidence=97.0),
            Label(name="Non-Explicit Nudity of Intimate parts and Kissing", level=1,
                  confidence=97.0),
        )
    )  # fmt: skip
    assert old_evaluate(policy, kiss).action is Action.APPROVE  # the parent is covered
    assert CompiledPolicy(policy).action(kiss) is Action.APPROVE
    violence = Detection(
        labels=(Label(name="Violence", level=1, confidence=96.0),),
        content_types=(ContentType(name="Illustrated", confidence=90.0),),
    )
    assert old_evaluate(policy, violence).action is Action.APPROVE  # illustrated: reject 99 only
    assert CompiledPolicy(policy).action(violence) is Action.APPROVE
    assert CompiledPolicy(policy).action(violence.model_copy(update={"content_types": ()})) is (
        Action.REJECT
    )
