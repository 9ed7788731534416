"""The one way to AWS: every adapter's failures through one table and one wording, one retry
owner, and the rate limiter seeing every request.

botocore's Stubber checks each request against the service model; nothing leaves the process.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from botocore.stub import Stubber
from counting import CountingLimiter
from test_audit_log import make_decision

from moderation._retry import RetryPolicy
from moderation.audit import S3AuditLog
from moderation.audit._s3 import S3AuditError
from moderation.aws.appconfig import AppConfigData
from moderation.aws.dynamodb import DynamoDBTable
from moderation.aws.s3 import S3Objects
from moderation.aws.sqs import SQSQueue, queue_region
from moderation.aws.transport import (
    S3_DENIED_CODES,
    S3_NOT_FOUND_CODES,
    Failure,
    aws_client,
    classify,
)
from moderation.dedupe import DetectionCacheError, DynamoDBDetectionCache
from moderation.detection import Detection
from moderation.errors import AWSError, ConfigurationError, PolicyError
from moderation.policy import AppConfigSource, S3Source

QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/review"

#: The one wording of a denied request, whichever module made it.
DENIED = re.compile(
    r"^(?P<service>[a-z0-9]+) (?P<operation>[A-Za-z0-9]+) failed for (?P<resource>.+?): denied "
    r"\(the caller needs (?P<permission>[^;]+); (?P<said>[^;]+); (?P<tried>\d+ attempts?)\)$"
)


def client_error(code: str, status: int = 400, message: str = "") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "Op")


def no_sleep() -> RetryPolicy:
    return RetryPolicy(sleep=lambda _: None)


def stubbed(service: str, region: str = "us-east-1") -> tuple[Any, Stubber]:
    client = boto3.client(
        service,
        region_name=region,
        config=boto3.session.Config(retries={"total_max_attempts": 1}),
    )
    return client, Stubber(client)


# --------------------------------------------------------------------------- the table


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        *((client_error(code), Failure.NOT_FOUND) for code in sorted(S3_NOT_FOUND_CODES)),
        *((client_error(code), Failure.DENIED) for code in sorted(S3_DENIED_CODES)),
        (client_error("ResourceNotFoundException"), Failure.NOT_FOUND),
        (client_error("AWS.SimpleQueueService.NonExistentQueue"), Failure.NOT_FOUND),
        (client_error("AccessDeniedException"), Failure.DENIED),
        (client_error("PreconditionFailed", 412), Failure.CHANGED),
        (client_error("ConditionalCheckFailedException"), Failure.CHANGED),
        (client_error("SlowDown", 503), Failure.THROTTLED),
        (client_error("ProvisionedThroughputExceededException"), Failure.THROTTLED),
        (client_error("", 429), Failure.THROTTLED),
        (client_error("InternalError", 500), Failure.UNAVAILABLE),
        (client_error("", 502), Failure.UNAVAILABLE),
        (client_error("", 404), Failure.NOT_FOUND),  # a HEAD: no body, only the status
        (client_error("", 403), Failure.DENIED),
        (client_error("ValidationException"), Failure.REFUSED),
        (EndpointConnectionError(endpoint_url="https://s3"), Failure.CONNECTION),
        (NoCredentialsError(), Failure.NO_CREDENTIALS),
        (ValueError("garbled"), Failure.FAILED),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, Failure) else v.value,
)
def test_one_table_classifies_every_botocore_error(error: BaseException, failure: Failure):
    assert classify(error) is failure


def test_an_aws_error_pickles_with_what_the_table_said():
    error = AWSError(
        "s3 GetObject failed",
        kind="denied",
        operation="GetObject",
        resource="s3://b/k",
        code="AccessDenied",
        attempts=1,
    )
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.kind, again.resource, again.code, again.attempts) == (
        "s3 GetObject failed",
        "denied",
        "s3://b/k",
        "AccessDenied",
        1,
    )
    audit = pickle.loads(pickle.dumps(S3AuditError("put failed", kind="changed", attempts=2)))
    assert isinstance(audit, S3AuditError) and audit.kind == "changed" and audit.requests == 2


# --------------------------------------------------------------------------- one wording


def test_an_s3_access_denied_reads_the_same_from_the_audit_sink_and_the_policy_source(
    fake_aws_env: dict[str, str],
):
    # GIVEN S3 denying the audit sink's put and the policy source's listing
    audit_client, audit_stub = stubbed("s3")
    audit_stub.add_client_error(
        "put_object", "AccessDenied", "Access Denied", 403, expected_params=None
    )
    policy_client, policy_stub = stubbed("s3")
    policy_stub.add_client_error(
        "list_objects_v2",
        "AccessDenied",
        "Access Denied",
        403,
        expected_params={"Bucket": "policies", "Prefix": "prod/"},
    )
    sink = S3AuditLog("audit-bucket", client=audit_client)
    # WHEN each makes its request
    with audit_stub, pytest.raises(S3AuditError) as audit_failed:
        sink.append(make_decision(1))
    with policy_stub, pytest.raises(PolicyError) as policy_failed:
        S3Source("policies", "prod", client=policy_client).fetch(None)
    # THEN both are the same library error class, from the same table, in the same words
    from_policy = policy_failed.value.__cause__
    assert isinstance(audit_failed.value, AWSError) and isinstance(from_policy, AWSError)
    assert audit_failed.value.kind == from_policy.kind == "denied"
    audit_words = DENIED.match(str(audit_failed.value))
    policy_words = DENIED.match(policy_failed.value.problems[0].message)
    assert audit_words is not None and policy_words is not None
    assert audit_words["operation"] == "PutObject"
    assert audit_words["permission"] == "s3:PutObject"
    assert policy_words["operation"] == "ListObjectsV2"
    assert audit_words["said"] == policy_words["said"] == "AccessDenied: Access Denied"


def test_dynamodb_sqs_and_appconfig_denials_read_the_same_way(fake_aws_env: dict[str, str]):
    dynamodb, dynamodb_stub = stubbed("dynamodb")
    dynamodb_stub.add_client_error("get_item", "AccessDeniedException", "not authorized", 400)
    sqs, sqs_stub = stubbed("sqs", "eu-west-1")
    sqs_stub.add_client_error("send_message", "AccessDenied", "not authorized", 403)
    appconfig, appconfig_stub = stubbed("appconfigdata")
    appconfig_stub.add_client_error(
        "start_configuration_session", "AccessDeniedException", "not authorized", 403
    )
    cache = DynamoDBDetectionCache("detections", client=dynamodb)
    with dynamodb_stub, pytest.raises(DetectionCacheError) as cache_failed:
        cache.get("k")
    with sqs_stub, pytest.raises(AWSError) as sqs_failed:
        SQSQueue(QUEUE, sqs).send("{}")
    with appconfig_stub, pytest.raises(PolicyError) as appconfig_failed:
        AppConfigSource("app", "env", "profile", client=appconfig).fetch(None)
    words = [
        DENIED.match(str(cache_failed.value.__cause__)),
        DENIED.match(str(sqs_failed.value)),
        DENIED.match(appconfig_failed.value.problems[0].message),
    ]
    assert all(w is not None for w in words), words
    assert [w["permission"] for w in words if w is not None] == [
        "dynamodb:GetItem",
        "sqs:SendMessage",
        "appconfig:StartConfigurationSession",
    ]
    assert str(cache_failed.value).startswith("dedupe cache: dynamodb GetItem failed for ")


# --------------------------------------------------------------------------- one retry owner


def test_the_transport_retries_what_the_table_calls_transient_and_botocore_does_not(
    fake_aws_env: dict[str, str],
):
    client, stub = stubbed("sqs", "eu-west-1")
    stub.add_client_error("send_message", "ServiceUnavailable", "busy", 503)
    stub.add_response("send_message", {"MessageId": "m-1"})
    sleeps: list[float] = []
    queue = SQSQueue(QUEUE, client, retry=RetryPolicy(sleep=sleeps.append))
    with stub:
        assert queue.send("{}") == "m-1"
        stub.assert_no_pending_responses()
    assert len(sleeps) == 1  # one retry, by tenacity


def test_a_client_built_here_has_botocores_retries_off(fake_aws_env: dict[str, str]):
    for transport in (
        S3Objects(region="eu-west-1"),
        DynamoDBTable("t", region="eu-west-1"),
        SQSQueue(QUEUE),
        AppConfigData("a", "e", "p", region="eu-west-1"),
    ):
        assert transport.client.meta.config.retries["total_max_attempts"] == 1, transport
        assert transport.owns_retries
    assert SQSQueue(QUEUE).client.meta.region_name == "eu-west-1"  # the queue's own region
    assert queue_region("https://example.com/q", "us-east-2") == "us-east-2"


def test_a_denied_request_is_not_retried(fake_aws_env: dict[str, str]):
    client, stub = stubbed("s3")
    stub.add_client_error("delete_object", "AccessDenied", "Access Denied", 403)
    with stub, pytest.raises(AWSError) as failed:
        S3Objects(client, retry=no_sleep()).delete("b", "k", "v1")
    stub.assert_no_pending_responses()
    assert failed.value.attempts == 1 and not failed.value.retryable
    assert failed.value.resource == "s3://b/k?versionId=v1"


@pytest.mark.parametrize(
    "build",
    [
        lambda: DynamoDBTable("t"),
        lambda: SQSQueue("https://example.com/q"),
        lambda: AppConfigData("a", "e", "p"),
        lambda: DynamoDBDetectionCache("detections"),
        lambda: AppConfigSource("a", "e", "p").fetch(None),
    ],
    ids=["dynamodb", "sqs", "appconfig", "dedupe", "appconfig-source"],
)
def test_no_region_is_a_configuration_error_for_every_transport(
    fake_aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, build: Any
):
    # (S3 is the exception botocore makes: a client without a region uses its global endpoint.)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigurationError, match="no AWS region: set MODERATION_REGION"):
        build()


def test_aws_client_keeps_an_injected_client_as_it_is():
    given = object()
    client, policy = aws_client(
        "s3",
        client=given,
        session=None,
        region=None,
        connect_timeout=1,
        read_timeout=1,
        retry=None,
        failure=ValueError,
    )
    assert client is given and policy.attempts == 1  # it may retry by itself: one attempt


# --------------------------------------------------------------------------- the limiter


def test_the_limiter_sees_every_request_of_every_adapter(fake_aws_env: dict[str, str]):
    # GIVEN each adapter with one throttled request and then a success, and a counting limiter
    limiter = CountingLimiter()
    s3, s3_stub = stubbed("s3")
    s3_stub.add_client_error("list_objects_v2", "SlowDown", "slow down", 503)
    s3_stub.add_response("list_objects_v2", {"IsTruncated": False, "Contents": []})
    dynamodb, dynamodb_stub = stubbed("dynamodb")
    dynamodb_stub.add_client_error("get_item", "ProvisionedThroughputExceededException", "", 400)
    dynamodb_stub.add_response("get_item", {})
    sqs, sqs_stub = stubbed("sqs", "eu-west-1")
    sqs_stub.add_client_error("send_message", "ThrottlingException", "", 400)
    sqs_stub.add_response("send_message", {"MessageId": "m"})
    listing = S3Objects(s3, retry=no_sleep())
    cache = DynamoDBDetectionCache("detections", client=dynamodb)  # its own two attempts
    queue = SQSQueue(QUEUE, sqs, retry=no_sleep())
    for transport in (listing, cache.transport, queue):
        transport.limiter = limiter
    # WHEN each makes its call
    with s3_stub, dynamodb_stub, sqs_stub:
        assert list(listing.objects("b", "p/")) == []
        assert cache.get("k") is None
        assert queue.send("{}") == "m"
    # THEN the limiter was asked before every request and told of every throttle
    assert limiter.n_acquired == 6
    assert limiter.n_throttled == 3
    assert limiter.n_succeeded == 3


def test_the_audit_sink_and_policy_sources_expose_their_transport(fake_aws_env: dict[str, str]):
    sink = S3AuditLog("audit-bucket", region="eu-west-1")
    assert isinstance(sink.transport, S3Objects) and sink.client is sink.transport.client
    source = S3Source("policies", "prod", region="eu-west-1")
    assert isinstance(source.transport, S3Objects)
    appconfig = AppConfigSource("a", "e", "p", region="eu-west-1")
    assert isinstance(appconfig.transport, AppConfigData)


def test_a_cache_put_that_loses_the_race_is_not_an_error(fake_aws_env: dict[str, str]):
    client, stub = stubbed("dynamodb")
    stub.add_client_error("put_item", "ConditionalCheckFailedException", "", 400)
    cache = DynamoDBDetectionCache("detections", client=client)
    detection = Detection(model_version="7.0")
    with stub:
        cache.put("k", detection)  # the table's `changed`: a live entry is there; kept
        stub.assert_no_pending_responses()


def test_the_deferred_reader_builds_nothing_until_an_s3_input(
    fake_aws_env: dict[str, str], tmp_path: Path
):
    from moderation.aws.deferred import DeferredS3Reader

    reader = DeferredS3Reader(region="eu-west-1")
    assert "built=False" in repr(reader)
    assert reader.ensure_pool(32) is False  # nothing to widen yet: remembered for the build
    assert reader.reader.client.meta.region_name == "eu-west-1"
    assert reader.reader.pool_size == 32
    assert "built=True" in repr(reader)
