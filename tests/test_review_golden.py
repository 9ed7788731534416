"""Golden items end to end: the policy's rate reaches the desk, verdicts on showings are golden
records in the audit log that measure reviewers (golden_accuracy) and are never labels nor
change what a decision came to; `moderation review golden add|list`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import builders
import pytest
from clirunner import runner
from pydantic import ValidationError

from moderation import Outcome
from moderation.audit import JsonlAuditLog, golden_verdicts, history
from moderation.cli import main
from moderation.review import (
    AuditRecordSink,
    Reviewer,
    ReviewMessage,
    SQLiteReviewDesk,
    desk_rules,
    golden_accuracy,
    label_of,
    labels,
    message_rules,
)
from moderation.review_records import DecisionHistory, ReviewRecord, final_outcome, final_review
from moderation.stats import clopper_pearson

DEFAULT = "min_confidence: 40\ndefault: {reject: 90, escalate: 60}\nescalation: {judge: none}\n"
GOLDEN_KIDS = "review: {golden_rate: 1.0}\n"  # every new kids item brings a golden item along
BORDERLINE = builders.detection(("Explicit Nudity", "Explicit", 70.0), ("Explicit", "", 70.0))
EXPLICIT = builders.detection(("Explicit Nudity", "Explicit", 95.0), ("Explicit", "", 95.0))
ALICE, BOB = Reviewer("alice", "*"), Reviewer("bob", "*")
AT = datetime(2026, 5, 1, tzinfo=UTC)


class Detector:
    def __init__(self, result: object) -> None:
        self.result = result

    def detect(self, image: object, *, min_confidence: float) -> object:
        return self.result


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODERATION_REVIEW", "MODERATION_AUDIT", "MODERATION_AUDIT_KEY"):
        monkeypatch.delenv(name, raising=False)


def review(reviewer: str, verdict: str, answer: str | None = None, **kw: object) -> ReviewRecord:
    golden = {"item_kind": "golden", "golden_answer": answer} if answer else {}
    return ReviewRecord(
        decision_id=str(kw.pop("decision_id", "d1")),
        item_id=str(kw.pop("item_id", "i1")),
        reviewer=reviewer,
        verdict=verdict,  # type: ignore[arg-type]
        at=AT,
        **golden,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


# -- the records --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"item_kind": "golden"}, "only it, has a golden_answer"),
        ({"golden_answer": "approve"}, "only it, has a golden_answer"),
        ({"item_kind": "golden", "golden_answer": "skip"}, "golden_answer"),
        (
            {"item_kind": "golden", "golden_answer": "reject", "final": True},
            "it is never final",
        ),
    ],
)
def test_a_golden_record_has_its_answer_and_is_never_final(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        ReviewRecord(
            decision_id="d1", item_id="i1", reviewer="a", verdict="reject", at=AT, **fields
        )  # type: ignore[arg-type]


def test_a_golden_verdict_is_no_final_verdict_and_no_label() -> None:
    decision = builders.engine(builders.store(DEFAULT), Detector(EXPLICIT)).moderate(builders.IMAGE)
    golden = review("alice", "approve", "reject", decision_id=decision.id)
    assert (golden.golden, golden.correct) == (True, False)
    assert review("alice", "reject", "reject").correct is True
    assert (
        review("alice", "skip", "reject").correct is None and review("a", "reject").correct is None
    )
    # even a history that holds one among its reviews takes neither outcome nor label from it
    mixed = DecisionHistory(decision, (golden,))
    assert final_review([golden]) is None and mixed.final is None
    assert final_outcome(decision, [golden]) is Outcome.REJECTED
    assert label_of(mixed) is None


# -- end to end through the engine and the audit log ----------------------------------------------


def golden_desk(tmp_path: Path) -> tuple[Path, str, str]:
    """A kids desk at golden rate 1 joined to its audit log: an automatic rejection made golden
    with the answer reject, then a review decision that brings it along; bob approves both.
    Returns the log, the golden decision's id and the review decision's id."""
    log = tmp_path / "audit.jsonl"
    audit = JsonlAuditLog(log)
    store = builders.store(DEFAULT, kids=GOLDEN_KIDS)
    with SQLiteReviewDesk(tmp_path / "desk.db", sink=AuditRecordSink(audit)) as desk:
        ids = iter(f"01JDGOLDEN{n:016d}" for n in range(10))

        def moderate(result: object) -> object:
            engine = builders.engine(
                store, Detector(result), audit=audit, review=desk, new_id=lambda: next(ids)
            )
            return engine.moderate(builders.IMAGE, tenant="kids")

        automatic = moderate(EXPLICIT)
        desk.add_golden(automatic, "reject")  # type: ignore[arg-type]
        reviewed = moderate(BORDERLINE)
        seen = []
        while (item := desk.next(BOB)) is not None:
            seen.append(item.decision_id)
            desk.decide(item.id, "approve", reviewer=BOB)
        assert sorted(seen) == sorted([reviewed.id, automatic.id])  # type: ignore[attr-defined]
    return log, automatic.id, reviewed.id  # type: ignore[attr-defined]


def test_the_policys_golden_rate_reaches_the_desk(tmp_path: Path) -> None:
    store = builders.store(DEFAULT, kids=GOLDEN_KIDS)
    decision = builders.engine(store, Detector(BORDERLINE)).moderate(builders.IMAGE, tenant="kids")
    assert desk_rules(decision, store.get("kids")).golden_rate == 1.0
    assert desk_rules(decision, store.get("default")).golden_rate == 0.0
    # AND to an item the Lambda's queue brings
    message = ReviewMessage.model_validate(
        {"schema": 1, "decision_id": "d1", "tenant": "kids", "bucket": "b", "key": "k",
         "policy_id": "kids"}
    )  # fmt: skip
    assert message_rules(message, store.get("kids")).golden_rate == 1.0


def test_a_golden_verdict_is_recorded_but_changes_no_outcome_and_makes_no_label(
    tmp_path: Path,
) -> None:
    log, golden_id, reviewed_id = golden_desk(tmp_path)
    # THEN the verdict on the showing is in the log as golden, with the answer
    (record,) = golden_verdicts(log)
    assert (record.decision_id, record.reviewer, record.verdict) == (golden_id, "bob", "approve")
    assert (record.golden_answer, record.final) == ("reject", False)
    # AND the golden decision still came to the machine's rejection, its history keeps it apart
    found = history(golden_id, log)
    assert found is not None and found.outcome is Outcome.REJECTED and found.final is None
    assert found.reviews == () and found.golden == (record,)
    # AND only the review decision is a label
    assert [label.decision.id for label in labels(log)] == [reviewed_id]
    # AND `audit show` says what the golden verdict was, and that the outcome is the machine's
    shown = runner().invoke(main, ["audit", "show", golden_id, str(log)])
    text = shown.stdout + shown.stderr
    assert shown.exit_code == 0, text
    assert "final outcome: rejected (the machine's: no final verdict)" in text
    assert "golden item verdicts" in text and "known answer: reject" in text


def test_golden_accuracy_counts_each_reviewers_verdicts_against_the_answers(
    tmp_path: Path,
) -> None:
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    for reviewer, verdict, answer in [
        ("alice", "reject", "reject"),
        ("alice", "approve", "approve"),
        ("alice", "approve", "reject"),
        ("alice", "reject", "reject"),
        ("alice", "skip", "reject"),
        ("bob", "approve", "reject"),
    ]:
        log.append_record(review(reviewer, verdict, answer))
    log.append_record(review("carol", "reject", final=True))  # an ordinary verdict: not counted
    found = golden_accuracy(log.path)
    assert list(found) == ["alice", "bob"]
    alice, bob = found["alice"], found["bob"]
    assert (alice.correct, alice.total, alice.skipped, alice.accuracy) == (3, 4, 1, 0.75)
    assert alice.interval == clopper_pearson(3, 4, 0.95)
    assert (bob.correct, bob.total, bob.accuracy) == (0, 1, 0.0)
    assert golden_accuracy(log.path, confidence=0.8)["bob"].interval == clopper_pearson(0, 1, 0.8)
    assert 0 < alice.interval.low < 0.75 < alice.interval.high < 1


def test_golden_accuracy_reads_the_desks_records(tmp_path: Path) -> None:
    log, _, _ = golden_desk(tmp_path)
    (bob,) = golden_accuracy(log).values()
    assert (bob.reviewer, bob.correct, bob.total) == ("bob", 0, 1)  # approved a known reject


# -- the command line --------------------------------------------------------------------------


def golden_cli(*args: str, env: dict[str, str] | None = None):
    return runner().invoke(main, ["review", "golden", *args], env=env or {})


def logged(tmp_path: Path) -> tuple[str, str, Path, str]:
    """An automatic rejection and a review decision of kids in a file log, the review one on a
    desk: their ids, the log, the desk's URL."""
    log = tmp_path / "audit.jsonl"
    audit = JsonlAuditLog(log)
    store = builders.store(DEFAULT, kids="min_confidence: 40\n")
    with SQLiteReviewDesk(tmp_path / "desk.db", sink=AuditRecordSink(audit)) as desk:
        ids = iter(f"01JDLOGGED{n:016d}" for n in range(10))
        automatic, reviewed = (
            builders.engine(store, Detector(d), audit=audit, review=desk, new_id=lambda: next(ids))
            for d in (EXPLICIT, BORDERLINE)
        )
        first = automatic.moderate(builders.IMAGE, tenant="kids")
        second = reviewed.moderate(builders.IMAGE, tenant="kids")
    return first.id, second.id, log, f"sqlite:///{tmp_path / 'desk.db'}"


def test_golden_add_reads_the_decision_from_the_desk_or_the_audit_log(tmp_path: Path) -> None:
    automatic, reviewed, log, url = logged(tmp_path)
    # a decision the desk holds: from its item, quietly
    result = golden_cli("add", reviewed, "--answer", "reject", "--desk", url)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stdout == f"decision {reviewed} is a golden item of kids: answer reject\n"
    assert result.stderr == ""
    # an automatic outcome: from the audit log, with a warning that its reasons may tell
    result = golden_cli(
        "add", automatic, "--answer", "reject", "--desk", url, "--json",
        env={"MODERATION_AUDIT": str(log)},
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    added = json.loads(result.stdout)
    assert (added["decision_id"], added["tenant"], added["answer"], added["shown"]) == (
        automatic, "kids", "reject", 0,
    )  # fmt: skip
    assert "was not a review outcome (rejected)" in result.stderr
    # AND both are listed
    listed = golden_cli("list", "--desk", url, "--json")
    assert listed.exit_code == 0, listed.stdout + listed.stderr
    assert sorted(g["decision_id"] for g in json.loads(listed.stdout)["golden"]) == sorted(
        [automatic, reviewed]
    )
    text = golden_cli("list", "--desk", url, "--tenant", "kids").stdout
    assert f"kids  {reviewed}  reject  shown 0" in text
    assert golden_cli("list", "--desk", url, "--tenant", "none").stdout == (
        "no golden items of none\n"
    )


def test_golden_add_of_an_unknown_decision_exits_1(tmp_path: Path) -> None:
    _, _, log, url = logged(tmp_path)
    result = golden_cli(
        "add", "01NOSUCHDECISION", "--answer", "approve", "--desk", url, "--audit", str(log)
    )
    assert result.exit_code == 1
    assert "holds no such decision" in result.stderr and "01NOSUCHDECISION" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "d1", "--answer", "maybe", "--desk", "sqlite:///x.db"], "'maybe' is not one of"),
        (["add", "d1", "--desk", "sqlite:///x.db"], "Missing option '--answer'"),
        (["add", "d1", "--answer", "approve"], "no review desk"),
        (["list"], "no review desk"),
    ],
)
def test_golden_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = golden_cli(*args)
    assert result.exit_code == 2
    assert message in result.stdout + result.stderr
