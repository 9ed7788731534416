"""The dedupe cache: cache keys, the memory LRU, the DynamoDB backend (moto) and the spec."""

from __future__ import annotations

import hashlib
import logging
import pickle
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from moderation.dedupe import (
    DetectionCache,
    DetectionCacheError,
    DynamoDBDetectionCache,
    MemoryDetectionCache,
    cache_key,
    detection_cache_from_spec,
)
from moderation.detection import ContentType, Detection, Label
from moderation.errors import ConfigurationError

ROOT = Path(__file__).resolve().parent.parent
SHA = "ab" * 32
TABLE = "moderation-dedupe"
T0 = 1_700_000_000.0

DETECTION = Detection(
    model_version="7.0",
    min_confidence=40.0,
    project_version="arn:aws:rekognition:us-east-1:123456789012:project/p/version/v/1",
    labels=(
        Label(name="Explicit", parent=None, level=1, confidence=97.25),
        Label(name="Explicit Nudity", parent="Explicit", level=2, confidence=95.5),
        Label(name="Exposed Buttocks or Anus", parent="Explicit Nudity", level=3, confidence=91.0),
    ),
    content_types=(ContentType(name="Animated", confidence=88.125),),
    latency_ms=123.4,
    frames=(0, 3, 7),
)
OTHER = Detection(model_version="7.0", min_confidence=40.0, latency_ms=5.0)


def key(n: int = 0) -> str:
    return cache_key(f"{n:064x}", detector="rekognition", min_confidence=40, max_frames=1)


class Clock:
    """A settable clock for the expiry tests."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- cache_key ------------------------------------------------------------------------------


def test_cache_key_is_the_sha256_of_a_canonical_json_of_its_inputs() -> None:
    canonical = (
        f'{{"detector":"rekognition","max_frames":1,"min_confidence":50.0,"sha256":"{SHA}","v":1}}'
    )
    expected = "3f5226955d4b0cbc1b34a251a3125b4d472593bca652f4af1a87ef3ef4f4c78f"
    assert hashlib.sha256(canonical.encode()).hexdigest() == expected
    assert cache_key(SHA, detector="rekognition", min_confidence=50, max_frames=1) == expected


def test_cache_key_is_stable_for_equal_inputs() -> None:
    first = cache_key(SHA, detector="rekognition", min_confidence=50.0, max_frames=4)
    assert cache_key(SHA, detector="rekognition", min_confidence=50, max_frames=4) == first
    assert cache_key(SHA.upper(), detector="rekognition", min_confidence=50, max_frames=4) == first
    assert len(first) == 64
    assert set(first) <= set("0123456789abcdef")


def test_cache_key_changes_when_any_input_changes() -> None:
    base: dict[str, Any] = {
        "detector": "rekognition",
        "min_confidence": 50.0,
        "max_frames": 4,
    }
    keys = {
        "base": cache_key(SHA, **base),
        "sha256": cache_key("ab" * 31 + "ac", **base),
        "detector": cache_key(SHA, **{**base, "detector": "rekognition:arn:aws:x:1"}),
        "min_confidence": cache_key(SHA, **{**base, "min_confidence": 50.5}),
        "max_frames": cache_key(SHA, **{**base, "max_frames": 5}),
    }
    assert len(set(keys.values())) == len(keys)


@pytest.mark.parametrize(
    ("sha256", "kwargs", "message"),
    [
        ("ab" * 31, {}, "64 hex characters"),
        ("zz" * 32, {}, "64 hex characters"),
        ("ab" * 32 + "\n", {}, "64 hex characters"),
        (SHA, {"detector": ""}, "detector must name"),
        (SHA, {"min_confidence": 100.5}, "from 0 to 100"),
        (SHA, {"min_confidence": float("nan")}, "from 0 to 100"),
        (SHA, {"max_frames": 0}, "at least 1"),
        (SHA, {"max_frames": True}, "at least 1"),
    ],
)
def test_cache_key_refuses_bad_inputs(sha256: str, kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"detector": "rekognition", "min_confidence": 50, "max_frames": 1}
    with pytest.raises(ValueError, match=message):
        cache_key(sha256, **{**args, **kwargs})


# --- memory ---------------------------------------------------------------------------------


def test_memory_cache_is_a_detection_cache_that_returns_what_was_stored() -> None:
    cache = MemoryDetectionCache()
    assert isinstance(cache, DetectionCache)
    assert cache.name == "memory"
    assert cache.maxsize == 10_000
    assert cache.get(key(1)) is None
    cache.put(key(1), DETECTION)
    assert cache.get(key(1)) is DETECTION
    assert len(cache) == 1
    assert (cache.hits, cache.misses) == (1, 1)


def test_memory_cache_evicts_the_least_recently_used() -> None:
    cache = MemoryDetectionCache(maxsize=2)
    a, b, c = (Detection(model_version=v) for v in "abc")
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") is a  # a is now the most recently used: b goes first
    cache.put("c", c)
    assert len(cache) == 2
    assert cache.get("b") is None
    assert cache.get("a") is a
    assert cache.get("c") is c
    cache.put("b", b)  # a was used before c: a goes
    assert cache.get("a") is None
    assert cache.get("c") is c
    assert cache.get("b") is b
    assert (cache.hits, cache.misses) == (5, 2)


def test_memory_cache_keeps_the_first_detection_and_counts_a_repeated_put_as_a_use() -> None:
    cache = MemoryDetectionCache(maxsize=2)
    cache.put("a", DETECTION)
    cache.put("b", OTHER)
    cache.put("a", OTHER)  # a stays DETECTION and becomes the most recently used
    cache.put("c", OTHER)
    assert cache.get("a") is DETECTION
    assert cache.get("b") is None
    assert (cache.hits, cache.misses) == (1, 1)


@pytest.mark.parametrize("maxsize", [0, -1, True, 2.0])
def test_memory_cache_refuses_a_bad_maxsize(maxsize: Any) -> None:
    with pytest.raises(ValueError, match="maxsize must be an integer of at least 1"):
        MemoryDetectionCache(maxsize)


def hammer(cache: MemoryDetectionCache, *, threads: int, rounds: int, keys: int) -> list[str]:
    """`threads` threads each get-or-put `rounds` times over `keys` keys, all at once; what went
    wrong (an exception, a detection under the wrong key)."""
    stored = {n: Detection(model_version=str(n)) for n in range(keys)}
    start = threading.Barrier(threads)
    wrong: list[str] = []

    def work(worker: int) -> None:
        try:
            start.wait()
            for i in range(rounds):
                n = (worker * 31 + i * 7) % keys
                found = cache.get(str(n))
                if found is None:
                    cache.put(str(n), stored[n])
                elif found is not stored[n]:
                    wrong.append(f"key {n} held {found.model_version}")
        except BaseException as exc:
            wrong.append(repr(exc))

    workers = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return wrong


def test_memory_cache_is_thread_safe() -> None:
    # Without the lock, a get moves a key that another thread's put has just evicted (KeyError),
    # and counters lose updates: with these sizes, a trial without the lock fails nearly always.
    threads, rounds, keys, maxsize = 16, 1500, 150, 120
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for _ in range(3):
            cache = MemoryDetectionCache(maxsize=maxsize)
            assert hammer(cache, threads=threads, rounds=rounds, keys=keys) == []
            assert cache.hits + cache.misses == threads * rounds
            assert cache.hits > 0
            assert cache.misses >= keys  # every key missed at least once
            assert len(cache) == maxsize
    finally:
        sys.setswitchinterval(interval)


# --- DynamoDB -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dynamodb_table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One moto DynamoDB for the module, with the table `moderation-dedupe` (partition key `id`,
    String): building it per test would cost more than the tests."""
    import boto3
    from moto import mock_aws

    shut_out = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as env, mock_aws():
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(shut_out / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(shut_out / "no-credentials"),
        }.items():
            env.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
            env.delenv(name, raising=False)
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


@pytest.fixture
def dynamodb(dynamodb_table: Any, fake_aws_env: dict[str, str]) -> Any:
    """The module's moto DynamoDB client, its table emptied."""
    for item in dynamodb_table.scan(TableName=TABLE, ProjectionExpression="id")["Items"]:
        dynamodb_table.delete_item(TableName=TABLE, Key={"id": item["id"]})
    return dynamodb_table


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(dynamodb: Any, clock: Clock) -> DynamoDBDetectionCache:
    return DynamoDBDetectionCache(TABLE, ttl_seconds=100, clock=clock, client=dynamodb)


def test_dynamodb_round_trip(cache: DynamoDBDetectionCache) -> None:
    assert isinstance(cache, DetectionCache)
    assert cache.name == "dynamodb"
    cache.put(key(1), DETECTION)
    found = cache.get(key(1))
    assert found == DETECTION
    assert found is not None
    assert found.labels == DETECTION.labels
    assert found.content_types == DETECTION.content_types
    assert found.frames == (0, 3, 7)
    assert found.cached is False  # the engine marks a reused detection itself


def test_dynamodb_miss_on_an_unknown_key(cache: DynamoDBDetectionCache) -> None:
    cache.put(key(1), DETECTION)
    assert cache.get(key(2)) is None


def test_dynamodb_item_layout(cache: DynamoDBDetectionCache, dynamodb: Any, clock: Clock) -> None:
    clock.now = T0 + 0.75
    cache.put(key(1), DETECTION)
    item = dynamodb.get_item(TableName=TABLE, Key={"id": {"S": f"detection#{key(1)}"}})["Item"]
    assert item == {
        "id": {"S": f"detection#{key(1)}"},
        "expiration": {"N": "1700000101"},  # ceil(T0 + 0.75 + 100)
        "detection": {"S": DETECTION.model_dump_json()},
        "created_at": {"N": "1700000000"},
    }


def test_dynamodb_prefix_and_ttl_attribute_are_configurable(dynamodb: Any, clock: Clock) -> None:
    cache = DynamoDBDetectionCache(
        TABLE, ttl_seconds=10, prefix="dd:", ttl_attribute="ttl", clock=clock, client=dynamodb
    )
    cache.put(key(1), OTHER)
    item = dynamodb.get_item(TableName=TABLE, Key={"id": {"S": f"dd:{key(1)}"}})["Item"]
    assert set(item) == {"id", "ttl", "detection", "created_at"}
    assert item["ttl"] == {"N": "1700000010"}
    assert cache.get(key(1)) == OTHER
    clock.now = T0 + 10.5
    assert cache.get(key(1)) is None


def test_dynamodb_expired_entry_is_a_miss(cache: DynamoDBDetectionCache, clock: Clock) -> None:
    cache.put(key(1), DETECTION)
    clock.now = T0 + 100  # the expiration second itself is still live
    assert cache.get(key(1)) == DETECTION
    clock.now = T0 + 100.001
    assert cache.get(key(1)) is None


def test_dynamodb_put_keeps_a_live_entry(
    cache: DynamoDBDetectionCache, dynamodb: Any, clock: Clock
) -> None:
    cache.put(key(1), DETECTION)
    clock.now = T0 + 50
    cache.put(key(1), OTHER)  # the condition fails: not an error, the first wins
    assert cache.get(key(1)) == DETECTION
    item = dynamodb.get_item(TableName=TABLE, Key={"id": {"S": f"detection#{key(1)}"}})["Item"]
    assert item["expiration"] == {"N": "1700000100"}
    assert item["created_at"] == {"N": "1700000000"}


def test_dynamodb_put_replaces_an_expired_entry(
    cache: DynamoDBDetectionCache, dynamodb: Any, clock: Clock
) -> None:
    cache.put(key(1), DETECTION)
    clock.now = T0 + 101
    assert cache.get(key(1)) is None
    cache.put(key(1), OTHER)
    assert cache.get(key(1)) == OTHER
    item = dynamodb.get_item(TableName=TABLE, Key={"id": {"S": f"detection#{key(1)}"}})["Item"]
    assert item["expiration"] == {"N": "1700000201"}
    assert item["created_at"] == {"N": "1700000101"}


@pytest.mark.parametrize(
    ("attributes", "why"),
    [
        ({"expiration": {"N": "1700000100"}, "detection": {"S": "{not json"}}, "not a Detection"),
        (
            {"expiration": {"N": "1700000100"}, "detection": {"S": '{"labels": 3}'}},
            "not a Detection",
        ),
        ({"expiration": {"N": "1700000100"}, "detection": {"N": "1"}}, "not a String"),
        ({"expiration": {"N": "1700000100"}}, "not a String"),
        ({"expiration": {"S": "soon"}, "detection": {"S": "{}"}}, "'expiration' is not a Number"),
        ({"detection": {"S": OTHER.model_dump_json()}}, "'expiration' is not a Number"),
    ],
)
def test_dynamodb_corrupt_item_is_a_miss_logged_once(
    cache: DynamoDBDetectionCache,
    dynamodb: Any,
    caplog: pytest.LogCaptureFixture,
    attributes: dict[str, Any],
    why: str,
) -> None:
    item_id = f"detection#{key(1)}"
    dynamodb.put_item(TableName=TABLE, Item={"id": {"S": item_id}, **attributes})
    with caplog.at_level(logging.WARNING, logger="moderation.dedupe"):
        assert cache.get(key(1)) is None
        assert cache.get(key(1)) is None
    warnings = [r for r in caplog.records if r.name == "moderation.dedupe"]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert item_id in message
    assert TABLE in message
    assert why in message


def test_dynamodb_missing_table_raises_a_cache_error_naming_it(dynamodb: Any) -> None:
    cache = DynamoDBDetectionCache("no-such-table", client=dynamodb)
    with pytest.raises(DetectionCacheError, match="no-such-table") as raised:
        cache.get(key(1))
    assert raised.value.code == "ResourceNotFoundException"
    assert "create it" in str(raised.value)
    with pytest.raises(DetectionCacheError, match="PutItem") as raised:
        cache.put(key(1), DETECTION)
    assert raised.value.code == "ResourceNotFoundException"


def test_dynamodb_requests_match_the_service_model(fake_aws_env: dict[str, str]) -> None:
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("dynamodb", region_name="us-east-1")
    cache = DynamoDBDetectionCache(TABLE, ttl_seconds=60, client=client, clock=lambda: T0 + 0.5)
    item_id = f"detection#{key(1)}"
    with Stubber(client) as stub:
        stub.add_response("get_item", {}, {"TableName": TABLE, "Key": {"id": {"S": item_id}}})
        stub.add_response(
            "put_item",
            {},
            {
                "TableName": TABLE,
                "Item": {
                    "id": {"S": item_id},
                    "expiration": {"N": "1700000061"},
                    "detection": {"S": OTHER.model_dump_json()},
                    "created_at": {"N": "1700000000"},
                },
                "ConditionExpression": "attribute_not_exists(id) OR #exp < :now",
                "ExpressionAttributeNames": {"#exp": "expiration"},
                "ExpressionAttributeValues": {":now": {"N": "1700000000.500000"}},
            },
        )
        stub.add_client_error(
            "put_item",
            service_error_code="ConditionalCheckFailedException",
            http_status_code=400,
        )
        stub.add_client_error(
            "put_item",
            service_error_code="ProvisionedThroughputExceededException",
            http_status_code=400,
        )
        assert cache.get(key(1)) is None
        cache.put(key(1), OTHER)
        cache.put(key(1), OTHER)  # losing the race is not an error
        with pytest.raises(DetectionCacheError) as raised:
            cache.put(key(1), OTHER)
        stub.assert_no_pending_responses()
    assert raised.value.code == "ProvisionedThroughputExceededException"
    assert "ProvisionedThroughputExceededException" in str(raised.value)


def test_dynamodb_connection_failure_raises_a_cache_error(fake_aws_env: dict[str, str]) -> None:
    import boto3
    from botocore.config import Config

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=1),
    )
    cache = DynamoDBDetectionCache(TABLE, client=client)
    with pytest.raises(DetectionCacheError, match="GetItem") as raised:
        cache.get(key(1))
    assert raised.value.code is None
    assert "EndpointConnectionError" in str(raised.value)


def test_cache_error_pickles_with_its_code() -> None:
    error = pickle.loads(pickle.dumps(DetectionCacheError("down", code="InternalServerError")))
    assert isinstance(error, DetectionCacheError)
    assert (str(error), error.code) == ("down", "InternalServerError")


def test_dynamodb_client_built_here_is_short_and_the_transport_owns_its_two_attempts(
    fake_aws_env: dict[str, str],
) -> None:
    cache = DynamoDBDetectionCache(TABLE, region="eu-west-1")
    config = cache.client.meta.config
    assert cache.client.meta.region_name == "eu-west-1"
    assert config.retries["total_max_attempts"] == 1  # botocore's retries off: one owner
    assert cache.transport.owns_retries
    assert cache.transport.retry.attempts == 2
    assert (config.connect_timeout, config.read_timeout) == (1.0, 1.0)
    assert "moderation/" in config.user_agent_extra


def test_dynamodb_region_comes_from_aws_region_before_boto3s(
    fake_aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    assert DynamoDBDetectionCache(TABLE).client.meta.region_name == "eu-central-1"
    monkeypatch.delenv("AWS_REGION")
    assert DynamoDBDetectionCache(TABLE).client.meta.region_name == "us-east-1"


def test_dynamodb_without_a_region_is_a_configuration_error(
    fake_aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigurationError, match="no AWS region"):
        DynamoDBDetectionCache(TABLE)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"table": "ab"}, "not a DynamoDB table name"),
        ({"table": "a/b/c"}, "not a DynamoDB table name"),
        ({"ttl_seconds": 0}, "positive number"),
        ({"ttl_seconds": float("inf")}, "positive number"),
        ({"ttl_attribute": "detection"}, "of its own"),
        ({"ttl_attribute": ""}, "of its own"),
    ],
)
def test_dynamodb_refuses_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"table": TABLE, "client": object()}
    with pytest.raises(ValueError, match=message):
        DynamoDBDetectionCache(**{**args, **kwargs})


def test_dynamodb_refuses_a_client_and_a_region() -> None:
    with pytest.raises(TypeError, match="either an injected client or a region"):
        DynamoDBDetectionCache(TABLE, client=object(), region="us-east-1")


# --- spec -----------------------------------------------------------------------------------


def test_spec_off_is_no_cache() -> None:
    assert detection_cache_from_spec("off") is None


def test_spec_memory() -> None:
    cache = detection_cache_from_spec("memory")
    assert isinstance(cache, MemoryDetectionCache)
    assert cache.maxsize == 10_000
    sized = detection_cache_from_spec("memory:25")
    assert isinstance(sized, MemoryDetectionCache)
    assert sized.maxsize == 25


def test_spec_dynamodb(fake_aws_env: dict[str, str]) -> None:
    cache = detection_cache_from_spec("dynamodb:my.table-1", ttl_seconds=3600, region="ap-south-1")
    assert isinstance(cache, DynamoDBDetectionCache)
    assert (cache.table, cache.ttl_seconds, cache.prefix) == ("my.table-1", 3600.0, "detection#")
    assert cache.client.meta.region_name == "ap-south-1"


@pytest.mark.parametrize(
    "spec",
    ["", "on", "Memory", "memory:", "memory:0", "memory:x", "memory:-1", "dynamodb:", "dynamodb:ab",
     "dynamodb:a b c", "redis:cache", " memory"],
)  # fmt: skip
def test_spec_refuses_anything_else(spec: str) -> None:
    with pytest.raises(ValueError, match=f"dedupe cache {spec!r}: must be off, memory"):
        detection_cache_from_spec(spec)


# --- import ---------------------------------------------------------------------------------


def test_importing_dedupe_loads_no_boto() -> None:
    code = (
        "import moderation.dedupe, sys; "
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto loaded'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
