"""`moderation review appeal ID --reason TEXT`: a decided image goes back to the top of the desk,
and the appeal is recorded, with who filed it, in the audit log the decision is in."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import builders
import pytest
from clirunner import runner

from moderation.audit import JsonlAuditLog, history, verify_log
from moderation.cli import main
from moderation.review import AuditRecordSink, ItemKind, Reviewer, SQLiteReviewDesk

DEFAULT = "min_confidence: 40\ndefault: {reject: 90, escalate: 60}\nescalation: {judge: none}\n"
BORDERLINE = builders.detection(("Explicit Nudity", "Explicit", 70.0), ("Explicit", "", 70.0))
ALICE = Reviewer("alice", "*")


class Detector:
    def __init__(self, result: object = BORDERLINE) -> None:
        self.result = result

    def detect(self, image: object, *, min_confidence: float) -> object:
        return self.result


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODERATION_REVIEW", "MODERATION_AUDIT", "MODERATION_AUDIT_KEY"):
        monkeypatch.delenv(name, raising=False)


def reviewed(tmp_path: Path, *, decide: bool = True) -> tuple[str, Path, str]:
    """A review decision in a file log, on a desk joined to that log (decided by alice unless
    `decide` is False): its id, the log, the desk's URL."""
    log = tmp_path / "audit.jsonl"
    audit = JsonlAuditLog(log)
    with SQLiteReviewDesk(tmp_path / "desk.db", sink=AuditRecordSink(audit)) as desk:
        engine = builders.engine(builders.store(DEFAULT), Detector(), audit=audit, review=desk)
        decision = engine.moderate(builders.IMAGE)
        if decide:
            item = desk.next(ALICE)
            assert item is not None
            desk.decide(item.id, "reject", reviewer=ALICE)
    return decision.id, log, f"sqlite:///{tmp_path / 'desk.db'}"


def appeal(*args: str, env: dict[str, str] | None = None):
    return runner().invoke(main, ["review", "appeal", *args], env=env or {})


def test_an_appeal_puts_the_decision_back_first_and_records_who_filed_it(tmp_path: Path):
    decision_id, log, url = reviewed(tmp_path)
    # WHEN the platform's user appeals through the command line (the log from MODERATION_AUDIT)
    result = appeal(
        decision_id, "--reason", "it is a statue", "--by", "user-7", "--desk", url,
        env={"MODERATION_AUDIT": str(log)},
    )  # fmt: skip
    # THEN the item is an appeal in a new round, and the appeal is in the verified chain
    assert result.exit_code == 0, result.stdout + result.stderr
    with SQLiteReviewDesk(tmp_path / "desk.db") as desk:
        item = desk.find(decision_id)
    assert item is not None and item.kind is ItemKind.APPEAL and item.round == 2
    assert result.stdout == f"decision {decision_id} is back on the desk: item {item.id}, round 2\n"
    found = history(decision_id, [log])
    assert found is not None
    assert [(a.reason, a.by) for a in found.appeals] == [("it is a statue", "user-7")]
    assert verify_log(log).ok


def test_an_automatic_rejection_is_read_from_the_log_and_appealed_as_a_new_item(tmp_path: Path):
    # GIVEN an automatic rejection the desk never held, under a policy with an SLA
    policies = builders.policies_dir(tmp_path, DEFAULT + "review: {sla: 2h}\n")
    log = tmp_path / "audit.jsonl"
    audit = JsonlAuditLog(log)
    explicit = builders.detection(("Explicit Nudity", "Explicit", 95.0), ("Explicit", "", 95.0))
    with SQLiteReviewDesk(tmp_path / "desk.db", sink=AuditRecordSink(audit)) as desk:
        engine = builders.engine(
            builders.store(DEFAULT), Detector(explicit), audit=audit, review=desk
        )
        rejected = engine.moderate(builders.IMAGE)
        assert desk.find(rejected.id) is None
    # WHEN its uploader appeals
    result = appeal(
        rejected.id, "--reason", "a classical statue", "--by", "user-9",
        "--desk", f"sqlite:///{tmp_path / 'desk.db'}", "--audit", str(log),
        "--policies", str(policies),
    )  # fmt: skip
    # THEN it is an appeal item, first round, due two hours after the appeal, and in the chain
    assert result.exit_code == 0, result.stdout + result.stderr
    with SQLiteReviewDesk(tmp_path / "desk.db") as desk:
        item = desk.find(rejected.id)
    assert item is not None and (item.kind, item.round) == (ItemKind.APPEAL, 1)
    assert item.due_at == item.appeals[0].at + timedelta(hours=2)
    found = history(rejected.id, [log])
    assert found is not None and [a.by for a in found.appeals] == ["user-9"]
    assert verify_log(log).ok


def test_an_appeal_of_an_unknown_decision_exits_1(tmp_path: Path):
    _, log, url = reviewed(tmp_path)
    result = appeal("01NOSUCHDECISION", "--reason", "why", "--desk", url, "--audit", str(log))
    assert result.exit_code == 1
    assert "no item for decision '01NOSUCHDECISION'" in result.stderr
    assert "holds no such decision" in result.stderr


def test_an_appeal_of_an_item_still_waiting_exits_3(tmp_path: Path):
    decision_id, log, url = reviewed(tmp_path, decide=False)
    result = appeal(decision_id, "--reason", "why", "--desk", url, "--audit", str(log))
    assert result.exit_code == 3
    assert "still waiting for a reviewer" in result.stderr


@pytest.mark.parametrize(
    ("drop", "named"), [("--desk", "MODERATION_REVIEW"), ("--audit", "MODERATION_AUDIT")]
)
def test_an_appeal_without_a_desk_or_an_audit_log_is_a_usage_error(tmp_path, drop, named):
    decision_id, log, url = reviewed(tmp_path)
    options = {"--desk": url, "--audit": str(log)}
    del options[drop]
    result = appeal(decision_id, "--reason", "why", *[x for kv in options.items() for x in kv])
    assert result.exit_code == 2
    assert named in result.stderr
    with SQLiteReviewDesk(tmp_path / "desk.db") as desk:
        item = desk.find(decision_id)
    assert item is not None and item.kind is ItemKind.REVIEW  # nothing changed


def test_an_empty_reason_is_refused(tmp_path: Path):
    decision_id, log, url = reviewed(tmp_path)
    result = appeal(decision_id, "--reason", "  ", "--desk", url, "--audit", str(log))
    assert result.exit_code == 3
    assert "reason" in result.stderr
