"""Settings from the environment: defaults, every variable, and one error naming every bad one."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from moderation import Engine
from moderation.errors import ConfigurationError, UnknownTenant
from moderation.settings import ENV_VARS, VARIABLES, Settings, read_env

ROOT = Path(__file__).resolve().parent.parent


def test_a_fresh_deployment_gets_the_safe_defaults():
    assert Settings.from_env({}) == Settings(
        policies="policies",
        tenant_fallback=False,
        region=None,
        audit=None,
        project_version=None,
        judge="bedrock",
    )


def test_every_variable_is_read():
    arn = "arn:aws:rekognition:us-east-1:111122223333:project/p/version/v/1"
    settings = Settings.from_env(
        {
            "MODERATION_POLICIES": "/srv/policies",
            "MODERATION_TENANT_FALLBACK": "default",
            "MODERATION_REGION": "eu-west-1",
            "AWS_REGION": "us-east-1",
            "MODERATION_AUDIT": "/var/log/decisions.jsonl",
            "MODERATION_PROJECT_VERSION": arn,
            "MODERATION_JUDGE": "none",
        }
    )
    assert settings == Settings(
        "/srv/policies", True, "eu-west-1", "/var/log/decisions.jsonl", arn, "none"
    )


def test_aws_region_is_the_fallback_region():
    assert Settings.from_env({"AWS_REGION": "ap-south-1"}).region == "ap-south-1"


def test_every_bad_variable_is_named_in_one_error():
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(
            {
                "MODERATION_JUDGE": "gpt",
                "MODERATION_TENANT_FALLBACK": "kids",
                "MODERATION_PROJECT_VERSION": "my-adapter",
                "MODERATION_POLICY": "policies",
                "MODERATION_AUDIT": "  ",
                "MODERATION_STRICT_TENANTS": "0",
            }
        )
    text = str(caught.value)
    assert text.startswith("6 problems in the configuration:")
    for fragment in (
        "MODERATION_JUDGE: must be bedrock or none, got 'gpt'",
        "MODERATION_TENANT_FALLBACK: must be `default`",
        "MODERATION_PROJECT_VERSION: must be a Rekognition project version ARN",
        "MODERATION_POLICY: not a setting of this library (did you mean MODERATION_POLICIES?)",
        "MODERATION_AUDIT: is set but empty",
        "MODERATION_STRICT_TENANTS: no longer read",
    ):
        assert fragment in text


def test_the_old_strict_switch_set_to_one_is_accepted_as_the_default_it_now_is():
    assert Settings.from_env({"MODERATION_STRICT_TENANTS": "1"}) == Settings()


def test_options_override_single_fields():
    base = Settings.from_env({"MODERATION_REGION": "eu-west-1"})
    assert base.with_options(region=None, audit="stderr") == Settings(
        region="eu-west-1", audit="stderr"
    )


def _documented() -> dict[str, str]:
    """docs/configuration.md's table of variables: name -> its default column."""
    rows = {}
    for line in (ROOT / "docs/configuration.md").read_text().splitlines():
        match = re.fullmatch(r"\| `([A-Z0-9_]+)` \| .* \| (.*?) ?\|", line)
        if match:
            rows[match[1]] = match[2]
    return rows


def test_the_docs_table_lists_exactly_the_variables_read_with_their_defaults():
    documented = _documented()
    assert set(documented) == set(ENV_VARS)
    assert {v.name: v.default for v in VARIABLES} == documented


def test_the_variable_table_sets_every_settings_field():
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert {v.field for v in VARIABLES if v.field is not None} == fields


def test_every_bad_value_is_named_not_only_the_first():
    bad = {
        "MODERATION_POLICIES": "s3://Not_A_Bucket/x",
        "MODERATION_POLICIES_TTL": "0",
        "MODERATION_REGION": " ",
        "MODERATION_AUDIT_ROTATE_BYTES": "lots",
        "MODERATION_REKOGNITION_TPS": "inf",
        "MODERATION_BEDROCK_RPM": "-1",
        "MODERATION_DEDUPE": "dynamodb:x",
        "MODERATION_DEDUPE_TTL": "soon",
        "MODERATION_REVIEW_QUEUE_URL": "review-queue",
        "MODERATION_QUARANTINE_BUCKET": "s3://quarantine",
        "MODERATION_IDEMPOTENCY_TABLE": "t",
        "MODERATION_IDEMPOTENCY_TTL": "nan",
        "MODERATION_JUDGE_WORKERS": "0",
        "MODERATION_ESCALATION_QUEUE": "2.5",
    }
    reading = read_env(bad)
    assert reading.bad == set(bad)
    assert [p.split(":", 1)[0] for p in reading.problems] == sorted(bad)
    assert reading.settings == Settings()  # no bad value reaches a field
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(bad)
    assert caught.value.problems == reading.problems


def test_unknown_names_come_first_then_bad_values_by_name():
    problems = read_env(
        {"MODERATION_JUDGE": "gpt", "MODERATION_AUDITT": "x", "MODERATION_DEDUPE": "lru"}
    ).problems
    assert [p.split(":", 1)[0] for p in problems] == [
        "MODERATION_AUDITT", "MODERATION_DEDUPE", "MODERATION_JUDGE"
    ]  # fmt: skip


def test_a_file_log_option_beside_another_sink_names_the_option():
    reading = read_env({"MODERATION_AUDIT": "stdout", "MODERATION_AUDIT_ROTATE_BYTES": "1M"})
    assert reading.problems == (
        "MODERATION_AUDIT_ROTATE_BYTES: applies only to a file audit log, but MODERATION_AUDIT "
        "is 'stdout'",
    )


def test_an_unknown_tenant_raises_through_the_environment_engine(fake_aws_env):
    engine = Engine.from_env({"MODERATION_POLICIES": str(ROOT / "policies")})
    with pytest.raises(UnknownTenant, match="'kidz'"):
        engine.moderate(ROOT / "examples/images/beach.jpg", tenant="kidz")


def test_the_judge_stage_is_sized_from_the_environment():
    reading = read_env({"MODERATION_JUDGE_WORKERS": " 8 ", "MODERATION_ESCALATION_QUEUE": "32"})
    assert not reading.problems
    assert (reading.settings.judge_workers, reading.settings.escalation_queue) == (8, 32)
    assert (Settings().judge_workers, Settings().escalation_queue) == (64, 256)
    (problem,) = read_env({"MODERATION_ESCALATION_QUEUE": "lots"}).problems
    assert problem.startswith("MODERATION_ESCALATION_QUEUE:") and "whole number" in problem
