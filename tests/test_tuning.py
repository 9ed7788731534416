"""`moderation tune`: the fixed-sequence test, the refusal when labels are too few, the edit of
the tenant's file, and the command (text, --json, --write as a shadow candidate, errors)."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable
from pathlib import Path

import builders
import pytest
from clirunner import runner

from moderation.audit import JsonlAuditLog
from moderation.cli import main
from moderation.decision import Outcome
from moderation.policy import PolicyStore
from moderation.review import AuditRecordSink, Label, LabelKind, Reviewer, SQLiteReviewDesk
from moderation.tuning import Item, Step, labels_needed, run_side, tune
from moderation.tuning._edit import edit
from moderation.tuning._sample import collect

TENANT = (
    "# Violence is tuned from the reviewers' verdicts.\n"
    "categories:\n"
    "  Violence: {reject: 90, escalate: 60}  # keep this comment\n"
    "review: {qa_sample: {approved: 1.0, rejected: 1.0}}\n"
)
ANNA = Reviewer("anna", "*")


class Scores:
    """A detector answering Violence at each of `scores` in turn."""

    def __init__(self, scores: Iterable[float]) -> None:
        self.scores = iter(scores)

    def detect(self, image: object, *, min_confidence: float) -> object:
        return builders.detection(("Violence", "", next(self.scores)))


def labelled_log(tmp: Path, policies: Path, traffic: list[tuple[float, bool]]) -> Path:
    """`traffic` (score, harmful) moderated for tenant t by the real engine into an audit log,
    every desk item reviewed with its truth."""
    log = JsonlAuditLog(tmp / "audit.jsonl", fsync=False)
    ids = (f"01JDTUNE{n:018d}" for n in itertools.count())
    truth: dict[str, bool] = {}
    with SQLiteReviewDesk(":memory:", sink=AuditRecordSink(log)) as desk:
        engine = builders.engine(
            PolicyStore(policies),
            Scores(score for score, _ in traffic),
            audit=log,
            review=desk,
            new_id=lambda: next(ids),
        )
        for _, harmful in traffic:
            truth[engine.moderate(builders.IMAGE, tenant="t").id] = harmful
        while (item := desk.next(ANNA)) is not None:
            desk.decide(item.id, "reject" if truth[item.decision_id] else "approve", reviewer=ANNA)
    return log.path


# --- the fixed-sequence test -----------------------------------------------------------------


def items(*rows: tuple[float, bool | None], draw: float = 0.0) -> list[Item]:
    return [Item(f"id{i}", score, draw, harmful) for i, (score, harmful) in enumerate(rows)]


def test_testing_stops_at_the_first_threshold_it_cannot_prove():
    # GIVEN 200 harmless images below 62, 3 harmful ones at 62.5, 400 harmless ones above 63
    sample = items(
        *[(40 + i / 10, False) for i in range(200)],
        *[(62.5, True)] * 3,
        *[(63 + i / 100, False) for i in range(400)],
    )
    # WHEN the approve side is tested from 60 upward with a 2% target
    side = run_side(
        "approve", sample, [60, 61, 62, 63, 64, 70], rate=1.0, target=0.02, confidence=0.9
    )
    # THEN 60..62 are proven, 63 fails, and 64 and 70 (which would dilute the errors) are not
    # tested: a fixed sequence stops at its first failure
    assert [s.threshold for s in side.steps] == [60, 61, 62, 63]
    assert side.proven == 62 and [s.passed for s in side.steps] == [True, True, True, False]
    assert (side.steps[-1].n, side.steps[-1].k) == (203, 3)


def test_a_drawn_image_without_a_usable_verdict_counts_as_an_error():
    sample = [Item("a", 50, 0.1, None), Item("b", 50, 0.1, False), Item("c", 50, 0.9, True)]
    (step,) = run_side("approve", sample, [60], rate=0.5, target=0.5, confidence=0.9).steps
    # "c" was not drawn at rate 0.5: not in the sample, whatever its verdict
    assert (step.images, step.n, step.k, step.missing) == (3, 2, 1, 1)


def test_the_reject_side_counts_harmless_images_as_errors():
    sample = items((95, True), (96, False), (50, False))
    (step,) = run_side("reject", sample, [90], rate=1.0, target=0.5, confidence=0.9).steps
    assert (step.images, step.n, step.k) == (2, 2, 1)


@pytest.mark.parametrize(("confidence", "target"), [(0.975, 0.05), (0.95, 0.01), (0.9, 0.1)])
def test_with_no_error_the_labels_needed_are_the_closed_form(confidence: float, target: float):
    needed = labels_needed(Step(60, 0, 0, 0, 0, 1.0, False), target, confidence, rate=0.25)
    n = math.ceil(math.log(1 - confidence) / math.log(1 - target))
    assert (needed.labels, needed.images) == (n, 4 * n)
    more = labels_needed(Step(60, 0, 10, 0, 0, 1.0, False), target, confidence, rate=0.25)
    assert more.labels == n - 10


def test_no_number_of_labels_proves_a_rate_observed_over_the_target():
    needed = labels_needed(Step(60, 20, 20, 2, 0, 0.3, False), 0.05, 0.95, rate=1.0)
    assert needed.labels is None and needed.observed == 0.1


@pytest.mark.parametrize(
    ("kind", "harmful", "counted"),
    [
        (LabelKind.QA, True, "qa"),
        (LabelKind.REVIEW, True, "review"),
        (LabelKind.APPEAL, None, "appeal"),
    ],
)
def test_an_appeal_is_read_but_never_a_verdict_in_the_sample(
    kind: LabelKind, harmful: bool | None, counted: str
):
    store = builders.store(builders.DEFAULT_POLICY, t=TENANT)
    decision = builders.engine(store, Scores([50.0])).moderate(builders.IMAGE, tenant="t")
    label = Label(decision, Outcome.REJECTED, kind, None, "anna", builders.NOW)
    policy = store.get("t")
    traffic = collect([decision], {decision.id: label}, policy, "t", ["Violence"])["Violence"]
    assert [(item.score, item.harmful) for item in traffic.items] == [(50.0, harmful)]
    assert dict(traffic.kinds) == {counted: 1}


# --- too few labels ----------------------------------------------------------------------------


def test_too_few_labels_leave_the_rule_as_it_is_and_say_how_many_more(tmp_path: Path):
    # GIVEN eight harmless images, every one a QA sample with its verdict
    policies = builders.policies_dir(tmp_path, t=TENANT)
    log = labelled_log(tmp_path, policies, [(45 + i, False) for i in range(8)])
    # WHEN tuned for 5% at 95%
    proposal = tune(log, policies, "t", max_false_approve=0.05, max_false_reject=0.05)
    # THEN nothing changes: no diff, no candidate, no backtest
    (violence,) = proposal.rules
    assert violence.status == "insufficient" and violence.after == violence.before
    assert (proposal.diff, proposal.shadow_text, proposal.backtest) == ("", None, None)
    # AND it says how many more labels of which kind: each side is tested at 97.5%
    n = math.ceil(math.log(1 - 0.975) / math.log(1 - 0.05))
    assert violence.approve.needed is not None and violence.approve.needed.labels == n - 8
    assert violence.reject is not None and violence.reject.needed is not None
    assert violence.reject.needed.labels == n
    assert f"needs {n - 8} more QA samples of automatic approvals" in violence.notes[0]
    assert f"needs {n} more QA samples of automatic rejections" in violence.notes[1]


# --- editing the tenant's file -----------------------------------------------------------------


def test_the_edit_changes_only_the_values_and_keeps_comments(tmp_path: Path):
    shipped = builders.shipped_policies(tmp_path)
    kids = (shipped / "tenants" / "kids.yaml").read_text()
    edited = edit(
        kids,
        {"Violence": {"reject": 75, "escalate": 35}, "Weapons": {"escalate": 45}, "Hate Symbols":
         {"review": 50}},
        {"Violence": {"reject": 75, "escalate": 35}, "Weapons": {"reject": 80, "escalate": 45},
         "Hate Symbols": {"review": 50}},
    )  # fmt: skip
    changed = [line for line in edited.splitlines() if line not in kids.splitlines()]
    assert changed == [
        "    reject: 75",
        "    escalate: 35",
        "  Weapons: {reject: 80, escalate: 45}",
        "  Hate Symbols: {review: 50}",  # inherited from default: added to the tenant's file
    ]
    assert all(line in edited for line in kids.splitlines() if line.lstrip().startswith("#"))
    draft = tmp_path / "kids.yaml"
    draft.write_text(edited)
    policy = PolicyStore(shipped, drafts=[draft]).get("kids")
    violence = policy.categories["Violence"]
    assert (violence.thresholds.reject, violence.thresholds.escalate) == (75, 35)
    assert violence.illustrated is not None and violence.illustrated.reject == 90  # untouched
    assert policy.categories["Hate Symbols"].thresholds.review == 50


# --- the command -------------------------------------------------------------------------------

# Harm is certain at and above 75 and absent below: both sides can move towards 75.
STEP_TRAFFIC = [(40 + i / 10, 40 + i / 10 >= 75) for i in range(600)]


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("tune")
    policies = builders.policies_dir(tmp, t=TENANT)
    return policies, labelled_log(tmp, policies, STEP_TRAFFIC)


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner().invoke(main, ["tune", *args])
    return result.exit_code, result.stdout, result.stderr


def rates(confidence: str = "0.9") -> list[str]:
    return ["--max-false-approve", "0.05", "--max-false-reject", "0.05", "--confidence", confidence]


def test_the_text_report_shows_evidence_diff_and_backtest(day: tuple[Path, Path]):
    policies, log = day
    code, out, err = invoke("t", str(log), "--policies", str(policies), *rates())
    assert code == 0, out + err
    assert "Violence: changed" in out and "thresholds   reject 90, escalate 60 -> " in out
    assert "--- a/tenants/t.yaml\n+++ b/tenants/t.yaml" in out
    assert "-  Violence: {reject: 90, escalate: 60}  # keep this comment" in out
    assert "Backtest" in out and "flips among labelled decisions:" in out


def test_json_has_every_part(day: tuple[Path, Path]):
    policies, log = day
    code, out, err = invoke("t", str(log), "--policies", str(policies), *rates(), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["changed"] == ["Violence"] and data["written"] is None
    (rule,) = data["rules"]
    assert rule["before"] == {"reject": 90, "escalate": 60}
    low, high = rule["after"]["escalate"], rule["after"]["reject"]
    # the band narrows, and on this traffic (the truth is a step at 75) both rates hold
    assert low > 60 and high < 90
    approved = [harmful for score, harmful in STEP_TRAFFIC if score < low]
    rejected = [not harmful for score, harmful in STEP_TRAFFIC if score >= high]
    assert sum(approved) / len(approved) <= 0.05 and sum(rejected) / len(rejected) <= 0.05
    assert rule["labels"] == {"qa": 600 - 300, "review": 300}
    assert rule["review_share_after"] < rule["review_share_before"] == 0.5
    assert rule["approve"]["steps"][0] == {
        "threshold": 60, "images": 200, "n": 200, "k": 0, "missing": 0,
        "bound": pytest.approx(1 - 0.05 ** (1 / 200)), "passed": True,
    }  # fmt: skip
    backtest = data["backtest"]
    # every flip is a labelled one here: out of the band, to the machine's call
    wrong = sum(h for sc, h in STEP_TRAFFIC if 60 <= sc < low) + sum(
        not h for sc, h in STEP_TRAFFIC if high <= sc < 90
    )
    flipped = sum(1 for sc, _ in STEP_TRAFFIC if 60 <= sc < low or high <= sc < 90)
    assert backtest["labelled_flips"] == {
        "right": flipped - wrong, "wrong": wrong, "to_review": 0
    }  # fmt: skip
    assert backtest["replay"]["flipped"] == flipped
    assert backtest["replay"]["matrix"]["review"]["approved"] > 0
    assert data["diff"].startswith("--- a/tenants/t.yaml")
    edited = f"+  Violence: {{reject: {high:g}, escalate: {low:g}}}  # keep this comment\n"
    assert edited in data["diff"]


def test_write_gives_a_candidate_that_runs_as_a_shadow(day: tuple[Path, Path], tmp_path: Path):
    policies, log = day
    live = (policies / "tenants" / "t.yaml").read_bytes()
    target = tmp_path / "t-next.yaml"
    code, out, err = invoke(
        "t", str(log), "--policies", str(policies), *rates(), "--json", "--write", str(target)
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["written"] == str(target)
    assert (policies / "tenants" / "t.yaml").read_bytes() == live  # the live policy is untouched
    # WHEN the candidate is installed beside the live policy and named as its shadow
    trial = builders.policies_dir(
        tmp_path / "trial", t=live.decode() + "shadow: [t-next]\n", **{"t-next": target.read_text()}
    )
    store = PolicyStore(trial)
    (candidate,) = store.shadows(store.get("t"))
    # THEN it is the proposal, with everything else the live policy's
    assert candidate.id == "t-next"
    thresholds = candidate.categories["Violence"].thresholds
    assert {"reject": thresholds.reject, "escalate": thresholds.escalate} == data["rules"][0][
        "after"
    ]
    assert candidate.review_rules == store.get("t").review_rules


KEY = "the tuning tests' key"
BEN = Reviewer("ben", "*")


def busy_log(tmp: Path, policies: Path, traffic: list[tuple[float, bool]]) -> Path:
    """As `labelled_log`, into a keyed log rotating every 64 KB, with everything else a desk
    writes: the first decision is made a golden item (its answer the truth) and shown among the
    later items, where ben gives it the wrong verdict; and three decisions are appealed, ben
    confirming anna's verdict on each."""
    log = JsonlAuditLog(tmp / "audit.jsonl", fsync=False, key=KEY, rotate_bytes=64_000)
    ids = (f"01JDBUSY{n:018d}" for n in itertools.count())
    truth: dict[str, bool] = {}

    def verdict(decision_id: str, wrong: bool = False) -> str:
        return "reject" if truth[decision_id] != wrong else "approve"

    with SQLiteReviewDesk(":memory:", sink=AuditRecordSink(log)) as desk:
        engine = builders.engine(
            PolicyStore(policies), Scores(score for score, _ in traffic), audit=log, review=desk,
            new_id=lambda: next(ids),
        )  # fmt: skip
        for n, (_, harmful) in enumerate(traffic):
            decision = engine.moderate(builders.IMAGE, tenant="t")
            truth[decision.id] = harmful
            if n == 0:
                item = desk.next(ANNA)
                assert item is not None
                desk.decide(item.id, verdict(item.decision_id), reviewer=ANNA)
                desk.add_golden(decision, verdict(decision.id))
        while (item := desk.next(ANNA)) is not None:
            desk.decide(item.id, verdict(item.decision_id), reviewer=ANNA)
        golden = 0
        while (item := desk.next(BEN)) is not None:  # the showing anna may not see
            golden += 1
            desk.decide(item.id, verdict(item.decision_id, wrong=True), reviewer=BEN)
        assert golden == 1
        for decision_id in list(truth)[10:13]:
            desk.appeal(decision_id, "look again", by="user-1")
            item = desk.next(BEN)
            assert item is not None and item.decision_id == decision_id
            desk.decide(item.id, verdict(decision_id), reviewer=BEN)
    assert len(list(tmp.glob("audit.jsonl.*"))) >= 2  # rotated more than once
    return log.path


def test_golden_records_appeals_and_a_keyed_rotated_log_change_nothing(
    day: tuple[Path, Path], tmp_path: Path
):
    # GIVEN the same traffic and verdicts as `day`, in a keyed, rotated log that also holds a
    # golden item's showing judged wrong, and appeals confirmed
    policies = builders.policies_dir(
        tmp_path, t=TENANT.replace("rejected: 1.0}", "rejected: 1.0}, golden_rate: 1.0")
    )
    log = busy_log(tmp_path, policies, STEP_TRAFFIC)
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    args = ("t", str(log), "--policies", str(policies), *rates(), "--json")
    code, out, err = invoke(*args, "--key-file", str(key_file))
    assert code == 0, err
    busy = json.loads(out)
    plain = json.loads(invoke("t", str(day[1]), "--policies", str(day[0]), *rates(), "--json")[1])
    # THEN the evidence, the proposal and the labelled flips are those of the plain log
    assert busy["rules"] == plain["rules"]
    assert busy["backtest"]["labelled_flips"] == plain["backtest"]["labelled_flips"]
    # AND under another key no review record verifies: no label, nothing to learn
    key_file.write_text("another key")
    code, _, err = invoke(*args, "--key-file", str(key_file))
    assert code == 1 and "no labels for tenant 't'" in err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["nobody", "LOG", "--policies", "DIR", *rates()], 1, "nobody"),
        (["t", "LOG", "--policies", "DIR", "--max-false-approve", "1.5",
          "--max-false-reject", "0.05"], 2, "--max-false-approve"),
        (["t", "LOG", "--policies", "DIR", "--max-false-approve", "0.05"], 2,
         "--max-false-reject"),
        (["t", "LOG", "--policies", "DIR", *rates("1")], 2, "--confidence"),
        (["t", "missing.jsonl", "--policies", "DIR", *rates()], 3, "missing.jsonl"),
        (["t", "LOG", *rates()], 2, "--policies"),
    ],
)  # fmt: skip
def test_errors(
    day: tuple[Path, Path],
    args: list[str],
    code: int,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
):
    monkeypatch.delenv("MODERATION_POLICIES", raising=False)
    monkeypatch.chdir(tmp_path)
    policies, log = day
    swap = {"LOG": str(log), "DIR": str(policies)}
    got, out, err = invoke(*[swap.get(arg, arg) for arg in args])
    assert got == code, out + err
    assert message in err


def test_a_log_without_labels_is_an_error(tmp_path: Path):
    policies = builders.policies_dir(tmp_path, t="categories:\n  Violence: {reject: 90}\n")
    log = labelled_log(tmp_path, policies, [(50, False), (95, True)])  # no QA, nothing reviewed
    code, _, err = invoke("t", str(log), "--policies", str(policies), *rates())
    assert code == 1 and "no labels for tenant 't'" in err


def test_invalid_policies_exit_4_naming_the_file(day: tuple[Path, Path], tmp_path: Path):
    _, log = day
    broken = builders.policies_dir(tmp_path, t="categories:\n  Violence: {reject: 200}\n")
    code, _, err = invoke("t", str(log), "--policies", str(broken), *rates())
    assert code == 4 and "tenants/t.yaml" in err


def test_nothing_is_written_when_nothing_changes(tmp_path: Path):
    # GIVEN too few labels, and QA sampling of rejections off
    tenant = TENANT.replace("rejected: 1.0", "rejected: 0")
    policies = builders.policies_dir(tmp_path, t=tenant)
    log = labelled_log(tmp_path, policies, [(45 + i, False) for i in range(8)])
    target = tmp_path / "t-next.yaml"
    code, out, err = invoke(
        "t", str(log), "--policies", str(policies), *rates("0.95"), "--write", str(target)
    )
    # THEN nothing is written, and the report says what is missing
    assert code == 0 and not target.exists()
    assert f"nothing written to {target}: no change is proposed" in err
    assert "Violence: insufficient" in out and "No change proposed" in out
    assert "QA sampling of rejections is off: set review.qa_sample.rejected" in out


def test_rules_that_decided_nothing_are_named_on_one_line(tmp_path: Path):
    tenant = TENANT.replace("categories:\n", "categories:\n  Drugs & Tobacco: {escalate: 80}\n")
    policies = builders.policies_dir(tmp_path, t=tenant)
    log = labelled_log(tmp_path, policies, [(45 + i, False) for i in range(8)])
    code, out, err = invoke("t", str(log), "--policies", str(policies), *rates())
    assert code == 0, err
    # THEN Violence, which decided images, has its evidence; Drugs & Tobacco only its name
    assert "Violence: insufficient" in out and "Drugs & Tobacco: insufficient" not in out
    assert "so nothing can be learnt of them; left as they are: Drugs & Tobacco\n" in out
    # AND the JSON still has every rule's evidence
    data = json.loads(invoke("t", str(log), "--policies", str(policies), *rates(), "--json")[1])
    assert [rule["rule"] for rule in data["rules"]] == ["Drugs & Tobacco", "Violence"]
