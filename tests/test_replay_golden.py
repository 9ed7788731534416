"""Replay answers on a recorded mixed log exactly as it did when the log was made: every count,
flip, list and error of its reports, and the decision or error of every record.

The log, the policies and the answers are in tests/fixtures/replay_golden/ (tests/replay_golden.py
writes them). A change that makes replay faster must leave all of it alone; a change that means
to alter replay's answers rewrites `expected.json` and shows the difference in review.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from replay_golden import EXPECTED, LOG, answers

from moderation.audit import read_log
from moderation.audit._format import signed_prefix
from moderation.replay._source import items


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("golden") / "audit.jsonl"
    path.write_bytes(gzip.decompress(LOG.read_bytes()))
    return path


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    found: dict[str, Any] = json.loads(EXPECTED.read_text())
    return found


@pytest.fixture(scope="module")
def found(log: Path) -> dict[str, Any]:
    return answers(log)


def test_the_golden_log_holds_every_kind_of_case(expected: dict[str, Any]) -> None:
    now = expected["now"]
    assert now["flipped"] and now["needs_judgment"] and now["not_replayable"]
    assert now["reused_from_other_model"] and now["incomplete"] and now["error_count"]
    assert sum(1 for _, _, error in expected["records"] if error) == 7


@pytest.mark.parametrize("case", ["now", "then", "now_fallback", "now_kids_keep_2", "now_keep_0"])
def test_replay_reports_what_it_reported_when_the_log_was_made(
    found: dict[str, Any], expected: dict[str, Any], case: str
) -> None:
    assert found[case] == expected[case]


def test_strict_stops_at_the_same_record(found: dict[str, Any], expected: dict[str, Any]) -> None:
    assert found["strict"] == expected["strict"]


def test_every_record_reads_as_it_did(found: dict[str, Any], expected: dict[str, Any]) -> None:
    assert found["records"] == expected["records"]


def test_replay_reads_each_decision_as_read_log_does(log: Path) -> None:
    # Replay reads the writer's exact form straight into its Decision: the same Decision, and
    # the same error, as reading the whole record.
    for (_, line, decision, error), entry in zip(items(log), read_log(log), strict=True):
        assert (line, decision, error) == (entry.line, entry.decision, entry.error)


# --------------------------------------------------------------------------- the hash suffix


def old_signed_prefix(line: bytes) -> tuple[bytes, str] | None:
    """`signed_prefix` as it was before it looked at the line in place (the oracle)."""
    body = line.rstrip(b"\n")
    end = len(body) - len(b',"hash":"') - 64 - 2
    if end < 0 or body[end : end + 9] != b',"hash":"' or not body.endswith(b'"}'):
        return None
    stated = body[end + 9 : -2]
    if not re.fullmatch(rb"[0-9a-f]{64}", stated):
        return None
    return line[:end], stated.decode()


_SIGNED = b'{"audit":1}' + b',"hash":"' + b"0a" * 32 + b'"}'


@given(
    st.sampled_from([_SIGNED, _SIGNED + b"\n", _SIGNED + b"\n\n", b'"}\n', b""]),
    st.lists(st.tuples(st.integers(0, 200), st.sampled_from(b'0aA"},:h\n ')), max_size=3),
    st.integers(0, 3),
)
def test_signed_prefix_answers_as_it_did(
    base: bytes, edits: list[tuple[int, int]], cut: int
) -> None:
    line = bytearray(base[cut:])
    for at, byte in edits:
        if line and at % 2:
            line[at % len(line)] = byte
        else:
            line.insert(at % (len(line) + 1), byte)
    assert signed_prefix(bytes(line)) == old_signed_prefix(bytes(line))
    assert signed_prefix(_SIGNED + b"\n") == (_SIGNED[:-75], "0a" * 32)
