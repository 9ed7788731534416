"""Detect an image once: detections cached by the image's sha256 and the detector settings.

A backlog often holds the same image many times (re-uploads, the same bytes under other names).
`cache_key` names one detection: the image's sha256 plus everything that shapes what the detector
returns (which detector, its model or adapter, MinConfidence, how many frames). Any change in any of
them is another key, so a cached detection is always one the current settings would have asked for.

Two backends implement `DetectionCache`:

- `MemoryDetectionCache`: a thread-safe LRU in this process (no expiry; the oldest-used entry goes
  when it is full).
- `DynamoDBDetectionCache`: one item per key in a DynamoDB table, shared by every process and
  Lambda instance, with an expiry (the table's TTL deletes old items).

Both keep the first detection stored under a key: a later `put` never replaces a live entry.
Failures are never stored (only a detection that succeeded is put). A cache is an optimisation:
the engine treats any exception from `get` or `put` as a miss, logs it and detects normally, so a
cache that is down slows moderation a little but never fails or changes it.

`SingleFlight` is how the engine detects through a cache: threads asking for the same key at once
make one detector call between them. `detection_cache_from_spec` builds the cache the
`MODERATION_DEDUPE` setting names. Importing this module loads neither boto3 nor botocore: the
DynamoDB client is built when the cache is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from moderation.detection import Detection
from moderation.errors import ConfigurationError, ModerationError
from moderation.limits import unwrapped

if TYPE_CHECKING:
    from moderation.aws.dynamodb import DynamoDBTable
    from moderation.errors import AWSError
    from moderation.image import PreparedImage
    from moderation.ports import Detector

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "KEY_FORMAT",
    "DetectionCache",
    "DetectionCacheError",
    "DynamoDBDetectionCache",
    "MemoryDetectionCache",
    "SingleFlight",
    "cache_key",
    "detection_cache_from_spec",
    "detector_id",
]

_log = logging.getLogger(__name__)

#: The version of `cache_key`'s canonical form: bumping it retires every stored key at once.
KEY_FORMAT: Final = 1

#: How long a detection stays usable in the DynamoDB cache by default: 7 days.
DEFAULT_TTL_SECONDS: Final = 604800.0

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_TABLE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_SPEC = re.compile(r"^(?:off|memory(?::(?P<size>[0-9]+))?|dynamodb:(?P<table>.+))$")


@runtime_checkable
class DetectionCache(Protocol):
    """Where detections are kept between calls, by `cache_key`.

    `get` answers the stored detection or None; `put` stores one unless the key holds a live entry
    already. Either may raise when the store fails (the engine then detects as if nothing were
    cached); neither is ever asked to store a failure.
    """

    name: str

    def get(self, key: str) -> Detection | None:
        """The detection stored under `key`, or None when there is none (or it expired)."""
        ...

    def put(self, key: str, detection: Detection) -> None:
        """Store `detection` under `key`, unless a live entry is there already (the first wins)."""
        ...


def cache_key(sha256: str, *, detector: str, min_confidence: float, max_frames: int) -> str:
    """The cache key of one detection: 64 hex characters, the same for equal inputs.

    It is the SHA-256 of a canonical JSON object of the inputs and `KEY_FORMAT`, so a change in
    any input is a different key. `sha256` is the image's (either case); `detector` names the
    detector and its settings (`rekognition`, `rekognition:<adapter ARN>`); `min_confidence` is the
    MinConfidence asked for (50 and 50.0 are the same); `max_frames` how many frames of an
    animation are looked at. ValueError for a sha256 that is not 64 hex characters, an empty
    detector, a min_confidence outside 0-100 or a max_frames below 1.
    """
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ValueError(
            f"cache_key: sha256 must be the image's SHA-256 as 64 hex characters, got {sha256!r}"
        )
    if not isinstance(detector, str) or not detector:
        raise ValueError(
            "cache_key: detector must name the detector and its settings (e.g. 'rekognition'), "
            f"got {detector!r}"
        )
    if (
        isinstance(min_confidence, bool)
        or not isinstance(min_confidence, int | float)
        or not 0 <= min_confidence <= 100
    ):
        raise ValueError(
            f"cache_key: min_confidence must be a number from 0 to 100, got {min_confidence!r}"
        )
    if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
        raise ValueError(
            f"cache_key: max_frames must be an integer of at least 1, got {max_frames!r}"
        )
    canonical = json.dumps(
        {
            "v": KEY_FORMAT,
            "sha256": sha256.lower(),
            "detector": detector,
            "min_confidence": float(min_confidence) + 0.0,  # -0.0 is 0.0
            "max_frames": max_frames,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def detector_id(detector: Detector) -> str:
    """What makes two detectors' answers interchangeable in the detection cache.

    A detector says so with a `cache_id` string (the Rekognition adapter: its project version);
    any other is only ever equal to itself, in this process. A detector the engine wrapped in its
    rate limiter is named by what it wraps.
    """
    inner = unwrapped(detector)
    named = getattr(inner, "cache_id", None)
    if isinstance(named, str) and named:
        return named
    return f"{type(inner).__module__}.{type(inner).__qualname__}@{id(inner):x}/{os.getpid()}"


class SingleFlight:
    """Detections through a cache, one detector call per key at a time (thread-safe)."""

    def __init__(self) -> None:
        self._inflight: dict[str, Future[Detection]] = {}
        self._lock = threading.Lock()

    def detect(
        self,
        detector: Detector,
        cache: DetectionCache | None,
        image: PreparedImage,
        *,
        min_confidence: float,
        sha256: str | None,
    ) -> tuple[Detection, bool]:
        """One detector answer for exactly the bytes `image` sends, and whether a call was made.

        With a cache, the answer for the same bytes (by sha256: `sha256` when the bytes sent are
        the original's, else hashed here) and settings is reused and marked `cached`. Threads
        asking for the same key at once make one call between them (the others wait for it).
        Failures are never cached; a cache that fails is logged and bypassed.
        """
        if cache is None or (sha256 is None and image.detect_bytes is None):
            return detector.detect(image, min_confidence=min_confidence), True
        if sha256 is None or image.converted:
            assert image.detect_bytes is not None
            sha256 = hashlib.sha256(image.detect_bytes).hexdigest()
        key = cache_key(
            sha256,
            detector=detector_id(detector),
            min_confidence=min_confidence,
            max_frames=1,  # per call: each frame is its own image here
        )
        # One caller per key at a time (the leader): the others wait for its answer. The leader
        # looks in the cache only once it leads, and stores before it lets go of the key, so a
        # caller arriving just after a leader finished finds the answer instead of calling again.
        with self._lock:
            leader = self._inflight.get(key)
            if leader is None:
                mine: Future[Detection] = Future()
                self._inflight[key] = mine
        if leader is not None:
            try:
                return leader.result().model_copy(update={"cached": True}), False
            except Exception:  # the other call failed: this one tries for itself
                return detector.detect(image, min_confidence=min_confidence), True
        try:
            hit = self._lead(detector, cache, key, mine, image, min_confidence)
        finally:
            with self._lock:
                del self._inflight[key]
        if hit is not None:
            return hit.model_copy(update={"cached": True}), False
        return mine.result(), True

    @staticmethod
    def _lead(
        detector: Detector,
        cache: DetectionCache,
        key: str,
        mine: Future[Detection],
        image: PreparedImage,
        min_confidence: float,
    ) -> Detection | None:
        """As the leader for `key`: the cached detection (None if there was none, and then the
        detector's answer is stored), settling `mine` for the callers waiting on it."""
        try:
            try:
                hit = cache.get(key)
            except Exception:
                _log.warning(
                    "detection cache %s: lookup failed; detecting", cache.name, exc_info=True
                )
                hit = None
            detection = (
                hit if hit is not None else detector.detect(image, min_confidence=min_confidence)
            )
        except BaseException as exc:
            mine.set_exception(exc)
            raise
        mine.set_result(detection)
        if hit is None:
            try:
                cache.put(key, detection)
            except Exception:
                _log.warning("detection cache %s: store failed", cache.name, exc_info=True)
        return hit


class DetectionCacheError(ModerationError):
    """The DynamoDB detection cache could not be read or written.

    `code` is the AWS error code when DynamoDB answered with one (None for connection failures and
    timeouts). Only ever seen by callers of `get`/`put`; the engine logs it and detects normally.
    """

    def __init__(self, message: str, *, code: str | None = None) -> None:
        self.code = code
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep `code` across pickling (multiprocessing, concurrent.futures).
        return _rebuild_cache_error, (str(self), self.code)


def _rebuild_cache_error(message: str, code: str | None) -> DetectionCacheError:
    return DetectionCacheError(message, code=code)


class MemoryDetectionCache:
    """A thread-safe LRU of detections in this process: `maxsize` entries, no expiry.

    A hit makes its entry the most recently used; a put into a full cache drops the least recently
    used one. A put under a key that is stored already keeps the stored detection (the first
    wins, as in the DynamoDB cache) and counts as a use. `hits` and `misses` count `get`s. Never
    raises from `get` or `put`.
    """

    name: str = "memory"

    def __init__(self, maxsize: int = 10_000) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(
                f"MemoryDetectionCache: maxsize must be an integer of at least 1, got {maxsize!r}"
            )
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, Detection] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryDetectionCache(maxsize={self.maxsize})"

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: str) -> Detection | None:
        """The detection stored under `key` (now the most recently used), or None."""
        with self._lock:
            detection = self._entries.get(key)
            if detection is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return detection

    def put(self, key: str, detection: Detection) -> None:
        """Store `detection` unless `key` holds one already; drop the least recently used entry
        when the cache is over `maxsize`."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return
            self._entries[key] = detection
            if len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)


class DynamoDBDetectionCache:
    """Detections in a DynamoDB table, shared by every process, each usable for `ttl_seconds`.

    One item per key:

    - `id` (String, the partition key): `prefix` + the cache key, e.g. `detection#3f1c...`;
    - `expiration` (Number, epoch seconds; the attribute is `ttl_attribute`): when the entry stops
      being used, `ttl_seconds` after it was stored (rounded up to a whole second);
    - `detection` (String): the Detection's JSON (`Detection.model_dump_json()`);
    - `created_at` (Number, epoch seconds): when it was stored.

    The table needs only a String partition key `id`; enable its TTL on `expiration` so expired
    items get deleted. That is the layout Powertools' idempotency uses, so its table can be shared
    (the prefix keeps the two apart).

    `get` is an eventually consistent GetItem. An item whose expiration has passed is a miss
    (DynamoDB's TTL deletes lazily, up to days late); an item that is not a stored detection
    (unreadable JSON, a missing or non-numeric expiration) is a miss too, logged as a warning once
    per item. `put` is a PutItem with `ConditionExpression` `attribute_not_exists(id) OR #exp <
    :now`: a live entry is never overwritten (the first detection wins; losing that race is not an
    error), an expired one is replaced.

    The requests go through the AWS transport (`moderation.aws.dynamodb.DynamoDBTable`): a client
    built here (boto3 imported then) uses the region `region`, else `AWS_REGION`, else boto3's
    (`AWS_DEFAULT_REGION`, the config file), has botocore's retries off and 1 s connect and read
    timeouts, and the transport retries once (`RetryPolicy(attempts=2, deadline=3.0)`): a slow or
    absent cache adds at most a few seconds to a call, and usually much less. An injected
    `client` is used as it is. `AWS_ENDPOINT_URL_DYNAMODB` points a built client at another
    endpoint (DynamoDB local). Set `transport.limiter` to count its requests against a quota.

    Raises: `ConfigurationError` from the constructor when no region is known or the client cannot
    be built; `ValueError` for a bad table name or ttl; `DetectionCacheError` from `get` and `put`
    for every failure of the call (with the AWS error code when there is one).
    """

    name: str = "dynamodb"

    #: Config of a client built here: a cache must not hold a moderation up for long.
    connect_timeout: Final = 1.0
    read_timeout: Final = 1.0
    max_attempts: Final = 2
    deadline: Final = 3.0

    def __init__(
        self,
        table: str,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        client: Any | None = None,
        region: str | None = None,
        prefix: str = "detection#",
        ttl_attribute: str = "expiration",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(table, str) or not _TABLE.fullmatch(table):
            raise ValueError(
                f"DynamoDBDetectionCache: {table!r} is not a DynamoDB table name "
                "(3-255 of A-Z a-z 0-9 _ . -)"
            )
        if (
            isinstance(ttl_seconds, bool)
            or not isinstance(ttl_seconds, int | float)
            or not 0 < ttl_seconds < math.inf
        ):
            raise ValueError(
                "DynamoDBDetectionCache: ttl_seconds must be a positive number of seconds, "
                f"got {ttl_seconds!r}"
            )
        if not ttl_attribute or ttl_attribute in ("id", "detection", "created_at"):
            raise ValueError(
                f"DynamoDBDetectionCache: ttl_attribute {ttl_attribute!r} must be an attribute "
                "name of its own (not id, detection or created_at)"
            )
        if client is not None and region is not None:
            raise TypeError(
                "DynamoDBDetectionCache: pass either an injected client or a region to build one, "
                "not both (an injected client keeps its own configuration)"
            )
        self.table = table
        self.ttl_seconds = float(ttl_seconds)
        self.prefix = prefix
        self.ttl_attribute = ttl_attribute
        self._clock = clock
        self._table = self._transport(client, region)
        self._corrupt_seen: set[str] = set()
        self._corrupt_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DynamoDBDetectionCache({self.table!r}, prefix={self.prefix!r})"

    @property
    def client(self) -> Any:
        """The boto3 DynamoDB client calls go through (built here or injected)."""
        return self._table.client

    @property
    def transport(self) -> DynamoDBTable:
        """The AWS transport the requests go through (set its `limiter` to count them)."""
        return self._table

    def _transport(self, client: Any | None, region: str | None) -> DynamoDBTable:
        from moderation._retry import RetryPolicy
        from moderation.aws.dynamodb import DynamoDBTable
        from moderation.errors import AWSError

        try:
            return DynamoDBTable(
                self.table,
                client,
                region=region,
                retry=RetryPolicy(attempts=self.max_attempts, deadline=self.deadline),
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
            )
        except ConfigurationError as exc:  # no region anywhere
            raise ConfigurationError(
                [f"dedupe cache (dynamodb): {p}" for p in exc.problems]
            ) from exc
        except AWSError as exc:  # an invalid region name, a bad endpoint URL
            raise ConfigurationError([f"dedupe cache (dynamodb): {exc}"]) from exc

    def _id(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def get(self, key: str) -> Detection | None:
        """The live detection stored under `key`, or None; DetectionCacheError if the read fails."""
        from moderation.errors import AWSError

        item_id = self._id(key)
        try:
            item = self._table.get_item({"id": {"S": item_id}})
        except AWSError as exc:
            raise self._error(exc) from exc
        if not item:
            return None
        expiration = _number(item.get(self.ttl_attribute))
        if expiration is None:
            self._corrupt(item_id, f"its {self.ttl_attribute!r} is not a Number")
            return None
        if expiration < self._clock():
            return None
        stored = item.get("detection")
        text = stored.get("S") if isinstance(stored, dict) else None
        if not isinstance(text, str):
            self._corrupt(item_id, "its 'detection' is not a String")
            return None
        try:
            return Detection.model_validate_json(text)
        except ValueError as exc:  # pydantic's ValidationError, JSON errors included
            first = str(exc).splitlines()[0]
            self._corrupt(item_id, f"its 'detection' is not a Detection's JSON ({first})")
            return None

    def put(self, key: str, detection: Detection) -> None:
        """Store `detection` under `key` for `ttl_seconds`, unless a live entry is there already;
        DetectionCacheError if the write fails for any other reason."""
        from moderation.errors import AWSError

        item_id = self._id(key)
        now = float(self._clock())
        item = {
            "id": {"S": item_id},
            self.ttl_attribute: {"N": str(math.ceil(now + self.ttl_seconds))},
            "detection": {"S": detection.model_dump_json()},
            "created_at": {"N": str(math.floor(now))},
        }
        try:
            self._table.put_item(
                item,
                condition="attribute_not_exists(id) OR #exp < :now",
                names={"#exp": self.ttl_attribute},
                values={":now": {"N": f"{now:.6f}"}},
            )
        except AWSError as exc:
            if exc.kind == "changed":  # the condition: a live entry is there
                _log.debug("dedupe cache: %s holds a live detection already; kept it", item_id)
                return
            raise self._error(exc) from exc

    def _corrupt(self, item_id: str, why: str) -> None:
        with self._corrupt_lock:
            if item_id in self._corrupt_seen:
                return
            if len(self._corrupt_seen) >= 10_000:  # bounded: a flood logs again, never grows
                self._corrupt_seen.clear()
            self._corrupt_seen.add(item_id)
        _log.warning(
            "dedupe cache: item %s in DynamoDB table %s is not a stored detection: %s; "
            "treated as a miss (it is replaced once it expires, or delete it)",
            item_id,
            self.table,
            why,
        )

    def _error(self, exc: AWSError) -> DetectionCacheError:
        """The transport's error, with what to do about it where the cache knows."""
        if exc.kind == "not found":
            hint = (
                "; the table does not exist in this region: create it (partition key `id`, "
                "String) or fix MODERATION_DEDUPE"
            )
        elif exc.kind == "denied":
            hint = "; the caller needs dynamodb:GetItem and dynamodb:PutItem on the table"
        else:
            hint = ""
        return DetectionCacheError(f"dedupe cache: {exc}{hint}", code=exc.code)


def _number(value: Any) -> float | None:
    """The float in a DynamoDB Number attribute value `{"N": "..."}`, else None."""
    if not isinstance(value, dict) or not isinstance(value.get("N"), str):
        return None
    try:
        number = float(value["N"])
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def detection_cache_from_spec(
    spec: str, *, ttl_seconds: float = DEFAULT_TTL_SECONDS, region: str | None = None
) -> DetectionCache | None:
    """The cache `spec` names (the MODERATION_DEDUPE setting), or None for `off`.

    `memory` (10,000 entries), `memory:N` (N entries, at least 1), `dynamodb:TABLE` (with
    `ttl_seconds` and `region`). ValueError naming the spec for anything else; the DynamoDB cache
    raises ConfigurationError when no region is known.
    """
    match = _SPEC.fullmatch(spec) if isinstance(spec, str) else None
    size = match["size"] if match is not None else None
    table = match["table"] if match is not None else None
    if (
        match is None
        or (size is not None and int(size) < 1)
        or (table is not None and not _TABLE.fullmatch(table))
    ):
        raise ValueError(
            f"dedupe cache {spec!r}: must be off, memory, memory:N (N entries, at least 1) or "
            "dynamodb:TABLE (a table name: 3-255 of A-Z a-z 0-9 _ . -)"
        )
    if spec == "off":
        return None
    if table is not None:
        return DynamoDBDetectionCache(table, ttl_seconds=ttl_seconds, region=region)
    return MemoryDetectionCache(int(size)) if size is not None else MemoryDetectionCache()
