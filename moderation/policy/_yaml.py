"""Safe YAML reading for policy files: line numbers per key path, and the traps PyYAML leaves open.

PyYAML keeps the last of two duplicate keys without a word, and an alias can expand a small file
into billions of nodes; both are refused here. Only `yaml.SafeLoader` constructs values, so a tag
that would build a Python object is an error, never an object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from moderation.errors import Problem

__all__ = ["MAX_NODES", "MAX_POLICY_BYTES", "KeyPath", "YamlDocument", "read_yaml"]

MAX_POLICY_BYTES = 256 * 1024
# Expanded node visits; a real policy has a few hundred. Bounds alias bombs and recursive aliases.
MAX_NODES = 20_000
MAX_DEPTH = 32  # a policy is five levels deep; a recursive alias is infinitely deep

KeyPath = tuple[str, ...]


@dataclass(slots=True)
class YamlDocument:
    """What a policy file says: the data, and the line where each mapping key stands."""

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line(self, path: KeyPath) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


class _TooComplex(Exception):
    pass


def _scalar_key(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return str(node.value)
    return "<complex key>"


def _walk(
    node: yaml.Node,
    path: KeyPath,
    doc: YamlDocument,
    problems: list[Problem],
    file: str,
    budget: list[int],
) -> None:
    budget[0] -= 1
    if budget[0] < 0 or len(path) > MAX_DEPTH:
        raise _TooComplex
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = _scalar_key(key_node)
            line = key_node.start_mark.line + 1
            if key == "<<":  # YAML merge key; SafeLoader resolves it
                _walk(value_node, path, doc, problems, file, budget)
                continue
            if key in seen:
                problems.append(
                    Problem(
                        file,
                        ".".join((*path, key)),
                        f"duplicate key '{key}' (first at line {seen[key]}); YAML would keep "
                        "only the last one",
                        "remove or merge one of them",
                        line,
                    )
                )
            seen.setdefault(key, line)
            doc.lines.setdefault((*path, key), line)
            _walk(value_node, (*path, key), doc, problems, file, budget)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, str(i)), doc, problems, file, budget)


def read_yaml(text: str | bytes, file: str) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse one policy document, and the problems found; None when it could not be read at all."""
    # surrogatepass: a str with a lone surrogate is counted here and refused by the YAML reader.
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > MAX_POLICY_BYTES:
        return None, [
            Problem(
                file,
                "",
                f"file is larger than the {MAX_POLICY_BYTES}-byte bound for a policy",
                "split it across tenants with `extends`",
            )
        ]
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, [Problem(file, "", f"not UTF-8 text: {exc.reason} at byte {exc.start}")]
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        return None, [Problem(file, "", f"YAML syntax error: {exc.problem}", None, line)]
    except yaml.YAMLError as exc:
        return None, [Problem(file, "", f"YAML syntax error: {exc}")]
    except RecursionError:
        return None, [
            Problem(file, "", "YAML nesting is too deep", "a policy is a few levels deep")
        ]
    if len(nodes) != 1:
        what = "is empty" if not nodes else f"holds {len(nodes)} documents"
        return None, [Problem(file, "", f"the file {what}; a policy is one YAML mapping")]
    root = nodes[0]
    if not isinstance(root, yaml.MappingNode):
        return None, [
            Problem(
                file,
                "",
                f"a policy must be a mapping of keys, not a {type(root).__name__[:-4].lower()}",
                "start with `id:` or `extends:`",
                root.start_mark.line + 1,
            )
        ]
    doc = YamlDocument(data=None)
    problems: list[Problem] = []
    try:
        _walk(root, (), doc, problems, file, [MAX_NODES])
    except _TooComplex:
        return None, [
            Problem(
                file,
                "",
                f"document expands to more than {MAX_NODES} nodes or {MAX_DEPTH} levels (aliases?)",
                "write the policy out without recursive or repeated aliases",
            )
        ]
    try:
        doc.data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        message = exc.problem or str(exc)
        if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in str(exc.problem):
            message = f"YAML tag not allowed: {exc.problem}"
            return None, [
                Problem(file, "", message, "policies hold plain values; remove the tag", line)
            ]
        return None, [Problem(file, "", f"YAML error: {message}", None, line)]
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as exc:
        return None, [Problem(file, "", f"YAML error: {exc}")]
    if not isinstance(doc.data, dict):  # `!!set {a, b}` is a mapping node that builds a set
        return None, [
            Problem(
                file,
                "",
                f"a policy must be a mapping of keys, not a {type(doc.data).__name__}",
                "start with `id:` or `extends:`",
                root.start_mark.line + 1,
            )
        ]
    # Duplicate keys are reported, and the rest of the file is still checked so that one run
    # shows every problem.
    return doc, problems
