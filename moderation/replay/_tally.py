"""The counters a replay keeps while it streams, turned into a `ReplayReport` at the end."""

from __future__ import annotations

from collections import Counter

from moderation.decision import Decision, Escalation, Outcome, TokenUsage
from moderation.replay._report import (
    AFTER_COLUMNS,
    BEFORE_ROWS,
    BadRecord,
    Flip,
    LiveSummary,
    ReplayReport,
)
from moderation.triage import Action, Finding

__all__ = ["Explained", "Tally", "had_judge_call"]

#: A flip's findings, reasons and category.
Explained = tuple[tuple[Finding, ...], tuple[str, ...], str | None]
NEEDS_JUDGMENT = "needs_judgment"
_USAGE_FIELDS = tuple(TokenUsage.model_fields)
NOT_REPLAYABLE = "not_replayable"


def had_judge_call(escalation: Escalation | None) -> bool:
    """True when the recorded escalation asked the judge (whatever came of it)."""
    return escalation is not None and escalation.skipped is None and escalation.judge != "none"


class Tally:
    """Exact counts, and lists of at most `keep` entries each, for one replay report."""

    def __init__(self, keep: int, *, usage: bool = True) -> None:
        self.keep = keep
        self.track_usage = usage  # whether `usage` is summed (only live judging reads it)
        self.truncated = False
        self.records_read = 0
        self.decisions = 0
        self.replayed = 0
        self.unchanged = 0
        self.flipped = 0
        self.needs_judgment = 0
        self.not_replayable = 0
        self.reused = 0
        self.reused_from_other_model = 0
        self.incomplete = 0
        self.error_count = 0
        self.errors: list[BadRecord] = []
        self.flips: list[Flip] = []
        self.needs_judgment_ids: list[str] = []
        self.not_replayable_ids: list[str] = []
        self.incomplete_ids: list[str] = []
        self.other_model_ids: list[str] = []
        # Keyed by the Outcome members themselves (the report's are their values): a member finds
        # itself in a dict at the first look, where its value's text would be compared.
        self.matrix: dict[str, dict[str, int]] = {
            Outcome(row): {Outcome(c) if c in BEFORE_ROWS else c: 0 for c in AFTER_COLUMNS}
            for row in BEFORE_ROWS
        }
        self.escalations_before = 0
        self.escalations_after = 0
        self.cost_before = 0.0
        self.cost_after = 0.0
        self.cost_unknown = 0
        self.judge_calls_at_mean = 0
        self.judge_cost_sum = 0.0
        self.judge_cost_n = 0
        # Per model id: the recorded judge calls' summed token counts (TokenUsage's fields, in
        # order), and how many calls there were (the last item).
        self.usage: dict[str, list[int]] = {}
        self.by_tenant: Counter[str] = Counter()
        self.by_category: Counter[str] = Counter()
        self._judged: set[str] = set()  # needs-judgment ids a live call has since decided

    def _keep(self, into: list[str], value: str) -> None:
        if len(into) < self.keep:
            into.append(value)
        else:
            self.truncated = True

    def bad(self, file: str | None, line: int | None, message: str) -> None:
        """A record that could not be replayed."""
        self.error_count += 1
        if len(self.errors) < self.keep:
            self.errors.append(BadRecord(file=file, line=line, message=message))
        else:
            self.truncated = True

    def seen(self, decision: Decision) -> bool:
        """Every decision considered: the log's judge costs (and token usage, if tracked), for
        estimates. True when the decision asked the judge."""
        self.decisions += 1
        escalation = decision.escalation
        if not had_judge_call(escalation):
            return False
        assert escalation is not None
        cost = decision.cost
        if cost is not None and cost.bedrock_usd is not None:
            self.judge_cost_sum += cost.bedrock_usd
            self.judge_cost_n += 1
        if self.track_usage:
            self._sum_usage(escalation)
        return True

    def _sum_usage(self, escalation: Escalation) -> None:
        usage, model = escalation.usage, escalation.model_id
        if usage is not None and model:
            sums = self.usage.get(model)
            if sums is None:
                sums = self.usage[model] = [0] * (len(_USAGE_FIELDS) + 1)
            for i, name in enumerate(_USAGE_FIELDS):
                sums[i] += getattr(usage, name)
            sums[-1] += 1

    def mean_usage(self, model: str) -> tuple[TokenUsage, int] | None:
        """The mean token usage of the log's judge calls to `model`, and how many there were."""
        sums = self.usage.get(model)
        if sums is None:
            return None
        n = sums[-1]
        return TokenUsage(**{name: sums[i] // n for i, name in enumerate(_USAGE_FIELDS)}), n

    def unreplayable(self, decision: Decision) -> None:
        """A decision with no detection: nothing to triage again."""
        self.not_replayable += 1
        self.matrix[decision.outcome][NOT_REPLAYABLE] += 1
        self._keep(self.not_replayable_ids, decision.id)

    def replay(
        self,
        decision: Decision,
        action: Action,
        after: Outcome | None,
        judge_call: bool,
        incomplete: bool,
        reused: bool,
        other_model: bool,
        called: bool,
    ) -> bool:
        """One decision triaged again: `after` is None when it needs a judgment the log lacks;
        `judge_call` when the replay policy would ask the judge, `called` when the recorded
        decision did (`seen`). True for a flip, which the caller explains and adds (`flip`).

        Positional: replay calls it once per decision."""
        self.replayed += 1
        before = decision.outcome
        triage = decision.triage
        if triage is not None and triage.action is Action.ESCALATE:
            self.escalations_before += 1
        if action is Action.ESCALATE:
            self.escalations_after += 1
        if incomplete or reused:
            self._count_evidence(decision, incomplete, reused, other_model)
        cost = decision.cost
        if cost is None or cost.bedrock_usd is None:
            self.cost_unknown += 1
        else:
            self._count_cost(cost.rekognition_usd, cost.bedrock_usd, judge_call, called)
        if after is None:
            self.needs_judgment += 1
            self.matrix[before][NEEDS_JUDGMENT] += 1
            self._keep(self.needs_judgment_ids, decision.id)
            return False
        self.matrix[before][after] += 1
        if after is before:
            self.unchanged += 1
            return False
        return True

    def flip(
        self,
        decision: Decision,
        file: str | None,
        line: int,
        after: Outcome,
        explained: Explained,
        *,
        reused: bool,
        incomplete: bool,
    ) -> None:
        """Add the flip `replay` found (`explained`: its findings, reasons and category)."""
        findings, reasons, category = explained
        self.add_flip(
            Flip(
                decision_id=decision.id,
                tenant=decision.tenant,
                before=decision.outcome,
                after=after,
                reasons=reasons,
                findings=findings,
                category=category,
                verdict_reused=reused,
                incomplete=incomplete,
                file=file,
                line=line,
            )
        )

    def _count_evidence(
        self, decision: Decision, incomplete: bool, reused: bool, other_model: bool
    ) -> None:
        """What the replay lacked (incomplete) and what it took from the log (a reused verdict)."""
        if incomplete:
            self.incomplete += 1
            self._keep(self.incomplete_ids, decision.id)
        if reused:
            self.reused += 1
            if other_model:
                self.reused_from_other_model += 1
                self._keep(self.other_model_ids, decision.id)

    def _count_cost(
        self, rekognition: float, bedrock: float, judge_call: bool, called: bool
    ) -> None:
        """A decision's known cost as logged, and under the replay policy (a new judge call
        counts at the log's mean)."""
        self.cost_before += rekognition + bedrock
        self.cost_after += rekognition
        if judge_call:
            if called:
                self.cost_after += bedrock
            else:
                self.judge_calls_at_mean += 1

    def add_flip(self, flip: Flip) -> None:
        """Count a flip (its matrix cell is the caller's) and keep it if there is room."""
        self.flipped += 1
        self.by_tenant[flip.tenant] += 1
        self.by_category[flip.category or "(none)"] += 1
        if len(self.flips) < self.keep:
            self.flips.append(flip)
        else:
            self.truncated = True

    def judged(self, decision_id: str, before: Outcome, after: Outcome) -> None:
        """A needs-judgment case a live judge call has now decided (the flip, if any, is added
        by the caller with `add_flip`)."""
        self.needs_judgment -= 1
        self.matrix[before][NEEDS_JUDGMENT] -= 1
        self.matrix[before][after] += 1
        self._judged.add(decision_id)
        if after is before:
            self.unchanged += 1

    @property
    def mean_judge_call_usd(self) -> float | None:
        """The mean recorded Bedrock cost of a judge call in this log; None without one."""
        return self.judge_cost_sum / self.judge_cost_n if self.judge_cost_n else None

    def report(
        self, *, policies: str | None, tenant: str | None, live: LiveSummary | None = None
    ) -> ReplayReport:
        """The report of everything tallied."""
        mean = self.mean_judge_call_usd
        after = self.cost_after + (mean or 0.0) * self.judge_calls_at_mean
        rate = (lambda n: n / self.replayed) if self.replayed else (lambda n: None)
        return ReplayReport(
            policies=policies,
            tenant=tenant,
            keep=self.keep,
            records_read=self.records_read,
            decisions=self.decisions,
            replayed=self.replayed,
            unchanged=self.unchanged,
            flipped=self.flipped,
            needs_judgment=self.needs_judgment,
            not_replayable=self.not_replayable,
            reused=self.reused,
            reused_from_other_model=self.reused_from_other_model,
            incomplete=self.incomplete,
            error_count=self.error_count,
            flips=tuple(self.flips),
            needs_judgment_ids=tuple(i for i in self.needs_judgment_ids if i not in self._judged),
            not_replayable_ids=tuple(self.not_replayable_ids),
            incomplete_ids=tuple(self.incomplete_ids),
            reused_from_other_model_ids=tuple(self.other_model_ids),
            matrix={
                str(row): {str(c): n for c, n in cells.items()}
                for row, cells in self.matrix.items()
            },
            escalations_before=self.escalations_before,
            escalations_after=self.escalations_after,
            escalation_rate_before=rate(self.escalations_before),
            escalation_rate_after=rate(self.escalations_after),
            cost_before_usd=self.cost_before,
            cost_after_usd=after,
            cost_unknown=self.cost_unknown,
            mean_judge_call_usd=mean,
            judge_calls_at_mean=self.judge_calls_at_mean,
            flips_by_tenant=dict(self.by_tenant),
            flips_by_category=dict(self.by_category),
            errors=tuple(self.errors),
            truncated=self.truncated,
            live=live,
        )
