"""The reviewers file: checked on load with errors naming the file and the entry; `moderation
review reviewer add` writes only the token's hash, prints the token once, refuses a duplicate
name unless --rotate."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from clirunner import runner

from moderation.cli import main
from moderation.errors import ReviewError
from moderation.review import Role
from moderation.review._reviewers import (
    ReviewersFile,
    add_reviewer,
    load_reviewers,
    token_hash,
)

GOOD_HASH = "a" * 64


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_add_prints_the_token_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    # GIVEN no reviewers file yet
    path = tmp_path / "reviewers.yaml"
    # WHEN alice is added
    result = runner().invoke(
        main,
        ["review", "reviewer", "add", "alice", "--tenants", "kids,forum", "--role", "senior",
         "--reviewers", str(path)],
    )  # fmt: skip
    # THEN stdout is the token alone, and the file holds its hash, never the token
    assert result.exit_code == 0, result.stdout + result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n" and len(token) >= 43
    text = path.read_text()
    assert token not in text and token_hash(token) in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # AND the token finds alice with her tenants and role
    found = load_reviewers(path).by_token(token)
    assert found is not None
    reviewer, _ = found
    assert reviewer.name == "alice" and reviewer.tenants == frozenset({"kids", "forum"})
    assert reviewer.role is Role.SENIOR
    assert load_reviewers(path).by_token(token + "x") is None


def test_a_duplicate_name_is_refused_unless_rotated(tmp_path: Path) -> None:
    path = tmp_path / "reviewers.yaml"
    first = add_reviewer(path, "alice", ["kids"])
    add_reviewer(path, "bob", "*")
    # WHEN alice is added again
    result = runner().invoke(
        main, ["review", "reviewer", "add", "alice", "--tenants", "kids", "--reviewers", str(path)]
    )
    # THEN it is refused, naming --rotate, and her token still works
    assert result.exit_code == 2
    assert "already there" in result.stderr and "--rotate" in result.stderr
    assert result.stdout == ""
    assert load_reviewers(path).by_token(first) is not None
    # WHEN rotated: a new token, the old one stops working, bob is kept in place
    second = add_reviewer(path, "alice", ["forum"], rotate=True)
    reviewers = load_reviewers(path)
    assert reviewers.by_token(first) is None
    found = reviewers.by_token(second)
    assert found is not None and found[0].tenants == frozenset({"forum"})
    assert [e.name for e in reviewers.entries] == ["alice", "bob"]
    assert reviewers.entries[1].tenants == "*"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("reviewers: [{name: x, token_sha256: abc, tenants: [kids]}]",
         "entry 1 ('x'): token_sha256"),
        (f"reviewers: [{{name: x, token_sha256: {GOOD_HASH}, tenants: [Kids]}}]",
         "entry 1 ('x'): tenants: 'Kids' is not a tenant id"),
        (f"reviewers: [{{name: x, token_sha256: {GOOD_HASH}, tenants: kids}}]",
         "entry 1 ('x'): tenants: a list of tenant ids, or '*'"),
        (f"reviewers: [{{name: x, token_sha256: {GOOD_HASH}, tenants: '*', role: boss}}]",
         "entry 1 ('x'): role"),
        (f"reviewers: [{{name: x, token_sha256: {GOOD_HASH}, tenants: '*', tokn: 1}}]",
         "entry 1 ('x'): tokn"),
        (f"reviewers: [{{name: x, token_sha256: {GOOD_HASH}, tenants: '*'}},"
         f" {{name: x, token_sha256: {GOOD_HASH}, tenants: '*'}}]",
         "entry 2 ('x'): the name is already used"),
        ("- just a list", "must be a mapping with a `reviewers:` list"),
        ("reviewers: [", "not valid YAML"),
    ],
)  # fmt: skip
def test_a_bad_file_is_refused_naming_the_file_and_the_entry(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path / "reviewers.yaml", text)
    with pytest.raises(ReviewError) as caught:
        load_reviewers(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ReviewError, match=r"reviewers file .*nope\.yaml: cannot read it"):
        load_reviewers(tmp_path / "nope.yaml")


def test_the_file_is_read_again_when_it_changes_and_a_bad_change_keeps_the_old(
    tmp_path: Path,
) -> None:
    path = tmp_path / "reviewers.yaml"
    token = add_reviewer(path, "alice", ["kids"])
    watched = ReviewersFile(path)
    assert watched.current().by_token(token) is not None
    # WHEN bob is added while the server runs: he can log in without a restart
    bob = add_reviewer(path, "bob", ["kids"])
    assert watched.current().by_token(bob) is not None
    # WHEN the file is broken: the reviewers read before are kept
    write(path, "reviewers: [")
    assert watched.current().by_token(token) is not None


def test_the_cli_checks_tenants(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    result = runner().invoke(
        main, ["review", "reviewer", "add", "a", "--tenants", " , ", "--reviewers", str(path)]
    )
    assert result.exit_code == 2 and "--tenants" in result.stderr
    result = runner().invoke(
        main, ["review", "reviewer", "add", "a", "--tenants", "Kids", "--reviewers", str(path)]
    )
    assert result.exit_code == 2 and "'Kids' is not a tenant id" in result.stderr
    assert not path.exists()
