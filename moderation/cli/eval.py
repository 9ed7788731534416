"""`moderation eval`: run the real pipeline over a labelled image set, once per judge model, and
report precision, recall and F1 of the pipeline and of the judge alone, side by side
(`moderation.evaluate`, docs/eval.md)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from moderation.cli._common import env_settings, tenant_store, usage_exit
from moderation.engine import Engine
from moderation.errors import ConfigurationError, ModerationError
from moderation.evaluate import (
    LabelledImage,
    LabelsError,
    ModelRun,
    estimate,
    read_labels,
    report,
    run_model,
)
from moderation.image import ImageIntake
from moderation.policy import Policy, PolicyStore
from moderation.pricing import Pricing
from moderation.settings import Settings

__all__ = ["eval_command"]

EXIT_OK, EXIT_USAGE, EXIT_UNDECIDED, EXIT_BAD_POLICIES = 0, 2, 3, 4

_EPILOG = """\b
LABELS is a CSV with the header file,expected[,category]: the image's file name under --images,
approve or reject (approved, rejected too), and optionally a category to report it under (else
the policy rule that decided).

\b
Each --model is a run of its own: the tenant's policy with the judge asking that Bedrock model.
Without --model, the model the policy names. The estimated cost is printed on stderr before the
first call; each run asks the judge at most --max-judge-calls times, and escalations past the
limit are sent to review without a call and counted as "not called".

\b
Exit codes:
  0  the report is printed; every image was decided
  2  usage error: a bad labels row (its line is named), a missing image, an unknown tenant,
     bad options or configuration, unreadable recordings
  3  the report is printed, but at least one image could not be moderated (listed)
  4  the policies are invalid

Decisions are kept in memory (the production audit log and review desk are not used) unless
--audit names a sink. Settings come from the environment (MODERATION_POLICIES, MODERATION_REGION,
MODERATION_JUDGE, MODERATION_BEDROCK_RPM, ...); the options override them."""


@click.command("eval", epilog=_EPILOG)
@click.option(
    "--labels",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="The labels CSV: file,expected[,category].",
)
@click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="The directory the CSV's file names are relative to.",
)
@click.option("--tenant", default="default", show_default=True, help="Whose policy applies.")
@click.option(
    "--model",
    "models",
    multiple=True,
    help="A Bedrock model id (or inference profile) for the judge; repeat to compare models.",
)
@click.option(
    "--offline",
    "recordings",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Answer from recorded Rekognition/Bedrock responses in this directory; no AWS call.",
)
@click.option(
    "--max-judge-calls",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="The most judge calls of each model run.",
)
@click.option("--policies", "directory", help="Policy directory (default: $MODERATION_POLICIES).")
@click.option("--region", help="AWS region (default: $MODERATION_REGION, $AWS_REGION, boto3's).")
@click.option("--audit", help="Also write the runs' decisions to this sink (a file path, ...).")
@click.option(
    "--workers", type=click.IntRange(min=1), default=4, show_default=True, help="Threads per run."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def eval_command(
    labels: Path,
    images: Path,
    tenant: str,
    models: tuple[str, ...],
    recordings: Path | None,
    max_judge_calls: int,
    directory: str | None,
    region: str | None,
    audit: str | None,
    workers: int,
    as_json: bool,
) -> None:
    """Evaluate the pipeline and its judge on labelled images: per category and per model,
    precision, recall and F1 (a rejection is the positive class) with 95% intervals, the share
    sent to people, the escalation rate, cost per 1,000 images and latency."""
    settings = env_settings(policies=directory, region=region)
    settings = dataclasses.replace(
        settings, audit=audit, review=None, review_images=None, review_webhook=None
    )
    try:
        labelled = read_labels(labels, images)
    except LabelsError as exc:
        raise usage_exit(str(exc)) from exc
    store, policy = tenant_store(settings, tenant, exit_code=EXIT_BAD_POLICIES)
    runs_of = _models(policy, models)
    pricing = Pricing()
    plan = estimate(len(labelled), runs_of, max_judge_calls, pricing)
    click.echo(plan.describe(), err=True)
    runs: list[ModelRun] = []
    for model in runs_of:
        engine = _engine(store, recordings, settings)
        if models and engine.judge is None:
            raise usage_exit("--model: MODERATION_JUDGE is none, so no model would be asked")
        run = run_model(
            engine,
            labelled,
            tenant=tenant,
            model=model if models else None,  # None: whatever the policy names
            max_judge_calls=max_judge_calls,
            workers=workers,
        )
        runs.append(dataclasses.replace(run, model=model))  # reported as the model it asked
    body = report(runs, pricing)
    body = {"tenant": tenant, "labels": str(labels), "images": len(labelled), **body}
    body["max_judge_calls"] = max_judge_calls
    body["estimate"] = plan.to_json()
    click.echo(json.dumps(body, indent=2) if as_json else _text(body, labelled))
    failed = any(model["failed"] for model in body["models"])
    raise click.exceptions.Exit(EXIT_UNDECIDED if failed else EXIT_OK)


def _models(policy: Policy, models: Sequence[str]) -> list[str | None]:
    """The model of each run: the ones given, else the policy's (None: its judge is none)."""
    if not models:
        return [policy.escalation.model_id if policy.escalation.judge != "none" else None]
    if policy.escalation.judge == "none":
        raise usage_exit(
            f"--model: policy '{policy.id}' has `judge: none`, so no model is ever asked; "
            "evaluate a tenant whose policy escalates to a judge"
        )
    if len(set(models)) != len(models):
        raise usage_exit("--model: a model is named twice")
    return list(models)


def _engine(store: PolicyStore, recordings: Path | None, settings: Settings) -> Engine:
    """A fresh engine for one run: answering from `recordings`, or AWS's. Its decisions go to
    `settings.audit` when set, else are kept in memory only."""
    from moderation import wiring
    from moderation.audit import InMemoryAuditLog

    try:
        audit = wiring.audit_sink(settings) if settings.audit else InMemoryAuditLog()
    except (ConfigurationError, ValueError) as exc:
        raise usage_exit(f"--audit: {exc}") from exc
    if recordings is not None:
        from moderation.recorded import RecordedDetector, RecordedJudge, Recordings

        try:
            recorded = Recordings.load(recordings)
        except ModerationError as exc:
            raise usage_exit(f"--offline {recordings}: {exc}") from exc
        return Engine(
            store, RecordedDetector(recorded), RecordedJudge(recorded), audit, intake=ImageIntake()
        )
    try:
        parts = wiring.engine_parts(settings, audit=audit, policies=store)
    except ModerationError as exc:  # e.g. no AWS region: fix the setup first
        raise usage_exit(str(exc)) from exc
    return Engine.from_parts(parts)


def _rate(value: dict[str, Any]) -> str:
    """`0.667 [0.094, 0.992] 2/3`, or `- 0/0` when nothing was observed."""
    if value["rate"] is None:
        return f"- {value['k']}/{value['n']}"
    return (
        f"{value['rate']:.3f} [{value['low']:.3f}, {value['high']:.3f}] {value['k']}/{value['n']}"
    )


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    """The report's rows for one model's metrics of one group."""
    pipeline, judge = m["pipeline"], m["judge"]
    cost, latency = m["cost_per_1000_usd"], m["latency_ms"]
    return [
        ("images (failed)", f"{m['images']} ({m['failed']})"),
        ("pipeline precision", _rate(pipeline["precision"])),
        ("pipeline recall", _rate(pipeline["recall"])),
        ("pipeline F1", _number(pipeline["f1"], ".3f")),
        ("sent to people", _rate(pipeline["sent_to_people"]["share"])),
        ("  of them harmful", str(pipeline["sent_to_people"]["harmful"])),
        ("escalated", _rate(judge["escalated"])),
        ("judge calls (not called)", f"{judge['calls']} ({judge['not_called']})"),
        ("judge unsure / no verdict", f"{judge['unsure']} / {judge['no_verdict']}"),
        ("judge precision", _rate(judge["precision"])),
        ("judge recall", _rate(judge["recall"])),
        ("judge F1", _number(judge["f1"], ".3f")),
        ("cost per 1,000 (billed)", "$" + _number(cost["billed"], ".4f")),
        ("judge per 1,000 (priced)", "$" + _number(cost["judge_priced"], ".4f")),
        (
            "latency p50 / p95 ms",
            f"{_number(latency['p50'], '.0f')} / {_number(latency['p95'], '.0f')}",
        ),
    ]


def _table(header: list[str], columns: list[list[tuple[str, str]]]) -> list[str]:
    """Rows named in the first column, one column per model, padded to line up."""
    names = [name for name, _ in columns[0]]
    cells = [header] + [[name] + [col[i][1] for col in columns] for i, name in enumerate(names)]
    widths = [max(len(row[j]) for row in cells) for j in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def _text(body: dict[str, Any], labelled: Sequence[LabelledImage]) -> str:
    """The report for a person: a table per group (all, then each category), models side by side."""
    runs = body["models"]
    models = [run["model"] or "(no judge model)" for run in runs]
    lines = [
        f"tenant {body['tenant']}: {len(labelled)} labelled image(s), {len(runs)} model run(s), "
        f"at most {body['max_judge_calls']} judge call(s) each; "
        f"intervals {body['confidence']:.0%} Clopper-Pearson"
    ]
    groups = [("all", [run["all"] for run in runs])]
    groups += [(name, [run["categories"][name] for run in runs]) for name in runs[0]["categories"]]
    for name, metrics in groups:
        lines.append("")
        lines += _table([f"category {name}", *models], [_rows(m) for m in metrics])
    for run in runs:
        for failed in run["failed"]:
            lines.append(f"not moderated ({run['model']}): {failed['file']}: {failed['error']}")
    return "\n".join(lines)
