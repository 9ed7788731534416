"""Frames of an animation (or pages of a TIFF), chosen by content and prepared for the detector.

Judging an animation on its first frame alone lets a harmless opening frame carry anything after
it; judging it on frames picked by position lets one frame hide between the picks. Intake looks
at every frame instead: each gets a signature (its picture averaged down to 16x16), and a frame
starts a new scene when it differs from the scene it would join by more than a threshold in some
cell. A scene seen before (the same signature, or a close one) is not sent twice. A frame unlike
its neighbours is always a scene of its own.

The detector is still called at most `max_frames` times. When there are more scenes than that,
several scenes share one detector image, tiled on a contact sheet of up to `Limits.max_tiles`
frames; when there are more than `max_frames * max_tiles`, the scenes that change the picture
least merge into the scene before them until the rest fit. docs/images.md says what tiling costs.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from PIL import Image, ImageChops, ImageStat

from moderation.errors import InvalidImage
from moderation.image._budget import decoded_bytes, shared_budget
from moderation.image._convert import (
    encode_plain,
    encode_within,
    fit,
    plain_mode,
    scaled_size,
    stored_size,
    upright,
)
from moderation.image._decode import Inspected, check_dimensions, corrupt
from moderation.image._limits import Limits
from moderation.image._sniff import DetectFormat

__all__ = [
    "SCENE_THRESHOLD",
    "SHEET_MAX_EDGE",
    "Frame",
    "check_animation_bound",
    "choose_scenes",
    "collect_frames",
    "sheets",
    "signature",
]

# Two signatures (16x16 RGB, box-averaged) whose largest cell difference is above this (0-255)
# show different scenes. A change over a sixteenth of the picture's width and height is enough;
# the dithering noise of re-encoded frames stays well below it.
SCENE_THRESHOLD = 24
_SIGNATURE_SIZE = (16, 16)
# Beyond this many scenes a new scene is compared with the one before it and with exact repeats
# only, not with every scene kept (that comparison is quadratic).
_PAIRWISE = 128
# A contact sheet's long edge: larger would only be shrunk by the detector, and costs memory.
SHEET_MAX_EDGE = 4096
_GAP = 8  # pixels of mid grey between tiles, so that no object seems to span two frames
_GREY = (128, 128, 128)


@dataclass(frozen=True, slots=True)
class Frame:
    """One image for the detector: a frame of an animation, or a sheet of several tiled.

    `index` is the 0-based number of its (first) frame in the animation; `shows` lists every
    frame it holds, in reading order (left to right, top to bottom) when it is a sheet. `sha256`
    is that of `detect_bytes`.
    """

    index: int
    detect_bytes: bytes = field(repr=False)
    detect_format: DetectFormat
    sha256: str
    shows: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.shows:
            object.__setattr__(self, "shows", (self.index,))


def check_animation_bound(info: Inspected, limits: Limits) -> None:
    """Refuse an animation whose frames add up to more pixels than intake will decode.

    Formats decode animations front to back (a frame is drawn over the one before it), and
    choosing by content looks at every frame, so each frame's decode is paid for.
    """
    width, height = info.canvas
    _check_pixels(width, height, limits)  # a GIF frame may have grown the canvas
    pixels = info.n_frames * width * height
    if pixels > limits.max_animation_pixels:
        raise InvalidImage(
            f"animation is {info.n_frames} frames of {width}x{height} px ({pixels} pixels),"
            f" over the {limits.max_animation_pixels}-pixel bound for animations"
        )


def signature(im: Image.Image) -> Image.Image:
    """The frame averaged down to 16x16 RGB, transparency shown over mid grey."""
    plain, _ = plain_mode(im)
    # Reduce first, convert the 256 pixels left: a full-size RGBA copy would cost more than
    # the whole signature.
    small = plain.resize(_SIGNATURE_SIZE, Image.Resampling.BOX).convert("RGBA")
    background = Image.new("RGBA", _SIGNATURE_SIZE, (*_GREY, 255))
    return Image.alpha_composite(background, small).convert("RGB")


def _distance(a: Image.Image, b: Image.Image) -> int:
    """The largest difference of any cell and channel of two signatures (0-255)."""
    extrema = ImageChops.difference(a, b).getextrema()
    return max(int(high) for _, high in cast("tuple[tuple[float, float], ...]", extrema))


def choose_scenes(
    signatures: Sequence[Image.Image], budget: int, threshold: int = SCENE_THRESHOLD
) -> list[int]:
    """The frames (ascending indices, frame 0 first) that stand for every scene, at most `budget`.

    A frame joins the scene before it while it stays within `threshold` of that scene's first
    frame; a frame within `threshold` of a scene already kept is that scene again. With more
    scenes than `budget`, those that change the picture least from the scene kept before them
    (by the mean difference of their signatures) merge into it, until the rest fit: a frame unlike
    its neighbours is the last to go, and frame 0 always stays.
    """
    chosen = _new_scenes(signatures, list(range(len(signatures))), threshold)
    excess = len(chosen) - budget
    if excess <= 0:
        return chosen
    change = [
        (_mean_difference(signatures[before], signatures[after]), position)
        for position, (before, after) in enumerate(itertools.pairwise(chosen), start=1)
    ]
    merged = {position for _, position in sorted(change)[:excess]}
    return [index for position, index in enumerate(chosen) if position not in merged]


def _mean_difference(a: Image.Image, b: Image.Image) -> float:
    """How much two signatures differ overall (0-255), averaged over cells and channels."""
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


def _new_scenes(
    signatures: Sequence[Image.Image], candidates: list[int], threshold: int
) -> list[int]:
    kept: list[int] = []
    exact: set[bytes] = set()
    for index in candidates:
        current = signatures[index]
        key = current.tobytes()
        if key in exact:
            continue
        if kept and _distance(signatures[kept[-1]], current) <= threshold:
            continue  # the scene goes on
        if len(kept) <= _PAIRWISE and any(
            _distance(signatures[seen], current) <= threshold for seen in kept
        ):
            continue  # a scene already kept, shown again
        exact.add(key)
        kept.append(index)
    return kept


def sheets(scenes: Sequence[int], max_frames: int) -> list[tuple[int, ...]]:
    """The scenes shared out over at most `max_frames` detector images, in order: one each while
    they fit, else consecutive groups as equal as can be (the earlier groups one larger)."""
    if len(scenes) <= max_frames:
        return [(index,) for index in scenes]
    per, extra = divmod(len(scenes), max_frames)
    groups: list[tuple[int, ...]] = []
    start = 0
    for group in range(max_frames):
        end = start + per + (1 if group < extra else 0)
        groups.append(tuple(scenes[start:end]))
        start = end
    return groups


def collect_frames(
    info: Inspected, max_frames: int, limits: Limits
) -> tuple[list[Frame], tuple[DetectFormat, bytes]]:
    """Up to `max_frames` detector images that show every scene of the animation, and its first
    frame alone, converted as a still would be.

    Every frame is decoded twice at most: once for its signature, once more (only up to the
    last frame chosen) for the images sent.
    """
    budget = max_frames * limits.max_tiles
    # The canvas, in the RGB(A) Pillow switches to after the first frame, the previous frame it
    # keeps to undo a frame's disposal, and a contact sheet (max_tiles canvases at most).
    width, height = info.canvas
    sheet = min(SHEET_MAX_EDGE * SHEET_MAX_EDGE, limits.max_tiles * width * height)
    estimate = 2 * decoded_bytes(info.canvas, "RGBA") + decoded_bytes((sheet, 1), "RGB")
    with shared_budget(limits.decode_budget_bytes).hold(estimate):
        signatures = [signature(_frame(info, index, limits)) for index in range(info.n_frames)]
        groups = sheets(choose_scenes(signatures, budget), max_frames)
        return _render(info, groups, limits)


def _render(
    info: Inspected, groups: list[tuple[int, ...]], limits: Limits
) -> tuple[list[Frame], tuple[DetectFormat, bytes]]:
    """Encode each group: a frame alone, or its frames tiled on a sheet."""
    frames: list[Frame] = []
    first: tuple[DetectFormat, bytes] | None = None
    for group in groups:
        tiles: list[Image.Image] = []
        for index in group:
            im = _frame(info, index, limits)
            pixels, alpha = plain_mode(im)
            orientation = info.orientation
            size = scaled_size(*stored_size(pixels.size, orientation), limits.max_side)
            small = min(size) < limits.min_side  # a later page may be smaller than the first
            if index == 0 or (len(group) == 1 and not small):
                alone = encode_plain(
                    pixels, orientation, size, limits.detect_max_bytes, alpha=alpha
                )
                first = alone if index == 0 else first
                if len(group) == 1 and not small:
                    frames.append(_frame_of(group, *alone))
                    continue
            tile = upright(fit(pixels, stored_size(size, orientation)), orientation)
            # The decoder's own image changes with the next seek: keep a copy of this frame.
            tiles.append(tile.copy() if tile is im else tile)
        if tiles:  # several frames, or one too small to be sent alone: a sheet pads it
            sheet = _contact_sheet(tiles, limits)
            frames.append(
                _frame_of(group, *encode_within(sheet, limits.detect_max_bytes, alpha=False))
            )
    assert first is not None  # frame 0 is always a scene of its own
    return frames, first


def _frame_of(group: tuple[int, ...], fmt: DetectFormat, data: bytes) -> Frame:
    return Frame(group[0], data, fmt, hashlib.sha256(data).hexdigest(), shows=group)


def _frame(info: Inspected, index: int, limits: Limits) -> Image.Image:
    """Frame `index` of the animation, decoded (Pillow draws the frames in between itself)."""
    im = info.image
    try:
        if im.tell() != index:
            im.seek(index)
        _check_pixels(*im.size, limits)  # a TIFF page has its own size, read from its header
        im.load()
    except InvalidImage:
        raise
    except Exception as exc:
        raise corrupt(info.fmt, exc, max_pixels=limits.max_pixels) from exc
    return im


def _check_pixels(width: int, height: int, limits: Limits) -> None:
    if width * height > limits.max_pixels:
        check_dimensions(width, height, limits)


def _contact_sheet(tiles: list[Image.Image], limits: Limits) -> Image.Image:
    """The tiles on a grid (as square as can be), mid grey between and around them; each tile
    keeps its size unless the sheet would pass SHEET_MAX_EDGE, then all shrink alike."""
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    cell_w = max(t.width for t in tiles)
    cell_h = max(t.height for t in tiles)
    width = cols * cell_w + (cols - 1) * _GAP
    height = rows * cell_h + (rows - 1) * _GAP
    scale = min(1.0, SHEET_MAX_EDGE / max(width, height))
    if scale < 1.0:
        cell_w, cell_h = max(1, int(cell_w * scale)), max(1, int(cell_h * scale))
        width = cols * cell_w + (cols - 1) * _GAP
        height = rows * cell_h + (rows - 1) * _GAP
    sheet = Image.new("RGB", (max(width, limits.min_side), max(height, limits.min_side)), _GREY)
    for position, tile in enumerate(tiles):
        if scale < 1.0:
            tile = fit(tile, scaled_size(tile.width, tile.height, max(cell_w, cell_h)))
        rgba = tile.convert("RGBA")
        x = (position % cols) * (cell_w + _GAP) + (cell_w - rgba.width) // 2
        y = (position // cols) * (cell_h + _GAP) + (cell_h - rgba.height) // 2
        sheet.paste(rgba, (x, y), rgba)
    return sheet
