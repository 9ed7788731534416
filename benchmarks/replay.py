"""Replay speed: decisions replayed per second against decisions merely parsed per second, and
replay's peak memory on a large log.

    .venv/bin/python benchmarks/replay.py [--n 100000] [--repeat 3] [--decisions 1000000]

Not a test: nothing here asserts a time. Writes a chained audit log of `--n` realistic decisions
(five tenants from policies/, 3-8 labels each as Rekognition reports them, with their parents;
escalations answered by a judge, a few failed) into a temporary directory, then times reading the
same lines into Decisions (`read_log`) and replaying them (`moderation.replay`) under changed
policies, alternately, best of `--repeat` runs each, in CPU time. The target is a replay rate of
at least 0.8 of the parse rate. Then a log of `--decisions` decisions (0: skipped) is replayed
with no lists kept (`keep=0`) in a fresh process, beside the same for the `--n` log: peak memory
(RSS) must not grow with the log (about 3 GB of disk for a million decisions).
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from PIL import Image

from moderation import Engine, InMemoryAuditLog, PolicyStore, replay
from moderation._ids import new_ulid
from moderation.audit import FileHeader, encode_record, read_log
from moderation.audit._format import GENESIS
from moderation.decision import Decision, TokenUsage, Verdict, VerdictKind
from moderation.detection import ContentType, Detection, Label
from moderation.errors import JudgeError
from moderation.image import PreparedImage
from moderation.ports import JudgeRequest, Judgment
from moderation.taxonomy import TAXONOMY

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
TENANTS = ["default"] * 4 + ["kids"] * 2 + ["dating", "forum", "medical"]
LEAVES = [n for n in TAXONOMY.names() if (TAXONOMY.level(n) or 1) >= 2]
# The policy changes replayed: stricter thresholds for two tenants, a new judge model for one.
CHANGES = {
    "default.yaml": [
        ("Explicit: {reject: 80, escalate: 40}", "Explicit: {reject: 70, escalate: 35}")
    ],
    "tenants/kids.yaml": [
        ("Weapons: {reject: 80, escalate: 40}", "Weapons: {reject: 60, escalate: 30}")
    ],
    "tenants/medical.yaml": [("claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001")],
}


class RandomDetector:
    """1-3 findings per image, each reported with its parents (as Rekognition 7.0 does)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
        labels: dict[str, Label] = {}
        while len(labels) < 3:
            leaf = self.rng.choice(LEAVES)
            confidence = self.rng.uniform(min_confidence, 100.0)
            for name in (leaf, *TAXONOMY.ancestors(leaf)):
                category = TAXONOMY.lookup(name)
                assert category is not None
                labels.setdefault(
                    name,
                    Label(name=name, parent=category.parent, level=category.level,
                          confidence=round(confidence, 4)),
                )  # fmt: skip
            if len(labels) >= 3 and self.rng.random() < 0.5:
                break
        kinds: tuple[ContentType, ...] = ()
        if self.rng.random() < 0.2:
            kinds = (ContentType(name="Illustrated", confidence=self.rng.uniform(40, 100)),)
        return Detection(
            provider="rekognition",
            model_version="7.0",
            min_confidence=min_confidence,
            labels=tuple(list(labels.values())[:8]),
            content_types=kinds,
        )


class RandomJudge:
    """Bedrock-like answers with token usage (so decisions carry a cost); a few failures."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def judge(self, image: PreparedImage, request: JudgeRequest) -> Judgment:
        roll = self.rng.random()
        if roll < 0.03:
            raise JudgeError("ThrottlingException after 4 attempts", attempts=4)
        usage = TokenUsage(
            input_tokens=self.rng.randint(1500, 2500), output_tokens=self.rng.randint(60, 200)
        )
        verdict = self.rng.choice(list(VerdictKind))
        return Judgment(
            status="verdict",
            verdict=Verdict(verdict=verdict, rationale="benchmark"),
            model_id=request.model_id,
            prompt_sha256="0" * 64,
            usage=usage,
            provider="bedrock",
        )


def recorded(n_unique: int, rng: random.Random) -> list[Decision]:
    buffer = io.BytesIO()
    Image.new("RGB", (100, 100), (10, 20, 30)).save(buffer, "PNG")
    image = buffer.getvalue()
    audit = InMemoryAuditLog()
    engine = Engine(PolicyStore(ROOT / "policies"), RandomDetector(rng), RandomJudge(rng), audit)
    for _ in range(n_unique):
        engine.moderate(image, tenant=rng.choice(TENANTS))
    return list(audit.decisions)


def write_log(path: Path, unique: list[Decision], n: int) -> None:
    """`n` decisions (the unique ones again and again, each with a new id) as chained records."""
    prev, seq = GENESIS, 1
    header = FileHeader(created_at=datetime.now(UTC), engine_version="bench")
    with path.open("wb") as fh:
        line = encode_record(seq=seq, prev=prev, kind="file", body_json=header.model_dump_json(),
                             key=None)  # fmt: skip
        fh.write(line)
        for i in range(n):
            decision = unique[i % len(unique)].model_copy(update={"id": new_ulid()})
            seq, prev = seq + 1, line.rsplit(b'"hash":"', 1)[1][:64].decode()
            line = encode_record(seq=seq, prev=prev, kind="decision",
                                 body_json=decision.model_dump_json(), key=None)  # fmt: skip
            fh.write(line)


def changed_policies(into: Path) -> Path:
    shutil.copytree(ROOT / "policies", into)
    for name, edits in CHANGES.items():
        file = into / name
        text = file.read_text()
        for old, new in edits:
            assert old in text, f"{name}: {old!r} not found; update CHANGES"
            text = text.replace(old, new)
        file.write_text(text)
    return into


def best(repeat: int, *runs: Callable[[], T]) -> list[tuple[float, T]]:
    """The shortest of `repeat` runs of each, in seconds of this process's CPU time (both are
    single-threaded and CPU-bound: other processes on the machine then disturb them less), and
    what its last run returned; the runs take turns, so that what remains disturbs them alike."""
    times: list[list[float]] = [[] for _ in runs]
    results: list[T] = []
    for _ in range(repeat):
        results = []
        for i, run in enumerate(runs):
            start = time.process_time()
            results.append(run())
            times[i].append(time.process_time() - start)
    return [(min(t), r) for t, r in zip(times, results, strict=True)]


_PEAK = """
import resource, sys
from moderation import replay
report = replay(sys.argv[1], sys.argv[2], keep=0)
assert report.decisions == int(sys.argv[3]), report.decisions
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_mib(log: Path, policies: Path, decisions: int) -> float:
    """Peak RSS of a fresh process that replays `log` keeping no lists, in MiB."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK, str(log), str(policies), str(decisions)],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    return int(out.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="decisions (default 100000)")
    parser.add_argument("--unique", type=int, default=3_000, help="distinct decisions")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each, best kept")
    parser.add_argument(
        "--decisions",
        type=int,
        default=1_000_000,
        help="decisions in the log whose replay's peak memory is measured (0: skip)",
    )
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "audit.jsonl"
        unique = recorded(args.unique, rng)
        write_log(log, unique, args.n)
        policies = changed_policies(Path(tmp) / "policies")
        store = PolicyStore(policies)
        size = log.stat().st_size

        def parse() -> int:
            return sum(1 for entry in read_log(log) if entry.decision is not None)

        (parse_s, parsed), (replay_s, report) = best(args.repeat, parse, lambda: replay(log, store))
        assert parsed == args.n, parsed
        assert report.decisions == args.n, report.decisions
        parse_rate, replay_rate = args.n / parse_s, args.n / replay_s
        print(
            f"replay benchmark: {args.n:,} decisions, {size / args.n:,.0f} bytes a line, "
            f"{report.flipped:,} flipped, {report.needs_judgment:,} need judgment"
        )
        print(f"  parse  (read_log -> Decision): {parse_rate:>9,.0f} decisions/s")
        print(f"  replay (moderation.replay)   : {replay_rate:>9,.0f} decisions/s")
        print(f"  replay / parse               : {replay_rate / parse_rate:.2f}  (target >= 0.8)")
        if args.decisions:
            _memory(Path(tmp), log, policies, unique, args.n, args.decisions)


def _memory(
    tmp: Path, log: Path, policies: Path, unique: list[Decision], n: int, decisions: int
) -> None:
    small = peak_rss_mib(log, policies, n)
    big_log = tmp / "big.jsonl"
    write_log(big_log, unique, decisions)
    start = time.perf_counter()
    big = peak_rss_mib(big_log, policies, decisions)
    elapsed = time.perf_counter() - start
    print(
        f"replay peak RSS, keep=0 (fresh process): {n:,} decisions {small:,.0f} MiB; "
        f"{decisions:,} decisions ({big_log.stat().st_size / 2**30:.1f} GiB) {big:,.0f} MiB "
        f"(ratio {big / small:.2f}; {decisions / elapsed:,.0f} decisions/s with start-up)"
    )


if __name__ == "__main__":
    main()
