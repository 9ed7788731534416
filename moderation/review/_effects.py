"""What a final verdict does: the S3 object's tags and quarantine, and the signed webhook.

The desk writes a delivery into its outbox in the final verdict's own transaction; `Effects`
takes the due ones and applies them, at least once: the S3 steps (`moderation-outcome`, and a
rejected object moved to the quarantine bucket, with the Lambda's own code,
`moderation.aws.s3outcome`), then the webhook. A delivery that fails stays in the outbox, due
again after a growing delay, until it is delivered (`moderation review deliver` delivers every
due one). docs/review.md documents the webhook's body, headers and signature.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from moderation._retry import RetryPolicy, call_with_retries
from moderation._version import __version__
from moderation.decision import Outcome
from moderation.errors import AWSError, ConfigurationError, ModerationError
from moderation.review._desk import DEFAULT_CLAIM_SECONDS, ReviewDesk
from moderation.review._model import (
    Delivery,
    DeskRules,
    GoldenItem,
    ItemImage,
    ItemKind,
    NewItem,
    QueueDepth,
    Reviewer,
    ReviewItem,
    ReviewVerdict,
    VerdictChoice,
    Waiting,
)
from moderation.settings import Settings, webhook_pair_problem, webhook_url

if TYPE_CHECKING:
    from moderation.aws.s3 import S3Objects
    from moderation.decision import Decision, S3Identity

__all__ = [
    "DELIVERY_HEADER",
    "RETRY_SCHEDULE",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveringDesk",
    "DeliveryCount",
    "Effects",
    "Webhook",
    "WebhookError",
    "retry_delay",
    "sign",
    "webhook_body",
]

SIGNATURE_HEADER: Final = "Moderation-Signature"
DELIVERY_HEADER: Final = "Moderation-Delivery"
TIMESTAMP_HEADER: Final = "Moderation-Timestamp"
#: Seconds from a failed attempt to the next, by failed attempts so far (the last one repeats).
RETRY_SCHEDULE: Final = (60.0, 300.0, 1800.0, 7200.0, 21600.0)
#: The webhook's immediate tries before the delivery is put back in the outbox.
WEBHOOK_RETRY = RetryPolicy(attempts=3, initial_backoff=1.0, max_backoff=4.0, deadline=60.0)
WEBHOOK_URL_VAR: Final = "MODERATION_REVIEW_WEBHOOK"
WEBHOOK_KEY_VAR: Final = "MODERATION_REVIEW_WEBHOOK_KEY"

# Every failed delivery is logged here with its id (the key never is): alert on this logger.
_logger = logging.getLogger("moderation.review")


def _log(level: int, message: str, /, **fields: Any) -> None:
    """The shared S3 steps' log lines, on the `moderation.review` logger."""
    shown = ", ".join(f"{k}={v!r}" for k, v in fields.items() if v is not None)
    _logger.log(level, "%s (%s)", message, shown)


class WebhookError(ModerationError):
    """The webhook did not take the delivery: `status` is the HTTP status (None when there was no
    answer); `retryable` when trying again at once may pass (no answer, 5xx, 408, 429)."""

    def __init__(self, message: str, *, status: int | None, retryable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


def sign(key: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `{timestamp}.{body}` under `key` (UTF-8): the `v1` signature."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


def webhook_body(delivery: Delivery) -> bytes:
    """The JSON body POSTed for `delivery` (UTF-8, keys sorted, no spaces)."""
    verdict = delivery.verdict
    outcome = verdict.outcome
    payload = {
        "schema": 1,
        "delivery_id": delivery.id,
        "decision_id": verdict.decision_id,
        "item_id": verdict.item_id,
        "tenant": verdict.tenant,
        "kind": verdict.kind.value,
        "round": verdict.round,
        "verdict": verdict.verdict.value,
        "outcome": None if outcome is None else outcome.value,
        "reviewer": verdict.reviewer,
        "reviewers": list(delivery.reviewers),
        "note": verdict.note,
        "categories": list(verdict.categories),
        "decided_at": verdict.model_dump(mode="json")["at"],
        "image": None
        if delivery.image is None
        else delivery.image.model_dump(mode="json", exclude_none=True),
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a success: a POST turned into a GET must not count."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Webhook:
    """POSTs a delivery's body, signed, to `url`; `send` raises WebhookError unless a 2xx came.

    `key` is never shown: not in repr, not in an error, not in a log line.
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            self.url = webhook_url(url)
        except ValueError as exc:
            raise ConfigurationError([f"{WEBHOOK_URL_VAR}: {exc}"]) from None
        if not isinstance(key, str) or not key:
            raise ConfigurationError([f"{WEBHOOK_KEY_VAR}: the webhook needs a non-empty key"])
        self._key = key
        self.timeout = timeout
        self.retry = retry if retry is not None else WEBHOOK_RETRY
        self._clock = clock
        self._opener = urllib.request.build_opener(_NoRedirects)
        parts = urlsplit(self.url)
        self.where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # no path, no token

    def __repr__(self) -> str:
        return f"Webhook({self.where + '/...'!r})"

    def send(self, delivery: Delivery) -> int:
        """POST the delivery (tried WEBHOOK_RETRY times at once when the failure may pass); the
        2xx status. WebhookError with the last failure."""
        body = webhook_body(delivery)
        retryable: Callable[[BaseException], bool] = lambda e: (  # noqa: E731
            isinstance(e, WebhookError) and e.retryable
        )
        status, _ = call_with_retries(
            lambda: self._post(delivery.id, body), policy=self.retry, retryable=retryable
        )
        return status

    def _post(self, delivery_id: str, body: bytes) -> int:
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": f"moderation/{__version__}",
            DELIVERY_HEADER: delivery_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: f"t={timestamp},v1={sign(self._key, timestamp, body)}",
        }
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(65536)
                return int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return self._refused(exc.code)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise WebhookError(
                f"the webhook {self.where} could not be reached: {reason}",
                status=None,
                retryable=True,
            ) from None

    def _refused(self, status: int) -> int:
        again = status >= 500 or status in (408, 429)
        why = "redirects are not followed; " if 300 <= status < 400 else ""
        hint = "" if again else f" ({why}check the URL and the key)"
        raise WebhookError(
            f"the webhook {self.where} answered HTTP {status}{hint}", status=status, retryable=again
        )


def retry_delay(failures: int, rng: random.Random) -> float:
    """Seconds before the next attempt after `failures` failed ones: RETRY_SCHEDULE's step,
    jittered by up to a quarter either way, never past its last (6 h) step."""
    base = RETRY_SCHEDULE[min(max(failures, 1), len(RETRY_SCHEDULE)) - 1]
    return min(RETRY_SCHEDULE[-1], base * rng.uniform(0.75, 1.25))


@dataclass
class DeliveryCount:
    """What one `deliver_due` did: deliveries delivered, and those that failed (id, error)."""

    delivered: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Target:
    """The object a final verdict is applied to, as HEAD saw it (`s3outcome.Target`)."""

    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int


class Effects:
    """Applies the desk's due deliveries: the S3 steps for an image in S3, then the webhook.

    `quarantine_bucket` is where a rejected object is moved (MODERATION_QUARANTINE_BUCKET; None
    leaves it in place, tagged). `s3` is built on first need in `region` when not given.
    """

    def __init__(
        self,
        desk: ReviewDesk,
        *,
        webhook: Webhook | None = None,
        quarantine_bucket: str | None = None,
        s3: S3Objects | None = None,
        region: str | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        claim_seconds: float = DEFAULT_CLAIM_SECONDS,
    ) -> None:
        self.desk = desk
        self.webhook = webhook
        self.quarantine_bucket = quarantine_bucket
        self._s3 = s3
        self._region = region
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self.claim_seconds = claim_seconds

    @classmethod
    def from_settings(cls, desk: ReviewDesk, settings: Settings) -> Effects:
        """The effects the settings configure: their webhook, quarantine bucket and region.
        ConfigurationError naming the variable when the webhook has a URL or a key alone."""
        url, key = settings.review_webhook, settings.review_webhook_key
        if (problem := webhook_pair_problem(bool(url), bool(key))) is not None:
            raise ConfigurationError([": ".join(problem)])
        return cls(
            desk,
            webhook=Webhook(url, key) if url and key else None,
            quarantine_bucket=settings.quarantine_bucket,
            region=settings.region,
        )

    def deliver_due(self, limit: int | None = None) -> DeliveryCount:
        """Deliver the due deliveries: at most `limit`, or (None) until none is due. Each that
        fails is put back, due after `retry_delay`, and logged (WARNING; ERROR when the webhook
        refused it) with its id. Errors of the desk itself are raised."""
        count = DeliveryCount()
        while limit is None or count.delivered + len(count.failed) < limit:
            room = 50 if limit is None else min(50, limit - count.delivered - len(count.failed))
            batch = self.desk.due_deliveries(room, claim_seconds=self.claim_seconds)
            for delivery in batch:
                self._deliver_one(delivery, count)
            if len(batch) < room:
                break
        return count

    def _deliver_one(self, delivery: Delivery, count: DeliveryCount) -> None:
        try:
            self.deliver(delivery)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            delay = retry_delay(delivery.attempts + 1, self._rng)
            retry_at = datetime.fromtimestamp(self._clock(), UTC) + timedelta(seconds=delay)
            self.desk.delivery_failed(delivery.id, error, retry_at)
            refused = isinstance(exc, WebhookError) and not exc.retryable
            _logger.log(
                logging.ERROR if refused else logging.WARNING,
                "delivery %s of decision %s failed (attempt %d); kept in the outbox, next attempt"
                " at %s: %s",
                delivery.id,
                delivery.verdict.decision_id,
                delivery.attempts + 1,
                retry_at.isoformat(timespec="seconds"),
                error,
            )
            count.failed.append((delivery.id, error))
            return
        self.desk.delivered(delivery.id)
        count.delivered += 1

    def deliver(self, delivery: Delivery) -> None:
        """Apply one delivery: the S3 steps (an image in S3), then the webhook (when there is
        one). Raises what failed; every step is safe to repeat."""
        image = delivery.image
        if image is not None and image.s3 is not None and delivery.verdict.outcome is not None:
            self._apply_s3(delivery, image.s3, delivery.verdict.outcome)
        if self.webhook is not None:
            self.webhook.send(delivery)

    def _objects(self) -> S3Objects:
        if self._s3 is None:
            from moderation.aws.s3 import S3Objects

            self._s3 = S3Objects(region=self._region)
        return self._s3

    def _apply_s3(self, delivery: Delivery, s3id: S3Identity, outcome: Outcome) -> None:
        """The object's `moderation-outcome` (and `moderation-decision`) tags, and a rejected one
        moved to the quarantine bucket: the Lambda's steps. An object that is gone, or was
        overwritten since the decision, is left alone (logged)."""
        from moderation.aws.s3outcome import (
            TAG_DECISION,
            TAG_OUTCOME,
            ObjectChanged,
            apply_outcome,
            is_missing,
        )

        s3 = self._objects()
        where = {"delivery": delivery.id, "bucket": s3id.bucket, "key": s3id.key}
        try:
            head = s3.head(s3id.bucket, s3id.key, s3id.version_id)
            etag = str(head.get("ETag") or "").strip('"') or None
            if s3id.version_id is None and s3id.etag and etag != s3id.etag:
                _log(logging.WARNING, "overwritten since the decision: not tagged", **where)
                return
            target = _Target(
                s3id.bucket, s3id.key, s3id.version_id, etag, int(head.get("ContentLength") or 0)
            )
            moved = outcome is Outcome.REJECTED
            apply_outcome(
                s3,
                target,
                [(TAG_OUTCOME, outcome.value), (TAG_DECISION, delivery.verdict.decision_id)],
                quarantine_to=self.quarantine_bucket if moved else None,
                log=_log,
            )
        except ObjectChanged as exc:
            _log(logging.WARNING, f"not tagged: {exc}", **where)
        except AWSError as exc:
            if not is_missing(exc):
                raise
            _log(
                logging.INFO,
                "the object no longer exists (deleted, or already moved to the quarantine"
                " bucket): nothing to tag",
                **where,
            )


class DeliveringDesk:
    """A desk that delivers a final verdict's effects right after the verdict is committed.

    Best effort: the verdict is committed and returned whatever the delivery does; a failure is
    logged (with the delivery id) and stays in the outbox for the next deliverer. Every other
    call goes to `desk` unchanged.
    """

    def __init__(self, desk: ReviewDesk, effects: Effects, *, limit: int = 10) -> None:
        self.desk = desk
        self.effects = effects
        self.limit = limit

    def __repr__(self) -> str:
        return f"DeliveringDesk({self.desk!r})"

    def decide(
        self,
        item_id: str,
        verdict: VerdictChoice | str,
        *,
        reviewer: Reviewer,
        note: str = "",
        categories: Iterable[str] = (),
    ) -> ReviewVerdict:
        """The desk's `decide`; then, for a final verdict, the due deliveries (at most `limit`)."""
        record = self.desk.decide(
            item_id, verdict, reviewer=reviewer, note=note, categories=categories
        )
        if record.final:
            self.deliver_now()
        return record

    def deliver_now(self) -> None:
        """Deliver what is due, never raising: a failure stays in the outbox, logged."""
        try:
            self.effects.deliver_due(limit=self.limit)
        except Exception:
            _logger.exception(
                "the final verdict's effects could not be delivered now; they stay in the "
                "outbox for `moderation review deliver`"
            )

    def enqueue(
        self,
        item: Decision | NewItem,
        *,
        rules: DeskRules | None = None,
        kind: ItemKind = ItemKind.REVIEW,
        image: ItemImage | None = None,
    ) -> ReviewItem:
        return self.desk.enqueue(item, rules=rules, kind=kind, image=image)

    def next(self, reviewer: Reviewer) -> ReviewItem | None:
        return self.desk.next(reviewer)

    def release(self, item_id: str, *, reviewer: Reviewer) -> ReviewItem:
        return self.desk.release(item_id, reviewer=reviewer)

    def appeal(
        self,
        decision: str | Decision | NewItem,
        reason: str,
        *,
        by: str = "",
        rules: DeskRules | None = None,
    ) -> ReviewItem:
        return self.desk.appeal(decision, reason, by=by, rules=rules)

    def final(self, decision_id: str) -> ReviewVerdict | None:
        return self.desk.final(decision_id)

    def depth(self, reviewer: Reviewer) -> list[QueueDepth]:
        return self.desk.depth(reviewer)

    def waiting(self, reviewer: Reviewer) -> list[Waiting]:
        return self.desk.waiting(reviewer)

    def get(self, item_id: str) -> ReviewItem:
        return self.desk.get(item_id)

    def find(self, decision_id: str) -> ReviewItem | None:
        return self.desk.find(decision_id)

    def closed_images(self, before: datetime) -> list[str]:
        return self.desk.closed_images(before)

    def due_deliveries(
        self, limit: int, *, claim_seconds: float = DEFAULT_CLAIM_SECONDS
    ) -> list[Delivery]:
        return self.desk.due_deliveries(limit, claim_seconds=claim_seconds)

    def delivered(self, delivery_id: str) -> None:
        self.desk.delivered(delivery_id)

    def delivery_failed(self, delivery_id: str, error: str, retry_at: datetime) -> None:
        self.desk.delivery_failed(delivery_id, error, retry_at)

    def pending_deliveries(self, limit: int = 1000) -> list[Delivery]:
        return self.desk.pending_deliveries(limit)

    def add_golden(
        self,
        item: Decision | NewItem,
        answer: VerdictChoice | str,
        *,
        image: ItemImage | None = None,
    ) -> GoldenItem:
        return self.desk.add_golden(item, answer, image=image)

    def golden(self, tenant: str | None = None) -> list[GoldenItem]:
        return self.desk.golden(tenant)

    def close(self) -> None:
        self.desk.close()
