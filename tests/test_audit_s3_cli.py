"""The commands on an S3 trail (moto): `audit digest`, `audit verify s3://` with its exit codes
and `--from`, the scheduled digest function, and the readers (`audit show`, `audit stats`,
`replay`, `review stats`) reading `s3://` as they read files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from clirunner import runner
from test_audit_digest import Clock, write

from moderation.audit import S3AuditLog, records
from moderation.audit._digest import digest_key
from moderation.audit._s3read import S3Store
from moderation.cli import main
from moderation.decision import Decision
from moderation.review_records import ReviewRecord

ROOT = Path(__file__).resolve().parent.parent
TRAIL = "s3://uploads/audit"
KEY = "the digest key"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """moto's clock, ten minutes ago: what is written now is past the commands' settle margin."""
    import moto.s3.models

    clock = Clock(datetime.now(UTC) - timedelta(minutes=10))
    monkeypatch.setattr(moto.s3.models, "utcnow", lambda: clock.now.replace(tzinfo=None))
    return clock


def cli(*args: str, key: str | None = KEY) -> Any:
    return runner().invoke(main, ["audit", *args], env={"MODERATION_AUDIT_KEY": key})


@pytest.fixture
def trail(versioned_s3: Any, clock: Clock) -> list[str]:
    """12 records, digested by the command (digest 1)."""
    keys = write(versioned_s3, 0, 10, at=clock.now)
    result = cli("digest", TRAIL)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"{TRAIL}/_digests/000000000001.json: digest 1, 12 records")
    return keys


def test_verify_passes_then_names_a_deleted_record_with_exit_1(trail: list[str], versioned_s3: Any):
    ok = cli("verify", TRAIL)
    assert ok.exit_code == 0, ok.stderr
    assert ok.stdout.startswith(f"{TRAIL}: ok: 1 digests (seq 1-1, hmac-sha256) cover 12 records")
    versioned_s3.delete_object(Bucket="uploads", Key=trail[3])
    failed = cli("verify", TRAIL)
    assert failed.exit_code == 1
    assert f"  missing: s3://uploads/{trail[3]}: digest 1 lists it" in failed.stderr
    assert f"{TRAIL}: FAILED: 1 finding (1 missing)" in failed.stderr


def test_a_record_after_the_digest_is_reported_not_yet_covered_with_exit_0(
    trail: list[str], versioned_s3: Any, clock: Clock
):
    clock.now = datetime.now(UTC)
    write(versioned_s3, 50, 1, at=clock.now)
    result = cli("verify", TRAIL)
    assert result.exit_code == 0, result.stderr
    assert "3 not yet covered (written after the newest digest)" in result.stdout
    nothing = cli("digest", TRAIL, "--json")  # still settling: nothing new to cover yet
    assert nothing.exit_code == 0
    assert json.loads(nothing.stdout)["records"] == 0


def test_verify_from_a_date_after_pruning(trail: list[str], versioned_s3: Any, clock: Clock):
    # digest 1 was written 10 minutes ago (moto's clock) and covers up to 5 minutes ago
    anchor = clock.now + timedelta(minutes=5)
    clock.now = datetime.now(UTC) - timedelta(minutes=2)
    write(versioned_s3, 100, 2, at=clock.now)
    second = cli("digest", TRAIL, "--settle", "60", "--json")
    assert (json.loads(second.stdout)["seq"], json.loads(second.stdout)["records"]) == (2, 4)
    for key in [*trail, "audit/_digests/000000000001.json"]:
        versioned_s3.delete_object(Bucket="uploads", Key=key)
    assert "digests 1-1 are missing" in cli("verify", TRAIL).stderr
    result = cli("verify", TRAIL, "--from", anchor.strftime("%Y-%m-%dT%H:%M:%S"))
    assert result.exit_code == 0, result.stderr
    assert "(seq 2-2, hmac-sha256) cover 4 records" in result.stdout


def test_an_unsigned_digest_warns_and_fails_under_a_key(versioned_s3: Any, clock: Clock):
    write(versioned_s3, 0, 2, at=clock.now)
    result = cli("digest", TRAIL, key=None)
    assert result.exit_code == 0
    assert "warning: no key (MODERATION_AUDIT_KEY): the digest is plain SHA-256" in result.stderr
    assert cli("verify", TRAIL, key=None).exit_code == 0
    keyed = cli("verify", TRAIL)
    assert keyed.exit_code == 1
    assert "an unsigned (sha256) digest where the key expects hmac-sha256" in keyed.stderr


def test_usage_errors_and_a_missing_bucket(versioned_s3: Any):
    assert cli("digest", "audit.jsonl").exit_code == 2
    assert cli("digest", "s3://Bad_Bucket/x").exit_code == 2
    assert cli("verify", TRAIL, "--head", "1:" + "a" * 64).exit_code == 2
    assert cli("verify", TRAIL, "audit.jsonl").exit_code == 2
    from_a_file = cli("verify", "audit.jsonl", "--from", "2025-03-01")
    assert from_a_file.exit_code == 2 and "not a log file's" in from_a_file.stderr
    missing = cli("verify", "s3://no-such-bucket/audit")
    assert missing.exit_code == 1
    assert "s3://no-such-bucket/audit: FAILED" in missing.stderr
    broken = cli("digest", "s3://no-such-bucket/audit")
    assert broken.exit_code == 1 and "error:" in broken.stderr


# -- the scheduled function ----------------------------------------------------------------------


def test_the_scheduled_function_writes_the_next_digest(
    versioned_s3: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch
):
    from moderation.aws_lambda.digest import handler

    write(versioned_s3, 0, 4, at=clock.now)
    monkeypatch.setenv("MODERATION_AUDIT", TRAIL)
    monkeypatch.setenv("MODERATION_AUDIT_KEY", KEY)
    answer = handler({"source": "aws.scheduler"}, None)
    assert (answer["seq"], answer["records"]) == (1, 6)
    assert answer["digest"] == f"s3://uploads/{digest_key(S3Store.open(TRAIL), 1)}"
    assert cli("verify", TRAIL).exit_code == 0
    monkeypatch.setenv("MODERATION_AUDIT", "stdout")
    monkeypatch.delenv("MODERATION_AUDIT_KEY")
    with pytest.raises(Exception, match="the digest function needs s3://bucket/prefix"):
        handler({}, None)


# -- readers -------------------------------------------------------------------------------------


def test_records_reads_an_s3_trail_as_it_reads_a_file(trail: list[str]):
    found = list(records(TRAIL))
    assert len(found) == 12
    assert sum(isinstance(r, Decision) for r in found) == 10
    assert sum(isinstance(r, ReviewRecord) for r in found) == 1
    with pytest.raises(FileNotFoundError, match="no audit records under this prefix"):
        list(records("s3://uploads/nothing-here"))


def test_audit_stats_and_show_read_s3(trail: list[str], versioned_s3: Any):
    versioned_s3.put_object(Bucket="uploads", Key="audit/kids/2025/03/02/junk.json", Body=b"{")
    stats = cli("stats", TRAIL, "--json")
    assert stats.exit_code == 0, stats.stderr
    body = json.loads(stats.stdout)
    assert body["total"]["decisions"] == 10
    assert set(body["by_tenant"]) == {"kids", "adults", "default"}
    assert body["unreadable"][0]["where"] == f"{TRAIL}/kids/2025/03/02/junk.json"
    shown = cli("show", "d000000", TRAIL)
    assert shown.exit_code == 0, shown.stderr
    assert "decision d000000" in shown.stdout
    assert "review by alice" in shown.stdout and "appeal by user-9" in shown.stdout
    assert cli("show", "d000000", "s3://uploads/nothing-here").exit_code == 1


def test_show_reads_each_object_of_the_trail_once(
    trail: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a trail of 12 records, and every object read counted
    read: list[str] = []
    real_read = S3Store.read

    def counted(self: S3Store, key: str) -> Any:
        read.append(key)
        return real_read(self, key)

    monkeypatch.setattr(S3Store, "read", counted)
    # WHEN a decision is shown with its review and its appeal
    shown = cli("show", "d000000", TRAIL)
    assert shown.exit_code == 0, shown.stderr
    assert "review by alice" in shown.stdout and "appeal by user-9" in shown.stdout
    # THEN each record object was read once: finding the decision and gathering its history are
    # one pass over the trail
    assert sorted(read) == sorted(set(read)) and len(read) == 12


def test_replay_and_review_stats_read_s3(trail: list[str]):
    replayed = runner().invoke(main, ["replay", TRAIL, "--policies", str(ROOT / "policies")])
    assert replayed.exit_code == 0, replayed.stderr
    assert "replayed 7 of 10 decisions" in replayed.stdout  # 3 of tenant adults: no policy
    assert "(12 records read)" in replayed.stdout
    empty = ["replay", "s3://uploads/none", "--policies", str(ROOT / "policies")]
    nothing = runner().invoke(main, empty)
    assert nothing.exit_code == 3  # as for a missing log file
    assert "no audit records under this prefix" in nothing.stderr
    reviewed = runner().invoke(
        main, ["review", "stats", TRAIL, "--json"], env={"MODERATION_REVIEW": None}
    )
    assert reviewed.exit_code == 0, reviewed.stderr
    assert json.loads(reviewed.stdout)
    keyed = runner().invoke(
        main,
        ["review", "stats", TRAIL],
        env={"MODERATION_REVIEW": None, "MODERATION_AUDIT_KEY": KEY},
    )
    assert keyed.exit_code == 2 and "audit verify" in keyed.stderr


def test_the_sink_writes_review_records_with_their_sha256_too(s3: Any):
    sink = S3AuditLog("uploads", "audit", client=s3)
    record = ReviewRecord.model_validate(
        {"decision_id": "d000001", "item_id": "i-1", "reviewer": "alice", "verdict": "approve",
         "at": "2025-03-02T09:00:00Z"}
    )  # fmt: skip
    sink.append_record(record)
    key = sink.key_for_record(record)
    stored = s3.get_object(Bucket="uploads", Key=key, ChecksumMode="ENABLED")
    assert stored["ChecksumSHA256"]  # S3 checked the body against the SHA-256 the sink sent
