"""The policy language: loading, inheritance, identity (sha256), every kind of bad input, tenants.

Problems are asserted field by field (file, key path, line, hint) and by a fragment of the
message, because those fields are what a person fixing a policy reads.
"""

from __future__ import annotations

import pathlib

import builders
import pytest
from pydantic import ValidationError

from moderation.errors import InvalidTenant, PolicyError, Problem, UnknownTenant
from moderation.policy import (
    Budget,
    CategoryRule,
    EscalationPolicy,
    PolicyStore,
    Thresholds,
    validate_tenant,
)
from moderation.policy._yaml import MAX_NODES, MAX_POLICY_BYTES

# Line numbers matter below: every test that asserts a line counts from this text.
DEFAULT = """\
id: default
description: General audience
min_confidence: 40
default: {reject: 90, escalate: 60}
categories:
  Explicit: {reject: 80, escalate: 40}
  Swimwear or Underwear: allow
  Hate Symbols: {review: 40}
  Violence:
    reject: 95
    escalate: 60
    illustrated: {reject: 99, escalate: 85}
escalation:
  judge: bedrock
  model_id: us.anthropic.claude-haiku-4-5-20251001-v1:0
  guidance: |
    Medical context is acceptable.
  on_error: review
  on_blocked: reject
  budget: {calls: 2000, per: 1h}
"""

# A short default for the error tables: lines 1-5.
SMALL = """\
id: default
min_confidence: 40
default: {reject: 90, escalate: 60}
categories:
  Violence: {reject: 95, escalate: 60}
"""


# The hint for a `shadow` entry that is not a policy id.
NAMING = "a policy's id is its file name: default, or a tenant file's name"


def problems_of(sources: dict[str, str | bytes]) -> tuple[Problem, ...]:
    with pytest.raises(PolicyError) as caught:
        PolicyStore.from_sources(sources)
    return caught.value.problems


def where(p: Problem) -> tuple[str, str, int | None, str | None]:
    return (p.file, p.path, p.line, p.hint)


# --------------------------------------------------------------------------- a good policy


def test_default_policy_is_resolved_with_every_field():
    policy = builders.store(default=DEFAULT).get("default")

    assert policy.id == "default"
    assert policy.chain == ("default",)
    assert policy.description == "General audience"
    assert policy.min_confidence == 40.0
    assert policy.content_type_min_confidence == 50.0
    assert policy.on_detector_error == "raise"
    assert policy.default == Thresholds(reject=90, escalate=60)
    assert list(policy.categories) == [
        "Explicit",
        "Hate Symbols",
        "Swimwear or Underwear",
        "Violence",
    ]
    assert policy.categories["Swimwear or Underwear"] == CategoryRule(
        name="Swimwear or Underwear", thresholds=Thresholds(allow=True)
    )
    assert policy.categories["Hate Symbols"].thresholds == Thresholds(review=40)
    assert policy.categories["Violence"] == CategoryRule(
        name="Violence",
        thresholds=Thresholds(reject=95, escalate=60),
        illustrated=Thresholds(reject=99, escalate=85),
    )
    assert policy.escalation == EscalationPolicy(
        judge="bedrock",
        model_id="us.anthropic.claude-haiku-4-5-20251001-v1:0",
        guidance="Medical context is acceptable.\n",
        on_error="review",
        on_blocked="reject",
        budget=Budget(calls=2000, per_seconds=3600),
    )


def test_policy_is_frozen():
    policy = builders.store(default=DEFAULT).get("default")
    with pytest.raises(ValidationError):
        policy.min_confidence = 10  # type: ignore[misc]
    with pytest.raises(ValidationError):
        policy.default.reject = 10  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("1h", 3600), ("1d", 86400), ("1.5h", 5400), (90, 90)],
    ids=["30s", "15m", "1h", "1d", "1.5h", "plain-number"],
)
def test_budget_durations(text, seconds):
    policy = builders.store(default=SMALL + f"escalation: {{budget: {{calls: 5, per: {text}}}}}\n")
    assert policy.get("default").escalation.budget == Budget(calls=5, per_seconds=seconds)


def test_rule_for_matches_any_spelling():
    policy = builders.store(default=DEFAULT).get("default")
    rule = policy.categories["Swimwear or Underwear"]
    assert policy.rule_for("swimwear  OR underwear") is rule
    assert policy.rule_for("Female Swimwear or Underwear") is None  # exact category only
    assert policy.rule_for("Violance") is None


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (None, Thresholds(reject=95, escalate=60)),
        ("illustrated", Thresholds(reject=99, escalate=85)),
        ("animated", Thresholds(reject=95, escalate=60)),  # no animated override: base
    ],
    ids=["photo", "illustrated", "animated-falls-back"],
)
def test_content_type_override_replaces_base_whole(content_type, expected):
    rule = builders.store(default=DEFAULT).get("default").categories["Violence"]
    assert rule.for_content(content_type) == expected


def test_content_type_override_keeps_nothing_from_base():
    # GIVEN an override that only sets reject
    text = SMALL + "  Weapons:\n    reject: 80\n    escalate: 50\n    animated: {reject: 99}\n"
    rule = builders.store(default=text).get("default").categories["Weapons"]
    # THEN the animated thresholds have no escalate band: the override replaces the base whole
    assert rule.for_content("animated") == Thresholds(reject=99)
    assert rule.for_content("animated").band(60) == "ignore"
    assert rule.for_content(None).band(60) == "escalate"


def test_content_type_override_can_allow():
    text = SMALL + "  Weapons:\n    reject: 80\n    illustrated: allow\n"
    rule = builders.store(default=text).get("default").categories["Weapons"]
    assert rule.for_content("illustrated") == Thresholds(allow=True)
    assert rule.for_content(None) == Thresholds(reject=80)


# --------------------------------------------------------------------------- inheritance


def test_tenant_extends_default_implicitly():
    store = builders.store(
        default=DEFAULT, kids="categories:\n  Swimwear or Underwear: {reject: 70}\n"
    )
    kids = store.get("kids")
    assert kids.id == "kids"
    assert kids.chain == ("kids", "default")
    assert kids.categories["Swimwear or Underwear"].thresholds == Thresholds(reject=70)
    # everything else is inherited
    assert kids.default == Thresholds(reject=90, escalate=60)
    assert kids.categories["Violence"].illustrated == Thresholds(reject=99, escalate=85)
    assert kids.escalation.model_id == "us.anthropic.claude-haiku-4-5-20251001-v1:0"
    assert kids.description == "General audience"
    assert store.tenants == ("kids",)


def test_extends_chain():
    store = builders.store(
        default=DEFAULT,
        kids="categories:\n  Violence: {reject: 70}\n",
        toddlers="extends: kids\nmin_confidence: 30\ncategories:\n  Hate Symbols: {reject: 50}\n",
    )
    toddlers = store.get("toddlers")
    assert toddlers.chain == ("toddlers", "kids", "default")
    assert toddlers.min_confidence == 30
    assert toddlers.categories["Violence"].thresholds == Thresholds(reject=70, escalate=60)
    assert toddlers.categories["Hate Symbols"].thresholds == Thresholds(reject=50, review=40)
    assert store.tenants == ("kids", "toddlers")
    assert [p.id for p in store] == ["default", "kids", "toddlers"]


@pytest.mark.parametrize(
    ("tenant", "category", "expected"),
    [
        # deep merge: one threshold changes, the others and the override stay
        (
            "categories:\n  Violence: {reject: 80}\n",
            "Violence",
            CategoryRule(
                name="Violence",
                thresholds=Thresholds(reject=80, escalate=60),
                illustrated=Thresholds(reject=99, escalate=85),
            ),
        ),
        # null removes an inherited threshold
        (
            "categories:\n  Violence: {escalate: null}\n",
            "Violence",
            CategoryRule(
                name="Violence",
                thresholds=Thresholds(reject=95),
                illustrated=Thresholds(reject=99, escalate=85),
            ),
        ),
        # null removes an inherited content-type override
        (
            "categories:\n  Violence: {illustrated: null}\n",
            "Violence",
            CategoryRule(name="Violence", thresholds=Thresholds(reject=95, escalate=60)),
        ),
        # a name differing only in case and spacing overrides the inherited rule
        (
            "categories:\n  violence:  {reject: 70}\n",
            "Violence",
            CategoryRule(
                name="Violence",
                thresholds=Thresholds(reject=70, escalate=60),
                illustrated=Thresholds(reject=99, escalate=85),
            ),
        ),
        # `allow` replaces a mapping whole
        (
            "categories:\n  VIOLENCE: allow\n",
            "Violence",
            CategoryRule(name="Violence", thresholds=Thresholds(allow=True)),
        ),
        # a mapping replaces `allow`
        (
            "categories:\n  swimwear or underwear: {reject: 70, escalate: 30}\n",
            "Swimwear or Underwear",
            CategoryRule(
                name="Swimwear or Underwear", thresholds=Thresholds(reject=70, escalate=30)
            ),
        ),
        # a new category is added next to the inherited ones
        (
            "categories:\n  Blood and Gore: {reject: 50}\n",
            "Blood & Gore",
            CategoryRule(name="Blood & Gore", thresholds=Thresholds(reject=50)),
        ),
    ],
    ids=[
        "one-threshold",
        "null-threshold",
        "null-override",
        "case-insensitive",
        "allow-over-map",
        "map-over-allow",
        "new-category",
    ],
)
def test_deep_merge(tenant, category, expected):
    policy = builders.store(default=DEFAULT, kids=tenant).get("kids")
    assert policy.categories[category] == expected
    assert len(policy.categories) == 4 + (category == "Blood & Gore")


def test_null_removes_an_inherited_category_and_escalation_keys():
    kids = builders.store(
        default=DEFAULT,
        kids="categories:\n  Hate Symbols: null\nescalation:\n  guidance: null\n  budget: null\n",
    ).get("kids")
    assert "Hate Symbols" not in kids.categories
    assert kids.escalation.guidance == ""
    assert kids.escalation.budget is None
    assert kids.escalation.judge == "bedrock"  # siblings stay


def test_tenant_may_say_extends_default_or_null():
    store = builders.store(default=DEFAULT, a="extends: default\n", b="extends: null\n")
    assert store.get("a").chain == ("a", "default")
    assert store.get("b").chain == ("b", "default")


# --------------------------------------------------------------------------- identity (sha256)

BASE = """\
id: default
description: base
min_confidence: 40
default: {reject: 90, escalate: 60}
categories:
  Violence: {reject: 95, escalate: 60}
  Hate Symbols: {review: 40}
escalation:
  judge: none
  guidance: be kind
"""


@pytest.mark.parametrize(
    "variant",
    [
        BASE.replace("Violence: {reject: 95", "Violence: {reject: 96"),
        BASE.replace("default: {reject: 90", "default: {reject: 89.5"),
        BASE.replace("guidance: be kind", "guidance: be kinder"),
        BASE.replace("min_confidence: 40", "min_confidence: 41"),
        BASE + "content_type_min_confidence: 70\n",
        BASE + "on_detector_error: review\n",
        BASE.replace("categories:\n", "categories:\n  Gambling: allow\n"),
        BASE.replace("Hate Symbols: {review: 40}", "Hate Symbols: allow"),
        BASE.replace("{reject: 95, escalate: 60}", "{reject: 95, escalate: 60, animated: allow}"),
        BASE.replace("judge: none", "judge: bedrock\n  model_id: m"),
    ],
    ids=[
        "category-threshold",
        "default-threshold",
        "guidance",
        "min_confidence",
        "content_type_min_confidence",
        "on_detector_error",
        "category-added",
        "rule-to-allow",
        "override-added",
        "judge",
    ],
)
def test_sha256_changes_with_any_effective_rule(variant):
    base = builders.store(default=BASE).get("default")
    changed = builders.store(default=variant).get("default")
    assert changed.sha256 != base.sha256
    assert len(changed.sha256) == 64


@pytest.mark.parametrize(
    "variant",
    [
        "# a comment\n" + BASE.replace("min_confidence: 40", "min_confidence: 40  # sent on"),
        BASE.replace("description: base", "description: something else entirely"),
        BASE.replace("description: base\n", ""),
        BASE.replace("Violence:", "violence:").replace("Hate Symbols", "HATE  symbols"),
        BASE.replace("{reject: 95, escalate: 60}", "{escalate: 60, reject: 95.0}"),
        BASE.replace(
            "Violence: {reject: 95, escalate: 60}", "Violence:\n    reject: 95\n    escalate: 60"
        ),
        # the same keys in reverse order
        "\n".join(
            [
                "escalation: {guidance: be kind, judge: none}",
                "categories:",
                "  Hate Symbols: {review: 40}",
                "  Violence: {escalate: 60, reject: 95}",
                "default: {escalate: 60, reject: 90}",
                "min_confidence: 40.0",
                "id: default",
                "",
            ]
        ),
    ],
    ids=[
        "comments",
        "description",
        "no-description",
        "category-spelling",
        "key-order-and-float",
        "block-style",
        "reordered-file",
    ],
)
def test_sha256_ignores_presentation(variant):
    base = builders.store(default=BASE).get("default")
    same = builders.store(default=variant).get("default")
    assert same.sha256 == base.sha256
    assert same.canonical_json() == base.canonical_json()


def test_tenants_with_identical_rules_share_sha256():
    store = builders.store(
        default=BASE,
        a="categories:\n  Gambling: allow\n",
        b="description: another tenant\ncategories:\n  gambling: allow\n",
        c="extends: a\n",
        same="{}\n",
    )
    a, b, c = store.get("a"), store.get("b"), store.get("c")
    assert a.sha256 == b.sha256 == c.sha256
    assert a.sha256 != store.get("default").sha256
    assert store.get("same").sha256 == store.get("default").sha256
    assert (a.ref.id, a.ref.chain, a.ref.sha256) == ("a", ("a", "default"), a.sha256)
    assert c.ref.chain == ("c", "a", "default")
    assert a.ref != b.ref  # same rules, different identity


def test_canonical_json_leaves_out_identity_and_prose():
    policy = builders.store(default=BASE).get("default")
    body = policy.canonical_json()
    assert '"description"' not in body
    assert '"chain"' not in body
    assert '"id"' not in body
    assert body.startswith('{"categories":')
    assert " " not in body.replace("be kind", "").replace("Hate Symbols", "")


# --------------------------------------------------------------------------- bad policy input

ERROR_CASES = [
    pytest.param(
        {"default": "id: default\ndefault: {reject: 90\ncategories: x\n"},
        [
            (
                "default.yaml",
                "",
                2,
                "close it with '}'",
                "YAML syntax error: the '{' on this line is never closed",
            )
        ],
        id="yaml-syntax-flow",
    ),
    pytest.param(
        {"default": "id: default\ndefault:\n  reject: 90\n   escalate: 3\n"},
        [
            (
                "default.yaml",
                "",
                4,
                "indented 3 spaces, but its siblings use 2",
                "YAML syntax error: wrong indentation",
            )
        ],
        id="yaml-syntax-indent",
    ),
    pytest.param(
        {"default": SMALL + "categoris: {}\n"},
        [("default.yaml", "categoris", 6, "did you mean 'categories'?", "unknown key 'categoris'")],
        id="unknown-top-level-key",
    ),
    pytest.param(
        {"default": SMALL + "flavour: 1\n"},
        [
            (
                "default.yaml",
                "flavour",
                6,
                "allowed here: id, description, extends, min_confidence, "
                "content_type_min_confidence, max_frames, default, categories, escalation, "
                "on_detector_error, shadow, review",
                "unknown key 'flavour'",
            )
        ],
        id="unknown-top-level-key-no-near-miss",
    ),
    pytest.param(
        {"default": SMALL + "  Gambling: {rejct: 90}\nescalation: {judg: bedrock}\n"},
        [
            ("default.yaml", "categories.Gambling.rejct", 6, "did you mean 'reject'?", "rejct"),
            ("default.yaml", "escalation.judg", 7, "did you mean 'judge'?", "unknown key 'judg'"),
        ],
        id="unknown-nested-keys",
    ),
    pytest.param(
        {"default": "id: default\ndefault: {reject: 90, illustrated: {reject: 99}}\n"},
        [
            (
                "default.yaml",
                "default.illustrated",
                2,
                "allowed here: reject, review, escalate",
                "unknown key 'illustrated'",
            )
        ],
        id="default-has-no-content-type-override",
    ),
    pytest.param(
        {"default": SMALL + "  Violance: {reject: 3}\n"},
        [
            (
                "default.yaml",
                "categories.Violance",
                6,
                "did you mean 'Violence'?",
                "unknown category 'Violance' in taxonomy 7.0",
            )
        ],
        id="unknown-category",
    ),
    pytest.param(
        {"default": SMALL + "  violence: {reject: 50}\n"},
        [
            (
                "default.yaml",
                "categories.violence",
                6,
                "names match case-insensitively; keep one",
                "'violence' names the same category as 'Violence'",
            )
        ],
        id="same-category-twice",
    ),
    pytest.param(
        {"default": SMALL + "  Gambling: {reject: 101, escalate: -1}\n"},
        [
            ("default.yaml", "categories.Gambling.reject", 6, None, "from 0 to 100, got 101"),
            ("default.yaml", "categories.Gambling.escalate", 6, None, "from 0 to 100, got -1"),
        ],
        id="thresholds-out-of-range",
    ),
    pytest.param(
        {"default": SMALL + "  Gambling: {review: .nan}\n  Alcohol: {reject: .inf}\n"},
        [
            ("default.yaml", "categories.Gambling.review", 6, None, "got nan"),
            ("default.yaml", "categories.Alcohol.reject", 7, None, "got inf"),
        ],
        id="thresholds-not-finite",
    ),
    pytest.param(
        {"default": SMALL + "  Gambling: {reject: " + "9" * 400 + "}\n"},
        [("default.yaml", "categories.Gambling.reject", 6, None, "must be a number from 0 to 100")],
        id="threshold-int-too-large-for-float",
    ),
    pytest.param(
        {"default": SMALL + "  Gambling: {reject: '80'}\n  Alcohol: {reject: true}\n"},
        [
            (
                "default.yaml",
                "categories.Gambling.reject",
                6,
                "write a plain number such as 80",
                "got '80'",
            ),
            ("default.yaml", "categories.Alcohol.reject", 7, None, "got True"),
        ],
        id="thresholds-not-numbers",
    ),
    pytest.param(
        {"default": "id: default\nmin_confidence: 140\ndefault: {reject: 90}\n"},
        [("default.yaml", "min_confidence", 2, None, "from 0 to 100, got 140")],
        id="min-confidence-out-of-range",
    ),
    pytest.param(
        {"default": SMALL + "  Gambling:\n    reject: 50\n    escalate: 60\n"},
        [
            (
                "default.yaml",
                "categories.Gambling.escalate",
                8,
                "keep 0 <= escalate <= review <= reject <= 100; `escalate: null` removes an "
                "inherited threshold",
                "escalate 60 is above reject 50",
            )
        ],
        id="inverted-escalate-reject",
    ),
    pytest.param(
        {"default": SMALL + "  Gambling: {reject: 50, review: 70, escalate: 60}\n"},
        [
            (
                "default.yaml",
                "categories.Gambling.review",
                6,
                "keep 0 <= escalate <= review <= reject <= 100; `review: null` removes an "
                "inherited threshold",
                "review 70 is above reject 50",
            )
        ],
        id="inverted-review-reject",
    ),
    pytest.param(
        {
            "default": SMALL
            + "  Weapons:\n    reject: 90\n    illustrated: {reject: 50, escalate: 70}\n"
        },
        [
            (
                "default.yaml",
                "categories.Weapons.illustrated.escalate",
                8,
                "keep 0 <= escalate <= review <= reject <= 100; `escalate: null` removes an "
                "inherited threshold",
                "escalate 70 is above reject 50",
            )
        ],
        id="inverted-in-override",
    ),
    pytest.param(
        {"default": SMALL, "kids": "categories:\n  Violence:\n    reject: 50\n"},
        [
            (
                "tenants/kids.yaml",
                "categories.Violence.reject",
                3,
                "keep 0 <= escalate <= review <= reject <= 100; `escalate: null` removes an "
                "inherited threshold",
                "escalate 60 is above reject 50 in policy 'kids' after merging",
            )
        ],
        id="inverted-only-after-merge-lower-reject",
    ),
    pytest.param(
        {"default": SMALL, "kids": "categories:\n  Violence:\n    escalate: 97\n"},
        [
            (
                "tenants/kids.yaml",
                "categories.Violence.escalate",
                3,
                "keep 0 <= escalate <= review <= reject <= 100; `escalate: null` removes an "
                "inherited threshold",
                "escalate 97 is above reject 95 in policy 'kids' after merging",
            )
        ],
        id="inverted-only-after-merge-raise-escalate",
    ),
    pytest.param(
        {"default": SMALL + "escalation:\n  on_error: approve\n  on_blocked: approve\n"},
        [
            (
                "default.yaml",
                "escalation.on_error",
                7,
                None,
                "must be one of review, reject, got 'approve'; fail closed",
            ),
            (
                "default.yaml",
                "escalation.on_blocked",
                8,
                None,
                "must be one of review, reject, got 'approve'; fail closed",
            ),
        ],
        id="judge-failure-approves",
    ),
    pytest.param(
        {"default": SMALL + "on_detector_error: approve\n"},
        [
            (
                "default.yaml",
                "on_detector_error",
                6,
                None,
                "must be one of raise, review, got 'approve'; a detector failure must never "
                "approve an image",
            )
        ],
        id="detector-failure-approves",
    ),
    pytest.param(
        {"default": SMALL + "escalation: {on_error: revew}\n"},
        [("default.yaml", "escalation.on_error", 6, "did you mean 'review'?", "got 'revew'")],
        id="on-error-typo",
    ),
    pytest.param(
        # `nova` shares half its letters with `none`, but it names a Bedrock model: suggesting
        # `none` would turn the judge off. Only a misspelling is suggested.
        {"default": SMALL + "escalation: {judge: nova}\n"},
        [
            (
                "default.yaml",
                "escalation.judge",
                6,
                "the judge is the service asked: `bedrock` with model_id naming the model (a "
                "Claude or Nova model id, for instance), or `none` for no judge",
                "must be one of bedrock, none, got 'nova'",
            )
        ],
        id="judge-names-a-model",
    ),
    pytest.param(
        {"default": SMALL + "escalation: {judge: bedrok}\n"},
        [("default.yaml", "escalation.judge", 6, "did you mean 'bedrock'?", "got 'bedrok'")],
        id="judge-typo",
    ),
    pytest.param(
        {"default": SMALL, "kids": "extends: teen\n", "teens": "{}\n"},
        [
            (
                "tenants/kids.yaml",
                "extends",
                1,
                "did you mean 'teens'?",
                "extends 'teen', but there is no such policy",
            )
        ],
        id="extends-missing",
    ),
    pytest.param(
        {"default": SMALL, "kids": "extends: 5\n"},
        [("tenants/kids.yaml", "extends", 1, None, "extends must name a policy, got 5")],
        id="extends-not-a-name",
    ),
    pytest.param(
        {"default": SMALL, "kids": "\nshadow: kids-nxt\n", "kids-next": "{}\n"},
        [
            (
                "tenants/kids.yaml",
                "shadow",
                2,
                "did you mean 'kids-next'?",
                "shadow names 'kids-nxt', but there is no such policy",
            )
        ],
        id="shadow-unknown",
    ),
    pytest.param(
        {"default": SMALL + "shadow: [kids, kids-nxt]\n", "kids": "{}\n", "kids-next": "{}\n"},
        [
            (
                "default.yaml",
                "shadow.1",
                6,
                "did you mean 'kids-next'?",
                "shadow names 'kids-nxt', but there is no such policy",
            )
        ],
        id="shadow-unknown-in-a-list",
    ),
    pytest.param(
        {"default": SMALL, "kids": "shadow: [default, kids]\n"},
        [
            (
                "tenants/kids.yaml",
                "shadow.1",
                1,
                "a shadow is another policy, evaluated beside this one",
                "shadow names this policy itself ('kids')",
            )
        ],
        id="shadow-self",
    ),
    pytest.param(
        {"default": SMALL + "shadow: default\n"},
        [
            (
                "default.yaml",
                "shadow",
                6,
                "a shadow is another policy, evaluated beside this one",
                "shadow names this policy itself ('default')",
            )
        ],
        id="shadow-self-default",
    ),
    pytest.param(
        {"default": SMALL, "kids": "shadow: [default, default]\n"},
        [("tenants/kids.yaml", "shadow", 1, "name each policy once", "names 'default' twice")],
        id="shadow-duplicate",
    ),
    pytest.param(
        {"default": SMALL, "kids": "shadow: 5\n"},
        [
            (
                "tenants/kids.yaml",
                "shadow",
                1,
                "e.g. shadow: kids-next, or shadow: [kids-next, kids-strict]",
                "shadow must be a policy id or a list of policy ids, got 5",
            )
        ],
        id="shadow-not-a-name-or-list",
    ),
    pytest.param(
        {"default": SMALL, "kids": "shadow: {default: 1}\n"},
        [
            (
                "tenants/kids.yaml",
                "shadow",
                1,
                "e.g. shadow: kids-next, or shadow: [kids-next, kids-strict]",
                "shadow must be a policy id or a list of policy ids, got {'default': 1}",
            )
        ],
        id="shadow-mapping",
    ),
    pytest.param(
        {"default": SMALL, "kids": "shadow:\n  - 5\n  - Default\n"},
        [
            (
                "tenants/kids.yaml",
                "shadow.0",
                1,
                NAMING,
                "shadow must name a policy by its id, got 5",
            ),
            (
                "tenants/kids.yaml",
                "shadow.1",
                1,
                NAMING,
                "shadow must name a policy by its id, got 'Default'",
            ),
        ],
        id="shadow-entries-not-ids",
    ),
    pytest.param(
        {"default": SMALL, "a": "extends: b\n", "b": "\n\nextends: a\n"},
        [
            ("tenants/a.yaml", "extends", 1, None, "extends cycle: a -> b -> a"),
            ("tenants/b.yaml", "extends", 3, None, "extends cycle: b -> a -> b"),
        ],
        id="cycle",
    ),
    pytest.param(
        {"default": SMALL, "a": "extends: a\n"},
        [("tenants/a.yaml", "extends", 1, None, "extends cycle: a -> a")],
        id="self-cycle",
    ),
    pytest.param(
        {"default": "- id\n- default\n"},
        [
            (
                "default.yaml",
                "",
                1,
                "start with `id:` or `extends:`",
                "a policy must be a mapping of keys, not a sequence",
            )
        ],
        id="document-is-a-list",
    ),
    pytest.param(
        {"default": "\n# just text\nhello\n"},
        [
            (
                "default.yaml",
                "",
                3,
                "start with `id:` or `extends:`",
                "a policy must be a mapping of keys, not a scalar",
            )
        ],
        id="document-is-a-scalar",
    ),
    pytest.param(
        {"default": "!!set {id, default}\n"},
        [
            (
                "default.yaml",
                "",
                1,
                "start with `id:` or `extends:`",
                "a policy must be a mapping of keys, not a set",
            )
        ],
        id="document-is-a-set",
    ),
    pytest.param(
        {"default": ""},
        [("default.yaml", "", None, None, "the file is empty; a policy is one YAML mapping")],
        id="empty-file",
    ),
    pytest.param(
        {"default": "# nothing but a comment\n"},
        [("default.yaml", "", None, None, "the file is empty")],
        id="only-comments",
    ),
    pytest.param(
        {"default": SMALL + "---\nid: other\n"},
        [("default.yaml", "", None, None, "the file holds 2 documents")],
        id="two-documents",
    ),
    pytest.param(
        {"default": SMALL + "description: !!python/object/apply:os.system ['echo pwned']\n"},
        [
            (
                "default.yaml",
                "",
                6,
                "policies hold plain values; remove the tag",
                "YAML tag not allowed: could not determine a constructor for the tag "
                "'tag:yaml.org,2002:python/object/apply:os.system'",
            )
        ],
        id="python-object-tag",
    ),
    pytest.param(
        {"default": "!!python/object:collections.OrderedDict {id: default}\n"},
        [("default.yaml", "", 1, "policies hold plain values; remove the tag", "YAML tag")],
        id="python-object-tag-at-root",
    ),
    pytest.param(
        {
            "default": SMALL
            + "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            + "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
            + "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
            + "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
        },
        [
            (
                "default.yaml",
                "",
                None,
                "write the policy out without recursive or repeated aliases",
                f"document expands to more than {MAX_NODES} nodes",
            )
        ],
        id="alias-bomb",
    ),
    pytest.param(
        {
            "default": "id: default\ndefault:\n  <<: {"
            + "a: &a [x, x, x, x, x, x, x, x, x, x], "
            + "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a], "
            + "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b], "
            + "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c], "
            + "reject: [*d, *d, *d]}\n"
        },
        [
            (
                "default.yaml",
                "",
                None,
                "write the policy out without recursive or repeated aliases",
                f"document expands to more than {MAX_NODES} nodes",
            )
        ],
        id="alias-bomb-behind-merge-key",
    ),
    pytest.param(
        {"default": SMALL + "description: &a [*a]\n"},
        [
            (
                "default.yaml",
                "",
                None,
                "write the policy out without recursive or repeated aliases",
                "document expands to more than",
            )
        ],
        id="recursive-alias",
    ),
    pytest.param(
        {"default": SMALL + "escalation: &e {guidance: *e}\n"},
        [
            (
                "default.yaml",
                "",
                None,
                "write the policy out without recursive or repeated aliases",
                "document expands to more than",
            )
        ],
        id="recursive-alias-mapping",
    ),
    pytest.param(
        {"default": "[" * 5000 + "]" * 5000},
        [("default.yaml", "", None, "a policy is a few levels deep", "YAML nesting is too deep")],
        id="nesting-too-deep",
    ),
    pytest.param(
        {"default": SMALL + "description: '" + "x" * MAX_POLICY_BYTES + "'\n"},
        [
            (
                "default.yaml",
                "",
                None,
                "split it across tenants with `extends`",
                f"file is larger than the {MAX_POLICY_BYTES}-byte bound for a policy",
            )
        ],
        id="too-large",
    ),
    pytest.param(
        {"default": SMALL + "  Gambling: {}\n"},
        [
            (
                "default.yaml",
                "categories.Gambling",
                6,
                "give reject, review or escalate, or write `allow` to ignore the category",
                "an empty rule has no thresholds",
            )
        ],
        id="empty-rule",
    ),
    pytest.param(
        {"default": SMALL + "  Gambling: 5\n  Alcohol: deny\n"},
        [
            (
                "default.yaml",
                "categories.Gambling",
                6,
                "e.g. {reject: 90, escalate: 60}",
                "a rule is `allow` or a mapping of thresholds, got 5",
            ),
            (
                "default.yaml",
                "categories.Alcohol",
                7,
                "e.g. {reject: 90, escalate: 60}",
                "got 'deny'",
            ),
        ],
        id="rule-not-a-mapping",
    ),
    pytest.param(
        {
            "default": SMALL,
            "kids": "categories:\n  Violence:\n    reject: null\n    escalate: null\n",
        },
        [
            (
                "tenants/kids.yaml",
                "categories.Violence",
                2,
                "add one, or write `allow`; animated/illustrated overrides apply only to those "
                "images, so photos would match nothing",
                "this rule has no reject, review or escalate threshold after merging",
            )
        ],
        id="rule-emptied-by-merge",
    ),
    pytest.param(
        {"default": SMALL + "escalation:\n  judge: bedrock\n  guidance: hi\n"},
        [
            (
                "default.yaml",
                "escalation.model_id",
                6,
                "e.g. us.anthropic.claude-haiku-4-5-20251001-v1:0",
                "judge: bedrock needs a model_id",
            )
        ],
        id="bedrock-without-model-id",
    ),
    pytest.param(
        {"default": SMALL, "kids": "\nescalation:\n  judge: bedrock\n"},
        [
            (
                "tenants/kids.yaml",
                "escalation.model_id",
                2,
                "e.g. us.anthropic.claude-haiku-4-5-20251001-v1:0",
                "judge: bedrock needs a model_id",
            )
        ],
        id="bedrock-without-model-id-in-tenant",
    ),
    pytest.param(
        {"default": SMALL + "escalation: {budget: {calls: -1, per: 1y}}\n"},
        [
            ("default.yaml", "escalation.budget.calls", 6, None, "whole number >= 0, got -1"),
            ("default.yaml", "escalation.budget.per", 6, None, "got '1y'"),
        ],
        id="bad-budget",
    ),
    pytest.param(
        {"default": "id: default\nmin_confidence: 40\n"},
        [
            (
                "default.yaml",
                "default",
                None,
                "add e.g. default: {reject: 90, escalate: 60}, or `default: allow` to say so",
                "no `default` rule",
            )
        ],
        id="missing-default-rule",
    ),
    pytest.param(
        {"kids": "categories: {}\n"},
        [
            # Only the cause: kids is not also told that the policy it extends is missing.
            ("default.yaml", "", None, "every store needs default.yaml", "no default policy"),
        ],
        id="missing-default-policy",
    ),
    pytest.param(
        {"default": SMALL, "kids": "id: teens\n"},
        [
            (
                "tenants/kids.yaml",
                "id",
                1,
                "use id: kids or rename the file",
                "id 'teens' does not match the file, which defines 'kids'",
            )
        ],
        id="id-does-not-match-file",
    ),
    pytest.param(
        {"default": SMALL + "extends: kids\n", "kids": "{}\n"},
        [
            (
                "default.yaml",
                "extends",
                6,
                None,
                "default.yaml is the root policy and extends nothing",
            )
        ],
        id="default-extends",
    ),
    pytest.param(
        {"default": SMALL, "Kids": "{}\n"},
        [
            (
                "tenants/Kids.yaml",
                "",
                None,
                "tenant ids match ^[a-z0-9][a-z0-9_-]{0,63}$; rename the file",
                "'Kids' is not a valid tenant id, so this file can never be used",
            )
        ],
        id="tenant-name-not-an-id",
    ),
    pytest.param(
        {"default": b"id: default\ndefault: {reject: 90}\ndescription: \xff\xfe\n"},
        [("default.yaml", "", None, None, "not UTF-8 text: invalid start byte at byte 47")],
        id="invalid-utf8",
    ),
    pytest.param(
        {"default": "id: default\ndefault: {reject: 90}\ndescription: \udc80\n"},
        [("default.yaml", "", None, None, "YAML syntax error: unacceptable character #xdc80")],
        id="lone-surrogate-in-str",
    ),
    pytest.param(
        {"default": SMALL + "description: 2001-13-45\n"},
        [("default.yaml", "", None, None, "YAML error: month must be in 1..12")],
        id="bad-timestamp",
    ),
    pytest.param(
        {"default": SMALL + "description: [not, text]\n"},
        [("default.yaml", "description", 6, None, "must be text")],
        id="description-not-text",
    ),
]


@pytest.mark.parametrize(("sources", "expected"), ERROR_CASES)
def test_bad_policy_is_refused_with_exact_problems(sources, expected):
    problems = problems_of(sources)
    assert [where(p) for p in problems] == [e[:4] for e in expected]
    for problem, (*_, fragment) in zip(problems, expected, strict=True):
        assert fragment in problem.message
        assert problem.severity == "error"


def test_duplicate_keys_are_reported_and_the_rest_is_still_checked():
    text = """\
id: default
default: {reject: 90}
min_confidence: 40
min_confidence: 50
categories:
  Violence: {reject: 95}
  Violence: {reject: 200}
  Violance: allow
"""
    problems = problems_of({"default": text})
    assert [where(p) for p in problems] == [
        ("default.yaml", "min_confidence", 4, "remove or merge one of them"),
        ("default.yaml", "categories.Violence", 7, "remove or merge one of them"),
        # checked on, against what YAML kept (the last value)
        ("default.yaml", "categories.Violence.reject", 6, None),
        ("default.yaml", "categories.Violance", 8, "did you mean 'Violence'?"),
    ]
    assert problems[0].message == (
        "duplicate key 'min_confidence' (first at line 3); YAML would keep only the last one"
    )
    assert "got 200" in problems[2].message


def test_one_error_carries_every_problem_of_every_file():
    sources = {
        "default": SMALL + "flavour: 1\n",
        "kids": "categories:\n  Violance: {reject: 50}\n",
        "teens": "min_confidence: 200\n",
        "school": "categories:\n  Gambling: {reject: 50, escalate: 60}\n",
        "orphan": "extends: nowhere\n",
        "Bad": "{}\n",
    }
    problems = problems_of(sources)
    # A default with a problem is still merged (without the refused key), so school's inverted
    # bands arrive in the same run.
    assert sorted((p.file, p.path) for p in problems) == [
        ("default.yaml", "flavour"),
        ("tenants/Bad.yaml", ""),
        ("tenants/kids.yaml", "categories.Violance"),
        ("tenants/orphan.yaml", "extends"),
        ("tenants/school.yaml", "categories.Gambling.escalate"),
        ("tenants/teens.yaml", "min_confidence"),
    ]


def test_policy_error_renders_every_problem():
    with pytest.raises(PolicyError) as caught:
        PolicyStore.from_sources({"default": SMALL + "flavour: 1\n  # \n", "kids": "id: x\n"})
    text = str(caught.value)
    assert text.splitlines()[0] == "2 problems in the policies:"
    assert "  default.yaml:6: flavour: unknown key 'flavour' (allowed here:" in text
    assert (
        "  tenants/kids.yaml:1: id: id 'x' does not match the file, which defines 'kids' "
        "(use id: kids or rename the file)" in text
    )
    assert isinstance(caught.value, ValueError)


def test_size_bound_is_inclusive():
    head = SMALL + "description: '"
    exact = head + "x" * (MAX_POLICY_BYTES - len(head) - 2) + "'\n"
    assert len(exact.encode()) == MAX_POLICY_BYTES
    assert builders.store(default=exact).get("default").description.startswith("xxx")
    assert problems_of({"default": exact + " "})[0].message.startswith("file is larger")


def test_size_bound_counts_bytes_not_characters():
    head = SMALL + "description: '"
    # "é" is two bytes in UTF-8: the text is within the bound in characters but not in bytes.
    text = head + "é" * (MAX_POLICY_BYTES // 2) + "'\n"
    assert len(text) < MAX_POLICY_BYTES < len(text.encode())
    assert problems_of({"default": text})[0].message.startswith("file is larger")


def test_yaml_merge_keys_are_plain_yaml():
    text = SMALL + "  Weapons: &base {reject: 90, escalate: 50}\n  Alcohol:\n    <<: *base\n"
    policy = builders.store(default=text).get("default")
    assert policy.categories["Alcohol"].thresholds == Thresholds(reject=90, escalate=50)


# --------------------------------------------------------------------------- warnings


def test_threshold_below_min_confidence_warns():
    store = builders.store(default=SMALL + "  Gambling:\n    reject: 80\n    escalate: 20\n")
    assert [where(w) for w in store.warnings] == [
        ("default.yaml", "categories.Gambling.escalate", 8, None)
    ]
    (warning,) = store.warnings
    assert warning.severity == "warning"
    assert warning.message == (
        "escalate 20 is below min_confidence 40; labels under 40 never arrive, so the band "
        "starts at 40"
    )


def test_clean_policy_has_no_warnings():
    assert builders.store(default=DEFAULT, kids="categories: {Gambling: allow}\n").warnings == ()


def test_suggestive_expands_to_both_7_0_categories():
    store = builders.store(default=SMALL + "  Suggestive: {reject: 50, escalate: 45}\n")
    policy = store.get("default")
    expected = Thresholds(reject=50, escalate=45)
    assert policy.categories["Non-Explicit Nudity of Intimate parts and Kissing"].thresholds == (
        expected
    )
    assert policy.categories["Swimwear or Underwear"].thresholds == expected
    assert "Suggestive" not in policy.categories
    assert [where(w) for w in store.warnings] == [
        (
            "default.yaml",
            "categories.Suggestive",
            6,
            "taxonomy 6.1 'Suggestive' was split in 7.0; write the 7.0 names instead",
        )
    ]
    assert store.warnings[0].message == (
        "'Suggestive' is a taxonomy 6.1 name; applied to 'Non-Explicit Nudity of Intimate parts "
        "and Kissing' and 'Swimwear or Underwear'"
    )


@pytest.mark.parametrize(
    "text",
    [
        "  Suggestive: {reject: 50}\n  Swimwear or Underwear: allow\n",
        "  Swimwear or Underwear: allow\n  Suggestive: {reject: 50}\n",
        "  swimwear or underwear: allow\n  SUGGESTIVE: {reject: 50}\n",
    ],
    ids=["legacy-first", "legacy-last", "other-spellings"],
)
def test_explicit_7_0_name_wins_over_a_6_1_name(text):
    store = builders.store(default=SMALL + text)
    policy = store.get("default")
    assert policy.categories["Swimwear or Underwear"].thresholds == Thresholds(allow=True)
    assert policy.categories[
        "Non-Explicit Nudity of Intimate parts and Kissing"
    ].thresholds == Thresholds(reject=50)
    assert len(store.warnings) == 1
    assert "6.1" in store.warnings[0].message


@pytest.mark.parametrize(
    ("name", "target"),
    [("Drugs", "Drugs & Tobacco"), ("Tobacco", "Drugs & Tobacco")],
    ids=["Drugs", "Tobacco"],
)
def test_drugs_and_tobacco_6_1_names(name, target):
    store = builders.store(default=SMALL + f"  {name}: {{reject: 50}}\n")
    assert store.get("default").categories[target].thresholds == Thresholds(reject=50)
    assert [w.path for w in store.warnings] == [f"categories.{name}"]


def test_drugs_and_tobacco_6_1_spelling_is_the_7_0_name_without_warning():
    store = builders.store(default=SMALL + "  Drugs and Tobacco: {reject: 50}\n")
    assert store.get("default").categories["Drugs & Tobacco"].thresholds == Thresholds(reject=50)
    assert store.warnings == ()


def test_explicit_nudity_without_explicit_warns():
    store = builders.store(default=SMALL + "  Explicit Nudity: {reject: 50}\n")
    assert "Explicit Nudity" in store.get("default").categories
    assert [where(w) for w in store.warnings] == [
        (
            "default.yaml",
            "categories.Explicit Nudity",
            6,
            "if this policy was written for 6.1, name 'Explicit' instead",
        )
    ]
    assert store.warnings[0].message == (
        "in taxonomy 7.0 'Explicit Nudity' is a level-2 category under 'Explicit', so "
        "'Explicit Sexual Activity' and 'Sex Toys' fall to other rules"
    )


@pytest.mark.parametrize(
    "text",
    [
        "  Explicit Nudity: {reject: 50}\n  explicit: {reject: 70}\n",
        "  Explicit: {reject: 70}\n  explicit nudity: {reject: 50}\n",
    ],
    ids=["explicit-after", "explicit-before"],
)
def test_explicit_nudity_with_explicit_does_not_warn(text):
    assert builders.store(default=SMALL + text).warnings == ()


def test_warnings_travel_with_a_policy_error():
    with pytest.raises(PolicyError) as caught:
        PolicyStore.from_sources({"default": SMALL + "  Suggestive: {reject: 500}\n"})
    assert [where(p) for p in caught.value.problems] == [
        ("default.yaml", "categories.Suggestive.reject", 6, None)
    ]
    assert [w.path for w in caught.value.warnings] == ["categories.Suggestive"]


# --------------------------------------------------------------------------- tenant ids


@pytest.mark.parametrize(
    "tenant",
    ["../x", "/etc/passwd", "", "a\x00b", "A", "kids\n", "a" * 65, "-kids", "_x", "ki ds", "k.y"],
    ids=[
        "parent-dir",
        "absolute",
        "empty",
        "nul",
        "upper",
        "newline",
        "65-chars",
        "leading-dash",
        "leading-underscore",
        "space",
        "dot",
    ],
)
def test_get_refuses_invalid_tenant_ids(tenant):
    store = builders.store(default=SMALL, kids="{}\n")
    with pytest.raises(InvalidTenant, match="invalid tenant id"):
        store.get(tenant)
    with pytest.raises(InvalidTenant):
        PolicyStore.from_sources({"default": SMALL}, fallback_to_default=True).get(tenant)


@pytest.mark.parametrize("tenant", [None, 5, b"kids", ["kids"]], ids=repr)
def test_get_refuses_non_string_tenants(tenant):
    with pytest.raises(InvalidTenant):
        builders.store(default=SMALL).get(tenant)


@pytest.mark.parametrize(
    "tenant", ["a", "0", "a" * 64, "kids_v2", "k-9", "default"], ids=["a", "0", "64", "_", "-", "d"]
)
def test_valid_tenant_ids(tenant):
    assert validate_tenant(tenant) == tenant


def test_unknown_tenant_raises_by_default():
    store = builders.store(default=SMALL, kids="{}\n")
    assert store.get("kids").id == "kids"
    assert store.get("default").id == "default"
    assert "kids" in store
    assert "nobody" not in store
    assert 5 not in store
    with pytest.raises(UnknownTenant, match="no policy for tenant 'nobody'") as caught:
        store.get("nobody")
    assert "fallback_to_default" in str(caught.value)
    assert store.fallback_to_default is False


def test_unknown_tenant_suggests_a_near_miss():
    store = builders.store(default=SMALL, kids="{}\n")
    with pytest.raises(UnknownTenant, match="did you mean 'kids'"):
        store.get("kidz")


def test_falling_back_to_default_is_an_explicit_opt_in():
    store = PolicyStore.from_sources({"default": SMALL, "kids": "{}\n"}, fallback_to_default=True)
    fallback = store.get("nobody")
    # The policy handed out is default's own, id and all: a caller tells a fallback by id != tenant
    assert fallback is store.get("default")
    assert fallback.id == "default"
    assert store.get("kids").id == "kids"
    with pytest.raises(InvalidTenant):
        store.get("../nobody")


# --------------------------------------------------------------------------- 6.1 names, budgets


def test_drugs_and_tobacco_in_one_file_is_an_error_naming_both_lines():
    problems = problems_of({"default": SMALL + "  Drugs: {reject: 50}\n  Tobacco: allow\n"})
    assert [where(p) for p in problems] == [
        ("default.yaml", "categories.Tobacco", 7, "write one 'Drugs & Tobacco' rule instead")
    ]
    assert problems[0].message == (
        "'Drugs' (line 6) and 'Tobacco' (line 7) both become 'Drugs & Tobacco' in taxonomy 7.0, "
        "and only one rule can apply"
    )


def test_drugs_and_tobacco_next_to_the_7_0_name_is_not_a_conflict():
    text = SMALL + "  Drugs: {reject: 50}\n  Tobacco: allow\n  Drugs & Tobacco: {reject: 70}\n"
    store = builders.store(default=text)
    assert store.get("default").categories["Drugs & Tobacco"].thresholds == Thresholds(reject=70)


@pytest.mark.parametrize(
    "per",
    ["32d", "745h", "44641m", "2678401s", "2678401", "1e400", ".inf", "9" * 400 + "d"],
    ids=["32d", "745h", "44641m", "2678401s", "number", "huge-float", "inf", "overflowing"],
)
def test_budget_window_longer_than_31_days_is_an_error(per):
    problems = problems_of(
        {"default": SMALL + f"escalation: {{budget: {{calls: 5, per: {per}}}}}\n"}
    )
    assert [(p.path, p.line) for p in problems] == [("escalation.budget.per", 6)]
    assert problems[0].message.startswith("must be a duration such as 30s, 15m, 1h or 1d")
    assert "at most 31 days" in problems[0].message


@pytest.mark.parametrize("per", ["31d", "744h", "2678400s", "2678400", "0.5s"])
def test_budget_window_up_to_31_days_is_fine(per):
    store = builders.store(default=SMALL + f"escalation: {{budget: {{calls: 5, per: {per}}}}}\n")
    budget = store.get("default").escalation.budget
    assert budget is not None and 0 < budget.per_seconds <= 31 * 86400


# --------------------------------------------------------------------------- read-only policies


def test_policy_categories_cannot_be_mutated():
    policy = builders.store(default=DEFAULT).get("default")
    before = policy.sha256
    with pytest.raises(TypeError):
        policy.categories["Gambling"] = policy.categories["Violence"]  # type: ignore[index]
    with pytest.raises(TypeError):
        del policy.categories["Violence"]  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        policy.categories.pop("Violence")  # type: ignore[attr-defined]
    assert "Gambling" not in policy.categories
    assert policy.sha256 == before == builders.store(default=DEFAULT).get("default").sha256


def test_read_only_policy_still_serialises_hashes_and_compares():
    import copy
    import json
    import pickle

    a = builders.store(default=DEFAULT).get("default")
    b = builders.store(default=DEFAULT).get("default")
    assert a == b and hash(a) == hash(b)
    assert {a, b} == {a}
    body = a.model_dump(mode="json")
    assert body["categories"]["Violence"]["thresholds"]["reject"] == 95.0
    assert json.loads(a.model_dump_json())["categories"].keys() == a.categories.keys()
    assert type(a).model_validate_json(a.model_dump_json()) == a
    assert pickle.loads(pickle.dumps(a)) == a
    assert copy.deepcopy(a) == a
    assert a.categories == dict(a.categories)
    other = builders.store(default=DEFAULT.replace("reject: 95", "reject: 96")).get("default")
    assert other != a


# --------------------------------------------------------------------------- max_frames


def test_max_frames_defaults_to_4_and_is_inherited():
    store = builders.store(
        default=SMALL, kids="{}\n", anim="max_frames: 12\n", sub="extends: anim\n"
    )
    assert store.get("default").max_frames == 4
    assert store.get("kids").max_frames == 4
    assert store.get("anim").max_frames == 12
    assert store.get("sub").max_frames == 12
    assert store.get("anim").sha256 != store.get("kids").sha256


def test_max_frames_in_default_yaml_and_null_restores_the_built_in_default():
    store = builders.store(default=SMALL + "max_frames: 2\n", kids="max_frames: null\n")
    assert store.get("default").max_frames == 2
    assert store.get("kids").max_frames == 4


@pytest.mark.parametrize(
    "value",
    ["0", "21", "4.5", "'4'", "true", "-1"],
    ids=["0", "21", "fraction", "text", "bool", "neg"],
)
def test_max_frames_must_be_a_whole_number_from_1_to_20(value):
    problems = problems_of({"default": SMALL + f"max_frames: {value}\n"})
    assert [(p.path, p.line) for p in problems] == [("max_frames", 6)]
    assert problems[0].message.startswith("must be a whole number from 1 to 20, got ")


def test_max_frames_accepts_a_whole_float():
    assert builders.store(default=SMALL + "max_frames: 8.0\n").get("default").max_frames == 8


# --------------------------------------------------------------------------- from a directory


def write(path: pathlib.Path, text: str | bytes) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def policy_dir(tmp_path) -> pathlib.Path:
    root = tmp_path / "policies"
    write(root / "default.yaml", DEFAULT)
    write(root / "tenants" / "kids.yaml", "categories:\n  Swimwear or Underwear: {reject: 70}\n")
    write(root / "tenants" / "forum.yml", "extends: kids\n")
    write(root / "tenants" / "README.md", "not a policy")
    return root


def test_store_from_directory(policy_dir):
    store = PolicyStore(policy_dir)
    assert store.path == policy_dir
    assert store.tenants == ("forum", "kids")
    assert store.get("forum").chain == ("forum", "kids", "default")
    assert store.get("kids").categories["Swimwear or Underwear"].thresholds.reject == 70
    same = PolicyStore.from_sources(
        {"default": DEFAULT, "kids": "categories:\n  Swimwear or Underwear: {reject: 70}\n"}
    )
    assert store.get("kids").sha256 == same.get("kids").sha256


def test_store_without_tenants_dir(tmp_path):
    write(tmp_path / "default.yaml", SMALL)
    store = PolicyStore(tmp_path)
    assert store.tenants == ()
    with pytest.raises(UnknownTenant):
        store.get("anyone")
    assert PolicyStore(tmp_path, fallback_to_default=True).get("anyone").id == "default"


def test_no_file_outside_the_policy_directory_is_read(tmp_path, policy_dir, opened):
    # GIVEN a valid policy just outside the directory, named like a tenant
    secret = write(tmp_path / "x.yaml", "categories:\n  Gambling: allow\n")
    write(tmp_path / "passwd", "root:x:0:0\n")
    opened.clear()
    # WHEN the store is built and asked for tenants that are paths
    store = PolicyStore(policy_dir)
    for tenant in ("../x", "../../x", "/etc/passwd", "..", "tenants/../../x"):
        with pytest.raises(InvalidTenant):
            store.get(tenant)
    # THEN every file read is inside the policy directory, and the outside one was never opened
    assert opened, "the spy saw no reads at all"
    assert all(p.is_relative_to(policy_dir.resolve()) for p in opened), opened
    assert secret.resolve() not in opened


def test_symlink_out_of_the_policy_directory_is_refused_unread(tmp_path, policy_dir, opened):
    secret = write(tmp_path / "secret.yaml", "categories:\n  Gambling: allow\n")
    link = policy_dir / "tenants" / "evil.yaml"
    link.symlink_to(secret)
    opened.clear()
    with pytest.raises(PolicyError) as caught:
        PolicyStore(policy_dir)
    assert [where(p) for p in caught.value.problems] == [(str(link), "", None, None)]
    assert caught.value.problems[0].message == (
        "refused: the file resolves outside the policy directory"
    )
    assert secret.resolve() not in opened
    assert all(p.is_relative_to(policy_dir.resolve()) for p in opened), opened


def test_symlinked_default_out_of_the_directory_is_refused(tmp_path):
    root = tmp_path / "policies"
    root.mkdir()
    secret = write(tmp_path / "elsewhere.yaml", SMALL)
    (root / "default.yaml").symlink_to(secret)
    with pytest.raises(PolicyError) as caught:
        PolicyStore(root)
    assert [p.message for p in caught.value.problems] == [
        "refused: the file resolves outside the policy directory"
    ]


def test_symlink_inside_the_directory_is_fine(policy_dir):
    (policy_dir / "tenants" / "school.yaml").symlink_to(policy_dir / "tenants" / "kids.yaml")
    store = PolicyStore(policy_dir)
    assert store.get("school").sha256 == store.get("kids").sha256
    assert store.get("school").chain == ("school", "default")


def test_two_files_for_one_tenant(policy_dir):
    write(policy_dir / "tenants" / "kids.yml", "{}\n")
    with pytest.raises(PolicyError) as caught:
        PolicyStore(policy_dir)
    assert [where(p) for p in caught.value.problems] == [
        (str(policy_dir / "tenants" / "kids.yml"), "", None, "keep one of .yaml/.yml")
    ]
    assert caught.value.problems[0].message == "a second file for 'kids'"


def test_file_name_that_is_not_a_tenant_id(policy_dir):
    write(policy_dir / "tenants" / "Kids Club.yaml", "{}\n")
    with pytest.raises(PolicyError) as caught:
        PolicyStore(policy_dir)
    assert [where(p) for p in caught.value.problems] == [
        (
            str(policy_dir / "tenants" / "Kids Club.yaml"),
            "",
            None,
            "tenant ids match ^[a-z0-9][a-z0-9_-]{0,63}$; rename the file",
        )
    ]


def test_directory_problems_from_several_files_at_once(policy_dir):
    write(policy_dir / "tenants" / "kids.yml", "{}\n")
    write(policy_dir / "tenants" / "bad.yaml", b"description: \xc3\x28\n")
    write(policy_dir / "tenants" / "big.yaml", "description: '" + "x" * MAX_POLICY_BYTES + "'\n")
    write(policy_dir / "tenants" / "typo.yaml", "categoris: {}\n")
    with pytest.raises(PolicyError) as caught:
        PolicyStore(policy_dir)
    tenants = policy_dir / "tenants"
    assert sorted((p.file, p.path, p.message.split(":")[0]) for p in caught.value.problems) == [
        (str(tenants / "bad.yaml"), "", "not UTF-8 text"),
        (
            str(tenants / "big.yaml"),
            "",
            f"file is larger than the {MAX_POLICY_BYTES}-byte bound for a policy",
        ),
        (str(tenants / "kids.yml"), "", "a second file for 'kids'"),
        (str(tenants / "typo.yaml"), "categoris", "unknown key 'categoris'"),
    ]


def test_missing_directory_and_missing_default(tmp_path):
    with pytest.raises(PolicyError) as caught:
        PolicyStore(tmp_path / "nope")
    assert [(p.file, p.message) for p in caught.value.problems] == [
        (str(tmp_path / "nope"), "policy directory not found")
    ]
    write(tmp_path / "tenants" / "kids.yaml", "{}\n")
    with pytest.raises(PolicyError) as caught:
        PolicyStore(tmp_path)
    assert (str(tmp_path / "default.yaml"), "default.yaml not found") in [
        (p.file, p.message) for p in caught.value.problems
    ]


def test_a_rule_with_only_overrides_in_one_file_names_what_is_missing():
    # GIVEN a default whose Gambling rule has thresholds only for illustrated images
    problems = problems_of(
        {"default": "default: allow\ncategories:\n  Gambling: {illustrated: {reject: 90}}\n"}
    )
    # THEN the message does not speak of a merge that never happened
    [problem] = problems
    assert problem.message == "this rule has no reject, review or escalate threshold of its own"
    assert problem.path == "categories.Gambling"


def test_construction_errors_without_a_tag_are_not_blamed_on_tags():
    [problem] = problems_of({"default": "default: allow\n<<: 5\n"})
    assert "tag" not in problem.message
    assert problem.message.startswith("YAML error:")
