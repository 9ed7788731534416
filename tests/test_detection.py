"""Detection.from_rekognition: 7.0 and older responses, and every malformed shape named by path."""

from __future__ import annotations

import math
import re

import pytest
from pydantic import ValidationError

from moderation.detection import ContentType, Detection, Label
from moderation.errors import DetectionParseError, ModerationError


def lab(name, confidence=90.0, parent="", level=None):
    """A label as Rekognition sends it; `parent=None` leaves ParentName out."""
    item = {"Name": name, "Confidence": confidence}
    if parent is not None:
        item["ParentName"] = parent
    if level is not None:
        item["TaxonomyLevel"] = level
    return item


RESPONSE_7_0 = {
    "ModerationLabels": [
        lab("Physical Violence", 88.7, "Graphic Violence", 3),
        lab("Graphic Violence", 88.7, "Violence", 2),
        lab("Violence", 88.7, "", 1),
    ],
    "ModerationModelVersion": "7.0",
    "ContentTypes": [{"Name": "Illustrated", "Confidence": 94.1}],
    "ProjectVersion": "arn:aws:rekognition:us-east-1:123456789012:project/p/version/v/1",
    "HumanLoopActivationOutput": {"HumanLoopArn": "ignored"},
    "ResponseMetadata": {"HTTPStatusCode": 200},
}


def test_parses_a_7_0_response():
    detection = Detection.from_rekognition(RESPONSE_7_0, min_confidence=40, latency_ms=123.5)
    assert detection == Detection(
        provider="rekognition",
        model_version="7.0",
        min_confidence=40.0,
        project_version="arn:aws:rekognition:us-east-1:123456789012:project/p/version/v/1",
        labels=(
            Label(name="Physical Violence", parent="Graphic Violence", level=3, confidence=88.7),
            Label(name="Graphic Violence", parent="Violence", level=2, confidence=88.7),
            Label(name="Violence", parent=None, level=1, confidence=88.7),
        ),
        content_types=(ContentType(name="Illustrated", confidence=94.1),),
        latency_ms=123.5,
    )


def test_minimal_response():
    detection = Detection.from_rekognition({"ModerationLabels": []})
    assert detection.labels == ()
    assert detection.content_types == ()
    assert detection.model_version is None
    assert detection.project_version is None
    assert detection.min_confidence is None
    assert detection.latency_ms is None


def test_tuple_of_labels_and_int_confidence_are_accepted():
    detection = Detection.from_rekognition({"ModerationLabels": (lab("Gambling", 77),)})
    assert detection.labels == (Label(name="Gambling", parent=None, level=1, confidence=77.0),)
    assert isinstance(detection.labels[0].confidence, float)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        pytest.param(
            [lab("Graphic Female Nudity", 97.0, "Explicit Nudity"), lab("Explicit Nudity", 97.0)],
            [("Graphic Female Nudity", "Explicit Nudity", 2), ("Explicit Nudity", None, 1)],
            id="6.1-explicit",
        ),
        pytest.param(
            [
                lab("Revealing Clothes", 78.3, "Suggestive"),
                lab("Suggestive", 78.3),
                lab("Female Swimwear Or Underwear", 66.0, "Suggestive"),
            ],
            [
                ("Revealing Clothes", "Suggestive", 2),
                ("Suggestive", None, 1),
                ("Female Swimwear Or Underwear", "Suggestive", 2),
            ],
            id="6.1-suggestive",
        ),
        pytest.param(
            [lab("Exposed Female Nipple", 91.0, "Explicit Nudity")],
            [("Exposed Female Nipple", "Explicit Nudity", 3)],
            id="7.0-names-without-level",
        ),
        pytest.param(
            [lab("Weapons", 80.0, parent=None), lab("Air Crash", 70.0, parent=None)],
            [("Weapons", "Violence", 2), ("Air Crash", "Crashes", 3)],
            id="no-parent-name-key-known",
        ),
        pytest.param(
            [lab("Brand New Thing", 80.0, parent=None)],
            [("Brand New Thing", None, 1)],
            id="no-parent-name-key-unknown",
        ),
        pytest.param(
            [lab("Brand New Thing", 80.0, "Graphic Violence")],
            [("Brand New Thing", "Graphic Violence", 3)],
            id="unknown-under-known-l2",
        ),
        pytest.param(
            [lab("Leaf", 80.0, "Middle"), lab("Middle", 80.0, "Root"), lab("Root", 80.0)],
            [("Leaf", "Middle", 3), ("Middle", "Root", 2), ("Root", None, 1)],
            id="unknown-chain-in-response",
        ),
        pytest.param(
            [lab("Violence", 80.0, "Something Else")],
            [("Violence", "Something Else", 2)],
            id="known-name-with-unexpected-parent",
        ),
        pytest.param(
            [lab("violence", 80.0, None)],
            [("violence", None, 1)],
            id="name-kept-as-spelled",
        ),
    ],
)
def test_levels_are_derived_when_taxonomy_level_is_missing(labels, expected):
    detection = Detection.from_rekognition(
        {"ModerationLabels": labels, "ModerationModelVersion": "6.1"}
    )
    assert [(lb.name, lb.parent, lb.level) for lb in detection.labels] == expected
    assert detection.model_version == "6.1"


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        pytest.param(
            # The AWS CLI's example answer (model 3.0): 7.0 puts Weapon Violence under Graphic
            # Violence (level 3), but this response has it directly under Violence.
            [lab("Weapon Violence", 97.3, "Violence"), lab("Violence", 97.3, "")],
            [("Weapon Violence", "Violence", 2), ("Violence", None, 1)],
            id="6.x-weapon-violence-under-violence",
        ),
        pytest.param(
            [lab("Explicit Nudity", 99.2, ""), lab("Graphic Male Nudity", 99.2, "Explicit Nudity")],
            [("Explicit Nudity", None, 1), ("Graphic Male Nudity", "Explicit Nudity", 2)],
            id="6.x-explicit-nudity-at-the-top",
        ),
        pytest.param(
            [lab("Smoking", 99.4, "Drugs & Tobacco Paraphernalia & Use")],
            [("Smoking", "Drugs & Tobacco Paraphernalia & Use", 3)],
            id="parent-not-reported-falls-back-to-the-taxonomy",
        ),
        pytest.param(
            [lab("Male Swimwear Or Underwear", 97.9, "Suggestive")],
            [("Male Swimwear Or Underwear", "Suggestive", 2)],
            id="unreported-6.x-parent-is-top-level",
        ),
    ],
)
def test_levels_follow_the_responses_own_parent_links(labels, expected):
    detection = Detection.from_rekognition({"ModerationLabels": labels})
    assert [(lb.name, lb.parent, lb.level) for lb in detection.labels] == expected


@pytest.mark.parametrize("level", [1.0, 2.0, 3.0], ids=str)
def test_a_float_taxonomy_level_is_refused(level):
    message = f"ModerationLabels[0].TaxonomyLevel: must be the integer 1, 2 or 3, got {level!r}"
    with pytest.raises(DetectionParseError, match="^" + re.escape(message)):
        Detection.from_rekognition({"ModerationLabels": [lab("Violence", 80.0, "", level=level)]})


def test_parent_cycle_in_a_response_terminates_with_a_valid_level():
    labels = [lab("A", 80.0, "B"), lab("B", 80.0, "A")]
    detection = Detection.from_rekognition({"ModerationLabels": labels})
    assert [(lb.name, lb.parent) for lb in detection.labels] == [("A", "B"), ("B", "A")]
    assert all(lb.level in (2, 3) for lb in detection.labels)


@pytest.mark.parametrize(
    ("parent", "expected"),
    [("", None), (None, None), ("Violence", "Violence")],
    ids=["empty-string", "null", "name"],
)
def test_parent_name(parent, expected):
    item = {"Name": "Weapons", "Confidence": 80.0, "ParentName": parent, "TaxonomyLevel": 2}
    (label,) = Detection.from_rekognition({"ModerationLabels": [item]}).labels
    assert label.parent == expected


def test_taxonomy_level_given_wins_over_derivation():
    (label,) = Detection.from_rekognition(
        {"ModerationLabels": [lab("Brand New Thing", 80.0, "", level=3)]}
    ).labels
    assert label.level == 3


@pytest.mark.parametrize("level", [1, 2, 3], ids=str)
def test_taxonomy_levels_accepted(level):
    (label,) = Detection.from_rekognition(
        {"ModerationLabels": [lab("X", 50.0, "", level=level)]}
    ).labels
    assert label.level == level


def test_unknown_content_types_are_kept():
    detection = Detection.from_rekognition(
        {
            "ModerationLabels": [],
            "ContentTypes": [
                {"Name": "Animated", "Confidence": 60},
                {"Name": "Hologram", "Confidence": 99.5},
            ],
        }
    )
    assert detection.content_types == (
        ContentType(name="Animated", confidence=60.0),
        ContentType(name="Hologram", confidence=99.5),
    )


@pytest.mark.parametrize("confidence", [0, 0.0, 100, 100.0, 50.123456], ids=str)
def test_confidence_bounds_are_inclusive(confidence):
    (label,) = Detection.from_rekognition({"ModerationLabels": [lab("X", confidence)]}).labels
    assert label.confidence == confidence


def test_detection_is_frozen_and_round_trips():
    detection = Detection.from_rekognition(RESPONSE_7_0, min_confidence=50, latency_ms=9.0)
    with pytest.raises(ValidationError):
        detection.model_version = "6.1"  # type: ignore[misc]
    assert Detection.model_validate_json(detection.model_dump_json()) == detection


def test_extra_fields_are_refused_by_the_model():
    with pytest.raises(ValidationError):
        Label(name="X", level=1, confidence=1.0, colour="red")  # type: ignore[call-arg]


MALFORMED = [
    pytest.param([], "a DetectModerationLabels response is a JSON object, got list", id="list"),
    pytest.param("{}", "a DetectModerationLabels response is a JSON object, got str", id="str"),
    pytest.param(
        None, "a DetectModerationLabels response is a JSON object, got NoneType", id="none"
    ),
    pytest.param({}, "ModerationLabels: missing or not a list", id="missing-labels"),
    pytest.param({"ModerationLabels": None}, "ModerationLabels: missing", id="labels-null"),
    pytest.param({"ModerationLabels": "Violence"}, "ModerationLabels: missing", id="labels-str"),
    pytest.param({"ModerationLabels": b"x"}, "ModerationLabels: missing", id="labels-bytes"),
    pytest.param({"ModerationLabels": {"Name": "X"}}, "ModerationLabels: missing", id="labels-map"),
    pytest.param(
        {"ModerationLabels": [lab("Violence"), "Weapons"]},
        "ModerationLabels[1]: must be an object, got str",
        id="label-not-a-dict",
    ),
    pytest.param(
        {"ModerationLabels": [None]},
        "ModerationLabels[0]: must be an object, got NoneType",
        id="label-null",
    ),
    pytest.param(
        {"ModerationLabels": [lab("")]},
        "ModerationLabels[0].Name: must be non-empty text, got ''",
        id="name-empty",
    ),
    pytest.param(
        {"ModerationLabels": [lab("   ")]},
        "ModerationLabels[0].Name: must be non-empty text, got '   '",
        id="name-blank",
    ),
    pytest.param(
        {"ModerationLabels": [{"Confidence": 50}]},
        "ModerationLabels[0].Name: must be non-empty text, got None",
        id="name-missing",
    ),
    pytest.param(
        {"ModerationLabels": [lab(7)]},
        "ModerationLabels[0].Name: must be non-empty text, got 7",
        id="name-number",
    ),
    pytest.param(
        {"ModerationLabels": [lab("A"), lab("B", "x")]},
        "ModerationLabels[1].Confidence: must be a number from 0 to 100, got 'x'",
        id="confidence-str",
    ),
    pytest.param(
        {"ModerationLabels": [lab("A"), lab("B", math.nan)]},
        "ModerationLabels[1].Confidence: must be a number from 0 to 100, got nan",
        id="confidence-nan",
    ),
    pytest.param(
        {"ModerationLabels": [lab("A", math.inf)]},
        "ModerationLabels[0].Confidence: must be a number from 0 to 100, got inf",
        id="confidence-inf",
    ),
    pytest.param(
        {"ModerationLabels": [lab("A"), lab("B", 101)]},
        "ModerationLabels[1].Confidence: must be a number from 0 to 100, got 101",
        id="confidence-101",
    ),
    pytest.param(
        {"ModerationLabels": [lab("A", 100.0001)]},
        "ModerationLabels[0].Confidence: must be a number from 0 to 100, got 100.0001",
        id="confidence-just-over",
    ),
    pytest.param(
        {"ModerationLabels": [lab("A", -0.5)]},
        "ModerationLabels[0].Confidence: must be a number from 0 to 100, got -0.5",
        id="confidence-negative",
    ),
    pytest.param(
        {"ModerationLabels": [lab("A"), lab("B", True)]},
        "ModerationLabels[1].Confidence: must be a number from 0 to 100, got True",
        id="confidence-bool",
    ),
    pytest.param(
        {"ModerationLabels": [{"Name": "A"}]},
        "ModerationLabels[0].Confidence: must be a number from 0 to 100, got None",
        id="confidence-missing",
    ),
    pytest.param(
        {"ModerationLabels": [lab("A", 10**400)]},
        "ModerationLabels[0].Confidence: must be a number from 0 to 100, got 1000",
        id="confidence-int-too-large-for-float",
    ),
    pytest.param(
        {"ModerationLabels": [lab("A", level=4)]},
        "ModerationLabels[0].TaxonomyLevel: must be the integer 1, 2 or 3, got 4",
        id="level-4",
    ),
    pytest.param(
        {"ModerationLabels": [lab("A", level=0)]},
        "ModerationLabels[0].TaxonomyLevel: must be the integer 1, 2 or 3, got 0",
        id="level-0",
    ),
    pytest.param(
        {"ModerationLabels": [lab("A", level=True)]},
        "ModerationLabels[0].TaxonomyLevel: must be the integer 1, 2 or 3, got True",
        id="level-bool",
    ),
    pytest.param(
        {"ModerationLabels": [lab("A", level="1")]},
        "ModerationLabels[0].TaxonomyLevel: must be the integer 1, 2 or 3, got '1'",
        id="level-str",
    ),
    pytest.param(
        {"ModerationLabels": [lab("A", level=1.5)]},
        "ModerationLabels[0].TaxonomyLevel: must be the integer 1, 2 or 3, got 1.5",
        id="level-fraction",
    ),
    pytest.param(
        {"ModerationLabels": [lab("A", parent=5)]},
        "ModerationLabels[0].ParentName: must be text, got 5",
        id="parent-number",
    ),
    pytest.param(
        {"ModerationLabels": [], "ContentTypes": "Animated"},
        "ContentTypes: must be a list, got str",
        id="content-types-str",
    ),
    pytest.param(
        {"ModerationLabels": [], "ContentTypes": {"Name": "Animated", "Confidence": 90}},
        "ContentTypes: must be a list, got dict",
        id="content-types-dict",
    ),
    pytest.param(
        {"ModerationLabels": [], "ContentTypes": [{"Name": "Animated", "Confidence": 90}, 3]},
        "ContentTypes[1]: must be an object, got int",
        id="content-type-not-a-dict",
    ),
    pytest.param(
        {"ModerationLabels": [], "ContentTypes": [{"Name": "", "Confidence": 90}]},
        "ContentTypes[0].Name: must be non-empty text, got ''",
        id="content-type-name-empty",
    ),
    pytest.param(
        {"ModerationLabels": [], "ContentTypes": [{"Name": "Animated", "Confidence": "high"}]},
        "ContentTypes[0].Confidence: must be a number from 0 to 100, got 'high'",
        id="content-type-confidence",
    ),
    pytest.param(
        {"ModerationLabels": [], "ModerationModelVersion": 7.0},
        "ModerationModelVersion: must be text, got 7.0",
        id="model-version-number",
    ),
    pytest.param(
        {"ModerationLabels": [], "ProjectVersion": ["arn"]},
        "ProjectVersion: must be text, got ['arn']",
        id="project-version-list",
    ),
]


@pytest.mark.parametrize(("response", "message"), MALFORMED)
def test_malformed_responses_name_the_field(response, message):
    with pytest.raises(DetectionParseError, match="^" + re.escape(message)) as caught:
        Detection.from_rekognition(response)
    assert isinstance(caught.value, ModerationError)
    assert isinstance(caught.value, ValueError)
