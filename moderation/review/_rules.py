"""The desk rules of one decision's item, read from its tenant's policy (`review:` section)."""

from __future__ import annotations

from moderation.decision import Decision
from moderation.policy import Band, Policy
from moderation.review._model import DeskRules
from moderation.review_sampling import qa_rate

__all__ = ["desk_rules"]


def desk_rules(decision: Decision, policy: Policy) -> DeskRules:
    """The rules of `decision`'s item under `policy`'s `review:` section: its reviewers, its
    SLA, the priority of the categories of its findings that hit a band (`priority_of`), and,
    when the policy samples the decision's automatic outcome, the rate it samples it at; the
    tenant's golden rate."""
    rules = policy.review_rules
    findings = decision.triage.findings if decision.triage is not None else ()
    categories = [f.label for f in findings if f.band is not Band.IGNORE]
    return DeskRules(
        reviewers=rules.reviewers,
        sla_seconds=rules.sla_seconds,
        priority=rules.priority_of(categories),
        qa_rate=qa_rate(decision.outcome, rules) or None,
        golden_rate=rules.golden_rate,
    )
