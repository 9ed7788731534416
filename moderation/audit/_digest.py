"""Digests of an S3 audit trail: signed, chained lists of the record objects and their SHA-256.

After CloudTrail's log file integrity validation. Each run of `write_digest` writes one digest
object, `{prefix}/_digests/{seq:012d}.json`, listing every record object whose LastModified (S3's
clock) falls in its window `(start, end]`, with the SHA-256 of its bytes, its size and its
version. `start` is the previous digest's `end`; `end` is the run's time less `settle`, so a
record whose PUT was still under way while the run listed (LastModified is when S3 received the
request) lands in the next digest's window, not between two. The digest holds the previous one's
`hash`, its `seq` plus one, and its own `hash` over its bytes: an HMAC-SHA256 under
`MODERATION_AUDIT_KEY` (plain SHA-256 without a key, which proves nothing against whoever can
write the bucket). The put is conditional on the key not existing: two runs at once cannot fork
the chain, the second fails to write the same seq and stops. docs/audit.md has the design.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from moderation.audit._format import GENESIS, record_hash, signed_prefix
from moderation.audit._s3read import DIGESTS, WORKERS, S3Store
from moderation.errors import AWSError, ModerationError

if TYPE_CHECKING:
    from moderation.aws.s3 import ListedObject

__all__ = [
    "LOOKBACK",
    "SETTLE",
    "Digest",
    "DigestEntry",
    "DigestError",
    "DigestRun",
    "encode_digest",
    "parse_digest",
    "write_digest",
]

FORMAT_VERSION = 1
#: How long after its LastModified a record is sure to be listed: longer than any PUT of the
#: sink takes (3 s to connect, 10 s to read, per attempt; every retry is a new LastModified).
SETTLE = timedelta(minutes=5)
#: How far before a window the dated folders are listed: a decision's key holds the UTC day of
#: its `created_at`, a review's the day of its `at`, both a little before it is written.
LOOKBACK = timedelta(days=1)
_KEY_DIGITS = 12
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class DigestError(ModerationError):
    """A digest could not be written: the chain it would extend is broken, or S3 failed."""


class DigestEntry(BaseModel):
    """One record object a digest covers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    sha256: Hex64
    size: int = Field(ge=0)
    version_id: str | None = None


class Digest(BaseModel):
    """One digest object, parsed (`hash` covers its bytes up to `,"hash":"`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    audit_digest: Literal[1]
    seq: int = Field(ge=1)
    prev: Hex64
    prev_key: str | None
    alg: Literal["sha256", "hmac-sha256"]
    bucket: str
    prefix: str
    start: AwareDatetime | None
    end: AwareDatetime
    records: tuple[DigestEntry, ...]
    hash: Hex64


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_digest(
    *,
    seq: int,
    prev: str,
    prev_key: str | None,
    store: S3Store,
    start: datetime | None,
    end: datetime,
    records: list[DigestEntry],
    key: bytes | None,
) -> bytes:
    """A digest's bytes: compact JSON in a fixed key order, its `hash` last."""
    body = {
        "audit_digest": FORMAT_VERSION,
        "seq": seq,
        "prev": prev,
        "prev_key": prev_key,
        "alg": "hmac-sha256" if key is not None else "sha256",
        "bucket": store.bucket,
        "prefix": store.prefix,
        "start": _when(start),
        "end": _when(end),
        "records": [entry.model_dump() for entry in records],
    }
    prefix = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()[:-1]
    return prefix + f',"hash":"{record_hash(prefix, key)}"}}'.encode()


def parse_digest(raw: bytes, key: bytes | None) -> tuple[Digest | None, str | None]:
    """The digest `raw` holds, and what is wrong with it (None: its hash verifies under `key`).
    The digest is None when the bytes are not a digest at all."""
    try:
        digest = Digest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return None, f"not a digest ({where}: {first['msg']})"
    signed = signed_prefix(raw)
    if signed is None:
        return digest, "its bytes are not in the writer's exact form (edited)"
    if key is None and digest.alg == "hmac-sha256":
        return digest, "it is signed (hmac-sha256): verifying it needs MODERATION_AUDIT_KEY"
    if key is not None and digest.alg != "hmac-sha256":
        return digest, "an unsigned (sha256) digest where the key expects hmac-sha256"
    prefix, stated = signed
    if record_hash(prefix, key) != stated:
        return digest, "its signature does not verify (edited, or the key is wrong)"
    return digest, None


def digest_key(store: S3Store, seq: int) -> str:
    """The object key of digest `seq`."""
    return f"{store.root}{DIGESTS}/{seq:0{_KEY_DIGITS}d}.json"


def digest_seq(store: S3Store, key: str) -> int | None:
    """The seq a digest key names, or None for a key that is not a digest's."""
    name = key[len(f"{store.root}{DIGESTS}/") :]
    digits = name.removesuffix(".json")
    if len(digits) != _KEY_DIGITS or not digits.isdigit() or not name.endswith(".json"):
        return None
    return int(digits)


@dataclass(frozen=True, slots=True)
class DigestRun:
    """What one `write_digest` run did: the digest it wrote (`key` None when it wrote none, and
    `skipped` says why), its window, how many records it lists, and objects that vanished
    between the listing and the read (deleted before they could be hashed)."""

    key: str | None
    seq: int
    start: datetime | None
    end: datetime
    records: int
    vanished: tuple[str, ...] = ()
    skipped: str | None = None


def _newest(store: S3Store, key: bytes | None) -> tuple[Digest | None, str | None]:
    """The newest digest and its key (None, None before the first); DigestError when it does
    not verify: a chain is never extended from a digest that was changed."""
    newest: str | None = None
    for listed in store.digests():
        if digest_seq(store, listed.key) is not None:
            newest = listed.key
    # A deleted newest digest would be written again, over the gap, without a trace in the
    # chain; a versioned bucket keeps it behind a delete marker, which says so.
    last = digest_seq(store, newest) if newest is not None else 0
    for deleted in store.deleted_digests():
        if (digest_seq(store, deleted) or 0) > (last or 0):
            raise DigestError(
                f"{store.uri_of(deleted)} was deleted (a delete marker hides it): refusing to "
                "write a digest over it; restore it (delete the marker) and run `moderation "
                f"audit verify {store.uri}`"
            )
    if newest is None:
        return None, None
    digest, problem = parse_digest(store.read(newest).body, key)
    if digest is None or problem is not None:
        raise DigestError(
            f"{store.uri_of(newest)}: {problem}: refusing to chain a new digest to it; run "
            f"`moderation audit verify {store.uri}`"
        )
    return digest, newest


def _days(start: datetime, end: datetime) -> Iterator[str]:
    day = start.astimezone(UTC).date()
    while day <= end.astimezone(UTC).date():
        yield f"{day:%Y/%m/%d}/"
        day += timedelta(days=1)


def _candidates(
    store: S3Store, start: datetime | None, end: datetime, lookback: timedelta
) -> Iterator[ListedObject]:
    """The record objects whose LastModified is in `(start, end]`. The first digest lists the
    whole prefix; later ones only the dated folders (`{tenant}/yyyy/mm/dd/`,
    `reviews/yyyy/mm/dd/`) from `start - lookback` to `end`."""
    if start is None:
        listing: Iterator[ListedObject] = store.records()
    else:
        folders = store.folders()
        days = list(_days(start - lookback, end))
        listing = (obj for f in folders for day in days for obj in store.records(f + day))
    for listed in listing:
        modified = listed.last_modified
        if modified is not None and (start is None or modified > start) and modified <= end:
            yield listed


def _entries(
    store: S3Store, candidates: Iterator[ListedObject], workers: int
) -> tuple[list[DigestEntry], list[str]]:
    entries: list[DigestEntry] = []
    vanished: list[str] = []
    for listed, stored in store.fetch(candidates, workers=workers):
        if isinstance(stored, AWSError):
            if stored.kind == "not found":
                vanished.append(listed.key)
                continue
            raise DigestError(f"cannot read {store.uri_of(listed.key)}: {stored}") from stored
        sha = hashlib.sha256(stored.body).hexdigest()
        entries.append(
            DigestEntry(
                key=listed.key, sha256=sha, size=len(stored.body), version_id=stored.version_id
            )
        )
    entries.sort(key=lambda entry: entry.key)
    return entries, vanished


def write_digest(
    store: S3Store,
    *,
    key: bytes | None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    settle: timedelta = SETTLE,
    lookback: timedelta = LOOKBACK,
    workers: int = WORKERS,
) -> DigestRun:
    """Write the next digest of the trail in `store`, covering every record object written
    since the previous digest's `end` up to `now() - settle` (whole seconds: S3's
    LastModified has no finer grain). DigestError when the newest digest does not verify under
    `key` or S3 fails; a run that finds nothing new to cover (a window of no time) or whose
    digest another run wrote first writes nothing (`skipped`)."""
    end = (now() - settle).astimezone(UTC).replace(microsecond=0)
    try:
        previous, previous_key = _newest(store, key)
    except AWSError as exc:
        raise DigestError(f"{store.uri}: {exc}") from exc
    seq = previous.seq + 1 if previous is not None else 1
    start = previous.end if previous is not None else None
    if start is not None and end <= start:
        why = f"the previous digest already covers up to {_when(start)}"
        return DigestRun(None, seq, start, end, 0, skipped=why)
    target = digest_key(store, seq)
    body = b""
    try:
        entries, vanished = _entries(store, _candidates(store, start, end, lookback), workers)
        body = encode_digest(
            seq=seq,
            prev=previous.hash if previous is not None else GENESIS,
            prev_key=previous_key,
            store=store,
            start=start,
            end=end,
            records=entries,
            key=key,
        )
        store.s3.put_new(store.bucket, target, body, content_type="application/json")
    except AWSError as exc:
        # A put whose answer was lost and whose retry found the object is ours if it holds
        # exactly these bytes; any other digest there was written by a run that started too.
        if exc.kind == "changed" and not (exc.attempts > 1 and _holds(store, target, body)):
            why = f"another run wrote digest {seq} first"
            return DigestRun(None, seq, start, end, 0, skipped=why)
        if exc.kind != "changed":
            raise DigestError(f"{store.uri}: {exc}") from exc
    return DigestRun(target, seq, start, end, len(entries), tuple(vanished))


def _holds(store: S3Store, key: str, body: bytes) -> bool:
    try:
        return store.read(key).body == body
    except AWSError:
        return False
