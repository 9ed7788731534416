"""Decide whether an uploaded image may be published.

Rekognition moderation labels on every image, per-tenant YAML policy bands, a Bedrock judge for the
borderline cases only, and an auditable `Decision` for every call.

Importing this package loads neither boto3 nor botocore: the AWS adapters (`RekognitionDetector`,
`BedrockJudge`, `S3ImageReader`) are imported on first use.
"""

from typing import TYPE_CHECKING, Any

from moderation._retry import RetryPolicy
from moderation._version import __version__
from moderation.audit import (
    InMemoryAuditLog,
    JsonlAuditLog,
    LoggingAuditLog,
    S3AuditLog,
    StreamAuditLog,
    verify_log,
)
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
from moderation.image import ImageIntake, Limits, PreparedImage, S3Reader
from moderation.policy import Band, Policy, PolicyRef, PolicyStore, Thresholds
from moderation.ports import AuditLog, Detector, Judge, JudgeRequest, Judgment
from moderation.pricing import ModelPrice, Pricing
from moderation.replay import Flip, ReplayReport, replay, replay_shadow
from moderation.s3location import S3Location, S3Prefix
from moderation.settings import Settings
from moderation.taxonomy import TAXONOMY
from moderation.triage import Action, Finding, Triage, evaluate

if TYPE_CHECKING:
    from moderation.aws.bedrock import BedrockJudge
    from moderation.aws.rekognition import RekognitionDetector
    from moderation.aws.s3 import S3ImageReader

_LAZY = {
    "BedrockJudge": "moderation.aws.bedrock",
    "RekognitionDetector": "moderation.aws.rekognition",
    "S3ImageReader": "moderation.aws.s3",
}


def __getattr__(name: str) -> Any:
    # The AWS adapters import boto3; the pure core (policy, triage, replay) does not need it.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'moderation' has no attribute {name!r}")


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
