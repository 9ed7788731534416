"""Shadow policies: candidates evaluated beside the live policy on the same detection, recorded in
`Decision.shadow`, never acted on.

Expectations are computed by hand from the policies below: the live `kids` policy escalates
Violence at 60 and rejects at 90; its candidates draw the bands elsewhere.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import builders
import pytest
from builders import engine
from clirunner import runner
from images import animation, solid

import moderation.engine as engine_module
from moderation import DecidedBy, Decision, Outcome, PolicyStore
from moderation.budget import EscalationBudget
from moderation.cli import main
from moderation.decision import ShadowResult
from moderation.detection import Detection
from moderation.errors import UnknownTenant
from moderation.image import PreparedImage
from moderation.testing import (
    FailingDetector,
    FailingJudge,
    StaticDetector,
    StaticJudge,
    static_detection,
)
from moderation.triage import Action

MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
DEFAULT = f"""\
min_confidence: 40
default: {{reject: 95, escalate: 80}}
escalation: {{judge: bedrock, model_id: {MODEL}}}
"""
KIDS = "categories:\n  Violence: {reject: 90, escalate: 60}\n"
CANDIDATES = {
    # rejects what kids escalates
    "kids-next": "categories:\n  Violence: {reject: 70, escalate: 50}\n",
    # sends to a person what kids escalates
    "kids-review": "categories:\n  Violence: {review: 70}\n",
    # ignores violence
    "kids-lax": "categories:\n  Violence: allow\n",
    # escalates, to the same judge
    "kids-judged": "categories:\n  Violence: {reject: 95, escalate: 50}\n",
    # escalates, but has no judge: borderline goes to review
    "kids-nojudge": "categories:\n  Violence: {reject: 95, escalate: 50}\n"
    "escalation: {judge: none}\n",
}
IMAGE = solid("jpeg", (120, 90))


def store(shadow: str | None = None, *, kids: str = KIDS, **extra: str) -> PolicyStore:
    """default, kids (naming `shadow` if given) and every candidate, each overridable."""
    kids_text = kids + (f"shadow: {shadow}\n" if shadow is not None else "")
    return builders.store(DEFAULT, kids=kids_text, **{**CANDIDATES, **extra})


def violence(confidence: float) -> StaticDetector:
    return StaticDetector([("Violence", confidence)])


def live_fields(decision: Decision) -> dict[str, Any]:
    """Everything the live decision says, without what differs by run or is the shadows'."""
    return decision.model_dump(mode="json", exclude={"id", "created_at", "timings_ms", "shadow"})


# --------------------------------------------------------------------------- what is recorded


def test_each_action_of_a_shadow_is_recorded_in_the_order_named():
    # GIVEN kids (escalate 60, reject 90) with five candidates, a Violence label at 75, and a
    # judge that approves
    names = ["kids-next", "kids-review", "kids-lax", "kids-judged", "kids-nojudge"]
    policies = store(f"[{', '.join(names)}]")
    judge = StaticJudge("approve")
    decision = engine(policies, violence(75.0), judge).moderate(IMAGE, tenant="kids")
    # THEN the live policy escalated and the judge's approval decided
    assert (decision.outcome, decision.decided_by) == (Outcome.APPROVED, DecidedBy.JUDGE)
    assert len(judge.calls) == 1
    # AND each candidate's answer is recorded, as worked out from its bands
    assert decision.shadow == (
        ShadowResult(
            policy=policies.policy("kids-next").ref,
            action=Action.REJECT,
            outcome=Outcome.REJECTED,
            reasons=("Violence 75.0% >= reject 70 (rule 'Violence')",),
        ),
        ShadowResult(
            policy=policies.policy("kids-review").ref,
            action=Action.REVIEW,
            outcome=Outcome.REVIEW,
            reasons=("Violence 75.0% >= review 70 (rule 'Violence')",),
        ),
        ShadowResult(
            policy=policies.policy("kids-lax").ref,
            action=Action.APPROVE,
            outcome=Outcome.APPROVED,
        ),
        ShadowResult(
            policy=policies.policy("kids-judged").ref,
            action=Action.ESCALATE,
            outcome=Outcome.APPROVED,
            verdict_reused=True,
            reasons=("Violence 75.0% >= escalate 50 (rule 'Violence')",),
        ),
        ShadowResult(
            policy=policies.policy("kids-nojudge").ref,
            action=Action.ESCALATE,
            outcome=Outcome.REVIEW,
            reasons=("Violence 75.0% >= escalate 50 (rule 'Violence')",),
        ),
    )
    assert [s.policy.id for s in decision.shadow] == names
    assert decision.shadow[0].policy.chain == ("kids-next", "default")


@pytest.mark.parametrize(
    ("confidence", "live", "shadow_action", "shadow_outcome"),
    [
        (30.0, Outcome.APPROVED, Action.APPROVE, Outcome.APPROVED),  # below both
        (55.0, Outcome.APPROVED, Action.ESCALATE, None),  # kids-next escalates at 50
        (75.0, Outcome.APPROVED, Action.REJECT, Outcome.REJECTED),  # live asks the judge
        (92.0, Outcome.REJECTED, Action.REJECT, Outcome.REJECTED),  # both reject
    ],
)
def test_live_and_shadow_outcomes_side_by_side(confidence, live, shadow_action, shadow_outcome):
    decision = engine(store("kids-next"), violence(confidence), StaticJudge("approve")).moderate(
        IMAGE, tenant="kids"
    )
    assert decision.outcome == live
    [shadow] = decision.shadow
    assert (shadow.action, shadow.outcome) == (shadow_action, shadow_outcome)
    assert shadow.verdict_reused is False


def test_shadow_reasons_are_the_three_most_confident_of_its_band_deciding_last():
    labels = [("Violence", 75.0), ("Gambling", 80.0), ("Rude Gestures", 72.0), ("Alcohol", 90.0)]
    policies = store("strict", strict="default: {reject: 70, escalate: null}\n")
    decision = engine(policies, StaticDetector(labels)).moderate(IMAGE, tenant="kids")
    [shadow] = decision.shadow
    assert shadow.action is Action.REJECT
    assert shadow.reasons == (
        "Violence 75.0% >= reject 70 (default rule)",
        "Gambling 80.0% >= reject 70 (default rule)",
        "Alcohol 90.0% >= reject 70 (default rule)",
    )


def test_a_policy_without_shadow_records_none_and_no_shadow_timing():
    decision = engine(store(), violence(75.0), StaticJudge("approve")).moderate(
        IMAGE, tenant="kids"
    )
    assert decision.shadow == ()
    assert "shadow" not in decision.timings_ms


def test_the_time_spent_on_shadows_is_a_stage_of_its_own():
    decision = engine(store("kids-next"), violence(75.0), StaticJudge("approve")).moderate(
        IMAGE, tenant="kids"
    )
    assert set(decision.timings_ms) == {
        "policy",
        "intake",
        "detect",
        "triage",
        "judge",
        "shadow",
        "total",
    }


def test_a_shadows_own_shadows_are_not_evaluated():
    # kids-next names kids-lax; run as kids' shadow, kids-next is evaluated alone.
    policies = store("kids-next", **{"kids-next": CANDIDATES["kids-next"] + "shadow: kids-lax\n"})
    decision = engine(policies, violence(75.0), StaticJudge("approve")).moderate(
        IMAGE, tenant="kids"
    )
    assert [s.policy.id for s in decision.shadow] == ["kids-next"]
    # ... while its own list is kept, for the day it is put in force.
    assert policies.policy("kids-next").shadow == ("kids-lax",)


@pytest.mark.parametrize("fallback", [False, True])
def test_a_shadow_candidate_cannot_be_moderated_under_as_a_tenant(fallback: bool):
    # GIVEN kids trialling kids-lax, which ignores violence: whoever names the tenant (a request
    # parameter, say) must not be able to pick the candidate, fallback or not
    policies = PolicyStore.from_sources(
        {"default": DEFAULT, "kids": KIDS + "shadow: kids-lax\n", **CANDIDATES},
        fallback_to_default=fallback,
    )
    # WHEN it is named as the tenant THEN it is refused, saying why
    with pytest.raises(UnknownTenant, match=r"'kids-lax' is a shadow candidate .*'kids'"):
        engine(policies, violence(99.0)).moderate(IMAGE, tenant="kids-lax")
    assert "kids-lax" not in policies
    assert "kids-lax" not in policies.tenants
    assert policies.candidates == {"kids-lax": ("kids",)}
    # ... it is still a policy of the store, evaluated beside kids
    assert policies.policy("kids-lax").id == "kids-lax"
    decision = engine(policies, violence(99.0), StaticJudge("reject")).moderate(
        IMAGE, tenant="kids"
    )
    assert [s.policy.id for s in decision.shadow] == ["kids-lax"]


def test_a_near_miss_never_suggests_a_shadow_candidate():
    policies = store("kids-lax")
    with pytest.raises(UnknownTenant) as caught:
        policies.get("kids-la")
    assert "kids-lax" not in str(caught.value)


def test_a_fallback_tenant_gets_the_default_policys_shadows():
    policies = PolicyStore.from_sources(
        {"default": DEFAULT + "shadow: kids-next\n", **CANDIDATES}, fallback_to_default=True
    )
    decision = engine(policies, violence(75.0)).moderate(IMAGE, tenant="nobody")
    assert decision.policy_fallback
    [shadow] = decision.shadow
    assert (shadow.policy.id, shadow.outcome) == ("kids-next", Outcome.REJECTED)


def test_default_may_be_a_shadow():
    decision = engine(store("default"), violence(85.0), StaticJudge("reject")).moderate(
        IMAGE, tenant="kids"
    )
    # live: 85 escalates (60..90), the judge rejects; default escalates at 80 too: verdict reused
    assert decision.outcome == Outcome.REJECTED
    # `default` is the base every tenant extends: named as a shadow, it is not a candidate
    assert store("default").candidates == {}
    [shadow] = decision.shadow
    assert (shadow.policy.id, shadow.action, shadow.outcome, shadow.verdict_reused) == (
        "default",
        Action.ESCALATE,
        Outcome.REJECTED,
        True,
    )


def test_a_decision_with_shadows_round_trips_through_json():
    names = "[kids-next, kids-review, kids-lax, kids-judged, kids-nojudge]"
    decision = engine(store(names), violence(75.0), StaticJudge("approve")).moderate(
        IMAGE, tenant="kids"
    )
    assert len(decision.shadow) == 5
    again = Decision.model_validate_json(decision.model_dump_json())
    assert again == decision
    assert again.shadow == decision.shadow
    assert json.loads(decision.model_dump_json())["shadow"][0]["policy"]["id"] == "kids-next"


def test_a_detector_failure_has_no_shadows(caplog):
    policies = store("kids-next", kids=KIDS + "on_detector_error: review\n")
    with caplog.at_level(logging.ERROR, logger="moderation.engine"):
        decision = engine(policies, FailingDetector()).moderate(IMAGE, tenant="kids")
    assert (decision.outcome, decision.decided_by) == (Outcome.REVIEW, DecidedBy.FALLBACK)
    assert decision.detection is None
    assert decision.shadow == ()
    assert "shadow" not in decision.timings_ms
    assert caplog.records == []  # not attempted, rather than attempted and failed


# --------------------------------------------------------------------------- the live decision


@pytest.mark.parametrize(
    ("confidence", "judge"),
    [
        (30.0, StaticJudge("approve")),
        (75.0, StaticJudge("approve")),
        (75.0, StaticJudge("reject")),
        (75.0, StaticJudge.blocked()),
        (75.0, FailingJudge()),
        (75.0, None),
        (95.0, StaticJudge("approve")),
    ],
    ids=["approve", "judge-approves", "judge-rejects", "blocked", "judge-fails", "no-judge", "rej"],
)
def test_the_live_decision_is_the_same_with_and_without_shadows(confidence, judge):
    names = "[kids-next, kids-review, kids-lax, kids-judged, kids-nojudge]"
    without = engine(store(), violence(confidence), judge).moderate(IMAGE, tenant="kids")
    calls = len(judge.calls) if judge is not None else 0
    with_shadows = engine(store(names), violence(confidence), judge).moderate(IMAGE, tenant="kids")
    assert len(with_shadows.shadow) == 5
    assert live_fields(with_shadows) == live_fields(without)
    # field by field, for the ones a reader looks at first
    for name in ("outcome", "reasons", "decided_by", "policy", "cost", "escalation", "error"):
        assert getattr(with_shadows, name) == getattr(without, name), name
    # AND the shadows asked the judge nothing: exactly as many calls as the live decision made
    if judge is not None:
        assert len(judge.calls) == 2 * calls


def test_a_shadow_never_calls_the_judge_when_the_live_policy_did_not():
    # 55: kids approves (escalate 60), kids-judged escalates (escalate 50) to a judge it never asks
    judge = StaticJudge("reject")
    decision = engine(store("kids-judged"), violence(55.0), judge).moderate(IMAGE, tenant="kids")
    assert decision.outcome == Outcome.APPROVED and decision.escalation is None
    assert judge.calls == []
    [shadow] = decision.shadow
    assert (shadow.action, shadow.outcome, shadow.verdict_reused) == (Action.ESCALATE, None, False)


def test_shadows_spend_no_escalation_budget():
    # kids may ask the judge twice a minute; its shadow escalates on every image as well
    budgeted = KIDS + "escalation: {budget: {calls: 2, per: 1m}}\n"

    def run(shadow: str | None) -> tuple[list[Outcome], int]:
        judge = StaticJudge("approve")
        e = engine(
            store(shadow, kids=budgeted), violence(75.0), judge, budget=EscalationBudget(lambda: 0)
        )
        return [e.moderate(IMAGE, tenant="kids").outcome for _ in range(3)], len(judge.calls)

    assert run(None) == ([Outcome.APPROVED, Outcome.APPROVED, Outcome.REVIEW], 2)
    assert run("kids-judged") == ([Outcome.APPROVED, Outcome.APPROVED, Outcome.REVIEW], 2)


def test_a_failing_shadow_costs_nothing_of_the_live_decision(monkeypatch, caplog):
    real = engine_module._shadow

    def broken(shadow, *args):
        if shadow.id == "kids-next":
            raise RuntimeError("boom")
        return real(shadow, *args)

    monkeypatch.setattr(engine_module, "_shadow", broken)
    e = engine(store("[kids-next, kids-lax]"), violence(75.0), StaticJudge("approve"))
    with caplog.at_level(logging.ERROR, logger="moderation.engine"):
        decision = e.moderate(IMAGE, tenant="kids")
    # THEN the live decision stands and is in the audit log; the other shadow is still recorded
    assert decision.outcome == Outcome.APPROVED
    assert e.audit.decisions == [decision]
    assert [s.policy.id for s in decision.shadow] == ["kids-lax"]
    assert "shadow policy 'kids-next' of policy 'kids' could not be evaluated" in caplog.text
    reference = engine(store(), violence(75.0), StaticJudge("approve")).moderate(
        IMAGE, tenant="kids"
    )
    assert live_fields(decision) == live_fields(reference)


# --------------------------------------------------------------------------- escalating shadows


@pytest.mark.parametrize(
    ("verdict", "outcome"),
    [("approve", Outcome.APPROVED), ("reject", Outcome.REJECTED), ("unsure", Outcome.REVIEW)],
)
def test_an_escalating_shadow_reuses_the_live_verdict(verdict, outcome):
    judge = StaticJudge(verdict)
    decision = engine(store("kids-judged"), violence(75.0), judge).moderate(IMAGE, tenant="kids")
    assert decision.decided_by == DecidedBy.JUDGE
    [shadow] = decision.shadow
    assert (shadow.action, shadow.outcome, shadow.verdict_reused) == (
        Action.ESCALATE,
        outcome,
        True,
    )
    assert len(judge.calls) == 1


@pytest.mark.parametrize(
    ("judge", "kids"),
    [
        (FailingJudge(), KIDS),
        (StaticJudge.blocked(), KIDS),
        (StaticJudge.invalid(), KIDS),
        (None, KIDS),  # no judge in this engine
        (StaticJudge("approve"), KIDS + "escalation: {judge: none}\n"),
        (StaticJudge("approve"), KIDS + "escalation: {budget: {calls: 0, per: 1m}}\n"),
    ],
    ids=["judge-fails", "blocked", "invalid", "no-judge", "live-judge-none", "budget-spent"],
)
def test_an_escalating_shadow_is_undecided_without_a_live_verdict(judge, kids):
    decision = engine(store("kids-judged", kids=kids), violence(75.0), judge).moderate(
        IMAGE, tenant="kids"
    )
    assert decision.decided_by != DecidedBy.JUDGE
    [shadow] = decision.shadow
    assert (shadow.action, shadow.outcome, shadow.verdict_reused) == (Action.ESCALATE, None, False)


def test_an_escalating_shadow_without_a_judge_goes_to_review_even_when_the_live_judge_answered():
    # The shadow would never have asked (judge: none), so the live verdict is not its answer.
    judge = StaticJudge("approve")
    decision = engine(store("kids-nojudge"), violence(75.0), judge).moderate(IMAGE, tenant="kids")
    assert decision.decided_by == DecidedBy.JUDGE
    [shadow] = decision.shadow
    assert (shadow.outcome, shadow.verdict_reused) == (Outcome.REVIEW, False)


def test_an_escalating_shadow_without_a_judge_goes_to_review_when_the_live_policy_approves():
    decision = engine(store("kids-nojudge"), violence(55.0)).moderate(IMAGE, tenant="kids")
    assert decision.outcome == Outcome.APPROVED
    [shadow] = decision.shadow
    assert (shadow.action, shadow.outcome) == (Action.ESCALATE, Outcome.REVIEW)


# --------------------------------------------------------------------------- incomplete


@pytest.mark.parametrize(
    ("min_confidence", "incomplete"),
    [("30", True), ("39.9", True), ("40", False), ("60", False)],
)
def test_a_shadow_asking_for_less_confident_labels_is_incomplete(min_confidence, incomplete):
    # kids asks the detector for labels from 40 up (inherited from default)
    policies = store("cand", cand=f"min_confidence: {min_confidence}\n")
    detector = violence(75.0)
    decision = engine(policies, detector).moderate(IMAGE, tenant="kids")
    assert [call.min_confidence for call in detector.calls] == [40.0]
    [shadow] = decision.shadow
    assert shadow.incomplete is incomplete


class Unmarked:
    """A detector whose detections do not say which MinConfidence they were asked with."""

    def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
        return static_detection([("Violence", 75.0)])


def test_without_a_recorded_min_confidence_the_live_policys_is_the_one_asked():
    policies = store("[low, high]", low="min_confidence: 30\n", high="min_confidence: 40\n")
    decision = engine(policies, Unmarked()).moderate(IMAGE, tenant="kids")
    assert decision.detection is not None and decision.detection.min_confidence is None
    assert [s.incomplete for s in decision.shadow] == [True, False]


# Six differently coloured frames: intake shows the detector all six whatever max_frames (> 1)
# is, tiled on contact sheets when they are more than max_frames (docs/images.md).
SIX_FRAMES = animation("gif", [(i * 40, 0, 0) for i in range(6)])
TEN_FRAMES = animation("gif", [(i * 25, 0, 0) for i in range(10)])


@pytest.mark.parametrize(
    ("live", "shadow", "data", "incomplete"),
    [
        (2, 4, SIX_FRAMES, False),  # all six were seen, on two sheets
        (1, 2, SIX_FRAMES, True),  # the live policy sent the first frame only
        (2, 2, SIX_FRAMES, False),
        (4, 2, SIX_FRAMES, False),
        (2, 1, SIX_FRAMES, False),
        (4, 3, SIX_FRAMES, False),
        (4, 3, TEN_FRAMES, False),  # every frame was seen, whatever was picked by position
        (4, 20, animation("gif", [(0, 0, 0), (200, 0, 0), (0, 200, 0)]), False),  # all 3 sent
        (1, 20, IMAGE, False),  # a still image has one frame, whatever max_frames says
    ],
)
def test_a_shadow_that_would_have_sent_other_frames_is_incomplete(live, shadow, data, incomplete):
    policies = store("cand", kids=KIDS + f"max_frames: {live}\n", cand=f"max_frames: {shadow}\n")
    decision = engine(policies, violence(75.0)).moderate(data, tenant="kids")
    [result] = decision.shadow
    assert result.incomplete is incomplete


# --------------------------------------------------------------------------- the policy language


def test_shadow_is_not_inherited_through_extends():
    policies = store(
        "kids-next",
        toddlers="extends: kids\n",
        teens="extends: kids\nshadow: kids-lax\n",
    )
    assert policies.get("kids").shadow == ("kids-next",)
    assert policies.get("toddlers").shadow == ()
    assert policies.get("teens").shadow == ("kids-lax",)
    decision = engine(policies, violence(75.0)).moderate(IMAGE, tenant="toddlers")
    assert decision.shadow == ()


@pytest.mark.parametrize(
    ("written", "names"),
    [
        ("kids-next", ("kids-next",)),
        ("[kids-next]", ("kids-next",)),
        ("[kids-lax, kids-next]", ("kids-lax", "kids-next")),
        ("[]", ()),
        ("null", ()),
    ],
)
def test_shadow_spellings(written, names):
    policies = store(written)
    assert policies.get("kids").shadow == names
    assert tuple(p.id for p in policies.shadows(policies.get("kids"))) == names


def test_shadow_does_not_change_the_policy_hash():
    plain, shadowed = store().get("kids"), store("[kids-next, default]").get("kids")
    assert shadowed.shadow == ("kids-next", "default")
    assert shadowed.sha256 == plain.sha256
    assert shadowed.canonical_json() == plain.canonical_json()
    assert shadowed.ref == plain.ref
    assert shadowed != plain  # the policies themselves differ, only the rules hash alike


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("shadow:\n", "name the policies to shadow, or leave the key out"),
        ("shadow: ~\n", "write `null`, or leave the key out, for no shadow policies"),
    ],
)
def test_an_empty_shadow_is_an_error_with_its_own_hint(text, hint):
    from moderation.errors import PolicyError

    with pytest.raises(PolicyError) as caught:
        PolicyStore.from_sources({"default": DEFAULT, "kids": KIDS + text})
    [problem] = caught.value.problems
    assert (problem.file, problem.path, problem.line, problem.hint) == (
        "tenants/kids.yaml",
        "shadow",
        3,
        hint,
    )


def test_shadow_naming_a_broken_policy_reports_only_the_broken_file():
    from moderation.errors import PolicyError

    with pytest.raises(PolicyError) as caught:
        PolicyStore.from_sources(
            {"default": DEFAULT, "kids": "shadow: cand\n", "cand": "{unclosed\n"}
        )
    assert [p.file for p in caught.value.problems] == ["tenants/cand.yaml"]


def test_store_policy_by_id():
    policies = store()
    assert policies.policy("kids-next").id == "kids-next"
    assert policies.policy("default").id == "default"
    with pytest.raises(UnknownTenant, match=r"no policy 'kids-nxt' in this store \(did you mean"):
        policies.policy("kids-nxt")


def test_policy_show_prints_the_shadows(tmp_path: Path):
    (tmp_path / "tenants").mkdir()
    (tmp_path / "default.yaml").write_text(DEFAULT)
    (tmp_path / "tenants/kids.yaml").write_text(KIDS + "shadow: [kids-next]\n")
    (tmp_path / "tenants/kids-next.yaml").write_text(CANDIDATES["kids-next"])
    result = runner().invoke(main, ["policy", "show", "kids", "--policies", str(tmp_path)])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["shadow"] == ["kids-next"]
    assert body["sha256"] == PolicyStore(tmp_path).get("kids").sha256


def test_policy_show_and_try_inspect_a_shadow_candidate(tmp_path: Path):
    # GIVEN a store where kids trials kids-next
    (tmp_path / "tenants").mkdir()
    (tmp_path / "default.yaml").write_text(DEFAULT)
    (tmp_path / "tenants/kids.yaml").write_text(KIDS + "shadow: [kids-next]\n")
    (tmp_path / "tenants/kids-next.yaml").write_text(CANDIDATES["kids-next"])
    # WHEN the candidate is shown THEN its own policy is printed, and stderr says no tenant uses it
    result = runner().invoke(main, ["policy", "show", "kids-next", "--policies", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == "kids-next"
    assert "'kids-next' is a shadow candidate of kids" in result.stderr
    # ... and `try` labels its row as a candidate, and leaves it out when no tenant is named
    response = tmp_path / "violence.json"
    response.write_text(json.dumps({"ModerationLabels": [], "ModerationModelVersion": "7.0"}))
    tried = runner().invoke(
        main,
        ["policy", "try", str(response), "--policies", str(tmp_path), "--tenant", "kids-next"],
    )
    assert tried.exit_code == 0, tried.output
    assert "kids-next (shadow candidate)" in tried.output
    every = runner().invoke(main, ["policy", "try", str(response), "--policies", str(tmp_path)])
    assert "kids-next" not in every.output
