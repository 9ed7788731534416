"""Reading, checking and resolving policy files into `Policy`s: the `PolicyStore`.

A store reads `default.yaml` and `tenants/*.yaml` from one directory, resolves `extends` chains with
a deep merge (RFC 7396 merge-patch: a mapping merges key by key, `null` removes what a parent set,
anything else replaces), and checks everything before it hands out a single policy. Every problem is
collected with its file, line, key path and a hint; if there is one, `PolicyError` carries them all
and nothing is half-loaded.
"""

from __future__ import annotations

import difflib
import itertools
import math
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moderation.errors import PolicyError, Problem, UnknownTenant
from moderation.policy._model import (
    _DURATION,
    _DURATION_UNITS,
    _TENANT_ID,
    CONTENT_TYPES,
    DEFAULT_POLICY,
    Budget,
    CategoryRule,
    EscalationPolicy,
    Policy,
    Thresholds,
    validate_tenant,
)
from moderation.policy._yaml import MAX_POLICY_BYTES, KeyPath, YamlDocument, read_yaml
from moderation.taxonomy import TAXONOMY

__all__ = ["PolicyStore"]

# --------------------------------------------------------------------------- reading one file

_TOP_KEYS = (
    "id",
    "description",
    "extends",
    "min_confidence",
    "content_type_min_confidence",
    "default",
    "categories",
    "escalation",
    "on_detector_error",
)
_BAND_KEYS = ("reject", "review", "escalate")
_ESCALATION_KEYS = ("judge", "model_id", "guidance", "on_error", "on_blocked", "budget")
_BUDGET_KEYS = ("calls", "per")

_Clean = dict[str, Any]


@dataclass(slots=True)
class _File:
    name: str
    file: str
    doc: YamlDocument
    clean: _Clean = field(default_factory=dict)
    lines: dict[KeyPath, int] = field(default_factory=dict)
    extends: str | None = None


def _close(word: str, options: tuple[str, ...]) -> str | None:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'?" if close else None


def _dotted(path: KeyPath) -> str:
    return ".".join(path)


class _Checker:
    """Checks one file and writes its cleaned form: canonical names, float thresholds."""

    def __init__(self, f: _File, problems: list[Problem], warnings: list[Problem]) -> None:
        self.f = f
        self.problems = problems
        self.warnings = warnings

    def error(self, path: KeyPath, message: str, hint: str | None = None) -> None:
        line = self.f.doc.line(path)
        self.problems.append(Problem(self.f.file, _dotted(path), message, hint, line))

    def warn(self, path: KeyPath, message: str, hint: str | None = None) -> None:
        line = self.f.doc.line(path)
        self.warnings.append(Problem(self.f.file, _dotted(path), message, hint, line, "warning"))

    def keep(self, raw: KeyPath, clean: KeyPath) -> None:
        line = self.f.doc.line(raw)
        if line is not None:
            self.f.lines[clean] = line

    def unknown_keys(
        self, data: Mapping[Any, Any], allowed: tuple[str, ...], path: KeyPath
    ) -> None:
        for key in data:
            if key not in allowed:
                self.error(
                    (*path, str(key)),
                    f"unknown key '{key}'",
                    _close(str(key), allowed) or f"allowed here: {', '.join(allowed)}",
                )

    def number(self, value: Any, path: KeyPath, lo: float = 0, hi: float = 100) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            hint = "write a plain number such as 80" if isinstance(value, str) else None
            self.error(path, f"must be a number from {lo:g} to {hi:g}, got {value!r}", hint)
            return None
        # Range first: math.isfinite raises OverflowError on an int too large for a float.
        if not lo <= value <= hi or not math.isfinite(value):
            self.error(path, f"must be a number from {lo:g} to {hi:g}, got {value!r}")
            return None
        return float(value)

    def choice(self, value: Any, path: KeyPath, options: tuple[str, ...], why: str = "") -> Any:
        if isinstance(value, str) and value in options:
            return value
        hint = _close(value, options) if isinstance(value, str) else None
        message = f"must be one of {', '.join(options)}, got {value!r}"
        self.error(path, message + (f"; {why}" if why else ""), hint)
        return None

    def run(self) -> None:
        data = self.f.doc.data
        c = self.f.clean
        self.unknown_keys(data, _TOP_KEYS, ())
        if "id" in data and data["id"] != self.f.name:
            self.error(
                ("id",),
                f"id {data['id']!r} does not match the file, which defines {self.f.name!r}",
                f"use id: {self.f.name} or rename the file",
            )
        if "description" in data:
            if isinstance(data["description"], str):
                c["description"] = data["description"]
            elif data["description"] is not None:
                self.error(("description",), "must be text")
        self.extends(data)
        for key in ("min_confidence", "content_type_min_confidence"):
            if key in data:
                self.keep((key,), (key,))
                c[key] = None if data[key] is None else self.number(data[key], (key,))
        if "on_detector_error" in data:
            self.keep(("on_detector_error",), ("on_detector_error",))
            c["on_detector_error"] = self.choice(
                data["on_detector_error"],
                ("on_detector_error",),
                ("raise", "review"),
                "a detector failure must never approve an image",
            )
        if "default" in data:
            self.keep(("default",), ("default",))
            c["default"] = self.band(data["default"], ("default",), ("default",), overrides=False)
        if "categories" in data:
            self.categories(data["categories"])
        if "escalation" in data:
            self.escalation(data["escalation"])

    def extends(self, data: Mapping[str, Any]) -> None:
        if self.f.name == DEFAULT_POLICY:
            if data.get("extends") is not None:
                self.error(("extends",), "default.yaml is the root policy and extends nothing")
            return
        target = data.get("extends", DEFAULT_POLICY)
        if target is None:
            target = DEFAULT_POLICY
        if not isinstance(target, str) or not _TENANT_ID.fullmatch(target):
            self.error(("extends",), f"extends must name a policy, got {target!r}")
            return
        self.f.extends = target

    def band(self, value: Any, raw: KeyPath, clean: KeyPath, *, overrides: bool) -> Any:
        if value is None:
            return None
        if value == "allow":
            return "allow"
        if not isinstance(value, Mapping):
            self.error(
                raw,
                f"a rule is `allow` or a mapping of thresholds, got {value!r}",
                "e.g. {reject: 90, escalate: 60}",
            )
            return None
        allowed = _BAND_KEYS + (CONTENT_TYPES if overrides else ())
        self.unknown_keys(value, allowed, raw)
        if not value:
            self.error(
                raw,
                "an empty rule has no thresholds",
                "give reject, review or escalate, or write `allow` to ignore the category",
            )
        out: dict[str, Any] = {}
        for key in _BAND_KEYS:
            if key in value:
                self.keep((*raw, key), (*clean, key))
                v = value[key]
                out[key] = None if v is None else self.number(v, (*raw, key))
        if overrides:
            for key in CONTENT_TYPES:
                if key in value:
                    self.keep((*raw, key), (*clean, key))
                    out[key] = self.band(value[key], (*raw, key), (*clean, key), overrides=False)
        return out

    def categories(self, value: Any) -> None:
        if value is None:
            self.f.clean["categories"] = None
            return
        if not isinstance(value, Mapping):
            self.error(("categories",), "must be a mapping of category name to rule")
            return
        out: dict[str, Any] = {}
        first: dict[str, str] = {}
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
            self.keep(raw, ("categories", canonical))
            out[canonical] = self.band(rule, raw, ("categories", canonical), overrides=True)
        for _name, rule, raw in legacy_rules:
            legacy_map = TAXONOMY.legacy(_name)
            assert legacy_map is not None
            for target in legacy_map.targets:
                if target in out:  # a 7.0 name in the same file is more specific
                    continue
                self.keep(raw, ("categories", target))
                out[target] = self.band(rule, raw, ("categories", target), overrides=True)
        self.f.clean["categories"] = out

    def escalation(self, value: Any) -> None:
        path: KeyPath = ("escalation",)
        if value is None:
            self.f.clean["escalation"] = None
            return
        if not isinstance(value, Mapping):
            self.error(path, "must be a mapping", "e.g. {judge: none}")
            return
        self.keep(path, path)  # so a problem about the block as a whole (no model_id) has a line
        self.unknown_keys(value, _ESCALATION_KEYS, path)
        out: dict[str, Any] = {}
        for key in _ESCALATION_KEYS:
            if key not in value:
                continue
            self.keep((*path, key), (*path, key))
            v = value[key]
            if v is None:
                out[key] = None
            elif key == "judge":
                out[key] = self.choice(v, (*path, key), ("bedrock", "none"))
            elif key in ("on_error", "on_blocked"):
                out[key] = self.choice(
                    v,
                    (*path, key),
                    ("review", "reject"),
                    "fail closed: a judge that fails must never publish an image",
                )
            elif key in ("model_id", "guidance"):
                if not isinstance(v, str) or (key == "model_id" and not v.strip()):
                    self.error((*path, key), f"must be {'non-empty ' * (key == 'model_id')}text")
                else:
                    out[key] = v
            elif key == "budget":
                out[key] = self.budget(v, (*path, key))
        self.f.clean["escalation"] = out

    def budget(self, value: Any, path: KeyPath) -> Any:
        if not isinstance(value, Mapping):
            self.error(path, "must be a mapping", "e.g. {calls: 1000, per: 1h}")
            return None
        self.unknown_keys(value, _BUDGET_KEYS, path)
        calls, per = value.get("calls"), value.get("per")
        ok = True
        if isinstance(calls, bool) or not isinstance(calls, int) or calls < 0:
            self.error((*path, "calls"), f"must be a whole number >= 0, got {calls!r}")
            ok = False
        seconds = _duration(per)
        if seconds is None:
            self.error(
                (*path, "per"),
                f"must be a duration such as 30s, 15m, 1h or 1d, got {per!r}",
            )
            ok = False
        return {"calls": calls, "per_seconds": seconds} if ok else None


def _close_category(name: str) -> str | None:
    found = TAXONOMY.suggest(name, n=1)
    return f"did you mean '{found[0]}'?" if found else None


def _duration(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    # `0 < value <= max float` rejects NaN, inf and ints too large to convert (no OverflowError).
    if isinstance(value, int | float) and 0 < value <= sys.float_info.max:
        return float(value)
    if isinstance(value, str):
        m = _DURATION.fullmatch(value.strip())
        if m and float(m.group(1)) > 0:
            return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    return None


# --------------------------------------------------------------------------- merging and resolving

_Origin = tuple[str, int | None]


def _drop_under(origin: dict[KeyPath, _Origin], path: KeyPath) -> None:
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
        if value is None:
            out.pop(key, None)
            _drop_under(origin, here)
            continue
        if isinstance(value, dict):
            base = out.get(key)
            if not isinstance(base, dict):
                base = {}
                _drop_under(origin, here)
            out[key] = _merge(base, value, origin, f, here)
        else:
            _drop_under(origin, here)
            out[key] = value
        origin[here] = (f.file, f.lines.get(here))
    return out


def _thresholds(value: Any) -> Thresholds:
    if value == "allow":
        return Thresholds(allow=True)
    return Thresholds(**{k: value.get(k) for k in _BAND_KEYS})


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
            parent = f.extends
            if parent in self.broken:
                return None
            if parent is not None and parent not in self.files:
                self.problems.append(
                    Problem(
                        f.file,
                        "extends",
                        f"extends '{parent}', but there is no such policy",
                        _close(parent, tuple(self.files)),
                        f.doc.line(("extends",)),
                    )
                )
                return None
            current = parent
        return chain

    def resolve(self, name: str) -> Policy | None:
        chain = self.chain(name)
        if chain is None:
            return None
        origin: dict[KeyPath, _Origin] = {}
        merged: dict[str, Any] = {}
        for f in reversed(chain):
            merged = _merge(merged, f.clean, origin, f)
        leaf = chain[0]
        before = len(self.problems)

        def at(path: KeyPath) -> _Origin:
            while path:
                if path in origin:
                    return origin[path]
                path = path[:-1]
            return (leaf.file, None)

        files_in_chain = [f.file for f in chain]

        def rank(file: str) -> int:
            return files_in_chain.index(file) if file in files_in_chain else len(chain)

        def error(path: KeyPath, message: str, hint: str | None = None) -> None:
            file, line = at(path)
            self.problems.append(Problem(file, _dotted(path), message, hint, line))

        def warn(path: KeyPath, message: str, hint: str | None = None) -> None:
            file, line = at(path)
            self.warnings.append(Problem(file, _dotted(path), message, hint, line, "warning"))

        min_conf = merged.get("min_confidence", 50.0)
        if "default" not in merged:
            error(
                ("default",),
                "no `default` rule: labels without a category rule would be ignored",
                "add e.g. default: {reject: 90, escalate: 60}, or `default: allow` to say so",
            )

        def check_band(path: KeyPath, value: Any) -> None:
            if value == "allow" or not isinstance(value, dict):
                return
            present = [(k, value[k]) for k in ("escalate", "review", "reject") if k in value]
            if not present:
                own = "after merging" if len(chain) > 1 else "of its own"
                error(
                    path,
                    f"this rule has no reject, review or escalate threshold {own}",
                    "add one, or write `allow`; animated/illustrated overrides apply only to "
                    "those images, so photos would match nothing",
                )
            for (lo_key, lo), (hi_key, hi) in itertools.pairwise(present):
                if lo > hi:
                    # Blame whichever of the two was written nearer the tenant: that is the edit
                    # that made the pair inconsistent.
                    blamed = min((lo_key, hi_key), key=lambda k: rank(at((*path, k))[0]))
                    merged_note = f" in policy '{name}' after merging" if len(chain) > 1 else ""
                    error(
                        (*path, blamed),
                        f"{lo_key} {lo:g} is above {hi_key} {hi:g}{merged_note}: bands are "
                        f"checked reject, review, escalate, so this {lo_key} band could never "
                        "be reached",
                        f"keep 0 <= escalate <= review <= reject <= 100; `{lo_key}: null` "
                        "removes an inherited threshold",
                    )
            for k, v in present:
                if v < min_conf:
                    warn(
                        (*path, k),
                        f"{k} {v:g} is below min_confidence {min_conf:g}; labels under "
                        f"{min_conf:g} never arrive, so the band starts at {min_conf:g}",
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
        if esc.get("judge") == "bedrock" and not esc.get("model_id"):
            error(
                ("escalation", "model_id"),
                "judge: bedrock needs a model_id",
                "e.g. us.anthropic.claude-haiku-4-5-20251001-v1:0",
            )
        if len(self.problems) > before:
            return None
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
        budget = esc.get("budget")
        return Policy(
            id=name,
            chain=tuple(f.name for f in chain),
            description=merged.get("description", ""),
            min_confidence=min_conf,
            content_type_min_confidence=merged.get("content_type_min_confidence", 50.0),
            default=_thresholds(merged["default"]),
            categories=categories,
            escalation=EscalationPolicy(
                **{k: v for k, v in esc.items() if k != "budget"},
                budget=Budget(**budget) if budget else None,
            ),
            on_detector_error=merged.get("on_detector_error", "raise"),
        )


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


class PolicyStore:
    """Every tenant's policy from one directory, all validated when the store is built."""

    def __init__(self, path: str | os.PathLike[str], *, fallback_to_default: bool = False) -> None:
        root = Path(path)
        if not root.is_dir():
            raise PolicyError([Problem(str(root), "", "policy directory not found")])
        self.path: Path | None = root
        self._build(self._read_dir(root), not fallback_to_default)

    @classmethod
    def from_sources(
        cls, sources: Mapping[str, str | bytes], *, fallback_to_default: bool = False
    ) -> PolicyStore:
        """A store from in-memory documents: `{"default": yaml_text, "kids": yaml_text}`."""
        store = cls.__new__(cls)
        store.path = None
        files = {
            name: (f"{name}.yaml" if name == DEFAULT_POLICY else f"tenants/{name}.yaml", text)
            for name, text in sources.items()
        }
        store._build(files, not fallback_to_default)
        return store

    @staticmethod
    def _read_dir(root: Path) -> dict[str, tuple[str, str | bytes | Problem]]:
        resolved_root = root.resolve()
        found: dict[str, tuple[str, str | bytes | Problem]] = {}
        candidates = [root / "default.yaml"]
        tenants = root / "tenants"
        if tenants.is_dir():
            candidates += sorted(p for p in tenants.iterdir() if p.suffix in (".yaml", ".yml"))
        for p in candidates:
            shown = str(p)
            name = DEFAULT_POLICY if p.parent == root else p.stem
            if name in found:
                found[f"{name}\0{p.suffix}"] = (
                    shown,
                    Problem(shown, "", f"a second file for '{name}'", "keep one of .yaml/.yml"),
                )
                continue
            if not p.exists():
                if p.name == "default.yaml":
                    found[name] = (shown, Problem(shown, "", "default.yaml not found"))
                continue
            if not p.resolve().is_relative_to(resolved_root):
                found[name] = (
                    shown,
                    Problem(shown, "", "refused: the file resolves outside the policy directory"),
                )
                continue
            if not p.is_file():
                continue
            with p.open("rb") as fh:  # a bound on what we read; read_yaml names the excess
                found[name] = (shown, fh.read(MAX_POLICY_BYTES + 1))
        return found

    def _build(
        self, sources: Mapping[str, tuple[str, str | bytes | Problem]], strict: bool
    ) -> None:
        self.strict = strict
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
            before = len(problems)
            doc, found = read_yaml(content, shown)
            problems.extend(found)
            if doc is None:
                continue
            f = _File(name, shown, doc)
            _Checker(f, problems, warnings).run()
            if len(problems) == before:
                files[name] = f
            else:
                broken.add(name)
        # Resolve every file that is itself clean, so one run reports merge problems too; a
        # tenant whose parent is broken is skipped (its parent's problems are already listed).
        resolver = _Resolver(files, broken, problems, warnings)
        policies: dict[str, Policy] = {}
        for name in sorted(files):
            policy = resolver.resolve(name)
            if policy is not None:
                policies[name] = policy
        self.warnings: tuple[Problem, ...] = tuple(_unique(warnings))
        if problems:
            raise PolicyError(_unique(problems), self.warnings)
        self._policies = policies

    @property
    def tenants(self) -> tuple[str, ...]:
        """The tenants that have their own policy file, sorted."""
        return tuple(sorted(n for n in self._policies if n != DEFAULT_POLICY))

    def get(self, tenant: str) -> Policy:
        """The tenant's policy; UnknownTenant for a tenant with no file, unless the store was built
        with `fallback_to_default=True` (then the default policy, whose id says so)."""
        validate_tenant(tenant)
        if tenant in self._policies:
            return self._policies[tenant]
        if self.strict:
            raise UnknownTenant(
                f"no policy for tenant {tenant!r} (policies: {', '.join(self.tenants) or 'none'}"
                "; to give unknown tenants the default policy, build the store with "
                "fallback_to_default=True or set MODERATION_TENANT_FALLBACK=default)"
            )
        return self._policies[DEFAULT_POLICY]

    def __contains__(self, tenant: object) -> bool:
        return isinstance(tenant, str) and tenant in self._policies

    def __iter__(self) -> Iterator[Policy]:
        return iter(self._policies[n] for n in sorted(self._policies))
