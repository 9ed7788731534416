"""Checking one policy file: what it writes, in the file's own words, and its cleaned form.

`FileChecker` validates a file's data with the file model (`PolicyFile`: types, ranges, choices,
unknown keys) and checks by hand what needs more than the data (YAML null spellings, taxonomy
names, the file's own name). Every problem is collected with its file, line, key path and a hint.
A refused entry (a whole category rule, one escalation key, one top-level key) is left out of the
cleaned form, so the file can still be merged and one run shows every problem.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from moderation.errors import Problem
from moderation.policy._file import (
    TAGS,
    BudgetFile,
    EscalationFile,
    PlainRuleFile,
    PolicyFile,
    QaSampleFile,
    ReviewFile,
    RuleFile,
)
from moderation.policy._model import (
    _DURATION,
    _DURATION_UNITS,
    CONTENT_TYPES,
    DEFAULT_POLICY,
    MAX_REVIEW_PRIORITY,
    MAX_REVIEWERS,
)
from moderation.policy._yaml import KeyPath, YamlDocument
from moderation.taxonomy import TAXONOMY

__all__ = [
    "BAND_KEYS",
    "CheckedFile",
    "FileChecker",
    "check_shadow_names",
    "close_match",
    "dotted",
]

BAND_KEYS = ("reject", "review", "escalate")
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

# What a wrong value at one key path is told: (message, with {got} for the value; hint).
_MESSAGES: dict[KeyPath, tuple[str, str | None]] = {
    ("max_frames",): ("must be a whole number from 1 to 20, got {got}", None),
    ("escalation", "budget", "calls"): ("must be a whole number >= 0, got {got}", None),
    ("escalation", "budget", "per"): (
        "must be a duration such as 30s, 15m, 1h or 1d, at most 31 days, got {got}",
        None,
    ),
    ("extends",): ("extends must name a policy, got {got}", None),
    ("escalation", "model_id"): ("must be non-empty text, got {got}", None),
    ("description",): ("must be text", None),
    ("escalation", "guidance"): ("must be text", None),
    ("categories",): ("must be a mapping of category name to rule", None),
    ("escalation",): ("must be a mapping", "e.g. {judge: none}"),
    ("escalation", "budget"): ("must be a mapping", "e.g. {calls: 1000, per: 1h}"),
    ("review",): ("must be a mapping", "e.g. {sla: 4h, reviewers: 2}"),
    ("review", "sla"): (
        "must be a duration such as 30m, 4h or 1d, at most 31 days, got {got}",
        None,
    ),
    ("review", "reviewers"): (
        f"must be a whole number from 1 to {MAX_REVIEWERS}, got {{got}}",
        None,
    ),
    ("review", "priority"): (
        "must be a mapping of category name to priority",
        "e.g. {Violence: 10, Hate Symbols: 20}",
    ),
    ("review", "blur"): (
        "must be a list of category names, got {got}",
        "e.g. [Explicit, Visually Disturbing]",
    ),
    ("review", "qa_sample"): ("must be a mapping", "e.g. {approved: 0.01, rejected: 0.02}"),
    ("review", "golden_rate"): (
        "must be a fraction from 0 to 1, got {got}",
        "e.g. 0.02 brings one golden item for about every fifty items",
    ),
}

_Clean = dict[str, Any]


@dataclass(slots=True)
class CheckedFile:
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


def close_match(word: str, options: Iterable[str], *, cutoff: float = 0.5) -> str | None:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=cutoff)
    return f"did you mean '{close[0]}'?" if close else None


# A choice is a short word, where half the letters in common is chance (`nova` and `none`): only a
# misspelling is suggested. Measured on difflib's ratio: `revew`/`review` 0.91, `bedrok`/`bedrock`
# 0.92, `Bedrock`/`bedrock` 0.86, `nova`/`none` 0.5.
_CHOICE_CUTOFF = 0.75

# What a value that is not a misspelt choice is told instead, per key.
_CHOICE_ADVICE = {
    "judge": "the judge is the service asked: `bedrock` with model_id naming the model "
    "(a Claude or Nova model id, for instance), or `none` for no judge",
}


def dotted(path: KeyPath) -> str:
    return ".".join(path)


def _is_rule(path: KeyPath) -> bool:
    return (
        path == ("default",)
        or (len(path) == 2 and path[0] == "categories")
        or (len(path) == 3 and path[0] == "categories" and path[2] in CONTENT_TYPES)
    )


def _is_threshold(path: KeyPath) -> bool:
    return path in (("min_confidence",), ("content_type_min_confidence",)) or (
        len(path) > 1 and path[-1] in BAND_KEYS and _is_rule(path[:-1])
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
            _is_rule(here)
            or here in (("escalation", "budget", "per"), ("shadow",), ("review", "sla"))
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
    if path == ("review",):
        return ReviewFile
    if path == ("review", "qa_sample"):
        return QaSampleFile
    if _is_rule(path):
        return RuleFile if path[0] == "categories" and len(path) == 2 else PlainRuleFile
    return None


def _entry(path: KeyPath) -> KeyPath:
    """What is dropped when something at `path` is refused: a whole rule, or one key (one
    category's priority, one QA fraction, or the whole `blur` list, which replaces whole)."""
    if path[0] == "review" and len(path) > 2 and path[1] in ("priority", "qa_sample"):
        return path[:3]
    if path[0] in ("categories", "escalation", "review") and len(path) > 1:
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


class FileChecker:
    """Checks one file and writes its cleaned form: canonical names, float thresholds.

    The file's data is validated with `PolicyFile` (types, ranges, choices, unknown keys); what
    needs more than the data (YAML null spellings, taxonomy names, the file's own name) is checked
    here by hand. Refused entries are left out of the cleaned form.
    """

    def __init__(self, f: CheckedFile, problems: list[Problem], warnings: list[Problem]) -> None:
        self.f = f
        self.problems = problems
        self.warnings = warnings
        self.own: list[Problem] = []
        # What the file models found: the rules the generated JSON Schema checks too.
        self.format_problems: list[Problem] = []
        self.refused_raw: set[KeyPath] = set()

    def error(self, path: KeyPath, message: str, hint: str | None = None) -> Problem:
        problem = Problem(self.f.file, dotted(path), message, hint, self.f.doc.line(path))
        self.own.append(problem)
        return problem

    def warn(self, path: KeyPath, message: str, hint: str | None = None) -> None:
        line = self.f.doc.line(path)
        self.warnings.append(Problem(self.f.file, dotted(path), message, hint, line, "warning"))

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
            problem = Problem(self.f.file, dotted(path), message, hint, self.f.doc.line(path))
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
            hint = close_match(field_name, allowed) or f"allowed here: {', '.join(allowed)}"
            return f"unknown key '{field_name}'", hint
        if kind == "missing":
            return "a budget needs both calls and per", "e.g. {calls: 1000, per: 1h}"
        if path[:1] == ("shadow",):
            return self.describe_shadow(kind, value, error.get("ctx") or {})
        if len(path) == 3 and path[0] == "review":
            return _describe_review_entry(path, value)
        if kind == "blur_duplicate":
            name = (error.get("ctx") or {}).get("name")
            return f"blur names '{name}' twice", "name each category once"
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
            near = (
                close_match(value, options, cutoff=_CHOICE_CUTOFF)
                if isinstance(value, str)
                else None
            )
            return message + (f"; {why}" if why else ""), near or _CHOICE_ADVICE.get(field_name)
        if path == ("id",):
            return f"id {value!r} does not match the file, which defines {self.f.name!r}", (
                f"use id: {self.f.name} or rename the file"
            )
        if path in _MESSAGES:
            told, advice = _MESSAGES[path]
            return told.format(got=repr(value)), advice
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
        names exist is known only once every file is read (`check_shadow_names`).
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
            elif key == "review":
                c[key] = self.review(value)
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
        for key in BAND_KEYS:
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
                if self.legacy_name(name, raw):
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
            if "Explicit" not in first:
                self.warn_narrowed(canonical, raw, value)
            self.add_rule(out, rule, raw, canonical)
        self.legacy_categories(out, legacy_rules, first)
        return out

    def legacy_name(self, name: str, raw: KeyPath) -> bool:
        """Whether `name` is a taxonomy 6.1 name (warned about); an unknown name is an error."""
        legacy = TAXONOMY.legacy(name)
        if legacy is None:
            self.error(
                raw,
                f"unknown category '{name}' in taxonomy {TAXONOMY.version}",
                _close_category(name),
            )
            return False
        self.warn(
            raw,
            f"'{name}' is a taxonomy 6.1 name; applied to "
            + " and ".join(f"'{t}'" for t in legacy.targets),
            f"{legacy.note}; write the 7.0 names instead",
        )
        return True

    def warn_narrowed(self, canonical: str, raw: KeyPath, value: Mapping[Any, Any]) -> None:
        """A 6.1 top-level name that 7.0 moved under 'Explicit', in a file not naming 'Explicit'."""
        narrowed = TAXONOMY.narrowed_by_7_0(canonical)
        if not narrowed or any(TAXONOMY.canonical(str(k)) == "Explicit" for k in value):
            return
        lost = " and ".join(f"'{s}'" for s in narrowed)
        self.warn(
            raw,
            f"in taxonomy 7.0 '{canonical}' is a level-2 category under 'Explicit', "
            f"so {lost} fall to other rules",
            "if this policy was written for 6.1, name 'Explicit' instead",
        )

    def legacy_categories(
        self,
        out: dict[str, Any],
        legacy_rules: list[tuple[str, Any, KeyPath]],
        first: Mapping[str, str],
    ) -> None:
        """The rules written under 6.1 names, applied to the 7.0 categories no 7.0 name set."""
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

    def review(self, value: Mapping[str, Any]) -> dict[str, Any]:
        """The `review:` section cleaned: sla in seconds, canonical category names."""
        out: dict[str, Any] = {}
        for key in ReviewFile.model_fields:
            path: KeyPath = ("review", key)
            if key not in value:
                continue
            if self.refused(path):
                self.f.refused.add(path)
                continue
            self.keep(path, path)
            v = value[key]
            if v is None:
                out[key] = None
            elif key == "sla":
                out[key] = _duration(v)
            elif key == "reviewers":
                out[key] = int(v)
            elif key == "priority":
                out[key] = self.review_priority(v)
            elif key == "blur":
                out[key] = self.review_blur(v)
            elif key == "golden_rate":
                out[key] = float(v)
            else:  # qa_sample
                out[key] = {k: None if p is None else float(p) for k, p in v.items()}
        return out

    def review_priority(self, value: Mapping[Any, Any]) -> dict[str, Any]:
        """Category -> priority, by canonical name; a name written twice is an error."""
        out: dict[str, Any] = {}
        first: dict[str, str] = {}
        for raw_name, priority in value.items():
            name = str(raw_name)
            raw: KeyPath = ("review", "priority", name)
            canonical = self.review_category(name, raw, "priority")
            if canonical is None:
                continue
            clean: KeyPath = ("review", "priority", canonical)
            if canonical in first:
                self.error(
                    raw,
                    f"'{name}' names the same category as '{first[canonical]}'",
                    "names match case-insensitively; keep one",
                )
                continue
            first[canonical] = name
            if self.refused(raw):
                self.f.refused.add(clean)
                continue
            self.keep(raw, clean)
            out[canonical] = None if priority is None else int(priority)
        return out

    def review_blur(self, value: list[str]) -> list[str]:
        """The categories to blur, by canonical name, in the order written."""
        out: list[str] = []
        for i, name in enumerate(value):
            raw: KeyPath = ("review", "blur", str(i))
            canonical = self.review_category(name, raw, "blur")
            if canonical is None:
                continue
            if canonical in out:
                self.error(
                    raw, f"'{name}' names a category already listed", "name each category once"
                )
                continue
            out.append(canonical)
        return out

    def review_category(self, name: str, raw: KeyPath, where: str) -> str | None:
        """The canonical name of a category the `review:` section names; None (reported) if the
        taxonomy has no such category."""
        canonical = TAXONOMY.canonical(name)
        if canonical is not None:
            return canonical
        legacy = TAXONOMY.legacy(name)
        if legacy is not None:
            targets = " and ".join(f"'{t}'" for t in legacy.targets)
            self.error(
                raw,
                f"'{name}' is a taxonomy 6.1 name, not a {TAXONOMY.version} category",
                f"{legacy.note}; under {where}, write {targets}",
            )
        else:
            self.error(
                raw,
                f"unknown category '{name}' in taxonomy {TAXONOMY.version}",
                _close_category(name),
            )
        return None


def _describe_review_entry(path: KeyPath, value: Any) -> tuple[str, str | None]:
    """A pydantic error about one entry of `review.priority`, `review.blur` or
    `review.qa_sample`: (message, hint)."""
    if path[1] == "priority":
        return f"must be a whole number from 0 to {MAX_REVIEW_PRIORITY}, got {value!r}", (
            "higher goes first; `null` removes an inherited priority"
        )
    if path[1] == "blur":
        return f"must be a category name, got {value!r}", "e.g. [Explicit, Visually Disturbing]"
    return f"must be a fraction from 0 to 1, got {value!r}", (
        "e.g. 0.01 sends one in a hundred to the desk"
    )


def _shadow_path(value: Any, index: int) -> KeyPath:
    """Where a shadow entry is: `shadow` for a single id, `shadow.<index>` in a list."""
    return ("shadow",) if isinstance(value, str) else ("shadow", str(index))


def check_shadow_names(
    files: Mapping[str, CheckedFile], broken: set[str], problems: list[Problem]
) -> None:
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
                    dotted(path),
                    f"shadow names '{name}', but there is no such policy",
                    close_match(name, files),
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
