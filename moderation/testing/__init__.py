"""Test doubles for code that uses this library (docs/testing.md).

- Recorded detector and judge: answers from verbatim service responses, keyed by image sha256
  (and, for the judge, optionally by tenant).
- Static and failing detectors and judges: fixed answers or fixed exceptions, every call kept.
- An engine rebuilt from a decision log (`engine_from_log`, `DecisionLog`, `LoggedDetector`,
  `LoggedJudge`): `moderate()` answers with what production's detector and judge said.
- `use_engine`: install an engine for module-level `moderation.moderate()` for a block or a test;
  `offline_engine`: an engine that makes no AWS call.
- `assert_replay`: a golden test that recorded decisions come out the same under the policies.
- An in-memory audit log, and a local 127.0.0.1 endpoint that speaks the Rekognition and Bedrock
  wire formats with scripted faults.

Importing this package does not import boto3: the endpoint (`AWSEndpoint`, `Reply`) is loaded on
first use.
"""

from typing import TYPE_CHECKING, Any

from moderation.audit import InMemoryAuditLog
from moderation.testing._calls import DetectCall, JudgeCall
from moderation.testing._engine import offline_engine, use_engine
from moderation.testing._from_log import (
    DecisionLog,
    DetectionNotReplayable,
    LoggedDetector,
    LoggedJudge,
    LogSource,
    NoLoggedVerdict,
    NotInLog,
    VerdictNotReplayable,
    engine_from_log,
)
from moderation.testing._replay import assert_replay
from moderation.testing.fakes import (
    ContentTypeSpec,
    FailingDetector,
    FailingJudge,
    ImageKey,
    LabelSpec,
    StaticDetector,
    StaticJudge,
    static_detection,
)
from moderation.testing.recorded import NoRecording, RecordedDetector, RecordedJudge, Recordings

if TYPE_CHECKING:
    from moderation.testing.endpoint import AWSEndpoint, Reply

# The endpoint drives real boto3 clients; a test suite that only uses the fakes must not pay for
# (or need) boto3 at import.
_LAZY = {"AWSEndpoint": "moderation.testing.endpoint", "Reply": "moderation.testing.endpoint"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'moderation.testing' has no attribute {name!r}")


__all__ = [
    "AWSEndpoint",
    "ContentTypeSpec",
    "DecisionLog",
    "DetectCall",
    "DetectionNotReplayable",
    "FailingDetector",
    "FailingJudge",
    "ImageKey",
    "InMemoryAuditLog",
    "JudgeCall",
    "LabelSpec",
    "LogSource",
    "LoggedDetector",
    "LoggedJudge",
    "NoLoggedVerdict",
    "NoRecording",
    "NotInLog",
    "RecordedDetector",
    "RecordedJudge",
    "Recordings",
    "Reply",
    "StaticDetector",
    "StaticJudge",
    "VerdictNotReplayable",
    "assert_replay",
    "engine_from_log",
    "offline_engine",
    "static_detection",
    "use_engine",
]
