"""`replay` and `replay_shadow`: recorded decisions triaged again, streaming, into a report."""

from __future__ import annotations

import os

from moderation.decision import OUTCOME_OF_ACTION, Decision
from moderation.detection import Detection
from moderation.errors import ModerationError, ReplayError
from moderation.outcome import answer_key, reusable_answer
from moderation.policy import DEFAULT_POLICY, Band, PolicyStore
from moderation.replay._live import LiveJudging, LiveRun
from moderation.replay._report import DEFAULT_KEEP, ReplayReport
from moderation.replay._resolved import Resolved
from moderation.replay._source import Source, items
from moderation.replay._tally import Tally
from moderation.triage import Action, CompiledPolicy, Finding

__all__ = ["replay", "replay_shadow", "shadow_reports"]

_BAND_OF_ACTION = {
    Action.REJECT: Band.REJECT,
    Action.REVIEW: Band.REVIEW,
    Action.ESCALATE: Band.ESCALATE,
}
_BAND_RANK = {Band.IGNORE: 0, Band.ESCALATE: 1, Band.REVIEW: 2, Band.REJECT: 3}
# Tenants whose resolution is remembered; past it (a log naming ever new tenants) each is resolved
# again, which is cheap, rather than remembered without bound.
_MAX_TENANTS = 10_000


class _Resolver:
    """Each tenant's policy in the store as it is now, as the engine would pick it."""

    def __init__(self, store: PolicyStore) -> None:
        self.store = store
        self._cache: dict[tuple[str, bool], Resolved | str] = {}
        self._compiled: dict[str, Resolved] = {}

    def get(self, tenant: str, fallback: bool) -> Resolved | str:
        """The tenant's policy; for a decision made under the default policy because the tenant
        had none (`policy_fallback`), the default policy while the tenant still has none.
        A message saying why when there is no policy to replay under."""
        key = (tenant, fallback)
        found = self._cache.get(key)
        if found is None:
            found = self._resolve(tenant, fallback)
            if len(self._cache) < _MAX_TENANTS:
                self._cache[key] = found
        return found

    def _resolve(self, tenant: str, fallback: bool) -> Resolved | str:
        store = self.store
        try:
            if tenant in store:
                policy = store.get(tenant)
            elif fallback or store.fallback_to_default:
                policy = store.get(DEFAULT_POLICY)
            else:
                store.get(tenant)  # raises UnknownTenant (or InvalidTenant) with a hint
                raise AssertionError("unreachable")  # pragma: no cover
        except ModerationError as exc:
            return f"tenant {tenant!r}: {exc}"
        resolved = self._compiled.get(policy.id)
        if resolved is None:
            resolved = self._compiled[policy.id] = Resolved.of(policy)
        return resolved


def _store(policies: PolicyStore | str | os.PathLike[str]) -> tuple[PolicyStore, str | None]:
    if isinstance(policies, str | os.PathLike):
        return PolicyStore(policies), str(policies)
    if not isinstance(policies, PolicyStore):
        raise TypeError(f"policies is a PolicyStore or a directory, not {type(policies).__name__}")
    return policies, str(policies.path) if policies.path is not None else None


def _check_keep(keep: int) -> None:
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
        raise ValueError(f"keep must be a whole number >= 0, got {keep!r}")


def _bad(tally: Tally, strict: bool, file: str | None, line: int, message: str) -> None:
    if strict:
        raise ReplayError(message, file=file, line=line)
    tally.bad(file, line, message)


def _decides(finding: Finding) -> tuple[int, float, int, str]:
    # The order Triage.deciding uses: band, then confidence, then level, then name.
    return (_BAND_RANK[finding.band], finding.confidence, finding.level, finding.label)


def explain(
    compiled: CompiledPolicy, decision: Decision, detection: Detection
) -> tuple[tuple[Finding, ...], tuple[str, ...], str | None]:
    """A flip's findings, reasons and category: what decides under the replay policy; for a
    flip to approved by policy, the recorded findings that acted and no longer do."""
    triage = compiled.evaluate(detection)
    if triage.action is Action.APPROVE:
        recorded = decision.triage.findings if decision.triage is not None else ()
        acting = (f for f in recorded if f.band is not Band.IGNORE)
        findings = tuple(sorted(acting, key=lambda f: (-_BAND_RANK[f.band], -f.confidence)))
    else:
        findings = triage.at(_BAND_OF_ACTION[triage.action])
    deciding = max(findings, key=_decides, default=None)
    return (
        findings,
        tuple(f.describe() for f in findings),
        deciding.rule if deciding is not None else None,
    )


def replay(
    source: Source,
    policies: PolicyStore | str | os.PathLike[str],
    *,
    tenant: str | None = None,
    live: LiveJudging | None = None,
    strict: bool = False,
    keep: int = DEFAULT_KEEP,
) -> ReplayReport:
    """What triage under `policies` as they are now does to the recorded decisions of `source`.

    `source`: a log path (read with its rotated predecessors), several paths, or Decisions.
    `policies`: a PolicyStore or a policy directory. `tenant`: only that tenant's decisions.
    Where the new triage escalates, the recorded judge answer is reused: its verdict, or a reply
    that was blocked or gave no usable verdict (then the policy's `on_blocked` / `on_error` now).
    Where the judge was never asked or its call failed, the case needs judgment (never an
    invented outcome), unless `live` judges it for real.
    Bad records and tenants without a policy are listed in `errors`; with `strict`, the first
    raises ReplayError naming its file and line. Memory stays bounded: lists hold at most `keep`
    entries each. Raises FileNotFoundError for a named log that does not exist, PolicyError for
    invalid policies. See docs/replay.md.
    """
    store, shown = _store(policies)
    _check_keep(keep)
    resolver = _Resolver(store)
    tally = Tally(keep, usage=live is not None)
    run = LiveRun(live, keep) if live is not None else None
    for file, line, decision, error in items(source):
        tally.records_read += 1
        if error is not None:
            _bad(tally, strict, file, line, error)
            continue
        if decision is None or (tenant is not None and decision.tenant != tenant):
            continue  # a file header or torn-record note, or another tenant
        _replay_decision(decision, file, line, resolver, tally, run, strict)
    summary = run.judge_all(tally) if run is not None else None
    return tally.report(policies=shown, tenant=tenant, live=summary)


def _replay_decision(
    decision: Decision,
    file: str | None,
    line: int,
    resolver: _Resolver,
    tally: Tally,
    run: LiveRun | None,
    strict: bool,
) -> None:
    """Triage one recorded decision again and count what changed; offer it to `run` when it
    needs a judgment the log lacks."""
    called = tally.seen(decision)
    detection = decision.detection
    if detection is None:
        tally.unreplayable(decision)
        return
    resolved = resolver.get(decision.tenant, decision.policy_fallback)
    if isinstance(resolved, str):
        _bad(tally, strict, file, line, f"decision {decision.id}: {resolved}")
        return
    action = resolved.compiled.action(detection)
    if action is Action.ESCALATE:
        # The engine's own rule (`decide`, worked out per answer for this policy), with the
        # recorded reply where there is one (a verdict, or a reply without one that the
        # policy's fallback now decides); a failed or skipped call left nothing to reuse, so
        # such a case needs judgment.
        answer = reusable_answer(decision.escalation)
        after, judge_call = resolved.escalated[answer_key(answer)]
        reused = judge_call and after is not None
        other_model = reused and answer is not None and answer.model_id != resolved.model_id
    else:
        after, judge_call, reused, other_model = OUTCOME_OF_ACTION[action], False, False, False
    # The log cannot show everything the policy would see: labels below the recorded
    # MinConfidence, or frames of an animation that were not sent.
    partial = detection.misses(
        min_confidence=resolved.min_confidence,
        max_frames=resolved.max_frames,
        n_frames=decision.image.n_frames,
    )
    if tally.replay(decision, action, after, judge_call, partial, reused, other_model, called):
        assert after is not None
        explained = explain(resolved.compiled, decision, detection)
        tally.flip(decision, file, line, after, explained, reused=reused, incomplete=partial)
    if after is None and run is not None:
        run.offer(decision, file, line, resolved, partial)


def replay_shadow(
    source: Source,
    *,
    tenant: str | None = None,
    strict: bool = False,
    keep: int = DEFAULT_KEEP,
) -> dict[str, ReplayReport]:
    """One report per shadow policy id: each recorded live outcome against what the decision's
    recorded `shadow` result for that policy would have decided. No policy is read.

    A shadow outcome of None (the shadow would have escalated, with no verdict to reuse) counts
    as needs judgment; a shadow's `incomplete` and `verdict_reused` are carried. Each report
    counts the decisions that carry that shadow; bad records are listed in every report.
    """
    return shadow_reports(source, tenant=tenant, strict=strict, keep=keep)[0]


def shadow_reports(
    source: Source,
    *,
    tenant: str | None = None,
    strict: bool = False,
    keep: int = DEFAULT_KEEP,
) -> tuple[dict[str, ReplayReport], Tally]:
    """`replay_shadow`'s reports, and the tally of the records read (how many, which were bad),
    which still says something when no decision carried a shadow result."""
    _check_keep(keep)
    common = Tally(keep)
    tallies: dict[str, Tally] = {}
    for file, line, decision, error in items(source):
        common.records_read += 1
        if error is not None:
            _bad(common, strict, file, line, error)
            continue
        if decision is None or (tenant is not None and decision.tenant != tenant):
            continue
        for shadow in decision.shadow:
            tally = tallies.get(shadow.policy.id)
            if tally is None:
                tally = tallies[shadow.policy.id] = Tally(keep)
            called = tally.seen(decision)
            escalates = shadow.action is Action.ESCALATE
            after = shadow.outcome
            reused = shadow.verdict_reused
            # A shadow that escalates asks the judge unless it has none (its outcome review).
            judge_call = escalates and (after is None or reused)
            incomplete = shadow.incomplete
            if tally.replay(
                decision, shadow.action, after, judge_call, incomplete, reused, False, called
            ):
                assert after is not None
                explained = ((), shadow.reasons, None)
                tally.flip(
                    decision, file, line, after, explained, reused=reused, incomplete=incomplete
                )
    reports: dict[str, ReplayReport] = {}
    for policy_id in sorted(tallies):
        tally = tallies[policy_id]
        tally.records_read = common.records_read
        tally.error_count, tally.errors = common.error_count, common.errors
        tally.truncated = tally.truncated or common.truncated
        reports[policy_id] = tally.report(policies=f"shadow policy {policy_id}", tenant=tenant)
    return reports, common
