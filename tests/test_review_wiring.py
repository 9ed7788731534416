"""The engine joined to the review desk: review decisions (and blind QA samples) become items after
their audit record, a failed enqueue costs no decision and is recovered by backfill, and the
desk's verdicts land in the engine's audit chain."""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import builders
import pytest
from clirunner import runner

from moderation import Decision, Engine, Outcome
from moderation.audit import (
    InMemoryAuditLog,
    JsonlAuditLog,
    decisions,
    history,
    records,
    verify_log,
)
from moderation.cli import main
from moderation.errors import ConfigurationError, ReviewError
from moderation.ports import AuditLog
from moderation.review import (
    AuditRecordSink,
    DeliveringDesk,
    ItemKind,
    PostgresReviewDesk,
    Reviewer,
    SQLiteReviewDesk,
    backfill,
    desk_rules,
    open_image_store,
)
from moderation.review_records import AppealRecord, ReviewRecord
from moderation.review_sampling import qa_sampled
from moderation.settings import Settings
from moderation.wiring import parts_from_env, review_desk

# Judge none: a borderline image is a `review` decision, a clear one is approved or rejected.
DEFAULT = "min_confidence: 40\ndefault: {reject: 90, escalate: 60}\nescalation: {judge: none}\n"
KIDS = (
    "review: {sla: 4h, reviewers: 2, priority: {Explicit: 40, Violence: 10},"
    " qa_sample: {approved: 0.5, rejected: 0.0}}\n"
)
BORDERLINE = builders.detection(("Explicit Nudity", "Explicit", 70.0), ("Explicit", "", 70.0))
CLEAN = builders.detection()
EXPLICIT = builders.detection(("Explicit Nudity", "Explicit", 95.0), ("Explicit", "", 95.0))
ALICE = Reviewer("alice", frozenset({"default", "kids"}))
KEY_ENV = "MODERATION_AUDIT_KEY"


class Detector:
    """Answers every image with `result`."""

    def __init__(self, result: Any) -> None:
        self.result = result

    def detect(self, image: Any, *, min_confidence: float) -> Any:
        return self.result


class BrokenDesk:
    """A desk whose enqueue fails (a locked file, a server that is down)."""

    def __init__(self) -> None:
        self.calls = 0

    def enqueue(self, item: Any, **kwargs: Any) -> Any:
        self.calls += 1
        raise ReviewError("review desk desk.db: database is locked")


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv("MODERATION_REVIEW", raising=False)


def ids(prefix: str = "01JD000000000000000000") -> Callable[[], str]:
    counter = itertools.count()
    return lambda: f"{prefix}{next(counter):04d}"


def clock() -> Callable[[], float]:
    return lambda: builders.NOW.timestamp()


def make_engine(detection: Any, desk: Any, audit: AuditLog | None = None, **kw: Any) -> Engine:
    return builders.engine(
        builders.store(DEFAULT, kids=KIDS), Detector(detection), audit=audit, review=desk,
        new_id=kw.pop("new_id", ids()), **kw,
    )  # fmt: skip


@pytest.fixture
def desk(tmp_path: Path) -> SQLiteReviewDesk:
    with SQLiteReviewDesk(tmp_path / "desk.db", clock=clock()) as opened:
        yield opened


# -- a decision becomes an item ------------------------------------------------------------------


def test_a_review_decision_becomes_an_item_with_its_tenants_rules(desk: SQLiteReviewDesk):
    # GIVEN the kids policy: two reviewers, a 4 h SLA, Explicit at priority 40
    engine = make_engine(BORDERLINE, desk)
    # WHEN a borderline image is moderated
    decision = engine.moderate(builders.IMAGE, tenant="kids")
    # THEN its item is on the desk, made after the audit record, with the policy's rules
    assert decision.outcome is Outcome.REVIEW
    item = desk.find(decision.id)
    assert item is not None
    assert builders.audited(engine) == [decision]
    assert (item.kind, item.tenant, item.reviewers_needed, item.priority) == (
        ItemKind.REVIEW, "kids", 2, 40,
    )  # fmt: skip
    assert item.due_at == item.created_at + timedelta(hours=4)
    assert item.reasons == decision.reasons
    assert [(f.label, f.band) for f in item.findings] == [("Explicit Nudity", "escalate")]
    assert item.image is not None and item.image.store_key == decision.image.sha256


def test_the_item_is_made_after_the_audit_record_is_written():
    # GIVEN a desk that looks in the audit log when it is asked to enqueue
    audit = InMemoryAuditLog()
    seen: list[list[Decision]] = []

    class Watching(BrokenDesk):
        def enqueue(self, item: Any, **kwargs: Any) -> Any:
            seen.append(list(audit.decisions))

    decision = make_engine(BORDERLINE, Watching(), audit).moderate(builders.IMAGE)
    # THEN the decision was already in the log then
    assert seen == [[decision]]


def test_a_tenant_without_a_review_section_gets_the_default_rules(desk: SQLiteReviewDesk):
    decision = make_engine(BORDERLINE, desk).moderate(builders.IMAGE)
    item = desk.find(decision.id)
    assert item is not None
    assert (item.reviewers_needed, item.priority) == (1, 0)
    assert item.due_at == item.created_at + timedelta(hours=24)


@pytest.mark.parametrize(("detection", "outcome"), [(CLEAN, "approved"), (EXPLICIT, "rejected")])
def test_an_automatic_outcome_is_no_item_without_qa_sampling(desk, detection, outcome):
    decision = make_engine(detection, desk).moderate(builders.IMAGE)
    assert decision.outcome == outcome
    assert desk.find(decision.id) is None


def test_qa_samples_the_approvals_the_decision_id_picks_and_leaves_the_outcome(desk):
    # GIVEN kids samples half of its approvals, none of its rejections
    engine = make_engine(CLEAN, desk)
    # WHEN twenty clean images are moderated
    made = [engine.moderate(builders.IMAGE, tenant="kids") for _ in range(20)]
    # THEN exactly those the id's draw picks are `qa` items, and every outcome stays approved
    policy = engine.policies.get("kids")
    picked = {d.id for d in made if qa_sampled(d.id, d.outcome, policy.review_rules)}
    assert 0 < len(picked) < 20  # the rate is neither all nor nothing
    on_desk = {d.id for d in made if desk.find(d.id) is not None}
    assert on_desk == picked
    assert {desk.find(i).kind for i in picked} == {ItemKind.QA}  # type: ignore[union-attr]
    assert {d.outcome for d in made} == {Outcome.APPROVED}


def test_each_review_record_says_how_its_decision_came_before_a_person(tmp_path: Path):
    # GIVEN a desk joined to the log, a QA-sampled approval and a review decision on it
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    with SQLiteReviewDesk(tmp_path / "desk.db", clock=clock(), sink=AuditRecordSink(log)) as desk:
        approvals = [make_engine(CLEAN, desk, log).moderate(builders.IMAGE, tenant="kids")
                     for _ in range(6)]  # fmt: skip
        sampled = next(d for d in approvals if desk.find(d.id) is not None)
        review = make_engine(BORDERLINE, desk, log, new_id=ids("01JD9")).moderate(builders.IMAGE)
        # WHEN each is skipped once, then decided, and the review is appealed and decided again
        bob = Reviewer("bob", "*", "senior")
        for _ in range(2):
            item = desk.next(ALICE)
            assert item is not None
            desk.release(item.id, reviewer=ALICE)
            assert desk.next(bob) == desk.get(item.id)  # the same order for everyone
            desk.decide(item.id, "approve", reviewer=bob)
        desk.appeal(review.id, "look again")
        carol = Reviewer("carol", "*")
        desk.decide(desk.next(carol).id, "reject", reviewer=carol)  # type: ignore[union-attr]
    # THEN every review record names its item's kind, and a QA sample's records its rate
    told: dict[str, list[tuple[str, str, float | None]]] = {}
    for r in records(log.path):
        if isinstance(r, ReviewRecord):
            told.setdefault(r.decision_id, []).append((r.verdict, r.item_kind, r.qa_rate))
    assert told == {
        sampled.id: [("skip", "qa", None), ("approve", "qa", 0.5)],
        review.id: [("skip", "review", None), ("approve", "review", None),
                    ("reject", "appeal", None)],
    }  # fmt: skip


def test_rejections_are_not_sampled_at_a_rate_of_zero(desk):
    made = [make_engine(EXPLICIT, desk).moderate(builders.IMAGE, tenant="kids") for _ in range(5)]
    assert all(desk.find(d.id) is None for d in made)


# -- a desk that fails ---------------------------------------------------------------------------


def test_a_failed_enqueue_is_logged_with_the_decision_id_and_moderate_still_returns(caplog):
    broken = BrokenDesk()
    engine = make_engine(BORDERLINE, broken)
    with caplog.at_level(logging.ERROR, logger="moderation.review"):
        decision = engine.moderate(builders.IMAGE, tenant="kids")
    assert decision.outcome is Outcome.REVIEW
    assert builders.audited(engine) == [decision]  # the audit log holds it: backfill recovers it
    assert broken.calls == 1
    [logged] = [r for r in caplog.records if r.name == "moderation.review"]
    assert logged.levelno == logging.ERROR
    assert decision.id in logged.getMessage()
    assert "backfill" in logged.getMessage()
    assert "database is locked" in logged.exc_text  # type: ignore[operator]


def test_an_engine_without_a_desk_makes_no_items(caplog):
    engine = make_engine(BORDERLINE, None)
    with caplog.at_level(logging.DEBUG, logger="moderation.review"):
        engine.moderate(builders.IMAGE)
    assert not [r for r in caplog.records if r.name == "moderation.review"]


# -- backfill ------------------------------------------------------------------------------------


def moderate_into_log(log: Path, *, key: str | None = None) -> tuple[Decision, Decision, Decision]:
    """Into the file log `log`: a review enqueued, a review whose enqueue failed, an approval."""
    audit = JsonlAuditLog(log, key=key)
    desk = SQLiteReviewDesk(log.parent / "desk.db", clock=clock())
    new_id = ids()
    first = make_engine(BORDERLINE, desk, audit, new_id=new_id).moderate(builders.IMAGE)
    lost = make_engine(BORDERLINE, BrokenDesk(), audit, new_id=new_id).moderate(builders.IMAGE)
    approved = make_engine(CLEAN, desk, audit, new_id=new_id).moderate(builders.IMAGE)
    desk.close()
    return first, lost, approved


def run_backfill(tmp_path: Path, log: Path, *args: str, env: dict[str, str] | None = None):
    policies = tmp_path / "policies"
    if not policies.exists():
        builders.policies_dir(tmp_path, DEFAULT, kids=KIDS)
    return runner().invoke(
        main,
        ["review", "backfill", str(log), "--policies", str(policies), *args],
        env=env or {},
    )


def test_backfill_after_a_failed_enqueue_adds_exactly_the_missing_item_once(tmp_path: Path):
    log = tmp_path / "audit.jsonl"
    first, lost, approved = moderate_into_log(log)
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    # WHEN the log is backfilled into the desk
    result = run_backfill(tmp_path, log, "--desk", url)
    # THEN the lost review is added, the held one counted, the approval left alone
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stdout == "1 added, 1 already on the desk\n"
    with SQLiteReviewDesk(tmp_path / "desk.db") as desk:
        item = desk.find(lost.id)
        assert item is not None and item.kind is ItemKind.REVIEW
        assert desk.find(approved.id) is None
        held = desk.find(first.id)
    # AND a second backfill adds nothing (the desk URL from MODERATION_REVIEW this time)
    again = run_backfill(tmp_path, log, env={"MODERATION_REVIEW": url})
    assert again.exit_code == 0, again.output + again.stderr
    assert again.stdout == "0 added, 2 already on the desk\n"
    with SQLiteReviewDesk(tmp_path / "desk.db") as desk:
        assert desk.find(first.id) == held  # the held item is untouched


def test_a_backfilled_item_is_due_from_its_decision_not_from_the_backfill(tmp_path: Path):
    # GIVEN a review decision made four hours before a backfill, under kids' 4-hour SLA
    log = tmp_path / "audit.jsonl"
    decision = make_engine(BORDERLINE, BrokenDesk(), JsonlAuditLog(log)).moderate(
        builders.IMAGE, tenant="kids"
    )
    later = decision.created_at.timestamp() + 4 * 3600
    with SQLiteReviewDesk(tmp_path / "desk.db", clock=lambda: later) as desk:
        backfill(desk, decisions(log), lambda d: builders.store(DEFAULT, kids=KIDS).get("kids"))
        item = desk.find(decision.id)
        # THEN its age counts from the decision, and it is already due: it goes first
        assert item is not None
        assert item.created_at == decision.created_at
        assert item.due_at == decision.created_at + timedelta(hours=4)


def test_backfill_uses_the_desk_rules_of_the_decisions_policy(tmp_path: Path):
    log = tmp_path / "audit.jsonl"
    engine = make_engine(BORDERLINE, BrokenDesk(), JsonlAuditLog(log))
    decision = engine.moderate(builders.IMAGE, tenant="kids")
    result = run_backfill(tmp_path, log, "--desk", f"sqlite:///{tmp_path / 'desk.db'}")
    assert result.exit_code == 0, result.stderr
    with SQLiteReviewDesk(tmp_path / "desk.db") as desk:
        item = desk.find(decision.id)
    assert item is not None
    assert (item.reviewers_needed, item.priority) == (2, 40)


def test_backfill_of_a_keyed_log_reads_only_records_that_verify(tmp_path: Path):
    log = tmp_path / "audit.jsonl"
    moderate_into_log(log, key="s3cret")
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    # A wrong key: no record verifies, so nothing is enqueued and the run says so
    wrong = run_backfill(tmp_path, log, "--desk", url, env={KEY_ENV: "guess"})
    assert wrong.exit_code == 1
    assert wrong.stdout == "0 added, 0 already on the desk\n"
    assert "did not verify" in wrong.stderr
    right = run_backfill(tmp_path, log, "--desk", url, env={KEY_ENV: "s3cret"})
    assert right.exit_code == 0, right.stderr
    assert right.stdout == "1 added, 1 already on the desk\n"


def test_backfill_without_a_desk_or_with_a_bad_one_is_a_usage_error(tmp_path: Path):
    log = tmp_path / "audit.jsonl"
    moderate_into_log(log)
    assert run_backfill(tmp_path, log).exit_code == 2
    bad = run_backfill(tmp_path, log, "--desk", "mysql://root:pw@db/desk")
    assert bad.exit_code == 2
    assert "pw" not in bad.stderr


def test_backfill_of_a_log_that_does_not_exist_exits_1(tmp_path: Path):
    result = run_backfill(
        tmp_path, tmp_path / "nowhere.jsonl", "--desk", f"sqlite:///{tmp_path / 'd.db'}"
    )
    assert result.exit_code == 1
    assert "nowhere.jsonl" in result.stderr


def test_the_backfill_function_is_idempotent_by_decision_id(desk: SQLiteReviewDesk):
    engine = make_engine(BORDERLINE, BrokenDesk())
    made = [engine.moderate(builders.IMAGE, tenant="kids") for _ in range(3)]
    kids = engine.policies.get("kids")
    first = backfill(desk, made, lambda d: kids)
    second = backfill(desk, made, lambda d: kids)
    assert (first.added, first.held, second.added, second.held) == (3, 0, 0, 3)
    assert desk.find(made[0].id).priority == desk_rules(made[0], kids).priority  # type: ignore[union-attr]


# -- MODERATION_REVIEW and the audit chain -------------------------------------------------------


@pytest.fixture
def aws(fake_aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")


def env_engine(tmp_path: Path, detection: Any, desk: str = "") -> tuple[Engine, Path]:
    """The environment's engine with MODERATION_REVIEW (`desk`, else a SQLite file) and a file
    log, answering `detection`."""
    log = tmp_path / "audit.jsonl"
    env = {
        "MODERATION_POLICIES": str(builders.policies_dir(tmp_path, DEFAULT, kids=KIDS)),
        "MODERATION_AUDIT": str(log),
        "MODERATION_JUDGE": "none",
        "MODERATION_REVIEW": desk or f"sqlite:///{tmp_path / 'desk.db'}",
    }
    _, parts = parts_from_env(env)
    return Engine.from_parts(dataclasses.replace(parts, detector=Detector(detection))), log


def test_moderation_review_builds_the_desk_the_engine_enqueues_to(aws, tmp_path: Path):
    engine, _ = env_engine(tmp_path, BORDERLINE)
    # the desk, wrapped to deliver a final verdict's effects right after it (docs/review.md)
    assert isinstance(engine.review, DeliveringDesk)
    assert isinstance(engine.review.desk, SQLiteReviewDesk)
    assert engine.review.desk.path == tmp_path / "desk.db"
    decision = engine.moderate(builders.IMAGE)
    assert engine.review.find(decision.id) is not None


def test_moderation_review_opens_a_postgresql_desk(aws, tmp_path: Path, postgres_dsn: str):
    engine, log = env_engine(tmp_path, BORDERLINE, desk=postgres_dsn)
    assert isinstance(engine.review, DeliveringDesk)
    assert isinstance(engine.review.desk, PostgresReviewDesk)
    decision = engine.moderate(builders.IMAGE)
    leased = engine.review.next(ALICE)
    assert leased is not None and leased.decision_id == decision.id
    engine.review.decide(leased.id, "approve", reviewer=ALICE)
    assert [type(e) for e in records(log)] == [Decision, ReviewRecord]
    engine.review.close()


def test_a_verdict_lands_in_the_engines_audit_chain_and_verifies(aws, tmp_path: Path):
    engine, log = env_engine(tmp_path, BORDERLINE)
    desk = engine.review
    assert desk is not None
    decision = engine.moderate(builders.IMAGE)
    # WHEN bob skips it, alice rejects it, and the decision is then appealed
    bob = Reviewer("bob", "*")
    skipped = desk.next(bob)
    assert skipped is not None
    desk.release(skipped.id, reviewer=bob)
    leased = desk.next(ALICE)
    assert leased is not None and leased.decision_id == decision.id
    desk.decide(leased.id, "reject", reviewer=ALICE, note="real", categories=["Explicit"])
    desk.appeal(decision.id, "it is a painting", by="user-42")
    # THEN the log holds the decision, then the skip, review and appeal records, in one chain
    entries = list(records(log))
    assert [type(e) for e in entries] == [Decision, ReviewRecord, ReviewRecord, AppealRecord]
    skip, review, appeal = entries[1], entries[2], entries[3]
    assert isinstance(skip, ReviewRecord)
    assert (skip.reviewer, skip.verdict, skip.final) == ("bob", "skip", False)
    assert isinstance(review, ReviewRecord) and isinstance(appeal, AppealRecord)
    assert (review.decision_id, review.item_id, review.reviewer, review.verdict) == (
        decision.id, leased.id, "alice", "reject",
    )  # fmt: skip
    assert review.final and review.categories == ("Explicit",) and review.note == "real"
    assert (appeal.decision_id, appeal.reason) == (decision.id, "it is a painting")
    assert appeal.by == "user-42"
    report = verify_log(log)
    assert report.ok and (report.decisions, report.reviews, report.appeals) == (1, 2, 1)
    found = history(decision.id, log, verified=True)
    assert found is not None and found.outcome is Outcome.REJECTED
    verified = runner().invoke(main, ["audit", "verify", str(log)], env={})
    assert verified.exit_code == 0, verified.stderr
    assert "1 decisions, 2 reviews, 1 appeal" in verified.stdout


def test_a_bad_moderation_review_is_named_with_the_other_problems(aws, tmp_path: Path):
    with pytest.raises(ConfigurationError) as caught:
        parts_from_env({"MODERATION_REVIEW": "mysql://root:pw@db/desk", "MODERATION_JUDGE": "x"})
    judge, review = caught.value.problems
    assert judge.startswith("MODERATION_JUDGE:")
    assert review == (
        "MODERATION_REVIEW: must be a review desk URL, sqlite:///PATH or postgresql://..., got "
        "mysql://..."
    )
    with pytest.raises(ConfigurationError) as postgres:
        parts_from_env(
            {
                "MODERATION_POLICIES": str(builders.policies_dir(tmp_path)),
                "MODERATION_REVIEW": f"postgresql://root:s3cret@/desk?host={tmp_path}",
            }
        )
    [problem] = postgres.value.problems  # no server listens there
    assert problem.startswith("MODERATION_REVIEW: cannot open the review desk postgresql://root@")
    assert "s3cret" not in problem


def test_a_desk_needs_an_audit_log_that_records_verdicts(tmp_path: Path):
    class DecisionsOnly:
        def append(self, decision: Decision) -> None: ...

    settings = Settings(review=f"sqlite:///{tmp_path / 'desk.db'}")
    with pytest.raises(ConfigurationError, match=r"MODERATION_REVIEW: .*cannot record review"):
        review_desk(settings, DecisionsOnly())
    assert review_desk(Settings(), DecisionsOnly()) is None


def test_the_desk_url_is_kept_out_of_the_settings_repr():
    assert "pw" not in repr(Settings(review="postgresql://root:pw@db/desk"))


def test_the_audit_sink_refuses_a_log_that_cannot_record():
    with pytest.raises(ReviewError, match="append_record"):
        AuditRecordSink(object())  # type: ignore[arg-type]


def test_the_example_of_docs_review_md_from_decisions_to_items_runs(tmp_path, monkeypatch):
    text = (builders.ROOT / "docs" / "review.md").read_text(encoding="utf-8")
    section = text[text.index("## From decisions to items") :]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    scope: dict[str, Any] = {
        "policies": builders.store(DEFAULT),
        "detector": Detector(BORDERLINE),
        "judge": None,
    }
    exec(compile(example, "docs/review.md", "exec"), scope)
    decision = scope["engine"].moderate(builders.IMAGE)
    desk = scope["desk"]
    leased = desk.next(ALICE)
    assert leased is not None and leased.decision_id == decision.id
    desk.decide(leased.id, "approve", reviewer=ALICE)
    desk.close()
    assert [type(e) for e in records(tmp_path / "audit.jsonl")] == [Decision, ReviewRecord]
    assert verify_log(tmp_path / "audit.jsonl").ok


def test_the_backfill_help_lists_its_exit_codes():
    result = runner().invoke(main, ["review", "backfill", "--help"], env={})
    assert result.exit_code == 0
    for line in ("0  done", "1  a log was not found", "2  usage error", "3  the desk failed"):
        assert line in result.stdout
    assert "MODERATION_REVIEW" in result.stdout


def test_moderation_check_puts_its_review_decisions_on_the_desk(tmp_path: Path):
    # GIVEN MODERATION_REVIEW and a file audit log for an offline run of two images
    root = builders.ROOT
    log = tmp_path / "audit.jsonl"
    env = {
        "MODERATION_REVIEW": f"sqlite:///{tmp_path / 'desk.db'}",
        "MODERATION_AUDIT": str(log),
        "MODERATION_REVIEW_IMAGES": str(tmp_path / "images"),
    }
    images = [str(root / "examples/images" / name) for name in ("landscape.png", "surgery.jpg")]
    result = runner().invoke(
        main,
        ["check", "--offline", str(root / "examples/recordings"), "--policies",
         str(root / "policies"), "--tenant", "forum", *images],
        env=env,
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr  # one image went to review
    # THEN the review decision is an item, the approval is not
    made = {d.outcome: d for d in decisions(log)}
    assert set(made) == {Outcome.APPROVED, Outcome.REVIEW}
    with SQLiteReviewDesk(tmp_path / "desk.db") as desk:
        item = desk.find(made[Outcome.REVIEW].id)
        assert item is not None
        assert desk.find(made[Outcome.APPROVED].id) is None
    # AND the reviewer's copy of the image is in the store MODERATION_REVIEW_IMAGES names
    assert item.image is not None and item.image.store_key is not None
    stored = open_image_store(str(tmp_path / "images")).get(item.image.store_key)
    assert stored == (root / "examples/images/surgery.jpg").read_bytes()


def test_backfill_exits_3_when_the_desk_fails_part_way(tmp_path: Path, monkeypatch):
    log = tmp_path / "audit.jsonl"
    moderate_into_log(log)

    def locked(self: SQLiteReviewDesk, *args: Any, **kwargs: Any) -> Any:
        raise ReviewError("review desk desk.db: database is locked")

    monkeypatch.setattr(SQLiteReviewDesk, "enqueue", locked)
    result = run_backfill(tmp_path, log, "--desk", f"sqlite:///{tmp_path / 'desk.db'}")
    assert result.exit_code == 3
    assert "database is locked" in result.stderr and "run the backfill again" in result.stderr
    assert result.stdout == ""
