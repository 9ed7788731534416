"""Frames chosen by content: what it costs and what tiling does to each frame (figures only).

    PYTHONPATH=. .venv/bin/python benchmarks/image_frames.py

1. Coverage: a 100-frame GIF (a moving harmless scene) with one distinct frame placed at each of
   the 100 positions; how many positions get that frame to the detector, and the most detector
   images used, with content choice (now) and with the positional rule it replaced
   (round(i * (n - 1) / (k - 1))), for max_frames 4 and 20.
2. Tiling: for common animation sizes and 1..9 frames on one detector image, the sheet's size,
   the share of the sheet's pixels each frame gets, and the frame's linear scale if the detector
   reduces every image to the same working size (Rekognition does not publish it; the column
   gives the scale relative to the frame sent alone, whatever that size is).
3. Cost: intake time for 100-frame GIFs (each frame is decoded once for its signature, and the
   chosen ones once more).
"""

from __future__ import annotations

import io
import math
import statistics
import time

from PIL import Image, ImageDraw

from moderation.detection import select_frames
from moderation.image import ImageIntake
from moderation.image._frames import _GAP

SIDE = 96


def harmless(i: int, size: tuple[int, int] = (SIDE, SIDE)) -> Image.Image:
    im = Image.new("RGB", size, (30, 140, 60))
    x = 4 + (i * 7) % (size[0] - 12)
    ImageDraw.Draw(im).ellipse((x, size[1] // 2 - 3, x + 6, size[1] // 2 + 3), fill=(250,) * 3)
    return im


def distinct(size: tuple[int, int] = (SIDE, SIDE)) -> Image.Image:
    im = Image.new("RGB", size, (235, 20, 25))
    ImageDraw.Draw(im).rectangle((size[0] // 3, size[1] // 3, size[0] // 2, size[1] // 2), "black")
    return im


def gif(frames: list[Image.Image]) -> bytes:
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0)
    return out.getvalue()


def red_in(data: bytes) -> bool:
    im = Image.open(io.BytesIO(data)).convert("RGB")
    colours = im.getcolors(im.width * im.height) or []
    return sum(n for n, (r, g, b) in colours if r > 180 and g < 80 and b < 80) >= 200


def coverage() -> None:
    print("1. one distinct frame in a 100-frame GIF, at each of the 100 positions")
    intake = ImageIntake()
    for k in (4, 20):
        found, most = 0, 0
        for position in range(100):
            frames = [distinct() if i == position else harmless(i) for i in range(100)]
            image = intake.prepare(gif(frames), max_frames=k)
            most = max(most, len(image.frames))
            found += any(red_in(frame.detect_bytes) for frame in image.frames)
        by_position = sum(p in select_frames(100, k) for p in range(100))
        print(
            f"   max_frames {k:2d}: by content {found}/100 positions seen, at most {most} detector"
            f" images; by position {by_position}/100 seen, {len(select_frames(100, k))} images"
        )


def tiling() -> None:
    print("\n2. tiling: what one frame gets on a sheet of m frames")
    print(f"   {'frame':>9} {'m':>2} {'sheet':>11} {'share of pixels':>16} {'linear scale':>13}")
    for size in ((320, 240), (480, 270), (500, 500)):
        for m in (1, 2, 4, 6, 9):
            cols = math.ceil(math.sqrt(m))
            rows = math.ceil(m / cols)
            width = cols * size[0] + (cols - 1) * _GAP
            height = rows * size[1] + (rows - 1) * _GAP
            share = size[0] * size[1] / (width * height)
            # Reduced to a common working size, a frame alone fills it; on the sheet, the sheet's
            # long edge does, so the frame's edge shrinks by the ratio of the long edges.
            scale = max(size) / max(width, height)
            print(
                f"   {size[0]}x{size[1]:<3} {m:2d} {width:>5}x{height:<5} {share:15.0%}"
                f" {scale:12.2f}x"
            )


def cost() -> None:
    print("\n3. intake time, 100-frame GIF, max_frames 4 (median of 5)")
    intake = ImageIntake()
    for size in ((96, 96), (320, 240), (480, 270)):
        data = gif(
            [harmless(i, size) for i in range(50)]
            + [distinct(size)]
            + [harmless(i, size) for i in range(51, 100)]
        )
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            image = intake.prepare(data, max_frames=4)
            samples.append(time.perf_counter() - start)
        first = time.perf_counter()
        intake.prepare(data)
        alone = time.perf_counter() - first
        print(
            f"   {size[0]}x{size[1]}: {statistics.median(samples) * 1000:7.1f} ms"
            f" ({len(image.frames)} images, {sum(len(f.shows) for f in image.frames)} frames"
            f" shown); first frame only: {alone * 1000:5.1f} ms"
        )


def main() -> None:
    coverage()
    tiling()
    cost()


if __name__ == "__main__":
    main()
