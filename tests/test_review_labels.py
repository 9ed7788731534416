"""Labels read back from the audit log: each final verdict, knowing how its decision came before
a person (a QA sample at its rate, a review, an appeal), the latest final verdict its truth."""

from __future__ import annotations

from pathlib import Path

import builders

from moderation import Outcome
from moderation.audit import JsonlAuditLog
from moderation.review import AuditRecordSink, LabelKind, Reviewer, SQLiteReviewDesk, labels

DEFAULT = "min_confidence: 40\ndefault: {reject: 90, escalate: 60}\nescalation: {judge: none}\n"
SAMPLED = "review: {qa_sample: {approved: 1.0, rejected: 0.25}}\n"  # every approval sampled
BORDERLINE = builders.detection(("Explicit Nudity", "Explicit", 70.0), ("Explicit", "", 70.0))
CLEAN = builders.detection()
EXPLICIT = builders.detection(("Explicit Nudity", "Explicit", 95.0), ("Explicit", "", 95.0))
ALICE, BOB = Reviewer("alice", "*"), Reviewer("bob", "*")


class Detector:
    def __init__(self, result: object) -> None:
        self.result = result

    def detect(self, image: object, *, min_confidence: float) -> object:
        return self.result


def test_labels_know_how_their_decision_came_before_a_person(tmp_path: Path):
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    store = builders.store(DEFAULT, kids=SAMPLED)
    ids = iter(f"01JDLABEL{n:017d}" for n in range(100))
    # Item ids in enqueue order: the engine's clock is fixed, so the items' times tie, and the
    # desk would order them by ids drawn at random within a millisecond.
    item_ids = iter(f"01JDITEM{n:018d}" for n in range(100))
    sink = AuditRecordSink(log)
    with SQLiteReviewDesk(tmp_path / "desk.db", sink=sink, new_id=lambda: next(item_ids)) as desk:

        def moderate(result: object, tenant: str = "kids"):
            engine = builders.engine(
                store, Detector(result), audit=log, review=desk, new_id=lambda: next(ids)
            )
            return engine.moderate(builders.IMAGE, tenant=tenant)

        sampled = moderate(CLEAN)  # a QA sample (rate 1.0)
        review = moderate(BORDERLINE)  # the policy sent it to review
        unreviewed = moderate(BORDERLINE)  # nobody got to it yet
        automatic = moderate(EXPLICIT, tenant="default")  # rejected: not sampled by default
        # WHEN alice approves the QA sample and rejects the review (whichever comes first)
        for _ in range(2):
            item = desk.next(ALICE)
            assert item is not None and item.decision_id in (sampled.id, review.id)
            verdict = "approve" if item.decision_id == sampled.id else "reject"
            desk.decide(item.id, verdict, reviewer=ALICE)
        # AND bob rejects the QA sample on appeal, and approves the appealed automatic rejection
        desk.appeal(sampled.id, "this is not what it looks like", by="user-1")
        desk.appeal(automatic, "a statue", by="user-2")
        for _ in range(2):
            item = desk.next(BOB)
            assert item is not None
            verdict = "reject" if item.decision_id == sampled.id else "approve"
            desk.decide(item.id, verdict, reviewer=BOB)
    found = {label.decision.id: label for label in labels(log.path)}
    # THEN the QA sample stays a QA label at its rate, its truth the appeal's final verdict
    qa = found[sampled.id]
    assert (qa.kind, qa.qa_rate, qa.weight, qa.outcome, qa.reviewer) == (
        LabelKind.QA, 1.0, 1.0, Outcome.REJECTED, "bob",
    )  # fmt: skip
    assert qa.harmful and qa.machine_was_right is False and qa.category is None
    assert found[review.id].category == "default" and found[automatic.id].category == "default"
    # AND the review label has no rate and no machine call to be right about
    rev = found[review.id]
    assert (rev.kind, rev.qa_rate, rev.outcome, rev.machine_was_right) == (
        LabelKind.REVIEW, None, Outcome.REJECTED, None,
    )  # fmt: skip
    # AND an appealed automatic outcome is an appeal label, never one to estimate error rates
    appealed = found[automatic.id]
    assert (appealed.kind, appealed.outcome, appealed.machine_was_right) == (
        LabelKind.APPEAL, Outcome.APPROVED, False,
    )  # fmt: skip
    # AND a decision without a final verdict is no label; labels come in the decisions' order
    assert unreviewed.id not in found
    assert list(found) == [sampled.id, review.id, automatic.id]


def test_a_qa_label_weighs_one_over_its_rate(tmp_path: Path):
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    store = builders.store(DEFAULT, kids="review: {qa_sample: {approved: 0.25}}\n")
    ids = iter(f"01JDWEIGHT{n:016d}" for n in range(1000))
    with SQLiteReviewDesk(tmp_path / "desk.db", sink=AuditRecordSink(log)) as desk:
        engine = builders.engine(
            store, Detector(CLEAN), audit=log, review=desk, new_id=lambda: next(ids)
        )
        for _ in range(40):
            engine.moderate(builders.IMAGE, tenant="kids")
        while (item := desk.next(ALICE)) is not None:
            desk.decide(item.id, "approve", reviewer=ALICE)
    found = list(labels(log.path))
    assert 0 < len(found) < 40
    assert {(label.kind, label.qa_rate, label.weight) for label in found} == {
        (LabelKind.QA, 0.25, 4.0)
    }
