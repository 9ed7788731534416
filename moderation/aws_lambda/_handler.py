"""The Lambda entry point: S3 `ObjectCreated` events in, moderated and tagged objects out.

For each object an event names (docs/lambda.md):

1. HeadObject (the event's version when it has one): the tenant is the object's user metadata
   `tenant`, else `default`. A tenant the policies do not know is an invalid input.
2. Moderate, idempotently: the key is (bucket, key, version id or else ETag, tenant, the tenant
   policy's sha256); a redelivery of the same content gets the first decision back.
3. Apply the outcome: tags, then quarantine (rejected, invalid) or the review message (review).

Failures are TRANSIENT (retried: SQS reports just that message in `batchItemFailures`; a direct
or EventBridge invocation raises) or PERMANENT (the object is tagged invalid and the delivery
succeeds). An object that no longer exists succeeds with a log line. No failure path tags an
object approved.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.idempotency import (
    BasePersistenceLayer,
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
)

from moderation.aws.s3 import S3Objects
from moderation.aws.s3outcome import (
    TAG_DECISION,
    TAG_OUTCOME,
    TAG_REASON,
    apply_outcome,
    is_missing,
    tag_value,
)
from moderation.aws.session import SharedSession, one_session
from moderation.aws.sqs import SQSQueue
from moderation.aws.transport import sdk_client
from moderation.aws_lambda._events import (
    EventError,
    Ignored,
    ObjectRef,
    Parsed,
    Refused,
    Trigger,
    parse_document,
    parse_sqs_body,
)
from moderation.aws_lambda._idempotency import MemoryPersistenceLayer, idempotent
from moderation.aws_lambda._log import install, log
from moderation.aws_lambda._metrics import Tally, namespace
from moderation.decision import ContextValue, Decision
from moderation.engine import Engine
from moderation.errors import (
    AWSError,
    ConfigurationError,
    InvalidImage,
    InvalidTenant,
    UnknownTenant,
)
from moderation.policy import Band
from moderation.s3location import S3Location
from moderation.settings import Settings, read_env
from moderation.wiring import EngineParts, engine_parts

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

__all__ = ["RetryLater", "handler", "reset"]

OutcomeTag = Literal["approved", "rejected", "review", "invalid"]

#: The user metadata entry (`x-amz-meta-tenant`) that names an object's tenant.
TENANT_METADATA: Final = "tenant"
DEFAULT_TENANT: Final = "default"
#: The remaining time assumed when the context cannot say (a direct call outside Lambda):
#: Lambda's longest timeout.
_NO_CONTEXT_REMAINING_MS: Final = 900_000


class RetryLater(Exception):
    """Some objects of a direct or EventBridge invocation failed for a reason that may pass; the
    invocation is failed so that Lambda retries it (the others come back idempotently)."""

    def __init__(self, failures: list[tuple[str, BaseException]]) -> None:
        self.failures = failures
        lines = [f"  {where}: {type(exc).__name__}: {exc}" for where, exc in failures]
        n = len(failures)
        super().__init__(
            f"{n} object{'s' if n != 1 else ''} could not be moderated now and will be "
            "retried:\n" + "\n".join(lines)
        )


class _Gone(Exception):
    """The object no longer exists (deleted, or moved by an earlier delivery)."""


@dataclass(frozen=True)
class _Head:
    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int
    tenant: str

    @property
    def location(self) -> S3Location:
        """Exactly this object: the version when known. What the engine is given, never a
        string it would parse again."""
        return S3Location(self.bucket, self.key, self.version_id)

    @property
    def where(self) -> str:
        return self.location.uri


@dataclass
class _Result:
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    tenant: str | None = None
    outcome: OutcomeTag | None = None
    decision: Decision | None = None
    reason: str | None = None
    replayed: bool = False
    skipped: str | None = None

    def summary(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id,
            "outcome": self.outcome,
            "decision_id": self.decision.id if self.decision is not None else None,
        }
        if self.outcome is not None:
            entry["replayed"] = self.replayed
        if self.reason is not None:
            entry["reason"] = self.reason
        if self.skipped is not None:
            entry["skipped"] = self.skipped
        return entry


@dataclass
class _State:
    """What one cold start builds, for every invocation of this instance. Every AWS client is
    built from `session` on its first use, not at the cold start."""

    settings: Settings
    session: SharedSession
    engine: Engine
    s3: S3Objects
    sqs: SQSQueue | None
    idempotency: IdempotencyConfig
    namespace: str
    _once: Callable[..., dict[str, Any]] | None = None

    def _persistence(self) -> BasePersistenceLayer:
        """Where the answers will be remembered: the idempotency table, else this instance."""
        settings = self.settings
        if not settings.idempotency_table:
            return MemoryPersistenceLayer()
        # Powertools makes these calls itself: its client keeps botocore's retries.
        dynamodb = sdk_client("dynamodb", region=settings.region, session=self.session)
        return DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table, boto3_client=dynamodb
        )

    def moderate_once(self, **kwargs: Any) -> dict[str, Any]:
        """`_moderate_object(**kwargs)`, idempotently: made so on the first call (Powertools'
        DynamoDB layer builds on its client at once, so the client waits for an object too)."""
        if self._once is None:
            self._once = idempotent(_moderate_object, self._persistence(), self.idempotency)
        return self._once(**kwargs)


_STATE: _State | ConfigurationError | None = None


def reset() -> None:
    """Forget what the cold start built (engine, clients, the in-memory idempotency store): the
    next invocation starts cold. For tests; Lambda itself never needs it."""
    global _STATE
    _STATE = None


def _build(settings: Settings, parts: EngineParts, session: SharedSession) -> _State:
    """The state of an instance whose environment was read (`_cold_start`)."""
    engine = Engine.from_parts(parts)
    # Every S3 and SQS call goes through the AWS transports (one retry owner, the one error table).
    s3 = S3Objects(region=settings.region, session=session)
    sqs: SQSQueue | None = None
    if settings.review_queue_url:
        sqs = SQSQueue(settings.review_queue_url, region=settings.region, session=session)
    idempotency = IdempotencyConfig(
        expires_after_seconds=max(1, round(settings.idempotency_ttl)),
        raise_on_no_idempotency_key=True,
    )
    return _State(
        settings=settings,
        session=session,
        engine=engine,
        s3=s3,
        sqs=sqs,
        idempotency=idempotency,
        namespace=namespace(),
    )


def _state() -> _State:
    """The cold start's state, built on first use; a ConfigurationError on every invocation."""
    global _STATE
    if isinstance(_STATE, ConfigurationError):
        # The environment cannot change under a running instance: the same error, every time.
        raise ConfigurationError(_STATE.problems) from None
    if _STATE is None:
        install()
        _STATE = _cold_start()
    return _STATE


def _cold_start() -> _State:
    """Everything the environment names, checked whole before anything is raised: one
    ConfigurationError names every bad variable and every part that could not be built (a bad
    queue URL does not hide a policy location that does not exist)."""
    global _STATE
    reading = read_env()
    try:
        # One boto3 session for the process: every client of the engine and of the handler.
        with one_session() as session:
            parts = engine_parts(reading.settings, problems=reading.problems, bad=reading.bad)
            return _build(reading.settings, parts, session)
    except ConfigurationError as exc:
        if reading.problems:
            _STATE = exc  # a bad variable stays bad until the function is redeployed
        log(
            logging.ERROR,
            "the function's environment is misconfigured: every invocation fails until it is fixed",
            problems=list(exc.problems),
        )
        raise
    except Exception as exc:
        # Not kept: policies or a client that fail to load may load on the next try.
        log(
            logging.ERROR,
            "the engine could not be built",
            error=str(exc),
            error_type=type(exc).__name__,
        )
        raise


# -- the idempotent part ------------------------------------------------------------------------


def _invalid_kind(exc: InvalidImage) -> Literal["gone", "denied", "image"]:
    """Why intake refused an S3 input: the object is gone, may not be read, or is no image."""
    return exc.kind


def _moderate_object(
    *,
    identity: dict[str, Any],
    engine: Engine,
    location: S3Location,
    tenant: str,
    context: dict[str, ContextValue],
    ran: list[bool],
) -> dict[str, Any]:
    """The answer for one object version: `{"decision": ...}` or `{"invalid": reason}`.

    Made idempotent on `identity` (`idempotent`): only the first call for an identity runs. An
    object that is gone, may not be read, or cannot be moderated for a transient reason raises,
    and nothing is stored.
    """
    del identity  # the idempotency key, hashed by the wrapper
    ran.append(True)
    try:
        decision = engine.moderate(location, tenant=tenant, context=context)
    except InvalidImage as exc:
        kind = _invalid_kind(exc)
        if kind == "gone":
            raise _Gone(exc.reason) from exc
        if kind == "denied":
            # The function's role, not the image: retried (and left for the dead-letter queue)
            # rather than quarantined.
            raise
        return {"invalid": exc.reason}
    return {"decision": decision.model_dump(mode="json")}


# -- one object ---------------------------------------------------------------------------------


def _version(value: Any) -> str | None:
    return None if value in (None, "", "null") else str(value)


def _head(s3: S3Objects, ref: ObjectRef) -> _Head | None:
    """What S3 says about the object the event names now; None when it no longer exists.

    Of the event's candidates (`ObjectRef.candidates`: the key as sent, then an EventBridge key's
    decoded reading), the first whose ETag is the event's; failing that, the first that exists.
    """
    found: list[_Head] = []
    for location in ref.candidates():
        head = _head_of(s3, location)
        if head is None:
            continue
        if ref.etag is None or head.etag == ref.etag:
            return head
        found.append(head)
    return found[0] if found else None


def _head_of(s3: S3Objects, location: S3Location) -> _Head | None:
    """HEAD of `location`; None when it (or that version of it) does not exist."""
    try:
        found = s3.head(location.bucket, location.key, location.version_id)
    except AWSError as exc:
        if is_missing(exc):
            return None
        raise
    metadata = found.get("Metadata") or {}
    return _Head(
        bucket=location.bucket,
        key=location.key,
        version_id=location.version_id or _version(found.get("VersionId")),
        etag=str(found.get("ETag") or "").strip('"') or None,
        size=int(found.get("ContentLength") or 0),
        tenant=metadata.get(TENANT_METADATA, DEFAULT_TENANT),
    )


def _context(
    head: _Head, ref: ObjectRef, trigger: Trigger, request_id: str | None
) -> dict[str, ContextValue]:
    key = head.key if len(head.key) <= 256 else head.key[:255] + "…"  # the full key: image.s3
    context: dict[str, ContextValue] = {
        "trigger": trigger,
        "bucket": head.bucket,
        "key": key,
        "version_id": head.version_id,
        "etag": head.etag,
        "event_id": ref.event_id,
        "request_id": request_id,
    }
    return {k: v for k, v in context.items() if v is not None}


def _process(
    state: _State,
    ref: ObjectRef,
    trigger: Trigger,
    request_id: str | None,
    tally: Tally,
    seen: dict[str, str],
) -> _Result:
    head = _head(state.s3, ref)
    if head is None:
        raise _Gone(ref.location.uri)
    seen["tenant"] = head.tenant
    result = _Result(
        bucket=head.bucket,
        key=head.key,
        version_id=head.version_id,
        etag=head.etag,
        tenant=head.tenant,
    )
    answer, result.replayed = _moderate(state, head, ref, trigger, request_id)
    if "decision" in answer:
        result.decision = Decision.model_validate(answer["decision"])
        result.outcome = result.decision.outcome.value
    else:
        result.outcome = "invalid"
        result.reason = str(answer["invalid"])
    _count(tally, head.tenant, result)
    _apply(state, head, result)
    if result.outcome == "invalid":
        _log_invalid(state, head, result, request_id)
    return result


def _moderate(
    state: _State, head: _Head, ref: ObjectRef, trigger: Trigger, request_id: str | None
) -> tuple[dict[str, Any], bool]:
    """The object's answer ({"decision": ...} or {"invalid": why}), and whether it is the answer
    an earlier delivery of the same object already gave (replayed, not moderated again)."""
    try:
        policy = state.engine.policies.get(head.tenant)
    except (UnknownTenant, InvalidTenant) as exc:
        # Never the default policy in its place: the upload names a tenant nobody configured.
        return {"invalid": f"tenant: {exc}"}, False
    if head.version_id is None and head.etag is None:
        raise RuntimeError(f"{head.where}: S3 gave neither a version id nor an ETag")
    identity = {
        "bucket": head.bucket,
        "key": head.key,
        "version": head.version_id or f"etag:{head.etag}",
        "tenant": head.tenant,
        "policy_sha256": policy.ref.sha256,
    }
    ran: list[bool] = []
    answer = state.moderate_once(
        identity=identity,
        engine=state.engine,
        location=head.location,
        tenant=head.tenant,
        context=_context(head, ref, trigger, request_id),
        ran=ran,
    )
    return answer, not ran


def _count(tally: Tally, tenant: str, result: _Result) -> None:
    if result.replayed:
        tally.redelivered(tenant)
    elif result.decision is not None:
        tally.decided(tenant, result.decision)
    else:
        tally.invalid(tenant)


def _log_invalid(state: _State, head: _Head, result: _Result, request_id: str | None) -> None:
    log(
        logging.WARNING,
        "invalid input: tagged invalid"
        + (" and quarantined" if state.settings.quarantine_bucket else ""),
        bucket=head.bucket,
        key=head.key,
        version_id=head.version_id,
        etag=head.etag,
        tenant=head.tenant,
        reason=result.reason,
        replayed=result.replayed,
        request_id=request_id,
    )


# -- applying the outcome -----------------------------------------------------------------------


def _ours(result: _Result) -> list[tuple[str, str]]:
    assert result.outcome is not None
    tags: list[tuple[str, str]] = [(TAG_OUTCOME, result.outcome)]
    if result.decision is not None:
        tags.append((TAG_DECISION, result.decision.id))
    if result.outcome == "invalid" and result.reason:
        tags.append((TAG_REASON, tag_value(result.reason)))
    return tags


def _review_message(result: _Result) -> dict[str, Any]:
    """The JSON body sent to MODERATION_REVIEW_QUEUE_URL for a `review` outcome (docs/lambda.md)."""
    decision = result.decision
    assert decision is not None
    return {
        "schema": 1,
        "decision_id": decision.id,
        "tenant": decision.tenant,
        "bucket": result.bucket,
        "key": result.key,
        "version_id": result.version_id,
        "etag": result.etag,
        "reasons": list(decision.reasons),
        "created_at": decision.model_dump(mode="json")["created_at"],
        "policy_id": decision.policy.id,
        "policy_sha256": decision.policy.sha256,
        "findings": _acting_findings(decision),
        "rationale": decision.escalation.verdict.rationale
        if decision.escalation is not None and decision.escalation.verdict is not None
        else "",
    }


def _acting_findings(decision: Decision) -> list[dict[str, Any]]:
    """The decision's findings that hit a band (label, confidence, band), for the review desk."""
    findings = () if decision.triage is None else decision.triage.findings
    return [
        {"label": f.label, "confidence": f.confidence, "band": f.band.value}
        for f in findings
        if f.band is not Band.IGNORE
    ]


def _send_review(state: _State, result: _Result) -> None:
    assert state.sqs is not None
    assert result.decision is not None
    body = json.dumps(_review_message(result), ensure_ascii=False)
    if state.sqs.fifo:
        state.sqs.send(body, group_id=result.decision.id, dedup_id=result.decision.id)
    else:
        state.sqs.send(body)


def _apply(state: _State, head: _Head, result: _Result) -> None:
    """Tags; then quarantine (rejected, invalid) or the review message (review). Every step is
    safe to repeat: a redelivery writes the same tags, the same copy, the same message."""
    moved = result.outcome in ("rejected", "invalid")
    try:
        apply_outcome(
            state.s3,
            head,
            _ours(result),
            quarantine_to=state.settings.quarantine_bucket if moved else None,
            log=log,
        )
    except AWSError as exc:
        if is_missing(exc):
            raise _Gone(head.where) from exc
        raise
    if state.sqs is not None and result.outcome == "review":
        _send_review(state, result)


# -- the entry point ----------------------------------------------------------------------------


class _InProgressLock:
    """What Powertools is told of the invocation's remaining time, which it makes the lifetime of
    a record in progress: the lock (MODERATION_IDEMPOTENCY_LOCK) or the time left, the shorter.

    Not the time left alone: a moderation whose answer could not be stored (DynamoDB failing)
    leaves its record in progress, and every redelivery until it expires is refused as "already
    in progress": with up to 15 minutes left, S3's two retries would both be refused.
    """

    def __init__(self, context: Any, lock_seconds: float) -> None:
        self._context = context if hasattr(context, "get_remaining_time_in_millis") else None
        self._lock_ms = max(1, round(lock_seconds * 1000))

    def get_remaining_time_in_millis(self) -> int:
        left = (
            _NO_CONTEXT_REMAINING_MS
            if self._context is None
            else int(self._context.get_remaining_time_in_millis())
        )
        return min(left, self._lock_ms)


def _run(
    state: _State,
    items: list[Parsed],
    trigger: Trigger,
    request_id: str | None,
    tally: Tally,
) -> list[dict[str, Any]]:
    """Every object of one delivery; RetryLater (after all were tried) if some must be retried."""
    summaries: list[dict[str, Any]] = []
    failures: list[tuple[str, BaseException]] = []
    for item in items:
        if isinstance(item, Ignored):
            log(logging.INFO, "ignored", what=item.what, why=item.why, request_id=request_id)
            continue
        if isinstance(item, Refused):
            summaries.append(_refused(item, request_id))
            continue
        if item.bucket == state.settings.quarantine_bucket:
            log(
                logging.WARNING,
                "ignored: an object in the quarantine bucket (do not send that bucket's events "
                "to this function)",
                what=item.location.uri,
                request_id=request_id,
            )
            continue
        seen: dict[str, str] = {}
        try:
            result = _process(state, item, trigger, request_id, tally, seen)
        except _Gone:
            summaries.append(_gone(item, request_id))
            continue
        except Exception as exc:
            tally.transient(seen.get("tenant"))
            _log_transient(item, seen.get("tenant"), exc, request_id)
            failures.append((item.location.uri, exc))
            continue
        summaries.append(result.summary())
    if failures:
        error = RetryLater(failures)
        raise error from failures[0][1]
    return summaries


def _gone(item: ObjectRef, request_id: str | None) -> dict[str, Any]:
    """The summary of an object that no longer exists: nothing to do, nothing to retry."""
    log(
        logging.INFO,
        "the object no longer exists (deleted, or moved by an earlier delivery): nothing to do",
        bucket=item.bucket,
        key=item.key,
        version_id=item.version_id,
        request_id=request_id,
    )
    return _Result(
        bucket=item.bucket,
        key=item.key,
        version_id=item.version_id,
        skipped="the object no longer exists",
    ).summary()


def _log_transient(
    item: ObjectRef, tenant: str | None, exc: Exception, request_id: str | None
) -> None:
    log(
        logging.WARNING,
        "transient failure: left to be retried",
        bucket=item.bucket,
        key=item.key,
        version_id=item.version_id,
        tenant=tenant,
        event_id=item.event_id,
        error=str(exc),
        error_type=type(exc).__name__,
        request_id=request_id,
    )


def _refused(item: Refused, request_id: str | None) -> dict[str, Any]:
    """An object no S3 object can be: a permanent error, logged and reported, never retried."""
    log(
        logging.ERROR,
        "invalid event: it names an object S3 cannot have; not retried",
        bucket=item.bucket,
        key=item.key,
        event_id=item.event_id,
        error=item.why,
        request_id=request_id,
    )
    refused = _Result(bucket=item.bucket, key=item.key, reason=item.why)
    refused.skipped = "the event names no object S3 can have"
    return refused.summary()


def _is_sqs(event: Mapping[str, Any]) -> bool:
    records = event.get("Records")
    return (
        isinstance(records, list)
        and bool(records)
        and isinstance(records[0], Mapping)
        and records[0].get("eventSource") == "aws:sqs"
    )


def _handle_sqs(
    state: _State, event: dict[str, Any], context: Any, request_id: str | None, tally: Tally
) -> dict[str, Any]:
    records = event["Records"]
    fifo = any(str(r.get("eventSourceARN") or "").endswith(".fifo") for r in records)
    # A FIFO queue keeps its order: after a failure the rest of the batch is failed unprocessed.
    processor: BatchProcessor = SqsFifoPartialProcessor() if fifo else BatchProcessor(EventType.SQS)
    # A batch that failed whole is reported like any other, not raised as an error of its own.
    processor.raise_on_entire_batch_failure = False

    def record_handler(record: SQSRecord) -> list[dict[str, Any]]:
        try:
            items = parse_sqs_body(record.body, record.message_id)
        except EventError as exc:
            log(
                logging.ERROR,
                "the message is not an S3 event: it is failed, and the queue's redrive policy "
                "moves it to the dead-letter queue",
                message_id=record.message_id,
                error=str(exc),
                request_id=request_id,
            )
            raise
        return _run(state, items, "sqs", request_id, tally)

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda handler (`moderation.aws_lambda.handler`).

    SQS events return `{"batchItemFailures": [{"itemIdentifier": message id}, ...]}` naming the
    messages to retry (enable ReportBatchItemFailures on the event source mapping). S3 and
    EventBridge events return `{"objects": [{bucket, key, version_id, outcome, decision_id, ...}]}`
    and raise RetryLater when an object must be retried. A misconfigured environment raises
    ConfigurationError from every invocation.
    """
    state = _state()
    if not isinstance(event, Mapping):
        raise EventError(f"the event must be a JSON object, got {type(event).__name__}")
    request_id = getattr(context, "aws_request_id", None)
    lock = _InProgressLock(context, state.settings.idempotency_lock)
    state.idempotency.register_lambda_context(lock)  # type: ignore[arg-type]  # what it reads
    tally = Tally(state.namespace)
    try:
        if _is_sqs(event):
            return _handle_sqs(state, event, context, request_id, tally)
        trigger: Trigger = "eventbridge" if event.get("source") == "aws.s3" else "s3"
        items = parse_document(event)
        return {"objects": _run(state, items, trigger, request_id, tally)}
    finally:
        tally.flush()
