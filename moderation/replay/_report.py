"""What a replay found: `ReplayReport`, its `Flip`s and `BadRecord`s, as text and as JSON."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

from moderation._frozen import freeze
from moderation.decision import Outcome
from moderation.triage import Finding

__all__ = [
    "AFTER_COLUMNS",
    "BEFORE_ROWS",
    "DEFAULT_KEEP",
    "BadRecord",
    "Flip",
    "LiveSummary",
    "ReplayReport",
]

#: How many flips, ids and bad records a report lists by default; counts stay exact beyond it.
DEFAULT_KEEP = 100_000
BEFORE_ROWS: tuple[str, ...] = tuple(o.value for o in Outcome)
AFTER_COLUMNS: tuple[str, ...] = (*BEFORE_ROWS, "needs_judgment", "not_replayable")
# What the text report shows of each list; the JSON has all that was kept.
_SHOW_FLIPS = 20
_SHOW_IDS = 5
_SHOW_ERRORS = 20

Counts = Annotated[dict[str, int], AfterValidator(freeze)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BadRecord(_Model):
    """A record replay could not use: where it is (file None for decisions given as objects;
    line 1-based) and what is wrong with it."""

    file: str | None
    line: int | None
    message: str

    @property
    def where(self) -> str:
        """`file:line`, for messages."""
        return f"{self.file or '<decisions>'}:{self.line}"


class Flip(_Model):
    """One recorded decision whose outcome the replay changed.

    `findings` decided the new outcome: the deciding band's findings under the replay policy; for
    a flip to approved by policy, the recorded findings that no longer act. `reasons` are their
    `Finding.describe()` strings (for a shadow, the shadow's own reasons) and `category` the rule
    of the deciding finding. `verdict_reused`: the recorded judge verdict gave the new outcome.
    `incomplete`: the log cannot show everything the replay policy would have seen. `judged_live`:
    the new outcome comes from a judge call made by this replay.
    """

    decision_id: str
    tenant: str
    before: Outcome
    after: Outcome
    reasons: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    category: str | None = None
    verdict_reused: bool = False
    incomplete: bool = False
    file: str | None = None
    line: int | None = None
    judged_live: bool = False


class LiveSummary(_Model):
    """What `--live` did: the calls it planned and made, and the cases it could not judge."""

    # Per model id: which token usage priced its planned calls (the log's mean, or the default).
    usage: Annotated[dict[str, str], AfterValidator(freeze)]
    needed: int  # cases that needed judgment before any call
    with_image: int  # of those, how many had their image in the images directory
    planned: int  # calls planned: with_image, at most max_calls
    max_calls: int
    estimated_usd: float | None  # None: a model has no price in the pricing table
    made: int  # calls made (a failed call counts)
    failed: int  # calls that raised or gave no verdict: the policy's on_error / on_blocked applied
    spent_usd: float | None
    without_image_ids: tuple[str, ...]
    not_judged_ids: tuple[str, ...]  # had an image, but over max_calls or the image was refused
    notes: tuple[str, ...]


class ReplayReport(_Model):
    """What re-running triage on recorded decisions under other policies would have changed.

    Counts are exact; the id lists, `flips` and `errors` hold at most `keep` entries each
    (`truncated` says whether any was cut). `decisions` counts the decision records of the
    tenant(s) replayed; of those, `not_replayable` had no detection, `replayed` were triaged again
    (`unchanged` + `flipped` + `needs_judgment`), and the rest had no policy (an entry in
    `errors`). `matrix[before][after]` counts outcomes, `after` including `needs_judgment` and
    `not_replayable`. Rates are over `replayed`; costs are estimates (docs/replay.md).
    """

    policies: str | None
    tenant: str | None
    keep: int
    records_read: int
    decisions: int
    replayed: int
    unchanged: int
    flipped: int
    needs_judgment: int
    not_replayable: int
    reused: int
    reused_from_other_model: int
    incomplete: int
    error_count: int
    flips: tuple[Flip, ...]
    needs_judgment_ids: tuple[str, ...]
    not_replayable_ids: tuple[str, ...]
    incomplete_ids: tuple[str, ...]
    reused_from_other_model_ids: tuple[str, ...]
    matrix: Annotated[dict[str, Counts], AfterValidator(freeze)]
    escalations_before: int
    escalations_after: int
    escalation_rate_before: float | None
    escalation_rate_after: float | None
    cost_before_usd: float
    cost_after_usd: float
    cost_unknown: int
    mean_judge_call_usd: float | None
    judge_calls_at_mean: int
    flips_by_tenant: Counts
    flips_by_category: Counts
    errors: tuple[BadRecord, ...]
    truncated: bool
    live: LiveSummary | None = None

    @property
    def total(self) -> int:
        """The decision records considered (after the tenant filter)."""
        return self.decisions

    def to_json(self) -> dict[str, Any]:
        """The `--json` object: every field, `total`, and flips keyed `id` rather than
        `decision_id`."""
        data = self.model_dump(mode="json")
        data["total"] = self.decisions
        data["flips"] = [{"id": flip.pop("decision_id"), **flip} for flip in data["flips"]]
        return data

    def render(self) -> str:
        """The human report: totals, the before x after matrix, the first flips by decision id
        with their reasons, needs-judgment, incomplete and other-model ids, bad records."""
        out = self._total_lines()
        out.append("")
        out.extend(self._matrix_lines())
        out.append("")
        out.extend(self._rate_and_cost_lines())
        out.extend(self._flip_lines())
        out.extend(self._id_list_lines())
        if self.live is not None:
            out.append("")
            out.extend(_live_lines(self.live))
        out.extend(self._error_lines())
        if self.truncated:
            out.append("")
            out.append(f"(lists cut at {self.keep:,} entries each; the counts are exact)")
        return "\n".join(out) + "\n"

    def _total_lines(self) -> list[str]:
        scope = f" under {self.policies}" if self.policies else ""
        only = f", tenant {self.tenant}" if self.tenant else ""
        other = (
            f" ({self.reused_from_other_model:,} from another model)"
            if self.reused_from_other_model
            else ""
        )
        return [
            f"replayed {self.replayed:,} of {self.decisions:,} decisions{scope}{only}"
            f" ({self.records_read:,} records read)",
            f"  unchanged {self.unchanged:,}   flipped {self.flipped:,}   "
            f"needs judgment {self.needs_judgment:,}   not replayable {self.not_replayable:,}   "
            f"bad records {self.error_count:,}",
            f"  judge answers reused {self.reused:,}{other}   incomplete {self.incomplete:,}",
        ]

    def _rate_and_cost_lines(self) -> list[str]:
        out = [
            f"escalation rate  {_rate(self.escalation_rate_before)} -> "
            f"{_rate(self.escalation_rate_after)}   "
            f"({self.escalations_before:,} -> {self.escalations_after:,} escalations)"
        ]
        cost = f"estimated cost   ${self.cost_before_usd:,.4f} -> ${self.cost_after_usd:,.4f}"
        if self.judge_calls_at_mean:
            mean = self.mean_judge_call_usd
            cost += (
                f"   ({_n(self.judge_calls_at_mean, 'new judge call')} at the log's mean "
                f"${mean:.6f} each)"
                if mean is not None
                else f"   ({_n(self.judge_calls_at_mean, 'new judge call')} not priced: "
                "no judge call with a cost in this log)"
            )
        if self.cost_unknown:
            cost += f"   ({self.cost_unknown:,} records with an unknown cost left out)"
        out.append(cost)
        if self.flips_by_tenant:
            out.append("flips by tenant    " + _counts(self.flips_by_tenant))
            # Shadow comparisons record no category: a line of "(none)" would say nothing.
            if set(self.flips_by_category) != {"(none)"}:
                out.append("flips by category  " + _counts(self.flips_by_category))
        return out

    def _id_list_lines(self) -> list[str]:
        out: list[str] = []
        for title, count, ids in (
            ("needs judgment (the replay policy escalates; no judge answer recorded)",
             self.needs_judgment, self.needs_judgment_ids),
            ("incomplete (the log cannot show all the replay policy would see)",
             self.incomplete, self.incomplete_ids),
            ("judge answers reused from another model", self.reused_from_other_model,
             self.reused_from_other_model_ids),
            ("not replayable (no detection recorded)", self.not_replayable,
             self.not_replayable_ids),
        ):  # fmt: skip
            if count:
                out.append("")
                out.append(f"{title}: {count:,}")
                out.append("  " + _ids(ids, count))
        return out

    def _error_lines(self) -> list[str]:
        if not self.error_count:
            return []
        out = ["", f"bad records: {self.error_count:,}"]
        for error in self.errors[:_SHOW_ERRORS]:
            out.append(f"  {error.where}: {error.message}")
        if self.error_count > _SHOW_ERRORS:
            out.append(f"  ... and {self.error_count - _SHOW_ERRORS:,} more")
        return out

    def _matrix_lines(self) -> list[str]:
        width = max(len(c) for c in AFTER_COLUMNS) + 2
        lines = ["before \\ after".ljust(16) + "".join(c.rjust(width) for c in AFTER_COLUMNS)]
        for row in BEFORE_ROWS:
            cells = self.matrix.get(row, {})
            lines.append(
                f"  {row}".ljust(16)
                + "".join(f"{cells.get(c, 0):,}".rjust(width) for c in AFTER_COLUMNS)
            )
        return lines

    def _flip_lines(self) -> list[str]:
        if not self.flipped:
            return ["", "no decision flipped"]
        shown = sorted(self.flips, key=lambda f: f.decision_id)[:_SHOW_FLIPS]
        more = f"first {len(shown)} of {self.flipped:,}, " if self.flipped > len(shown) else ""
        lines = ["", f"flipped ({more}by decision id):"]
        for flip in shown:
            marks = [m for m, on in (
                ("judge answer reused", flip.verdict_reused),
                ("incomplete", flip.incomplete),
                ("judged live", flip.judged_live),
            ) if on]  # fmt: skip
            category = f"  [{flip.category}]" if flip.category else ""
            note = f"  ({', '.join(marks)})" if marks else ""
            lines.append(
                f"  {flip.decision_id}  {flip.tenant}  {flip.before.value} -> "
                f"{flip.after.value}{category}{note}"
            )
            # A flip to approved by policy lists what used to act, under the recorded policy.
            by_policy = not (flip.verdict_reused or flip.judged_live)
            was = "was: " if flip.after is Outcome.APPROVED and flip.findings and by_policy else ""
            for reason in flip.reasons[:3]:
                lines.append(f"      {was}{reason}")
        lines.append("  (`moderation audit show ID LOG` prints a whole recorded decision)")
        return lines


def _rate(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.1%}"


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _counts(counts: dict[str, int]) -> str:
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    text = ", ".join(f"{name} {n:,}" for name, n in top[:10])
    return text + (f", ... ({len(top) - 10} more)" if len(top) > 10 else "")


def _ids(ids: tuple[str, ...], count: int) -> str:
    shown = ", ".join(ids[:_SHOW_IDS])
    return shown + (
        f", ... and {count - min(len(ids), _SHOW_IDS):,} more" if count > _SHOW_IDS else ""
    )


def _live_lines(live: LiveSummary) -> list[str]:
    spent = "unknown" if live.spent_usd is None else f"${live.spent_usd:.4f}"
    lines = [
        f"live judging: {live.made:,} of {live.planned:,} planned calls made "
        f"({live.failed:,} failed or gave no verdict), spent {spent}",
        f"  {live.needed:,} needed judgment, {live.with_image:,} with an image, "
        f"at most {live.max_calls:,} calls",
    ]
    if live.without_image_ids:
        n = live.needed - live.with_image
        lines.append(f"  no image given for {n:,}: " + _ids(live.without_image_ids, n))
    if live.not_judged_ids:
        lines.append(
            f"  not judged: {len(live.not_judged_ids):,}: "
            + _ids(live.not_judged_ids, len(live.not_judged_ids))
        )
    lines.extend(f"  note: {note}" for note in live.notes)
    return lines
