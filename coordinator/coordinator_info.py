"""What the coordinator offers buyers to choose from: vetted models and strategies."""

from __future__ import annotations

from typing import Any

from coordinator.strategies import STRATEGIES
from privacy.model_registry import VETTED_MODELS


def models_payload() -> dict[str, Any]:
    """The registry of models and strategies as the API returns it."""
    return {
        "models": [model.to_dict() for model in VETTED_MODELS.values()],
        "strategies": [kind.to_dict() for kind in STRATEGIES.values()],
    }
