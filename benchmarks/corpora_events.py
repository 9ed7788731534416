"""The Lambda handler over real event documents: AWS's own test events, and ones derived from them.

    python benchmarks/corpora_events.py [CORPORA]      # default: $MODERATION_CORPORA

Every `*.json` under CORPORA/events/ and CORPORA/events/derived/ (the corpus says where each
came from) is given to `moderation.aws_lambda.handler`, each in a fresh world: moto's S3 and SQS,
and the local wire-format endpoint (`moderation.testing.AWSEndpoint`) as Rekognition (no labels:
whatever reaches it is approved) and Bedrock. The objects an event names are created first, as a
small PNG (or, for a derived event, the body its EXPECT.json names; only the objects it lists
when it lists them), in a bucket of that name when S3 could have one.

Printed per file: the records the event holds, what happened to each object (outcome, skipped,
refused), the handler's warning and error log lines, how many failures were permanent (reported,
never retried) and how many were left to be retried (`batchItemFailures`: retried, then the
dead-letter queue; or `RetryLater` raised), the `moderation-outcome` tag of every object created,
and, for a derived event, where the result differs from EXPECT.json. An event naming a version
moto cannot create (the documentation's examples do) finds that version gone: "skipped".

Exits 1 if the handler crashed (an exception other than
`RetryLater`, or `EventError` for a document that is no S3 event) on any file. A regression
script, not a test: `make test` does not depend on the corpora.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpora import corpora

ROOT = Path(__file__).resolve().parent.parent
CONVERSE_APPROVE = {
    "output": {
        "message": {
            "role": "assistant",
            "content": [
                {
                    "toolUse": {
                        "toolUseId": "t1",
                        "name": "record_verdict",
                        "input": {"verdict": "approve", "categories": [], "rationale": "fine"},
                    }
                }
            ],
        }
    },
    "stopReason": "tool_use",
    "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
    "metrics": {"latencyMs": 1},
}


@dataclass
class Result:
    """What one event document did."""

    name: str
    records: int = 0
    objects: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    permanent: int = 0
    refused_event: str | None = None
    crash: str | None = None
    tags: dict[str, str | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    differs: list[str] = field(default_factory=list)


def _env(tmp: Path) -> None:
    policies = tmp / "policies"
    shutil.copytree(ROOT / "policies", policies)
    for name in [n for n in os.environ if n.startswith(("MODERATION_", "AWS_", "POWERTOOLS_"))]:
        del os.environ[name]
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(tmp / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp / "no-credentials"),
        AWS_LAMBDA_FUNCTION_NAME="moderation",
        MODERATION_POLICIES=str(policies),
        MODERATION_AUDIT=str(tmp / "audit.jsonl"),
    )


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (120, 90), (40, 160, 90)).save(buffer, "PNG")
    return buffer.getvalue()


def _named(doc: Any, parse: Any) -> list[Any]:
    """The ObjectRefs the handler's own parser finds in `doc` (an SQS event: in each body)."""
    from moderation.aws_lambda._events import EventError, parse_sqs_body

    records = doc.get("Records") if isinstance(doc, dict) else None
    if isinstance(records, list) and records and records[0].get("eventSource") == "aws:sqs":
        found: list[Any] = []
        for record in records:
            with contextlib.suppress(EventError):
                found += parse_sqs_body(str(record.get("body")), record.get("messageId"))
        return found
    try:
        return list(parse(doc))
    except EventError:
        return []


def _create(s3: Any, refs: list[Any], expect: dict[str, Any], corpora: Path) -> list[str]:
    """Create the objects the event names (or EXPECT.json's `objects`); their "bucket/key"."""
    from moderation.aws_lambda._events import ObjectRef
    from moderation.s3location import bucket_problem

    bodies = expect.get("bodies", {})
    wanted = [tuple(o.split("/", 1)) for o in expect.get("objects", [])]
    wanted += [tuple(o.split("/", 1)) for o in bodies]
    versioned = {r.bucket for r in refs if isinstance(r, ObjectRef) and r.version_id}
    if not expect.get("create_decoded_only"):
        wanted += [(r.bucket, r.key) for r in refs if isinstance(r, ObjectRef)]
    made: list[str] = []
    for bucket, key in dict.fromkeys(wanted):
        if bucket_problem(bucket) is not None:
            continue
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)
        if bucket in versioned:
            status = {"Status": "Enabled"}
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=status)
        where = f"{bucket}/{key}"
        body = (corpora / bodies[where]).read_bytes() if where in bodies else _png()
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        made.append(where)
    for gone in expect.get("delete", []):
        bucket, key = gone.split("/", 1)
        s3.delete_object(Bucket=bucket, Key=key)
        if gone in made:
            made.remove(gone)
    return made


def _outcome(s3: Any, where: str) -> str | None:
    bucket, key = where.split("/", 1)
    try:
        tags = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    except Exception:
        return None
    return next((t["Value"] for t in tags if t["Key"] == "moderation-outcome"), None)


def _invoke(result: Result, doc: Any) -> None:
    from moderation.aws_lambda import RetryLater, handler
    from moderation.aws_lambda._events import EventError

    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):  # the audit records, metrics and log lines
            answer = handler(doc, None)
    except RetryLater as exc:
        result.retried = [where for where, _ in exc.failures]
        answer = {}
    except EventError as exc:
        result.refused_event = str(exc)
        answer = {}
    except Exception:
        result.crash = traceback.format_exc(limit=6)
        return
    if "batchItemFailures" in answer:
        result.retried = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
    for entry in answer.get("objects", []):
        what = entry.get("outcome") or "skipped: " + str(entry.get("skipped"))
        result.objects.append(f"{entry['bucket']}/{entry['key']}: {what}")
    for line in captured.getvalue().splitlines():
        with contextlib.suppress(ValueError):
            _note(result, json.loads(line))


def _note(result: Result, logged: Any) -> None:
    """Count and keep what the handler's log lines say about each object."""
    if not isinstance(logged, dict) or logged.get("logger") != "moderation.aws_lambda":
        return
    message = str(logged.get("message", ""))
    if message.startswith(("invalid input", "invalid event")):
        result.permanent += 1
    if logged.get("level") in ("WARNING", "ERROR") or message.startswith("the object no longer"):
        where = f"{logged.get('bucket')}/{logged.get('key')}" if "bucket" in logged else ""
        why = logged.get("reason") or logged.get("error") or ""
        result.notes.append(f"{logged.get('level')}: {message} {where} {why}".rstrip())


def _compare(result: Result, expect: dict[str, Any]) -> None:
    for where, outcome in expect.get("tagged", {}).items():
        if result.tags.get(where) != outcome:
            result.differs.append(f"{where}: {result.tags.get(where)} (expected {outcome})")
    for where in expect.get("untagged", []):
        if result.tags.get(where) is not None:
            result.differs.append(f"{where}: {result.tags[where]} (expected untagged)")
    if "batchItemFailures" in expect and sorted(expect["batchItemFailures"]) != sorted(
        result.retried
    ):
        result.differs.append(f"retried {result.retried} (expected {expect['batchItemFailures']})")


def run_one(path: Path, corpora: Path, expect: dict[str, Any]) -> Result:
    """One event document through the handler, in a fresh world."""
    import boto3
    from moto import mock_aws

    from moderation.aws_lambda import reset
    from moderation.aws_lambda._events import parse_document

    result = Result(path.name)
    doc = json.loads(path.read_text(encoding="utf-8-sig"))
    records = doc.get("Records") if isinstance(doc, dict) else None
    result.records = len(records) if isinstance(records, list) else 1
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        made = _create(s3, _named(doc, parse_document), expect, corpora)
        reset()
        _invoke(result, doc)
        reset()
        result.tags = {where: _outcome(s3, where) for where in made}
    _compare(result, expect)
    return result


def _print(result: Result) -> None:
    head = f"{result.name}: {result.records} record{'s' if result.records != 1 else ''}"
    if result.crash:
        print(f"{head}; CRASH\n{result.crash}")
        return
    parts = [f"{len(result.objects)} object result(s)"]
    parts.append(f"{result.permanent} permanent (reported, not retried)")
    parts.append(f"{len(result.retried)} retried")
    if result.refused_event:
        parts.append(f"event refused: {result.refused_event}")
    print(f"{head}; " + "; ".join(parts))
    for line in result.objects:
        print(f"    {line}")
    for what in result.retried:
        print(f"    retried: {what}")
    for note in result.notes:
        print(f"    log {note}")
    for where, outcome in result.tags.items():
        print(f"    tag {where}: {outcome}")
    for difference in result.differs:
        print(f"    differs from EXPECT.json: {difference}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpora", nargs="?", type=Path, default=None)
    args = parser.parse_args(argv)
    args.corpora = corpora(args.corpora, "")
    events = args.corpora / "events"
    if not events.is_dir():
        parser.error(f"{events}: no such directory")
    derived = events / "derived"
    expects = json.loads((derived / "EXPECT.json").read_text()) if derived.is_dir() else {}
    paths = sorted(events.glob("*.json")) + sorted(derived.glob("*.json"))
    paths = [p for p in paths if p.name != "EXPECT.json"]
    from moderation.testing import AWSEndpoint, Reply

    crashes = 0
    with tempfile.TemporaryDirectory() as tmp, AWSEndpoint() as endpoint:
        _env(Path(tmp))
        os.environ["AWS_ENDPOINT_URL_REKOGNITION"] = endpoint.url
        os.environ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = endpoint.url
        clean = {"ModerationLabels": [], "ModerationModelVersion": "7.0"}
        endpoint.set_default("DetectModerationLabels", Reply.ok(clean))
        endpoint.set_default("Converse", Reply.ok(CONVERSE_APPROVE))
        for path in paths:
            expect = expects.get(path.name, {}) if path.parent == derived else {}
            result = run_one(path, args.corpora, expect)
            _print(result)
            crashes += result.crash is not None
    print(f"\n{len(paths)} event documents, {crashes} crash{'es' if crashes != 1 else ''}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
