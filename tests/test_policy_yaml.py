"""Reading YAML: syntax errors point at the line with the mistake; each file is parsed once, with
libyaml when it is there, and the result does not depend on whether it is.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from test_policy import DEFAULT, ERROR_CASES, SMALL

from moderation.policy import _yaml
from moderation.policy._yaml import MAX_POLICY_BYTES, read_yaml

INDENT = "YAML syntax error: wrong indentation"

SYNTAX_CASES = [
    pytest.param(
        "id: default\ndefault: {reject: 90}\ncategories:\n  Violence:\n    reject: 95\n"
        "   escalate: 60\n  Weapons: allow\n",
        6, INDENT, "indented 3 spaces, but its siblings use 4",
        id="one-space-less-than-siblings",
    ),
    pytest.param(
        "id: default\ndefault:\n  reject: 90\n   escalate: 3\ncategories:\n  Weapons: allow\n",
        4, INDENT, "indented 3 spaces, but its siblings use 2",
        id="one-space-more-than-siblings",
    ),
    pytest.param(
        "categories:\n  Violence: {reject: 1}\n Weapons: allow\nescalation:\n  judge: none\n",
        3, INDENT, "indented 1 space, but its siblings use 2",
        id="category-one-space-less",
    ),
    pytest.param(
        "id: default\n default: {reject: 90}\ncategories:\n  Weapons: allow\n",
        2, INDENT, "indented 1 space, but its siblings are not indented",
        id="top-level-key-indented",
    ),
    pytest.param(
        "default:\n  reject: 90\n    escalate: 3\n",
        3, INDENT, "indented 4 spaces, but its siblings use 2",
        id="two-spaces-more",
    ),
    pytest.param(
        "id: default\ndefault:\n\treject: 90\n",
        3, "YAML syntax error: a tab in the indentation", "indent with spaces; YAML refuses tabs",
        id="tab",
    ),
    pytest.param(
        "id: default\ndefault:\n  reject: 90\n \tescalate: 60\n",
        4, "YAML syntax error: a tab in the indentation", "indent with spaces; YAML refuses tabs",
        id="tab-after-spaces",
    ),
    pytest.param(
        "id: default\ndescription: 'hello\ndefault: {reject: 90}\ncategories:\n  Weapons: allow\n",
        2, "YAML syntax error: this quoted text is never closed", "end it with ' on this line",
        id="unclosed-single-quote",
    ),
    pytest.param(
        'id: default\ndescription: "hello\ndefault: {reject: 90}\n',
        2, "YAML syntax error: this quoted text is never closed", 'end it with " on this line',
        id="unclosed-double-quote",
    ),
    pytest.param(
        "id: default\ndefault: {reject: 90\ncategories:\n  Weapons: allow\nescalation:\n"
        "  judge: none\n",
        2, "YAML syntax error: the '{' on this line is never closed", "close it with '}'",
        id="unclosed-brace",
    ),
    pytest.param(
        "id: default\ndefault: allow\ncategories:\n  Weapons: {reject: [90}\n",
        4, "YAML syntax error: the '[' on this line is never closed", "close it with ']'",
        id="unclosed-bracket-inside-braces",
    ),
    pytest.param(
        "id: default\ndefault:\n  reject:90\n  escalate: 60\n",
        3, "YAML syntax error: no space after ':'", "write `reject: 90`",
        id="key-colon-value-without-space",
    ),
    pytest.param(
        "id:default\ndefault: {reject: 90}\n",
        1, "YAML syntax error: no space after ':'", "write `id: default`",
        id="top-key-without-space",
    ),
    pytest.param(
        "id: default\ncategories:\n  Weapons: allow\n  - Violence\n",
        4, "YAML syntax error: a list item where a key was expected",
        "policies hold no lists; write `key: value` without the dash",
        id="list-item-under-mapping",
    ),
    pytest.param(
        "description: a: b\ndefault: allow\n",
        1, "YAML syntax error: a second ': ' in a value", "quote the value: 'a: b'",
        id="colon-space-in-value",
    ),
    pytest.param(
        "id: default\ndefault: allow\ncategories:\n  Weapons allow\n  Violence: allow\n",
        4, "YAML syntax error: a key without ':'", "write `key: value`",
        id="missing-colon",
    ),
    pytest.param(
        "id: default\ndefault: {reject: 90 escalate: 60}\n",
        2, "YAML syntax error: expected ',' or '}', but got ':'",
        "separate the entries of {...} with commas",
        id="flow-missing-comma",
    ),
    pytest.param(
        "default:\n  reject: 90\nescalation:\n  guidance: |\n    one\n      two: indented\n"
        "    three\n  judge: none\n   on_error: review\n",
        9, INDENT, "indented 3 spaces, but its siblings use 2",
        id="block-scalar-is-skipped",
    ),
    pytest.param(
        "description: a long\n  text: that wraps\ndefault: allow\n",
        2, INDENT, "indented 2 spaces, but its siblings are not indented",
        id="wrapped-value-with-colon",
    ),
    pytest.param(
        "id: default\ndefault: *missing\n",
        2, "YAML syntax error: found undefined alias 'missing'", None,
        id="parser-message-when-no-better-idea",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "message", "hint"), SYNTAX_CASES)
@pytest.mark.parametrize("libyaml", [True, False], ids=["libyaml", "pure"])
def test_syntax_errors_point_at_the_mistake(text, line, message, hint, libyaml):
    doc, problems = read_yaml(text, "default.yaml", prefer_libyaml=libyaml)
    assert doc is None
    assert [(p.line, p.message, p.hint) for p in problems] == [(line, message, hint)]


@pytest.mark.parametrize(
    "text",
    [
        "description: a long\n  text that wraps\ndefault: allow\n",
        "description: 'quoted\n  over: lines'\ndefault: allow\n",
        "categories:\n- x\n",
        "default: {reject: 90,\n  escalate: 60}\n",
        "description: ratio 1:2 and http://x\ndefault: allow\n",
        "default:\n    reject: 90\n    escalate: 60\ncategories:\n  Weapons: allow\n",
    ],
    ids=["plain-wraps", "quoted-wraps", "indentless-list", "flow-wraps", "colons", "4-then-2"],
)
def test_valid_layouts_are_not_flagged(text):
    doc, problems = read_yaml(text, "default.yaml")
    assert doc is not None and problems == []


# --------------------------------------------------------------------------- one parse, libyaml


def every_document() -> list[str | bytes]:
    docs: list[str | bytes] = [DEFAULT, SMALL]
    for case in ERROR_CASES:
        docs.extend(case.values[0].values())
    docs.extend(case.values[0] for case in SYNTAX_CASES)
    return docs


@pytest.mark.slow
@pytest.mark.parametrize("text", every_document())
def test_libyaml_and_pure_python_read_the_same(text):
    fast = read_yaml(text, "f.yaml", prefer_libyaml=True)
    pure = read_yaml(text, "f.yaml", prefer_libyaml=False)
    assert fast[1] == pure[1]
    assert (fast[0] is None) == (pure[0] is None)
    if fast[0] is not None and pure[0] is not None:
        assert fast[0].data == pure[0].data
        assert fast[0].lines == pure[0].lines
        assert fast[0].nulls == pure[0].nulls


@pytest.mark.parametrize(
    "text",
    [
        SMALL + "description: a tab\there\n",
        SMALL + "escalation: {budget: {calls: 5, per: 1?h}}\n",
        SMALL + "escalation:\n  guidance: |#\n    text\n",
        SMALL + "\ufeffdescription: x\n",
        "\ufeff" + SMALL,
    ],
    ids=["tab-in-plain-value", "question-mark-in-flow", "comment-on-block-header", "bom", "bom-0"],
)
def test_where_libyaml_is_more_lenient_pure_python_decides(text):
    # libyaml accepts some of these and PyYAML refuses them: a policy must not be valid on one
    # machine and invalid on another, so PyYAML (always there) decides.
    fast = read_yaml(text, "f.yaml", prefer_libyaml=True)
    pure = read_yaml(text, "f.yaml", prefer_libyaml=False)
    assert fast[1] == pure[1]
    assert (fast[0] is None) == (pure[0] is None)


def test_each_file_is_parsed_once(monkeypatch):
    made: list[str] = []

    def counting(base: type) -> type:
        class Counting(base):  # type: ignore[misc, valid-type]
            def __init__(self, stream: str) -> None:
                made.append(base.__name__)
                super().__init__(stream)

        return Counting

    monkeypatch.setattr(_yaml, "FAST_LOADER", counting(_yaml.FAST_LOADER or yaml.SafeLoader))
    monkeypatch.setattr(_yaml, "SAFE_LOADER", counting(yaml.SafeLoader))

    def refuse(*args, **kwargs):
        raise AssertionError("a second parse")

    for name in ("load", "safe_load", "compose", "compose_all", "load_all"):
        monkeypatch.setattr(yaml, name, refuse)
    doc, problems = read_yaml(DEFAULT, "default.yaml")
    assert doc is not None and problems == []
    assert doc.data["escalation"]["budget"] == {"calls": 2000, "per": "1h"}
    assert len(made) == 1, made  # one loader: composed once, constructed from the same nodes


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="libyaml is not installed")
def test_libyaml_is_used_for_an_ordinary_policy():
    assert _yaml.loader_for(DEFAULT) is yaml.CSafeLoader


@pytest.mark.slow
@pytest.mark.parametrize(
    "text",
    ["[" * 60_000 + "]" * 60_000, "- " * 60_000 + "x\n", "{a: " * 40_000 + "}" * 40_000],
    ids=["flow-sequences", "block-sequences", "flow-mappings"],
)
def test_deep_nesting_never_reaches_libyaml(text):
    # libyaml's composer recurses on the C stack and crashes the process somewhere past ~20,000
    # levels, well within the size bound. Run in a child so a crash fails this test, not the suite.
    assert len(text.encode()) <= MAX_POLICY_BYTES
    code = (
        "import sys\n"
        "from moderation.policy._yaml import read_yaml\n"
        "doc, problems = read_yaml(sys.stdin.read(), 'x.yaml')\n"
        "print(problems[0].message)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=text, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == "YAML nesting is too deep"
