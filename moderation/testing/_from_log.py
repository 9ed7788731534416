"""An offline engine rebuilt from a decision log: the detector and judge answer as production did.

`DecisionLog(source)` indexes what a log recorded: each image's detections (by sha256) and each
judge answer (by image sha256 and tenant). `LoggedDetector` and `LoggedJudge` answer from it, and
`engine_from_log(source, policies)` puts them in an `Engine`, so that `moderate()` on the same image
bytes and tenant reproduces the recorded outcome, and under a changed policy shows what the change
would do with the answers production got.

The answers are honest: a call the log cannot answer is an error naming the image, never a
made-up answer. docs/testing.md ("An engine from a decision log") has the rules.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Literal, TypeAlias

from moderation.audit import InMemoryAuditLog, LogEntry, read_log
from moderation.decision import Decision, Escalation
from moderation.detection import Detection
from moderation.engine import Engine
from moderation.errors import DetectorError, JudgeError, ModerationError
from moderation.image import ImageIntake, PreparedImage
from moderation.image._intake import Source
from moderation.policy import PolicyStore
from moderation.ports import AuditLog, JudgeRequest, Judgment
from moderation.s3location import SCHEME, S3Location
from moderation.testing._calls import DetectCall, JudgeCall
from moderation.testing.recorded import NoRecording

__all__ = [
    "DecisionLog",
    "DetectionNotReplayable",
    "LogSource",
    "LoggedDetector",
    "LoggedJudge",
    "NoLoggedVerdict",
    "NotInLog",
    "VerdictNotReplayable",
    "engine_from_log",
]

#: A log path, several paths (each read with its rotated predecessors), or decisions in memory.
LogSource: TypeAlias = str | os.PathLike[str] | Iterable[str | os.PathLike[str] | Decision]

RECORDED: Final = "recorded"
_Status = Literal["verdict", "blocked", "invalid", "failed"]

# The frames the engine selected for the image it is moderating, set by the intake of an engine
# from a log and read by its detector: a frame image carries the whole image's sha256 and not its
# frame index, and a recorded detection answers only for the frames it was made from. A context
# variable, because one engine may moderate in several threads at once.
_selected_frames: contextvars.ContextVar[tuple[str | None, tuple[int, ...]] | None] = (
    contextvars.ContextVar("moderation_logged_frames", default=None)
)


class NotInLog(NoRecording):
    """The decision log holds no detection for this image (a `NoRecording`, so a DetectorError)."""


class DetectionNotReplayable(DetectorError):
    """The log has detections for this image, but none that can honestly answer this call."""


class NoLoggedVerdict(JudgeError):
    """The decision log holds no judge answer for this image and tenant."""


class VerdictNotReplayable(JudgeError):
    """The log's judge answer for this image and tenant came from another model than asked."""


@dataclass(frozen=True, slots=True)
class _Detected:
    created_at: datetime
    order: int
    decision_id: str
    detection: Detection


@dataclass(frozen=True, slots=True)
class _Judged:
    created_at: datetime
    order: int
    decision_id: str
    escalation: Escalation
    status: _Status


def _judge_status(decision: Decision, escalation: Escalation) -> _Status | None:
    """What the judge did for this decision; None when it was never called (skipped, no judge)."""
    return escalation.answer


def _is_path(item: object) -> bool:
    return isinstance(item, str | os.PathLike)


class DecisionLog:
    """Detections by image sha256 and judge answers by (sha256, tenant), from a decision log.

    `source` is a log path (read with its rotated predecessors, oldest first), an iterable of
    paths, an iterable of `Decision`s, or a mix of the last two. Chained records and bare decision
    lines are both read. A torn record (a writer stopped mid-line) is skipped; any other line that
    is not a readable record raises ModerationError naming `file:line`. Decisions without an image
    sha256 (an S3 image that was never downloaded) cannot be matched to an image and are skipped.
    """

    def __init__(self, source: LogSource) -> None:
        self.detections: dict[str, list[_Detected]] = {}
        self.judged: dict[tuple[str, str], list[_Judged]] = {}
        # The error of the latest decision whose detector failed, per image with no detection.
        self.detector_failures: dict[str, str] = {}
        self.size = 0
        self.source = self._describe(source)
        if isinstance(source, str | os.PathLike):  # a str is one path, not an iterable of them
            self._read([source])
            return
        paths: list[str | os.PathLike[str]] = []
        memory: list[Decision] = []
        for item in source:
            if isinstance(item, Decision):
                memory.append(item)
            elif isinstance(item, str | os.PathLike):
                paths.append(item)
            else:
                raise TypeError(
                    "a decision log source holds log paths or moderation.Decision objects, not "
                    f"{type(item).__name__}"
                )
        if paths:
            self._read(paths)
        for decision in memory:
            self.add(decision)

    @staticmethod
    def _describe(source: LogSource) -> str:
        if _is_path(source):
            return str(source)
        if isinstance(source, list | tuple):
            paths = [str(item) for item in source if _is_path(item)]
            n = len(source) - len(paths)
            held = [f"{n} decision{'s' if n != 1 else ''} in memory"] if n else []
            return ", ".join(paths + held) or "an empty decision log"
        return "the decisions given"

    def _read(self, paths: list[str | os.PathLike[str]]) -> None:
        unreadable: list[LogEntry] = []
        noted: set[tuple[Path, int]] = set()
        for entry in read_log(paths):
            if entry.torn:
                continue  # the last line of a file a writer stopped writing: never returned
            if entry.error is not None:
                unreadable.append(entry)
                continue
            parsed = entry.parsed
            torn = getattr(parsed, "torn", None)
            if torn is not None:
                # The writer found a torn line when it reopened the file and said so: that line
                # is known debris, not a damaged record.
                noted.add((entry.file, torn.line))
            decision = entry.decision
            if decision is not None:
                self.add(decision)
        bad = [e for e in unreadable if (e.file, e.line) not in noted]
        if bad:
            shown = "; ".join(f"{e.where}: {e.error}" for e in bad[:5])
            more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
            raise ModerationError(
                f"{len(bad)} unreadable line{'s' if len(bad) != 1 else ''} in the decision log: "
                f"{shown}{more}"
            )

    def add(self, decision: Decision) -> None:
        """Index one decision: its detection, and its judge answer if the judge was called."""
        self.size += 1
        sha = decision.image.sha256
        if sha is None:
            return
        sha = sha.lower()
        when, order = decision.created_at, self.size
        if decision.detection is not None:
            self.detections.setdefault(sha, []).append(
                _Detected(when, order, decision.id, decision.detection)
            )
        elif decision.error is not None:
            self.detector_failures[sha] = decision.error
        escalation = decision.escalation
        status = _judge_status(decision, escalation) if escalation is not None else None
        if escalation is not None and status is not None:
            self.judged.setdefault((sha, decision.tenant), []).append(
                _Judged(when, order, decision.id, escalation, status)
            )


def _latest(records: list[_Detected]) -> _Detected:
    # Log order breaks a tie of created_at: the later line was written later.
    return max(records, key=lambda r: (r.created_at, r.order))


def _index(source: DecisionLog | LogSource) -> DecisionLog:
    return source if isinstance(source, DecisionLog) else DecisionLog(source)


class LoggedDetector:
    """A Detector that answers with the detection the log recorded for the image's sha256.

    Labels below the asked `min_confidence` are left out, as Rekognition would; a lower
    `min_confidence` than any recorded detection was made with is refused
    (`DetectionNotReplayable`): the labels in between were never reported. Of several usable
    detections of one image, the latest (`created_at`, then log order) answers. An image the log
    does not hold raises `NotInLog`. Detections say `provider="recorded"`; calls are kept in
    `.calls` (`DetectCall`).
    """

    def __init__(self, log: DecisionLog | LogSource) -> None:
        self.log = _index(log)
        self.calls: list[DetectCall] = []

    def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
        """The recorded detection for this image at `min_confidence`; NotInLog or
        DetectionNotReplayable when the log cannot answer."""
        self.calls.append(DetectCall(image, min_confidence))
        sha = image.sha256.lower() if image.sha256 is not None else None
        if sha is None:
            raise NotInLog(
                f"an S3 image that was not downloaded has no sha256 to look up in {self.log.source}"
            )
        records = self.log.detections.get(sha)
        if not records:
            failed = self.log.detector_failures.get(sha)
            note = f" (only a detector failure is recorded for it: {failed})" if failed else ""
            raise NotInLog(f"no recorded detection for sha256 {sha} in {self.log.source}{note}")
        records = _of_selected_frames(sha, records)
        found = _latest(_usable_at(sha, records, min_confidence)).detection
        return found.model_copy(
            update={
                "provider": RECORDED,
                "min_confidence": min_confidence,
                "labels": tuple(x for x in found.labels if x.confidence >= min_confidence),
                "latency_ms": None,  # nothing was called
                # Each frame call answers for the frames recorded; the engine combines the calls
                # and names the frames itself.
                "frames": (),
            }
        )


def _of_selected_frames(sha: str, records: list[_Detected]) -> list[_Detected]:
    """The records made from the frames the policy now has the detector look at (all of them
    when no frames are selected for this image)."""
    selected = _selected_frames.get()
    if selected is None or selected[0] != sha:
        return records
    frames = selected[1]
    same = [r for r in records if r.detection.frames == frames]
    if not same:
        recorded = sorted({r.detection.frames for r in records})
        raise DetectionNotReplayable(
            f"sha256 {sha}: the policy has the detector look at frames {list(frames)} of "
            f"this animation, the log's detections were made from frames "
            f"{', '.join(str(list(f)) for f in recorded)}; the log cannot know what the "
            "other frames show (a changed max_frames)"
        )
    return same


def _usable_at(sha: str, records: list[_Detected], min_confidence: float) -> list[_Detected]:
    """The records made at `min_confidence` or below, which hold every label it would report."""
    known = [r for r in records if r.detection.min_confidence is not None]
    usable = [r for r in known if (r.detection.min_confidence or 0.0) <= min_confidence]
    if usable:
        return usable
    if not known:
        raise DetectionNotReplayable(
            f"sha256 {sha}: the log's detections do not say which min_confidence they "
            "were made with, so it cannot tell which labels were left out"
        )
    lowest = min(known, key=lambda r: r.detection.min_confidence or 0.0)
    low = lowest.detection.min_confidence
    raise DetectionNotReplayable(
        f"sha256 {sha}: the policy asks the detector for min_confidence "
        f"{min_confidence:g}, lower than the log's detections were made with (lowest "
        f"{low:g}, decision {lowest.decision_id}); labels between {min_confidence:g} and "
        f"{low:g} were never reported, so the log cannot answer"
    )


class LoggedJudge:
    """A Judge that answers with the judge answer the log recorded for the image and tenant.

    The latest answer for (image sha256, tenant) is given: a verdict, a refusal (`blocked`), an
    unusable reply (`invalid`), or, when the judge's call failed, that failure again
    (`NoLoggedVerdict`). No answer for them raises `NoLoggedVerdict`. An answer from another
    model than the request's `model_id` is refused (`VerdictNotReplayable`) unless
    `allow_other_model=True`. The engine turns a judge error into the policy's `on_error`, so
    these show up in the decision's `error`. Judgments say `provider="recorded"` (they cost
    nothing); calls are kept in `.calls` (`JudgeCall`).
    """

    def __init__(self, log: DecisionLog | LogSource, *, allow_other_model: bool = False) -> None:
        self.log = _index(log)
        self.allow_other_model = allow_other_model
        self.calls: list[JudgeCall] = []

    def judge(self, image: PreparedImage, request: JudgeRequest) -> Judgment:
        """The recorded judgment for this image and tenant; NoLoggedVerdict or
        VerdictNotReplayable when the log cannot answer."""
        self.calls.append(JudgeCall(image, request))
        sha = image.sha256.lower() if image.sha256 is not None else None
        tenant = request.tenant
        records = self.log.judged.get((sha, tenant)) if sha is not None else None
        if not records:
            others = sorted(t for s, t in self.log.judged if s == sha)
            note = f" (it has answers for this image for {', '.join(others)})" if others else ""
            raise NoLoggedVerdict(
                f"no recorded judge answer for sha256 {sha} and tenant {tenant} in "
                f"{self.log.source}{note}"
            )
        best = max(records, key=lambda r: (r.created_at, r.order))
        escalation = best.escalation
        if escalation.model_id != request.model_id and not self.allow_other_model:
            raise VerdictNotReplayable(
                f"sha256 {sha}, tenant {tenant}: the policy asks model {request.model_id}, the "
                f"log's answer (decision {best.decision_id}) came from {escalation.model_id}; "
                "another model may answer otherwise (build with allow_other_model=True to "
                "reuse it anyway)"
            )
        if best.status == "failed":
            raise NoLoggedVerdict(
                f"sha256 {sha}, tenant {tenant}: the judge's call failed when decision "
                f"{best.decision_id} was made, and the log replays that: {escalation.error}"
            )
        return Judgment(
            status=best.status,
            verdict=escalation.verdict,
            detail=None if best.status == "verdict" else escalation.error,
            model_id=escalation.model_id or request.model_id,
            prompt_sha256=escalation.prompt_sha256 or "",
            stop_reason=escalation.stop_reason,
            usage=escalation.usage,
            latency_ms=None,  # nothing was called
            attempts=escalation.attempts or 1,
            provider=RECORDED,
        )


class _LoggedIntake(ImageIntake):
    """Intake that tells the logged detector which frames of an animation the engine selected."""

    def prepare(self, source: Source, *, max_frames: int = 1) -> PreparedImage:
        """The prepared image; ModerationError for an S3 object (this engine is offline)."""
        if isinstance(source, S3Location) or (
            isinstance(source, str) and source.startswith(SCHEME)
        ):
            raise ModerationError(
                f"{source}: an engine from a decision log is offline and reads no S3 object; "
                "pass the image's bytes (the log matches them by sha256)"
            )
        prepared = super().prepare(source, max_frames=max_frames)
        sha = prepared.sha256.lower() if prepared.sha256 is not None else None
        _selected_frames.set((sha, tuple(frame.index for frame in prepared.frames)))
        return prepared


def engine_from_log(
    source: DecisionLog | LogSource,
    policies: PolicyStore | str | os.PathLike[str] | Mapping[str, str],
    *,
    audit: AuditLog | None = None,
    allow_other_model: bool = False,
) -> Engine:
    """An offline Engine whose detector and judge answer as the decision log recorded.

    `source`: a log path, several, decisions in memory, or a `DecisionLog`. `policies`: a
    `PolicyStore`, a policy directory, or `{"default": yaml_text, ...}`. `audit` defaults to an
    `InMemoryAuditLog`. `moderate()` on an image's bytes (or path) and a tenant reproduces the
    recorded outcome under the recorded policy; under a changed one it decides with production's
    answers, or raises / falls back with an error naming what the log cannot answer.
    """
    store = PolicyStore.of(policies)
    log = _index(source)
    return Engine(
        store,
        LoggedDetector(log),
        LoggedJudge(log, allow_other_model=allow_other_model),
        audit if audit is not None else InMemoryAuditLog(),
        intake=_LoggedIntake(),
    )
