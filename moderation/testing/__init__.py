"""Test doubles for code that uses this library.

Recorded detector and judge (answers from verbatim service responses, keyed by image sha256), an
in-memory audit log, and a local 127.0.0.1 endpoint that speaks the Rekognition and Bedrock wire
formats with scripted faults.
"""

from moderation.audit import InMemoryAuditLog
from moderation.testing.endpoint import AWSEndpoint, Reply
from moderation.testing.recorded import NoRecording, RecordedDetector, RecordedJudge, Recordings

__all__ = [
    "AWSEndpoint",
    "InMemoryAuditLog",
    "NoRecording",
    "RecordedDetector",
    "RecordedJudge",
    "Recordings",
    "Reply",
]
