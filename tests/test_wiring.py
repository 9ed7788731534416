"""Settings -> engine parts, shared by `Engine.from_env`, the CLI and the Lambda: every problem
found before anything is raised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moderation import Engine
from moderation.errors import ConfigurationError, PolicyError
from moderation.settings import Settings
from moderation.wiring import engine_parts, parts_from_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def aws(fake_aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")


def test_a_bad_variable_does_not_hide_policies_that_do_not_exist(aws, tmp_path: Path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigurationError) as caught:
        Engine.from_env({"MODERATION_JUDGE": "gpt", "MODERATION_POLICIES": str(missing)})
    assert caught.value.problems == (
        "MODERATION_JUDGE: must be bedrock or none, got 'gpt'",
        f"MODERATION_POLICIES: {missing}: policy directory not found"
        " (a store needs default.yaml: `moderation policy init DIR` writes the starter"
        " policies there)",
    )
    assert isinstance(caught.value.__cause__, PolicyError)


def test_policies_that_are_all_that_is_wrong_raise_the_policy_error(aws, tmp_path: Path):
    with pytest.raises(PolicyError, match="policy directory not found"):
        Engine.from_env({"MODERATION_POLICIES": str(tmp_path / "nowhere")})


def test_a_part_whose_variable_is_bad_is_not_built_from_a_default(aws, tmp_path: Path):
    # A bad MODERATION_POLICIES must not be replaced by ./policies and reported as missing.
    with pytest.raises(ConfigurationError) as caught:
        parts_from_env({"MODERATION_POLICIES": "s3://Not_A_Bucket/p"})
    [problem] = caught.value.problems
    assert problem.startswith("MODERATION_POLICIES: must be s3://bucket/prefix")


def test_parts_that_cannot_be_built_are_named_together(aws, monkeypatch, tmp_path: Path):
    # A logging sink nobody listens to, and a region-less AWS client: both found in one pass.
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    settings = Settings(policies=str(ROOT / "policies"), audit="log", judge="none")
    with pytest.raises(ConfigurationError) as caught:
        engine_parts(settings)
    audit, region = caught.value.problems
    assert audit.startswith("MODERATION_AUDIT=log: ") and "moderation.audit" in audit
    assert "no AWS region" in region


def test_an_audit_directory_that_does_not_exist_joins_the_bad_variables(aws, tmp_path: Path):
    log = tmp_path / "no-such-dir" / "audit.jsonl"
    env = {
        "MODERATION_POLICIES": str(ROOT / "policies"),
        "MODERATION_AUDIT": str(log),
        "MODERATION_BEDROCK_RPM": "fast",
    }
    with pytest.raises(ConfigurationError) as caught:
        Engine.from_env(env)
    rpm, audit = caught.value.problems
    assert (
        rpm
        == "MODERATION_BEDROCK_RPM: must be a positive number of requests per minute, got 'fast'"
    )
    assert audit.startswith(f"MODERATION_AUDIT: audit log {log}: the directory")


def test_the_environment_engine_is_built_from_the_shared_parts(aws, tmp_path: Path):
    env = {
        "MODERATION_POLICIES": str(ROOT / "policies"),
        "MODERATION_REGION": "eu-west-1",
        "MODERATION_AUDIT": str(tmp_path / "audit.jsonl"),
        "MODERATION_DEDUPE": "memory:5",
        "MODERATION_REKOGNITION_TPS": "7",
    }
    settings, parts = parts_from_env(env)
    engine = Engine.from_parts(parts)
    assert engine.policies is parts.policies
    assert engine.audit is parts.audit
    assert engine.cache is parts.cache
    assert engine.intake is parts.intake
    assert parts.rekognition_tps == settings.rekognition_tps == 7.0


# -- the CLI reads the environment through the same table -----------------------------------


def _cli(monkeypatch: pytest.MonkeyPatch, *args: str, **env: str):
    from clirunner import runner

    from moderation.cli import main

    for name in [n for n in __import__("os").environ if n.startswith("MODERATION_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runner().invoke(main, list(args))


def test_a_bad_policies_variable_stops_a_policy_command_with_its_reason(monkeypatch):
    result = _cli(monkeypatch, "policy", "show", "default", MODERATION_POLICIES="s3://Bad_Bucket/p")
    assert result.exit_code == 2
    assert "MODERATION_POLICIES: must be s3://bucket/prefix with a valid bucket name" in (
        result.stderr
    )


def test_a_policy_command_is_not_failed_by_a_variable_it_does_not_read(monkeypatch):
    result = _cli(
        monkeypatch,
        "policy",
        "show",
        "default",
        MODERATION_POLICIES=str(ROOT / "policies"),
        MODERATION_JUDGE="gpt",
    )
    assert result.exit_code == 0, result.stderr


def test_replay_live_reads_the_judge_setting_from_the_same_table(monkeypatch, tmp_path: Path):
    log = tmp_path / "audit.jsonl"
    log.write_text("")
    result = _cli(
        monkeypatch,
        "replay", str(log), "--policies", str(ROOT / "policies"), "--live",
        "--max-judge-calls", "1", "--images", str(tmp_path),
        MODERATION_JUDGE="none", MODERATION_DEDUPE="lru",
    )  # fmt: skip
    assert result.exit_code == 2
    # Every bad variable, not the judge setting alone
    assert "MODERATION_DEDUPE: must be memory" in result.stderr


def test_check_builds_its_engine_through_the_shared_wiring(monkeypatch, fake_aws_env):
    # GIVEN the wiring's detector replaced: what the engine, the CLI and the Lambda all build
    from moderation import wiring
    from moderation.testing import StaticDetector

    monkeypatch.setattr(wiring, "detector", lambda settings: StaticDetector([("Explicit", 96.5)]))
    # WHEN a command moderates an image
    result = _cli(
        monkeypatch,
        "check", "--json", "--policies", str(ROOT / "policies"),
        str(ROOT / "examples/images/beach.jpg"),
        MODERATION_JUDGE="none", MODERATION_AUDIT="stderr",
    )  # fmt: skip
    # THEN it decided with that detector
    assert result.exit_code == 1, result.stderr
    [line] = result.stdout.splitlines()
    assert json.loads(line)["decision"]["outcome"] == "rejected"
