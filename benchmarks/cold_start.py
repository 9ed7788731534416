"""Cold start, before and after in one run: fresh interpreters importing, loading, deciding.

    python benchmarks/cold_start.py [--before REV] [--runs N]

Each figure is the median over N fresh interpreters (a Lambda cold start, a CLI run) of:
- `import moderation` alone;
- import + `PolicyStore("policies")` (parse and check every shipped policy);
- import + load + the first `Engine.moderate()` of a 100 KB JPEG with a recorded detector;
- the imports of other projects the handler's init needs (boto3, Powertools' batch, idempotency
  and metrics utilities, pydantic, Pillow, PyYAML) and nothing of ours: a floor under its init;
  the same without Powertools, and that with the models of a decision, a policy and the settings
  (pydantic builds each model's validator as its class is made): a floor under any handler that
  decides with these models, with or without Powertools;
- the Lambda handler's init from environment variables (the template's: a review queue, a
  quarantine bucket, an idempotency table, the detection cache in it, the Bedrock judge; local
  policies; fake credentials): `import moderation.aws_lambda` and the state a cold start builds;
- that init and then every AWS client the first object needs (S3 twice, Rekognition, SQS,
  DynamoDB twice), built without a request: what a cold start pays before its first call goes out;
- that init and then its first object, end to end (an S3 event for a 150 KB JPEG, every AWS call
  answered in-process by a botocore `before-send` handler): what the first upload waits for.

Each is printed as a ratio to `import boto3`, measured in fresh interpreters of the same run (the
targets: `import moderation` <= 1.0, the handler's init <= 1.5). `--before REV` (default: the
engine before one session per cold start and lazy imports) checks REV out into a temporary git
worktree and measures it with the same interpreter, interleaved with the current tree, so both
columns come from the same machine in the same minute. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "455a3b5"  # the engine before one session per cold start and lazy imports

IMPORT = "import moderation"
LOAD = IMPORT + "\nmoderation.PolicyStore('policies')"
# A recorded detector keyed by the image's sha256: the whole first decision, with no network.
DECIDE = """
import hashlib, io, random
from PIL import Image
import moderation
from moderation.testing import RecordedDetector, Recordings
from moderation.audit import InMemoryAuditLog
rng = random.Random(7)
im = Image.effect_noise((600, 400), 60).convert('RGB')
buf = io.BytesIO(); im.save(buf, 'JPEG', quality=85); data = buf.getvalue()
clean = {'ModerationLabels': [], 'ModerationModelVersion': '7.0'}
recorded = Recordings.of({data: {'detect_moderation_labels': clean}})
store = moderation.PolicyStore('policies')
engine = moderation.Engine(store, RecordedDetector(recorded), audit=InMemoryAuditLog())
engine.moderate(data)
"""
# The environment a deployed function has (deploy/template.yaml), with local policies.
LAMBDA_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_LAMBDA_FUNCTION_NAME": "moderation",
    "MODERATION_POLICIES": "policies",
    "MODERATION_AUDIT": "stdout",
    "MODERATION_JUDGE": "bedrock",
    "MODERATION_REVIEW_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/review",
    "MODERATION_QUARANTINE_BUCKET": "quarantine",
    "MODERATION_IDEMPOTENCY_TABLE": "moderation-idempotency",
    "MODERATION_DEDUPE": "dynamodb:moderation-idempotency",
}
# What the handler's init imports of other projects, and nothing of ours: a floor under its init.
DEPENDENCIES = """
import boto3, pydantic, yaml
import aws_lambda_powertools.metrics, aws_lambda_powertools.utilities.batch
import aws_lambda_powertools.utilities.idempotency
import PIL.Image
"""
# The same without Powertools, and then with the models a decision and a policy need (pydantic's
# model machinery and this package's models): what is left under the init without Powertools.
WITHOUT_POWERTOOLS = """
import boto3, pydantic, yaml
import PIL.Image
"""
MODELS = (
    WITHOUT_POWERTOOLS
    + """
import moderation.decision, moderation.settings, moderation.policy._file
"""
)
HANDLER_INIT = """
from moderation.aws_lambda import _handler
state = _handler._state()
"""
# Every client the first object reaches, whether the cold start built it (before) or not (now).
HANDLER_CLIENTS = (
    HANDLER_INIT
    + """
for part in (state.s3, state.sqs, state.engine.detector, state.engine.cache._table,
             state.engine.intake.s3.reader):
    part.client
from moderation.aws.transport import sdk_client
getattr(state, "session", None) and sdk_client("dynamodb", region=None, session=state.session)
"""
)
# The template's function on its first object, AWS answered in-process: a handler registered
# on botocore's `before-send` (as moto does) replies to every call as S3, DynamoDB and Rekognition
# would (a JPEG of tenant `default`, no labels: approved and tagged). Installed before the init,
# so that the before column's cold start, which built its sessions there, is answered too; it
# imports nothing the init does not import anyway.
FAKE_AWS = """
import io, json, os
from botocore.awsrequest import AWSResponse
from botocore.handlers import BUILTIN_HANDLERS
IMAGE = open(os.environ["BENCH_IMAGE"], "rb").read()
class Raw(io.BytesIO):
    def stream(self, **kwargs):
        yield self.getvalue()
TAGGING = (b'<?xml version="1.0" encoding="UTF-8"?><Tagging '
           b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet></TagSet></Tagging>')
OBJECT = {"Content-Length": str(len(IMAGE)), "ETag": '"e"', "Content-Type": "image/jpeg"}
REPLIES = {
    "HeadObject": ({**OBJECT, "x-amz-meta-tenant": "default"}, b""),
    "GetObject": (OBJECT, IMAGE),
    "GetObjectTagging": ({}, TAGGING),
    "PutObjectTagging": ({}, b""),
    "DetectModerationLabels": ({}, b'{"ModerationLabels": [], "ModerationModelVersion": "7.0"}'),
}
def answer(request, event_name, **kwargs):
    headers, body = REPLIES.get(event_name.rsplit(".", 1)[-1], ({}, b"{}"))
    return AWSResponse(request.url, 200, {"x-amzn-requestid": "r", **headers}, Raw(body))
BUILTIN_HANDLERS.append(("before-send", answer))
class Context:
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    @staticmethod
    def get_remaining_time_in_millis():
        return 60_000
"""
FIRST_OBJECT = (
    FAKE_AWS
    + HANDLER_INIT
    + """
s3 = {"bucket": {"name": "uploads"}, "object": {"key": "a.jpg", "size": len(IMAGE), "eTag": "e"}}
record = {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "awsRegion": "us-east-1"}
record["s3"] = s3
done = _handler.handler({"Records": [record]}, Context())
assert done["objects"][0]["outcome"] == "approved", done
"""
)
TIMED = """
import time
_t0 = time.perf_counter()
{body}
print((time.perf_counter() - _t0) * 1000)
"""


def once(code: str, cwd: Path, env: dict[str, str] | None = None) -> float:
    """Wall milliseconds of `code` in one fresh interpreter started in `cwd`."""
    out = subprocess.run(
        [sys.executable, "-c", TIMED.format(body=code)],
        cwd=cwd,
        env={
            "PYTHONPATH": str(cwd),
            "PATH": "/usr/bin:/bin",
            "PYTHONDONTWRITEBYTECODE": "1",
            **(env or {}),
        },
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def run(code: str, cwd: Path, runs: int, env: dict[str, str] | None = None) -> float:
    """Median wall milliseconds of `code` in `runs` fresh interpreters started in `cwd`."""
    return statistics.median(once(code, cwd, env) for _ in range(runs))


def side_by_side(
    code: str, trees: tuple[Path, Path], runs: int, env: dict[str, str] | None = None
) -> tuple[float, float, float]:
    """Medians of `code` in each tree and of `import boto3`, the three interleaved run by run
    so that a busy minute weighs on all of them alike."""
    samples: list[list[float]] = [[], [], []]
    for _ in range(runs):
        samples[0].append(once(code, trees[0], env))
        samples[1].append(once(code, trees[1], env))
        samples[2].append(once("import boto3", trees[1]))
    before, after, boto = (statistics.median(s) for s in samples)
    return before, after, boto


def write_image(path: Path) -> Path:
    """The first object's bytes: a 600x400 JPEG of noise (about 150 KB)."""
    from PIL import Image

    Image.effect_noise((600, 400), 60).convert("RGB").save(path, "JPEG", quality=85)
    return path


def checkout(rev: str, into: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(into), rev], check=True
    )
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="revision to compare with")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    print(f"cold start, median of {args.runs} fresh interpreters (ms); x: times import boto3")
    with tempfile.TemporaryDirectory() as tmp:
        image = {"BENCH_IMAGE": str(write_image(Path(tmp) / "upload.jpg"))}
        old = checkout(args.before, Path(tmp) / "before")
        try:
            # Compile once so neither side pays for writing .pyc files in the measured runs.
            for tree in (old, ROOT):
                subprocess.run(
                    [sys.executable, "-m", "compileall", "-q", str(tree / "moderation")],
                    check=True,
                )
            rows = [
                ("import moderation", IMPORT, None),
                ("import + load 5 policies", LOAD, None),
                ("import + load + first decision", DECIDE, None),
                ("the handler's dependencies alone", DEPENDENCIES, None),
                ("  the same but Powertools", WITHOUT_POWERTOOLS, None),
                ("  that + the decision and policy models", MODELS, None),
                ("Lambda handler init from the environment", HANDLER_INIT, LAMBDA_ENV),
                ("  + every client the first object needs", HANDLER_CLIENTS, LAMBDA_ENV),
                ("  + its first object, end to end", FIRST_OBJECT, {**LAMBDA_ENV, **image}),
            ]
            print(f"{'':<42}{'before':>9}{'x':>6}{'after':>9}{'x':>6}{'boto3':>9}")
            for name, code, env in rows:
                before, after, boto = side_by_side(code, (old, ROOT), args.runs, env)
                print(
                    f"{name:<42}{before:>9.1f}{before / boto:>6.2f}{after:>9.1f}"
                    f"{after / boto:>6.2f}{boto:>9.1f}"
                )
            print("targets: import moderation <= 1.0 x import boto3; handler init <= 1.5 x")
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=True
            )


if __name__ == "__main__":
    main()
