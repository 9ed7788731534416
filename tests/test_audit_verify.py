"""verify_log: every kind of change to a chained log is found, at the right file and line."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from test_audit_log import make_decision, write_log

from moderation.audit import (
    AuditRecord,
    JsonlAuditLog,
    encode_record,
    parse_head,
    parse_line,
    verify_log,
)
from moderation.audit._verify import read_head
from moderation.errors import ConfigurationError

Lines = list[bytes]


def _lines(path: Path) -> Lines:
    return path.read_bytes().splitlines(keepends=True)


def _forge(line: bytes, *, key: bytes | None = None, **changes: object) -> bytes:
    """The record on `line` re-encoded (and re-hashed) with `changes`: what an attacker who knows
    the format writes."""
    record = parse_line(line)
    assert isinstance(record, AuditRecord)
    body = json.loads(line)[record.kind]
    fields = {"seq": record.seq, "prev": record.prev, **changes}
    return encode_record(
        seq=int(fields["seq"]),  # type: ignore[call-overload]
        prev=str(fields["prev"]),
        kind=record.kind,
        body_json=json.dumps(fields.get("body", body), separators=(",", ":")),
        key=key,
    )


def _edit(lines: Lines) -> Lines:
    lines[3] = lines[3].replace(b'"outcome":"approved"', b'"outcome":"rejected"')
    return lines


def _edit_and_rehash(lines: Lines) -> Lines:
    body = json.loads(lines[3])["decision"]
    body["outcome"] = "rejected"
    lines[3] = _forge(lines[3], body=body)
    return lines


def _delete(lines: Lines) -> Lines:
    del lines[3]
    return lines


def _insert_copy(lines: Lines) -> Lines:
    lines.insert(3, lines[2])
    return lines


def _insert_forged(lines: Lines) -> Lines:
    previous = parse_line(lines[2])
    assert isinstance(previous, AuditRecord)
    lines.insert(3, _forge(lines[2], seq=previous.seq + 1, prev=previous.hash))
    return lines


def _insert_bare(lines: Lines) -> Lines:
    lines.insert(3, make_decision(99).model_dump_json().encode() + b"\n")
    return lines


def _reorder(lines: Lines) -> Lines:
    lines[3], lines[4] = lines[4], lines[3]
    return lines


def _delete_header(lines: Lines) -> Lines:
    return lines[1:]


def _garbage(lines: Lines) -> Lines:
    lines.insert(2, b"hello\n")
    return lines


def _move_header(lines: Lines) -> Lines:
    lines.insert(4, lines.pop(0))
    return lines


# (change, 1-based line of the first failure, what the message says)
TAMPERING: list[tuple[Callable[[Lines], Lines], int, str]] = [
    (_edit, 4, "hash mismatch: the record was edited"),
    (_edit_and_rehash, 5, "prev does not match the hash of the record before it (line 4"),
    (_delete, 4, "seq 5 follows seq 3: 1 record is missing (deleted, or moved?)"),
    (_insert_copy, 4, "seq 3 follows seq 3: a repeated or earlier record"),
    (_insert_forged, 5, "seq 4 follows seq 4: a repeated or earlier record"),
    (_insert_bare, 4, "a bare decision line, not a chained record"),
    (_reorder, 4, "seq 5 follows seq 3: 1 record is missing"),
    (_delete_header, 1, "does not start with a file header"),
    (_garbage, 3, "not a record: not JSON"),
    (_move_header, 1, "does not start with a file header"),
]


@pytest.mark.parametrize("deep", [False, True], ids=["bytes", "deep"])
@pytest.mark.parametrize(
    ("change", "line", "message"), TAMPERING, ids=[t[0].__name__.strip("_") for t in TAMPERING]
)
def test_every_change_is_found_at_its_line(tmp_path: Path, change, line, message, deep):
    # GIVEN a log (header + 6 decisions) that verifies
    path = tmp_path / "audit.jsonl"
    write_log(path, 6)
    assert verify_log(path, deep=deep).ok
    # WHEN it is changed
    path.write_bytes(b"".join(change(_lines(path))))
    # THEN verify names the file and line of the first bad record, and what is wrong, whether
    # it checks only the bytes, seq and prev or also validates every decision
    report = verify_log(path, deep=deep)
    assert not report.ok
    assert (report.failure_file, report.failure_line) == (path, line), report.failure
    assert message in (report.failure or ""), report.failure
    assert report.failure is not None and report.failure.startswith(f"line {line}:")
    assert report.summary().startswith(f"FAILED at {path}:{line}: ")
    assert not report.crash_tail


def test_whole_records_cut_off_the_end_are_found_only_against_an_anchored_head(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 6)
    head = verify_log(path)
    older = parse_line(_lines(path)[4])
    assert isinstance(older, AuditRecord)
    # the head and an older record are both in the chain, by hash or seq:hash
    for anchor in (head.last_hash, f"{head.last_seq}:{head.last_hash}", older.hash):
        assert verify_log(path, head=anchor).head_found
    path.write_bytes(b"".join(_lines(path)[:-2]))
    assert verify_log(path).ok  # a clean cut at a record boundary keeps a valid chain...
    report = verify_log(path, head=f"{head.last_seq}:{head.last_hash}")
    assert not report.ok  # ...that no longer reaches the anchored head
    assert "is not in the chain: the log was truncated before it, or rewritten" in (
        report.failure or ""
    )
    assert verify_log(path, head=older.hash).ok  # the older anchor is still there


def test_a_head_at_the_wrong_seq_fails(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    last = verify_log(path)
    report = verify_log(path, head=f"1:{last.last_hash}")
    assert not report.ok and f"is record seq {last.last_seq}, not seq 1" in (report.failure or "")


@pytest.mark.parametrize("text", ["abc", "0:" + "a" * 64, "x:" + "a" * 64, "a" * 63])
def test_bad_heads_are_refused(text):
    with pytest.raises(ValueError, match="head"):
        parse_head(text)


# -- keyed logs ---------------------------------------------------------------------------------


def test_a_keyed_log_rehashed_with_plain_sha256_fails(tmp_path: Path):
    # GIVEN a keyed log, and an attacker without the key who edits a decision and recomputes
    # every hash of the chain with plain SHA-256
    path = tmp_path / "audit.jsonl"
    write_log(path, 3, key="k")
    forged: Lines = []
    prev = "0" * 64
    for line in _lines(path):
        record = parse_line(line)
        assert isinstance(record, AuditRecord)
        body = json.loads(line)[record.kind]
        if record.kind == "decision":
            body["outcome"] = "rejected"
        new = encode_record(
            seq=record.seq,
            prev=prev,
            kind=record.kind,
            body_json=json.dumps(body, separators=(",", ":")),
            key=None,
        )
        forged.append(new)
        prev = json.loads(new)["hash"]
    path.write_bytes(b"".join(forged))
    assert verify_log(path).ok  # a plain chain, consistent in itself
    # THEN verifying it as the keyed log it must be fails at its first record
    report = verify_log(path, key="k")
    assert not report.ok and report.failure_line == 1
    assert "a sha256 record in a keyed log" in (report.failure or "")


def test_a_keyed_log_fails_under_a_wrong_key_and_asks_for_a_missing_one(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 2, key="right")
    assert verify_log(path, key="right").ok
    wrong = verify_log(path, key="wrong")
    assert wrong.failure_line == 1 and "the key is wrong" in (wrong.failure or "")
    missing = verify_log(path)
    assert missing.failure_line == 1
    assert "needs the key (set MODERATION_AUDIT_KEY" in (missing.failure or "")


def test_an_edit_in_a_keyed_log_cannot_be_rehashed_without_the_key(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 3, key="k")
    lines = _lines(path)
    body = json.loads(lines[2])["decision"]
    body["outcome"] = "rejected"
    lines[2] = _forge(lines[2], key=b"guess", body=body)
    path.write_bytes(b"".join(lines))
    report = verify_log(path, key="k")
    assert report.failure_line == 3 and "hash mismatch" in (report.failure or "")


# -- torn records -------------------------------------------------------------------------------


def _torn_log(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    with path.open("ab") as fh:
        fh.write(b'{"audit":1,"seq":4,"prev":"')  # a writer died here
    JsonlAuditLog(path).append(make_decision(3))
    return path


def test_a_set_aside_torn_line_is_a_warning(tmp_path: Path):
    path = _torn_log(tmp_path)
    report = verify_log(path)
    assert report.ok, report.summary()
    assert report.warnings == (f"{path}: line 4: torn record of 27 bytes, set aside by line 5",)
    assert "1 warning" in report.summary()


def test_torn_bytes_changed_after_they_were_set_aside_fail(tmp_path: Path):
    path = _torn_log(tmp_path)
    lines = _lines(path)
    lines[3] = lines[3].replace(b"prev", b"PREV")
    path.write_bytes(b"".join(lines))
    report = verify_log(path)
    assert report.failure_line == 4
    assert "the torn note on line 5 does not match it: sha256 differs" in (report.failure or "")


def test_a_torn_note_with_nothing_torn_before_it_fails(tmp_path: Path):
    path = _torn_log(tmp_path)
    lines = _lines(path)
    del lines[3]  # the torn line goes; its note stays
    path.write_bytes(b"".join(lines))
    report = verify_log(path)
    assert report.failure_line == 4
    assert "a torn note for line 4, but no torn line comes right before it" in (
        report.failure or ""
    )


# -- rotated files ------------------------------------------------------------------------------


def _rotated(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    write_log(path, 12, rotate_bytes=6000)
    assert len(list(tmp_path.glob("audit.jsonl.*[0-9]"))) >= 4
    return path


def test_a_rotated_log_verifies_across_its_files(tmp_path: Path):
    path = _rotated(tmp_path)
    report = verify_log(path)
    assert report.ok and report.decisions == 12
    assert report.files[-1] == path and report.files[0].name == "audit.jsonl.1"
    # a rotated file named directly is read alone; its header's predecessor is then missing
    alone = verify_log(tmp_path / "audit.jsonl.2")
    assert not alone.ok and "audit.jsonl.1, which was not read" in (alone.failure or "")


def test_a_deleted_middle_file_is_named(tmp_path: Path):
    path = _rotated(tmp_path)
    (tmp_path / "audit.jsonl.2").unlink()
    report = verify_log(path)
    assert report.failure_file == tmp_path / "audit.jsonl.3" and report.failure_line == 1
    assert "continues audit.jsonl.2, but the file read before it is audit.jsonl.1" in (
        report.failure or ""
    )
    assert "audit.jsonl.2 is missing (deleted?)" in (report.failure or "")


def test_deleted_oldest_files_are_named(tmp_path: Path):
    path = _rotated(tmp_path)
    (tmp_path / "audit.jsonl.1").unlink()
    report = verify_log(path)
    assert report.failure_file == tmp_path / "audit.jsonl.2"
    assert re.search(r"continues audit\.jsonl\.1, which was not read", report.failure or "")


# -- deep: every body validated too ---------------------------------------------------------------


def test_only_deep_fails_a_chained_record_whose_decision_does_not_validate(tmp_path: Path):
    # GIVEN a record whose hash and link verify but whose decision is not a valid Decision
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    lines = _lines(path)
    body = json.loads(lines[-1])["decision"]
    body["outcome"] = "maybe"
    lines[-1] = _forge(lines[-1], body=body)
    path.write_bytes(b"".join(lines))
    # THEN the chain verifies (integrity needs only the bytes, seq and prev)
    assert verify_log(path).ok
    # AND --deep names the record whose decision does not validate
    deep = verify_log(path, deep=True)
    assert not deep.ok and deep.failure_line == 4
    assert "not a valid audit record: decision.outcome" in (deep.failure or ""), deep.failure


# -- a log pruned under a retention policy, verified from a recorded head ------------------------


def _pruned(tmp_path: Path, keep_from: int) -> tuple[Path, str]:
    """A rotated log whose head was recorded after 12 decisions, 6 more appended, then its
    rotated files before `audit.jsonl.<keep_from>` deleted: the path and the head."""
    path = _rotated(tmp_path)
    head = str(parse_head(f"{read_head(path).record.seq}:{read_head(path).record.hash}"))
    log = JsonlAuditLog(path, fsync=False, rotate_bytes=6000)
    for i in range(100, 106):
        log.append(make_decision(i))
    for old in tmp_path.glob("audit.jsonl.*[0-9]"):
        if int(old.suffix[1:]) < keep_from:
            old.unlink()
    return path, head


def test_a_pruned_log_verifies_from_a_head_recorded_before_the_pruning(tmp_path: Path):
    # GIVEN a head recorded, more appends, and the oldest three rotated files deleted
    path, head = _pruned(tmp_path, keep_from=4)
    # THEN the plain verify fails on the missing files, and verifying from the head passes
    assert "audit.jsonl.3, which was not read" in (verify_log(path).failure or "")
    report = verify_log(path, head=head, pruned=True)
    assert report.ok, report.summary()
    assert report.head_found and report.first_seq > 1
    assert report.files[0].name == "audit.jsonl.4"
    assert "audit.jsonl.3 and the files before it are not here (pruned)" in report.warnings[0]
    assert f"verified from seq {report.first_seq} (older files pruned)" in report.summary()


def test_a_head_that_is_the_last_record_of_a_pruned_file_anchors_the_next_one(tmp_path: Path):
    path, _ = _pruned(tmp_path, keep_from=3)
    boundary = read_head(tmp_path / "audit.jsonl.3")  # the record audit.jsonl.4 continues from
    anchor = f"{boundary.record.seq}:{boundary.record.hash}"
    (tmp_path / "audit.jsonl.3").unlink()
    report = verify_log(path, head=anchor, pruned=True)
    assert report.ok and report.head_found, report.summary()
    assert report.first_seq == boundary.record.seq + 1


def test_a_tampered_record_after_the_head_fails(tmp_path: Path):
    path, head = _pruned(tmp_path, keep_from=4)
    lines = _lines(path)
    lines[-1] = lines[-1].replace(b'"outcome":"approved"', b'"outcome":"rejected"')
    path.write_bytes(b"".join(lines))
    report = verify_log(path, head=head, pruned=True)
    assert not report.ok and report.failure_file == path
    assert "hash mismatch: the record was edited" in (report.failure or "")


def test_a_head_that_does_not_match_fails_naming_it(tmp_path: Path):
    path, head = _pruned(tmp_path, keep_from=4)
    seq = parse_head(head).seq
    wrong = f"{seq}:{'ab' * 32}"
    report = verify_log(path, head=wrong, pruned=True)
    assert not report.ok
    assert f"head {wrong} does not match: record seq {seq} has hash" in (report.failure or "")


def test_a_head_in_a_file_that_was_pruned_too_fails_naming_it(tmp_path: Path):
    # GIVEN the recorded head lies in a file the retention deleted, with files after it
    path, _ = _pruned(tmp_path, keep_from=2)
    early = read_head(tmp_path / "audit.jsonl.2")
    anchor = f"{early.record.seq}:{early.record.hash}"
    for name in ("audit.jsonl.2", "audit.jsonl.3"):
        (tmp_path / name).unlink()
    report = verify_log(path, head=anchor, pruned=True)
    assert not report.ok and report.failure_file == tmp_path / "audit.jsonl.4"
    assert f"head {anchor} is in a pruned file" in (report.failure or ""), report.failure


def test_a_pruned_log_still_fails_on_a_missing_middle_file(tmp_path: Path):
    path, head = _pruned(tmp_path, keep_from=4)
    (tmp_path / "audit.jsonl.5").unlink()
    report = verify_log(path, head=head, pruned=True)
    assert not report.ok
    assert "audit.jsonl.5 is missing (deleted?)" in (report.failure or ""), report.failure


def test_a_pruned_verify_needs_a_head_with_its_seq(tmp_path: Path):
    path = _rotated(tmp_path)
    with pytest.raises(ValueError, match="SEQ:HASH"):
        verify_log(path, head="ab" * 32, pruned=True)


def test_a_missing_log_is_an_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no such audit log"):
        verify_log(tmp_path / "nothing.jsonl")


def test_a_log_cut_mid_record_is_an_unrepaired_crash_tail_not_tampering(tmp_path: Path):
    # GIVEN a log whose last record was cut short (a writer killed mid-record, no writer since)
    path = tmp_path / "audit.jsonl"
    write_log(path, 6)
    path.write_bytes(b"".join([*_lines(path)[:6], _lines(path)[6][:100]]))
    report = verify_log(path)
    # THEN it is not ok, but named for what it is: a crash tail, everything before it verified
    assert not report.ok and report.crash_tail
    assert (report.failure_file, report.failure_line) == (path, 7)
    assert report.failure is not None and report.failure.startswith(
        "line 7: unrepaired crash tail: a torn record of 100 bytes after the last record"
    )
    assert report.summary().startswith(f"UNREPAIRED CRASH TAIL at {path}:7: ")
    assert (report.records, report.last_seq) == (6, 6)
    # AND a head the log no longer reaches is still the failure (not the crash tail)
    lost = json.loads(_lines(path)[5])["hash"]
    write_log(tmp_path / "other.jsonl", 1)
    other = verify_log(tmp_path / "other.jsonl").last_hash
    assert verify_log(path, head=lost).crash_tail
    with_head = verify_log(path, head=other)
    assert not with_head.crash_tail and "is not in the chain" in (with_head.failure or "")
    # AND a complete line a writer would not set aside is no crash tail (the writer refuses it)
    path.write_bytes(b"".join(_lines(path)[:6]) + b'{"not":"a record"}\n')
    assert not verify_log(path).crash_tail
    with pytest.raises(ConfigurationError):
        JsonlAuditLog(path)


def _joined(path: Path, n: int) -> tuple[int, bytes]:
    """The log's last `n` lines joined into one line without its final newline: what erases
    them if a writer takes it for a crash's torn tail. Returns where they start, and them."""
    lines = _lines(path)
    start = len(b"".join(lines[:-n]))
    joined = b"".join(line.rstrip(b"\n") for line in lines[-n:])
    path.write_bytes(b"".join(lines[:-n]) + joined)
    return start, joined


def test_records_joined_into_a_torn_looking_tail_are_tampering_and_no_writer_repairs_it(
    tmp_path: Path,
):
    # GIVEN a keyed log whose last 700 records were joined into one line with no final newline
    path = tmp_path / "audit.jsonl"
    log = JsonlAuditLog(path, key="k", fsync=False)
    for i in range(705):
        log.append(make_decision(i))
    first = len(_lines(path)[6]) - 1  # where the second joined record will start
    _joined(path, 700)
    before = path.read_bytes()
    # THEN verify fails it as tampering, not as a crash tail
    report = verify_log(path, key="k")
    assert not report.ok and not report.crash_tail
    assert report.failure == (
        f"line 7: {len(path.read_bytes().splitlines()[6])} bytes after the last record that a "
        f"crash cannot leave (line 7 holds 700 records starting on one line (the second at byte "
        f"{first} of them)): a crash leaves at most one partial record, so records were hidden "
        "here (tampering: lines joined into one)"
    )
    # AND no writer sets it aside: a new one refuses the log, and one that had the log open
    # refuses to append (the decision is not made), leaving the file as it was
    with pytest.raises(
        ConfigurationError, match=r"hold 700 records starting on one line .* tampering"
    ):
        JsonlAuditLog(path, key="k")
    with pytest.raises(ConfigurationError, match="refusing to append"):
        log.append(make_decision(999))
    assert path.read_bytes() == before
    # AND the same with its final newline kept (a complete line that is no record)
    small = tmp_path / "small.jsonl"
    write_log(small, 8, key="k")
    _joined(small, 5)
    small.write_bytes(small.read_bytes() + b"\n")
    with pytest.raises(ConfigurationError, match="a crash leaves at most one partial record"):
        JsonlAuditLog(small, key="k")
    assert not verify_log(small, key="k").crash_tail


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (0, "holds a whole audit record (seq 4) at byte 0 of them"),  # whole, not the next link
        (1, "holds 3 records starting on one line"),  # their closing braces cut too
    ],
    ids=["one-whole-record-out-of-place", "closing-bytes-cut"],
)
def test_a_tail_that_a_crash_cannot_leave_is_refused(tmp_path: Path, cut: int, message: str):
    path = tmp_path / "audit.jsonl"
    write_log(path, 5)
    lines = _lines(path)
    if cut:  # the last 3 records joined, each without its closing `}` either
        tail = b"".join(line.rstrip(b"\n")[:-cut] for line in lines[-3:])
        path.write_bytes(b"".join(lines[:-3]) + tail)
    else:  # a copy of record seq 4 at the end, without its newline: whole, but not the next link
        path.write_bytes(b"".join(lines) + lines[3].rstrip(b"\n"))
    report = verify_log(path)
    assert not report.ok and not report.crash_tail
    assert message in (report.failure or "")
    with pytest.raises(ConfigurationError, match="refusing to append"):
        JsonlAuditLog(path)


def test_a_torn_note_that_sets_aside_whole_records_fails_verify(tmp_path: Path):
    # GIVEN a keyed log that an earlier version repaired after records were joined: a chained
    # torn note, made with the key, sets the joined line aside
    path = tmp_path / "audit.jsonl"
    write_log(path, 10, key="k")
    lines = _lines(path)
    base = parse_line(lines[-4])
    assert isinstance(base, AuditRecord)
    start, joined = _joined(path, 3)
    note = {
        "line": 9,
        "offset": start,
        "length": len(joined),
        "sha256": hashlib.sha256(joined).hexdigest(),
        "found_at": "2025-03-01T09:13:02.649819Z",
    }
    record = encode_record(
        seq=base.seq + 1, prev=base.hash, kind="torn", body_json=json.dumps(note), key=b"k"
    )
    with path.open("ab") as fh:
        fh.write(b"\n" + record)
    # THEN verify fails: a crash never leaves whole records for a note to set aside
    report = verify_log(path, key="k")
    assert not report.ok and report.failure_line == 9
    assert (
        "set aside as a torn record by the torn note on line 10, but line 9 holds 3 records "
        in (report.failure or "")
    )
    # AND a note over a real partial record still passes, with its warning
    path.write_bytes(b"".join(lines[:-3]) + lines[-3][:60])
    JsonlAuditLog(path, key="k").append(make_decision(50))
    repaired = verify_log(path, key="k")
    assert repaired.ok and repaired.warnings == (
        f"{path}: line 9: torn record of 60 bytes, set aside by line 10",
    )


def test_an_edit_before_a_set_aside_torn_line_is_the_failure(tmp_path: Path):
    path = _torn_log(tmp_path)
    lines = _lines(path)
    lines[1] = lines[1].replace(b'"approved"', b'"rejected"')
    path.write_bytes(b"".join(lines))
    report = verify_log(path)
    assert report.failure == "line 2: hash mismatch: the record was edited after it was written"


def test_the_verifier_docs_audit_md_shows_in_plain_python_agrees(tmp_path: Path):
    # docs/audit.md shows a reader in another language how to verify; it must stay true
    text = (Path(__file__).resolve().parent.parent / "docs/audit.md").read_text()
    match = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert match is not None
    namespace: dict[str, object] = {}
    exec(compile(match.group(1), "docs/audit.md", "exec"), namespace)
    verify = namespace["verify"]
    path = tmp_path / "audit.jsonl"
    write_log(path, 4, key="k")
    verify(_lines(path), b"k")  # type: ignore[operator]
    lines = _lines(path)
    del lines[2]
    with pytest.raises(AssertionError, match="deleted, inserted or moved"):
        verify(lines, b"k")  # type: ignore[operator]
    with pytest.raises(AssertionError, match="edited"):
        verify(_lines(path), b"wrong")  # type: ignore[operator]
