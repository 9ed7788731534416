"""Triage: a policy applied to a detection. Pure and deterministic; no I/O.

Each label is matched to the most specific rule the policy has for it (its own category, else its
parent, else its grandparent, else `default`) and falls into a band. The aggregate action is
reject if any label is rejected, else review if any is, else escalate if any is, else approve.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from moderation.detection import Detection, Label
from moderation.policy._model import (
    CONTENT_TYPES,
    Band,
    CategoryRule,
    ContentTypeName,
    Policy,
    Thresholds,
)
from moderation.taxonomy import TAXONOMY, normalize

__all__ = [
    "Action",
    "CompiledPolicy",
    "Finding",
    "Matched",
    "Triage",
    "compiled",
    "evaluate",
    "lineage",
]


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


# Triage runs once per label of every decision, and replay runs it on millions of recorded ones:
# the pure name lookups below are cached. They depend on the name alone (the taxonomy is a
# constant), so a cache cannot change an answer; bounded, so a hostile log cannot grow them.
_CACHE_SIZE = 4096


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _key(name: str) -> str:
    return normalize(name)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _known_lineage(name: str) -> tuple[str, ...] | None:
    """A taxonomy name's canonical spelling and its ancestors, nearest first; None if unknown."""
    if name not in TAXONOMY:
        return None
    canonical = TAXONOMY.canonical(name)
    assert canonical is not None
    return (canonical, *TAXONOMY.ancestors(canonical))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _legacy_parent(name: str) -> str | None:
    return TAXONOMY.legacy_parent(name)


def lineage(label: Label, parents: Mapping[str, str | None]) -> tuple[str, ...]:
    """The label and its ancestors, nearest first, as names a policy may have rules for.

    Known names take the taxonomy's tree. Unknown ones (newer than our taxonomy, or from 6.1) follow
    the response's own ParentName links until a known or 6.1 name joins the tree.
    """
    known = _known_lineage(label.name)
    if known is not None:
        return known
    chain = [label.name]
    current: str | None = label.name
    seen = {_key(label.name)}
    while current is not None:
        mapped = _legacy_parent(current)
        if mapped is not None:
            return (*chain, mapped, *TAXONOMY.ancestors(mapped))
        nxt = label.parent if current == label.name else parents.get(_key(current))
        if nxt is None or _key(nxt) in seen:
            break
        seen.add(_key(nxt))
        joined = _known_lineage(nxt)
        if joined is not None:
            return (*chain, *joined)
        chain.append(nxt)
        current = nxt
    return tuple(chain)


def _content_types(policy: Policy, detection: Detection) -> list[tuple[float, ContentTypeName]]:
    found: list[tuple[float, ContentTypeName]] = []
    for ct in detection.content_types:
        key = _key(ct.name)
        for name in CONTENT_TYPES:
            if key == name and ct.confidence >= policy.content_type_min_confidence:
                found.append((ct.confidence, name))
    # Most confident first; among equals, the name order is fixed so triage stays deterministic.
    return sorted(found, key=lambda item: (-item[0], item[1]))


def _kind_names(policy: Policy, detection: Detection) -> tuple[ContentTypeName, ...]:
    """The names of `_content_types`, in its order."""
    found = detection.content_types
    if len(found) == 1:  # what Rekognition sends, when it sends one: nothing to sort
        kind = found[0]
        if kind.confidence < policy.content_type_min_confidence:
            return ()
        key = _key(kind.name)
        return tuple(name for name in CONTENT_TYPES if name == key)
    return tuple(kind for _, kind in _content_types(policy, detection))


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
    keys = {_key(name) for name in chain[1:]}
    seen = {_key(label.name)}
    current = label.parent
    while current is not None:
        key = _key(current)
        if key in seen:
            break
        seen.add(key)
        keys.add(key)
        current = parents.get(key)
    keys.discard(_key(label.name))
    return frozenset(keys)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _follows_taxonomy(name: str, parent: str | None) -> bool:
    """True for a known label that names its taxonomy parent (or none, at the top level)."""
    category = TAXONOMY.lookup(name)
    if category is None:
        return False
    if parent is None or category.parent is None:
        return parent is None and category.parent is None
    return _key(parent) == _key(category.parent)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _taxonomy_ancestor_keys(name: str) -> frozenset[str]:
    return frozenset(_key(ancestor) for ancestor in TAXONOMY.ancestors(name))


@functools.cache
def _taxonomy_parents() -> frozenset[str]:
    """The keys of the taxonomy's categories that have a category below them."""
    return frozenset(key for name in TAXONOMY.names() for key in _taxonomy_ancestor_keys(name))


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _profile(name: str, parent: str | None) -> tuple[tuple[str, ...], str, bool, frozenset[str]]:
    """For a label: its lineage when known (else just its name), its key, whether it is known
    and names its taxonomy parent, and its taxonomy ancestors' keys. What `CompiledPolicy.action`
    needs of a label, in one lookup."""
    known = _known_lineage(name)
    return (
        known if known is not None else (name,),
        _key(name),
        known is not None and _follows_taxonomy(name, parent),
        _taxonomy_ancestor_keys(name),
    )


def _rank(confidence: float, plan: _Plan) -> int:
    """The rank of the band `confidence` falls in by a label's `_plan` (as `action` works it out
    inline): its bounds tried as `Thresholds.band` tries them, reject first."""
    if confidence >= plan[1]:
        return 3
    if confidence >= plan[2]:
        return 2
    return 1 if confidence >= plan[3] else 0


def _covered(
    label: Label, key: str, labels: tuple[Label, ...], plans: list[_Plan], floor: float
) -> bool:
    """True when a label of `labels` at or above `floor` (the policy's min_confidence) descends
    from `label` (whose key is `key`) by the taxonomy and is at least as confident (`_covering`,
    for labels that all follow the taxonomy)."""
    confidence = label.confidence
    for other, plan in zip(labels, plans, strict=True):
        if (
            key in plan[5]
            and other.confidence >= floor
            and _no_more_confident(confidence, other.confidence)
        ):
            return True
    return False


def _ancestry(
    labels: tuple[Label, ...],
) -> tuple[list[tuple[str, ...]], list[str], list[frozenset[str]]]:
    """Each label's lineage, normalised name and ancestors' keys (`_ancestor_keys`).

    When every label of the response is known and names its taxonomy parent (what Rekognition
    7.0 sends), the response's ParentName links only retrace the taxonomy's tree, so all three
    are the taxonomy's: one cached `_profile` per label instead of a walk per label.
    """
    profiles = [_profile(label.name, label.parent) for label in labels]
    if all(profile[2] for profile in profiles):
        return (
            [profile[0] for profile in profiles],
            [profile[1] for profile in profiles],
            [profile[3] for profile in profiles],
        )
    parents = {_key(label.name): label.parent for label in labels}
    lineages = [lineage(label, parents) for label in labels]
    ancestors = [
        _ancestor_keys(label, chain, parents) for label, chain in zip(labels, lineages, strict=True)
    ]
    return lineages, [_key(label.name) for label in labels], ancestors


def _covering(
    labels: tuple[Label, ...], keys: list[str], ancestors: list[frozenset[str]]
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
    # keys[i]: label i's normalised name; ancestors[i]: the keys of its ancestors (`_ancestry`).
    # candidates[i]: labels that may cover label i (its descendants, at least as confident).
    candidates: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        key = keys[i]
        for j, other in enumerate(labels):
            if (
                i != j
                and key in ancestors[j]
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


# One label's verdict before it becomes a Finding: rule name, how it matched, the thresholds,
# their content type, the band and the note.
_Row = tuple[str, Matched, Thresholds, ContentTypeName | None, Band, str | None]
_Match = tuple[CategoryRule, Matched] | None
# What `CompiledPolicy.action` needs of one label that follows the taxonomy (see `_plan`): its
# parent; the bounds of reject, review and escalate (`_bounds`); its key, its taxonomy ancestors'
# keys, and whether it can be covered.
_Plan = tuple[str | None, float, float, float, str, frozenset[str], bool]
_Kinds = tuple[ContentTypeName, ...]


class CompiledPolicy:
    """A policy with its rule lookups cached: the one triage. `evaluate(policy, detection)` is
    `compiled(policy).evaluate(detection)`; `action()` answers as `evaluate().action` does,
    without building the findings (replay's fast path).

    Which rule a lineage of names matches depends on the policy and the names alone, so it is
    worked out once per lineage (at most a few thousand are kept). Get one with `compiled(policy)`:
    the engine, its shadows, replay and the tuner then share one per policy object.
    """

    __slots__ = ("_floor", "_matches", "_plans", "_resolved", "policy")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._matches: dict[tuple[str, ...], _Match] = {}
        self._resolved: dict[
            tuple[tuple[str, ...], tuple[ContentTypeName, ...]],
            tuple[str, Matched, Thresholds, ContentTypeName | None],
        ] = {}
        self._plans: dict[_Kinds, dict[str, _Plan]] = {}
        self._floor = policy.min_confidence

    def _match(self, chain: tuple[str, ...]) -> _Match:
        """The most specific rule for a lineage, and how it matched; None: the default rule."""
        try:
            return self._matches[chain]
        except KeyError:
            pass
        found: _Match = None
        for depth, name in enumerate(chain):
            rule = self.policy.rule_for(name)
            if rule is not None:
                found = (rule, _MATCHED[depth] if depth < len(_MATCHED) else "ancestor")
                break
        if len(self._matches) < _CACHE_SIZE:
            self._matches[chain] = found
        return found

    def _rows(self, detection: Detection, kinds: list[tuple[float, ContentTypeName]]) -> list[_Row]:
        """Each label's row. A label below the policy's min_confidence (in a detection asked from
        a lower minimum: a shadow's, a cached or a replayed one) is only noted as such: the
        others are judged as if it were not there, as they would be in a detection asked from
        the policy's minimum, which never holds it (so it covers none of them)."""
        labels = detection.labels
        floor = self.policy.min_confidence
        kind_names = tuple(kind for _, kind in kinds)
        if all(label.confidence >= floor for label in labels):
            return self._judged(labels, kind_names)
        judged = iter(self._judged(tuple(x for x in labels if x.confidence >= floor), kind_names))
        lineages = _ancestry(labels)[0]
        note = f"below the policy's min_confidence {floor:g}"
        rows: list[_Row] = []
        for label, chain in zip(labels, lineages, strict=True):
            if label.confidence >= floor:
                rows.append(next(judged))
            else:
                rule_name, matched, thresholds, content_type = self._resolve(chain, kind_names)
                rows.append((rule_name, matched, thresholds, content_type, Band.IGNORE, note))
        return rows

    def _judged(
        self, labels: tuple[Label, ...], kind_names: tuple[ContentTypeName, ...]
    ) -> list[_Row]:
        """The rows of `labels`, all at or above the policy's min_confidence."""
        lineages, keys, ancestors = _ancestry(labels)
        covered = _covering(labels, keys, ancestors) if len(labels) > 1 else {}
        rows: list[_Row] = []
        for i, label in enumerate(labels):
            rule_name, matched, thresholds, content_type = self._resolve(lineages[i], kind_names)
            note = None
            if i in covered:
                band = Band.IGNORE
                note = f"covered by the more specific label '{covered[i][0]}'"
            else:
                band = thresholds.band(label.confidence)
            rows.append((rule_name, matched, thresholds, content_type, band, note))
        return rows

    def action(self, detection: Detection) -> Action:
        """`evaluate(detection).action`, without building the findings.

        The fast path takes responses whose labels are all known and name their taxonomy parents
        (what Rekognition 7.0 sends); others go the way `evaluate` goes. Covering can only take a
        label down to ignore, so bands come first, and covering is only looked at when the
        highest band was reached by labels something could cover. What a label needs is looked
        up once per (content types, name): `_plan`.
        """
        labels = detection.labels
        kinds = _kind_names(self.policy, detection) if detection.content_types else ()
        plans = self._plans.get(kinds)
        if plans is None:  # one per combination of content types: a handful at most
            plans = self._plans[kinds] = {}
        worst = 0
        settled = True  # the highest band so far was reached by a label nothing can cover
        for label in labels:
            # A model's attribute costs several dict look-ups (pydantic's __getattr__ hook keeps
            # Python from specialising it): three fields of every label are read here.
            fields = label.__dict__
            plan = plans.get(fields["name"])
            if plan is None or plan[0] != fields["parent"]:
                plan = self._plan(plans, label.name, label.parent, kinds)
                if plan is None:  # a label off the taxonomy's tree
                    rows = self._rows(detection, _content_types(self.policy, detection))
                    return _ACTION_BY_RANK[max((_BAND_RANK[row[4]] for row in rows), default=0)]
            # `_rank`, inline: the bounds hold the policy's min_confidence already.
            confidence = fields["confidence"]
            if confidence >= plan[1]:
                rank = 3
            elif confidence >= plan[2]:
                rank = 2
            elif confidence >= plan[3]:
                rank = 1
            else:
                continue
            if rank > worst:
                worst, settled = rank, not plan[6]
            elif rank == worst and not plan[6]:
                settled = True
        if settled or len(labels) == 1:
            return _ACTION_BY_RANK[worst]
        return self._uncovered(labels, plans, kinds, worst)

    def _uncovered(
        self, labels: tuple[Label, ...], plans: dict[str, _Plan], kinds: _Kinds, worst: int
    ) -> Action:
        """The action of `labels`, which all follow the taxonomy, whose highest band `worst` was
        reached only by labels a descendant might cover.

        Ancestry is then a tree: no two labels are each other's ancestor, and every chain of
        covering ends at a label with no descendant in the response. `_covering` then covers a
        label exactly when some descendant is at least as confident (float noise aside). The
        action is the highest band of a label not covered: the highest bands are looked at
        first, and the first label not covered decides.
        """
        floor = self._floor
        steps: list[_Plan] = []
        ranks: list[int] = []
        for label in labels:
            plan = plans.get(label.name)
            if plan is None or plan[0] != label.parent:
                plan = self._plan(plans, label.name, label.parent, kinds)
                assert plan is not None  # as `action` found
            steps.append(plan)
            ranks.append(_rank(label.confidence, plan))
        while worst:
            for label, plan, rank in zip(labels, steps, ranks, strict=True):
                if rank == worst and not (
                    plan[6] and _covered(label, plan[4], labels, steps, floor)
                ):
                    return _ACTION_BY_RANK[worst]
            worst -= 1
        return _ACTION_BY_RANK[0]

    def _plan(
        self, plans: dict[str, _Plan], name: str, parent: str | None, kinds: _Kinds
    ) -> _Plan | None:
        """What `action` needs of a label with this name and parent, in an image of these
        content types (kept in `plans`, those of `kinds`): the parent, the label's bounds, its
        key, its taxonomy ancestors' keys, and whether a category of the taxonomy descends from
        it (a label that has none is never covered in a response that follows the taxonomy).
        None for a label that does not follow the taxonomy (unknown, or naming another parent).
        """
        chain, key, follows, ancestors = _profile(name, parent)
        if not follows:
            return None
        plan = (parent, *self._bounds(chain, kinds), key, ancestors, key in _taxonomy_parents())
        if name not in plans and len(plans) < _CACHE_SIZE:
            plans[name] = plan
        return plan

    def _resolve(
        self, chain: tuple[str, ...], kinds: tuple[ContentTypeName, ...]
    ) -> tuple[str, Matched, Thresholds, ContentTypeName | None]:
        """For a lineage and the image's content types (most confident first): the rule's name,
        how it matched, its thresholds and the content type they are for."""
        try:
            return self._resolved[chain, kinds]
        except KeyError:
            pass
        found = self._match(chain)
        resolved: tuple[str, Matched, Thresholds, ContentTypeName | None]
        resolved = ("default", "default", self.policy.default, None)
        if found is not None:
            rule, matched = found
            resolved = (rule.name, matched, rule.thresholds, None)
            for kind in kinds:
                if getattr(rule, kind) is not None:
                    resolved = (rule.name, matched, rule.for_content(kind), kind)
                    break
        if len(self._resolved) < _CACHE_SIZE:
            self._resolved[chain, kinds] = resolved
        return resolved

    def _bounds(
        self, chain: tuple[str, ...], kinds: tuple[ContentTypeName, ...]
    ) -> tuple[float, float, float]:
        """The bounds of reject, review and escalate for a lineage and the image's content types:
        the confidence from which a label is in that band when the bands before it did not take
        it (`Thresholds.band`), raised to the policy's min_confidence (a label below it is in
        none); infinity for a band the thresholds do not have, or all three for `allow`. (Kept
        with the label's `_plan`, so worked out once per content types and name.)"""
        thresholds = self._resolve(chain, kinds)[2]
        floor = self._floor
        if thresholds.allow or math.isnan(floor):  # NaN: no label is at or above it
            return (math.inf, math.inf, math.inf)
        reject, review, escalate = (
            math.inf if bound is None else max(bound, floor)
            for bound in (thresholds.reject, thresholds.review, thresholds.escalate)
        )
        return reject, review, escalate

    def evaluate(self, detection: Detection) -> Triage:
        """This policy applied to `detection`: see the module's `evaluate`."""
        kinds = _content_types(self.policy, detection)
        rows = self._rows(detection, kinds)
        # One validation for the triage and all its findings: pydantic-core builds the findings
        # itself, a third faster than one `Finding(...)` call each (and `model_construct`, in
        # Python, is slower still).
        findings = [
            {
                "label": label.name,
                "parent": label.parent,
                "level": label.level,
                "confidence": label.confidence,
                "rule": rule_name,
                "matched": matched,
                "content_type": content_type,
                "thresholds": thresholds,
                "band": band,
                "note": note,
            }
            for label, (rule_name, matched, thresholds, content_type, band, note) in zip(
                detection.labels, rows, strict=True
            )
        ]
        worst = max((_BAND_RANK[row[4]] for row in rows), default=0)
        return Triage.model_validate(
            {
                "action": _ACTION_BY_RANK[worst],
                "findings": findings,
                "content_types": tuple(kind for _, kind in kinds),
            }
        )


_ACTION_BY_RANK = {rank: _ACTION_OF[band] for band, rank in _BAND_RANK.items()}


def compiled(policy: Policy) -> CompiledPolicy:
    """`policy`'s CompiledPolicy, made on the first call and kept with the policy object, so
    that its rule lookups are worked out once per policy, not once per detection."""
    # Kept in the instance's __dict__, as functools.cached_property keeps `Policy.sha256` (the
    # policy model cannot name this module: triage imports it). A copy of the policy carries the
    # entry along, so it is only used for the very object it was made for.
    found = policy.__dict__.get(_COMPILED)
    if isinstance(found, CompiledPolicy) and found.policy is policy:
        return found
    made = CompiledPolicy(policy)
    policy.__dict__[_COMPILED] = made
    return made


_COMPILED = "_compiled_policy"


def evaluate(policy: Policy, detection: Detection) -> Triage:
    """Apply `policy` to `detection`: a finding per label and the aggregate action.

    Note: a label that is only the ancestor of a more specific label in the same response (as
    confident or less, float noise aside) is covered by it and ignored, so that a rule for
    `Kissing on the Lips` is not overridden by the rule for its parent category, which
    Rekognition reports alongside. Ancestry is the taxonomy's or the response's own ParentName
    links (a 6.x `Suggestive` is covered by its child `Female Swimwear Or Underwear`). An ancestor
    more confident than all its reported descendants is judged on its own (see `_covering`).
    The rule lookups are `compiled(policy)`'s, kept from one call to the next.
    """
    return compiled(policy).evaluate(detection)
