"""The pytest plugin (`pytest11` entry point `moderation`): its fixtures in a pytest run of their
own, its declaration, and the README's golden-decision test file, which CI runs as written."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import moderation.engine

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "examples" / "golden" / "decisions.jsonl"
PLUGIN = "moderation.testing.pytest_plugin"


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Runs a test file in a pytest session of its own, with the plugin loaded by name.

    Autoloading is off in it: once the package is installed, the entry point would load the
    plugin a second time under its entry-point name. The module-level engine is put back after.
    """
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    before = moderation.engine._default

    def run(source: str) -> pytest.RunResult:
        pytester.makepyfile(test_inner=source)
        # This process imported the plugin already, so the inner session cannot rewrite its
        # asserts and says so; it has none.
        quiet = "ignore::pytest.PytestAssertRewriteWarning"
        return pytester.runpytest_inprocess("-p", PLUGIN, "-p", "no:cacheprovider", "-W", quiet)

    yield run
    moderation.configure(before)


def test_engine_from_log_installs_for_one_test_and_restores_the_engine_before(inner):
    result = inner(
        f"""
import hashlib
from pathlib import Path

import moderation
from moderation.engine import get_engine
from moderation.testing import offline_engine

BEFORE = offline_engine({{"default": "default: {{reject: 90}}\\n"}})
moderation.configure(BEFORE)
LANDSCAPE = Path({str(ROOT / "examples/images/landscape.png")!r})


def test_installed(engine_from_log):
    engine = engine_from_log({str(GOLDEN)!r}, {str(ROOT / "policies")!r}, install=True)
    assert get_engine() is engine
    decision = moderation.moderate(LANDSCAPE, tenant="kids")
    assert engine.audit.decisions == [decision]
    assert engine.detector.calls[0].sha256 == hashlib.sha256(LANDSCAPE.read_bytes()).hexdigest()


def test_installed_then_failing(engine_from_log):
    engine_from_log({str(GOLDEN)!r}, {str(ROOT / "policies")!r}, install=True)
    engine_from_log({str(GOLDEN)!r}, {str(ROOT / "policies")!r}, install=True)
    raise RuntimeError("the test fails: its engines are put back all the same")


def test_not_installed(engine_from_log):
    engine = engine_from_log({str(GOLDEN)!r}, {str(ROOT / "policies")!r})
    assert get_engine() is BEFORE
    assert engine.moderate(LANDSCAPE).outcome == "approved"


def test_after_them_the_engine_before_is_back():
    assert get_engine() is BEFORE
"""
    )
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*RuntimeError: the test fails*"])


def test_engine_from_log_fixture_passes_allow_other_model_and_audit(inner):
    result = inner(
        f"""
from moderation.testing import InMemoryAuditLog


def test_options(engine_from_log):
    audit = InMemoryAuditLog()
    engine = engine_from_log({str(GOLDEN)!r}, {str(ROOT / "policies")!r}, audit=audit,
                             allow_other_model=True)
    assert engine.audit is audit
    assert engine.judge.allow_other_model is True
"""
    )
    result.assert_outcomes(passed=1)


def test_assert_replay_fixture_is_the_function_and_fails_on_a_flip(inner, tmp_path):
    # Needs moderation.testing.assert_replay, which is built on another branch.
    flipped = tmp_path / "policies"
    (flipped / "tenants").mkdir(parents=True)
    (flipped / "default.yaml").write_text((ROOT / "policies/default.yaml").read_text())
    # The kids tenant stops rejecting swimwear: golden-0002 (beach.jpg, rejected) flips.
    kids = (ROOT / "policies/tenants/kids.yaml").read_text()
    rule = "Swimwear or Underwear: {reject: 70, escalate: 30}"
    assert rule in kids
    kids = kids.replace(rule, "Swimwear or Underwear: allow")
    (flipped / "tenants/kids.yaml").write_text(kids)
    result = inner(
        f"""
import pytest

from moderation.testing import assert_replay as function


def test_is_the_function(assert_replay):
    assert assert_replay is function


def test_the_golden_log_does_not_flip(assert_replay):
    assert_replay({str(GOLDEN)!r}, {str(ROOT / "policies")!r})


def test_a_flip_fails(assert_replay):
    with pytest.raises(AssertionError, match="golden-0002"):
        assert_replay({str(GOLDEN)!r}, {str(flipped)!r})


def test_an_allowed_flip_passes(assert_replay):
    assert_replay({str(GOLDEN)!r}, {str(flipped)!r}, allow=["golden-0002"])
"""
    )
    result.assert_outcomes(passed=4)


def test_the_plugin_imports_no_boto3_and_builds_nothing():
    code = (
        f"import sys, {PLUGIN}; "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')); "
        "assert loaded == [], loaded; "
        "import moderation.engine; assert moderation.engine._default is None"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_entry_point_is_declared_in_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"moderation": PLUGIN}


def test_the_entry_point_is_installed():
    # Passes once the package is (re)installed from this pyproject.toml.
    found = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    assert found.get("moderation") == PLUGIN


def test_the_readme_golden_block_is_the_test_file_ci_runs():
    # Bytes, not text: read_text would hide a line-ending difference.
    readme = (ROOT / "README.md").read_bytes().decode()
    section = readme.split("### Golden decisions", 1)[1]
    [block] = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], flags=re.S)
    assert block.encode() == (ROOT / "tests" / "test_golden_decisions.py").read_bytes()
