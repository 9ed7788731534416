"""Amazon SQS, for the review queue: SendMessage, ReceiveMessage and DeleteMessage on the transport.

A message sent again after a lost answer is a duplicate the consumer must tolerate (SQS delivers
at least once anyway; a FIFO queue drops it by its deduplication id). Every failure leaves as
`AWSError`, classified by the one table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from moderation.aws.transport import AWSService

__all__ = [
    "LONG_POLL_READ_TIMEOUT",
    "MAX_BATCH",
    "MAX_WAIT_SECONDS",
    "QueueMessage",
    "SQSQueue",
    "queue_region",
]

#: The most messages one ReceiveMessage returns, and the longest long poll SQS allows.
MAX_BATCH: Final = 10
MAX_WAIT_SECONDS: Final = 20
#: A read timeout that outlasts the longest long poll.
LONG_POLL_READ_TIMEOUT: Final = MAX_WAIT_SECONDS + 10.0

_SQS_HOST: Final = re.compile(r"^https?://sqs[.-]([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/")


def queue_region(url: str, default: str | None = None) -> str | None:
    """The region in a queue URL (`https://sqs.eu-west-1.amazonaws.com/...`), else `default`."""
    match = _SQS_HOST.match(url)
    return match.group(1) if match else default


@dataclass(frozen=True, slots=True)
class QueueMessage:
    """One received message: its id, the receipt handle that deletes it, and its body."""

    id: str
    receipt: str
    body: str


class SQSQueue(AWSService):
    """One queue, sent to and read from with the transport's retries and limiter."""

    service = "sqs"

    def __init__(
        self, url: str, client: Any | None = None, *, region: str | None = None, **kwargs: Any
    ) -> None:
        self.url = url
        if client is None:
            region = queue_region(url, region)
        super().__init__(client, region=region, **kwargs)

    def __repr__(self) -> str:
        return f"SQSQueue({self.url!r})"

    @property
    def fifo(self) -> bool:
        """Whether the queue is a FIFO queue (its name ends in `.fifo`)."""
        return self.url.endswith(".fifo")

    def send(self, body: str, *, group_id: str | None = None, dedup_id: str | None = None) -> str:
        """Send `body`; the message id. `group_id` and `dedup_id` are for a FIFO queue."""
        params: dict[str, Any] = {"QueueUrl": self.url, "MessageBody": body}
        if group_id is not None:
            params["MessageGroupId"] = group_id
        if dedup_id is not None:
            params["MessageDeduplicationId"] = dedup_id
        answer = self.call("SendMessage", lambda: self._client.send_message(**params), self.url)
        return str(answer.get("MessageId") or "")

    def receive(
        self, *, max_messages: int = MAX_BATCH, wait_seconds: int = 0
    ) -> list[QueueMessage]:
        """Up to `max_messages` (1 to 10) messages, waiting up to `wait_seconds` (0 to 20) for
        the first (a long poll); an empty list when none came. A long poll needs a queue built
        with a `read_timeout` longer than `wait_seconds` (`LONG_POLL_READ_TIMEOUT`)."""
        if not 1 <= max_messages <= MAX_BATCH:
            raise ValueError(f"max_messages must be 1 to {MAX_BATCH}, got {max_messages}")
        if not 0 <= wait_seconds <= MAX_WAIT_SECONDS:
            raise ValueError(f"wait_seconds must be 0 to {MAX_WAIT_SECONDS}, got {wait_seconds}")
        answer = self.call(
            "ReceiveMessage",
            lambda: self._client.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=max_messages, WaitTimeSeconds=wait_seconds
            ),
            self.url,
        )
        return [
            QueueMessage(id=str(m["MessageId"]), receipt=str(m["ReceiptHandle"]), body=m["Body"])
            for m in answer.get("Messages", [])
        ]

    def delete(self, receipt: str) -> None:
        """Delete the received message whose receipt handle is `receipt`."""
        self.call(
            "DeleteMessage",
            lambda: self._client.delete_message(QueueUrl=self.url, ReceiptHandle=receipt),
            self.url,
        )
