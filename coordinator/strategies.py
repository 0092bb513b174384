"""The aggregation strategies a job may name, with the options each accepts.

Each entry maps to a Flower strategy under ``flwr.serverapp.strategy`` that the training
ServerApp wraps with receipt checks and round proofs. Options are validated here, when the
job is created, so that a job never fails at round one over a typo. This module must not
import Flower.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coordinator.errors import InvalidRequest


@dataclass(frozen=True)
class StrategyOption:
    """One numeric option: its range and default."""

    name: str
    minimum: float
    maximum: float
    default: float
    integer: bool = False


@dataclass(frozen=True)
class StrategyKind:
    """A strategy a job may use and the options it takes."""

    name: str
    flower_class: str
    description: str
    options: tuple[StrategyOption, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """JSON form for the API."""
        return {
            "name": self.name,
            "flower_class": self.flower_class,
            "description": self.description,
            "options": {
                option.name: {
                    "minimum": option.minimum,
                    "maximum": option.maximum,
                    "default": option.default,
                    "integer": option.integer,
                }
                for option in self.options
            },
        }


STRATEGIES: dict[str, StrategyKind] = {
    kind.name: kind
    for kind in (
        StrategyKind("fedavg", "FedAvg", "Weighted average of the updates."),
        StrategyKind(
            "fedprox",
            "FedProx",
            "FedAvg with a proximal term keeping local models near the global one.",
            (StrategyOption("proximal_mu", 0.0, 10.0, 0.1),),
        ),
        StrategyKind(
            "fedadam",
            "FedAdam",
            "Server-side Adam over the averaged update.",
            (
                StrategyOption("eta", 1e-6, 10.0, 0.1),
                StrategyOption("beta_1", 0.0, 0.999999, 0.9),
                StrategyOption("beta_2", 0.0, 0.999999, 0.99),
                StrategyOption("tau", 1e-12, 1.0, 1e-9),
            ),
        ),
        StrategyKind(
            "fedtrimmedavg",
            "FedTrimmedAvg",
            "Coordinate-wise mean after trimming the largest and smallest updates.",
            (StrategyOption("beta", 0.0, 0.49, 0.2),),
        ),
        StrategyKind(
            "krum",
            "Krum",
            "Picks the update closest to its neighbours; tolerates malicious hosts.",
            (StrategyOption("num_malicious_nodes", 0, 100, 0, integer=True),),
        ),
    )
}


def check_strategy(name: str, options: Mapping[str, Any]) -> dict[str, float | int]:
    """Validate a strategy name and its options; return the options with defaults filled in."""
    kind = STRATEGIES.get(name)
    if kind is None:
        known = ", ".join(sorted(STRATEGIES))
        raise InvalidRequest(
            f"strategy {name!r} is not supported; choose one of: {known}", field="strategy.name"
        )
    allowed = {option.name: option for option in kind.options}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InvalidRequest(
            f"strategy {name} does not take option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(sorted(allowed)) or 'none'}",
            field="strategy.options",
        )
    result: dict[str, float | int] = {}
    for option in kind.options:
        value = options.get(option.name, option.default)
        where = f"strategy.options.{option.name}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidRequest(f"{where} must be a number", field=where)
        if option.integer and value != int(value):
            raise InvalidRequest(f"{where} must be a whole number", field=where)
        if not option.minimum <= value <= option.maximum:
            raise InvalidRequest(
                f"{where} must be between {option.minimum:g} and {option.maximum:g}, got {value}",
                field=where,
            )
        result[option.name] = int(value) if option.integer else float(value)
    return result
