"""The Lambda build command of docs/deploy.md, run offline the way it runs; and the `lambda` extra.

pip is given the command's own platform, implementation, Python version and binary-only flags, and
the lock as constraints, over a local directory of wheels named exactly as the locked binary
dependencies publish them for arm64 (their files cannot be fetched offline; see PUBLISHED).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_wheel_filename
from pip._internal.utils.compatibility_tags import get_supported

ROOT = Path(__file__).resolve().parent.parent

# The locked dependencies with compiled code that `.[lambda]` installs, and the file name of the
# wheel each publishes on PyPI for CPython on Linux arm64 at that version (the names were read with
# `pip download --no-deps --only-binary=:all: --platform manylinux_2_28_aarch64 --platform
# manylinux2014_aarch64` on 2026-12-07; the cp311 names, here for cp313, the Lambda runtime).
# pydantic-core publishes only a manylinux2014 arm64 glibc wheel: the file behind the failure of
# the old command, which named only manylinux_2_28.
# A lock change fails test_the_table_is_of_the_locked_versions until this table is updated.
PUBLISHED = {
    "pydantic-core": "pydantic_core-2.50.4-cp313-cp313-"
    "manylinux2014_aarch64.manylinux_2_17_aarch64.whl",
    "pillow": "pillow-13.0.0-cp313-cp313-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl",
    "pyyaml": "pyyaml-6.0.3-cp313-cp313-"
    "manylinux2014_aarch64.manylinux_2_17_aarch64.manylinux_2_28_aarch64.whl",
}


def build_command() -> list[str]:
    """The `pip install --target build/lambda ...` of docs/deploy.md, split as the shell does."""
    text = (ROOT / "docs/deploy.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    [block] = [b for b in blocks if "--target build/lambda" in b]
    joined = block.replace("\\\n", " ")
    [line] = [ln for ln in joined.splitlines() if "--target build/lambda" in ln]
    return shlex.split(line)


def option(command: list[str], name: str) -> list[str]:
    """Every value given to `name` (as `--name value` or `--name=value`)."""
    found = []
    for i, word in enumerate(command):
        if word == name:
            found.append(command[i + 1])
        elif word.startswith(f"{name}="):
            found.append(word.split("=", 1)[1])
    return found


def admitted(command: list[str]) -> set[Tag]:
    """The wheel tags pip accepts under the command's flags: pip's own tag logic."""
    [version] = option(command, "--python-version")
    [impl] = option(command, "--implementation")
    supported = get_supported(
        version=version.replace(".", ""), platforms=option(command, "--platform"), impl=impl
    )
    return {Tag(t.interpreter, t.abi, t.platform) for t in supported}


def locked() -> dict[str, str]:
    text = (ROOT / "requirements/lock.txt").read_text()
    return {
        canonicalize_name(n): v
        for n, v in re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", text, re.M)
    }


def test_the_table_is_of_the_locked_versions():
    pins = locked()
    for name, filename in PUBLISHED.items():
        assert str(parse_wheel_filename(filename)[1]) == pins[name], name


def test_the_command_is_binary_only_for_the_lambda_runtime():
    command = build_command()
    assert command[:4] == ["python", "-m", "pip", "install"]
    assert option(command, "--only-binary") == [":all:"]
    assert option(command, "--python-version") == ["3.13"]
    assert option(command, "-c") == ["requirements/lock.txt"]
    assert command[-1] == ".[lambda]"


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_the_commands_platforms_admit_every_locked_binary_wheel(name: str):
    tags = parse_wheel_filename(PUBLISHED[name])[3]
    assert tags & admitted(build_command()), f"pip would refuse {PUBLISHED[name]}"


def test_manylinux_2_28_alone_refuses_pydantic_core():
    # The defect the command had: pip does not widen manylinux_2_28 to the older manylinux2014.
    only_2_28 = ["--platform", "manylinux_2_28_aarch64", "--implementation", "cp"]
    tags = parse_wheel_filename(PUBLISHED["pydantic-core"])[3]
    assert not tags & admitted([*only_2_28, "--python-version", "3.13"])


def _fake_wheel(directory: Path, filename: str) -> None:
    """A wheel with this file name and just enough metadata for pip to resolve it."""
    name, version, _, tags = parse_wheel_filename(filename)
    project = filename.split("-")[0]
    info = f"{project}-{version}.dist-info"
    with zipfile.ZipFile(directory / filename, "w") as whl:
        whl.writestr(
            f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
        tag_lines = "".join(f"Tag: {t}\n" for t in sorted(map(str, tags)))
        whl.writestr(
            f"{info}/WHEEL",
            f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: false\n{tag_lines}",
        )
        whl.writestr(f"{info}/RECORD", "")


def test_pip_resolves_the_locked_binaries_with_the_commands_flags(tmp_path: Path):
    # GIVEN the published arm64 wheels in a local directory, and pip with no configuration
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for filename in PUBLISHED.values():
        _fake_wheel(wheels, filename)
    command = build_command()
    flags = [
        *[f"--platform={p}" for p in option(command, "--platform")],
        *[f"--implementation={i}" for i in option(command, "--implementation")],
        *[f"--python-version={v}" for v in option(command, "--python-version")],
        "--only-binary=:all:",
        f"--constraint={ROOT / option(command, '-c')[0]}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # no mirror, no cap, no find-links of this machine
    # WHEN pip installs them as the command would (a dry run, offline)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index",
         "--disable-pip-version-check", f"--find-links={wheels}",
         "--target", str(tmp_path / "lambda"), *flags, *PUBLISHED],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    # THEN every one is taken, at the locked version
    assert done.returncode == 0, done.stderr
    would = re.search(r"Would install (.*)", done.stdout)
    assert would is not None, done.stdout
    pins = locked()
    taken = {canonicalize_name(w.rsplit("-", 1)[0]): w.rsplit("-", 1)[1] for w in would[1].split()}
    assert taken == {name: pins[name] for name in PUBLISHED}


def test_importing_the_lambda_package_without_its_extra_says_how_to_install_it():
    # GIVEN an interpreter in which aws_lambda_powertools cannot be imported
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'aws_lambda_powertools':
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
try:
    import moderation.aws_lambda
except ImportError as exc:
    print(type(exc).__name__, exc.name, '|', exc)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert "pip install 'moderation[lambda]'" in out.stdout
    assert out.stdout.startswith("ImportError aws_lambda_powertools |")
