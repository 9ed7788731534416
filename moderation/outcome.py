"""THE outcome rule: a policy, triage's action and the judge's answer -> what happens to the image.

The engine decides every live decision with `decide`, each shadow policy is evaluated with it, and
replay (and its live judging) re-decides recorded decisions with it: one rule, so that a replay or
a backtest predicts what production does. Pure: no I/O, no clock, no SDK.

The judge's answer is read from the `Escalation` record, the same record the audit log keeps:
whatever the engine decided from it, a replay of that record reads the same answer. A caller that
re-evaluates a recorded decision passes only the part of the record it may reuse
(`reusable_answer`); an answer it may not reuse is passed as None, and an escalation that has a
judge but no answer has no outcome (None: it needs a judgment nobody made), never an invented one.

No failure approves: a failed call, a refused reply or one without a usable verdict follows the
policy's `on_error` / `on_blocked` (review or reject), and a judge that was never asked (the policy
has none, the engine has none, the budget is spent) sends the image to review.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from moderation.decision import (
    OUTCOME_OF_ACTION,
    OUTCOME_OF_FALLBACK,
    OUTCOME_OF_VERDICT,
    DecidedBy,
    Escalation,
    JudgeAnswer,
    Outcome,
    Verdict,
    VerdictKind,
)
from moderation.policy._model import Band, Policy
from moderation.ports import Judgment
from moderation.triage import Action, Triage

__all__ = [
    "NO_JUDGE_NOTE",
    "AnswerKey",
    "Ruling",
    "answer_key",
    "decide",
    "escalation_outcomes",
    "escalation_record",
    "policy_reasons",
    "reusable_answer",
]

#: The reason an escalation under `judge: none` goes to review.
NO_JUDGE_NOTE = "the policy has no judge (judge: none): borderline goes to human review"


class Ruling(NamedTuple):
    """What the rule decided: the outcome (None: needs a judgment nobody made), which stage
    decided it, and for an escalation the reason that decided it (None for a band decision,
    whose reasons are its findings: `policy_reasons`).

    `asks_judge` is true when the policy sends this case to a judge (triage escalates and the
    policy names one), whether or not an answer was there to decide it.
    """

    # A named tuple, immutable: one is made per escalated decision, the engine's and every
    # replayed one's, in a third of a frozen dataclass's time.

    action: Action
    outcome: Outcome | None
    decided_by: DecidedBy | None
    reason: str | None = None
    asks_judge: bool = False

    @property
    def judged(self) -> bool:
        """True when the outcome rests on the judge's answer (a verdict, or the policy's
        fallback for a reply without one or a failed call)."""
        return self.asks_judge and self.outcome is not None


# A band decision's ruling depends on the action alone (a Ruling is immutable): one each, made once,
# rather than once per decision of the engine and of every replayed one.
_BY_POLICY = {
    action: Ruling(action, outcome, DecidedBy.POLICY)
    for action, outcome in OUTCOME_OF_ACTION.items()
}


def decide(policy: Policy, action: Action, answer: Escalation | None) -> Ruling:
    """The outcome of `action` under `policy`, given the judge's `answer` when triage escalates.

    `answer` is what happened when the judge was asked (or why it was not: `skipped`); None when
    there is no answer to go by, which leaves an escalation to a judge undecided.
    """
    if action is not Action.ESCALATE:
        return _BY_POLICY[action]
    settings = policy.escalation
    if settings.judge == "none":
        # Checked first: a policy without a judge never asks, whatever answer is at hand.
        return Ruling(action, Outcome.REVIEW, DecidedBy.POLICY, NO_JUDGE_NOTE)
    if answer is None:
        return Ruling(action, None, None, asks_judge=True)
    kind = answer.answer
    if kind == "verdict":
        assert answer.verdict is not None
        said = f"judge {answer.model_id} answered {answer.verdict.verdict}"  # a StrEnum: its value
        if answer.verdict.rationale:
            said += f": {answer.verdict.rationale}"
        outcome = OUTCOME_OF_VERDICT[answer.verdict.verdict]
        return Ruling(action, outcome, DecidedBy.JUDGE, said, asks_judge=True)
    if kind == "failed":
        said = f"judge failed ({answer.error}); policy on_error={settings.on_error}"
        outcome = OUTCOME_OF_FALLBACK[settings.on_error]
        return Ruling(action, outcome, DecidedBy.FALLBACK, said, asks_judge=True)
    if kind in ("blocked", "invalid"):
        knob, fallback = (
            ("on_blocked", settings.on_blocked)
            if kind == "blocked"
            else ("on_error", settings.on_error)
        )
        said = f"judge gave no verdict ({answer.error}); policy {knob}={fallback}"
        return Ruling(
            action, OUTCOME_OF_FALLBACK[fallback], DecidedBy.FALLBACK, said, asks_judge=True
        )
    # Never asked (no judge in the engine, the budget spent): a person decides.
    said = answer.skipped or "the judge was not asked: borderline goes to human review"
    return Ruling(action, Outcome.REVIEW, DecidedBy.FALLBACK, said, asks_judge=True)


#: What of a judge's answer `decide` reads for an escalation's outcome: the verdict of a verdict,
#: else the kind of answer (`skipped`: the judge was not asked); None when there is no answer.
AnswerKey = VerdictKind | JudgeAnswer | Literal["skipped"] | None

# An answer of each key, for `decide` to rule on: what it decides from one, it decides from all
# answers of that key (tests/test_outcome_properties.py holds it to that).
_ANSWER_OF_KEY: dict[AnswerKey, Escalation | None] = {
    None: None,
    **{
        kind: Escalation(judge="bedrock", provider="bedrock", verdict=Verdict(verdict=kind))
        for kind in VerdictKind
    },
    "blocked": Escalation(judge="bedrock", provider="bedrock", stop_reason="content_filtered"),
    "invalid": Escalation(judge="bedrock", provider="bedrock", error="no tool call"),
    "failed": Escalation(judge="bedrock", error="timeout"),
    "skipped": Escalation(judge="bedrock", skipped="the budget is spent"),
}


def answer_key(answer: Escalation | None) -> AnswerKey:
    """The part of `answer` that decides an escalation's outcome (`AnswerKey`)."""
    if answer is None:
        return None
    verdict = answer.verdict
    if verdict is not None:
        return verdict.verdict
    return answer.answer or "skipped"


def escalation_outcomes(policy: Policy) -> dict[AnswerKey, tuple[Outcome | None, bool]]:
    """`decide(policy, Action.ESCALATE, answer)`'s outcome and `asks_judge`, by
    `answer_key(answer)`: the rule worked out once per policy, for a caller that decides many
    escalations and needs no reason (replay)."""
    return {
        key: (ruling.outcome, ruling.asks_judge)
        for key, answer in _ANSWER_OF_KEY.items()
        for ruling in (decide(policy, Action.ESCALATE, answer),)
    }


def reusable_answer(escalation: Escalation | None, *, replies: bool = True) -> Escalation | None:
    """The part of a recorded escalation another evaluation of the same detection may reuse:
    a verdict, and with `replies` a reply without one (refused, or no usable verdict), which
    the evaluating policy's own `on_blocked` / `on_error` then decides. Never a failed call or
    a judge that was not asked: nothing was answered, so there is nothing to reuse."""
    if escalation is None:
        return None
    kind = escalation.answer
    if kind == "verdict" or (replies and kind in ("blocked", "invalid")):
        return escalation
    return None


def escalation_record(judge: str, judgment: Judgment) -> Escalation:
    """The `Escalation` record of a judge's reply: what the audit log keeps and the rule reads.

    A verdict is kept only from a reply whose status is `verdict`: a reply the judge itself
    found unusable never decides as if it had answered.
    """
    verdict = judgment.verdict if judgment.status == "verdict" else None
    return Escalation(
        judge=judge,
        provider=judgment.provider,
        model_id=judgment.model_id,
        prompt_sha256=judgment.prompt_sha256,
        verdict=verdict,
        stop_reason=judgment.stop_reason,
        usage=judgment.usage,
        latency_ms=judgment.latency_ms,
        attempts=judgment.attempts,
        error=None if verdict is not None else (judgment.detail or judgment.status),
    )


def policy_reasons(triage: Triage, outcome: Outcome) -> tuple[str, ...]:
    """The reasons of a decision the policy's bands made: up to three findings of the deciding
    band, the deciding one last (reasons end with the one that decided)."""
    if outcome is Outcome.APPROVED:
        acted = [f for f in triage.findings if f.band is not Band.IGNORE]
        n = len(triage.findings)
        return (
            "approved by policy: no label reached a band"
            + (f" ({n} label{'s' if n != 1 else ''} seen)" if n else " (no labels)")
            if not acted
            else "approved by policy",
        )
    band = Band.REJECT if outcome is Outcome.REJECTED else Band.REVIEW
    verb = "rejected by policy" if outcome is Outcome.REJECTED else "sent to review by policy"
    return tuple(f"{verb}: {f.describe()}" for f in reversed(triage.at(band)[:3]))
