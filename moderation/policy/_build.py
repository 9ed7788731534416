"""Building a version: every policy document of a source read, checked together and resolved.

`build_version` reads each document, checks each file (`FileChecker`), resolves every `extends`
chain (`Resolver`) and, if nothing was found wrong, hands out one immutable `Version` of every
`Policy`. If anything is wrong, `PolicyError` lists every problem and nothing is half-loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from moderation.errors import PolicyError, Problem
from moderation.policy._check import BAND_KEYS, CheckedFile, FileChecker, check_shadow_names
from moderation.policy._model import (
    _TENANT_ID,
    CONTENT_TYPES,
    DEFAULT_MAX_FRAMES,
    DEFAULT_POLICY,
    Budget,
    CategoryRule,
    EscalationPolicy,
    FrozenDict,
    Policy,
    QaSample,
    ReviewRules,
    Thresholds,
)
from moderation.policy._resolve import Resolved, Resolver
from moderation.policy._yaml import Excerpt, YamlDocument, read_yaml
from moderation.policy.sources import Entry

__all__ = ["Version", "build_version", "with_init_hint"]

# What a directory source says when there is no store yet: the first problem a new user meets (an
# installed package has no policies), so its hint says how to start.
_NO_STORE = ("default.yaml not found", "policy directory not found")
_INIT_HINT = "default.yaml: `moderation policy init DIR` writes the starter policies there"


def with_init_hint(problem: Problem) -> Problem:
    """`problem`, with a hint to run `moderation policy init` if it says there is no store."""
    if problem.message in _NO_STORE and problem.hint is None:
        return replace(problem, hint=f"a store needs {_INIT_HINT}")
    return problem


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
class Version:
    """One validated version of every policy: built whole, then swapped in by one assignment."""

    policies: Mapping[str, Policy]
    warnings: tuple[Problem, ...]
    version: str | None
    # Shadow candidates, each with the policies that name it: policies, but never tenants.
    candidates: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def build_version(sources: Mapping[str, Entry], version: str | None) -> Version:
    """Every policy of `sources`, checked together; PolicyError listing every problem."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    files, broken = _check_files(sources, problems, warnings)
    # Every file that could be read is merged, problems or not, so one run reports merge
    # problems too; a tenant whose parent could not be read is skipped (the cause is listed).
    check_shadow_names(files, broken, problems)
    resolver = Resolver(files, broken, problems, warnings)
    resolved = {name: resolver.resolve(name) for name in sorted(files)}
    found_warnings = tuple(_unique(warnings))
    if problems:
        raise PolicyError(_unique(problems), found_warnings)
    policies = {
        name: _policy(name, r, files[name].shadow, version)
        for name, r in resolved.items()
        if r is not None
    }
    return Version(
        MappingProxyType(policies), found_warnings, version, _candidates(policies.values())
    )


def _candidates(policies: Iterable[Policy]) -> Mapping[str, tuple[str, ...]]:
    """Every policy named under another's `shadow`, with the ids that name it. `default` is the
    base every tenant extends, never a candidate, even when a policy compares itself with it."""
    named: dict[str, list[str]] = {}
    for policy in policies:
        for name in policy.shadow:
            if name != DEFAULT_POLICY:
                named.setdefault(name, []).append(policy.id)
    return MappingProxyType({name: tuple(by) for name, by in named.items()})


def _check_files(
    sources: Mapping[str, Entry], problems: list[Problem], warnings: list[Problem]
) -> tuple[dict[str, CheckedFile], set[str]]:
    """Each document read and checked on its own: the files that could be read, and the names
    of those that could not (`broken`: their problems are listed, so nothing built on them is)."""
    files: dict[str, CheckedFile] = {}
    broken: set[str] = set()
    if DEFAULT_POLICY not in sources:
        broken.add(DEFAULT_POLICY)  # its tenants are not also told it does not exist
        problems.append(
            Problem("default.yaml", "", "no default policy", "every store needs default.yaml")
        )
    for name, (shown, content) in sources.items():
        if isinstance(content, Problem):
            problems.append(with_init_hint(content))
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
        f = CheckedFile(name, shown, doc)
        FileChecker(f, problems, warnings).run()
        files[name] = f
    return files, broken


def _thresholds(value: Any) -> Thresholds:
    if value == "allow":
        return Thresholds(allow=True)
    return Thresholds(**{k: value.get(k) for k in BAND_KEYS})


def _policy(name: str, resolved: Resolved, shadow: tuple[str, ...], version: str | None) -> Policy:
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
        review=_review(merged["review"]) if "review" in merged else None,
        version=version,
    )


def _review(section: Mapping[str, Any]) -> ReviewRules:
    """The desk's rules from a merged `review:` section; what it leaves out keeps its default."""
    rules: dict[str, Any] = {}
    if "sla" in section:
        rules["sla_seconds"] = section["sla"]
    if "reviewers" in section:
        rules["reviewers"] = section["reviewers"]
    if "priority" in section:
        rules["priority"] = FrozenDict(sorted(section["priority"].items()))
    if "blur" in section:
        rules["blur"] = tuple(section["blur"])
    if "qa_sample" in section:
        rules["qa_sample"] = QaSample(**section["qa_sample"])
    if "golden_rate" in section:
        rules["golden_rate"] = section["golden_rate"]
    return ReviewRules(**rules)


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))
