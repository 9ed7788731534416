"""A package's exported names, each imported from its module when it is first used (PEP 562).

A package that re-exports its modules' names makes every `from package import name` load every
module, whatever the caller needs: a Lambda cold start that writes audit records to stdout would
import the file log, the S3 trail's digests and both verifiers. A package using this module lists
its names by module and defines

    def __getattr__(name: str) -> Any:
        return load(__name__, _LAZY, name)

with the same names imported under `TYPE_CHECKING` for the type checker.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from importlib import import_module
from typing import Any

__all__ = ["by_name", "load"]


def by_name(modules: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """{name: its module} from {module: the names imported from it}."""
    return {name: module for module, names in modules.items() for name in names}


def load(package: str, lazy: Mapping[str, str], name: str) -> Any:
    """`name` imported from its module and kept in `package`, so that the next lookup finds it
    without coming here; AttributeError (as for any missing attribute) if `name` is not lazy."""
    module = lazy.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    setattr(sys.modules[package], name, value)
    return value
