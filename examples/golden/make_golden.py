"""Regenerate examples/golden/decisions.jsonl, the golden decision log (outputs are committed).

    .venv/bin/python examples/golden/make_golden.py

Moderates every image in examples/images for the tenants `default` and `kids` under the policies
in policies/, offline: the detector and judge answer from examples/recordings. Files that are not
images the engine accepts (notes.txt, tiny.png, truncated.jpg) give no decision and are skipped.
The run is deterministic: decision ids, timestamps and stage timings are injected, so the same
inputs write the same log. A test (tests/test_golden_decisions.py) proves that the policies in
policies/ flip none of these decisions; rerun this script after an intended policy change.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the repository's moderation, also when run without installing

from moderation import Engine, InvalidImage, PolicyStore  # noqa: E402
from moderation.audit import JsonlAuditLog  # noqa: E402
from moderation.testing import RecordedDetector, RecordedJudge, Recordings  # noqa: E402

GOLDEN = ROOT / "examples" / "golden" / "decisions.jsonl"
TENANTS = ("default", "kids")
START = datetime(2025, 1, 1, tzinfo=UTC)


def clock() -> Callable[[], datetime]:
    """A clock one second further on each call, from START: created_at is stable and ordered."""
    ticks = itertools.count()
    return lambda: START + timedelta(seconds=next(ticks))


def ids() -> Callable[[], str]:
    """golden-0001, golden-0002, ...: stable decision ids."""
    numbers = itertools.count(1)
    return lambda: f"golden-{next(numbers):04d}"


def main(out: Path = GOLDEN) -> None:
    """Write the golden log to `out` afresh and print one line per decision."""
    recordings = Recordings.load(ROOT / "examples" / "recordings")
    # The log appends: start from nothing (the live file and any rotated predecessor `.N`).
    for old in [out, *out.parent.glob(out.name + ".[0-9]*")]:
        old.unlink(missing_ok=True)
    engine = Engine(
        PolicyStore(ROOT / "policies"),
        RecordedDetector(recordings),
        RecordedJudge(recordings),
        JsonlAuditLog(out, fsync=False),
        now=clock(),
        timer=lambda: 0.0,  # timings of 0 ms: real ones would change the file on every run
        new_id=ids(),
    )
    for image in sorted((ROOT / "examples" / "images").iterdir()):
        for tenant in TENANTS:
            try:
                decision = engine.moderate(image, tenant=tenant)
            except InvalidImage as exc:
                print(f"skipped {image.name} ({tenant}): {exc.reason}")
                continue
            print(
                f"{decision.id} {image.name:20} {tenant:8} {decision.outcome.value:9} "
                f"by {decision.decided_by.value}"
            )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
