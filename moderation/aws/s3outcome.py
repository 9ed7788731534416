"""An outcome written on an S3 object: its tags, and a move to the quarantine bucket.

The Lambda applies its decisions with these steps and the review desk applies its final verdicts
with the same ones (`apply_outcome`), so an object a person rejected is tagged and quarantined
exactly as one the engine rejected.

S3 allows at most 10 tags per object, keys up to 128 and values up to 256 characters, of letters,
digits, spaces and `+ - = . _ : / @`. PutObjectTagging replaces the whole set, so the object's
own tags are read and kept: ours replace earlier ones of the same name, and when the set would
hold more than 10, ours give way first (`moderation-decision` or `moderation-reason`), then the
object's own tags, last ones first, so that `moderation-outcome` is always written. What had to
be dropped is logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from moderation.aws.s3 import S3Objects
from moderation.errors import AWSError
from moderation.s3location import S3Location

__all__ = [
    "MAX_COPY_BYTES",
    "MAX_TAGS",
    "MAX_VALUE",
    "TAG_DECISION",
    "TAG_OUTCOME",
    "TAG_PREFIX",
    "TAG_REASON",
    "Merged",
    "ObjectChanged",
    "OutcomeLog",
    "Target",
    "apply_outcome",
    "check_unchanged",
    "is_missing",
    "merge_tags",
    "quarantine",
    "tag_object",
    "tag_value",
]

TAG_PREFIX = "moderation-"
TAG_OUTCOME = "moderation-outcome"
TAG_DECISION = "moderation-decision"
TAG_REASON = "moderation-reason"
OURS = (TAG_OUTCOME, TAG_DECISION, TAG_REASON)

MAX_TAGS = 10
MAX_VALUE = 256
#: CopyObject copies objects up to 5 GiB; larger ones are left in place, tagged.
MAX_COPY_BYTES: Final = 5 * 1024**3

_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9 +\-=._:/@]+")
_SPACES = re.compile(r" {2,}")


def tag_value(text: str) -> str:
    """`text` as an S3 tag value: other characters become a space, runs of spaces one space,
    at most 256 characters (cut at a space near the end when there is one)."""
    value = _SPACES.sub(" ", _NOT_ALLOWED.sub(" ", text)).strip()
    if len(value) <= MAX_VALUE:
        return value
    cut = value[:MAX_VALUE]
    space = cut.rfind(" ")
    return cut[:space] if space >= MAX_VALUE - 40 else cut


@dataclass(frozen=True, slots=True)
class Merged:
    """The tag set to write, and the tags that did not fit (theirs or ours)."""

    tags: tuple[tuple[str, str], ...]
    dropped: tuple[tuple[str, str], ...] = ()

    def as_tag_set(self) -> list[dict[str, str]]:
        """The `TagSet` of a PutObjectTagging request."""
        return [{"Key": key, "Value": value} for key, value in self.tags]

    def as_query(self) -> str:
        """The `Tagging` of a CopyObject request (URL-encoded `key=value&...`)."""
        from urllib.parse import urlencode

        return urlencode(list(self.tags))


def merge_tags(existing: Iterable[Mapping[str, str]], ours: Sequence[tuple[str, str]]) -> Merged:
    """The object's `existing` TagSet with `ours` written over it, at most MAX_TAGS in all.

    `ours` is in priority order (`moderation-outcome` first). Earlier `moderation-*` tags of ours
    are replaced (a reason from an earlier outcome does not linger). See the module docstring for
    what gives way when there are too many.
    """
    theirs = [
        (str(tag["Key"]), str(tag.get("Value", "")))
        for tag in existing
        if str(tag["Key"]) not in OURS
    ]
    kept_ours = list(ours)
    dropped: list[tuple[str, str]] = []
    while len(theirs) + len(kept_ours) > MAX_TAGS and len(kept_ours) > 1:
        dropped.append(kept_ours.pop())
    while len(theirs) + len(kept_ours) > MAX_TAGS:
        dropped.append(theirs.pop())
    return Merged(tuple(theirs + kept_ours), tuple(dropped))


# -- applying an outcome to an object -----------------------------------------------------------


#: How the steps below log: `log(level, message, **fields)` (the Lambda's JSON lines, the review
#: desk's logger).
OutcomeLog = Callable[..., None]


class Target(Protocol):
    """The object an outcome is applied to, as a HEAD just saw it."""

    @property
    def bucket(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def version_id(self) -> str | None: ...
    @property
    def etag(self) -> str | None: ...
    @property
    def size(self) -> int: ...


class ObjectChanged(Exception):
    """An unversioned object was overwritten while its outcome was applied: our tags were taken
    off again (they describe the old content)."""


def is_missing(exc: BaseException) -> bool:
    """An AWSError that says the object (or that version of it) does not exist."""
    if not isinstance(exc, AWSError):
        return False
    # 405 is a HEAD of a version that is a delete marker.
    return exc.kind == "not found" or exc.code in ("405", "MethodNotAllowed")


def tag_object(
    s3: S3Objects, target: Target, ours: Sequence[tuple[str, str]], log: OutcomeLog
) -> Merged:
    """Write `ours` over the object's own tags (`merge_tags`); the tag set written."""
    existing = s3.tags(target.bucket, target.key, target.version_id)
    merged = merge_tags(existing, ours)
    if merged.dropped:
        log(
            logging.WARNING,
            "the object has too many tags for all of ours: some were left out",
            bucket=target.bucket,
            key=target.key,
            version_id=target.version_id,
            dropped=dict(merged.dropped),
        )
    s3.set_tags(target.bucket, target.key, target.version_id, merged.as_tag_set())
    return merged


def check_unchanged(s3: S3Objects, target: Target) -> None:
    """For an unversioned object: raise ObjectChanged if it was overwritten since HEAD, after
    taking our tags off it (they describe the old content)."""
    if target.version_id is not None:
        return
    now = s3.head(target.bucket, target.key)
    if str(now.get("ETag") or "").strip('"') == target.etag:
        return
    current = s3.tags(target.bucket, target.key)
    kept = [tag for tag in current if tag["Key"] not in OURS]
    s3.set_tags(target.bucket, target.key, None, kept)  # none kept: the tagging is deleted
    where = S3Location(target.bucket, target.key).uri
    raise ObjectChanged(
        f"{where} was overwritten while its outcome was applied; the retry moderates the "
        "new content (enable versioning to pin every step to one version)"
    )


def quarantine(s3: S3Objects, target: Target, merged: Merged, bucket: str, log: OutcomeLog) -> None:
    """Move the object to `bucket` under the same key, with the tags `merged` holds: copy (of
    the content that was moderated), check it was not overwritten, delete the original. An
    object over 5 GiB is left in place, tagged."""
    if target.size > MAX_COPY_BYTES:
        log(
            logging.WARNING,
            "too large to copy to the quarantine bucket: left in place, tagged",
            bucket=target.bucket,
            key=target.key,
            version_id=target.version_id,
            size=target.size,
        )
        return
    s3.copy(
        target.bucket,
        target.key,
        target.version_id,
        to_bucket=bucket,
        # Unversioned: the copy must be of the content that was moderated.
        if_match=target.etag if not target.version_id else None,
        tagging=merged.as_query(),
    )
    check_unchanged(s3, target)
    s3.delete(target.bucket, target.key, target.version_id)
    log(
        logging.INFO,
        "moved to the quarantine bucket",
        bucket=target.bucket,
        key=target.key,
        version_id=target.version_id,
        quarantine_bucket=bucket,
    )


def apply_outcome(
    s3: S3Objects,
    target: Target,
    ours: Sequence[tuple[str, str]],
    *,
    quarantine_to: str | None,
    log: OutcomeLog,
) -> None:
    """Tag the object with `ours` (`moderation-outcome` first), check an unversioned one was not
    overwritten meanwhile, then move it to `quarantine_to` when that is given.

    Every step is safe to repeat: the same tags, the same copy. AWSError as the transports raise
    it (`is_missing` tells an object that is gone); ObjectChanged for an overwritten object.
    """
    merged = tag_object(s3, target, ours, log)
    check_unchanged(s3, target)
    if quarantine_to:
        quarantine(s3, target, merged, quarantine_to, log)
