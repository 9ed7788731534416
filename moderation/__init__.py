"""Decide whether an uploaded image may be published.

Rekognition moderation labels on every image, per-tenant YAML policy bands, a Bedrock judge for the
borderline cases only, and an auditable `Decision` for every call.

Importing this package imports none of its modules but the errors: each name below is imported
from its module when it is first used (`moderation.Engine`, `from moderation import Decision`),
so that a command, a Lambda cold start or a library that needs one part does not pay for the
others (pydantic's model building, Pillow, PyYAML). The AWS adapters (`RekognitionDetector`,
`BedrockJudge`, `S3ImageReader`) import boto3 when they are; nothing else here does.
"""

import sys
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

from moderation._lazy import by_name, load
from moderation._version import __version__
from moderation.errors import (
    AuditError,
    ConfigurationError,
    DetectionParseError,
    DetectorError,
    ImageSourceError,
    InvalidImage,
    InvalidS3Location,
    InvalidTenant,
    JudgeError,
    ModerationError,
    PolicyError,
    Problem,
    ReplayError,
    UnknownTenant,
)

if TYPE_CHECKING:
    from moderation._retry import RetryPolicy
    from moderation.audit import (
        InMemoryAuditLog,
        JsonlAuditLog,
        LoggingAuditLog,
        S3AuditLog,
        StreamAuditLog,
        verify_log,
    )
    from moderation.aws.bedrock import BedrockJudge
    from moderation.aws.rekognition import RekognitionDetector
    from moderation.aws.s3 import S3ImageReader
    from moderation.batch import BatchInput, BatchItem
    from moderation.decision import (
        Cost,
        DecidedBy,
        Decision,
        Escalation,
        ImageIdentity,
        Outcome,
        S3Identity,
        TokenUsage,
        Verdict,
        VerdictKind,
    )
    from moderation.detection import ContentType, Detection, Label
    from moderation.engine import Engine, configure, moderate
    from moderation.image import ImageIntake, Limits, PreparedImage, S3Reader
    from moderation.policy import Band, Policy, PolicyRef, PolicyStore, Thresholds
    from moderation.ports import AuditLog, Detector, Judge, JudgeRequest, Judgment
    from moderation.pricing import ModelPrice, Pricing
    from moderation.replay import Flip, ReplayReport, replay, replay_shadow
    from moderation.s3location import S3Location, S3Prefix
    from moderation.settings import Settings
    from moderation.taxonomy import TAXONOMY
    from moderation.triage import Action, Finding, Triage, evaluate

#: Module -> the public names imported from it on first use.
_MODULES: dict[str, tuple[str, ...]] = {
    "moderation._retry": ("RetryPolicy",),
    "moderation.audit": (
        "InMemoryAuditLog",
        "JsonlAuditLog",
        "LoggingAuditLog",
        "S3AuditLog",
        "StreamAuditLog",
        "verify_log",
    ),
    "moderation.aws.bedrock": ("BedrockJudge",),
    "moderation.aws.rekognition": ("RekognitionDetector",),
    "moderation.aws.s3": ("S3ImageReader",),
    "moderation.batch": ("BatchInput", "BatchItem"),
    "moderation.decision": (
        "Cost",
        "DecidedBy",
        "Decision",
        "Escalation",
        "ImageIdentity",
        "Outcome",
        "S3Identity",
        "TokenUsage",
        "Verdict",
        "VerdictKind",
    ),
    "moderation.detection": ("ContentType", "Detection", "Label"),
    "moderation.engine": ("Engine", "configure", "moderate"),
    "moderation.image": ("ImageIntake", "Limits", "PreparedImage", "S3Reader"),
    "moderation.policy": ("Band", "Policy", "PolicyRef", "PolicyStore", "Thresholds"),
    "moderation.ports": ("AuditLog", "Detector", "Judge", "JudgeRequest", "Judgment"),
    "moderation.pricing": ("ModelPrice", "Pricing"),
    "moderation.replay": ("Flip", "ReplayReport", "replay", "replay_shadow"),
    "moderation.s3location": ("S3Location", "S3Prefix"),
    "moderation.settings": ("Settings",),
    "moderation.taxonomy": ("TAXONOMY",),
    "moderation.triage": ("Action", "Finding", "Triage", "evaluate"),
}
_LAZY = by_name(_MODULES)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        return _submodule(name)
    return load(__name__, _LAZY, name)


def _submodule(name: str) -> ModuleType:
    """`moderation.<name>` for a subpackage not imported yet (`import moderation` then
    `moderation.policy.PolicyStore` worked when this file imported everything)."""
    try:
        return import_module(f"moderation.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"moderation.{name}":
            raise
    raise AttributeError(f"module 'moderation' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(ModuleType):
    """This package's module type: `replay` and `evaluate` name both a function exported here and
    a subpackage (`moderation.replay`, `moderation.evaluate`). Importing a subpackage sets it as
    an attribute of its parent; here the function keeps the name, as it did when this file
    imported everything itself."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = [
    "TAXONOMY",
    "Action",
    "AuditError",
    "AuditLog",
    "Band",
    "BatchInput",
    "BatchItem",
    "BedrockJudge",
    "ConfigurationError",
    "ContentType",
    "Cost",
    "DecidedBy",
    "Decision",
    "Detection",
    "DetectionParseError",
    "Detector",
    "DetectorError",
    "Engine",
    "Escalation",
    "Finding",
    "Flip",
    "ImageIdentity",
    "ImageIntake",
    "ImageSourceError",
    "InMemoryAuditLog",
    "InvalidImage",
    "InvalidS3Location",
    "InvalidTenant",
    "JsonlAuditLog",
    "Judge",
    "JudgeError",
    "JudgeRequest",
    "Judgment",
    "Label",
    "Limits",
    "LoggingAuditLog",
    "ModelPrice",
    "ModerationError",
    "Outcome",
    "Policy",
    "PolicyError",
    "PolicyRef",
    "PolicyStore",
    "PreparedImage",
    "Pricing",
    "Problem",
    "RekognitionDetector",
    "ReplayError",
    "ReplayReport",
    "RetryPolicy",
    "S3AuditLog",
    "S3Identity",
    "S3ImageReader",
    "S3Location",
    "S3Prefix",
    "S3Reader",
    "Settings",
    "StreamAuditLog",
    "Thresholds",
    "TokenUsage",
    "Triage",
    "UnknownTenant",
    "Verdict",
    "VerdictKind",
    "__version__",
    "configure",
    "evaluate",
    "moderate",
    "replay",
    "replay_shadow",
    "verify_log",
]
