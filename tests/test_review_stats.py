"""`moderation review stats`: what reviewers decided, per tenant and rule, read back from real logs
(the engine, a SQLite desk and its audit record sink) and checked count by count against the
verdicts given, the intervals against moderation.stats."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import builders
from clirunner import runner

from moderation import Decision
from moderation.audit import JsonlAuditLog
from moderation.cli import main
from moderation.decision import Escalation, Outcome, Verdict, VerdictKind
from moderation.review import (
    AuditRecordSink,
    Label,
    LabelKind,
    Reviewer,
    Role,
    SQLiteReviewDesk,
    Waiting,
    queue_stats,
    review_stats,
)
from moderation.review._stats import NO_BAND, error_rate, nearest_rank
from moderation.stats import clopper_pearson, cohen_kappa

DEFAULT = "min_confidence: 40\ndefault: {reject: 90, escalate: 60}\nescalation: {judge: none}\n"
SAMPLED = "review: {qa_sample: {approved: 1.0, rejected: 1.0}}\n"  # every automatic outcome
PAIRED = "review: {reviewers: 2}\n"
CLEAN = builders.detection()
BORDERLINE = builders.detection(("Explicit Nudity", "Explicit", 70.0), ("Explicit", "", 70.0))
EXPLICIT = builders.detection(("Explicit Nudity", "Explicit", 95.0), ("Explicit", "", 95.0))
ALICE, BOB = Reviewer("alice", "*"), Reviewer("bob", "*")
CAROL = Reviewer("carol", "*", Role.SENIOR)
DAVE, ERIN = Reviewer("dave", "*"), Reviewer("erin", "*")
KEY = "a key of the stats tests"


class Detector:
    def __init__(self, result: object) -> None:
        self.result = result

    def detect(self, image: object, *, min_confidence: float) -> object:
        return self.result


def stats(*args: str, env: dict[str, str | None] | None = None) -> Any:
    base: dict[str, str | None] = {"MODERATION_REVIEW": None, "MODERATION_AUDIT_KEY": None}
    return runner().invoke(main, ["review", "stats", *args], env={**base, **(env or {})})


def as_json(*args: str, env: dict[str, str | None] | None = None) -> dict[str, Any]:
    result = stats(*args, "--json", env=env)
    assert result.exit_code == 0, result.stdout + result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


@dataclass
class Built:
    log: Path
    desk_url: str
    ids: dict[str, str]  # what each decision is -> its id


def decide_all(desk: SQLiteReviewDesk, reviewer: Reviewer, verdicts: dict[str, str]) -> None:
    """`reviewer` gives each item the verdict `verdicts` names for its decision id."""
    while (item := desk.next(reviewer)) is not None:
        desk.decide(item.id, verdicts[item.decision_id], reviewer=reviewer)


def build(tmp_path: Path, **log_options: Any) -> Built:
    """A log of tenant kids (every automatic outcome QA-sampled): three approvals (alice rejects
    one), two rejections (she approves one), two review decisions (she rejects one, approves
    one) and one nobody decided (bob skips it); tenant default: an automatic rejection, not
    sampled, appealed, and bob approves it."""
    log = JsonlAuditLog(tmp_path / "audit.jsonl", **log_options)
    store = builders.store(DEFAULT, kids=SAMPLED)
    numbers = iter(range(100))
    ids: dict[str, str] = {}
    with SQLiteReviewDesk(tmp_path / "desk.db", sink=AuditRecordSink(log)) as desk:

        def moderate(name: str, result: object, tenant: str = "kids") -> Decision:
            engine = builders.engine(
                store, Detector(result), audit=log, review=desk,
                new_id=lambda: f"01JDSTATS{next(numbers):017d}",
            )  # fmt: skip
            decision = engine.moderate(builders.IMAGE, tenant=tenant)
            ids[name] = decision.id
            return decision

        for name, result in [
            ("ok1", CLEAN), ("ok2", CLEAN), ("bad-ok", CLEAN), ("no1", EXPLICIT),
            ("fine-no", EXPLICIT), ("rev-no", BORDERLINE), ("rev-ok", BORDERLINE),
        ]:  # fmt: skip
            moderate(name, result)
        wrong = {"bad-ok": "reject", "fine-no": "approve", "no1": "reject", "rev-no": "reject"}
        decide_all(desk, ALICE, {ids[n]: wrong.get(n, "approve") for n in ids})
        moderate("open", BORDERLINE)
        item = desk.next(BOB)
        assert item is not None and item.decision_id == ids["open"]
        desk.release(item.id, reviewer=BOB)
        desk.appeal(moderate("appealed", EXPLICIT, tenant="default"), "a statue", by="user-1")
        item = desk.next(BOB)
        assert item is not None and item.decision_id == ids["appealed"]
        desk.decide(item.id, "approve", reviewer=BOB)
    return Built(log.path, f"sqlite:///{tmp_path / 'desk.db'}", ids)


def interval_of(k: int, n: int) -> dict[str, Any]:
    interval = clopper_pearson(k, n)
    return {"k": k, "n": n, "rate": interval.rate, "low": interval.low, "high": interval.high}


def rate_of(k: int, n: int) -> dict[str, Any]:
    if n == 0:
        return {
            "k": 0, "n": 0, "estimate": None, "low": 0.0, "high": 1.0,
            "method": "clopper-pearson", "strata": [],
        }  # fmt: skip
    one = interval_of(k, n)
    return {
        "k": k, "n": n, "estimate": one["rate"], "low": one["low"], "high": one["high"],
        "method": "clopper-pearson", "strata": [{"qa_rate": 1.0, **one}],
    }  # fmt: skip


def by_category(tenant: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["category"]: c for c in tenant["categories"]}


# -- counts and rates from a real log --------------------------------------------------------------


def test_counts_and_error_rates_come_from_the_qa_labels_only(tmp_path: Path):
    built = build(tmp_path)
    # WHEN the statistics of the log are read as JSON
    found = as_json(str(built.log))
    default, kids = found["tenants"]
    assert (default["tenant"], kids["tenant"]) == ("default", "kids")
    # THEN per rule: the approvals have no band; the rejections and reviews were the default rule's
    no_band, rule = by_category(kids)[NO_BAND], by_category(kids)["default"]
    assert list(by_category(kids)) == [NO_BAND, "default"]
    assert (no_band["decisions"], no_band["labels"]) == (3, {"qa": 3, "review": 0, "appeal": 0})
    assert (rule["decisions"], rule["labels"]) == (5, {"qa": 2, "review": 2, "appeal": 0})
    # AND the false-approve rate is the QA approvals a person rejected: 1 of 3, exact interval
    assert no_band["false_approve"] == rate_of(1, 3)
    assert no_band["false_reject"] == rate_of(0, 0)
    # AND the false-reject rate the QA rejections a person approved: 1 of 2 (reviews stay out)
    assert rule["false_reject"] == rate_of(1, 2)
    assert rule["false_approve"] == rate_of(0, 0)
    total = kids["total"]
    assert (total["decisions"], total["labels"]) == (8, {"qa": 5, "review": 2, "appeal": 0})
    assert (total["false_approve"], total["false_reject"]) == (rate_of(1, 3), rate_of(1, 2))
    # AND an appeal is a label but never part of an error rate
    appealed = default["total"]
    assert (appealed["decisions"], appealed["labels"]) == (1, {"qa": 0, "review": 0, "appeal": 1})
    assert appealed["false_reject"] == rate_of(0, 0)
    # AND each reviewer's verdicts and skips are counted per tenant
    assert kids["reviewers"] == [
        {"reviewer": "alice", "verdicts": 7, "skips": 0, "golden": None},
        {"reviewer": "bob", "verdicts": 0, "skips": 1, "golden": None},
    ]
    assert default["reviewers"] == [{"reviewer": "bob", "verdicts": 1, "skips": 0, "golden": None}]
    # AND with one reviewer per item there are no pairs; the desk was not read
    assert kids["reviewer_agreement"] == {"pairs": 0, "kappa": None}
    assert found["desk"]["read"] is False and "MODERATION_REVIEW" in found["desk"]["why"]


def test_the_json_object_has_the_documented_shape(tmp_path: Path):
    built = build(tmp_path)
    found = as_json(str(built.log))
    assert list(found) == ["logs", "tenant", "confidence", "ignored_records", "tenants", "desk"]
    assert (found["logs"], found["tenant"], found["confidence"]) == ([str(built.log)], None, 0.95)
    assert found["ignored_records"] == 0
    tenant = found["tenants"][1]
    assert list(tenant) == [
        "tenant", "categories", "total", "judge", "reviewer_agreement", "reviewers",
    ]  # fmt: skip
    assert list(tenant["total"]) == [
        "category", "decisions", "labels", "false_approve", "false_reject",
    ]  # fmt: skip
    assert tenant["total"]["category"] == "(all)"
    assert tenant["judge"] == {
        "cases": 0,
        "precision": interval_of(0, 0),
        "recall": interval_of(0, 0),
    }
    # AND the documentation shows every key
    doc = (builders.ROOT / "docs" / "tuning.md").read_text()
    for key in [*found, *tenant, *tenant["total"], *tenant["total"]["false_approve"]]:
        assert f'"{key}"' in doc, key


def test_tenant_restricts_everything_to_one_tenant(tmp_path: Path):
    built = build(tmp_path)
    found = as_json(str(built.log), "--tenant", "default")
    assert found["tenant"] == "default"
    assert [t["tenant"] for t in found["tenants"]] == ["default"]
    assert found["tenants"][0]["total"]["decisions"] == 1
    assert as_json(str(built.log), "--tenant", "nobody")["tenants"] == []


def test_the_tables_for_people_show_the_rates_and_reviewers(tmp_path: Path):
    built = build(tmp_path)
    result = stats(str(built.log), "--tenant", "kids")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    one_in_three = clopper_pearson(1, 3)
    expected = f"1/3 33.3% [{100 * one_in_three.low:.1f}%, {100 * one_in_three.high:.1f}%]"
    (no_band,) = [line for line in lines if line.strip().startswith(NO_BAND)]
    assert no_band.split()[2:6] == ["3", "3", "0", "0"] and expected in no_band
    assert "  reviewer alice: 7 verdicts, 0 skips" in lines
    assert "  reviewer bob: 0 verdicts, 1 skips" in lines
    assert "  reviewer agreement: 0 pairs, Cohen's kappa n/a" in lines
    assert lines[-1].startswith("desk: not read")


def test_a_log_no_person_labelled_has_counts_and_no_rates(tmp_path: Path):
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    engine = builders.engine(builders.store(DEFAULT), Detector(CLEAN), audit=log, real=("new_id",))
    for _ in range(3):
        engine.moderate(builders.IMAGE)
    (tenant,) = as_json(str(log.path))["tenants"]
    assert (tenant["total"]["decisions"], tenant["total"]["labels"]) == (
        3, {"qa": 0, "review": 0, "appeal": 0},
    )  # fmt: skip
    assert tenant["total"]["false_approve"] == rate_of(0, 0)
    assert (tenant["reviewers"], tenant["judge"]["cases"]) == ([], 0)
    result = stats(str(log.path))
    (total,) = [line for line in result.stdout.splitlines() if line.strip().startswith("(all)")]
    assert result.exit_code == 0 and total.split() == ["(all)", "3", "0", "0", "0", "-", "-"]


def test_several_logs_are_read_together(tmp_path: Path):
    built = build(tmp_path)
    other = JsonlAuditLog(tmp_path / "other.jsonl")
    engine = builders.engine(
        builders.store(DEFAULT), Detector(EXPLICIT), audit=other, real=("new_id",)
    )
    for _ in range(2):
        engine.moderate(builders.IMAGE)
    default, kids = as_json(str(built.log), str(other.path))["tenants"]
    assert (default["total"]["decisions"], kids["total"]["decisions"]) == (3, 8)
    assert by_category(default)["default"]["labels"] == {"qa": 0, "review": 0, "appeal": 1}


# -- keyed and rotated logs ------------------------------------------------------------------------


def test_a_keyed_rotated_log_reads_the_same_with_its_key(tmp_path: Path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "keyed").mkdir()
    plain = as_json(str(build(tmp_path / "plain").log))
    keyed = build(tmp_path / "keyed", key=KEY, rotate_bytes=4000)
    assert len(list(keyed.log.parent.glob("audit.jsonl.*"))) >= 2  # rotated more than once
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    from_env = as_json(str(keyed.log), env={"MODERATION_AUDIT_KEY": KEY})
    from_file = as_json(str(keyed.log), "--key-file", str(key_file))
    for found in (from_env, from_file):
        assert found["tenants"] == plain["tenants"]
        assert found["ignored_records"] == 0


def test_records_that_do_not_verify_are_left_out_and_exit_1(tmp_path: Path):
    keyed = build(tmp_path, key=KEY)
    result = stats(str(keyed.log), "--json", env={"MODERATION_AUDIT_KEY": "another key"})
    assert result.exit_code == 1
    assert "did not verify under the key and were left out" in result.stderr
    found = json.loads(result.stdout)
    assert found["tenants"] == [] and found["ignored_records"] > 0


def test_a_forged_verdict_is_no_label(tmp_path: Path):
    keyed = build(tmp_path, key=KEY)
    # GIVEN someone turned alice's rejection of an approval into an approval, in place
    lines = keyed.log.read_bytes().splitlines(keepends=True)
    (at,) = [
        i for i, line in enumerate(lines)
        if keyed.ids["bad-ok"].encode() in line and b'"verdict":"reject"' in line
    ]  # fmt: skip
    lines[at] = lines[at].replace(b'"verdict":"reject"', b'"verdict":"approve"')
    keyed.log.write_bytes(b"".join(lines))
    # WHEN the statistics are read with the key
    result = stats(str(keyed.log), "--json", "--tenant", "kids", env={"MODERATION_AUDIT_KEY": KEY})
    # THEN the forged record (and the chain after it, which no longer links) is left out with a
    # warning: the forged approval settles nothing, so no 0-in-3 false-approve rate appears
    assert result.exit_code == 1, result.stderr
    found = json.loads(result.stdout)
    assert found["ignored_records"] > 0
    assert f"{found['ignored_records']} records did not verify" in result.stderr
    no_band = by_category(found["tenants"][0])[NO_BAND]
    assert no_band["decisions"] == 3 and no_band["false_approve"]["n"] < 3


def test_bad_input_is_named_and_exits_non_zero(tmp_path: Path):
    missing = stats(str(tmp_path / "nowhere.jsonl"))
    assert missing.exit_code == 1 and "nowhere.jsonl" in missing.stderr
    built = build(tmp_path)
    empty = tmp_path / "empty-key"
    empty.write_text("")
    bad_key = stats(str(built.log), "--key-file", str(empty))
    assert bad_key.exit_code == 2 and "is empty" in bad_key.stderr
    blank = stats(str(built.log), env={"MODERATION_AUDIT_KEY": " "})
    assert blank.exit_code == 2 and "MODERATION_AUDIT_KEY is set but empty" in blank.stderr
    no_logs = stats()
    assert no_logs.exit_code == 2 and "LOGS" in no_logs.stderr
    bad_desk = stats(str(built.log), "--desk", "ftp://desk")
    assert bad_desk.exit_code == 2 and "--desk" in bad_desk.stderr


# -- golden items ---------------------------------------------------------------------------------


def test_golden_verdicts_measure_reviewers_and_are_no_labels_nor_pairs(tmp_path: Path):
    # GIVEN a keyed, rotating log of tenant kids, whose every new item brings a golden showing
    log = JsonlAuditLog(tmp_path / "audit.jsonl", key=KEY, rotate_bytes=3000)
    policy = "review: {qa_sample: {rejected: 1.0}, golden_rate: 1.0, reviewers: 2}\n"
    store = builders.store(DEFAULT, kids=policy)
    numbers = iter(range(100))
    with SQLiteReviewDesk(tmp_path / "desk.db", sink=AuditRecordSink(log)) as desk:
        engine = builders.engine(
            store, Detector(EXPLICIT), audit=log, review=desk,
            new_id=lambda: f"01JDGOLDS{next(numbers):017d}",
        )  # fmt: skip
        # AND an automatic rejection, QA-sampled: alice and bob agree with it, and it is made a
        # golden item with the answer reject
        golden = engine.moderate(builders.IMAGE, tenant="kids")
        decide_all(desk, ALICE, {golden.id: "reject"})
        decide_all(desk, BOB, {golden.id: "reject"})
        desk.add_golden(golden, "reject")
        # WHEN two more decisions come in, each bringing a showing of the golden item, which
        # only dave and erin may judge (alice and bob judged the decision itself)
        engine.detector = Detector(BORDERLINE)  # type: ignore[attr-defined]
        reviewed = [engine.moderate(builders.IMAGE, tenant="kids").id for _ in range(2)]
        verdicts = {reviewed[0]: "reject", reviewed[1]: "approve"}
        decide_all(desk, ALICE, verdicts)
        decide_all(desk, BOB, verdicts)
        decide_all(desk, DAVE, {golden.id: "approve"})  # wrong
        decide_all(desk, ERIN, {golden.id: "reject"})  # right
    assert len(list(tmp_path.glob("audit.jsonl.*"))) >= 1  # rotated
    found = as_json(str(log.path), env={"MODERATION_AUDIT_KEY": KEY})
    (kids,) = found["tenants"]
    # THEN the labels are the QA sample and the two reviews; no showing is one
    assert kids["total"]["labels"] == {"qa": 1, "review": 2, "appeal": 0}
    # AND the pairs are the three rounds alice and bob judged; dave and erin's golden verdicts,
    # on the same golden decision, pair with nothing
    assert kids["reviewer_agreement"]["pairs"] == 3
    reviewers = {r["reviewer"]: r for r in kids["reviewers"]}
    assert {name: r["verdicts"] for name, r in reviewers.items()} == {
        "alice": 3, "bob": 3, "dave": 0, "erin": 0,
    }  # fmt: skip
    # AND each golden verdict is measured against the answer, with its exact interval
    assert reviewers["dave"]["golden"] == {"skipped": 0, **interval_of(0, 1)}
    assert reviewers["erin"]["golden"] == {"skipped": 0, **interval_of(1, 1)}
    assert reviewers["alice"]["golden"] is None
    # AND the tables say it per reviewer
    text = stats(str(log.path), env={"MODERATION_AUDIT_KEY": KEY}).stdout
    assert "  reviewer dave: 0 verdicts, 0 skips; golden items 0/1 0.0% [" in text


# -- agreement between reviewers, and the judge ----------------------------------------------------


def test_kappa_pairs_the_first_two_reviewers_of_each_round(tmp_path: Path):
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    numbers = iter(range(100))
    ids: list[str] = []
    with SQLiteReviewDesk(tmp_path / "desk.db", sink=AuditRecordSink(log)) as desk:
        engine = builders.engine(
            builders.store(DEFAULT, pairs=PAIRED), Detector(BORDERLINE), audit=log, review=desk,
            new_id=lambda: f"01JDPAIRS{next(numbers):017d}",
        )  # fmt: skip
        ids = [engine.moderate(builders.IMAGE, tenant="pairs").id for _ in range(5)]
        first = dict(zip(ids, ["reject", "reject", "approve", "approve", "reject"], strict=True))
        second = dict(zip(ids, ["reject", "approve", "approve", "approve", "approve"], strict=True))
        decide_all(desk, ALICE, first)
        decide_all(desk, BOB, second)
        # AND carol settles the two disagreements: a third verdict, not a pair
        decide_all(desk, CAROL, dict.fromkeys(ids, "reject"))
        # AND an appeal opens a new round (for other reviewers) in which two disagree again
        desk.appeal(ids[2], "look again", by="user-1")
        decide_all(desk, DAVE, {ids[2]: "reject"})
        decide_all(desk, ERIN, {ids[2]: "approve"})
    (tenant,) = as_json(str(log.path))["tenants"]
    pairs = [(first[i], second[i]) for i in ids] + [("reject", "approve")]
    expected = cohen_kappa(pairs)
    assert expected is not None and 0 < expected < 1
    assert tenant["reviewer_agreement"] == {"pairs": 6, "kappa": expected}
    assert {r["reviewer"]: r["verdicts"] for r in tenant["reviewers"]} == {
        "alice": 5, "bob": 5, "carol": 2, "dave": 1, "erin": 1,
    }  # fmt: skip


def labelled(decision: Decision, outcome: Outcome, kind: LabelKind, **fields: Any) -> Label:
    return Label(
        decision=decision.model_copy(update=fields),
        outcome=outcome,
        kind=kind,
        qa_rate=1.0 if kind is LabelKind.QA else None,
        reviewer="alice",
        at=builders.NOW,
    )


def judged(verdict: VerdictKind | None) -> Escalation:
    return Escalation(
        judge="bedrock", verdict=None if verdict is None else Verdict(verdict=verdict)
    )


def test_judge_precision_and_recall_of_its_rejections():
    decision = builders.engine(builders.store(), Detector(BORDERLINE)).moderate(builders.IMAGE)
    reject, approve, unsure = VerdictKind.REJECT, VerdictKind.APPROVE, VerdictKind.UNSURE
    rejected, approved = Outcome.REJECTED, Outcome.APPROVED
    review, qa, appeal = LabelKind.REVIEW, LabelKind.QA, LabelKind.APPEAL
    cases = [
        (reject, rejected, review), (reject, rejected, qa), (reject, approved, review),
        (approve, rejected, review), (unsure, rejected, review), (approve, approved, qa),
        (reject, approved, appeal),  # an appeal: never counted
        (None, rejected, review),  # the judge failed: no verdict to count
    ]  # fmt: skip
    labels = [
        labelled(decision, outcome, kind, escalation=judged(verdict))
        for verdict, outcome, kind in cases
    ]
    labels.append(labelled(decision, rejected, review))  # never escalated
    (tenant,) = review_stats([decision], labels).tenants
    # THEN 6 cases; the judge rejected 3, 2 of which people rejected; people rejected 4
    assert tenant.judge.cases == 6
    assert tenant.judge.precision == clopper_pearson(2, 3)
    assert tenant.judge.recall == clopper_pearson(2, 4)


# -- strata of different sampling rates ------------------------------------------------------------


def test_strata_of_different_rates_are_weighed_by_their_traffic():
    decision = builders.engine(builders.store(), Detector(CLEAN)).moderate(builders.IMAGE)
    ok, bad = Outcome.APPROVED, Outcome.REJECTED

    def qa(outcome: Outcome, rate: float) -> Label:
        return Label(decision, outcome, LabelKind.QA, rate, "alice", builders.NOW)

    # GIVEN 4 approvals sampled at rate 1 (1 wrong) and 2 at rate 0.25 (both right)
    labels = [qa(bad, 1.0), qa(ok, 1.0), qa(ok, 1.0), qa(ok, 1.0), qa(ok, 0.25), qa(ok, 0.25)]
    rate = error_rate(labels)
    # THEN each stratum is reported with its own exact interval
    assert [(s.qa_rate, s.interval) for s in rate.strata] == [
        (0.25, clopper_pearson(0, 2)), (1.0, clopper_pearson(1, 4)),
    ]  # fmt: skip
    # AND the estimate weighs them by n/rate: 8 decisions stood behind the 0.25 stratum, 4 behind
    # the other; the interval sums the strata's exact bounds at Bonferroni-split confidence
    low_w, high_w = clopper_pearson(0, 2, 0.975), clopper_pearson(1, 4, 0.975)
    assert rate.estimate == 4 / 12 * 0.25
    assert rate.low == 8 / 12 * low_w.low + 4 / 12 * high_w.low
    assert rate.high == 8 / 12 * low_w.high + 4 / 12 * high_w.high
    assert (rate.k, rate.n, rate.method) == (1, 6, "weighted-bonferroni")
    # AND one stratum alone is its own proportion and exact interval
    alone, exact = error_rate(labels[:4]), clopper_pearson(1, 4)
    assert (alone.estimate, alone.low, alone.high) == (0.25, exact.low, exact.high)


def test_a_stratum_without_a_rate_gives_no_combined_estimate():
    decision = builders.engine(builders.store(), Detector(CLEAN)).moderate(builders.IMAGE)
    labels = [
        Label(decision, Outcome.APPROVED, LabelKind.QA, rate, "alice", builders.NOW)
        for rate in (1.0, None)
    ]
    rate = error_rate(labels)
    assert (rate.estimate, rate.low, rate.high, rate.method) == (None, 0.0, 1.0, "none")
    assert [s.qa_rate for s in rate.strata] == [1.0, None]


def test_a_policy_change_of_the_rate_shows_both_strata(tmp_path: Path):
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    numbers = iter(range(1000))
    with SQLiteReviewDesk(tmp_path / "desk.db", sink=AuditRecordSink(log)) as desk:
        for rate, count in ((1.0, 3), (0.5, 12)):
            policy = f"review: {{qa_sample: {{approved: {rate}}}}}\n"
            engine = builders.engine(
                builders.store(DEFAULT, kids=policy), Detector(CLEAN), audit=log, review=desk,
                new_id=lambda: f"01JDRATES{next(numbers):017d}",
            )  # fmt: skip
            for _ in range(count):
                engine.moderate(builders.IMAGE, tenant="kids")
        decide_all(desk, ALICE, _Always("reject"))
    (tenant,) = as_json(str(log.path))["tenants"]
    rate = tenant["total"]["false_approve"]
    assert [s["qa_rate"] for s in rate["strata"]] == [0.5, 1.0]
    assert rate["strata"][1] == {"qa_rate": 1.0, **interval_of(3, 3)}
    assert rate["method"] == "weighted-bonferroni" and rate["estimate"] == 1.0
    result = stats(str(log.path))
    assert "sampling rates differ: weighted by n/rate" in result.stdout


class _Always(dict[str, str]):
    def __init__(self, verdict: str) -> None:
        super().__init__()
        self.verdict = verdict

    def __missing__(self, key: str) -> str:
        return self.verdict


# -- the desk --------------------------------------------------------------------------------------


def test_the_desk_lines_count_open_items_their_ages_and_breaches():
    now = builders.NOW
    hour = timedelta(hours=1)
    waiting = [
        Waiting("kids", now - n * hour, now - hour if n > 8 else None, leased=n == 1)
        for n in range(1, 11)
    ] + [Waiting("forum", now - hour, now + hour, leased=False)]
    forum, kids = queue_stats(waiting, now)
    assert (kids.tenant, kids.open, kids.leased, kids.breaches) == ("kids", 10, 1, 2)
    assert (kids.age_p50, kids.age_p95) == (5 * 3600.0, 10 * 3600.0)
    assert (forum.open, forum.breaches, forum.age_p50) == (1, 0, 3600.0)
    assert queue_stats(waiting, now, tenant="forum") == (forum,)
    assert nearest_rank([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert nearest_rank([1.0, 2.0, 3.0, 4.0], 95) == 4.0


def test_with_a_desk_its_queue_is_read(tmp_path: Path):
    log = JsonlAuditLog(tmp_path / "audit.jsonl")
    with SQLiteReviewDesk(tmp_path / "desk.db", sink=AuditRecordSink(log)) as desk:
        engine = builders.engine(
            builders.store(DEFAULT), Detector(BORDERLINE), audit=log, review=desk,
            real=("new_id", "now"),
        )  # fmt: skip
        for _ in range(2):
            engine.moderate(builders.IMAGE)
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    found = as_json(str(log.path), env={"MODERATION_REVIEW": url})
    assert found["desk"]["read"] is True
    (queue,) = found["desk"]["tenants"]
    assert (queue["tenant"], queue["open"], queue["leased"], queue["sla_breaches"]) == (
        "default", 2, 0, 0,
    )  # fmt: skip
    assert 0 <= queue["age_p50_seconds"] <= queue["age_p95_seconds"] < 600
    result = stats(str(log.path), "--desk", url)
    assert result.exit_code == 0 and "desk (undecided items):" in result.stdout
