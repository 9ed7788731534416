"""`moderation review ingest`: the Lambda's review messages move from SQS onto the desk, each
item made once by decision id, each message deleted only after its item is stored, a malformed
message left on the queue for its dead-letter queue."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from clirunner import runner
from images import BLUE, solid
from moto import mock_aws
from test_lambda import HATE, _one_session, s3_notification, world  # noqa: F401 - fixtures

from moderation.aws.sqs import SQSQueue
from moderation.cli import main
from moderation.errors import ReviewError
from moderation.policy import PolicyStore
from moderation.review import (
    DeskRules,
    ItemImage,
    SQLiteReviewDesk,
    ingest,
    parse_review_message,
)

ROOT = Path(__file__).resolve().parent.parent
DECISION = "01JD7Q8W3K2V9X4N6M5R0T1YHB"


def message(decision_id: str = DECISION, **changes: Any) -> dict[str, Any]:
    """The review message of docs/lambda.md, for `decision_id`."""
    body: dict[str, Any] = {
        "schema": 1,
        "decision_id": decision_id,
        "tenant": "forum",
        "bucket": "uploads",
        "key": "photos/review.png",
        "version_id": None,
        "etag": "5d41402abc4b2a76b9719d911017c592",
        "reasons": ["sent to review by policy: Hate Symbols 81.2% >= review 40"],
        "created_at": "2025-01-30T12:00:00.123456Z",
        "policy_id": "forum",
        "policy_sha256": "3f0c",
        "findings": [{"label": "Hate Symbols", "confidence": 81.25, "band": "review"}],
        "rationale": "",
    }
    body.update(changes)
    return body


class Queue:
    """A moto SQS queue: send bodies, count what is left (visible or in flight)."""

    def __init__(self, client: Any, url: str) -> None:
        self.client = client
        self.url = url

    def send(self, *bodies: dict[str, Any] | str) -> None:
        for body in bodies:
            text = body if isinstance(body, str) else json.dumps(body)
            self.client.send_message(QueueUrl=self.url, MessageBody=text)

    def left(self) -> int:
        attributes = self.client.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )


@pytest.fixture
def queue(fake_aws_env: dict[str, str]) -> Iterator[Queue]:
    """A queue whose messages left undeleted are visible again at once (a visibility timeout of
    0), so a test sees at once what a later run would."""
    with mock_aws():
        client = boto3.client("sqs", region_name="us-east-1")
        url = client.create_queue(QueueName="review", Attributes={"VisibilityTimeout": "0"})
        yield Queue(client, url["QueueUrl"])


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[SQLiteReviewDesk]:
    with SQLiteReviewDesk(tmp_path / "desk.db") as opened:
        yield opened


def no_rules(_: object) -> DeskRules | None:
    return None


def test_each_message_becomes_an_item_and_is_deleted(queue: Queue, desk: SQLiteReviewDesk):
    queue.send(message("d-1"), message("d-2", version_id="v7", tenant="kids"))
    count = ingest(SQSQueue(queue.url), desk, no_rules, wait_seconds=0)
    assert (count.added, count.held, count.failed) == (2, 0, [])
    assert queue.left() == 0
    item = desk.find("d-2")
    assert item is not None
    assert item.tenant == "kids"
    assert item.reasons == ("sent to review by policy: Hate Symbols 81.2% >= review 40",)
    assert item.image is not None and item.image.s3 is not None
    assert (item.image.s3.bucket, item.image.s3.key, item.image.s3.version_id) == (
        "uploads",
        "photos/review.png",
        "v7",
    )
    # AND the item has waited since the decision, not since the ingest
    assert item.created_at.isoformat() == "2025-01-30T12:00:00.123456+00:00"


def test_a_redelivered_message_adds_nothing(queue: Queue, desk: SQLiteReviewDesk):
    queue.send(message("d-1"))
    first = ingest(SQSQueue(queue.url), desk, no_rules, wait_seconds=0)
    held = desk.find("d-1")
    queue.send(message("d-1"))  # the Lambda sent it again (a redelivered S3 event)
    again = ingest(SQSQueue(queue.url), desk, no_rules, wait_seconds=0)
    assert (first.added, first.held, again.added, again.held) == (1, 0, 0, 1)
    assert desk.find("d-1") == held
    assert queue.left() == 0


class FailingDesk:
    """A desk that stores nothing: every enqueue fails."""

    def __init__(self, real: SQLiteReviewDesk) -> None:
        self.real = real
        self.closed = False

    def find(self, decision_id: str) -> Any:
        return self.real.find(decision_id)

    def enqueue(self, *args: Any, **kwargs: Any) -> Any:
        raise ReviewError("database is locked")

    def close(self) -> None:
        self.closed = True
        self.real.close()


def test_a_desk_that_fails_leaves_the_message_on_the_queue(queue: Queue, desk: SQLiteReviewDesk):
    queue.send(message("d-1"), message("d-2"))
    count = ingest(SQSQueue(queue.url), FailingDesk(desk), no_rules, wait_seconds=0)  # type: ignore[arg-type]
    assert count.added == 0
    assert isinstance(count.desk_error, ReviewError)
    assert len(count.failed) == 1  # it stops at the first failure: the desk is down
    assert queue.left() == 2  # nothing deleted: both messages come back
    later = ingest(SQSQueue(queue.url), desk, no_rules, wait_seconds=0)
    assert (later.added, later.failed) == (2, [])
    assert queue.left() == 0


def test_a_malformed_message_stays_on_the_queue_and_is_reported(
    queue: Queue, desk: SQLiteReviewDesk
):
    bad = message("d-2")
    del bad["tenant"]
    queue.send(message("d-1"), "not json", bad, message("d-3", schema=2))
    count = ingest(SQSQueue(queue.url), desk, no_rules, wait_seconds=0)
    assert count.added == 1
    reasons = sorted(why for _, why in count.failed)
    assert len(reasons) == 3
    assert any("tenant: Field required" in why for why in reasons)
    assert any("not JSON" in why for why in reasons)
    assert any("schema 2" in why for why in reasons)
    assert queue.left() == 3  # never deleted unread: the redrive policy moves them to the DLQ
    assert desk.find("d-2") is None


def test_a_message_left_unread_is_not_counted_twice_in_one_run(
    queue: Queue, desk: SQLiteReviewDesk
):
    queue.send("{}")  # it comes straight back after each receive
    count = ingest(SQSQueue(queue.url), desk, no_rules, wait_seconds=0)
    assert len(count.failed) == 1
    assert queue.left() == 1


def test_max_messages_stops_the_run(queue: Queue, desk: SQLiteReviewDesk):
    queue.send(*(message(f"d-{n}") for n in range(13)))
    count = ingest(SQSQueue(queue.url), desk, no_rules, max_messages=11, wait_seconds=0)
    assert count.added == 11
    assert queue.left() == 2


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"reasons": "one reason"}, "reasons"),
        ({"decision_id": ""}, "decision_id"),
        ({"schema": "1"}, "schema"),
        ({"bucket": None}, "bucket"),
        ({"findings": [{"label": "Weapons", "confidence": 90, "band": "loud"}]}, "findings.0.band"),
    ],
)
def test_a_message_that_breaks_the_format_names_the_field(change: dict[str, Any], problem: str):
    with pytest.raises(ReviewError, match=f"not a review message: {problem}"):
        parse_review_message(json.dumps(message(**change)))


def test_a_message_of_an_older_lambda_without_findings_or_rationale_is_read():
    old = message()
    del old["findings"], old["rationale"]
    parsed = parse_review_message(json.dumps(old)).new_item()
    assert (parsed.findings, parsed.rationale) == ((), "")


def test_a_field_added_to_the_message_later_is_ignored():
    parsed = parse_review_message(json.dumps(message(judge_model="haiku")))
    assert parsed.new_item().image == ItemImage.model_validate(
        {"s3": {"bucket": "uploads", "key": "photos/review.png", "etag": message()["etag"]}}
    )


# -- the command ------------------------------------------------------------------------------


def run_ingest(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    env = {"MODERATION_POLICIES": str(ROOT / "policies"), **(env or {})}
    return runner().invoke(main, ["review", "ingest", *args], env=env)


def test_ingest_prints_its_counts_and_exits_0(tmp_path: Path, queue: Queue):
    queue.send(message("d-1"), message("d-2"))
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    result = run_ingest(tmp_path, queue.url, "--desk", url, "--wait", "0")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "2 added, 0 already on the desk, 0 failed\n"
    queue.send(message("d-1"))
    again = run_ingest(tmp_path, queue.url, "--wait", "0", env={"MODERATION_REVIEW": url})
    assert again.exit_code == 0, again.stderr
    assert again.stdout == "0 added, 1 already on the desk, 0 failed\n"


def test_ingest_of_a_malformed_message_exits_1_naming_it(tmp_path: Path, queue: Queue):
    queue.send(message("d-1"), "[1, 2]")
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    result = run_ingest(tmp_path, queue.url, "--desk", url, "--wait", "0")
    assert result.exit_code == 1
    assert result.stdout == "1 added, 0 already on the desk, 1 failed\n"
    assert "left on the queue: not a review message: the body is not a JSON object" in (
        result.stderr
    )


def test_ingest_into_a_failing_desk_exits_3_and_deletes_nothing(
    tmp_path: Path, queue: Queue, monkeypatch: pytest.MonkeyPatch
):
    queue.send(message("d-1"), message("d-2"))
    failing = FailingDesk(SQLiteReviewDesk(tmp_path / "desk.db"))
    monkeypatch.setattr("moderation.cli._desk.open_desk", lambda url: failing)
    result = run_ingest(tmp_path, queue.url, "--desk", "sqlite:///desk.db", "--wait", "0")
    assert result.exit_code == 3
    assert result.stdout == "0 added, 0 already on the desk, 1 failed\n"
    assert "the review desk failed: database is locked" in result.stderr
    assert failing.closed
    assert queue.left() == 2


def test_ingest_usage_errors_exit_2(tmp_path: Path, queue: Queue):
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    no_desk = run_ingest(tmp_path, queue.url, env={"MODERATION_REVIEW": ""})
    assert no_desk.exit_code == 2
    bad_queue = run_ingest(tmp_path, "review-queue", "--desk", url)
    assert bad_queue.exit_code == 2
    assert "must be an SQS queue URL" in bad_queue.stderr
    bad_wait = run_ingest(tmp_path, queue.url, "--desk", url, "--wait", "21")
    assert bad_wait.exit_code == 2


def test_ingest_of_a_queue_that_does_not_exist_exits_5(tmp_path: Path, queue: Queue):
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    missing = queue.url.rsplit("/", 1)[0] + "/no-such-queue"
    result = run_ingest(tmp_path, missing, "--desk", url, "--wait", "0")
    assert result.exit_code == 5
    assert "the queue failed" in result.stderr


# -- the Lambda's own messages ----------------------------------------------------------------


def test_the_lambdas_review_message_becomes_an_item_with_its_tenants_rules(
    world: Any,  # noqa: F811 - the fixture imported from test_lambda
    tmp_path: Path,
):
    # GIVEN the forum tenant's policy asks for two reviewers within four hours, hate first
    forum = Path(os.environ["MODERATION_POLICIES"]) / "tenants" / "forum.yaml"
    forum.write_text(
        forum.read_text() + "\nreview: {sla: 4h, reviewers: 2, priority: {Hate Symbols: 30}}\n"
    )
    world.cold_start()
    # AND the Lambda sent a review outcome to its queue
    review = world.put("photos/review.png", solid("png", color=BLUE), tenant="forum", labels=HATE)
    world.invoke(s3_notification(review))
    [record] = [r for r in world.audit() if r["outcome"] == "review"]
    # WHEN the queue is ingested
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    result = runner().invoke(
        main, ["review", "ingest", world.queue_url, "--desk", url, "--wait", "0"]
    )
    # THEN the decision is an item with the message's reasons, object and the tenant's rules
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "1 added, 0 already on the desk, 0 failed\n"
    with SQLiteReviewDesk(tmp_path / "desk.db") as desk:
        item = desk.find(record["id"])
    assert item is not None
    assert (item.tenant, item.reasons) == ("forum", tuple(record["reasons"]))
    assert item.image is not None and item.image.s3 is not None
    assert (item.image.s3.key, item.image.s3.etag) == ("photos/review.png", review["etag"])
    assert [(f.label, f.confidence, f.band.value) for f in item.findings] == [
        ("Hate Symbols", 81.25, "review")
    ]
    assert (item.reviewers_needed, item.priority) == (2, 30)
    assert item.due_at is not None
    assert (item.due_at - item.created_at).total_seconds() == 4 * 3600
    # AND the queue is empty
    assert world.review_messages() == []


def test_ingest_of_a_message_whose_policy_is_gone_uses_the_default_rules(
    tmp_path: Path, queue: Queue
):
    queue.send(message("d-1", policy_id="retired"), message("d-2", policy_id="retired"))
    result = run_ingest(
        tmp_path, queue.url, "--desk", f"sqlite:///{tmp_path / 'd.db'}", "--wait", "0"
    )
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("no policy 'retired' in the store") == 1
    with SQLiteReviewDesk(tmp_path / "d.db") as desk:
        item = desk.find("d-1")
    assert item is not None
    assert (item.reviewers_needed, item.priority, item.due_at) == (1, 0, None)


def test_the_example_of_docs_review_md_from_the_lambdas_queue_runs(
    fake_aws_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    text = (ROOT / "docs" / "review.md").read_text(encoding="utf-8")
    section = text[text.index("## From the Lambda's queue to the desk") :]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    real_receive = SQSQueue.receive

    def receive_without_waiting(self: SQSQueue, **kwargs: Any) -> Any:
        return real_receive(self, **{**kwargs, "wait_seconds": 0})  # moto waits for real

    monkeypatch.setattr(SQSQueue, "receive", receive_without_waiting)
    monkeypatch.chdir(tmp_path)
    with mock_aws():
        client = boto3.client("sqs", region_name="eu-west-1")
        url = client.create_queue(QueueName="review")["QueueUrl"]
        assert url == "https://sqs.eu-west-1.amazonaws.com/123456789012/review"
        Queue(client, url).send(message("d-1"), message("d-2"), message("d-1"))
        scope: dict[str, Any] = {"policies": PolicyStore.load(ROOT / "policies")}
        exec(compile(example, "docs/review.md", "exec"), scope)
    assert (scope["count"].added, scope["count"].held) == (2, 1)
    with SQLiteReviewDesk(tmp_path / "desk.db") as desk:
        item = desk.find("d-1")
    assert item is not None and item.tenant == "forum"


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"max_messages": 11}, "max_messages must be 1 to 10, got 11"),
        ({"max_messages": 0}, "max_messages must be 1 to 10, got 0"),
        ({"wait_seconds": 21}, "wait_seconds must be 0 to 20, got 21"),
    ],
)
def test_a_receive_outside_what_sqs_allows_is_refused(
    queue: Queue, kwargs: dict[str, int], problem: str
):
    with pytest.raises(ValueError, match=problem):
        SQSQueue(queue.url).receive(**kwargs)
