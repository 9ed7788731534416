"""`moderation check` resumes only from audit records that verify: a forged line skips nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from test_cli_batch import IMAGES, RECORDINGS, lines, offline, outcome_of

from moderation.audit import encode_record, verify_log

SURGERY = IMAGES / "surgery.jpg"  # rejected under the default policy


def _forged_lines(audit: Path, key: str | None) -> list[bytes]:
    """What someone who can write the log but lacks its key inserts to make `check` skip
    surgery.jpg: its sha256 in a copy of an approved decision, as a bare line and as a chained
    record hashed under a guessed key."""
    lines_ = audit.read_bytes().splitlines(keepends=True)
    record = json.loads(lines_[1])
    decision = record["decision"]
    assert decision["outcome"] == "approved"
    decision["image"]["sha256"] = hashlib.sha256(SURGERY.read_bytes()).hexdigest()
    decision["id"] = "01JNF4W3A0T00BWNA9W1FF72QZ"
    bare = json.dumps(decision, separators=(",", ":")).encode() + b"\n"
    chained = encode_record(
        seq=record["seq"] + 1,
        prev=record["hash"],
        kind="decision",
        body_json=json.dumps(decision, separators=(",", ":")),
        key=b"a guess" if key is not None else None,
    )
    return [bare] if key is None else [bare, chained]


@pytest.mark.parametrize("key", ["the key", None], ids=["keyed", "unkeyed"])
def test_a_forged_line_in_the_audit_log_does_not_make_check_skip_an_image(
    tmp_path: Path, key: str | None, monkeypatch: pytest.MonkeyPatch
):
    if key is None:
        monkeypatch.delenv("MODERATION_AUDIT_KEY", raising=False)
    else:
        monkeypatch.setenv("MODERATION_AUDIT_KEY", key)
    audit = tmp_path / "audit.jsonl"
    # GIVEN a log of two approved images
    first = offline(RECORDINGS, str(IMAGES / "beach.jpg"), str(IMAGES / "couple.jpg"), "--audit",
                    str(audit))  # fmt: skip
    assert first.exit_code == 0, first.output
    # AND forged lines that claim surgery.jpg was approved, inserted after the first decision
    forged = _forged_lines(audit, key)
    original = audit.read_bytes().splitlines(keepends=True)
    audit.write_bytes(b"".join([*original[:2], *forged, *original[2:]]))
    assert not verify_log(audit, key=key).ok
    # WHEN surgery.jpg and beach.jpg are checked with that log
    result = offline(RECORDINGS, str(SURGERY), str(IMAGES / "beach.jpg"), "--audit", str(audit))
    # THEN surgery.jpg is moderated again (rejected), beach.jpg's verified record still skips it
    assert [outcome_of(line) for line in lines(result.stdout)] == [(str(SURGERY), "rejected")]
    assert result.exit_code == 1
    # AND the ignored lines are counted and named, with why
    n = len(forged)
    err = lines(result.stderr)
    plural = "line" if n == 1 else "lines"
    assert err[0].startswith(f"warning: resume ignores {n} {plural} of {audit} that do"), (
        result.stderr
    )
    assert f"  {audit}:3: line 3: a bare decision line, not a record" in err
    if key is not None:
        assert any(
            line.startswith(f"  {audit}:4: line 4: hash mismatch: the record was edited, or the "
                            "key is wrong")
            for line in err
        ), result.stderr  # fmt: skip
    assert f"  skipped: 1 already decided in {audit} under the same policy (1 approved)" in err
    verb = "does" if n == 1 else "do"
    assert (
        f"  ignored: {n} {plural} of {audit} that {verb} not verify, not trusted to skip an input"
        in err
    )
