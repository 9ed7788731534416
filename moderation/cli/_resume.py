"""Resuming `moderation check`: which inputs a file audit log already holds a decision for.

A decision stands for an input when it was made for the same tenant under the same policy (its
`policy.sha256` is the tenant's policy now) and it is about the same image:

- a local file: the same content (the sha256 of the file's bytes, hashed again now, so a file
  whose content changed is decided again);
- an S3 object: the same bucket, key and ETag (the ETag from the listing, or from a HEAD request
  for a single `s3://bucket/key`; the object is not downloaded). An object recorded with a sha256
  also matches a local file with the same content.

Only decisions of records that verify are trusted (`moderation.audit.VerifiedRecords`: each
record's hash checks out, under the key of a keyed log, and it links to the last one accepted,
as `moderation audit verify` checks them). A line that does not (a bare decision line, a record
whose hash or link does not check) is ignored, counted, and named in `ignored`: an input it
might stand for is decided again. Without a key the chain still has to link, so a bare line or a
record outside the chain is ignored; but whoever can write the file can also write records that
link, so only a keyed log protects resume from a forged decision.

The index keeps, per matching decision, 16 bytes of the image's sha256 (or the S3 key and ETag)
and the outcome; about 100 bytes each in memory. A later decision of the same image replaces an
earlier one.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from moderation.audit import Ignored, VerifiedRecords
from moderation.cli._inputs import Image
from moderation.decision import Outcome

__all__ = ["ResumeIndex"]

_CHUNK = 1 << 20


def _short(sha256_hex: str) -> int:
    """128 bits of a hex sha256: collisions are out of reach (2**-64 for 2**32 images)."""
    return int(sha256_hex[:32], 16)


@dataclass(slots=True)
class ResumeIndex:
    """The decisions of one audit log that stand for inputs of this run (see the module doc)."""

    path: str
    tenant: str
    policy_sha256: str
    by_content: dict[int, Outcome] = field(default_factory=dict)
    by_object: dict[tuple[str, str], tuple[str | None, Outcome]] = field(default_factory=dict)
    records: int = 0  # verified decisions read from the log, of any tenant and policy
    ignored_count: int = 0  # lines holding a record or decision that did not verify
    ignored: list[Ignored] = field(default_factory=list)  # the first few of them, with why

    @classmethod
    def load(
        cls, path: str, *, tenant: str, policy_sha256: str, key: str | bytes | None = None
    ) -> ResumeIndex:
        """The index of the log at `path` (with its rotated predecessors), from its records that
        verify under `key` (the log's MODERATION_AUDIT_KEY; None for an unkeyed log); empty when
        there is no log yet. Lines that hold no decision (headers, torn or unreadable lines)
        are passed over, and lines that do not verify are ignored and counted: an input they
        might have stood for is decided again."""
        index = cls(path, tenant, policy_sha256)
        try:
            verified = VerifiedRecords(path, key=key)
            for _, record in verified:
                decision = record.decision
                if decision is None:
                    continue
                index.records += 1
                if decision.tenant != tenant or decision.policy.sha256 != policy_sha256:
                    continue
                image = decision.image
                if image.sha256:
                    index.by_content[_short(image.sha256)] = decision.outcome
                if image.s3 is not None:
                    where = (image.s3.bucket, image.s3.key)
                    index.by_object[where] = (image.s3.etag, decision.outcome)
            index.ignored_count, index.ignored = verified.ignored_count, verified.ignored
        except (FileNotFoundError, IsADirectoryError):
            pass  # no log yet, or not a file (the sink says what is wrong): nothing to resume
        return index

    def __len__(self) -> int:
        return len(self.by_content) + len(self.by_object)

    def recorded(
        self, image: Image, etag_of: Callable[[str, str, str | None], str | None]
    ) -> Outcome | None:
        """The outcome recorded for `image`, or None when it has to be decided (now).

        `etag_of(bucket, key, version)` answers for a single S3 object that was not listed; it is
        asked only when the log holds a decision for that bucket and key. A file that cannot be
        read, or an ETag that cannot be had, is None: the engine then reports why.
        """
        if image.location is None:
            if not self.by_content:
                return None
            digest = _file_sha256(image.source)
            return None if digest is None else self.by_content.get(_short(digest))
        location = image.location
        known = self.by_object.get((location.bucket, location.key))
        if known is None:
            return None
        etag = image.etag
        if etag is None:
            try:
                etag = etag_of(location.bucket, location.key, location.version_id)
            except Exception:
                return None
        recorded_etag, outcome = known
        return outcome if etag is not None and etag == recorded_etag else None


def _file_sha256(path: str) -> str | None:
    """The sha256 of a regular file's bytes; None for anything else (opening a FIFO would block)
    or a file that cannot be read."""
    digest = hashlib.sha256()
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()
