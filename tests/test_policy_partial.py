"""One run reports every problem: files with problems are still merged (without their invalid
entries), and nothing is reported twice or as a consequence of an entry that was already refused.
"""

from __future__ import annotations

import builders
import pytest
from test_policy import DEFAULT, SMALL, problems_of, where

from moderation.errors import PolicyError
from moderation.policy import PolicyStore

BAND_HINT = (
    "keep 0 <= escalate <= review <= reject <= 100; `escalate: null` removes an inherited threshold"
)


def test_unknown_category_and_a_band_broken_by_the_merge_are_reported_together():
    # GIVEN a tenant with a typo in one category, and a reject under the inherited escalate
    tenant = "categories:\n  Violance: {reject: 50}\n  Violence:\n    reject: 50\n"
    problems = problems_of({"default": SMALL, "kids": tenant})
    # THEN both are reported in the same run
    assert [where(p) for p in problems] == [
        ("tenants/kids.yaml", "categories.Violance", 2, "did you mean 'Violence'?"),
        ("tenants/kids.yaml", "categories.Violence.reject", 4, BAND_HINT),
    ]
    assert "after merging" in problems[1].message


def test_an_invalid_default_rule_is_not_also_reported_missing():
    problems = problems_of({"default": "id: default\ndefault: {reject: 900}\n"})
    assert [(p.path, p.line) for p in problems] == [("default.reject", 2)]
    assert "no `default` rule" not in " ".join(p.message for p in problems)


def test_a_refused_rule_leaves_the_inherited_one_in_place_without_follow_on_errors():
    # GIVEN a tenant's Violence rule with an out-of-range reject (dropped as a whole)
    problems = problems_of({"default": SMALL, "kids": "categories:\n  Violence: {reject: 500}\n"})
    # THEN only the range error: no "escalate 60 is above reject ..." from half a rule
    assert [(p.path, p.message) for p in problems] == [
        ("categories.Violence.reject", "must be a number from 0 to 100, got 500")
    ]


def test_a_blank_model_id_is_not_also_reported_missing():
    text = SMALL + "escalation:\n  judge: bedrock\n  model_id: '  '\n"
    problems = problems_of({"default": text})
    assert [(p.path, p.message) for p in problems] == [
        ("escalation.model_id", "must be non-empty text, got '  '")
    ]


def test_a_tenant_over_a_default_with_problems_is_still_checked():
    sources = {
        "default": SMALL + "flavour: 1\n",
        "school": "categories:\n  Gambling: {reject: 50, escalate: 60}\n",
    }
    problems = problems_of(sources)
    assert sorted((p.file, p.path) for p in problems) == [
        ("default.yaml", "flavour"),
        ("tenants/school.yaml", "categories.Gambling.escalate"),
    ]


def test_a_problem_inherited_from_a_parent_is_reported_once_for_the_parent():
    # GIVEN a default with an inverted band, and tenants that do not touch that rule
    sources = {
        "default": SMALL + "  Gambling: {reject: 50, escalate: 60}\n",
        "kids": "min_confidence: 45\n",
        "teens": "extends: kids\n",
    }
    problems = problems_of(sources)
    # THEN it is reported for default.yaml only, not again for every tenant that inherits it
    assert [(p.file, p.path) for p in problems] == [
        ("default.yaml", "categories.Gambling.escalate")
    ]


def test_a_tenant_whose_parent_cannot_be_parsed_is_not_resolved():
    # The tenant cannot be judged without its parent; only the cause is reported.
    problems = problems_of({"default": "id: [\n", "kids": "categories:\n  Violence: {reject: 1}\n"})
    assert [p.file for p in problems] == ["default.yaml"]


def test_a_tenant_with_an_invalid_extends_is_not_resolved_against_default():
    # Resolving it on top of default could report problems its real parent would not have.
    problems = problems_of(
        {"default": SMALL, "kids": "extends: 5\ncategories: {Violence: {reject: 1}}\n"}
    )
    assert [(p.path, p.message) for p in problems] == [
        ("extends", "extends must name a policy, got 5")
    ]


# --------------------------------------------------------------------------- inherited warnings


def test_a_threshold_below_an_inherited_min_confidence_names_the_tenant():
    # GIVEN default's Explicit escalate and Hate Symbols review at 40, and a tenant that raises
    # min_confidence to 50
    store = builders.store(default=DEFAULT, kids="\nmin_confidence: 50\n")
    # THEN the warnings are filed against the tenant's file, at its min_confidence, naming it
    hint = "override the threshold in this file, or lower min_confidence"
    assert [where(w) for w in store.warnings] == [
        ("tenants/kids.yaml", "categories.Explicit.escalate", 2, hint),
        ("tenants/kids.yaml", "categories.Hate Symbols.review", 2, hint),
    ]
    assert store.warnings[1].message == (
        "review 40 inherited from 'default' is below min_confidence 50 in policy 'kids'; labels "
        "under 50 never arrive, so the band starts at 50"
    )


def test_a_parents_own_warning_is_not_repeated_for_each_tenant():
    default = SMALL + "  Gambling: {reject: 80, escalate: 20}\n"
    store = builders.store(default=default, kids="{}\n", teens="description: teens\n")
    assert [(w.file, w.path) for w in store.warnings] == [
        ("default.yaml", "categories.Gambling.escalate")
    ]


def test_a_tenants_own_threshold_below_the_inherited_min_confidence_is_its_own():
    store = builders.store(
        default=SMALL, kids="categories:\n  Gambling: {reject: 80, escalate: 20}\n"
    )
    assert [where(w) for w in store.warnings] == [
        ("tenants/kids.yaml", "categories.Gambling.escalate", 2, None)
    ]
    assert store.warnings[0].message.startswith("escalate 20 is below min_confidence 40")


def test_warnings_arrive_with_the_errors_of_the_same_run():
    sources = {"default": SMALL, "kids": "min_confidence: 70\ncategories:\n  Violance: allow\n"}
    with pytest.raises(PolicyError) as caught:
        PolicyStore.from_sources(sources)
    assert [p.path for p in caught.value.problems] == ["categories.Violance"]
    assert [w.path for w in caught.value.warnings] == [
        "default.escalate",
        "categories.Violence.escalate",
    ]
    assert all("in policy 'kids'" in w.message for w in caught.value.warnings)
