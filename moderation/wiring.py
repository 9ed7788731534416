"""Settings -> engine parts: the one place the library, the CLI and the Lambda build from.

`Engine.from_settings` / `Engine.from_env`, every `moderation` command and the Lambda's cold start
all turn a `Settings` into the same parts here (the policy store, the audit sink, the detector,
the judge, the image intake and its S3 reader, the detection cache, the rate limits, the review
desk), so that what
a deployment runs is what the CLI and a test build.

Building collects: every part is tried, and what is wrong with any of them is added to the
problems the environment already had (`read_env`), so one `ConfigurationError` names every bad
variable. A part whose own variables are already known to be bad is not built (it would only
repeat the problem, or build from a default nobody asked for).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar, cast

from moderation.audit import audit_log_from_spec
from moderation.aws.session import one_session
from moderation.dedupe import DetectionCache, detection_cache_from_spec
from moderation.errors import ConfigurationError, ModerationError, PolicyError
from moderation.image import ImageIntake, S3Reader
from moderation.policy import PolicyStore
from moderation.ports import AuditLog, Detector, Judge, RecordingAuditLog
from moderation.settings import Settings, read_env

if TYPE_CHECKING:
    from moderation.review import ImageStore, ReviewDesk

__all__ = [
    "EngineParts",
    "audit_sink",
    "detection_cache",
    "detector",
    "engine_parts",
    "image_intake",
    "judge",
    "parts_from_env",
    "policy_store",
    "review_desk",
    "review_image_store",
    "s3_reader",
]

_T = TypeVar("_T")

# The variables each part is built from: a part is skipped when one of them is already bad.
_POLICIES = (
    "MODERATION_POLICIES",
    "MODERATION_POLICIES_TTL",
    "MODERATION_TENANT_FALLBACK",
    "MODERATION_REGION",
)
_AUDIT = (
    "MODERATION_AUDIT",
    "MODERATION_AUDIT_KEY",
    "MODERATION_AUDIT_ROTATE_BYTES",
    "MODERATION_REGION",
)
_DETECTOR = ("MODERATION_PROJECT_VERSION", "MODERATION_REGION")
_JUDGE = ("MODERATION_JUDGE", "MODERATION_REGION")
_DEDUPE = ("MODERATION_DEDUPE", "MODERATION_DEDUPE_TTL", "MODERATION_REGION")
_REVIEW = (
    "MODERATION_REVIEW",
    "MODERATION_REVIEW_WEBHOOK",
    "MODERATION_REVIEW_WEBHOOK_KEY",
    "MODERATION_QUARANTINE_BUCKET",
)
_REVIEW_IMAGES = ("MODERATION_REVIEW_IMAGES", "MODERATION_REVIEW")


@dataclass(frozen=True, slots=True)
class EngineParts:
    """What an `Engine` is built from (`Engine.from_parts`)."""

    policies: PolicyStore
    detector: Detector
    judge: Judge | None
    audit: AuditLog
    intake: ImageIntake
    cache: DetectionCache | None
    rekognition_tps: float | None
    bedrock_rpm: float | None
    review: ReviewDesk | None = None
    review_images: ImageStore | None = None
    judge_workers: int = 64
    escalation_queue: int = 256


def policy_store(settings: Settings, *, ttl: float | None = None) -> PolicyStore:
    """The policies at `settings.policies`; `ttl` replaces the settings' (math.inf: read once).
    PolicyError lists every problem."""
    return PolicyStore.load(
        settings.policies,
        ttl=settings.policies_ttl if ttl is None else ttl,
        fallback_to_default=settings.tenant_fallback,
        region=settings.region,
    )


def audit_sink(settings: Settings, *, default: str = "stdout") -> AuditLog:
    """The audit sink `settings.audit` names (`default` when it names none)."""
    return audit_log_from_spec(
        settings.audit or default,
        key=settings.audit_key,
        rotate_bytes=settings.audit_rotate_bytes,
        region=settings.region,
    )


def detector(settings: Settings) -> Detector:
    """Rekognition, with the settings' region and custom adapter."""
    from moderation.aws.rekognition import RekognitionDetector

    return RekognitionDetector(region=settings.region, project_version=settings.project_version)


def judge(settings: Settings) -> Judge | None:
    """The Bedrock judge, or None when `settings.judge` is `none`."""
    if settings.judge == "none":
        return None
    from moderation.aws.bedrock import BedrockJudge

    return BedrockJudge(region=settings.region)


def s3_reader(settings: Settings) -> S3Reader:
    """The reader of `s3://` images in the settings' region, built on its first use (so that an
    engine that never reads S3 never imports boto3)."""
    from moderation.aws.deferred import DeferredS3Reader

    return DeferredS3Reader(region=settings.region)


def image_intake(settings: Settings) -> ImageIntake:
    """Image intake, reading S3 through `s3_reader(settings)`."""
    return ImageIntake(s3=s3_reader(settings))


def detection_cache(settings: Settings) -> DetectionCache | None:
    """The cache `settings.dedupe` names, or None for `off`; ConfigurationError naming
    MODERATION_DEDUPE for a spec the cache refuses."""
    try:
        return detection_cache_from_spec(
            settings.dedupe, ttl_seconds=settings.dedupe_ttl, region=settings.region
        )
    except ConfigurationError:
        raise
    except ValueError as exc:
        raise ConfigurationError([f"MODERATION_DEDUPE: {exc}"]) from exc


def review_desk(settings: Settings, audit: AuditLog) -> ReviewDesk | None:
    """The desk `settings.review` names, or None. Its verdicts and appeals are appended to
    `audit`, the engine's audit log: one chain holds the decisions and what people made of them.
    A final verdict's effects (S3 tags and quarantine, the webhook) are delivered right after it
    is committed, best effort (`DeliveringDesk`); what fails stays in the desk's outbox.

    ConfigurationError when the URL is refused, `audit` cannot record them, or the webhook has
    a URL or a key alone.
    """
    if settings.review is None:
        return None
    # Imported here: a deployment without a desk never loads it.
    from moderation.review import AuditRecordSink, DeliveringDesk, Effects, open_desk

    if not callable(getattr(audit, "append_record", None)):
        raise ConfigurationError(
            [
                f"MODERATION_REVIEW: the audit log {type(audit).__name__} cannot record review "
                "verdicts (it has no append_record); use a file, S3 or stream audit log"
            ]
        )
    sink = AuditRecordSink(cast(RecordingAuditLog, audit))
    desk = open_desk(settings.review, sink=sink)
    try:
        return DeliveringDesk(desk, Effects.from_settings(desk, settings))
    except ConfigurationError:
        desk.close()
        raise


def review_image_store(settings: Settings) -> ImageStore | None:
    """The image store `settings.review_images` names, or None (also without a desk: the copies
    are only for its items)."""
    if settings.review_images is None or settings.review is None:
        return None
    from moderation.review import open_image_store

    return open_image_store(settings.review_images, region=settings.region)


@dataclass
class _Collector:
    """Builds parts one by one, keeping every configuration problem instead of stopping."""

    problems: list[str]
    bad: Collection[str]
    policy_error: PolicyError | None = None

    def build(
        self, variables: tuple[str, ...], make: Callable[[], _T], *, named: bool = True
    ) -> _T | None:
        """`make()`, or None with its problem kept. `variables` are what the part is built
        from; when `named`, the first is the one a problem that names none is put under."""
        if any(name in self.bad for name in variables):
            return None
        try:
            return make()
        except PolicyError as exc:
            self.policy_error = exc
        except ModerationError as exc:
            # Building makes no request (only the policies are read): what fails here is the
            # configuration, e.g. an audit directory that does not exist, or no AWS region.
            found = exc.problems if isinstance(exc, ConfigurationError) else (str(exc),)
            for problem in found:
                if named and not problem.startswith("MODERATION_"):
                    problem = f"{variables[0]}: {problem}"
                if problem not in self.problems:
                    self.problems.append(problem)
        return None

    def raise_any(self) -> None:
        """One ConfigurationError for everything found; a PolicyError alone when the policies
        are the only problem (the error `PolicyStore.load` raises, with its warnings)."""
        error = self.policy_error
        if error is not None and not self.problems:
            raise error
        if error is not None:
            self.problems.extend(f"MODERATION_POLICIES: {p.render()}" for p in error.problems)
        if self.problems:
            raise ConfigurationError(self.problems) from error


def engine_parts(
    settings: Settings,
    *,
    audit: AuditLog | None = None,
    policies: PolicyStore | None = None,
    problems: Collection[str] = (),
    bad: Collection[str] = (),
) -> EngineParts:
    """The parts of the AWS engine `settings` describe; `audit` and `policies` replace those two.

    `problems` are ones already found (`EnvReading.problems`) and `bad` the variables they name:
    parts built from a bad variable are skipped. Raises one ConfigurationError naming everything
    wrong; a PolicyError when the policies are all that is wrong.
    """
    collect = _Collector(list(problems), bad)
    # One boto3 session for every part: botocore reads its data files once, not once per client.
    # The clients themselves are built on first use (`AWSTransport`).
    with one_session():
        store = policies
        if store is None:
            store = collect.build(_POLICIES, lambda: policy_store(settings))
        sink = audit if audit is not None else collect.build(_AUDIT, lambda: audit_sink(settings))
        # What these miss is most often a region, which no single variable names (several set it).
        rekognition = collect.build(_DETECTOR, lambda: detector(settings), named=False)
        bedrock = collect.build(_JUDGE, lambda: judge(settings), named=False)
        intake = collect.build(("MODERATION_REGION",), lambda: image_intake(settings), named=False)
        cache = collect.build(_DEDUPE, lambda: detection_cache(settings))
        desk = None
        if sink is not None:  # the desk's records go to the audit log: without one, no desk
            desk = collect.build(_REVIEW, lambda: review_desk(settings, sink))
        images = collect.build(_REVIEW_IMAGES, lambda: review_image_store(settings))
    try:
        collect.raise_any()
    except ModerationError:
        if desk is not None:  # opened, but no engine will own it
            desk.close()
        raise
    # Every part was built: a part that was not left a problem, and raise_any raised it.
    assert store is not None
    assert sink is not None
    assert rekognition is not None
    assert intake is not None
    return EngineParts(
        policies=store,
        detector=rekognition,
        judge=bedrock,
        audit=sink,
        intake=intake,
        cache=cache,
        rekognition_tps=settings.rekognition_tps,
        bedrock_rpm=settings.bedrock_rpm,
        review=desk,
        review_images=images,
        judge_workers=settings.judge_workers,
        escalation_queue=settings.escalation_queue,
    )


def parts_from_env(env: Mapping[str, str] | None = None) -> tuple[Settings, EngineParts]:
    """The settings in `env` (default: os.environ) and the engine parts they describe.

    Everything is checked before anything is raised: a bad variable does not hide a policy
    location that does not exist, or a part that cannot be built. One ConfigurationError names
    every problem; a PolicyError when the policies are all that is wrong.
    """
    reading = read_env(env)
    parts = engine_parts(reading.settings, problems=reading.problems, bad=reading.bad)
    return reading.settings, parts
