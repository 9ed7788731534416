"""What checking an S3 image costs, whole object against a look at its tail (figures, not tests).

    PYTHONPATH=. .venv/bin/python benchmarks/image_s3.py [CORPUS_DIR]

An `s3://` image gets the same checks as bytes: intake reads the whole object (one GET, up to the
input bound) and runs the structure walk and header checks on it. The cheaper-looking alternative
reads the first 64 KiB (the header) and the last 64 KiB (for a JPEG's EOI or a PNG's IEND). This
prints, for JPEG and PNG objects of 100 KiB to 15 MiB:

- requests and bytes per image for each way (S3 bills GETs per request; in-region transfer to
  Lambda is free, so the bytes cost time, not money);
- the CPU time of the whole-object check (the structure walk, CRC32 of every PNG chunk);
- the time to read the object through moto (an in-process S3: a floor, not S3's own latency);

and, over the truncated and corrupt JPEG/PNG files of the corpora (CORPUS_DIR, default
$MODERATION_CORPORA/images), how many the tail look would let through that the whole check refuses.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

from corpora import corpora
from PIL import Image

from moderation.errors import InvalidImage
from moderation.image import ImageIntake, Limits, sniff
from moderation.image._decode import inspect

KiB, MiB = 1024, 1024 * 1024


def noise_image(fmt: str, nbytes: int) -> bytes:
    """A JPEG or PNG of random pixels of about `nbytes`."""
    per_pixel = 3.0 if fmt == "png" else 1.4  # what random RGB costs in each format, roughly
    side = max(80, int((nbytes / per_pixel) ** 0.5))
    im = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    im.save(out, "PNG" if fmt == "png" else "JPEG", quality=95)
    return out.getvalue()


def median_seconds(fn: object, n: int = 7) -> float:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def tail_look_passes(data: bytes) -> bool:
    """What a header + tail look concludes: the file ends with EOI, or holds IEND near its end."""
    tail = data[-64 * KiB :]
    if data.startswith(b"\xff\xd8"):
        return tail.rstrip(b"\x00").endswith(b"\xff\xd9")
    return b"IEND\xaeB`\x82" in tail


def costs() -> None:
    import boto3
    from moto import mock_aws

    limits = Limits(max_side=100_000, max_pixels=10**9)
    print(
        f"{'object':>16} {'tail look: GETs, bytes':>24} {'whole: GETs, bytes':>22}"
        f" {'check CPU':>10} {'moto read':>10}"
    )
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="bench")
        for fmt in ("jpeg", "png"):
            for target in (100 * KiB, 1 * MiB, 5 * MiB, 15 * MiB):
                data = noise_image(fmt, target)
                client.put_object(Bucket="bench", Key="k", Body=data)
                kind = sniff(data)
                assert kind is not None
                check = median_seconds(
                    lambda data=data, kind=kind: inspect(data, kind, limits, count_frames=False)
                )
                read = median_seconds(
                    lambda: client.get_object(Bucket="bench", Key="k")["Body"].read(), n=3
                )
                tail_bytes = min(len(data), 128 * KiB)
                print(
                    f"{fmt} {len(data) / MiB:8.2f} MiB {'2, ' + f'{tail_bytes / KiB:.0f} KiB':>24}"
                    f" {'1, ' + f'{len(data) / MiB:.2f} MiB':>22}"
                    f" {check * 1000:8.2f} ms {read * 1000:8.1f} ms"
                )


def soundness(corpus: Path) -> None:
    intake = ImageIntake()
    let_through = []
    refused = 0
    for path in sorted(corpus.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if sniff(data) not in ("jpeg", "png"):
            continue
        try:
            intake.prepare(data)
        except InvalidImage as exc:
            if not exc.reason.startswith("truncated or corrupt"):
                continue
            refused += 1
            if tail_look_passes(data):
                let_through.append(f"{path.relative_to(corpus)} ({exc.reason})")
    print(f"\n{refused} corpus JPEG/PNG files refused as truncated or corrupt by the whole check;")
    print(f"a header + tail look would pass {len(let_through)} of them:")
    for line in let_through:
        print(f"  {line}")


def main() -> None:
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    corpus = corpora(Path(sys.argv[1]) if len(sys.argv) > 1 else None, "images")
    warnings.simplefilter("ignore")  # Pillow's warnings about the corpora's broken files
    costs()
    if corpus.is_dir():
        soundness(corpus.resolve())


if __name__ == "__main__":
    main()
