"""Amazon SQS, for the review queue: SendMessage on the transport.

A message sent again after a lost answer is a duplicate the consumer must tolerate (SQS delivers
at least once anyway; a FIFO queue drops it by its deduplication id). Every failure leaves as
`AWSError`, classified by the one table.
"""

from __future__ import annotations

import re
from typing import Any, Final

from moderation.aws.transport import AWSService

__all__ = ["SQSQueue", "queue_region"]

_SQS_HOST: Final = re.compile(r"^https?://sqs[.-]([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/")


def queue_region(url: str, default: str | None = None) -> str | None:
    """The region in a queue URL (`https://sqs.eu-west-1.amazonaws.com/...`), else `default`."""
    match = _SQS_HOST.match(url)
    return match.group(1) if match else default


class SQSQueue(AWSService):
    """One queue, sent to with the transport's retries and limiter."""

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
