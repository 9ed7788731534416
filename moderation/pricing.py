"""Estimated cost of a decision: Rekognition per image, Bedrock per token. Configurable per model.

The defaults are on-demand list prices in US dollars (us-east-1) at the time of writing; they are
estimates for dashboards and budgets, not a bill. Pass your own `Pricing` for your contract.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from moderation.decision import Cost, Escalation, TokenUsage
from moderation.detection import Detection

__all__ = ["DEFAULT_MODEL_PRICES", "ModelPrice", "Pricing"]


# Prompt-cache rates as multiples of the model's input price. Sources, looked up 2026-11: the
# Bedrock user guide's "Prompt caching" page (cache reads at a reduced rate, cache writes possibly
# above the input rate, per model; figures on https://aws.amazon.com/bedrock/pricing/) and
# published summaries of that pricing page for Claude on Bedrock: reads 0.1x, writes 1.25x.
# Amazon Nova: reads 0.25x, writes not charged, as the pricing page lists Nova; that page itself
# could not be read at the time, so check it before relying on these for a bill.
_ANTHROPIC_CACHE_READ = 0.1
_ANTHROPIC_CACHE_WRITE = 1.25
_NOVA_CACHE_READ = 0.25


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """US dollars per million tokens: input, output, prompt-cache reads and prompt-cache writes.

    A cache rate left as None charges those tokens at the input price: an overestimate when the
    real rate is unknown, which is the safe side for a budget.
    """

    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None

    @classmethod
    def anthropic(cls, input_per_mtok: float, output_per_mtok: float) -> ModelPrice:
        """An Anthropic model's price on Bedrock: cache reads 0.1x and writes 1.25x the input."""
        return cls(
            input_per_mtok,
            output_per_mtok,
            cache_read_per_mtok=input_per_mtok * _ANTHROPIC_CACHE_READ,
            cache_write_per_mtok=input_per_mtok * _ANTHROPIC_CACHE_WRITE,
        )

    @classmethod
    def nova(cls, input_per_mtok: float, output_per_mtok: float) -> ModelPrice:
        """An Amazon Nova model's price: cache reads 0.25x the input, cache writes free."""
        return cls(
            input_per_mtok,
            output_per_mtok,
            cache_read_per_mtok=input_per_mtok * _NOVA_CACHE_READ,
            cache_write_per_mtok=0.0,
        )


DEFAULT_MODEL_PRICES: Mapping[str, ModelPrice] = {
    "anthropic.claude-haiku-4-5-20251001-v1:0": ModelPrice.anthropic(1.00, 5.00),
    "anthropic.claude-sonnet-4-5-20250929-v1:0": ModelPrice.anthropic(3.00, 15.00),
    "anthropic.claude-3-5-haiku-20241022-v1:0": ModelPrice.anthropic(0.80, 4.00),
    "amazon.nova-micro-v1:0": ModelPrice.nova(0.035, 0.14),
    "amazon.nova-lite-v1:0": ModelPrice.nova(0.06, 0.24),
    "amazon.nova-pro-v1:0": ModelPrice.nova(0.80, 3.20),
}

# Cross-region inference profiles prefix the model id: us., eu., apac., global. …
_PROFILE_PREFIX = re.compile(r"^(us|eu|apac|ap|ca|jp|au|us-gov|global)\.")


@dataclass(frozen=True, slots=True)
class Pricing:
    """Prices used for `Decision.cost`."""

    rekognition_per_image: float = 0.001
    models: Mapping[str, ModelPrice] = field(default_factory=lambda: dict(DEFAULT_MODEL_PRICES))

    def bedrock(self, model_id: str, usage: TokenUsage | None) -> float | None:
        """Dollars for one call's tokens, cache reads and writes at their own rates; None when the
        model has no price here."""
        if usage is None:
            return 0.0
        price = self.models.get(model_id) or self.models.get(_PROFILE_PREFIX.sub("", model_id))
        if price is None:
            return None
        read = (
            price.input_per_mtok if price.cache_read_per_mtok is None else price.cache_read_per_mtok
        )
        write = (
            price.input_per_mtok
            if price.cache_write_per_mtok is None
            else price.cache_write_per_mtok
        )
        return (
            usage.input_tokens * price.input_per_mtok
            + usage.output_tokens * price.output_per_mtok
            + usage.cache_read_input_tokens * read
            + usage.cache_write_input_tokens * write
        ) / 1_000_000

    def cost(
        self, detection: Detection | None, detector_calls: int, escalation: Escalation | None
    ) -> Cost:
        """A decision's estimated cost: each detector call it made and its judge call's tokens.

        Only the services bill: recorded and static answers (offline runs, tests) cost nothing,
        so an offline decision can never be mistaken for a production one by its cost either.
        A cached detection took no call this time, so it cost nothing either.
        """
        billed = detection is not None and detection.provider == "rekognition"
        bedrock_usd: float | None = 0.0
        if (
            escalation is not None
            and escalation.provider == "bedrock"
            and escalation.usage is not None
            and escalation.model_id
        ):
            bedrock_usd = self.bedrock(escalation.model_id, escalation.usage)
        return Cost(
            rekognition_usd=self.rekognition_per_image * detector_calls if billed else 0.0,
            bedrock_usd=bedrock_usd,
        )
