"""`moderation check`: moderate images from the command line, one or a backlog of millions.

INPUTs (files, directories, S3 objects and prefixes, @lists: `moderation.cli._inputs`) are
expanded lazily and streamed into `Engine.moderate_many`, so memory stays bounded whatever their
number. With a file audit log, inputs it already holds a decision for under the same policy are
skipped (`moderation.cli._resume`), so a run that was stopped continues where it stopped. On a
terminal a progress line is redrawn in place (`moderation.cli._progress`); otherwise one line per
image. A summary goes to stderr at the end.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, cast

import click

from moderation import wiring
from moderation.cli._common import env_settings, tenant_store, usage_exit
from moderation.cli._inputs import Arg, UsageProblems, expand, parse_args
from moderation.cli._progress import ProgressLine, Tally, limiter_stats
from moderation.cli._resume import ResumeIndex
from moderation.engine import Engine
from moderation.errors import AuditError, ConfigurationError, InvalidImage, ModerationError
from moderation.image import ImageIntake, ObjectHead, S3Object, S3Reader
from moderation.policy import PolicyStore
from moderation.ports import AuditLog
from moderation.review import ImageStore, ReviewDesk
from moderation.s3location import S3Location
from moderation.settings import Settings, is_file_sink

if TYPE_CHECKING:
    from moderation.cli._s3 import S3Lister
    from moderation.decision import Decision

__all__ = ["EXIT_BAD_POLICIES", "EXIT_NOT_APPROVED", "EXIT_UNDECIDED", "check"]

EXIT_APPROVED, EXIT_NOT_APPROVED, EXIT_USAGE, EXIT_UNDECIDED, EXIT_BAD_POLICIES = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130  # Ctrl-C: what shells report for SIGINT

_EPILOG = """\b
INPUT is an image file; a directory (every file under it, recursively, in sorted order; hidden
names skipped; a file that is not an image is an error); s3://bucket/key (one object);
s3://bucket/prefix/ ending in / (every object under it, listed as the run goes); or @FILE (one
INPUT per line, # comments; @- reads stdin).

\b
Exit codes:
  0  every image approved
  1  at least one image rejected or sent to review
  2  usage error (unknown option, a path that does not exist, bad configuration)
  3  at least one image could not be moderated (not an image, S3 or detector failure)
  4  the policies are invalid
  130  interrupted (Ctrl-C)

\b
With a file audit log (--audit FILE or MODERATION_AUDIT), inputs the log already holds a
decision for, under the tenant's current policy, are skipped (--no-resume decides them again):
a stopped run continues where it stopped. Skipped inputs count in the exit code with the outcome
they were given.

Settings come from the environment (MODERATION_POLICIES, MODERATION_REGION or AWS_REGION,
MODERATION_AUDIT, MODERATION_PROJECT_VERSION, MODERATION_JUDGE, MODERATION_TENANT_FALLBACK,
MODERATION_REKOGNITION_TPS, MODERATION_BEDROCK_RPM, MODERATION_DEDUPE); the options override
them. Audit records go to stderr unless MODERATION_AUDIT or --audit names another sink."""

_clock: Callable[[], float] = time.monotonic  # the run's clock (elapsed, images/s, ETA)


@click.command(epilog=_EPILOG)
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True)
@click.option("--tenant", default="default", show_default=True, help="Whose policy applies.")
@click.option("--policies", "directory", help="Policy directory (default: $MODERATION_POLICIES).")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print one JSON line per input: {"input": INPUT, "decision": {...}}, or '
    '{"input": INPUT, "error": {"type", "code", "message"}} for one that failed.',
)
@click.option(
    "--offline",
    "recordings",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Answer from recorded Rekognition/Bedrock responses in this directory; no AWS call.",
)
@click.option("--region", help="AWS region (default: $MODERATION_REGION, $AWS_REGION, boto3's).")
@click.option(
    "--audit",
    help="Audit sink: stderr (default), stdout, log, or a file path for JSON lines.",
)
@click.option("--context", "pairs", multiple=True, help="Caller context as key=value (repeatable).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Images moderated at once (threads).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="The most Rekognition requests per second, shared by all workers (overrides "
    "MODERATION_REKOGNITION_TPS). Unset, the rate limiter finds the quota by itself.",
)
@click.option(
    "--ordered/--unordered",
    default=None,
    help="Print results in input order, or as they finish. Default: input order when every "
    "INPUT is one image, as they finish for directories, prefixes and lists.",
)
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Skip inputs the file audit log already holds a decision for under the same policy.",
)
def check(
    inputs: tuple[str, ...],
    tenant: str,
    directory: str | None,
    as_json: bool,
    recordings: Path | None,
    region: str | None,
    audit: str | None,
    pairs: tuple[str, ...],
    workers: int,
    rate: float | None,
    ordered: bool | None,
    resume: bool,
) -> None:
    """Moderate every image INPUT names: one line each (JSON lines with --json), a summary at
    the end on stderr, and a progress line when stderr is a terminal.

    Each line shows the input, the outcome, the stage that decided and the reason that decided.
    An image that cannot be moderated is reported and the others are still moderated.
    """
    context = _parse_context(pairs)
    try:
        args = parse_args(inputs)
    except UsageProblems as exc:
        raise usage_exit(str(exc)) from exc
    settings = env_settings(policies=directory, region=region, audit=audit, rekognition_tps=rate)
    started = _clock()
    tally = Tally()
    progress: ProgressLine | None = None
    if _is_terminal(sys.stderr):
        progress = ProgressLine(sys.stderr, tally, clock=_clock)
    sink = _audit_sink(settings, progress)
    store, policy = tenant_store(settings, tenant, exit_code=EXIT_BAD_POLICIES)
    policy_sha256 = policy.sha256
    index = _resume_index(settings, tenant, policy_sha256) if resume else None
    run = _Run(
        args=args,
        tenant=tenant,
        context=context,
        as_json=as_json,
        region=settings.region,
        tally=tally,
        progress=progress,
        index=index,
    )
    engine = run.engine = _engine(store, recordings, settings, sink, s3=_SharedS3(run.lister))
    if progress is not None:
        progress.stage = engine.stage_stats
    if ordered is None:
        ordered = all(arg.kind in ("file", "object") for arg in args)
    interrupted = run.go(workers=workers, ordered=ordered)
    _print_summary(engine, tally, progress, index, started=started, interrupted=interrupted)
    raise click.exceptions.Exit(EXIT_INTERRUPTED if interrupted else tally.exit_code())


def _parse_context(pairs: tuple[str, ...]) -> dict[str, str]:
    """The caller context from `--context key=value` options."""
    context: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="--context")
        context[key] = value
    return context


def _print_summary(
    engine: Engine,
    tally: Tally,
    progress: ProgressLine | None,
    index: ResumeIndex | None,
    *,
    started: float,
    interrupted: bool,
) -> None:
    """End the progress line and print the run's summary on stderr."""
    limiters = [
        line
        for line in (
            limiter_stats("rekognition", engine.rekognition_limiter),
            limiter_stats("bedrock", engine.bedrock_limiter),
        )
        if line is not None
    ]
    if progress is not None:
        progress.finish()
    for line in tally.summary(
        elapsed=_clock() - started,
        resumed_from=index.path if index is not None else None,
        ignored=index.ignored_count if index is not None else 0,
        limiters=limiters,
        stage=engine.stage_stats(),
        interrupted=interrupted,
    ):
        click.echo(line, err=True)


def _audit_sink(settings: Settings, progress: ProgressLine | None) -> AuditLog:
    """The run's audit sink (stderr by default): a stream the progress line is drawn on goes
    through it, so that records and the progress line do not overwrite each other."""
    from moderation.audit import StreamAuditLog

    spec = settings.audit or "stderr"
    try:
        if progress is not None and spec == "stderr":
            return StreamAuditLog(cast(TextIO, progress.writer()))
        if progress is not None and spec in ("stdout", "-") and _is_terminal(sys.stdout):
            return StreamAuditLog(cast(TextIO, progress.writer(sys.stdout)))
        return wiring.audit_sink(settings, default=spec)
    except (ConfigurationError, ValueError) as exc:
        raise usage_exit(str(exc)) from exc


def _review_desk(settings: Settings, audit: AuditLog) -> ReviewDesk | None:
    """The desk MODERATION_REVIEW names, recording its verdicts in the run's audit log."""
    try:
        return wiring.review_desk(settings, audit)
    except ModerationError as exc:
        raise usage_exit(str(exc)) from exc


def _review_images(settings: Settings) -> ImageStore | None:
    """The store MODERATION_REVIEW_IMAGES names, for the desk's copies of local images."""
    try:
        return wiring.review_image_store(settings)
    except ModerationError as exc:
        raise usage_exit(str(exc)) from exc


def _resume_index(settings: Settings, tenant: str, policy_sha256: str) -> ResumeIndex | None:
    """What the file audit log already decided for `tenant` under this policy, from its records
    that verify (the lines it ignores are reported on stderr); None without a file log."""
    if settings.audit is None or not is_file_sink(settings.audit):
        return None
    try:
        index = ResumeIndex.load(
            settings.audit, tenant=tenant, policy_sha256=policy_sha256, key=settings.audit_key
        )
    except OSError as exc:
        message = f"cannot read the audit log {settings.audit} to resume from: {exc}"
        raise usage_exit(message) from exc
    _report_ignored(index)
    return index


def _json_line(source: str, what: str, body_json: str) -> str:
    """`{"input":"<source>","<what>":<body>}`: a --json line naming the input it is about."""
    return f'{{"input":{json.dumps(_printable(source))},"{what}":{body_json}}}'


def _report_ignored(index: ResumeIndex, shown: int = 3) -> None:
    """Say which lines of the audit log resume does not trust, and why (stderr)."""
    n = index.ignored_count
    if not n:
        return
    click.echo(
        f"warning: resume ignores {n} line{'s' if n != 1 else ''} of {index.path} that "
        f"do{'es' if n == 1 else ''} not verify (not in the chain, or not under its key): "
        "the inputs they might stand for are decided again; `moderation audit verify "
        f"{index.path}` says more",
        err=True,
    )
    for ignored in index.ignored[:shown]:
        click.echo(f"  {ignored.where}: {ignored.problem}", err=True)
    if n > shown:
        click.echo(f"  ... and {n - shown} more", err=True)


def _printable(text: str) -> str:
    """`text` as it can be printed: a file name that is not UTF-8 (kept by Python as surrogate
    escapes) gets U+FFFD where its undecodable bytes are."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace")


def _is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


class _Run:
    """One run: expand the inputs, skip the decided ones, moderate the rest, report each."""

    def __init__(
        self,
        *,
        args: list[Arg],
        tenant: str,
        context: dict[str, str],
        as_json: bool,
        region: str | None,
        tally: Tally,
        progress: ProgressLine | None,
        index: ResumeIndex | None,
    ) -> None:
        self.engine: Engine | None = None
        self.args = args
        self.tenant = tenant
        self.context = context
        self.as_json = as_json
        self.region = region
        self.tally = tally
        self.progress = progress
        self.index = index if index is not None and len(index) else None
        self._lister: S3Lister | None = None
        self._lister_lock = threading.Lock()
        # On a terminal showing the progress line, approved images of a directory, prefix or
        # list are only counted in it; images named one by one each get their line.
        self.quiet_approved = (
            progress is not None
            and _is_terminal(sys.stdout)
            and any(arg.kind not in ("file", "object") for arg in args)
        )

    def lister(self) -> S3Lister:
        """The S3 client for listings and HEADs, built on first use (thread-safe)."""
        with self._lister_lock:
            if self._lister is None:
                from moderation.cli._s3 import S3Lister

                self._lister = S3Lister(region=self.region)
            return self._lister

    # -- output ----------------------------------------------------------------------------

    def out(self, text: str) -> None:
        text = _printable(text)
        if self.progress is not None and _is_terminal(sys.stdout):
            self.progress.above(text, sys.stdout)
        else:
            click.echo(text)

    def err(self, text: str) -> None:
        text = _printable(text)
        if self.progress is not None:
            self.progress.above(text)
        else:
            click.echo(text, err=True)

    def failed(self, source: str, exc: BaseException) -> None:
        self.tally.failed(exc)
        message = str(exc)
        if (
            isinstance(exc, InvalidImage)
            and source.startswith("s3://")
            and not source.endswith("/")
            and exc.kind == "gone"
        ):
            message += f" (for every object under a prefix, end it with /: {source}/)"
        self.err(f"{source}: error: {message}")
        if self.as_json:
            code = getattr(exc, "code", None)
            error = {
                "type": type(exc).__name__,
                "code": code if isinstance(code, str) and code else None,
                "message": message,
            }
            self.out(_json_line(source, "error", json.dumps(error, separators=(",", ":"))))
        self._tick()

    def decided(self, source: str, decision: Decision) -> None:
        self.tally.decided(decision)
        if self.as_json:
            # One object per input, naming it: {"input": ..., "decision": {...}}, and for an
            # input that failed {"input": ..., "error": {...}} (see `failed`).
            text = _json_line(source, "decision", decision.model_dump_json())
        else:
            text = (
                f"{source}  {decision.outcome.value}  by {decision.decided_by.value}  "
                f"{decision.reason}"
            )
        if not (decision.approved and self.quiet_approved):
            self.out(text)
        self._tick()

    def _tick(self) -> None:
        if self.progress is not None:
            self.progress.update()

    # -- the run ---------------------------------------------------------------------------

    def _etag(self, bucket: str, key: str, version: str | None) -> str | None:
        return self.lister().head(bucket, key, version).etag

    def _sources(self) -> Iterator[S3Location | str]:
        """What the engine is given: every expanded input that is not already decided."""
        for image in expand(self.args, lister=self.lister, on_error=self.failed):
            if self.index is not None:
                outcome = self.index.recorded(image, self._etag)
                if outcome is not None:
                    self.tally.skip(outcome)
                    self._tick()
                    continue
            yield image.target

    def _count(self) -> None:
        """Count the inputs on a thread of its own, for the progress line's total and ETA."""
        assert self.progress is not None
        lister: list[S3Lister] = []

        def own_lister() -> S3Lister:
            if not lister:
                from moderation.cli._s3 import S3Lister

                lister.append(S3Lister(region=self.region))
            return lister[0]

        def ignore(source: str, exc: Exception) -> None:
            pass  # the run itself reports it

        try:
            total = sum(1 for _ in expand(self.args, lister=own_lister, on_error=ignore))
        except Exception:
            return  # the total stays unknown
        self.progress.total = total

    def go(self, *, workers: int, ordered: bool) -> bool:
        """Moderate everything; True if interrupted (Ctrl-C) before the end."""
        if self.progress is not None:
            if all(not (a.kind == "list" and a.text == "-") for a in self.args):
                threading.Thread(target=self._count, name="count-inputs", daemon=True).start()
            self.progress.update(force=True)
        assert self.engine is not None
        items = self.engine.moderate_many(
            self._sources(),
            tenant=self.tenant,
            context=self.context,
            max_workers=workers,
            ordered=ordered,
        )
        try:
            for item in items:
                source = str(item.source)
                if item.decision is not None:
                    self.decided(source, item.decision)
                    continue
                assert item.error is not None
                self.failed(source, item.error)
                if isinstance(item.error, AuditError):
                    # Every decision from here on could not be accounted for either: stop (the
                    # images not yet started are not moderated, and not billed).
                    self.err(
                        "stopping: the audit log cannot be written, and no decision may be made "
                        "without it; fix the audit destination and run the command again"
                    )
                    break
        except KeyboardInterrupt:
            stage = self.engine.stage_stats()
            if stage is not None and stage.depth:
                self.err(
                    f"stopping: waiting for the {stage.depth} escalation(s) already detected to "
                    "be judged and audited (Ctrl-C again stops at once: those not yet judged are "
                    "left undecided, and a run resumed from the audit log moderates them again)"
                )
            return True
        finally:
            close = getattr(items, "close", None)
            if callable(close):
                close()  # images not yet started are cancelled; running ones finish
        return False


class _SharedS3:
    """The image reader of an offline engine: the run's S3 client, built on first use, so that
    listings and reads share one client."""

    def __init__(self, lister: Callable[[], S3Lister]) -> None:
        self._lister = lister

    def head(self, bucket: str, key: str, version_id: str | None) -> ObjectHead:
        return self._lister().head(bucket, key, version_id)

    def read(self, location: S3Object, *, limit: int, byte_range: str | None = None) -> bytes:
        return self._lister().read(location, limit=limit, byte_range=byte_range)


def _engine(
    store: PolicyStore,
    recordings: Path | None,
    settings: Settings,
    audit: AuditLog,
    *,
    s3: S3Reader | None = None,
) -> Engine:
    """The engine of a run: answering from `recordings` (reading S3 through `s3`), or AWS's."""
    if recordings is not None:
        from moderation.recorded import RecordedDetector, RecordedJudge, Recordings

        try:
            recorded = Recordings.load(recordings)
        except ModerationError as exc:  # recordings that cannot be read: the option is wrong
            raise usage_exit(f"--offline {recordings}: {exc}") from exc
        return Engine(
            store,
            RecordedDetector(recorded),
            RecordedJudge(recorded),
            audit,
            intake=ImageIntake(s3=s3),
            review=_review_desk(settings, audit),
            review_images=_review_images(settings),
            rekognition_tps=settings.rekognition_tps,
            bedrock_rpm=settings.bedrock_rpm,
            judge_workers=settings.judge_workers,
            escalation_queue=settings.escalation_queue,
        )
    try:
        return Engine.from_settings(settings, audit=audit, policies=store)
    except ConfigurationError as exc:  # e.g. no AWS region: fix the setup, retrying won't help
        raise usage_exit(str(exc)) from exc
    except ModerationError as exc:  # nothing can be moderated
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_UNDECIDED) from exc
