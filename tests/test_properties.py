"""Properties of the pure core, checked on generated policies, documents and responses."""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from profiles import examples

from moderation.detection import ContentType, Detection, Label
from moderation.errors import DetectionParseError, PolicyError
from moderation.policy import Band, Policy, PolicyStore, Thresholds
from moderation.taxonomy import TAXONOMY
from moderation.triage import Action, compiled, evaluate

SETTINGS = settings(
    max_examples=examples(200),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

RANK = {Action.APPROVE: 0, Action.ESCALATE: 1, Action.REVIEW: 2, Action.REJECT: 3}
NAMES = TAXONOMY.names()

# --------------------------------------------------------------------------- strategies

confidences = st.one_of(
    st.integers(0, 100),
    st.floats(0, 100, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 39.999, 40.0, 50.0, 59.999, 60.0, 79.999, 80.0, 80.001, 100.0]),
)


@st.composite
def bands(draw: st.DrawFn, allow: bool = True) -> Any:
    """A valid rule body: `allow`, or 1-3 thresholds with escalate <= review <= reject."""
    if allow and draw(st.booleans()) and draw(st.booleans()):
        return "allow"
    low, mid, high = sorted(draw(st.lists(confidences, min_size=3, max_size=3)))
    keys = draw(
        st.lists(st.sampled_from(["escalate", "review", "reject"]), min_size=1, unique=True)
    )
    values = {"escalate": low, "review": mid, "reject": high}
    return {k: values[k] for k in sorted(keys)}


@st.composite
def rules(draw: st.DrawFn) -> Any:
    rule = draw(bands())
    if rule == "allow":
        return rule
    for kind in ("animated", "illustrated"):
        if draw(st.integers(0, 3)) == 0:
            rule[kind] = draw(bands())
    return rule


@st.composite
def policy_documents(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "id": "default",
        "min_confidence": draw(st.sampled_from([0, 20, 40, 50, 55.5])),
        "content_type_min_confidence": draw(st.sampled_from([0, 50, 80])),
        "default": draw(bands()),
        "categories": draw(st.dictionaries(st.sampled_from(NAMES), rules(), max_size=10)),
    }


def load(document: dict[str, Any]) -> Policy:
    return PolicyStore.from_sources({"default": yaml.safe_dump(document)}).get("default")


UNKNOWN = ["Brand New Label", "Graphic Male Nudity", "Revealing Clothes", "Suggestive", "Drugs"]
LEGACY_PARENTS = {"Graphic Male Nudity": "Explicit Nudity", "Revealing Clothes": "Suggestive"}


@st.composite
def labels(draw: st.DrawFn) -> Label:
    name = draw(st.sampled_from(NAMES + UNKNOWN))
    ancestors = TAXONOMY.ancestors(name)
    parent = ancestors[0] if ancestors else LEGACY_PARENTS.get(name)
    level = TAXONOMY.level(name) or (2 if parent else 1)
    return Label(name=name, parent=parent, level=level, confidence=draw(confidences))


@st.composite
def detections(draw: st.DrawFn) -> Detection:
    kinds = draw(
        st.dictionaries(st.sampled_from(["Animated", "Illustrated", "Other"]), confidences)
    )
    return Detection(
        labels=tuple(draw(st.lists(labels(), max_size=8))),
        content_types=tuple(ContentType(name=n, confidence=c) for n, c in kinds.items()),
    )


# --------------------------------------------------------------------------- (1) monotonicity


@st.composite
def reject_changes(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], float | None, float]:
    """A policy, the same policy with one category's reject moved (still valid), old, new."""
    document = draw(policy_documents())
    name = draw(st.sampled_from(NAMES))
    rule = draw(bands(allow=False))
    if draw(st.booleans()):
        rule["illustrated"] = draw(bands())
    document["categories"][name] = rule
    floor = max([rule[k] for k in ("escalate", "review") if k in rule], default=0)
    new = draw(st.one_of(st.floats(floor, 100), st.sampled_from([floor, 100])))
    changed = dict(document, categories=dict(document["categories"], **{name: dict(rule)}))
    changed["categories"][name]["reject"] = new
    return document, changed, rule.get("reject"), new


@pytest.mark.slow
@SETTINGS
@given(reject_changes(), detections())
def test_moving_one_reject_threshold_moves_the_action_the_same_way(change, detection):
    before_doc, after_doc, old, new = change
    before = evaluate(load(before_doc), detection).action
    after = evaluate(load(after_doc), detection).action
    old = math.inf if old is None else old  # no reject band: a reject threshold of +inf
    if new > old:
        assert RANK[after] <= RANK[before], "raising reject made the action stricter"
    elif new < old:
        assert RANK[after] >= RANK[before], "lowering reject made the action laxer"
    else:
        assert after == before


# --------------------------------------------------------------------------- (2) policy input

KEYS = [
    "id",
    "description",
    "extends",
    "min_confidence",
    "content_type_min_confidence",
    "default",
    "categories",
    "escalation",
    "on_detector_error",
    "reject",
    "review",
    "escalate",
    "illustrated",
    "animated",
    "judge",
    "model_id",
    "guidance",
    "on_error",
    "on_blocked",
    "budget",
    "calls",
    "per",
    "allow",
    *NAMES[:12],
    "Suggestive",
    "Explicit Nudity",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["allow", "default", "kids", "bedrock", "none", "review", "1h", "approve"]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=6),
    ),
    max_leaves=30,
)
tenant_names = st.one_of(
    st.sampled_from(["kids", "teens", "default", "a", "Kids", "../x", "x" * 65, ""]),
    st.text(max_size=10),
)
TOKENS = [
    "id: default\n",
    "default: ",
    "categories:\n",
    "  Violence: ",
    "  violence: ",
    "  Suggestive: ",
    "{reject: 90, escalate: 60}",
    "{reject: 50, escalate: 60}",
    "allow",
    "extends: kids\n",
    "extends: default\n",
    "escalation: {judge: bedrock}\n",
    "&a ",
    "*a",
    "[*a, *a]",
    "!!python/object/apply:os.system ['x']",
    "!!set {a, b}",
    "!!binary aGk=",
    "<<: ",
    "? ",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "\n",
    "  ",
    "\t",
    "'",
    '"',
    "#",
    "null",
    ".nan",
    "1e999",
    "99999999999999999999999999999999999999999999999999",
    "---\n",
    "%YAML 1.1\n",
    "\x00",
    "\ufeff",
]
yaml_texts = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(TOKENS), max_size=40).map("".join),
    documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
)


def build(sources: dict[str, str | bytes]) -> None:
    error: PolicyError | None = None
    try:
        store = PolicyStore.from_sources(sources)
    except PolicyError as exc:
        error = exc
    if error is not None:
        assert error.problems, "a PolicyError with no problem in it"
        assert all(p.severity == "error" for p in error.problems)
        assert str(error).startswith(f"{len(error.problems)} problem")
        return
    for policy in store:
        assert policy.sha256 == load_again(policy)


def load_again(policy: Policy) -> str:
    """The sha256 is a pure function of the effective rules."""
    return Policy.model_validate_json(policy.model_dump_json()).sha256


DEFAULT = "id: default\nmin_confidence: 40\ndefault: {reject: 90, escalate: 60}\n"


@SETTINGS
@given(yaml_texts)
def test_any_text_as_default_policy_is_loaded_or_refused_with_problems(text):
    build({"default": text})


@SETTINGS
@given(st.dictionaries(tenant_names, yaml_texts, max_size=3))
def test_any_text_as_tenant_policies_is_loaded_or_refused_with_problems(tenants):
    build({"default": DEFAULT, **tenants})


@SETTINGS
@given(documents, documents)
def test_any_document_is_loaded_or_refused_with_problems(default, tenant):
    build(
        {
            "default": yaml.safe_dump(default, allow_unicode=True),
            "kids": yaml.safe_dump(tenant, allow_unicode=True),
        }
    )


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_are_loaded_or_refused_with_problems(data):
    build({"default": data, "kids": data})


@pytest.mark.parametrize(
    "text",
    [
        "\udc80",
        "id: default\ndefault: {reject: 90}\ndescription: \ud800\n",
        "!!set {id, default}\n",
        "id: default\ndefault: {reject: " + "9" * 400 + "}\n",
        DEFAULT + "escalation: {budget: {calls: 1, per: " + "9" * 400 + "}}\n",
        DEFAULT + "? [a, b]\n: 1\n",
        DEFAULT + "categories: !!set {Violence}\n",
        DEFAULT + "<<: 5\n",
    ],
    ids=[
        "lone-surrogate",
        "surrogate-in-value",
        "set-root",
        "huge-int-threshold",
        "huge-int-duration",
        "unhashable-key",
        "set-categories",
        "bad-merge-key",
    ],
)
def test_known_crash_inputs_are_refused_with_problems(text):
    with pytest.raises(PolicyError) as caught:
        PolicyStore.from_sources({"default": text})
    assert caught.value.problems


# --------------------------------------------------------------------------- (3) responses

LABEL_KEYS = ["Name", "ParentName", "Confidence", "TaxonomyLevel"]
RESPONSE_KEYS = ["ModerationLabels", "ContentTypes", "ModerationModelVersion", "ProjectVersion"]
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=10),
    st.sampled_from([*NAMES[:10], "", "Illustrated", "Animated", "Suggestive"]),
    confidences,
    st.sampled_from([1, 2, 3, 1.0, 10**400]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(LABEL_KEYS + RESPONSE_KEYS), st.text(max_size=6)),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=25,
)
label_like = st.fixed_dictionaries(
    {},
    optional={
        "Name": st.one_of(st.sampled_from(NAMES + UNKNOWN), json_scalars),
        "ParentName": st.one_of(st.sampled_from(["", *NAMES[:20], "Suggestive"]), json_scalars),
        "Confidence": st.one_of(confidences, json_scalars),
        "TaxonomyLevel": st.one_of(st.sampled_from([1, 2, 3]), json_scalars),
    },
)
response_like = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"ModerationLabels": st.lists(st.one_of(label_like, json_values), max_size=6)},
        optional={
            "ContentTypes": st.one_of(
                st.lists(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "Name": st.one_of(st.sampled_from(["Animated", "X"]), json_scalars),
                            "Confidence": st.one_of(confidences, json_scalars),
                        },
                    ),
                    max_size=3,
                ),
                json_values,
            ),
            "ModerationModelVersion": st.one_of(st.just("7.0"), json_scalars),
            "ProjectVersion": json_scalars,
        },
    ),
)


@SETTINGS
@given(response_like)
def test_any_response_is_parsed_or_refused_with_a_parse_error(response):
    error: DetectionParseError | None = None
    try:
        detection = Detection.from_rekognition(response)
    except DetectionParseError as exc:
        error = exc
    if error is not None:
        assert str(error).split(":")[0], "the message names no field"
        return
    for item in detection.labels:
        assert item.name.strip()
        assert 1 <= item.level <= 3
        assert 0 <= item.confidence <= 100
        assert item.parent is None or item.parent
    for kind in detection.content_types:
        assert 0 <= kind.confidence <= 100
    assert Detection.model_validate_json(detection.model_dump_json()) == detection
    # and triage can take whatever parsed
    evaluate(load({"id": "default", "default": {"reject": 90}}), detection)


# --------------------------------------------------------------------------- (4) evaluate


def expected_band(thresholds: Thresholds, confidence: float) -> Band:
    if thresholds.allow:
        return Band.IGNORE
    for band, bound in (
        (Band.REJECT, thresholds.reject),
        (Band.REVIEW, thresholds.review),
        (Band.ESCALATE, thresholds.escalate),
    ):
        if bound is not None and confidence >= bound:
            return band
    return Band.IGNORE


@pytest.mark.slow
@SETTINGS
@given(policy_documents(), detections())
def test_evaluate_is_deterministic_and_every_band_follows_its_thresholds(document, detection):
    policy = load(document)
    triage = evaluate(policy, detection)
    assert evaluate(policy, detection) == triage
    assert evaluate(load(document), detection) == triage  # a fresh load changes nothing

    assert len(triage.findings) == len(detection.labels)
    for finding, label in zip(triage.findings, detection.labels, strict=True):
        assert (finding.label, finding.confidence) == (label.name, label.confidence)
        # the thresholds applied are the matched rule's, for the content type recorded
        if finding.rule == "default":
            assert finding.matched == "default"
            assert finding.content_type is None
            assert finding.thresholds == policy.default
        else:
            rule = policy.categories[finding.rule]
            assert finding.thresholds == rule.for_content(finding.content_type)
            if finding.content_type is not None:
                assert finding.content_type in triage.content_types
                assert getattr(rule, finding.content_type) is not None
        # the band is where the confidence falls, unless a note says why it is ignored
        if finding.note is None:
            assert finding.band == expected_band(finding.thresholds, finding.confidence)
            assert finding.confidence >= policy.min_confidence
        else:
            assert finding.band == Band.IGNORE
            if finding.note.startswith("below"):
                assert finding.confidence < policy.min_confidence
            else:
                assert finding.note.startswith("covered by the more specific label")

    worst = max(
        (finding.band for finding in triage.findings),
        key=list(Band)[::-1].index,
        default=Band.IGNORE,
    )
    expected_action = {
        Band.IGNORE: Action.APPROVE,
        Band.ESCALATE: Action.ESCALATE,
        Band.REVIEW: Action.REVIEW,
        Band.REJECT: Action.REJECT,
    }[worst]
    assert triage.action == expected_action
    deciding = triage.deciding
    assert (deciding is None) == (triage.action == Action.APPROVE)
    if deciding is not None:
        assert deciding.band == worst


@settings(SETTINGS, max_examples=examples(60))
@given(policy_documents())
def test_generated_policies_load_and_hash_stably(document):
    policy = load(document)
    assert policy.sha256 == load(document).sha256
    assume(document["categories"])
    # the same rules with every category name in another spelling hash the same
    respelled = dict(
        document,
        categories={name.upper(): rule for name, rule in document["categories"].items()},
    )
    assert load(respelled).sha256 == policy.sha256
    assert not math.isnan(policy.min_confidence)


@SETTINGS
@given(policy_documents(), detections())
def test_a_label_below_min_confidence_changes_nothing(document, detection):
    # A detection asked with a lower min_confidence (a shadow's, another tenant's cached one, a
    # replayed one) holds labels this policy would never have been sent. They are noted as below
    # its minimum and do nothing else: no band, and no covering of a less specific label.
    policy = load(document)
    kept = tuple(label for label in detection.labels if label.confidence >= policy.min_confidence)
    asked = Detection(labels=kept, content_types=detection.content_types)
    full, alone = evaluate(policy, detection), evaluate(policy, asked)
    assert full.action is alone.action
    assert compiled(policy).action(detection) is alone.action
    assert [f for f in full.findings if f.confidence >= policy.min_confidence] == list(
        alone.findings
    )
    for finding in full.findings:
        if finding.confidence < policy.min_confidence:
            assert finding.band is Band.IGNORE and finding.note is not None
            assert finding.note.startswith("below the policy's min_confidence")
