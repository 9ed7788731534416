"""The proposal as text: the tenant's policy file edited in place (comments kept) and its unified
diff, and a candidate file that runs as a `shadow:` of the live policy. Pure: no I/O.

The edit touches only the values that change: in a one-line rule (`Violence: {reject: 95,
escalate: 60}`) the numbers inside the braces, in a block rule the `reject:` / `escalate:` /
`review:` lines right under the rule's name. A rule the file does not write (inherited from the
file it extends) gets one line at the end of `categories:`. The caller checks that the edited
file loads and resolves to exactly the proposed thresholds.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

from moderation.taxonomy import normalize

__all__ = ["Change", "diff", "edit", "shadow_file"]

# rule name -> the plain thresholds that change: key (reject/review/escalate) -> new value
Change = Mapping[str, Mapping[str, float]]

_TOP_CATEGORIES = re.compile(r"^categories:\s*(#.*)?$")
_ENTRY = re.compile(r"^(\s+)(['\"]?)([^:'\"#][^:#]*?)\2:\s*(.*)$")
_KEYS = ("reject", "review", "escalate")


def _number(value: float) -> str:
    return f"{value:g}"


def _block_end(lines: list[str], start: int) -> int:
    """The index after the last line of the top-level block whose header is `lines[start]`."""
    end = start + 1
    last = start + 1
    while end < len(lines):
        line = lines[end]
        if line.strip() and not line[0].isspace() and not line.lstrip().startswith("#"):
            break
        if line.strip() and not line.lstrip().startswith("#"):
            last = end + 1
        end += 1
    return last


def _flow_edit(value: str, keys: Mapping[str, float]) -> str:
    for key, number in keys.items():
        pattern = re.compile(rf"(\b{key}\s*:\s*)([^,}}]+?)(\s*[,}}])")
        if pattern.search(value):
            value = pattern.sub(rf"\g<1>{_number(number)}\g<3>", value, count=1)
        else:
            value = re.sub(r"\s*}", f", {key}: {_number(number)}}}", value, count=1)
    return value


def _block_edit(lines: list[str], header: int, indent: str, keys: Mapping[str, float]) -> None:
    child: str | None = None
    found: set[str] = set()
    i = header + 1
    while i < len(lines) and (not lines[i].strip() or lines[i].startswith(indent + " ")):
        line = lines[i]
        stripped = line.lstrip()
        if stripped and not stripped.startswith("#"):
            here = line[: len(line) - len(stripped)]
            child = child or here
            key = stripped.split(":", 1)[0].strip()
            if here == child and key in keys:
                comment = re.search(r"\s+#.*$", stripped)
                tail = comment.group(0) if comment else ""
                lines[i] = f"{child}{key}: {_number(keys[key])}{tail}"
                found.add(key)
        i += 1
    for key in [k for k in keys if k not in found]:
        lines.insert(header + 1, f"{child or indent + '  '}{key}: {_number(keys[key])}")


def _edit_rule(lines: list[str], rule: str, keys: Mapping[str, float], full: str) -> None:
    start = next((i for i, line in enumerate(lines) if _TOP_CATEGORIES.match(line)), None)
    if start is None:
        lines.extend(["", "categories:", f"  {rule}: {full}"])
        return
    end = _block_end(lines, start)
    for i in range(start + 1, end):
        match = _ENTRY.match(lines[i])
        if match is None or normalize(match[3]) != normalize(rule):
            continue
        indent, value = match[1], match[4]
        if value.startswith("{"):
            lines[i] = lines[i][: match.start(4)] + _flow_edit(value, keys)
            return
        if not value or value.startswith("#"):
            _block_edit(lines, i, indent, keys)
            return
        lines[i] = f"{indent}{match[2]}{match[3]}{match[2]}: {full}"  # `allow` or a scalar
        return
    lines.insert(end, f"  {rule}: {full}")


def _flow(thresholds: Mapping[str, float]) -> str:
    inner = ", ".join(f"{k}: {_number(thresholds[k])}" for k in _KEYS if k in thresholds)
    return "{" + inner + "}"


def edit(text: str, changes: Change, full: Mapping[str, Mapping[str, float]]) -> str:
    """`text` (a policy file) with each rule's changed thresholds (`changes`) written in;
    `full[rule]` is the rule's whole plain thresholds, for a rule the file must add."""
    lines = text.splitlines()
    for rule, keys in changes.items():
        _edit_rule(lines, rule, keys, _flow(full[rule]))
    return "\n".join(lines) + "\n"


def diff(before: str, after: str, name: str) -> str:
    """The unified diff of a policy file's text, as `git diff` shows it."""
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"a/{name}",
            tofile=f"b/{name}",
        )
    )


def shadow_file(tenant: str, changes: Change, note: str) -> str:
    """A policy file that extends `tenant` and changes only the tuned rules' thresholds: saved as
    `tenants/<name>.yaml` and named under the live file's `shadow:`, it runs beside the live one."""
    lines = [f"# {line}" if line else "#" for line in note.splitlines()]
    lines += [
        f"extends: {tenant}",
        f"description: Thresholds proposed by moderation tune for {tenant}.",
        "categories:",
    ]
    lines += [f"  {rule}: {_flow(keys)}" for rule, keys in changes.items()]
    return "\n".join(lines) + "\n"
