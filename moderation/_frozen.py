"""A read-only dict for mappings held inside frozen models (a mutated one would go stale)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn, TypeVar

__all__ = ["FrozenDict", "freeze"]

K = TypeVar("K")
V = TypeVar("V")


class FrozenDict(dict[K, V]):
    """A dict that refuses every change after it is built; JSON, pickle and copy work as for dict.

    A subclass of dict rather than a MappingProxyType, so that pydantic serialises it and pickle
    and deepcopy rebuild it (both need a constructor that takes the items).
    """

    __slots__ = ()

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(f"{type(self).__name__} is read-only")

    __setitem__ = _refuse
    __delitem__ = _refuse
    __ior__ = _refuse
    clear = _refuse
    pop = _refuse
    popitem = _refuse
    setdefault = _refuse
    update = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __copy__(self) -> FrozenDict[K, V]:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict[K, V]:
        return self  # nothing in it can change, so a copy may share it

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"


def freeze(value: Mapping[K, V]) -> FrozenDict[K, V]:
    """`value` as a FrozenDict (the same object when it already is one)."""
    return value if isinstance(value, FrozenDict) else FrozenDict(value)
