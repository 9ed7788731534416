"""Which object the Lambda moderates: the one its event names, by (bucket, key, version).

Built on the end-to-end world of `test_lambda.py` (moto's S3, SQS and DynamoDB, the local
Rekognition and Bedrock). An object is handed to the engine as an `S3Location`, never as an
`s3://` string re-parsed later, so no key (`cat.png?versionId=null`) can name another object.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from images import GREEN, RED, solid
from test_lambda import (
    EXPLICIT,
    UPLOADS,
    World,
    audit_by_key,
    s3_notification,
    sqs_event,
)
from test_lambda import _one_session as _one_session  # an autouse fixture
from test_lambda import world as _lambda_world  # noqa: F401  (a fixture, used by name)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "events"


@pytest.fixture
def world(request: pytest.FixtureRequest) -> World:
    """`test_lambda.py`'s world: moto's S3, SQS and DynamoDB, the local Rekognition and Bedrock."""
    found: World = request.getfixturevalue("_lambda_world")
    return found


def _tag(world: World, key: str, bucket: str = UPLOADS) -> str | None:
    return world.tags(key, bucket).get("moderation-outcome")


def _old_null_version_bucket(world: World, name: str) -> None:
    """A bucket whose objects from before versioning keep the version id `null`, then versioning
    suspended: new uploads get `null` too, and the event names no version."""
    world.s3.create_bucket(Bucket=name)
    world.put("cat.png", solid("png", color=RED), bucket=name, labels=EXPLICIT)
    for status in ("Enabled", "Suspended"):
        world.s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": status})


@pytest.mark.parametrize("bucket", [UPLOADS, "uploads-suspended"])
def test_a_key_holding_version_id_null_is_moderated_as_itself(world: World, bucket: str) -> None:
    # GIVEN an explicit `cat.png` (addressable as version `null`) and a clean upload whose key
    # is `cat.png?versionId=null`
    if bucket == UPLOADS:
        world.put("cat.png", solid("png", color=RED), labels=EXPLICIT)
    else:
        _old_null_version_bucket(world, bucket)
    upload = world.put("cat.png?versionId=null", solid("png", color=GREEN), bucket=bucket)

    # WHEN the upload's event arrives
    result = world.invoke(s3_notification(upload))

    # THEN the upload itself is read, moderated, audited and tagged; `cat.png` is left alone
    [summary] = result["objects"]
    assert (summary["key"], summary["outcome"]) == ("cat.png?versionId=null", "approved")
    detected = [r.body["Image"]["S3Object"] for r in world.endpoint.requests]
    assert [(d["Name"], d.get("Version")) for d in detected] == [("cat.png?versionId=null", None)]
    record = audit_by_key(world)["cat.png?versionId=null"]
    assert record["image"]["s3"]["bucket"] == bucket
    assert record["image"]["s3"]["version_id"] is None
    assert record["outcome"] == "approved"
    assert _tag(world, "cat.png?versionId=null", bucket) == "approved"
    assert _tag(world, "cat.png", bucket) is None


def test_a_versioned_key_holding_version_id_keeps_its_own_version(world: World) -> None:
    # GIVEN two versions under a key that itself ends in `?versionId=...`
    key = "p/x.png?versionId=abc"
    v1 = world.put(key, solid("png", color=RED), bucket="uploads-versioned", labels=EXPLICIT)
    v2 = world.put(key, solid("png", color=GREEN), bucket="uploads-versioned")
    # WHEN both events arrive
    result = world.invoke(s3_notification(v1, v2))
    # THEN each version is moderated under its own key and version
    assert [(o["key"], o["version_id"], o["outcome"]) for o in result["objects"]] == [
        (key, v1["version"], "rejected"), (key, v2["version"], "approved")
    ]  # fmt: skip
    detected = [r.body["Image"]["S3Object"] for r in world.endpoint.requests]
    assert [(d["Name"], d["Version"]) for d in detected] == [
        (key, v1["version"]), (key, v2["version"])
    ]  # fmt: skip


def _bad_bucket(world: World, bucket: str) -> dict[str, Any]:
    obj = world.put("ok.png", solid("png", color=GREEN))
    doc = s3_notification(obj)
    doc["Records"][0]["s3"]["bucket"]["name"] = bucket
    return doc


@pytest.mark.parametrize("bucket", ["{{{bucket}}}", "Not_A_Bucket!", "Uploads"])
def test_an_sqs_message_naming_a_bucket_s3_cannot_have_is_not_retried(world: World, bucket: str):
    # GIVEN a message whose object is in a bucket S3 cannot have, beside a good one
    good = world.put("good.png", solid("png", color=GREEN))
    result = world.invoke(sqs_event(_bad_bucket(world, bucket), s3_notification(good)))
    # THEN neither is retried (no dead-letter queue for a name no retry can fix) ...
    assert result == {"batchItemFailures": []}
    assert _tag(world, "good.png") == "approved"
    # ... nothing was asked of S3 or Rekognition for it, and the log names the problem
    assert world.detects() == 1
    [error] = world.logs("ERROR")
    assert error["message"] == "invalid event: it names an object S3 cannot have; not retried"
    assert error["bucket"] == bucket and error["event_id"] == "msg-1"
    assert f"bucket name {bucket!r}" in error["error"]


def test_a_direct_event_naming_a_bucket_s3_cannot_have_succeeds_with_the_reason(world: World):
    result = world.invoke(_bad_bucket(world, "{{{bucket}}}"))  # no RetryLater
    [summary] = result["objects"]
    assert summary["bucket"] == "{{{bucket}}}" and summary["outcome"] is None
    assert summary["skipped"] == "the event names no object S3 can have"
    assert "'{', '}'" in summary["reason"]
    assert world.endpoint.requests == []


def test_the_sam_template_event_as_stored_is_refused_not_retried(world: World):
    # aws-sam-cli's S3Put template, placeholders unrendered (fixtures/events/README.md)
    doc = json.loads((FIXTURES / "sam-cli-s3-put-template.json").read_text())
    [summary] = world.invoke(doc)["objects"]
    assert (summary["bucket"], summary["outcome"]) == ("{{{bucket}}}", None)
    assert "bucket name '{{{bucket}}}'" in summary["reason"]


def _fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


@pytest.mark.parametrize(
    ("name", "sent", "beside"),
    [
        ("eventbridge-raw-plus-both-exist.json", "eb/c+d.jpg", "eb/c d.jpg"),
        ("eventbridge-raw-percent20-literal.json", "eb/a%20b.jpg", "eb/a b.jpg"),
    ],
)
def test_an_eventbridge_key_names_that_very_object(world: World, name: str, sent: str, beside: str):
    # GIVEN the object the event names (explicit) and the one its decoded spelling names (clean)
    world.put(sent, solid("png", color=RED), labels=EXPLICIT)
    world.put(beside, solid("png", color=GREEN))
    # WHEN the corpus's EventBridge event arrives, directly and through SQS
    [direct] = world.invoke(_fixture(name))["objects"]
    assert world.invoke(sqs_event(_fixture(name))) == {"batchItemFailures": []}
    # THEN the object named is moderated and tagged; the other is never touched
    assert (direct["key"], direct["outcome"]) == (sent, "rejected")
    assert _tag(world, sent) == "rejected"
    assert _tag(world, beside) is None
    assert world.detects(sent) == 1 and world.detects(beside) == 0


def test_the_corpus_bad_bucket_event_is_refused_not_retried(world: World):
    [summary] = world.invoke(_fixture("s3-direct-bad-bucket-name.json"))["objects"]
    assert (summary["bucket"], summary["key"], summary["outcome"]) == (
        "Not_A_Bucket!",
        "x.jpg",
        None,
    )
    assert summary["skipped"] == "the event names no object S3 can have"
    assert world.invoke(sqs_event(_fixture("s3-direct-bad-bucket-name.json"))) == {
        "batchItemFailures": []
    }
