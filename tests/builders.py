"""Builders the test files share: an engine with a fixed clock and ids, policy stores and policy
directories, prepared images and detections.

A test whose setup does something of its own keeps a small local helper built on these.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from images import solid

from moderation import Decision, Detection, Engine, PolicyStore
from moderation.audit import InMemoryAuditLog
from moderation.image import ImageIntake, PreparedImage
from moderation.ports import AuditLog, Detector, Judge

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_POLICIES = ROOT / "policies"

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
DECISION_ID = "01JD0000000000000000000000"
# A default policy with no judge: borderline images go to review, never to Bedrock.
DEFAULT_POLICY = (
    "min_confidence: 40\ndefault: {reject: 90, escalate: 60}\nescalation: {judge: none}\n"
)
IMAGE = solid("png", (200, 150))

Fixed = Literal["now", "timer", "new_id"]


def ticking() -> Callable[[], float]:
    """A timer that advances one millisecond each time it is read (so every stage takes 1 ms)."""
    ticks = itertools.count()
    return lambda: next(ticks) / 1000


def engine(
    policies: PolicyStore,
    detector: Detector,
    judge: Judge | None = None,
    audit: AuditLog | None = None,
    *,
    real: Collection[Fixed] = (),
    **kwargs: Any,
) -> Engine:
    """An Engine auditing into a fresh InMemoryAuditLog (unless `audit`), with its clock fixed at
    `NOW`, a `ticking` timer and every decision id `DECISION_ID`.

    `real` names the fixed parts a test needs the engine's own of (distinct ids, the real
    clock); `kwargs` go to `Engine` and win over the fixed parts.
    """
    fixed: dict[str, Any] = {"now": lambda: NOW, "timer": ticking(), "new_id": lambda: DECISION_ID}
    for name in real:
        del fixed[name]
    return Engine(
        policies,
        detector,
        judge,
        audit if audit is not None else InMemoryAuditLog(),
        **{**fixed, **kwargs},
    )


def audited(engine: Engine) -> list[Decision]:
    """The decisions `engine` has written to its InMemoryAuditLog, oldest first."""
    assert isinstance(engine.audit, InMemoryAuditLog)
    return engine.audit.decisions


def store(default: str | bytes = DEFAULT_POLICY, **tenants: str | bytes) -> PolicyStore:
    """A PolicyStore of in-memory documents: `default` and one policy per tenant keyword."""
    return PolicyStore.from_sources({"default": default, **tenants})


def policies_dir(tmp_path: Path, default: str = DEFAULT_POLICY, **tenants: str) -> Path:
    """A policy directory `tmp_path/policies`: `default.yaml` and `tenants/<name>.yaml`."""
    root = tmp_path / "policies"
    (root / "tenants").mkdir(parents=True)
    (root / "default.yaml").write_text(default)
    for name, text in tenants.items():
        (root / "tenants" / f"{name}.yaml").write_text(text)
    return root


def shipped_policies(tmp_path: Path) -> Path:
    """A copy of the shipped `policies/` directory at `tmp_path/policies`, free to edit."""
    target = tmp_path / "policies"
    shutil.copytree(SHIPPED_POLICIES, target)
    return target


def prepared(data: bytes = IMAGE, **kwargs: Any) -> PreparedImage:
    """`data` (a 200x150 PNG unless given) prepared by a default ImageIntake."""
    return ImageIntake().prepare(data, **kwargs)


def detection(*labels: tuple[str, str, float]) -> Detection:
    """What Rekognition (model 7.0) answers with these (name, parent or "", confidence) labels."""
    return Detection.from_rekognition(
        {
            "ModerationLabels": [
                {"Name": name, "ParentName": parent, "Confidence": confidence}
                for name, parent, confidence in labels
            ],
            "ModerationModelVersion": "7.0",
        }
    )
