"""The engine: one call from an image to an audited Decision, failing closed at every step.

    intake -> policy -> detect -> triage -> (judge, only on escalate) -> decision -> audit
        -> review desk (a `review` outcome, or a blind QA sample of an automatic one)

No failure path approves an image: a detector failure raises (or, if the policy says
`on_detector_error: review`, yields a review decision); a judge failure, refusal or unusable answer
follows the policy's `on_error` / `on_blocked`, which can only be review or reject; and a decision
that cannot be written to the audit log is raised as `AuditError`, never returned.

A policy's `shadow` policies are evaluated on the same detection and recorded in `Decision.shadow`;
they never call the judge, spend budget, or change the live decision. The live outcome and each
shadow's come from `moderation.outcome.decide`, the rule replay re-decides recorded decisions with.

At scale (`moderate_many`, `amoderate`): rate limiters shared by every thread keep the detector and
the judge at the account's quota, and a detection cache answers for an image (by sha256) that was
detected before with the same settings, without a second call. There, the steps after triage of an
escalated image (judge, decision, audit: a `PendingJudgment`) run on the engine's judge stage
(`moderation.stages`), so a slow judge holds no detection thread; `moderate` runs them inline.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO

import moderation.wiring as wiring
from moderation._ids import new_ulid
from moderation._version import __version__
from moderation.audit import StreamAuditLog
from moderation.aws.deferred import DeferredS3Reader
from moderation.batch import BatchInput, BatchItem, run_batch
from moderation.budget import EscalationBudget
from moderation.decision import (
    ContextValue,
    DecidedBy,
    Decision,
    Escalation,
    ImageIdentity,
    Outcome,
    ShadowResult,
    check_context,
)
from moderation.dedupe import DetectionCache, SingleFlight
from moderation.detection import Detection, select_frames
from moderation.errors import (
    AuditError,
    DetectorError,
    InvalidImage,
)
from moderation.image import ImageIntake, PreparedImage
from moderation.limits import RateLimiter, limit_detector, limit_judge, unwrapped
from moderation.outcome import (
    NO_JUDGE_NOTE,
    decide,
    escalation_record,
    policy_reasons,
    reusable_answer,
)
from moderation.policy import Band, Policy, PolicyStore
from moderation.ports import AuditLog, Detector, Judge, JudgeRequest
from moderation.pricing import Pricing
from moderation.s3location import S3Location
from moderation.settings import Settings
from moderation.stages import JudgeStage, StageStats
from moderation.taxonomy import normalize
from moderation.triage import Action, Finding, Triage, evaluate

if TYPE_CHECKING:
    from moderation.review import ImageStore, ItemImage, ReviewDesk

__all__ = [
    "BatchInput",
    "BatchItem",
    "Engine",
    "ImageSource",
    "configure",
    "get_engine",
    "moderate",
]

_log = logging.getLogger(__name__)
# Enqueue failures go here, at ERROR, with the decision id: `moderation review backfill` repairs.
_review_log = logging.getLogger("moderation.review")

#: The second stage of a decision triage escalated: ask the judge, decide, audit. Made inline by
#: `moderate`, on the judge stage's threads by `moderate_many` and `amoderate`.
PendingJudgment = Callable[[], Decision]

# An S3 object is passed as an `S3Location`; a `str` starting with `s3://` is parsed once by
# `S3Location.parse` (see `ImageIntake.prepare`).
ImageSource = bytes | bytearray | memoryview | S3Location | str | os.PathLike[str] | BinaryIO


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Clock:
    """Stage timings in milliseconds, from an injectable monotonic timer."""

    def __init__(self, timer: Callable[[], float]) -> None:
        self.timer = timer
        self.start = timer()
        self.mark = self.start
        self.stages: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = self.timer()
        self.stages[stage] = round((now - self.mark) * 1000, 3)
        self.mark = now

    def done(self) -> dict[str, float]:
        self.stages["total"] = round((self.timer() - self.start) * 1000, 3)
        return self.stages


class Engine:
    """Moderates images for many tenants with one detector, an optional judge and an audit log."""

    def __init__(
        self,
        policies: PolicyStore,
        detector: Detector,
        judge: Judge | None = None,
        audit: AuditLog | None = None,
        *,
        intake: ImageIntake | None = None,
        pricing: Pricing | None = None,
        budget: EscalationBudget | None = None,
        cache: DetectionCache | None = None,
        review: ReviewDesk | None = None,
        review_images: ImageStore | None = None,
        rekognition_tps: float | RateLimiter | None = None,
        bedrock_rpm: float | RateLimiter | None = None,
        async_workers: int = 16,
        judge_workers: int = 64,
        escalation_queue: int = 256,
        now: Callable[[], datetime] = _utcnow,
        timer: Callable[[], float] = time.perf_counter,
        new_id: Callable[[], str] = new_ulid,
    ) -> None:
        """`cache`: reuse a detection of the same image (sha256) with the same detector settings
        (`moderation.dedupe`; off unless given here or by `MODERATION_DEDUPE`).

        `rekognition_tps` / `bedrock_rpm`: the most requests per second the detector and per
        minute the judge may send, shared by every thread that uses this engine, backing off on
        throttling (a number, or a `RateLimiter` to share between engines). Unset, the AWS
        adapters (any part with a settable `limiter`) still get a limiter, which finds the
        quota by itself (`moderation.limits.SERVICE_LIMITS`); they charge every request, retries
        included. Any other detector or judge is limited only by a configured rate, and is
        charged once per call.

        `review`: the desk that every `review` decision (and each blind QA sample of an
        automatic one) becomes an item of, after its audit record is written (docs/review.md).
        `review_images`: where the desk's copy of an image given as bytes or a file is kept (the
        upload's own bytes, keyed by sha256); an image in S3 is not copied.

        `async_workers`: the threads `amoderate` detects on.

        `judge_workers`, `escalation_queue`: the judge stage of `moderate_many` and `amoderate`
        (`moderation.stages`): escalations are judged on `judge_workers` threads of their own
        (each call paced by the Bedrock limiter), and at most `escalation_queue` are held at
        once, waiting or being judged; past that, detection waits for room.
        """
        for what, value in (
            ("async_workers", async_workers),
            ("judge_workers", judge_workers),
            ("escalation_queue", escalation_queue),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{what} must be a whole number, got {value!r}")
            if value < 1:
                raise ValueError(f"{what} must be at least 1, got {value}")
        self.policies = policies
        # The engine sets an AWS adapter's own `limiter` (so one adapter object belongs to one
        # engine's limits); any other detector or judge is wrapped.
        self.detector: Detector
        self.judge: Judge | None
        self.rekognition_limiter: RateLimiter | None
        self.bedrock_limiter: RateLimiter | None
        self.detector, self.rekognition_limiter = limit_detector(detector, rekognition_tps)
        self.judge, self.bedrock_limiter = limit_judge(judge, bedrock_rpm)
        # Stdout by default: a sink nobody has to configure, so no decision is silently dropped.
        self.audit: AuditLog = audit if audit is not None else StreamAuditLog()
        # Intake is given its S3 reader: built from the default session on the first s3:// input.
        self.intake = intake or ImageIntake(s3=DeferredS3Reader())
        self.pricing = pricing or Pricing()
        self.budget = budget or EscalationBudget()
        self.cache = cache
        self.review = review
        self.review_images = review_images
        self.async_workers = async_workers
        self.judge_workers = judge_workers
        self.escalation_queue = escalation_queue
        self._now = now
        self._timer = timer
        self._new_id = new_id
        self._single_flight = SingleFlight()
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._stage: JudgeStage[Decision] | None = None
        self._pools_for = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Engine:
        """The AWS engine configured from environment variables (see docs/configuration.md).

        Raises one ConfigurationError naming every bad variable and every part that could not
        be built (a policy location that does not exist included); PolicyError when the
        policies are all that is wrong.
        """
        return cls.from_parts(wiring.parts_from_env(env)[1])

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        audit: AuditLog | None = None,
        policies: PolicyStore | None = None,
    ) -> Engine:
        """The AWS engine for `settings`: Rekognition, Bedrock (unless judge is none), the
        policy store, the audit sink, the dedupe cache, the rate limits and the review desk they
        name (its verdicts go to the audit sink); `audit` and `policies` replace those two.
        Raises as `from_env` does."""
        return cls.from_parts(wiring.engine_parts(settings, audit=audit, policies=policies))

    @classmethod
    def from_parts(cls, parts: wiring.EngineParts) -> Engine:
        """The engine of parts `moderation.wiring` built (what the CLI and the Lambda use)."""
        return cls(
            parts.policies,
            parts.detector,
            parts.judge,
            parts.audit,
            intake=parts.intake,
            cache=parts.cache,
            review=parts.review,
            review_images=parts.review_images,
            rekognition_tps=parts.rekognition_tps,
            bedrock_rpm=parts.bedrock_rpm,
            judge_workers=parts.judge_workers,
            escalation_queue=parts.escalation_queue,
        )

    def moderate(
        self,
        image: ImageSource,
        *,
        tenant: str = "default",
        context: Mapping[str, ContextValue] | None = None,
    ) -> Decision:
        """Decide whether `image` may be published under `tenant`'s policy, and audit it.

        Raises InvalidTenant / UnknownTenant, InvalidImage (nothing to moderate; for an S3 object
        that is missing or may not be read too), ImageSourceError (S3 could not be read),
        DetectorError (unless the policy turns it into a review), AuditError, or ValueError for a
        bad context. Never returns a decision that is not in the audit log.
        """
        step = self._detect_stage(image, tenant, context)
        return step if isinstance(step, Decision) else step()

    def _detect_stage(
        self, image: ImageSource, tenant: str, context: Mapping[str, ContextValue] | None
    ) -> Decision | PendingJudgment:
        """The first stage of `moderate`: the decision when the policy makes it (audited, on the
        review desk), else the judgment still to make for an escalation (the second stage)."""
        ctx = check_context(dict(context or {}))
        clock = _Clock(self._timer)
        # One version of the policies for the whole decision (a reloading store may swap versions
        # meanwhile): the tenant's policy and its shadows come from the same one.
        view = self.policies.snapshot()
        policy = view.get(tenant)
        clock.lap("policy")
        prepared = self.intake.prepare(image, max_frames=policy.max_frames)
        clock.lap("intake")
        step = self._decide(tenant, ctx, policy, prepared, clock, view)
        if isinstance(step, Decision):
            self._enqueue(step, policy, prepared)
            return step

        def judged() -> Decision:
            decision = step()
            self._enqueue(decision, policy, prepared)
            return decision

        return judged

    def _decide(
        self,
        tenant: str,
        ctx: dict[str, ContextValue],
        policy: Policy,
        prepared: PreparedImage,
        clock: _Clock,
        view: PolicyStore,
    ) -> Decision | PendingJudgment:
        """Detect and triage `prepared`: the decision, in the audit log, when the policy makes it;
        for an escalation, the judgment still to make (judge, decide, audit)."""
        identity = ImageIdentity.of(prepared)
        try:
            detection, seen_in, calls = self._detect(prepared, policy)
        except InvalidImage:
            raise
        except Exception as exc:
            clock.lap("detect")
            error = exc if isinstance(exc, DetectorError) else DetectorError(f"detector: {exc!r}")
            if policy.on_detector_error != "review":
                if error is exc:
                    raise
                raise error from exc
            return self._record_detector_failure(tenant, ctx, policy, identity, clock, error, view)
        clock.lap("detect")
        triage = evaluate(policy, detection)
        clock.lap("triage")
        if triage.action is not Action.ESCALATE:
            ruling = decide(policy, triage.action, None)
            assert ruling.outcome is not None
            assert ruling.decided_by is not None
            return self._record(
                tenant, ctx, policy, identity, clock,
                outcome=ruling.outcome,
                decided_by=ruling.decided_by,
                reasons=policy_reasons(triage, ruling.outcome),
                detection=detection,
                triage=triage,
                detector_calls=calls,
                store=view,
            )  # fmt: skip
        return functools.partial(
            self._escalate,
            tenant, ctx, policy, seen_in, identity, clock, detection, triage, calls, view,
        )  # fmt: skip

    def moderate_many(
        self,
        images: Iterable[ImageSource | BatchInput],
        *,
        tenant: str = "default",
        context: Mapping[str, ContextValue] | None = None,
        max_workers: int = 16,
        ordered: bool = False,
    ) -> Iterator[BatchItem]:
        """Moderate every image of `images`, detecting on up to `max_workers` threads: one
        `BatchItem` each.

        Escalations are handed to the engine's judge stage (`judge_workers` threads, at most
        `escalation_queue` held), so the detection threads go on with the next images while the
        judge works at the Bedrock limit (docs/batch.md#stages-detection-and-the-judge).
        `images` may be any iterable, a generator of millions included: inputs are pulled only as
        workers free up, so memory stays bounded. A `BatchInput` gives one input its own tenant or
        context. Items come as they finish (`ordered=True`: in input order); every index comes
        back exactly once, and an input that fails is an item with `error` set, never the end of
        the batch. If the iterable itself raises, the inputs already started finish and are
        yielded, then its exception is raised. Stopping early (closing the iterator) cancels the
        inputs not yet started; those detected finish, escalations included. Rate limits are the
        engine's, shared by all threads; the AWS clients' connection pools are widened to
        `max_workers` (the judge's to `judge_workers`) when this engine built them.
        """
        items = run_batch(
            self._staged,
            images,
            tenant=tenant,
            context=context,
            max_workers=max_workers,
            ordered=ordered,
            held=self.escalation_queue,
        )
        self.size_pools(max(max_workers, self.judge_workers))
        return items

    def _staged(
        self, image: ImageSource, tenant: str, context: Mapping[str, ContextValue] | None
    ) -> Decision | Future[Decision]:
        """Detect `image`: its decision, or (an escalation) the future of the judge stage's."""
        step = self._detect_stage(image, tenant, context)
        return step if isinstance(step, Decision) else self.judge_stage().submit(step)

    async def amoderate(
        self,
        image: ImageSource,
        *,
        tenant: str = "default",
        context: Mapping[str, ContextValue] | None = None,
    ) -> Decision:
        """`moderate` for asyncio code: detection runs on this engine's threads (`async_workers`
        of them) and escalations on its judge stage (as in `moderate_many`), so the event loop is
        never blocked and a slow judge holds no detection thread; any number of concurrent calls
        share the engine's rate limits. Cancelling the awaiting task does not stop a moderation
        that has started: it finishes and is audited, and its result is dropped.
        """
        import asyncio  # here: 13 ms of import for the code that never awaits

        loop = asyncio.get_running_loop()
        call = functools.partial(self._staged, image, tenant, context)
        run = contextvars.copy_context().run
        step = await loop.run_in_executor(self._async_executor(), run, call)
        if isinstance(step, Decision):
            return step
        return await asyncio.wrap_future(step)

    def size_pools(self, workers: int) -> None:
        """Widen the connection pools of the AWS clients this engine's adapters built to at least
        `workers` connections (`ensure_pool`), so that threads do not queue for connections."""
        if workers <= self._pools_for:
            return
        self._pools_for = workers
        parts: list[Any] = [unwrapped(self.detector), unwrapped(self.judge)]
        parts.append(getattr(self.intake, "s3", None))
        for part in parts:
            ensure = getattr(part, "ensure_pool", None)
            if callable(ensure):
                ensure(workers)

    def judge_stage(self) -> JudgeStage[Decision]:
        """The engine's judge stage (`moderation.stages`), started on first use."""
        stage = self._stage
        if stage is None:
            with self._executor_lock:
                if self._stage is None:
                    self._stage = JudgeStage(
                        workers=self.judge_workers, bound=self.escalation_queue
                    )
                stage = self._stage
        return stage

    def stage_stats(self) -> StageStats | None:
        """The judge stage's counts (`StageStats`), None before its first escalation."""
        stage = self._stage
        return stage.stats() if stage is not None else None

    def close(self) -> None:
        """Stop `amoderate`'s threads and the judge stage's once the calls in progress are done
        (idempotent)."""
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        # After detection: an escalation handed over meanwhile is judged before the stage stops.
        with self._executor_lock:
            stage, self._stage = self._stage, None
        if stage is not None:
            stage.shutdown()

    def _async_executor(self) -> ThreadPoolExecutor:
        executor = self._executor
        if executor is None:
            with self._executor_lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        max_workers=self.async_workers, thread_name_prefix="amoderate"
                    )
                    self.size_pools(self.async_workers)
                executor = self._executor
        return executor

    def _detect(
        self, prepared: PreparedImage, policy: Policy
    ) -> tuple[Detection, Callable[[str], PreparedImage], int]:
        """The detection, for a label the image (or animation frame) it was seen in, and how many
        detector calls it took (cached answers take none).

        A still image is one detector call. An animation is one call per selected frame (its
        first frame is not enough: a harmless first frame would hide the rest), combined with
        each label at its most confident; the judge is later shown the frame that label came from.
        """
        if not prepared.frames:
            detection, called = self._detect_one(prepared, policy, prepared.sha256)
            return detection, lambda label: prepared, int(called)
        parts: list[tuple[int, Detection]] = []
        images: dict[int, PreparedImage] = {}
        calls = 0
        for frame in prepared.frames:
            images[frame.index] = prepared.frame_image(frame)
            found, called = self._detect_one(images[frame.index], policy, None)
            calls += called
            parts.append((frame.index, found))
        detection = Detection.combine(parts)
        if calls and detection.cached:  # combine keeps the first frame's flag: all or nothing
            detection = detection.model_copy(update={"cached": False})

        def seen_in(label: str) -> PreparedImage:
            key = normalize(label)
            best = max(
                parts,
                key=lambda part: max(
                    (x.confidence for x in part[1].labels if normalize(x.name) == key),
                    default=-1.0,
                ),
            )
            return images[best[0]]

        return detection, seen_in, calls

    def _detect_one(
        self, image: PreparedImage, policy: Policy, sha256: str | None
    ) -> tuple[Detection, bool]:
        """One detector answer for the bytes `image` sends, and whether a call was made (the
        detection cache and its single flight: `moderation.dedupe.SingleFlight`)."""
        return self._single_flight.detect(
            self.detector, self.cache, image, min_confidence=policy.min_confidence, sha256=sha256
        )

    def _escalate(
        self,
        tenant: str,
        ctx: dict[str, ContextValue],
        policy: Policy,
        seen_in: Callable[[str], PreparedImage],
        identity: ImageIdentity,
        clock: _Clock,
        detection: Detection,
        triage: Triage,
        calls: int,
        view: PolicyStore,
    ) -> Decision:
        escalated = triage.at(Band.ESCALATE)
        # For an animation, the frame in which the most confident borderline label was seen.
        answer = self._ask_judge(tenant, policy, seen_in(escalated[0].label), escalated, clock)
        ruling = decide(policy, triage.action, answer)
        # The engine always has an answer, or a note of why the judge was not asked.
        assert ruling.outcome is not None
        assert ruling.decided_by is not None
        assert ruling.reason is not None
        return self._record(
            tenant, ctx, policy, identity, clock,
            outcome=ruling.outcome,
            decided_by=ruling.decided_by,
            reasons=("escalated: " + "; ".join(f.describe() for f in escalated[:3]), ruling.reason),
            detection=detection,
            triage=triage,
            escalation=answer,
            error=answer.error,
            detector_calls=calls,
            store=view,
        )  # fmt: skip

    def _ask_judge(
        self,
        tenant: str,
        policy: Policy,
        prepared: PreparedImage,
        escalated: tuple[Finding, ...],
        clock: _Clock,
    ) -> Escalation:
        """The judge's answer about `escalated`, as the audit log records it (the outcome rule
        reads it from there): its reply, its failure, or why it was not asked."""
        settings = policy.escalation
        if settings.judge == "none":
            return Escalation(judge="none", skipped=NO_JUDGE_NOTE)
        if self.judge is None or settings.model_id is None:
            note = "no judge is configured in this engine: borderline goes to human review"
            return Escalation(judge=settings.judge, model_id=settings.model_id, skipped=note)
        refused = self.budget.acquire(tenant, settings.budget)
        if refused is not None:
            return Escalation(judge=settings.judge, model_id=settings.model_id, skipped=refused)
        request = JudgeRequest(
            tenant=tenant,
            model_id=settings.model_id,
            guidance=settings.guidance,
            findings=escalated,
        )
        try:
            judgment = self.judge.judge(prepared, request)
        except Exception as exc:
            clock.lap("judge")
            return Escalation(
                judge=settings.judge,
                model_id=settings.model_id,
                attempts=int(getattr(exc, "attempts", 0) or 0),
                error=f"{type(exc).__name__}: {exc}",
            )
        clock.lap("judge")
        return escalation_record(settings.judge, judgment)

    def _record(
        self,
        tenant: str,
        ctx: dict[str, ContextValue],
        policy: Policy,
        identity: ImageIdentity,
        clock: _Clock,
        *,
        outcome: Outcome,
        decided_by: DecidedBy,
        reasons: tuple[str, ...],
        detection: Detection | None = None,
        triage: Triage | None = None,
        escalation: Escalation | None = None,
        error: str | None = None,
        detector_calls: int = 0,
        store: PolicyStore | None = None,
    ) -> Decision:
        fallback = policy.id != tenant
        if fallback:
            reasons = (_fallback_reason(tenant, policy), *reasons)
        shadow: tuple[ShadowResult, ...] = ()
        if detection is not None and policy.shadow:
            shadow = self._live_shadows(store, policy, detection, identity, escalation)
            clock.lap("shadow")
        decision = Decision(
            id=self._new_id(),
            created_at=self._now(),
            tenant=tenant,
            context=ctx,
            outcome=outcome,
            decided_by=decided_by,
            reasons=reasons,
            image=identity,
            policy=policy.ref,
            policy_fallback=fallback,
            detection=detection,
            triage=triage,
            escalation=escalation,
            shadow=shadow,
            timings_ms=clock.done(),
            cost=self.pricing.cost(detection, detector_calls, escalation),
            engine_version=__version__,
            error=error,
        )
        self._append(decision)
        return decision

    def _record_detector_failure(
        self,
        tenant: str,
        ctx: dict[str, ContextValue],
        policy: Policy,
        identity: ImageIdentity,
        clock: _Clock,
        error: DetectorError,
        store: PolicyStore,
    ) -> Decision:
        """The review a policy with `on_detector_error: review` asks for when detection failed."""
        # No detection, so nothing for a shadow policy to evaluate: no shadows are recorded.
        return self._record(
            tenant, ctx, policy, identity, clock,
            outcome=Outcome.REVIEW,
            decided_by=DecidedBy.FALLBACK,
            reasons=(f"detector failed ({error}); policy on_detector_error=review",),
            error=str(error),
            store=store,
        )  # fmt: skip

    def _live_shadows(
        self,
        store: PolicyStore | None,
        policy: Policy,
        detection: Detection,
        identity: ImageIdentity,
        escalation: Escalation | None,
    ) -> tuple[ShadowResult, ...]:
        """The shadow results recorded beside a live decision."""
        # Only a verdict the live decision acted on is reused: a failed or refused call, a
        # skipped one, or none at all leaves an escalating shadow undecided.
        reused = reusable_answer(escalation, replies=False)
        return self._shadows(store or self.policies, policy, detection, identity.n_frames, reused)

    def _append(self, decision: Decision) -> None:
        try:
            self.audit.append(decision)
        except Exception as exc:
            raise AuditError(
                f"decision {decision.id} could not be written to the audit log: {exc!r}", decision
            ) from exc

    def _enqueue(self, decision: Decision, policy: Policy, prepared: PreparedImage) -> None:
        """Put `decision` on the review desk when it needs a person: a `review` outcome, or an
        automatic one the policy's `qa_sample` picks (blind QA; the outcome stands).

        Never raises: the decision is already in the audit log, from which `moderation review
        backfill` enqueues what failed here, so a desk that is down costs no decision.
        """
        if self.review is None:
            return
        # Imported here: an engine without a desk never loads it (a cold start does not need it).
        from moderation.review import desk_rules, item_kind

        # The rule backfill applies too: the same decision is the same item either way.
        kind = item_kind(decision, policy)
        if kind is None:
            return
        image = self._store_image(decision, prepared)
        try:
            self.review.enqueue(
                decision, rules=desk_rules(decision, policy), kind=kind, image=image
            )
        except Exception:
            _review_log.exception(
                "decision %s (%s) could not be put on the review desk as a %s item; it is in "
                "the audit log: `moderation review backfill` enqueues it",
                decision.id,
                decision.tenant,
                kind.value,
            )

    def _store_image(self, decision: Decision, prepared: PreparedImage) -> ItemImage | None:
        """The reviewer's copy of an image given as bytes or a file, in `review_images`: the
        upload's bytes when intake kept them, else the detector's. None (the item's default: its
        S3 object, or its sha256) for an S3 image, without a store, or when the store failed."""
        if self.review_images is None or prepared.s3 is not None:
            return None
        data = prepared.original if prepared.original is not None else prepared.detect_bytes
        if data is None:
            return None
        from moderation.review import ItemImage

        try:
            return ItemImage(store_key=self.review_images.put(data))
        except Exception:
            _review_log.exception(
                "decision %s (%s): the image could not be stored for the review desk; the item "
                "is made without a stored copy",
                decision.id,
                decision.tenant,
            )
            return None

    def _shadows(
        self,
        store: PolicyStore,
        policy: Policy,
        detection: Detection,
        n_frames: int,
        answer: Escalation | None,
    ) -> tuple[ShadowResult, ...]:
        """What each of `policy`'s shadow policies would have said, in the order it names them.

        A shadow that cannot be evaluated (the store's checks make that a bug) is logged and left
        out: it must never cost the live decision, which is written to the audit log regardless.
        """
        results: list[ShadowResult] = []
        for name in policy.shadow:
            try:
                results.append(_shadow(store.policy(name), policy, detection, n_frames, answer))
            except Exception:
                _log.exception(
                    "shadow policy %r of policy %r could not be evaluated; left out of the record",
                    name,
                    policy.id,
                )
        return tuple(results)


def _shadow(
    shadow: Policy, live: Policy, detection: Detection, n_frames: int, answer: Escalation | None
) -> ShadowResult:
    """What `shadow` would have decided about `detection`, with no judge call of its own: the
    outcome rule with the live judge's `answer` (a verdict the live decision acted on, or None).

    Escalate becomes review under `judge: none` (as the engine would decide it), else the live
    judge's verdict if there is one, else stays undecided (outcome None).
    """
    triage = evaluate(shadow, detection)
    ruling = decide(shadow, triage.action, answer)
    band = Band(triage.action.value) if triage.action is not Action.APPROVE else None
    # As in the live reasons: up to three findings of the deciding band, the deciding one last.
    reasons = tuple(f.describe() for f in reversed(triage.at(band)[:3])) if band else ()
    # The detector was asked with the live policy's min_confidence (the live policy's when the
    # detection does not say) and shown the frames the live policy picked (a frame dropped as a
    # repeat of another was seen through it).
    incomplete = detection.misses(
        min_confidence=shadow.min_confidence,
        max_frames=shadow.max_frames,
        n_frames=n_frames,
        looked_at=select_frames(n_frames, live.max_frames),
    ) or (detection.min_confidence is None and shadow.min_confidence < live.min_confidence)
    return ShadowResult(
        policy=shadow.ref,
        action=triage.action,
        outcome=ruling.outcome,
        verdict_reused=ruling.decided_by is DecidedBy.JUDGE,
        reasons=reasons,
        incomplete=incomplete,
    )


_default: Engine | None = None
_default_lock = threading.Lock()


def configure(engine: Engine | None) -> None:
    """Make `engine` the one module-level `moderate()` uses (None: rebuild from env on next use)."""
    global _default
    with _default_lock:
        _default = engine


def get_engine() -> Engine:
    """The module-level engine, built once from the environment on first use (thread-safe)."""
    global _default
    engine = _default
    if engine is None:
        with _default_lock:
            if _default is None:
                _default = Engine.from_env()
            engine = _default
    return engine


def moderate(
    image: ImageSource,
    *,
    tenant: str = "default",
    context: Mapping[str, ContextValue] | None = None,
) -> Decision:
    """Moderate with the module-level engine (see `configure`, `Engine.from_env`)."""
    return get_engine().moderate(image, tenant=tenant, context=context)


def _fallback_reason(tenant: str, policy: Policy) -> str:
    """The first reason of a decision made under the default policy for a tenant without one."""
    # The store hands out the default policy for an unknown tenant only when it was built to;
    # the record says so, first (reasons run from context to the one that decided).
    return (
        f"tenant '{tenant}' has no policy of its own: the '{policy.id}' policy applied "
        "(fallback_to_default)"
    )
