"""The Lambda entry point end to end: AWS's example events through `moderation.aws_lambda.handler`.

S3, SQS and DynamoDB are moto's (`mock_aws`); Rekognition and Bedrock are the local AWSEndpoint,
reached through the real botocore path via AWS_ENDPOINT_URL_REKOGNITION and
AWS_ENDPOINT_URL_BEDROCK_RUNTIME, exactly as a deployed function would be configured. The events
are the documentation's examples (tests/fixtures/events/README.md) with only the test's bucket,
key, ETag and version filled in. Audit records, EMF metrics and log lines are read back from
stdout, where Lambda's CloudWatch Logs would collect them. No retry sleeps: the library's
RetryPolicy is given a recording `sleep`.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import boto3
import botocore.loaders
import botocore.session
import pytest
from botocore.exceptions import ClientError
from images import BLUE, GREEN, RED, png_header_only, solid
from moto import mock_aws

import moderation.aws.transport
from moderation import RetryPolicy
from moderation.aws_lambda import RetryLater, _handler, handler, reset
from moderation.errors import ConfigurationError
from moderation.testing import AWSEndpoint, Reply
from moderation.testing.endpoint import Recorded

ROOT = Path(__file__).resolve().parent.parent
EVENTS = Path(__file__).resolve().parent / "fixtures" / "events"
HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
QUEUE = "review"
UPLOADS = "uploads"
VERSIONED = "uploads-versioned"
QUARANTINE = "quarantine"
TABLE = "moderation-idempotency"


def event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def label(name: str, confidence: float, parent: str = "", level: int = 1) -> dict[str, Any]:
    return {"Name": name, "ParentName": parent, "TaxonomyLevel": level, "Confidence": confidence}


EXPLICIT = [label("Explicit", 96.5)]
HATE = [label("Hate Symbols", 81.25)]
WEAPONS = [label("Violence", 90.5), label("Weapons", 90.5, "Violence", 2)]

CONVERSE_APPROVE = {
    "output": {
        "message": {
            "role": "assistant",
            "content": [
                {
                    "toolUse": {
                        "toolUseId": "tooluse_1",
                        "name": "record_verdict",
                        "input": {
                            "verdict": "approve",
                            "categories": [],
                            "rationale": "A museum display of historical swords.",
                        },
                    }
                }
            ],
        }
    },
    "stopReason": "tool_use",
    "usage": {"inputTokens": 1523, "outputTokens": 61, "totalTokens": 1584},
    "metrics": {"latencyMs": 812},
}


class Context:
    """What the handler reads of a Lambda context."""

    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 300_000


@dataclass
class World:
    """The AWS the handler sees: moto's S3, SQS and DynamoDB, the local Rekognition and Bedrock."""

    endpoint: AWSEndpoint
    s3: Any
    sqs: Any
    queue_url: str
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    labels: dict[str, Any] = field(default_factory=dict)
    sleeps: list[float] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)

    def put(
        self,
        key: str,
        body: bytes,
        *,
        bucket: str = UPLOADS,
        tenant: str | None = None,
        labels: Any = (),
        tags: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Upload an object; `labels` is what Rekognition answers for it (or a Reply)."""
        extra: dict[str, Any] = {}
        if tenant is not None:
            extra["Metadata"] = {"tenant": tenant}
        if tags:
            extra["Tagging"] = "&".join(f"{quote(k)}={quote(v)}" for k, v in tags.items())
        put = self.s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)
        self.labels[key] = labels
        if put.get("VersionId"):
            self.labels[(key, put["VersionId"])] = labels
        return {
            "bucket": bucket,
            "key": key,
            "etag": put["ETag"].strip('"'),
            "version": put.get("VersionId"),
            "size": len(body),
        }

    def tags(self, key: str, bucket: str = UPLOADS, version: str | None = None) -> dict[str, str]:
        params = {"Bucket": bucket, "Key": key}
        if version:
            params["VersionId"] = version
        tag_set = self.s3.get_object_tagging(**params)["TagSet"]
        return {t["Key"]: t["Value"] for t in tag_set}

    def exists(self, key: str, bucket: str = UPLOADS) -> bool:
        listed = self.s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
        return any(v["Key"] == key for v in listed)

    def detects(self, key: str | None = None) -> int:
        return sum(
            1
            for r in self.endpoint.requests
            if r.operation == "DetectModerationLabels"
            and (key is None or r.body["Image"]["S3Object"]["Name"] == key)
        )

    def review_messages(self) -> list[dict[str, Any]]:
        got = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        )
        return got.get("Messages", [])

    def invoke(self, payload: dict[str, Any]) -> Any:
        """Call the handler; what it printed is added to `lines` (one JSON object each)."""
        try:
            return handler(copy.deepcopy(payload), Context())
        finally:
            out = self.capsys.readouterr().out
            self.lines.extend(json.loads(line) for line in out.splitlines() if line.strip())

    def audit(self) -> list[dict[str, Any]]:
        return [x for x in self.lines if "engine_version" in x and "schema_version" in x]

    def emf(self) -> list[dict[str, Any]]:
        return [x for x in self.lines if "_aws" in x]

    def logs(self, level: str | None = None) -> list[dict[str, Any]]:
        return [
            x
            for x in self.lines
            if x.get("logger") == "moderation.aws_lambda" and level in (None, x["level"])
        ]

    def cold_start(self, **env: str | None) -> None:
        for name, value in env.items():
            if value is None:
                self.monkeypatch.delenv(name, raising=False)
            else:
                self.monkeypatch.setenv(name, value)
        reset()


def _detect_reply(world: World) -> Callable[[Recorded], Reply]:
    def answer(request: Recorded) -> Reply:
        s3_object = request.body["Image"]["S3Object"]
        name = s3_object["Name"]
        spec = world.labels.get((name, s3_object.get("Version")), world.labels.get(name, []))
        if isinstance(spec, Reply):
            return spec
        return Reply.ok({"ModerationLabels": list(spec), "ModerationModelVersion": "7.0"})

    return answer


@functools.cache
def _shared_loader(data_path: str | None) -> Any:
    return botocore.loaders.create_loader(data_path)


@pytest.fixture(autouse=True)
def _one_session(monkeypatch):
    """Speed only: every botocore session shares one loader (the service models, S3's large, are
    parsed once per run), and `boto3.Session()` is one session per test instead of one per client
    of every cold start."""
    monkeypatch.setattr(botocore.session, "create_loader", _shared_loader)
    real = boto3.Session
    made: list[Any] = []

    def session(*args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return real(*args, **kwargs)
        if not made:
            made.append(real())
        return made[0]

    monkeypatch.setattr(boto3, "Session", session)


@pytest.fixture
def world(fake_aws_env, monkeypatch, tmp_path, capsys) -> Iterator[World]:
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", policies)
    sleeps: list[float] = []
    # The library's retries, without their sleeps: every client built from here on records them.
    # The engine's rate limiter retries a throttled request until the call's deadline (throttles
    # do not use up its attempts), waiting for its turn: a one-second deadline keeps that short.
    monkeypatch.setattr(
        moderation.aws.transport,
        "RetryPolicy",
        functools.partial(RetryPolicy, sleep=sleeps.append, deadline=1.0),
    )
    for name in [n for n in __import__("os").environ if n.startswith("MODERATION_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    monkeypatch.delenv("POWERTOOLS_SERVICE_NAME", raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")  # what Lambda sets
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "moderation")
    monkeypatch.setenv("MODERATION_POLICIES", str(policies))
    with AWSEndpoint(default_converse=Reply.ok(CONVERSE_APPROVE)) as endpoint, mock_aws():
        monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", endpoint.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", endpoint.url)
        s3 = boto3.client("s3", region_name="us-east-1")
        for bucket in (UPLOADS, VERSIONED, QUARANTINE):
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=VERSIONED, VersioningConfiguration={"Status": "Enabled"})
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
        monkeypatch.setenv("MODERATION_REVIEW_QUEUE_URL", queue_url)
        w = World(endpoint, s3, sqs, queue_url, monkeypatch, capsys, sleeps=sleeps)
        endpoint.set_default("DetectModerationLabels", _detect_reply(w))
        reset()
        try:
            yield w
        finally:
            reset()


# -- events built from the documentation's examples ---------------------------------------------


def s3_notification(*objects: dict[str, Any], encode: Callable[[str], str] = quote_plus) -> dict:
    """The S3 ObjectCreated:Put example, one record per object."""
    template = event("s3-object-created-put.json")["Records"][0]
    records = []
    for obj in objects:
        record = copy.deepcopy(template)
        record["s3"]["bucket"]["name"] = obj["bucket"]
        record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{obj['bucket']}"
        target = record["s3"]["object"]
        target["key"] = encode(obj["key"])
        target["eTag"] = obj["etag"]
        target["size"] = obj["size"]
        if obj.get("version"):
            target["versionId"] = obj["version"]
        else:
            del target["versionId"]  # what S3 sends for an unversioned bucket
        records.append(record)
    return {"Records": records}


def eventbridge(obj: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    """The EventBridge Object Created example for `obj` (`key`: the key as the event spells it;
    S3 sends EventBridge the key itself, not URL-encoded)."""
    doc = event("eventbridge-object-created.json")
    doc["resources"] = [f"arn:aws:s3:::{obj['bucket']}"]
    doc["detail"]["bucket"]["name"] = obj["bucket"]
    doc["detail"]["object"].update(
        key=obj["key"] if key is None else key, etag=obj["etag"], size=obj["size"]
    )
    if obj.get("version"):
        doc["detail"]["object"]["version-id"] = obj["version"]
    else:
        del doc["detail"]["object"]["version-id"]
    return doc


def sns_envelope(message: dict[str, Any]) -> dict[str, Any]:
    doc = event("sns-notification.json")
    doc["Subject"] = "Amazon S3 Notification"
    doc["Message"] = json.dumps(message)
    return doc


def sqs_event(*bodies: dict[str, Any] | str) -> dict[str, Any]:
    """The SQS example event, one message per body, message ids msg-1, msg-2, ..."""
    template = event("sqs-message-event.json")["Records"][0]
    records = []
    for n, body in enumerate(bodies, 1):
        record = copy.deepcopy(template)
        record["messageId"] = f"msg-{n}"
        record["body"] = body if isinstance(body, str) else json.dumps(body)
        records.append(record)
    return {"Records": records}


def audit_by_key(world: World) -> dict[str, dict[str, Any]]:
    return {r["image"]["s3"]["key"]: r for r in world.audit()}


# -- outcomes, tags, review messages -------------------------------------------------------------


def test_direct_s3_event_tags_every_outcome_and_sends_the_review_message(world):
    approved = world.put("photos/approved.png", solid("png", color=GREEN))
    rejected = world.put("photos/rejected.png", solid("png", color=RED), labels=EXPLICIT)
    review = world.put("photos/review.png", solid("png", color=BLUE), tenant="forum", labels=HATE)
    judged = world.put("photos/judged.png", solid("png", (130, 90)), labels=WEAPONS)
    invalid = world.put("photos/notes.png", b"this is a text file, not an image")

    result = world.invoke(s3_notification(approved, rejected, review, judged, invalid))

    records = audit_by_key(world)
    assert sorted(records) == [
        "photos/approved.png", "photos/judged.png", "photos/rejected.png", "photos/review.png"
    ]  # fmt: skip
    ids = {key: r["id"] for key, r in records.items()}
    assert result == {
        "objects": [
            {"bucket": UPLOADS, "key": "photos/approved.png", "version_id": None,
             "outcome": "approved", "decision_id": ids["photos/approved.png"], "replayed": False},
            {"bucket": UPLOADS, "key": "photos/rejected.png", "version_id": None,
             "outcome": "rejected", "decision_id": ids["photos/rejected.png"], "replayed": False},
            {"bucket": UPLOADS, "key": "photos/review.png", "version_id": None,
             "outcome": "review", "decision_id": ids["photos/review.png"], "replayed": False},
            {"bucket": UPLOADS, "key": "photos/judged.png", "version_id": None,
             "outcome": "approved", "decision_id": ids["photos/judged.png"], "replayed": False},
            {"bucket": UPLOADS, "key": "photos/notes.png", "version_id": None,
             "outcome": "invalid", "decision_id": None, "replayed": False,
             "reason": "not an image (no known magic bytes)"},
        ]
    }  # fmt: skip
    for key in ("photos/approved.png", "photos/rejected.png", "photos/judged.png"):
        assert world.tags(key) == {"moderation-outcome": records[key]["outcome"],
                                   "moderation-decision": ids[key]}  # fmt: skip
    assert world.tags("photos/review.png") == {
        "moderation-outcome": "review", "moderation-decision": ids["photos/review.png"]
    }  # fmt: skip
    assert world.tags("photos/notes.png") == {
        "moderation-outcome": "invalid",
        "moderation-reason": "not an image no known magic bytes",
    }
    # The tenant came from x-amz-meta-tenant; the others had none and got `default`.
    assert records["photos/review.png"]["tenant"] == "forum"
    assert records["photos/review.png"]["policy"]["id"] == "forum"
    assert records["photos/approved.png"]["policy"]["id"] == "default"
    assert records["photos/judged.png"]["decided_by"] == "judge"
    assert world.endpoint.count("Converse") == 1  # only the borderline image went to the judge
    assert world.endpoint.unexpected == []
    assert records["photos/rejected.png"]["context"] == {
        "trigger": "s3", "bucket": UPLOADS, "key": "photos/rejected.png",
        "etag": rejected["etag"], "request_id": Context.aws_request_id,
    }  # fmt: skip
    # No quarantine bucket configured: rejected and invalid objects stay, tagged.
    assert world.exists("photos/rejected.png") and world.exists("photos/notes.png")

    [message] = world.review_messages()
    review_record = records["photos/review.png"]
    assert json.loads(message["Body"]) == {
        "schema": 1,
        "decision_id": review_record["id"],
        "tenant": "forum",
        "bucket": UPLOADS,
        "key": "photos/review.png",
        "version_id": None,
        "etag": review["etag"],
        "reasons": review_record["reasons"],
        "created_at": review_record["created_at"],
        "policy_id": "forum",
        "policy_sha256": review_record["policy"]["sha256"],
        "findings": [{"label": "Hate Symbols", "confidence": 81.25, "band": "review"}],
        "rationale": "",
    }
    assert review_record["reasons"] == [
        "sent to review by policy: Hate Symbols 81.2% >= review 40 (rule 'Hate Symbols')"
    ]
    assert "MessageGroupId" not in message["Attributes"]  # a standard queue

    [invalid_log] = world.logs("WARNING")
    assert invalid_log["message"] == "invalid input: tagged invalid"
    assert invalid_log["bucket"] == UPLOADS and invalid_log["key"] == "photos/notes.png"
    assert invalid_log["reason"] == "not an image (no known magic bytes)"
    assert invalid_log["tenant"] == "default"


def test_quarantine_moves_rejected_and_invalid_objects_with_their_tags(world):
    world.cold_start(MODERATION_QUARANTINE_BUCKET=QUARANTINE)
    ok = world.put("a/ok.png", solid("png", color=GREEN), tags={"owner": "alice"})
    bad = world.put("a/bad.png", solid("png", color=RED), labels=EXPLICIT, tags={"owner": "bob"})
    bomb = world.put("a/bomb.png", png_header_only(20_000, 20_000))
    v_bad = world.put("v/bad.png", solid("png", color=BLUE), bucket=VERSIONED, labels=EXPLICIT)
    v_new = world.put("v/bad.png", solid("png", (100, 100)), bucket=VERSIONED)  # a newer version

    world.invoke(s3_notification(ok, bad, bomb, v_bad))

    ids = {key: r["id"] for key, r in audit_by_key(world).items()}
    assert world.exists("a/ok.png")
    assert world.tags("a/ok.png") == {
        "owner": "alice", "moderation-outcome": "approved", "moderation-decision": ids["a/ok.png"]
    }  # fmt: skip
    assert not world.exists("a/bad.png") and not world.exists("a/bomb.png")
    assert world.tags("a/bad.png", QUARANTINE) == {
        "owner": "bob", "moderation-outcome": "rejected", "moderation-decision": ids["a/bad.png"]
    }  # fmt: skip
    moved = world.s3.get_object(Bucket=QUARANTINE, Key="a/bad.png")["Body"].read()
    assert moved == solid("png", color=RED)
    bomb_tags = world.tags("a/bomb.png", QUARANTINE)
    assert bomb_tags["moderation-outcome"] == "invalid"
    assert bomb_tags["moderation-reason"].startswith("image is 20000x20000 px 400000000 pixels")
    # Versioned: exactly the moderated version was moved; the newer one stays, untouched.
    versions = world.s3.list_object_versions(Bucket=VERSIONED, Prefix="v/bad.png")["Versions"]
    assert [v["VersionId"] for v in versions] == [v_new["version"]]
    assert world.tags("v/bad.png", QUARANTINE)["moderation-outcome"] == "rejected"

    # A redelivery finds the moved objects gone: it succeeds and says so.
    again = world.invoke(s3_notification(bad))
    assert again == {
        "objects": [
            {"bucket": UPLOADS, "key": "a/bad.png", "version_id": None, "outcome": None,
             "decision_id": None, "skipped": "the object no longer exists"}
        ]
    }  # fmt: skip
    assert world.logs("INFO")[-1]["message"].startswith("the object no longer exists")


def test_unknown_tenant_is_invalid_never_the_default_policy(world):
    nobody = world.put("x/nobody.png", solid("png", color=GREEN), tenant="no-such-tenant")
    bad_id = world.put("x/bad-id.png", solid("png", color=RED), tenant="Kids/../default")

    result = world.invoke(s3_notification(nobody, bad_id))

    assert [o["outcome"] for o in result["objects"]] == ["invalid", "invalid"]
    assert result["objects"][0]["reason"] == (
        "tenant: no policy for tenant 'no-such-tenant'; this store does not fall back to default "
        "(fallback_to_default=False)"
    )
    assert world.tags("x/nobody.png") == {
        "moderation-outcome": "invalid",
        "moderation-reason": "tenant: no policy for tenant no-such-tenant this store does not fall "
        "back to default fallback_to_default=False",
    }
    assert world.tags("x/bad-id.png")["moderation-reason"].startswith(
        "tenant: invalid tenant id Kids/../default"
    )
    assert world.detects() == 0 and world.audit() == []


# -- SQS: partial batch failures -----------------------------------------------------------------


def test_sqs_reports_only_the_transient_failure_and_tags_the_corrupt_image_invalid(world):
    good = world.put("q/good.png", solid("png", color=GREEN))
    throttled = world.put("q/throttled.png", solid("png", color=RED), labels=Reply.throttle())
    corrupt_png = solid("png", color=BLUE)[:40] + b"\x00" * 200  # a PNG cut short
    corrupt = world.put("q/corrupt.png", corrupt_png)

    result = world.invoke(
        sqs_event(s3_notification(good), s3_notification(throttled), s3_notification(corrupt))
    )

    assert result == {"batchItemFailures": [{"itemIdentifier": "msg-2"}]}
    attempts = world.detects("q/throttled.png")  # until the deadline, then DetectorError
    assert attempts >= 2
    assert len(world.sleeps) == attempts - 1
    assert world.tags("q/throttled.png") == {}  # nothing applied: it will be retried
    assert world.tags("q/good.png")["moderation-outcome"] == "approved"
    corrupt_tags = world.tags("q/corrupt.png")
    assert corrupt_tags["moderation-outcome"] == "invalid"
    assert "moderation-decision" not in corrupt_tags
    [transient] = [x for x in world.logs("WARNING") if x["message"].startswith("transient")]
    assert transient["key"] == "q/throttled.png"
    assert transient["error_type"] == "DetectorError"
    assert transient["tenant"] == "default"

    # The retry (the throttling has passed) moderates it; the others are not moderated again.
    world.labels["q/throttled.png"] = []
    before = world.detects()
    retried = world.invoke(sqs_event(s3_notification(throttled)))
    assert retried == {"batchItemFailures": []}
    assert world.tags("q/throttled.png")["moderation-outcome"] == "approved"
    assert world.detects() == before + 1


def test_sqs_bodies_sns_envelopes_eventbridge_events_and_test_events(world):
    a = world.put("w/a.png", solid("png", color=GREEN))
    b = world.put("w/b.png", solid("png", color=RED), labels=EXPLICIT)
    result = world.invoke(
        sqs_event(
            event("s3-test-event.json"),
            sns_envelope(s3_notification(a)),
            eventbridge(b),
            "this is not JSON",
        )
    )
    # The unreadable body fails (and reaches the dead-letter queue); the test event is consumed.
    assert result == {"batchItemFailures": [{"itemIdentifier": "msg-4"}]}
    assert world.tags("w/a.png")["moderation-outcome"] == "approved"
    assert world.tags("w/b.png")["moderation-outcome"] == "rejected"
    records = audit_by_key(world)
    assert records["w/a.png"]["context"]["event_id"] == "msg-2"
    assert records["w/b.png"]["context"]["trigger"] == "sqs"
    [error] = world.logs("ERROR")
    assert error["message_id"] == "msg-4"
    assert error["error"].startswith("the message body is not JSON")


def test_direct_test_event_is_acknowledged(world):
    assert world.invoke(event("s3-test-event.json")) == {"objects": []}
    assert world.logs("INFO")[-1]["why"] == "s3:TestEvent (sent when notifications are set up)"


def test_direct_invocation_raises_so_that_lambda_retries(world):
    ok = world.put("d/ok.png", solid("png", color=GREEN))
    busy = world.put("d/busy.png", solid("png", color=RED), labels=Reply.throttle())
    with pytest.raises(RetryLater, match=r"1 object could not be moderated now") as raised:
        world.invoke(s3_notification(ok, busy))
    assert [where for where, _ in raised.value.failures] == [f"s3://{UPLOADS}/d/busy.png"]
    assert world.tags("d/ok.png")["moderation-outcome"] == "approved"  # the rest was applied
    assert world.tags("d/busy.png") == {}


# -- idempotency ---------------------------------------------------------------------------------


def test_redelivery_returns_the_first_decision_warm_and_cold_with_the_dynamodb_table(world):
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    world.cold_start(MODERATION_IDEMPOTENCY_TABLE=TABLE, MODERATION_IDEMPOTENCY_TTL="3600")
    obj = world.put("r/photo.png", solid("png", color=BLUE), labels=HATE)
    delivery = sqs_event(s3_notification(obj))

    assert world.invoke(delivery) == {"batchItemFailures": []}
    [first] = world.audit()
    assert world.tags("r/photo.png") == {
        "moderation-outcome": "review", "moderation-decision": first["id"]
    }  # fmt: skip

    # The same message again (warm), a new message through EventBridge (warm), then a cold start.
    world.invoke(delivery)
    via_eventbridge = world.invoke(eventbridge(obj))
    world.cold_start()
    world.invoke(delivery)

    assert via_eventbridge["objects"][0]["decision_id"] == first["id"]
    assert via_eventbridge["objects"][0]["replayed"] is True
    assert world.endpoint.count("DetectModerationLabels") == 1
    assert len(world.audit()) == 1
    assert world.tags("r/photo.png")["moderation-decision"] == first["id"]
    # Review messages are at least once: every delivery sends the same one again.
    bodies = [json.loads(m["Body"]) for m in world.review_messages()]
    assert {b["decision_id"] for b in bodies} == {first["id"]}
    [item] = dynamodb.scan(TableName=TABLE)["Items"]
    assert item["status"]["S"] == "COMPLETED"
    assert item["id"]["S"].startswith("moderation.moderation.aws_lambda._handler._moderate_object#")
    assert json.loads(item["data"]["S"])["decision"]["id"] == first["id"]
    # Redeliveries counted as such, not as a second outcome.
    redelivered = [m for m in world.emf() if "Redelivered" in m]
    assert [m["Redelivered"] for m in redelivered] == [[1.0], [1.0], [1.0]]

    # New content under the same key is a new object: a new decision.
    changed = world.put("r/photo.png", solid("png", (100, 100), color=GREEN))
    world.invoke(sqs_event(s3_notification(changed)))
    second = world.audit()[-1]
    assert second["id"] != first["id"] and second["outcome"] == "approved"
    assert world.endpoint.count("DetectModerationLabels") == 2
    assert world.tags("r/photo.png")["moderation-decision"] == second["id"]


def create_idempotency_table() -> Any:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return dynamodb


class FailingDynamoDB:
    """One DynamoDB operation of the function's idempotency client fails while `failing`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, operation: str) -> None:
        self.operation = operation
        self.failing = False
        self.failed = 0
        real = _handler.sdk_client

        def built(service: str, **options: Any) -> Any:
            client = real(service, **options)
            client.meta.events.register(f"before-call.dynamodb.{operation}", self._maybe_fail)
            return client

        monkeypatch.setattr(_handler, "sdk_client", built)

    def _maybe_fail(self, **_: Any) -> None:
        if self.failing:
            self.failed += 1
            error = {"Code": "InternalServerError", "Message": "injected"}
            raise ClientError({"Error": error}, self.operation)


LOCK = 1.5  # MODERATION_IDEMPOTENCY_LOCK in these tests: short, to wait it out


@pytest.mark.parametrize(
    "failing",
    [
        "UpdateItem",  # the moderation decided; storing its answer failed
        "DeleteItem",  # the moderation failed; taking its record back out failed
    ],
)
def test_an_answer_never_stored_locks_the_object_only_until_the_lock_expires(
    world, monkeypatch, failing
):
    dynamodb = create_idempotency_table()
    injected = FailingDynamoDB(monkeypatch, failing)
    world.cold_start(MODERATION_IDEMPOTENCY_TABLE=TABLE, MODERATION_IDEMPOTENCY_LOCK=str(LOCK))
    first = [] if failing == "UpdateItem" else Reply.fail("AccessDeniedException", "no", 400)
    obj = world.put("lock/photo.png", solid("png", color=GREEN), labels=first)
    delivery = s3_notification(obj)
    injected.failing = True
    with pytest.raises(RetryLater, match="idempotency store"):
        world.invoke(delivery)  # the context has 300 s left: the lock is not that
    injected.failing = False
    assert injected.failed >= 1 and world.tags("lock/photo.png") == {}  # nothing approved
    [item] = dynamodb.scan(TableName=TABLE)["Items"]
    assert item["status"]["S"] == "INPROGRESS"
    expires = int(item["in_progress_expiration"]["N"]) / 1000
    assert expires <= time.time() + LOCK
    world.labels["lock/photo.png"] = []

    # A redelivery within the lock is refused as in progress, and retried later.
    with pytest.raises(RetryLater, match="already in progress"):
        world.invoke(delivery)
    assert world.tags("lock/photo.png") == {}

    # Once it has expired, a redelivery decides the image.
    time.sleep(max(0.0, expires - time.time()) + 0.1)
    [answer] = world.invoke(delivery)["objects"]
    assert answer["outcome"] == "approved" and answer["replayed"] is False
    assert world.tags("lock/photo.png") == {
        "moderation-outcome": "approved", "moderation-decision": answer["decision_id"]
    }  # fmt: skip
    [item] = dynamodb.scan(TableName=TABLE)["Items"]
    assert item["status"]["S"] == "COMPLETED"
    decisions = [r["id"] for r in world.audit()]
    # The first decision was logged before its answer failed to be stored: two decisions of the
    # same image, both in the audit log; the object carries the second.
    assert len(decisions) == (2 if failing == "UpdateItem" else 1)
    assert decisions[-1] == answer["decision_id"] and len(set(decisions)) == len(decisions)


def test_without_a_table_redelivery_is_remembered_only_by_the_warm_instance(world):
    obj = world.put("m/photo.png", solid("png", color=GREEN))
    delivery = s3_notification(obj)
    first = world.invoke(delivery)["objects"][0]["decision_id"]
    again = world.invoke(delivery)["objects"][0]
    assert again["decision_id"] == first and again["replayed"] is True
    assert world.detects() == 1
    world.cold_start()
    cold = world.invoke(delivery)["objects"][0]
    assert cold["decision_id"] != first and cold["replayed"] is False
    assert world.detects() == 2


def test_a_versioned_object_is_moderated_per_version(world):
    v1 = world.put("p/photo.png", solid("png", color=RED), bucket=VERSIONED, labels=EXPLICIT)
    v2 = world.put("p/photo.png", solid("png", color=GREEN), bucket=VERSIONED)
    result = world.invoke(s3_notification(v1, v2))
    assert [(o["version_id"], o["outcome"]) for o in result["objects"]] == [
        (v1["version"], "rejected"), (v2["version"], "approved")
    ]  # fmt: skip
    assert world.tags("p/photo.png", VERSIONED, v1["version"])["moderation-outcome"] == "rejected"
    assert world.tags("p/photo.png", VERSIONED, v2["version"])["moderation-outcome"] == "approved"
    requested = [r.body["Image"]["S3Object"].get("Version") for r in world.endpoint.requests]
    assert requested == [v1["version"], v2["version"]]


# -- keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encode",
    [quote_plus, functools.partial(quote_plus, safe="/")],
    ids=["slash-encoded", "slash-kept"],
)
def test_url_encoded_keys_with_spaces_plus_and_unicode(world, encode):
    keys = ["uploads/my cat.png", "фото/ünï cødé ✓.png", "c++/a+b=c.png"]
    objects = [world.put(k, solid("png", (90 + n, 90))) for n, k in enumerate(keys)]
    result = world.invoke(s3_notification(*objects, encode=encode))
    assert [o["key"] for o in result["objects"]] == keys
    assert [o["outcome"] for o in result["objects"]] == ["approved"] * 3
    for key in keys:
        assert world.tags(key)["moderation-outcome"] == "approved"


def test_eventbridge_keys_are_used_as_sent(world):
    # GIVEN `c+d.png` (explicit) beside `c d.png` (clean), and a key with a literal `%`
    plus = world.put("eb/c+d.png", solid("png", color=RED), labels=EXPLICIT)
    spaced = world.put("eb/c d.png", solid("png", color=GREEN))
    percent = world.put("eb/100%25.png", solid("png", (92, 90)))
    # WHEN EventBridge names each (S3 sends it the key itself, not URL-encoded)
    results = [world.invoke(eventbridge(o))["objects"][0] for o in (plus, spaced, percent)]
    # THEN each event's own object is moderated and tagged, never a decoded spelling of it
    assert [(r["key"], r["outcome"]) for r in results] == [
        ("eb/c+d.png", "rejected"), ("eb/c d.png", "approved"), ("eb/100%25.png", "approved")
    ]  # fmt: skip
    assert world.tags("eb/c+d.png")["moderation-outcome"] == "rejected"
    assert world.tags("eb/c d.png")["moderation-outcome"] == "approved"
    assert [r.body["Image"]["S3Object"]["Name"] for r in world.endpoint.requests] == [
        "eb/c+d.png", "eb/c d.png", "eb/100%25.png"
    ]  # fmt: skip
    assert audit_by_key(world)["eb/c+d.png"]["context"]["trigger"] == "eventbridge"


def test_an_eventbridge_key_that_arrives_encoded_still_names_its_object(world):
    # GIVEN `red flower.png` alone, named by an event that spells its key URL-encoded (as
    # Powertools assumes EventBridge may): the key as sent names no object
    spaced = world.put("eb/red flower.png", solid("png", color=RED), labels=EXPLICIT)
    # WHEN the event arrives
    [result] = world.invoke(eventbridge(spaced, key="eb/red+flower.png"))["objects"]
    # THEN the decoded reading, which names an object with the event's ETag, is moderated
    assert (result["key"], result["outcome"]) == ("eb/red flower.png", "rejected")
    assert world.tags("eb/red flower.png")["moderation-outcome"] == "rejected"


def test_of_two_readings_of_an_eventbridge_key_the_one_with_the_events_etag_wins(world):
    # GIVEN `a+b.png` and `a b.png`, different content, both present
    plus = world.put("eb/a+b.png", solid("png", color=GREEN))
    spaced = world.put("eb/a b.png", solid("png", color=RED), labels=EXPLICIT)
    # WHEN an event spelled `a+b.png` carries the ETag of `a b.png` (an encoded key)
    doc = eventbridge(spaced, key="eb/a+b.png")
    [result] = world.invoke(doc)["objects"]
    # THEN `a b.png` is the object moderated and tagged; `a+b.png` is left alone
    assert (result["key"], result["outcome"]) == ("eb/a b.png", "rejected")
    assert "moderation-outcome" not in world.tags("eb/a+b.png")
    # AND an event with `a+b.png`'s own ETag moderates `a+b.png` itself
    [result] = world.invoke(eventbridge(plus))["objects"]
    assert (result["key"], result["outcome"]) == ("eb/a+b.png", "approved")


# -- metrics, configuration -----------------------------------------------------------------------


def test_emf_metrics_by_tenant(world):
    world.cold_start(POWERTOOLS_METRICS_NAMESPACE="Acme/Moderation")
    a = world.put("e/a.png", solid("png", color=GREEN))
    b = world.put("e/b.png", solid("png", color=RED), labels=WEAPONS)
    c = world.put("e/c.png", solid("png", color=BLUE), tenant="kids", labels=EXPLICIT)
    d = world.put("e/d.png", b"GIF89a nothing", tenant="kids")
    world.invoke(s3_notification(a, b, c, d))

    by_tenant = {m["tenant"]: m for m in world.emf()}
    assert sorted(by_tenant) == ["default", "kids"]
    records = audit_by_key(world)
    default, kids = by_tenant["default"], by_tenant["kids"]
    for m in (default, kids):
        [directive] = m["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Acme/Moderation"
        assert directive["Dimensions"] == [["tenant"]]
    assert default["Approved"] == [2.0] and default["Escalations"] == [1.0]
    assert "JudgeFailures" not in default and "Rejected" not in default
    assert default["LatencyMs"] == [
        records["e/a.png"]["timings_ms"]["total"], records["e/b.png"]["timings_ms"]["total"]
    ]  # fmt: skip
    judged_cost = records["e/b.png"]["cost"]
    assert default["CostUSD"] == [
        records["e/a.png"]["cost"]["rekognition_usd"],
        judged_cost["rekognition_usd"] + judged_cost["bedrock_usd"],
    ]
    assert kids["Rejected"] == [1.0] and kids["Invalid"] == [1.0]
    units = {m["Name"]: m["Unit"] for m in kids["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units == {
        "Invalid": "Count", "Rejected": "Count", "LatencyMs": "Milliseconds", "CostUSD": "None"
    }  # fmt: skip


def test_configuration_error_names_every_bad_variable_on_every_invocation(world):
    world.cold_start(
        MODERATION_QUARANTINE_BUCKET="Not_A_Bucket",
        MODERATION_IDEMPOTENCY_TTL="-5",
        MODERATION_REVEIW_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/1/x",
    )
    for _ in range(2):
        with pytest.raises(ConfigurationError) as raised:
            world.invoke(s3_notification())
        assert raised.value.problems == (
            "MODERATION_REVEIW_QUEUE_URL: not a setting of this library (did you mean "
            "MODERATION_REVIEW_QUEUE_URL?)",
            "MODERATION_IDEMPOTENCY_TTL: must be a positive number of seconds, got '-5'",
            "MODERATION_QUARANTINE_BUCKET: 'Not_A_Bucket' is not a bucket name (3-63 of a-z 0-9 "
            ". -, no s3:// prefix)",
        )
    [logged] = world.logs("ERROR")  # logged once, at the cold start
    assert logged["problems"] == list(raised.value.problems)


def test_a_bad_queue_url_does_not_hide_policies_that_do_not_exist(world, tmp_path):
    # GIVEN two mistakes: a queue name where its URL belongs, and a policy directory not there
    missing = tmp_path / "no-such-policies"
    world.cold_start(MODERATION_REVIEW_QUEUE_URL="review-queue", MODERATION_POLICIES=str(missing))
    # WHEN the function is invoked (twice: the error is the same on every invocation)
    for _ in range(2):
        with pytest.raises(ConfigurationError) as raised:
            world.invoke(s3_notification())
        # THEN one error names both
        assert raised.value.problems == (
            "MODERATION_REVIEW_QUEUE_URL: must be an SQS queue URL "
            "(https://sqs.REGION.amazonaws.com/ACCOUNT/NAME), got 'review-queue'",
            f"MODERATION_POLICIES: {missing}: policy directory not found"
            " (a store needs default.yaml: `moderation policy init DIR` writes the starter"
            " policies there)",
        )
    [logged] = world.logs("ERROR")
    assert logged["problems"] == list(raised.value.problems)


def test_the_function_builds_its_engine_through_the_shared_wiring(world):
    # GIVEN the wiring's detector replaced: what the engine, the CLI and the function all build
    from moderation import wiring
    from moderation.testing import StaticDetector

    world.monkeypatch.setattr(
        wiring, "detector", lambda settings: StaticDetector([("Explicit", 96.5)])
    )
    world.cold_start()
    obj = world.put("w/photo.png", solid("png", color=GREEN))
    # WHEN an object arrives
    [entry] = world.invoke(s3_notification(obj))["objects"]
    # THEN the function decided with that detector, and Rekognition was never called
    assert entry["outcome"] == "rejected"
    assert world.detects() == 0


def test_a_fifo_review_queue_gets_group_and_deduplication_ids(world):
    created = world.sqs.create_queue(QueueName="review.fifo", Attributes={"FifoQueue": "true"})
    fifo = created["QueueUrl"]
    world.cold_start(MODERATION_REVIEW_QUEUE_URL=fifo)
    obj = world.put("f/photo.png", solid("png", color=BLUE), labels=HATE)
    decision_id = world.invoke(s3_notification(obj))["objects"][0]["decision_id"]
    [message] = world.sqs.receive_message(
        QueueUrl=fifo, AttributeNames=["All"], MaxNumberOfMessages=10
    )["Messages"]
    assert message["Attributes"]["MessageGroupId"] == decision_id
    assert message["Attributes"]["MessageDeduplicationId"] == decision_id
    assert json.loads(message["Body"])["decision_id"] == decision_id


def test_a_full_tag_set_keeps_the_outcome_and_drops_the_decision_tag(world):
    theirs = {f"t{n}": f"v{n}" for n in range(9)}
    obj = world.put("t/photo.png", solid("png", color=GREEN), tags=theirs)
    world.invoke(s3_notification(obj))
    assert world.tags("t/photo.png") == {**theirs, "moderation-outcome": "approved"}
    [warning] = world.logs("WARNING")
    assert warning["message"] == "the object has too many tags for all of ours: some were left out"
    assert list(warning["dropped"]) == ["moderation-decision"]


def test_an_overwrite_while_tagging_takes_our_tags_off_and_retries(world):
    from moderation.aws_lambda import _handler

    obj = world.put("o/photo.png", solid("png", color=GREEN))
    world.invoke(event("s3-test-event.json"))  # the cold start, to reach its S3 client

    def overwrite(**kwargs: Any) -> None:
        if kwargs["params"]["Key"] == "o/photo.png" and not world.labels.get("done"):
            world.labels["done"] = True
            world.s3.put_object(Bucket=UPLOADS, Key="o/photo.png", Body=solid("png", color=RED))
            world.labels["o/photo.png"] = EXPLICIT

    state = _handler._STATE
    assert isinstance(state, _handler._State)
    state.s3.client.meta.events.register("provide-client-params.s3.PutObjectTagging", overwrite)
    with pytest.raises(RetryLater, match="was overwritten while its outcome was applied"):
        world.invoke(s3_notification(obj))
    assert world.tags("o/photo.png") == {}  # not the old content's "approved"
    # The retry moderates what is there now.
    retried = world.invoke(s3_notification(obj))
    assert retried["objects"][0]["outcome"] == "rejected"
    assert world.tags("o/photo.png")["moderation-outcome"] == "rejected"


def test_a_fifo_source_queue_fails_the_rest_of_the_batch_after_a_failure(world):
    busy = world.put("ff/busy.png", solid("png", color=RED), labels=Reply.throttle())
    later = world.put("ff/later.png", solid("png", color=GREEN))
    payload = sqs_event(s3_notification(busy), s3_notification(later))
    for record in payload["Records"]:
        record["eventSourceARN"] = "arn:aws:sqs:us-east-2:123456789012:uploads.fifo"
    assert world.invoke(payload) == {
        "batchItemFailures": [{"itemIdentifier": "msg-1"}, {"itemIdentifier": "msg-2"}]
    }
    assert world.detects("ff/later.png") == 0  # kept in order: not processed before msg-1
    assert world.tags("ff/later.png") == {}
