"""`--live`: needs-judgment cases of a replay sent to the judge for real, within a call limit.

A log holds no image bytes, so the images come only from a directory the caller names, matched
by the sha256 of each file's bytes (never from a path, S3 key or anything else in a record).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from moderation.decision import DecidedBy, Decision, Escalation, Outcome, TokenUsage
from moderation.errors import InvalidImage
from moderation.image import ImageIntake
from moderation.outcome import decide, escalation_record
from moderation.policy import Band
from moderation.ports import Judge, JudgeRequest
from moderation.pricing import Pricing
from moderation.replay._report import Flip, LiveSummary
from moderation.triage import Action, Finding

if TYPE_CHECKING:
    from moderation.replay._resolved import Resolved
    from moderation.replay._tally import Tally

__all__ = ["DEFAULT_JUDGE_USAGE", "LiveJudging", "LivePlan", "LiveRun", "image_index"]

#: Token usage assumed for one judge call of a model the log holds no call of: one image block at
#: the judge's size (about 1,600 tokens) plus the prompt and guidance, and a short tool answer.
DEFAULT_JUDGE_USAGE = TokenUsage(input_tokens=2_000, output_tokens=150, total_tokens=2_150)
_READ_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class LivePlan:
    """What a live replay is about to do, told before its first call.

    `planned` calls (the cases with an image, at most `max_calls`) at an estimated
    `estimated_usd` (None when a model has no price); `usage` says, per model id, which token
    usage priced its calls: the mean recorded in the log, or the default.
    """

    needed: int
    with_image: int
    planned: int
    max_calls: int
    estimated_usd: float | None
    usage: dict[str, str]

    def describe(self) -> str:
        """One paragraph for a person, before the calls are made."""
        cost = "unknown" if self.estimated_usd is None else f"${self.estimated_usd:.4f}"
        lines = [
            f"live: {self.needed:,} cases need judgment, {self.with_image:,} with an image given; "
            f"making {self.planned:,} judge calls (at most {self.max_calls:,}), "
            f"estimated cost {cost}"
        ]
        lines.extend(f"  {model}: {how}" for model, how in sorted(self.usage.items()))
        return "\n".join(lines)


@dataclass(frozen=True)
class LiveJudging:
    """Judge a replay's needs-judgment cases with `judge`: at most `max_calls` calls.

    `images`: a directory of image files, matched to decisions by the sha256 of their bytes;
    cases without their image stay needs-judgment. `on_plan` is told the plan (how many calls,
    their estimated cost) before the first call. A judge failure follows the replay policy's
    `on_error` / `on_blocked` (review or reject), never approve.
    """

    judge: Judge
    max_calls: int
    images: str | os.PathLike[str] | None = None
    intake: ImageIntake = field(default_factory=ImageIntake)
    pricing: Pricing = field(default_factory=Pricing)
    on_plan: Callable[[LivePlan], None] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_calls, bool) or not isinstance(self.max_calls, int):
            raise TypeError(f"max_calls must be an int, not {type(self.max_calls).__name__}")
        if self.max_calls < 0:
            raise ValueError(f"max_calls must be >= 0, got {self.max_calls}")


def image_index(directory: str | os.PathLike[str] | None) -> dict[str, Path]:
    """sha256 of every regular file's bytes under `directory` -> its path (the first found)."""
    if directory is None:
        return {}
    root = Path(directory)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: the images directory does not exist")
    found: dict[str, Path] = {}
    for parent, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = Path(parent, name)
            if not path.is_file():
                continue
            digest = hashlib.sha256()
            with path.open("rb") as fh:
                while chunk := fh.read(_READ_CHUNK):
                    digest.update(chunk)
            found.setdefault(digest.hexdigest(), path)
    return found


@dataclass(slots=True)
class _Case:
    decision: Decision
    file: str | None
    line: int
    resolved: Resolved
    incomplete: bool
    image: Path


class LiveRun:
    """Collects needs-judgment cases during the replay's pass (at most `max_calls` of them are
    held), then plans, tells, and makes the calls."""

    def __init__(self, live: LiveJudging, keep: int) -> None:
        self.live = live
        self.keep = keep
        self.index = image_index(live.images)
        self.cases: list[_Case] = []
        self.needed = 0
        self.with_image = 0
        self.without_image_ids: list[str] = []
        self.not_judged_ids: list[str] = []
        self.notes: list[str] = []

    def offer(
        self,
        decision: Decision,
        file: str | None,
        line: int,
        resolved: Resolved,
        incomplete: bool,
    ) -> None:
        """A case that needs judgment: kept for a call if its image was given and there is room."""
        self.needed += 1
        sha = decision.image.sha256
        image = self.index.get(sha) if sha is not None else None
        if image is None:
            if len(self.without_image_ids) < self.keep:
                self.without_image_ids.append(decision.id)
            return
        self.with_image += 1
        if len(self.cases) < self.live.max_calls:
            self.cases.append(_Case(decision, file, line, resolved, incomplete, image))
        elif len(self.not_judged_ids) < self.keep:
            self.not_judged_ids.append(decision.id)

    def plan(self, tally: Tally) -> LivePlan:
        """How many calls, at what estimated cost: each model priced with the mean token usage
        the log recorded for it, else `DEFAULT_JUDGE_USAGE`."""
        pricing = self.live.pricing
        usage: dict[str, str] = {}
        total: float | None = 0.0
        for case in self.cases:
            model = case.resolved.policy.escalation.model_id or ""
            recorded = tally.mean_usage(model)
            if recorded is not None:
                mean, n = recorded
                usage[model] = f"mean usage of {n:,} recorded calls"
            else:
                mean = DEFAULT_JUDGE_USAGE
                usage[model] = (
                    f"no call recorded: default usage ({mean.input_tokens:,} input, "
                    f"{mean.output_tokens:,} output tokens)"
                )
            price = pricing.bedrock(model, mean)
            if price is None:
                usage[model] += "; no price for this model"
            total = None if total is None or price is None else total + price
        return LivePlan(
            needed=self.needed,
            with_image=self.with_image,
            planned=len(self.cases),
            max_calls=self.live.max_calls,
            estimated_usd=total,
            usage=usage,
        )

    def judge_all(self, tally: Tally) -> LiveSummary:
        """Tell the plan, make the calls, and move each judged case out of needs-judgment."""
        plan = self.plan(tally)
        if self.live.on_plan is not None:
            self.live.on_plan(plan)
        made = failed = 0
        spent: float | None = 0.0
        for case in self.cases:
            result = self._judge(case)
            if result is None:
                continue
            after, findings, reasons, failure, cost = result
            made += 1
            failed += failure
            spent = None if spent is None or cost is None else spent + cost
            decision = case.decision
            tally.judged(decision.id, decision.outcome, after)
            if after is not decision.outcome:
                tally.add_flip(
                    Flip(
                        decision_id=decision.id,
                        tenant=decision.tenant,
                        before=decision.outcome,
                        after=after,
                        reasons=reasons,
                        findings=findings,
                        category=findings[0].rule if findings else None,
                        incomplete=case.incomplete,
                        file=case.file,
                        line=case.line,
                        judged_live=True,
                    )
                )
        return LiveSummary(
            usage=plan.usage,
            needed=self.needed,
            with_image=self.with_image,
            planned=plan.planned,
            max_calls=self.live.max_calls,
            estimated_usd=plan.estimated_usd,
            made=made,
            failed=failed,
            spent_usd=spent,
            without_image_ids=tuple(self.without_image_ids),
            not_judged_ids=tuple(self.not_judged_ids),
            notes=tuple(self.notes),
        )

    def _judge(
        self, case: _Case
    ) -> tuple[Outcome, tuple[Finding, ...], tuple[str, ...], bool, float | None] | None:
        """(outcome, the escalated findings, reasons, whether the call failed, its cost), or
        None when no call could be made (a note says why and the case stays needs-judgment)."""
        decision, policy = case.decision, case.resolved.policy
        settings = policy.escalation
        if settings.model_id is None:
            self.notes.append(f"{decision.id}: policy '{policy.id}' names no judge model")
            self.not_judged_ids.append(decision.id)
            return None
        try:
            prepared = self.live.intake.prepare(case.image, max_frames=policy.max_frames)
        except (InvalidImage, OSError) as exc:
            self.notes.append(f"{decision.id}: image {case.image} refused: {exc}")
            self.not_judged_ids.append(decision.id)
            return None
        assert decision.detection is not None  # only replayed decisions need judgment
        escalated = case.resolved.compiled.evaluate(decision.detection).at(Band.ESCALATE)
        request = JudgeRequest(
            tenant=decision.tenant,
            model_id=settings.model_id,
            guidance=settings.guidance,
            findings=escalated,
        )
        why = tuple(f.describe() for f in escalated)
        try:
            judgment = self.live.judge.judge(prepared, request)
        except Exception as exc:  # the judge's own retries are over: fail closed
            answer = Escalation(
                judge=settings.judge,
                model_id=settings.model_id,
                error=f"{type(exc).__name__}: {exc}",
            )
        else:
            answer = escalation_record(settings.judge, judgment)
        # The engine's rule and prices, on the answer the judge just gave.
        ruling = decide(policy, Action.ESCALATE, answer)
        assert ruling.outcome is not None
        assert ruling.reason is not None
        failed = ruling.decided_by is not DecidedBy.JUDGE
        cost = self.live.pricing.cost(None, 0, answer).bedrock_usd
        return ruling.outcome, escalated, (*why, f"live {ruling.reason}"), failed, cost
