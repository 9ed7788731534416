"""`moderation check`: outcomes, exit codes, settings, and images that cannot be moderated."""

from __future__ import annotations

import json
from pathlib import Path

import builders
import pytest
from click.testing import CliRunner
from clirunner import runner

from moderation import Decision
from moderation.audit import decisions
from moderation.cli import main

ROOT = Path(__file__).resolve().parent.parent
POLICIES = str(ROOT / "policies")
IMAGES = ROOT / "examples/images"
RECORDINGS = str(ROOT / "examples/recordings")


def run(*args: str, env: dict[str, str] | None = None):
    return runner().invoke(main, list(args), catch_exceptions=False, env=env)


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    return builders.shipped_policies(tmp_path)


def check(*args: str, env: dict[str, str] | None = None):
    return run("check", "--offline", RECORDINGS, "--policies", POLICIES, *args, env=env)


def test_check_offline_all_approved_exits_0():
    result = check(str(IMAGES / "landscape.png"), str(IMAGES / "beach.jpg"))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[1:4] == ["approved", "by", "policy"]
    assert len(lines) == 2


def test_check_offline_not_approved_exits_1_and_shows_the_reason():
    result = check("--tenant", "kids", str(IMAGES / "beach.jpg"))
    assert result.exit_code == 1
    assert "rejected  by policy  rejected by policy: Female Swimwear or Underwear 96.4%" in (
        result.output
    )


def test_check_offline_goes_through_the_recorded_judge():
    result = check(str(IMAGES / "cartoon-fight.png"), "--json")
    decision = Decision.model_validate(json.loads(result.stdout)["decision"])
    assert (decision.outcome, decision.decided_by) == ("approved", "judge")
    assert decision.escalation is not None and decision.escalation.stop_reason == "tool_use"
    assert result.exit_code == 0


def test_check_offline_text_reply_from_the_judge_never_approves():
    result = check(str(IMAGES / "game-screenshot.png"), "--json")
    decision = Decision.model_validate(json.loads(result.stdout)["decision"])
    assert (decision.outcome, decision.decided_by) == ("review", "fallback")
    assert result.exit_code == 1


@pytest.mark.parametrize("name", ["notes.txt", "truncated.jpg", "tiny.png"])
def test_check_refuses_non_images_with_exit_3(name):
    result = check(str(IMAGES / name))
    assert result.exit_code == 3
    assert f"{IMAGES / name}: error:" in result.stderr


def test_check_image_without_a_recording_is_a_clear_error(tmp_path: Path):
    from PIL import Image

    path = tmp_path / "new.png"
    Image.new("RGB", (100, 100), (1, 2, 3)).save(path)
    result = check(str(path))
    assert result.exit_code == 3
    assert "no recorded DetectModerationLabels response for sha256" in result.stderr


def test_check_with_invalid_policies_exits_4(policies: Path):
    (policies / "tenants/kids.yaml").write_text("categories: [1]\n")
    result = run(
        "check", "--offline", RECORDINGS, "--policies", str(policies), str(IMAGES / "beach.jpg")
    )
    assert result.exit_code == 4


def test_check_context_and_jsonl_audit(tmp_path: Path):
    audit = tmp_path / "audit.jsonl"
    result = check(str(IMAGES / "beach.jpg"), "--context", "upload_id=u-9", "--audit", str(audit))
    assert result.exit_code == 0
    [decision] = decisions(audit)  # a chained log: a file header, then the decision
    assert decision.context == {"upload_id": "u-9"}


def test_check_rejects_a_malformed_context():
    result = CliRunner().invoke(main, ["check", "--context", "nokey", str(IMAGES / "beach.jpg")])
    assert result.exit_code == 2


def test_check_without_an_aws_region_is_a_clear_error(monkeypatch):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    result = run("check", "--policies", POLICIES, str(IMAGES / "beach.jpg"))
    # a configuration error (exit 2), not an image that could not be moderated (3)
    assert result.exit_code == 2
    assert "no AWS region: set MODERATION_REGION, AWS_REGION or AWS_DEFAULT_REGION" in result.stderr


def test_audit_records_go_to_stderr_by_default_so_stdout_stays_parseable():
    result = check(str(IMAGES / "beach.jpg"), "--json")
    assert result.exit_code == 0
    [printed] = result.stdout.splitlines()
    [audited] = [line for line in result.stderr.splitlines() if line.startswith("{")]
    assert json.loads(audited)["id"] == json.loads(printed)["decision"]["id"]


def test_a_path_that_does_not_exist_is_a_usage_error_exit_2(tmp_path: Path):
    # GIVEN one good image and one path that does not exist
    missing = tmp_path / "nope.jpg"
    # WHEN checked
    result = check(str(IMAGES / "beach.jpg"), str(missing))
    # THEN nothing is moderated and the exit is 2 (usage), not 1 (not approved) or 3
    assert result.exit_code == 2
    assert f"no such file: {missing}" in result.stderr
    assert result.stdout == ""


def test_an_unknown_tenant_is_a_usage_error_naming_the_tenants():
    result = check("--tenant", "kidz", str(IMAGES / "beach.jpg"))
    assert result.exit_code == 2
    assert "'kidz'" in result.stderr and "kids" in result.stderr
    assert result.stdout == ""


def test_an_unknown_tenant_gets_default_only_when_configured_and_says_so():
    result = check(
        "--tenant", "kidz", str(IMAGES / "beach.jpg"), "--json",
        env={"MODERATION_TENANT_FALLBACK": "default"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    decision = Decision.model_validate(json.loads(result.stdout)["decision"])
    assert decision.policy.id == "default" and decision.policy_fallback
    assert "tenant 'kidz' has no policy of its own" in decision.reasons[0]


def test_help_lists_the_exit_codes():
    result = run("check", "--help")
    assert result.exit_code == 0
    for line in (
        "0  every image approved",
        "1  at least one image rejected or sent to review",
        "2  usage error",
        "3  at least one image could not be moderated",
        "4  the policies are invalid",
    ):
        assert line in result.output


def test_bad_settings_are_a_usage_error_naming_every_variable():
    result = check(
        str(IMAGES / "beach.jpg"),
        env={"MODERATION_JUDGE": "claude", "MODERATION_AUDT": "stdout"},
    )
    assert result.exit_code == 2
    assert "MODERATION_JUDGE: must be bedrock or none, got 'claude'" in result.stderr
    assert "MODERATION_AUDT: not a setting of this library (did you mean MODERATION_AUDIT?)" in (
        result.stderr
    )


def test_check_builds_its_engine_from_the_same_settings_as_the_library(monkeypatch):
    # GIVEN the environment names a region and a custom moderation adapter
    from moderation.engine import Engine
    from moderation.errors import DetectorError

    seen = []

    def spy(cls, settings, **kwargs):
        seen.append(settings)
        raise DetectorError("stop here")

    monkeypatch.setattr(Engine, "from_settings", classmethod(spy))
    arn = "arn:aws:rekognition:eu-west-1:111122223333:project/p/version/v/1"
    # WHEN check runs without --region
    result = run(
        "check", "--policies", POLICIES, str(IMAGES / "beach.jpg"),
        env={"MODERATION_REGION": "eu-west-1", "MODERATION_PROJECT_VERSION": arn},
    )  # fmt: skip
    # THEN the engine is built from those settings
    assert result.exit_code == 3
    [settings] = seen
    assert (settings.region, settings.project_version) == ("eu-west-1", arn)


def test_aws_region_alone_is_honoured(monkeypatch, fake_aws_env):
    # GIVEN only AWS_REGION, as Lambda and container platforms set it (botocore ignores it)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    from moderation.settings import Settings

    settings = Settings.from_env({"AWS_REGION": "ap-southeast-2"})
    from moderation.engine import Engine

    engine = Engine.from_settings(settings)
    assert engine.detector.client.meta.region_name == "ap-southeast-2"  # type: ignore[attr-defined]


# -- S3 images that cannot be read --------------------------------------------------------------


def test_s3_failures_are_reported_and_the_next_images_still_run(s3, monkeypatch):
    # GIVEN a missing object, a missing bucket and a good local image after them
    from moderation.engine import Engine
    from moderation.testing.recorded import RecordedDetector, RecordedJudge, Recordings

    recorded = Recordings.load(RECORDINGS)
    build = Engine.from_settings.__func__  # type: ignore[attr-defined]

    def offline(cls, settings, **kwargs):
        engine = build(cls, settings, **kwargs)
        engine.detector = RecordedDetector(recorded)
        engine.judge = RecordedJudge(recorded)
        return engine

    monkeypatch.setattr(Engine, "from_settings", classmethod(offline))
    result = run(
        "check", "--policies", POLICIES,
        "s3://uploads/missing.jpg", "s3://no-such-bucket/a.jpg", str(IMAGES / "beach.jpg"),
    )  # fmt: skip
    # THEN each S3 failure is a one-line error, the local image is still moderated, exit 3
    assert result.exit_code == 3, result.output
    assert "s3://uploads/missing.jpg: error: s3 object not found" in result.stderr
    assert "s3://no-such-bucket/a.jpg: error: s3 object not found" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert f"{IMAGES / 'beach.jpg'}  approved" in result.stdout


def test_s3_without_credentials_is_an_error_line_not_a_traceback(fake_aws_env, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = run(
        "check", "--offline", RECORDINGS, "--policies", POLICIES,
        "s3://uploads/a.jpg", str(IMAGES / "beach.jpg"),
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert (
        "s3://uploads/a.jpg: error: s3 HeadObject for s3://uploads/a.jpg: no AWS credentials"
        in (result.stderr)
    )
    assert f"{IMAGES / 'beach.jpg'}  approved" in result.stdout
