"""Policies in a directory: `default.yaml` and `tenants/*.yaml`, read with care for what a
filesystem can hold (links out of the directory, FIFOs, devices)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from moderation.errors import PolicyError, Problem
from moderation.policy._model import DEFAULT_POLICY
from moderation.policy._yaml import MAX_POLICY_BYTES
from moderation.policy.sources._snapshot import Entry, Snapshot, files_version

__all__ = ["DirectorySource", "read_dir", "read_file"]


def _open_nonblocking(path: str, flags: int) -> int:
    # Should the file be swapped for a FIFO between the stat and the open, the open still returns.
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def _not_regular(mode: int) -> str | None:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return None if stat.S_ISREG(mode) else "not a regular file"


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def read_file(path: Path, shown: str) -> bytes | Problem:
    """The first MAX_POLICY_BYTES + 1 bytes of a policy file, or why it cannot be read.

    The type is checked with os.stat before anything is opened: opening a FIFO for reading waits
    for a writer, for ever.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return Problem(
                shown,
                "",
                f"cannot read: a symbolic link to {os.readlink(path)!r}, which does not exist",
                "fix or remove the link",
            )
        return Problem(shown, "", "cannot read: the file does not exist")
    except OSError as exc:
        return Problem(shown, "", f"cannot read: {_reason(exc)}")
    kind = _not_regular(st.st_mode)
    if kind is not None:
        return Problem(
            shown, "", f"cannot read: {kind}, not a regular file", "a policy is one YAML file"
        )
    try:
        with open(path, "rb", opener=_open_nonblocking) as fh:
            kind = _not_regular(os.fstat(fh.fileno()).st_mode)
            if kind is not None:
                return Problem(
                    shown,
                    "",
                    f"cannot read: {kind}, not a regular file",
                    "a policy is one YAML file",
                )
            return fh.read(MAX_POLICY_BYTES + 1)  # a bound on what we read; read_yaml names excess
    except OSError as exc:
        return Problem(shown, "", f"cannot read: {_reason(exc)}")


def _tenant_files(root: Path, tenants: Path) -> list[Path] | Problem:
    """The policy files in `tenants/`, or why that directory cannot be used."""
    if not os.path.lexists(tenants):
        return []
    shown = str(tenants)
    try:
        real = tenants.resolve()
    except (OSError, RuntimeError):  # a loop of links
        return Problem(shown, "", "cannot read tenants/: a loop of symbolic links")
    if not real.is_relative_to(root.resolve()):
        return Problem(
            shown,
            "",
            "refused: tenants/ resolves outside the policy directory",
            "keep the tenant files inside the policy directory",
        )
    try:
        st = os.stat(tenants)
    except FileNotFoundError:
        return Problem(
            shown,
            "",
            f"tenants is a symbolic link to {os.readlink(tenants)!r}, which does not exist",
        )
    except OSError as exc:
        return Problem(shown, "", f"cannot read tenants/: {_reason(exc)}")
    if not stat.S_ISDIR(st.st_mode):
        return Problem(shown, "", "tenants is not a directory", "tenant files go in tenants/")
    try:
        return sorted(p for p in tenants.iterdir() if p.suffix in (".yaml", ".yml"))
    except OSError as exc:
        return Problem(shown, "", f"cannot read tenants/: {_reason(exc)}")


def read_dir(root: Path) -> dict[str, Entry]:
    """`default.yaml` and `tenants/*.yaml|yml` of a policy directory, each read or refused."""
    resolved_root = root.resolve()
    found: dict[str, Entry] = {}
    default = root / "default.yaml"
    candidates = [default]
    listing = _tenant_files(root, root / "tenants")
    if isinstance(listing, Problem):
        found["\0tenants"] = (listing.file, listing)
    else:
        candidates += listing
    for p in candidates:
        shown = str(p)
        name = DEFAULT_POLICY if p == default else p.stem
        if name in found:
            found[f"{name}\0{p.suffix}"] = (
                shown,
                Problem(shown, "", f"a second file for '{name}'", "keep one of .yaml/.yml"),
            )
            continue
        if not os.path.lexists(p):
            if p == default:
                found[name] = (shown, Problem(shown, "", "default.yaml not found"))
            continue
        try:
            inside = p.resolve().is_relative_to(resolved_root)
        except (OSError, RuntimeError):  # a loop of links
            found[name] = (shown, Problem(shown, "", "cannot read: a loop of symbolic links"))
            continue
        if not inside:
            found[name] = (
                shown,
                Problem(shown, "", "refused: the file resolves outside the policy directory"),
            )
            continue
        found[name] = (shown, read_file(p, shown))
    return found


class DirectorySource:
    """`default.yaml` and `tenants/*.yaml` in a directory; the version is a digest of the files
    read (so every check reads them all: a directory is local and small)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"DirectorySource({str(self.path)!r})"

    def describe(self) -> str:
        """The directory."""
        return str(self.path)

    def fetch(self, known: str | None) -> Snapshot | None:
        """Every policy file, or None if their digest is still `known`."""
        if not self.path.is_dir():
            raise PolicyError([Problem(str(self.path), "", "policy directory not found")])
        files = read_dir(self.path)
        version = files_version(files, self.path)
        return None if version == known else Snapshot(version, files)
