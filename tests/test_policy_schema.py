"""One definition of the file format: the checker and the generated JSON Schema agree.

Every invalid policy document in the test suite goes through both; for the rules a single file's
data can break (types, ranges, choices, unknown keys) they must give the same verdict. Rules that
need more than the file's data (taxonomy names, merges, the file's name, how YAML spelled a null)
are the checker's alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from test_policy import DEFAULT, ERROR_CASES, SMALL
from test_policy_nulls import EMPTY_CASES
from test_policy_review import BAD_CASES as REVIEW_CASES
from test_policy_review import REVIEW

from moderation.policy import PolicyFile, policy_schema
from moderation.policy._check import CheckedFile, FileChecker
from moderation.policy._yaml import read_yaml

jsonschema = pytest.importorskip("jsonschema")
ROOT = Path(__file__).resolve().parent.parent

# Documents that break exactly one per-file rule, beyond the error tables of the other modules.
FORMAT_CASES = [
    SMALL + "escalation: {budget: {calls: 5, per: 0s}}\n",
    SMALL + "escalation: {budget: {calls: 5, per: 0}}\n",
    SMALL + "escalation: {budget: {calls: 5, per: 0.0h}}\n",
    SMALL + "escalation: {budget: {calls: 5, per: 32d}}\n",
    SMALL + "escalation: {budget: {calls: 5, per: 2678401}}\n",
    SMALL + "escalation: {budget: {calls: 5, per: 1w}}\n",
    SMALL + "escalation: {budget: {calls: 5.5, per: 1h}}\n",
    SMALL + "escalation: {budget: {calls: true, per: 1h}}\n",
    SMALL + "escalation: {budget: {per: 1h}}\n",
    SMALL + "escalation: {budget: {calls: 5}}\n",
    SMALL + "escalation: {budget: {calls: 5, per: 1h, every: 2}}\n",
    SMALL + "escalation: {budget: 5}\n",
    SMALL + "escalation: {model_id: '  '}\n",
    SMALL + "escalation: {model_id: ''}\n",
    SMALL + "escalation: {model_id: 5}\n",
    SMALL + "escalation: {guidance: [a]}\n",
    SMALL + "escalation: {judge: gpt}\n",
    SMALL + "escalation: {on_blocked: approve}\n",
    SMALL + "escalation: [judge]\n",
    SMALL + "max_frames: 0\n",
    SMALL + "max_frames: 21\n",
    SMALL + "max_frames: 2.5\n",
    SMALL + "max_frames: '4'\n",
    SMALL + "content_type_min_confidence: -5\n",
    SMALL + "id: [x]\n",
    SMALL + "extends: ../x\n",
    SMALL + "categories: [Violence]\n",
    SMALL + "  Weapons: {animated: {reject: 50, animated: allow}}\n",
    SMALL + "  Weapons: {animated: {}}\n",
    SMALL + "  Weapons: {animated: deny}\n",
    SMALL + "  Weapons: {reject: 50, review: null}\n",
    "default: allow\n",
    "default: {escalate: 5.5}\n",
    SMALL + "max_frames: 20\nescalation: {budget: {calls: 0, per: 31d}, model_id: m}\n",
]


def json_data(data: Any) -> bool:
    """Whether `data` is something JSON can hold (the schema speaks of nothing else)."""
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError):
        return False
    if isinstance(data, dict):
        return all(isinstance(k, str) and json_data(v) for k, v in data.items())
    if isinstance(data, list):
        return all(json_data(v) for v in data)
    return not (isinstance(data, float) and not math.isfinite(data))


def documents() -> list[Any]:
    texts: list[str | bytes] = [DEFAULT, *FORMAT_CASES]
    for case in ERROR_CASES:
        texts.extend(case.values[0].values())
    texts.extend(case.values[0] for case in EMPTY_CASES)
    texts.extend([REVIEW, *(case.values[0] for case in REVIEW_CASES)])
    texts.extend(p.read_text() for p in sorted((ROOT / "policies").rglob("*.yaml")))
    # Only documents a JSON Schema can judge: YAML that parses into data JSON can hold (not
    # NaN, dates, sets or non-text keys; the checker refuses those on its own).
    judged = []
    for text in texts:
        doc, _ = read_yaml(text, "x.yaml")
        if doc is not None and json_data(doc.data):
            judged.append(text)
    return [pytest.param(text, id=f"doc{i}") for i, text in enumerate(judged)]


@pytest.mark.parametrize("text", documents())
def test_checker_and_json_schema_agree_on_every_example(text):
    doc, _ = read_yaml(text, "x.yaml")
    assert doc is not None
    checker = FileChecker(CheckedFile("x", "tenants/x.yaml", doc), [], [])
    checker.run()
    by_checker = not checker.format_problems
    validator = jsonschema.Draft202012Validator(policy_schema())
    by_schema = validator.is_valid(doc.data)
    assert by_checker == by_schema, (
        [p.render() for p in checker.format_problems],
        [e.message for e in validator.iter_errors(doc.data)],
    )


@pytest.mark.slow
def test_the_examples_include_both_verdicts():
    verdicts = set()
    validator = jsonschema.Draft202012Validator(policy_schema())
    for param in documents():
        doc, _ = read_yaml(param.values[0], "x.yaml")
        if doc is not None and json_data(doc.data):
            verdicts.add(validator.is_valid(doc.data))
    assert verdicts == {True, False}


def test_the_schema_is_generated_from_the_file_models():
    schema = policy_schema()
    assert set(schema["properties"]) == set(PolicyFile.model_fields)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_the_schema_has_no_null_defaults_an_editor_would_insert():
    # An editor completing `reject:` with a schema default of null would remove the inherited value.
    text = json.dumps(policy_schema())
    assert '"default": null' not in text


@pytest.mark.parametrize(
    ("data", "valid"),
    [
        ({"escalation": {"budget": {"calls": 1, "per": "0s"}}}, False),
        ({"escalation": {"model_id": "   "}}, False),
        ({"escalation": {"budget": {"calls": 1, "per": "31d"}}}, True),
        ({"escalation": {"budget": {"calls": 1, "per": " 1.5 h "}}}, True),
        ({"escalation": {"budget": {"calls": 1, "per": "31.5d"}}}, False),
        ({"escalation": {"budget": {"calls": 1, "per": "744.0h"}}}, True),
        ({"escalation": {"budget": {"calls": 1, "per": "744.01h"}}}, False),
        ({"escalation": {"budget": {"calls": 1, "per": "0031d"}}}, True),
        ({"max_frames": 4}, True),
        ({"max_frames": 4.0}, True),
        ({"max_frames": 0}, False),
    ],
)
def test_known_disagreements_are_gone(data, valid):
    assert jsonschema.Draft202012Validator(policy_schema()).is_valid(data) is valid
