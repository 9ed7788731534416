"""The AWS transports and rate limiters: every attempt charged, throttles reported, pools sized.

Real boto3 clients against `AWSEndpoint` on 127.0.0.1 (the real Rekognition and Bedrock wire
formats), a moto S3 for the reader; limiters on a fake clock, so the rates asserted are exact.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.retries.standard
import builders
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from images import solid

from moderation._version import __version__
from moderation.aws.bedrock import BedrockJudge
from moderation.aws.rekognition import RekognitionDetector
from moderation.aws.s3 import S3ImageReader
from moderation.aws.transport import THROTTLE_CODES, RetryPolicy, is_throttle
from moderation.errors import DetectorError, JudgeError
from moderation.image import PreparedImage, S3Object
from moderation.limits import RateLimiter
from moderation.policy import Band, Thresholds
from moderation.ports import JudgeRequest
from moderation.testing import AWSEndpoint, Reply
from moderation.triage import Finding

DETECT = "DetectModerationLabels"
CONVERSE = "Converse"
MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
DETECT_BODY: dict[str, Any] = {"ModerationLabels": [], "ModerationModelVersion": "7.0"}
VERDICT = {"verdict": "approve", "categories": [], "rationale": "A medical illustration."}
CONVERSE_BODY: dict[str, Any] = {
    "output": {
        "message": {
            "role": "assistant",
            "content": [
                {"toolUse": {"toolUseId": "t1", "name": "record_verdict", "input": VERDICT}}
            ],
        }
    },
    "stopReason": "tool_use",
    "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
    "metrics": {"latencyMs": 80},
}
REQUEST = JudgeRequest(
    tenant="t",
    model_id=MODEL,
    guidance="Medical context is acceptable.",
    findings=(
        Finding(
            label="Violence",
            parent=None,
            level=1,
            confidence=72.0,
            rule="Violence",
            matched="label",
            thresholds=Thresholds(reject=95, escalate=60),
            band=Band.ESCALATE,
        ),
    ),
)


class FakeTime:
    """A clock that moves only when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def fake_limiter(rate: float, t: FakeTime, **kwargs: Any) -> RateLimiter:
    return RateLimiter(rate, clock=t.clock, sleep=t.sleep, **kwargs)


def no_sleep_policy(attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, sleep=lambda _: None, rng=random.Random(7))


@pytest.fixture(scope="module")
def image() -> PreparedImage:
    return builders.prepared()


@pytest.fixture
def aws() -> Iterator[AWSEndpoint]:
    with AWSEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
def endpoint_env(aws: AWSEndpoint, monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    """Library-built clients reach the endpoint; a session with fake keys to build them from."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_REKOGNITION", aws.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", aws.url)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    return boto3.Session(aws_access_key_id="AKIDPOOL", aws_secret_access_key="x")


def detector_on(aws: AWSEndpoint, **config: Any) -> RekognitionDetector:
    client = aws.client("rekognition", retries={"total_max_attempts": 1}, **config)
    return RekognitionDetector(client, retry=no_sleep_policy())


def judge_on(aws: AWSEndpoint) -> BedrockJudge:
    client = aws.client("bedrock-runtime", retries={"total_max_attempts": 1}, read_timeout=5)
    return BedrockJudge(client, retry=no_sleep_policy())


def client_error(code: str | None, status: int) -> ClientError:
    error: dict[str, Any] = {"Message": "m"}
    if code is not None:
        error["Code"] = code
    return ClientError(
        {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}},  # type: ignore[typeddict-item]
        "Op",
    )


# -- what a throttle is ----------------------------------------------------------------------


def test_throttle_codes_cover_botocore_s() -> None:
    checker = botocore.retries.standard.ThrottledRetryableChecker
    assert set(checker._THROTTLED_ERROR_CODES) <= THROTTLE_CODES


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 400, True),  # Rekognition throttles with a 400
        ("ThrottlingException", 429, True),  # Bedrock with a 429
        ("ProvisionedThroughputExceededException", 400, True),
        ("SlowDown", 503, True),  # S3
        ("TooManyRequestsException", 429, True),
        (None, 429, True),  # a bare 429: whatever the body, too many requests
        ("SomethingNew", 429, True),
        ("ModelNotReadyException", 429, False),  # the model is loading, the rate is fine
        ("InternalServerError", 500, False),
        ("ServiceUnavailableException", 503, False),
        ("AccessDeniedException", 403, False),
    ],
)
def test_is_throttle(code: str | None, status: int, expected: bool) -> None:
    assert is_throttle(client_error(code, status)) is expected


def test_other_exceptions_are_not_throttles() -> None:
    assert not is_throttle(ReadTimeoutError(endpoint_url="http://x"))
    assert not is_throttle(ValueError("ThrottlingException"))


# -- every attempt is charged, and its outcome reported --------------------------------------


def test_rekognition_throttled_twice_then_answered(aws: AWSEndpoint, image: PreparedImage) -> None:
    t = FakeTime()
    limiter = fake_limiter(100, t, name="rekognition")
    detector = detector_on(aws)
    assert detector.limiter is None
    detector.limiter = limiter
    assert detector.limiter is limiter
    aws.script(DETECT, Reply.throttle(), Reply.throttle(), Reply.ok(DETECT_BODY))

    detection = detector.detect(image, min_confidence=50)

    assert detection.model_version == "7.0"
    assert aws.count(DETECT) == 3
    stats = limiter.stats()
    # 3 attempts, 3 tokens. A decrease empties the bucket (100 -> 70), so the retry waits 1/70 s
    # for its token; it was let through after the decrease, so its throttle says 70 is still too
    # much: 49. The third attempt waits 1/49 s, time without a throttle that recovers a tenth of
    # the rate last throttled at per second: 7 x 1/49 = 1/7.
    assert (stats.acquired, stats.throttles, stats.decreases, stats.succeeded) == (3, 2, 2, 1)
    assert stats.rate == pytest.approx(49.0 + 1 / 7)
    assert detector.throttles == 2
    assert aws.unexpected == []


def test_bedrock_throttled_twice_with_429s_then_answered(
    aws: AWSEndpoint, image: PreparedImage
) -> None:
    t = FakeTime()
    limiter = fake_limiter(600, t, per=60, name="bedrock")
    judge = judge_on(aws)
    judge.limiter = limiter
    aws.script(CONVERSE, Reply.throttle(), Reply.throttle(), Reply.ok(CONVERSE_BODY))

    judgment = judge.judge(image, REQUEST)

    assert judgment.status == "verdict"
    assert judgment.attempts == 3
    stats = limiter.stats()
    assert (stats.acquired, stats.throttles, stats.decreases, stats.succeeded) == (3, 2, 2, 1)
    # 600 per minute x 0.7 = 420 at the first throttle. The burst is one request (a tenth of a
    # second at 10/s), so the retry waited 60/420 = 1/7 s and was sent at the lowered rate: its
    # throttle lowers it again, to 294. The third attempt waited 60/294 s for its token: time
    # callers waited without a throttle, which recovers a tenth of the rate last throttled at
    # (42 per minute-long window) x (60/294 s / 60 s) = 1/7.
    assert stats.rate == pytest.approx(294.0 + 1 / 7)
    assert judge.throttles == 2


def test_a_retry_waits_for_its_token_at_the_lowered_rate(
    aws: AWSEndpoint, image: PreparedImage
) -> None:
    t = FakeTime()
    detector = detector_on(aws)
    detector.limiter = fake_limiter(1, t, burst=1)  # one request per second
    aws.script(DETECT, Reply.throttle(), Reply.ok(DETECT_BODY))
    detector.detect(image, min_confidence=50)
    # The first attempt takes the only token; the throttle lowers the rate to 0.7/s, so the
    # retry's token comes 1 / 0.7 s later (the retry policy's own backoff is a no-op here),
    # waited in sleeps of at most a quarter of a second.
    assert sum(t.sleeps) == pytest.approx(1 / 0.7)
    assert max(t.sleeps) == 0.25
    assert detector.limiter.stats().waited_s == pytest.approx(1 / 0.7)


def test_other_failures_neither_lower_nor_raise_the_rate(
    aws: AWSEndpoint, image: PreparedImage
) -> None:
    t = FakeTime()
    limiter = fake_limiter(100, t)
    detector = detector_on(aws)
    detector.limiter = limiter
    aws.script(DETECT, Reply.fail("InternalServerError"), Reply.fail("AccessDeniedException"))
    with pytest.raises(DetectorError, match="AccessDeniedException"):
        detector.detect(image, min_confidence=50)
    stats = limiter.stats()
    assert (stats.acquired, stats.throttles, stats.decreases, stats.succeeded) == (2, 0, 0, 0)
    assert stats.rate == 100.0
    assert detector.throttles == 0


def test_bedrock_model_not_ready_is_retried_but_not_a_throttle(
    aws: AWSEndpoint, image: PreparedImage
) -> None:
    t = FakeTime()
    limiter = fake_limiter(60, t, per=60)
    judge = judge_on(aws)
    judge.limiter = limiter
    aws.script(CONVERSE, Reply.fail("ModelNotReadyException"), Reply.ok(CONVERSE_BODY))
    assert judge.judge(image, REQUEST).attempts == 2
    stats = limiter.stats()
    assert (stats.acquired, stats.throttles, stats.succeeded, stats.rate) == (2, 0, 1, 60.0)


def test_a_throttle_that_exhausts_the_retries_is_reported_every_time(
    aws: AWSEndpoint, image: PreparedImage
) -> None:
    t = FakeTime()
    limiter = fake_limiter(100, t)
    client = aws.client("bedrock-runtime", retries={"total_max_attempts": 1})
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    # Under a limiter throttles do not use up the 3 attempts: the 2 s deadline ends the call.
    policy = RetryPolicy(
        attempts=3, deadline=2.0, sleep=sleep, clock=lambda: clock[0], rng=random.Random(7)
    )
    judge = BedrockJudge(client, retry=policy)
    judge.limiter = limiter
    aws.set_default(CONVERSE, Reply.throttle())
    with pytest.raises(JudgeError) as caught:
        judge.judge(image, REQUEST)
    sent = aws.count(CONVERSE)
    assert sent > 3
    assert (caught.value.code, caught.value.attempts) == ("ThrottlingException", sent)
    assert (limiter.stats().acquired, limiter.stats().throttles, judge.throttles) == (
        sent,
        sent,
        sent,
    )


def test_throttles_are_counted_without_a_limiter(aws: AWSEndpoint, image: PreparedImage) -> None:
    detector = detector_on(aws)
    aws.script(DETECT, Reply.throttle(), Reply.ok(DETECT_BODY))
    detector.detect(image, min_confidence=50)
    assert detector.throttles == 1


def test_limiter_must_be_a_rate_limiter(aws: AWSEndpoint) -> None:
    detector = detector_on(aws)
    with pytest.raises(TypeError, match=r"limiter must be a moderation\.limits\.RateLimiter"):
        detector.limiter = 50  # type: ignore[assignment]
    detector.limiter = RateLimiter(50)
    detector.limiter = None
    assert detector.limiter is None


def test_one_limiter_shared_by_two_detectors(aws: AWSEndpoint, image: PreparedImage) -> None:
    t = FakeTime()
    shared = fake_limiter(10, t, burst=1)
    first, second = detector_on(aws), detector_on(aws)
    first.limiter = second.limiter = shared
    aws.set_default(DETECT, Reply.ok(DETECT_BODY))
    first.detect(image, min_confidence=50)
    second.detect(image, min_confidence=50)
    first.detect(image, min_confidence=50)
    # One quota: the second and third requests each wait their 0.1 s, whichever detector sent them.
    assert t.sleeps == [pytest.approx(0.1), pytest.approx(0.1)]
    assert shared.stats().acquired == 3


# -- connection pools ------------------------------------------------------------------------


def test_ensure_pool_rebuilds_a_built_client(
    endpoint_env: boto3.Session, aws: AWSEndpoint, image: PreparedImage
) -> None:
    detector = RekognitionDetector(
        session=endpoint_env,
        region="eu-west-1",
        connect_timeout=2.0,
        read_timeout=7.0,
        retry=no_sleep_policy(),
    )
    before = detector.client
    assert detector.pool_size == 10  # botocore's default
    assert detector.ensure_pool(5) is False
    assert detector.ensure_pool(10) is False
    assert detector.client is before

    assert detector.ensure_pool(20) is True

    client = detector.client
    assert client is not before
    config = client.meta.config
    assert (config.max_pool_connections, detector.pool_size) == (20, 20)
    assert (config.connect_timeout, config.read_timeout) == (2.0, 7.0)
    assert config.retries["total_max_attempts"] == 1  # botocore still makes one attempt
    assert config.user_agent_extra == f"moderation/{__version__}"
    assert client.meta.region_name == "eu-west-1"
    assert client._request_signer._credentials.access_key == "AKIDPOOL"  # the same session
    assert detector.retry.attempts == 4 and detector.owns_retries
    assert detector.ensure_pool(20) is False  # already large enough: left alone
    # The new client is the one requests go through, retries and all.
    aws.script(DETECT, Reply.throttle(), Reply.ok(DETECT_BODY))
    assert detector.detect(image, min_confidence=50).model_version == "7.0"
    assert aws.count(DETECT) == 2
    assert "moderation/" in aws.requests[-1].headers["User-Agent"]


def test_ensure_pool_on_the_judge_keeps_its_timeouts(
    endpoint_env: boto3.Session, aws: AWSEndpoint, image: PreparedImage
) -> None:
    judge = BedrockJudge(session=endpoint_env, region="us-east-1", retry=no_sleep_policy())
    assert judge.ensure_pool(32) is True
    config = judge.client.meta.config
    assert (config.max_pool_connections, config.read_timeout, config.connect_timeout) == (
        32,
        120.0,
        5.0,
    )
    aws.script(CONVERSE, Reply.ok(CONVERSE_BODY))
    assert judge.judge(image, REQUEST).status == "verdict"


def test_ensure_pool_on_the_s3_reader(s3: Any) -> None:
    s3.put_object(Bucket="uploads", Key="a.png", Body=solid("png", (64, 48)))
    reader = S3ImageReader(region="us-east-1")
    assert reader.ensure_pool(12) is True
    assert reader.client.meta.config.max_pool_connections == 12
    head = reader.head("uploads", "a.png", None)
    data = reader.read(S3Object("uploads", "a.png", etag=head.etag), limit=10_000)
    assert len(data) == head.size


def test_ensure_pool_leaves_an_injected_client_and_warns_once(
    aws: AWSEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    detector = detector_on(aws, max_pool_connections=4)
    client = detector.client
    with caplog.at_level(logging.WARNING, logger="moderation.aws"):
        assert detector.ensure_pool(8) is False
        assert detector.ensure_pool(8) is False  # said once is enough
        assert detector.ensure_pool(3) is False  # large enough: nothing to say
    assert detector.client is client
    assert client.meta.config.max_pool_connections == 4
    [record] = [r for r in caplog.records if r.name == "moderation.aws"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "rekognition" in message
    assert "holds 4 connections, fewer than the 8 workers" in message
    assert "max_pool_connections=8" in message


def test_ensure_pool_with_a_stand_in_client(caplog: pytest.LogCaptureFixture) -> None:
    class StandIn:
        def detect_moderation_labels(self, **_: Any) -> dict[str, Any]:
            return DETECT_BODY

    detector = RekognitionDetector(StandIn())
    assert detector.pool_size is None
    with caplog.at_level(logging.WARNING, logger="moderation.aws"):
        assert detector.ensure_pool(8) is False
    assert caplog.records == []


@pytest.mark.parametrize("n", [0, -1, True, 2.5])
def test_ensure_pool_needs_a_worker_count(aws: AWSEndpoint, n: Any) -> None:
    with pytest.raises(ValueError, match=r"ensure_pool needs a number of workers >= 1"):
        detector_on(aws).ensure_pool(n)


def run_rounds(
    detector: RekognitionDetector, image: PreparedImage, threads: int, rounds: int
) -> int:
    """`threads` threads call detect together `rounds` times; the number of calls that failed."""
    barrier = threading.Barrier(threads)
    failed: list[BaseException] = []

    def work() -> None:
        for _ in range(rounds):
            barrier.wait(10)
            try:
                detector.detect(image, min_confidence=50)
            except Exception as exc:
                failed.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    return len(failed)


def test_twenty_threads_share_a_pool_of_twenty(
    endpoint_env: boto3.Session, aws: AWSEndpoint, image: PreparedImage
) -> None:
    # Each answer takes 50 ms, so the 20 requests of a round are on the wire together.
    aws.set_default(DETECT, Reply.slow(0.05, DETECT_BODY))
    detector = RekognitionDetector(session=endpoint_env, region="us-east-1")
    assert detector.ensure_pool(20) is True
    detector.limiter = RateLimiter(100_000, name="fast")  # charged from 20 threads at once

    assert run_rounds(detector, image, threads=20, rounds=3) == 0

    assert aws.count(DETECT) == 60
    assert detector.limiter.stats().acquired == 60
    assert detector.limiter.stats().succeeded == 60
    assert aws.connections <= 20  # every round after the first reuses the first's connections


def test_twenty_threads_on_the_default_pool_of_ten_churn_connections(
    endpoint_env: boto3.Session, aws: AWSEndpoint, image: PreparedImage
) -> None:
    # The same without ensure_pool: only 10 connections go back to the pool after each round,
    # so every later round opens new ones (20 + 10 + 10 when all 20 overlap).
    aws.set_default(DETECT, Reply.slow(0.05, DETECT_BODY))
    detector = RekognitionDetector(session=endpoint_env, region="us-east-1")
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)  # "pool is full"
    try:
        assert run_rounds(detector, image, threads=20, rounds=3) == 0
    finally:
        logging.getLogger("urllib3.connectionpool").setLevel(logging.NOTSET)
    assert aws.count(DETECT) == 60
    assert aws.connections > 20


# -- under a limiter, a throttle is not a wasted attempt -------------------------------------


def test_under_a_limiter_throttles_do_not_use_up_the_attempts(aws: AWSEndpoint, image) -> None:
    t = FakeTime()
    detector = detector_on(aws)  # 4 attempts
    detector.limiter = fake_limiter(100, t)
    aws.script(DETECT, *[Reply.throttle() for _ in range(6)], Reply.ok(DETECT_BODY))
    detector.detect(image, min_confidence=50)  # 6 throttles, then an answer: no error
    assert aws.count(DETECT) == 7
    assert detector.limiter.stats().acquired == 7
    assert detector.limiter.stats().throttles == 6


def test_under_a_limiter_other_errors_still_count(aws: AWSEndpoint, image) -> None:
    t = FakeTime()
    detector = detector_on(aws)
    detector.limiter = fake_limiter(100, t)
    failures = [Reply.fail("InternalServerError") for _ in range(4)]
    aws.script(DETECT, Reply.throttle(), Reply.throttle(), *failures, Reply.ok(DETECT_BODY))
    with pytest.raises(DetectorError, match="InternalServerError"):
        detector.detect(image, min_confidence=50)
    assert aws.count(DETECT) == 6  # 2 throttles are free, then 4 counted failures


def test_without_a_limiter_throttles_count_as_attempts(aws: AWSEndpoint, image) -> None:
    detector = detector_on(aws)
    aws.script(DETECT, *[Reply.throttle() for _ in range(6)], Reply.ok(DETECT_BODY))
    with pytest.raises(DetectorError, match="ThrottlingException"):
        detector.detect(image, min_confidence=50)
    assert aws.count(DETECT) == 4


def test_under_a_limiter_the_deadline_still_bounds_throttles(aws: AWSEndpoint, image) -> None:
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    policy = RetryPolicy(
        attempts=4, deadline=3.0, sleep=sleep, clock=lambda: clock[0], rng=random.Random(7)
    )
    client = aws.client("rekognition", retries={"total_max_attempts": 1})
    detector = RekognitionDetector(client, retry=policy)
    detector.limiter = RateLimiter(1000)
    aws.set_default(DETECT, Reply.throttle())
    with pytest.raises(DetectorError, match="ThrottlingException"):
        detector.detect(image, min_confidence=50)
    # Backoff doubles from 0.2 s (jittered): the deadline of 3 s stops it well before 20 tries.
    assert 4 <= aws.count(DETECT) < 20
    assert clock[0] < 3.0
