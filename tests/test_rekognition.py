"""The Rekognition adapter: request/response contract (Stubber), error mapping, and the wire path.

Stubber tests check the exact parameters sent and the parsing of modelled responses; they bypass
botocore's HTTP layer and its retries. Wire tests run a real boto3 client against the local
`AWSEndpoint` on 127.0.0.1 and count the HTTP requests that actually arrive, which is the only
honest way to prove who retries and how often. No test sleeps for a backoff: every RetryPolicy
gets a recording `sleep`.
"""

from __future__ import annotations

import base64
import io
import random
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.session
import builders
import pytest
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.retries.standard import ExponentialBackoff
from botocore.stub import Stubber
from PIL import Image

from moderation.aws.rekognition import RETRYABLE_CODES, RekognitionDetector
from moderation.aws.transport import RetryPolicy
from moderation.detection import ContentType, Detection, Label
from moderation.errors import DetectorError, InvalidImage
from moderation.image import PreparedImage, S3Object
from moderation.policy import PolicyStore
from moderation.ports import Detector
from moderation.testing import AWSEndpoint, Reply

POLICIES = Path(__file__).resolve().parents[1] / "policies"
DETECT = "DetectModerationLabels"  # the operation, as AWSEndpoint names it
METHOD = "detect_moderation_labels"  # the same, as Stubber names it
ADAPTER_ARN = (
    "arn:aws:rekognition:us-east-1:123456789012:project/moderation/version/adapter.1/1700000000000"
)

RESPONSE: dict[str, Any] = {
    "ModerationLabels": [
        {"Name": "Explicit", "ParentName": "", "Confidence": 91.5, "TaxonomyLevel": 1},
        {
            "Name": "Explicit Nudity",
            "ParentName": "Explicit",
            "Confidence": 90.25,
            "TaxonomyLevel": 2,
        },
        {
            "Name": "Exposed Buttocks or Anus",
            "ParentName": "Explicit Nudity",
            "Confidence": 88.0,
            "TaxonomyLevel": 3,
        },
    ],
    "ModerationModelVersion": "7.0",
    "ContentTypes": [{"Name": "Illustrated", "Confidence": 77.5}],
}

EXPECTED_LABELS = (
    Label(name="Explicit", parent=None, level=1, confidence=91.5),
    Label(name="Explicit Nudity", parent="Explicit", level=2, confidence=90.25),
    Label(name="Exposed Buttocks or Anus", parent="Explicit Nudity", level=3, confidence=88.0),
)


# -- helpers ---------------------------------------------------------------------------------


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (100, 100), (200, 30, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def image() -> PreparedImage:
    prepared = builders.prepared(jpeg_bytes())
    assert prepared.detect_bytes is not None
    return prepared


def s3_image(version: str | None = "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY") -> PreparedImage:
    return PreparedImage(
        sha256=None,
        size=123_456,
        format="jpeg",
        width=640,
        height=480,
        detect_bytes=None,
        detect_format=None,
        s3=S3Object(bucket="uploads", key="tenant/a b.jpg", version_id=version, size=123_456),
        converted=False,
    )


class Sleeps(list[float]):
    """A RetryPolicy `sleep` that records instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def policy(attempts: int, sleeps: Sleeps, **kwargs: Any) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, sleep=sleeps, rng=random.Random(7), **kwargs)


def stub_client(**config: Any) -> Any:
    """A real client; it never sends anything because every call is answered by a Stubber."""
    return boto3.client(
        "rekognition",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(**config) if config else None,
    )


def single_attempt_client() -> Any:
    """A stubbed client configured like the library's own: botocore makes one attempt."""
    return stub_client(retries={"total_max_attempts": 1})


@pytest.fixture
def aws() -> Iterator[AWSEndpoint]:
    with AWSEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
def no_botocore_backoff(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """botocore standard-mode retries without their real sleeps; records each retry's number."""
    retries: list[int] = []

    def delay_amount(self: ExponentialBackoff, context: Any) -> float:
        retries.append(context.attempt_number)
        return 0.0

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", delay_amount)
    return retries


# -- construction ----------------------------------------------------------------------------


def test_is_a_detector() -> None:
    assert isinstance(RekognitionDetector(single_attempt_client()), Detector)


def test_builds_a_client_without_botocore_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="x")
    detector = RekognitionDetector(
        session=session, region="eu-west-1", connect_timeout=1.5, read_timeout=4.0
    )
    config: Any = detector.client.meta.config  # botocore-stubs' Config lists no attributes
    assert detector.client.meta.region_name == "eu-west-1"
    assert config.retries is not None
    assert config.retries["total_max_attempts"] == 1
    assert config.connect_timeout == 1.5
    assert config.read_timeout == 4.0
    assert config.user_agent_extra == "moderation/0.1.0"
    assert detector.owns_retries
    assert detector.retry.attempts == RetryPolicy().attempts


def test_injected_client_that_retries_gets_one_attempt_and_keeps_its_config() -> None:
    client = stub_client(retries={"mode": "standard", "max_attempts": 3}, read_timeout=42)
    config: Any = client.meta.config
    before = dict(config.retries)
    detector = RekognitionDetector(client, retry=RetryPolicy(attempts=5))
    assert detector.client is client
    # botocore reads `max_attempts` as retries: 3 retries = 4 attempts in total.
    assert before == {"mode": "standard", "total_max_attempts": 4}
    assert config.retries == before
    assert config.read_timeout == 42
    assert not detector.owns_retries
    assert detector.retry.attempts == 1


def test_injected_client_with_default_config_counts_as_retrying() -> None:
    assert RekognitionDetector(stub_client()).retry.attempts == 1


def test_injected_single_attempt_client_leaves_retries_to_the_library() -> None:
    detector = RekognitionDetector(single_attempt_client(), retry=RetryPolicy(attempts=5))
    assert detector.owns_retries
    assert detector.retry.attempts == 5


def test_client_and_session_are_exclusive() -> None:
    with pytest.raises(TypeError, match="not both"):
        RekognitionDetector(single_attempt_client(), region="us-east-1")


# -- request and response contract (Stubber) --------------------------------------------------


def test_bytes_request_uses_the_policy_min_confidence(image: PreparedImage) -> None:
    min_confidence = PolicyStore(POLICIES).get("kids").min_confidence
    assert min_confidence == 30
    client = single_attempt_client()
    with Stubber(client) as stubber:
        stubber.add_response(
            METHOD,
            RESPONSE,
            expected_params={"Image": {"Bytes": image.detect_bytes}, "MinConfidence": 30.0},
        )
        detection = RekognitionDetector(client).detect(image, min_confidence=min_confidence)
        stubber.assert_no_pending_responses()
    assert detection.provider == "rekognition"
    assert detection.labels == EXPECTED_LABELS
    assert detection.model_version == "7.0"
    assert detection.content_types == (ContentType(name="Illustrated", confidence=77.5),)
    assert detection.min_confidence == 30.0
    assert detection.project_version is None
    assert detection.latency_ms is not None
    assert detection.latency_ms >= 0


@pytest.mark.parametrize("min_confidence", [0, 55.5, 100])
def test_min_confidence_comes_from_the_caller(image: PreparedImage, min_confidence: float) -> None:
    client = single_attempt_client()
    with Stubber(client) as stubber:
        stubber.add_response(
            METHOD,
            {"ModerationLabels": []},
            expected_params={
                "Image": {"Bytes": image.detect_bytes},
                "MinConfidence": float(min_confidence),
            },
        )
        detection = RekognitionDetector(client).detect(image, min_confidence=min_confidence)
        stubber.assert_no_pending_responses()
    assert detection.labels == ()
    assert detection.min_confidence == min_confidence


def test_s3_object_request_carries_the_version() -> None:
    client = single_attempt_client()
    with Stubber(client) as stubber:
        stubber.add_response(
            METHOD,
            RESPONSE,
            expected_params={
                "Image": {
                    "S3Object": {
                        "Bucket": "uploads",
                        "Name": "tenant/a b.jpg",
                        "Version": "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
                    }
                },
                "MinConfidence": 50.0,
            },
        )
        detection = RekognitionDetector(client).detect(s3_image(), min_confidence=50)
        stubber.assert_no_pending_responses()
    assert detection.labels == EXPECTED_LABELS


def test_s3_object_without_version_sends_none() -> None:
    client = single_attempt_client()
    with Stubber(client) as stubber:
        stubber.add_response(
            METHOD,
            {"ModerationLabels": []},
            expected_params={
                "Image": {"S3Object": {"Bucket": "uploads", "Name": "tenant/a b.jpg"}},
                "MinConfidence": 50.0,
            },
        )
        RekognitionDetector(client).detect(s3_image(version=None), min_confidence=50)
        stubber.assert_no_pending_responses()


def test_project_version_is_sent_when_configured(image: PreparedImage) -> None:
    client = single_attempt_client()
    with Stubber(client) as stubber:
        stubber.add_response(
            METHOD,
            {**RESPONSE, "ProjectVersion": ADAPTER_ARN},
            expected_params={
                "Image": {"Bytes": image.detect_bytes},
                "MinConfidence": 60.0,
                "ProjectVersion": ADAPTER_ARN,
            },
        )
        detector = RekognitionDetector(client, project_version=ADAPTER_ARN)
        detection = detector.detect(image, min_confidence=60)
        stubber.assert_no_pending_responses()
    assert detection.project_version == ADAPTER_ARN


def test_project_version_is_absent_otherwise(image: PreparedImage) -> None:
    sent: list[dict[str, Any]] = []
    client = single_attempt_client()
    client.meta.events.register(
        "provide-client-params.rekognition.DetectModerationLabels",
        lambda params, **_: sent.append(dict(params)),
    )
    with Stubber(client) as stubber:
        stubber.add_response(METHOD, RESPONSE)
        RekognitionDetector(client).detect(image, min_confidence=60)
        stubber.assert_no_pending_responses()
    assert len(sent) == 1
    assert "ProjectVersion" not in sent[0]


def test_an_image_with_nothing_to_send_is_refused_before_any_call() -> None:
    nothing = PreparedImage(
        sha256=None,
        size=1,
        format="jpeg",
        width=100,
        height=100,
        detect_bytes=None,
        detect_format=None,
        s3=None,
        converted=False,
    )
    client = single_attempt_client()
    with Stubber(client) as stubber, pytest.raises(InvalidImage, match="neither bytes nor"):
        RekognitionDetector(client).detect(nothing, min_confidence=50)
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize("bad", [-1, 100.5, float("nan"), float("inf"), True, "50"])
def test_min_confidence_out_of_range_is_a_value_error(image: PreparedImage, bad: Any) -> None:
    client = single_attempt_client()
    with Stubber(client), pytest.raises(ValueError, match="min_confidence"):
        RekognitionDetector(client).detect(image, min_confidence=bad)


def test_a_malformed_modelled_response_is_a_detector_error(image: PreparedImage) -> None:
    # No ModerationLabels: valid for the service model (nothing is required), not for us.
    client = single_attempt_client()
    sleeps = Sleeps()
    with Stubber(client) as stubber:
        stubber.add_response(METHOD, {"ModerationModelVersion": "7.0"})
        with pytest.raises(DetectorError, match="malformed") as caught:
            RekognitionDetector(client, retry=policy(3, sleeps)).detect(image, min_confidence=50)
        stubber.assert_no_pending_responses()
    assert caught.value.attempts == 1
    assert caught.value.__cause__ is not None
    assert sleeps == []


def test_an_out_of_range_confidence_in_the_response_is_a_detector_error(
    image: PreparedImage,
) -> None:
    client = single_attempt_client()
    with Stubber(client) as stubber:
        stubber.add_response(
            METHOD, {"ModerationLabels": [{"Name": "Explicit", "Confidence": 180.0}]}
        )
        with pytest.raises(DetectorError, match="Confidence"):
            RekognitionDetector(client).detect(image, min_confidence=50)


# -- error mapping (Stubber) -------------------------------------------------------------------

# (code, HTTP status, S3 input?, error type, retried?, text the message must contain)
ERRORS: list[tuple[str, int, bool, type[Exception], bool, tuple[str, ...]]] = [
    ("ThrottlingException", 400, False, DetectorError, True, ("3 attempts", "retries exhausted")),
    ("ProvisionedThroughputExceededException", 400, False, DetectorError, True, ("3 attempts",)),
    ("InternalServerError", 500, False, DetectorError, True, ("3 attempts",)),
    ("ServiceUnavailableException", 503, False, DetectorError, True, ("3 attempts",)),
    ("InvalidImageFormatException", 400, False, InvalidImage, False, ("invalid image format",)),
    ("ImageTooLargeException", 400, False, InvalidImage, False, ("invalid image format",)),
    ("InvalidS3ObjectException", 400, True, InvalidImage, False, ("s3://uploads/tenant/a b.jpg",)),
    (
        "AccessDeniedException",
        400,
        False,
        DetectorError,
        False,
        ("rekognition:DetectModerationLabels",),
    ),
    (
        "AccessDeniedException",
        400,
        True,
        DetectorError,
        False,
        (
            "needs rekognition:DetectModerationLabels and "
            "s3:GetObject on arn:aws:s3:::uploads/tenant/a b.jpg",
        ),
    ),
    ("InvalidParameterException", 400, False, DetectorError, False, ("1 attempt:",)),
    ("ResourceNotFoundException", 400, False, DetectorError, False, ("1 attempt:",)),
    ("ResourceNotReadyException", 400, False, DetectorError, False, ("1 attempt:",)),
    ("HumanLoopQuotaExceededException", 400, False, DetectorError, False, ("1 attempt:",)),
    ("LimitExceededException", 400, False, DetectorError, False, ("1 attempt:",)),
]


@pytest.mark.parametrize(
    ("code", "status", "from_s3", "error", "retried", "texts"),
    ERRORS,
    ids=[f"{row[0]}{'-s3' if row[2] else ''}" for row in ERRORS],
)
def test_error_mapping(
    image: PreparedImage,
    code: str,
    status: int,
    from_s3: bool,
    error: type[Exception],
    retried: bool,
    texts: tuple[str, ...],
) -> None:
    service_message = f"invalid image format ({code} said so)"
    attempts = 3
    sleeps = Sleeps()
    client = single_attempt_client()
    detector = RekognitionDetector(client, retry=policy(attempts, sleeps))
    target = s3_image() if from_s3 else image
    with Stubber(client) as stubber:
        # Always one more answer than the policy allows: what is left over shows how many calls
        # were made (a success that must never be reached).
        for _ in range(attempts if retried else 1):
            stubber.add_client_error(
                METHOD,
                service_error_code=code,
                service_message=service_message,
                http_status_code=status,
            )
        stubber.add_response(METHOD, RESPONSE)
        with pytest.raises(error) as caught:
            detector.detect(target, min_confidence=50)
        # Exactly the errors were consumed, the trailing success is still queued.
        with pytest.raises(AssertionError):
            stubber.assert_no_pending_responses()
        detector.detect(target, min_confidence=50)
        stubber.assert_no_pending_responses()

    raised = caught.value
    text = str(raised)
    assert service_message in text
    for fragment in texts:
        assert fragment in text
    assert raised.__cause__ is not None  # chained, and never the raw botocore error itself
    assert type(raised) is error
    if isinstance(raised, InvalidImage):
        assert raised.reason == text
    else:
        assert isinstance(raised, DetectorError)
        assert raised.code == code
        assert raised.attempts == (attempts if retried else 1)
    assert len(sleeps) == (attempts - 1 if retried else 0)
    if code == "AccessDeniedException" and not from_s3:
        assert "s3:GetObject" not in text


def test_retryable_codes_exist_on_the_operation() -> None:
    model = botocore.session.get_session().get_service_model("rekognition")
    errors = {shape.name for shape in model.operation_model(DETECT).error_shapes}
    assert errors >= RETRYABLE_CODES
    assert {"ThrottlingException", "ProvisionedThroughputExceededException"} <= RETRYABLE_CODES


def test_access_denied_names_the_adapter_when_one_is_configured(image: PreparedImage) -> None:
    client = single_attempt_client()
    with Stubber(client) as stubber:
        stubber.add_client_error(METHOD, "AccessDeniedException", "nope", 400)
        detector = RekognitionDetector(client, project_version=ADAPTER_ARN)
        with pytest.raises(DetectorError, match=f"DetectModerationLabels on {ADAPTER_ARN}"):
            detector.detect(image, min_confidence=50)


def test_throttling_then_success_returns_a_detection(image: PreparedImage) -> None:
    sleeps = Sleeps()
    client = single_attempt_client()
    with Stubber(client) as stubber:
        stubber.add_client_error(METHOD, "ThrottlingException", "Rate exceeded", 400)
        stubber.add_client_error(METHOD, "ProvisionedThroughputExceededException", "slow", 400)
        stubber.add_response(METHOD, RESPONSE)
        detection = RekognitionDetector(client, retry=policy(3, sleeps)).detect(
            image, min_confidence=50
        )
        stubber.assert_no_pending_responses()
    assert detection.labels == EXPECTED_LABELS
    assert len(sleeps) == 2
    # Exponential backoff with full jitter: each wait is within its doubling cap.
    assert 0 <= sleeps[0] <= 0.2
    assert 0 <= sleeps[1] <= 0.4


class _FlakyClient:
    """Raises the given errors in turn, then answers; configured not to retry by itself."""

    def __init__(self, *errors: BaseException) -> None:
        self.meta = SimpleNamespace(config=Config(retries={"total_max_attempts": 1}))
        self.errors = list(errors)
        self.calls = 0

    def detect_moderation_labels(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return RESPONSE


CONNECTION_ERRORS: list[Callable[[], BotoCoreError]] = [
    lambda: EndpointConnectionError(endpoint_url="https://rekognition.us-east-1.amazonaws.com"),
    lambda: ConnectionClosedError(endpoint_url="https://rekognition.us-east-1.amazonaws.com"),
    lambda: ReadTimeoutError(endpoint_url="https://rekognition.us-east-1.amazonaws.com"),
    lambda: ConnectTimeoutError(endpoint_url="https://rekognition.us-east-1.amazonaws.com"),
]


@pytest.mark.parametrize("make", CONNECTION_ERRORS, ids=lambda m: type(m()).__name__)
def test_connection_errors_are_retried(
    image: PreparedImage, make: Callable[[], BotoCoreError]
) -> None:
    sleeps = Sleeps()
    client = _FlakyClient(make(), make())
    detection = RekognitionDetector(client, retry=policy(3, sleeps)).detect(
        image, min_confidence=50
    )
    assert detection.labels == EXPECTED_LABELS
    assert client.calls == 3

    client = _FlakyClient(make(), make(), make())
    with pytest.raises(DetectorError, match=type(make()).__name__) as caught:
        RekognitionDetector(client, retry=policy(3, Sleeps())).detect(image, min_confidence=50)
    assert client.calls == 3
    assert caught.value.attempts == 3
    assert caught.value.code is None
    assert isinstance(caught.value.__cause__, type(make()))


def test_other_botocore_errors_are_wrapped_not_retried(image: PreparedImage) -> None:
    client = _FlakyClient(NoCredentialsError())
    with pytest.raises(DetectorError, match="NoCredentialsError") as caught:
        RekognitionDetector(client, retry=policy(3, Sleeps())).detect(image, min_confidence=50)
    assert client.calls == 1
    assert caught.value.attempts == 1
    assert isinstance(caught.value.__cause__, NoCredentialsError)


# -- the wire: real HTTP to AWSEndpoint on 127.0.0.1 -----------------------------------------


def library_client(aws: AWSEndpoint, **config: Any) -> Any:
    """What the library builds (botocore makes one attempt), but aimed at the local endpoint."""
    return aws.client("rekognition", retries={"total_max_attempts": 1}, **config)


def retrying_client(aws: AWSEndpoint) -> Any:
    """A caller's client whose botocore standard retries own the policy."""
    return aws.client("rekognition", retries={"mode": "standard", "max_attempts": 3})


def test_wire_request_and_response(aws: AWSEndpoint, image: PreparedImage) -> None:
    aws.script(DETECT, Reply.ok(RESPONSE))
    detection = RekognitionDetector(library_client(aws)).detect(image, min_confidence=30.0)
    assert detection.labels == EXPECTED_LABELS
    assert detection.model_version == "7.0"
    [request] = aws.requests
    assert request.headers["X-Amz-Target"] == "RekognitionService.DetectModerationLabels"
    assert request.body == {
        "Image": {"Bytes": base64.b64encode(image.detect_bytes or b"").decode()},
        "MinConfidence": 30.0,
    }
    assert aws.unexpected == []


def test_wire_library_built_client(
    aws: AWSEndpoint, image: PreparedImage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client the library builds itself, routed to the endpoint by botocore's own
    # service-specific endpoint variable: botocore must not retry behind the library's back.
    monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", aws.url)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="x")
    sleeps = Sleeps()
    detector = RekognitionDetector(session=session, region="us-east-1", retry=policy(4, sleeps))
    try:
        aws.script(DETECT, Reply.throttle(), Reply.throttle(), Reply.ok(RESPONSE))
        assert detector.detect(image, min_confidence=50).labels == EXPECTED_LABELS
        assert aws.count(DETECT) == 3
        assert "moderation/0.1.0" in aws.requests[0].headers["User-Agent"]

        aws.set_default(DETECT, Reply.throttle())
        with pytest.raises(DetectorError, match="ThrottlingException") as caught:
            detector.detect(image, min_confidence=50)
        assert aws.count(DETECT) == 3 + 4
        assert caught.value.attempts == 4
        assert len(sleeps) == 2 + 3
    finally:
        detector.client.close()


def test_wire_library_retries_throttling(aws: AWSEndpoint, image: PreparedImage) -> None:
    sleeps = Sleeps()
    aws.script(DETECT, Reply.throttle(), Reply.throttle(), Reply.ok(RESPONSE))
    detector = RekognitionDetector(library_client(aws), retry=policy(4, sleeps))
    detection = detector.detect(image, min_confidence=50)
    assert detection.labels == EXPECTED_LABELS
    assert aws.count(DETECT) == 3
    assert len(sleeps) == 2
    assert aws.pending(DETECT) == 0


def test_wire_botocore_retries_when_the_injected_client_owns_them(
    aws: AWSEndpoint, image: PreparedImage, no_botocore_backoff: list[int]
) -> None:
    sleeps = Sleeps()
    aws.script(DETECT, Reply.throttle(), Reply.throttle(), Reply.ok(RESPONSE))
    detector = RekognitionDetector(retrying_client(aws), retry=policy(4, sleeps))
    detection = detector.detect(image, min_confidence=50)
    assert detection.labels == EXPECTED_LABELS
    assert aws.count(DETECT) == 3
    assert no_botocore_backoff == [1, 2]  # botocore retried twice ...
    assert sleeps == []  # ... and the library made a single attempt


def test_wire_persistent_throttling_with_a_retrying_client_does_not_multiply(
    aws: AWSEndpoint, image: PreparedImage, no_botocore_backoff: list[int]
) -> None:
    aws.set_default(DETECT, Reply.throttle())
    detector = RekognitionDetector(retrying_client(aws), retry=policy(4, Sleeps()))
    with pytest.raises(DetectorError, match="ThrottlingException") as caught:
        detector.detect(image, min_confidence=50)
    # `max_attempts: 3` is 3 retries for botocore: 4 requests, and not 4 x 4 = 16.
    assert aws.count(DETECT) == 4
    assert no_botocore_backoff == [1, 2, 3]
    assert caught.value.attempts == 4  # 1 library attempt + 3 botocore retries


def test_wire_persistent_throttling_stops_at_the_policy(
    aws: AWSEndpoint, image: PreparedImage
) -> None:
    sleeps = Sleeps()
    aws.set_default(DETECT, Reply.throttle())
    detector = RekognitionDetector(library_client(aws), retry=policy(4, sleeps))
    with pytest.raises(DetectorError, match="after 4 attempts") as caught:
        detector.detect(image, min_confidence=50)
    assert aws.count(DETECT) == 4  # not 4 x 4 = 16
    assert caught.value.code == "ThrottlingException"
    assert caught.value.attempts == 4
    assert len(sleeps) == 3


@pytest.mark.parametrize(
    "fault",
    [
        Reply.fail("InternalServerError", "boom"),
        Reply.fail("ServiceUnavailableException", "try later"),
        Reply.fail("ProvisionedThroughputExceededException", "over"),
    ],
    ids=lambda r: r.error,
)
def test_wire_server_errors_are_retried(
    aws: AWSEndpoint, image: PreparedImage, fault: Reply
) -> None:
    aws.script(DETECT, fault, Reply.ok(RESPONSE))
    detector = RekognitionDetector(library_client(aws), retry=policy(3, Sleeps()))
    assert detector.detect(image, min_confidence=50).labels == EXPECTED_LABELS
    assert aws.count(DETECT) == 2


def test_wire_connection_reset_is_retried(aws: AWSEndpoint, image: PreparedImage) -> None:
    aws.script(DETECT, Reply.reset_connection(), Reply.ok(RESPONSE))
    detector = RekognitionDetector(library_client(aws), retry=policy(3, Sleeps()))
    assert detector.detect(image, min_confidence=50).labels == EXPECTED_LABELS
    assert aws.count(DETECT) == 2


def test_wire_connection_refused_is_retried_then_reported(image: PreparedImage) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on `port` any more.
    client = boto3.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1"
    ).client(
        "rekognition",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=0.5),
    )
    sleeps = Sleeps()
    with pytest.raises(DetectorError, match="EndpointConnectionError") as caught:
        RekognitionDetector(client, retry=policy(2, sleeps)).detect(image, min_confidence=50)
    assert caught.value.attempts == 2
    assert len(sleeps) == 1
    assert isinstance(caught.value.__cause__, EndpointConnectionError)


def test_wire_malformed_json_is_a_detector_error(aws: AWSEndpoint, image: PreparedImage) -> None:
    sleeps = Sleeps()
    aws.script(DETECT, Reply.garbage(b'{"ModerationLabels": [{"Name": '), Reply.ok(RESPONSE))
    detector = RekognitionDetector(library_client(aws), retry=policy(3, sleeps))
    with pytest.raises(DetectorError, match="malformed") as caught:
        detector.detect(image, min_confidence=50)
    assert aws.count(DETECT) == 1
    assert caught.value.attempts == 1
    assert sleeps == []


# Bodies no Rekognition answer has: what a proxy, a load balancer or a broken service may send.
GARBLED_BODIES = {
    "empty-array": b"[]",
    "array": b"[1,2]",
    "string": b'"text"',
    "null": b"null",
    "truncated": b'{"ModerationLabels": [{"Name": "Violence", "Confid',
    "html": (
        b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
        b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
    ),
    "empty": b"",
}


@pytest.mark.parametrize("status", [200, 502])
@pytest.mark.parametrize("body", list(GARBLED_BODIES.values()), ids=list(GARBLED_BODIES))
def test_wire_garbled_bodies_are_only_ever_a_detector_error(
    aws: AWSEndpoint, image: PreparedImage, body: bytes, status: int
) -> None:
    aws.set_default(DETECT, Reply(status=status, body=body))
    detector = RekognitionDetector(library_client(aws), retry=policy(2, Sleeps()))
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the point is which type it is
        detector.detect(image, min_confidence=50)
    # Exactly DetectorError: not InvalidImage, not botocore's ClientError, ResponseParserError
    # or a builtin AttributeError/TypeError escaping from its parser.
    assert type(caught.value) is DetectorError, repr(caught.value)
    assert caught.value.__cause__ is not None
    assert caught.value.attempts == aws.count(DETECT)
    assert aws.count(DETECT) in (1, 2)  # a transient 502 may be retried, nothing else is


def test_wire_slow_reply_is_retried(aws: AWSEndpoint, image: PreparedImage) -> None:
    aws.script(DETECT, Reply.slow(0.5, RESPONSE), Reply.ok(RESPONSE))
    client = library_client(aws, read_timeout=0.2, connect_timeout=0.2)
    detector = RekognitionDetector(client, retry=policy(3, Sleeps()))
    assert detector.detect(image, min_confidence=50).labels == EXPECTED_LABELS
    assert aws.count(DETECT) == 2


def test_wire_all_slow_is_a_detector_error(aws: AWSEndpoint, image: PreparedImage) -> None:
    aws.set_default(DETECT, Reply.slow(0.5, RESPONSE))
    client = library_client(aws, read_timeout=0.2, connect_timeout=0.2)
    detector = RekognitionDetector(client, retry=policy(3, Sleeps()))
    with pytest.raises(DetectorError, match="ReadTimeoutError") as caught:
        detector.detect(image, min_confidence=50)
    assert aws.count(DETECT) == 3
    assert caught.value.attempts == 3
    assert isinstance(caught.value.__cause__, ReadTimeoutError)


def test_wire_deadline_stops_retries_before_the_attempts_run_out(
    aws: AWSEndpoint, image: PreparedImage
) -> None:
    # A fake clock that each (slow) request moves on by 0.4 s: with a 1 s deadline the third
    # failure is past it, so 3 requests are made although the policy allows 10.
    now = [0.0]

    def slow(_: Any) -> Reply:
        now[0] += 0.4
        return Reply.slow(0.5, RESPONSE)

    aws.set_default(DETECT, slow)
    client = library_client(aws, read_timeout=0.2, connect_timeout=0.2)
    retry = RetryPolicy(
        attempts=10,
        initial_backoff=0.0,
        deadline=1.0,
        sleep=Sleeps(),
        clock=lambda: now[0],
        rng=random.Random(7),
    )
    with pytest.raises(DetectorError, match="ReadTimeoutError") as caught:
        RekognitionDetector(client, retry=retry).detect(image, min_confidence=50)
    assert aws.count(DETECT) == 3
    assert caught.value.attempts == 3


def test_wire_invalid_image_format_is_not_retried(aws: AWSEndpoint, image: PreparedImage) -> None:
    sleeps = Sleeps()
    aws.script(
        DETECT,
        Reply.fail("InvalidImageFormatException", "Request has invalid image format"),
        Reply.ok(RESPONSE),
    )
    detector = RekognitionDetector(library_client(aws), retry=policy(3, sleeps))
    with pytest.raises(InvalidImage, match="Request has invalid image format"):
        detector.detect(image, min_confidence=50)
    assert aws.count(DETECT) == 1
    assert aws.pending(DETECT) == 1
    assert sleeps == []


def test_wire_detection_is_parsed_like_the_stubbed_one(
    aws: AWSEndpoint, image: PreparedImage
) -> None:
    aws.script(DETECT, Reply.ok(RESPONSE))
    wire = RekognitionDetector(library_client(aws)).detect(image, min_confidence=50)
    stubbed = Detection.from_rekognition(RESPONSE, min_confidence=50)
    assert wire.model_copy(update={"latency_ms": None}) == stubbed
