"""`tune` against a known ground truth: traffic whose harm depends on Rekognition's confidence
through a known function, run through the real engine with QA sampling into an audit log and a
review desk, reviewed by a scripted reviewer who answers with the truth; the proposal is then
checked on the traffic the same function generates, where its error rates are known exactly."""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import builders
import pytest

from moderation.audit import JsonlAuditLog
from moderation.review import AuditRecordSink, Reviewer, SQLiteReviewDesk
from moderation.tuning import tune

TENANT = (
    "categories:\n"
    "  Violence: {reject: 90, escalate: 60}  # the shipped guess\n"
    "review: {qa_sample: {approved: 0.5, rejected: 0.5}}\n"
)
# Rekognition's confidence takes these values, uniformly (tomorrow's traffic looks like today's).
SCORES = [40 + i / 10 for i in range(600)]
TARGET_APPROVE, TARGET_REJECT, CONFIDENCE = 0.05, 0.05, 0.8
REPETITIONS, IMAGES = 8, 1000
TRUTH = Reviewer("truth", "*")


def harmful_probability(score: float) -> float:
    """The ground truth: P(harmful | Violence confidence)."""
    return 1 / (1 + math.exp(-(score - 75) / 4))


def false_approve_rate(low: float) -> float:
    """The exact false-approve rate of tomorrow's traffic among images approved (score < low)."""
    region = [harmful_probability(s) for s in SCORES if s < low]
    return sum(region) / len(region) if region else 0.0


def false_reject_rate(high: float) -> float:
    region = [1 - harmful_probability(s) for s in SCORES if s >= high]
    return sum(region) / len(region) if region else 0.0


def to_people(low: float, high: float) -> float:
    return sum(1 for s in SCORES if low <= s < high) / len(SCORES)


class Generated:
    """A detector answering with the next generated confidence for Violence."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.score = 0.0

    def detect(self, image: object, *, min_confidence: float) -> object:
        self.score = self.rng.choice(SCORES)
        return builders.detection(("Violence", "", self.score))


def traffic(tmp: Path, seed: int) -> Path:
    """One day of generated traffic moderated by the real engine, every desk item reviewed with
    the ground truth; the audit log's path."""
    rng = random.Random(seed)
    log = JsonlAuditLog(tmp / "audit.jsonl", fsync=False)
    store = builders.store(builders.DEFAULT_POLICY, t=TENANT)
    ids = (f"01JDGT{seed:04d}{n:016d}" for n in itertools.count())
    detector = Generated(rng)
    truth: dict[str, bool] = {}
    with SQLiteReviewDesk(":memory:", sink=AuditRecordSink(log)) as desk:
        engine = builders.engine(store, detector, audit=log, review=desk, new_id=lambda: next(ids))
        for _ in range(IMAGES):
            decision = engine.moderate(builders.IMAGE, tenant="t")
            truth[decision.id] = rng.random() < harmful_probability(detector.score)
        while (item := desk.next(TRUTH)) is not None:
            verdict = "reject" if truth[item.decision_id] else "approve"
            desk.decide(item.id, verdict, reviewer=TRUTH)
    return log.path


@pytest.mark.slow
def test_the_proposal_holds_its_error_rates_on_fresh_traffic(tmp_path: Path):
    # GIVEN a tenant whose Violence band sends 37% of its images to people
    policies = builders.policies_dir(tmp_path, t=TENANT)
    held = 0
    for seed in range(REPETITIONS):
        day = tmp_path / f"day{seed}"
        day.mkdir()
        # WHEN a day of traffic is moderated, reviewed with the truth, and tuned
        log = traffic(day, seed)
        proposal = tune(
            log, policies, "t",
            max_false_approve=TARGET_APPROVE, max_false_reject=TARGET_REJECT,
            confidence=CONFIDENCE,
        )  # fmt: skip
        (violence,) = proposal.rules
        assert violence.status == "changed", violence.notes
        low, high = violence.after["escalate"], violence.after["reject"]
        # THEN on fresh traffic both error rates hold, in at least the asked share of days
        fresh = false_approve_rate(low), false_reject_rate(high)
        held += fresh[0] <= TARGET_APPROVE and fresh[1] <= TARGET_REJECT
        # AND fewer images go to people than under the shipped thresholds
        assert to_people(low, high) < to_people(60, 90)
    assert held >= math.ceil(CONFIDENCE * REPETITIONS)
