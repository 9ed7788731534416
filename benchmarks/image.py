"""Image intake benchmarks: figures to read, never assertions.

    .venv/bin/python benchmarks/image.py [--walk]

- cost per decision: intake of a 100 KB photo-like JPEG, and Engine.moderate with an instant
  detector, beside a full Pillow decode of the same file (what intake used to do on every image)
- judge image for a 12-megapixel JPEG: time and peak memory, now (one reduced decode) and the
  previous way (full decode, then resample from full resolution)
- intake of a 10,000 x 10,000 PNG: peak memory without a decode, and with one
- eight concurrent conversions of large images, without and with the decode budget
- the JPEG structure walk (`jpeg_end`, alone with `--walk`), its entropy-coded data read three
  ways: memchr steps from one 0xFF to the next, the compiled pattern, and as shipped (memchr, then
  the pattern once 0xFF bytes are dense); on overhead.py's photo and a smooth photo-like JPEG
  (0xFF bytes sparse), a detailed one (as dense as in camera photos), and every JPEG over 30 KB in
  tests/fixtures and, when $MODERATION_CORPORA names the real-world corpora, in them

Memory is the growth of the process's peak resident set during the measured call, in a fresh
subprocess per case, after the input is read and every module imported: the peak (VmHWM) is
reset to the current resident set (/proc/self/clear_refs) just before the call and read after it.
That counts Pillow's C allocations, which tracemalloc does not see, and it is a true peak, not a
sample. `ru_maxrss` alone would not do: Linux carries the parent's peak across fork and exec,
so a child of this (large) process would report the parent's. Figures include allocator slack:
read them as +/- a few MiB.
"""

from __future__ import annotations

import functools
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from corpora import ENV as CORPORA_ENV
from corpora import corpora
from overhead import photo_jpeg as overhead_photo
from PIL import Image, ImageFilter, ImageOps

from moderation import Detection, Engine, PolicyStore
from moderation.audit import InMemoryAuditLog
from moderation.image import ImageIntake, Limits, PreparedImage, _structure
from moderation.image._structure import StructureError, _scan_end, jpeg_end

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


def p50(fn: Callable[[], object], *, n: int) -> float:
    """Median seconds per call, after one warm-up call."""
    fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def p50_interleaved(fns: list[Callable[[], object]], *, n: int) -> list[float]:
    """Median seconds per call of each function, called in turn so that drift in CPU speed
    during the run affects them all alike."""
    for fn in fns:
        fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(n):
        for fn, out in zip(fns, samples, strict=True):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return [statistics.median(out) for out in samples]


def row(name: str, value: str) -> None:
    print(f"  {name:<58} {value}")


def photo(size: tuple[int, int], max_bytes: int, blur: float = 1.2) -> bytes:
    """A detailed, noisy photo-like JPEG (gradient plus blurred grain) just under `max_bytes`."""
    base = Image.linear_gradient("L").resize(size).convert("RGB")
    grain = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
    im = Image.blend(base, grain.filter(ImageFilter.GaussianBlur(blur)), 0.6)
    data = b""
    for quality in range(95, 5, -5):
        buffer = io.BytesIO()
        im.save(buffer, "JPEG", quality=quality)
        data = buffer.getvalue()
        if len(data) <= max_bytes:
            break
    return data


def pattern_png(width: int, height: int, exif_orientation: int | None = None) -> bytes:
    """An RGB PNG of any size with some structure in it, compressed row by row: building a
    10,000 x 10,000 one this way never holds its 300 MB of pixels."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload).to_bytes(4, "big")
        return len(payload).to_bytes(4, "big") + kind + payload + crc

    rows = [b"\x00" + bytes((x * 7 + y * 3) & 0xFF for x in range(width * 3)) for y in range(64)]
    compressor = zlib.compressobj(6)
    parts = [compressor.compress(rows[y % 64]) for y in range(height)]
    parts.append(compressor.flush())
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    extra = b""
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        extra = chunk(b"eXIf", exif.tobytes().removeprefix(b"Exif\x00\x00"))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + extra
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


def full_decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def previous_judge_image(data: bytes, max_edge: int = 1568) -> bytes:
    """What the judge path did before: decode at full size, turn, resample, encode."""
    im = ImageOps.exif_transpose(full_decode(data))
    if im.mode != "RGB":
        im = im.convert("RGB")
    scale = max_edge / max(im.size)
    size = (round(im.width * scale), round(im.height * scale))
    im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    im.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


# -- subprocess cases: one per process, so each peak is that case's own ---------------------------


def _status(field: str) -> int:
    """A /proc/self/status size field (VmRSS, VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def _start_peak() -> int:
    """Reset the peak resident set to the current one; returns the current one."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status("VmRSS")
    except OSError:  # not Linux: ru_maxrss, which may report an earlier, higher peak
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _peak() -> int:
    try:
        return _status("VmHWM")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(case: str, path: str) -> None:
    data = Path(path).read_bytes()
    intake = ImageIntake()
    prepared: PreparedImage | None = None
    if case == "judge-now":
        prepared = intake.prepare(data)  # no decode for a plain JPEG under 5 MB
    work: dict[str, Callable[[], object]] = {
        "judge-now": lambda: prepared.judge_image() if prepared else None,
        # Intake's decode was released before the judge ran: one after the other, not together.
        "judge-before": lambda: (full_decode(data).close(), previous_judge_image(data)),
        "intake-now": lambda: intake.prepare(data),
        "intake-before": lambda: (intake.prepare(data), full_decode(data)),
    }
    if case.startswith("concurrent-"):
        capacity = 1 << 62 if case == "concurrent-unbounded" else 256 * MiB
        concurrent = ImageIntake(limits=Limits(decode_budget_bytes=capacity))

        def eight() -> None:
            threads = [threading.Thread(target=concurrent.prepare, args=(data,)) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        work[case] = eight
    before = _start_peak()
    start = time.perf_counter()
    work[case]()
    elapsed = time.perf_counter() - start
    print(json.dumps({"peak": _peak() - before, "seconds": elapsed}))


def in_child(case: str, data: bytes) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".img") as f:
        f.write(data)
        f.flush()
        out = subprocess.run(
            [sys.executable, __file__, "--child", case, f.name],
            check=True,
            capture_output=True,
            text=True,
        )
    result: dict[str, float] = json.loads(out.stdout)
    return result


# -- the benchmarks -------------------------------------------------------------------------------


class InstantDetector:
    """Answers at once with a clean detection: what is left is the engine's own cost."""

    def __init__(self) -> None:
        path = ROOT / "examples/detections/clean-landscape.json"
        self.detection = Detection.from_rekognition(json.loads(path.read_text()))

    def detect(self, image: PreparedImage, *, min_confidence: float) -> Detection:
        return self.detection


def cost_per_decision() -> None:
    data = photo((1000, 700), 100_000)
    intake = ImageIntake()
    engine = Engine(PolicyStore(ROOT / "policies"), InstantDetector(), None, InMemoryAuditLog())
    decode, now, before, decision = p50_interleaved(
        [
            lambda: full_decode(data),
            lambda: intake.prepare(data),
            lambda: (intake.prepare(data), full_decode(data)),
            lambda: engine.moderate(data),
        ],
        n=500,
    )
    print(f"cost per decision: 1000x700 photo-like JPEG, {len(data) / 1000:.0f} KB")
    row("full Pillow decode (Image.open(...).load())", f"p50 {decode * 1e3:7.3f} ms")
    row("intake now (structure walk, no decode)", f"p50 {now * 1e3:7.3f} ms")
    row("intake before (the same plus a full decode)", f"p50 {before * 1e3:7.3f} ms")
    row("decision now (Engine.moderate, instant detector)", f"p50 {decision * 1e3:7.3f} ms")
    row("intake now / full decode", f"{now / decode:7.3f}")
    row("decision now / full decode (target <= 0.5)", f"{decision / decode:7.3f}")


def judge_image() -> None:
    data = photo((4000, 3000), 4_500_000, blur=2.0)  # under 5 MB: intake passes it through
    intake = ImageIntake()
    assert intake.prepare(data).converted is False

    def now() -> object:
        prepared = intake.prepare(data)
        return prepared.judge_image()

    prepare = p50(lambda: intake.prepare(data), n=5)
    judged = p50(now, n=5) - prepare
    before = p50(lambda: previous_judge_image(data), n=5)
    decode = p50(lambda: full_decode(data), n=5)
    mem_now = in_child("judge-now", data)["peak"]
    mem_before = in_child("judge-before", data)["peak"]
    print(f"judge image: 4000x3000 JPEG, {len(data) / 1e6:.1f} MB -> 1568x1176")
    row("now: one decode at 1/2 scale, then LANCZOS", f"p50 {judged * 1e3:7.1f} ms")
    row("before: judge's own full decode + resample", f"p50 {before * 1e3:7.1f} ms")
    row("before: plus intake's full decode (also gone)", f"p50 {(before + decode) * 1e3:7.1f} ms")
    row("peak memory now (judge_image)", f"+{mem_now / MiB:6.1f} MiB")
    row("peak memory before (intake decode, then judge path)", f"+{mem_before / MiB:6.1f} MiB")


def big_png() -> None:
    data = pattern_png(10_000, 10_000)
    intake = ImageIntake()
    took = p50(lambda: intake.prepare(data), n=3)
    mem_now = in_child("intake-now", data)
    mem_before = in_child("intake-before", data)
    print(f"intake: 10,000 x 10,000 RGB PNG, {len(data) / 1000:.0f} KB")
    row("now: structure walk, passed through undecoded", f"p50 {took * 1e3:7.1f} ms")
    row("peak memory now", f"+{mem_now['peak'] / MiB:6.1f} MiB")
    row(
        "peak memory before (full decode)",
        f"+{mem_before['peak'] / MiB:6.1f} MiB  ({mem_before['seconds']:.2f} s)",
    )


def concurrent_conversions() -> None:
    # EXIF orientation 6 forces a decode and a conversion; 5000x5000 RGB is 100 MB decoded.
    data = pattern_png(5_000, 5_000, exif_orientation=6)
    unbounded = in_child("concurrent-unbounded", data)
    bounded = in_child("concurrent-budget", data)
    print(
        f"8 concurrent intakes of a 5000x5000 PNG that must be turned ({len(data) / 1000:.0f} KB)"
    )
    row(
        "no budget (a budget above any need)",
        f"+{unbounded['peak'] / MiB:6.1f} MiB peak   {unbounded['seconds']:.2f} s",
    )
    row(
        "decode budget 256 MiB",
        f"+{bounded['peak'] / MiB:6.1f} MiB peak   {bounded['seconds']:.2f} s",
    )


def sample_jpegs() -> dict[str, bytes]:
    """The JPEGs the structure walk is timed on: overhead.py's photo, a smooth and a detailed one
    made here, and every JPEG over 30 KB among the test fixtures and in $MODERATION_CORPORA."""
    detailed = Image.frombytes("RGB", (400, 300), os.urandom(400 * 300 * 3))
    buffer = io.BytesIO()
    detailed.save(buffer, "JPEG", quality=60)
    jpegs = {
        "overhead.py's photo-like": overhead_photo(),
        "smooth photo-like": photo((400, 300), 100_000, blur=0.6),
        "detailed (camera-like)": buffer.getvalue(),
    }
    folders = [ROOT / "tests/fixtures/images"]
    if os.environ.get(CORPORA_ENV):
        folders.append(corpora(None, "images"))
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.stat().st_size > 30_000:
                data = path.read_bytes()
                if data.startswith(b"\xff\xd8"):
                    jpegs.setdefault(f"{path.parent.name}/{path.name}", data)
    return jpegs


def walk_times(data: bytes, gaps: list[int | None]) -> list[float]:
    """p50 seconds of `jpeg_end(data)` with its scans walked with each of `gaps` as `dense_gap`
    (None: as shipped), taking turns so that the machine's load weighs on them alike."""

    def walk(gap: int | None) -> Callable[[], None]:
        way = _scan_end if gap is None else functools.partial(_scan_end, dense_gap=gap)

        def run() -> None:
            _structure._scan_end = way  # type: ignore[assignment]  # what jpeg_end calls
            try:
                jpeg_end(data)
            except StructureError:
                pass
            finally:
                _structure._scan_end = _scan_end

        return run

    runs = 1000 if len(data) < 200_000 else 100
    return p50_interleaved([walk(gap) for gap in gaps], n=runs)


def structure_walk() -> None:
    """`jpeg_end` per file, its scans walked three ways (all three find the same offsets)."""
    ways: dict[str, int | None] = {"memchr": 0, "pattern": 1 << 62, "shipped": None}
    print("JPEG structure walk (jpeg_end), p50 µs per file: memchr steps from one 0xFF to the")
    print("  next / the compiled pattern (after 16 steps) / as shipped (memchr, then the pattern")
    print("  once 0xFF bytes are dense); the density is over the bytes walked")
    totals = dict.fromkeys(ways, 0.0)
    corpus = 0
    for name, data in sample_jpegs().items():
        try:
            walked, note = data[: jpeg_end(data)], ""
        except StructureError:
            walked, note = data, " (refused)"
        density = len(walked) // max(1, walked.count(b"\xff"))
        times = [t * 1e6 for t in walk_times(data, list(ways.values()))]
        label = f"{name[:40]}{note}, {len(data) / 1000:.0f} KB, 0xFF per {density} B"
        print(f"  {label:<66} " + " ".join(f"{t:7.1f}" for t in times))
        if "/" in name:
            corpus += 1
            for way, t in zip(ways, times, strict=True):
                totals[way] += t
    label = f"total over the {corpus} test images above (over 30 KB)"
    print(f"  {label:<66} " + " ".join(f"{t:7.0f}" for t in totals.values()))


def main() -> None:
    print(f"image benchmarks ({os.cpu_count()} cores, Pillow {Image.__version__})")
    if "--walk" in sys.argv[1:]:
        structure_walk()
        return
    cost_per_decision()
    structure_walk()
    judge_image()
    big_png()
    concurrent_conversions()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
