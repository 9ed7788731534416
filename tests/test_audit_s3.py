"""The S3 audit sink (moto): one object per decision, at a dated key, never overwritten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError
from test_audit_log import make_decision

from moderation import AuditError, Engine, PolicyStore, RetryPolicy
from moderation.audit import S3AuditError, S3AuditLog, audit_log_from_spec
from moderation.decision import Decision
from moderation.errors import ConfigurationError
from moderation.testing import RecordedDetector, Recordings

ROOT = Path(__file__).resolve().parent.parent
# 23:30 at UTC-5 on 31 December is already 1 January in UTC: the key takes the UTC date.
LATE = datetime(2024, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5)))


def test_each_decision_is_an_object_under_its_tenant_and_utc_day(s3: Any):
    sink = S3AuditLog("uploads", "audit/", client=s3)
    decision = make_decision(7, tenant="kids", created_at=LATE)
    sink.append(decision)
    key = "audit/kids/2025/01/01/d000007.json"
    assert sink.key_for(decision) == key
    stored = s3.get_object(Bucket="uploads", Key=key, ChecksumMode="ENABLED")
    assert stored["ContentType"] == "application/json"
    assert stored.get("ChecksumSHA256")  # S3 was asked to check a SHA-256 of the body
    assert Decision.model_validate_json(stored["Body"].read()) == decision


def test_without_a_prefix_the_key_has_no_leading_slash(s3: Any):
    sink = S3AuditLog("uploads", client=s3)
    sink.append(make_decision(1, created_at=LATE))
    [obj] = s3.list_objects_v2(Bucket="uploads")["Contents"]
    assert obj["Key"] == "default/2025/01/01/d000001.json"


def test_an_existing_object_is_never_overwritten(s3: Any):
    sink = S3AuditLog("uploads", "audit", client=s3)
    first = make_decision(1)
    sink.append(first)
    # the same id again (a replayed or forged record): the conditional put refuses it
    changed = make_decision(1, outcome="rejected")
    with pytest.raises(S3AuditError, match="exists already: refusing to overwrite it") as caught:
        sink.append(changed)
    assert caught.value.code == "PreconditionFailed"
    [obj] = s3.list_objects_v2(Bucket="uploads")["Contents"]
    body = s3.get_object(Bucket="uploads", Key=obj["Key"])["Body"].read()
    assert Decision.model_validate_json(body) == first


def test_the_engine_raises_an_audit_error_rather_than_return_an_unstored_decision(s3: Any):
    recordings = Recordings.load(ROOT / "examples/recordings")
    sink = S3AuditLog("uploads", client=s3)
    ids = iter(["same-id", "same-id"])
    engine = Engine(
        PolicyStore(ROOT / "policies"),
        RecordedDetector(recordings),
        audit=sink,
        new_id=lambda: next(ids),
    )
    engine.moderate(ROOT / "examples/images/beach.jpg")
    with pytest.raises(AuditError, match="exists already") as caught:
        engine.moderate(ROOT / "examples/images/beach.jpg")
    assert isinstance(caught.value.decision, Decision)


def test_a_missing_bucket_is_an_error(s3: Any):
    with pytest.raises(S3AuditError, match="audit bucket nope-bucket does not exist"):
        S3AuditLog("nope-bucket", client=s3).append(make_decision(1))


class _LostAnswer:
    """A client whose first put reaches S3 but whose answer is lost (a read timeout)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.meta = inner.meta
        self.puts = 0

    def put_object(self, **kwargs: Any) -> Any:
        self.puts += 1
        answer = self.inner.put_object(**kwargs)
        if self.puts == 1:
            raise ReadTimeoutError(endpoint_url="https://s3.example")
        return answer

    def get_object(self, **kwargs: Any) -> Any:
        return self.inner.get_object(**kwargs)


def _single_attempt_client(s3: Any) -> Any:
    import boto3

    return boto3.client(
        "s3", region_name="us-east-1", config=Config(retries={"total_max_attempts": 1})
    )


def test_a_retry_that_finds_its_own_lost_put_succeeds(s3: Any):
    client = _LostAnswer(_single_attempt_client(s3))
    sink = S3AuditLog("uploads", client=client, retry=RetryPolicy(sleep=lambda _: None))
    sink.append(make_decision(1))  # the retry gets 412, and the stored bytes are this decision's
    assert client.puts == 2
    with pytest.raises(S3AuditError, match="exists already"):
        sink.append(make_decision(1))  # a second append of it is still refused


def test_a_retry_that_finds_another_record_fails(s3: Any):
    client = _LostAnswer(_single_attempt_client(s3))
    s3.put_object(Bucket="uploads", Key="default/2024/05/01/d000001.json", Body=b"{}")
    client.puts = 1  # the next put is the "retry" of a put whose answer was lost
    sink = S3AuditLog("uploads", client=client, retry=RetryPolicy(sleep=lambda _: None))
    decision = make_decision(1, created_at=datetime(2024, 5, 1, tzinfo=UTC))
    with pytest.raises(S3AuditError, match="exists already"):
        sink.append(decision)


@pytest.mark.parametrize(
    ("field", "value"), [("tenant", "../other"), ("id", "a/b"), ("id", ".hidden")]
)
def test_key_parts_cannot_leave_their_folder(s3: Any, field: str, value: str):
    decision = make_decision(1).model_copy(update={field: value})
    with pytest.raises(ValueError, match="cannot be part of an S3 key"):
        S3AuditLog("uploads", client=s3).append(decision)


def test_the_spec_builds_it(fake_aws_env):
    sink = audit_log_from_spec("s3://audit-bucket/decisions/prod/", region="eu-west-1")
    assert isinstance(sink, S3AuditLog)
    assert (sink.bucket, sink.prefix) == ("audit-bucket", "decisions/prod")
    assert sink.client.meta.region_name == "eu-west-1"
    with pytest.raises(ConfigurationError, match="names no bucket"):
        audit_log_from_spec("s3:///prefix")
    # S3's own bucket-name rule, the one settings, intake and the CLI use
    with pytest.raises(ConfigurationError, match="starts with 'xn--', which S3 reserves"):
        audit_log_from_spec("s3://xn--audit/p")
    with pytest.raises(ConfigurationError, match="audit bucket: bucket name 'Audit'"):
        S3AuditLog("Audit")


def test_the_environment_selects_it(fake_aws_env):
    engine = Engine.from_env(
        {"MODERATION_POLICIES": str(ROOT / "policies"), "MODERATION_AUDIT": "s3://audit-bucket/p"}
    )
    assert isinstance(engine.audit, S3AuditLog)
