"""The one outcome rule, checked end to end on generated policies, detections and judge answers.

The engine, its shadow evaluation and replay all decide with `moderation.outcome.decide`; these
properties hold the three together through the real `Engine` with the test kit's fakes:

(a) a decision the engine made replays to itself under the same policy (or, where the judge's
    call failed or was never made, replay says it needs a judgment: it never invents one);
(b) a shadow policy's recorded result is what the engine decides with that policy as its main
    policy (or, where it needs a judge's answer the live decision did not act on, undecided);
(c) the rule worked out once per policy for replay (`escalation_outcomes`) is the rule.
"""

from __future__ import annotations

from typing import Any

import builders
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from images import solid
from profiles import examples

from moderation import DecidedBy, Decision, Engine, Outcome, PolicyStore
from moderation.decision import BLOCKED_STOP_REASONS, Escalation, Verdict, VerdictKind
from moderation.outcome import answer_key, decide, escalation_outcomes
from moderation.ports import Judge
from moderation.replay import replay
from moderation.taxonomy import TAXONOMY
from moderation.testing import FailingJudge, StaticDetector, StaticJudge
from moderation.triage import Action

SETTINGS = settings(
    max_examples=examples(30),  # for each of the judge's answers
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
IMAGE = solid("jpeg", (120, 90))
# A few categories, so that generated rules and generated labels meet often; parents and children
# both, so that inheritance between them is exercised too.
NAMES = ["Violence", "Graphic Violence", "Weapons", "Explicit", "Explicit Nudity", "Alcohol"]
assert set(NAMES) <= set(TAXONOMY.names())
# What the judge does when asked (each a test case of its own, so every one is exercised); None:
# the engine has no judge at all.
ANSWERS = ["approve", "reject", "unsure", "blocked", "invalid", "error", None]

# --------------------------------------------------------------------------- strategies

confidences = st.one_of(
    st.sampled_from([0.0, 30.0, 49.999, 50.0, 60.0, 75.0, 80.0, 90.0, 99.9, 100.0]),
    st.floats(0, 100, allow_nan=False, allow_infinity=False),
)


@st.composite
def bands(draw: st.DrawFn, allow: bool = True) -> Any:
    """A rule body: `allow`, or 1-3 thresholds with escalate <= review <= reject, the others
    null (so that a policy extending another sets every threshold of the rules it names)."""
    if allow and draw(st.integers(0, 4)) == 0:
        return "allow"
    low, mid, high = sorted(draw(st.lists(confidences, min_size=3, max_size=3)))
    # Escalate most often: that is where the judge's answer, and so the rule, matters most.
    keys = {"escalate"} if draw(st.integers(0, 3)) else set()
    keys |= set(draw(st.lists(st.sampled_from(["review", "reject"]), unique=True)))
    keys = keys or {"escalate"}
    values = {"escalate": low, "review": mid, "reject": high}
    return {k: values[k] if k in keys else None for k in sorted(values)}


@st.composite
def rules(draw: st.DrawFn) -> Any:
    """A category's rule: its bands, sometimes other bands for animated or illustrated images."""
    rule = draw(bands())
    if rule != "allow" and draw(st.integers(0, 3)) == 0:
        rule["animated" if draw(st.booleans()) else "illustrated"] = draw(bands())
    return rule


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    """A policy document: thresholds per category, allow, review bands, a judge or none, and
    its fallbacks."""
    judge = draw(st.sampled_from(["bedrock", "none"]))
    escalation: dict[str, Any] = {
        "judge": judge,
        "on_error": draw(st.sampled_from(["review", "reject"])),
        "on_blocked": draw(st.sampled_from(["review", "reject"])),
    }
    if judge == "bedrock":
        escalation["model_id"] = MODEL
    return {
        "min_confidence": draw(st.sampled_from([0, 40, 50, 60])),
        "content_type_min_confidence": draw(st.sampled_from([0, 50, 80])),
        "default": draw(bands(allow=False)),
        "categories": draw(st.dictionaries(st.sampled_from(NAMES), rules(), max_size=4)),
        "escalation": escalation,
    }


def thresholds(document: dict[str, Any]) -> list[float]:
    """Every threshold a policy document sets: where a label's confidence is most telling."""
    rules = [document["default"], *document["categories"].values()]
    found: list[float] = []
    while rules:
        rule = rules.pop()
        if isinstance(rule, dict):
            for value in rule.values():
                if isinstance(value, dict | str):
                    rules.append(value)
                elif value is not None:
                    found.append(float(value))
    return found


@st.composite
def detectors(draw: st.DrawFn, *documents: dict[str, Any]) -> StaticDetector:
    """A detector answering with taxonomy labels and content types, their confidences often on,
    just under or just over a threshold of `documents` (else the bands are rarely reached)."""
    near = sorted({t for d in documents for t in thresholds(d)})
    telling = st.sampled_from(near).flatmap(
        lambda t: st.sampled_from([t, max(t - 0.001, 0.0), min(t + 0.001, 100.0)])
    )
    chosen = st.one_of(telling, confidences) if near else confidences
    labels = draw(st.lists(st.tuples(st.sampled_from(NAMES), chosen), min_size=1, max_size=4))
    kinds = draw(st.dictionaries(st.sampled_from(["Animated", "Illustrated"]), confidences))
    return StaticDetector(labels, list(kinds.items()))


def judge_for(answer: str | None) -> Judge | None:
    """A fresh judge giving `answer` to every request."""
    if answer is None:
        return None
    if answer == "blocked":
        return StaticJudge.blocked()
    if answer == "invalid":
        return StaticJudge.invalid()
    if answer == "error":
        return FailingJudge()
    return StaticJudge(answer, rationale="generated")  # type: ignore[arg-type]


def engine(sources: dict[str, str], detector: StaticDetector, judge: Judge | None) -> Engine:
    """An engine on the policies `sources` (by id; `default` among them)."""
    return builders.engine(builders.store(**sources), detector, judge)


def dump(document: dict[str, Any], **extra: Any) -> str:
    return yaml.safe_dump({**document, **extra}, sort_keys=False)


# --------------------------------------------------------------------------- (a) replay


@pytest.mark.parametrize("answer", ANSWERS)
@SETTINGS
@given(data=st.data(), document=policies())
def test_a_decision_replays_to_itself_under_the_same_policy(data, document, answer):
    detector = data.draw(detectors(document))
    # GIVEN a decision the engine made
    sources = {"default": dump(document)}
    decision = engine(sources, detector, judge_for(answer)).moderate(IMAGE)
    # THEN no failure approved it
    if decision.decided_by is DecidedBy.FALLBACK:
        assert decision.outcome is not Outcome.APPROVED
    # AND its deciding reason is the rule's, read back from its own record
    assert decision.triage is not None
    policy = PolicyStore.from_sources(sources).get("default")
    ruling = decide(policy, decision.triage.action, decision.escalation)
    assert (ruling.outcome, ruling.decided_by) == (decision.outcome, decision.decided_by)
    if ruling.reason is not None:
        assert decision.reason == ruling.reason
    # WHEN it is replayed under the same policy
    report = replay([decision], PolicyStore.from_sources(sources))
    assert (report.replayed, report.error_count, report.incomplete) == (1, 0, 0)
    # THEN its outcome comes back, unless the judge gave no answer to reuse
    escalation = decision.escalation
    unanswered = escalation is not None and escalation.answer in (None, "failed")
    if decision.triage.action is Action.ESCALATE and policy.escalation.judge != "none":
        assert escalation is not None
        if unanswered:
            assert (report.needs_judgment, report.unchanged) == (1, 0)
            return
        assert report.reused == 1
    assert (report.unchanged, report.flipped, report.needs_judgment) == (1, 0, 0)


# --------------------------------------------------------------------------- (b) shadows


def expected_undecided(shadow_action: Action, shadow: dict[str, Any], live: Decision) -> bool:
    """A shadow is undecided exactly when it escalates to a judge and the live decision did not
    act on a verdict it could reuse."""
    return (
        shadow_action is Action.ESCALATE
        and shadow["escalation"]["judge"] != "none"
        and live.decided_by is not DecidedBy.JUDGE
    )


@pytest.mark.parametrize("answer", ANSWERS)
@SETTINGS
@given(data=st.data(), live_doc=policies(), shadow_doc=policies())
def test_a_shadow_result_is_what_the_engine_decides_under_that_policy(
    data, live_doc, shadow_doc, answer
):
    detector = data.draw(detectors(live_doc, shadow_doc))
    # GIVEN a live decision evaluated beside a shadow policy (which extends the live one)
    live_sources = {"default": dump(live_doc, shadow="candidate"), "candidate": dump(shadow_doc)}
    live = engine(live_sources, detector, judge_for(answer)).moderate(IMAGE)
    [shadow] = live.shadow
    # WHEN the engine decides the same image with the shadow policy as its main policy
    sources = {"default": dump(live_doc), "candidate": dump(shadow_doc)}
    direct = engine(sources, detector, judge_for(answer)).moderate(IMAGE, tenant="candidate")
    assert direct.triage is not None
    if shadow.incomplete:
        return  # the live detection may lack what the shadow would act on: nothing to compare
    # THEN the shadow saw the same triage
    assert shadow.action is direct.triage.action
    # AND decided the same, or is undecided exactly where it needs an answer nobody gave it
    if expected_undecided(shadow.action, shadow_doc, live):
        assert (shadow.outcome, shadow.verdict_reused) == (None, False)
    else:
        assert shadow.outcome is direct.outcome
        assert shadow.verdict_reused == (direct.decided_by is DecidedBy.JUDGE)


# --------------------------------------------------------------------------- (c) the table


@st.composite
def escalation_records(draw: st.DrawFn) -> Escalation | None:
    """Any escalation record the log may hold (and None): a verdict, a reply without one, a
    failed call, a skipped one, with fields set or not in every combination."""
    if draw(st.integers(0, 7)) == 0:
        return None
    text = st.one_of(st.none(), st.sampled_from(["x", "timeout", "the budget is spent"]))
    verdict = draw(st.one_of(st.none(), st.sampled_from(list(VerdictKind))))
    return Escalation(
        judge=draw(st.sampled_from(["bedrock", "none", "recorded"])),
        provider=draw(st.one_of(st.none(), st.sampled_from(["bedrock", "static"]))),
        model_id=draw(st.one_of(st.none(), st.just(MODEL))),
        verdict=None if verdict is None else Verdict(verdict=verdict, rationale=draw(text) or ""),
        stop_reason=draw(
            st.one_of(st.none(), st.sampled_from([*sorted(BLOCKED_STOP_REASONS), "tool_use"]))
        ),
        error=draw(text),
        skipped=draw(text),
    )


@settings(max_examples=examples(300), deadline=None)
@given(document=policies(), answer=escalation_records())
def test_the_escalation_table_is_what_decide_rules(document, answer):
    # GIVEN a policy and any recorded answer of a judge
    policy = PolicyStore.from_sources({"default": dump(document)}).get("default")
    # WHEN the table worked out once for the policy is read by the answer's key
    found = escalation_outcomes(policy)[answer_key(answer)]
    # THEN it is what the rule decides from the answer itself
    ruling = decide(policy, Action.ESCALATE, answer)
    assert found == (ruling.outcome, ruling.asks_judge)


def test_the_escalation_table_holds_every_outcome_of_the_rule():
    """Not vacuous: under a judge with different fallbacks, each answer key rules differently."""
    document = {
        "default": {"escalate": 50, "reject": 90},
        "escalation": {
            "judge": "bedrock", "model_id": MODEL, "on_error": "reject", "on_blocked": "review"
        },
    }  # fmt: skip
    table = escalation_outcomes(
        PolicyStore.from_sources({"default": dump(document)}).get("default")
    )
    assert table == {
        None: (None, True),
        VerdictKind.APPROVE: (Outcome.APPROVED, True),
        VerdictKind.REJECT: (Outcome.REJECTED, True),
        VerdictKind.UNSURE: (Outcome.REVIEW, True),
        "blocked": (Outcome.REVIEW, True),
        "invalid": (Outcome.REJECTED, True),
        "failed": (Outcome.REJECTED, True),
        "skipped": (Outcome.REVIEW, True),
    }
    document["escalation"] = {"judge": "none"}
    table = escalation_outcomes(
        PolicyStore.from_sources({"default": dump(document)}).get("default")
    )
    assert set(table.values()) == {(Outcome.REVIEW, False)}
