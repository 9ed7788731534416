"""Verifying an S3 audit trail against its digests, and naming whatever does not match.

`verify_s3` reads the digests in seq order and checks that each one's hash verifies (its
HMAC under the key), that its seq follows the one before it, that it holds that digest's hash
and key, and that its window starts where that digest's ended. It then lists every record
object: one a digest lists must still have the SHA-256 the digest holds (else `edited`), one no
digest lists is `not yet covered` when it was written after the newest digest's window, and
`added` when its time lies inside the digests' span; a record a digest lists that is no longer
in the bucket is `missing`. With `since`, verification starts at the first digest written at or
after it (a prefix whose older records and digests a retention rule deleted): that digest's
link to the one before it is not checked, and records from before its window are not either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from moderation.audit._digest import Digest, digest_seq, parse_digest
from moderation.audit._format import GENESIS
from moderation.audit._s3read import WORKERS, S3Store
from moderation.errors import AWSError

if TYPE_CHECKING:
    from moderation.aws.s3 import ListedObject

__all__ = ["Finding", "S3VerifyReport", "verify_s3"]

#: A newest digest older than this is worth a warning: digests run every 15 minutes.
STALE = timedelta(hours=1)

FindingKind = Literal[
    "edited",
    "missing",
    "added",
    "unreadable",
    "digest edited",
    "digest missing",
    "digest added",
    "digest chain",
]


@dataclass(frozen=True, slots=True)
class Finding:
    """Something in the trail that does not match its digests: what, which object, and how."""

    kind: FindingKind
    uri: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.uri}: {self.detail}"


@dataclass(frozen=True, slots=True)
class S3VerifyReport:
    """What `verify_s3` found. `ok` when nothing was found; records written after the newest
    digest are counted in `not_covered`, not found (the next digest covers them)."""

    uri: str
    digests: int
    records: int
    not_covered: int
    before_anchor: int
    findings: tuple[Finding, ...]
    first_seq: int | None
    last_seq: int | None
    covered_to: datetime | None
    keyed: bool
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every digest verified and chained and every record matched."""
        return not self.findings

    def summary(self) -> str:
        """One line: `ok: 12 digests (seq 1-12, hmac-sha256) cover 10000 records up to ...`,
        or `FAILED: 3 findings (1 edited, 2 missing)`."""
        if self.findings:
            kinds: dict[str, int] = {}
            for finding in self.findings:
                kinds[finding.kind] = kinds.get(finding.kind, 0) + 1
            counts = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
            n = len(self.findings)
            return f"FAILED: {n} finding{'s' if n != 1 else ''} ({counts})"
        alg = "hmac-sha256" if self.keyed else "sha256"
        if self.digests:
            span = f"seq {self.first_seq}-{self.last_seq}, {alg}"
            upto = self.covered_to.strftime("%Y-%m-%dT%H:%M:%SZ") if self.covered_to else "-"
            text = f"ok: {self.digests} digests ({span}) cover {self.records} records up to {upto}"
        else:
            text = "ok: no digest yet"
        text += f"; {self.not_covered} not yet covered (written after the newest digest)"
        if self.before_anchor:
            text += f"; {self.before_anchor} from before the anchor, not checked"
        return text


@dataclass
class _Chain:
    """The digests read so far: the last one's link, and every record they list."""

    key: bytes | None
    findings: list[Finding]
    expected: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    seq: int | None = None
    hash: str | None = None
    digest_key: str | None = None
    end: datetime | None = None
    first: Digest | None = None
    count: int = 0

    def link(self, store: S3Store, listed: ListedObject, seq: int, anchored: bool) -> None:
        uri = store.uri_of(listed.key)
        self.count += 1
        try:
            raw = store.read(listed.key).body
        except AWSError as exc:
            self.findings.append(Finding("unreadable", uri, str(exc)))
            self.seq, self.hash = seq, None
            return
        digest, problem = parse_digest(raw, self.key)
        if problem is not None:
            self.findings.append(Finding("digest edited", uri, problem))
        if digest is None:
            self.seq, self.hash = seq, None
            return
        if digest.seq != seq:
            detail = f"it holds seq {digest.seq} under the key of seq {seq} (moved?)"
            self.findings.append(Finding("digest edited", uri, detail))
        self._check_link(uri, digest, seq, anchored)
        self._take(uri, digest, listed.key)

    def _check_link(self, uri: str, digest: Digest, seq: int, anchored: bool) -> None:
        if self.seq is None:  # the first digest read
            if anchored:
                return
            if seq != 1:
                detail = (
                    f"the chain starts at seq {seq}: digests 1-{seq - 1} are missing (deleted?); "
                    "verify a pruned prefix with --from DATE"
                )
                self.findings.append(Finding("digest missing", uri, detail))
            elif digest.prev != GENESIS or digest.start is not None:
                detail = "the first digest does not start the chain (prev or start is set)"
                self.findings.append(Finding("digest chain", uri, detail))
            return
        if seq != self.seq + 1:
            missing = f"{self.seq + 1}" if seq == self.seq + 2 else f"{self.seq + 1}-{seq - 1}"
            detail = f"digest {missing} before it is missing (deleted?)"
            self.findings.append(Finding("digest missing", uri, detail))
            return
        if self.hash is None:
            return  # the digest before it could not be read: already a finding
        if digest.prev != self.hash or digest.prev_key != self.digest_key:
            detail = (
                f"its prev is not the hash of digest {self.seq} ({self.digest_key}): one of "
                "them was replaced"
            )
            self.findings.append(Finding("digest chain", uri, detail))
        elif digest.start != self.end:
            detail = f"its window starts at {digest.start}, not where digest {self.seq} ended"
            self.findings.append(Finding("digest chain", uri, detail))

    def _take(self, uri: str, digest: Digest, key: str) -> None:
        if self.first is None:
            self.first = digest
        self.seq, self.hash, self.digest_key, self.end = digest.seq, digest.hash, key, digest.end
        for entry in digest.records:
            if entry.key in self.expected:
                detail = f"it lists {entry.key} again (digest {self.expected[entry.key][1]})"
                self.findings.append(Finding("digest edited", uri, detail))
            self.expected[entry.key] = (bytes.fromhex(entry.sha256), digest.seq)


def _digests(
    store: S3Store, since: datetime | None, findings: list[Finding]
) -> list[tuple[int, ListedObject]]:
    """The digests to read, in seq order: all, or from the first written at or after `since`."""
    numbered: list[tuple[int, ListedObject]] = []
    for listed in store.digests():
        seq = digest_seq(store, listed.key)
        if seq is None:
            detail = "not a digest's key: nothing the digest writer names so"
            findings.append(Finding("digest added", store.uri_of(listed.key), detail))
        else:
            numbered.append((seq, listed))
    numbered.sort(key=lambda pair: pair[0])
    newest = numbered[-1][0] if numbered else 0
    for deleted in store.deleted_digests():
        seq = digest_seq(store, deleted)
        if seq is not None and seq > newest:  # the others show as a gap in the chain
            detail = "the newest digest was deleted (a delete marker hides it)"
            findings.append(Finding("digest missing", store.uri_of(deleted), detail))
    if since is None:
        return numbered
    for index, (_, listed) in enumerate(numbered):
        if listed.last_modified is not None and listed.last_modified >= since:
            return numbered[index:]
    findings.append(Finding("digest missing", store.uri, f"no digest written at or after {since}"))
    return []


@dataclass
class _Records:
    """The record objects, sorted as they are listed: checked, not yet covered, or found."""

    chain: _Chain
    store: S3Store
    anchor_start: datetime | None
    checked: int = 0
    not_covered: int = 0
    before_anchor: int = 0

    def listed(self) -> Iterator[ListedObject]:
        """The objects a digest lists, to be fetched and hashed; the others are classified."""
        for listed in self.store.records():
            if listed.key in self.chain.expected:
                yield listed
                continue
            modified = listed.last_modified or datetime.max.replace(tzinfo=UTC)
            end = self.chain.end
            if end is None or modified > end:
                self.not_covered += 1
            elif self.anchor_start is not None and modified <= self.anchor_start:
                self.before_anchor += 1
            else:
                detail = (
                    f"no digest lists it, yet it was written at {modified:%Y-%m-%dT%H:%M:%SZ}, "
                    "inside the digests' span (added; or the digest that listed it was deleted)"
                )
                self.chain.findings.append(Finding("added", self.store.uri_of(listed.key), detail))

    def check(self, workers: int) -> None:
        """Hash every object a digest lists and compare; what stays expected is missing."""
        findings, expected = self.chain.findings, self.chain.expected
        for listed, stored in self.store.fetch(self.listed(), workers=workers):
            uri = self.store.uri_of(listed.key)
            if isinstance(stored, AWSError):
                if stored.kind != "not found":  # deleted since the listing: missing, below
                    findings.append(Finding("unreadable", uri, str(stored)))
                    expected.pop(listed.key)
                continue
            sha, seq = expected.pop(listed.key)
            self.checked += 1
            if hashlib.sha256(stored.body).digest() != sha:
                detail = f"its SHA-256 is not the one digest {seq} lists: changed after it"
                findings.append(Finding("edited", uri, detail))
        for key, (_, seq) in sorted(expected.items()):
            detail = f"digest {seq} lists it, but it is not in the bucket (deleted)"
            findings.append(Finding("missing", self.store.uri_of(key), detail))


def verify_s3(
    store: S3Store,
    *,
    key: bytes | None,
    since: datetime | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    workers: int = WORKERS,
) -> S3VerifyReport:
    """Verify the trail in `store` against its digests (from the first written at or after
    `since`, when given) under `key`; every problem is a `Finding`, none raises. Raises
    FileNotFoundError when the bucket does not exist."""
    findings: list[Finding] = []
    chain = _Chain(key, findings)
    digests = _digests(store, since, findings)
    for seq, listed in digests:
        chain.link(store, listed, seq, anchored=since is not None)
    anchor_start = chain.first.start if chain.first is not None and since is not None else None
    records = _Records(chain, store, anchor_start)
    records.check(workers)
    return S3VerifyReport(
        uri=store.uri,
        digests=chain.count,
        records=records.checked,
        not_covered=records.not_covered,
        before_anchor=records.before_anchor,
        findings=tuple(findings),
        first_seq=digests[0][0] if digests else None,
        last_seq=digests[-1][0] if digests else None,
        covered_to=chain.end,
        keyed=key is not None,
        warnings=tuple(_warnings(store, digests, key, now(), anchored=since is not None)),
    )


def _warnings(
    store: S3Store,
    digests: list[tuple[int, ListedObject]],
    key: bytes | None,
    now: datetime,
    *,
    anchored: bool,
) -> Iterator[str]:
    if key is None:
        yield (
            "no key (MODERATION_AUDIT_KEY): the digests are plain SHA-256, which whoever can "
            "write the bucket can recompute"
        )
    if not digests:
        if not anchored:  # else a finding says that no digest was written since the date
            yield f"{store.uri}: no digest yet: run `moderation audit digest {store.uri}`"
        return
    newest = digests[-1][1].last_modified
    if newest is not None and now - newest > STALE:
        yield (
            f"the newest digest ({store.uri_of(digests[-1][1].key)}) was written at "
            f"{newest:%Y-%m-%dT%H:%M:%SZ}, over {STALE} ago: the digest schedule stopped, or "
            "newer digests were deleted"
        )
