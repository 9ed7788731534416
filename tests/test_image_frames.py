"""Animated images: frames spread across the animation are prepared for the detector."""

from __future__ import annotations

import dataclasses
import hashlib
import math

import pytest
from images import (
    BLUE,
    GREEN,
    RED,
    animation,
    decode,
    encode,
    repeated_gif_frame,
    solid,
    spy_decodes,
)
from PIL import GifImagePlugin, Image

from moderation.errors import InvalidImage
from moderation.image import Frame, ImageIntake, Limits, ObjectHead, PreparedImage

# Frame 0 is harmless; frames 3-5 stand for what the animation hides further on.
GREYS = [(100, 100, 100), (130, 130, 130), (160, 160, 160)]
COLORS = [*GREYS, RED, GREEN, BLUE]
SIX = {fmt: animation(fmt, COLORS) for fmt in ("gif", "webp", "png")}


def near(actual, expected, tolerance=12):
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def colour(frame: Frame):
    return decode(frame.detect_bytes).convert("RGB").getpixel((50, 50))


def tile_colours(frame: Frame, side: int = 100) -> list[tuple[int, int, int]]:
    """The colour at the centre of each tile of a detector image, in reading order (a frame
    alone is one tile; a sheet is a grid as square as can be, 8 px between tiles)."""
    im = decode(frame.detect_bytes).convert("RGB")
    cols = math.ceil(math.sqrt(len(frame.shows)))
    return [
        im.getpixel(((p % cols) * (side + 8) + side // 2, (p // cols) * (side + 8) + side // 2))
        for p in range(len(frame.shows))
    ]


def shown_colours(frame: Frame) -> set[tuple[int, int, int]]:
    """Which of COLORS the tiles of a detector image show."""
    return {c for c in COLORS for pixel in tile_colours(frame) if near(pixel, c)}


@pytest.mark.parametrize("fmt", ["gif", "webp", "png"])
@pytest.mark.parametrize(
    ("max_frames", "shows"),
    [
        (1, []),
        (2, [(0, 1, 2), (3, 4, 5)]),
        (3, [(0, 1), (2, 3), (4, 5)]),
        (6, [(0,), (1,), (2,), (3,), (4,), (5,)]),
        (10, [(0,), (1,), (2,), (3,), (4,), (5,)]),
    ],
)
def test_every_distinct_frame_reaches_the_detector(fmt, max_frames, shows):
    image = ImageIntake().prepare(SIX[fmt], max_frames=max_frames)
    assert image.n_frames == 6
    assert [frame.shows for frame in image.frames] == shows
    for frame in image.frames:
        assert frame.index == frame.shows[0]
        tiles = tile_colours(frame)
        assert all(near(tile, COLORS[i]) for tile, i in zip(tiles, frame.shows, strict=True))
        assert frame.sha256 == hashlib.sha256(frame.detect_bytes).hexdigest()
        assert frame.detect_format == "jpeg"  # opaque frames
    # The image itself is still the first frame, alone, as before.
    assert decode(image.detect_bytes).size == (100, 100)
    assert near(decode(image.detect_bytes).convert("RGB").getpixel((50, 50)), GREYS[0])


def test_explicit_later_frames_reach_the_detector():
    image = ImageIntake().prepare(SIX["gif"], max_frames=4)
    assert len(image.frames) == 4
    assert [RED in shown_colours(frame) for frame in image.frames].count(True) == 1


def test_the_first_frame_reuses_the_images_own_conversion():
    image = ImageIntake().prepare(SIX["webp"], max_frames=6)
    first = image.frames[0]
    assert (first.detect_bytes, first.detect_format) == (image.detect_bytes, image.detect_format)


@pytest.mark.parametrize(
    ("data", "indices"),
    [
        (repeated_gif_frame(GREEN, 8), [0]),
        (animation("gif", [GREEN, BLUE] * 4), [0, 1]),
        (animation("webp", [GREEN, BLUE] * 4, lossless=True), [0, 1]),
        (animation("png", [GREEN, BLUE] * 4), [0, 1]),
    ],
    ids=["all-identical", "gif-alternating", "webp-alternating", "apng-alternating"],
)
def test_frames_identical_to_one_already_taken_are_skipped(data, indices):
    image = ImageIntake().prepare(data, max_frames=8)
    assert image.n_frames == 8
    assert [frame.index for frame in image.frames] == indices
    assert [near(colour(frame), GREEN) for frame in image.frames] == [True, False][: len(indices)]


@pytest.mark.parametrize(
    "data",
    [solid("jpeg"), solid("png"), solid("webp"), solid("gif"), repeated_gif_frame(RED, 1)],
    ids=["jpeg", "png", "webp", "gif", "one-frame-gif"],
)
def test_still_images_have_no_frames(data):
    image = ImageIntake().prepare(data, max_frames=5)
    assert (image.frames, image.n_frames) == ((), 1)


def test_max_frames_one_keeps_todays_behaviour_but_counts_the_frames():
    image = ImageIntake().prepare(SIX["gif"])
    assert (image.frames, image.n_frames) == ((), 6)


@pytest.mark.parametrize("max_frames", [0, -1, True, 1.5])
def test_max_frames_must_be_a_positive_integer(max_frames):
    with pytest.raises((ValueError, TypeError), match="max_frames"):
        ImageIntake().prepare(SIX["gif"], max_frames=max_frames)


def test_transparent_frames_stay_png():
    frames = [Image.new("RGBA", (100, 100), (255, 0, 0, 255)) for _ in range(3)]
    frames[2] = Image.new("RGBA", (100, 100), (0, 0, 255, 0))
    frames[1].paste((0, 255, 0, 255), (0, 0, 50, 100))
    data = encode(frames[0], "webp", save_all=True, append_images=frames[1:], lossless=True)
    image = ImageIntake().prepare(data, max_frames=3)
    assert [(f.index, f.detect_format) for f in image.frames] == [
        (0, "jpeg"),
        (1, "jpeg"),
        (2, "png"),
    ]
    assert decode(image.frames[2].detect_bytes).getpixel((5, 5))[3] == 0


def test_frame_image_is_the_same_image_with_that_frames_pixels():
    image = ImageIntake().prepare(SIX["gif"], max_frames=6)
    last = image.frames[-1]
    assert last.index == 5
    framed = image.frame_image(last)
    assert isinstance(framed, PreparedImage)
    assert (framed.sha256, framed.size, framed.format) == (image.sha256, image.size, "gif")
    assert (framed.width, framed.height, framed.s3, framed.n_frames) == (100, 100, None, 6)
    assert (framed.detect_bytes, framed.detect_format) == (last.detect_bytes, last.detect_format)
    assert framed.frames == ()
    assert framed.s3_object() is None
    # The judge sees that frame too.
    _, judged = framed.judge_image()
    assert near(decode(judged).convert("RGB").getpixel((50, 50)), BLUE)


def test_frame_image_refuses_a_frame_of_another_image():
    image = ImageIntake().prepare(SIX["gif"], max_frames=3)
    other = ImageIntake().prepare(animation("gif", [RED, GREEN, BLUE]), max_frames=3)
    with pytest.raises(ValueError, match="frame"):
        image.frame_image(other.frames[1])


def test_frame_is_small_frozen_and_hides_its_bytes():
    image = ImageIntake().prepare(SIX["gif"], max_frames=2)
    frame = image.frames[1]
    assert dataclasses.is_dataclass(frame)
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.index = 3  # type: ignore[misc]
    assert "detect_bytes" not in repr(frame)
    assert len(repr(image)) < 1200


def test_frames_survive_pickling_and_compare_equal():
    import pickle

    image = ImageIntake().prepare(SIX["webp"], max_frames=3)
    copy = pickle.loads(pickle.dumps(image))
    assert copy == image
    assert copy.frame_image(copy.frames[1]).detect_bytes == image.frames[1].detect_bytes


def test_a_long_animation_is_looked_at_frame_by_frame_within_max_frames_images(monkeypatch):
    # 300 frames, each a little different from the one before: every frame is looked at once
    # for its signature, and only the chosen ones once more; at most 4 images of at most 9 tiles.
    colours = [(i % 250, 255 - i % 250, (7 * i) % 256) for i in range(300)]
    data = animation("gif", colours, size=(80, 80))
    sought = []
    real = GifImagePlugin.GifImageFile.seek

    def seek(self, frame):
        sought.append(frame)
        return real(self, frame)

    monkeypatch.setattr(GifImagePlugin.GifImageFile, "seek", seek)
    image = ImageIntake().prepare(data, max_frames=4)
    assert image.n_frames == 300
    assert 1 <= len(image.frames) <= 4
    assert all(1 <= len(frame.shows) <= 9 for frame in image.frames)
    chosen = [i for frame in image.frames for i in frame.shows]
    assert chosen == sorted(chosen) and chosen[0] == 0
    first_pass = list(range(1, 300))
    assert [f for f in sought if f][:299] == first_pass
    assert len([f for f in sought if f]) <= 299 + len(chosen)


def test_animation_over_the_frame_pixel_bound_is_refused_when_frames_are_checked(monkeypatch):
    data = animation("gif", [(i, 0, 0) for i in range(40)], size=(100, 100))
    limits = Limits(max_animation_pixels=300_000)
    decodes = spy_decodes(monkeypatch)
    with pytest.raises(InvalidImage) as caught:
        ImageIntake(limits=limits).prepare(data, max_frames=3)
    assert caught.value.reason == (
        "animation is 40 frames of 100x100 px (400000 pixels),"
        " over the 300000-pixel bound for animations"
    )
    assert decodes == []
    # Judged on its first frame alone (max_frames=1), it is accepted as before.
    assert ImageIntake(limits=limits).prepare(data).n_frames == 40


def test_s3_apng_is_downloaded_when_frames_are_asked_for():
    class MemoryS3:
        def __init__(self, data):
            self.data = data
            self.ranges = []

        def head(self, bucket, key, version_id):
            return ObjectHead(size=len(self.data), etag="e")

        def read(self, location, *, limit, byte_range=None):
            self.ranges.append(byte_range)
            return self.data[:65536] if byte_range else self.data[:limit]

    s3 = MemoryS3(animation("png", COLORS, size=(400, 300)))
    referenced = ImageIntake(s3=s3).prepare("s3://bkt/a.png")
    assert referenced.s3_object() is not None
    assert (referenced.frames, referenced.n_frames) == ((), 6)
    image = ImageIntake(s3=s3).prepare("s3://bkt/a.png", max_frames=2)
    assert [frame.shows for frame in image.frames] == [(0, 1, 2), (3, 4, 5)]
    assert image.detect_bytes is not None


def gif_descriptors(data: bytes) -> list[int]:
    """Offsets of the image descriptors of a well-formed GIF."""
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    found = []
    while data[pos] != 0x3B:
        if data[pos] == 0x2C:
            found.append(pos)
            local = data[pos + 9]
            pos += 11 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
        else:
            pos += 2
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    return found


def test_a_gif_frame_that_grows_the_canvas_past_the_pixel_bound_is_refused(monkeypatch):
    # The screen is 100x100, but the last frame says it is 12,000 px square: Pillow would grow
    # its canvas to hold it, a 576 MB allocation hidden behind a small header.
    data = bytearray(animation("gif", [RED, GREEN, BLUE]))
    last = gif_descriptors(bytes(data))[-1]
    data[last + 5 : last + 9] = (12_000).to_bytes(2, "little") * 2
    decodes = spy_decodes(monkeypatch)
    with pytest.raises(InvalidImage) as caught:
        ImageIntake().prepare(bytes(data), max_frames=3)
    assert caught.value.reason == (
        "image is 12000x12000 px (144000000 pixels), over the 100000000-pixel bound"
    )
    assert decodes == []


def test_gif_frames_are_counted_up_to_a_bound(monkeypatch):
    import moderation.image._decode as decode_module

    monkeypatch.setattr(decode_module, "MAX_GIF_FRAMES", 10)
    assert ImageIntake().prepare(repeated_gif_frame(RED, 10)).n_frames == 10
    with pytest.raises(InvalidImage) as caught:
        ImageIntake().prepare(repeated_gif_frame(RED, 11))
    assert caught.value.reason == "animation has more than 10 frames"
