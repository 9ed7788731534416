"""Each rule's traffic as the tuner sees it: the recorded decisions a rule alone decides, scored
by the rule's confidence, with the person's verdict where a usable label exists. Pure: no I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from moderation.decision import Decision, Outcome
from moderation.policy import Band, Policy
from moderation.review import Label, LabelKind
from moderation.review_sampling import qa_draw
from moderation.triage import Finding, compiled
from moderation.tuning._ltt import Item

__all__ = ["RuleTraffic", "collect", "sampling_rate"]

_COVERED = "covered by"


@dataclass(slots=True)
class RuleTraffic:
    """The images one rule alone decides, and what their labels are (`kinds`: qa, review,
    appeal (never used), none) and why other images of the rule were left out (`left_out`)."""

    rule: str
    items: list[Item] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    left_out: Counter[str] = field(default_factory=Counter)


def _usable(label: Label | None) -> tuple[bool | None, str]:
    """The verdict a label gives the tuner, and its kind: QA and review labels are used; an
    appeal is never a random sample, so it counts as no verdict."""
    if label is None:
        return None, "none"
    if label.kind is LabelKind.APPEAL:
        return None, "appeal"
    return label.harmful, label.kind.value


def _judged(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if not (f.note or "").startswith(_COVERED)]


def collect(
    decisions: Iterable[Decision],
    labels: Mapping[str, Label],
    policy: Policy,
    tenant: str,
    rules: Iterable[str],
) -> dict[str, RuleTraffic]:
    """For each of `rules` (category rule names of `policy`), the tenant's recorded decisions it
    alone would decide under `policy`: its findings are the image's only ones in a band, none of
    them under an animated/illustrated override (whose thresholds the tuner leaves alone). The
    score is the rule's highest confidence in the image. Decisions without a detection, of
    another tenant or made under the default policy for want of the tenant's are skipped."""
    triage = compiled(policy)
    traffic = {rule: RuleTraffic(rule) for rule in rules}
    for decision in decisions:
        if decision.tenant != tenant or decision.detection is None or decision.policy_fallback:
            continue
        findings = _judged(triage.evaluate(decision.detection).findings)
        acting = {f.rule for f in findings if f.band is not Band.IGNORE}
        for rule, found in traffic.items():
            own = [f for f in findings if f.rule == rule]
            if not own:
                continue
            if acting - {rule}:
                found.left_out["another rule acts"] += 1
            elif any(f.content_type is not None for f in own):
                found.left_out["animated/illustrated thresholds"] += 1
            else:
                harmful, kind = _usable(labels.get(decision.id))
                found.kinds[kind] += 1
                score = max(f.confidence for f in own)
                found.items.append(Item(decision.id, score, qa_draw(decision.id), harmful))
    return traffic


def sampling_rate(labels: Iterable[Label], outcome: Outcome, policy_rate: float) -> float:
    """The QA rate the tuner draws its sample at: the lowest rate any QA label of `outcome`
    records, else the policy's rate now. Any rate is valid (a drawn image nobody labelled counts
    as an error); the lowest one seen keeps the images drawn before a rate was raised."""
    rates = [
        label.qa_rate
        for label in labels
        if label.kind is LabelKind.QA
        and label.qa_rate is not None
        and label.decision.outcome is outcome
    ]
    return min(rates) if rates else policy_rate
