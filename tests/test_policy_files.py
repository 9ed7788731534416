"""Reading a policy directory: a file that is there but cannot be read is an error, never a tenant
that silently falls out of the store; nothing outside the directory is followed; nothing blocks.
"""

from __future__ import annotations

import os
import pathlib
import threading

import pytest
from test_policy import DEFAULT, SMALL, write

from moderation.errors import PolicyError
from moderation.policy import PolicyStore


@pytest.fixture
def policy_dir(tmp_path) -> pathlib.Path:
    root = tmp_path / "policies"
    write(root / "default.yaml", DEFAULT)
    write(root / "tenants" / "kids.yaml", "categories:\n  Swimwear or Underwear: {reject: 70}\n")
    return root


def problems_in(root: pathlib.Path) -> list[tuple[str, str, str | None]]:
    with pytest.raises(PolicyError) as caught:
        PolicyStore(root)
    return [(p.file, p.message, p.hint) for p in caught.value.problems]


def test_a_dangling_symlink_is_an_error(policy_dir):
    link = policy_dir / "tenants" / "school.yaml"
    link.symlink_to(policy_dir / "tenants" / "gone.yaml")
    assert problems_in(policy_dir) == [
        (
            str(link),
            f"cannot read: a symbolic link to {str(policy_dir / 'tenants' / 'gone.yaml')!r}, "
            "which does not exist",
            "fix or remove the link",
        )
    ]


def test_a_directory_named_like_a_policy_is_an_error(policy_dir):
    (policy_dir / "tenants" / "school.yaml").mkdir()
    assert problems_in(policy_dir) == [
        (
            str(policy_dir / "tenants" / "school.yaml"),
            "cannot read: a directory, not a regular file",
            "a policy is one YAML file",
        )
    ]


def test_a_default_yaml_that_is_a_directory_is_an_error(tmp_path):
    (tmp_path / "default.yaml").mkdir()
    assert problems_in(tmp_path) == [
        (
            str(tmp_path / "default.yaml"),
            "cannot read: a directory, not a regular file",
            "a policy is one YAML file",
        )
    ]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_is_an_error_and_is_never_opened(policy_dir, opened):
    fifo = policy_dir / "tenants" / "pipe.yaml"
    os.mkfifo(fifo)
    opened.clear()
    result: list[object] = []
    # A blocking open of a FIFO with no writer never returns: run in a thread so that a regression
    # fails this test instead of hanging the suite.
    worker = threading.Thread(target=lambda: result.append(_problems_or_store(policy_dir)))
    worker.daemon = True
    worker.start()
    worker.join(60)
    assert result, "building the store blocked on the FIFO"
    assert result[0] == [
        (
            str(fifo),
            "cannot read: a FIFO (named pipe), not a regular file",
            "a policy is one YAML file",
        )
    ]
    assert fifo.resolve() not in opened


def _problems_or_store(root: pathlib.Path) -> object:
    try:
        return PolicyStore(root)
    except PolicyError as exc:
        return [(p.file, p.message, p.hint) for p in exc.problems]


def test_a_symlink_loop_is_an_error(policy_dir):
    a, b = policy_dir / "tenants" / "a.yaml", policy_dir / "tenants" / "b.yaml"
    a.symlink_to(b)
    b.symlink_to(a)
    found = problems_in(policy_dir)
    assert [(f, m.split(":")[0]) for f, m, _ in found] == [
        (str(a), "cannot read"),
        (str(b), "cannot read"),
    ]


def test_an_unreadable_file_is_an_error(policy_dir, monkeypatch):
    # The kernel's answer to a file its reader may not open, injected where it would come from
    # (chmod 0 cannot show it: tests run as root here, and root reads any file).
    import errno

    path = policy_dir / "tenants" / "kids.yaml"
    real_open = os.open

    def denied(name, flags, *args, **kwargs):
        if os.fspath(name) == str(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    assert problems_in(policy_dir) == [(str(path), "cannot read: permission denied", None)]


def test_a_tenants_link_out_of_the_directory_is_an_error(tmp_path, opened):
    root = tmp_path / "policies"
    write(root / "default.yaml", SMALL)
    elsewhere = tmp_path / "elsewhere"
    secret = write(elsewhere / "kids.yaml", "categories:\n  Gambling: allow\n")
    (root / "tenants").symlink_to(elsewhere)
    opened.clear()
    assert problems_in(root) == [
        (
            str(root / "tenants"),
            "refused: tenants/ resolves outside the policy directory",
            "keep the tenant files inside the policy directory",
        )
    ]
    assert secret.resolve() not in opened


def test_a_tenants_link_inside_the_directory_is_fine(tmp_path):
    root = tmp_path / "policies"
    write(root / "default.yaml", DEFAULT)
    write(root / "v2" / "kids.yaml", "{}\n")
    (root / "tenants").symlink_to(root / "v2")
    assert PolicyStore(root).tenants == ("kids",)


def test_a_tenants_file_that_is_not_a_directory_is_an_error(tmp_path):
    write(tmp_path / "default.yaml", SMALL)
    write(tmp_path / "tenants", "kids: {}\n")
    assert problems_in(tmp_path) == [
        (str(tmp_path / "tenants"), "tenants is not a directory", "tenant files go in tenants/")
    ]


def test_a_dangling_default_yaml_link_is_named_as_such(tmp_path):
    (tmp_path / "default.yaml").symlink_to(tmp_path / "nowhere.yaml")
    [(file, message, _)] = problems_in(tmp_path)
    assert file == str(tmp_path / "default.yaml")
    assert message.startswith("cannot read: a symbolic link to")


def test_problems_of_unreadable_files_come_with_the_others(policy_dir):
    (policy_dir / "tenants" / "school.yaml").mkdir()
    write(policy_dir / "tenants" / "typo.yaml", "categoris: {}\n")
    found = problems_in(policy_dir)
    assert sorted((pathlib.Path(f).name, m.split(":")[0]) for f, m, _ in found) == [
        ("school.yaml", "cannot read"),
        ("typo.yaml", "unknown key 'categoris'"),
    ]
