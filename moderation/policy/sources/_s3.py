"""Policies under an S3 prefix, laid out as a directory: `prefix/default.yaml`,
`prefix/tenants/*.yaml`, read through the AWS transport (`moderation.aws.s3.S3Objects`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moderation.errors import AWSError, PolicyError, Problem
from moderation.policy._model import DEFAULT_POLICY
from moderation.policy._yaml import MAX_POLICY_BYTES
from moderation.policy.sources._aws import build, unreadable
from moderation.policy.sources._snapshot import Entry, Snapshot, content_bytes, digest
from moderation.s3location import bucket_problem

if TYPE_CHECKING:
    from moderation.aws.s3 import S3Objects

__all__ = ["S3Source"]

_ATTEMPTS = 3  # listings tried when objects change between the List and the Gets


class _Changed(Exception):
    """An object changed or vanished between the listing and its GetObject."""


@dataclass(frozen=True, slots=True)
class _Object:
    key: str
    etag: str  # as S3 gives it, with its quotes
    size: int


class S3Source:
    """The directory layout under an S3 prefix: `prefix/default.yaml`, `prefix/tenants/*.yaml`.

    A check lists the prefix (ListObjectsV2, paginated); the version is a digest of the policy
    keys and their ETags, so an unchanged prefix costs one List and no Get. Only the objects
    whose key or ETag the listing does not know from the previous check are read (one Get per
    changed object; the others are the bytes read last time under the same ETag), each with
    `If-Match` its listed ETag, so a version never mixes two uploads. The role needs
    `s3:ListBucket` on the bucket and `s3:GetObject` on `prefix/*`.

    Without `client`, one is built on the first check by the AWS transport: 3 attempts (the
    transport retries; botocore's retries are off), 2 s connect and 5 s read timeouts, region
    `region` (else AWS_REGION or boto3's own). Set `transport.limiter` to count its requests.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any | None = None,
        region: str | None = None,
    ) -> None:
        if (problem := bucket_problem(bucket)) is not None:
            raise PolicyError([Problem(f"s3://{bucket}", "", problem, "write s3://bucket/prefix")])
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._given = client
        self._region = region
        self._transport: S3Objects | None = None
        # What the last checks read, by key: (ETag, bytes). An ETag names one upload's bytes, so
        # an object listed again with the same ETag is not read again.
        self._read: dict[str, tuple[str, bytes]] = {}

    def __repr__(self) -> str:
        return f"S3Source({self.bucket!r}, {self.prefix!r})"

    def describe(self) -> str:
        """`s3://bucket/prefix`."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def transport(self) -> S3Objects:
        """The AWS transport the reads go through (built on first use)."""
        if self._transport is None:
            from moderation.aws.s3 import S3Objects

            self._transport = build(self.describe(), S3Objects, self._given, self._region)
        return self._transport

    @property
    def client(self) -> Any:
        """The S3 client (built on first use unless one was given)."""
        return self._given if self._given is not None else self.transport.client

    def _key_prefix(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def _shown(self, relative: str) -> str:
        return f"s3://{self.bucket}/{self._key_prefix()}{relative}"

    def _iam_hint(self) -> str:
        objects = f"arn:aws:s3:::{self.bucket}/{self._key_prefix()}*"
        return (
            f"the role needs s3:ListBucket on arn:aws:s3:::{self.bucket} and s3:GetObject on "
            f"{objects}"
        )

    def _fail(self, exc: AWSError) -> PolicyError:
        if exc.code == "NoSuchBucket":
            hint = f"check MODERATION_POLICIES; {self._iam_hint()}"
        elif exc.kind in ("denied", "no credentials"):
            hint = self._iam_hint()
        elif exc.code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "301"):
            hint = "the bucket is in another region: set MODERATION_REGION to the bucket's region"
        else:
            hint = None
        return unreadable(self.describe(), exc, hint)

    def _list(self) -> list[_Object]:
        try:
            return [
                _Object(obj.key, f'"{obj.etag}"' if obj.etag else "", obj.size)
                for obj in self.transport.objects(self.bucket, self._key_prefix())
            ]
        except AWSError as exc:
            raise self._fail(exc) from exc

    def _layout(self, objects: list[_Object]) -> dict[str, tuple[str, _Object | Problem]]:
        """The policy objects of the listing, by policy name, as a directory would have them."""
        start = len(self._key_prefix())
        chosen: dict[str, tuple[str, _Object | Problem]] = {}
        for obj in sorted(objects, key=lambda o: o.key):
            relative = obj.key[start:]
            name = _policy_name(relative)
            if name is None:
                continue
            shown = self._shown(relative)
            if name in chosen:
                chosen[f"{name}\0{relative}"] = (
                    shown,
                    Problem(shown, "", f"a second file for '{name}'", "keep one of .yaml/.yml"),
                )
                continue
            chosen[name] = (shown, obj)
        if DEFAULT_POLICY not in chosen:
            shown = self._shown("default.yaml")
            empty = not objects
            chosen[DEFAULT_POLICY] = (
                shown,
                Problem(
                    shown,
                    "",
                    "default.yaml not found"
                    + (f": nothing is stored under {self.describe()}/" if empty else ""),
                    "check the bucket and prefix; policies are default.yaml and tenants/*.yaml "
                    "under the prefix",
                ),
            )
        return chosen

    def _bytes(self, obj: _Object) -> bytes:
        """The object's bytes: those read before under the same ETag, else a Get."""
        known = self._read.get(obj.key)
        if known is not None and obj.etag and known[0] == obj.etag:
            return known[1]
        data = self._get(obj)
        self._read[obj.key] = (obj.etag, data)
        return data

    def _get(self, obj: _Object) -> bytes:
        try:
            return self.transport.get(
                self.bucket,
                obj.key,
                limit=MAX_POLICY_BYTES + 1,
                if_match=obj.etag or None,
                # read_yaml names the excess; no need for all of it
                byte_range=f"bytes=0-{MAX_POLICY_BYTES}" if obj.size > MAX_POLICY_BYTES else None,
            )
        except AWSError as exc:
            if exc.kind in ("not found", "changed") and exc.code != "NoSuchBucket":
                raise _Changed from exc
            raise self._fail(exc) from exc

    def fetch(self, known: str | None) -> Snapshot | None:
        """Every policy object under the prefix, or None (after one List) if still `known`."""
        for _ in range(_ATTEMPTS):
            layout = self._layout(self._list())
            start = len(self._key_prefix())
            version = digest(
                (
                    (item.key[start:], item.etag.encode())
                    if isinstance(item, _Object)
                    else (shown, content_bytes(item))
                )
                for shown, item in layout.values()
            )
            if version == known:
                return None
            files: dict[str, Entry] = {}
            try:
                for name, (shown, item) in layout.items():
                    files[name] = (shown, item if isinstance(item, Problem) else self._bytes(item))
            except _Changed:
                continue  # uploaded or deleted while we read: list again
            listed = {item.key for _, item in layout.values() if isinstance(item, _Object)}
            self._read = {key: read for key, read in self._read.items() if key in listed}
            return Snapshot(version, files)
        raise PolicyError(
            [
                Problem(
                    self.describe(),
                    "",
                    f"the policy objects changed during each of {_ATTEMPTS} attempts to read them",
                    "upload the files, then let the next check read them",
                )
            ]
        )


def _policy_name(relative: str) -> str | None:
    """The policy a key (relative to the prefix) holds, as a directory would: `default.yaml`,
    `tenants/<id>.yaml|yml`; None for any other key."""
    if relative == "default.yaml":
        return DEFAULT_POLICY
    if not relative.startswith("tenants/") or relative.count("/") != 1:
        return None
    stem, dot, suffix = relative[len("tenants/") :].rpartition(".")
    return stem if dot and suffix in ("yaml", "yml") and stem else None
