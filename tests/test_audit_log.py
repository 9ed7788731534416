"""The chained file log: its format, many writers at once, keyed mode, crashes and rotation.

Other audit test modules import `make_decision`, `FULL_CONTEXT` and `write_log` from here.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from moderation import AuditError, Engine
from moderation.audit import (
    GENESIS,
    AuditRecord,
    JsonlAuditLog,
    _jsonl,
    audit_log_from_spec,
    decisions,
    read_log,
    verify_log,
)
from moderation.audit._format import hashed_record, json_bytes, record_hash, signed_prefix
from moderation.decision import Decision
from moderation.errors import ConfigurationError
from moderation.settings import Settings
from moderation.testing import offline_engine

ROOT = Path(__file__).resolve().parent.parent
BEACH = ROOT / "examples/images/beach.jpg"
# The largest context a caller may pass: 32 keys of 256 characters, about 9 KB of JSON.
FULL_CONTEXT = {f"key{i:02d}": chr(ord("a") + i % 26) * 256 for i in range(32)}


@functools.cache
def _base() -> dict[str, Any]:
    decision = offline_engine(ROOT / "policies", ROOT / "examples/recordings").moderate(BEACH)
    return decision.model_dump(mode="json")


def make_decision(
    n: int,
    *,
    tenant: str = "default",
    context: dict[str, Any] | None = None,
    created_at: datetime | None = None,
    **fields: Any,
) -> Decision:
    """A real decision (beach.jpg, approved by policy) with its own id, tenant, context and time."""
    data = {
        **_base(),
        "id": f"d{n:06d}",
        "tenant": tenant,
        "context": context or {},
        **fields,
    }
    if created_at is not None:
        data["created_at"] = created_at.isoformat()
    return Decision.model_validate(data)


def write_log(path: Path, n: int, **kwargs: Any) -> list[Decision]:
    """A log at `path` of `n` decisions (ids d000000...), written by one JsonlAuditLog."""
    log = JsonlAuditLog(path, fsync=False, **kwargs)
    written = [make_decision(i) for i in range(n)]
    for decision in written:
        log.append(decision)
    return written


def records(path: Path) -> list[AuditRecord]:
    return [e.parsed for e in read_log(path) if isinstance(e.parsed, AuditRecord)]


# -- the format ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, b"k3y"])
def test_a_body_given_as_bytes_makes_the_line_its_text_makes(key: bytes | None):
    # The file log hands the serializer's bytes over as they are; a line must not depend on it.
    decision = make_decision(1, tenant="caf\u00e9", context={"note": '\u00fcber \U0001f600 "q"'})
    text = decision.model_dump_json()
    assert json_bytes(decision) == text.encode()
    as_bytes = hashed_record(seq=7, prev=GENESIS, kind="decision", body_json=text.encode(), key=key)
    as_text = hashed_record(seq=7, prev=GENESIS, kind="decision", body_json=text, key=key)
    assert as_bytes == as_text
    line, digest = as_bytes
    signed = signed_prefix(line)
    assert signed is not None and signed[1] == digest == record_hash(signed[0], key)
    assert json.loads(line)["decision"] == json.loads(text)


def test_a_new_log_starts_with_a_header_and_chains_every_decision(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    written = write_log(path, 3)
    header, *rest = records(path)
    assert (header.kind, header.seq, header.prev, header.alg) == ("file", 1, GENESIS, "sha256")
    assert header.file is not None and header.file.continues is None
    assert [r.kind for r in rest] == ["decision"] * 3
    assert [r.seq for r in rest] == [2, 3, 4]
    assert [r.prev for r in rest] == [header.hash, rest[0].hash, rest[1].hash]
    assert [r.decision for r in rest] == written
    assert list(decisions(path)) == written
    # the body is the Decision's own JSON, byte for byte
    first_line = path.read_bytes().splitlines()[1]
    assert written[0].model_dump_json().encode() in first_line
    assert verify_log(path).ok


def test_appends_continue_the_chain_across_instances_and_reopen(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    JsonlAuditLog(path).append(make_decision(9))
    report = verify_log(path)
    assert report.ok, report.summary()
    assert (report.records, report.decisions, report.last_seq) == (4, 3, 4)


def test_an_unchained_file_is_refused_when_the_sink_is_built(tmp_path: Path):
    # GIVEN a file log of the older, unchained format (bare decision lines)
    path = tmp_path / "old.jsonl"
    path.write_text(make_decision(1).model_dump_json() + "\n")
    # THEN a writer refuses it at start-up, naming the file, rather than mixing formats
    with pytest.raises(ConfigurationError, match=r"old\.jsonl.*bare decision line.*not a chained"):
        JsonlAuditLog(path)


def test_a_directory_is_not_a_log(tmp_path: Path):
    with pytest.raises(ConfigurationError, match="is a directory"):
        JsonlAuditLog(tmp_path)


def test_a_log_in_a_missing_directory_is_refused_at_start_up(tmp_path: Path):
    with pytest.raises(ConfigurationError, match=r"the directory .*nowhere does not exist"):
        JsonlAuditLog(tmp_path / "nowhere" / "audit.jsonl")


def test_a_failed_write_is_an_audit_error_and_the_decision_is_not_returned(tmp_path, monkeypatch):
    engine = offline_engine(
        ROOT / "policies",
        ROOT / "examples/recordings",
        audit=JsonlAuditLog(tmp_path / "audit.jsonl"),
    )

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_jsonl, "_os_write", full)
    with pytest.raises(AuditError, match="No space left") as caught:
        engine.moderate(BEACH)
    assert isinstance(caught.value.decision, Decision)


# -- keyed mode ---------------------------------------------------------------------------------


def test_a_keyed_log_uses_hmac_and_verifies_only_with_its_key(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 2, key="s3cret")
    assert {r.alg for r in records(path)} == {"hmac-sha256"}
    assert verify_log(path, key=b"s3cret").ok
    assert not verify_log(path, key="other").ok
    # bytes and text keys are the same key
    JsonlAuditLog(path, key=b"s3cret").append(make_decision(5))
    assert verify_log(path, key="s3cret").ok


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        (None, "k", r"chained with sha256 but this writer has a key"),
        ("k", None, r"chained with hmac-sha256 but this writer has no key"),
        ("k", "wrong", r"does not verify \(wrong MODERATION_AUDIT_KEY"),
    ],
)
def test_a_writer_refuses_a_log_of_the_other_alg_or_key(tmp_path: Path, first, second, message):
    path = tmp_path / "audit.jsonl"
    write_log(path, 1, key=first)
    with pytest.raises(ConfigurationError, match=message) as caught:
        JsonlAuditLog(path, key=second)
    assert str(path) in str(caught.value)


def test_the_alg_is_checked_again_at_each_append(tmp_path: Path):
    # GIVEN an unkeyed writer built while the path was empty
    path = tmp_path / "audit.jsonl"
    unkeyed = JsonlAuditLog(path)
    # WHEN a keyed writer starts the log, THEN the unkeyed one refuses to extend it
    JsonlAuditLog(path, key="k").append(make_decision(1))
    with pytest.raises(ConfigurationError, match="has no key"):
        unkeyed.append(make_decision(2))
    assert verify_log(path, key="k").ok


def test_an_empty_key_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="empty"):
        JsonlAuditLog(tmp_path / "a.jsonl", key="")


# -- many writers -------------------------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import sys, threading
    from moderation.audit import JsonlAuditLog
    from moderation.decision import Decision

    path, name, threads, total, rotate = sys.argv[1:6]
    template = Decision.model_validate_json(open(sys.argv[6]).read())
    # Two instances on the same path in this process, besides the other process's.
    logs = [
        JsonlAuditLog(path, rotate_bytes=int(rotate) or None) for _ in range(2)
    ]
    errors = []

    def work(t):
        try:
            for i in range(t, int(total), int(threads)):
                decision = template.model_copy(update={"id": f"{name}-{i}"})
                logs[(t + i) % 2].append(decision)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(int(threads))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]
    """
)


def _run_writers(tmp_path: Path, path: Path, *, each: int, rotate: int = 0) -> set[str]:
    """Two processes of 8 threads append `each` decisions apiece to `path`; their ids."""
    template = tmp_path / "template.json"
    template.write_text(make_decision(0, context=FULL_CONTEXT).model_dump_json())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WRITER,
                str(path),
                name,
                "8",
                str(each),
                str(rotate),
                str(template),
            ],
            env=env,
            stderr=subprocess.PIPE,
        )
        for name in ("p1", "p2")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    return {f"{name}-{i}" for name in ("p1", "p2") for i in range(each)}


@pytest.mark.slow
def test_two_processes_of_eight_threads_and_two_instances_each_lose_and_interleave_nothing(
    tmp_path: Path,
):
    path = tmp_path / "audit.jsonl"
    expected = _run_writers(tmp_path, path, each=2500)
    assert len(expected) == 5000
    entries = list(read_log(path))
    # every line parses whole: nothing interleaved, nothing torn
    assert all(e.parsed is not None and not e.torn for e in entries), [
        e.where for e in entries if e.parsed is None
    ][:3]
    ids = [d.id for d in decisions(path)]
    assert len(ids) == 5000 and set(ids) == expected
    assert all(len(e.raw) > 9000 for e in entries if e.decision is not None)  # full contexts
    report = verify_log(path)
    assert report.ok, report.summary()
    assert (report.decisions, report.records, report.warnings) == (5000, 5001, ())


def test_many_writers_rotating_the_same_log_keep_one_chain(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    expected = _run_writers(tmp_path, path, each=300, rotate=100_000)
    files = sorted(p.name for p in tmp_path.glob("audit.jsonl*"))
    assert len(files) > 5
    assert {d.id for d in decisions(path)} == expected
    report = verify_log(path)
    assert report.ok, report.summary()
    assert report.decisions == len(expected)


# -- crashes ------------------------------------------------------------------------------------

_KILLED = textwrap.dedent(
    """
    import os, signal, sys
    from moderation.audit import JsonlAuditLog, _jsonl
    from moderation.decision import Decision

    path, how, template = sys.argv[1], sys.argv[2], sys.argv[3]
    decision = Decision.model_validate_json(open(template).read())
    real = os.write

    def dying(fd, data):
        data = bytes(data)
        if b'"kind":"decision"' not in data:
            return real(fd, data)  # a repair or header: let it through
        cut = len(data) // 2 if how == "half" else len(data) - 1
        real(fd, data[:cut])
        os.kill(os.getpid(), signal.SIGKILL)

    _jsonl._os_write = dying
    JsonlAuditLog(path).append(decision)
    """
)


def _killed_writer(tmp_path: Path, path: Path, how: str, n: int) -> None:
    template = tmp_path / f"killed-{n}.json"
    template.write_text(make_decision(1000 + n, context=FULL_CONTEXT).model_dump_json())
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED, str(path), how, str(template)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()


def test_writers_killed_mid_record_leave_torn_lines_that_the_next_writer_sets_aside(
    tmp_path: Path,
):
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path)  # this process's writer, with its tail cached
    log.append(make_decision(0))
    for round_ in range(3):
        # GIVEN a writer killed halfway through a ~10 KB record
        lines_before = path.read_bytes().count(b"\n")
        _killed_writer(tmp_path, path, "half", round_)
        torn_line = lines_before + 1
        # THEN verify fails on the unacknowledged torn tail, naming its line
        report = verify_log(path)
        assert not report.ok
        assert (report.failure_file, report.failure_line) == (path, torn_line)
        assert "unrepaired crash tail: a torn record" in (report.failure or "")
        assert report.crash_tail  # not tampering: the next writer repairs it
        # and the intact prefix is untouched: everything before it still reads
        assert [e.line for e in read_log(path) if e.torn] == [torn_line]
        # WHEN the next writer appends (this process: its cache is stale and must be re-read)
        log.append(make_decision(round_ + 1))
        # THEN the torn bytes are kept, terminated and set aside by a chained note
        report = verify_log(path)
        assert report.ok, report.summary()
        assert report.warnings[-1].endswith(
            f"line {torn_line}: torn record of "
            f"{len(path.read_bytes().splitlines()[torn_line - 1])} bytes, "
            f"set aside by line {torn_line + 1}"
        )
    assert [d.id for d in decisions(path)] == [f"d{i:06d}" for i in range(4)]
    assert len(verify_log(path).warnings) == 3


def test_a_whole_record_missing_only_its_newline_is_completed_not_set_aside(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path)
    log.append(make_decision(0))
    _killed_writer(tmp_path, path, "newline", 0)
    unrepaired = verify_log(path)  # a last line without its newline is torn until completed
    assert not unrepaired.ok and unrepaired.crash_tail
    assert "the last record lacks only its newline" in (unrepaired.failure or "")
    log.append(make_decision(1))
    report = verify_log(path)
    assert report.ok and report.warnings == ()
    assert [d.id for d in decisions(path)] == ["d000000", "d001000", "d000001"]


def _failing_writes(monkeypatch: pytest.MonkeyPatch, *cuts: int) -> None:
    """The next writes store only `cuts[i]` bytes each (a short write), then ENOSPC."""
    real = os.write
    remaining = list(cuts)

    def full_disk(fd: int, data: Any) -> int:
        if not remaining:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, bytes(data)[: remaining.pop(0)])

    monkeypatch.setattr(_jsonl, "_os_write", full_disk)


def test_a_short_write_on_a_full_disk_raises_and_is_set_aside_once_space_returns(
    tmp_path, monkeypatch
):
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path)
    log.append(make_decision(0))
    _failing_writes(monkeypatch, 700)
    with pytest.raises(OSError, match="No space left"):
        log.append(make_decision(1))
    assert verify_log(path).failure_line == 3
    monkeypatch.setattr(_jsonl, "_os_write", os.write)
    log.append(make_decision(2))
    report = verify_log(path)
    assert report.ok, report.summary()
    assert "line 3: torn record of 700 bytes, set aside by line 4" in report.warnings[0]
    assert [d.id for d in decisions(path)] == ["d000000", "d000002"]


def test_a_repair_cut_short_by_the_disk_too_is_set_aside_as_one_region(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path)
    log.append(make_decision(0))
    _failing_writes(monkeypatch, 500)
    with pytest.raises(OSError, match="No space left"):
        log.append(make_decision(1))
    # the repair (newline + torn note) stores only its newline and a few bytes of the note
    _failing_writes(monkeypatch, 40)
    with pytest.raises(OSError, match="No space left"):
        log.append(make_decision(2))
    monkeypatch.setattr(_jsonl, "_os_write", os.write)
    log.append(make_decision(3))
    report = verify_log(path)
    assert report.ok, report.summary()
    assert "lines 3-4: torn record of 540 bytes, set aside by line 5" in report.warnings[0]
    assert [d.id for d in decisions(path)] == ["d000000", "d000003"]


def test_an_empty_live_file_gets_its_header(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    path.touch()  # a writer created it and died before the header
    assert verify_log(path).warnings  # empty: a warning, not a failure
    JsonlAuditLog(path).append(make_decision(0))
    assert [r.kind for r in records(path)] == ["file", "decision"]
    assert verify_log(path).ok


def test_a_torn_header_is_set_aside_before_a_new_one(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    write_log(tmp_path / "scratch.jsonl", 1)
    header = (tmp_path / "scratch.jsonl").read_bytes().split(b"\n")[0]
    path.write_bytes(header[:50])  # died mid-header
    JsonlAuditLog(path).append(make_decision(1))
    kinds = [r.kind for r in records(path)]
    assert kinds == ["torn", "file", "decision"]
    report = verify_log(path)
    assert report.ok, report.summary()
    assert "line 1: torn record of 50 bytes, set aside by line 2" in report.warnings[0]


def test_a_live_file_lost_between_rename_and_header_continues_from_the_newest_rotated(
    tmp_path: Path,
):
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    path.rename(tmp_path / "audit.jsonl.1")  # rotation renamed it, then the writer died
    JsonlAuditLog(path).append(make_decision(7))
    header = records(path)[4]  # the rotated file's 4 records come first
    assert header.kind == "file" and header.file is not None
    assert header.file.continues == "audit.jsonl.1"
    report = verify_log(path)
    assert report.ok, report.summary()
    assert report.decisions == 4


# -- rotation -----------------------------------------------------------------------------------


def test_rotation_renames_to_growing_numbers_and_loses_nothing(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path, rotate_bytes=40_000, fsync=False)
    written = [make_decision(i, context=FULL_CONTEXT) for i in range(30)]
    for decision in written:
        log.append(decision)
    rotated = sorted(
        (
            p
            for p in tmp_path.iterdir()
            if p.name.startswith("audit.jsonl.") and p.suffix != ".lock"
        ),
        key=lambda p: int(p.suffix[1:]),
    )
    assert [p.name for p in rotated] == [f"audit.jsonl.{k}" for k in range(1, len(rotated) + 1)]
    assert len(rotated) >= 5
    for file in [*rotated, path]:
        assert file.stat().st_size <= 40_000
        first = json.loads(file.read_bytes().split(b"\n")[0])
        assert first["kind"] == "file"
    # each header names the file before it
    continues = [json.loads(p.read_bytes().split(b"\n")[0])["file"]["continues"] for p in rotated]
    assert continues == [None, *(p.name for p in rotated[:-1])]
    assert list(decisions(path)) == written
    report = verify_log(path)
    assert report.ok and report.files == (*rotated, path)


def test_rotation_numbers_are_never_reused(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path, rotate_bytes=20_000, fsync=False)
    for i in range(6):
        log.append(make_decision(i, context=FULL_CONTEXT))
    names = {p.name for p in tmp_path.iterdir()}
    top = max(int(n.rsplit(".", 1)[1]) for n in names if n.rsplit(".", 1)[1].isdigit())
    (tmp_path / "audit.jsonl.1").unlink()  # an operator archived the oldest elsewhere
    for i in range(6, 9):
        log.append(make_decision(i, context=FULL_CONTEXT))
    assert (tmp_path / f"audit.jsonl.{top + 1}").exists()
    assert not (tmp_path / "audit.jsonl.1").exists()


def test_a_file_holding_only_its_header_is_not_rotated(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path, rotate_bytes=100, fsync=False)  # smaller than any record
    for i in range(3):
        log.append(make_decision(i))
    # one decision per file: a rotation happens only once a file holds more than its header
    assert len(list(tmp_path.glob("audit.jsonl.*[0-9]"))) == 2
    assert verify_log(path).ok


# -- settings -----------------------------------------------------------------------------------


def test_the_key_and_rotation_come_from_the_environment(fake_aws_env, tmp_path: Path):
    env = {
        "MODERATION_POLICIES": str(ROOT / "policies"),
        "MODERATION_AUDIT": str(tmp_path / "audit.jsonl"),
        "MODERATION_AUDIT_KEY": "a secret key",
        "MODERATION_AUDIT_ROTATE_BYTES": "64K",
    }
    settings = Settings.from_env(env)
    assert settings.audit_key == "a secret key"
    assert settings.audit_rotate_bytes == 64 * 1024
    assert "a secret key" not in repr(settings)
    engine = Engine.from_settings(settings)
    assert isinstance(engine.audit, JsonlAuditLog)
    assert engine.audit.keyed and engine.audit.rotate_bytes == 65536
    assert "secret" not in repr(engine.audit)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MODERATION_AUDIT_ROTATE_BYTES": "lots"}, "MODERATION_AUDIT_ROTATE_BYTES: must be"),
        ({"MODERATION_AUDIT_ROTATE_BYTES": "0"}, "MODERATION_AUDIT_ROTATE_BYTES: must be"),
        ({"MODERATION_AUDIT_KEY": " "}, "MODERATION_AUDIT_KEY: is set but empty"),
        (
            {"MODERATION_AUDIT": "stdout", "MODERATION_AUDIT_KEY": "k"},
            "MODERATION_AUDIT_KEY: applies only to a file audit log",
        ),
        (
            {"MODERATION_AUDIT": "s3://b-1/x", "MODERATION_AUDIT_ROTATE_BYTES": "1M"},
            "MODERATION_AUDIT_ROTATE_BYTES: applies only to a file audit log",
        ),
    ],
)
def test_bad_audit_settings_are_named(env, message):
    with pytest.raises(ConfigurationError, match=message) as caught:
        Settings.from_env(env)
    assert "k'" not in str(caught.value)  # the key's value is never echoed


def test_sizes_take_1024_based_suffixes():
    for text, size in (("4096", 4096), ("10k", 10240), ("2M", 2 << 20), ("1G", 1 << 30)):
        assert Settings.from_env({"MODERATION_AUDIT_ROTATE_BYTES": text}).audit_rotate_bytes == size


def test_a_file_spec_takes_key_and_rotation(tmp_path: Path):
    sink = audit_log_from_spec(str(tmp_path / "a.jsonl"), key="k", rotate_bytes=10)
    assert isinstance(sink, JsonlAuditLog) and sink.keyed and sink.rotate_bytes == 10


def test_records_keep_created_at_in_utc(tmp_path: Path):
    when = datetime(2024, 5, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    path = tmp_path / "a.jsonl"
    JsonlAuditLog(path).append(make_decision(1, created_at=when))
    [decision] = decisions(path)
    assert decision.created_at == when


def test_a_writer_with_another_key_checks_the_tail_for_itself(tmp_path: Path):
    # GIVEN two keyed writers built on an empty path, with different keys, in one process
    path = tmp_path / "audit.jsonl"
    first, second = JsonlAuditLog(path, key="one"), JsonlAuditLog(path, key="two")
    first.append(make_decision(1))
    # THEN the second does not extend the first's chain under another key
    with pytest.raises(ConfigurationError, match="does not verify"):
        second.append(make_decision(2))
    assert verify_log(path, key="one").ok
