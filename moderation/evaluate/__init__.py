"""Evaluating the pipeline and its judge on a labelled image set (`moderation eval`,
docs/eval.md): read the labels, run the real engine once per judge model, and score it.

A rejection is the positive class. Precision and recall (with exact Clopper-Pearson intervals from
`moderation.stats`) are over the pipeline's automatic outcomes; `review` outcomes are counted apart
as sent to people. The judge alone is scored on the escalated images it gave a verdict on.
"""

from __future__ import annotations

from moderation.evaluate._labels import LabelledImage, LabelsError, read_labels
from moderation.evaluate._metrics import (
    NO_RULE,
    Confusion,
    Metrics,
    Result,
    metrics,
    percentile,
)
from moderation.evaluate._run import (
    AskModel,
    Estimate,
    ModelRun,
    estimate,
    prepare_engine,
    report,
    run_model,
)

__all__ = [
    "NO_RULE",
    "AskModel",
    "Confusion",
    "Estimate",
    "LabelledImage",
    "LabelsError",
    "Metrics",
    "ModelRun",
    "Result",
    "estimate",
    "metrics",
    "percentile",
    "prepare_engine",
    "read_labels",
    "report",
    "run_model",
]
