"""Estimated cost of a decision: Rekognition per image, Bedrock per token. Configurable per model.

The defaults are on-demand list prices in US dollars (us-east-1) at the time of writing; they are
estimates for dashboards and budgets, not a bill. Pass your own `Pricing` for your contract.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from moderation.decision import TokenUsage

__all__ = ["DEFAULT_MODEL_PRICES", "ModelPrice", "Pricing"]


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """US dollars per million input and output tokens."""

    input_per_mtok: float
    output_per_mtok: float


DEFAULT_MODEL_PRICES: Mapping[str, ModelPrice] = {
    "anthropic.claude-haiku-4-5-20251001-v1:0": ModelPrice(1.00, 5.00),
    "anthropic.claude-sonnet-4-5-20250929-v1:0": ModelPrice(3.00, 15.00),
    "anthropic.claude-3-5-haiku-20241022-v1:0": ModelPrice(0.80, 4.00),
    "amazon.nova-lite-v1:0": ModelPrice(0.06, 0.24),
    "amazon.nova-pro-v1:0": ModelPrice(0.80, 3.20),
}

# Cross-region inference profiles prefix the model id: us., eu., apac., global. …
_PROFILE_PREFIX = re.compile(r"^(us|eu|apac|ap|ca|jp|au|us-gov|global)\.")


@dataclass(frozen=True, slots=True)
class Pricing:
    """Prices used for `Decision.cost`."""

    rekognition_per_image: float = 0.001
    models: Mapping[str, ModelPrice] = field(default_factory=lambda: dict(DEFAULT_MODEL_PRICES))

    def bedrock(self, model_id: str, usage: TokenUsage | None) -> float | None:
        """Dollars for one call's tokens; None when the model has no price here."""
        if usage is None:
            return 0.0
        price = self.models.get(model_id) or self.models.get(_PROFILE_PREFIX.sub("", model_id))
        if price is None:
            return None
        return (
            usage.input_tokens * price.input_per_mtok + usage.output_tokens * price.output_per_mtok
        ) / 1_000_000
