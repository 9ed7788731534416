"""Writes the golden replay log of tests/fixtures/replay_golden/ and what replay made of it.

    PYTHONPATH=. python tests/replay_golden.py log       # a new recorded log (rarely: it is data)
    PYTHONPATH=. python tests/replay_golden.py expected  # replay's answers, after a change you mean

The log is what the engine recorded under `then/` (the repository's policies when it was made):
five tenants and one without a policy, 1-8 labels as Rekognition reports them (with parents, a
few unknown or under the wrong parent, some with content types), judge verdicts, refusals,
unusable replies and failures, detector failures, animations seen on their first frame only;
then bad records of every kind, a record in a form other than the writer's, and a torn last
line. `now/` is a changed set of policies that flips, needs judgment, reuses verdicts from
another model and reads less than it would see. `expected.json` holds replay's reports and the
decision or error of every record (tests/test_replay_golden.py compares them).
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from images import solid

from moderation import Engine, InMemoryAuditLog, PolicyStore, replay
from moderation.audit import FileHeader, encode_record
from moderation.audit._format import GENESIS
from moderation.decision import Decision, TokenUsage, Verdict, VerdictKind
from moderation.detection import ContentType, Detection, Label
from moderation.errors import DetectorError, JudgeError, ReplayError
from moderation.image import PreparedImage
from moderation.ports import JudgeRequest, Judgment
from moderation.replay._source import items
from moderation.taxonomy import TAXONOMY

HERE = Path(__file__).resolve().parent / "fixtures" / "replay_golden"
LOG, THEN, NOW, EXPECTED = (
    HERE / "audit.jsonl.gz",
    HERE / "then",
    HERE / "now",
    HERE / "expected.json",
)
TENANTS = ["default", "default", "kids", "dating", "forum", "medical", "ghost"]
LEAVES = [n for n in TAXONOMY.names() if (TAXONOMY.level(n) or 1) >= 2]
START = datetime(2026, 5, 1, tzinfo=UTC)


class Detector:
    """1-8 labels with their parents; a few unknown, under a wrong parent, or failures."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
        rng = self.rng
        if rng.random() < 0.03:
            raise DetectorError("ThrottlingException after 4 attempts", attempts=4)
        labels: dict[str, Label] = {}
        for _ in range(rng.randint(1, 3)):
            leaf, confidence = rng.choice(LEAVES), round(rng.uniform(min_confidence, 100.0), 4)
            for name in (leaf, *TAXONOMY.ancestors(leaf)):
                category = TAXONOMY.lookup(name)
                assert category is not None
                parent = category.parent
                if rng.random() < 0.03:  # a response that contradicts the taxonomy
                    parent = "Explicit" if parent != "Explicit" else None
                noise = rng.choice([0.0, 0.0, -0.003, 2.5])
                score = round(min(confidence + noise, 100), 4)
                label = Label(name=name, parent=parent, level=category.level, confidence=score)
                labels.setdefault(name, label)
        if rng.random() < 0.05:  # a category newer than the taxonomy
            name, score = "Hoverboard Stunts", rng.uniform(50, 99)
            labels[name] = Label(name=name, parent="Violence", level=2, confidence=score)
        kinds: tuple[ContentType, ...] = ()
        if rng.random() < 0.25:
            kind = rng.choice(["Illustrated", "Animated", "Animated", "illustrated"])
            kinds = (ContentType(name=kind, confidence=rng.uniform(40, 100)),)
        return Detection(provider="rekognition", model_version="7.0",
                         min_confidence=min_confidence, labels=tuple(list(labels.values())[:8]),
                         content_types=kinds)  # fmt: skip


class Judge:
    """Verdicts with token usage, refusals, unusable replies and failures."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def judge(self, image: PreparedImage, request: JudgeRequest) -> Judgment:
        roll = self.rng.random()
        if roll < 0.06:
            raise JudgeError("ThrottlingException after 4 attempts", attempts=4)
        usage = TokenUsage(input_tokens=self.rng.randint(1500, 2500), output_tokens=80)
        if roll < 0.12:
            status = "blocked" if roll < 0.09 else "invalid"
            return Judgment(status=status, detail="refused", model_id=request.model_id,
                            prompt_sha256="0" * 64, usage=usage)  # fmt: skip
        verdict = Verdict(verdict=self.rng.choice(list(VerdictKind)), rationale="golden")
        return Judgment(status="verdict", verdict=verdict, model_id=request.model_id,
                        prompt_sha256="0" * 64, usage=usage)  # fmt: skip


def recorded(n: int) -> list[Decision]:
    """`n` decisions the engine records under `then/`, made at fixed times with fixed ids."""
    rng = random.Random(16)
    ids, times = itertools.count(1), itertools.count()
    audit = InMemoryAuditLog()
    engine = Engine(
        PolicyStore(THEN, fallback_to_default=True), Detector(rng), Judge(rng), audit,
        now=lambda: START + timedelta(seconds=next(times)), timer=lambda: 0.0,
        new_id=lambda: f"01JGOLDEN{next(ids):017d}",
    )  # fmt: skip
    png = solid("png", size=(100, 100))
    for _ in range(n):
        # The detector's failure is raised where the policy's on_detector_error is not review.
        with contextlib.suppress(DetectorError):
            engine.moderate(png, tenant=rng.choice(TENANTS))
    decisions = list(audit.decisions)
    for i in range(5, n, 37):  # animations judged on their first frame alone
        image = decisions[i].image.model_copy(update={"n_frames": 3})
        decisions[i] = decisions[i].model_copy(update={"image": image})
    return decisions


def bad_lines(sample: Decision) -> list[bytes]:
    """Records replay must report (or, for the last two, read in full), one of each kind."""
    body = sample.model_dump_json()
    record = encode_record(seq=9000, prev=GENESIS, kind="decision", body_json=body, key=None)
    invalid = body.replace('"tenant":', '"tenant":7,"x":', 1)
    newer = body.replace('"schema_version":1', '"schema_version":2', 1)
    spaced = json.dumps(json.loads(record)).encode() + b"\n"  # not the writer's exact form
    return [
        encode_record(seq=9001, prev=GENESIS, kind="decision", body_json=invalid, key=None),
        encode_record(seq=9002, prev=GENESIS, kind="decision", body_json=newer, key=None),
        record.replace(b'"hash":"', b'"hash":"00', 1),
        record[: len(record) // 2] + b"\n",
        b"\n",
        b"[1, 2]\n",
        body.encode() + b"\n",
        spaced,
    ]


def write_log(decisions: list[Decision]) -> None:
    header = FileHeader(created_at=START, engine_version="golden")
    line = encode_record(seq=1, prev=GENESIS, kind="file", body_json=header.model_dump_json(),
                         key=None)  # fmt: skip
    lines, bad = [line], bad_lines(decisions[0])
    for i, decision in enumerate(decisions):
        prev = json.loads(line)["hash"]
        line = encode_record(seq=len(lines) + 1, prev=prev, kind="decision",
                             body_json=decision.model_dump_json(), key=None)  # fmt: skip
        lines.append(line)
        if i % 50 == 25 and bad:
            lines.append(bad.pop())
    lines.extend(bad)
    lines.append(lines[-1][:100])  # torn: a writer stopped mid-record
    LOG.write_bytes(gzip.compress(b"".join(lines), mtime=0))


def answers(log: Path) -> dict[str, Any]:
    """What replay makes of `log` (unzipped): its reports and every record as it reads it."""
    cases: dict[str, Any] = {
        "now": replay(log, NOW),
        "then": replay(log, THEN),
        "now_fallback": replay(log, PolicyStore(NOW, fallback_to_default=True)),
        "now_kids_keep_2": replay(log, NOW, tenant="kids", keep=2),
        "now_keep_0": replay(log, NOW, keep=0),
    }
    found: dict[str, Any] = {k: r.model_dump(mode="json") for k, r in cases.items()}
    try:
        replay(log, NOW, strict=True)
    except ReplayError as exc:
        found["strict"] = [exc.reason, exc.line]
    found["records"] = [
        [line, decision.id if decision else None, error] for _, line, decision, error in items(log)
    ]
    text = json.dumps(found, indent=1, sort_keys=True)
    return json.loads(
        text.replace(str(log), "LOG").replace(str(NOW), "NOW").replace(str(THEN), "THEN")
    )


def main(what: str) -> None:
    if what == "log":
        write_log(recorded(400))
        return
    tmp = HERE / "audit.jsonl"
    tmp.write_bytes(gzip.decompress(LOG.read_bytes()))
    try:
        EXPECTED.write_text(json.dumps(answers(tmp), indent=1, sort_keys=True) + "\n")
    finally:
        tmp.unlink()


if __name__ == "__main__":
    main(sys.argv[1])
