"""The command line, through click's runner: output and exit codes as documented."""

from __future__ import annotations

import json
from pathlib import Path

import builders
import pytest
from click.testing import CliRunner
from clirunner import runner

from moderation.cli import main
from moderation.decision import decision_schema
from moderation.policy import policy_schema

ROOT = Path(__file__).resolve().parent.parent
POLICIES = str(ROOT / "policies")
IMAGES = ROOT / "examples/images"
RECORDINGS = str(ROOT / "examples/recordings")


def run(*args: str):
    # Mixed: these tests read messages and results alike from `output`.
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    return builders.shipped_policies(tmp_path)


def test_validate_shipped_policies():
    result = run("policy", "validate", POLICIES)
    assert result.exit_code == 0, result.output
    assert "ok: default and 4 tenant policies valid" in result.output


def test_validate_names_file_line_key_and_suggestion_for_a_typo(policies: Path):
    kids = policies / "tenants/kids.yaml"
    kids.write_text(kids.read_text().replace("  Gambling:", "  Gamblign:"))
    line = (
        kids.read_text()
        .splitlines()
        .index(next(x for x in kids.read_text().splitlines() if x.startswith("  Gamblign:")))
        + 1
    )
    result = run("policy", "validate", str(policies))
    assert result.exit_code == 1
    assert (
        f"{kids}:{line}: categories.Gamblign: unknown category 'Gamblign' in taxonomy 7.0 "
        "(did you mean 'Gambling'?)"
    ) in result.output


def test_validate_prints_warnings_and_exits_0(policies: Path):
    (policies / "tenants/legacy.yaml").write_text("categories:\n  Suggestive: {escalate: 50}\n")
    result = run("policy", "validate", str(policies))
    assert result.exit_code == 0
    assert "warning:" in result.output and "'Suggestive' is a taxonomy 6.1 name" in result.output


def test_validate_missing_directory():
    result = run("policy", "validate", "/nonexistent/policies")
    assert result.exit_code == 1
    assert "policy directory not found" in result.output


def test_show_prints_the_resolved_policy_and_its_hash():
    result = run("policy", "show", "kids", "--policies", POLICIES)
    assert result.exit_code == 0
    body = json.loads(result.output)
    assert body["chain"] == ["kids", "default"]
    assert body["categories"]["Swimwear or Underwear"]["thresholds"]["reject"] == 70.0
    assert len(body["sha256"]) == 64


def test_validate_strict_makes_warnings_fatal(policies: Path):
    (policies / "tenants/legacy.yaml").write_text("categories:\n  Suggestive: {escalate: 50}\n")
    result = run("policy", "validate", "--strict", str(policies))
    assert result.exit_code == 1
    assert "warning:" in result.output and "'Suggestive' is a taxonomy 6.1 name" in result.output
    assert "error: 1 warning, and --strict makes warnings fatal" in result.output
    assert "ok:" not in result.output


def test_validate_strict_passes_a_clean_store():
    result = run("policy", "validate", "--strict", POLICIES)
    assert result.exit_code == 0, result.output
    assert "ok: default and 4 tenant policies valid" in result.output


@pytest.mark.parametrize("name", ["default.yaml", "tenants/kids.yaml"])
def test_validate_a_file_inside_a_store_checks_its_store(policies: Path, name: str):
    (policies / "tenants/forum.yaml").write_text("categories:\n  Gamblign: allow\n")
    result = run("policy", "validate", str(policies / name))
    assert result.exit_code == 1
    assert f"{policies / 'tenants/forum.yaml'}:2: categories.Gamblign: unknown category" in (
        result.output
    )


def test_validate_a_draft_outside_any_store_on_top_of_the_policies(tmp_path: Path):
    # GIVEN a new tenant drafted in /tmp, whose reject falls below the inherited escalate (60)
    draft = tmp_path / "newtenant.yaml"
    draft.write_text("extends: forum\ncategories:\n  Violence:\n    reject: 50\n")
    result = run("policy", "validate", "--policies", POLICIES, str(draft))
    # THEN the merge with its parent is checked, and the problem is shown in the draft's file
    assert result.exit_code == 1
    assert (
        f"{draft}:4: categories.Violence.reject: escalate 80 is above reject 50 in policy "
        "'newtenant' after merging"
    ) in result.output


def test_validate_a_valid_draft(tmp_path: Path, monkeypatch):
    draft = tmp_path / "newtenant.yaml"
    draft.write_text("extends: kids\ndescription: a new tenant\n")
    monkeypatch.setenv("MODERATION_POLICIES", POLICIES)
    result = run("policy", "validate", str(draft))
    assert result.exit_code == 0, result.output
    assert f"ok: {draft} valid as tenant 'newtenant' on top of {POLICIES}" in result.output


def test_validate_a_draft_that_extends_nothing_known(tmp_path: Path):
    draft = tmp_path / "newtenant.yaml"
    draft.write_text("extends: kidz\n")
    result = run("policy", "validate", "--policies", POLICIES, str(draft))
    assert result.exit_code == 1
    assert f"{draft}:1: extends: extends 'kidz', but there is no such policy" in result.output


def test_validate_several_paths_at_once(policies: Path, tmp_path: Path):
    draft = tmp_path / "x.yaml"
    draft.write_text("min_confidence: 300\n")
    result = run("policy", "validate", "--policies", POLICIES, POLICIES, str(draft))
    assert result.exit_code == 1
    assert "ok: default and 4 tenant policies valid" in result.output
    assert f"{draft}:1: min_confidence: must be a number from 0 to 100, got 300" in result.output


def test_validate_a_path_that_does_not_exist():
    result = run("policy", "validate", "/nonexistent/x.yaml")
    assert result.exit_code == 1
    assert "/nonexistent/x.yaml: no such file or directory" in result.output


def test_show_an_unknown_tenant_is_an_error():
    result = run("policy", "show", "kidz", "--policies", POLICIES)
    assert result.exit_code == 1
    assert "no policy for tenant 'kidz'" in result.output
    assert "did you mean 'kids'?" in result.output


def test_show_an_unknown_tenant_with_fallback_notes_the_fallback():
    result = runner().invoke(
        main, ["policy", "show", "kidz", "--policies", POLICIES, "--fallback-to-default"]
    )
    assert result.exit_code == 0
    assert "note: no policy file for 'kidz'; it falls back to 'default'" in result.stderr
    assert json.loads(result.stdout)["id"] == "default"


def test_try_an_unknown_tenant_is_an_error_unless_falling_back():
    example = str(ROOT / "examples/detections/beach-swimwear.json")
    result = run("policy", "try", "--policies", POLICIES, "--tenant", "kidz", example)
    assert result.exit_code == 1
    assert "no policy for tenant 'kidz'" in result.output
    result = run(
        "policy",
        "try",
        "--policies",
        POLICIES,
        "--tenant",
        "kidz",
        "--fallback-to-default",
        example,
    )
    assert result.exit_code == 0
    assert "kidz (default)" in result.output


def test_show_refuses_a_bad_tenant_id():
    result = run("policy", "show", "../etc", "--policies", POLICIES)
    assert result.exit_code == 1
    assert "invalid tenant id" in result.output


@pytest.mark.parametrize(
    ("args", "committed", "build"),
    [
        ((), "docs/policy.schema.json", policy_schema),
        (("--decision",), "docs/decision.schema.json", decision_schema),
    ],
)
def test_schemas_are_committed_and_current(args, committed, build):
    result = run("policy", "schema", *args)
    assert json.loads(result.output) == build()
    assert json.loads((ROOT / committed).read_text()) == build(), (
        f"regenerate {committed}: moderation policy schema {' '.join(args)} > {committed}"
    )


def test_shipped_policies_validate_against_the_json_schema():
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    for path in [ROOT / "policies/default.yaml", *(ROOT / "policies/tenants").glob("*.yaml")]:
        jsonschema.validate(yaml.safe_load(path.read_text()), policy_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"categories": {"Violence": {"rejct": 5}}}, policy_schema())


def test_try_prints_a_table_per_example_and_tenant():
    result = run(
        "policy",
        "try",
        "--policies",
        POLICIES,
        str(ROOT / "examples/detections/beach-swimwear.json"),
    )
    assert result.exit_code == 0
    rows = {line.split()[1]: line.split()[2] for line in result.output.splitlines()[2:] if line}
    assert rows == {
        "default": "approve",
        "dating": "approve",
        "forum": "approve",
        "kids": "reject",
        "medical": "approve",
    }


def test_try_reports_a_malformed_response(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"ModerationLabels": [{"Name": "X", "Confidence": "high"}]}')
    result = run("policy", "try", "--policies", POLICIES, str(bad))
    assert result.exit_code == 1
    assert "ModerationLabels[0].Confidence" in result.output
