"""`moderation.testing.assert_replay`: passes on an unchanged log, fails with a readable table."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_replay import DEFAULT, KIDS, STRICTER, recorded_log, store, write_bare, write_chained

from moderation.decision import Decision
from moderation.replay import ReplayReport
from moderation.testing import assert_replay


@pytest.fixture(scope="module")
def log() -> dict[str, Decision]:
    return recorded_log()


def test_passes_when_nothing_flips_and_returns_the_report(log: dict[str, Decision]) -> None:
    report = assert_replay(list(log.values()), store(), allow=[log["F"].id])
    assert isinstance(report, ReplayReport)
    assert report.replayed == 6


def test_unexpected_flips_fail_with_a_table(log: dict[str, Decision]) -> None:
    with pytest.raises(AssertionError) as caught:
        assert_replay(list(log.values()), store(STRICTER), allow=[log["C"].id])
    message = str(caught.value)
    assert "2 decisions flipped:" in message
    lines = message.splitlines()
    header = next(line for line in lines if line.strip().startswith("id "))
    assert "tenant" in header and "before -> after" in header and "reason" in header
    row = next(line for line in lines if log["B"].id in line)
    assert "default" in row and "approved -> rejected" in row
    assert "Explicit Nudity 70.0% >= reject 60" in row
    assert "a judgment the log does not hold" not in message  # C is allowed


def test_allowed_flips_pass(log: dict[str, Decision]) -> None:
    allowed = [log["B"].id, log["F"].id, log["C"].id]
    assert assert_replay(list(log.values()), store(STRICTER), allow=allowed).flipped == 2


def test_needs_judgment_cases_fail_listed_apart(log: dict[str, Decision]) -> None:
    with pytest.raises(AssertionError) as caught:
        assert_replay(list(log.values()), store(STRICTER), allow=[log["B"].id, log["F"].id])
    message = str(caught.value)
    assert "1 decision needs a judgment the log does not hold" in message
    assert log["C"].id in message
    assert "flipped" not in message


def test_unreadable_records_and_tenants_without_policy_fail(
    tmp_path: Path, log: dict[str, Decision]
) -> None:
    from test_replay import CASES, record

    kids = record([CASES["A"]], policies=store(kids=KIDS), tenant="kids")
    path = write_bare(tmp_path / "audit.jsonl", [log["A"], *kids], [b"torn{"])
    with pytest.raises(AssertionError) as caught:
        assert_replay(path, store())
    message = str(caught.value)
    assert "2 records could not be replayed" in message
    assert f"{path}:2: decision {kids[0].id}: tenant 'kids'" in message
    assert f"{path}:3: torn" in message


def test_an_empty_source_fails(tmp_path: Path) -> None:
    empty = write_chained(tmp_path / "audit.jsonl", [])  # a file header, no decision
    with pytest.raises(AssertionError, match="nothing was checked"):
        assert_replay(empty, store())
    with pytest.raises(AssertionError, match="nothing was checked"):
        assert_replay([], store())


def test_the_tenant_filter_applies(log: dict[str, Decision]) -> None:
    with pytest.raises(AssertionError, match="of tenant 'kids'"):
        assert_replay(list(log.values()), store(DEFAULT), tenant="kids")
