"""`moderation review stats`: what reviewers decided, per tenant and rule, and what it proves about
the automation (docs/tuning.md, "Review statistics"). The numbers are computed in
moderation/review/_stats.py; here the logs and the desk are read and the numbers printed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from moderation.audit import Entry, VerifiedRecords, records
from moderation.audit._s3read import is_s3
from moderation.cli._common import KEY_ENV, audit_key
from moderation.cli._desk import DESK_ENV, EXIT_NOT_FOUND, EXIT_USAGE, desk_work, open_plain_desk
from moderation.cli._sources import LOG_SOURCE, Source
from moderation.review import (
    CategoryStats,
    ErrorRate,
    GoldenAccuracy,
    QueueStats,
    Reviewer,
    ReviewerCount,
    ReviewStats,
    TenantStats,
    labels,
    queue_stats,
    review_stats,
)
from moderation.stats import Interval

__all__ = ["stats_command"]

_EPILOG = f"""\b
Exit codes:
  0  done
  1  a log was not found, or (with a key) records that did not verify were left out
     (the statistics of the records that verify are printed)
  2  usage error (a URL the desk refuses, an unreadable key file, scipy missing)
  3  the desk could not be read

The desk is --desk, else ${DESK_ENV}; without one the desk's lines say it was not read. A keyed
log's key comes from ${KEY_ENV} or --key-file; with a key only records that verify are read.
A LOG is a live log, read with its rotated predecessors (LOG.1, LOG.2, ...). docs/tuning.md
says what each number means and which verdicts enter it."""

#: Who reads the desk's queue: every tenant, leasing nothing.
_READER = Reviewer("review-stats", "*")


@click.command(name="stats", epilog=_EPILOG)
@click.argument("logs", nargs=-1, required=True, type=LOG_SOURCE)
@click.option("--tenant", metavar="T", help="Only tenant T's decisions and desk items.")
@click.option(
    "--desk",
    "desk_url",
    envvar=DESK_ENV,
    metavar="URL",
    help=f"The review desk, for its queue (default: ${DESK_ENV}; none: not read).",
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Read the HMAC key of a keyed log from FILE (default: ${KEY_ENV}).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def stats_command(
    logs: tuple[Source, ...],
    tenant: str | None,
    desk_url: str | None,
    key_file: Path | None,
    as_json: bool,
) -> None:
    """The statistics of what reviewers decided in the audit logs LOG...: per tenant and deciding
    rule the decisions and labels, the automation's false-approve and false-reject rates from
    blind QA samples (95% exact intervals), the judge's agreement with people, the agreement
    between reviewers, each reviewer's verdicts and skips; and, with a desk, its queue (open
    items, their ages, SLA breaches)."""
    key = audit_key(key_file)
    if key is not None and any(is_s3(log) for log in logs):
        raise click.UsageError(
            "with a key only records that verify in a chained log file are read; an s3:// trail "
            "is checked by `moderation audit verify` against its digests: unset the key here"
        )
    reading = _Entries(logs, key)
    try:
        stats = review_stats(reading, labels(logs, key=key), tenant=tenant)
    except (FileNotFoundError, IsADirectoryError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_NOT_FOUND) from exc
    except ImportError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_USAGE) from exc
    desk = _queue(desk_url, tenant)
    if as_json:
        click.echo(json.dumps(_json(stats, desk, logs, tenant, reading.ignored), indent=2))
    else:
        _print(stats, desk)
    if reading.ignored:
        click.echo(
            f"warning: {reading.ignored} records did not verify under the key and were left out",
            err=True,
        )
        raise click.exceptions.Exit(EXIT_NOT_FOUND)


class _Entries:
    """The entries of the logs in log order: with a key, only those of records that verify
    (the others counted in `ignored`)."""

    def __init__(self, logs: tuple[Source, ...], key: bytes | None) -> None:
        self.logs = logs
        self.key = key
        self.ignored = 0

    def __iter__(self) -> Iterator[Entry]:
        if self.key is None:
            yield from records(self.logs)
            return
        verified = VerifiedRecords(self.logs, key=self.key)
        for _, record in verified:
            if record.entry is not None:
                yield record.entry
        self.ignored = verified.ignored_count


def _queue(url: str | None, tenant: str | None) -> tuple[QueueStats, ...] | str:
    """The desk's queue per tenant, or why it was not read."""
    if not url:
        return f"not read (no desk: pass --desk URL or set {DESK_ENV})"
    with desk_work(open_plain_desk(url), "the review desk could not be read: {}") as desk:
        waiting = desk.waiting(_READER)
    return queue_stats(waiting, datetime.now(UTC), tenant=tenant)


# -- for people ----------------------------------------------------------------------------------


def _print(stats: ReviewStats, desk: tuple[QueueStats, ...] | str) -> None:
    click.echo(
        f"rates: errors/labels, observed share [{stats.confidence:.0%} exact "
        "(Clopper-Pearson) interval]; - where no label counts"
    )
    click.echo()
    if not stats.tenants:
        click.echo("no decisions in the logs")
    for tenant in stats.tenants:
        _print_tenant(tenant)
        click.echo()
    if isinstance(desk, str):
        click.echo(f"desk: {desk}")
        return
    click.echo("desk (undecided items):")
    rows: list[tuple[str, ...]] = [
        ("tenant", "open", "leased", "age p50", "age p95", "SLA breaches")
    ]
    rows += [
        (q.tenant, str(q.open), str(q.leased), _age(q.age_p50), _age(q.age_p95), str(q.breaches))
        for q in desk
    ]
    if desk:
        _table(rows)
    else:
        click.echo("  nothing waiting")


def _print_tenant(tenant: TenantStats) -> None:
    click.echo(f"tenant {tenant.tenant}")
    head = ("category", "decisions", "qa", "review", "appeal", "false-approve", "false-reject")
    rows: list[tuple[str, ...]] = [head] + [_row(c) for c in (*tenant.categories, tenant.total)]
    _table(rows)
    for category in (*tenant.categories, tenant.total):
        for what, rate in (
            ("false-approve", category.false_approve),
            ("false-reject", category.false_reject),
        ):
            if len(rate.strata) > 1:
                click.echo(f"  {category.category} {what}: {_strata_note(rate)}")
    judge = tenant.judge
    click.echo(
        f"  judge on escalated, labelled cases: {judge.cases}; precision of its rejections "
        f"{_interval(judge.precision)}; recall {_interval(judge.recall)}"
    )
    kappa = tenant.agreement.kappa
    kappa_text = "n/a" if kappa is None else f"{kappa:.2f}"
    click.echo(f"  reviewer agreement: {tenant.agreement.pairs} pairs, Cohen's kappa {kappa_text}")
    for r in tenant.reviewers:
        golden = "" if r.golden is None else f"; golden items {_golden(r.golden)}"
        click.echo(f"  reviewer {r.reviewer}: {r.verdicts} verdicts, {r.skips} skips{golden}")


def _row(category: CategoryStats) -> tuple[str, ...]:
    counts = [str(n) for _, n in category.labels]
    return (
        category.category,
        str(category.decisions),
        *counts,
        _rate(category.false_approve),
        _rate(category.false_reject),
    )


def _rate(rate: ErrorRate) -> str:
    if rate.n == 0:
        return "-"
    if rate.estimate is None:
        return f"{rate.k}/{rate.n} not weighable"
    if len(rate.strata) == 1:
        return _interval(rate.strata[0].interval)
    return f"{_pct(rate.estimate)} [{_pct(rate.low)}, {_pct(rate.high)}] weighted"


def _strata_note(rate: ErrorRate) -> str:
    parts = ", ".join(
        f"rate {'unknown' if s.qa_rate is None else f'{s.qa_rate:g}'}: {_interval(s.interval)}"
        for s in rate.strata
    )
    if rate.estimate is None:
        return f"sampling rates differ and one is unknown, no combined estimate ({parts})"
    return (
        f"sampling rates differ: weighted by n/rate, interval Bonferroni-combined exact ({parts})"
    )


def _golden(golden: GoldenAccuracy) -> str:
    skipped = f", {golden.skipped} skipped" if golden.skipped else ""
    return f"{_interval(golden.interval)} correct{skipped}"


def _interval(interval: Interval) -> str:
    if interval.rate is None:
        return "0/0"
    bounds = f"[{_pct(interval.low)}, {_pct(interval.high)}]"
    return f"{interval.k}/{interval.n} {_pct(interval.rate)} {bounds}"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _age(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours < 48 else f"{hours // 24}d{hours % 24:02d}h"


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        click.echo("  " + "  ".join(cells).rstrip())


# -- for programs --------------------------------------------------------------------------------


def _json(
    stats: ReviewStats,
    desk: tuple[QueueStats, ...] | str,
    logs: tuple[Source, ...],
    tenant: str | None,
    ignored: int,
) -> dict[str, Any]:
    return {
        "logs": [str(log) for log in logs],
        "tenant": tenant,
        "confidence": stats.confidence,
        "ignored_records": ignored,
        "tenants": [_tenant_json(t) for t in stats.tenants],
        "desk": _desk_json(desk),
    }


def _tenant_json(tenant: TenantStats) -> dict[str, Any]:
    return {
        "tenant": tenant.tenant,
        "categories": [_category_json(c) for c in tenant.categories],
        "total": _category_json(tenant.total),
        "judge": {
            "cases": tenant.judge.cases,
            "precision": tenant.judge.precision.to_json(),
            "recall": tenant.judge.recall.to_json(),
        },
        "reviewer_agreement": {"pairs": tenant.agreement.pairs, "kappa": tenant.agreement.kappa},
        "reviewers": [_reviewer_json(r) for r in tenant.reviewers],
    }


def _reviewer_json(reviewer: ReviewerCount) -> dict[str, Any]:
    golden = reviewer.golden
    return {
        "reviewer": reviewer.reviewer,
        "verdicts": reviewer.verdicts,
        "skips": reviewer.skips,
        "golden": None
        if golden is None
        else {"skipped": golden.skipped, **golden.interval.to_json()},
    }


def _category_json(category: CategoryStats) -> dict[str, Any]:
    return {
        "category": category.category,
        "decisions": category.decisions,
        "labels": {kind.value: n for kind, n in category.labels},
        "false_approve": _rate_json(category.false_approve),
        "false_reject": _rate_json(category.false_reject),
    }


def _rate_json(rate: ErrorRate) -> dict[str, Any]:
    return {
        "k": rate.k,
        "n": rate.n,
        "estimate": rate.estimate,
        "low": rate.low,
        "high": rate.high,
        "method": rate.method,
        "strata": [{"qa_rate": s.qa_rate, **s.interval.to_json()} for s in rate.strata],
    }


def _desk_json(desk: tuple[QueueStats, ...] | str) -> dict[str, Any]:
    if isinstance(desk, str):
        return {"read": False, "why": desk}
    return {
        "read": True,
        "tenants": [
            {
                "tenant": q.tenant,
                "open": q.open,
                "leased": q.leased,
                "age_p50_seconds": q.age_p50,
                "age_p95_seconds": q.age_p95,
                "sla_breaches": q.breaches,
            }
            for q in desk
        ],
    }
