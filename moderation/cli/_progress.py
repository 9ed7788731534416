"""What `moderation check` says while it runs and when it is done: running counts, a progress
line redrawn in place on a terminal, and the summary.

The progress line is drawn on stderr with a carriage return and "erase to end of line", cut to the
terminal's width so that it never wraps (a wrapped line cannot be redrawn in place). Anything else
written to the terminal while it shows (a result line, an error, an audit record) goes through
`ProgressLine.above`, which erases the line, writes, and draws it again below. Redraws are at most
one per `interval` seconds of the injectable `clock`, and once more at the end.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from moderation.decision import Decision, Outcome
from moderation.stages import StageStats

__all__ = [
    "ProgressLine",
    "Tally",
    "error_kind",
    "format_duration",
    "limiter_stats",
    "queue_summary",
]

_ERASE = "\r\x1b[K"


def error_kind(exc: BaseException) -> str:
    """The exception's class, with the AWS error code when it carries one:
    `DetectorError (ThrottlingException)`, `InvalidImage`."""
    code = getattr(exc, "code", None)
    name = type(exc).__name__
    return f"{name} ({code})" if isinstance(code, str) and code else name


def format_duration(seconds: float) -> str:
    """`0.42s`, `12.3s`, `4m05s`, `2h03m`."""
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


@dataclass(frozen=True, slots=True)
class LimiterLine:
    """What a rate limiter reports at the end of a run (what it does not say is None).

    `max_rate` and `rate` are requests per `per` seconds, as the limiter was configured.
    """

    name: str
    per: float
    max_rate: float | None
    rate: float | None
    throttles: int | None
    decreases: int | None
    waited_s: float | None

    def render(self) -> str:
        """`rekognition 3 (limit 10/s, now 7/s, backed off 1x, waited 2.00s)`."""
        unit = {1.0: "/s", 60.0: "/min"}.get(self.per, f" per {self.per:g}s")
        parts = [f"{self.name} {self.throttles if self.throttles is not None else '?'}"]
        details: list[str] = []
        if self.max_rate is not None and not math.isfinite(self.max_rate):
            # No rate was set: the limiter found one by itself.
            if self.rate is not None:
                details.append(f"no limit set, found {self.rate:.3g}{unit}")
        elif self.max_rate is not None:
            details.append(f"limit {self.max_rate:g}{unit}")
            if self.rate is not None and self.rate < self.max_rate:
                details.append(f"now {self.rate:.3g}{unit}")
        if self.decreases:
            details.append(f"backed off {self.decreases}x")
        if self.waited_s:
            details.append(f"waited {format_duration(self.waited_s)}")
        if details:
            parts.append(f"({', '.join(details)})")
        return " ".join(parts)


def limiter_stats(name: str, limiter: Any) -> LimiterLine | None:
    """What `limiter` (a `moderation.limits.RateLimiter`, or None) reports through `.stats()`,
    read defensively: None when there is no limiter or it keeps no stats."""
    if limiter is None:
        return None
    stats_of = getattr(limiter, "stats", None)
    if not callable(stats_of):
        return None
    try:
        stats = stats_of()
    except Exception:
        return None

    def number(attr: str) -> Any:
        value = stats.get(attr) if isinstance(stats, dict) else getattr(stats, attr, None)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    label = stats.get("name") if isinstance(stats, dict) else getattr(stats, "name", None)
    per = number("per") or getattr(limiter, "per", 1.0)
    throttles, decreases = number("throttles"), number("decreases")
    return LimiterLine(
        name=label if isinstance(label, str) and label else name,
        per=float(per) if isinstance(per, int | float) and per > 0 else 1.0,
        max_rate=number("max_rate"),
        rate=number("rate"),
        throttles=None if throttles is None else int(throttles),
        decreases=None if decreases is None else int(decreases),
        waited_s=number("waited_s"),
    )


@dataclass(slots=True)
class Tally:
    """Running counts of a run: outcomes, escalations, errors by kind, skipped, cost.

    Thread-safe: the progress line reads it from whichever thread writes above it (an audit
    record is written by the worker that made the decision) while the run counts.
    """

    outcomes: Counter[Outcome] = field(default_factory=Counter)
    skipped: Counter[Outcome] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    escalations: Counter[str] = field(default_factory=Counter)  # by what the judge gave
    cost_usd: float = 0.0
    cost_unknown: int = 0  # decisions whose cost is not known (a model missing from the prices)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def decided(self, decision: Decision) -> None:
        """Count one decision made in this run."""
        with self._lock:
            self.outcomes[decision.outcome] += 1
            if decision.escalation is not None:
                self.escalations[decision.escalation.answer or "not asked"] += 1
            total = decision.cost.total_usd if decision.cost is not None else 0.0
            if total is None:
                self.cost_unknown += 1
            else:
                self.cost_usd += total

    def failed(self, exc: BaseException) -> None:
        """Count one input that could not be moderated."""
        with self._lock:
            self.errors[error_kind(exc)] += 1

    def skip(self, outcome: Outcome) -> None:
        """Count one input already decided (resumed), with its recorded outcome."""
        with self._lock:
            self.skipped[outcome] += 1

    @property
    def processed(self) -> int:
        """Inputs this run decided or failed on (not the skipped ones)."""
        with self._lock:
            return sum(self.outcomes.values()) + sum(self.errors.values())

    @property
    def done(self) -> int:
        """Inputs accounted for so far: processed or skipped."""
        with self._lock:
            skipped = sum(self.skipped.values())
        return self.processed + skipped

    def count(self, outcome: Outcome) -> int:
        """Decisions with `outcome`, made now or recorded before (skipped)."""
        with self._lock:
            return self.outcomes[outcome] + self.skipped[outcome]

    def counts(self) -> str:
        """`approved 3  rejected 1  review 0  errors 2`: this run's, and `skipped N` when some
        inputs were already decided."""
        with self._lock:
            text = (
                f"approved {self.outcomes[Outcome.APPROVED]}  rejected "
                f"{self.outcomes[Outcome.REJECTED]}  review {self.outcomes[Outcome.REVIEW]}  "
                f"errors {sum(self.errors.values())}"
            )
            n_skipped = sum(self.skipped.values())
        return text + (f"  skipped {n_skipped}" if n_skipped else "")

    def exit_code(self) -> int:
        """3 if some input could not be moderated, else 1 if some image (decided now or before)
        is not approved, else 0."""
        if self.errors:
            return 3
        if any(self.count(o) for o in (Outcome.REJECTED, Outcome.REVIEW)):
            return 1
        return 0

    def summary(
        self,
        *,
        elapsed: float,
        resumed_from: str | None = None,
        ignored: int = 0,
        limiters: Iterable[LimiterLine] = (),
        stage: StageStats | None = None,
        interrupted: bool = False,
    ) -> list[str]:
        """The end-of-run summary, one line each: totals and speed, outcomes, escalations (and
        the judge stage's queue), errors by kind, skipped (and `ignored` lines of the log that do
        not verify), throttles, estimated cost."""
        processed = self.processed
        rate = processed / elapsed if elapsed > 0 else 0.0
        n_inputs = self.done
        head = "interrupted" if interrupted else "summary"
        lines = [
            f"{head}: {n_inputs} input{'s' if n_inputs != 1 else ''} in "
            f"{format_duration(elapsed)} ({rate:.1f} images/s)",
            "  outcomes: "
            + ", ".join(
                f"{self.outcomes[o]} {o.value}"
                for o in (Outcome.APPROVED, Outcome.REJECTED, Outcome.REVIEW)
            ),
        ]
        escalated = sum(self.escalations.values())
        if escalated:
            parts = [
                f"{n} {_ANSWERS.get(kind, kind)}"
                for kind, n in sorted(self.escalations.items(), key=lambda kv: _order(kv[0]))
            ]
            lines.append(f"  escalated: {escalated} ({', '.join(parts)})")
        if stage is not None and stage.submitted:
            lines.append(f"  judge queue: {queue_summary(stage)}")
        n_errors = sum(self.errors.values())
        if n_errors:
            by_count = sorted(self.errors.items(), key=lambda kv: (-kv[1], kv[0]))
            kinds = ", ".join(f"{kind} {n}" for kind, n in by_count)
            lines.append(f"  errors: {n_errors} ({kinds})")
        else:
            lines.append("  errors: 0")
        if resumed_from is not None:
            lines += self._resumed(resumed_from, ignored)
        stats = [line.render() for line in limiters]
        if stats:
            lines.append(f"  throttles: {', '.join(stats)}")
        cost = f"  estimated cost: ${self.cost_usd:.4f}"
        if self.cost_unknown:
            cost += f" (and {self.cost_unknown} decision(s) of unknown price)"
        lines.append(cost)
        if interrupted:
            lines.append(
                "  stopped before every input was moderated; with a file --audit log, the same "
                "command continues where this one stopped"
            )
        return lines

    def _resumed(self, log: str, ignored: int) -> list[str]:
        """The summary's `skipped:` line, and its `ignored:` line when some lines of the log
        did not verify."""
        n_skipped = sum(self.skipped.values())
        recorded = ", ".join(
            f"{self.skipped[o]} {o.value}"
            for o in (Outcome.APPROVED, Outcome.REJECTED, Outcome.REVIEW)
            if self.skipped[o]
        )
        lines = [
            f"  skipped: {n_skipped} already decided in {log} under the same policy"
            + (f" ({recorded})" if recorded else "")
        ]
        if ignored:
            lines.append(
                f"  ignored: {ignored} line{'s' if ignored != 1 else ''} of {log} that "
                f"do{'es' if ignored == 1 else ''} not verify, not trusted to skip an input"
            )
        return lines


_ANSWERS = {
    "verdict": "judged",
    "failed": "judge failed",
    "blocked": "blocked by the model's filter",
    "invalid": "no usable verdict",
    "not asked": "not asked (no judge, or budget spent)",
}


def _order(kind: str) -> int:
    order = list(_ANSWERS)
    return order.index(kind) if kind in order else len(order)


def queue_summary(stage: StageStats) -> str:
    """`peak 180 of 256, 64 judge threads, detection waited 0.00s for room`."""
    waited = f"detection waited {format_duration(stage.waited_s)} for room"
    return f"peak {stage.peak} of {stage.bound}, {stage.workers} judge threads, {waited}"


def _terminal_width(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        columns = 0
    return columns if columns > 0 else 80


class ProgressLine:
    """The progress line on a terminal (see the module doc). Thread-safe."""

    def __init__(
        self,
        stream: TextIO,
        tally: Tally,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 0.1,
        width: Callable[[], int] | None = None,
    ) -> None:
        self.stream = stream
        self.tally = tally
        self.total: int | None = None  # set once the inputs are counted
        # The judge stage's counts (None before its first escalation): its depth is shown.
        self.stage: Callable[[], StageStats | None] = lambda: None
        self._clock = clock
        self._interval = interval
        self._width = width or (lambda: _terminal_width(stream))
        self._lock = threading.RLock()
        self._start = clock()
        self._drawn_at: float | None = None
        self._shown = False
        self._finished = False

    def text(self) -> str:
        """The line as it would be drawn now: done[/total pct], images/s, ETA, the judge queue's
        depth, counts."""
        tally = self.tally
        elapsed = self._clock() - self._start
        done = tally.done
        rate = tally.processed / elapsed if elapsed > 0 else 0.0
        parts: list[str] = []
        total = self.total
        if total is not None and total > 0:
            done_shown = min(done, total)
            parts.append(f"{done_shown}/{total} {100 * done_shown // total}%")
        else:
            parts.append(f"{done} done")
        parts.append(f"{rate:.1f} images/s")
        if total is not None and done < total and rate > 0:
            parts.append(f"ETA {format_duration((total - done) / rate)}")
        stage = self.stage()
        if stage is not None:
            parts.append(f"judge queue {stage.depth}/{stage.bound}")
        parts.append(tally.counts())
        return "  ".join(parts)

    def update(self, *, force: bool = False) -> None:
        """Redraw, if `interval` has passed since the last redraw (or `force`)."""
        with self._lock:
            if self._finished:
                return
            now = self._clock()
            if not force and self._drawn_at is not None and now - self._drawn_at < self._interval:
                return
            self._draw(now)

    def _draw(self, now: float) -> None:
        width = max(self._width() - 1, 10)
        line = self.text()
        if len(line) > width:
            line = line[: width - 1] + "…"
        self.stream.write(_ERASE + line)
        self.stream.flush()
        self._drawn_at = now
        self._shown = True

    def above(self, text: str, stream: TextIO | None = None) -> None:
        """Write `text` (one or more lines) to `stream` (default: the progress stream) above the
        progress line, then draw the line again."""
        with self._lock:
            target = stream or self.stream
            if self._shown:
                self.stream.write(_ERASE)
                self.stream.flush()
                self._shown = False
            target.write(text if text.endswith("\n") else text + "\n")
            target.flush()
            if not self._finished:
                self._draw(self._clock())

    def finish(self) -> None:
        """Draw the line a last time, with the final counts, and leave it on screen."""
        with self._lock:
            if self._finished:
                return
            self._draw(self._clock())
            self.stream.write("\n")
            self.stream.flush()
            self._finished = True

    def writer(self, stream: TextIO | None = None) -> _Above:
        """A text stream whose complete lines go to `stream` (default: the progress stream)
        `above` the progress line: for an audit sink that writes to the same terminal."""
        return _Above(self, stream)


class _Above:
    """A write-only text stream that hands complete lines to `ProgressLine.above`."""

    def __init__(self, progress: ProgressLine, stream: TextIO | None) -> None:
        self._progress = progress
        self._stream = stream
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            if "\n" in self._pending:
                complete, _, self._pending = self._pending.rpartition("\n")
                self._progress.above(complete + "\n", self._stream)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True
