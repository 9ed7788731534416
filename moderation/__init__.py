"""Decide whether an uploaded image may be published.

Rekognition moderation labels on every image, per-tenant YAML policy bands, a Bedrock judge for the
borderline cases only, and an auditable `Decision` for every call.
"""

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
from moderation.errors import (
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

__version__ = "0.1.0"

__all__ = [
    "TAXONOMY",
    "Action",
    "Band",
    "ContentType",
    "Cost",
    "DecidedBy",
    "Decision",
    "Detection",
    "DetectionParseError",
    "DetectorError",
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
    "S3Identity",
    "Thresholds",
    "Triage",
    "UnknownTenant",
    "Verdict",
    "VerdictKind",
    "__version__",
    "evaluate",
]
