"""The per-decision floor: what the decision path does once per policy or per image, not per call.

Speed itself is measured by benchmarks/overhead.py; these check that work is no longer repeated
(a policy's rule lookups) and that what replaces a slower way (the scan of entropy-coded data, no
longer a regular expression) answers the same.
"""

from __future__ import annotations

import io
import random
import re
from typing import Any

import pytest
from PIL import Image, ImageFilter

from moderation import PolicyStore
from moderation.image._structure import StructureError, _scan_end, jpeg_end
from moderation.policy import Policy
from moderation.testing import static_detection
from moderation.triage import Finding, Triage, compiled, evaluate

LABELS = [
    ("Alcoholic Beverages", 91.2),
    ("Alcohol", 91.2),
    ("Swimwear or Underwear", 64.0),
    ("Weapons", 52.5),
]


@pytest.fixture
def policy() -> Policy:
    return PolicyStore("policies").get("default")


def test_evaluate_resolves_a_policys_rules_once_not_on_every_call(
    policy: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = Policy.rule_for

    def counted(self: Policy, name: str) -> Any:
        calls.append(name)
        return real(self, name)

    monkeypatch.setattr(Policy, "rule_for", counted)
    detection = static_detection(LABELS)
    first = evaluate(policy, detection)
    resolved = len(calls)
    assert resolved > 0
    # WHEN the same policy triages the same labels again (the next decision of its tenant)
    again = evaluate(policy, detection)
    # THEN nothing is looked up again, and the answer is the same
    assert len(calls) == resolved
    assert again == first
    assert compiled(policy) is compiled(policy)


def test_a_copy_of_a_policy_gets_a_compilation_of_its_own(policy: Policy) -> None:
    stricter = policy.model_copy(update={"min_confidence": 95.0})
    assert compiled(stricter) is not compiled(policy)
    assert compiled(stricter).policy is stricter
    assert evaluate(stricter, static_detection(LABELS)).action.value == "approve"


def test_findings_and_triage_are_what_validating_them_gives(policy: Policy) -> None:
    detection = static_detection([*LABELS, ("Explicit", 96.5), ("A Label Unknown Yet", 70.0)])
    triage = evaluate(policy, detection)
    rebuilt = Triage.model_validate(
        {
            "action": triage.action,
            "findings": [Finding.model_validate(f.model_dump()) for f in triage.findings],
            "content_types": triage.content_types,
        }
    )
    assert rebuilt == triage
    assert rebuilt.model_dump_json() == triage.model_dump_json()
    assert [f.model_fields_set for f in rebuilt.findings] == [
        f.model_fields_set for f in triage.findings
    ]


# The rule the walk has always applied to entropy-coded data, as a regular expression: the first
# 0xFF followed by anything but 0x00, a restart marker (D0-D7) or more 0xFF fill.
SCAN_ENDS_AT = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def test_the_scan_ends_where_the_rule_says_for_any_bytes() -> None:
    rng = random.Random(16)
    alphabet = [0xFF, 0xFF, 0x00, 0xD0, 0xD7, 0xD8, 0xD9, 0xDA, 0xC4, 0x12]
    for _ in range(20_000):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        start = rng.randint(0, len(data))
        found = SCAN_ENDS_AT.search(data, start)
        assert _scan_end(data, start) == (found.start() if found else -1), (data, start)


def photo(quality: int, **params: Any) -> bytes:
    rng = random.Random(quality)
    size = (160, 120)
    grain = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    buffer = io.BytesIO()
    grain.filter(ImageFilter.GaussianBlur(0.6)).save(buffer, "JPEG", quality=quality, **params)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "params",
    [{}, {"progressive": True}, {"restart_marker_blocks": 1}, {"optimize": True}],
    ids=["baseline", "progressive", "restart markers", "optimized"],
)
def test_the_walk_finds_the_end_of_every_kind_of_scan(params: dict[str, Any]) -> None:
    data = photo(90, **params)
    assert jpeg_end(data) == len(data)
    assert jpeg_end(data + b"camera trailer \xff\xd9") == len(data)  # bytes after EOI: not read
    with pytest.raises(StructureError, match="truncated"):
        jpeg_end(data[:-2])
