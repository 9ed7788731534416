"""Answer from recorded Rekognition and Bedrock responses, keyed by the image's sha256.

A recordings directory holds one JSON file per image (docs/testing.md has the full format):

    {"image": "examples/images/beach.jpg",           # optional, informational
     "note": "...",                                   # optional, informational
     "sha256": "<hex sha256 of the original image bytes>",
     "detect_moderation_labels": {...},               # a DetectModerationLabels response, verbatim
     "converse": {...},                               # optional: a Converse response, verbatim
     "converse_by_tenant": {"kids": {...}}}           # optional: Converse responses per tenant

Detection does not depend on the tenant, so `detect_moderation_labels` is one per image. The judge
sees the tenant's guidance, so a tenant's entry in `converse_by_tenant` is used when there is one,
else `converse`. The recorded detector and judge run the same parsing code as the AWS adapters, so
a recording is held to the services' real formats. An image with no recording is an error, never a
made-up answer; a recording whose responses are not JSON objects is refused when it is loaded.

Part of the library, not of the test kit: `moderation check --offline` answers from recordings.
`moderation.testing` re-exports these names for tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from moderation.detection import Detection
from moderation.errors import DetectorError, JudgeError, ModerationError
from moderation.image import PreparedImage
from moderation.ports import JudgeRequest, Judgment

__all__ = [
    "KNOWN_KEYS",
    "DetectCall",
    "JudgeCall",
    "NoRecording",
    "RecordedDetector",
    "RecordedJudge",
    "Recordings",
]

DETECT_KEY: Final = "detect_moderation_labels"
CONVERSE_KEY: Final = "converse"
BY_TENANT_KEY: Final = "converse_by_tenant"
# Every key a recording may hold. An unknown key is refused rather than ignored: a misspelt
# "converse_by_tenant" would otherwise quietly give every tenant the top-level answer.
KNOWN_KEYS: Final = ("sha256", "image", "note", DETECT_KEY, CONVERSE_KEY, BY_TENANT_KEY)
_RESPONSES: Final[Mapping[str, str]] = {
    DETECT_KEY: "a DetectModerationLabels response",
    CONVERSE_KEY: "a Converse response",
}
_SHA256: Final = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True, slots=True)
class DetectCall:
    """One `detect()` call: the prepared image and the tenant policy's `min_confidence`."""

    image: PreparedImage
    min_confidence: float

    @property
    def sha256(self) -> str | None:
        """The image's sha256 (None only for an S3 image that was never downloaded)."""
        return self.image.sha256


@dataclass(frozen=True, slots=True)
class JudgeCall:
    """One `judge()` call: the prepared image and the request (tenant, model, findings)."""

    image: PreparedImage
    request: JudgeRequest

    @property
    def sha256(self) -> str | None:
        """The image's sha256 (None only for an S3 image that was never downloaded)."""
        return self.image.sha256

    @property
    def tenant(self) -> str:
        """The tenant whose policy escalated the image."""
        return self.request.tenant


class NoRecording(DetectorError):
    """No recorded detector response exists for this image."""


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _check_entry(entry: object, where: str) -> Mapping[str, Any]:
    """The entry if every key is known and every response is a JSON object; ModerationError else."""
    if not isinstance(entry, Mapping):
        raise ModerationError(f"{where}: a recording is a JSON object, got {_json_type(entry)}")
    unknown = sorted(repr(key) for key in entry if key not in KNOWN_KEYS)
    if unknown:
        raise ModerationError(
            f"{where}: unknown key(s) {', '.join(unknown)}; a recording holds only "
            f"{', '.join(KNOWN_KEYS)}"
        )
    for key in ("image", "note"):
        if key in entry and not isinstance(entry[key], str):
            raise ModerationError(
                f"{where}: '{key}' must be a string, got {_json_type(entry[key])}"
            )
    for key, what in _RESPONSES.items():
        # A response that is present but not an object (null, a list, a string) is a broken
        # recording; reporting it later as "no recording" would send people looking elsewhere.
        if key in entry and not isinstance(entry[key], Mapping):
            raise ModerationError(
                f"{where}: '{key}' must be {what} (a JSON object), got {_json_type(entry[key])}"
            )
    if BY_TENANT_KEY in entry:
        by_tenant = entry[BY_TENANT_KEY]
        if not isinstance(by_tenant, Mapping):
            raise ModerationError(
                f"{where}: '{BY_TENANT_KEY}' must map tenant ids to Converse responses (a JSON "
                f"object), got {_json_type(by_tenant)}"
            )
        for tenant, response in by_tenant.items():
            if not isinstance(tenant, str) or not tenant:
                raise ModerationError(f"{where}: '{BY_TENANT_KEY}' has an empty tenant id")
            if not isinstance(response, Mapping):
                raise ModerationError(
                    f"{where}: '{BY_TENANT_KEY}.{tenant}' must be a Converse response (a JSON "
                    f"object), got {_json_type(response)}"
                )
    return entry


class Recordings:
    """Recorded responses by image sha256; every entry is checked when the recordings are made."""

    def __init__(self, entries: Mapping[str, Mapping[str, Any]], source: str = "<memory>") -> None:
        self.entries: dict[str, Mapping[str, Any]] = {
            sha.lower(): _check_entry(entry, f"{source}: recording for sha256 {sha}")
            for sha, entry in entries.items()
        }
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
            entry = _check_entry(entry, str(path))
            sha = entry.get("sha256")
            if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
                raise ModerationError(f"{path}: a recording needs a 64-hex-digit 'sha256'")
            sha = sha.lower()
            if sha in entries:
                raise ModerationError(f"{path}: a second recording for sha256 {sha}")
            entries[sha] = entry
        return cls(entries, str(root))

    @classmethod
    def of(cls, items: Mapping[bytes, Mapping[str, Any]]) -> Recordings:
        """Recordings from image bytes -> entry; ModerationError for a malformed entry.

        An entry holds the keys of a recording file except `sha256`, which is computed:
        `{"detect_moderation_labels": ..., "converse": ..., "converse_by_tenant": {...}}`.
        """
        return cls({hashlib.sha256(image).hexdigest(): entry for image, entry in items.items()})

    def response(self, image: PreparedImage, key: str) -> Mapping[str, Any] | None:
        """The recorded `key` response for this image, or None."""
        if image.sha256 is None:
            return None
        entry = self.entries.get(image.sha256)
        value = entry.get(key) if entry else None
        return value if isinstance(value, Mapping) else None

    def converse(self, image: PreparedImage, tenant: str) -> Mapping[str, Any] | None:
        """The Converse response for `tenant`: its own, else the top-level one, else None."""
        if image.sha256 is None:
            return None
        entry = self.entries.get(image.sha256)
        if entry is None:
            return None
        by_tenant = entry.get(BY_TENANT_KEY)
        if isinstance(by_tenant, Mapping):
            own = by_tenant.get(tenant)
            if isinstance(own, Mapping):
                return own
        return self.response(image, CONVERSE_KEY)


class RecordedDetector:
    """A Detector that answers from recorded DetectModerationLabels responses.

    Detections say `provider="recorded"`. Every call is kept in `.calls` (`DetectCall`).
    """

    def __init__(self, recordings: Recordings) -> None:
        self.recordings = recordings
        self.calls: list[DetectCall] = []

    def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
        """The recorded detection for this image; NoRecording if there is none."""
        self.calls.append(DetectCall(image, min_confidence))
        response = self.recordings.response(image, DETECT_KEY)
        if response is None:
            what = f"sha256 {image.sha256}" if image.sha256 else "this S3 image (not downloaded)"
            raise NoRecording(
                f"no recorded DetectModerationLabels response for {what} in "
                f"{self.recordings.source}"
            )
        detection = Detection.from_rekognition(response, min_confidence=min_confidence)
        return detection.model_copy(update={"provider": "recorded"})


class RecordedJudge:
    """A Judge that answers from recorded Converse responses, interpreted like BedrockJudge's.

    The tenant's entry in `converse_by_tenant` is used when present, else `converse`. Judgments
    say `provider="recorded"`. Every call is kept in `.calls` (`JudgeCall`).
    """

    def __init__(
        self, recordings: Recordings, *, max_tokens: int = 512, temperature: float = 0.0
    ) -> None:
        self.recordings = recordings
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.calls: list[JudgeCall] = []

    def judge(self, image: PreparedImage, request: JudgeRequest) -> Judgment:
        """The recorded judgment for this image and tenant; JudgeError if there is none."""
        from moderation.judge import build_converse_request, interpret_converse, prompt_sha256

        self.calls.append(JudgeCall(image, request))
        response = self.recordings.converse(image, request.tenant)
        if response is None:
            raise JudgeError(
                f"no recorded Converse response for sha256 {image.sha256} and tenant "
                f"{request.tenant} in {self.recordings.source}"
            )
        fmt, data = image.judge_image()
        kwargs = build_converse_request(
            request, fmt, data, max_tokens=self.max_tokens, temperature=self.temperature
        )
        judgment = interpret_converse(
            response,
            model_id=request.model_id,
            prompt_sha256=prompt_sha256(kwargs),
            latency_ms=None,
            attempts=1,
        )
        return judgment.model_copy(update={"provider": "recorded"})
