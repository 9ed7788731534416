"""The policy's `review:` section (the review desk's rules) and blind QA sampling.

Problems are asserted whole (file, key path, line, message, hint): those are what a person fixing
a policy reads.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml

from moderation.audit import decisions
from moderation.decision import Outcome
from moderation.errors import PolicyError, Problem
from moderation.policy import (
    FrozenDict,
    Policy,
    PolicyStore,
    QaSample,
    ReviewRules,
    policy_schema,
)
from moderation.review_sampling import golden_draw, golden_drawn, qa_draw, qa_rate, qa_sampled

ROOT = Path(__file__).resolve().parent.parent

BASE = "default: {reject: 90, escalate: 60}\n"

# Line numbers matter below: the problems' lines count from this text.
REVIEW = """\
default: {reject: 90, escalate: 60}
review:
  sla: 4h
  reviewers: 2
  priority:
    violence: 10
    Hate Symbols: 30
  blur: [explicit, Visually Disturbing]
  qa_sample: {approved: 0.01, rejected: 0.02}
"""


def store(default: str = REVIEW, **tenants: str) -> PolicyStore:
    return PolicyStore.from_sources({"default": default, **tenants})


def problems_of(default: str = REVIEW, **tenants: str) -> list[tuple[object, ...]]:
    with pytest.raises(PolicyError) as caught:
        store(default, **tenants)
    return [_whole(p) for p in caught.value.problems]


def _whole(p: Problem) -> tuple[object, ...]:
    return (p.file, p.path, p.line, p.message, p.hint)


# --------------------------------------------------------------------------- valid sections


def test_a_review_section_is_resolved_with_canonical_names_and_seconds():
    rules = store().get("default").review_rules
    assert rules == ReviewRules(
        sla_seconds=14400.0,
        reviewers=2,
        priority=FrozenDict({"Hate Symbols": 30, "Violence": 10}),
        blur=("Explicit", "Visually Disturbing"),
        qa_sample=QaSample(approved=0.01, rejected=0.02),
    )


def test_without_a_section_the_desk_gets_the_defaults():
    policy = store(BASE).get("default")
    assert policy.review is None
    assert policy.review_rules == ReviewRules(
        sla_seconds=86400.0, reviewers=1, priority=FrozenDict(), blur=(), qa_sample=QaSample()
    )


@pytest.mark.parametrize(
    ("sla", "seconds"),
    [("30m", 1800.0), ("1.5h", 5400.0), ("1d", 86400.0), ("45s", 45.0), ("600", 600.0)],
)
def test_sla_is_written_like_the_policys_other_durations(sla, seconds):
    rules = store(BASE + f"review: {{sla: {sla}}}\n").get("default").review_rules
    assert rules.sla_seconds == seconds


def test_an_empty_section_or_empty_entries_keep_the_defaults():
    rules = store(BASE + "review: {priority: {}, blur: [], qa_sample: {}}\n").get("default")
    assert rules.review_rules == ReviewRules()


def test_priority_counts_through_the_nearest_ancestor_written():
    rules = ReviewRules(priority=FrozenDict({"Violence": 10, "Graphic Violence": 40}))
    assert rules.priority_of(["Graphic Violence"]) == 40
    assert rules.priority_of(["Weapon Violence"]) == 40  # under Graphic Violence, nearest
    assert rules.priority_of(["Weapons"]) == 10  # a child of Violence
    assert rules.priority_of(["Weapons", "Graphic Violence"]) == 40  # the highest
    assert rules.priority_of(["Gambling", "NoSuchLabel"]) == 0
    assert rules.priority_of([]) == 0


def test_blur_covers_a_category_and_its_subcategories():
    rules = ReviewRules(blur=("Explicit",))
    assert rules.blurred(["Exposed Male Genitalia"])  # level 3 under Explicit
    assert rules.blurred(["explicit nudity"])  # any spelling
    assert not rules.blurred(["Violence", "NoSuchLabel"])


# --------------------------------------------------------------------------- inheritance


def test_a_tenant_overrides_single_keys_and_merges_priorities():
    tenant = """\
review:
  sla: 30m
  priority: {Violence: null, Gambling: 5}
  qa_sample: {rejected: 0.5}
"""
    rules = store(kids=tenant).get("kids").review_rules
    assert rules == ReviewRules(
        sla_seconds=1800.0,
        reviewers=2,  # inherited
        priority=FrozenDict({"Gambling": 5, "Hate Symbols": 30}),
        blur=("Explicit", "Visually Disturbing"),  # inherited
        qa_sample=QaSample(approved=0.01, rejected=0.5),
    )


def test_golden_rate_defaults_to_zero_and_a_tenant_overrides_it():
    assert store(BASE).get("default").review_rules.golden_rate == 0.0
    policies = store(BASE + "review: {golden_rate: 0.05}\n", kids="review: {golden_rate: 0.5}\n")
    assert policies.get("default").review_rules.golden_rate == 0.05
    assert policies.get("kids").review_rules.golden_rate == 0.5
    other = store(BASE + "review: {golden_rate: 0.05}\n", teens="review: {sla: 1h}\n")
    assert other.get("teens").review_rules.golden_rate == 0.05  # inherited key by key


def test_a_tenants_blur_list_replaces_the_inherited_one_whole():
    rules = store(kids="review: {blur: [Gambling]}\n").get("kids").review_rules
    assert rules.blur == ("Gambling",)


def test_review_null_removes_the_inherited_section():
    kids = store(kids="review: null\n").get("kids")
    assert kids.review is None
    assert kids.review_rules == ReviewRules()


def test_a_tenant_inherits_the_section_it_does_not_write():
    policies = store(kids="min_confidence: 40\n")
    assert policies.get("kids").review == policies.get("default").review


# --------------------------------------------------------------------------- bad values

D = "default.yaml"

BAD_CASES = [
    pytest.param(
        BASE + "review: {sla: 1w}\n",
        [
            (
                D,
                "review.sla",
                2,
                "must be a duration such as 30m, 4h or 1d, at most 31 days, got '1w'",
                None,
            )
        ],
        id="sla-unit",
    ),
    pytest.param(
        BASE + "review: {sla: 0}\n",
        [
            (
                D,
                "review.sla",
                2,
                "must be a duration such as 30m, 4h or 1d, at most 31 days, got 0",
                None,
            )
        ],
        id="sla-zero",
    ),
    pytest.param(
        BASE + "review: {sla: 32d}\n",
        [
            (
                D,
                "review.sla",
                2,
                "must be a duration such as 30m, 4h or 1d, at most 31 days, got '32d'",
                None,
            )
        ],
        id="sla-too-long",
    ),
    pytest.param(
        BASE + "review: {reviewers: 0}\n",
        [(D, "review.reviewers", 2, "must be a whole number from 1 to 5, got 0", None)],
        id="reviewers-zero",
    ),
    pytest.param(
        BASE + "review: {reviewers: 6}\n",
        [(D, "review.reviewers", 2, "must be a whole number from 1 to 5, got 6", None)],
        id="reviewers-six",
    ),
    pytest.param(
        BASE + "review: {reviewers: 1.5}\n",
        [(D, "review.reviewers", 2, "must be a whole number from 1 to 5, got 1.5", None)],
        id="reviewers-fraction",
    ),
    pytest.param(
        BASE + "review: {reviewers: '2'}\n",
        [(D, "review.reviewers", 2, "must be a whole number from 1 to 5, got '2'", None)],
        id="reviewers-text",
    ),
    pytest.param(
        BASE + "review: {priority: {Violense: 5}}\n",
        [
            (
                D,
                "review.priority.Violense",
                2,
                "unknown category 'Violense' in taxonomy 7.0",
                "did you mean 'Violence'?",
            )
        ],
        id="priority-unknown-category",
    ),
    pytest.param(
        BASE + "review: {priority: {Suggestive: 5}}\n",
        [
            (
                D,
                "review.priority.Suggestive",
                2,
                "'Suggestive' is a taxonomy 6.1 name, not a 7.0 category",
                "taxonomy 6.1 'Suggestive' was split in 7.0; under priority, write 'Non-Explicit "
                "Nudity of Intimate parts and Kissing' and 'Swimwear or Underwear'",
            )
        ],
        id="priority-legacy-category",
    ),
    pytest.param(
        BASE + "review: {priority: {Violence: 5, violence: 6}}\n",
        [
            (
                D,
                "review.priority.violence",
                2,
                "'violence' names the same category as 'Violence'",
                "names match case-insensitively; keep one",
            )
        ],
        id="priority-same-category-twice",
    ),
    pytest.param(
        BASE + "review: {priority: {Violence: 101}}\n",
        [
            (
                D,
                "review.priority.Violence",
                2,
                "must be a whole number from 0 to 100, got 101",
                "higher goes first; `null` removes an inherited priority",
            )
        ],
        id="priority-too-high",
    ),
    pytest.param(
        BASE + "review: {priority: {Violence: high}}\n",
        [
            (
                D,
                "review.priority.Violence",
                2,
                "must be a whole number from 0 to 100, got 'high'",
                "higher goes first; `null` removes an inherited priority",
            )
        ],
        id="priority-text",
    ),
    pytest.param(
        BASE + "review: {priority: [Violence]}\n",
        [
            (
                D,
                "review.priority",
                2,
                "must be a mapping of category name to priority",
                "e.g. {Violence: 10, Hate Symbols: 20}",
            )
        ],
        id="priority-list",
    ),
    pytest.param(
        BASE + "review: {blur: Explicit}\n",
        [
            (
                D,
                "review.blur",
                2,
                "must be a list of category names, got 'Explicit'",
                "e.g. [Explicit, Visually Disturbing]",
            )
        ],
        id="blur-not-a-list",
    ),
    pytest.param(
        BASE + "review: {blur: [Explicit, 5]}\n",
        [
            (
                D,
                "review.blur.1",
                2,
                "must be a category name, got 5",
                "e.g. [Explicit, Visually Disturbing]",
            )
        ],
        id="blur-entry-not-text",
    ),
    pytest.param(
        BASE + "review: {blur: [Explicit, Explicit]}\n",
        [(D, "review.blur", 2, "blur names 'Explicit' twice", "name each category once")],
        id="blur-same-text-twice",
    ),
    pytest.param(
        BASE + "review: {blur: [Explicit, explicit]}\n",
        [
            (
                D,
                "review.blur.1",
                2,
                "'explicit' names a category already listed",
                "name each category once",
            )
        ],
        id="blur-same-category-twice",
    ),
    pytest.param(
        BASE + "review: {blur: [Gamblng]}\n",
        [
            (
                D,
                "review.blur.0",
                2,
                "unknown category 'Gamblng' in taxonomy 7.0",
                "did you mean 'Gambling'?",
            )
        ],
        id="blur-unknown-category",
    ),
    pytest.param(
        BASE + "review: {qa_sample: {approved: 1.5}}\n",
        [
            (
                D,
                "review.qa_sample.approved",
                2,
                "must be a fraction from 0 to 1, got 1.5",
                "e.g. 0.01 sends one in a hundred to the desk",
            )
        ],
        id="qa-above-one",
    ),
    pytest.param(
        BASE + "review: {qa_sample: {rejected: -0.1}}\n",
        [
            (
                D,
                "review.qa_sample.rejected",
                2,
                "must be a fraction from 0 to 1, got -0.1",
                "e.g. 0.01 sends one in a hundred to the desk",
            )
        ],
        id="qa-negative",
    ),
    pytest.param(
        BASE + "review: {qa_sample: {rejected: true}}\n",
        [
            (
                D,
                "review.qa_sample.rejected",
                2,
                "must be a fraction from 0 to 1, got True",
                "e.g. 0.01 sends one in a hundred to the desk",
            )
        ],
        id="qa-boolean",
    ),
    pytest.param(
        BASE + "review: {qa_sample: {review: 0.5}}\n",
        [
            (
                D,
                "review.qa_sample.review",
                2,
                "unknown key 'review'",
                "allowed here: approved, rejected",
            )
        ],
        id="qa-unknown-outcome",
    ),
    pytest.param(
        BASE + "review: {qa_sample: 0.1}\n",
        [
            (
                D,
                "review.qa_sample",
                2,
                "must be a mapping",
                "e.g. {approved: 0.01, rejected: 0.02}",
            )
        ],
        id="qa-not-a-mapping",
    ),
    pytest.param(
        BASE + "review: {golden_rate: 1.5}\n",
        [
            (
                D,
                "review.golden_rate",
                2,
                "must be a fraction from 0 to 1, got 1.5",
                "e.g. 0.02 brings one golden item for about every fifty items",
            )
        ],
        id="golden-above-one",
    ),
    pytest.param(
        BASE + "review: {golden_rate: -0.5}\n",
        [
            (
                D,
                "review.golden_rate",
                2,
                "must be a fraction from 0 to 1, got -0.5",
                "e.g. 0.02 brings one golden item for about every fifty items",
            )
        ],
        id="golden-negative",
    ),
    pytest.param(
        BASE + "review: {golden_rate: '0.1'}\n",
        [
            (
                D,
                "review.golden_rate",
                2,
                "must be a fraction from 0 to 1, got '0.1'",
                "e.g. 0.02 brings one golden item for about every fifty items",
            )
        ],
        id="golden-text",
    ),
    pytest.param(
        BASE + "review: {golden_rat: 0.1}\n",
        [(D, "review.golden_rat", 2, "unknown key 'golden_rat'", "did you mean 'golden_rate'?")],
        id="golden-near-miss",
    ),
    pytest.param(
        BASE + "review: {slaa: 4h}\n",
        [(D, "review.slaa", 2, "unknown key 'slaa'", "did you mean 'sla'?")],
        id="unknown-key-near-miss",
    ),
    pytest.param(
        BASE + "review: {timeout: 600}\n",
        [
            (
                D,
                "review.timeout",
                2,
                "unknown key 'timeout'",
                "allowed here: sla, reviewers, priority, blur, qa_sample, golden_rate",
            )
        ],
        id="unknown-key",
    ),
    pytest.param(
        BASE + "review: 4h\n",
        [(D, "review", 2, "must be a mapping", "e.g. {sla: 4h, reviewers: 2}")],
        id="not-a-mapping",
    ),
    pytest.param(
        BASE + "review:\n",
        [
            (
                D,
                "review",
                2,
                "empty value",
                "write a value, or `null` to remove the inherited one",
            )
        ],
        id="empty",
    ),
    pytest.param(
        BASE + "review: {sla: ~}\n",
        [
            (
                D,
                "review.sla",
                2,
                "`~` is YAML for null; policies spell it `null`",
                "write `null` to remove the inherited value",
            )
        ],
        id="tilde-null",
    ),
]


@pytest.mark.parametrize(("default", "expected"), BAD_CASES)
def test_bad_review_values_are_refused_with_exact_problems(default, expected):
    assert problems_of(default) == expected


def test_every_problem_of_the_section_is_listed_at_once_with_its_line():
    tenant = """\
review:
  sla: 1w
  reviewers: 9
  priority: {Violense: 5}
  blur: [Gory]
"""
    found = problems_of(kids=tenant)
    assert [(p[0], p[1], p[2]) for p in found] == [
        ("tenants/kids.yaml", "review.sla", 2),
        ("tenants/kids.yaml", "review.reviewers", 3),
        ("tenants/kids.yaml", "review.priority.Violense", 4),
        ("tenants/kids.yaml", "review.blur.0", 5),
    ]


def test_review_rules_are_immutable():
    rules = store().get("default").review_rules
    with pytest.raises(ValueError, match="frozen"):
        rules.reviewers = 3
    with pytest.raises(TypeError):
        rules.priority["Violence"] = 99  # type: ignore[index]


# --------------------------------------------------------------------------- the JSON Schema


def test_the_json_schema_accepts_a_file_with_the_section():
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(yaml.safe_load(REVIEW), policy_schema())


@pytest.mark.parametrize(
    "section",
    [
        "{sla: 1w}",
        "{reviewers: 6}",
        "{reviewers: 1.5}",
        "{priority: {Violence: 101}}",
        "{blur: [Explicit, Explicit]}",
        "{qa_sample: {approved: 1.5}}",
        "{qa_sample: {review: 0.5}}",
        "{golden_rate: 1.5}",
        "{golden_rate: true}",
        "{lease: 600}",
    ],
)
def test_the_json_schema_refuses_what_the_checker_refuses(section):
    jsonschema = pytest.importorskip("jsonschema")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(yaml.safe_load(BASE + f"review: {section}\n"), policy_schema())
    with pytest.raises(PolicyError):
        store(BASE + f"review: {section}\n")


def test_the_committed_schema_has_the_section():
    committed = json.loads((ROOT / "docs/policy.schema.json").read_text())
    assert committed["properties"]["review"] == policy_schema()["properties"]["review"]


# --------------------------------------------------------------------------- identity


def test_a_policy_without_the_section_hashes_as_before():
    policy = store(BASE).get("default")
    assert "review" not in json.loads(policy.canonical_json())
    # The hash the policy had before the section existed (computed from the same rules).
    before = policy.model_dump(mode="json", exclude={"id", "chain", "description", "shadow"})
    del before["review"], before["version"]
    text = json.dumps(before, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert policy.sha256 == hashlib.sha256(text.encode()).hexdigest()


def test_the_shipped_policies_keep_the_hashes_the_golden_log_recorded():
    shipped = PolicyStore(ROOT / "policies")
    recorded = {
        (d.tenant, d.policy.sha256) for d in decisions(ROOT / "examples/golden/decisions.jsonl")
    }
    assert recorded
    assert {(tenant, shipped.get(tenant).sha256) for tenant, _ in recorded} == recorded


def test_the_section_changes_the_hash_when_written_and_when_changed():
    plain = store(BASE).get("default").sha256
    defaults = store(BASE + "review: {}\n").get("default").sha256
    stricter = store(BASE + "review: {reviewers: 2}\n").get("default").sha256
    assert len({plain, defaults, stricter}) == 3


def test_a_policy_with_the_section_round_trips():
    policy = store().get("default")
    assert Policy.model_validate_json(policy.model_dump_json()) == policy


# --------------------------------------------------------------------------- blind QA sampling

RULES = ReviewRules(qa_sample=QaSample(approved=0.01, rejected=0.2))
IDS = [f"01J{i:023d}" for i in range(20000)]


def test_the_draw_is_the_first_8_bytes_of_the_ids_hash():
    digest = hashlib.sha256(b"qa:01HZX").digest()
    assert qa_draw("01HZX") == int.from_bytes(digest[:8], "big") / 2**64


def test_the_golden_draw_hashes_the_id_with_its_own_prefix():
    digest = hashlib.sha256(b"golden:01HZX").digest()
    assert golden_draw("01HZX") == int.from_bytes(digest[:8], "big") / 2**64 != qa_draw("01HZX")
    drawn = sum(golden_drawn(i, 0.1) for i in IDS)
    assert abs(drawn / len(IDS) - 0.1) < 0.01
    both = sum(golden_drawn(i, 0.1) and qa_draw(i) < 0.1 for i in IDS)
    assert abs(both / len(IDS) - 0.01) < 0.004  # independent of the QA draw
    assert not any(golden_drawn(i, 0.0) for i in IDS[:100])
    with pytest.raises(ValueError, match="a golden draw needs a decision id"):
        golden_draw("")


def test_sampling_is_deterministic_from_the_decision_id():
    first = [qa_sampled(i, Outcome.REJECTED, RULES) for i in IDS[:2000]]
    again = [qa_sampled(i, Outcome.REJECTED, RULES) for i in IDS[:2000]]
    assert first == again
    assert any(first) and not all(first)


@pytest.mark.parametrize(("outcome", "rate"), [(Outcome.APPROVED, 0.01), (Outcome.REJECTED, 0.2)])
def test_the_sampled_share_converges_to_the_rate(outcome, rate):
    sampled = sum(qa_sampled(i, outcome, RULES) for i in IDS)
    # 20000 draws: the standard deviation is 14 at 1% and 57 at 20%; 5 of them either side.
    spread = 5 * (len(IDS) * rate * (1 - rate)) ** 0.5
    assert abs(sampled - rate * len(IDS)) < spread


def test_a_higher_rate_keeps_every_decision_sampled_at_a_lower_one():
    low = {i for i in IDS if qa_sampled(i, Outcome.APPROVED, RULES)}
    higher = ReviewRules(qa_sample=QaSample(approved=0.05))
    assert low <= {i for i in IDS if qa_sampled(i, Outcome.APPROVED, higher)}


def test_rate_zero_never_samples_and_rate_one_always_does():
    never = ReviewRules(qa_sample=QaSample(approved=0.0, rejected=0.0))
    always = ReviewRules(qa_sample=QaSample(approved=1.0, rejected=1.0))
    for outcome in (Outcome.APPROVED, Outcome.REJECTED):
        assert not any(qa_sampled(i, outcome, never) for i in IDS)
        assert all(qa_sampled(i, outcome, always) for i in IDS)


def test_review_outcomes_are_never_sampled_they_go_to_the_desk_anyway():
    always = ReviewRules(qa_sample=QaSample(approved=1.0, rejected=1.0))
    assert qa_rate(Outcome.REVIEW, always) == 0.0
    assert not qa_sampled(IDS[0], Outcome.REVIEW, always)


def test_sampling_reads_the_rate_of_the_outcome_only():
    rules = ReviewRules(qa_sample=QaSample(approved=0.0, rejected=1.0))
    assert qa_sampled(IDS[0], Outcome.REJECTED, rules)
    assert not qa_sampled(IDS[0], Outcome.APPROVED, rules)
    assert qa_sampled(IDS[0], "rejected", rules)  # type: ignore[arg-type]  # a recorded value


@pytest.mark.parametrize("bad", ["", None, 42])
def test_a_draw_needs_a_decision_id(bad):
    with pytest.raises(ValueError, match="a QA draw needs a decision id"):
        qa_draw(bad)


def test_the_example_of_docs_review_md_runs():
    text = (ROOT / "docs/review.md").read_text()
    section = text[text.index("## Desk rules in the policy") :]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None
    exec(compile(block.group(1), "docs/review.md", "exec"), {"__name__": "example"})
