"""Running the pipeline over the labelled images, once per judge model, and the cost estimate
told before it starts."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moderation.budget import EscalationBudget
from moderation.evaluate._labels import LabelledImage
from moderation.evaluate._metrics import NO_RULE, Result, metrics
from moderation.limits import unwrapped
from moderation.pricing import Pricing
from moderation.replay import DEFAULT_JUDGE_USAGE

if TYPE_CHECKING:
    from moderation.engine import Engine
    from moderation.image import PreparedImage
    from moderation.ports import Judge, JudgeRequest, Judgment

__all__ = ["AskModel", "Estimate", "ModelRun", "estimate", "prepare_engine", "report", "run_model"]


class AskModel:
    """A judge that asks `model_id` (when given) whatever model the tenant's policy names, and
    counts its calls: the policy's guidance, findings and fallbacks stay as they are. The decision
    records the model that answered (`escalation.model_id`)."""

    def __init__(self, inner: Judge, model_id: str | None) -> None:
        self.inner = inner
        self.model_id = model_id
        self.calls = 0
        self._lock = threading.Lock()

    def judge(self, image: PreparedImage, request: JudgeRequest) -> Judgment:
        """The inner judge's answer, asked of `model_id`."""
        with self._lock:
            self.calls += 1
        if self.model_id is not None:
            request = request.model_copy(update={"model_id": self.model_id})
        return self.inner.judge(image, request)

    def ensure_pool(self, workers: int) -> None:
        """Widen the inner judge's connection pool (`Engine.size_pools`)."""
        ensure = getattr(unwrapped(self.inner), "ensure_pool", None)
        if callable(ensure):
            ensure(workers)


def prepare_engine(engine: Engine, model_id: str | None, max_judge_calls: int) -> AskModel | None:
    """Make `engine` ask `model_id` (None: the policy's model) at most `max_judge_calls` times:
    its judge (rate limits kept) is wrapped in `AskModel`, and its escalation budget refuses every
    call past the limit, so an escalation past it is decided as the policy decides one the judge
    was not asked about (review), and says so. The `AskModel`, or None for an engine without a
    judge."""
    engine.budget = EscalationBudget(max_calls=max_judge_calls)
    if engine.judge is None:
        return None
    asking = AskModel(engine.judge, model_id)
    engine.judge = asking
    return asking


@dataclass(frozen=True, slots=True)
class ModelRun:
    """One engine run: the model asked (None: the policy's), its results, the judge calls made."""

    model: str | None
    results: tuple[Result, ...]
    judge_calls: int


def run_model(
    engine: Engine,
    images: Sequence[LabelledImage],
    *,
    tenant: str,
    model: str | None,
    max_judge_calls: int,
    workers: int = 4,
) -> ModelRun:
    """Moderate every labelled image with `engine` asking `model` (see `prepare_engine`)."""
    asking = prepare_engine(engine, model, max_judge_calls)
    results: list[Result] = []
    items = engine.moderate_many(
        [str(image.path) for image in images], tenant=tenant, max_workers=workers, ordered=True
    )
    for item in items:
        labelled = images[item.index]
        decision = item.decision
        deciding = decision.triage.deciding if decision and decision.triage else None
        category = labelled.category or (deciding.rule if deciding else NO_RULE)
        error = None if item.error is None else f"{type(item.error).__name__}: {item.error}"
        results.append(Result(labelled.file, labelled.harmful, category, decision, error))
    return ModelRun(model, tuple(results), asking.calls if asking else 0)


@dataclass(frozen=True, slots=True)
class Estimate:
    """What the runs may cost, told before they start: every image is one Rekognition call per
    model run (an animation is one per frame sent), and each run makes at most
    min(images, max_judge_calls) judge calls, each priced with `DEFAULT_JUDGE_USAGE` tokens."""

    images: int
    runs: int
    judge_calls: int
    rekognition_usd: float
    judge_usd: dict[str, float | None]

    @property
    def total_usd(self) -> float | None:
        """The whole estimate; None when a model has no price."""
        judge = list(self.judge_usd.values())
        if any(usd is None for usd in judge):
            return None
        return self.rekognition_usd + sum(usd for usd in judge if usd is not None)

    def describe(self) -> str:
        """Lines for a person, before the first call."""
        total = self.total_usd
        lines = [
            f"estimated cost: at most {'unknown' if total is None else f'${total:.4f}'} "
            f"({self.runs} run(s) of {self.images} image(s))",
            f"  rekognition: {self.images} image(s) x {self.runs} run(s): "
            f"${self.rekognition_usd:.4f}",
        ]
        usage = DEFAULT_JUDGE_USAGE
        for model, usd in self.judge_usd.items():
            cost = "no price for this model" if usd is None else f"${usd:.4f}"
            lines.append(
                f"  judge {model}: at most {self.judge_calls} call(s) x {usage.input_tokens:,} "
                f"input + {usage.output_tokens:,} output tokens: {cost}"
            )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The estimate as JSON (docs/eval.md, "JSON")."""
        return {
            "images": self.images,
            "runs": self.runs,
            "judge_calls_per_run": self.judge_calls,
            "rekognition_usd": self.rekognition_usd,
            "judge_usd": dict(self.judge_usd),
            "total_usd": self.total_usd,
        }


def estimate(
    images: int, models: Sequence[str | None], max_judge_calls: int, pricing: Pricing
) -> Estimate:
    """The estimate for `images` under each of `models` (None: an engine with no judge model)."""
    calls = min(images, max_judge_calls)
    judge_usd: dict[str, float | None] = {}
    for model in models:
        if model is not None:
            price = pricing.bedrock(model, DEFAULT_JUDGE_USAGE)
            judge_usd[model] = None if price is None else price * calls
    return Estimate(
        images=images,
        runs=len(models),
        judge_calls=calls if judge_usd else 0,
        rekognition_usd=images * len(models) * pricing.rekognition_per_image,
        judge_usd=judge_usd,
    )


def report(runs: Sequence[ModelRun], pricing: Pricing, confidence: float = 0.95) -> dict[str, Any]:
    """Per model: `judge_calls`, `failed` (file and error of each image with no decision), `all`
    and `categories` (name -> metrics JSON, `Metrics.to_json`), categories sorted by name."""
    names = sorted({r.category for run in runs for r in run.results})
    out: list[dict[str, Any]] = []
    for run in runs:
        by_category = {
            name: metrics([r for r in run.results if r.category == name], pricing).to_json(
                confidence
            )
            for name in names
        }
        out.append(
            {
                "model": run.model,
                "judge_calls": run.judge_calls,
                "failed": [{"file": r.file, "error": r.error} for r in run.results if r.error],
                "all": metrics(run.results, pricing).to_json(confidence),
                "categories": by_category,
            }
        )
    return {"confidence": confidence, "models": out}
