"""Detection and judgment as separate stages: in `moderate_many` and `amoderate` a judge that
takes its time holds no detection thread, at most `escalation_queue` escalations are held, and
every image still gets exactly one decision, the one `moderate` makes.

The judge here blocks until the test releases it and the detector counts what it sees: the tests
show what goes on while escalations wait, with events and a bounded poll, never a timing.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import io
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import builders
import pytest
from builders import ROOT, audited
from clirunner import runner
from images import solid

from moderation import DecidedBy, Decision, Detection, Engine, Outcome
from moderation.budget import EscalationBudget
from moderation.cli import main
from moderation.cli._progress import ProgressLine, Tally
from moderation.errors import JudgeError
from moderation.image import PreparedImage
from moderation.ports import JudgeRequest, Judgment
from moderation.recorded import RecordedJudge
from moderation.stages import JudgeStage, StageStats
from moderation.testing import StaticJudge

MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
JUDGED = f"""\
min_confidence: 40
default: {{reject: 95, escalate: 60}}
escalation: {{judge: bedrock, model_id: {MODEL}, on_error: review, on_blocked: reject}}
"""
# What the live policy escalates, this shadow rejects: it must reuse the live verdict, not ask.
SHADOW = "default: {reject: 95, escalate: 50}\n"

N_IMAGES = 24
IMAGES = [solid("png", (80, 80), (i, 255 - i, 9)) for i in range(N_IMAGES)]
INDEX = {hashlib.sha256(data).hexdigest(): i for i, data in enumerate(IMAGES)}
BORDERLINE = builders.detection(("Graphic Violence", "Violence", 75.0), ("Violence", "", 75.0))
CLEAN = builders.detection()
check_command = importlib.import_module("moderation.cli.check")  # the module, not the command
Run = check_command._Run


def wait_for(event: threading.Event, what: str) -> None:
    """Wait for `event`; a generous bound turns a deadlock into a failure, not a hang."""
    if not event.wait(10):
        raise AssertionError(f"timed out waiting for {what}")


def eventually(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` until it holds (a bound of 10 s turns a hang into a failure)."""
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


class Counting:
    """A detector that answers borderline for the indices in `escalated` (clean otherwise),
    counts its calls, and sets `all_seen` once it has seen `expect` images."""

    def __init__(self, escalated: set[int], expect: int = N_IMAGES) -> None:
        self.escalated = escalated
        self.expect = expect
        self.calls: list[int] = []  # list.append is atomic: safe from threads
        self.all_seen = threading.Event()

    def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
        assert image.sha256 is not None
        index = INDEX[image.sha256]
        self.calls.append(index)
        if len(self.calls) >= self.expect:
            self.all_seen.set()
        return BORDERLINE if index in self.escalated else CLEAN


class Gate:
    """A judge that blocks every call until `release` is set, then answers as `answer` does
    (a `StaticJudge`) or raises `error`."""

    def __init__(self, answer: Any = None, error: Exception | None = None) -> None:
        self.answer = answer if answer is not None else StaticJudge("approve", "fine")
        self.error = error
        self.release = threading.Event()
        self.waiting = 0
        self._lock = threading.Lock()

    def judge(self, image: PreparedImage, request: JudgeRequest) -> Judgment:
        with self._lock:
            self.waiting += 1
        wait_for(self.release, "the test to release the judge")
        if self.error is not None:
            raise self.error.with_traceback(None)
        judgment: Judgment = self.answer.judge(image, request)
        return judgment


def make_engine(detector: Any, judge: Any, **kwargs: Any) -> Engine:
    """An engine on the judged policy (with a shadow), its own ids and timer."""
    policies = builders.store(JUDGED + "shadow: next\n", next=SHADOW)
    return builders.engine(policies, detector, judge, real=("timer", "new_id"), **kwargs)


def record(decision: Decision) -> dict[str, Any]:
    """What a decision says, without what differs by run (id, clock)."""
    return decision.model_dump(mode="json", exclude={"id", "created_at", "timings_ms"})


def consume(items: Iterator[Any], into: list[Any]) -> threading.Thread:
    """Collect `items` on a thread of its own (so that the test can watch while they come)."""
    thread = threading.Thread(target=lambda: into.extend(items), daemon=True)
    thread.start()
    return thread


# -- detection goes on while escalations wait ---------------------------------------------------


def test_detection_of_later_images_goes_on_while_the_judge_holds_every_escalation() -> None:
    # GIVEN two detection threads, a judge that answers nothing until released, and the first
    # two images escalated (before, they held both threads: nothing else was detected)
    detector, judge = Counting(escalated={0, 1}), Gate()
    engine = make_engine(detector, judge)
    items: list[Any] = []
    # WHEN the batch runs
    consumer = consume(engine.moderate_many(IMAGES, max_workers=2), items)
    # THEN every image is detected, and every one not escalated decided, while the judge waits
    wait_for(detector.all_seen, "every image to be detected while the judge waits")
    eventually(lambda: len(items) == N_IMAGES - 2, "the images not escalated to be yielded")
    assert sorted(item.index for item in items) == list(range(2, N_IMAGES))
    assert engine.judge_stage().depth == 2
    # AND once the judge answers, the two escalations are decided by it
    judge.release.set()
    consumer.join(10)
    assert sorted(item.index for item in items) == list(range(N_IMAGES))
    judged = [item for item in items if item.index in (0, 1)]
    assert all(item.decision.decided_by is DecidedBy.JUDGE for item in judged)
    assert engine.judge_stage().depth == 0


def test_amoderate_detects_other_images_while_the_judge_holds_an_escalation() -> None:
    # GIVEN two async workers and a judge that holds every escalation until released
    detector, judge = Counting(escalated={0, 1, 2}), Gate()
    engine = make_engine(detector, judge, async_workers=2)

    async def main() -> list[Decision]:
        calls = [asyncio.ensure_future(engine.amoderate(image)) for image in IMAGES]
        # THEN every image is detected while the three escalations wait for the judge
        await asyncio.get_running_loop().run_in_executor(
            None, wait_for, detector.all_seen, "every image to be detected"
        )
        # AND every call but those three has its decision
        deadline = time.monotonic() + 10
        while sum(call.done() for call in calls) < N_IMAGES - 3:
            assert time.monotonic() < deadline, "timed out waiting for the other decisions"
            await asyncio.sleep(0.005)
        assert not any(calls[i].done() for i in range(3))
        judge.release.set()
        return list(await asyncio.gather(*calls))

    decisions = asyncio.run(main())
    engine.close()
    # AND each call got its own image's decision, the one in the audit log
    assert [INDEX[d.image.sha256] for d in decisions] == list(range(N_IMAGES))  # type: ignore[index]
    assert sorted(d.id for d in decisions) == sorted(d.id for d in audited(engine))
    assert [d.decided_by for d in decisions[:3]] == [DecidedBy.JUDGE] * 3


def test_a_cancelled_amoderate_waiting_for_the_judge_is_still_decided_and_audited() -> None:
    detector, judge = Counting(escalated={0}, expect=1), Gate()
    engine = make_engine(detector, judge)

    async def main() -> None:
        task = asyncio.create_task(engine.amoderate(IMAGES[0]))
        await asyncio.get_running_loop().run_in_executor(
            None, eventually, lambda: judge.waiting == 1, "the judge to be asked"
        )
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert audited(engine) == []
    judge.release.set()
    engine.close()  # waits for the judge stage
    [decision] = audited(engine)
    assert decision.decided_by is DecidedBy.JUDGE


# -- the bound -----------------------------------------------------------------------------------


def test_at_most_escalation_queue_escalations_are_held_and_detection_waits_for_room() -> None:
    # GIVEN every image escalated, a judge holding them all, 2 detection threads, room for 3
    detector, judge = Counting(escalated=set(range(N_IMAGES))), Gate()
    engine = make_engine(detector, judge, judge_workers=1, escalation_queue=3)
    items: list[Any] = []
    consumer = consume(engine.moderate_many(IMAGES, max_workers=2), items)
    # THEN three are held, both detection threads wait for room, and nothing more is detected
    stage = engine.judge_stage()
    eventually(lambda: stage.stats().blocked == 2, "both detection threads to wait for room")
    assert stage.depth == 3
    assert len(detector.calls) == 3 + 2  # the held ones, and one in each waiting thread
    # AND once the judge answers, everything is decided, never more than three held at once
    judge.release.set()
    consumer.join(10)
    assert sorted(item.index for item in items) == list(range(N_IMAGES))
    assert all(item.ok for item in items)
    stats = stage.stats()
    assert (stats.peak, stats.depth, stats.submitted, stats.blocked) == (3, 0, N_IMAGES, 0)


def test_the_stage_refuses_a_bound_or_thread_count_that_is_not_a_whole_number() -> None:
    with pytest.raises(ValueError, match="bound must be a whole number of at least 1"):
        JudgeStage(workers=1, bound=0)
    with pytest.raises(ValueError, match="escalation_queue must be at least 1, got 0"):
        make_engine(Counting(set()), Gate(), escalation_queue=0)
    with pytest.raises(ValueError, match="judge_workers must be a whole number, got True"):
        make_engine(Counting(set()), Gate(), judge_workers=True)


# -- every image decided, once, as moderate decides it -------------------------------------------


@pytest.mark.parametrize(
    ("judge", "outcome", "decided_by"),
    [
        (Gate(error=JudgeError("bedrock: read timed out", code="ReadTimeoutError")), Outcome.REVIEW,
         DecidedBy.FALLBACK),
        (Gate(error=JudgeError("bedrock: rate exceeded", code="ThrottlingException")),
         Outcome.REVIEW, DecidedBy.FALLBACK),
        (Gate(error=TimeoutError("the judge took too long")), Outcome.REVIEW, DecidedBy.FALLBACK),
        (Gate(answer=StaticJudge.blocked()), Outcome.REJECTED, DecidedBy.FALLBACK),
        (Gate(answer=StaticJudge.invalid()), Outcome.REVIEW, DecidedBy.FALLBACK),
    ],
    ids=["timeout", "throttled", "raises", "blocked", "invalid"],
)  # fmt: skip
def test_a_judge_that_fails_leaves_no_image_without_a_decision_and_approves_none(
    judge: Gate, outcome: Outcome, decided_by: DecidedBy
) -> None:
    escalated = set(range(0, N_IMAGES, 3))
    engine = make_engine(Counting(escalated), judge, judge_workers=2, escalation_queue=2)
    judge.release.set()
    items = list(engine.moderate_many(IMAGES, max_workers=4))
    assert sorted(item.index for item in items) == list(range(N_IMAGES))
    assert all(item.ok for item in items)
    for item in items:
        assert item.decision is not None
        if item.index in escalated:
            assert (item.decision.outcome, item.decision.decided_by) == (outcome, decided_by)
        else:
            assert item.decision.outcome is Outcome.APPROVED
    # Each decision is in the audit log exactly once.
    assert sorted(d.id for d in audited(engine)) == sorted(i.decision.id for i in items)  # type: ignore[union-attr]


@pytest.mark.parametrize("how", ["moderate_many", "amoderate"])
def test_the_stages_make_the_records_moderate_makes(how: str) -> None:
    # GIVEN a shadow policy, a budget of 3 judge calls for the engine, and a mix of images
    escalated = set(range(0, N_IMAGES, 2))

    def engine() -> Engine:
        judge = Gate(StaticJudge("reject", "too much"))
        judge.release.set()
        return make_engine(Counting(escalated), judge, budget=EscalationBudget(max_calls=3))

    one_by_one = engine()
    expected = [record(one_by_one.moderate(image)) for image in IMAGES]
    staged = engine()
    decisions: list[Decision] = []
    if how == "moderate_many":
        for item in staged.moderate_many(IMAGES, max_workers=4, ordered=True):
            assert item.decision is not None
            decisions.append(item.decision)
    else:

        async def main() -> list[Decision]:
            return list(await asyncio.gather(*(staged.amoderate(image) for image in IMAGES)))

        decisions = asyncio.run(main())
        staged.close()
    # THEN the same records, except which escalations got the 3 calls (that is timing): so many
    # judged, the others sent to review for the budget, as one by one
    got = [record(d) for d in decisions]
    assert [g for g in got if g["escalation"] is None] == [
        e for e in expected if e["escalation"] is None
    ]
    by = [(g["decided_by"], g["outcome"], g["shadow"]) for g in got if g["escalation"]]
    want = [(e["decided_by"], e["outcome"], e["shadow"]) for e in expected if e["escalation"]]
    assert sorted(by, key=str) == sorted(want, key=str)
    assert sorted(d.id for d in audited(staged)) == sorted(d.id for d in decisions)


def test_ordered_results_keep_input_order_when_escalations_finish_in_reverse() -> None:
    # GIVEN escalations the judge answers last-in first-out
    escalated = {0, 5, 11}
    order: list[int] = []
    gates = {i: threading.Event() for i in escalated}

    class Reversed:
        def judge(self, image: PreparedImage, request: JudgeRequest) -> Judgment:
            index = INDEX[image.sha256]  # type: ignore[index]
            order.append(index)
            wait_for(gates[index], f"the test to release escalation {index}")
            return StaticJudge("approve").judge(image, request)

    engine = make_engine(Counting(escalated), Reversed())
    items: list[Any] = []
    consumer = consume(engine.moderate_many(IMAGES, max_workers=3, ordered=True), items)
    eventually(lambda: len(order) == 3, "the three escalations to reach the judge")
    assert items == []  # the first input is still with the judge
    for index in sorted(escalated, reverse=True):
        gates[index].set()
    consumer.join(10)
    # THEN items come in input order, each index once, each decision the one audited
    assert [item.index for item in items] == list(range(N_IMAGES))
    assert [item.source for item in items] == IMAGES
    ids = {d.image.sha256: d.id for d in audited(engine)}
    assert len(ids) == N_IMAGES == len(audited(engine))
    assert [item.decision.id for item in items] == [
        ids[item.decision.image.sha256] for item in items
    ]


def test_stopping_early_still_decides_every_escalation_already_detected() -> None:
    # GIVEN a clean image, then three escalations the judge holds
    detector, judge = Counting(escalated={1, 2, 3}, expect=4), Gate()
    engine = make_engine(detector, judge)
    items = engine.moderate_many(IMAGES[:4], max_workers=4, ordered=False)
    first = next(items)
    assert first.index == 0
    eventually(lambda: judge.waiting == 3, "the judge to be asked three times")
    # WHEN the consumer stops while the three wait for the judge
    audited_when_closed: list[int] = []
    closer = threading.Thread(
        target=lambda: (items.close(), audited_when_closed.append(len(audited(engine))))  # type: ignore[attr-defined,func-returns-value]
    )
    closer.start()
    judge.release.set()
    closer.join(10)
    # THEN close returned once all three were decided by the judge and audited
    assert audited_when_closed == [4]
    assert [d.decided_by for d in audited(engine)[1:]] == [DecidedBy.JUDGE] * 3


# -- moderation check ----------------------------------------------------------------------------


def test_the_progress_line_shows_the_judge_queues_depth_of_its_bound() -> None:
    clock, stream = iter(range(100)), io.StringIO()
    progress = ProgressLine(stream, Tally(), clock=lambda: float(next(clock)), width=lambda: 200)
    assert "judge queue" not in progress.text()  # no escalation yet: no stage
    progress.stage = lambda: StageStats(
        depth=7, peak=9, bound=256, workers=64, submitted=12, blocked=0, waited_s=0.0
    )
    assert progress.text() == (
        "0 done  0.0 images/s  judge queue 7/256  approved 0  rejected 0  review 0  errors 0"
    )


def test_check_shows_the_judge_queue_in_its_progress_line_and_summary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the examples (three of them escalated to the recorded judge), stderr a "terminal"
    monkeypatch.setattr(check_command, "_is_terminal", lambda stream: stream is sys.stderr)
    result = runner().invoke(
        main,
        ["check", "--offline", str(ROOT / "examples/recordings"), "--policies",
         str(ROOT / "policies"), "--audit", "stdout", str(ROOT / "examples/images")],
    )  # fmt: skip
    # THEN the progress line shows the queue's depth, and the summary how full it got
    screens = result.stderr.split("\r\x1b[K")
    assert any(re.search(r"images/s  judge queue [0-3]/256  approved", s) for s in screens)
    assert re.search(
        r"\n  judge queue: peak [123] of 256, 64 judge threads, detection waited 0\.00s for room\n",
        result.stderr,
    )


def test_check_sizes_the_judge_stage_from_the_environment() -> None:
    result = runner().invoke(
        main,
        ["check", "--offline", str(ROOT / "examples/recordings"), "--policies",
         str(ROOT / "policies"), "--audit", "stdout", str(ROOT / "examples/images")],
        env={"MODERATION_JUDGE_WORKERS": "2", "MODERATION_ESCALATION_QUEUE": "3"},
    )  # fmt: skip
    assert re.search(r"\n  judge queue: peak [123] of 3, 2 judge threads, ", result.stderr), (
        result.stderr
    )


def test_an_interrupted_check_says_what_it_waits_for_and_audits_the_escalations_held(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # GIVEN a recorded judge that answers only once the run has said what it waits for
    said = threading.Event()
    real_judge, real_err, real_decided = RecordedJudge.judge, Run.err, Run.decided

    def held(self: RecordedJudge, image: PreparedImage, request: JudgeRequest) -> Judgment:
        wait_for(said, "the interrupted run to say what it waits for")
        return real_judge(self, image, request)

    def err(self: Any, text: str) -> None:
        real_err(self, text)
        if text.startswith("stopping: waiting for"):
            said.set()

    def decided(self: Any, source: str, decision: Decision) -> None:
        real_decided(self, source, decision)
        # WHEN Ctrl-C comes once the judge holds escalations
        eventually(lambda: (self.engine.stage_stats() or StageStats(0, 0, 1, 1, 0, 0, 0)).depth > 0,
                   "an escalation to be held")  # fmt: skip
        raise KeyboardInterrupt

    monkeypatch.setattr(RecordedJudge, "judge", held)
    monkeypatch.setattr(Run, "err", err)
    monkeypatch.setattr(Run, "decided", decided)
    audit = tmp_path / "audit.jsonl"
    result = runner().invoke(
        main,
        ["check", "--offline", str(ROOT / "examples/recordings"), "--policies",
         str(ROOT / "policies"), "--audit", str(audit), str(ROOT / "examples/images")],
    )  # fmt: skip
    # THEN it says how many it waits for, and those are judged and audited before it exits
    assert result.exit_code == 130
    waiting = re.search(
        r"stopping: waiting for the (\d+) escalation\(s\) already detected", result.stderr
    )
    assert waiting is not None, result.stderr
    escalated = [line for line in audit.read_text().splitlines() if '"escalation":{' in line]
    assert len(escalated) >= int(waiting.group(1)) > 0
