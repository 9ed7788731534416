"""The starter policies shipped with the package, and writing them into a policy directory."""

from __future__ import annotations

import os
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

__all__ = ["starter_policies", "write_starter_policies"]


def starter_policies() -> dict[str, bytes]:
    """The shipped policy files by their path in a policy directory: `default.yaml`,
    `tenants/<tenant>.yaml`."""
    root = files("moderation.policy") / "starter"
    found = {"default.yaml": (root / "default.yaml").read_bytes()}
    tenants: Traversable = root / "tenants"
    for entry in sorted(tenants.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            found[f"tenants/{entry.name}"] = entry.read_bytes()
    return found


def write_starter_policies(
    directory: str | os.PathLike[str], *, overwrite: bool = False
) -> list[Path]:
    """Writes the starter policies into `directory` (made if missing); the paths written.

    FileExistsError naming every file already there, before anything is written, unless
    `overwrite`: a policy directory holds a deployment's own rules, never replaced by accident.
    """
    root = Path(directory)
    shipped = starter_policies()
    targets = {root / relative: content for relative, content in shipped.items()}
    existing = [str(p) for p in targets if os.path.lexists(p)]
    if existing and not overwrite:
        raise FileExistsError(
            f"{len(existing)} of the starter policy files already exist: {', '.join(existing)}"
        )
    for path, content in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(path):
            path.unlink()  # a link is replaced, not written through to wherever it points
        path.write_bytes(content)
    return list(targets)
