"""Triage: bands at every threshold, the most specific rule, content types, the aggregate."""

from __future__ import annotations

import pytest

from moderation.detection import ContentType, Detection, Label
from moderation.policy import Band, Policy, PolicyStore, Thresholds
from moderation.taxonomy import TAXONOMY
from moderation.triage import Action, Finding, Triage, compiled, evaluate

POLICY = """\
id: default
min_confidence: 40
content_type_min_confidence: 60
default: {reject: 90, review: 85, escalate: 60}
categories:
  Explicit: {reject: 80, review: 70, escalate: 50}
  Violence:
    reject: 95
    escalate: 60
    illustrated: {reject: 99, escalate: 85}
    animated: allow
  Weapons:
    reject: 80
    escalate: 50
    animated: {reject: 99}
  Visually Disturbing: {reject: 95, review: 90, escalate: 70}
  Hate Symbols: {review: 40}
  Swimwear or Underwear: allow
  Gambling: allow
"""


def make_policy(text: str = POLICY) -> Policy:
    return PolicyStore.from_sources({"default": text}).get("default")


def with_categories(categories: str) -> Policy:
    """A policy whose `default` rule never fires, with just these category rules."""
    return make_policy(
        f"id: default\nmin_confidence: 40\ndefault: allow\ncategories:\n{categories}"
    )


def label(name: str, confidence: float, parent: str | None = "", level: int | None = None) -> Label:
    """A label; parent and level come from the taxonomy unless given."""
    if parent == "":
        ancestors = TAXONOMY.ancestors(name)
        parent = ancestors[0] if ancestors else None
    if level is None:
        level = TAXONOMY.level(name) or 1
    return Label(name=name, parent=parent, level=level, confidence=confidence)


def detect(*labels: Label, content_types: dict[str, float] | None = None) -> Detection:
    return Detection(
        model_version="7.0",
        labels=labels,
        content_types=tuple(
            ContentType(name=n, confidence=c) for n, c in (content_types or {}).items()
        ),
    )


def only(triage: Triage) -> Finding:
    (finding,) = triage.findings
    return finding


# --------------------------------------------------------------------------- bands


@pytest.mark.parametrize(
    ("confidence", "band"),
    [
        (100.0, Band.REJECT),
        (80.001, Band.REJECT),
        (80.0, Band.REJECT),
        (79.999, Band.REVIEW),
        (70.001, Band.REVIEW),
        (70.0, Band.REVIEW),
        (69.999, Band.ESCALATE),
        (50.001, Band.ESCALATE),
        (50.0, Band.ESCALATE),
        (49.999, Band.IGNORE),
        (40.0, Band.IGNORE),
    ],
    ids=lambda v: str(v),
)
def test_bands_at_around_every_threshold(confidence, band):
    # Explicit: {reject: 80, review: 70, escalate: 50}
    finding = only(evaluate(make_policy(), detect(label("Explicit", confidence))))
    assert finding.band == band
    assert finding.rule == "Explicit"
    assert finding.matched == "label"
    assert finding.thresholds == Thresholds(reject=80, review=70, escalate=50)
    assert finding.note is None


@pytest.mark.parametrize(
    ("confidence", "band", "action"),
    [
        (90.0, Band.REJECT, Action.REJECT),
        (89.999, Band.REVIEW, Action.REVIEW),
        (85.0, Band.REVIEW, Action.REVIEW),
        (84.999, Band.ESCALATE, Action.ESCALATE),
        (60.0, Band.ESCALATE, Action.ESCALATE),
        (59.999, Band.IGNORE, Action.APPROVE),
    ],
    ids=lambda v: str(v),
)
def test_default_rule_bands_for_an_unknown_label(confidence, band, action):
    # default: {reject: 90, review: 85, escalate: 60}
    triage = evaluate(make_policy(), detect(label("Brand New Category", confidence, parent=None)))
    finding = only(triage)
    assert (finding.band, triage.action) == (band, action)
    assert (finding.rule, finding.matched) == ("default", "default")
    assert finding.thresholds == Thresholds(reject=90, review=85, escalate=60)


@pytest.mark.parametrize(
    ("thresholds", "confidence", "band"),
    [
        (Thresholds(allow=True, reject=10), 99.0, Band.IGNORE),
        (Thresholds(reject=90), 89.0, Band.IGNORE),
        (Thresholds(review=40), 40.0, Band.REVIEW),
        (Thresholds(review=40), 100.0, Band.REVIEW),
        (Thresholds(escalate=30), 29.999, Band.IGNORE),
        (Thresholds(reject=50, escalate=50), 50.0, Band.REJECT),
        (Thresholds(), 100.0, Band.IGNORE),
    ],
    ids=["allow", "below-only-band", "review-only", "review-top", "under", "equal-bands", "none"],
)
def test_thresholds_band(thresholds, confidence, band):
    assert thresholds.band(confidence) == band


def test_labels_below_min_confidence_are_ignored_with_a_note():
    # A rule below min_confidence (a warning at load) still cannot act under it.
    policy = make_policy(POLICY + "  Alcohol: {reject: 30}\n")
    triage = evaluate(policy, detect(label("Alcohol", 39.999), label("Hate Symbols", 39.0)))
    assert triage.action == Action.APPROVE
    for finding in triage.findings:
        assert finding.band == Band.IGNORE
        assert finding.note == "below the policy's min_confidence 40"
    assert triage.findings[0].describe() == ("Alcohol 40.0%: below the policy's min_confidence 40")
    assert evaluate(policy, detect(label("Alcohol", 40.0))).action == Action.REJECT


# --------------------------------------------------------------------------- the matching rule

L3 = "Exposed Female Nipple"  # -> Explicit Nudity -> Explicit


@pytest.mark.parametrize(
    ("categories", "rule", "matched", "band"),
    [
        (
            f"  {L3}: {{reject: 70}}\n  Explicit Nudity: allow\n  Explicit: allow\n",
            L3,
            "label",
            Band.REJECT,
        ),
        (
            "  Explicit Nudity: {review: 70}\n  Explicit: allow\n  Blood & Gore: {reject: 1}\n",
            "Explicit Nudity",
            "parent",
            Band.REVIEW,
        ),
        (
            "  Explicit: {escalate: 70}\n  Violence: {reject: 1}\n",
            "Explicit",
            "grandparent",
            Band.ESCALATE,
        ),
        ("  Violence: {reject: 1}\n", "default", "default", Band.IGNORE),
        (f"  {L3.lower()}: {{reject: 70}}\n", L3, "label", Band.REJECT),
    ],
    ids=["own-rule", "parent-rule", "grandparent-rule", "default", "rule-spelled-lowercase"],
)
def test_l3_label_takes_the_most_specific_rule(categories, rule, matched, band):
    finding = only(evaluate(with_categories(categories), detect(label(L3, 75.0))))
    assert (finding.rule, finding.matched, finding.band) == (rule, matched, band)
    assert (finding.label, finding.parent, finding.level) == (L3, "Explicit Nudity", 3)


@pytest.mark.parametrize(
    ("name", "rule", "matched"),
    [
        ("Graphic Violence", "Violence", "parent"),
        ("Weapons", "Weapons", "label"),
        ("Violence", "Violence", "label"),
        ("Middle Finger", "default", "default"),
        ("blood and gore", "Violence", "grandparent"),
    ],
    ids=["l2-by-parent", "l2-own", "l1-own", "l2-default", "l3-other-spelling"],
)
def test_rule_matching_at_each_level(name, rule, matched):
    finding = only(evaluate(make_policy(), detect(label(name, 75.0))))
    assert (finding.rule, finding.matched) == (rule, matched)


def test_unknown_label_follows_the_responses_parent_links_into_the_tree():
    # GIVEN a label newer than our taxonomy, under another unknown one, under a known L2
    detection = Detection.from_rekognition(
        {
            "ModerationLabels": [
                {"Name": "Leaf", "ParentName": "Middle", "Confidence": 97.0},
                {"Name": "Middle", "ParentName": "Graphic Violence", "Confidence": 97.5},
            ]
        }
    )
    triage = evaluate(make_policy(), detection)
    leaf, middle = triage.findings
    # THEN the chain Leaf -> Middle -> Graphic Violence -> Violence finds the Violence rule
    assert (leaf.rule, leaf.matched, leaf.band) == ("Violence", "ancestor", Band.REJECT)
    assert (middle.rule, middle.matched, middle.band) == ("Violence", "grandparent", Band.REJECT)


# --------------------------------------------------------------------------- 6.1


def test_6_1_response_labels_resolve_to_7_0_rules():
    detection = Detection.from_rekognition(
        {
            "ModerationLabels": [
                {"Name": "Graphic Male Nudity", "ParentName": "Explicit Nudity", "Confidence": 97},
                {"Name": "Explicit Nudity", "ParentName": "", "Confidence": 97},
                {"Name": "Revealing Clothes", "ParentName": "Suggestive", "Confidence": 75},
                {"Name": "Suggestive", "ParentName": "", "Confidence": 75},
            ],
            "ModerationModelVersion": "6.1",
        }
    )
    policy = make_policy(
        POLICY + "  Non-Explicit Nudity of Intimate parts and Kissing: {escalate: 60}\n"
    )
    triage = evaluate(policy, detection)
    male, explicit_nudity, revealing, suggestive = triage.findings
    assert (male.rule, male.matched, male.band) == ("Explicit", "grandparent", Band.REJECT)
    assert (revealing.rule, revealing.band) == (
        "Non-Explicit Nudity of Intimate parts and Kissing",
        Band.ESCALATE,
    )
    # The 6.1 parents are reported too; each is covered by its more specific child.
    assert explicit_nudity.band == suggestive.band == Band.IGNORE
    assert explicit_nudity.note == "covered by the more specific label 'Graphic Male Nudity'"
    assert suggestive.note == "covered by the more specific label 'Revealing Clothes'"
    assert triage.action == Action.REJECT


def test_6_1_parent_alone_resolves_to_its_7_0_category():
    detection = detect(label("Suggestive", 80.0, parent=None, level=1))
    policy = with_categories("  Non-Explicit Nudity of Intimate parts and Kissing: {reject: 70}\n")
    finding = only(evaluate(policy, detection))
    assert (finding.rule, finding.band) == (
        "Non-Explicit Nudity of Intimate parts and Kissing",
        Band.REJECT,
    )


@pytest.mark.parametrize(
    "labels",
    [
        (label("Female Swimwear or Underwear", 66.0), label("Swimwear or Underwear", 66.0)),
        (label("Female Swimwear Or Underwear", 66.0, parent="Suggestive", level=2),),
    ],
    ids=["7.0-response", "6.1-response"],
)
def test_6_1_policy_rejects_a_swimwear_label(labels):
    # GIVEN a policy written against 6.1: Suggestive covered swimwear
    policy = make_policy(
        "id: default\nmin_confidence: 40\ndefault: allow\ncategories:\n  Suggestive: {reject: 50}\n"
    )
    triage = evaluate(policy, detect(*labels))
    # THEN it does not silently match nothing
    assert triage.action == Action.REJECT
    deciding = triage.deciding
    assert deciding is not None
    assert (deciding.label, deciding.rule, deciding.matched) == (
        labels[0].name,
        "Swimwear or Underwear",
        "parent",
    )


# --------------------------------------------------------------------------- content types


@pytest.mark.parametrize(
    ("name", "confidence", "content_types", "band", "content_type", "thresholds"),
    [
        ("Violence", 96.0, {}, Band.REJECT, None, Thresholds(reject=95, escalate=60)),
        (
            "Violence",
            96.0,
            {"Illustrated": 94.1},
            Band.ESCALATE,
            "illustrated",
            Thresholds(reject=99, escalate=85),
        ),
        (
            "Violence",
            96.0,
            {"Illustrated": 60.0},
            Band.ESCALATE,
            "illustrated",
            Thresholds(reject=99, escalate=85),
        ),
        (
            "Violence",
            96.0,
            {"Illustrated": 59.999},
            Band.REJECT,
            None,
            Thresholds(reject=95, escalate=60),
        ),
        (
            "Violence",
            99.5,
            {"ILLUSTRATED": 90.0},
            Band.REJECT,
            "illustrated",
            Thresholds(reject=99, escalate=85),
        ),
        ("Violence", 99.5, {"Animated": 90.0}, Band.IGNORE, "animated", Thresholds(allow=True)),
        # both: the more confident type whose override the rule has
        (
            "Violence",
            96.0,
            {"Animated": 70.0, "Illustrated": 90.0},
            Band.ESCALATE,
            "illustrated",
            Thresholds(reject=99, escalate=85),
        ),
        (
            "Weapons",
            90.0,
            {"Illustrated": 95.0},
            Band.REJECT,
            None,
            Thresholds(reject=80, escalate=50),
        ),
        (
            "Weapons",
            90.0,
            {"Illustrated": 95.0, "Animated": 70.0},
            Band.IGNORE,
            "animated",
            Thresholds(reject=99),
        ),
        # a rule without any override keeps its base thresholds
        ("Hate Symbols", 50.0, {"Illustrated": 99.0}, Band.REVIEW, None, Thresholds(review=40)),
        # the default rule has no overrides
        (
            "Brand New",
            95.0,
            {"Animated": 99.0},
            Band.REJECT,
            None,
            Thresholds(reject=90, review=85, escalate=60),
        ),
        (
            "Violence",
            96.0,
            {"Hologram": 99.0},
            Band.REJECT,
            None,
            Thresholds(reject=95, escalate=60),
        ),
    ],
    ids=[
        "photo",
        "illustrated",
        "illustrated-at-min",
        "illustrated-under-min",
        "illustrated-case",
        "animated-allow",
        "both-types",
        "rule-without-that-override",
        "second-type-has-override",
        "no-overrides",
        "default-rule",
        "unknown-type",
    ],
)
def test_content_type_overrides(name, confidence, content_types, band, content_type, thresholds):
    parent = None if name == "Brand New" else ""
    triage = evaluate(
        make_policy(), detect(label(name, confidence, parent), content_types=content_types)
    )
    finding = only(triage)
    assert (finding.band, finding.content_type, finding.thresholds) == (
        band,
        content_type,
        thresholds,
    )


@pytest.mark.parametrize(
    ("content_types", "expected"),
    [
        ({}, ()),
        ({"Illustrated": 59.0}, ()),
        ({"Illustrated": 61.0, "Animated": 90.0}, ("animated", "illustrated")),
        ({"Illustrated": 90.0, "Animated": 61.0}, ("illustrated", "animated")),
        ({"Illustrated": 80.0, "Animated": 80.0}, ("animated", "illustrated")),
        ({"Animated": 80.0, "Illustrated": 80.0}, ("animated", "illustrated")),
    ],
    ids=["none", "under-min", "animated-first", "illustrated-first", "tie-1", "tie-2"],
)
def test_triage_content_types_most_confident_first(content_types, expected):
    triage = evaluate(make_policy(), detect(content_types=content_types))
    assert triage.content_types == expected


# --------------------------------------------------------------------------- the aggregate


@pytest.mark.parametrize(
    ("labels", "action", "deciding"),
    [
        (
            [label("Hate Symbols", 50), label("Gambling", 99), label("Violence", 96)],
            Action.REJECT,
            "Violence",
        ),
        (
            [label("Visually Disturbing", 75), label("Hate Symbols", 45), label("Gambling", 99)],
            Action.REVIEW,
            "Hate Symbols",
        ),
        (
            [label("Visually Disturbing", 94), label("Weapons", 30), label("Explicit", 72)],
            Action.REVIEW,
            "Visually Disturbing",
        ),
        (
            [label("Gambling", 99), label("Visually Disturbing", 75), label("Weapons", 60)],
            Action.ESCALATE,
            "Visually Disturbing",
        ),
        ([label("Gambling", 99), label("Swimwear or Underwear", 99)], Action.APPROVE, None),
        ([], Action.APPROVE, None),
        (
            [label("Explicit", 60), label("Hate Symbols", 41), label("Violence", 95)],
            Action.REJECT,
            "Violence",
        ),
    ],
    ids=[
        "reject-beats-review",
        "review-beats-escalate",
        "review-most-confident",
        "escalate-most-confident",
        "all-allowed",
        "no-labels",
        "one-of-each",
    ],
)
def test_aggregate_precedence(labels, action, deciding):
    triage = evaluate(make_policy(), detect(*labels))
    assert triage.action == action
    assert len(triage.findings) == len(labels)
    assert (triage.deciding.label if triage.deciding else None) == deciding


def test_at_lists_a_band_most_confident_first():
    triage = evaluate(
        make_policy(),
        detect(label("Weapons", 55), label("Visually Disturbing", 75), label("Explicit", 52)),
    )
    assert [f.label for f in triage.at(Band.ESCALATE)] == [
        "Visually Disturbing",
        "Weapons",
        "Explicit",
    ]
    assert triage.at(Band.REJECT) == ()


def test_deciding_breaks_ties_on_confidence_then_level():
    triage = evaluate(
        make_policy(),
        detect(label("Weapons", 85), label("Explicit", 85), label("Exposed Female Nipple", 84)),
    )
    assert triage.action == Action.REJECT
    assert [f.band for f in triage.findings] == [Band.REJECT] * 3
    # Weapons (L2) and Explicit (L1) tie on confidence: the more specific level wins.
    assert triage.deciding is not None
    assert triage.deciding.label == "Weapons"


# ---------------------------------------------------------------- ancestors reported alongside


def test_ancestor_as_confident_as_its_descendant_is_covered():
    detection = detect(
        label("Physical Violence", 88.7), label("Graphic Violence", 88.7), label("Violence", 88.7)
    )
    triage = evaluate(make_policy(), detection)
    leaf, l2, l1 = triage.findings
    assert (leaf.rule, leaf.matched, leaf.band) == ("Violence", "grandparent", Band.ESCALATE)
    for covered in (l2, l1):
        assert covered.band == Band.IGNORE
        assert covered.note == "covered by the more specific label 'Physical Violence'"
    assert triage.action == Action.ESCALATE


def test_specific_allow_is_not_overridden_by_a_reported_parent():
    policy = with_categories(
        "  Kissing on the Lips: allow\n"
        "  Non-Explicit Nudity of Intimate parts and Kissing: {reject: 50}\n"
    )
    detection = detect(
        label("Kissing on the Lips", 74.9),
        label("Non-Explicit Nudity of Intimate parts and Kissing", 74.9),
    )
    assert evaluate(policy, detection).action == Action.APPROVE


def test_ancestor_more_confident_than_its_descendants_is_judged_on_its_own():
    triage = evaluate(make_policy(), detect(label("Weapons", 55.0), label("Violence", 97.0)))
    weapons, violence = triage.findings
    assert (weapons.band, violence.band) == (Band.ESCALATE, Band.REJECT)
    assert violence.note is None
    assert triage.action == Action.REJECT


def six_x(*labels: tuple[str, float, str]) -> Detection:
    """A taxonomy 6.x response: (name, confidence, ParentName), no TaxonomyLevel."""
    return Detection.from_rekognition(
        {
            "ModerationLabels": [
                {"Name": n, "Confidence": c, "ParentName": p} for n, c, p in labels
            ],
            "ModerationModelVersion": "6.1",
        }
    )


def test_6x_parent_is_covered_by_its_child_through_the_responses_parent_name():
    # Taxonomy 7.0 files Female Swimwear or Underwear under Swimwear or Underwear; this response
    # says its parent is Suggestive. The response's own link is what makes Suggestive covered.
    detection = six_x(
        ("Suggestive", 81.61640167236328, ""),
        ("Female Swimwear Or Underwear", 81.61640167236328, "Suggestive"),
    )
    triage = evaluate(PolicyStore("policies").get("default"), detection)
    suggestive, swimwear = triage.findings
    assert suggestive.band == Band.IGNORE
    assert suggestive.note == "covered by the more specific label 'Female Swimwear Or Underwear'"
    assert (swimwear.rule, swimwear.band) == ("Swimwear or Underwear", Band.IGNORE)
    assert triage.action == Action.APPROVE


@pytest.mark.parametrize(
    ("parent", "child"),
    [
        pytest.param(87.42389749823742, 87.42367846239324, id="parent-higher-by-float-noise"),
        pytest.param(87.42367846239324, 87.42389749823742, id="parent-lower-by-float-noise"),
        pytest.param(87.0, 87.0, id="equal"),
    ],
)
def test_confidences_equal_but_for_float_noise_cover(parent, child):
    detection = six_x(
        ("Suggestive", parent, ""), ("Female Swimwear Or Underwear", child, "Suggestive")
    )
    triage = evaluate(PolicyStore("policies").get("default"), detection)
    assert triage.findings[0].note is not None
    assert triage.action == Action.APPROVE


def test_a_parent_clearly_more_confident_than_its_6x_child_is_judged_on_its_own():
    detection = six_x(
        ("Suggestive", 90.0, ""), ("Female Swimwear Or Underwear", 81.6, "Suggestive")
    )
    triage = evaluate(PolicyStore("policies").get("default"), detection)
    suggestive, _ = triage.findings
    assert suggestive.note is None
    assert (suggestive.rule, suggestive.band) == (
        "Non-Explicit Nudity of Intimate parts and Kissing",
        Band.ESCALATE,
    )
    assert triage.action == Action.ESCALATE


def test_a_descendant_by_the_taxonomy_still_covers_when_the_response_names_no_parent():
    detection = Detection.from_rekognition(
        {
            "ModerationLabels": [
                {"Name": "Weapon Violence", "Confidence": 70.0},
                {"Name": "Violence", "Confidence": 70.0},
            ]
        }
    )
    triage = evaluate(make_policy(), detection)
    assert triage.findings[1].note == "covered by the more specific label 'Weapon Violence'"


def test_labels_that_name_each_other_as_parent_cover_neither():
    # A garbled response must not make every label ignore every other: both are judged.
    detection = six_x(("Thing A", 95.0, "Thing B"), ("Thing B", 95.0, "Thing A"))
    triage = evaluate(make_policy(), detection)
    assert [f.note for f in triage.findings] == [None, None]
    assert triage.action == Action.REJECT


def test_a_cycle_through_the_taxonomy_and_the_response_covers_neither():
    # The response claims Violence is a child of Weapon Violence; the taxonomy says the reverse.
    detection = six_x(("Violence", 96.0, "Weapon Violence"), ("Weapon Violence", 96.0, ""))
    triage = evaluate(make_policy(), detection)
    assert [f.note for f in triage.findings] == [None, None]
    assert triage.action == Action.REJECT


# --------------------------------------------------------------------------- explanations


@pytest.mark.parametrize(
    ("labels", "content_types", "text"),
    [
        (
            [label("Violence", 97.1)],
            {},
            "Violence 97.1% >= reject 95 (rule 'Violence')",
        ),
        (
            [label("Graphic Violence", 70.0)],
            {},
            "Graphic Violence 70.0% >= escalate 60 (rule 'Violence', matched by parent)",
        ),
        (
            [label("Graphic Violence", 90.0)],
            {"Illustrated": 80.0},
            "Graphic Violence 90.0% >= escalate 85 (rule 'Violence', matched by parent, "
            "illustrated thresholds)",
        ),
        ([label("Gambling", 99.0)], {}, "Gambling 99.0%: allowed (rule 'Gambling')"),
        (
            [label("Unheard Of", 50.0, parent=None)],
            {},
            "Unheard Of 50.0%: below every threshold (default rule)",
        ),
    ],
    ids=["reject", "via-parent", "content-type", "allowed", "below"],
)
def test_finding_describe(labels, content_types, text):
    finding = only(evaluate(make_policy(), detect(*labels, content_types=content_types)))
    assert finding.describe() == text


def test_evaluate_is_pure():
    policy = make_policy()
    detection = detect(label("Violence", 96.0), label("Hate Symbols", 50), content_types={"X": 1})
    before = (policy.model_dump_json(), detection.model_dump_json())
    first = evaluate(policy, detection)
    assert evaluate(policy, detection) == first
    assert (policy.model_dump_json(), detection.model_dump_json()) == before
    assert Triage.model_validate_json(first.model_dump_json()) == first


def test_a_label_below_min_confidence_covers_nothing():
    # GIVEN a policy asking for labels from 50 up, and a detection asked from a lower minimum (a
    # shadow's, a cached one, a replayed one) in which a child at 49.999 sits under its parent at
    # 50: equal but for float noise, so it would cover it
    policy = make_policy("id: default\nmin_confidence: 50\ndefault: {escalate: 50}\n")
    parent, child = label("Graphic Violence", 50.0), label("Blood & Gore", 49.999)
    # WHEN the policy triages it
    triage = evaluate(policy, detect(parent, child))
    # THEN it decides as on the detection it would have been sent (the child never comes from
    # a Rekognition asked from 50 up): the parent escalates, the child is only noted as below
    assert triage.action is Action.ESCALATE
    assert triage == evaluate(policy, detect(parent)).model_copy(
        update={"findings": (*evaluate(policy, detect(parent)).findings, triage.findings[1])}
    )
    assert triage.findings[1].note == "below the policy's min_confidence 50"
    assert compiled(policy).action(detect(parent, child)) is Action.ESCALATE
