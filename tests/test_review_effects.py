"""What a final verdict does: the desk's outbox, the signed webhook (a real receiver on
127.0.0.1 that checks the signature as docs/review.md tells receivers to), retries and
`moderation review deliver`, and the S3 tags and quarantine (moto) the Lambda's code applies."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from clirunner import runner
from desks import BACKENDS, desk_url, open_url

from moderation import ConfigurationError, RetryPolicy
from moderation.aws.s3 import S3Objects
from moderation.cli import main
from moderation.decision import S3Identity
from moderation.errors import AWSError
from moderation.review import (
    DELIVERY_HEADER,
    RETRY_SCHEDULE,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveringDesk,
    Delivery,
    DeskRules,
    Effects,
    ItemImage,
    NewItem,
    ReviewDesk,
    Reviewer,
    ReviewVerdict,
    Role,
    SQLiteReviewDesk,
    Webhook,
    retry_delay,
)
from moderation.settings import Settings, read_env
from moderation.wiring import review_desk

ROOT = Path(__file__).resolve().parent.parent
KEY = "whsec-7f3a-do-not-print"
ALICE = Reviewer("alice", "*")
BOB = Reviewer("bob", "*")
CAROL = Reviewer("carol", "*", Role.SENIOR)


def _docs_verifier() -> Callable[..., bool]:
    """`verify_signature` exactly as docs/review.md gives it to receivers."""
    text = (ROOT / "docs" / "review.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    code = next(b for b in blocks if "def verify_signature" in b)
    space: dict[str, Any] = {}
    exec(code, space)
    verify: Callable[..., bool] = space["verify_signature"]
    return verify


verify_signature = _docs_verifier()


class Receiver:
    """A webhook receiver on 127.0.0.1 that verifies each request like a platform would: a bad
    or old signature is answered 401; otherwise `status` (200 by default)."""

    def __init__(self, key: str = KEY) -> None:
        self.key = key.encode()
        self.status = 200
        self.delay = 0.0
        self.accepted: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.refused = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)
                status = receiver.answer(dict(self.headers), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/moderation?token=t0k"

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            if not verify_signature(self.key, headers.get(SIGNATURE_HEADER, ""), body):
                self.refused += 1
                return 401
            if self.status != 200:
                return self.status
            self.accepted.append(json.loads(body))
            self.headers.append(headers)
            return 200

    def ids(self) -> list[str]:
        return [body["delivery_id"] for body in self.accepted]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


class Clock:
    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


def no_wait() -> RetryPolicy:
    return RetryPolicy(attempts=3, initial_backoff=0.01, max_backoff=0.01, sleep=lambda _: None)


def new_item(n: int, image: ItemImage | None = None) -> NewItem:
    return NewItem(
        decision_id=f"01DEC{n:021d}",
        tenant="forum",
        image=image if image is not None else ItemImage(store_key=f"{n:064x}"),
    )


def decide(desk: Any, n: int, verdict: str = "reject", **kwargs: Any) -> ReviewVerdict:
    """Enqueue item n and give alice's verdict on it (final: one reviewer)."""
    item = desk.enqueue(new_item(n, kwargs.pop("image", None)))
    leased = desk.next(ALICE)
    assert leased is not None and leased.id == item.id
    record: ReviewVerdict = desk.decide(item.id, verdict, reviewer=ALICE, **kwargs)
    return record


def effects(desk: Any, receiver: Receiver | None, clock: Clock, **kwargs: Any) -> Effects:
    hook = None
    if receiver is not None:
        hook = Webhook(receiver.url, KEY, timeout=5.0, retry=no_wait(), clock=clock)
    return Effects(desk, webhook=hook, clock=clock, rng=random.Random(7), **kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=BACKENDS)
def desk_at(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh desk of each backend."""
    return desk_url(request.param, request, tmp_path)


@pytest.fixture
def desk(desk_at: str, clock: Clock) -> Iterator[ReviewDesk]:
    d = open_url(desk_at, clock=clock)
    yield d
    d.close()


# -- the outbox ---------------------------------------------------------------------------------


def test_a_final_verdict_puts_one_delivery_in_the_outbox_and_others_none(desk):
    desk.enqueue(new_item(1))
    item = desk.next(ALICE)
    two = desk.enqueue(new_item(2), rules=DeskRules(reviewers=2))
    assert item is not None
    desk.decide(item.id, "approve", reviewer=ALICE, note="fine")
    leased = desk.next(ALICE)
    assert leased is not None and leased.id == two.id
    first = desk.decide(two.id, "reject", reviewer=ALICE)
    assert not first.final  # waits for a second reviewer: nothing to deliver yet
    pending = desk.pending_deliveries()
    assert [d.verdict.decision_id for d in pending] == [new_item(1).decision_id]
    (delivery,) = pending
    assert delivery.verdict.outcome is not None and delivery.verdict.outcome.value == "approved"
    assert delivery.image == new_item(1).image
    assert delivery.reviewers == ({"reviewer": "alice", "role": "reviewer", "verdict": "approve"},)
    assert delivery.attempts == 0 and delivery.last_error is None and delivery.done_at is None


def test_a_senior_settled_verdict_names_every_reviewer_of_the_round(desk):
    item = desk.enqueue(new_item(1), rules=DeskRules(reviewers=2))
    for reviewer, verdict in ((ALICE, "approve"), (BOB, "reject"), (CAROL, "reject")):
        assert desk.next(reviewer) is not None
        record = desk.decide(item.id, verdict, reviewer=reviewer)
    assert record.final
    (delivery,) = desk.pending_deliveries()
    assert [(r["reviewer"], r["verdict"]) for r in delivery.reviewers] == [
        ("alice", "approve"),
        ("bob", "reject"),
        ("carol", "reject"),
    ]


def test_a_desk_file_of_schema_version_1_gains_the_outbox(tmp_path, clock):
    import sqlite3

    path = tmp_path / "old.db"
    SQLiteReviewDesk(path, clock=clock).close()
    with sqlite3.connect(path) as db:  # as the release before the outbox left it
        db.execute("DROP TABLE deliveries")
        db.execute("UPDATE schema_version SET version = 1")
    with SQLiteReviewDesk(path, clock=clock) as desk:
        decide(desk, 1)
        assert len(desk.pending_deliveries()) == 1
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(3,)]


def test_a_crash_between_commit_and_delivery_loses_nothing(tmp_path, clock, receiver):
    # GIVEN a verdict committed by a process that died before delivering anything
    first = SQLiteReviewDesk(tmp_path / "desk.db", clock=clock)
    record = decide(first, 1)
    first.close()
    # WHEN another process opens the desk
    again = SQLiteReviewDesk(tmp_path / "desk.db", clock=clock)
    (kept,) = again.pending_deliveries()
    assert kept.verdict == record
    # THEN its deliverer sends it
    count = effects(again, receiver, clock).deliver_due()
    assert count.delivered == 1 and not count.failed
    assert receiver.ids() == [kept.id]
    assert again.pending_deliveries() == []
    again.close()


def test_a_deliverer_that_dies_holding_a_claim_lets_it_fall_due_again(desk, clock):
    decide(desk, 1)
    (claimed,) = desk.due_deliveries(10, claim_seconds=60)
    assert desk.due_deliveries(10) == []  # held by the (now dead) first deliverer
    clock.now += 61
    assert [d.id for d in desk.due_deliveries(10)] == [claimed.id]


def test_two_concurrent_deliverers_never_send_the_same_delivery(desk_at, clock, receiver):
    setup = open_url(desk_at, clock=clock)
    for n in range(1, 31):
        decide(setup, n)
    receiver.delay = 0.005
    desks = [open_url(desk_at, clock=clock) for _ in range(2)]
    counts = []
    start = threading.Barrier(2)

    def run(d: ReviewDesk) -> None:
        start.wait()
        # small batches, so that the two interleave
        e = effects(d, receiver, clock)
        total = 0
        while (n := e.deliver_due(limit=3).delivered) > 0:
            total += n
        counts.append(total)

    threads = [threading.Thread(target=run, args=(d,)) for d in desks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = Counter(receiver.ids())
    assert len(sent) == 30 and set(sent.values()) == {1}
    assert sum(counts) == 30 and all(counts)  # both took part
    assert setup.pending_deliveries() == []
    for d in [setup, *desks]:
        d.close()


# -- the webhook --------------------------------------------------------------------------------


def test_the_webhook_body_is_signed_and_verified_by_a_real_receiver(desk, clock, receiver):
    record = decide(desk, 1, note="a real gun", categories=["Weapons"])
    count = effects(desk, receiver, clock).deliver_due()
    assert count.delivered == 1
    (body,) = receiver.accepted
    (headers,) = receiver.headers
    assert receiver.refused == 0
    assert body == {
        "schema": 1,
        "delivery_id": headers[DELIVERY_HEADER],
        "decision_id": record.decision_id,
        "item_id": record.item_id,
        "tenant": "forum",
        "kind": "review",
        "round": 1,
        "verdict": "reject",
        "outcome": "rejected",
        "reviewer": "alice",
        "reviewers": [{"reviewer": "alice", "role": "reviewer", "verdict": "reject"}],
        "note": "a real gun",
        "categories": ["Weapons"],
        "decided_at": record.model_dump(mode="json")["at"],
        "image": {"store_key": f"{1:064x}"},
    }
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers[TIMESTAMP_HEADER] == str(int(clock.now))
    assert headers[SIGNATURE_HEADER].startswith(f"t={int(clock.now)},v1=")


def test_a_receiver_refuses_an_old_timestamp_and_a_wrong_key(desk, receiver):
    decide(desk, 1)
    old = Clock(time.time() - 3600)  # signed an hour ago: a replay, or a clock far off
    assert effects(desk, receiver, old).deliver_due().failed
    wrong = Effects(desk, webhook=Webhook(receiver.url, "another-key", retry=no_wait()))
    assert wrong.deliver_due().failed  # due again: its retry time came from the old clock
    assert receiver.accepted == [] and receiver.refused == 2  # a 401 is not retried at once
    (kept,) = desk.pending_deliveries()
    assert kept.attempts == 2 and "HTTP 401" in (kept.last_error or "")


def test_a_failing_receiver_keeps_the_delivery_and_review_deliver_sends_it_later(
    tmp_path, receiver, monkeypatch, caplog
):
    # GIVEN a desk whose verdict was given a day ago, when the receiver answered 500
    day_ago = Clock(time.time() - 86400)
    desk = SQLiteReviewDesk(tmp_path / "desk.db", clock=day_ago)
    hook = Webhook(receiver.url, KEY, retry=no_wait())  # signed now: a receiver checks the age
    delivering = DeliveringDesk(desk, Effects(desk, webhook=hook, clock=day_ago))
    receiver.status = 500
    with caplog.at_level(logging.WARNING, logger="moderation.review"):
        record = decide(delivering, 1)
    # THEN the verdict stands, and the delivery is kept with its error, logged with its id
    assert record.final and desk.final(record.decision_id) == record
    (kept,) = desk.pending_deliveries()
    assert kept.attempts == 1 and "HTTP 500" in (kept.last_error or "")
    assert kept.next_attempt_at > datetime.fromtimestamp(day_ago.now, UTC)
    assert any(kept.id in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    desk.close()
    # WHEN the receiver recovers and `moderation review deliver` runs (its retry is due)
    receiver.status = 200
    env = _deliver_env(monkeypatch, tmp_path, receiver)
    listed = runner().invoke(main, ["review", "deliver", "--list"], env=env)
    assert listed.exit_code == 0, listed.stdout + listed.stderr
    assert kept.id in listed.stdout and "HTTP 500" in listed.stdout
    assert "1 pending, 1 of them failed before" in listed.stdout
    result = runner().invoke(main, ["review", "deliver"], env=env)
    # THEN it is delivered, once, and the outbox is empty
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "1 delivered, 0 failed" in result.stdout
    assert receiver.ids() == [kept.id]
    again = runner().invoke(main, ["review", "deliver"], env=env)
    assert "0 delivered, 0 failed" in again.stdout and receiver.ids() == [kept.id]


def _deliver_env(monkeypatch: Any, tmp_path: Path, receiver: Receiver) -> dict[str, str]:
    for name in [n for n in os.environ if n.startswith("MODERATION_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(
        "moderation.review._effects.WEBHOOK_RETRY",
        RetryPolicy(attempts=2, initial_backoff=0.01, max_backoff=0.01),
    )
    return {
        "MODERATION_REVIEW": f"sqlite:///{tmp_path / 'desk.db'}",
        "MODERATION_REVIEW_WEBHOOK": receiver.url,
        "MODERATION_REVIEW_WEBHOOK_KEY": KEY,
    }


def test_review_deliver_exits_one_with_a_summary_while_some_still_fail(
    tmp_path, receiver, monkeypatch
):
    desk = SQLiteReviewDesk(tmp_path / "desk.db", clock=Clock(time.time() - 60))
    decide(desk, 1)
    decide(desk, 2, verdict="approve")
    desk.close()
    receiver.status = 503
    env = _deliver_env(monkeypatch, tmp_path, receiver)
    result = runner().invoke(main, ["review", "deliver"], env=env)
    assert result.exit_code == 1
    assert "0 delivered, 2 failed" in result.stdout
    assert result.stderr.count("kept in the outbox") == 2
    assert KEY not in result.stdout + result.stderr
    with SQLiteReviewDesk(tmp_path / "desk.db") as d:
        assert [p.attempts for p in d.pending_deliveries()] == [1, 1]


def test_a_refused_delivery_is_logged_at_error_and_kept(desk, clock, receiver, caplog):
    decide(desk, 1)
    receiver.key = b"the receiver was given another key"
    with caplog.at_level(logging.DEBUG):
        count = effects(desk, receiver, clock).deliver_due()
    assert len(count.failed) == 1
    assert receiver.refused == 1  # a 401 is not retried at once
    (kept,) = desk.pending_deliveries()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and kept.id in errors[0].getMessage()
    assert "check the URL and the key" in (kept.last_error or "")
    assert "t0k" not in (kept.last_error or "")  # the URL's token is not repeated


def test_an_unreachable_webhook_is_tried_at_once_then_kept(desk, clock):
    decide(desk, 1)
    hook = Webhook("http://127.0.0.1:9/nothing", KEY, timeout=1.0, retry=no_wait(), clock=clock)
    count = Effects(desk, webhook=hook, clock=clock).deliver_due()
    assert len(count.failed) == 1 and "could not be reached" in count.failed[0][1]
    assert desk.pending_deliveries()[0].attempts == 1


def test_the_next_attempt_grows_from_a_minute_to_six_hours_with_jitter():
    rng = random.Random(3)
    delays = [retry_delay(n, rng) for n in range(1, 9)]
    for n, delay in enumerate(delays, start=1):
        base = RETRY_SCHEDULE[min(n, len(RETRY_SCHEDULE)) - 1]
        assert 0.75 * base <= delay <= min(1.25 * base, 6 * 3600)
    assert delays[0] < delays[1] < delays[2] < delays[3]
    assert max(delays) <= 6 * 3600
    assert len({retry_delay(1, rng) for _ in range(5)}) == 5  # jittered


def test_the_key_never_appears_in_logs_errors_or_reprs(desk, clock, receiver, caplog):
    decide(desk, 1)
    decide(desk, 2)
    with caplog.at_level(logging.DEBUG):
        receiver.status = 500
        effects(desk, receiver, clock).deliver_due()
        receiver.status = 200
        clock.now += 86400  # the desk's clock: the retries are due (the signing clock is now)
        effects(desk, receiver, Clock()).deliver_due()
    assert receiver.accepted  # both branches ran
    settings = read_env(
        {"MODERATION_REVIEW_WEBHOOK": receiver.url, "MODERATION_REVIEW_WEBHOOK_KEY": KEY}
    ).checked()
    shown = [
        caplog.text,
        repr(settings),
        repr(Webhook(receiver.url, KEY)),
        *(str(d) for d in desk.pending_deliveries()),
    ]
    assert not any(KEY in text for text in shown)
    assert not any("t0k" in text for text in shown[1:3])


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {"MODERATION_REVIEW_WEBHOOK": "https://hooks.example/x"},
            "MODERATION_REVIEW_WEBHOOK_KEY: is not set, but MODERATION_REVIEW_WEBHOOK is",
        ),
        (
            {"MODERATION_REVIEW_WEBHOOK_KEY": KEY},
            "MODERATION_REVIEW_WEBHOOK: is not set, but MODERATION_REVIEW_WEBHOOK_KEY is",
        ),
        (
            {
                "MODERATION_REVIEW_WEBHOOK": "ftp://hooks.example/x?t=s3cr3t",
                "MODERATION_REVIEW_WEBHOOK_KEY": KEY,
            },
            "MODERATION_REVIEW_WEBHOOK: must be an https://",
        ),
        (
            {"MODERATION_REVIEW_WEBHOOK": "https:///no-host", "MODERATION_REVIEW_WEBHOOK_KEY": KEY},
            "MODERATION_REVIEW_WEBHOOK: must be an https://",
        ),
        (
            {
                "MODERATION_REVIEW_WEBHOOK": "https://hooks.example/x",
                "MODERATION_REVIEW_WEBHOOK_KEY": "",
            },
            "MODERATION_REVIEW_WEBHOOK_KEY: is set but empty",
        ),
    ],
    ids=["url-without-key", "key-without-url", "not-http", "no-host", "empty-key"],
)
def test_a_webhook_half_configured_or_malformed_is_an_error_naming_the_variable(env, named):
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env)
    assert named in str(caught.value)
    assert "s3cr3t" not in str(caught.value) and KEY not in str(caught.value)


def test_settings_built_in_code_with_half_a_webhook_are_refused_too(desk, tmp_path):
    with pytest.raises(ConfigurationError, match="MODERATION_REVIEW_WEBHOOK_KEY: is not set"):
        Effects.from_settings(desk, Settings(review_webhook="https://hooks.example/x"))
    with pytest.raises(ConfigurationError, match="MODERATION_REVIEW_WEBHOOK: is not set"):
        Effects.from_settings(desk, Settings(review_webhook_key=KEY))
    with pytest.raises(ConfigurationError, match="MODERATION_REVIEW_WEBHOOK_KEY: is not set"):
        review_desk(
            Settings(review=f"sqlite:///{tmp_path / 'w.db'}", review_webhook="https://h.example/"),
            _Log(),
        )


def test_review_deliver_names_a_bad_webhook_setting_and_exits_two(tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("MODERATION_")]:
        monkeypatch.delenv(name)
    env = {
        "MODERATION_REVIEW": f"sqlite:///{tmp_path / 'desk.db'}",
        "MODERATION_REVIEW_WEBHOOK_KEY": KEY,
    }
    result = runner().invoke(main, ["review", "deliver"], env=env)
    assert result.exit_code == 2
    assert "MODERATION_REVIEW_WEBHOOK: is not set, but MODERATION_REVIEW_WEBHOOK_KEY is" in (
        result.stderr
    )
    assert KEY not in result.stdout + result.stderr


class _Log:
    """An audit log that records review records (what the wired desk's sink needs)."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def append(self, decision: Any) -> None:
        self.records.append(decision)

    def append_record(self, record: Any) -> None:
        self.records.append(record)


def test_the_wired_desk_delivers_right_after_a_final_verdict(tmp_path, receiver):
    settings = Settings(
        review=f"sqlite:///{tmp_path / 'wired.db'}",
        review_webhook=receiver.url,
        review_webhook_key=KEY,
    )
    desk = review_desk(settings, _Log())
    assert isinstance(desk, DeliveringDesk)
    desk.effects.webhook.retry = no_wait()  # type: ignore[union-attr]
    item = desk.enqueue(new_item(1), rules=DeskRules(reviewers=2))
    assert desk.next(ALICE) is not None
    desk.decide(item.id, "reject", reviewer=ALICE)
    assert receiver.accepted == []  # not final: nothing yet
    assert desk.next(BOB) is not None
    desk.decide(item.id, "reject", reviewer=BOB)
    assert [b["decision_id"] for b in receiver.accepted] == [item.decision_id]
    assert desk.pending_deliveries() == []
    desk.close()


def test_the_wired_desk_never_fails_a_verdict_whose_delivery_fails(tmp_path, caplog):
    settings = Settings(
        review=f"sqlite:///{tmp_path / 'wired.db'}",
        review_webhook="http://127.0.0.1:9/closed",
        review_webhook_key=KEY,
    )
    desk = review_desk(settings, _Log())
    assert isinstance(desk, DeliveringDesk)
    desk.effects.webhook.retry = no_wait()  # type: ignore[union-attr]
    desk.effects.webhook.timeout = 1.0  # type: ignore[union-attr]
    with caplog.at_level(logging.WARNING, logger="moderation.review"):
        record = decide(desk, 1)
    assert record.final and desk.final(record.decision_id) == record
    (kept,) = desk.pending_deliveries()
    assert kept.id in caplog.text
    # a desk that itself fails while delivering does not fail the verdict either
    desk.effects.desk = _Broken()  # type: ignore[assignment]
    with caplog.at_level(logging.ERROR, logger="moderation.review"):
        record2 = decide(desk, 2)
    assert record2.final
    assert "stay in the outbox" in caplog.text
    desk.close()


class _Broken:
    def due_deliveries(self, *args: Any, **kwargs: Any) -> list[Any]:
        raise OSError("disk I/O error")


# -- S3: the Lambda's tags and quarantine -------------------------------------------------------


def _upload(s3: Any, key: str, **tags: str) -> S3Identity:
    """An object as the Lambda leaves a `review` outcome: tagged `moderation-outcome=review`."""
    put = s3.put_object(Bucket="uploads", Key=key, Body=b"the image bytes")
    tag_set = [{"Key": k, "Value": v} for k, v in {**tags, "moderation-outcome": "review"}.items()]
    s3.put_object_tagging(Bucket="uploads", Key=key, Tagging={"TagSet": tag_set})
    return S3Identity(
        bucket="uploads", key=key, version_id=put.get("VersionId"), etag=put["ETag"].strip('"')
    )


def _tags(s3: Any, bucket: str, key: str) -> dict[str, str]:
    answer = s3.get_object_tagging(Bucket=bucket, Key=key)
    return {t["Key"]: t["Value"] for t in answer["TagSet"]}


def _keys(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_an_approval_tags_the_object_approved_and_keeps_its_own_tags(s3, desk, clock):
    where = _upload(s3, "a/cat.png", owner="forum-42")
    record = decide(desk, 1, verdict="approve", image=ItemImage(s3=where))
    count = effects(
        desk, None, clock, s3=S3Objects(s3), quarantine_bucket="quarantine"
    ).deliver_due()
    assert count.delivered == 1 and not count.failed
    assert _tags(s3, "uploads", "a/cat.png") == {
        "owner": "forum-42",
        "moderation-outcome": "approved",
        "moderation-decision": record.decision_id,
    }


@pytest.mark.parametrize("versioned", [False, True], ids=["unversioned", "versioned"])
def test_a_rejection_is_tagged_and_moved_to_the_quarantine_bucket(s3, desk, clock, versioned):
    if versioned:
        s3.put_bucket_versioning(Bucket="uploads", VersioningConfiguration={"Status": "Enabled"})
    s3.create_bucket(Bucket="quarantine")
    where = _upload(s3, "a/gun.png", owner="forum-42")
    assert (where.version_id is not None) == versioned
    record = decide(desk, 1, verdict="reject", image=ItemImage(s3=where))
    deliverer = effects(desk, None, clock, s3=S3Objects(s3), quarantine_bucket="quarantine")
    assert deliverer.deliver_due().delivered == 1
    # moved, as the Lambda moves its rejections: same key, tags included, original deleted
    assert _keys(s3, "quarantine") == ["a/gun.png"]
    assert _tags(s3, "quarantine", "a/gun.png") == {
        "owner": "forum-42",
        "moderation-outcome": "rejected",
        "moderation-decision": record.decision_id,
    }
    moved = s3.get_object(Bucket="quarantine", Key="a/gun.png")["Body"].read()
    assert moved == b"the image bytes"
    if versioned:
        assert "Versions" not in s3.list_object_versions(Bucket="uploads", Prefix="a/gun.png")
    else:
        assert _keys(s3, "uploads") == []
    # a redelivery (at least once) finds the object gone: done, not failed, nothing touched
    deliverer.deliver(desk_delivery_again(desk, record))
    assert _keys(s3, "quarantine") == ["a/gun.png"]


def desk_delivery_again(desk: SQLiteReviewDesk, record: ReviewVerdict) -> Any:
    """The delivery of `record` as a second deliverer would be handed it."""
    return Delivery(
        id="again",
        verdict=record,
        image=desk.find(record.decision_id).image,  # type: ignore[union-attr]
        created_at=datetime.now(UTC),
        next_attempt_at=datetime.now(UTC),
    )


def test_a_rejection_without_a_quarantine_bucket_stays_tagged_rejected(s3, desk, clock):
    where = _upload(s3, "a/gun.png")
    decide(desk, 1, verdict="reject", image=ItemImage(s3=where))
    assert effects(desk, None, clock, s3=S3Objects(s3)).deliver_due().delivered == 1
    assert _tags(s3, "uploads", "a/gun.png")["moderation-outcome"] == "rejected"


def test_an_object_overwritten_since_the_decision_is_left_alone(s3, desk, clock, caplog):
    where = _upload(s3, "a/gun.png")
    s3.put_object(Bucket="uploads", Key="a/gun.png", Body=b"new content")
    decide(desk, 1, verdict="reject", image=ItemImage(s3=where))
    s3.create_bucket(Bucket="quarantine")
    with caplog.at_level(logging.WARNING, logger="moderation.review"):
        count = effects(
            desk, None, clock, s3=S3Objects(s3), quarantine_bucket="quarantine"
        ).deliver_due()
    assert count.delivered == 1
    assert _keys(s3, "quarantine") == [] and _keys(s3, "uploads") == ["a/gun.png"]
    assert "moderation-outcome" not in _tags(s3, "uploads", "a/gun.png")
    assert "overwritten since the decision" in caplog.text


class _DeniedS3:
    """S3 that refuses every call, as a role without s3:GetObject would be refused."""

    def head(self, bucket: str, key: str, version_id: str | None = None) -> Any:
        raise AWSError("s3 HeadObject denied", kind="denied", operation="HeadObject")


def test_a_failed_s3_step_keeps_the_delivery_and_holds_the_webhook_back(desk, clock, receiver):
    where = S3Identity(bucket="uploads", key="k.png", etag="e")
    decide(desk, 1, image=ItemImage(s3=where))
    count = effects(desk, receiver, clock, s3=_DeniedS3()).deliver_due()
    assert len(count.failed) == 1 and "denied" in count.failed[0][1]
    assert receiver.accepted == []  # the S3 effects come first
    (kept,) = desk.pending_deliveries()
    assert kept.attempts == 1 and "AWSError" in (kept.last_error or "")
