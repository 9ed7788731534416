"""The per-decision floor: what the decision path does once per policy or per image, not per call.

Speed itself is measured by benchmarks/overhead.py; these check the work that is no longer done
(rule lookups repeated, entropy-coded bytes scanned) and that what replaces it answers the same.
"""

from __future__ import annotations

from typing import Any

import pytest

from moderation import PolicyStore
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
