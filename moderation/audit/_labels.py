"""What people decided about decisions, read back from audit logs: histories and labels.

A decision's review and appeal records follow it in the log, so a reader groups them by decision
id. `history` finds one decision's; `labels` every reviewed or appealed decision's, for whatever
learns from reviewers' verdicts. With `key=` (or `verified=True` for an unkeyed log) only records
that verify and link are read (`VerifiedRecords`): a forged verdict is not a label.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from moderation.audit._format import Entry
from moderation.audit._read import Paths, records
from moderation.audit._verify import VerifiedRecords
from moderation.decision import Decision
from moderation.review_records import AppealRecord, DecisionHistory, ReviewRecord

__all__ = ["golden_verdicts", "history", "history_of", "labels"]


def _entries(paths: Paths, *, key: str | bytes | None, verified: bool) -> Iterator[Entry]:
    if key is None and not verified:
        yield from records(paths)
        return
    for _, record in VerifiedRecords(paths, key=key):
        entry = record.entry
        if entry is not None:
            yield entry


def history(
    decision_id: str, paths: Paths, *, key: str | bytes | None = None, verified: bool = False
) -> DecisionHistory | None:
    """Decision `decision_id` (exactly) with its review and appeal records, in log order; None
    when the logs hold no such decision. Streams the logs once. With `key` (a keyed log's) or
    `verified=True`, only records that verify are read."""
    found: Decision | None = None
    people: list[ReviewRecord | AppealRecord] = []
    for entry in _entries(paths, key=key, verified=verified):
        if isinstance(entry, Decision):
            if entry.id == decision_id and found is None:
                found = entry
        elif entry.decision_id == decision_id:
            people.append(entry)
    return None if found is None else history_of(found, people)


def history_of(
    decision: Decision, people: Iterable[ReviewRecord | AppealRecord]
) -> DecisionHistory:
    """`decision` with those of the review and appeal records `people` that are about it, in
    their order: verdicts on its golden showings apart from the others."""
    reviews: list[ReviewRecord] = []
    golden: list[ReviewRecord] = []
    appeals: list[AppealRecord] = []
    for record in people:
        if record.decision_id != decision.id:
            continue
        if isinstance(record, ReviewRecord):
            (golden if record.golden else reviews).append(record)
        else:
            appeals.append(record)
    return DecisionHistory(decision, tuple(reviews), tuple(appeals), tuple(golden))


def labels(
    paths: Paths, *, key: str | bytes | None = None, verified: bool = False
) -> Iterator[DecisionHistory]:
    """Every decision of the named logs that a person reviewed or that was appealed, with its
    records (`.final` is the latest final verdict, `.outcome` the final outcome), in the order of
    the decisions. With `key` (a keyed log's) or `verified=True`, only records that verify are
    read. Reads the logs twice: first the review and appeal records (held in memory), then the
    decisions, streaming; records about a decision the logs do not hold are left out. Verdicts on
    a golden item's showings go to `DecisionHistory.golden`, never to `reviews`: a decision only
    shown as a golden item is not yielded."""
    if not isinstance(paths, str | os.PathLike):
        paths = list(paths)  # read twice
    reviews: dict[str, list[ReviewRecord]] = {}
    appeals: dict[str, list[AppealRecord]] = {}
    for entry in _entries(paths, key=key, verified=verified):
        if isinstance(entry, ReviewRecord) and not entry.golden:
            reviews.setdefault(entry.decision_id, []).append(entry)
        elif isinstance(entry, AppealRecord):
            appeals.setdefault(entry.decision_id, []).append(entry)
    for entry in _entries(paths, key=key, verified=verified):
        if isinstance(entry, Decision) and (entry.id in reviews or entry.id in appeals):
            yield DecisionHistory(
                entry,
                tuple(reviews.pop(entry.id, ())),
                tuple(appeals.pop(entry.id, ())),
            )


def golden_verdicts(
    paths: Paths, *, key: str | bytes | None = None, verified: bool = False
) -> Iterator[ReviewRecord]:
    """Every review record of a golden item's showing (a known answer, `golden_answer`), skips
    included, in log order: what measures reviewers. With `key` (a keyed log's) or
    `verified=True`, only records that verify are read."""
    for entry in _entries(paths, key=key, verified=verified):
        if isinstance(entry, ReviewRecord) and entry.golden:
            yield entry
