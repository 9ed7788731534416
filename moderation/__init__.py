"""Decide whether an uploaded image may be published.

Rekognition moderation labels on every image, per-tenant YAML policy bands, a Bedrock judge for the
borderline cases only, and an auditable `Decision` for every call.
"""

from typing import TYPE_CHECKING, Any

from moderation._version import __version__
from moderation.decision import (
    Cost,
    DecidedBy,
    Decision,
    Escalation,
    ImageIdentity,
    Outcome,
    S3Identity,
    Verdict,
    VerdictKind,
)
from moderation.detection import ContentType, Detection, Label
from moderation.engine import Engine, configure, moderate
from moderation.errors import (
    AuditError,
    DetectionParseError,
    DetectorError,
    InvalidImage,
    InvalidTenant,
    JudgeError,
    ModerationError,
    PolicyError,
    Problem,
    UnknownTenant,
)
from moderation.policy import Band, Policy, PolicyRef, PolicyStore, Thresholds
from moderation.taxonomy import TAXONOMY
from moderation.triage import Action, Finding, Triage, evaluate

if TYPE_CHECKING:
    from moderation.aws.bedrock import BedrockJudge
    from moderation.aws.rekognition import RekognitionDetector

_LAZY = {
    "BedrockJudge": "moderation.aws.bedrock",
    "RekognitionDetector": "moderation.aws.rekognition",
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
    "Band",
    "BedrockJudge",
    "ContentType",
    "Cost",
    "DecidedBy",
    "Decision",
    "Detection",
    "DetectionParseError",
    "DetectorError",
    "Engine",
    "Escalation",
    "Finding",
    "ImageIdentity",
    "InvalidImage",
    "InvalidTenant",
    "JudgeError",
    "Label",
    "ModerationError",
    "Outcome",
    "Policy",
    "PolicyError",
    "PolicyRef",
    "PolicyStore",
    "Problem",
    "RekognitionDetector",
    "S3Identity",
    "Thresholds",
    "Triage",
    "UnknownTenant",
    "Verdict",
    "VerdictKind",
    "__version__",
    "configure",
    "evaluate",
    "moderate",
]
