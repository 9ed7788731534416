"""The Lambda entry point's pure parts: reading events, S3 tag values and sets, the in-memory
idempotency store, and the EMF lines. No AWS, no network."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from moderation import S3Location
from moderation.aws.s3outcome import tag_value
from moderation.aws_lambda import EventError, MemoryPersistenceLayer, ObjectRef, merge_tags
from moderation.aws_lambda._events import Ignored, Refused, parse_document, parse_sqs_body
from moderation.aws_lambda._metrics import Tally

EVENTS = Path(__file__).resolve().parent / "fixtures" / "events"
ROOT = Path(__file__).resolve().parent.parent


def event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


# -- events --------------------------------------------------------------------------------------


def test_the_s3_documentation_example_as_published():
    assert parse_document(event("s3-object-created-put.json")) == [
        ObjectRef(
            bucket="mybucket",
            key="HappyFace.jpg",
            version_id="096fKKXTRTtl3on89fVO.nfljtsv6qko",
            etag="d41d8cd98f00b204e9800998ecf8427e",
            size=1024,
        )
    ]


def test_the_eventbridge_documentation_example_as_published():
    # Its bucket is a placeholder no S3 bucket can have (capitals): a permanent error.
    [refused] = parse_document(event("eventbridge-object-created.json"))
    assert isinstance(refused, Refused)
    assert (refused.bucket, refused.key) == ("DOC-EXAMPLE-BUCKET1", "example-key")
    assert refused.event_id == "17793124-05d4-b198-2fde-7ededc63b103"
    assert "bucket name 'DOC-EXAMPLE-BUCKET1'" in refused.why and "lowercase" in refused.why


def test_the_eventbridge_documentation_example_with_a_real_bucket():
    doc = event("eventbridge-object-created.json")
    doc["detail"]["bucket"]["name"] = "doc-example-bucket1"
    assert parse_document(doc) == [
        ObjectRef(
            bucket="doc-example-bucket1",
            key="example-key",
            version_id="IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
            etag="b1946ac92492d2347c6235b4d2611184",
            size=5,
            event_id="17793124-05d4-b198-2fde-7ededc63b103",
        )
    ]


@pytest.mark.parametrize(
    ("sent", "key"),
    [
        ("red+flower.jpg", "red flower.jpg"),
        ("c%2B%2B/a%2Bb.png", "c++/a+b.png"),
        ("photos%2F2024%2Fx.png", "photos/2024/x.png"),
        ("%D1%84%D0%BE%D1%82%D0%BE/%C3%BC+%E2%9C%93.png", "фото/ü ✓.png"),
        ("100%25.png", "100%.png"),
    ],
)
def test_s3_notification_keys_are_form_decoded(sent, key):
    doc = event("s3-object-created-put.json")
    doc["Records"][0]["s3"]["object"]["key"] = sent
    [ref] = parse_document(doc)
    assert isinstance(ref, ObjectRef)
    assert ref.key == key
    assert ref.location == S3Location("mybucket", key, "096fKKXTRTtl3on89fVO.nfljtsv6qko")


@pytest.mark.parametrize("key", ["a+b.png", "a b.png", "100%25.png", "a%20b.png", "фото/ü ✓.png"])
def test_eventbridge_keys_are_the_keys_as_sent(key):
    # The S3 User Guide's EventBridge detail field is the key itself, not URL-encoded.
    doc = event("eventbridge-object-created.json")
    doc["detail"]["bucket"]["name"] = "uploads"
    doc["detail"]["object"]["key"] = key
    [ref] = parse_document(doc)
    assert isinstance(ref, ObjectRef)
    assert ref.location == S3Location("uploads", key, "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e")


@pytest.mark.parametrize("bucket", ["{{{bucket}}}", "Not_A_Bucket!", "192.168.5.4", "ab"])
def test_an_object_in_a_bucket_s3_cannot_have_is_refused_not_retried(bucket):
    s3 = event("s3-object-created-put.json")
    s3["Records"][0]["s3"]["bucket"]["name"] = bucket
    bridge = event("eventbridge-object-created.json")
    bridge["detail"]["bucket"]["name"] = bucket
    for doc in (s3, bridge):
        [refused] = parse_document(doc)
        assert isinstance(refused, Refused) and refused.bucket == bucket
        assert f"bucket name {bucket!r}" in refused.why


def test_a_key_s3_cannot_store_is_refused():
    doc = event("s3-object-created-put.json")
    doc["Records"][0]["s3"]["object"]["key"] = "k" * 1025
    [refused] = parse_document(doc)
    assert isinstance(refused, Refused) and "1025 bytes" in refused.why


@pytest.mark.parametrize("version", [None, "null", ""])
def test_no_version_for_an_unversioned_bucket(version):
    doc = event("s3-object-created-put.json")
    doc["Records"][0]["s3"]["object"]["versionId"] = version
    [ref] = parse_document(doc)
    assert isinstance(ref, ObjectRef)
    assert ref.version_id is None


def test_other_events_are_acknowledged_and_not_moderated():
    removed = event("s3-object-created-put.json")
    removed["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    deleted = event("eventbridge-object-created.json")
    deleted["detail-type"] = "Object Deleted"
    assert parse_document(removed) == [
        Ignored("s3://mybucket/HappyFace.jpg", "event ObjectRemoved:Delete is not ObjectCreated")
    ]
    assert parse_document(deleted) == [
        Ignored(
            "s3://DOC-EXAMPLE-BUCKET1/example-key",
            "EventBridge 'Object Deleted' is not Object Created",
        )
    ]
    assert parse_document(event("s3-test-event.json")) == [
        Ignored("s3://bucketname", "s3:TestEvent (sent when notifications are set up)")
    ]


def test_sqs_bodies_direct_sns_wrapped_and_eventbridge():
    s3 = event("s3-object-created-put.json")
    sns = event("sns-notification.json")
    sns["Message"] = json.dumps(s3)
    [direct] = parse_sqs_body(json.dumps(s3), "m-1")
    [wrapped] = parse_sqs_body(json.dumps(sns), "m-2")
    bridge = event("eventbridge-object-created.json")
    bridge["detail"]["bucket"]["name"] = "doc-example-bucket1"
    [bridged] = parse_sqs_body(json.dumps(bridge), "m-3")
    assert isinstance(direct, ObjectRef) and direct.event_id == "m-1"
    assert isinstance(wrapped, ObjectRef) and wrapped.key == "HappyFace.jpg"
    assert wrapped.event_id == "m-2"
    assert isinstance(bridged, ObjectRef) and bridged.event_id == "m-3"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("test", "the message body is not JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"hello": 1}', "its keys: hello"),
        (json.dumps(event("sqs-message-event.json")), "eventSource is 'aws:sqs'"),
        (
            json.dumps({"Type": "Notification", "Message": "not json"}),
            "the SNS envelope's Message is not JSON",
        ),
        (
            json.dumps({"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {}}}]}),
            "Records[0].s3.bucket.name must be a non-empty string",
        ),
    ],
)
def test_unreadable_bodies_say_what_is_wrong(body, message):
    with pytest.raises(EventError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_sqs_body(body, "m-1")


def test_an_sns_envelope_inside_an_sns_envelope_is_not_read():
    inner = event("sns-notification.json")
    inner["Message"] = json.dumps(event("s3-object-created-put.json"))
    outer = event("sns-notification.json")
    outer["Message"] = json.dumps(inner)
    with pytest.raises(EventError, match="its keys: Message, MessageId"):
        parse_document(outer)


# -- tags ----------------------------------------------------------------------------------------


def test_tag_values_keep_only_what_s3_allows():
    assert tag_value("not an image (no known magic bytes)") == "not an image no known magic bytes"
    assert tag_value("tenant: no policy for tenant 'x'; a+b=c/d@e_f.g-h") == (
        "tenant: no policy for tenant x a+b=c/d@e_f.g-h"
    )
    assert tag_value("ünïcode ✓ and\nnew lines\t") == "n code and new lines"
    long = " ".join(["word"] * 100)
    assert len(long) == 499
    cut = tag_value(long)
    assert cut == " ".join(["word"] * 51) and len(cut) == 254
    solid = "x" * 300
    assert tag_value(solid) == "x" * 256


def test_merge_keeps_their_tags_and_replaces_ours():
    existing = [
        {"Key": "owner", "Value": "alice"},
        {"Key": "moderation-outcome", "Value": "invalid"},
        {"Key": "moderation-reason", "Value": "old reason"},
        {"Key": "project", "Value": "x"},
    ]
    merged = merge_tags(
        existing, [("moderation-outcome", "approved"), ("moderation-decision", "D")]
    )
    assert merged.tags == (
        ("owner", "alice"),
        ("project", "x"),
        ("moderation-outcome", "approved"),
        ("moderation-decision", "D"),
    )
    assert merged.dropped == ()
    assert merged.as_tag_set()[0] == {"Key": "owner", "Value": "alice"}
    assert merged.as_query() == (
        "owner=alice&project=x&moderation-outcome=approved&moderation-decision=D"
    )


@pytest.mark.parametrize(
    ("theirs", "kept_theirs", "dropped"),
    [
        (8, 8, []),
        (9, 9, [("moderation-decision", "D")]),
        (10, 9, [("moderation-decision", "D"), ("t9", "v9")]),
        (12, 9, [("moderation-decision", "D"), ("t11", "v11"), ("t10", "v10"), ("t9", "v9")]),
    ],
)
def test_a_full_tag_set_always_keeps_the_outcome(theirs, kept_theirs, dropped):
    existing = [{"Key": f"t{n}", "Value": f"v{n}"} for n in range(theirs)]
    merged = merge_tags(
        existing, [("moderation-outcome", "rejected"), ("moderation-decision", "D")]
    )
    assert len(merged.tags) <= 10
    assert merged.tags[:kept_theirs] == tuple((f"t{n}", f"v{n}") for n in range(kept_theirs))
    assert ("moderation-outcome", "rejected") in merged.tags
    assert list(merged.dropped) == dropped


# -- the in-memory idempotency store -------------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def record(key: str, status: str, expiry: int, in_progress: int | None = None) -> DataRecord:
    return DataRecord(
        idempotency_key=key,
        status=status,
        expiry_timestamp=expiry,
        in_progress_expiry_timestamp=in_progress,
    )


def test_memory_store_puts_only_over_expired_records():
    clock = Clock(1_000.0)
    store = MemoryPersistenceLayer(clock=clock)
    with pytest.raises(IdempotencyItemNotFoundError):
        store._get_record("k")
    store._put_record(record("k", "INPROGRESS", expiry=2_000, in_progress=1_500_000))
    with pytest.raises(IdempotencyItemAlreadyExistsError) as exists:
        store._put_record(record("k", "INPROGRESS", expiry=2_000))
    assert exists.value.old_data_record is not None
    assert exists.value.old_data_record.in_progress_expiry_timestamp == 1_500_000
    clock.now = 1_501.0  # the in-progress deadline (ms) has passed: a new attempt may take over
    store._put_record(record("k", "INPROGRESS", expiry=2_000, in_progress=1_600_000))
    completed = record("k", "COMPLETED", expiry=2_000)
    completed.response_data = '{"decision": 1}'
    store._update_record(completed)
    with pytest.raises(IdempotencyItemAlreadyExistsError):
        store._put_record(record("k", "INPROGRESS", expiry=3_000))
    assert store._get_record("k").response_json_as_dict() == {"decision": 1}
    clock.now = 2_001.0  # the record has expired
    store._put_record(record("k", "INPROGRESS", expiry=3_000))
    store._delete_record(record("k", "", expiry=0))
    assert len(store) == 0


# -- metrics -------------------------------------------------------------------------------------


def test_tally_prints_nothing_when_nothing_happened(capsys):
    Tally("Moderation").flush()
    assert capsys.readouterr().out == ""


def test_tally_prints_one_emf_line_per_tenant(capsys):
    tally = Tally("Moderation")
    tally.invalid("kids")
    tally.transient(None)
    tally.redelivered("kids")
    tally.flush()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(x["tenant"], x.get("Invalid"), x.get("Redelivered")) for x in lines] == [
        ("kids", [1.0], [1.0]),
        ("unknown", None, None),
    ]
    assert lines[1]["TransientFailures"] == [1.0]
    assert lines[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Moderation"


# -- packaging -----------------------------------------------------------------------------------


def test_import_moderation_loads_neither_powertools_nor_boto3():
    code = (
        "import sys, moderation\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('aws_lambda_powertools', 'boto3', 'botocore'))\n"
        "print(loaded)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_in_progress_lock_is_the_setting_or_the_time_left_the_shorter():
    from moderation.aws_lambda._handler import _InProgressLock

    class Left:
        def __init__(self, ms: int) -> None:
            self.ms = ms

        def get_remaining_time_in_millis(self) -> int:
            return self.ms

    assert _InProgressLock(Left(840_000), 60).get_remaining_time_in_millis() == 60_000
    assert _InProgressLock(Left(2_500), 60).get_remaining_time_in_millis() == 2_500
    assert _InProgressLock(None, 60).get_remaining_time_in_millis() == 60_000  # no context
    assert _InProgressLock(Left(840_000), 0.0001).get_remaining_time_in_millis() == 1
