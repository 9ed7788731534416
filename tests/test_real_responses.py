"""Responses the services really gave, as AWS published them or open-source projects recorded them.

Every file under tests/fixtures/real/ is stored as found (PROVENANCE.md says where each came from
and what, if anything, was changed). Each one must parse, triage under the shipped policies must
give what a careful reader of the policy would expect (the tables below are written by hand), and
the Converse ones must be read and priced with their prompt-cache tokens, also over the wire.
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import builders
import pytest
from botocore.stub import Stubber

from moderation.aws.bedrock import BedrockJudge
from moderation.aws.rekognition import RekognitionDetector
from moderation.aws.transport import RetryPolicy
from moderation.decision import TokenUsage
from moderation.detection import Detection
from moderation.image import PreparedImage
from moderation.judge import interpret_converse
from moderation.policy import Band, PolicyStore, Thresholds
from moderation.ports import JudgeRequest
from moderation.pricing import ModelPrice, Pricing
from moderation.testing import AWSEndpoint, Reply
from moderation.triage import Action, Finding, evaluate

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(__file__).resolve().parent / "fixtures" / "real"
STORE = PolicyStore(ROOT / "policies")
TENANTS = ("default", "dating", "forum", "kids", "medical")

REKOGNITION = sorted(p.relative_to(REAL).as_posix() for p in (REAL / "rekognition").glob("*.json"))
VIDEO = sorted(p.relative_to(REAL).as_posix() for p in (REAL / "rekognition-video").glob("*.json"))
CONVERSE = sorted(p.relative_to(REAL).as_posix() for p in (REAL / "converse").glob("*.json"))

GUN = "rekognition/aws-cli_detect-moderation-labels.json"
EXPLICIT = "rekognition/awsdocs-rekognition-developer-guide_procedure-moderate-images.json"
SMOKING = "rekognition/aws-docs_procedure-moderate-images_7.0.json"
VIDEO_GUN = "rekognition-video/aws-cli_get-content-moderation.json"
VIDEO_SWIMWEAR = (
    "rekognition-video/awsdocs-rekognition-developer-guide_procedure-moderate-videos.json"
)

SONNET_4_5 = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
SONNET_3_7 = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
NOVA_LITE = "us.amazon.nova-lite-v1:0"
NOVA_MICRO = "us.amazon.nova-micro-v1:0"
NOVA_PRO = "us.amazon.nova-pro-v1:0"


def raw(name: str) -> bytes:
    return (REAL / name).read_bytes()


def load(name: str) -> Any:
    return json.loads(raw(name))


def frames(name: str) -> dict[int, dict[str, Any]]:
    """A GetContentModeration answer cut into one DetectModerationLabels-shaped answer per frame.

    A video answer lists `{Timestamp, ModerationLabel}` items; the labels of one timestamp are
    what the image operation would have answered for that frame. The fixture itself is untouched.
    """
    response = load(name)
    by_time: dict[int, list[dict[str, Any]]] = {}
    for item in response["ModerationLabels"]:
        by_time.setdefault(item["Timestamp"], []).append(item["ModerationLabel"])
    return {
        ts: {
            "ModerationLabels": labels,
            "ModerationModelVersion": response.get("ModerationModelVersion"),
        }
        for ts, labels in by_time.items()
    }


def rekognition_response(name: str, frame: int | None) -> dict[str, Any]:
    return load(name) if frame is None else frames(name)[frame]


ALL_REKOGNITION = [(name, None) for name in REKOGNITION] + [
    (name, ts) for name in VIDEO for ts in frames(name)
]


def rek_id(case: tuple[str, int | None]) -> str:
    name, frame = case
    return Path(name).stem + ("" if frame is None else f"@{frame}ms")


# -- the fixtures themselves -----------------------------------------------------------------


def test_every_fixture_has_its_provenance_and_every_entry_its_file() -> None:
    provenance = (REAL / "PROVENANCE.md").read_text()
    for name in REKOGNITION + VIDEO + CONVERSE:
        assert f"`{name}`" in provenance, f"{name} is not in PROVENANCE.md"
    listed = [part.split("`")[0] for part in provenance.split("\n### `")[1:]]
    assert sorted(listed) == sorted(REKOGNITION + VIDEO + CONVERSE)


def test_there_are_real_responses_of_every_kind() -> None:
    assert len(REKOGNITION) >= 3
    assert len(VIDEO) >= 2
    assert len(CONVERSE) >= 5


@pytest.mark.parametrize("case", ALL_REKOGNITION, ids=rek_id)
def test_rekognition_confidences_are_single_precision_as_the_service_sends_them(
    case: tuple[str, int | None],
) -> None:
    # Rekognition's confidences are 32-bit floats printed in full: a value that is not one was
    # typed by a person, and would not belong here.
    response = rekognition_response(*case)
    values = [label["Confidence"] for label in response["ModerationLabels"]]
    values += [ct["Confidence"] for ct in response.get("ContentTypes", [])]
    assert values
    for value in values:
        assert struct.unpack("f", struct.pack("f", value))[0] == value


# -- Rekognition: parse, levels, triage -------------------------------------------------------


@pytest.mark.parametrize("case", ALL_REKOGNITION, ids=rek_id)
def test_every_rekognition_response_parses(case: tuple[str, int | None]) -> None:
    response = rekognition_response(*case)
    detection = Detection.from_rekognition(response, min_confidence=50.0)
    assert [lb.name for lb in detection.labels] == [
        item["Name"] for item in response["ModerationLabels"]
    ]
    assert all(lb.level in (1, 2, 3) for lb in detection.labels)
    assert Detection.model_validate_json(detection.model_dump_json()) == detection


LEVELS: list[tuple[str, int | None, list[tuple[str, str | None, int]]]] = [
    # 6.x: Weapon Violence sits directly under Violence (7.0 has it at level 3).
    (GUN, None, [("Weapon Violence", "Violence", 2), ("Violence", None, 1)]),
    (
        EXPLICIT,
        None,
        [
            ("Explicit Nudity", None, 1),
            ("Graphic Male Nudity", "Explicit Nudity", 2),
            ("Sexual Activity", "Explicit Nudity", 2),
        ],
    ),
    (
        SMOKING,
        None,
        [
            ("Smoking", "Drugs & Tobacco Paraphernalia & Use", 3),
            ("Drugs & Tobacco Paraphernalia & Use", "Drugs & Tobacco", 2),
            ("Drugs & Tobacco", None, 1),
        ],
    ),
    (VIDEO_GUN, 0, [("Violence", None, 1), ("Weapon Violence", "Violence", 2)]),
    (
        VIDEO_SWIMWEAR,
        0,
        [("Male Swimwear Or Underwear", "Suggestive", 2), ("Suggestive", None, 1)],
    ),
    # The last frame of the page holds the child alone: its parent is still 6.x's top level.
    (VIDEO_SWIMWEAR, 1999, [("Male Swimwear Or Underwear", "Suggestive", 2)]),
]


@pytest.mark.parametrize(
    ("name", "frame", "expected"), LEVELS, ids=[rek_id((n, f)) for n, f, _ in LEVELS]
)
def test_levels_follow_each_responses_own_hierarchy(
    name: str, frame: int | None, expected: list[tuple[str, str | None, int]]
) -> None:
    detection = Detection.from_rekognition(rekognition_response(name, frame))
    assert [(lb.name, lb.parent, lb.level) for lb in detection.labels] == expected


A = Action.APPROVE
E = Action.ESCALATE
V = Action.REVIEW
R = Action.REJECT

# (fixture, video frame, {tenant: (action, deciding label, its rule)}), written from the policies:
# default/dating/forum allow swimwear and reject violence at 95/95/97; kids rejects swimwear at
# 70; medical sends graphic violence and explicit nudity to a person rather than rejecting.
TRIAGE: list[tuple[str, int | None, dict[str, tuple[Action, str | None, str | None]]]] = [
    (
        GUN,
        None,
        {
            "default": (R, "Weapon Violence", "Violence"),
            "dating": (R, "Weapon Violence", "Violence"),
            "forum": (R, "Weapon Violence", "Violence"),  # 97.30 >= the forum's 97
            "kids": (R, "Weapon Violence", "Violence"),
            "medical": (V, "Weapon Violence", "Graphic Violence"),
        },
    ),
    (
        EXPLICIT,
        None,
        {
            "default": (R, "Graphic Male Nudity", "Explicit"),
            "dating": (R, "Graphic Male Nudity", "Explicit"),
            "forum": (R, "Graphic Male Nudity", "Explicit"),
            "kids": (R, "Graphic Male Nudity", "Explicit"),
            "medical": (V, "Graphic Male Nudity", "Explicit"),  # review at 90, no reject
        },
    ),
    (
        SMOKING,
        None,
        {
            "default": (E, "Smoking", "Drugs & Tobacco"),
            "dating": (E, "Smoking", "Drugs & Tobacco"),
            "forum": (E, "Smoking", "Drugs & Tobacco"),  # the engine turns it into review
            "kids": (R, "Smoking", "Drugs & Tobacco"),
            "medical": (E, "Smoking", "Drugs & Tobacco"),
        },
    ),
    (
        VIDEO_GUN,
        0,
        {
            "default": (R, "Weapon Violence", "Violence"),
            "dating": (R, "Weapon Violence", "Violence"),
            "forum": (R, "Weapon Violence", "Violence"),  # 97.40 >= 97
            "kids": (R, "Weapon Violence", "Violence"),
            "medical": (V, "Weapon Violence", "Graphic Violence"),
        },
    ),
    *(
        (
            VIDEO_SWIMWEAR,
            frame,
            {
                # Swimwear is allowed, and Suggestive is only its 6.x parent: nothing to do.
                "default": (A, None, None),
                "dating": (A, None, None),
                "forum": (A, None, None),
                "kids": (R, "Male Swimwear Or Underwear", "Swimwear or Underwear"),
                "medical": (A, None, None),
            },
        )
        for frame in (0, 1000, 1999)
    ),
]
TRIAGE_CASES = [
    (name, frame, tenant, *outcome)
    for name, frame, table in TRIAGE
    for tenant, outcome in table.items()
]


def test_every_rekognition_fixture_has_expected_outcomes_for_every_tenant() -> None:
    covered = {(name, frame) for name, frame, _ in TRIAGE}
    assert {(name, frame) for name, frame in ALL_REKOGNITION} <= covered
    assert all(set(table) == set(TENANTS) for _, _, table in TRIAGE)


@pytest.mark.parametrize(
    ("name", "frame", "tenant", "action", "label", "rule"),
    TRIAGE_CASES,
    ids=[f"{rek_id((n, f))}-{t}" for n, f, t, *_ in TRIAGE_CASES],
)
def test_triage_of_real_responses_under_the_shipped_policies(
    name: str,
    frame: int | None,
    tenant: str,
    action: Action,
    label: str | None,
    rule: str | None,
) -> None:
    detection = Detection.from_rekognition(rekognition_response(name, frame))
    triage = evaluate(STORE.get(tenant), detection)
    deciding = triage.deciding
    reasons = [f.describe() for f in triage.findings]
    assert triage.action == action, reasons
    decided_by = (deciding.label, deciding.rule) if deciding else (None, None)
    assert decided_by == (label, rule), reasons


@pytest.mark.parametrize("case", ALL_REKOGNITION, ids=rek_id)
def test_reported_parents_are_covered_not_judged_twice(case: tuple[str, int | None]) -> None:
    # In every real answer a parent is exactly as confident as its child, so the parent must
    # never be the label that decides: its child is the more specific evidence.
    detection = Detection.from_rekognition(rekognition_response(*case))
    parents = {lb.parent for lb in detection.labels if lb.parent}
    for tenant in TENANTS:
        for finding in evaluate(STORE.get(tenant), detection).findings:
            if finding.label in parents:
                assert finding.note and finding.note.startswith("covered by"), finding


# -- Converse: interpretation and cost ---------------------------------------------------------

# (fixture, model it came from, status, phrase in detail, (in, out, total, cache read, cache
# write), service latency). None of them answers our record_verdict tool: they come from other
# applications' prompts, so each must be an `invalid` judgment that says why, never a verdict.
CONVERSE_CASES: list[tuple[str, str, str, str, tuple[int, int, int, int, int], float]] = [
    (
        "converse/claude-sonnet-4-5_end-turn_cache-write.json",
        SONNET_4_5,
        "end_turn",
        "text-only reply, no tool call",
        (2, 5, 1329, 0, 1322),
        2023.0,
    ),
    (
        "converse/claude-sonnet-4-5_end-turn_cache-read.json",
        SONNET_4_5,
        "end_turn",
        "text-only reply, no tool call",
        (2, 5, 1329, 1322, 0),
        1990.0,
    ),
    (
        "converse/claude-sonnet-4-5_image_cache-read-and-write.json",
        SONNET_4_5,
        "end_turn",
        "text-only reply, no tool call",
        (3, 61, 2435, 2074, 297),
        3447.0,
    ),
    (
        "converse/nova-lite_end-turn_cache-write.json",
        NOVA_LITE,
        "end_turn",
        "text-only reply, no tool call",
        (10, 2, 1310, 0, 1298),
        797.0,
    ),
    (
        "converse/nova-pro_image_end-turn.json",
        NOVA_PRO,
        "end_turn",
        "text-only reply, no tool call",
        (1839, 49, 1888, 0, 0),
        4054.0,
    ),
    (
        "converse/nova-micro_tool-use.json",
        NOVA_MICRO,
        "tool_use",
        "the model called tool 'temperature', not 'record_verdict'",
        (571, 22, 593, 0, 0),
        401.0,
    ),
    (
        "converse/nova-micro_text-and-tool-use.json",
        NOVA_MICRO,
        "tool_use",
        "the model called tool 'get_capital', not 'record_verdict'",
        (426, 66, 492, 0, 0),
        581.0,
    ),
    (
        "converse/claude-3-7-sonnet_reasoning-text-tool-use.json",
        SONNET_3_7,
        "tool_use",
        "the model called tool 'get_user_country', not 'record_verdict'",
        (397, 130, 527, 0, 0),
        3896.0,
    ),
    (
        "converse/nova-micro_max-tokens.json",
        NOVA_MICRO,
        "max_tokens",
        "max_tokens: the reply was cut off at maxTokens",
        (13, 5, 18, 0, 0),
        249.0,
    ),
]


def usage_of(counts: tuple[int, int, int, int, int]) -> TokenUsage:
    return TokenUsage(
        input_tokens=counts[0],
        output_tokens=counts[1],
        total_tokens=counts[2],
        cache_read_input_tokens=counts[3],
        cache_write_input_tokens=counts[4],
    )


def test_every_converse_fixture_has_an_expected_reading() -> None:
    assert sorted(case[0] for case in CONVERSE_CASES) == CONVERSE


@pytest.mark.parametrize(
    ("name", "model_id", "stop", "detail", "counts", "latency"),
    CONVERSE_CASES,
    ids=[Path(case[0]).stem for case in CONVERSE_CASES],
)
def test_every_converse_response_is_read_with_its_usage(
    name: str,
    model_id: str,
    stop: str,
    detail: str,
    counts: tuple[int, int, int, int, int],
    latency: float,
) -> None:
    judgment = interpret_converse(
        load(name), model_id=model_id, prompt_sha256="p", latency_ms=None, attempts=1
    )
    assert judgment.status == "invalid"
    assert judgment.verdict is None
    assert judgment.detail == detail
    assert judgment.stop_reason == stop
    assert judgment.usage == usage_of(counts)
    assert judgment.latency_ms == latency


# Dollars per call at the default prices: input, output, cache reads and cache writes each at
# their own rate (Claude: reads 0.1x and writes 1.25x input; Nova: reads 0.25x, writes free).
COSTS: list[tuple[str, str, float | None]] = [
    ("converse/claude-sonnet-4-5_end-turn_cache-write.json", SONNET_4_5, 0.0050385),
    ("converse/claude-sonnet-4-5_end-turn_cache-read.json", SONNET_4_5, 0.0004776),
    ("converse/claude-sonnet-4-5_image_cache-read-and-write.json", SONNET_4_5, 0.00265995),
    ("converse/nova-lite_end-turn_cache-write.json", NOVA_LITE, 0.00000108),
    ("converse/nova-pro_image_end-turn.json", NOVA_PRO, 0.001628),
    ("converse/nova-micro_tool-use.json", NOVA_MICRO, 0.000023065),
    # No default price for Claude 3.7 Sonnet: the cost is unknown, not zero.
    ("converse/claude-3-7-sonnet_reasoning-text-tool-use.json", SONNET_3_7, None),
]


@pytest.mark.parametrize(
    ("name", "model_id", "dollars"), COSTS, ids=[Path(c[0]).stem for c in COSTS]
)
def test_real_usage_is_priced_with_its_cache_tokens(
    name: str, model_id: str, dollars: float | None
) -> None:
    judgment = interpret_converse(
        load(name), model_id=model_id, prompt_sha256="p", latency_ms=None, attempts=1
    )
    cost = Pricing().bedrock(model_id, judgment.usage)
    if dollars is None:
        assert cost is None
    else:
        assert cost == pytest.approx(dollars, rel=1e-9)


def test_a_price_without_cache_rates_charges_cached_tokens_as_input() -> None:
    # Unknown cache rates: the conservative estimate (a budget must not undercount).
    usage = usage_of((2, 5, 1329, 1000, 322))
    plain = Pricing(models={"m": ModelPrice(3.0, 15.0)})
    assert plain.bedrock("m", usage) == pytest.approx((2 + 1000 + 322) * 3.0e-6 + 5 * 15.0e-6)


def test_cache_rates_follow_the_published_ratios() -> None:
    claude = ModelPrice.anthropic(1.0, 5.0)
    assert (claude.cache_read_per_mtok, claude.cache_write_per_mtok) == pytest.approx((0.1, 1.25))
    nova = ModelPrice.nova(0.06, 0.24)
    assert (nova.cache_read_per_mtok, nova.cache_write_per_mtok) == pytest.approx((0.015, 0.0))


# -- the same answers over the wire -----------------------------------------------------------


@pytest.fixture
def aws() -> Iterator[AWSEndpoint]:
    with AWSEndpoint() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def image() -> PreparedImage:
    return builders.prepared()


def one_attempt() -> RetryPolicy:
    return RetryPolicy(attempts=1, sleep=lambda _: None, rng=random.Random(3))


@pytest.mark.parametrize("name", REKOGNITION, ids=lambda n: Path(n).stem)
def test_rekognition_fixture_over_the_wire(
    aws: AWSEndpoint, image: PreparedImage, name: str
) -> None:
    # The file's bytes as the body: botocore's parser, not ours, reads them first.
    aws.script("DetectModerationLabels", Reply(body=raw(name)))
    client = aws.client("rekognition", retries={"total_max_attempts": 1})
    wire = RekognitionDetector(client, retry=one_attempt()).detect(image, min_confidence=50)
    direct = Detection.from_rekognition(load(name), min_confidence=50)
    assert wire.model_copy(update={"latency_ms": None}) == direct


@pytest.mark.parametrize("name", REKOGNITION, ids=lambda n: Path(n).stem)
def test_rekognition_fixture_satisfies_botocores_service_model(
    image: PreparedImage, name: str
) -> None:
    # Stubber validates a response against the rekognition service model. (The Converse
    # fixtures are not checked this way: the live service already sends usage members, such as
    # serverToolUsage, that botocore's model does not list, and botocore drops them on the wire.)
    client = boto3.client(
        "rekognition", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        stubber.add_response("detect_moderation_labels", load(name))
        detection = RekognitionDetector(client, retry=one_attempt()).detect(
            image, min_confidence=50
        )
    assert detection.model_copy(update={"latency_ms": None}) == Detection.from_rekognition(
        load(name), min_confidence=50
    )


FINDING = Finding(
    label="Violence",
    parent=None,
    level=1,
    confidence=72.4,
    rule="Violence",
    matched="label",
    thresholds=Thresholds(reject=95, escalate=60),
    band=Band.ESCALATE,
)


@pytest.mark.parametrize(
    ("name", "model_id", "counts"),
    [(case[0], case[1], case[4]) for case in CONVERSE_CASES],
    ids=[Path(case[0]).stem for case in CONVERSE_CASES],
)
def test_converse_fixture_over_the_wire_keeps_its_cache_tokens(
    aws: AWSEndpoint,
    image: PreparedImage,
    name: str,
    model_id: str,
    counts: tuple[int, int, int, int, int],
) -> None:
    aws.script("Converse", Reply(body=raw(name)))
    client = aws.client("bedrock-runtime", retries={"total_max_attempts": 1})
    request = JudgeRequest(tenant="t", model_id=model_id, guidance="g", findings=(FINDING,))
    judgment = BedrockJudge(client, retry=one_attempt()).judge(image, request)
    direct = interpret_converse(
        load(name), model_id=model_id, prompt_sha256="p", latency_ms=None, attempts=1
    )
    assert (judgment.status, judgment.detail, judgment.stop_reason) == (
        direct.status,
        direct.detail,
        direct.stop_reason,
    )
    assert judgment.usage == usage_of(counts)
    assert aws.requests[-1].model_id == model_id
