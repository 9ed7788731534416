"""The bounds intake works within."""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied by `ImageIntake`; the defaults are the services' own limits.

    `decode_budget_bytes` bounds the decoded pixels all intakes with this value hold at once,
    process-wide (see docs/images.md). `max_animation_pixels` bounds the frames an animation may
    make intake decode when frames are checked (`prepare(..., max_frames=k)`, k > 1): frame
    count times canvas pixels, since frames are chosen by looking at every one. `max_tiles` is
    how many frames one detector image may show, tiled on a contact sheet, when an animation has
    more distinct scenes than `max_frames` (1: never tile; the threshold of a new scene rises
    until the scenes fit instead).
    """

    max_input_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 100_000_000
    min_side: int = 80
    max_side: int = 10_000
    detect_max_bytes: int = 5 * 1024 * 1024
    s3_max_bytes: int = 15 * 1024 * 1024
    judge_max_edge: int = 1568
    judge_max_bytes: int = 3_750_000
    decode_budget_bytes: int = 1024 * 1024 * 1024
    max_animation_pixels: int = 1_000_000_000
    max_tiles: int = 9

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Limits.{spec.name} must be a positive integer, not {value!r}")
        if self.min_side > self.max_side:
            raise ValueError(
                f"Limits.min_side ({self.min_side}) is larger than max_side ({self.max_side})"
            )


DEFAULT_LIMITS = Limits()
