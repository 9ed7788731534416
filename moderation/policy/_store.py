"""Reading, checking and resolving policy files into `Policy`s: the `PolicyStore`.

A store reads `default.yaml` and `tenants/*.yaml` from one directory, resolves `extends` chains with
a deep merge (RFC 7396 merge-patch: a mapping merges key by key, `null` removes what a parent set,
anything else replaces), and checks everything before it hands out a single policy. Every problem is
collected with its file, line, key path and a hint; if there is one, `PolicyError` carries them all
and nothing is half-loaded.

So that one run shows every problem, a file with problems is still merged, without the entries that
were refused (a whole category rule, one escalation key, one top-level key): its parent's value
stands in for them. A tenant is judged only on what it writes itself; what it inherits unchanged is
its parent's to report, once.
"""

from __future__ import annotations

import difflib
import itertools
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ValidationError

from moderation.errors import InvalidS3Location, PolicyError, Problem, UnknownTenant
from moderation.policy._file import (
    TAGS,
    BudgetFile,
    EscalationFile,
    PlainRuleFile,
    PolicyFile,
    RuleFile,
)
from moderation.policy._model import (
    _DURATION,
    _DURATION_UNITS,
    _TENANT_ID,
    CONTENT_TYPES,
    DEFAULT_MAX_FRAMES,
    DEFAULT_POLICY,
    Budget,
    CategoryRule,
    EscalationPolicy,
    FrozenDict,
    Policy,
    Thresholds,
    validate_tenant,
)
from moderation.policy._sources import (
    AppConfigSource,
    DirectorySource,
    Entry,
    Excerpt,
    PolicySource,
    S3Source,
    files_version,
    read_file,
)
from moderation.policy._yaml import KeyPath, YamlDocument, read_yaml
from moderation.s3location import S3Prefix
from moderation.settings import policies_location
from moderation.taxonomy import TAXONOMY

__all__ = ["PolicyStore"]

# --------------------------------------------------------------------------- checking one file

_BAND_KEYS = ("reject", "review", "escalate")
_CONFIDENCES = ("min_confidence", "content_type_min_confidence")
_CHOICES: dict[str, tuple[tuple[str, ...], str]] = {
    "judge": (("bedrock", "none"), ""),
    "on_error": (
        ("review", "reject"),
        "fail closed: a judge that fails must never publish an image",
    ),
    "on_blocked": (
        ("review", "reject"),
        "fail closed: a judge that fails must never publish an image",
    ),
    "on_detector_error": (("raise", "review"), "a detector failure must never approve an image"),
}

_Clean = dict[str, Any]


@dataclass(slots=True)
class _File:
    name: str
    file: str
    doc: YamlDocument
    clean: _Clean = field(default_factory=dict)
    lines: dict[KeyPath, int] = field(default_factory=dict)
    extends: str | None = None
    # False when `extends` itself was refused: the parent is unknown, so the file is not merged
    # (merged on top of `default` it could show problems its real parent would not have).
    extends_known: bool = True
    # Entries refused by the checker, as clean paths: nothing is reported as a consequence of them.
    refused: set[KeyPath] = field(default_factory=set)
    # The policies this file names under `shadow`, as written (each file names its own: not merged).
    shadow: tuple[str, ...] = ()


def _close(word: str, options: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'?" if close else None


def _dotted(path: KeyPath) -> str:
    return ".".join(path)


def _is_rule(path: KeyPath) -> bool:
    return (
        path == ("default",)
        or (len(path) == 2 and path[0] == "categories")
        or (len(path) == 3 and path[0] == "categories" and path[2] in CONTENT_TYPES)
    )


def _is_threshold(path: KeyPath) -> bool:
    return path in (("min_confidence",), ("content_type_min_confidence",)) or (
        len(path) > 1 and path[-1] in _BAND_KEYS and _is_rule(path[:-1])
    )


def _field_path(loc: tuple[int | str, ...]) -> KeyPath | None:
    """The key path a pydantic error location stands for: union tags taken out.

    None for an error about a mapping key itself (a category name that is not text): the category
    check reports those by name.
    """
    out: list[str] = []
    for part in loc:
        if part == "[key]":
            return None
        here = tuple(out)
        if part in TAGS and (
            _is_rule(here) or here in (("escalation", "budget", "per"), ("shadow",))
        ):
            continue  # the branch of a tagged union, not a key anyone wrote
        out.append(str(part))
    return tuple(out)


def _model_at(path: KeyPath) -> type[BaseModel] | None:
    """The file model of the mapping at `path`, for naming the keys allowed there."""
    if path == ():
        return PolicyFile
    if path == ("escalation",):
        return EscalationFile
    if path == ("escalation", "budget"):
        return BudgetFile
    if _is_rule(path):
        return RuleFile if path[0] == "categories" and len(path) == 2 else PlainRuleFile
    return None


def _entry(path: KeyPath) -> KeyPath:
    """What is dropped when something at `path` is refused: a whole rule, or one key."""
    if path[0] in ("categories", "escalation") and len(path) > 1:
        return path[:2]
    return path[:1]


def _empty_hint(path: KeyPath, spelled_null: bool) -> str:
    if _is_rule(path):
        what = "override" if len(path) == 3 else "rule"
        if spelled_null:
            return f"write `null` to remove the inherited {what}"
        return f"write a rule, `allow`, or `null` to remove the inherited {what}"
    if path == ("extends",):
        if spelled_null:
            return "write `null`, or leave the key out, to extend default"
        return "name the policy to extend, or leave the key out to extend default"
    if path == ("shadow",):
        if spelled_null:
            return "write `null`, or leave the key out, for no shadow policies"
        return "name the policies to shadow, or leave the key out"
    if _is_threshold(path):
        if spelled_null:
            return "write `null` to remove the inherited threshold"
        return "write a number, or `null` to remove the inherited threshold"
    if spelled_null:
        return "write `null` to remove the inherited value"
    return "write a value, or `null` to remove the inherited one"


class _Checker:
    """Checks one file and writes its cleaned form: canonical names, float thresholds.

    The file's data is validated with `PolicyFile` (types, ranges, choices, unknown keys); what
    needs more than the data (YAML null spellings, taxonomy names, the file's own name) is checked
    here by hand. Refused entries are left out of the cleaned form.
    """

    def __init__(self, f: _File, problems: list[Problem], warnings: list[Problem]) -> None:
        self.f = f
        self.problems = problems
        self.warnings = warnings
        self.own: list[Problem] = []
        # What the file models found: the rules the generated JSON Schema checks too.
        self.format_problems: list[Problem] = []
        self.refused_raw: set[KeyPath] = set()

    def error(self, path: KeyPath, message: str, hint: str | None = None) -> Problem:
        problem = Problem(self.f.file, _dotted(path), message, hint, self.f.doc.line(path))
        self.own.append(problem)
        return problem

    def warn(self, path: KeyPath, message: str, hint: str | None = None) -> None:
        line = self.f.doc.line(path)
        self.warnings.append(Problem(self.f.file, _dotted(path), message, hint, line, "warning"))

    def keep(self, raw: KeyPath, clean: KeyPath) -> None:
        line = self.f.doc.line(raw)
        if line is not None:
            self.f.lines[clean] = line

    def refuse(self, path: KeyPath) -> None:
        self.refused_raw.add(_entry(path))

    def refused(self, path: KeyPath) -> bool:
        return any(path[:n] in self.refused_raw for n in range(1, len(path) + 1))

    def run(self) -> None:
        data = self.f.doc.data
        found = self.validate(data)
        unknown = {path for path, error in found if error["type"] == "extra_forbidden"}
        nulls = self.check_nulls(unknown)
        reported: set[KeyPath] = set(nulls)
        for path, error in found:
            message, hint = self.describe(path, error)
            problem = Problem(self.f.file, _dotted(path), message, hint, self.f.doc.line(path))
            self.format_problems.append(problem)
            self.refuse(path)
            if path not in reported:  # an empty value is reported as that, not as a wrong type
                reported.add(path)
                self.own.append(problem)
        self.identity(data)
        self.build(data)
        # In file order; problems without a line (none so far) last.
        self.own.sort(key=lambda p: (p.line is None, p.line or 0))
        self.problems.extend(self.own)

    def validate(self, data: Any) -> list[tuple[KeyPath, Any]]:
        try:
            PolicyFile.model_validate(data)
        except ValidationError as exc:
            found: list[tuple[KeyPath, Any]] = []
            for error in exc.errors():
                path = _field_path(error["loc"])
                if path is not None:
                    # Both keys of a budget missing is one problem with the budget.
                    if error["type"] == "missing":
                        path = path[:-1]
                    if path not in (p for p, _ in found):
                        found.append((path, error))
            return found
        return []

    def check_nulls(self, unknown: set[KeyPath]) -> set[KeyPath]:
        """The paths of empty values and of nulls not spelled `null`, each reported as an error.

        Removing an inherited value must be written out, so that no removal is an accident.
        """
        reported: set[KeyPath] = set()
        for path, spelling in self.f.doc.nulls.items():
            if spelling == "null" or any(path[:n] in unknown for n in range(1, len(path) + 1)):
                continue
            if spelling == "":
                self.error(path, "empty value", _empty_hint(path, spelled_null=False))
            else:
                self.error(
                    path,
                    f"`{spelling}` is YAML for null; policies spell it `null`",
                    _empty_hint(path, spelled_null=True),
                )
            self.refuse(path)
            reported.add(path)
        return reported

    def describe(self, path: KeyPath, error: Any) -> tuple[str, str | None]:
        """A pydantic error about `path` in this file's words: (message, hint)."""
        kind, value, field_name = error["type"], error.get("input"), path[-1] if path else ""
        if kind == "extra_forbidden":
            model = _model_at(path[:-1])
            allowed = tuple(model.model_fields) if model else ()
            hint = _close(field_name, allowed) or f"allowed here: {', '.join(allowed)}"
            return f"unknown key '{field_name}'", hint
        if kind == "missing":
            return "a budget needs both calls and per", "e.g. {calls: 1000, per: 1h}"
        if path[:1] == ("shadow",):
            return self.describe_shadow(kind, value, error.get("ctx") or {})
        if kind == "empty_rule":
            return "an empty rule has no thresholds", (
                "give reject, review or escalate, or write `allow` to ignore the category"
            )
        if _is_rule(path):
            return f"a rule is `allow` or a mapping of thresholds, got {value!r}", (
                "e.g. {reject: 90, escalate: 60}"
            )
        if _is_threshold(path):
            number = "write a plain number such as 80" if isinstance(value, str) else None
            return f"must be a number from 0 to 100, got {value!r}", number
        if field_name in _CHOICES:
            options, why = _CHOICES[field_name]
            message = f"must be one of {', '.join(options)}, got {value!r}"
            near = _close(value, options) if isinstance(value, str) else None
            return message + (f"; {why}" if why else ""), near
        if path == ("max_frames",):
            return f"must be a whole number from 1 to 20, got {value!r}", None
        if path == ("escalation", "budget", "calls"):
            return f"must be a whole number >= 0, got {value!r}", None
        if path == ("escalation", "budget", "per"):
            return (
                f"must be a duration such as 30s, 15m, 1h or 1d, at most 31 days, got {value!r}",
                None,
            )
        if path == ("id",):
            return f"id {value!r} does not match the file, which defines {self.f.name!r}", (
                f"use id: {self.f.name} or rename the file"
            )
        if path == ("extends",):
            return f"extends must name a policy, got {value!r}", None
        if path == ("escalation", "model_id"):
            return f"must be non-empty text, got {value!r}", None
        if path in (("description",), ("escalation", "guidance")):
            return "must be text", None
        if path == ("categories",):
            return "must be a mapping of category name to rule", None
        if path == ("escalation",):
            return "must be a mapping", "e.g. {judge: none}"
        if path == ("escalation", "budget"):
            return "must be a mapping", "e.g. {calls: 1000, per: 1h}"
        return f"{error['msg']}, got {value!r}", None

    def describe_shadow(
        self, kind: str, value: Any, ctx: Mapping[str, Any]
    ) -> tuple[str, str | None]:
        """A pydantic error about `shadow` or one of its entries: (message, hint)."""
        if kind == "shadow_duplicate":
            return f"shadow names '{ctx.get('name')}' twice", "name each policy once"
        if kind == "shadow_type":
            return f"shadow must be a policy id or a list of policy ids, got {value!r}", (
                "e.g. shadow: kids-next, or shadow: [kids-next, kids-strict]"
            )
        return f"shadow must name a policy by its id, got {value!r}", (
            "a policy's id is its file name: default, or a tenant file's name"
        )

    def identity(self, data: Mapping[str, Any]) -> None:
        """Records what the file extends, and reports an `id` that is not the file's name."""
        if (
            isinstance(data.get("id"), str)
            and data["id"] != self.f.name
            and not self.refused(("id",))
        ):
            self.error(
                ("id",),
                f"id {data['id']!r} does not match the file, which defines {self.f.name!r}",
                f"use id: {self.f.name} or rename the file",
            )
        self.shadows(data.get("shadow"))
        if self.f.name == DEFAULT_POLICY:
            if data.get("extends") is not None and not self.refused(("extends",)):
                self.error(("extends",), "default.yaml is the root policy and extends nothing")
            return
        if self.refused(("extends",)):
            self.f.extends_known = False
            return
        self.f.extends = data.get("extends") or DEFAULT_POLICY

    def shadows(self, value: Any) -> None:
        """Records the policies the file names under `shadow`; reports one naming this policy.

        The names are the file's own: `shadow` is not merged, so it is kept out of `clean`. Which
        names exist is known only once every file is read (`_unknown_shadows`).
        """
        if value is None or self.refused(("shadow",)):
            return
        names = (value,) if isinstance(value, str) else tuple(value)
        for i, name in enumerate(names):
            if name == self.f.name:
                self.error(
                    _shadow_path(value, i),
                    f"shadow names this policy itself ('{name}')",
                    "a shadow is another policy, evaluated beside this one",
                )
        self.f.shadow = names

    def build(self, data: Mapping[str, Any]) -> None:
        c = self.f.clean
        for key in PolicyFile.model_fields:
            if key not in data or key in ("id", "extends", "shadow"):
                continue
            if self.refused((key,)):
                self.f.refused.add((key,))
                continue
            value = data[key]
            self.keep((key,), (key,))
            if value is None:
                c[key] = None
            elif key == "default":
                c[key] = self.rule(value, (key,), (key,), overrides=False)
            elif key == "categories":
                c[key] = self.categories(value)
            elif key == "escalation":
                c[key] = self.escalation(value)
            elif key in _CONFIDENCES:
                c[key] = float(value)
            elif key == "max_frames":
                c[key] = int(value)
            else:
                c[key] = value

    def rule(self, value: Any, raw: KeyPath, clean: KeyPath, *, overrides: bool) -> Any:
        if value is None or value == "allow":
            return value
        out: dict[str, Any] = {}
        for key in _BAND_KEYS:
            if key in value:
                self.keep((*raw, key), (*clean, key))
                out[key] = None if value[key] is None else float(value[key])
        if overrides:
            for key in CONTENT_TYPES:
                if key in value:
                    self.keep((*raw, key), (*clean, key))
                    out[key] = self.rule(value[key], (*raw, key), (*clean, key), overrides=False)
        return out

    def categories(self, value: Mapping[Any, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first: dict[str, str] = {}  # canonical name -> the spelling that named it first
        legacy_rules: list[tuple[str, Any, KeyPath]] = []  # applied after 7.0 names, which win
        for raw_name, rule in value.items():
            name = str(raw_name)
            raw: KeyPath = ("categories", name)
            canonical = TAXONOMY.canonical(name)
            if canonical is None:
                legacy = TAXONOMY.legacy(name)
                if legacy is None:
                    self.error(
                        raw,
                        f"unknown category '{name}' in taxonomy {TAXONOMY.version}",
                        _close_category(name),
                    )
                    continue
                self.warn(
                    raw,
                    f"'{name}' is a taxonomy 6.1 name; applied to "
                    + " and ".join(f"'{t}'" for t in legacy.targets),
                    f"{legacy.note}; write the 7.0 names instead",
                )
                legacy_rules.append((name, rule, raw))
                continue
            if canonical in first:
                self.error(
                    raw,
                    f"'{name}' names the same category as '{first[canonical]}'",
                    "names match case-insensitively; keep one",
                )
                continue
            first[canonical] = name
            if TAXONOMY.narrowed_by_7_0(canonical) and "Explicit" not in first:
                explicit_named = any(TAXONOMY.canonical(str(k)) == "Explicit" for k in value)
                if not explicit_named:
                    lost = " and ".join(f"'{s}'" for s in TAXONOMY.narrowed_by_7_0(canonical))
                    self.warn(
                        raw,
                        f"in taxonomy 7.0 '{canonical}' is a level-2 category under 'Explicit', "
                        f"so {lost} fall to other rules",
                        "if this policy was written for 6.1, name 'Explicit' instead",
                    )
            self.add_rule(out, rule, raw, canonical)
        claimed: dict[str, str] = {}  # 7.0 category -> the 6.1 name that applied to it
        for name, rule, raw in legacy_rules:
            legacy_map = TAXONOMY.legacy(name)
            assert legacy_map is not None
            for target in legacy_map.targets:
                if target in first:  # a 7.0 name in the same file is more specific
                    continue
                if target in claimed:
                    other = claimed[target]
                    where = self.f.doc.line(("categories", other)), self.f.doc.line(raw)
                    self.error(
                        raw,
                        f"'{other}' (line {where[0]}) and '{name}' (line {where[1]}) both become "
                        f"'{target}' in taxonomy {TAXONOMY.version}, and only one rule can apply",
                        f"write one '{target}' rule instead",
                    )
                    out.pop(target, None)
                    self.f.refused.add(("categories", target))
                    continue
                claimed[target] = name
                self.add_rule(out, rule, raw, target)
        return out

    def add_rule(self, out: dict[str, Any], rule: Any, raw: KeyPath, canonical: str) -> None:
        clean: KeyPath = ("categories", canonical)
        if self.refused(raw):
            self.f.refused.add(clean)
            return
        self.keep(raw, clean)
        out[canonical] = self.rule(rule, raw, clean, overrides=True)

    def escalation(self, value: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in EscalationFile.model_fields:
            path: KeyPath = ("escalation", key)
            if key not in value:
                continue
            if self.refused(path):
                self.f.refused.add(path)
                continue
            self.keep(path, path)
            v = value[key]
            if key == "budget" and v is not None:
                out[key] = {"calls": int(v["calls"]), "per_seconds": _duration(v["per"])}
            else:
                out[key] = v
        return out


def _shadow_path(value: Any, index: int) -> KeyPath:
    """Where a shadow entry is: `shadow` for a single id, `shadow.<index>` in a list."""
    return ("shadow",) if isinstance(value, str) else ("shadow", str(index))


def _unknown_shadows(files: Mapping[str, _File], broken: set[str], problems: list[Problem]) -> None:
    """Reports every `shadow` entry that names no policy of the store, with a near miss."""
    for f in files.values():
        value = f.doc.data.get("shadow") if isinstance(f.doc.data, Mapping) else None
        for i, name in enumerate(f.shadow):
            if name in files or name in broken:  # a broken file's own problems are listed
                continue
            path = _shadow_path(value, i)
            problems.append(
                Problem(
                    f.file,
                    _dotted(path),
                    f"shadow names '{name}', but there is no such policy",
                    _close(name, files),
                    f.doc.line(path),
                )
            )


def _close_category(name: str) -> str | None:
    found = TAXONOMY.suggest(name, n=1)
    return f"did you mean '{found[0]}'?" if found else None


def _duration(value: float | str) -> float:
    """Seconds in a budget window the file model has already accepted (a number, or 30s/1.5h)."""
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.fullmatch(value.strip())
    assert m is not None, value
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


# --------------------------------------------------------------------------- merging and resolving

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
    f: _File,
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


def _thresholds(value: Any) -> Thresholds:
    if value == "allow":
        return Thresholds(allow=True)
    return Thresholds(**{k: value.get(k) for k in _BAND_KEYS})


@dataclass(slots=True)
class _Resolved:
    chain: tuple[str, ...]
    merged: dict[str, Any]


class _Resolver:
    def __init__(
        self,
        files: dict[str, _File],
        broken: set[str],
        problems: list[Problem],
        warnings: list[Problem],
    ) -> None:
        self.files = files
        self.broken = broken
        self.problems = problems
        self.warnings = warnings

    def chain(self, name: str) -> list[_File] | None:
        chain: list[_File] = []
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
                        _close(parent, self.files),
                        f.doc.line(("extends",)),
                    )
                )
                return None
            current = parent
        return chain

    def resolve(self, name: str) -> _Resolved | None:
        """The merged rules of `name`, with every problem of what its own file writes reported."""
        chain = self.chain(name)
        if chain is None:
            return None
        origin: dict[KeyPath, _Origin] = {}
        merged: dict[str, Any] = {}
        for f in reversed(chain):
            merged = _merge(merged, f.clean, origin, f)
        leaf = chain[0]
        policy_of = {f.file: f.name for f in chain}
        written = _Paths(_written(leaf.clean))
        refused = _Paths(itertools.chain.from_iterable(f.refused for f in chain))

        def touched(path: KeyPath) -> bool:
            # The root has no parent to report for it; a tenant answers for what it writes, and
            # what it inherits unchanged was checked when its parent was resolved.
            return len(chain) == 1 or written.related(path)

        def suppressed(path: KeyPath) -> bool:
            return refused.related(path)

        def at(path: KeyPath) -> _Origin:
            while path:
                if path in origin:
                    return origin[path]
                path = path[:-1]
            return (leaf.file, None)

        def in_leaf(path: KeyPath) -> _Origin:
            while path and path not in leaf.lines:
                path = path[:-1]
            return (leaf.file, leaf.lines.get(path))

        rank = {f.file: i for i, f in enumerate(chain)}

        def error(path: KeyPath, message: str, hint: str | None = None, *, place: _Origin) -> None:
            self.problems.append(Problem(place[0], _dotted(path), message, hint, place[1]))

        min_conf = merged.get("min_confidence", 50.0)
        if "default" not in merged and touched(("default",)) and not suppressed(("default",)):
            error(
                ("default",),
                "no `default` rule: labels without a category rule would be ignored",
                "add e.g. default: {reject: 90, escalate: 60}, or `default: allow` to say so",
                place=at(("default",)),
            )

        def check_band(path: KeyPath, value: Any) -> None:
            if value == "allow" or not isinstance(value, dict):
                return
            present = [(k, value[k]) for k in ("escalate", "review", "reject") if k in value]
            if touched(path) and not suppressed(path):
                if not present:
                    own = "after merging" if len(chain) > 1 else "of its own"
                    error(
                        path,
                        f"this rule has no reject, review or escalate threshold {own}",
                        "add one, or write `allow`; animated/illustrated overrides apply only to "
                        "those images, so photos would match nothing",
                        place=at(path),
                    )
                for (lo_key, lo), (hi_key, hi) in itertools.pairwise(present):
                    if lo > hi:
                        # Blame whichever of the two was written nearer the tenant: that is the
                        # edit that made the pair inconsistent. If both are inherited, the tenant
                        # removed what stood between them: blame its own rule.
                        blamed = min(
                            (lo_key, hi_key), key=lambda k: rank.get(at((*path, k))[0], 99)
                        )
                        place = at((*path, blamed))
                        if place[0] != leaf.file:
                            place = in_leaf(path)
                        merged_note = f" in policy '{name}' after merging" if len(chain) > 1 else ""
                        error(
                            (*path, blamed),
                            f"{lo_key} {lo:g} is above {hi_key} {hi:g}{merged_note}: bands are "
                            f"checked reject, review, escalate, so this {lo_key} band could never "
                            "be reached",
                            f"keep 0 <= escalate <= review <= reject <= 100; `{lo_key}: null` "
                            "removes an inherited threshold",
                            place=place,
                        )
            for k, v in present:
                if v >= min_conf:
                    continue
                place = at((*path, k))
                if place[0] == leaf.file:
                    self.warnings.append(
                        Problem(
                            place[0],
                            _dotted((*path, k)),
                            f"{k} {v:g} is below min_confidence {min_conf:g}; labels under "
                            f"{min_conf:g} never arrive, so the band starts at {min_conf:g}",
                            None,
                            place[1],
                            "warning",
                        )
                    )
                elif touched(("min_confidence",)):
                    # An inherited threshold that this tenant's min_confidence cuts off: filed at
                    # that min_confidence, naming the tenant and where the threshold comes from.
                    self.warnings.append(
                        Problem(
                            leaf.file,
                            _dotted((*path, k)),
                            f"{k} {v:g} inherited from '{policy_of[place[0]]}' is below "
                            f"min_confidence {min_conf:g} in policy '{name}'; labels under "
                            f"{min_conf:g} never arrive, so the band starts at {min_conf:g}",
                            "override the threshold in this file, or lower min_confidence",
                            in_leaf(("min_confidence",))[1],
                            "warning",
                        )
                    )

        if "default" in merged:
            check_band(("default",), merged["default"])
        for cat, rule in (merged.get("categories") or {}).items():
            check_band(("categories", cat), rule)
            if isinstance(rule, dict):
                for ct in CONTENT_TYPES:
                    if ct in rule:
                        check_band(("categories", cat, ct), rule[ct])
        esc = merged.get("escalation") or {}
        judge, model = ("escalation", "judge"), ("escalation", "model_id")
        if (
            esc.get("judge") == "bedrock"
            and not esc.get("model_id")
            and (touched(judge) or touched(model))
            and not (suppressed(judge) or suppressed(model))
        ):
            error(
                model,
                "judge: bedrock needs a model_id",
                "e.g. us.anthropic.claude-haiku-4-5-20251001-v1:0",
                place=at(model),
            )
        return _Resolved(tuple(f.name for f in chain), merged)


def _policy(name: str, resolved: _Resolved, shadow: tuple[str, ...], version: str | None) -> Policy:
    merged = resolved.merged
    categories = {
        cat: CategoryRule(
            name=cat,
            thresholds=_thresholds(rule),
            **{
                ct: _thresholds(rule[ct])
                for ct in CONTENT_TYPES
                if isinstance(rule, dict) and ct in rule
            },
        )
        for cat, rule in sorted((merged.get("categories") or {}).items())
    }
    esc = merged.get("escalation") or {}
    budget = esc.get("budget")
    return Policy(
        id=name,
        chain=resolved.chain,
        description=merged.get("description", ""),
        min_confidence=merged.get("min_confidence", 50.0),
        content_type_min_confidence=merged.get("content_type_min_confidence", 50.0),
        max_frames=merged.get("max_frames", DEFAULT_MAX_FRAMES),
        default=_thresholds(merged["default"]),
        categories=FrozenDict(categories),
        escalation=EscalationPolicy(
            **{k: v for k, v in esc.items() if k != "budget"},
            budget=Budget(**budget) if budget else None,
        ),
        on_detector_error=merged.get("on_detector_error", "raise"),
        shadow=shadow,
        version=version,
    )


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


# --------------------------------------------------------------------------- building a version


def _read(shown: str, content: str | bytes | Excerpt) -> tuple[YamlDocument | None, list[Problem]]:
    """One policy document read; an excerpt's lines counted as in the document it was cut from."""
    if not isinstance(content, Excerpt):
        return read_yaml(content, shown)
    doc, found = read_yaml(content.text, shown)
    shift = content.first_line - 1
    if shift:
        found = [replace(p, line=p.line + shift) if p.line is not None else p for p in found]
        if doc is not None:
            doc.lines = {path: line + shift for path, line in doc.lines.items()}
    return doc, found


@dataclass(frozen=True, slots=True, eq=False)
class _Version:
    """One validated version of every policy: built whole, then swapped in by one assignment."""

    policies: Mapping[str, Policy]
    warnings: tuple[Problem, ...]
    version: str | None


def _build(sources: Mapping[str, Entry], version: str | None) -> _Version:
    """Every policy of `sources`, checked together; PolicyError listing every problem."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    files: dict[str, _File] = {}
    broken: set[str] = set()
    if DEFAULT_POLICY not in sources:
        broken.add(DEFAULT_POLICY)  # its tenants are not also told it does not exist
        problems.append(
            Problem("default.yaml", "", "no default policy", "every store needs default.yaml")
        )
    for name, (shown, content) in sources.items():
        if isinstance(content, Problem):
            problems.append(content)
            broken.add(name)
            continue
        if name != DEFAULT_POLICY and not _TENANT_ID.fullmatch(name):
            problems.append(
                Problem(
                    shown,
                    "",
                    f"'{name}' is not a valid tenant id, so this file can never be used",
                    "tenant ids match ^[a-z0-9][a-z0-9_-]{0,63}$; rename the file",
                )
            )
            continue
        doc, found = _read(shown, content)
        problems.extend(found)
        if doc is None:
            broken.add(name)
            continue
        f = _File(name, shown, doc)
        _Checker(f, problems, warnings).run()
        files[name] = f
    # Every file that could be read is merged, problems or not, so one run reports merge
    # problems too; a tenant whose parent could not be read is skipped (the cause is listed).
    _unknown_shadows(files, broken, problems)
    resolver = _Resolver(files, broken, problems, warnings)
    resolved = {name: resolver.resolve(name) for name in sorted(files)}
    found_warnings = tuple(_unique(warnings))
    if problems:
        raise PolicyError(_unique(problems), found_warnings)
    policies = {
        name: _policy(name, r, files[name].shadow, version)
        for name, r in resolved.items()
        if r is not None
    }
    return _Version(MappingProxyType(policies), found_warnings, version)


# --------------------------------------------------------------------------- the store

logger = logging.getLogger("moderation.policy")

#: Seconds between checks for new policies in S3 or AppConfig when `load` is given no ttl.
DEFAULT_TTL = 60.0


def _detail(exc: BaseException) -> str:
    return exc.rendered() if isinstance(exc, PolicyError) else f"{type(exc).__name__}: {exc}"


class PolicyStore:
    """Every tenant's policy, all validated together before any is handed out.

    `PolicyStore(dir)` reads a directory once; `PolicyStore.load(location)` reads a directory, an
    S3 prefix (`s3://bucket/prefix`) or an AWS AppConfig profile
    (`appconfig://application/environment/profile`) and, with a ttl, checks it again for a new
    version once the ttl has passed. A new version is validated whole and swapped in at once; an
    invalid one (or a failed check) is logged at ERROR on the `moderation.policy` logger, kept in
    `last_error`, and the last good version stays in force. Every `Policy` records the `version`
    it came from. Reads are safe from any number of threads; use `snapshot()` to read several
    policies from one version.

    `get(tenant)` raises `UnknownTenant` for a tenant with no policy file, unless the store was
    built with `fallback_to_default=True`: then such a tenant gets the default policy, whose `id`
    stays `default` (so a caller can tell a fallback by `policy.id != tenant`).

    `policy(id)` gets a policy by its own id (never a fallback), and `shadows(policy)` the policies
    it names under `shadow`: ids the store checked when it was built.

    `drafts`: policy files from outside the directory, each read as tenant `<file stem>` (in place
    of a tenant file of that name), so a new tenant is checked with everything it extends.
    """

    path: Path | None
    location: str | None
    fallback_to_default: bool
    last_error: PolicyError | Exception | None

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fallback_to_default: bool = False,
        drafts: Iterable[str | os.PathLike[str]] = (),
    ) -> None:
        root = Path(path)
        source = DirectorySource(root)
        snapshot = source.fetch(None)
        assert snapshot is not None  # nothing is known yet
        draft_paths = [Path(d) for d in drafts]
        if not draft_paths:
            self._start(
                _build(snapshot.files, snapshot.version),
                fallback_to_default,
                path=root,
                location=str(root),
                source=source,
            )
            return
        files = dict(snapshot.files)
        for draft in draft_paths:
            name = draft.stem
            for key in [k for k in files if k.split("\0")[0] == name]:
                del files[key]
            files[name] = (str(draft), read_file(draft, str(draft)))
        # Drafts are read once: a store with drafts is never checked again.
        self._start(
            _build(files, files_version(files, root)),
            fallback_to_default,
            path=root,
            location=str(root),
        )

    def _start(
        self,
        loaded: _Version,
        fallback_to_default: bool,
        *,
        path: Path | None = None,
        location: str | None = None,
        source: PolicySource | None = None,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl == math.inf:
            ttl = None
        self.path = path
        self.location = location
        self.fallback_to_default = fallback_to_default
        self.last_error = None
        self._loaded = loaded
        self._source = source
        self._ttl = ttl if source is not None else None
        self._clock = clock
        self._lock = threading.Lock()
        # The version the source last gave (it may have been refused) and why it was refused.
        self._seen = loaded.version
        self._seen_error: PolicyError | None = None
        self._due = clock() + self._ttl if self._ttl is not None else math.inf

    @classmethod
    def from_sources(
        cls,
        sources: Mapping[str, str | bytes],
        *,
        fallback_to_default: bool = False,
    ) -> PolicyStore:
        """A store from in-memory documents: `{"default": yaml_text, "kids": yaml_text}`."""
        store = cls.__new__(cls)
        files: dict[str, Entry] = {
            name: (f"{name}.yaml" if name == DEFAULT_POLICY else f"tenants/{name}.yaml", text)
            for name, text in sources.items()
        }
        store._start(_build(files, None), fallback_to_default)
        return store

    @classmethod
    def from_source(
        cls,
        source: PolicySource,
        *,
        ttl: float | None = None,
        fallback_to_default: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> PolicyStore:
        """A store of what `source` holds now, checked again every `ttl` seconds (None or
        math.inf: never). PolicyError if the current version cannot be read or is invalid."""
        if ttl is not None and not ttl > 0:
            raise ValueError(
                f"ttl must be a positive number of seconds (None: never check again), got {ttl!r}"
            )
        snapshot = source.fetch(None)
        if snapshot is None:
            raise TypeError(
                f"{source!r}.fetch(None) returned None: with no version known, a source returns "
                "its current one"
            )
        store = cls.__new__(cls)
        store._start(
            _build(snapshot.files, snapshot.version),
            fallback_to_default,
            path=source.path if isinstance(source, DirectorySource) else None,
            location=source.describe(),
            source=source,
            ttl=ttl,
            clock=clock,
        )
        return store

    @classmethod
    def load(
        cls,
        location: str | os.PathLike[str],
        *,
        ttl: float | None = None,
        fallback_to_default: bool = False,
        region: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        s3_client: Any | None = None,
        appconfig_client: Any | None = None,
    ) -> PolicyStore:
        """The policies at `location`: a directory, `s3://bucket/prefix` or
        `appconfig://application/environment/profile` (MODERATION_POLICIES).

        `ttl`: seconds between checks for a new version; None is 60 for S3 and AppConfig and
        never for a directory; math.inf is never. The first load must succeed: PolicyError lists
        every problem. `region`, `s3_client` and `appconfig_client` are for the AWS sources
        (an injected client keeps its own configuration); `clock` times the ttl.
        """
        spec = os.fspath(location)
        kind = policies_location(spec)
        source: PolicySource
        if kind == "s3":
            try:
                where = S3Prefix.parse(spec)
            except InvalidS3Location as exc:
                raise PolicyError(
                    [Problem(spec, "", str(exc), "write s3://bucket/prefix")]
                ) from None
            source = S3Source(where.bucket, where.prefix, client=s3_client, region=region)
        elif kind == "appconfig":
            parts = spec[len("appconfig://") :].split("/")
            if len(parts) != 3:
                raise PolicyError(
                    [
                        Problem(
                            spec,
                            "",
                            "an AppConfig location has three parts",
                            "write appconfig://application/environment/profile (names or ids)",
                        )
                    ]
                )
            application, environment, profile = parts
            source = AppConfigSource(
                application,
                environment,
                profile,
                client=appconfig_client,
                region=region,
                clock=clock,
            )
        else:
            source = DirectorySource(spec)
        if ttl is None and kind != "dir":
            ttl = DEFAULT_TTL
        store = cls.from_source(
            source, ttl=ttl, fallback_to_default=fallback_to_default, clock=clock
        )
        store.location = spec
        return store

    @classmethod
    def of(
        cls, policies: PolicyStore | Mapping[str, str | bytes] | str | os.PathLike[str]
    ) -> PolicyStore:
        """`policies` itself if it is a store; else a store from a directory (or an `s3://` or
        `appconfig://` location, read by `load`) or from in-memory documents (`from_sources`).
        TypeError for anything else."""
        if isinstance(policies, PolicyStore):
            return policies
        if isinstance(policies, str) and policies_location(policies) != "dir":
            return cls.load(policies)
        if isinstance(policies, str | os.PathLike):
            return cls(policies)
        if isinstance(policies, Mapping):
            return cls.from_sources(policies)
        raise TypeError(
            "policies is a PolicyStore, a policy directory or a mapping of tenant to YAML, "
            f"not {type(policies).__name__}"
        )

    def __repr__(self) -> str:
        return f"PolicyStore({self.location!r}, version={self._loaded.version!r})"

    # ----------------------------------------------------------------------- reloading

    def _current(self) -> _Version:
        """The version in force, after a check for a new one if the ttl has passed."""
        if self._ttl is not None and self._clock() >= self._due:
            self._check(force=False)
        return self._loaded

    def _check(self, *, force: bool) -> bool:
        """Fetch and maybe swap in a new version. Without `force`, a caller that finds another
        checking goes on with the version in force."""
        if not self._lock.acquire(blocking=force):
            return False
        try:
            if not force and self._clock() < self._due:
                return False  # checked by another caller while this one waited
            return self._refresh()
        finally:
            if self._ttl is not None:
                self._due = self._clock() + self._ttl
            self._lock.release()

    def _refresh(self) -> bool:
        assert self._source is not None
        current = self._loaded
        where = self._source.describe()
        try:
            snapshot = self._source.fetch(self._seen)
        except Exception as exc:
            self.last_error = exc
            logger.error(
                "policies at %s: cannot check for a new version; still using version %s:\n%s",
                where,
                current.version,
                _detail(exc),
                exc_info=not isinstance(exc, PolicyError),
            )
            return False
        if snapshot is None:
            self.last_error = self._seen_error  # what the source holds is what was last seen
            return False
        if snapshot.version == current.version:  # back to the version in force
            self._seen, self._seen_error, self.last_error = current.version, None, None
            return False
        try:
            loaded = _build(snapshot.files, snapshot.version)
        except Exception as exc:
            self._seen = snapshot.version
            self._seen_error = exc if isinstance(exc, PolicyError) else None
            self.last_error = exc
            logger.error(
                "policies at %s: version %s refused; still using version %s:\n%s",
                where,
                snapshot.version,
                current.version,
                _detail(exc),
                exc_info=not isinstance(exc, PolicyError),
            )
            return False
        self._loaded = loaded  # one assignment: readers see the old version or the new, whole
        self._seen, self._seen_error, self.last_error = snapshot.version, None, None
        logger.info(
            "policies at %s: now using version %s (was %s)", where, loaded.version, current.version
        )
        if loaded.warnings:
            logger.warning(
                "policies at %s: version %s has warnings:\n%s",
                where,
                loaded.version,
                "\n".join(f"  {w.render()}" for w in loaded.warnings),
            )
        return True

    def reload(self) -> bool:
        """Check for a new version now, without waiting for the ttl; True if one was swapped
        in. Never raises for an invalid version or a failed check: both are logged and kept in
        `last_error`. False at once for a store that has no source to check (`from_sources`, a
        snapshot, a directory read with drafts)."""
        if self._source is None:
            return False
        return self._check(force=True)

    def snapshot(self) -> PolicyStore:
        """The version in force as a store that never changes: for reading several policies
        (a tenant's and its shadows) from one version."""
        loaded = self._current()
        store = type(self).__new__(type(self))
        store._start(loaded, self.fallback_to_default, path=self.path, location=self.location)
        return store

    # ----------------------------------------------------------------------- reading

    @property
    def version(self) -> str | None:
        """The version in force: a digest of the files, an AppConfig version label, or None for a
        store built from in-memory documents."""
        return self._current().version

    @property
    def warnings(self) -> tuple[Problem, ...]:
        """The warnings of the version in force."""
        return self._current().warnings

    @property
    def tenants(self) -> tuple[str, ...]:
        """The tenants that have their own policy file, sorted."""
        return tuple(sorted(n for n in self._current().policies if n != DEFAULT_POLICY))

    def get(self, tenant: str) -> Policy:
        """The tenant's policy; `UnknownTenant` if it has no file (unless `fallback_to_default`)."""
        validate_tenant(tenant)
        policies = self._current().policies
        policy = policies.get(tenant)
        if policy is not None:
            return policy
        if self.fallback_to_default:
            return policies[DEFAULT_POLICY]
        tenants = sorted(n for n in policies if n != DEFAULT_POLICY)
        near = _close(tenant, tenants)
        raise UnknownTenant(
            f"no policy for tenant {tenant!r}" + (f" ({near})" if near else "") + "; this store "
            "does not fall back to default (fallback_to_default=False)"
        )

    def policy(self, policy_id: str) -> Policy:
        """The policy with this id (`default` or a tenant file's name), never a fallback.

        For a policy's `shadow` ids, which the store checked when it was built: they always
        exist. Any other id that is not a policy of this store raises `UnknownTenant`.
        """
        return self._policy_in(self._current(), policy_id)

    @staticmethod
    def _policy_in(loaded: _Version, policy_id: str) -> Policy:
        policy = loaded.policies.get(policy_id)
        if policy is None:
            near = _close(policy_id, loaded.policies)
            raise UnknownTenant(
                f"no policy {policy_id!r} in this store" + (f" ({near})" if near else "")
            )
        return policy

    def shadows(self, policy: Policy) -> tuple[Policy, ...]:
        """The policies `policy` names under `shadow`, in the order named (its own list only)."""
        loaded = self._current()
        return tuple(self._policy_in(loaded, name) for name in policy.shadow)

    def __contains__(self, tenant: object) -> bool:
        return isinstance(tenant, str) and tenant in self._current().policies

    def __iter__(self) -> Iterator[Policy]:
        policies = self._current().policies
        return iter([policies[n] for n in sorted(policies)])
