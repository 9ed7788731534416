"""Where an S3 object is: (bucket, key, version), and the one `s3://` parser and bucket-name rule.

Pure (the standard library only). An object is named by an `S3Location` from the moment it is
known (an event, a listing, a HEAD) to every request made for it; an `s3://` string is parsed
once, where a person typed it (`S3Location.parse`, `S3Prefix.parse`), and never rebuilt and
parsed again, so that no key (`cat.png?versionId=null`) can come to name another object.

Bucket names follow S3's rules for general purpose buckets (`bucket_problem`), as the S3 User
Guide's "General purpose bucket naming rules" state them: 3-63 characters of lowercase letters,
digits, dots and hyphens; a letter or digit first and last; no two adjacent dots; not an IP
address; none of the reserved prefixes (`xn--`, `sthree-`, `amzn-s3-demo-`) or suffixes
(`-s3alias`, `--ol-s3`, `.mrap`, `--x-s3`, `--table-s3`). The names that buckets made in
us-east-1 before March 2018 could still have (capitals, underscores) are refused too: S3 creates
none today, and a name that no bucket made today can have is far more often a typo or an
unrendered template (`{{{bucket}}}`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from moderation.errors import InvalidS3Location

__all__ = [
    "SCHEME",
    "VERSION_MARKER",
    "InvalidS3Location",
    "S3Location",
    "S3Prefix",
    "bucket_problem",
    "check_bucket",
]

SCHEME: Final = "s3://"
#: What separates a key from a version in an `s3://` string a person typed.
VERSION_MARKER: Final = "?versionId="
#: S3's longest key, in bytes of UTF-8.
MAX_KEY_BYTES: Final = 1024

_CHARS = re.compile(r"[a-z0-9.-]+")
_RESERVED_PREFIXES: Final = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES: Final = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def bucket_problem(name: str) -> str | None:
    """What makes `name` a name no S3 bucket can have, or None when it is one."""
    if not isinstance(name, str):
        return f"a bucket name is a string, not {type(name).__name__}"
    if not 3 <= len(name) <= 63:
        return f"bucket name {name!r} is {len(name)} characters long; S3 takes 3 to 63"
    if not _CHARS.fullmatch(name):
        bad = sorted({c for c in name if not _CHARS.fullmatch(c)})
        return (
            f"bucket name {name!r} holds {', '.join(map(repr, bad))}; S3 takes only lowercase "
            "letters, digits, dots and hyphens"
        )
    if not (name[0].isalnum() and name[-1].isalnum()):
        return f"bucket name {name!r} must begin and end with a letter or digit"
    if ".." in name:
        return f"bucket name {name!r} has two adjacent dots"
    if _is_ip_address(name):
        return f"bucket name {name!r} is formatted as an IP address"
    for prefix in _RESERVED_PREFIXES:
        if name.startswith(prefix):
            return f"bucket name {name!r} starts with {prefix!r}, which S3 reserves"
    for suffix in _RESERVED_SUFFIXES:
        if name.endswith(suffix):
            return f"bucket name {name!r} ends with {suffix!r}, which S3 reserves"
    return None


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def check_bucket(name: str) -> str:
    """`name`, if a bucket can have it; else `InvalidS3Location` saying what is wrong."""
    problem = bucket_problem(name)
    if problem is not None:
        raise InvalidS3Location(problem)
    return name


def _key_problem(key: object) -> str | None:
    if not isinstance(key, str):
        return f"an object key is a string, not {type(key).__name__}"
    if not key:
        return "the object key is empty"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return f"the object key {key!r} is not valid Unicode (a lone surrogate)"
    if size > MAX_KEY_BYTES:
        return f"the object key is {size} bytes of UTF-8; S3 takes at most {MAX_KEY_BYTES}"
    return None


@dataclass(frozen=True, slots=True)
class S3Location:
    """One S3 object: its bucket, its key (exactly as S3 stores it) and, when one version is
    meant, its version id (`None`: the current version). Invalid values raise
    `InvalidS3Location`."""

    bucket: str
    key: str
    version_id: str | None = None

    def __post_init__(self) -> None:
        check_bucket(self.bucket)
        problem = _key_problem(self.key)
        if problem is not None:
            raise InvalidS3Location(problem)
        if self.version_id is not None and (
            not isinstance(self.version_id, str) or not self.version_id
        ):
            raise InvalidS3Location(
                f"a version id is a non-empty string or None, not {self.version_id!r}"
            )

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        """The object `s3://bucket/key` names; `s3://bucket/key?versionId=V`: version V of it.

        The key is taken as written (no percent-decoding). Only a final `?versionId=` names a
        version, its value percent-decoded; a key that itself holds `?versionId=` can be named
        only by an `S3Location` built from its parts.
        """
        bucket, key, version = _split(uri, "s3://bucket/key")
        if not key:
            raise InvalidS3Location(f"{uri}: names no object key (expected s3://bucket/key)")
        return cls(bucket, key, version)

    @property
    def uri(self) -> str:
        """`s3://bucket/key`, with `?versionId=` when a version is meant: for people to read."""
        version = f"{VERSION_MARKER}{self.version_id}" if self.version_id else ""
        return f"{SCHEME}{self.bucket}/{self.key}{version}"

    def params(self) -> dict[str, str]:
        """`Bucket`, `Key` and (when a version is meant) `VersionId`: S3's request parameters
        that address exactly this object."""
        params = {"Bucket": self.bucket, "Key": self.key}
        if self.version_id:
            params["VersionId"] = self.version_id
        return params

    def __str__(self) -> str:
        return self.uri


@dataclass(frozen=True, slots=True)
class S3Prefix:
    """Every object of a bucket whose key starts with `prefix` (`""`: the whole bucket)."""

    bucket: str
    prefix: str = ""

    def __post_init__(self) -> None:
        check_bucket(self.bucket)
        if not isinstance(self.prefix, str):
            raise InvalidS3Location(f"a prefix is a string, not {type(self.prefix).__name__}")

    @classmethod
    def parse(cls, uri: str) -> S3Prefix:
        """The bucket and key prefix of `s3://bucket` or `s3://bucket/prefix` (taken as written);
        a `?versionId=` is refused (a prefix names no single version)."""
        bucket, prefix, version = _split(uri, "s3://bucket/prefix")
        if version is not None:
            raise InvalidS3Location(f"{uri}: a prefix names no version (drop ?versionId=)")
        return cls(bucket, prefix)

    @property
    def uri(self) -> str:
        """`s3://bucket/prefix` (`s3://bucket` for the whole bucket)."""
        return f"{SCHEME}{self.bucket}/{self.prefix}" if self.prefix else f"{SCHEME}{self.bucket}"

    def __str__(self) -> str:
        return self.uri


def _split(uri: str, shape: str) -> tuple[str, str, str | None]:
    """(bucket, the rest, version) of an `s3://` string: the one parser behind both types."""
    if not isinstance(uri, str):
        raise InvalidS3Location(f"an S3 location is an {shape} string, not {type(uri).__name__}")
    if not uri.startswith(SCHEME):
        raise InvalidS3Location(f"{uri!r} is not an S3 location (expected {shape})")
    rest = uri[len(SCHEME) :]
    version: str | None = None
    if VERSION_MARKER in rest:
        rest, _, raw = rest.rpartition(VERSION_MARKER)
        version = unquote(raw)
        if not version:
            raise InvalidS3Location(f"{uri}: ?versionId= names no version")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise InvalidS3Location(f"{uri}: names no bucket (expected {shape})")
    problem = bucket_problem(bucket)
    if problem is not None:
        raise InvalidS3Location(f"{uri}: {problem}")
    return bucket, key, version
