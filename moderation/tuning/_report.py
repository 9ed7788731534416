"""A proposal as the `--json` object and as the text report."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from moderation.tuning._ltt import SideResult
from moderation.tuning._rule import RuleProposal
from moderation.tuning._tune import Backtest, Proposal

__all__ = ["render", "to_json"]


def _side(side: SideResult | None) -> dict[str, Any] | None:
    return asdict(side) if side is not None else None


def _rule(rule: RuleProposal) -> dict[str, Any]:
    return {
        "rule": rule.rule,
        "status": rule.status,
        "before": rule.before,
        "after": rule.after,
        "images": rule.images,
        "labels": rule.labels,
        "left_out": rule.left_out,
        "review_share_before": rule.review_share_before,
        "review_share_after": rule.review_share_after,
        "approve": _side(rule.approve),
        "reject": _side(rule.reject),
        "notes": list(rule.notes),
    }


def _backtest(backtest: Backtest | None) -> dict[str, Any] | None:
    if backtest is None:
        return None
    return {
        "replay": backtest.report.to_json(),
        "labelled_flips": {
            "right": backtest.right,
            "wrong": backtest.wrong,
            "to_review": backtest.to_review,
        },
    }


def to_json(proposal: Proposal, written: str | None = None) -> dict[str, Any]:
    """The `--json` object: settings, every rule's evidence, the diff, the backtest, and the
    file written (None without --write)."""
    return {
        "tenant": proposal.tenant,
        "policy_file": proposal.policy_file,
        "confidence": proposal.confidence,
        "max_false_approve": proposal.max_false_approve,
        "max_false_reject": proposal.max_false_reject,
        "qa_rate": {"approved": proposal.approve_rate, "rejected": proposal.reject_rate},
        "decisions": proposal.decisions,
        "labels": proposal.labels,
        "rules": [_rule(rule) for rule in proposal.rules],
        "changed": [rule.rule for rule in proposal.changed],
        "diff": proposal.diff,
        "shadow_file": proposal.shadow_text,
        "backtest": _backtest(proposal.backtest),
        "written": written,
    }


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _thresholds(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in values.items()) or "-"


def _rule_lines(rule: RuleProposal) -> list[str]:
    labels = ", ".join(f"{k} {v}" for k, v in sorted(rule.labels.items())) or "none"
    out = [
        f"{rule.rule}: {rule.status}",
        f"  thresholds   {_thresholds(rule.before)} -> {_thresholds(rule.after)}",
        f"  images       {rule.images:,} decided by this rule alone (labels: {labels})",
        f"  to people    {_share(rule.review_share_before)} -> {_share(rule.review_share_after)}",
    ]
    for key, count in sorted(rule.left_out.items()):
        out.append(f"  left out     {count:,} images: {key}")
    for side in (rule.approve, rule.reject):
        if side is None:
            continue
        last = side.steps[-1]
        out.append(
            f"  {side.side:<7}      at {last.threshold:g}: {last.k}/{last.n} errors in the sample "
            f"(rate {side.rate:g}), bound {last.bound:.3f} vs {side.target:g} "
            f"at {side.confidence:.3g}"
        )
    out.extend(f"  - {note}" for note in rule.notes)
    return out


def _backtest_lines(backtest: Backtest) -> list[str]:
    report = backtest.report
    out = ["Backtest (the proposal replayed over the same log; before = recorded outcome):"]
    out.extend("  " + line if line else "" for line in report.render().splitlines())
    out.append(
        f"  flips among labelled decisions: {backtest.right} to the reviewer's verdict, "
        f"{backtest.wrong} against it, {backtest.to_review} to review"
    )
    return out


def render(proposal: Proposal, written: str | None = None) -> str:
    """The text report: settings, each rule's evidence, the diff and the backtest."""
    out = [
        f"tenant {proposal.tenant} ({proposal.policy_file}): {proposal.decisions:,} decisions, "
        f"{proposal.labels:,} labels",
        f"targets: false approvals <= {proposal.max_false_approve:g}, false rejections <= "
        f"{proposal.max_false_reject:g}, confidence {proposal.confidence:g} "
        f"(QA rates: approvals {proposal.approve_rate:g}, rejections {proposal.reject_rate:g})",
        "",
    ]
    idle = [rule.rule for rule in proposal.rules if not rule.images and not rule.left_out]
    for rule in proposal.rules:
        if rule.rule not in idle:
            out.extend(_rule_lines(rule))
            out.append("")
    if idle:
        out.append(
            f"No image in the log was decided by these rules alone, so nothing can be learnt of "
            f"them; left as they are: {', '.join(idle)}"
        )
        out.append("")
    if not proposal.changed:
        out.append("No change proposed: the policy stays as it is.")
        return "\n".join(out) + "\n"
    out.append(proposal.diff.rstrip("\n"))
    out.append("")
    if proposal.backtest is not None:
        out.extend(_backtest_lines(proposal.backtest))
    if written is not None:
        out.append("")
        out.append(
            f"wrote the proposal to {written} (run it as a shadow; the live policy is unchanged)"
        )
    return "\n".join(out) + "\n"
