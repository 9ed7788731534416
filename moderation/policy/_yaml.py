"""Safe YAML reading for policy files: line numbers per key path, and the traps PyYAML leaves open.

PyYAML keeps the last of two duplicate keys without a word, and an alias can expand a small file
into billions of nodes; both are refused here. Only the safe constructor builds values, so a tag
that would build a Python object is an error, never an object.

Each file is parsed once: the node tree is composed (by libyaml when it is installed and the text
cannot nest deeply enough to crash it), walked for line numbers, duplicate keys, null spellings
and the node budget, and the data is constructed from that same tree. A syntax error is re-read
by the pure-Python parser, so its message does not depend on libyaml, and then located by
`_diagnose`, which looks for the line where the mistake is rather than where the parser gave up.
"""

from __future__ import annotations

import difflib
import enum
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from moderation.errors import Problem

__all__ = [
    "FAST_LOADER",
    "MAX_DOCUMENT_BYTES",
    "MAX_NODES",
    "MAX_POLICY_BYTES",
    "SAFE_LOADER",
    "Excerpt",
    "KeyPath",
    "YamlDocument",
    "loader_for",
    "read_yaml",
    "split_document",
]

MAX_POLICY_BYTES = 256 * 1024
# Expanded node visits; a real policy has a few hundred. Bounds alias bombs and recursive aliases.
MAX_NODES = 20_000
MAX_DEPTH = 32  # a policy is five levels deep; a recursive alias is infinitely deep

SAFE_LOADER: type[yaml.SafeLoader] = yaml.SafeLoader
FAST_LOADER: type[Any] | None = yaml.CSafeLoader if yaml.__with_libyaml__ else None
# libyaml composes nested collections by recursion on the C stack, and a document nested some
# 20,000+ levels deep (a few dozen KiB of `[`) crashes the process. Only `[`, `{`, `-` and `?`
# open a level without a new line; indentation alone cannot reach more than ~730 levels inside
# MAX_POLICY_BYTES. So a text with fewer than this many of those characters cannot nest deeper
# than a few thousand levels, which libyaml handles; anything else goes to the pure-Python parser,
# which stops at Python's recursion limit with a RecursionError.
_LIBYAML_OPENERS = 1_000

_NULL_TAG = "tag:yaml.org,2002:null"

KeyPath = tuple[str, ...]


@dataclass(slots=True)
class YamlDocument:
    """What a policy file says: the data, the line of each mapping key, and how nulls are spelled.

    `nulls` maps the key path of every null value to its spelling in the file: `'null'`, `'~'`,
    `'Null'`, `'NULL'`, or `''` for a key written with no value at all.
    """

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    nulls: dict[KeyPath, str] = field(default_factory=dict)

    def line(self, path: KeyPath) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


class _TooComplex(Exception):
    pass


class _Lenient(Exception):
    """libyaml accepted something the pure-Python parser refuses: it must decide."""


def _scalar_key(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return str(node.value)
    return "<complex key>"


def _plain_with_question(node: yaml.ScalarNode) -> bool:
    return not node.style and "?" in node.value  # plain style: None, or "" from libyaml


def _walk(
    node: yaml.Node,
    path: KeyPath,
    doc: YamlDocument,
    problems: list[Problem],
    file: str,
    budget: list[int],
    flow: bool = False,
) -> None:
    budget[0] -= 1
    if budget[0] < 0 or len(path) > MAX_DEPTH:
        raise _TooComplex
    flow = flow or bool(getattr(node, "flow_style", False))
    if isinstance(node, yaml.ScalarNode):
        # libyaml reads `{per: 1?h}` as the text `1?h`; PyYAML ends a plain scalar in a flow
        # collection at `?` and refuses the line. The verdict must not depend on the parser.
        if flow and _plain_with_question(node):
            raise _Lenient
    elif isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = _scalar_key(key_node)
            line = key_node.start_mark.line + 1
            if flow and isinstance(key_node, yaml.ScalarNode) and _plain_with_question(key_node):
                raise _Lenient  # (a key is not a node of the budget: checked here, not walked)
            if key == "<<":  # YAML merge key; the constructor resolves it
                _walk(value_node, path, doc, problems, file, budget, flow)
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
            here = (*path, key)
            doc.lines.setdefault(here, line)
            if isinstance(value_node, yaml.ScalarNode) and value_node.tag == _NULL_TAG:
                # The node keeps what the file says: '' for `key:` with nothing after it.
                doc.nulls[here] = str(value_node.value)
            else:
                doc.nulls.pop(here, None)  # a later duplicate with a value
            _walk(value_node, here, doc, problems, file, budget, flow)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, str(i)), doc, problems, file, budget, flow)


# libyaml accepts what PyYAML refuses in a few places: a tab inside a plain value or between
# tokens, a byte order mark after the start, a comment glued to a block scalar header (`|#`), and
# characters PyYAML's reader calls non-printable. A text with any of these is left to PyYAML, whose
# verdict is the one that holds wherever libyaml is not installed.
_LENIENT_IN_LIBYAML = re.compile(
    "[\t]|(?<!^)\ufeff|[|>][-+0-9]*#"
    "|[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


def loader_for(text: str) -> type[Any]:
    """The loader class for `text`: libyaml's when installed and safe for it, else pure Python."""
    if FAST_LOADER is None:
        return SAFE_LOADER
    openers = text.count("[") + text.count("{") + text.count("-") + text.count("?")
    if openers >= _LIBYAML_OPENERS or _LENIENT_IN_LIBYAML.search(text):
        return SAFE_LOADER
    return FAST_LOADER


def read_yaml(
    text: str | bytes, file: str, *, prefer_libyaml: bool = True
) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse one policy document, and the problems found; None when it could not be read at all.

    `prefer_libyaml=False` forces the pure-Python parser (the result is the same; tests compare).
    """
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
    loader_class = loader_for(text) if prefer_libyaml else SAFE_LOADER
    if loader_class is not SAFE_LOADER:
        try:
            doc, problems = _read_with(loader_class, text, file)
        except (yaml.YAMLError, UnicodeError, _Lenient):
            pass
        else:
            if doc is not None:
                return doc, problems
        # Anything but a document is read again in pure Python, so that what a person is told
        # does not depend on whether libyaml is installed.
    try:
        return _read_with(SAFE_LOADER, text, file)
    except yaml.YAMLError as exc:
        return None, [_syntax_problem(exc, text, file)]


def _read_with(
    loader_class: type[Any], text: str, file: str
) -> tuple[YamlDocument | None, list[Problem]]:
    loader = loader_class(text)
    try:
        return _read(loader, file)
    finally:
        loader.dispose()


def _read(loader: Any, file: str) -> tuple[YamlDocument | None, list[Problem]]:
    """Compose every document, walk the one there should be, and construct its data.

    Syntax errors propagate (the caller words them); everything else becomes a Problem here.
    """
    root = _compose_root(loader, file)
    if isinstance(root, Problem):
        return None, [root]
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
    data = _construct(loader, root, file)
    if isinstance(data, Problem):
        return None, [data]
    doc.data = data
    # Duplicate keys are reported, and the rest of the file is still checked so that one run
    # shows every problem.
    return doc, problems


def _compose_root(loader: Any, file: str) -> yaml.MappingNode | Problem:
    """The one document's root mapping, or why there is none."""
    try:
        nodes = []
        while loader.check_node():
            nodes.append(loader.get_node())
    except RecursionError:
        return Problem(file, "", "YAML nesting is too deep", "a policy is a few levels deep")
    if len(nodes) != 1:
        what = "is empty" if not nodes else f"holds {len(nodes)} documents"
        return Problem(file, "", f"the file {what}; a policy is one YAML mapping")
    root = nodes[0]
    if not isinstance(root, yaml.MappingNode):
        return Problem(
            file,
            "",
            f"a policy must be a mapping of keys, not a {type(root).__name__[:-4].lower()}",
            "start with `id:` or `extends:`",
            root.start_mark.line + 1,
        )
    return root


def _construct(loader: Any, root: yaml.MappingNode, file: str) -> dict[Any, Any] | Problem:
    """The data of a walked tree, or why it cannot be built."""
    # The walk has bounded the tree (aliases expanded, depth), so constructing it is safe; the
    # constructor shares aliased nodes rather than copying them.
    try:
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        message = exc.problem or str(exc)
        if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in str(exc.problem):
            message = f"YAML tag not allowed: {exc.problem}"
            return Problem(file, "", message, "policies hold plain values; remove the tag", line)
        return Problem(file, "", f"YAML error: {message}", None, line)
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as exc:
        return Problem(file, "", f"YAML error: {exc}")
    if not isinstance(data, dict):  # `!!set {a, b}` is a mapping node that builds a set
        return Problem(
            file,
            "",
            f"a policy must be a mapping of keys, not a {type(data).__name__}",
            "start with `id:` or `extends:`",
            root.start_mark.line + 1,
        )
    return data


# --------------------------------------------------------------------------- syntax errors


def _syntax_problem(exc: Exception, text: str, file: str) -> Problem:
    if not isinstance(exc, yaml.MarkedYAMLError):
        return Problem(file, "", f"YAML syntax error: {exc}")
    line, message, hint = _diagnose(text, exc)
    return Problem(file, "", f"YAML syntax error: {message}", hint, line)


def _diagnose(text: str, exc: yaml.MarkedYAMLError) -> tuple[int | None, str, str | None]:
    """Where the mistake behind `exc` most likely is: (line, message, hint).

    The parser reports where it gave up, which for an unclosed quote is the end of the file and
    for `key:value` is the line after. An unclosed quote or bracket is reported where it opens
    (the parser's context mark); a layout mistake at or before the parser's line is reported by
    `_Layout`; anything else keeps the parser's own words and line.
    """
    problem_line = exc.problem_mark.line + 1 if exc.problem_mark else None
    context_line = exc.context_mark.line + 1 if exc.context_mark else None
    problem = exc.problem or "invalid YAML"
    if exc.context == "while scanning a quoted scalar" and "end of stream" in problem:
        assert exc.context_mark is not None
        quote = text[exc.context_mark.index] if exc.context_mark.index < len(text) else "'"
        return context_line, "this quoted text is never closed", f"end it with {quote} on this line"
    if exc.context in ("while parsing a flow mapping", "while parsing a flow sequence"):
        assert exc.context_mark is not None
        opener = text[exc.context_mark.index]
        closer = "}" if opener == "{" else "]"
        if not _closes(text, exc.context_mark.index):
            return (
                context_line,
                f"the '{opener}' on this line is never closed",
                (f"close it with '{closer}'"),
            )
        hint = f"separate the entries of {opener}...{closer} with commas"
        return problem_line, problem, hint
    finding = _Layout(text).first_mistake()
    if finding is not None and (problem_line is None or finding[0] <= problem_line):
        return finding
    return problem_line, problem, None


def _closes(text: str, start: int) -> bool:
    """Whether the flow collection opened at `text[start]` is closed by its own bracket."""
    stack: list[str] = []
    quote = ""
    i = start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote and quote == "'" and text[i + 1 : i + 2] == "'":
                i += 1  # '' inside '...' is a quote character
            elif ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"':
                i += 1
        elif ch in "'\"" and _starts_scalar(text, i):
            quote = ch
        elif ch == "#" and text[i - 1 : i] in (" ", "\t", "\n"):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif ch in "[{":
            stack.append(ch)
        elif ch in "]}":
            if not stack or _CLOSER[stack.pop()] != ch:
                return False
            if not stack:
                return True
        i += 1
    return False


_CLOSER = {"[": "]", "{": "}"}


def _starts_scalar(text: str, i: int) -> bool:
    """Whether a quote at `text[i]` opens a quoted scalar (not an apostrophe in a plain word)."""
    j = i - 1
    while j >= 0 and text[j] in " \t":
        j -= 1
    return j < 0 or text[j] in "[{,:\n-?"


def _scan(text: str, quote: str, brackets: str) -> tuple[str, str]:
    """What is still open after `text`, given what was open before it: (quote, brackets)."""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote and quote == "'" and text[i + 1 : i + 2] == "'":
                i += 1
            elif ch == quote:
                quote = ""
            elif ch == "\\" and quote == '"':
                i += 1
        elif ch in "'\"" and (i == 0 or _starts_scalar(text, i)):
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            break
        elif ch in "[{":
            brackets += ch
        elif ch in "]}":
            brackets = brackets[:-1]
        i += 1
    return quote, brackets


# A key at the start of a line: plain (not starting with an indicator) or quoted, then ': ' or ':'
# at the end of the line.
_KEY = re.compile(r"""(?:[^\s#'"{}\[\],&*!|>%@`?-][^#]*?|'[^']*'|"[^"]*")\s*:(?:\s+|$)""")
# `key:value`: a plausible key glued to its value (not a URL, a time, or `a:b:c`).
_NO_SPACE = re.compile(r"(?P<key>[A-Za-z_][\w &-]*?):(?P<value>[^\s:/][^:]*)$")
_BLOCK_SCALAR = re.compile(r"[|>][-+0-9]*$")


_Finding = tuple[int, str, str | None]  # a layout mistake: (line, message, hint)


class _Next(enum.Enum):
    """The line says nothing yet: read the next one."""

    LINE = enum.auto()


class _Layout:
    """A line-by-line reading of block layout, to find the line a YAML syntax error comes from.

    It follows block mappings by indentation and skips what it does not judge (block scalars,
    quoted and flow values over several lines, plain values wrapped over lines). It stops at the
    first list, which policies do not have. It is consulted only after the parser has refused
    the text, and believed only at or before the line where the parser gave up.
    """

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def first_mistake(self) -> _Finding | None:
        """The first line whose layout is wrong: (line, message, hint); None if none is found."""
        reading = _LayoutReading()
        for number, raw in enumerate(self.lines, 1):
            verdict = reading.line(number, raw)
            if verdict is not _Next.LINE:
                return verdict
        return None


class _LayoutReading:
    """Where a `_Layout` reading stands between lines; each step judges one line."""

    def __init__(self) -> None:
        self.levels: list[int] = []  # indentation of each open block mapping, outermost first
        self.expect_child = False  # the previous key had no value on its line
        self.wrap_indent: int | None = None  # a plain value may continue on lines deeper than this
        self.block_indent: int | None = None  # in a block scalar: deeper lines are its text
        self.pending = ("", "")  # a quoted or flow value still open: (quote, brackets)

    def line(self, number: int, raw: str) -> _Finding | Literal[_Next.LINE] | None:
        """A finding, None to stop without one (layout this does not judge), or read on."""
        if self._inside_value(raw):
            return _Next.LINE
        content = raw.lstrip(" ").rstrip()
        indent = len(raw) - len(raw.lstrip(" "))
        if content.startswith("\t"):
            return number, "a tab in the indentation", "indent with spaces; YAML refuses tabs"
        if self.wrap_indent is not None:
            if indent > self.wrap_indent:
                if _KEY.match(content):
                    return _indent_mistake(number, indent, self.wrap_indent)
                return _Next.LINE  # the value of the line before wraps onto this one
            self.wrap_indent = None
        is_item = content == "-" or content.startswith("- ")
        if self.expect_child and is_item and indent >= self.levels[-1]:
            return None  # a list under its key: valid YAML, and no layout this judges
        misplaced = self._nest(number, indent)
        if misplaced is not None:
            return misplaced
        self.expect_child = False
        if is_item:
            return (
                number,
                "a list item where a key was expected",
                ("policies hold no lists; write `key: value` without the dash"),
            )
        if content.startswith("?"):
            return None  # a complex key: beyond this reading
        return self._key_line(number, content, indent)

    def _inside_value(self, raw: str) -> bool:
        """Whether `raw` is blank, a comment, or text of a value begun on an earlier line."""
        if self.pending != ("", ""):
            self.pending = _scan(raw, *self.pending)
            return True
        content = raw.lstrip(" ").rstrip()
        if not content or content.startswith("#") or content in ("---", "..."):
            return True
        if self.block_indent is not None:
            if len(raw) - len(raw.lstrip(" ")) > self.block_indent:
                return True
            self.block_indent = None
        return False

    def _nest(self, number: int, indent: int) -> _Finding | None:
        """Place a key line among the open mappings; a finding if its indentation fits none."""
        levels = self.levels
        if not levels or (self.expect_child and indent > levels[-1]):
            levels.append(indent)
        elif indent > levels[-1]:
            return _indent_mistake(number, indent, levels[-1])
        elif indent < levels[-1]:
            popped = levels[-1]
            while levels and levels[-1] > indent:
                popped = levels.pop()
            if not levels or levels[-1] != indent:
                return _indent_mistake(number, indent, popped)
        return None

    def _key_line(self, number: int, content: str, indent: int) -> _Finding | Literal[_Next.LINE]:
        """Judge `key: value` and note what its value makes of the lines after it."""
        key = _KEY.match(content)
        if key is None:
            glued = _NO_SPACE.match(content)
            if glued:
                return (
                    number,
                    "no space after ':'",
                    (f"write `{glued['key']}: {glued['value'].strip()}`"),
                )
            return number, "a key without ':'", "write `key: value`"
        value = content[key.end() :]
        if value[:1] in ("'", '"', "[", "{"):
            self.pending = _scan(value, "", "")
            return _Next.LINE
        value = value.split(" #", 1)[0].strip()
        if not value or (value[0] in "&!" and " " not in value):
            self.expect_child = True  # nothing, or only an anchor or a tag: children follow
        elif _BLOCK_SCALAR.match(value):
            self.block_indent = indent
        elif ": " in value:
            return number, "a second ': ' in a value", f"quote the value: '{value}'"
        else:
            self.wrap_indent = indent
        return _Next.LINE


def _indent_mistake(number: int, indent: int, siblings: int) -> tuple[int, str, str]:
    spaces = f"{indent} space{'s' if indent != 1 else ''}"
    theirs = f"use {siblings}" if siblings else "are not indented"
    return number, "wrong indentation", f"indented {spaces}, but its siblings {theirs}"


# ------------------------------------------------------------------ one document, many policies


@dataclass(frozen=True, slots=True)
class Excerpt:
    """One policy cut out of a larger document: `text` begins on line `first_line` (1-based) of
    it, so that problems are reported at the document's own line numbers."""

    text: str
    first_line: int


#: The largest multi-policy document read (AppConfig's own limit is lower unless raised).
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
_TOP_KEYS = ("default", "tenants")
_NULL_TAG = "tag:yaml.org,2002:null"
_DEFAULT = "default"


def _node_line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _compose(text: str, where: str) -> yaml.Node | Problem:
    """The document's node tree (aliases not expanded), or why there is none."""
    loader = yaml.SafeLoader(text)
    nodes: list[yaml.Node] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None:
                nodes.append(node)
    except yaml.YAMLError as exc:
        return _syntax_problem(exc, text, where)
    except RecursionError:
        return Problem(where, "", "YAML nesting is too deep")
    finally:
        loader.dispose()
    if len(nodes) != 1:
        what = "is empty" if not nodes else f"holds {len(nodes)} documents"
        return Problem(
            where,
            "",
            f"the configuration {what}; it is one YAML or JSON mapping",
            "{default: <policy>, tenants: {<tenant>: <policy>, ...}}",
        )
    return nodes[0]


def split_document(data: bytes, where: str) -> dict[str, tuple[str, Excerpt | Problem]]:
    """The policies of one document: `{default: <policy>, tenants: {<id>: <policy>}}`.

    Each policy is cut out of the document as an `Excerpt` and read by the store like a file,
    named `<where>#default` or `<where>#tenants/<id>`, with the document's line numbers. What is
    wrong with the document's own shape is reported under `<where>`.
    """
    return _DocumentSplitter(where).split(data)


class _DocumentSplitter:
    """One reading of a multi-policy document: the policies found, and what is wrong with it."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.text = ""
        self.files: dict[str, tuple[str, Excerpt | Problem]] = {}
        self.problems: list[Problem] = []

    def split(self, data: bytes) -> dict[str, tuple[str, Excerpt | Problem]]:
        """The document's own problems first (keyed so they sort ahead), then each policy."""
        self._decode(data)
        root = None if self.problems else self._root()
        if isinstance(root, yaml.MappingNode):
            self._read_top_keys(root)
            self._require_default()
        elif self.problems:
            # Nothing could be read: the document's problem stands for the default policy too.
            self.files[_DEFAULT] = (self.where, self.problems.pop(0))
        # What is wrong with the document itself first, then each policy's problems.
        head = {f"\0document{i}": (self.where, p) for i, p in enumerate(self.problems)}
        return head | self.files

    def _problem(
        self, path: str, message: str, hint: str | None = None, line: int | None = None
    ) -> None:
        self.problems.append(Problem(self.where, path, message, hint, line))

    def _decode(self, data: bytes) -> None:
        if len(data) > MAX_DOCUMENT_BYTES:
            self._problem("", f"the configuration is larger than {MAX_DOCUMENT_BYTES} bytes")
            return
        try:
            self.text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._problem("", f"not UTF-8 text: {exc.reason} at byte {exc.start}")

    def _root(self) -> yaml.Node | None:
        """The document's root node; None, with the problem recorded, when it does not compose."""
        if "\t" in self.text:
            # JSON may be indented with tabs, which YAML refuses; valid JSON has no raw tab
            # inside a string, so they can become spaces without moving anything.
            try:
                json.loads(self.text)
            except ValueError:
                pass
            else:
                self.text = self.text.replace("\t", " ")
        root = _compose(self.text, self.where)
        if isinstance(root, Problem):
            self.problems.append(root)
            return None
        if not isinstance(root, yaml.MappingNode):
            self._problem(
                "",
                "the configuration must be a mapping with the keys default and tenants",
                "{default: <policy>, tenants: {<tenant>: <policy>, ...}}",
                _node_line(root),
            )
        return root

    def _read_top_keys(self, root: yaml.MappingNode) -> None:
        seen: dict[str, int] = {}
        for key_node, value_node in root.value:
            key, line = str(key_node.value), _node_line(key_node)
            if not isinstance(key_node, yaml.ScalarNode) or key not in _TOP_KEYS:
                close = difflib.get_close_matches(key, _TOP_KEYS, n=1, cutoff=0.5)
                self._problem(
                    key,
                    f"unknown key '{key}'",
                    f"did you mean '{close[0]}'?" if close else "allowed here: default, tenants",
                    line,
                )
            elif key in seen:
                self._problem(key, f"duplicate key '{key}' (first at line {seen[key]})", None, line)
            else:
                seen[key] = line
                if key == _DEFAULT:
                    self._add_policy(_DEFAULT, f"{self.where}#default", value_node)
                else:
                    self._read_tenants(value_node, line)

    def _read_tenants(self, node: yaml.Node, line: int) -> None:
        if not isinstance(node, yaml.MappingNode):
            self._problem(
                "tenants",
                "tenants must be a mapping of tenant id to policy",
                "e.g. tenants: {kids: {extends: default}}; leave the key out for none",
                line,
            )
            return
        names: dict[str, int] = {}
        for name_node, policy_node in node.value:
            name, name_line = str(name_node.value), _node_line(name_node)
            path = f"tenants.{name}"
            if not isinstance(name_node, yaml.ScalarNode):
                self._problem("tenants", "a tenant id must be text", None, name_line)
            elif name in names:
                self._problem(
                    path,
                    f"duplicate tenant '{name}' (first at line {names[name]})",
                    "keep one",
                    name_line,
                )
            elif name == _DEFAULT:
                self._problem(
                    path,
                    "'default' is the root policy, not a tenant",
                    "write it as the top-level `default:`",
                    name_line,
                )
            else:
                names[name] = name_line
                self._add_policy(name, f"{self.where}#tenants/{name}", policy_node)

    def _add_policy(self, name: str, shown: str, node: yaml.Node) -> None:
        entry: Excerpt | Problem
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG:
            entry = Problem(
                shown, "", "empty policy", "write the policy as a mapping under this key", None
            )
        else:
            start, end = node.start_mark, node.end_mark
            entry = Excerpt(" " * start.column + self.text[start.index : end.index], start.line + 1)
        self.files[name] = (shown, entry)

    def _require_default(self) -> None:
        if _DEFAULT in self.files:
            return
        shown = f"{self.where}#default"
        self.files[_DEFAULT] = (
            shown,
            Problem(
                shown,
                "",
                "no default policy",
                "the document needs a top-level `default:` holding the root policy",
            ),
        )
