"""Merging and resolving: a policy's `extends` chain, merged, with the problems of the result.

A chain is merged from the root down with RFC 7396 merge-patch (a mapping merges key by key,
`null` removes what a parent set, anything else replaces). A tenant is judged only on what it
writes itself; what it inherits unchanged is its parent's to report, once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from moderation.errors import Problem
from moderation.policy._check import CheckedFile, close_match, dotted
from moderation.policy._model import CONTENT_TYPES
from moderation.policy._yaml import KeyPath

__all__ = ["Resolved", "Resolver"]

_Origin = tuple[str, int | None]


def _forget(origin: dict[KeyPath, _Origin], path: KeyPath, before: Any) -> None:
    """Drop where `path` and everything under it came from (it is being replaced or removed)."""
    origin.pop(path, None)
    if isinstance(before, dict):  # only a mapping has entries under it: no scan otherwise
        for key in [k for k in origin if k[: len(path)] == path]:
            del origin[key]


def _merge(
    target: dict[str, Any],
    patch: Mapping[str, Any],
    origin: dict[KeyPath, _Origin],
    f: CheckedFile,
    path: KeyPath = (),
) -> dict[str, Any]:
    out = dict(target)
    for key, value in patch.items():
        here = (*path, key)
        before = out.get(key)
        if value is None:
            out.pop(key, None)
            _forget(origin, here, before)
            continue
        if isinstance(value, dict):
            if not isinstance(before, dict):
                _forget(origin, here, before)
                before = {}
            out[key] = _merge(before, value, origin, f, here)
        else:
            _forget(origin, here, before)
            out[key] = value
        origin[here] = (f.file, f.lines.get(here))
    return out


def _written(clean: Mapping[str, Any], prefix: KeyPath = ()) -> Iterator[KeyPath]:
    """Every path a file sets, removes or replaces (a mapping only merges, so it is walked into)."""
    for key, value in clean.items():
        here = (*prefix, key)
        if isinstance(value, dict):
            yield from _written(value, here)
        else:
            yield here


class _Paths:
    """A set of key paths, asked whether a path is one of them, under one, or above one."""

    def __init__(self, paths: Iterable[KeyPath]) -> None:
        self.exact = set(paths)
        self.above = {p[:n] for p in self.exact for n in range(1, len(p))}

    def related(self, path: KeyPath) -> bool:
        return path in self.above or any(path[:n] in self.exact for n in range(1, len(path) + 1))


@dataclass(slots=True)
class Resolved:
    chain: tuple[str, ...]
    merged: dict[str, Any]


class Resolver:
    def __init__(
        self,
        files: dict[str, CheckedFile],
        broken: set[str],
        problems: list[Problem],
        warnings: list[Problem],
    ) -> None:
        self.files = files
        self.broken = broken
        self.problems = problems
        self.warnings = warnings

    def chain(self, name: str) -> list[CheckedFile] | None:
        chain: list[CheckedFile] = []
        seen: list[str] = []
        current: str | None = name
        while current is not None:
            if current in seen:
                cycle = " -> ".join([*seen[seen.index(current) :], current])
                f = self.files[name]
                self.problems.append(
                    Problem(
                        f.file, "extends", f"extends cycle: {cycle}", None, f.doc.line(("extends",))
                    )
                )
                return None
            seen.append(current)
            f = self.files[current]
            chain.append(f)
            if not f.extends_known:
                return None
            parent = f.extends
            if parent in self.broken:
                return None  # its problems are listed; what it would give cannot be known
            if parent is not None and parent not in self.files:
                self.problems.append(
                    Problem(
                        f.file,
                        "extends",
                        f"extends '{parent}', but there is no such policy",
                        close_match(parent, self.files),
                        f.doc.line(("extends",)),
                    )
                )
                return None
            current = parent
        return chain

    def resolve(self, name: str) -> Resolved | None:
        """The merged rules of `name`, with every problem of what its own file writes reported."""
        chain = self.chain(name)
        if chain is None:
            return None
        merged = _MergedChain(name, chain, self.problems, self.warnings)
        merged.check_default()
        merged.check_rules()
        merged.check_judge()
        return Resolved(tuple(f.name for f in chain), merged.merged)


class _MergedChain:
    """One policy's chain merged, and the checks of the result, each filed where it was written."""

    def __init__(
        self,
        name: str,
        chain: list[CheckedFile],
        problems: list[Problem],
        warnings: list[Problem],
    ) -> None:
        self.name = name
        self.chain = chain
        self.problems = problems
        self.warnings = warnings
        self.origin: dict[KeyPath, _Origin] = {}
        self.merged: dict[str, Any] = {}
        for f in reversed(chain):
            self.merged = _merge(self.merged, f.clean, self.origin, f)
        self.leaf = chain[0]
        self.policy_of = {f.file: f.name for f in chain}
        self.rank = {f.file: i for i, f in enumerate(chain)}
        self.written = _Paths(_written(self.leaf.clean))
        self.refused = _Paths(itertools.chain.from_iterable(f.refused for f in chain))
        self.min_conf: float = self.merged.get("min_confidence", 50.0)

    def touched(self, path: KeyPath) -> bool:
        """Whether the checks of `path` are this policy's to report.

        The root has no parent to report for it; a tenant answers for what it writes, and what it
        inherits unchanged was checked when its parent was resolved.
        """
        return len(self.chain) == 1 or self.written.related(path)

    def suppressed(self, path: KeyPath) -> bool:
        """Whether `path` is (or is under, or above) an entry refused: its problems are listed."""
        return self.refused.related(path)

    def at(self, path: KeyPath) -> _Origin:
        """The file and line that set `path` (or the nearest mapping above it)."""
        while path:
            if path in self.origin:
                return self.origin[path]
            path = path[:-1]
        return (self.leaf.file, None)

    def in_leaf(self, path: KeyPath) -> _Origin:
        """The line of `path` (or the nearest mapping above it) in this policy's own file."""
        while path and path not in self.leaf.lines:
            path = path[:-1]
        return (self.leaf.file, self.leaf.lines.get(path))

    def error(
        self, path: KeyPath, message: str, hint: str | None = None, *, place: _Origin
    ) -> None:
        self.problems.append(Problem(place[0], dotted(path), message, hint, place[1]))

    def check_default(self) -> None:
        """A policy needs a `default` rule, or labels without a category rule are ignored."""
        path: KeyPath = ("default",)
        if "default" not in self.merged and self.touched(path) and not self.suppressed(path):
            self.error(
                path,
                "no `default` rule: labels without a category rule would be ignored",
                "add e.g. default: {reject: 90, escalate: 60}, or `default: allow` to say so",
                place=self.at(path),
            )

    def check_rules(self) -> None:
        """Every rule of the merged policy: default, each category, its content-type overrides."""
        if "default" in self.merged:
            self.check_band(("default",), self.merged["default"])
        for cat, rule in (self.merged.get("categories") or {}).items():
            self.check_band(("categories", cat), rule)
            if isinstance(rule, dict):
                for ct in CONTENT_TYPES:
                    if ct in rule:
                        self.check_band(("categories", cat, ct), rule[ct])

    def check_band(self, path: KeyPath, value: Any) -> None:
        if value == "allow" or not isinstance(value, dict):
            return
        present = [(k, value[k]) for k in ("escalate", "review", "reject") if k in value]
        if self.touched(path) and not self.suppressed(path):
            if not present:
                own = "after merging" if len(self.chain) > 1 else "of its own"
                self.error(
                    path,
                    f"this rule has no reject, review or escalate threshold {own}",
                    "add one, or write `allow`; animated/illustrated overrides apply only to "
                    "those images, so photos would match nothing",
                    place=self.at(path),
                )
            for low, high in itertools.pairwise(present):
                self.check_order(path, low, high)
        for key, value in present:
            if value < self.min_conf:
                self.warn_below_min_confidence((*path, key), key, value)

    def check_order(self, path: KeyPath, low: tuple[str, float], high: tuple[str, float]) -> None:
        """Two thresholds of one rule in band order: escalate <= review <= reject."""
        (lo_key, lo), (hi_key, hi) = low, high
        if lo <= hi:
            return
        # Blame whichever of the two was written nearer the tenant: that is the edit that made
        # the pair inconsistent. If both are inherited, the tenant removed what stood between
        # them: blame its own rule.
        blamed = min((lo_key, hi_key), key=lambda k: self.rank.get(self.at((*path, k))[0], 99))
        place = self.at((*path, blamed))
        if place[0] != self.leaf.file:
            place = self.in_leaf(path)
        merged_note = f" in policy '{self.name}' after merging" if len(self.chain) > 1 else ""
        self.error(
            (*path, blamed),
            f"{lo_key} {lo:g} is above {hi_key} {hi:g}{merged_note}: bands are checked reject, "
            f"review, escalate, so this {lo_key} band could never be reached",
            f"keep 0 <= escalate <= review <= reject <= 100; `{lo_key}: null` removes an "
            "inherited threshold",
            place=place,
        )

    def warn_below_min_confidence(self, path: KeyPath, key: str, value: float) -> None:
        """A threshold under min_confidence: labels under it never arrive."""
        min_conf, place = self.min_conf, self.at(path)
        if place[0] == self.leaf.file:
            self.warnings.append(
                Problem(
                    place[0],
                    dotted(path),
                    f"{key} {value:g} is below min_confidence {min_conf:g}; labels under "
                    f"{min_conf:g} never arrive, so the band starts at {min_conf:g}",
                    None,
                    place[1],
                    "warning",
                )
            )
        elif self.touched(("min_confidence",)):
            # An inherited threshold that this tenant's min_confidence cuts off: filed at that
            # min_confidence, naming the tenant and where the threshold comes from.
            self.warnings.append(
                Problem(
                    self.leaf.file,
                    dotted(path),
                    f"{key} {value:g} inherited from '{self.policy_of[place[0]]}' is below "
                    f"min_confidence {min_conf:g} in policy '{self.name}'; labels under "
                    f"{min_conf:g} never arrive, so the band starts at {min_conf:g}",
                    "override the threshold in this file, or lower min_confidence",
                    self.in_leaf(("min_confidence",))[1],
                    "warning",
                )
            )

    def check_judge(self) -> None:
        """`judge: bedrock` needs a model to ask."""
        esc = self.merged.get("escalation") or {}
        judge, model = ("escalation", "judge"), ("escalation", "model_id")
        if (
            esc.get("judge") == "bedrock"
            and not esc.get("model_id")
            and (self.touched(judge) or self.touched(model))
            and not (self.suppressed(judge) or self.suppressed(model))
        ):
            self.error(
                model,
                "judge: bedrock needs a model_id",
                "e.g. us.anthropic.claude-haiku-4-5-20251001-v1:0",
                place=self.at(model),
            )
