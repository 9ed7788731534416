"""`moderation audit ...`: verify, anchor, search and summarise audit logs. Read-only, but for
`audit digest` (moderation/cli/audit_digest.py), which writes an S3 trail's next digest.

Exit codes: 0 ok; 1 verification failed (tampering), a log or decision not found; 2 usage
error; 3 (`verify`) the log ends in an unrepaired crash tail and every record before it verified.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from moderation.audit import (
    Head,
    RecordError,
    audit_record_schema,
    history_of,
    parse_head,
    read_log,
    records,
    verify_log,
)
from moderation.audit._s3read import is_s3
from moderation.audit._verify import read_head
from moderation.cli._common import KEY_ENV, audit_key
from moderation.cli._sources import LOG_SOURCE, Source
from moderation.cli.audit_digest import digest, verify_trails
from moderation.decision import Decision, Outcome
from moderation.policy import Band
from moderation.review_records import AppealRecord, DecisionHistory, ReviewRecord
from moderation.triage import Action

__all__ = ["audit"]

EXIT_CRASH_TAIL = 3
_EPILOG = """\b
Exit codes:
  0  ok
  1  verification failed (the log was changed), or the log or decision was not found
  2  usage error
  3  verify: the log ends in an unrepaired crash tail (a writer stopped mid-record;
     every record before it verified; the next writer sets it aside)

A keyed log's key comes from MODERATION_AUDIT_KEY or --key-file (never from the command line,
where other users and shell history would see it)."""

_KEY_FILE_HELP = (
    "Read the HMAC key of a keyed log from FILE (one trailing newline is ignored); "
    f"default: ${KEY_ENV}."
)


@click.group(epilog=_EPILOG)
def audit() -> None:
    """Verify, inspect and summarise audit logs (read-only); write an S3 trail's digests."""


def _not_found(message: str) -> click.exceptions.Exit:
    click.echo(f"error: {message}", err=True)
    return click.exceptions.Exit(1)


@audit.command(epilog=_EPILOG)
@click.argument("paths", nargs=-1, required=True, type=LOG_SOURCE)
@click.option(
    "--head",
    "head_text",
    metavar="[SEQ:]HASH",
    help="Also require that the chain holds this record (a head anchored elsewhere earlier).",
)
@click.option(
    "--from-head",
    "from_head_text",
    metavar="SEQ:HASH",
    help="As --head, for a log whose oldest rotated files were deleted (retention): verify from "
    "the oldest file left, which must continue the chain up to this head or start after it "
    "from it.",
)
@click.option(
    "--deep",
    is_flag=True,
    help="Also validate every record's body (each decision, review and appeal) in full; "
    "integrity needs only the bytes, seq and prev.",
)
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), help=_KEY_FILE_HELP)
@click.option(
    "--from",
    "since",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"]),
    help="s3:// only: verify from the first digest written at or after DATE (UTC).",
)
def verify(
    paths: tuple[Source, ...],
    head_text: str | None,
    from_head_text: str | None,
    deep: bool,
    key_file: Path | None,
    since: datetime | None,
) -> None:
    """Verify every record of each log PATH (a live file, read with its rotated predecessors
    PATH.1, PATH.2, ...; each PATH is its own log), or of each S3 trail `s3://bucket/prefix`
    against its digests (`audit digest`).

    Prints a one-line summary per log and exits 0 only when every record of every log verifies;
    else exits 1 naming the file and line of the first bad record, or 3 when the only thing
    wrong is a torn record at the very end that a crashed writer left and no writer has set
    aside yet (UNREPAIRED CRASH TAIL).
    """
    if any(is_s3(path) for path in paths) or since is not None:
        for option, value in (("--head", head_text), ("--from-head", from_head_text)):
            if value is not None:
                raise click.UsageError(
                    f"{option} names a record of a log file, not of an s3:// trail"
                )
        verify_trails(paths, key_file=key_file, since=since)
    head = _verify_head(paths, head_text, from_head_text)
    pruned = from_head_text is not None
    key = audit_key(key_file)
    failed = crash_tail = False
    for path in paths:
        try:
            report = verify_log(path, key=key, head=head, pruned=pruned, deep=deep)
        except (FileNotFoundError, IsADirectoryError) as exc:
            click.echo(f"{path}: FAILED: {exc}", err=True)
            failed = True
            continue
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)
        if report.ok:
            click.echo(f"{path}: {report.summary()}")
        else:
            click.echo(f"{path}: {report.summary()}", err=True)
            crash_tail |= report.crash_tail
            failed |= not report.crash_tail
    raise click.exceptions.Exit(1 if failed else EXIT_CRASH_TAIL if crash_tail else 0)


def _verify_head(
    paths: tuple[Source, ...], head_text: str | None, from_head_text: str | None
) -> Head | None:
    """The head `verify` was given (`--head` or `--from-head`), parsed; UsageError if misused."""
    if head_text is not None and from_head_text is not None:
        raise click.UsageError("give --head or --from-head, not both")
    text = head_text if head_text is not None else from_head_text
    hint = "--head" if head_text is not None else "--from-head"
    if text is None:
        return None
    if len(paths) > 1:
        raise click.UsageError(f"{hint} names a record of one log: give a single PATH")
    try:
        found = parse_head(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from exc
    if from_head_text is not None and found.seq is None:
        raise click.BadParameter(
            f"{text!r}: give the head as SEQ:HASH, as `moderation audit head` prints it",
            param_hint=hint,
        )
    return found


@audit.command(epilog=_EPILOG)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def head(path: Path, as_json: bool) -> None:
    """Print the last record of the log at PATH as `SEQ:HASH`, what `verify --head` and
    `verify --from-head` take.

    Keep the printed head somewhere the log's writers cannot change it; `verify --head SEQ:HASH`
    later proves the log still reaches it, and once older rotated files are deleted,
    `verify --from-head SEQ:HASH` verifies what is left from it. Does not verify the log (that
    is `verify`).
    """
    try:
        found = read_head(path)
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise _not_found(str(exc)) from exc
    except (RecordError, OSError) as exc:
        raise _not_found(str(exc)) from exc
    record = found.record
    if found.torn_bytes:
        click.echo(
            f"warning: {found.file} ends in {found.torn_bytes} torn bytes after this record (the "
            "next writer sets them aside)",
            err=True,
        )
    anchor = Head(record.hash, record.seq)
    if as_json:
        body = {
            "head": str(anchor),
            "file": str(found.file),
            "seq": record.seq,
            "hash": record.hash,
            "alg": record.alg,
            "kind": record.kind,
        }
        click.echo(json.dumps(body))
    else:
        click.echo(str(anchor))


@audit.command(epilog=_EPILOG)
@click.argument("decision_id", metavar="ID")
@click.argument("paths", nargs=-1, required=True, type=LOG_SOURCE)
@click.option("--json", "as_json", is_flag=True, help="Print the decision's JSON.")
def show(decision_id: str, paths: tuple[Source, ...], as_json: bool) -> None:
    """Find decision ID in the logs at PATHS and print it for a person (or as JSON), followed by
    its review and appeal records and its final outcome.

    ID may be shortened to its first characters (`01JNF4W3`, or as printed with a trailing `…`
    or `...`), case-insensitively, as long as one decision's id starts with them.
    """
    prefix = _id_prefix(decision_id)
    try:
        found, others, people = _find(prefix, paths)
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise _not_found(str(exc)) from exc
    names = ", ".join(str(p) for p in paths)
    if found is not None and others:
        ids = [found.id, *sorted(others)]
        count = f"at least {len(ids)}" if len(others) >= _SHOWN_IDS else str(len(ids))
        raise click.UsageError(
            f"ID {decision_id!r} is ambiguous: {count} decisions in {names} have ids starting "
            f"with it ({', '.join(ids)}); give more of the id"
        )
    if found is None:
        raise _not_found(f"no decision in {names} has an id starting with {decision_id!r}")
    if as_json:
        click.echo(found.model_dump_json(indent=2))
        return
    click.echo(describe(found) + "\n" + describe_history(history_of(found, people)))


_SHOWN_IDS = 5


def _id_prefix(text: str) -> str:
    prefix = text.strip().removesuffix("…").removesuffix("...").upper()
    if not prefix:
        raise click.BadParameter("an empty ID matches every decision", param_hint="ID")
    return prefix


def _find(
    prefix: str, paths: tuple[Source, ...]
) -> tuple[Decision | None, set[str], list[ReviewRecord | AppealRecord]]:
    """The decision whose id is `prefix` (case-insensitively), or else the first whose id
    starts with it; the ids of other decisions that start with it too (empty when it is exact
    or unique; at most `_SHOWN_IDS`); and the review and appeal records about decisions whose
    ids start with it. Reads the logs once (an S3 trail's objects are each read once)."""
    found: Decision | None = None
    others: set[str] = set()
    people: list[ReviewRecord | AppealRecord] = []
    for entry in records(paths):
        if not isinstance(entry, Decision):
            if entry.decision_id.upper().startswith(prefix):
                people.append(entry)
            continue
        key = entry.id.upper()
        if not key.startswith(prefix) or (found is not None and found.id.upper() == prefix):
            continue
        if key == prefix:
            found, others = entry, set()
        elif found is None:
            found = entry
        elif entry.id != found.id and len(others) < _SHOWN_IDS:
            others.add(entry.id)
    return found, others, people


def describe(decision: Decision) -> str:
    """A decision as a person reads it: what, who, why, under which rules, at what cost."""
    lines = [
        f"decision {decision.id}",
        f"  outcome:     {decision.outcome.value} (decided by {decision.decided_by.value})",
        f"  tenant:      {decision.tenant}"
        + (" (default policy: fallback)" if decision.policy_fallback else ""),
        f"  created_at:  {decision.created_at.isoformat()}",
        f"  policy:      {decision.policy.id} ({' > '.join(decision.policy.chain)}) "
        f"sha256 {decision.policy.sha256}",
        f"  image:       {_image(decision)}",
        f"  cost:        {_cost(decision)}",
    ]
    if decision.context:
        pairs = ", ".join(f"{k}={v}" for k, v in decision.context.items())
        lines.append(f"  context:     {pairs}")
    if decision.error:
        lines.append(f"  error:       {decision.error}")
    lines.append("reasons:")
    lines += [f"  - {reason}" for reason in decision.reasons] or ["  (none)"]
    triage = decision.triage
    if triage is not None:
        deciding = triage.deciding
        lines.append(f"triage: {triage.action.value}")
        if deciding is None:
            lines.append("  no label reached a band")
        else:
            lines.append(f"deciding findings ({deciding.band.value} band):")
            for finding in triage.at(Band(deciding.band)):
                mark = "*" if finding == deciding else "-"
                lines.append(f"  {mark} {finding.describe()}")
    escalation = decision.escalation
    if escalation is not None:
        lines.append(f"judge: {escalation.judge} ({escalation.provider or 'no call'})")
        if escalation.model_id:
            lines.append(f"  model:     {escalation.model_id}")
        if escalation.verdict is not None:
            lines.append(f"  verdict:   {escalation.verdict.verdict.value}")
            if escalation.verdict.categories:
                lines.append(f"  categories: {', '.join(escalation.verdict.categories)}")
            if escalation.verdict.rationale:
                lines.append(f"  rationale: {escalation.verdict.rationale}")
        if escalation.skipped:
            lines.append(f"  skipped:   {escalation.skipped}")
        if escalation.error:
            lines.append(f"  error:     {escalation.error}")
    return "\n".join(lines)


def describe_history(found: DecisionHistory) -> str:
    """What people did about a decision, in log order, and what it finally came to."""
    lines: list[str] = []
    people: list[ReviewRecord | AppealRecord] = [*found.reviews, *found.appeals]
    if people:
        lines.append("review records:")
    for record in sorted(people, key=lambda r: r.at):  # stable: log order within one instant
        lines.append(f"  - {_person_record(record)}")
    final = found.final
    if final is None:
        lines.append(f"final outcome: {found.outcome.value} (the machine's: no final verdict)")
    else:
        lines.append(
            f"final outcome: {found.outcome.value} (final verdict by {final.reviewer} at "
            f"{final.at.isoformat()})"
        )
    if found.appealed_after_final:
        lines.append("  appealed since: the outcome may change when the appeal is decided")
    if found.golden:
        lines.append("golden item verdicts (measure the reviewers, never the outcome):")
    for record in found.golden:
        lines.append(f"  - {_person_record(record)}; known answer: {record.golden_answer}")
    return "\n".join(lines)


def _person_record(record: ReviewRecord | AppealRecord) -> str:
    at = record.at.isoformat()
    if isinstance(record, AppealRecord):
        return f"{at} appeal by {record.by} (item {record.item_id}): {record.reason}"
    final = " (final)" if record.final else ""
    text = f"{at} review by {record.reviewer} (item {record.item_id}): {record.verdict}{final}"
    if record.categories:
        text += f"; categories: {', '.join(record.categories)}"
    if record.note:
        text += f"; note: {record.note}"
    return text


def _image(decision: Decision) -> str:
    image = decision.image
    parts = []
    if image.s3 is not None:
        where = f"s3://{image.s3.bucket}/{image.s3.key}"
        if image.s3.version_id:
            where += f" version {image.s3.version_id}"
        if image.s3.etag:
            where += f" etag {image.s3.etag}"
        parts.append(where)
    if image.format:
        size = f" {image.width}x{image.height}" if image.width and image.height else ""
        parts.append(f"{image.format}{size}")
    if image.size is not None:
        parts.append(f"{image.size} bytes")
    if image.n_frames > 1:
        parts.append(f"{image.n_frames} frames")
    if image.converted:
        parts.append("converted")
    if image.sha256:
        parts.append(f"sha256 {image.sha256}")
    return ", ".join(parts) or "unknown"


def _cost(decision: Decision) -> str:
    cost = decision.cost
    if cost is None:
        return "unknown"
    bedrock = "unknown" if cost.bedrock_usd is None else f"${cost.bedrock_usd:.6f}"
    total = cost.total_usd
    head = "unknown" if total is None else f"${total:.6f}"
    return f"{head} (rekognition ${cost.rekognition_usd:.6f}, bedrock {bedrock})"


@dataclass
class _Tally:
    decisions: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    with_triage: int = 0
    escalated: int = 0
    cost_usd: float = 0.0
    cost_unknown: int = 0

    def add(self, decision: Decision) -> None:
        self.decisions += 1
        self.outcomes[decision.outcome.value] += 1
        if decision.triage is not None:
            self.with_triage += 1
            if decision.triage.action is Action.ESCALATE:
                self.escalated += 1
        total = decision.cost.total_usd if decision.cost is not None else None
        if total is None:
            self.cost_unknown += 1
        else:
            self.cost_usd += total

    @property
    def escalation_rate(self) -> float | None:
        return self.escalated / self.with_triage if self.with_triage else None

    def as_json(self) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "outcomes": {o.value: self.outcomes[o.value] for o in Outcome},
            "with_triage": self.with_triage,
            "escalated": self.escalated,
            "escalation_rate": self.escalation_rate,
            "cost_usd": round(self.cost_usd, 6),
            "cost_unknown": self.cost_unknown,
        }

    def row(self, name: str) -> tuple[str, ...]:
        rate = self.escalation_rate
        unknown = f" (+{self.cost_unknown} unknown)" if self.cost_unknown else ""
        return (
            name,
            str(self.decisions),
            *(str(self.outcomes[o.value]) for o in Outcome),
            "-" if rate is None else f"{rate:.1%}",
            f"${self.cost_usd:.4f}{unknown}",
        )


def _entries(paths: tuple[Source, ...]) -> Iterator[tuple[str, Decision | None, str | None]]:
    for entry in read_log(paths):
        if entry.parsed is None:
            yield entry.where, None, entry.error
        elif entry.decision is not None:
            yield entry.where, entry.decision, None


@audit.command(epilog=_EPILOG)
@click.argument("paths", nargs=-1, required=True, type=LOG_SOURCE)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def stats(paths: tuple[Source, ...], as_json: bool) -> None:
    """Outcomes, escalation rate and estimated cost of the decisions in the logs at PATHS, in all,
    by tenant and by day (UTC). Streams: any size of log. Unreadable lines are counted and named.

    The escalation rate is the share of decisions with a triage whose action was escalate. The
    cost adds each decision's `cost.total_usd`; decisions whose cost is unknown (a model missing
    from the price table) are counted apart.
    """
    total = _Tally()
    tenants: dict[str, _Tally] = {}
    days: dict[str, _Tally] = {}
    unreadable: list[tuple[str, str]] = []
    try:
        for where, decision, error in _entries(paths):
            if decision is None:
                unreadable.append((where, error or "unreadable"))
                continue
            total.add(decision)
            tenants.setdefault(decision.tenant, _Tally()).add(decision)
            day = decision.created_at.astimezone(UTC).date().isoformat()
            days.setdefault(day, _Tally()).add(decision)
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise _not_found(str(exc)) from exc
    if as_json:
        body = {
            "total": total.as_json(),
            "by_tenant": {k: v.as_json() for k, v in sorted(tenants.items())},
            "by_day": {k: v.as_json() for k, v in sorted(days.items())},
            "unreadable": [{"where": w, "error": e} for w, e in unreadable],
        }
        click.echo(json.dumps(body, indent=2))
    else:
        header = ("", "decisions", *(o.value for o in Outcome), "escalation", "cost")
        rows = [total.row("total")]
        rows += [t.row(f"tenant {name}") for name, t in sorted(tenants.items())]
        rows += [t.row(f"day {name}") for name, t in sorted(days.items())]
        _print_table(header, rows)
    for where, error in unreadable:
        click.echo(f"unreadable: {where}: {error}", err=True)
    if unreadable:
        n = len(unreadable)
        click.echo(f"{n} unreadable line{'s' if n != 1 else ''} not counted", err=True)


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        rest = zip(row[1:], widths[1:], strict=True)
        cells = [row[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in rest)]
        click.echo("  ".join(cells).rstrip())


@audit.command()
def schema() -> None:
    """Print the JSON Schema of one chained audit record (docs/audit-record.schema.json)."""
    click.echo(json.dumps(audit_record_schema(), indent=2))


audit.add_command(digest)
