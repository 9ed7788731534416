"""Animated images and multi-page TIFFs: what the detector sees is chosen by content.

One explicit frame anywhere in an animation must reach the detector, within the same number of
detector calls as the default policy allows (`max_frames: 4`)."""

from __future__ import annotations

import io
from pathlib import Path

import builders
import pytest
from images import encode
from PIL import Image, ImageDraw

from moderation import Engine, Outcome
from moderation.errors import InvalidImage
from moderation.image import ImageIntake, Limits
from moderation.image._frames import choose_scenes, sheets, signature
from moderation.policy._model import DEFAULT_MAX_FRAMES

N = 100
SIDE = 96
EXPLICIT_RED = (235, 20, 25)
EXPLICIT = builders.detection(("Explicit Nudity", "Explicit", 97.0), ("Explicit", "", 97.0))
CLEAN = builders.detection()


# One palette for every frame (green, white, the explicit red, dark): the GIF writer then has
# nothing to quantize, which keeps building 100 animations quick.
PALETTE = [30, 140, 60, 250, 250, 250, *EXPLICIT_RED, 40, 10, 10]
GREEN_I, WHITE_I, RED_I, DARK_I = range(4)


def paletted() -> Image.Image:
    im = Image.new("P", (SIDE, SIDE), GREEN_I)
    im.putpalette(PALETTE)
    return im


def harmless(i: int) -> Image.Image:
    """A green scene with a small white dot that moves: every frame differs a little."""
    im = paletted()
    x = 4 + (i * 7) % (SIDE - 12)
    ImageDraw.Draw(im).ellipse((x, 40, x + 6, 46), fill=WHITE_I)
    return im


def explicit() -> Image.Image:
    """What stands for an explicit picture here: mostly red, with a dark shape."""
    im = paletted()
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 0, SIDE, SIDE), fill=RED_I)
    draw.rectangle((30, 30, 60, 70), fill=DARK_I)
    return im


HARMLESS = [harmless(i) for i in range(N)]


def gif_with_explicit_frame_at(position: int) -> bytes:
    frames = [explicit() if i == position else HARMLESS[i] for i in range(N)]
    return encode(frames[0], "gif", save_all=True, append_images=frames[1:], duration=40, loop=0)


def red_pixels(data: bytes) -> int:
    """Pixels near the explicit frame's red in an image the detector was given."""
    im = Image.open(io.BytesIO(data)).convert("RGB")
    return sum(
        count
        for count, (r, g, b) in im.getcolors(im.width * im.height) or []
        if r > 180 and g < 80 and b < 80
    )


class RecordingDetector:
    """Explicit when what it is given holds the explicit frame's red; records every call."""

    def __init__(self) -> None:
        self.given: list[bytes] = []

    def detect(self, image, *, min_confidence):
        assert image.detect_bytes is not None
        self.given.append(image.detect_bytes)
        return EXPLICIT if red_pixels(image.detect_bytes) >= 200 else CLEAN


def engine(detector: RecordingDetector) -> Engine:
    """An engine on one default policy (no judge named: the default one) seeing `detector`."""
    policy = "min_confidence: 40\ndefault: {reject: 90, escalate: 60}\n"
    return builders.engine(builders.store(policy), detector, real=("timer", "new_id"))


@pytest.mark.parametrize("position", range(N))
def test_one_explicit_frame_reaches_the_detector_at_every_position(position):
    # GIVEN a 100-frame GIF of a harmless moving scene with one explicit frame at `position`
    data = gif_with_explicit_frame_at(position)
    detector = RecordingDetector()
    # WHEN it is moderated under the default policy (max_frames: 4)
    decision = engine(detector).moderate(data)
    # THEN the explicit frame's content reached the detector, within today's number of calls
    assert DEFAULT_MAX_FRAMES == 4
    assert 1 <= len(detector.given) <= DEFAULT_MAX_FRAMES
    assert any(red_pixels(given) >= 200 for given in detector.given), position
    assert decision.outcome == Outcome.REJECTED
    assert decision.image.n_frames == N


def test_positions_alone_would_have_missed_it():
    # The positions today's default would look at (round(i * 99 / 3)): 0, 33, 66, 99.
    image = ImageIntake().prepare(gif_with_explicit_frame_at(50), max_frames=4)
    shown = {index for frame in image.frames for index in frame.shows}
    assert 50 in shown
    assert not {0, 33, 66, 99} >= {50}


def test_every_distinct_scene_is_shown_on_sheets_when_there_are_more_than_max_frames():
    # GIVEN ten clearly different scenes, each held for five frames
    colours = [(25 * i, 255 - 25 * i, (90 * i) % 256) for i in range(10)]
    frames = [Image.new("RGB", (SIDE, SIDE), c) for c in colours for _ in range(5)]
    for k, im in enumerate(frames):  # a little noise, so the GIF writer keeps every frame
        im.putpixel((k % SIDE, 0), (k * 5 % 256, 0, 0))
    data = encode(frames[0], "gif", save_all=True, append_images=frames[1:], duration=40, loop=0)
    # WHEN four detector images are allowed
    image = ImageIntake().prepare(data, max_frames=4)
    # THEN the ten scenes are shown on four sheets (3, 3, 2, 2 tiles), each scene once
    assert [frame.shows for frame in image.frames] == [
        (0, 5, 10),
        (15, 20, 25),
        (30, 35),
        (40, 45),
    ]
    for frame in image.frames:
        sheet = Image.open(io.BytesIO(frame.detect_bytes))
        cols = 2  # 2 or 3 tiles: a 2-column grid
        rows = (len(frame.shows) + 1) // 2
        assert sheet.size == (cols * SIDE + 8, rows * SIDE + 8 * (rows - 1))
    # and the image itself (what a still gets, the judge's start) is the first frame alone
    assert Image.open(io.BytesIO(image.detect_bytes)).size == (SIDE, SIDE)


def test_without_tiling_the_scenes_most_unlike_their_neighbours_are_kept():
    # max_tiles=1 turns tiling off: the scene threshold rises until the scenes fit max_frames,
    # and a frame unlike everything else is still among them.
    frames = [harmless(i) for i in range(N)]
    frames[61] = explicit()
    data = encode(frames[0], "gif", save_all=True, append_images=frames[1:], duration=40, loop=0)
    image = ImageIntake(limits=Limits(max_tiles=1)).prepare(data, max_frames=2)
    assert [frame.shows for frame in image.frames] == [(0,), (61,)]


def test_choose_scenes_and_sheets_are_plain_functions():
    colours = ((0, 0, 0), (200, 0, 0), (0, 0, 200))
    a, b, c = (Image.new("RGB", (16, 16), colour) for colour in colours)
    signatures = [signature(im) for im in (a, a, b, a, c, c, a)]
    assert choose_scenes(signatures, budget=8) == [0, 2, 4]  # a, b, c: each scene once
    assert choose_scenes(signatures, budget=1) == [0]
    assert sheets([0, 2, 4], 4) == [(0,), (2,), (4,)]
    assert sheets([0, 2, 4, 6, 8], 2) == [(0, 2, 4), (6, 8)]


# -- multi-page TIFF: pages are frames ---------------------------------------------------------


def tiff_pages(colours) -> bytes:
    pages = [Image.new("RGB", (120, 90), colour) for colour in colours]
    return encode(pages[0], "tiff", save_all=True, append_images=pages[1:])


def test_pages_of_a_tiff_are_frames():
    # GIVEN a three-page TIFF whose first page is harmless
    data = tiff_pages([(30, 140, 60), (30, 140, 60), EXPLICIT_RED])
    image = ImageIntake().prepare(data, max_frames=4)
    # THEN it has three frames, and the explicit page reaches the detector
    assert image.n_frames == 3
    assert [frame.shows for frame in image.frames] == [(0,), (2,)]
    assert red_pixels(image.frames[1].detect_bytes) == 120 * 90
    # and under the default policy the engine rejects it
    detector = RecordingDetector()
    assert engine(detector).moderate(data).outcome == Outcome.REJECTED
    assert len(detector.given) == 2


def test_tiff_pages_of_different_sizes_keep_their_own():
    first = Image.new("RGB", (200, 100), (30, 140, 60))
    second = Image.new("RGB", (90, 180), EXPLICIT_RED)
    out = io.BytesIO()
    first.save(out, "TIFF", save_all=True, append_images=[second])
    image = ImageIntake().prepare(out.getvalue(), max_frames=4)
    assert image.n_frames == 2
    sizes = [Image.open(io.BytesIO(f.detect_bytes)).size for f in image.frames]
    assert sizes == [(200, 100), (90, 180)]


def test_a_tiff_page_over_the_pixel_bound_is_refused_before_it_is_decoded():
    # GIVEN a small first page and a second one over the pixel bound
    pages = [Image.new("RGB", (100, 90), (30, 140, 60)), Image.new("RGB", (300, 300), "red")]
    out = io.BytesIO()
    pages[0].save(out, "TIFF", save_all=True, append_images=pages[1:])
    limits = Limits(max_pixels=10_000)
    # THEN the first page alone passes, and looking at every page refuses it, naming the page
    assert ImageIntake(limits=limits).prepare(out.getvalue()).n_frames == 2
    with pytest.raises(InvalidImage) as caught:
        ImageIntake(limits=limits).prepare(out.getvalue(), max_frames=4)
    assert caught.value.reason == ("image is 300x300 px (90000 pixels), over the 10000-pixel bound")


def test_pillows_multipage_tiff_is_judged_on_every_page():
    # Pillow's Tests/images/multipage.tiff: three 10x10 pages, green, red and blue
    path = Path(__file__).parent / "fixtures" / "images" / "corpora" / "pillow" / "multipage.tiff"
    image = ImageIntake(limits=Limits(min_side=1)).prepare(path, max_frames=4)
    assert image.n_frames == 3
    assert [frame.shows for frame in image.frames] == [(0,), (1,), (2,)]
    centres = [
        Image.open(io.BytesIO(f.detect_bytes)).convert("RGB").getpixel((5, 5)) for f in image.frames
    ]
    assert [max(range(3), key=lambda c: pixel[c]) for pixel in centres] == [1, 0, 2]


def test_a_later_page_smaller_than_the_minimum_is_padded_not_sent_too_small():
    pages = [Image.new("RGB", (120, 90), (30, 140, 60)), Image.new("RGB", (40, 30), EXPLICIT_RED)]
    out = io.BytesIO()
    pages[0].save(out, "TIFF", save_all=True, append_images=pages[1:])
    image = ImageIntake().prepare(out.getvalue(), max_frames=4)
    second = Image.open(io.BytesIO(image.frames[1].detect_bytes))
    assert min(second.size) >= 80
    assert red_pixels(image.frames[1].detect_bytes) >= 40 * 30 * 0.9


def test_over_budget_only_the_excess_merges_and_the_outlier_stays():
    def solid_signature(colour):
        return signature(Image.new("RGB", (16, 16), colour))

    # 40 clearly different scenes, 36 allowed: 36 remain (not one), frame 0 among them
    distinct = [
        solid_signature(((i * 97) % 256, (i * 53) % 256, (i * 29) % 256)) for i in range(40)
    ]
    chosen = choose_scenes(distinct, budget=36)
    assert len(chosen) == 36 and chosen[0] == 0
    # a slow fade (every step a new scene at the base threshold) with one red frame: 4 allowed,
    # the red one is among them
    fade = [solid_signature((40 + 4 * i, 40 + 4 * i, 40 + 4 * i)) for i in range(50)]
    fade[25] = solid_signature((230, 10, 10))
    assert 25 in choose_scenes(fade, budget=4)
