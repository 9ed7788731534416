"""`moderation audit ...`: verify, head, show, stats and schema on real small logs."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from clirunner import runner
from test_audit_log import make_decision, write_log

from moderation.audit import JsonlAuditLog, audit_record_schema, verify_log
from moderation.cli import main
from moderation.decision import Cost
from moderation.testing import offline_engine

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "examples/images"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return runner().invoke(main, ["audit", *args], env=env)


@pytest.fixture(autouse=True)
def _no_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODERATION_AUDIT_KEY", raising=False)


def _snapshot(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


# -- verify -------------------------------------------------------------------------------------


def test_verify_prints_a_summary_and_exits_0(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    before = _snapshot(tmp_path)
    result = run("verify", str(path))
    assert result.exit_code == 0, result.stderr
    report = verify_log(path)
    assert result.stdout == (
        f"{path}: ok: 1 file, 4 records (3 decisions, sha256), last seq 4 {report.last_hash}, "
        "0 warnings\n"
    )
    assert _snapshot(tmp_path) == before  # read-only: not even a lock file


def test_verify_names_the_file_and_line_of_the_first_bad_record_and_exits_1(tmp_path: Path):
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    write_log(good, 2)
    write_log(bad, 3)
    lines = bad.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"approved"', b'"rejected"')
    bad.write_bytes(b"".join(lines))
    # each PATH is its own log: the good one still verifies and is reported as such
    result = run("verify", str(good), str(bad))
    assert result.exit_code == 1
    assert result.stdout.startswith(f"{good}: ok: ")
    assert f"{bad}: FAILED at {bad}:3: line 3: hash mismatch" in result.stderr


def test_verify_of_a_missing_log_exits_1(tmp_path: Path):
    result = run("verify", str(tmp_path / "none.jsonl"))
    assert result.exit_code == 1
    assert "no such audit log" in result.stderr


def test_verify_reports_set_aside_torn_records_as_warnings(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 1)
    with path.open("ab") as fh:
        fh.write(b'{"audit":1,"se')
    # until a writer repairs it, the crash's tail is its own exit code and message
    unacknowledged = run("verify", str(path))
    assert unacknowledged.exit_code == 3
    assert unacknowledged.stderr.startswith(
        f"{path}: UNREPAIRED CRASH TAIL at {path}:3: line 3: unrepaired crash tail: a torn "
        "record of 14 bytes after the last record (a writer stopped mid-record"
    )
    JsonlAuditLog(path).append(make_decision(2))
    result = run("verify", str(path))
    assert result.exit_code == 0
    assert "1 warning" in result.stdout
    assert (
        "warning: " in result.stderr
        and "line 3: torn record of 14 bytes, set aside by line 4" in (result.stderr)
    )


def test_verify_exits_1_for_tampering_even_beside_a_crash_tail(tmp_path: Path):
    crashed, joined = tmp_path / "crashed.jsonl", tmp_path / "joined.jsonl"
    write_log(crashed, 1)
    with crashed.open("ab") as fh:
        fh.write(b'{"audit":1,"se')
    write_log(joined, 4)
    lines = joined.read_bytes().splitlines(keepends=True)
    joined.write_bytes(b"".join(lines[:2]) + b"".join(line.rstrip(b"\n") for line in lines[2:]))
    result = run("verify", str(crashed), str(joined))
    assert result.exit_code == 1
    assert f"{crashed}: UNREPAIRED CRASH TAIL at" in result.stderr
    assert f"{joined}: FAILED at {joined}:3: line 3: " in result.stderr
    assert "records were hidden here (tampering: lines joined into one)" in result.stderr
    assert "Exit codes:" in run("verify", "--help").stdout
    assert "3  verify: the log ends in an unrepaired crash tail" in run("verify", "--help").stdout


def test_verify_head_passes_while_the_log_reaches_it_and_fails_once_cut_before_it(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 4)
    head = run("head", str(path))
    assert head.exit_code == 0
    # what `head` prints is what `verify --head` takes, as it is
    assert run("verify", str(path), "--head", head.stdout.strip()).exit_code == 0
    seq, digest = head.stdout.strip().split(":")
    older = json.loads(path.read_bytes().splitlines()[2])["hash"]
    assert run("verify", str(path), "--head", f"{seq}:{digest}").exit_code == 0
    assert run("verify", str(path), "--head", digest).exit_code == 0
    assert run("verify", str(path), "--head", older).exit_code == 0
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
    cut = run("verify", str(path), "--head", f"{seq}:{digest}")
    assert cut.exit_code == 1
    assert f"head {seq}:{digest} is not in the chain" in cut.stderr
    assert run("verify", str(path), "--head", older).exit_code == 0


def test_verify_from_a_head_recorded_before_the_oldest_files_were_deleted(tmp_path: Path):
    # GIVEN a rotated log whose head an operator recorded with `audit head`
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path, fsync=False, rotate_bytes=6000)
    for i in range(12):
        log.append(make_decision(i))
    head = run("head", str(path)).stdout.strip()
    for i in range(12, 18):
        log.append(make_decision(i))
    # WHEN the retention deletes the two oldest rotated files
    for name in ("audit.jsonl.1", "audit.jsonl.2"):
        (tmp_path / name).unlink()
    # THEN plain verify fails on the missing files, and --from-head passes
    assert run("verify", str(path)).exit_code == 1
    result = run("verify", str(path), "--from-head", head)
    assert result.exit_code == 0, result.output
    assert "head found, verified from seq" in result.stdout
    assert "audit.jsonl.2 and the files before it are not here (pruned)" in result.stderr
    # AND a head that is not this log's fails, naming it
    seq = head.split(":")[0]
    other = run("verify", str(path), "--from-head", f"{seq}:{'ab' * 32}")
    assert other.exit_code == 1 and f"head {seq}:{'ab' * 32} does not match" in other.stderr


def test_verify_deep_also_validates_every_decision(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    result = run("verify", str(path), "--deep")
    assert result.exit_code == 0 and "3 decisions" in result.stdout
    assert "--deep" in run("verify", "--help").stdout


@pytest.mark.parametrize(
    "args",
    [
        ("--head", "nothex"),
        ("--head", "a" * 64, "second.jsonl"),  # a head belongs to one log
        ("--key-file", "missing-key"),
        ("--from-head", "a" * 64),  # the seq says where a pruned log must reach
        ("--from-head", "1:" + "a" * 64, "--head", "a" * 64),
        ("--from-head", "1:" + "a" * 64, "second.jsonl"),
    ],
)
def test_verify_usage_errors_exit_2(tmp_path: Path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    write_log(tmp_path / "audit.jsonl", 1)
    write_log(tmp_path / "second.jsonl", 1)
    result = run("verify", "audit.jsonl", *args)
    assert result.exit_code == 2, result.output


def test_a_keyed_log_needs_its_key_from_the_environment_or_a_key_file(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 2, key="s3cret")
    no_key = run("verify", str(path))
    assert no_key.exit_code == 1
    assert "needs the key (set MODERATION_AUDIT_KEY" in no_key.stderr
    from_env = run("verify", str(path), env={"MODERATION_AUDIT_KEY": "s3cret"})
    assert from_env.exit_code == 0 and "hmac-sha256" in from_env.stdout
    key_file = tmp_path / "key"
    key_file.write_text("s3cret\n")  # as `echo s3cret > key` writes it
    assert run("verify", str(path), "--key-file", str(key_file)).exit_code == 0
    key_file.write_text("other\n")
    wrong = run("verify", str(path), "--key-file", str(key_file))
    assert wrong.exit_code == 1 and "the key is wrong" in wrong.stderr
    assert "s3cret" not in wrong.stderr + wrong.stdout


# -- head ---------------------------------------------------------------------------------------


def test_head_prints_the_last_seq_and_hash(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 3, rotate_bytes=5000)
    report = verify_log(path)
    result = run("head", str(path))
    assert result.stdout == f"{report.last_seq}:{report.last_hash}\n"
    as_json = json.loads(run("head", str(path), "--json").stdout)
    assert as_json == {
        "head": f"{report.last_seq}:{report.last_hash}",
        "file": str(path),
        "seq": report.last_seq,
        "hash": report.last_hash,
        "alg": "sha256",
        "kind": "decision",
    }


def test_head_refuses_a_file_that_is_not_a_chained_log(tmp_path: Path):
    path = tmp_path / "old.jsonl"
    path.write_text(make_decision(1).model_dump_json() + "\n")
    result = run("head", str(path))
    assert result.exit_code == 1
    assert "not a chained audit log" in result.stderr
    assert run("head", str(tmp_path / "none.jsonl")).exit_code == 1


def test_head_warns_about_a_torn_tail_and_prints_the_last_intact_record(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    report = verify_log(path)
    with path.open("ab") as fh:
        fh.write(b'{"audit":1')
    result = run("head", str(path))
    assert result.exit_code == 0
    assert result.stdout == f"{report.last_seq}:{report.last_hash}\n"
    assert "ends in 10 torn bytes" in result.stderr


def test_the_head_printed_round_trips_through_verify_head_and_is_caught_once_cut(tmp_path):
    # GIVEN a keyed, rotated log and the head printed for it
    path = tmp_path / "audit.jsonl"
    env = {"MODERATION_AUDIT_KEY": "k"}
    write_log(path, 6, key="k", rotate_bytes=5000)
    printed = run("head", str(path), env=env).stdout.strip()
    as_json = json.loads(run("head", "--json", str(path), env=env).stdout)["head"]
    # THEN verify takes either as --head and finds it
    for anchor in (printed, as_json):
        verified = run("verify", str(path), "--head", anchor, env=env)
        assert verified.exit_code == 0, verified.stderr
        assert verified.stdout.endswith(", head found\n")
    # AND once the last record is cut off, the same anchor fails
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
    cut = run("verify", str(path), "--head", printed, env=env)
    assert cut.exit_code == 1 and f"head {printed} is not in the chain" in cut.stderr


# -- show ---------------------------------------------------------------------------------------


@pytest.fixture
def real_log(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A log of real offline decisions: approved, judged, fallback and rejected; their ids."""
    path = tmp_path / "audit.jsonl"
    engine = offline_engine(
        ROOT / "policies", ROOT / "examples/recordings", audit=JsonlAuditLog(path)
    )
    ids = {}
    for name in ("beach.jpg", "cartoon-fight.png", "game-screenshot.png", "surgery.jpg"):
        ids[name] = engine.moderate(IMAGES / name, context={"upload_id": name}).id
    return path, ids


def test_show_prints_a_decision_for_a_person(real_log):
    path, ids = real_log
    result = run("show", ids["cartoon-fight.png"], str(path))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    decision = next(d for d in _decisions(path) if d.id == ids["cartoon-fight.png"])
    assert decision.escalation is not None and decision.escalation.verdict is not None
    assert decision.triage is not None and decision.triage.deciding is not None
    for fragment in (
        f"decision {decision.id}",
        "outcome:     approved (decided by judge)",
        "tenant:      default",
        f"created_at:  {decision.created_at.isoformat()}",
        f"sha256 {decision.policy.sha256}",
        f"sha256 {decision.image.sha256}",
        "cost:        $0.000000 (rekognition $0.000000, bedrock $0.000000)",
        "context:     upload_id=cartoon-fight.png",
        "deciding findings (escalate band):",
        f"* {decision.triage.deciding.describe()}",
        f"model:     {decision.escalation.model_id}",
        "verdict:   approve",
        f"rationale: {decision.escalation.verdict.rationale}",
        *(f"  - {reason}" for reason in decision.reasons),
    ):
        assert fragment in out, fragment


def test_show_json_round_trips_and_a_missing_id_exits_1(real_log):
    path, ids = real_log
    result = run("show", ids["surgery.jpg"], str(path), "--json")
    shown = json.loads(result.stdout)
    assert shown["id"] == ids["surgery.jpg"] and shown["outcome"] == "rejected"
    missing = run("show", "01NOTTHERE", str(path))
    assert missing.exit_code == 1
    assert f"no decision in {path} has an id starting with '01NOTTHERE'" in missing.stderr


def test_show_takes_a_shortened_id_and_names_an_ambiguous_one(tmp_path: Path):
    # GIVEN a log whose ids share their first characters, as ULIDs made close in time do
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path, fsync=False)
    ids = ["01JNF4W3A0T00BWNA9W1FF72QZ", "01JNF4W3B1XXXXXXXXXXXXXXXX", "01JNF5ZZZZZZZZZZZZZZZZZZZZ"]
    for n, decision_id in enumerate(ids):
        log.append(make_decision(n).model_copy(update={"id": decision_id}))
    # THEN a prefix that one id starts with shows it, as typed or as the docs print it
    for short in ("01JNF4W3A", "01jnf4w3a0", "01JNF4W3A…", "01JNF4W3A...", "01JNF5"):
        result = run("show", short, str(path), "--json")
        assert result.exit_code == 0, (short, result.stderr)
        wanted = next(i for i in ids if i.startswith(short.upper().rstrip(".…")))
        assert json.loads(result.stdout)["id"] == wanted
    # AND a prefix that several ids start with is a usage error naming them
    ambiguous = run("show", "01JNF4W3", str(path))
    assert ambiguous.exit_code == 2
    assert (
        "ID '01JNF4W3' is ambiguous: 2 decisions in "
        f"{path} have ids starting with it ({ids[0]}, {ids[1]}); give more of the id"
    ) in ambiguous.stderr
    assert ambiguous.stdout == ""
    # AND the full id is still exact
    assert json.loads(run("show", ids[1], str(path), "--json").stdout)["id"] == ids[1]


def _decisions(path: Path):
    from moderation.audit import decisions

    return list(decisions(path))


# -- stats --------------------------------------------------------------------------------------


def test_stats_by_tenant_and_day_with_unreadable_lines_named(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path)
    day1 = datetime(2024, 3, 1, 23, 30, tzinfo=UTC)
    day2 = day1 + timedelta(hours=1)  # past midnight UTC
    escalated = {"action": "escalate", "findings": []}
    priced = Cost(rekognition_usd=0.001, bedrock_usd=0.002)
    rows = [
        make_decision(1, tenant="kids", created_at=day1, outcome="approved", cost=priced),
        make_decision(2, tenant="kids", created_at=day2, outcome="rejected", triage=escalated),
        make_decision(
            3,
            tenant="forum",
            created_at=day2,
            outcome="review",
            triage=escalated,
            cost=Cost(rekognition_usd=0.001, bedrock_usd=None),
        ),
        make_decision(4, tenant="forum", created_at=day2, outcome="approved", cost=priced),
    ]
    for decision in rows:
        log.append(decision)
    with path.open("ab") as fh:
        fh.write(b"not json\n")
    result = run("stats", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)
    total = stats["total"]
    assert total["decisions"] == 4
    assert total["outcomes"] == {"approved": 2, "rejected": 1, "review": 1}
    assert (total["with_triage"], total["escalated"], total["escalation_rate"]) == (4, 2, 0.5)
    # decision 2 is beach.jpg's zero cost; decision 3's bedrock price is unknown
    assert total["cost_usd"] == pytest.approx(0.006)
    assert total["cost_unknown"] == 1
    assert stats["by_tenant"]["kids"]["outcomes"] == {"approved": 1, "rejected": 1, "review": 0}
    assert stats["by_tenant"]["forum"]["escalation_rate"] == 0.5
    assert {k: v["decisions"] for k, v in stats["by_day"].items()} == {
        "2024-03-01": 1,
        "2024-03-02": 3,
    }
    assert stats["unreadable"] == [
        {"where": f"{path}:6", "error": "not JSON (Expecting value at column 1)"}
    ]
    assert f"unreadable: {path}:6: not JSON" in result.stderr
    table = run("stats", str(path)).stdout
    assert "tenant kids" in table and "day 2024-03-02" in table
    assert "50.0%" in table and "(+1 unknown)" in table


def test_stats_of_a_missing_log_exits_1(tmp_path: Path):
    assert run("stats", str(tmp_path / "none.jsonl")).exit_code == 1


# -- the schema ---------------------------------------------------------------------------------


def test_the_audit_record_schema_is_committed_and_current():
    result = run("schema")
    assert json.loads(result.stdout) == audit_record_schema()
    committed = json.loads((ROOT / "docs/audit-record.schema.json").read_text())
    assert committed == audit_record_schema(), (
        "regenerate it: moderation audit schema > docs/audit-record.schema.json"
    )


def test_every_record_of_a_real_log_validates_against_the_schema(real_log):
    jsonschema = pytest.importorskip("jsonschema")
    path, _ = real_log
    schema = audit_record_schema()
    for line in path.read_bytes().splitlines():
        jsonschema.validate(json.loads(line), schema)


def test_check_writes_a_keyed_rotated_log_when_the_environment_says_so(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    env = {"MODERATION_AUDIT_KEY": "s3cret", "MODERATION_AUDIT_ROTATE_BYTES": "4K"}
    result = runner().invoke(
        main,
        [
            "check",
            "--offline",
            str(ROOT / "examples/recordings"),
            "--policies",
            str(ROOT / "policies"),
            "--audit",
            str(path),
            str(IMAGES / "beach.jpg"),
            str(IMAGES / "couple.jpg"),
        ],
        env=env,
    )
    assert result.exit_code == 0, result.stderr
    report = verify_log(path, key="s3cret")
    assert report.ok and report.decisions == 2 and len(report.files) == 2
