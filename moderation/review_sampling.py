"""Blind QA sampling: which automatic decisions also go to the review desk, from the decision id.

The draw is a hash of the decision id, so the same decision is sampled (or not) wherever and
whenever it is asked: the engine that enqueues it, a replay that wants to know which decisions were
sampled, a backfill. Sampling only adds a `qa` item to the desk; it never changes the outcome.
Pure: no I/O, no clock, no randomness of its own.
"""

from __future__ import annotations

import hashlib

from moderation.decision import Outcome
from moderation.policy._model import ReviewRules

__all__ = ["golden_draw", "golden_drawn", "qa_draw", "qa_rate", "qa_sampled"]

_DRAW_BYTES = 8
_DRAW_SPAN = float(1 << (8 * _DRAW_BYTES))


def qa_draw(decision_id: str) -> float:
    """The decision's draw in [0, 1): the first 8 bytes of sha256("qa:" + id), as a fraction.

    A decision is sampled when its draw is below the policy's rate, so raising a rate keeps every
    decision sampled before and adds more.
    """
    return _draw("qa", "QA", decision_id)


def golden_draw(decision_id: str) -> float:
    """The decision's golden draw in [0, 1): as `qa_draw`, of sha256("golden:" + id), so it is
    independent of the QA draw. A new desk item brings a golden item along when its draw is below
    the tenant's `golden_rate`."""
    return _draw("golden", "golden", decision_id)


def golden_drawn(decision_id: str, rate: float) -> bool:
    """Whether the new desk item of `decision_id` brings a golden item along at `rate`."""
    return golden_draw(decision_id) < rate


def _draw(prefix: str, name: str, decision_id: str) -> float:
    if not isinstance(decision_id, str) or not decision_id:
        raise ValueError(f"a {name} draw needs a decision id, got {decision_id!r}")
    digest = hashlib.sha256(f"{prefix}:{decision_id}".encode()).digest()
    return int.from_bytes(digest[:_DRAW_BYTES], "big") / _DRAW_SPAN


def qa_rate(outcome: Outcome, rules: ReviewRules) -> float:
    """The fraction of `outcome` the rules sample: `approved` or `rejected`; 0 for `review`,
    which goes to the desk anyway."""
    if outcome is Outcome.APPROVED:
        return rules.qa_sample.approved
    if outcome is Outcome.REJECTED:
        return rules.qa_sample.rejected
    return 0.0


def qa_sampled(decision_id: str, outcome: Outcome, rules: ReviewRules) -> bool:
    """Whether this automatic decision also goes to the desk as a blind `qa` item."""
    return qa_draw(decision_id) < qa_rate(Outcome(outcome), rules)
