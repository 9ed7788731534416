"""The S3 reader behind s3:// inputs: timeouts, one retry owner, and typed errors only."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from moderation.aws.s3 import S3ImageReader
from moderation.aws.transport import RetryPolicy
from moderation.errors import ImageSourceError, InvalidImage
from moderation.image import ImageIntake, S3Object


class Silent:
    """A TCP server on 127.0.0.1 that accepts connections and never answers (a hung endpoint)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted.append(conn)  # held open, never read from or written to

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent(fake_aws_env, monkeypatch) -> Iterator[Silent]:
    server = Silent()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.url)
    yield server
    server.close()


def no_sleep(seconds: float) -> None:
    pass


def test_a_hung_endpoint_gives_up_after_the_read_timeout_and_the_attempts(silent):
    # GIVEN a reader built by the library, with a short read timeout and two attempts
    reader = S3ImageReader(
        region="us-east-1", read_timeout=0.2, retry=RetryPolicy(attempts=2, sleep=no_sleep)
    )
    # WHEN intake reads an object from an endpoint that never answers
    with pytest.raises(ImageSourceError) as caught:
        ImageIntake(s3=reader).prepare("s3://uploads/a.jpg")
    # THEN it is a typed, retryable error after exactly two requests (botocore retried none)
    assert caught.value.retryable
    assert caught.value.attempts == 2
    assert len(silent.accepted) == 2
    assert "ReadTimeoutError" in str(caught.value) and "s3://uploads/a.jpg" in str(caught.value)


def test_the_default_reader_has_deadlines_and_owns_its_retries(fake_aws_env):
    reader = S3ImageReader(region="us-east-1")
    config = reader.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (3.0, 10.0)
    assert config.retries["total_max_attempts"] == 1  # tenacity owns them: never 3 x 4
    assert reader.owns_retries and reader.retry.attempts == 4


def test_the_engines_deferred_reader_builds_that_reader_on_the_first_s3_input(
    fake_aws_env, monkeypatch
):
    # GIVEN the reader an Engine gives its intake when given none: built on the first S3 input
    from moderation.aws.deferred import DeferredS3Reader

    built: list[S3ImageReader] = []
    original = S3ImageReader.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(S3ImageReader, "__init__", spy)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ImageSourceError, match=r"EndpointConnectionError|Could not connect"):
        ImageIntake(s3=DeferredS3Reader()).prepare("s3://uploads/a.jpg")
    [reader] = built
    assert reader.client.meta.config.read_timeout == 10.0


class Raising:
    """An injected client whose every call raises `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.meta = type("Meta", (), {"config": None})()

    def head_object(self, **params: str) -> None:
        raise self.error

    def get_object(self, **params: str) -> None:
        raise self.error


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "HeadObject",
    )


@pytest.mark.parametrize(
    ("error", "kind", "retryable"),
    [
        (client_error("404", 404), InvalidImage, None),
        (client_error("NoSuchBucket", 404), InvalidImage, None),
        (client_error("403", 403), InvalidImage, None),
        (client_error("SlowDown", 503), ImageSourceError, True),
        (client_error("InternalError", 500), ImageSourceError, True),
        (client_error("InvalidBucketName", 400), ImageSourceError, False),
        (ValueError("garbled body"), ImageSourceError, False),
        (AttributeError("'list' object has no attribute 'get'"), ImageSourceError, False),
    ],
    ids=["404", "no bucket", "403", "slow down", "500", "bad bucket name", "value", "attr"],
)
def test_every_failure_is_a_typed_error(error, kind, retryable):
    # An injected client that does not say it retries by itself is treated as retrying by
    # itself (botocore's default), so each call is made once here.
    reader = S3ImageReader(Raising(error))
    with pytest.raises(kind) as caught:
        reader.head("uploads", "a.jpg", None)
    if retryable is not None:
        assert isinstance(caught.value, ImageSourceError)
        assert caught.value.retryable is retryable
    assert caught.value.__cause__ is error


def test_a_read_of_a_changed_object_is_a_retryable_source_error():
    reader = S3ImageReader(Raising(client_error("PreconditionFailed", 412)))
    with pytest.raises(ImageSourceError, match="changed while it was read") as caught:
        reader.read(S3Object("uploads", "a.jpg", etag="abc"), limit=10)
    assert caught.value.retryable


# -- the shared base: the port's promise holds even where botocore or our own code fails ---------


@pytest.mark.parametrize("adapter", ["s3", "rekognition", "bedrock"])
def test_a_client_that_cannot_be_built_is_the_adapters_own_error(adapter, fake_aws_env):
    import boto3

    from moderation.aws.bedrock import BedrockJudge
    from moderation.aws.rekognition import RekognitionDetector
    from moderation.errors import DetectorError, JudgeError

    kind, error = {
        "s3": (S3ImageReader, ImageSourceError),
        "rekognition": (RekognitionDetector, DetectorError),
        "bedrock": (BedrockJudge, JudgeError),
    }[adapter]
    with pytest.raises(error, match="cannot build the client: InvalidRegionError"):
        kind(session=boto3.Session(), region="not a region!")


def test_a_bug_while_translating_a_failure_is_still_the_ports_error():
    class Buggy(S3ImageReader):
        def translate(self, exc, operation, requests, context=None):
            raise KeyError("oops")

    reader = Buggy(Raising(client_error("SlowDown", 503)))
    with pytest.raises(ImageSourceError, match="translating it failed too") as caught:
        reader.head("uploads", "a.jpg", None)
    assert isinstance(caught.value.__cause__, ClientError)
