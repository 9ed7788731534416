"""Frames of an animation, chosen across its whole length and prepared for the detector.

Judging an animation on its first frame alone lets a harmless opening frame carry anything after
it. Intake picks up to `max_frames` frames spread evenly from the first to the last, drops those
whose pixels repeat one already picked, and encodes each one like a converted still.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from moderation.detection import select_frames
from moderation.errors import InvalidImage
from moderation.image._budget import decoded_bytes, shared_budget
from moderation.image._convert import encode_plain, plain_mode
from moderation.image._decode import Inspected, check_dimensions, corrupt
from moderation.image._limits import Limits
from moderation.image._sniff import DetectFormat

__all__ = ["Frame", "check_animation_bound", "collect_frames", "select_frames"]


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame of an animation, ready for the detector.

    `index` is its 0-based number in the animation; `sha256` is that of `detect_bytes`.
    """

    index: int
    detect_bytes: bytes = field(repr=False)
    detect_format: DetectFormat
    sha256: str


def check_animation_bound(info: Inspected, limits: Limits) -> None:
    """Refuse an animation whose frames add up to more pixels than intake will decode.

    Formats decode animations front to back (a frame is drawn over the one before it), so the
    last frame costs every frame's decode, whatever is selected.
    """
    width, height = info.canvas
    check_dimensions(width, height, limits)  # a GIF frame may have grown the canvas
    pixels = info.n_frames * width * height
    if pixels > limits.max_animation_pixels:
        raise InvalidImage(
            f"animation is {info.n_frames} frames of {width}x{height} px ({pixels} pixels),"
            f" over the {limits.max_animation_pixels}-pixel bound for animations"
        )


def collect_frames(
    info: Inspected, indices: list[int], size: tuple[int, int], limits: Limits
) -> list[Frame]:
    """The frames at `indices` (ascending, starting at 0), encoded for the detector at `size`
    (as shown), without those whose pixels repeat a frame already taken.

    Pillow is asked for the selected frames only; it decodes the ones in between internally.
    """
    im = info.image
    # The canvas, in the RGB(A) Pillow switches to after the first frame, and the previous frame
    # it keeps to undo a frame's disposal.
    estimate = 2 * decoded_bytes(info.canvas, "RGBA")
    seen: set[bytes] = set()
    frames: list[Frame] = []
    with shared_budget(limits.decode_budget_bytes).hold(estimate):
        for index in indices:
            try:
                if index:
                    im.seek(index)
                im.load()
            except Exception as exc:
                raise corrupt(info.fmt, exc, max_pixels=limits.max_pixels) from exc
            pixels, alpha = plain_mode(im)
            key = hashlib.sha256(pixels.mode.encode() + b"\0" + pixels.tobytes()).digest()
            if key in seen:
                continue
            seen.add(key)
            fmt, data = encode_plain(
                pixels, info.orientation, size, limits.detect_max_bytes, alpha=alpha
            )
            frames.append(Frame(index, data, fmt, hashlib.sha256(data).hexdigest()))
    return frames
