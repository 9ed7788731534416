"""Policies without redeploy: a directory, an S3 prefix (moto) or AWS AppConfig (Stubber), each
loaded whole, checked again once a ttl has passed on an injected clock, a new version swapped in
at once and an invalid one refused with the last good version kept."""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import builders
import click
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from moderation.cli._common import load_store
from moderation.errors import ConfigurationError, PolicyError, Problem, UnknownTenant
from moderation.policy import (
    AppConfigSource,
    DirectorySource,
    PolicySource,
    PolicyStore,
    S3Source,
    Snapshot,
)

DEFAULT = "min_confidence: 50\ndefault: {reject: 90, escalate: 60}\n"


def kids(reject: float) -> str:
    return f"extends: default\ncategories:\n  Violence: {{reject: {reject}}}\n"


# Line 3 of the file: Violence's reject is out of range.
BAD_KIDS = "extends: default\ncategories:\n  Violence: {reject: 200}\n"
BAD_MESSAGE = "must be a number from 0 to 100, got 200"
VERSION = re.compile(r"^sha256:[0-9a-f]{12}$")


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def violence(store: PolicyStore, tenant: str = "kids") -> float | None:
    return store.get(tenant).categories["Violence"].thresholds.reject


def checked(store: PolicyStore) -> PolicyStore:
    """`store` once the check a read started in the background (the ttl had passed) is over."""
    assert store.wait_for_check(10)
    return store


def digest(pairs: list[tuple[str, bytes]]) -> str:
    """The documented version digest, by hand: sha256 over length-prefixed (name, data) pairs
    in name order, 12 hex digits."""
    h = hashlib.sha256()
    for name, data in sorted(pairs):
        for piece in (name.encode(), data):
            h.update(len(piece).to_bytes(8, "big") + piece)
    return "sha256:" + h.hexdigest()[:12]


# --------------------------------------------------------------------------- a directory


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    return builders.policies_dir(tmp_path, DEFAULT, kids=kids(80))


def test_a_directory_store_records_the_digest_of_its_files_in_every_policy(policy_dir: Path):
    store = PolicyStore(policy_dir)
    expected = digest(
        [("default.yaml", DEFAULT.encode()), ("tenants/kids.yaml", kids(80).encode())]
    )
    assert store.version == expected
    assert store.location == str(policy_dir)
    for policy in store:
        assert policy.version == expected
        assert policy.ref.version == expected
    # The rules' hash does not depend on where they came from.
    memory = PolicyStore.from_sources({"default": DEFAULT, "kids": kids(80)})
    assert memory.version is None and memory.get("kids").ref.version is None
    assert memory.get("kids").sha256 == store.get("kids").sha256


def test_the_digest_is_of_the_content_not_of_where_the_directory_is(
    policy_dir: Path, tmp_path: Path
):
    other = tmp_path / "elsewhere"
    (other / "tenants").mkdir(parents=True)
    (other / "default.yaml").write_text(DEFAULT)
    (other / "tenants" / "kids.yaml").write_text(kids(80))
    assert PolicyStore(other).version == PolicyStore(policy_dir).version
    (other / "tenants" / "kids.yaml").write_text(kids(81))
    assert PolicyStore(other).version != PolicyStore(policy_dir).version


def test_a_directory_with_a_ttl_is_read_again_after_an_edit(policy_dir: Path):
    clock = Clock()
    store = PolicyStore.load(policy_dir, ttl=5, clock=clock)
    old, first = store.get("kids"), store.version
    (policy_dir / "tenants" / "kids.yaml").write_text(kids(70))
    clock.advance(4.9)
    assert violence(store) == 80.0  # the ttl has not passed
    clock.advance(0.1)
    assert violence(store) == 80.0  # the read that finds the ttl passed does not wait
    assert violence(checked(store)) == 70.0
    assert store.version != first and store.get("kids").version == store.version
    assert old.categories["Violence"].thresholds.reject == 80.0 and old.version == first


def test_a_directory_without_a_ttl_is_never_read_again(policy_dir: Path, opened: list[Path]):
    clock = Clock()
    stores = [PolicyStore(policy_dir), PolicyStore.load(policy_dir, clock=clock)]
    assert len(opened) == 4  # two files, by each store
    (policy_dir / "tenants" / "kids.yaml").write_text(kids(70))
    opened.clear()
    clock.advance(10**9)
    for store in stores:
        for _ in range(3):
            assert violence(store) == 80.0
        assert store.tenants == ("kids",)
    assert opened == []


def test_reload_reads_a_directory_now_and_says_whether_anything_changed(policy_dir: Path):
    store = PolicyStore(policy_dir)
    assert store.reload() is False
    (policy_dir / "tenants" / "kids.yaml").write_text(kids(70))
    assert store.reload() is True
    assert violence(store) == 70.0
    assert store.reload() is False


def test_a_store_with_drafts_or_from_memory_has_nothing_to_reload(policy_dir: Path, tmp_path: Path):
    draft = tmp_path / "teens.yaml"
    draft.write_text(kids(60))
    store = PolicyStore(policy_dir, drafts=[draft])
    assert store.tenants == ("kids", "teens")
    assert VERSION.match(store.version or "")
    assert store.version != PolicyStore(policy_dir).version  # the draft is part of the version
    assert store.reload() is False
    assert PolicyStore.from_sources({"default": DEFAULT}).reload() is False


def test_a_ttl_must_be_positive(policy_dir: Path):
    for ttl in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="ttl must be a positive number of seconds"):
            PolicyStore.load(policy_dir, ttl=ttl)


# --------------------------------------------------------------------------- S3 (moto)


class Calls:
    """The reads of policies the client sent (ListObjectsV2 and GetObject), in order."""

    def __init__(self, client: Any) -> None:
        self.names: list[str] = []
        client.meta.events.register("before-call.s3.*", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        if model.name in ("ListObjectsV2", "GetObject"):
            self.names.append(model.name)

    def count(self, name: str) -> int:
        return self.names.count(name)


@pytest.fixture
def bucket(s3: Any) -> Any:
    s3.create_bucket(Bucket="policies")
    s3.put_object(Bucket="policies", Key="prod/default.yaml", Body=DEFAULT.encode())
    s3.put_object(Bucket="policies", Key="prod/tenants/kids.yaml", Body=kids(80).encode())
    return s3


@pytest.fixture
def client(bucket: Any) -> Any:
    """The client the store reads with (the test's own uploads are not reads)."""
    return bucket


def put(s3: Any, key: str, text: str) -> None:
    s3.put_object(Bucket="policies", Key=f"prod/{key}", Body=text.encode())


def etag(s3: Any, key: str) -> bytes:
    return str(s3.head_object(Bucket="policies", Key=f"prod/{key}")["ETag"]).encode()


def test_policies_load_from_an_s3_prefix_with_the_version_in_every_policy(bucket: Any, client: Any):
    store = PolicyStore.load("s3://policies/prod", s3_client=client)
    assert store.tenants == ("kids",)
    assert violence(store) == 80.0
    expected = digest(
        [
            ("default.yaml", etag(bucket, "default.yaml")),
            ("tenants/kids.yaml", etag(bucket, "tenants/kids.yaml")),
        ]
    )
    assert store.version == expected and store.location == "s3://policies/prod"
    assert store.get("kids").version == store.get("default").ref.version == expected


def test_an_edit_in_s3_is_used_once_the_ttl_has_passed(bucket: Any, client: Any):
    clock = Clock()
    store = PolicyStore.load("s3://policies/prod", s3_client=client, clock=clock, ttl=30)
    calls = Calls(client)
    old, first = store.get("kids"), store.version
    put(bucket, "tenants/kids.yaml", kids(70))
    clock.advance(29)
    assert violence(store) == 80.0
    assert calls.names == []  # before the ttl: not even a List
    clock.advance(1)
    violence(store)
    assert violence(checked(store)) == 70.0
    assert calls.names == ["ListObjectsV2", "GetObject"]  # only the object that changed
    assert store.version != first and store.get("kids").ref.version == store.version
    assert store.last_error is None
    assert old.categories["Violence"].thresholds.reject == 80.0 and old.version == first


def test_the_default_ttl_of_s3_is_60_seconds(bucket: Any, client: Any):
    clock = Clock()
    store = PolicyStore.load("s3://policies/prod", s3_client=client, clock=clock)
    calls = Calls(client)
    clock.advance(59.9)
    store.get("kids")
    assert calls.count("ListObjectsV2") == 0
    clock.advance(0.1)
    checked(store).get("kids")
    checked(store)
    assert calls.count("ListObjectsV2") == 1


def test_an_unchanged_prefix_costs_one_list_and_no_get(bucket: Any, client: Any):
    clock = Clock()
    calls = Calls(client)
    store = PolicyStore.load("s3://policies/prod", s3_client=client, clock=clock)
    assert (calls.count("ListObjectsV2"), calls.count("GetObject")) == (1, 2)
    for _ in range(3):
        clock.advance(60)
        assert violence(store) == 80.0
        checked(store)
    assert (calls.count("ListObjectsV2"), calls.count("GetObject")) == (4, 2)


def test_an_invalid_edit_is_refused_logged_and_retried_after_the_next_ttl(
    bucket: Any, client: Any, caplog: pytest.LogCaptureFixture
):
    clock = Clock()
    store = PolicyStore.load("s3://policies/prod", s3_client=client, clock=clock)
    good = store.version
    calls = Calls(client)
    put(bucket, "tenants/kids.yaml", BAD_KIDS)
    clock.advance(60)
    with caplog.at_level(logging.INFO, logger="moderation.policy"):
        violence(store)
        assert violence(checked(store)) == 80.0  # the last good version stays in force
    [record] = caplog.records
    assert record.name == "moderation.policy" and record.levelno == logging.ERROR
    line = f"s3://policies/prod/tenants/kids.yaml:3: categories.Violence.reject: {BAD_MESSAGE}"
    assert line in record.getMessage()
    assert f"still using version {good}" in record.getMessage()
    assert store.version == good
    assert isinstance(store.last_error, PolicyError)
    assert store.last_error.problems == (
        Problem(
            "s3://policies/prod/tenants/kids.yaml",
            "categories.Violence.reject",
            BAD_MESSAGE,
            None,
            3,
        ),
    )
    # Not checked again on every call: only once the next ttl has passed, and an unchanged
    # invalid version is neither read nor logged again.
    caplog.clear()
    for _ in range(5):
        store.get("kids")
    assert calls.count("ListObjectsV2") == 1
    clock.advance(60)
    violence(store)
    assert violence(checked(store)) == 80.0
    assert (calls.count("ListObjectsV2"), calls.count("GetObject")) == (2, 1)
    assert caplog.records == [] and isinstance(store.last_error, PolicyError)
    # Fixed: the next ttl swaps it in.
    put(bucket, "tenants/kids.yaml", kids(65))
    clock.advance(60)
    with caplog.at_level(logging.INFO, logger="moderation.policy"):
        violence(store)
        assert violence(checked(store)) == 65.0
    assert store.last_error is None and store.version not in (good, None)
    assert [r.levelno for r in caplog.records] == [logging.INFO]


def test_a_failed_check_keeps_the_last_good_version_until_s3_answers_again(
    bucket: Any, client: Any, caplog: pytest.LogCaptureFixture
):
    clock = Clock()
    store = PolicyStore.load("s3://policies/prod", s3_client=client, clock=clock)
    good = store.version
    objects = bucket.list_objects_v2(Bucket="policies")["Contents"]
    for obj in objects:
        bucket.delete_object(Bucket="policies", Key=obj["Key"])
    bucket.delete_bucket(Bucket="policies")
    clock.advance(60)
    with caplog.at_level(logging.ERROR, logger="moderation.policy"):
        violence(store)
        assert violence(checked(store)) == 80.0
    assert isinstance(store.last_error, PolicyError)
    assert store.last_error.problems[0].message == (
        "s3 ListObjectsV2 failed for s3://policies/prod/: not found (NoSuchBucket: The specified "
        "bucket does not exist; 1 attempt)"
    )
    assert "cannot check for a new version" in caplog.records[0].getMessage()
    bucket.create_bucket(Bucket="policies")
    put(bucket, "default.yaml", DEFAULT)
    put(bucket, "tenants/kids.yaml", kids(80))
    clock.advance(60)
    assert store.reload() is False  # the same objects again: the same version, no swap
    assert store.version == good and store.last_error is None


def put_tenants(s3: Any, n: int) -> None:
    for i in range(n):
        put(s3, f"tenants/t{i:04}.yaml", kids(80))


def test_one_changed_tenant_of_300_costs_one_list_and_one_get(bucket: Any, client: Any):
    put_tenants(bucket, 299)  # with kids: 300 tenants
    clock = Clock()
    store = PolicyStore.load("s3://policies/prod", s3_client=client, clock=clock)
    assert len(store.tenants) == 300
    calls = Calls(client)
    put(bucket, "tenants/t0123.yaml", kids(55))
    clock.advance(60)
    violence(store, "t0123")
    assert violence(checked(store), "t0123") == 55.0
    assert calls.names == ["ListObjectsV2", "GetObject"]
    assert violence(store, "t0124") == 80.0 and len(store.tenants) == 300
    expected = digest(
        [("default.yaml", etag(bucket, "default.yaml"))]
        + [(f"tenants/{t}.yaml", etag(bucket, f"tenants/{t}.yaml")) for t in store.tenants]
    )
    assert store.version == expected  # the same version a full read gives
    assert PolicyStore.load("s3://policies/prod", s3_client=client).version == expected


def test_a_tenant_gone_from_the_new_version_is_logged_at_warning_by_name(
    bucket: Any, client: Any, caplog: pytest.LogCaptureFixture
):
    put_tenants(bucket, 3)
    clock = Clock()
    store = PolicyStore.load("s3://policies/prod", s3_client=client, clock=clock)
    old = store.version
    bucket.delete_object(Bucket="policies", Key="prod/tenants/t0001.yaml")
    clock.advance(60)
    with caplog.at_level(logging.INFO, logger="moderation.policy"):
        checked(store).get("kids")
        checked(store)
    [gone] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert gone.getMessage() == (
        f"policies at s3://policies/prod: version {store.version} has no policy for tenant "
        f"t0001 (version {old} had): their images are refused as an unknown tenant"
    )
    assert store.tenants == ("kids", "t0000", "t0002")
    with pytest.raises(UnknownTenant):
        store.get("t0001")


def test_an_invalid_version_read_in_part_keeps_the_old_and_is_read_whole_once_fixed(
    bucket: Any, client: Any
):
    put_tenants(bucket, 2)
    clock = Clock()
    store = PolicyStore.load("s3://policies/prod", s3_client=client, clock=clock)
    good = store.version
    calls = Calls(client)
    put(bucket, "tenants/t0001.yaml", BAD_KIDS)
    bucket.delete_object(Bucket="policies", Key="prod/tenants/t0000.yaml")
    clock.advance(60)
    checked(store).get("kids")
    checked(store)
    assert store.version == good and isinstance(store.last_error, PolicyError)
    assert store.tenants == ("kids", "t0000", "t0001")  # nothing of the refused version
    put(bucket, "tenants/t0001.yaml", kids(45))
    clock.advance(60)
    checked(store).get("kids")
    assert violence(checked(store), "t0001") == 45.0 and store.last_error is None
    assert store.tenants == ("kids", "t0001")
    assert calls.names == ["ListObjectsV2", "GetObject"] * 2


def test_a_slow_s3_keeps_every_reader_on_the_version_in_force(bucket: Any, client: Any):
    clock = Clock()
    store = PolicyStore.load("s3://policies/prod", s3_client=client, clock=clock)
    reading, release = threading.Event(), threading.Event()

    def slow_get(**_: Any) -> None:
        reading.set()
        release.wait(10)

    client.meta.events.register("before-call.s3.GetObject", slow_get)
    put(bucket, "tenants/kids.yaml", kids(60))
    clock.advance(60)
    assert violence(store) == 80.0
    assert reading.wait(10)  # the check is waiting for S3 on its own thread
    assert violence(store) == 80.0 and store.wait_for_check(0.05) is False
    release.set()
    assert violence(checked(store)) == 60.0


def test_a_missing_bucket_names_the_bucket_and_the_iam_actions(s3: Any):
    with pytest.raises(PolicyError) as caught:
        PolicyStore.load("s3://no-such-bucket/prod", s3_client=s3)
    [problem] = caught.value.problems
    assert problem.file == "s3://no-such-bucket/prod"
    assert problem.message.startswith(
        "s3 ListObjectsV2 failed for s3://no-such-bucket/prod/: not found (NoSuchBucket: "
    )
    assert problem.hint == (
        "check MODERATION_POLICIES; the role needs s3:ListBucket on arn:aws:s3:::no-such-bucket "
        "and s3:GetObject on arn:aws:s3:::no-such-bucket/prod/*"
    )


def test_access_denied_names_the_bucket_and_the_iam_actions(fake_aws_env: dict[str, str]):
    import boto3

    client = boto3.client("s3", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "list_objects_v2",
            service_error_code="AccessDenied",
            service_message="Access Denied",
            http_status_code=403,
            expected_params={"Bucket": "policies", "Prefix": "prod/"},
        )
        with pytest.raises(PolicyError) as caught:
            PolicyStore.load("s3://policies/prod/", s3_client=client)
        # Listed, but the object may not be read.
        stubber.add_response(
            "list_objects_v2",
            {"Contents": [{"Key": "prod/default.yaml", "ETag": '"e1"', "Size": 10}]},
            {"Bucket": "policies", "Prefix": "prod/"},
        )
        stubber.add_client_error(
            "get_object",
            service_error_code="AccessDenied",
            service_message="Access Denied",
            http_status_code=403,
            expected_params={"Bucket": "policies", "Key": "prod/default.yaml", "IfMatch": '"e1"'},
        )
        with pytest.raises(PolicyError) as unread:
            PolicyStore.load("s3://policies/prod/", s3_client=client)
    hint = (
        "the role needs s3:ListBucket on arn:aws:s3:::policies and s3:GetObject on "
        "arn:aws:s3:::policies/prod/*"
    )
    assert caught.value.problems == (
        Problem(
            "s3://policies/prod",
            "",
            "s3 ListObjectsV2 failed for s3://policies/prod/: denied (the caller needs "
            "s3:ListBucket on the bucket; AccessDenied: Access Denied; 1 attempt)",
            hint,
        ),
    )
    assert unread.value.problems == (
        Problem(
            "s3://policies/prod",
            "",
            "s3 GetObject failed for s3://policies/prod/default.yaml: denied (the caller needs "
            "s3:GetObject; AccessDenied: Access Denied; 1 attempt)",
            hint,
        ),
    )


def test_an_empty_prefix_says_nothing_is_stored_there(bucket: Any, client: Any):
    with pytest.raises(PolicyError) as caught:
        PolicyStore.load("s3://policies/staging", s3_client=client)
    [problem] = caught.value.problems
    assert problem.file == "s3://policies/staging/default.yaml"
    assert (
        problem.message == "default.yaml not found: nothing is stored under s3://policies/staging/"
    )


def test_the_s3_layout_is_the_directory_layout(bucket: Any, client: Any):
    put(bucket, "tenants/teens.yml", kids(60))
    put(bucket, "tenants/kids.yml", kids(50))  # a second file for kids
    put(bucket, "tenants/old/ignored.yaml", "not: [a policy")  # nested: not a tenant file
    put(bucket, "README.md", "# not a policy")
    put(bucket, "tenants/notes.txt", "not a policy")
    with pytest.raises(PolicyError) as caught:
        PolicyStore.load("s3://policies/prod", s3_client=client)
    assert caught.value.problems == (
        Problem(
            "s3://policies/prod/tenants/kids.yml",
            "",
            "a second file for 'kids'",
            "keep one of .yaml/.yml",
        ),
    )
    bucket.delete_object(Bucket="policies", Key="prod/tenants/kids.yml")
    store = PolicyStore.load("s3://policies/prod", s3_client=client)
    assert store.tenants == ("kids", "teens")
    assert violence(store, "teens") == 60.0


def test_a_bucket_root_holds_the_layout_without_a_prefix(s3: Any):
    s3.create_bucket(Bucket="rootpolicies")
    s3.put_object(Bucket="rootpolicies", Key="default.yaml", Body=DEFAULT.encode())
    store = PolicyStore.load("s3://rootpolicies", s3_client=s3)
    assert store.tenants == () and store.location == "s3://rootpolicies"


def test_an_object_replaced_between_the_list_and_the_get_is_listed_again(bucket: Any, client: Any):
    calls = Calls(client)
    replaced: list[str] = []

    def replace_once(params: dict[str, Any], **_: Any) -> None:
        if not replaced and params["Key"] == "prod/tenants/kids.yaml":
            replaced.append(params["Key"])
            put(bucket, "tenants/kids.yaml", kids(75))

    client.meta.events.register("provide-client-params.s3.GetObject", replace_once)
    store = PolicyStore.load("s3://policies/prod", s3_client=client)
    assert violence(store) == 75.0
    assert calls.count("ListObjectsV2") == 2
    assert store.version == digest(
        [
            ("default.yaml", etag(bucket, "default.yaml")),
            ("tenants/kids.yaml", etag(bucket, "tenants/kids.yaml")),
        ]
    )


def test_an_object_over_the_size_bound_is_refused_without_reading_it_all(bucket: Any, client: Any):
    put(bucket, "tenants/kids.yaml", "# " + "x" * 300_000 + "\n")
    ranges: list[str | None] = []
    client.meta.events.register(
        "provide-client-params.s3.GetObject",
        lambda params, **_: ranges.append(params.get("Range")),
    )
    with pytest.raises(PolicyError) as caught:
        PolicyStore.load("s3://policies/prod", s3_client=client)
    [problem] = caught.value.problems
    assert problem.file == "s3://policies/prod/tenants/kids.yaml"
    assert problem.message == "file is larger than the 262144-byte bound for a policy"
    assert sorted(ranges, key=str) == [None, "bytes=0-262144"]


def test_a_client_built_here_has_three_attempts_owned_by_the_transport_and_short_timeouts(
    fake_aws_env: dict[str, str],
):
    source = AppConfigSource(APP, ENV, PROFILE, region="eu-west-1")
    config = source.client.meta.config
    assert config.retries["total_max_attempts"] == 1  # botocore's retries off: one owner
    assert source.transport.owns_retries and source.transport.retry.attempts == 3
    assert (config.connect_timeout, config.read_timeout) == (2.0, 5.0)
    assert source.client.meta.region_name == "eu-west-1"
    given = object()
    assert S3Source("policies", "prod", client=given).client is given  # used as it is


def test_an_s3_location_must_name_a_valid_bucket():
    with pytest.raises(PolicyError) as caught:
        PolicyStore.load("s3://Not_A_Bucket/prod")
    assert caught.value.problems[0].message == (
        "s3://Not_A_Bucket/prod: bucket name 'Not_A_Bucket' holds 'A', 'B', 'N', '_'; S3 takes "
        "only lowercase letters, digits, dots and hyphens"
    )
    # S3's own rule, the one settings, intake and the CLI use: not only the characters
    with pytest.raises(PolicyError, match="which S3 reserves"):
        S3Source("policies-s3alias")


# --------------------------------------------------------------------------- AppConfig (Stubber)

APP, ENV, PROFILE = "moderation", "prod", "policies"
WHERE = "appconfig:moderation/prod/policies"

# Line numbers matter: problems are reported at the lines of the whole document.
DOCUMENT = """\
default:
  min_confidence: 50
  default: {reject: 90, escalate: 60}
tenants:
  kids:
    extends: default
    categories:
      Violence: {reject: 80}
"""


def document(reject: float) -> bytes:
    return DOCUMENT.replace("{reject: 80}", f"{{reject: {reject}}}").encode()


class AppConfig:
    """A Stubber over a real appconfigdata client: every request is checked against the model."""

    def __init__(self) -> None:
        import boto3

        self.client = boto3.client("appconfigdata", region_name="us-east-1")
        self.stubber = Stubber(self.client)
        self.tokens = 0

    def _token(self) -> str:
        self.tokens += 1
        return f"token-{self.tokens}"

    def session(self) -> None:
        """A StartConfigurationSession answer; the next `latest` uses its token."""
        self.current = self._token()
        self.stubber.add_response(
            "start_configuration_session",
            {"InitialConfigurationToken": self.current},
            {
                "ApplicationIdentifier": APP,
                "EnvironmentIdentifier": ENV,
                "ConfigurationProfileIdentifier": PROFILE,
                "RequiredMinimumPollIntervalInSeconds": 15,
            },
        )

    def latest(self, body: bytes, label: str | None = None, interval: int = 15) -> None:
        """A GetLatestConfiguration answer to the current token (empty body: unchanged)."""
        response: dict[str, Any] = {
            "NextPollConfigurationToken": (following := self._token()),
            "NextPollIntervalInSeconds": interval,
            "ContentType": "application/x-yaml",
            "Configuration": StreamingBody(io.BytesIO(body), len(body)),
        }
        if label is not None:
            response["VersionLabel"] = label
        self.stubber.add_response(
            "get_latest_configuration", response, {"ConfigurationToken": self.current}
        )
        self.current = following

    def refuse(self, code: str, message: str, status: int = 400) -> None:
        self.stubber.add_client_error(
            "get_latest_configuration",
            service_error_code=code,
            service_message=message,
            http_status_code=status,
            expected_params={"ConfigurationToken": self.current},
        )


@pytest.fixture
def appconfig(fake_aws_env: dict[str, str]) -> Iterator[AppConfig]:
    stub = AppConfig()
    with stub.stubber:
        yield stub
        stub.stubber.assert_no_pending_responses()


def load_appconfig(stub: AppConfig, clock: Clock, **options: Any) -> PolicyStore:
    return PolicyStore.load(
        f"appconfig://{APP}/{ENV}/{PROFILE}", appconfig_client=stub.client, clock=clock, **options
    )


def test_appconfig_first_load_records_the_version_label(appconfig: AppConfig):
    appconfig.session()
    appconfig.latest(document(80), label="v1")
    store = load_appconfig(appconfig, Clock())
    assert store.tenants == ("kids",) and violence(store) == 80.0
    assert store.version == "v1" and store.location == f"appconfig://{APP}/{ENV}/{PROFILE}"
    assert store.get("kids").ref.version == store.get("default").version == "v1"


def test_appconfig_without_a_label_is_versioned_by_a_digest_of_the_document(
    appconfig: AppConfig,
):
    appconfig.session()
    appconfig.latest(document(80))
    store = load_appconfig(appconfig, Clock())
    assert store.version == digest([("configuration", document(80))])


def test_appconfig_unchanged_then_a_new_version(appconfig: AppConfig):
    clock = Clock()
    appconfig.session()
    appconfig.latest(document(80), label="v1")
    store = load_appconfig(appconfig, clock)
    old = store.get("kids")
    appconfig.latest(b"")  # unchanged
    clock.advance(60)
    violence(store)
    assert violence(checked(store)) == 80.0 and store.version == "v1"
    appconfig.latest(document(70), label="v2")
    clock.advance(60)
    violence(store)
    assert violence(checked(store)) == 70.0 and store.version == "v2"
    assert store.get("kids").version == "v2"
    assert old.version == "v1" and old.categories["Violence"].thresholds.reject == 80.0


def test_appconfig_is_not_called_before_its_poll_interval(appconfig: AppConfig):
    clock = Clock()
    appconfig.session()
    appconfig.latest(document(80), label="v1", interval=300)
    store = load_appconfig(appconfig, clock, ttl=20)
    clock.advance(200)  # ttl passed, AppConfig's interval not: answered without a request
    assert store.reload() is False and violence(store) == 80.0
    appconfig.latest(document(60), label="v2")
    clock.advance(100)
    assert store.reload() is True and violence(store) == 60.0


def test_appconfig_invalid_version_is_refused_and_the_last_good_one_stays(
    appconfig: AppConfig, caplog: pytest.LogCaptureFixture
):
    clock = Clock()
    appconfig.session()
    appconfig.latest(document(80), label="v1")
    store = load_appconfig(appconfig, clock)
    appconfig.latest(document(200), label="v2")
    clock.advance(60)
    with caplog.at_level(logging.ERROR, logger="moderation.policy"):
        violence(store)
        assert violence(checked(store)) == 80.0
    assert store.version == "v1"
    assert isinstance(store.last_error, PolicyError)
    assert store.last_error.problems == (
        Problem(f"{WHERE}#tenants/kids", "categories.Violence.reject", BAD_MESSAGE, None, 8),
    )
    [record] = caplog.records
    assert "version v2 refused; still using version v1" in record.getMessage()
    assert f"{WHERE}#tenants/kids:8: categories.Violence.reject: {BAD_MESSAGE}" in (
        record.getMessage()
    )
    # Still the invalid v2 in AppConfig: refused again without a second log.
    caplog.clear()
    appconfig.latest(b"")
    clock.advance(60)
    with caplog.at_level(logging.ERROR, logger="moderation.policy"):
        assert store.reload() is False
    assert caplog.records == [] and isinstance(store.last_error, PolicyError)
    appconfig.latest(document(75), label="v3")
    clock.advance(60)
    violence(store)
    assert violence(checked(store)) == 75.0
    assert store.version == "v3" and store.last_error is None


def test_an_expired_token_starts_a_new_session(appconfig: AppConfig):
    clock = Clock()
    appconfig.session()
    appconfig.latest(document(80), label="v1")
    store = load_appconfig(appconfig, clock)
    appconfig.refuse("BadRequestException", "Token expired")
    appconfig.session()
    appconfig.latest(document(80), label="v1")  # a new session's first answer: the same
    clock.advance(86400)
    assert store.reload() is False
    assert store.version == "v1" and store.last_error is None
    appconfig.latest(document(60), label="v2")  # the new session's token is used next
    clock.advance(60)
    assert store.reload() is True and violence(store) == 60.0


def test_the_same_label_on_other_content_is_still_a_new_version(appconfig: AppConfig):
    clock = Clock()
    appconfig.session()
    appconfig.latest(document(80), label="v1")
    store = load_appconfig(appconfig, clock)
    appconfig.latest(document(60), label="v1")
    clock.advance(60)
    assert store.reload() is True and violence(store) == 60.0
    assert store.version == "v1+" + digest([("configuration", document(60))])


def test_appconfig_not_found_names_the_application_environment_and_profile(
    appconfig: AppConfig,
):
    appconfig.stubber.add_client_error(
        "start_configuration_session",
        service_error_code="ResourceNotFoundException",
        service_message="Application not found",
        http_status_code=404,
    )
    with pytest.raises(PolicyError) as caught:
        load_appconfig(appconfig, Clock())
    [problem] = caught.value.problems
    assert problem.file == WHERE
    assert problem.message == (
        "appconfigdata StartConfigurationSession failed for appconfig:moderation/prod/policies: "
        "not found (ResourceNotFoundException: Application not found; 1 attempt)"
    )
    assert problem.hint == (
        "check the application 'moderation', environment 'prod' and profile 'policies' (names "
        "or ids), and that a configuration was deployed to that environment"
    )


def test_appconfig_access_denied_names_the_iam_actions(appconfig: AppConfig):
    appconfig.stubber.add_client_error(
        "start_configuration_session",
        service_error_code="AccessDeniedException",
        service_message="not authorized",
        http_status_code=403,
    )
    with pytest.raises(PolicyError) as caught:
        load_appconfig(appconfig, Clock())
    [problem] = caught.value.problems
    assert problem.message == (
        "appconfigdata StartConfigurationSession failed for appconfig:moderation/prod/policies: "
        "denied (the caller needs appconfig:StartConfigurationSession; AccessDeniedException: "
        "not authorized; 1 attempt)"
    )
    assert problem.hint is not None
    assert "appconfig:StartConfigurationSession and appconfig:GetLatestConfiguration" in (
        problem.hint
    )


def test_appconfig_needs_a_region(fake_aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    # The environment is incomplete, not the policies: a ConfigurationError, as for every client.
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(ConfigurationError) as caught:
        PolicyStore.load(f"appconfig://{APP}/{ENV}/{PROFILE}")
    assert caught.value.problems == (
        "appconfigdata: no AWS region: set MODERATION_REGION, AWS_REGION or AWS_DEFAULT_REGION "
        "(or a region in the AWS config file), or pass region=... (--region on the command line)",
    )


def test_an_appconfig_location_has_three_parts():
    with pytest.raises(PolicyError) as caught:
        PolicyStore.load("appconfig://moderation/prod")
    assert caught.value.problems[0].hint == (
        "write appconfig://application/environment/profile (names or ids)"
    )


def problems_of(appconfig: AppConfig, body: bytes) -> tuple[Problem, ...]:
    appconfig.session()
    appconfig.latest(body, label="v1")
    with pytest.raises(PolicyError) as caught:
        load_appconfig(appconfig, Clock())
    return caught.value.problems


def test_what_is_wrong_with_the_document_itself_is_found_at_its_line(appconfig: AppConfig):
    body = b"""\
default:
  default: {reject: 90}
tenant:
  kids: {extends: default}
tenants:
  default: {min_confidence: 10}
  kids: {extends: default}
  kids: {extends: default}
  Teens: {extends: default}
"""
    assert problems_of(appconfig, body) == (
        Problem(WHERE, "tenant", "unknown key 'tenant'", "did you mean 'tenants'?", 3),
        Problem(
            WHERE,
            "tenants.default",
            "'default' is the root policy, not a tenant",
            "write it as the top-level `default:`",
            6,
        ),
        Problem(WHERE, "tenants.kids", "duplicate tenant 'kids' (first at line 7)", "keep one", 8),
        Problem(
            f"{WHERE}#tenants/Teens",
            "",
            "'Teens' is not a valid tenant id, so this file can never be used",
            "tenant ids match ^[a-z0-9][a-z0-9_-]{0,63}$; rename the file",
        ),
    )


def test_a_document_without_default_or_not_a_mapping_is_refused(appconfig: AppConfig):
    [missing] = problems_of(appconfig, b"tenants: {kids: {extends: default}}\n")
    assert (missing.file, missing.message) == (f"{WHERE}#default", "no default policy")
    [listed] = problems_of(appconfig, b"- default\n- kids\n")
    assert listed.file == WHERE and listed.line == 1
    assert listed.message == "the configuration must be a mapping with the keys default and tenants"
    [empty] = problems_of(appconfig, b"default:\n")
    assert (empty.file, empty.message) == (f"{WHERE}#default", "empty policy")


def test_a_syntax_error_in_the_document_is_reported_once_with_its_line(appconfig: AppConfig):
    [problem] = problems_of(appconfig, b"default:\n  default: {reject: 90\ntenants: {}\n")
    assert problem.file == WHERE and problem.line is not None
    assert problem.message.startswith("YAML")


def test_a_json_document_indented_with_tabs_is_read_with_its_lines(appconfig: AppConfig):
    body = (
        b'{\n\t"default": {\n\t\t"default": {"reject": 90}\n\t},\n'
        b'\t"tenants": {\n\t\t"kids": {\n\t\t\t"extends": "default",\n'
        b'\t\t\t"max_frames": 99\n\t\t}\n\t}\n}\n'
    )
    [problem] = problems_of(appconfig, body)
    assert (problem.file, problem.path, problem.line) == (f"{WHERE}#tenants/kids", "max_frames", 8)


def test_the_document_format_gives_each_policy_the_full_language(appconfig: AppConfig):
    body = b"""\
default:
  min_confidence: 50
  default: {reject: 90, escalate: 60}
tenants:
  kids:
    extends: default
    shadow: kids-next
    categories: {Violence: {reject: 80}}
  kids-next:
    extends: kids
    categories: {Violence: {reject: 70}}
"""
    appconfig.session()
    appconfig.latest(body, label="v9")
    store = load_appconfig(appconfig, Clock())
    [shadow] = store.shadows(store.get("kids"))
    assert shadow.id == "kids-next" and shadow.chain == ("kids-next", "kids", "default")
    assert shadow.categories["Violence"].thresholds.reject == 70.0


# --------------------------------------------------------------------------- the store itself


def snapshot_of(n: int, *, teens: bool = False) -> Snapshot:
    """Version `vN`: kids rejects Violence at N (so a policy shows which version it is from)."""
    files: dict[str, tuple[str, str | bytes | Problem]] = {
        "default": ("default.yaml", DEFAULT),
        "kids": ("tenants/kids.yaml", kids(n)),
    }
    if teens:
        files["teens"] = ("tenants/teens.yaml", kids(n))
    return Snapshot(f"v{n}", files)


class Versions:
    """A source that gives a new version on every check (from 1 up to 99, then 1 again)."""

    def __init__(self) -> None:
        self.n = 0
        self.fetches = 0

    def describe(self) -> str:
        return "memory:versions"

    def fetch(self, known: str | None) -> Snapshot | None:
        self.fetches += 1
        self.n = self.n % 99 + 1
        return snapshot_of(self.n, teens=self.n % 2 == 0)


def test_sixteen_threads_never_see_a_mixed_or_missing_policy():
    source = Versions()
    store = PolicyStore.from_source(source, ttl=1e-9)  # every read is due for a check
    assert isinstance(source, PolicySource)
    seen: set[str] = set()
    failures: list[str] = []
    start = threading.Barrier(17)
    done = threading.Event()

    def reloader() -> None:  # checks now and then beside the background ones
        start.wait()
        while not done.wait(0.001):
            store.reload()

    def reader() -> None:
        start.wait()
        reads, deadline = 0, time.monotonic() + 30
        # 150 reads each, and on until versions have changed under them (a loaded machine may
        # run every read before the first check lands)
        while (reads < 150 or len(seen) < 3) and time.monotonic() < deadline:
            reads += 1
            try:
                kid = store.get("kids")
                if kid.version != f"v{kid.categories['Violence'].thresholds.reject:g}":
                    failures.append(f"mixed: {kid.version}")
                view = store.snapshot()
                versions = {view.version, view.get("kids").version, view.get("default").version}
                if len(versions) != 1:
                    failures.append(f"one snapshot, several versions: {versions}")
                n = int(str(view.version)[1:])
                if ("teens" in view) != (n % 2 == 0) or len(list(view)) != 2 + (n % 2 == 0):
                    failures.append(f"tenants of {view.version}: {view.tenants}")
                seen.add(str(kid.version))
            except Exception as exc:  # a missing policy would be UnknownTenant
                failures.append(repr(exc))

    threads = [threading.Thread(target=reader) for _ in range(16)]
    swapper = threading.Thread(target=reloader)
    for t in [*threads, swapper]:
        t.start()
    for t in threads:
        t.join()
    done.set()
    swapper.join()
    assert failures == []
    assert source.fetches > 1 and len(seen) > 1  # versions really did change under the readers


def test_no_reader_waits_for_a_check_not_even_the_one_that_starts_it():
    entered, release = threading.Event(), threading.Event()
    checkers: list[threading.Thread] = []

    class Slow:
        timed_out = False

        def __init__(self) -> None:
            self.calls = 0

        def describe(self) -> str:
            return "memory:slow"

        def fetch(self, known: str | None) -> Snapshot | None:
            self.calls += 1
            if self.calls == 1:
                return snapshot_of(1)
            checkers.append(threading.current_thread())
            entered.set()
            Slow.timed_out = not release.wait(10)
            return snapshot_of(2)

    clock = Clock()
    source = Slow()
    store = PolicyStore.from_source(source, ttl=10, clock=clock)
    clock.advance(10)
    # The read that finds the ttl passed starts the check and returns at once, with v1 ...
    assert violence(store) == 1.0
    assert entered.wait(10) and checkers != [threading.current_thread()]
    # ... and so does every read while the source is slow, none starting a second check.
    for _ in range(5):
        assert violence(store) == 1.0 and store.version == "v1"
    assert store.wait_for_check(0.05) is False
    release.set()
    assert store.wait_for_check(10)
    assert not Slow.timed_out
    assert source.calls == 2 and store.version == "v2" and violence(store) == 2.0


def test_a_forked_child_does_not_wait_for_its_parents_check():
    release = threading.Event()

    class Stuck:
        def __init__(self) -> None:
            self.calls = 0

        def describe(self) -> str:
            return "memory:stuck"

        def fetch(self, known: str | None) -> Snapshot | None:
            self.calls += 1
            if self.calls == 2:  # the parent's check, which a child never sees finish
                release.wait(10)
            return snapshot_of(self.calls)

    clock = Clock()
    store = PolicyStore.from_source(Stuck(), ttl=10, clock=clock)
    clock.advance(10)
    store.get("kids")
    assert store.wait_for_check(0.05) is False
    pid = os.fork()
    if pid == 0:  # the child: its own checks, not blocked by the parent's lost one
        ok = store.wait_for_check(0) and store.reload() and store.version == "v3"
        os._exit(0 if ok else 1)
    deadline = time.monotonic() + 10
    while (ended := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if ended[0] == 0:  # still running: blocked on the parent's check
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    release.set()
    assert ended[0] == pid and os.waitstatus_to_exitcode(ended[1]) == 0
    assert store.wait_for_check(10) and store.version == "v2"


def test_a_failing_source_is_checked_once_per_ttl_and_never_breaks_reads(
    caplog: pytest.LogCaptureFixture,
):
    class Flaky:
        def __init__(self) -> None:
            self.calls = 0

        def describe(self) -> str:
            return "memory:flaky"

        def fetch(self, known: str | None) -> Snapshot | None:
            self.calls += 1
            if self.calls == 1:
                return snapshot_of(1)
            raise ConnectionError("network down")

    clock = Clock()
    source = Flaky()
    store = PolicyStore.from_source(source, ttl=10, clock=clock)
    clock.advance(10)
    with caplog.at_level(logging.ERROR, logger="moderation.policy"):
        for _ in range(20):
            assert violence(checked(store)) == 1.0
    assert source.calls == 2
    assert isinstance(store.last_error, ConnectionError)
    [record] = caplog.records
    assert "memory:flaky: cannot check for a new version; still using version v1" in (
        record.getMessage()
    )
    assert "ConnectionError: network down" in record.getMessage()
    assert record.exc_info is not None  # not a PolicyError: the traceback is logged too
    assert store.reload() is False and source.calls == 3


def test_a_snapshot_stays_on_its_version(policy_dir: Path):
    store = PolicyStore(policy_dir)
    view = store.snapshot()
    (policy_dir / "tenants" / "kids.yaml").write_text(kids(70))
    (policy_dir / "tenants" / "teens.yaml").write_text(kids(60))
    assert store.reload() is True
    assert store.tenants == ("kids", "teens") and violence(store) == 70.0
    assert view.tenants == ("kids",) and violence(view) == 80.0
    assert view.version != store.version and view.location == store.location
    assert view.reload() is False
    with pytest.raises(UnknownTenant):
        view.get("teens")


def test_one_snapshot_per_version_in_force(policy_dir: Path):
    # The engine takes a snapshot per decision: the same version gives the same view
    store = PolicyStore(policy_dir)
    view = store.snapshot()
    assert store.snapshot() is view
    # a new version, or another fallback, gives a new one, and the old view keeps its version
    (policy_dir / "tenants" / "kids.yaml").write_text(kids(70))
    assert store.reload() is True
    newer = store.snapshot()
    assert newer is not view and violence(newer) == 70.0 and violence(view) == 80.0
    store.fallback_to_default = True
    assert store.snapshot() is not newer and store.snapshot().get("nobody").id == "default"


def test_a_source_must_give_its_version_when_none_is_known():
    class Empty:
        def describe(self) -> str:
            return "memory:empty"

        def fetch(self, known: str | None) -> Snapshot | None:
            return None

    with pytest.raises(TypeError, match="returned None"):
        PolicyStore.from_source(Empty())


def test_a_directory_source_refuses_a_missing_directory(tmp_path: Path):
    source = DirectorySource(tmp_path / "gone")
    with pytest.raises(PolicyError) as caught:
        source.fetch(None)
    assert caught.value.problems == (
        Problem(str(tmp_path / "gone"), "", "policy directory not found"),
    )
    assert AppConfigSource(APP, ENV, PROFILE).describe() == WHERE


# --------------------------------------------------------------------------- the CLI


def test_the_cli_loads_s3_policies_for_one_version_and_prints_every_problem(
    bucket: Any, capsys: pytest.CaptureFixture[str]
):
    store = load_store("s3://policies/prod")
    assert store.tenants == ("kids",)
    put(bucket, "tenants/kids.yaml", kids(70))
    assert store._ttl is None and math.isinf(store._due)  # never checked again in a run
    assert violence(store) == 80.0
    with pytest.raises(click.exceptions.Exit) as caught:
        load_store("s3://no-such-bucket/prod", exit_code=3)
    assert caught.value.exit_code == 3
    assert "s3://no-such-bucket/prod: s3 ListObjectsV2 failed for s3://no-such-bucket/prod/: " in (
        capsys.readouterr().err
    )


def test_drafts_need_a_policy_directory(tmp_path: Path):
    with pytest.raises(click.UsageError, match="only be checked against a policy directory"):
        load_store("s3://policies/prod", drafts=[tmp_path / "kids.yaml"])


def test_of_reads_an_s3_location_too(bucket: Any):
    store = PolicyStore.of("s3://policies/prod")
    assert store.tenants == ("kids",) and store.location == "s3://policies/prod"
