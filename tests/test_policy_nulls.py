"""A key with nothing after it is an error; only a written-out `null` removes an inherited value.

YAML reads `Hate Symbols:` (no value) as null, exactly like `Hate Symbols: null`; under merge-patch
rules that would silently delete the inherited rule. The two are told apart at the node level.
"""

from __future__ import annotations

import builders
import pytest
from test_policy import DEFAULT, SMALL, problems_of, where

from moderation.policy import Thresholds

RULE_HINT = "write a rule, `allow`, or `null` to remove the inherited rule"
THRESHOLD_HINT = "write a number, or `null` to remove the inherited threshold"
OVERRIDE_HINT = "write a rule, `allow`, or `null` to remove the inherited override"
VALUE_HINT = "write a value, or `null` to remove the inherited one"
EXTENDS_HINT = "name the policy to extend, or leave the key out to extend default"


def test_a_bare_category_key_does_not_delete_the_inherited_rule():
    # GIVEN a tenant that names Hate Symbols but forgot the rule
    problems = problems_of({"default": DEFAULT, "kids": "categories:\n  Hate Symbols:\n"})
    # THEN it is an error at that line, not a silent removal of the inherited `review: 40`
    assert [where(p) for p in problems] == [
        ("tenants/kids.yaml", "categories.Hate Symbols", 2, RULE_HINT)
    ]
    assert problems[0].message == "empty value"


def test_a_written_null_still_removes_the_inherited_rule():
    kids = builders.store(default=DEFAULT, kids="categories:\n  Hate Symbols: null\n").get("kids")
    assert "Hate Symbols" not in kids.categories


EMPTY_CASES = [
    pytest.param("categories:\n  Hate Symbols:\n  Violence: {reject: 99}\n", 2,
                 "categories.Hate Symbols", RULE_HINT, id="category-followed-by-sibling"),
    pytest.param("categories:\n  Violence:\n    reject:\n", 3,
                 "categories.Violence.reject", THRESHOLD_HINT, id="threshold-block"),
    pytest.param("categories:\n  Violence: {reject: , escalate: 70}\n", 2,
                 "categories.Violence.reject", THRESHOLD_HINT, id="threshold-flow-empty"),
    pytest.param("categories:\n  Violence: {reject, escalate: 70}\n", 2,
                 "categories.Violence.reject", THRESHOLD_HINT, id="threshold-flow-bare-key"),
    pytest.param("categories:\n  Violence:\n    illustrated:\n", 3,
                 "categories.Violence.illustrated", OVERRIDE_HINT, id="override"),
    pytest.param("default:\n", 1, "default", RULE_HINT, id="default-rule"),
    pytest.param("default: {escalate: }\n", 1, "default.escalate", THRESHOLD_HINT,
                 id="default-threshold"),
    pytest.param("min_confidence:\n", 1, "min_confidence", THRESHOLD_HINT, id="min-confidence"),
    pytest.param("description:\n", 1, "description", VALUE_HINT, id="description"),
    pytest.param("categories:\n", 1, "categories", VALUE_HINT, id="categories-block"),
    pytest.param("escalation:\n", 1, "escalation", VALUE_HINT, id="escalation-block"),
    pytest.param("escalation:\n  guidance:\n", 2, "escalation.guidance", VALUE_HINT,
                 id="escalation-key"),
    pytest.param("escalation:\n  budget:\n", 2, "escalation.budget", VALUE_HINT, id="budget"),
    pytest.param("on_detector_error:\n", 1, "on_detector_error", VALUE_HINT, id="choice"),
    pytest.param("extends:\n", 1, "extends", EXTENDS_HINT, id="extends"),
]  # fmt: skip


@pytest.mark.parametrize(("tenant", "line", "path", "hint"), EMPTY_CASES)
def test_an_empty_value_is_an_error_everywhere(tenant, line, path, hint):
    problems = problems_of({"default": DEFAULT, "kids": tenant})
    assert [where(p) for p in problems] == [("tenants/kids.yaml", path, line, hint)]
    assert problems[0].message == "empty value"


def test_an_empty_value_in_default_yaml_is_an_error_too():
    problems = problems_of({"default": SMALL + "description:\n"})
    assert [where(p) for p in problems] == [("default.yaml", "description", 6, VALUE_HINT)]


@pytest.mark.parametrize("spelling", ["~", "Null", "NULL"])
def test_null_is_spelled_null(spelling):
    # `~`, `Null` and `NULL` are YAML nulls too; a policy spells removal one way, so it is greppable
    problems = problems_of({"default": DEFAULT, "kids": f"categories:\n  Violence: {spelling}\n"})
    assert [where(p) for p in problems] == [
        ("tenants/kids.yaml", "categories.Violence", 2, "write `null` to remove the inherited rule")
    ]
    assert problems[0].message == f"`{spelling}` is YAML for null; policies spell it `null`"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("min_confidence: null\n", 50.0),  # back to the built-in default, not default.yaml's 40
        ("min_confidence: 30\n", 30.0),
    ],
)
def test_written_null_removes_inherited_top_level_keys(text, expected):
    assert builders.store(default=DEFAULT, kids=text).get("kids").min_confidence == expected


def test_written_null_removes_an_inherited_threshold_in_flow_and_block_style():
    store = builders.store(
        default=DEFAULT,
        a="categories:\n  Violence: {escalate: null}\n",
        b="categories:\n  Violence:\n    escalate: null\n",
    )
    assert store.get("a").categories["Violence"].thresholds == Thresholds(reject=95)
    assert store.get("b").categories["Violence"].thresholds == Thresholds(reject=95)


def test_quoted_empty_text_is_not_an_empty_value():
    # '' is text (a value), not a forgotten one: it fails as a rule, with the rule message
    problems = problems_of({"default": DEFAULT, "kids": "categories:\n  Violence: ''\n"})
    assert [p.message for p in problems] == ["a rule is `allow` or a mapping of thresholds, got ''"]
