"""The bytes a decision leaves behind: audit records and Decision JSON, byte for byte.

A fixed set of decisions (every outcome, judge answers and failures, content types, shadows, a
fallback tenant, a detector failure) is made with a fixed clock, timer and ids, and what the
stdout sink and the JSONL file sink write, and each `Decision.model_dump_json()`, is compared with
tests/fixtures/decision_records.jsonl. Speed-ups to the decision path (how findings, triage and
the record are built) must leave these bytes alone. `REGENERATE_GOLDEN=1` rewrites the file; do
that only for a change of the record you mean.
"""

from __future__ import annotations

import io
import itertools
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

import pytest
from images import BLUE, GREEN, solid

import moderation.audit._jsonl
from moderation import Engine, PolicyStore
from moderation.audit import JsonlAuditLog, StreamAuditLog
from moderation.decision import Decision
from moderation.testing import FailingDetector, StaticDetector, StaticJudge

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "fixtures" / "decision_records.jsonl"
SHADOWED = "extends: default\nshadow: [strict, lax]\n"
STRICT = "extends: default\ncategories:\n  Violence: {reject: 80}\n"
LAX = "extends: default\ndefault: {reject: 99}\ncategories:\n  Weapons: allow\n"
REVIEWS = "extends: default\non_detector_error: review\n"

Spec = tuple[str, list[tuple[str, float]], list[tuple[str, float]]]

#: (tenant, labels, content types) for each decision, in order.
CASES: list[Spec] = [
    ("default", [], []),
    ("default", [("Alcoholic Beverages", 91.2), ("Alcohol", 91.2), ("Weapons", 52.5)], []),
    ("default", [("Explicit", 96.5)], []),
    ("default", [("Weapons", 90.5), ("Violence", 90.5)], []),  # escalated: the judge answers
    ("forum", [("Violence", 90.5)], [("Animated", 88.0)]),
    ("forum", [("Hate Symbols", 81.25)], []),
    ("kids", [("Swimwear or Underwear", 64.0), ("Suggestive", 64.0)], []),
    ("dating", [("Kissing on the Lips", 77.7), ("Romance", 70.0)], [("Illustrated", 90.0)]),
    ("shadowed", [("Violence", 85.0), ("Weapons", 85.0)], []),
    ("no-such-tenant", [("Drugs & Tobacco", 81.0)], []),  # the default policy, as a fallback
    ("medical", [("Graphic Violence", 93.0), ("A Label Newer Than The Taxonomy", 88.0)], []),
]


def policies(tmp: Path) -> PolicyStore:
    (tmp / "tenants").mkdir(parents=True)
    for path in (ROOT / "policies").rglob("*.yaml"):
        target = tmp / path.relative_to(ROOT / "policies")
        target.write_bytes(path.read_bytes())
    (tmp / "tenants" / "shadowed.yaml").write_text(SHADOWED)
    (tmp / "tenants" / "reviews.yaml").write_text(REVIEWS)
    (tmp / "tenants" / "strict.yaml").write_text(STRICT)
    (tmp / "tenants" / "lax.yaml").write_text(LAX)
    return PolicyStore.load(str(tmp), fallback_to_default=True)


def fixed() -> dict[str, Callable[[], object]]:
    """A clock, a timer and ids that give the same record on every run."""
    start = datetime(2025, 1, 30, 12, 0, tzinfo=UTC)
    ticks = itertools.count()
    stamps = itertools.count()
    ids = itertools.count(1)
    return {
        "now": lambda: start + timedelta(seconds=next(stamps)),
        "timer": lambda: next(ticks) * 0.000125,
        "new_id": lambda: f"01JD7Q8W3K2V9X4N6M5R{next(ids):06d}",
    }


class _Frozen(datetime):
    """The JSONL log's own clock (its file header's created_at), stopped."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _Frozen:
        return cls(2025, 1, 30, 11, 0, tzinfo=tz)


def decisions(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """One line per record written, per sink, and per Decision JSON."""
    monkeypatch.setattr(moderation.audit._jsonl, "datetime", _Frozen)
    store = policies(tmp / "policies")
    stream = io.StringIO()
    log = tmp / "audit.jsonl"
    jsonl = JsonlAuditLog(log, fsync=False)
    judges = [StaticJudge("reject", "a real weapon", ["Weapons"]), StaticJudge.blocked()]
    for n, (tenant, labels, kinds) in enumerate(CASES):
        image = solid(
            "jpeg" if n % 2 else "png", color=GREEN if n % 2 else BLUE, size=(120 + n, 90)
        )
        detector = StaticDetector(labels, kinds)
        for sink in (StreamAuditLog(stream), jsonl):
            engine = Engine(store, detector, judges[n % 2], sink, **fixed())  # type: ignore[arg-type]
            decision = engine.moderate(image, tenant=tenant, context={"case": n})
            yield decision.model_dump_json()
    sink = StreamAuditLog(stream)
    failing = Engine(store, FailingDetector(), None, sink, **fixed())  # type: ignore[arg-type]
    yield failing.moderate(solid("png", size=(100, 90)), tenant="reviews").model_dump_json()
    yield from stream.getvalue().splitlines()
    yield from log.read_text().splitlines()


def test_decision_records_are_byte_identical_to_the_golden_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    produced = list(decisions(tmp_path, monkeypatch))
    if os.environ.get("REGENERATE_GOLDEN") == "1":
        GOLDEN.write_text("\n".join(produced) + "\n")
    golden = GOLDEN.read_text().splitlines()
    assert len(produced) == len(golden)
    for got, want in zip(produced, golden, strict=True):
        assert got == want
    # And every record says what it should: all four outcomes are among them.
    outcomes = {json.loads(line).get("outcome") for line in golden}
    assert {"approved", "rejected", "review"} <= outcomes


def test_a_decision_built_now_validates_to_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for line in list(decisions(tmp_path, monkeypatch))[: 2 * len(CASES) + 1]:
        assert Decision.model_validate_json(line).model_dump_json() == line
