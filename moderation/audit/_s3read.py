"""Reading an S3 audit trail: its record objects under a prefix, listed and fetched in parallel.

The S3 sink (`S3AuditLog`) writes each record as its own object under `{prefix}/`; digests
(`moderation.audit._digest`) go under `{prefix}/_digests/`, a folder no tenant can name (a key
part starts with a letter or digit). Everything else under the prefix is a record object. The
requests go through the AWS transport (`moderation.aws.s3.S3Objects`), imported on first use:
boto3 is not imported with the package.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moderation.errors import AWSError, InvalidS3Location
from moderation.s3location import SCHEME, S3Prefix
from moderation.settings import read_env

if TYPE_CHECKING:
    from moderation.aws.s3 import ListedObject, S3Objects, StoredObject

__all__ = ["DIGESTS", "S3Store", "is_s3", "s3_records"]

#: The folder under the prefix that holds the digests.
DIGESTS = "_digests"
#: The largest object read as a record or digest: the sink's records are a few KB, a digest
#: lists about 150 bytes per record.
MAX_OBJECT_BYTES = 256 << 20
#: GETs in flight at once (botocore's default connection pool).
WORKERS = 10


def is_s3(source: object) -> bool:
    """True when `source` names an S3 audit trail (`s3://bucket/prefix`) rather than a file."""
    return isinstance(source, str) and source.startswith(SCHEME)


@dataclass(frozen=True, slots=True)
class S3Store:
    """An S3 audit trail: the bucket, the prefix (no slash at either end) and the transport."""

    s3: S3Objects
    bucket: str
    prefix: str

    @classmethod
    def open(cls, uri: str, *, client: Any | None = None, region: str | None = None) -> S3Store:
        """The trail `s3://bucket/prefix` names; ValueError for a malformed location."""
        from moderation.aws.s3 import S3Objects

        try:
            where = S3Prefix.parse(uri)
        except InvalidS3Location as exc:
            raise ValueError(str(exc)) from None
        return cls(S3Objects(client, region=region), where.bucket, where.prefix.strip("/"))

    @property
    def root(self) -> str:
        """The key prefix of everything in the trail: `prefix/`, or empty for a whole bucket."""
        return f"{self.prefix}/" if self.prefix else ""

    @property
    def uri(self) -> str:
        """`s3://bucket/prefix`."""
        return f"{SCHEME}{self.bucket}/{self.prefix}" if self.prefix else f"{SCHEME}{self.bucket}"

    def uri_of(self, key: str) -> str:
        """`s3://bucket/key`, for messages."""
        return f"{SCHEME}{self.bucket}/{key}"

    def digests(self) -> Iterator[ListedObject]:
        """Every object under `prefix/_digests/`, in key order (digest order)."""
        return self.s3.objects(self.bucket, f"{self.root}{DIGESTS}/")

    def deleted_digests(self) -> list[str]:
        """The digest keys whose current version is a delete marker (a versioned bucket keeps
        the deleted digest; an unversioned one leaves no trace)."""
        return list(self.s3.deleted(self.bucket, f"{self.root}{DIGESTS}/"))

    def records(self, under: str = "") -> Iterator[ListedObject]:
        """Every record object (everything but the digests) under `prefix/under`, in key
        order; FileNotFoundError when the bucket does not exist."""
        digests = f"{self.root}{DIGESTS}/"
        try:
            for listed in self.s3.objects(self.bucket, self.root + under):
                if not listed.key.startswith(digests):
                    yield listed
        except AWSError as exc:
            if exc.kind == "not found":
                raise FileNotFoundError(f"{self.uri}: {exc}") from exc
            raise

    def folders(self) -> list[str]:
        """The folders right under the prefix that hold records (tenants, `reviews/`), each
        ending in `/` and relative to the prefix."""
        found = self.s3.folders(self.bucket, self.root)
        names = [folder[len(self.root) :] for folder in found]
        return [name for name in names if name != f"{DIGESTS}/"]

    def read(self, key: str) -> StoredObject:
        """The current bytes and version of `key`."""
        return self.s3.read(self.bucket, key, limit=MAX_OBJECT_BYTES)

    def fetch(
        self, objects: Iterable[ListedObject], *, workers: int = WORKERS
    ) -> Iterator[tuple[ListedObject, StoredObject | AWSError]]:
        """Each object with its bytes (or the AWSError that reading it raised), in the order
        given, read `workers` at a time; at most `4 * workers` bodies are held at once."""
        self.s3.ensure_pool(workers)
        window: deque[tuple[ListedObject, Future[StoredObject]]] = deque()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-audit") as pool:
            for listed in objects:
                window.append((listed, pool.submit(self.read, listed.key)))
                if len(window) >= 4 * workers:
                    yield _done(*window.popleft())
            while window:
                yield _done(*window.popleft())


def _done(
    listed: ListedObject, future: Future[StoredObject]
) -> tuple[ListedObject, StoredObject | AWSError]:
    try:
        return listed, future.result()
    except AWSError as exc:
        return listed, exc


def s3_records(uri: str) -> Iterator[tuple[str, bytes | None, str | None]]:
    """(`s3://` URI, bytes, None) of every record object of the trail at `uri`, in key order,
    or (URI, None, why) for one that could not be read; FileNotFoundError when the trail holds
    no record object (or its bucket does not exist)."""
    try:
        store = S3Store.open(uri, region=read_env().settings.region)
    except ValueError as exc:
        raise FileNotFoundError(str(exc)) from None
    empty = True
    for listed, stored in store.fetch(store.records()):
        empty = False
        where = store.uri_of(listed.key)
        if isinstance(stored, AWSError):
            yield where, None, str(stored)
        else:
            yield where, stored.body, None
    if empty:
        raise FileNotFoundError(f"{uri}: no audit records under this prefix")
