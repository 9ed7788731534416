"""Fixtures shared by the test files: a fake AWS environment, a moto S3, and an open() spy."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import profiles  # noqa: F401  (loads the Hypothesis profile before any test module)
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fake_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Fake credentials and a region, with the machine's AWS config and profiles shut out."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    return env


@pytest.fixture
def s3(fake_aws_env: dict[str, str]) -> Iterator[Any]:
    """A moto S3 client with a bucket `uploads` (not versioned)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="uploads")
        yield client


@pytest.fixture
def versioned_s3(s3: Any) -> Any:
    """The `s3` fixture with versioning enabled on `uploads`."""
    s3.put_bucket_versioning(Bucket="uploads", VersioningConfiguration={"Status": "Enabled"})
    return s3


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every path opened through `io.open`/`open`/`Path.open` during the test, resolved."""
    seen: list[Path] = []
    real_open = io.open

    def spy(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str | Path):
            seen.append(Path(file).resolve())
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", spy)
    monkeypatch.setattr("builtins.open", spy)
    return seen


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A PostgreSQL server for the session (tests/postgres.py), started on first use; it fails
    (never skips) when the machine lacks Debian's `postgresql` binaries."""
    from postgres import Server

    server = Server().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_dsn(postgres_server: Any) -> str:
    """A connection string to a new, empty schema on the session's PostgreSQL server: the
    desk's tables go there, apart from every other test's."""
    return str(postgres_server.new_schema())
