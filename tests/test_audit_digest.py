"""Digests of an S3 audit trail (moto, end to end): writers, digests, verify, and every tampering.

moto stamps LastModified with its own clock, which these tests set (`clock`), so windows and the
settle margin are exact and nothing sleeps.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_audit_log import make_decision
from test_review_records import appeal, review

from moderation.audit import S3AuditLog
from moderation.audit._digest import DigestError, digest_key, encode_digest, write_digest
from moderation.audit._s3read import S3Store
from moderation.audit._s3verify import S3VerifyReport, verify_s3
from moderation.settings import Settings

KEY = b"digest signing key"
T0 = datetime(2025, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    """The one time moto and the digest writer read; tests move it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    import moto.s3.models

    clock = Clock(T0)
    monkeypatch.setattr(moto.s3.models, "utcnow", lambda: clock.now.replace(tzinfo=None))
    return clock


@pytest.fixture
def store(versioned_s3: Any) -> S3Store:
    return S3Store.open("s3://uploads/audit", client=versioned_s3)


def write(s3: Any, first: int, n: int, *, threads: int = 8, at: datetime = T0) -> list[str]:
    """`n` decisions made at `at` (ids from `first`, three tenants) written by `threads` writers
    at once, and a review and an appeal of the first; their keys."""
    sink = S3AuditLog("uploads", "audit", client=s3)
    decisions = [
        make_decision(i, tenant=("kids", "adults", "default")[i % 3], created_at=at)
        for i in range(first, first + n)
    ]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(sink.append, decisions))
    first_id = decisions[0].id
    people = [review(first_id, "reject", final=True, at=at), appeal(first_id, minutes=1)]
    people[1] = people[1].model_copy(update={"at": at + timedelta(minutes=1)})
    for record in people:
        sink.append_record(record)
    return [sink.key_for_record(r) for r in [*decisions, *people]]


def digest(store: S3Store, clock: Clock, **kwargs: Any) -> Any:
    return write_digest(store, key=KEY, now=clock, **kwargs)


def verify(store: S3Store, clock: Clock, **kwargs: Any) -> S3VerifyReport:
    return verify_s3(store, key=KEY, now=clock, **kwargs)


def findings(report: S3VerifyReport) -> list[tuple[str, str]]:
    return [(f.kind, f.uri) for f in report.findings]


def uri(key: str) -> str:
    return f"s3://uploads/{key}"


@pytest.fixture
def digested(versioned_s3: Any, store: S3Store, clock: Clock) -> list[str]:
    """60 records by 8 concurrent writers, digest 1 ten minutes later; 30 more, digest 2."""
    keys = write(versioned_s3, 0, 40)
    clock.advance(minutes=10)
    assert digest(store, clock).records == 42
    clock.advance(minutes=5)
    keys += write(versioned_s3, 100, 20)
    clock.advance(minutes=10)
    assert digest(store, clock).records == 22
    return keys


# -- writing, digesting, verifying ------------------------------------------------------------


def test_concurrent_writers_then_a_digest_then_verify_passes(
    versioned_s3: Any, store: S3Store, clock: Clock
):
    # GIVEN 8 threads writing 200 decisions at once, and a review and an appeal
    keys = write(versioned_s3, 0, 200)
    clock.advance(minutes=6)
    # WHEN a digest runs past the settle margin
    run = digest(store, clock)
    # THEN it lists every record object once, with its hash, and verify passes
    assert (run.key, run.seq, run.start, run.records) == (digest_key(store, 1), 1, None, 202)
    assert run.end == T0 + timedelta(minutes=1)
    body = json.loads(versioned_s3.get_object(Bucket="uploads", Key=run.key)["Body"].read())
    assert sorted(entry["key"] for entry in body["records"]) == sorted(keys)
    assert all(entry["version_id"] for entry in body["records"])
    assert body["alg"] == "hmac-sha256" and body["prev"] == "0" * 64
    report = verify(store, clock)
    assert report.ok, report.findings
    assert (report.digests, report.records, report.not_covered) == (1, 202, 0)
    assert report.summary().startswith("ok: 1 digests (seq 1-1, hmac-sha256) cover 202 records")


def test_each_digest_covers_what_was_written_since_the_one_before(
    digested: list[str], store: S3Store, clock: Clock
):
    report = verify(store, clock)
    assert report.ok, report.findings
    assert (report.digests, report.records, report.first_seq, report.last_seq) == (2, 64, 1, 2)
    second = json.loads(store.read(digest_key(store, 2)).body)
    first = json.loads(store.read(digest_key(store, 1)).body)
    assert (second["prev"], second["prev_key"]) == (first["hash"], digest_key(store, 1))
    assert second["start"] == first["end"]
    assert {e["key"] for e in second["records"]} == set(digested[42:])


def test_a_record_written_within_the_settle_margin_waits_for_the_next_digest(
    versioned_s3: Any, store: S3Store, clock: Clock
):
    write(versioned_s3, 0, 3)
    clock.advance(minutes=2)  # still settling: a PUT may be under way
    run = digest(store, clock)
    assert run.records == 0
    report = verify(store, clock)
    assert report.ok and report.not_covered == 5
    clock.advance(minutes=5)
    assert digest(store, clock).records == 5
    assert verify(store, clock).not_covered == 0


def test_a_record_written_after_the_last_digest_is_not_yet_covered_not_tampering(
    digested: list[str], versioned_s3: Any, store: S3Store, clock: Clock
):
    clock.advance(minutes=1)
    write(versioned_s3, 500, 1)
    report = verify(store, clock)
    assert report.ok
    assert report.not_covered == 3  # a decision, its review and its appeal
    assert "3 not yet covered (written after the newest digest)" in report.summary()


def test_a_run_with_nothing_new_writes_nothing(digested: list[str], store: S3Store, clock: Clock):
    run = digest(store, clock)
    assert run.key is None and "already covers" in (run.skipped or "")


def test_two_runs_at_once_write_one_digest(versioned_s3: Any, store: S3Store, clock: Clock):
    write(versioned_s3, 0, 30)
    clock.advance(minutes=10)
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: digest(store, clock), range(2)))
    assert sorted(run.key is None for run in runs) == [False, True]
    listed = versioned_s3.list_objects_v2(Bucket="uploads", Prefix="audit/_digests/")
    assert [o["Key"] for o in listed["Contents"]] == [digest_key(store, 1)]
    assert verify(store, clock).ok


def test_a_later_digest_lists_only_the_dated_folders_of_its_window(
    digested: list[str], versioned_s3: Any, store: S3Store, clock: Clock
):
    calls: list[str] = []
    client = versioned_s3
    original = client.list_objects_v2

    def counting(**params: Any) -> Any:
        calls.append(params["Prefix"])
        return original(**params)

    client.list_objects_v2 = counting
    clock.advance(minutes=20)
    digest(store, clock)
    days = {"2025/03/01/", "2025/03/02/"}
    listed = {c for c in calls if not c.endswith(("audit/", "_digests/"))}
    assert listed == {f"audit/{f}{d}" for f in ("adults/", "default/", "kids/", "reviews/")
                      for d in days}  # fmt: skip


# -- tampering, each named ---------------------------------------------------------------------


def test_an_edited_record_is_named(
    digested: list[str], versioned_s3: Any, store: S3Store, clock: Clock
):
    key = digested[5]
    body = versioned_s3.get_object(Bucket="uploads", Key=key)["Body"].read()
    versioned_s3.put_object(Bucket="uploads", Key=key, Body=body.replace(b"approved", b"rejected"))
    report = verify(store, clock)
    assert findings(report) == [("edited", uri(key))]
    assert "its SHA-256 is not the one digest 1 lists" in report.findings[0].detail
    assert report.summary() == "FAILED: 1 finding (1 edited)"


def test_a_deleted_record_is_named(
    digested: list[str], versioned_s3: Any, store: S3Store, clock: Clock
):
    key = digested[50]
    versioned_s3.delete_object(Bucket="uploads", Key=key)
    report = verify(store, clock)
    assert findings(report) == [("missing", uri(key))]
    assert "digest 2 lists it, but it is not in the bucket" in report.findings[0].detail


def test_an_added_record_is_named(
    digested: list[str], versioned_s3: Any, store: S3Store, clock: Clock
):
    # a decision slipped into a past day's folder: no later digest lists that folder
    forged = "audit/kids/2025/01/15/d999999.json"
    body = make_decision(999999, tenant="kids").model_dump_json().encode()
    versioned_s3.put_object(Bucket="uploads", Key=forged, Body=body)
    assert verify(store, clock).not_covered == 1  # until a digest's window passes its time
    clock.advance(minutes=20)
    digest(store, clock)
    report = verify(store, clock)
    assert findings(report) == [("added", uri(forged))]
    assert "no digest lists it" in report.findings[0].detail


def test_an_edited_digest_is_named(digested: list[str], store: S3Store, clock: Clock):
    key = digest_key(store, 1)
    raw = store.read(key).body
    body = json.loads(raw)
    hidden = body["records"].pop(3)["key"]  # hide a record, keep the stated hash
    edited = json.dumps(body, separators=(",", ":")).encode()
    store.s3.client.put_object(Bucket="uploads", Key=key, Body=edited)
    report = verify(store, clock)
    assert ("digest edited", uri(key)) in findings(report)
    assert ("added", uri(hidden)) in findings(report)
    assert "signature does not verify" in report.findings[0].detail


def test_a_deleted_digest_is_named(digested: list[str], store: S3Store, clock: Clock):
    clock.advance(minutes=20)
    digest(store, clock)  # digest 3, empty
    store.s3.delete("uploads", digest_key(store, 2))
    report = verify(store, clock)
    assert ("digest missing", uri(digest_key(store, 3))) in findings(report)
    assert "digest 2 before it is missing" in str(report.findings)
    # the records only digest 2 listed are now in no digest
    assert {f.uri for f in report.findings if f.kind == "added"} == {uri(k) for k in digested[42:]}


def test_a_replaced_digest_breaks_the_chain(digested: list[str], store: S3Store, clock: Clock):
    # rewritten whole, and re-signed with the key: only the next digest's prev tells
    first = json.loads(store.read(digest_key(store, 1)).body)
    forged = encode_digest(
        seq=1, prev="0" * 64, prev_key=None, store=store, start=None,
        end=datetime.fromisoformat(first["end"]), records=[], key=KEY,
    )  # fmt: skip
    store.s3.client.put_object(Bucket="uploads", Key=digest_key(store, 1), Body=forged)
    report = verify(store, clock)
    assert ("digest chain", uri(digest_key(store, 2))) in findings(report)


def test_a_wrong_key_or_no_key_fails_every_digest(
    digested: list[str], store: S3Store, clock: Clock
):
    wrong = verify_s3(store, key=b"another key", now=clock)
    assert [f.kind for f in wrong.findings] == ["digest edited", "digest edited"]
    assert "the key is wrong" in wrong.findings[0].detail
    unkeyed = verify_s3(store, key=None, now=clock)
    assert "needs MODERATION_AUDIT_KEY" in unkeyed.findings[0].detail


def test_a_new_digest_is_refused_after_an_edited_one(
    digested: list[str], store: S3Store, clock: Clock
):
    key = digest_key(store, 2)
    raw = store.read(key).body.replace(b'"seq":2', b'"seq":2 ')
    store.s3.client.put_object(Bucket="uploads", Key=key, Body=raw)
    clock.advance(minutes=20)
    with pytest.raises(DigestError, match="refusing to chain a new digest to it"):
        digest(store, clock)


def test_a_stale_newest_digest_is_a_warning(digested: list[str], store: S3Store, clock: Clock):
    clock.advance(hours=3)
    report = verify(store, clock)
    assert report.ok
    assert any("over 1:00:00 ago" in w for w in report.warnings)


# -- a prefix pruned by retention ----------------------------------------------------------------


def test_a_pruned_prefix_verifies_from_an_anchored_digest(
    digested: list[str], versioned_s3: Any, store: S3Store, clock: Clock
):
    # GIVEN digest 1 and the records it listed deleted by a retention rule (but one)
    anchor_time = clock.now - timedelta(minutes=1)  # digest 2 was written after it
    for key in [*digested[:41], digest_key(store, 1)]:
        versioned_s3.delete_object(Bucket="uploads", Key=key)
    clock.advance(minutes=1)
    write(versioned_s3, 700, 2)  # written after digest 2: not yet covered
    # THEN verifying from the start names the missing digest, and the record it listed
    whole = verify(store, clock)
    assert [f.kind for f in whole.findings] == ["digest missing", "added"]
    assert "--from DATE" in whole.findings[0].detail
    # AND verifying from the first digest written at or after a date passes; the record left
    # from before the anchor's window is counted, not checked
    report = verify(store, clock, since=anchor_time)
    assert report.ok, report.findings
    assert (report.first_seq, report.records, report.not_covered) == (2, 22, 4)
    assert report.before_anchor == 1
    assert "1 from before the anchor, not checked" in report.summary()
    # a date after every digest anchors nothing
    late = verify(store, clock, since=clock.now + timedelta(days=1))
    assert [f.kind for f in late.findings] == ["digest missing"]


# -- settings ------------------------------------------------------------------------------------


def test_the_key_is_accepted_beside_an_s3_destination():
    env = {"MODERATION_AUDIT": "s3://audit-bucket/p", "MODERATION_AUDIT_KEY": "k"}
    assert Settings.from_env(env).audit_key == "k"


def test_a_deleted_newest_digest_is_named_and_not_written_over(
    digested: list[str], versioned_s3: Any, store: S3Store, clock: Clock
):
    # GIVEN the newest digest and a record it listed deleted (versioning keeps both)
    clock.advance(minutes=1)  # moto tells the latest version by its time
    versioned_s3.delete_object(Bucket="uploads", Key=digest_key(store, 2))
    versioned_s3.delete_object(Bucket="uploads", Key=digested[50])
    # THEN verify names the digest, though the chain before it is whole
    report = verify(store, clock)
    assert ("digest missing", uri(digest_key(store, 2))) in findings(report)
    assert "the newest digest was deleted" in str(report.findings)
    # AND the next run refuses to write digest 2 again over the gap
    clock.advance(minutes=20)
    with pytest.raises(DigestError, match=r"was deleted \(a delete marker hides it\)"):
        digest(store, clock)
