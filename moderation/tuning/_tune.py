"""`tune`: thresholds proposed from reviewers' verdicts, with their evidence, the edit of the
tenant's policy file, a shadow candidate and a backtest. Reads the logs and the policy directory;
writes nothing but a temporary copy of the proposed file (for the backtest). docs/tuning.md."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from moderation.audit import decisions as read_decisions
from moderation.audit._read import Paths
from moderation.decision import Decision, Outcome
from moderation.errors import PolicyError, TuningError
from moderation.policy import DEFAULT_POLICY, Policy, PolicyStore
from moderation.replay import ReplayReport, replay
from moderation.review import Label
from moderation.review import labels as read_labels
from moderation.tuning._edit import diff, edit, shadow_file
from moderation.tuning._rule import RuleProposal, Targets, plain, propose_rule
from moderation.tuning._sample import collect, sampling_rate

__all__ = ["Backtest", "Proposal", "tune"]


@dataclass(frozen=True, slots=True)
class Backtest:
    """The proposed policy replayed over the same log (`report`: before is the recorded outcome),
    and its flips among labelled decisions: to the person's verdict (`right`), away from it
    (`wrong`), or to review (`to_review`)."""

    report: ReplayReport
    right: int
    wrong: int
    to_review: int


@dataclass(frozen=True, slots=True)
class Proposal:
    """What `tune` proposes for one tenant: each rule's evidence and thresholds, the edited policy
    file and its diff, the shadow candidate's text, and the backtest (None when nothing changes)."""

    tenant: str
    policy_file: str
    confidence: float
    max_false_approve: float
    max_false_reject: float
    approve_rate: float
    reject_rate: float
    decisions: int
    labels: int
    rules: tuple[RuleProposal, ...]
    text_before: str
    text_after: str
    diff: str
    shadow_text: str | None
    backtest: Backtest | None

    @property
    def changed(self) -> tuple[RuleProposal, ...]:
        """The rules whose thresholds change."""
        return tuple(rule for rule in self.rules if rule.status == "changed")


def _check_rate(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise TuningError(f"{name} must be a number between 0 and 1 (exclusive), got {value!r}")


def _policy_file(store: PolicyStore, tenant: str) -> Path:
    if store.path is None:
        raise TuningError("tune needs a policy directory (it edits a copy of the tenant's file)")
    if tenant == DEFAULT_POLICY:
        return store.path / "default.yaml"
    for suffix in (".yaml", ".yml"):
        path = store.path / "tenants" / f"{tenant}{suffix}"
        if path.is_file():
            return path
    raise TuningError(f"tenant {tenant!r} has no policy file under {store.path / 'tenants'}")


def _tunable(policy: Policy) -> list[str]:
    return [
        name
        for name, rule in policy.categories.items()
        if not rule.thresholds.allow and plain(rule.thresholds)
    ]


def tune(
    paths: Paths,
    policies: str | Path,
    tenant: str,
    *,
    max_false_approve: float,
    max_false_reject: float,
    confidence: float = 0.95,
    key: str | bytes | None = None,
) -> Proposal:
    """Propose `tenant`'s category thresholds from the labels in the audit logs `paths`: with
    probability at least `confidence`, for each rule changed, the false-approve rate among the
    images it approves automatically is at most `max_false_approve` and the false-reject rate
    among those it rejects automatically at most `max_false_reject`. docs/tuning.md says how.
    Raises TuningError (bad rates, no labels, no policy file), UnknownTenant, PolicyError."""
    _check_rate("--max-false-approve", max_false_approve)
    _check_rate("--max-false-reject", max_false_reject)
    _check_rate("--confidence", confidence)
    store = PolicyStore(policies)
    policy = store.get(tenant)
    source = _policy_file(store, tenant)
    labelled = [label for label in read_labels(paths, key=key) if label.decision.tenant == tenant]
    if not labelled:
        raise TuningError(f"no labels for tenant {tenant!r} in {_names(paths)}: nothing to learn")
    decided = [d for d in read_decisions(paths) if d.tenant == tenant]
    qa = policy.review_rules.qa_sample
    targets = Targets(
        max_false_approve=max_false_approve,
        max_false_reject=max_false_reject,
        # Two statements (approve side and reject side) hold together at `confidence`.
        side_confidence=1 - (1 - confidence) / 2,
        approve_rate=sampling_rate(labelled, Outcome.APPROVED, qa.approved),
        reject_rate=sampling_rate(labelled, Outcome.REJECTED, qa.rejected),
        floor=policy.min_confidence,
    )
    by_id = {label.decision.id: label for label in labelled}
    names = _tunable(policy)
    traffic = collect(decided, by_id, policy, tenant, names)
    rules = tuple(
        propose_rule(traffic[name], policy.categories[name].thresholds, targets) for name in names
    )
    return _proposal(
        store, policy, source, tenant, rules, targets, decided, by_id, confidence, len(labelled)
    )


def _names(paths: Paths) -> str:
    if isinstance(paths, str | os.PathLike):
        return str(paths)
    return ", ".join(str(p) for p in paths)


def _proposal(
    store: PolicyStore,
    policy: Policy,
    source: Path,
    tenant: str,
    rules: tuple[RuleProposal, ...],
    targets: Targets,
    decided: Sequence[Decision],
    by_id: dict[str, Label],
    confidence: float,
    n_labels: int,
) -> Proposal:
    before = source.read_text(encoding="utf-8")
    changes = {rule.rule: rule.changes for rule in rules if rule.status == "changed"}
    full = {rule.rule: rule.after for rule in rules}
    after = edit(before, changes, full) if changes else before
    backtest = None
    if changes:
        backtest = _backtest(store, source, tenant, after, rules, decided, by_id)
    assert store.path is not None
    note = (
        f"Thresholds proposed by `moderation tune` for tenant {tenant} "
        f"(confidence {confidence:g},\nfalse approvals <= {targets.max_false_approve:g}, "
        f"false rejections <= "
        f"{targets.max_false_reject:g}). To run it beside the live policy, save this file as\n"
        f"tenants/<name>.yaml and add `shadow: [<name>]` to {source.relative_to(store.path)}."
    )
    return Proposal(
        tenant=tenant,
        policy_file=str(source),
        confidence=confidence,
        max_false_approve=targets.max_false_approve,
        max_false_reject=targets.max_false_reject,
        approve_rate=targets.approve_rate,
        reject_rate=targets.reject_rate,
        decisions=len(decided),
        labels=n_labels,
        rules=rules,
        text_before=before,
        text_after=after,
        diff=diff(before, after, str(source.relative_to(store.path))),
        shadow_text=shadow_file(tenant, changes, note) if changes else None,
        backtest=backtest,
    )


def _backtest(
    store: PolicyStore,
    source: Path,
    tenant: str,
    text: str,
    rules: tuple[RuleProposal, ...],
    decided: Sequence[Decision],
    by_id: dict[str, Label],
) -> Backtest:
    """Replay `decided` under the store with the edited file in place of the tenant's, after
    checking that the edit resolves to exactly the proposed thresholds."""
    assert store.path is not None
    with tempfile.TemporaryDirectory(prefix="moderation-tune-") as tmp:
        draft = Path(tmp) / source.name
        draft.write_text(text, encoding="utf-8")
        try:
            proposed = PolicyStore(store.path, drafts=[draft])
        except PolicyError as exc:
            raise TuningError(f"the edited {source.name} does not load: {exc}") from exc
    policy = proposed.get(tenant)
    for rule in rules:
        if plain(policy.categories[rule.rule].thresholds) != rule.after:
            raise TuningError(
                f"editing {source.name} did not give rule {rule.rule!r} the proposed thresholds; "
                "edit the file by hand from the evidence"
            )
    report = replay(decided, proposed, tenant=tenant)
    right = wrong = to_review = 0
    for flip in report.flips:
        label = by_id.get(flip.decision_id)
        if label is None:
            continue
        if flip.after is Outcome.REVIEW:
            to_review += 1
        elif flip.after is label.outcome:
            right += 1
        else:
            wrong += 1
    return Backtest(report, right, wrong, to_review)
