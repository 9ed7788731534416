"""CloudWatch metrics in Embedded Metric Format, one line per tenant per invocation (Powertools).

Metrics (namespace `Moderation`, or POWERTOOLS_METRICS_NAMESPACE; dimension `tenant`, plus
`service` when POWERTOOLS_SERVICE_NAME is set):

| metric | unit | one per |
| --- | --- | --- |
| `Approved`, `Rejected`, `Review`, `Invalid` | Count | new outcome |
| `Escalations` | Count | new decision that asked the judge (or would have: skipped ones too) |
| `JudgeFailures` | Count | new decision whose judge call failed or gave no usable verdict |
| `LatencyMs` | Milliseconds | new decision (its `timings_ms.total`) |
| `CostUSD` | None | new decision whose cost is known (`cost.total_usd`) |
| `Redelivered` | Count | object whose stored answer was returned (nothing was moderated) |
| `TransientFailures` | Count | object left to be retried (tenant `unknown` before it is read) |

A redelivery adds only `Redelivered`: the outcome, latency and cost were counted the first time.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from moderation.decision import Decision

__all__ = ["DEFAULT_NAMESPACE", "NAMESPACE_ENV", "Tally", "namespace"]

DEFAULT_NAMESPACE = "Moderation"
NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"
UNKNOWN_TENANT = "unknown"

_OUTCOME_METRIC = {
    "approved": "Approved",
    "rejected": "Rejected",
    "review": "Review",
    "invalid": "Invalid",
}


def namespace() -> str:
    """The metrics namespace: POWERTOOLS_METRICS_NAMESPACE when set, else `Moderation`."""
    return os.environ.get(NAMESPACE_ENV, "").strip() or DEFAULT_NAMESPACE


@dataclass
class _Tenant:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    latency_ms: list[float] = field(default_factory=list)
    cost_usd: list[float] = field(default_factory=list)


class Tally:
    """What one invocation did, by tenant, until `flush` prints it as EMF lines."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._tenants: dict[str, _Tenant] = defaultdict(_Tenant)

    def decided(self, tenant: str, decision: Decision) -> None:
        """A new decision: its outcome, escalation, judge failure, latency and cost."""
        t = self._tenants[tenant]
        t.counts[_OUTCOME_METRIC[decision.outcome.value]] += 1
        if decision.escalation is not None:
            t.counts["Escalations"] += 1
            if decision.escalation.answer in ("failed", "invalid"):
                t.counts["JudgeFailures"] += 1
        total = decision.timings_ms.get("total")
        if total is not None:
            t.latency_ms.append(float(total))
        if decision.cost is not None and decision.cost.total_usd is not None:
            t.cost_usd.append(decision.cost.total_usd)

    def invalid(self, tenant: str) -> None:
        """A new invalid outcome (nothing was decided: the input cannot be moderated)."""
        self._tenants[tenant].counts["Invalid"] += 1

    def redelivered(self, tenant: str) -> None:
        """An object whose stored answer was returned."""
        self._tenants[tenant].counts["Redelivered"] += 1

    def transient(self, tenant: str | None) -> None:
        """An object left to be retried."""
        self._tenants[tenant or UNKNOWN_TENANT].counts["TransientFailures"] += 1

    def flush(self) -> None:
        """Print one EMF line per tenant (nothing for an invocation that did nothing)."""
        tenants, self._tenants = self._tenants, defaultdict(_Tenant)
        for tenant in sorted(tenants):
            t = tenants[tenant]
            metrics = EphemeralMetrics(namespace=self.namespace)
            metrics.add_dimension(name="tenant", value=tenant)
            for name, count in sorted(t.counts.items()):
                metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
            for value in t.latency_ms:
                metrics.add_metric(name="LatencyMs", unit=MetricUnit.Milliseconds, value=value)
            for value in t.cost_usd:
                metrics.add_metric(name="CostUSD", unit=MetricUnit.NoUnit, value=value)
            if metrics.metric_set:
                metrics.flush_metrics()
