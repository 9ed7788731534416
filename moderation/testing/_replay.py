"""`assert_replay`: a golden test that recorded decisions still come out the same."""

from __future__ import annotations

import os
from collections.abc import Iterable

from moderation.policy import PolicyStore
from moderation.replay._report import Flip, ReplayReport
from moderation.replay._run import replay
from moderation.replay._source import Source

__all__ = ["assert_replay"]

# What the message lists of each kind of problem; the counts are always given in full.
_SHOW = 50


def assert_replay(
    source: Source,
    policies: PolicyStore | str | os.PathLike[str],
    *,
    allow: Iterable[str] = (),
    tenant: str | None = None,
) -> ReplayReport:
    """The replay report, when replaying `source` under `policies` changes no recorded outcome
    but those of the decision ids in `allow`.

    Raises AssertionError, with a table of the unexpected flips (id, tenant, before -> after,
    reason), when another decision flips; also, listed apart, for needs-judgment cases not in
    `allow` (their outcome cannot be proven without a judge), for records that could not be
    replayed (unreadable lines, tenants without a policy: a golden test must not skip records
    silently), and for a source with no decision to check.
    """
    allowed = set(allow)
    report = replay(source, policies, tenant=tenant)
    flips = [flip for flip in report.flips if flip.decision_id not in allowed]
    undecided = [i for i in report.needs_judgment_ids if i not in allowed]
    # Ids are kept up to replay's `keep` limit; beyond it, the counts still tell.
    extra_flips = report.flipped - len(report.flips)
    extra_undecided = report.needs_judgment - len(report.needs_judgment_ids)
    parts: list[str] = []
    if flips or extra_flips > 0:
        n = len(flips) + max(extra_flips, 0)
        parts.append(f"{n} decision{_s(n)} flipped:\n" + _table(flips))
    if undecided or extra_undecided > 0:
        n = len(undecided) + max(extra_undecided, 0)
        parts.append(
            f"{n} decision{_s(n)} need{'s' if n == 1 else ''} a judgment the log does not hold "
            "(the replay policy escalates and no verdict was recorded), so the outcome is "
            "unproven:\n"
            + "\n".join(f"  {i}" for i in undecided[:_SHOW])
            + _more(n, min(len(undecided), _SHOW))
        )
    if report.error_count:
        n = report.error_count
        parts.append(
            f"{n} record{_s(n)} could not be replayed:\n"
            + "\n".join(f"  {e.where}: {e.message}" for e in report.errors[:_SHOW])
            + _more(n, min(len(report.errors), _SHOW))
        )
    if report.decisions == 0:
        only = f" of tenant {tenant!r}" if tenant is not None else ""
        parts.append(f"no decision{only} to replay: the source is empty, so nothing was checked")
    if parts:
        raise AssertionError("replay changed recorded decisions:\n\n" + "\n\n".join(parts))
    return report


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _more(total: int, shown: int) -> str:
    return f"\n  ... and {total - shown} more" if total > shown else ""


def _table(flips: list[Flip]) -> str:
    rows = [("id", "tenant", "before -> after", "reason")]
    for flip in sorted(flips, key=lambda f: f.decision_id)[:_SHOW]:
        reason = flip.reasons[0] if flip.reasons else "(no finding acts)"
        if len(flip.reasons) > 1:
            reason += f" (+{len(flip.reasons) - 1} more)"
        if flip.incomplete:
            reason += " [incomplete]"
        rows.append(
            (flip.decision_id, flip.tenant, f"{flip.before.value} -> {flip.after.value}", reason)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  "
        + "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in rows
    ]
    return "\n".join(lines) + _more(len(flips), min(len(flips), _SHOW))
