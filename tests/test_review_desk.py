"""The review desk, through its port: every backend in BACKENDS passes these tests.

The clock and the item ids are injected, so leases expire without sleeping.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import builders
import pytest
from desks import BACKENDS, desk_url, open_url

from moderation import ConfigurationError, Outcome
from moderation.decision import S3Identity
from moderation.review import (
    APPEAL_FILED_BY,
    Appeal,
    DeskRecord,
    DeskRules,
    ItemFinding,
    ItemImage,
    ItemKind,
    ItemState,
    LeaseLost,
    NewItem,
    PostgresReviewDesk,
    ReviewDesk,
    Reviewer,
    ReviewError,
    ReviewVerdict,
    Role,
    Skip,
    SQLiteReviewDesk,
    Then,
    UnknownItem,
    VerdictChoice,
    audit_record,
    open_desk,
    settle,
)
from moderation.review._sqlite import SCHEMA_VERSION
from moderation.review_sampling import golden_drawn
from moderation.testing import StaticDetector

START = 1_790_000_000.0
ALICE = Reviewer("alice", frozenset({"forum", "kids"}))
BOB = Reviewer("bob", frozenset({"forum", "kids"}))
DAVE = Reviewer("dave", frozenset({"forum"}))
CAROL = Reviewer("carol", frozenset({"forum"}), Role.SENIOR)
KIDS_ONLY = Reviewer("kim", frozenset({"kids"}))
ROOT = Reviewer("root", "*", Role.ADMIN)


class Clock:
    """Epoch seconds that move only when a test moves them."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """A record sink that keeps what it is given, or fails when told to."""

    def __init__(self) -> None:
        self.records: list[DeskRecord] = []
        self.fail = False

    def append_review(self, record: DeskRecord) -> None:
        if self.fail:
            raise OSError("audit log unavailable")
        self.records.append(record)


Opener = Callable[..., ReviewDesk]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sink() -> Recorder:
    return Recorder()


@pytest.fixture(params=BACKENDS)
def open_test_desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens a fresh desk of the backend with the given keyword arguments (clock, sink...)."""
    opened: list[ReviewDesk] = []
    ids = (f"01ITEM{n:020d}" for n in itertools.count(1))
    url = desk_url(request.param, request, tmp_path)

    def make(**kwargs: Any) -> ReviewDesk:
        kwargs.setdefault("new_id", lambda: next(ids))
        desk = open_url(url, **kwargs)
        opened.append(desk)
        return desk

    yield make
    for desk in opened:
        desk.close()


@pytest.fixture
def desk(open_test_desk: Opener, clock: Clock, sink: Recorder) -> ReviewDesk:
    return open_test_desk(clock=clock, sink=sink)


def new_item(n: int, tenant: str = "forum") -> NewItem:
    return NewItem(
        decision_id=f"01DEC{n:021d}",
        tenant=tenant,
        reasons=("Weapons 72.0% >= review 60 (rule 'Weapons')",),
        findings=(ItemFinding(label="Weapons", confidence=72.0, band="review"),),
        rationale="a toy gun, maybe",
        image=ItemImage(store_key=f"{n:064x}"),
    )


def take_and_decide(
    desk: ReviewDesk, reviewer: Reviewer, verdict: str = "approve", **kwargs: Any
) -> ReviewVerdict:
    item = desk.next(reviewer)
    assert item is not None, f"{reviewer.name} was offered nothing"
    return desk.decide(item.id, verdict, reviewer=reviewer, **kwargs)


# -- items --------------------------------------------------------------------------------------


def test_an_enqueued_item_is_open_with_its_times_and_evidence(desk: ReviewDesk) -> None:
    item = desk.enqueue(new_item(1), rules=DeskRules(sla_seconds=3600, priority=3))

    assert item.state is ItemState.OPEN
    assert item.kind is ItemKind.REVIEW
    assert (item.decision_id, item.tenant, item.priority) == (new_item(1).decision_id, "forum", 3)
    assert item.created_at.timestamp() == START
    assert item.due_at is not None and item.due_at - item.created_at == timedelta(hours=1)
    assert item.findings == new_item(1).findings and item.rationale == "a toy gun, maybe"
    assert item.image == ItemImage(store_key=f"{1:064x}")
    assert desk.get(item.id) == item == desk.find(item.decision_id)


def test_enqueuing_a_decision_twice_returns_the_first_item(desk: ReviewDesk, clock: Clock) -> None:
    first = desk.enqueue(new_item(1), rules=DeskRules(priority=1))
    clock.advance(60)
    again = desk.enqueue(new_item(1), rules=DeskRules(priority=9), kind=ItemKind.QA)

    assert again == first
    assert desk.next(ALICE) == first.model_copy(
        update={
            "state": ItemState.LEASED,
            "lease_holder": "alice",
            "lease_until": first.created_at + timedelta(seconds=660),
        }
    )
    assert desk.next(BOB) is None


def FakeDecisionDetector() -> StaticDetector:
    """A detector whose answer the default test policy sends to review."""
    return StaticDetector([("Explicit Nudity", 75.0), ("Explicit", 75.0)])


def test_an_item_made_from_a_review_decision_carries_its_evidence(desk: ReviewDesk) -> None:
    decision = builders.engine(builders.store(), FakeDecisionDetector()).moderate(builders.IMAGE)
    assert decision.outcome is Outcome.REVIEW

    item = desk.enqueue(decision)

    assert (item.decision_id, item.tenant) == (decision.id, decision.tenant)
    assert item.reasons == decision.reasons
    assert decision.triage is not None
    acting = [
        (f.label, f.confidence, f.band) for f in decision.triage.findings if f.band != "ignore"
    ]
    assert [(f.label, f.confidence, f.band) for f in item.findings] == acting
    assert ("Explicit Nudity", 75.0, "escalate") in acting
    assert item.image == ItemImage(store_key=decision.image.sha256)


# -- leases and their order -------------------------------------------------------------------


def test_next_offers_appeals_then_overdue_then_priority_then_oldest(
    desk: ReviewDesk, clock: Clock
) -> None:
    appealed = desk.enqueue(new_item(1))
    take_and_decide(desk, ROOT, "reject")
    clock.advance(1)
    oldest = desk.enqueue(new_item(2))
    clock.advance(1)
    newer = desk.enqueue(new_item(3))
    urgent = desk.enqueue(new_item(4), rules=DeskRules(priority=5))
    overdue = desk.enqueue(new_item(5), rules=DeskRules(sla_seconds=10))
    clock.advance(11)
    desk.appeal(appealed.decision_id, "it is a water pistol")

    reviewers = [Reviewer(f"r{n}", "*") for n in range(6)]
    offered = [desk.next(r) for r in reviewers]

    assert [i.id if i else None for i in offered] == [
        appealed.id,
        overdue.id,
        urgent.id,
        oldest.id,
        newer.id,
        None,
    ]


def test_only_tenants_granted_to_the_reviewer_are_offered(desk: ReviewDesk) -> None:
    forum = desk.enqueue(new_item(1, "forum"))
    kids = desk.enqueue(new_item(2, "kids"))
    nobody = Reviewer("nobody")

    assert desk.next(nobody) is None
    assert desk.next(KIDS_ONLY) == desk.get(kids.id)
    assert desk.next(DAVE) == desk.get(forum.id)
    assert desk.next(ALICE) is None  # both are leased
    assert desk.get(kids.id).lease_holder == "kim"


def test_two_reviewers_never_hold_the_same_item(desk: ReviewDesk) -> None:
    item = desk.enqueue(new_item(1))

    held = desk.next(ALICE)
    assert held is not None and held.id == item.id and held.state is ItemState.LEASED
    assert desk.next(BOB) is None
    assert desk.next(ALICE) == held  # the same item again, not a second lease


def test_an_expired_lease_puts_the_item_back(desk: ReviewDesk, clock: Clock) -> None:
    item = desk.enqueue(new_item(1))
    assert desk.next(ALICE) is not None
    clock.advance(599)
    assert desk.next(BOB) is None

    clock.advance(1)
    assert desk.get(item.id).state is ItemState.OPEN
    taken = desk.next(BOB)

    assert taken is not None and taken.lease_holder == "bob"
    with pytest.raises(LeaseLost, match=r"alice does not hold item .*another reviewer holds it"):
        desk.decide(item.id, "reject", reviewer=ALICE)
    assert desk.decide(item.id, "approve", reviewer=BOB).final


def test_a_late_verdict_counts_while_nobody_else_took_the_item(
    desk: ReviewDesk, clock: Clock
) -> None:
    item = desk.enqueue(new_item(1))
    desk.next(ALICE)
    clock.advance(3600)

    assert desk.decide(item.id, "reject", reviewer=ALICE).outcome is Outcome.REJECTED


def test_a_verdict_without_the_lease_raises_lease_lost(desk: ReviewDesk) -> None:
    item = desk.enqueue(new_item(1))
    with pytest.raises(LeaseLost, match=r"bob does not hold item .*lease it with next"):
        desk.decide(item.id, "approve", reviewer=BOB)

    desk.next(ALICE)
    with pytest.raises(LeaseLost, match="another reviewer holds it"):
        desk.decide(item.id, "approve", reviewer=BOB)
    with pytest.raises(LeaseLost):
        desk.release(item.id, reviewer=BOB)

    desk.decide(item.id, "approve", reviewer=ALICE)
    with pytest.raises(LeaseLost, match="already decided"):
        desk.decide(item.id, "reject", reviewer=ALICE)


def test_a_skip_gives_the_item_to_someone_else(
    desk: ReviewDesk, clock: Clock, sink: Recorder
) -> None:
    item = desk.enqueue(new_item(1))
    desk.next(ALICE)

    released = desk.release(item.id, reviewer=ALICE)

    assert released.state is ItemState.OPEN and released.verdicts == ()
    [skip] = sink.records  # the record sink is told of the skip, who made it and when
    assert isinstance(skip, Skip)
    assert (skip.item_id, skip.decision_id, skip.reviewer, skip.round) == (
        item.id, item.decision_id, "alice", 1,
    )  # fmt: skip
    assert desk.next(ALICE) is None  # not offered again to the one who skipped it, for a lease
    assert desk.next(BOB) is not None
    desk.release(item.id, reviewer=BOB)
    clock.advance(600)
    assert desk.next(ALICE) is not None


# -- verdicts and consensus ---------------------------------------------------------------------


def test_one_verdict_is_final_by_default(desk: ReviewDesk, sink: Recorder) -> None:
    item = desk.enqueue(new_item(1))

    verdict = take_and_decide(desk, ALICE, "reject", note="a real gun", categories=["Weapons"])

    assert verdict.then is Then.FINAL and verdict.outcome is Outcome.REJECTED
    assert (verdict.reviewer, verdict.role, verdict.note) == ("alice", Role.REVIEWER, "a real gun")
    assert verdict.categories == ("Weapons",)
    assert desk.get(item.id).state is ItemState.DECIDED
    assert desk.final(item.decision_id) == verdict
    assert sink.records == [verdict]


def test_with_two_reviewers_the_first_verdict_waits_for_a_second_reviewer(
    desk: ReviewDesk,
) -> None:
    item = desk.enqueue(new_item(1), rules=DeskRules(reviewers=2))

    first = take_and_decide(desk, ALICE, "approve")

    assert first.then is Then.ANOTHER and first.outcome is None
    assert desk.final(item.decision_id) is None
    assert desk.get(item.id).state is ItemState.OPEN
    assert desk.next(ALICE) is None  # never an item the reviewer already judged
    second = take_and_decide(desk, BOB, "approve")
    assert second.then is Then.FINAL
    assert desk.final(item.decision_id) == second


def test_a_disagreement_goes_to_a_senior_whose_verdict_is_final(
    desk: ReviewDesk, sink: Recorder
) -> None:
    item = desk.enqueue(new_item(1), rules=DeskRules(reviewers=2))
    take_and_decide(desk, ALICE, "approve")

    split = take_and_decide(desk, BOB, "reject")

    assert split.then is Then.SENIOR
    assert desk.get(item.id).awaiting_senior
    assert desk.next(DAVE) is None  # only seniors are offered it now
    settled = take_and_decide(desk, CAROL, "reject")
    assert settled.then is Then.FINAL and settled.role is Role.SENIOR
    assert desk.final(item.decision_id) == settled
    assert [r.then for r in sink.records] == [Then.ANOTHER, Then.SENIOR, Then.FINAL]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("earlier", "verdict", "needed", "senior_stage", "then"),
    [
        ((), "approve", 1, False, Then.FINAL),
        ((), "reject", 2, False, Then.ANOTHER),
        (("reject",), "reject", 2, False, Then.FINAL),
        (("approve",), "reject", 2, False, Then.SENIOR),
        (("approve",), "approve", 3, False, Then.ANOTHER),
        (("approve", "reject"), "approve", 2, True, Then.FINAL),
    ],
)
def test_settle(
    earlier: tuple[str, ...], verdict: str, needed: int, senior_stage: bool, then: Then
) -> None:
    choices = [VerdictChoice(v) for v in earlier]
    assert settle(choices, VerdictChoice(verdict), needed=needed, senior_stage=senior_stage) is then


def test_a_failing_record_sink_leaves_no_skip_behind(desk: ReviewDesk, sink: Recorder) -> None:
    item = desk.enqueue(new_item(1))
    desk.next(ALICE)
    sink.fail = True
    with pytest.raises(OSError, match="audit log unavailable"):
        desk.release(item.id, reviewer=ALICE)
    assert desk.get(item.id).lease_holder == "alice"  # still hers: the skip was not stored


def test_a_failing_record_sink_leaves_no_verdict_behind(desk: ReviewDesk, sink: Recorder) -> None:
    item = desk.enqueue(new_item(1))
    desk.next(ALICE)
    sink.fail = True

    with pytest.raises(OSError, match="audit log unavailable"):
        desk.decide(item.id, "approve", reviewer=ALICE)

    after = desk.get(item.id)
    assert after.verdicts == () and after.lease_holder == "alice"
    sink.fail = False
    assert desk.decide(item.id, "approve", reviewer=ALICE).final


# -- appeals and the final outcome ------------------------------------------------------------


def test_an_appeal_puts_the_item_back_on_top_and_the_latest_final_verdict_wins(
    desk: ReviewDesk, sink: Recorder, clock: Clock
) -> None:
    item = desk.enqueue(new_item(1))
    rejected = take_and_decide(desk, ALICE, "reject")
    desk.enqueue(new_item(2), rules=DeskRules(priority=100))
    clock.advance(5)

    appealed = desk.appeal(item.decision_id, "my own drawing")

    assert (appealed.kind, appealed.state, appealed.round) == (ItemKind.APPEAL, ItemState.OPEN, 2)
    assert appealed.appeal_reason == "my own drawing"
    assert desk.final(item.decision_id) == rejected  # until the appeal is decided
    assert desk.next(ALICE) is not None and desk.next(ALICE).id != item.id  # type: ignore[union-attr]
    overturned = take_and_decide(desk, BOB, "approve")
    assert overturned.item_id == item.id and overturned.kind is ItemKind.APPEAL
    assert desk.final(item.decision_id) == overturned
    assert desk.get(item.id).final == overturned
    assert [type(r).__name__ for r in sink.records] == ["ReviewVerdict", "Appeal", "ReviewVerdict"]


def test_an_appeal_records_who_filed_it(desk: ReviewDesk, sink: Recorder) -> None:
    first, second = desk.enqueue(new_item(1)), desk.enqueue(new_item(2))
    take_and_decide(desk, ALICE, "reject")
    take_and_decide(desk, ALICE, "reject")

    by_user = desk.appeal(first.decision_id, "my own drawing", by=" user-42 ")
    unnamed = desk.appeal(second.decision_id, "a painting")

    assert [a.by for a in by_user.appeals] == ["user-42"]
    assert [a.by for a in unnamed.appeals] == [""]
    assert [r.by for r in sink.records if isinstance(r, Appeal)] == ["user-42", ""]
    # the audit log's record names the appellant, or APPEAL_FILED_BY when the desk was not told
    assert [audit_record(a).by for a in (*by_user.appeals, *unnamed.appeals)] == [  # type: ignore[union-attr]
        "user-42",
        APPEAL_FILED_BY,
    ]
    take_and_decide(desk, BOB)
    with pytest.raises(ReviewError, match=r"who filed the appeal \(by\) is 129 characters"):
        desk.appeal(first.decision_id, "again", by="u" * 129)
    with pytest.raises(ReviewError, match="has a control character"):
        desk.appeal(first.decision_id, "again", by="user\n42")


def test_an_automatic_outcome_the_desk_never_held_is_appealed_as_a_new_item_on_top(
    desk: ReviewDesk, sink: Recorder, clock: Clock
) -> None:
    # GIVEN a review item waiting, and a decision the desk never held (an automatic rejection)
    desk.enqueue(new_item(1), rules=DeskRules(priority=50))
    automatic = new_item(2)
    # WHEN its uploader appeals it
    item = desk.appeal(
        automatic, "it is my own drawing", by="user-7", rules=DeskRules(sla_seconds=60)
    )
    # THEN it is an appeal item in round 1, due from the appeal, offered first
    assert (item.kind, item.round, item.state) == (ItemKind.APPEAL, 1, ItemState.OPEN)
    assert item.due_at == item.appeals[0].at + timedelta(seconds=60)
    assert [(a.reason, a.by, a.round) for a in item.appeals] == [
        ("it is my own drawing", "user-7", 1)
    ]
    assert [r.decision_id for r in sink.records if isinstance(r, Appeal)] == [automatic.decision_id]
    leased = desk.next(ALICE)
    assert leased is not None and leased.id == item.id
    # AND a second appeal of it, once decided, is a new round of the same item
    desk.decide(item.id, "approve", reviewer=ALICE)
    again = desk.appeal(automatic, "still mine")
    assert (again.id, again.round) == (item.id, 2)


def test_an_appeal_is_refused_for_unknown_undecided_or_reasonless_items(desk: ReviewDesk) -> None:
    item = desk.enqueue(new_item(1))

    with pytest.raises(UnknownItem, match="no item for decision 'nope'"):
        desk.appeal("nope", "please")
    with pytest.raises(ReviewError, match="still waiting for a reviewer"):
        desk.appeal(item.decision_id, "please")
    take_and_decide(desk, ALICE)
    with pytest.raises(ReviewError, match="reason must not be empty"):
        desk.appeal(item.decision_id, "  ")


def test_unknown_ids_are_refused(desk: ReviewDesk) -> None:
    with pytest.raises(UnknownItem, match="no item 'missing'"):
        desk.decide("missing", "approve", reviewer=ALICE)
    with pytest.raises(UnknownItem, match="no item 'missing'"):
        desk.release("missing", reviewer=ALICE)
    with pytest.raises(UnknownItem, match="no item 'missing'"):
        desk.get("missing")
    with pytest.raises(UnknownItem, match="no item for decision 'missing'"):
        desk.final("missing")
    assert desk.find("missing") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"verdict": "maybe"}, "verdict 'maybe' is not 'approve' or 'reject'"),
        ({"note": "x" * 2001}, "note is 2001 characters; at most 2000"),
        ({"categories": "Weapons"}, "categories is a list of names"),
        ({"reviewer": "alice"}, "reviewer must be a Reviewer"),
    ],
)
def test_a_bad_verdict_is_refused(desk: ReviewDesk, kwargs: dict[str, Any], message: str) -> None:
    item = desk.enqueue(new_item(1))
    desk.next(ALICE)
    call: dict[str, Any] = {"verdict": "approve", "reviewer": ALICE, **kwargs}

    with pytest.raises(ReviewError, match=message):
        desk.decide(item.id, call.pop("verdict"), **call)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Reviewer(""), "a reviewer's name is 1 to 128 characters"),
        (lambda: Reviewer("x", "kids"), "tenants is a set of tenant ids or '\\*'"),  # type: ignore[arg-type]
        (lambda: Reviewer("x", role="boss"), "role 'boss' is not one of reviewer, senior, admin"),  # type: ignore[arg-type]
        (lambda: DeskRules(reviewers=0), "reviewers must be 1 to 10"),
        (lambda: DeskRules(sla_seconds=0), "sla_seconds must be positive"),
        (lambda: DeskRules(priority=1.5), "priority must be a whole number"),  # type: ignore[arg-type]
    ],
)
def test_bad_reviewers_and_rules_are_refused(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ReviewError, match=message):
        make()


# -- the file -----------------------------------------------------------------------------------


def test_the_desk_file_keeps_its_items_across_opens(open_test_desk: Opener, clock: Clock) -> None:
    first = open_test_desk(clock=clock)
    item = first.enqueue(new_item(1))
    first.close()

    assert open_test_desk(clock=clock).get(item.id) == item


def run_sql(url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """`query` (with `?` placeholders) run on the desk database at `url`, committed; its rows."""
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db, db:
            return list(db.execute(query, params).fetchall())
    import psycopg

    with psycopg.connect(url, autocommit=True) as pg:
        cursor = pg.execute(query.replace("?", "%s"), params)
        return list(cursor.fetchall()) if cursor.description else []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_desk_from_a_newer_release_is_refused(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = desk_url(backend, request, tmp_path)
    open_url(url).close()
    assert run_sql(url, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    newer = SCHEMA_VERSION + 1
    run_sql(url, "UPDATE schema_version SET version = ?", (newer,))

    with pytest.raises(ReviewError, match=f"schema version {newer}, written by a newer release"):
        open_url(url)


def test_open_desk_opens_sqlite_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = open_desk(f"sqlite:///{tmp_path}/a.db")
    monkeypatch.chdir(tmp_path)
    relative = open_desk("sqlite:///b.db")

    assert isinstance(absolute, SQLiteReviewDesk) and absolute.path == tmp_path / "a.db"
    assert isinstance(relative, SQLiteReviewDesk) and (tmp_path / "b.db").exists()
    absolute.close()
    relative.close()


def test_open_desk_opens_postgresql_urls(postgres_dsn: str) -> None:
    item = None
    for url in (postgres_dsn, postgres_dsn.replace("postgresql://", "postgres://", 1)):
        with closing(open_desk(url)) as desk:
            assert isinstance(desk, PostgresReviewDesk)
            assert repr(desk) == f"PostgresReviewDesk({url!r})"  # it holds no password
            item = item or desk.enqueue(new_item(1))
            assert desk.get(item.id) == item


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://desk.db", "write sqlite:///PATH"),
        ("mysql://root:secret@db/desk", "review desk URL mysql://...: not a desk URL; use sqlite"),
        ("desk.db", "review desk URL 'desk.db': not a desk URL; use sqlite:///PATH or postgresql"),
        ("host=db password=secret", r"review desk URL \(not shown: it may hold a password\)"),
    ],
)
def test_open_desk_refuses_other_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        open_desk(url)
    assert "secret" not in str(caught.value)


def test_an_unopenable_desk_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ReviewError, match=r"cannot open the review desk .*missing"):
        SQLiteReviewDesk(tmp_path / "missing" / "desk.db")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://desk:s3cret@/desk?host={tmp}", "postgresql://desk@/desk?host={tmp}"),
        ("postgres://desk:s3cret@/desk?host={tmp}&password=s3cret", "postgres://desk@/desk?h"),
        ("host={tmp} dbname=desk user=desk password=s3cret", "host={tmp} dbname=desk user=desk:"),
        ("postgresql://desk:s3cret@[::1/desk", "postgresql://...: "),
    ],
)
def test_an_unreachable_postgresql_desk_is_named_without_its_password(
    tmp_path: Path, url: str, shown: str
) -> None:
    # No server listens in tmp_path: the connection fails at once, without the network.
    with pytest.raises(ReviewError, match="cannot open the review desk ") as caught:
        PostgresReviewDesk(url.format(tmp=tmp_path))
    assert shown.format(tmp=tmp_path) in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_a_postgresql_desk_opens_its_connection_again_after_it_broke(
    postgres_server: Any, clock: Clock
) -> None:
    dsn = postgres_server.new_database()  # a database of its own: its connections are cut
    with closing(PostgresReviewDesk(dsn, clock=clock)) as desk:
        item = desk.enqueue(new_item(1))
        run_sql(dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()")  # fmt: skip

        with pytest.raises(ReviewError, match=r"review desk postgresql://postgres@/desk_\w+\?h"):
            desk.get(item.id)
        assert desk.get(item.id) == item


def test_the_postgresql_tests_fail_without_the_server_binaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import postgres

    (tmp_path / "16" / "bin").mkdir(parents=True)  # a version without initdb and pg_ctl
    monkeypatch.setattr(postgres, "BINARIES", tmp_path)
    with pytest.raises(pytest.fail.Exception, match=r"Debian's `postgresql` package.*make system"):
        postgres.bin_dir()


# -- several processes --------------------------------------------------------------------------

PROCESSES = 4
ITEMS = 100


def _review_until_empty(url: str, name: str, start: Any, results: Any) -> None:
    """One process's reviewer: once every process is ready, takes and approves items until every
    item is decided or judged by them, then reports (name, [(item id, what the verdict led to)]).

    An item leased to another process, or waiting for a second reviewer, may still come their way:
    they only stop when the desk holds nothing undecided that they have not judged.
    """
    reviewer = Reviewer(name, "*")
    taken = []
    with closing(open_desk(url)) as desk:
        start.wait(timeout=60)
        while True:
            item = desk.next(reviewer)
            if item is not None:
                verdict = desk.decide(item.id, "approve", reviewer=reviewer)
                taken.append((item.id, verdict.then.value))
            elif not run_sql(url, _LEFT_FOR_ME, (name,))[0][0]:
                break
            else:
                os.sched_yield()
    results.put((name, taken))


_LEFT_FOR_ME = """SELECT COUNT(*) FROM items WHERE decided = FALSE
AND NOT EXISTS (SELECT 1 FROM verdicts v WHERE v.item_id = items.id AND v.reviewer = ?)"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_several_processes_share_one_desk_without_losing_or_doubling_items(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = desk_url(backend, request, tmp_path)
    with closing(open_desk(url)) as desk:
        ids = {desk.enqueue(new_item(n), rules=DeskRules(reviewers=2)).id for n in range(ITEMS)}
    context = multiprocessing.get_context("spawn")
    start, queue = context.Barrier(PROCESSES), context.Queue()
    workers = [
        context.Process(target=_review_until_empty, args=(url, f"r{n}", start, queue))
        for n in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    results = dict(queue.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0  # a LeaseLost in any of them would end it with 1

    # Every item was judged by exactly two different reviewers, the second verdict final: none
    # lost, none judged twice by one reviewer, none held by two (decide would raise LeaseLost).
    verdicts = Counter(item_id for taken in results.values() for item_id, _ in taken)
    assert set(verdicts) == ids and set(verdicts.values()) == {2}
    for taken in results.values():
        assert len({item_id for item_id, _ in taken}) == len(taken)
    assert Counter(then for taken in results.values() for _, then in taken) == {
        "another": ITEMS,
        "final": ITEMS,
    }
    assert sum(1 for taken in results.values() if taken) >= 2, "the processes did not overlap"
    with closing(open_desk(url)) as desk:
        assert all(desk.get(i).state is ItemState.DECIDED for i in ids)


def test_the_example_in_the_docs_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (builders.ROOT / "docs" / "review.md").read_text(encoding="utf-8")
    example = text.split("```python\n", 1)[1].split("```", 1)[0]
    engine = builders.engine(builders.store(forum=builders.DEFAULT_POLICY), FakeDecisionDetector())
    decision = engine.moderate(builders.IMAGE, tenant="forum")
    monkeypatch.chdir(tmp_path)
    scope: dict[str, Any] = {"decision": decision}

    exec(compile(example, "docs/review.md", "exec"), scope)

    assert scope["verdict"].then is Then.ANOTHER
    assert scope["leased"].decision_id == decision.id


def test_threads_can_share_one_desk(desk: ReviewDesk) -> None:
    ids = {desk.enqueue(new_item(n)).id for n in range(40)}

    def review(name: str) -> list[str]:
        reviewer = Reviewer(name, "*")
        taken = []
        while (item := desk.next(reviewer)) is not None:
            taken.append(desk.decide(item.id, "reject", reviewer=reviewer).item_id)
        return taken

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(review, [f"t{n}" for n in range(4)]))

    assert sorted(i for taken in results for i in taken) == sorted(ids)


# -- closed items' images (for the image store's purge) -----------------------------------------


def test_closed_images_lists_old_decided_items_keys_that_no_other_item_holds(
    desk: ReviewDesk, clock: Clock
) -> None:
    # GIVEN, a second apart: a decided item (1), a decided item whose image a leased item also
    # holds (2 and 3), a decided item with its image in S3 (4), and an open item (5)
    shared = ItemImage(store_key="ab" * 32)
    images = {2: shared, 3: shared, 4: ItemImage(s3=S3Identity(bucket="uploads", key="a.png"))}
    for n in range(1, 6):
        desk.enqueue(new_item(n).model_copy(update={"image": images.get(n, new_item(n).image)}))
        clock.advance(1)
    take_and_decide(desk, ALICE)  # 1
    take_and_decide(desk, ALICE)  # 2
    held = desk.next(BOB)  # 3
    assert held is not None and held.decision_id == new_item(3).decision_id
    take_and_decide(desk, ALICE)  # 4
    now = datetime.fromtimestamp(clock.now, UTC)
    # WHEN the closed images made before now are asked for
    # THEN only item 1's: 2's is held by the leased 3, 4's is in S3, 5 is open
    assert desk.closed_images(now) == [f"{1:064x}"]
    # AND none made before the first item
    assert desk.closed_images(now - timedelta(seconds=60)) == []


# -- the queue's depth --------------------------------------------------------------------------


def test_depth_counts_the_undecided_items_of_granted_tenants(
    desk: ReviewDesk, clock: Clock
) -> None:
    # GIVEN two forum items (one due within the hour), one kids item, and a decided forum item
    desk.enqueue(new_item(1), rules=DeskRules(sla_seconds=3600))
    clock.advance(600)
    desk.enqueue(new_item(2))
    desk.enqueue(new_item(3, tenant="kids"))
    desk.enqueue(new_item(4))
    take_and_decide(desk, DAVE)  # decides the oldest forum item: item 1
    desk.enqueue(new_item(5), rules=DeskRules(sla_seconds=60))
    clock.advance(120)
    # WHEN the depth is read
    forum, kids = desk.depth(ROOT)
    # THEN undecided items count per tenant, with the oldest's age and the breaches
    assert (forum.tenant, forum.waiting, forum.leased, forum.overdue) == ("forum", 3, 0, 1)
    assert forum.oldest_created_at.timestamp() == START + 600
    assert (kids.tenant, kids.waiting, kids.overdue) == ("kids", 1, 0)
    # AND a reviewer sees only the tenants granted to them; nothing was leased by reading
    assert [d.tenant for d in desk.depth(KIDS_ONLY)] == ["kids"]
    assert desk.depth(ROOT) == [forum, kids]


def test_waiting_lists_the_undecided_items_oldest_first(desk: ReviewDesk, clock: Clock) -> None:
    # GIVEN a forum item due in a minute, a kids item, a leased forum item and a decided one
    desk.enqueue(new_item(1), rules=DeskRules(sla_seconds=60))
    clock.advance(30)
    desk.enqueue(new_item(2, tenant="kids"))
    desk.enqueue(new_item(3))
    take_and_decide(desk, DAVE)  # decides item 1
    desk.next(DAVE)  # leases item 3
    desk.enqueue(new_item(4), rules=DeskRules(sla_seconds=10))
    # WHEN the waiting items are read
    waiting = desk.waiting(ROOT)
    # THEN each undecided item is there, oldest first, with its times and lease
    assert [(w.tenant, w.leased) for w in waiting] == [
        ("kids", False), ("forum", True), ("forum", False),
    ]  # fmt: skip
    assert [w.created_at.timestamp() for w in waiting] == [START + 30] * 3
    assert [w.due_at for w in waiting[:2]] == [None, None]
    assert waiting[2].due_at is not None and waiting[2].due_at.timestamp() == START + 40
    # AND a reviewer sees only the tenants granted to them; reading leased nothing
    assert [w.tenant for w in desk.waiting(KIDS_ONLY)] == ["kids"]
    assert desk.waiting(ROOT) == waiting


def test_depth_counts_leases_held_now(desk: ReviewDesk) -> None:
    desk.enqueue(new_item(1))
    desk.enqueue(new_item(2))
    desk.next(DAVE)
    (forum,) = desk.depth(DAVE)
    assert (forum.waiting, forum.leased) == (2, 1)
    assert desk.depth(Reviewer("nobody", frozenset({"other"}))) == []


# -- golden items -------------------------------------------------------------------------------

EVERY = DeskRules(golden_rate=1.0)  # every new item brings a golden item along


def golden_source(n: int, tenant: str = "forum") -> NewItem:
    """A decided image to make golden: its own evidence, so a showing can be told from it."""
    return NewItem(
        decision_id=f"01GOLD{n:020d}",
        tenant=tenant,
        reasons=(f"Explicit {80 + n % 10}.0% >= review 60 (rule 'Explicit')",),
        findings=(ItemFinding(label="Explicit", confidence=80.0 + n % 10, band="review"),),
        rationale=f"known evidence {n}",
        image=ItemImage(store_key=f"{10_000 + n:064x}"),
    )


def _visible(item: Any) -> dict[str, Any]:
    """What the page can show of an item, less its own identity and evidence."""
    return item.model_dump(
        exclude={"id", "decision_id", "reasons", "findings", "rationale", "image", "verdicts"}
    )


def test_a_golden_showing_comes_with_a_new_item_and_looks_like_a_review_item(
    desk: ReviewDesk, clock: Clock
) -> None:
    # GIVEN a golden item of forum, and a new review item of forum at golden rate 1
    desk.add_golden(golden_source(1), "reject")
    clock.advance(30)
    rules = DeskRules(reviewers=2, sla_seconds=3600, priority=4, golden_rate=1.0)
    trigger = desk.enqueue(new_item(1), rules=rules)
    # WHEN alice takes what she is offered: the new item, then the golden showing beside it
    first = desk.next(ALICE)
    assert first is not None and first.id == trigger.id
    desk.decide(first.id, "approve", reviewer=ALICE)
    showing = desk.next(ALICE)
    # THEN the showing is a review item with the golden decision's real id and evidence
    assert showing is not None and showing.id != trigger.id
    golden = golden_source(1)
    assert showing.kind is ItemKind.REVIEW and showing.decision_id == golden.decision_id
    assert (showing.reasons, showing.findings, showing.rationale, showing.image) == (
        golden.reasons, golden.findings, golden.rationale, golden.image,
    )  # fmt: skip
    # AND the rest (priority, times, reviewers needed, no QA rate) is the new item's
    leased = desk.next(BOB)  # bob gets the first item, still wanting a second reviewer
    assert leased is not None and leased.id == trigger.id
    assert _visible(showing) == _visible(leased.model_copy(update={"lease_holder": "alice"}))
    assert showing.qa_rate is None and "golden" not in showing.model_dump_json()
    # AND its id tells nothing: the same shape as every other item id
    assert len(showing.id) == len(trigger.id) and showing.id.startswith("01ITEM")
    # AND the golden decision's own id finds no showing
    assert desk.find(golden.decision_id) is None


def test_golden_showings_come_at_the_rate_drawn_from_the_new_items_decision_ids(
    desk: ReviewDesk,
) -> None:
    for n in range(40):
        desk.add_golden(golden_source(n), "approve")
    drawn = [n for n in range(40) if golden_drawn(new_item(n).decision_id, 0.3)]
    assert 0 < len(drawn) < 40  # the draw both brings and leaves out
    for n in range(40):
        desk.enqueue(new_item(n), rules=DeskRules(golden_rate=0.3))
    (forum,) = desk.depth(ROOT)
    assert forum.waiting == 40 + len(drawn)
    assert sum(g.shown for g in desk.golden("forum")) == len(drawn)
    # AND the same items enqueued again bring nothing more; rate 0 (the default) brings none
    for n in range(40):
        desk.enqueue(new_item(n), rules=DeskRules(golden_rate=0.3))
    desk.enqueue(new_item(99))
    assert desk.depth(ROOT)[0].waiting == 41 + len(drawn)


def test_no_golden_item_of_another_tenant_nor_one_already_waiting_is_shown(
    desk: ReviewDesk,
) -> None:
    desk.add_golden(golden_source(1, tenant="kids"), "reject")
    desk.enqueue(new_item(1), rules=EVERY)  # forum: no golden item of its own
    assert desk.depth(ROOT)[0].waiting == 1
    desk.add_golden(golden_source(2), "reject")
    desk.enqueue(new_item(2), rules=EVERY)  # brings golden 2
    desk.enqueue(new_item(3), rules=EVERY)  # golden 2's showing still waits: nothing
    assert desk.depth(ROOT)[0].waiting == 4  # items 1, 2, 3 and one showing
    assert [(g.decision_id, g.shown) for g in desk.golden("forum")] == [
        (golden_source(2).decision_id, 1)
    ]


def test_the_least_shown_golden_item_is_shown_next(desk: ReviewDesk) -> None:
    desk.add_golden(golden_source(1), "reject")
    desk.add_golden(golden_source(2), "approve")
    reviewers = [Reviewer(f"r{n}", "*") for n in range(4)]
    for n, reviewer in enumerate(reviewers):
        desk.enqueue(new_item(n), rules=EVERY)
        while (item := desk.next(reviewer)) is not None:
            desk.decide(item.id, "approve", reviewer=reviewer)
    assert [g.shown for g in desk.golden()] == [2, 2]


def test_a_verdict_on_a_golden_showing_is_golden_without_effects_or_a_final_outcome(
    desk: ReviewDesk, sink: Recorder
) -> None:
    # GIVEN a decision bob approved on the desk, made golden with the answer reject
    golden = golden_source(1)
    desk.enqueue(golden)
    take_and_decide(desk, BOB, "approve")
    desk.add_golden(golden, "reject")
    deliveries = desk.pending_deliveries()
    assert len(deliveries) == 1
    # WHEN a new item brings it along and alice skips, then approves, the showing
    desk.enqueue(new_item(1), rules=EVERY)
    take_and_decide(desk, ALICE)  # the new item
    showing = desk.next(ALICE)
    assert showing is not None and showing.decision_id == golden.decision_id
    desk.release(showing.id, reviewer=ALICE)
    showing = desk.next(DAVE)
    assert showing is not None and showing.decision_id == golden.decision_id
    verdict = desk.decide(showing.id, "approve", reviewer=DAVE)
    # THEN the skip and the verdict are golden records with the answer, never final
    skip, judged = (audit_record(r) for r in sink.records[-2:])
    assert (skip.item_kind, skip.verdict, skip.golden_answer) == ("golden", "skip", "reject")
    assert (judged.item_kind, judged.verdict, judged.golden_answer) == (
        "golden",
        "approve",
        "reject",
    )
    assert not judged.final and judged.correct is False and judged.qa_rate is None
    assert verdict.golden_answer is VerdictChoice.REJECT
    # AND only the new item's verdict has effects: the showing adds no delivery
    assert len(desk.pending_deliveries()) == 2
    assert all(d.verdict.golden_answer is None for d in desk.pending_deliveries())
    # AND the golden decision's final verdict is still bob's
    final = desk.final(golden.decision_id)
    assert final is not None and (final.reviewer, final.verdict) == ("bob", VerdictChoice.APPROVE)


def test_a_golden_decision_is_never_shown_to_who_judged_it(
    desk: ReviewDesk,
) -> None:
    # GIVEN bob decided the golden decision's own item, and alice judged one showing of it
    golden = golden_source(1)
    desk.enqueue(golden)
    take_and_decide(desk, BOB, "reject")
    desk.add_golden(golden, "reject")
    desk.enqueue(new_item(1), rules=EVERY)
    take_and_decide(desk, ALICE)  # the new item
    take_and_decide(desk, ALICE, "reject")  # the showing
    desk.enqueue(new_item(2), rules=EVERY)  # a second showing of it
    # WHEN bob and alice ask for work
    second = desk.next(BOB)
    assert second is not None and second.decision_id == new_item(2).decision_id
    desk.decide(second.id, "approve", reviewer=BOB)
    # THEN neither is offered the second showing; dave, who never saw it, is
    assert desk.next(BOB) is None and desk.next(ALICE) is None
    offered = desk.next(DAVE)
    assert offered is not None and offered.decision_id == golden.decision_id


def test_golden_items_are_listed_and_adding_one_again_replaces_its_answer(
    desk: ReviewDesk, clock: Clock
) -> None:
    first = desk.add_golden(golden_source(2), "approve")
    assert (first.decision_id, first.tenant, first.answer, first.shown) == (
        golden_source(2).decision_id, "forum", VerdictChoice.APPROVE, 0,
    )  # fmt: skip
    assert first.added_at.timestamp() == START
    desk.add_golden(golden_source(1, tenant="kids"), VerdictChoice.REJECT)
    clock.advance(10)
    again = desk.add_golden(golden_source(2), "reject")
    assert (again.answer, again.added_at.timestamp()) == (VerdictChoice.REJECT, START + 10)
    assert [g.decision_id for g in desk.golden()] == [
        golden_source(2).decision_id,
        golden_source(1).decision_id,
    ]
    assert desk.golden("kids") == [desk.golden()[1]] and desk.golden("other") == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d: d.add_golden(golden_source(1), "maybe"), "'maybe' is not 'approve' or 'reject'"),
        (lambda d: d.add_golden("01GOLD", "approve"), "a Decision or a NewItem, not str"),
        (
            lambda d: d.enqueue(new_item(1).model_copy(update={"decision_id": "golden-showing:x"})),
            "keeps for golden showings",
        ),
    ],
)
def test_bad_golden_items_are_refused(
    desk: ReviewDesk, call: Callable[[ReviewDesk], object], message: str
) -> None:
    with pytest.raises(ReviewError, match=message):
        call(desk)


def test_a_golden_items_image_is_never_purged(desk: ReviewDesk, clock: Clock) -> None:
    golden = golden_source(1)
    desk.enqueue(golden)
    take_and_decide(desk, BOB)
    desk.enqueue(new_item(1))
    take_and_decide(desk, BOB)
    desk.add_golden(golden, "approve")
    clock.advance(60)
    now = datetime.fromtimestamp(clock.now, UTC)
    assert desk.closed_images(now) == [f"{1:064x}"]  # the golden image is kept


@pytest.mark.parametrize("rate", [-0.1, 1.5, True, "0.5"])
def test_desk_rules_refuse_a_bad_golden_rate(rate: object) -> None:
    with pytest.raises(ReviewError, match="golden_rate must be a fraction from 0 to 1"):
        DeskRules(golden_rate=rate)  # type: ignore[arg-type]
