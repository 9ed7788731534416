"""The policy a tenant's decisions are replayed under: shared by the run and the live judging
(its own module, so that neither of them imports the other for it)."""

from __future__ import annotations

from dataclasses import dataclass

from moderation.decision import Outcome
from moderation.outcome import AnswerKey, escalation_outcomes
from moderation.policy import Policy
from moderation.triage import CompiledPolicy, compiled

__all__ = ["Resolved"]


@dataclass(frozen=True, slots=True)
class Resolved:
    """The policy a tenant's decisions are replayed under, compiled once, with what replay reads
    of it for every decision (plain attributes: a model's cost several times as much to read)."""

    policy: Policy
    compiled: CompiledPolicy
    #: `escalation_outcomes(policy)`: the outcome rule for an escalation, by the judge's answer.
    escalated: dict[AnswerKey, tuple[Outcome | None, bool]]
    min_confidence: float
    max_frames: int
    model_id: str | None

    @classmethod
    def of(cls, policy: Policy) -> Resolved:
        """`policy`, compiled, with its outcome rule for escalations worked out."""
        return cls(
            policy,
            compiled(policy),
            escalation_outcomes(policy),
            policy.min_confidence,
            policy.max_frames,
            policy.escalation.model_id,
        )
