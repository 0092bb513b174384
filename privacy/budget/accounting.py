"""Privacy accounting for DP-SGD: the ε of a set of subsampled Gaussian mechanisms.

Pure functions over Opacus 1.6's RDP accountant (``opacus.accountants``): this module
computes, it never stores, and it never reimplements the privacy maths. Every RDP curve
comes from ``opacus.accountants.analysis.rdp.compute_rdp`` at ``RDPAccountant``'s default
orders, and every ε from that module's ``get_privacy_spent``; noise for a target ε comes
from ``opacus.accountants.utils.get_noise_multiplier``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from privacy.errors import AccountingError

#: The only accountant recorded for now; its name is stored with every mechanism.
ACCOUNTANT = "rdp"
#: Most DP-SGD steps one mechanism may describe (bounds untrusted plans).
MAX_STEPS = 1_000_000_000
#: Significant digits of an ε written as text.
EPSILON_DIGITS = 6
#: ``noise_for_target`` stops once ε is within this fraction below the target.
TARGET_RELATIVE_TOLERANCE = 1e-3


@lru_cache(maxsize=1)
def _orders() -> tuple[float, ...]:
    """``RDPAccountant``'s default alpha orders.

    Opacus is imported on first use, not with this module: importing it imports torch
    (seconds), and a command that only reads the ledger should not pay for that.
    """
    from opacus.accountants import RDPAccountant

    return tuple(float(alpha) for alpha in RDPAccountant.DEFAULT_ALPHAS)


def _rdp_analysis() -> Any:
    """``opacus.accountants.analysis.rdp``, imported on first use (see ``_orders``)."""
    from opacus.accountants.analysis import rdp

    return rdp


def _is_real(value: object) -> bool:
    """True for an int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_delta(delta: float) -> None:
    if not _is_real(delta) or not math.isfinite(delta) or not 0.0 < delta < 1.0:
        raise AccountingError(f"delta must be a number with 0 < delta < 1, got {delta!r}")


@dataclass(frozen=True)
class Mechanism:
    """One run of the subsampled Gaussian mechanism: ``steps`` DP-SGD steps at one setting.

    ``noise_multiplier`` is sigma (noise standard deviation over the clipping norm, > 0),
    ``sample_rate`` the Poisson sampling probability q (0 < q <= 1), ``steps`` the number
    of noisy gradient steps (>= 1) and ``accountant`` the accountant that prices it.
    Construction refuses anything else with an ``AccountingError`` naming the field.
    """

    noise_multiplier: float
    sample_rate: float
    steps: int
    accountant: str = ACCOUNTANT

    def __post_init__(self) -> None:
        sigma = self.noise_multiplier
        if not _is_real(sigma) or not math.isfinite(sigma) or sigma <= 0:
            raise AccountingError(
                f"noise_multiplier must be a finite number greater than 0, got {sigma!r}"
            )
        rate = self.sample_rate
        if not _is_real(rate) or not math.isfinite(rate) or not 0 < rate <= 1:
            raise AccountingError(
                f"sample_rate must be a number with 0 < sample_rate <= 1, got {rate!r}"
            )
        steps = self.steps
        if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
            raise AccountingError(f"steps must be an integer from 1 to {MAX_STEPS}, got {steps!r}")
        if self.accountant != ACCOUNTANT:
            raise AccountingError(
                f"accountant must be {ACCOUNTANT!r} (the only one recorded), "
                f"got {self.accountant!r}"
            )


@lru_cache(maxsize=1024)
def _rdp_per_step(noise_multiplier: float, sample_rate: float) -> NDArray[np.float64]:
    """Opacus's RDP curve of one step at ``_orders()`` (read-only; cached per process)."""
    curve = np.asarray(
        _rdp_analysis().compute_rdp(
            q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=list(_orders())
        ),
        dtype=np.float64,
    )
    curve.flags.writeable = False
    return curve


def epsilon_of(mechanisms: Sequence[Mechanism], delta: float) -> float:
    """The ε at ``delta`` of all ``mechanisms`` composed (0.0 for none).

    Composition over heterogeneous mechanisms sums their RDP curves over the same alpha
    orders and converts the sum to (ε, δ) once: exactly what ``RDPAccountant.get_epsilon``
    does with its history. A mechanism's curve is linear in its steps, so mechanisms with
    the same noise multiplier and sample rate are merged first (as ``RDPAccountant.step``
    merges repeated steps) and summed in a fixed order: the same multiset of mechanisms
    always gives the same ε, bit for bit, whatever order it is listed in.

    The result may be ``math.inf`` when Opacus finds no finite bound (a ledger treats
    that as over any cap). Raises ``AccountingError`` for a bad ``delta``, an item that
    is not a ``Mechanism``, or a result that is not a number.
    """
    _check_delta(delta)
    steps_by_setting: dict[tuple[float, float], int] = {}
    for position, mechanism in enumerate(mechanisms):
        if not isinstance(mechanism, Mechanism):
            raise AccountingError(
                f"mechanisms[{position}] is a {type(mechanism).__name__}, not a Mechanism"
            )
        key = (float(mechanism.noise_multiplier), float(mechanism.sample_rate))
        steps_by_setting[key] = steps_by_setting.get(key, 0) + mechanism.steps
    if not steps_by_setting:
        return 0.0
    curves = [
        _rdp_per_step(sigma, rate) * steps
        for (sigma, rate), steps in sorted(steps_by_setting.items())
    ]
    # The same Python ``sum`` over arrays as RDPAccountant.get_privacy_spent.
    total = sum(curves, np.zeros(len(_orders()), dtype=np.float64))
    epsilon, _order = _rdp_analysis().get_privacy_spent(
        orders=list(_orders()), rdp=total, delta=delta
    )
    result = float(epsilon)
    if math.isnan(result):
        raise AccountingError(f"Opacus returned ε = NaN for {len(mechanisms)} mechanisms")
    return result


def noise_for_target(target_epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """The noise multiplier that keeps ``steps`` steps at ``sample_rate`` within ``target_epsilon``.

    Found by Opacus's ``get_noise_multiplier`` (accountant ``"rdp"``), whose bisection
    returns a sigma whose ε is at most the target; it stops once ε is within
    ``TARGET_RELATIVE_TOLERANCE`` of the target (or 0.01, if that is smaller). Raises
    ``AccountingError`` for bad parameters or a target too small for the RDP orders to
    reach with any sigma up to Opacus's limit.
    """
    if not _is_real(target_epsilon) or not math.isfinite(target_epsilon) or target_epsilon <= 0:
        raise AccountingError(
            f"target_epsilon must be a finite number greater than 0, got {target_epsilon!r}"
        )
    _check_delta(delta)
    Mechanism(noise_multiplier=1.0, sample_rate=sample_rate, steps=steps)  # validates both
    tolerance = min(0.01, target_epsilon * TARGET_RELATIVE_TOLERANCE)
    try:
        from opacus.accountants.utils import get_noise_multiplier

        sigma = get_noise_multiplier(
            target_epsilon=target_epsilon,
            target_delta=delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant=ACCOUNTANT,
            epsilon_tolerance=tolerance,
        )
    except ValueError as exc:
        raise AccountingError(
            f"no noise multiplier reaches ε <= {target_epsilon} at δ = {delta} over {steps} "
            f"steps at sample rate {sample_rate} ({exc}); raise the target ε or δ, "
            "or plan fewer steps or a lower sample rate"
        ) from exc
    return float(sigma)


def format_epsilon(value: float) -> str:
    """An ε as exact decimal text with ``EPSILON_DIGITS`` significant digits, never exponent.

    The float's shortest round-trip decimal form is rounded *up* at the last digit kept,
    so the text never understates the ε it records (``8.0`` -> ``"8"``, ``0.1`` ->
    ``"0.1"``, ``1.23456789`` -> ``"1.23457"``, ``2.0000001`` -> ``"2.00001"``). Raises
    ``AccountingError`` for a negative, infinite or NaN value: an unbounded ε is a
    refusal, not a number to record.
    """
    if not _is_real(value) or not math.isfinite(value) or value < 0:
        raise AccountingError(f"an ε to record must be a finite number >= 0, got {value!r}")
    if value == 0:
        return "0"
    exact = Decimal(repr(float(value)))
    quantum = Decimal(1).scaleb(exact.adjusted() - EPSILON_DIGITS + 1)
    rounded = exact.quantize(quantum, rounding=ROUND_CEILING).normalize()
    return format(rounded, "f")
