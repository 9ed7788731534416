"""Golden decisions: no policy change may flip a decision the golden log recorded."""

import hashlib
from pathlib import Path

import moderation
from moderation.audit import decisions

GOLDEN_LOG = "examples/golden/decisions.jsonl"  # decisions you have checked, kept in the repo
POLICIES = "policies"
IMAGES = Path("examples/images")


def test_no_golden_decision_flips(assert_replay):
    # Accept a flip you intend by its decision id: assert_replay(..., allow=["<decision id>"])
    assert_replay(GOLDEN_LOG, POLICIES)


def test_moderate_answers_as_the_golden_log_recorded(engine_from_log):
    engine_from_log(GOLDEN_LOG, POLICIES, install=True)  # moderation.moderate() uses it
    images = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in IMAGES.iterdir()}
    for recorded in decisions(GOLDEN_LOG):
        decision = moderation.moderate(images[recorded.image.sha256], tenant=recorded.tenant)
        assert (decision.outcome, decision.decided_by) == (recorded.outcome, recorded.decided_by)
