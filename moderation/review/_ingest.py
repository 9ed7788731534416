"""Ingest: move the Lambda's review messages from its SQS queue onto the desk.

The Lambda sends one message per `review` outcome to MODERATION_REVIEW_QUEUE_URL (docs/lambda.md).
Each message becomes an item, idempotently by decision id (SQS delivers at least once, and the
Lambda may send a message twice), and is deleted only once its item is stored: a desk that fails
leaves the message on the queue for the next run. A message that cannot be read is left on the
queue too, never deleted unread, so the queue's redrive policy moves it to its dead-letter queue.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, ValidationError

from moderation.decision import S3Identity
from moderation.errors import ReviewError
from moderation.policy import Policy
from moderation.review._desk import ReviewDesk
from moderation.review._model import DeskRules, ItemFinding, ItemImage, NewItem

__all__ = [
    "IngestCount",
    "MessageQueue",
    "ReceivedMessage",
    "ReviewMessage",
    "ingest",
    "message_rules",
    "parse_review_message",
]

#: The review message schema this reader knows (docs/lambda.md); a newer number is refused.
MESSAGE_SCHEMA = 1


class ReceivedMessage(Protocol):
    """A message as the queue hands it out: its id, the receipt that deletes it, its body."""

    @property
    def id(self) -> str: ...
    @property
    def receipt(self) -> str: ...
    @property
    def body(self) -> str: ...


class MessageQueue(Protocol):
    """The queue ingest reads: `moderation.aws.sqs.SQSQueue` is one."""

    def receive(self, *, max_messages: int, wait_seconds: int) -> Sequence[ReceivedMessage]:
        """Up to `max_messages` messages, long-polling up to `wait_seconds`; empty when none."""
        ...

    def delete(self, receipt: str) -> None:
        """Delete the received message whose receipt handle is `receipt`."""
        ...


class ReviewMessage(BaseModel):
    """The body of one review message, as docs/lambda.md defines it (schema 1). Fields added
    later are ignored; a missing or mistyped field is refused."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    schema_: StrictInt = Field(alias="schema")
    decision_id: str = Field(min_length=1, max_length=64)
    tenant: str = Field(min_length=1, max_length=64)
    bucket: str = Field(min_length=1)
    key: str = Field(min_length=1)
    version_id: str | None = None
    etag: str | None = None
    reasons: tuple[str, ...] = ()
    policy_id: str = Field(min_length=1)
    policy_sha256: str | None = None
    # Added to schema 1 later: a message from an older Lambda has none (an item without them).
    findings: tuple[ItemFinding, ...] = ()
    rationale: str = ""
    created_at: AwareDatetime | None = None  # the decision's

    def new_item(self) -> NewItem:
        """The item this message asks for: decision id, tenant, reasons, findings, the judge's
        rationale and the S3 object."""
        s3 = S3Identity(
            bucket=self.bucket, key=self.key, version_id=self.version_id, etag=self.etag
        )
        return NewItem(
            decision_id=self.decision_id,
            tenant=self.tenant,
            reasons=self.reasons,
            findings=self.findings,
            rationale=self.rationale,
            image=ItemImage(s3=s3),
            decided_at=self.created_at,
        )


def parse_review_message(body: str) -> ReviewMessage:
    """The review message in `body`; `ReviewError` naming what is wrong when it is not one."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise ReviewError(f"not a review message: the body is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ReviewError("not a review message: the body is not a JSON object")
    try:
        message = ReviewMessage.model_validate_json(body)
    except ValidationError as exc:
        raise ReviewError(f"not a review message: {_problems(exc)}") from None
    if message.schema_ != MESSAGE_SCHEMA:
        raise ReviewError(
            f"review message schema {message.schema_} is not {MESSAGE_SCHEMA}, the one this "
            "release reads: upgrade the desk"
        )
    return message


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
        for error in exc.errors()
    )


@dataclass(slots=True)
class IngestCount:
    """What an ingest did: items `added`, messages whose item the desk already `held`, and the
    messages left on the queue (`failed`, each message id with why)."""

    added: int = 0
    held: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    desk_error: Exception | None = None


def ingest(
    queue: MessageQueue,
    desk: ReviewDesk,
    rules_of: Callable[[ReviewMessage], DeskRules | None],
    *,
    max_messages: int | None = None,
    wait_seconds: int = 20,
) -> IngestCount:
    """Move the review messages of `queue` onto `desk` until the queue is empty (or
    `max_messages` were received): each parsed, enqueued with `rules_of(message)` (None: the
    desk's defaults) unless the desk holds its decision, then deleted.

    A message that is not a review message is left on the queue and counted as failed. A desk
    that fails leaves its message on the queue and stops the run (`desk_error`). Errors of the
    queue itself (`AWSError`) propagate: what was deleted before them is on the desk.
    """
    count = IngestCount()
    seen: set[str] = set()
    received = 0
    while max_messages is None or received < max_messages:
        batch = min(10, max_messages - received) if max_messages is not None else 10
        messages = queue.receive(max_messages=batch, wait_seconds=wait_seconds)
        fresh = [m for m in messages if m.id not in seen]
        if not fresh:
            break  # empty, or only messages left unread earlier in this run came back
        for message in fresh:
            seen.add(message.id)
            received += 1
            if not _move(message, queue, desk, rules_of, count):
                return count
    return count


def _move(
    message: ReceivedMessage,
    queue: MessageQueue,
    desk: ReviewDesk,
    rules_of: Callable[[ReviewMessage], DeskRules | None],
    count: IngestCount,
) -> bool:
    """One message onto the desk, then off the queue; False when the desk failed."""
    try:
        review = parse_review_message(message.body)
    except ReviewError as exc:
        count.failed.append((message.id, str(exc)))
        return True
    try:
        if desk.find(review.decision_id) is not None:
            count.held += 1
        else:
            desk.enqueue(review.new_item(), rules=rules_of(review))
            count.added += 1
    except Exception as exc:  # any desk failure keeps the message on the queue; reported
        count.failed.append((message.id, f"the review desk failed: {exc}"))
        count.desk_error = exc
        return False
    queue.delete(message.receipt)
    return True


def message_rules(message: ReviewMessage, policy: Policy) -> DeskRules:
    """The desk rules of `message`'s item under `policy`'s `review:` section: its reviewers, its
    SLA, the priority of its findings' categories and the tenant's golden rate (`desk_rules`
    for a whole decision)."""
    rules = policy.review_rules
    return DeskRules(
        reviewers=rules.reviewers,
        sla_seconds=rules.sla_seconds,
        priority=rules.priority_of(f.label for f in message.findings),
        golden_rate=rules.golden_rate,
    )
