"""The S3 object tags that carry an outcome: their names, their values, and merging them. Pure.

S3 allows at most 10 tags per object, keys up to 128 and values up to 256 characters, of letters,
digits, spaces and `+ - = . _ : / @`. PutObjectTagging replaces the whole set, so the object's
own tags are read and kept: ours replace earlier ones of the same name, and when the set would
hold more than 10, ours give way first (`moderation-decision` or `moderation-reason`), then the
object's own tags, last ones first, so that `moderation-outcome` is always written. What had to
be dropped is returned for the log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "MAX_TAGS",
    "MAX_VALUE",
    "TAG_DECISION",
    "TAG_OUTCOME",
    "TAG_PREFIX",
    "TAG_REASON",
    "Merged",
    "merge_tags",
    "tag_value",
]

TAG_PREFIX = "moderation-"
TAG_OUTCOME = "moderation-outcome"
TAG_DECISION = "moderation-decision"
TAG_REASON = "moderation-reason"
OURS = (TAG_OUTCOME, TAG_DECISION, TAG_REASON)

MAX_TAGS = 10
MAX_VALUE = 256

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
