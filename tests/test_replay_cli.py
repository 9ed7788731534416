"""`moderation replay`: text and --json output, exit codes, --shadow, --strict, --tenant."""

from __future__ import annotations

import json
from pathlib import Path

import builders
import pytest
from clirunner import runner
from test_replay import (
    DEFAULT,
    KIDS,
    STRICTER,
    recorded_log,
    shadow,
    write_bare,
    write_chained,
)

from moderation.cli import main
from moderation.decision import Decision, Outcome
from moderation.triage import Action


def policies(tmp_path: Path, default: str = DEFAULT, **tenants: str) -> Path:
    """A policy directory under `tmp_path`: DEFAULT (or `default`) and the `tenants`."""
    return builders.policies_dir(tmp_path, default, **tenants)


@pytest.fixture(scope="module")
def log() -> dict[str, Decision]:
    return recorded_log()


@pytest.fixture
def log_path(tmp_path: Path, log: dict[str, Decision]) -> Path:
    return write_chained(tmp_path / "audit.jsonl", log.values(), [b"not json\n"])


def test_text_report(tmp_path: Path, log_path: Path, log: dict[str, Decision]) -> None:
    result = runner().invoke(
        main, ["replay", str(log_path), "--policies", str(policies(tmp_path, STRICTER))]
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    out = result.stdout
    assert "replayed 6 of 6 decisions" in out
    assert "flipped 2" in out and "needs judgment 1" in out
    assert "approved -> rejected" in out and "review -> rejected" in out
    assert log["B"].id in out and log["F"].id in out and log["C"].id in out
    assert f"{log_path}:8: not JSON" in out  # after the header and six decisions
    assert result.stderr == ""


def test_json_report_keys(tmp_path: Path, log_path: Path, log: dict[str, Decision]) -> None:
    result = runner().invoke(
        main,
        ["replay", str(log_path), "--policies", str(policies(tmp_path, STRICTER)), "--json"],
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)  # one object, nothing else on stdout
    assert data["total"] == 6
    assert data["flipped"] == 2
    assert {(f["id"], f["tenant"], f["before"], f["after"]) for f in data["flips"]} == {
        (log["B"].id, "default", "approved", "rejected"),
        (log["F"].id, "default", "review", "rejected"),
    }
    assert all(f["reasons"] and f["category"] == "Explicit" for f in data["flips"])
    assert data["needs_judgment"] == 1
    assert data["needs_judgment_ids"] == [log["C"].id]
    assert data["matrix"]["approved"]["needs_judgment"] == 1
    assert data["errors"] == [
        {"file": str(log_path), "line": 8, "message": data["errors"][0]["message"]}
    ]
    assert data["errors"][0]["message"].startswith("not JSON")


def test_fail_on_flip(tmp_path: Path, log_path: Path) -> None:
    flipping = ["replay", str(log_path), "--policies", str(policies(tmp_path, STRICTER))]
    assert runner().invoke(main, [*flipping, "--fail-on-flip"]).exit_code == 1
    assert runner().invoke(main, flipping).exit_code == 0
    same = ["replay", str(log_path), "--policies", str(policies(tmp_path / "same"))]
    assert runner().invoke(main, [*same, "--fail-on-flip"]).exit_code == 0


def test_strict_names_file_and_line(tmp_path: Path, log_path: Path) -> None:
    result = runner().invoke(
        main,
        ["replay", str(log_path), "--policies", str(policies(tmp_path)), "--strict"],
    )
    assert result.exit_code == 3
    assert f"{log_path}:8: not JSON" in result.stderr
    assert result.stdout == ""


def test_a_log_that_does_not_exist_exits_3(tmp_path: Path) -> None:
    result = runner().invoke(
        main, ["replay", str(tmp_path / "nope.jsonl"), "--policies", str(policies(tmp_path))]
    )
    assert result.exit_code == 3
    assert "nope.jsonl" in result.stderr


def test_invalid_policies_exit_4_with_every_problem(tmp_path: Path, log_path: Path) -> None:
    bad = policies(tmp_path, "min_confidence: 400\ndefault: {reject: 90}\n")
    result = runner().invoke(main, ["replay", str(log_path), "--policies", str(bad)])
    assert result.exit_code == 4
    assert "default.yaml:1: min_confidence:" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--policies DIR is required"),
        (["--policies", "P", "--live"], "--live needs --max-judge-calls"),
        (["--policies", "P", "--max-judge-calls", "3"], "only apply with --live"),
        (["--shadow", "--live", "--max-judge-calls", "1"], "--live cannot be used with --shadow"),
        (["--policies", "P", "--keep", "-1"], "-1"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path, log_path: Path, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODERATION_POLICIES", raising=False)
    args = [str(policies(tmp_path)) if a == "P" else a for a in args]
    result = runner().invoke(main, ["replay", str(log_path), *args])
    assert result.exit_code == 2
    assert message in result.stderr


def test_policies_from_the_environment(
    tmp_path: Path, log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODERATION_POLICIES", str(policies(tmp_path, STRICTER)))
    result = runner().invoke(main, ["replay", str(log_path), "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["flipped"] == 2


def test_tenant_filter_and_several_paths(tmp_path: Path, log: dict[str, Decision]) -> None:
    from test_replay import CASES, record, store

    kids = record([CASES["A"]], policies=store(kids=KIDS), tenant="kids")
    first = write_bare(tmp_path / "a.jsonl", log.values())
    second = write_chained(tmp_path / "b.jsonl", kids)
    result = runner().invoke(
        main,
        [
            "replay", str(first), str(second),
            "--policies", str(policies(tmp_path, STRICTER, kids=KIDS)),
            "--tenant", "kids", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["total"], data["tenant"], data["records_read"]) == (1, "kids", 6 + 2)


def test_shadow(tmp_path: Path, log: dict[str, Decision]) -> None:
    decisions = [
        shadow(log["B"], "strict", Action.REJECT, Outcome.REJECTED, reasons=("Explicit 70",)),
        shadow(log["C"], "strict", Action.ESCALATE, None),
        log["A"],
    ]
    path = write_chained(tmp_path / "audit.jsonl", decisions)
    result = runner().invoke(main, ["replay", str(path), "--shadow", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    strict = data["shadows"]["strict"]
    assert strict["total"] == 2 and strict["flipped"] == 1
    assert strict["flips"][0]["id"] == log["B"].id
    assert strict["needs_judgment_ids"] == [log["C"].id]
    text = runner().invoke(main, ["replay", str(path), "--shadow", "--fail-on-flip"])
    assert text.exit_code == 1
    assert "shadow policy strict" in text.stdout and "approved -> rejected" in text.stdout
    plain = write_chained(tmp_path / "plain.jsonl", [log["A"]])
    none = runner().invoke(main, ["replay", str(plain), "--shadow", "--fail-on-flip"])
    assert none.exit_code == 0
    assert "no shadow results" in none.stdout


def test_help_lists_the_exit_codes() -> None:
    result = runner().invoke(main, ["replay", "--help"])
    assert result.exit_code == 0
    assert "--fail-on-flip" in result.stdout and "4  the policies are invalid" in result.stdout
