"""What the test doubles were asked: one record per call, kept in the double's `.calls` list."""

from __future__ import annotations

from dataclasses import dataclass

from moderation.image import PreparedImage
from moderation.ports import JudgeRequest

__all__ = ["DetectCall", "JudgeCall"]


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
