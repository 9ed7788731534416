"""Answer from recorded Rekognition and Bedrock responses: `moderation.recorded`, re-exported.

The recorded detector and judge are part of the library (`moderation check --offline` answers
from recordings without importing the test kit); this module keeps `moderation.testing.recorded`
working for tests.
"""

from __future__ import annotations

from moderation.recorded import (
    KNOWN_KEYS,
    NoRecording,
    RecordedDetector,
    RecordedJudge,
    Recordings,
)

__all__ = ["KNOWN_KEYS", "NoRecording", "RecordedDetector", "RecordedJudge", "Recordings"]
