"""The local AWS endpoint is faithful: real boto3 clients see what they would see from AWS."""

from __future__ import annotations

import base64
import errno
import os
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.retries.standard
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from urllib3.exceptions import ProtocolError

from moderation.testing import AWSEndpoint, Reply
from moderation.testing.endpoint import BEDROCK_ERROR_STATUS, Recorded

HAIKU = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
NO_RETRIES = {"total_max_attempts": 1}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))

DETECT_BODY = {
    "ModerationLabels": [
        {"Confidence": 97.25, "Name": "Explicit", "ParentName": "", "TaxonomyLevel": 1},
        {
            "Confidence": 97.25,
            "Name": "Exposed Female Nipple",
            "ParentName": "Explicit Nudity",
            "TaxonomyLevel": 3,
        },
    ],
    "ModerationModelVersion": "7.0",
    "ContentTypes": [{"Confidence": 88.5, "Name": "Illustrated"}],
}

CONVERSE_BODY = {
    "output": {
        "message": {
            "role": "assistant",
            "content": [
                {
                    "toolUse": {
                        "toolUseId": "tooluse_abc123",
                        "name": "record_verdict",
                        "input": {"verdict": "allow", "confidence": 0.91, "reasons": ["beach"]},
                    }
                }
            ],
        }
    },
    "stopReason": "tool_use",
    "usage": {"inputTokens": 1520, "outputTokens": 48, "totalTokens": 1568},
    "metrics": {"latencyMs": 812},
}

BEDROCK_ERRORS = [
    ("ThrottlingException", 429),
    ("ServiceUnavailableException", 503),
    ("InternalServerException", 500),
    ("ModelNotReadyException", 429),
    ("ModelTimeoutException", 408),
    ("ModelErrorException", 424),
    ("ValidationException", 400),
    ("AccessDeniedException", 403),
    ("ResourceNotFoundException", 404),
]


@pytest.fixture(autouse=True)
def _sigv4_only(monkeypatch):
    # With this variable set, botocore signs Bedrock calls with a bearer token instead of SigV4.
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)


@pytest.fixture
def aws() -> Iterator[AWSEndpoint]:
    with AWSEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
def no_backoff(monkeypatch):
    """botocore still decides whether and how often to retry, but does not sleep in between."""
    monkeypatch.setattr(
        botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0
    )


def detect(client: Any, min_confidence: float = 60.0) -> Any:
    return client.detect_moderation_labels(Image={"Bytes": PNG}, MinConfidence=min_confidence)


def converse(client: Any, model_id: str = HAIKU) -> Any:
    return client.converse(
        modelId=model_id,
        messages=[
            {
                "role": "user",
                "content": [
                    {"text": "Judge this image."},
                    {"image": {"format": "png", "source": {"bytes": PNG}}},
                ],
            }
        ],
        toolConfig={
            "tools": [
                {
                    "toolSpec": {
                        "name": "record_verdict",
                        "description": "Record the verdict.",
                        "inputSchema": {"json": {"type": "object"}},
                    }
                }
            ],
            "toolChoice": {"tool": {"name": "record_verdict"}},
        },
        inferenceConfig={"maxTokens": 256, "temperature": 0.0},
    )


def handler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("AWSEndpoint-conn-")]


# -- success paths ------------------------------------------------------------------------------


def test_detect_success_parses_and_request_is_recorded(aws):
    aws.script("DetectModerationLabels", Reply.ok(DETECT_BODY))
    client = aws.client("rekognition", retries=NO_RETRIES)

    response = detect(client, 55.5)

    assert response["ModerationLabels"] == DETECT_BODY["ModerationLabels"]
    assert response["ModerationModelVersion"] == "7.0"
    assert response["ContentTypes"] == [{"Confidence": 88.5, "Name": "Illustrated"}]
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    (request,) = aws.requests
    assert request.operation == "DetectModerationLabels"
    assert request.path == "/"
    assert request.headers["X-Amz-Target"] == "RekognitionService.DetectModerationLabels"
    assert request.headers["content-type"] == "application/x-amz-json-1.1"  # case-insensitive
    assert request.body == {
        "Image": {"Bytes": base64.b64encode(PNG).decode()},
        "MinConfidence": 55.5,
    }
    assert "/us-east-1/rekognition/aws4_request" in request.headers["Authorization"]
    assert request.model_id is None
    assert aws.unexpected == []


def test_converse_tool_use_parses_and_model_id_is_decoded(aws):
    aws.script("Converse", Reply.ok(CONVERSE_BODY))
    client = aws.client("bedrock-runtime", retries=NO_RETRIES)

    response = converse(client)

    tool_use = response["output"]["message"]["content"][0]["toolUse"]
    assert tool_use["input"] == {"verdict": "allow", "confidence": 0.91, "reasons": ["beach"]}
    assert isinstance(tool_use["input"], dict)
    assert tool_use["name"] == "record_verdict"
    assert response["stopReason"] == "tool_use"
    assert response["usage"] == {"inputTokens": 1520, "outputTokens": 48, "totalTokens": 1568}
    assert response["metrics"] == {"latencyMs": 812}
    (request,) = aws.requests
    assert request.operation == "Converse"
    assert request.model_id == HAIKU
    assert request.path == "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse"
    image = request.body["messages"][0]["content"][1]["image"]
    assert image == {"format": "png", "source": {"bytes": base64.b64encode(PNG).decode()}}
    assert request.body["toolConfig"]["toolChoice"] == {"tool": {"name": "record_verdict"}}
    assert request.body["inferenceConfig"] == {"maxTokens": 256, "temperature": 0.0}
    # Bedrock Runtime signs as "bedrock", not as its endpoint prefix "bedrock-runtime".
    assert "/us-east-1/bedrock/aws4_request" in request.headers["Authorization"]


@pytest.mark.parametrize(
    "model_id",
    [
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0",
    ],
)
def test_converse_model_ids_round_trip(aws, model_id):
    aws.script("Converse", Reply.ok(CONVERSE_BODY))
    converse(aws.client("bedrock-runtime", retries=NO_RETRIES), model_id)

    assert [r.model_id for r in aws.requests] == [model_id]


def test_keep_alive_reuses_one_connection(aws):
    aws.set_default("DetectModerationLabels", Reply.ok(DETECT_BODY))
    client = aws.client("rekognition", retries=NO_RETRIES)

    for _ in range(5):
        assert detect(client)["ModerationModelVersion"] == "7.0"

    assert aws.count("DetectModerationLabels") == 5
    assert aws.connections == 1


def test_script_is_consumed_in_order_then_default(aws):
    aws.set_default("DetectModerationLabels", Reply.ok({"ModerationModelVersion": "default"}))
    aws.script(
        "DetectModerationLabels",
        Reply.ok({"ModerationModelVersion": "first"}),
        lambda request: Reply.ok({"ModerationModelVersion": str(request.body["MinConfidence"])}),
    )
    client = aws.client("rekognition", retries=NO_RETRIES)

    versions = [detect(client, 70.0)["ModerationModelVersion"] for _ in range(3)]

    assert versions == ["first", "70.0", "default"]
    assert aws.pending("DetectModerationLabels") == 0


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "status"), BEDROCK_ERRORS)
def test_bedrock_errors_surface_with_code_and_status(aws, code, status):
    aws.script("Converse", Reply.fail(code, f"{code} happened"))
    client = aws.client("bedrock-runtime", retries=NO_RETRIES)

    with pytest.raises(ClientError) as caught:
        converse(client)

    error = caught.value.response
    assert error["Error"]["Code"] == code
    assert error["Error"]["Message"] == f"{code} happened"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status
    assert isinstance(caught.value, getattr(client.exceptions, code))  # the modelled class
    assert aws.count("Converse") == 1


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 400),
        ("InvalidImageFormatException", 400),
        ("ImageTooLargeException", 400),
        ("ProvisionedThroughputExceededException", 400),
        ("InternalServerError", 500),
    ],
)
def test_rekognition_errors_surface_with_code_and_status(aws, code, status):
    aws.script("DetectModerationLabels", Reply.fail(code, "nope"))
    client = aws.client("rekognition", retries=NO_RETRIES)

    with pytest.raises(ClientError) as caught:
        detect(client)

    assert caught.value.response["Error"] == {"Code": code, "Message": "nope"}
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert isinstance(caught.value, getattr(client.exceptions, code))


def test_unscripted_request_gets_500_and_is_recorded_as_unexpected(aws):
    client = aws.client("rekognition", retries=NO_RETRIES)

    with pytest.raises(ClientError) as caught:
        detect(client)

    assert caught.value.response["Error"]["Code"] == "InternalServerError"
    assert [r.operation for r in aws.unexpected] == ["DetectModerationLabels"]


def test_unknown_operation_is_a_protocol_error_and_recorded(aws):
    client = aws.client("rekognition", retries=NO_RETRIES)

    with pytest.raises(ClientError) as caught:
        client.detect_labels(Image={"Bytes": PNG})

    assert caught.value.response["Error"]["Code"] == "UnknownOperationException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert [r.operation for r in aws.unexpected] == ["DetectLabels"]
    assert aws.count("DetectModerationLabels") == 0


def test_bedrock_error_statuses_match_the_installed_service_model():
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    statuses = {
        shape.name: shape.metadata["error"]["httpStatusCode"] for shape in model.error_shapes
    }

    assert dict(BEDROCK_ERROR_STATUS) == statuses
    assert {code for code, _ in BEDROCK_ERRORS} == {
        shape.name for shape in model.operation_model("Converse").error_shapes
    }


def test_reply_body_that_is_not_json_encodable_is_a_500_and_unexpected(aws):
    aws.script("DetectModerationLabels", Reply.ok({"ModerationLabels": {object()}}))

    with pytest.raises(ClientError) as caught:
        detect(aws.client("rekognition", retries=NO_RETRIES))

    assert caught.value.response["Error"]["Code"] == "InternalServerError"
    assert "cannot encode" in caught.value.response["Error"]["Message"]
    assert len(aws.unexpected) == 1


def test_reply_callable_that_raises_is_a_500_and_unexpected(aws):
    def broken(request: Recorded) -> Reply:
        raise RuntimeError("bug in the test's reply")

    aws.script("Converse", broken)
    with pytest.raises(ClientError) as caught:
        converse(aws.client("bedrock-runtime", retries=NO_RETRIES))

    assert caught.value.response["Error"]["Code"] == "InternalServerException"
    assert "bug in the test's reply" in caught.value.response["Error"]["Message"]
    assert len(aws.unexpected) == 1


# -- botocore's own retries -----------------------------------------------------------------------


@pytest.mark.usefixtures("no_backoff")
@pytest.mark.parametrize(
    ("service", "operation", "call", "body"),
    [
        ("rekognition", "DetectModerationLabels", detect, DETECT_BODY),
        ("bedrock-runtime", "Converse", converse, CONVERSE_BODY),
    ],
)
def test_standard_mode_retries_two_throttles_then_succeeds(aws, service, operation, call, body):
    aws.script(operation, Reply.throttle(), Reply.throttle(), Reply.ok(body))
    client = aws.client(service, retries={"mode": "standard", "max_attempts": 3})

    response = call(client)

    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert aws.count(operation) == 3
    # botocore announces each attempt (and, on retries, a ttl) in the amz-sdk-request header.
    sdk = [
        dict(p.strip().split("=") for p in r.headers["amz-sdk-request"].split(";"))
        for r in aws.requests
    ]
    assert [(s["attempt"], s["max"]) for s in sdk] == [("1", "4"), ("2", "4"), ("3", "4")]


def test_total_max_attempts_1_sends_exactly_one_request(aws):
    aws.script("Converse", Reply.throttle(), Reply.ok(CONVERSE_BODY))
    client = aws.client("bedrock-runtime", retries=NO_RETRIES)

    with pytest.raises(ClientError, match="ThrottlingException"):
        converse(client)

    assert aws.count("Converse") == 1
    assert aws.pending("Converse") == 1


@pytest.mark.usefixtures("no_backoff")
@pytest.mark.parametrize(
    ("retries", "requests"),
    [
        ({"mode": "standard", "max_attempts": 3}, 4),  # max_attempts counts RETRIES here
        ({"mode": "standard", "total_max_attempts": 3}, 3),
    ],
)
def test_retry_budget_semantics(retries, requests):
    with AWSEndpoint(default_detect=Reply.throttle()) as aws:
        with pytest.raises(ClientError, match="ThrottlingException"):
            detect(aws.client("rekognition", retries=retries))

        assert aws.count("DetectModerationLabels") == requests


@pytest.mark.usefixtures("no_backoff")
@pytest.mark.parametrize(
    ("code", "retried"),
    [
        ("ThrottlingException", True),
        ("ServiceUnavailableException", True),
        ("InternalServerException", True),
        ("ModelNotReadyException", True),  # modelled as retryable
        ("ModelTimeoutException", False),
        ("ModelErrorException", False),
        ("ValidationException", False),
    ],
)
def test_which_bedrock_errors_botocore_retries(code, retried):
    with AWSEndpoint(default_converse=Reply.fail(code)) as aws:
        client = aws.client(
            "bedrock-runtime", retries={"mode": "standard", "total_max_attempts": 2}
        )
        with pytest.raises(ClientError):
            converse(client)

        assert aws.count("Converse") == (2 if retried else 1)


# -- faults -------------------------------------------------------------------------------------


def test_slow_reply_is_a_read_timeout_and_close_interrupts_the_delay():
    aws = AWSEndpoint()
    try:
        # The delay is far longer than the test: it must be cut short by close(), not waited out.
        aws.script("DetectModerationLabels", Reply.slow(60.0, DETECT_BODY))
        client = aws.client("rekognition", retries=NO_RETRIES, read_timeout=0.3)

        with pytest.raises(ReadTimeoutError):
            detect(client)

        delayed = handler_threads()
        assert delayed  # the handler is still sitting in its 60 s delay
    finally:
        aws.close()

    assert not [t for t in delayed if t.is_alive()]
    assert aws.count("DetectModerationLabels") == 1


@pytest.mark.usefixtures("no_backoff")
def test_read_timeout_is_retried_by_standard_mode(aws):
    # A timed-out Converse is sent (and billed) again unless botocore's retries are off.
    aws.script("Converse", Reply.slow(2.0, CONVERSE_BODY), Reply.ok(CONVERSE_BODY))
    client = aws.client("bedrock-runtime", retries={"mode": "standard"}, read_timeout=0.5)

    assert converse(client)["stopReason"] == "tool_use"
    assert aws.count("Converse") == 2


def test_reset_connection_is_connection_closed_error(aws):
    aws.script("DetectModerationLabels", Reply.reset_connection(), Reply.ok(DETECT_BODY))
    client = aws.client("rekognition", retries=NO_RETRIES)

    with pytest.raises(ConnectionClosedError) as caught:
        detect(client)

    cause = caught.value.__context__
    assert isinstance(cause, ProtocolError)
    # A real RST (ECONNRESET), not an orderly close (http.client's RemoteDisconnected).
    assert type(cause.__context__) is ConnectionResetError
    assert cause.__context__.errno == errno.ECONNRESET
    # The client recovers on a fresh connection.
    assert detect(client)["ModerationModelVersion"] == "7.0"
    assert aws.connections == 2


@pytest.mark.usefixtures("no_backoff")
def test_reset_connection_is_retried_by_standard_mode(aws):
    aws.script("Converse", Reply.reset_connection(), Reply.ok(CONVERSE_BODY))
    client = aws.client("bedrock-runtime", retries={"mode": "standard"})

    assert converse(client)["stopReason"] == "tool_use"
    assert aws.count("Converse") == 2


@pytest.mark.parametrize(
    ("service", "operation", "call"),
    [
        ("rekognition", "DetectModerationLabels", detect),
        ("bedrock-runtime", "Converse", converse),
    ],
)
def test_non_json_200_body_is_silently_an_empty_response(aws, service, operation, call):
    # botocore's JSON parsers swallow the JSONDecodeError: no exception, just no fields.
    aws.script(operation, Reply.garbage(b"<<not json"))

    response = call(aws.client(service, retries=NO_RETRIES))

    assert set(response) == {"ResponseMetadata"}
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


@pytest.mark.parametrize(
    ("garbage", "exception"),
    [
        (b"[1, 2]", AttributeError),  # valid JSON, not an object
        (b'{"ModerationLabels": "not a list"}', AttributeError),  # wrong shape
        (b"\xff\xfe", UnicodeDecodeError),  # not UTF-8
    ],
)
def test_malformed_200_body_raises_a_raw_python_error(aws, garbage, exception):
    aws.script("DetectModerationLabels", Reply.garbage(garbage))

    with pytest.raises(exception):
        detect(aws.client("rekognition", retries=NO_RETRIES))


@pytest.mark.parametrize(
    ("garbage", "status", "code", "message"),
    [
        (b"<<not json", 500, "500", "<<not json"),
        (b"<html><body>Bad gateway</body></html>", 502, "502", "Bad Gateway"),
        (b"", 503, "503", "Service Unavailable"),
    ],
)
def test_non_json_error_body_becomes_a_status_code_error(aws, garbage, status, code, message):
    aws.script("Converse", Reply.garbage(garbage, status=status))

    with pytest.raises(ClientError) as caught:
        converse(aws.client("bedrock-runtime", retries=NO_RETRIES))

    assert caught.value.response["Error"] == {"Code": code, "Message": message}


# -- concurrency and lifecycle ------------------------------------------------------------------


def test_requests_are_counted_under_concurrency():
    threads, calls = 8, 10

    def echo(request: Recorded) -> Reply:
        return Reply.ok({"ModerationModelVersion": str(request.body["MinConfidence"])})

    with AWSEndpoint(default_detect=echo) as aws:
        client = aws.client("rekognition", retries=NO_RETRIES, max_pool_connections=threads)
        start = threading.Barrier(threads)
        mismatches: list[tuple[float, str]] = []
        failures: list[BaseException] = []

        def worker(n: int) -> None:
            try:
                start.wait()
                for i in range(calls):
                    sent = float(n * 100 + i)
                    got = detect(client, sent)["ModerationModelVersion"]
                    if got != str(sent):
                        mismatches.append((sent, got))
            except BaseException as exc:
                failures.append(exc)

        workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

        assert failures == []
        assert mismatches == []
        assert aws.count("DetectModerationLabels") == threads * calls
        assert len(aws.requests) == threads * calls
        assert aws.unexpected == []


def test_close_is_idempotent_and_refuses_new_connections(monkeypatch):
    aws = AWSEndpoint(default_detect=Reply.ok(DETECT_BODY))
    detect(aws.client("rekognition", retries=NO_RETRIES))
    aws.close()
    aws.close()

    assert not [t for t in handler_threads() if t.is_alive()]
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    stale = boto3.session.Session(
        aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1"
    ).client("rekognition", endpoint_url=aws.url, config=Config(retries={"total_max_attempts": 1}))
    try:
        with pytest.raises(EndpointConnectionError):
            detect(stale)
    finally:
        stale.close()


@pytest.mark.parametrize(
    "make",
    [
        lambda: Reply(delay=-1.0),
        lambda: Reply(status=42),
    ],
)
def test_reply_rejects_nonsense(make):
    with pytest.raises(ValueError, match="Reply"):
        make()


def test_script_rejects_unknown_operations(aws):
    with pytest.raises(ValueError, match="DetectLabels"):
        aws.script("DetectLabels", Reply.ok())
