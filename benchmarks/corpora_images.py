"""Regression run of image intake over real-world test images (not part of `make test`).

    PYTHONPATH=. .venv/bin/python benchmarks/corpora_images.py [CORPUS_DIR] [--max-frames K] [-q]

CORPUS_DIR defaults to $MODERATION_CORPORA/images (the Pillow and libvips test suites' images; their
README says where each folder came from). Every file is given to `ImageIntake.prepare` three
ways: as bytes, as a path, and as `s3://` from a moto S3 bucket, with `max_frames` as the default
policy asks (4). Each file's line shows the outcome: the accepted format, size and frames, or the
refusal's kind and reason. The run flags:

- DISAGREE: the three sources did not give the same answer (the same bytes must);
- RAISED: intake raised something other than the library's `InvalidImage` (a crash, a Pillow
  error let through).

Warnings are left as in production (shown, not raised); a file on which Pillow warned says so.

and ends with a summary (counts by outcome and by refusal reason) and the time it took. The exit
status is 1 when anything was flagged, so the script can gate a change by hand.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from corpora import corpora

from moderation import InvalidImage
from moderation.aws.s3 import S3ImageReader
from moderation.image import ImageIntake

_BUCKET = "corpora"


def outcome(intake: ImageIntake, source: Any, max_frames: int) -> tuple[str, str]:
    """("ok" | "refused:<kind>" | "raised", one line describing it)."""
    try:
        image = intake.prepare(source, max_frames=max_frames)
    except InvalidImage as exc:
        return f"refused:{exc.kind}", exc.reason
    except Exception as exc:  # what the run is looking for: anything but the library's error
        return "raised", f"{type(exc).__name__}: {exc}"
    frames = ",".join("+".join(map(str, f.shows)) for f in image.frames) or "-"
    return "ok", (
        f"{image.format} {image.width}x{image.height} n_frames={image.n_frames}"
        f" detect={image.detect_format or 's3-ref'} frames={frames}"
    )


def _s3_client() -> Any:
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    import boto3

    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=_BUCKET)
    return client


def run(corpus: Path, max_frames: int, quiet: bool) -> int:
    """Run intake over every file under `corpus`; returns the number of flagged files."""
    from moto import mock_aws

    files = sorted(p for p in corpus.rglob("*") if p.is_file() and p.name != "README.md")
    counts: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    flagged: list[str] = []
    timings = {"bytes": 0.0, "path": 0.0, "s3": 0.0}
    warnings_seen = 0
    with mock_aws():
        client = _s3_client()
        intake = ImageIntake(s3=S3ImageReader(client))
        for path in files:
            name = str(path.relative_to(corpus))
            data = path.read_bytes()
            client.put_object(Bucket=_BUCKET, Key=name, Body=data)
            sources: dict[str, Any] = {"bytes": data, "path": path, "s3": f"s3://{_BUCKET}/{name}"}
            results: dict[str, tuple[str, str]] = {}
            warned: set[str] = set()
            for source, given in sources.items():
                start = time.perf_counter()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")  # as in production: warnings do not raise
                    results[source] = outcome(intake, given, max_frames)
                warned.update(str(w.message).strip() for w in caught)
                timings[source] += time.perf_counter() - start
            status, text = results["bytes"]
            counts[status] += 1
            if status.startswith("refused"):
                reasons[_reason_class(text)] += 1
            flags = []
            if len({_comparable(r) for r in results.values()}) > 1:
                flags.append("DISAGREE")
            if any(r[0] == "raised" for r in results.values()):
                flags.append("RAISED")
            line = f"{name}: {status} {text}"
            if warned:
                warnings_seen += 1
                line += f"  [Pillow warned: {'; '.join(sorted(warned))[:160]}]"
            if flags:
                flagged.append(name)
                others = "; ".join(f"{s}={r[0]} {r[1]}" for s, r in results.items())
                line = f"{' '.join(flags)} {line}\n    {others}"
            if flags or not quiet:
                print(line)
    _summary(len(files), counts, reasons, flagged, timings)
    print(
        f"files on which Pillow warned (not flagged; intake does not raise on warnings): "
        f"{warnings_seen}"
    )
    return len(flagged)


def _comparable(result: tuple[str, str]) -> tuple[str, str]:
    """An outcome with what legitimately differs by source left out: an S3 JPEG/PNG that
    Rekognition reads by reference has no detect bytes of its own."""
    status, text = result
    return status, text.replace("detect=s3-ref", "detect=jpeg").replace("detect=png", "detect=jpeg")


def _reason_class(reason: str) -> str:
    """A refusal reason without its file-specific details (numbers, Pillow's own text), for the
    summary."""
    general = re.sub(r"\d+", "N", reason)
    for sep in (": ", " ("):
        if sep in general and not general.startswith("image is"):
            return general.split(sep, 1)[0] + (": ..." if sep == ": " else " (...)")
    return general


def _summary(
    total: int,
    counts: collections.Counter[str],
    reasons: collections.Counter[str],
    flagged: list[str],
    timings: dict[str, float],
) -> None:
    print(f"\n{total} files: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    print("refusals by reason:")
    for reason, n in reasons.most_common():
        print(f"  {n:5d}  {reason}")
    print(f"flagged: {len(flagged)}" + (" (" + ", ".join(flagged) + ")" if flagged else ""))
    per = ", ".join(
        f"{k} {v:.2f} s ({1000 * v / max(total, 1):.1f} ms/file)" for k, v in timings.items()
    )
    print(f"time: {per}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=None)
    parser.add_argument("--max-frames", type=int, default=4)
    parser.add_argument("-q", "--quiet", action="store_true", help="print flagged files only")
    args = parser.parse_args()
    args.corpus = corpora(args.corpus, "images")
    if not args.corpus.is_dir():
        sys.exit(f"no corpus at {args.corpus}")
    sys.exit(1 if run(args.corpus.resolve(), args.max_frames, args.quiet) else 0)


if __name__ == "__main__":
    main()
