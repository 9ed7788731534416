"""What a user installs: the license, the sdist and wheel as built, and the starter policies."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest
from clirunner import runner
from packaging.requirements import Requirement
from packaging.version import Version

from moderation import PolicyStore
from moderation.cli import main
from moderation.errors import PolicyError
from moderation.policy._starter import starter_policies

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# The repository's sample policies, which the package ships as its starter policies.
SAMPLES = {
    str(p.relative_to(ROOT / "policies")): p.read_bytes()
    for p in sorted((ROOT / "policies").rglob("*.yaml"))
}
# setuptools reads an SPDX `license` string and `license-files` (PEP 639) from 77.0.0 on.
FIRST_SETUPTOOLS_WITH_PEP_639 = Version("77.0.0")


def test_the_license_is_apache_2_0_declared_as_spdx():
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:5] == ["Apache", "License", "Version", "2.0,", "January"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "APPENDIX: How to apply the Apache License to your work." in text
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]


def test_every_setuptools_the_build_system_allows_reads_the_spdx_license():
    [setuptools] = [
        Requirement(r)
        for r in PYPROJECT["build-system"]["requires"]
        if Requirement(r).name == "setuptools"
    ]
    # Any release below 77 that the specifier admits would refuse `license = "Apache-2.0"`.
    for older in ("68.0.0", "70.1.0", "76.1.0"):
        assert not setuptools.specifier.contains(older), older
    assert setuptools.specifier.contains(str(FIRST_SETUPTOOLS_WITH_PEP_639))


def _can_build() -> str | None:
    """Why the sdist and wheel cannot be built here offline, or None if they can."""
    if importlib.util.find_spec("build") is None:
        return "the `build` package is not installed (pip install -e '.[dev]' installs it)"
    installed = Version(version("setuptools"))
    if installed < FIRST_SETUPTOOLS_WITH_PEP_639:
        return f"setuptools {installed} is installed; building needs >= 77 (the [dev] extra)"
    return None


def _copy_tree(target: Path) -> None:
    """The files git would put in a fresh clone (tracked and new, not ignored), links kept."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source, dest = ROOT / name, target / name
        if not source.is_symlink() and not source.is_file():
            continue  # deleted in the work tree
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            dest.symlink_to(source.readlink())
        else:
            dest.write_bytes(source.read_bytes())


def test_the_sdist_and_the_wheel_built_from_it_hold_the_package_license_and_policies(
    tmp_path: Path,
):
    # Both make test venvs install the build tools (the [dev] extra, requirements/lowest.in): a
    # missing one is a broken install step, so it fails here rather than skipping the test.
    assert _can_build() is None, _can_build()
    # GIVEN a fresh clone's files WHEN `python -m build` builds, offline, the sdist and then the
    # wheel from the sdist, with the installed setuptools
    _copy_tree(tmp_path / "src")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path / "dist")],
        cwd=tmp_path / "src",
        capture_output=True,
        check=True,
    )
    [sdist] = (tmp_path / "dist").glob("*.tar.gz")
    [wheel] = (tmp_path / "dist").glob("*.whl")
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        in_sdist = {n.removeprefix(f"{top}/") for n in tar.getnames()}
        starter_in_sdist = {
            n.removeprefix(f"{top}/moderation/policy/starter/"): tar.extractfile(n).read()  # type: ignore[union-attr]
            for n in tar.getnames()
            if n.endswith(".yaml")
        }
    # THEN the sdist has the license and the starter policies, and no tests without fixtures
    assert {"LICENSE", "README.md", "pyproject.toml", "moderation/py.typed"} <= in_sdist
    assert not [n for n in in_sdist if n.startswith(("tests", "benchmarks"))]
    assert starter_in_sdist == SAMPLES
    # ... and the wheel has the license, declared as SPDX, and the starter policies as files
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        headers = whl.read(metadata).decode().split("\n\n")[0].splitlines()
        starter_in_wheel = {
            n.removeprefix("moderation/policy/starter/"): whl.read(n)
            for n in names
            if n.endswith(".yaml")
        }
        license_files = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    assert "License-Expression: Apache-2.0" in headers
    assert license_files
    assert starter_in_wheel == SAMPLES
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]
    # ... and the review page's templates, script and style sheet
    page = Path(__file__).resolve().parent.parent / "moderation/review/web"
    files = [*page.glob("templates/*.html"), *page.glob("static/*")]
    shipped = {str(p.relative_to(page.parent.parent.parent)) for p in files}
    assert shipped and shipped <= names and shipped <= in_sdist


# --------------------------------------------------------------------------- starter policies


def test_the_package_ships_the_sample_policies_as_its_starter_policies():
    assert starter_policies() == SAMPLES


def test_policy_init_writes_the_starter_policies_a_store_accepts(tmp_path: Path):
    target = tmp_path / "policies"
    result = runner().invoke(main, ["policy", "init", str(target)])
    assert result.exit_code == 0, result.output
    written = {str(p.relative_to(target)): p.read_bytes() for p in target.rglob("*.yaml")}
    assert written == SAMPLES
    assert PolicyStore(target).tenants == ("dating", "forum", "kids", "medical")
    assert f"moderation policy validate {target}" in result.stdout


def test_policy_init_refuses_to_overwrite_and_writes_nothing(tmp_path: Path):
    # GIVEN a directory holding a deployment's own kids policy
    (tmp_path / "tenants").mkdir()
    own = tmp_path / "tenants/kids.yaml"
    own.write_text("categories: {Violence: allow}\n")
    # WHEN init runs THEN it fails naming the file, and writes nothing at all
    result = runner().invoke(main, ["policy", "init", str(tmp_path)])
    assert result.exit_code == 1
    assert str(own) in result.stderr and "--force" in result.stderr
    assert own.read_text() == "categories: {Violence: allow}\n"
    assert sorted(p.name for p in tmp_path.rglob("*.yaml")) == ["kids.yaml"]
    # ... unless --force
    forced = runner().invoke(main, ["policy", "init", str(tmp_path), "--force"])
    assert forced.exit_code == 0, forced.output
    assert own.read_bytes() == SAMPLES["tenants/kids.yaml"]


@pytest.mark.parametrize("where", ["missing", "empty"])
def test_a_store_without_default_yaml_says_to_run_policy_init(tmp_path: Path, where: str):
    directory = tmp_path / "policies"
    if where == "empty":
        directory.mkdir()
    with pytest.raises(PolicyError) as caught:
        PolicyStore(directory)
    [problem] = caught.value.problems
    assert problem.hint is not None
    assert "`moderation policy init DIR` writes the starter policies" in problem.hint
    # ... and so does the command a new user runs first
    result = runner().invoke(main, ["policy", "validate", str(directory)])
    assert "moderation policy init DIR" in result.stdout + result.stderr
