"""Answer from recorded Rekognition and Bedrock responses, keyed by the image's sha256.

A recordings directory holds one JSON file per image:

    {"image": "examples/images/beach.png",            # informational
     "sha256": "<hex sha256 of the original image bytes>",
     "detect_moderation_labels": {...},                # a DetectModerationLabels response, verbatim
     "converse": {...}}                                # optional: a Converse response, verbatim

The recorded detector and judge run the same parsing code as the AWS adapters, so a recording is
held to the services' real formats. An image with no recording is an error, never a made-up answer.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from moderation.detection import Detection
from moderation.errors import DetectorError, JudgeError, ModerationError
from moderation.image import PreparedImage
from moderation.ports import JudgeRequest, Judgment

__all__ = ["NoRecording", "RecordedDetector", "RecordedJudge", "Recordings"]


class NoRecording(DetectorError):
    """No recorded detector response exists for this image."""


class Recordings:
    """Recorded responses by image sha256."""

    def __init__(self, entries: Mapping[str, Mapping[str, Any]], source: str = "<memory>") -> None:
        self.entries = dict(entries)
        self.source = source

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Recordings:
        """Every `*.json` recording in `directory`; ModerationError naming a malformed file."""
        root = Path(directory)
        if not root.is_dir():
            raise ModerationError(f"recordings directory not found: {root}")
        entries: dict[str, Mapping[str, Any]] = {}
        for path in sorted(root.glob("*.json")):
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ModerationError(f"{path}: not a readable JSON recording: {exc}") from exc
            sha = entry.get("sha256") if isinstance(entry, dict) else None
            if not isinstance(sha, str) or len(sha) != 64:
                raise ModerationError(f"{path}: a recording needs a 64-hex-digit 'sha256'")
            if sha in entries:
                raise ModerationError(f"{path}: a second recording for sha256 {sha}")
            entries[sha] = entry
        return cls(entries, str(root))

    @classmethod
    def of(cls, items: Mapping[bytes, Mapping[str, Any]]) -> Recordings:
        """Recordings from image bytes -> {"detect_moderation_labels": ..., "converse": ...}."""
        return cls({hashlib.sha256(image).hexdigest(): entry for image, entry in items.items()})

    def response(self, image: PreparedImage, key: str) -> Mapping[str, Any] | None:
        """The recorded `key` response for this image, or None."""
        if image.sha256 is None:
            return None
        entry = self.entries.get(image.sha256)
        value = entry.get(key) if entry else None
        return value if isinstance(value, Mapping) else None


class RecordedDetector:
    """A Detector that answers from recorded DetectModerationLabels responses."""

    def __init__(self, recordings: Recordings) -> None:
        self.recordings = recordings

    def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
        """The recorded detection for this image; NoRecording if there is none."""
        response = self.recordings.response(image, "detect_moderation_labels")
        if response is None:
            what = f"sha256 {image.sha256}" if image.sha256 else "this S3 image (not downloaded)"
            raise NoRecording(
                f"no recorded DetectModerationLabels response for {what} in "
                f"{self.recordings.source}"
            )
        return Detection.from_rekognition(response, min_confidence=min_confidence)


class RecordedJudge:
    """A Judge that answers from recorded Converse responses, interpreted like BedrockJudge's."""

    def __init__(
        self, recordings: Recordings, *, max_tokens: int = 512, temperature: float = 0.0
    ) -> None:
        self.recordings = recordings
        self.max_tokens = max_tokens
        self.temperature = temperature

    def judge(self, image: PreparedImage, request: JudgeRequest) -> Judgment:
        """The recorded judgment for this image; JudgeError if there is none."""
        from moderation.judge import build_converse_request, interpret_converse, prompt_sha256

        response = self.recordings.response(image, "converse")
        if response is None:
            raise JudgeError(
                f"no recorded Converse response for sha256 {image.sha256} in "
                f"{self.recordings.source}"
            )
        fmt, data = image.judge_image()
        kwargs = build_converse_request(
            request, fmt, data, max_tokens=self.max_tokens, temperature=self.temperature
        )
        return interpret_converse(
            response,
            model_id=request.model_id,
            prompt_sha256=prompt_sha256(kwargs),
            latency_ms=None,
            attempts=1,
        )
