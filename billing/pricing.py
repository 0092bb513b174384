"""Quotes: what a job will cost before it runs, from the datasets' prices and the plan.

A quote line prices one dataset: planned samples x the creator's price per sample,
rounded up to a whole minor unit (a creator is never paid less than its price). The
platform fee is a share in basis points of the subtotal, also rounded up. Everything
is integer minor units in one currency; prices are exact decimals. This module never
rounds in the buyer's favour silently and never mixes currencies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from billing.currency import check_currency, minor_unit_exponent
from billing.errors import BillingError

#: 100 % in basis points.
BASIS_POINTS = 10_000


class PricingError(BillingError):
    """A price, plan or fee cannot be quoted."""


@dataclass(frozen=True)
class QuoteLine:
    """One dataset's share of a quote."""

    dataset_id: str
    planned_samples: int
    price_per_sample: Decimal
    currency: str
    amount_minor: int

    def to_dict(self) -> dict[str, object]:
        """JSON form: exact decimals and money as strings/integers."""
        return {
            "dataset_id": self.dataset_id,
            "planned_samples": self.planned_samples,
            "price_per_sample": str(self.price_per_sample),
            "amount_minor": self.amount_minor,
        }


@dataclass(frozen=True)
class Quote:
    """A priced plan: one line per dataset, the platform fee and the total."""

    currency: str
    lines: tuple[QuoteLine, ...]
    fee_bps: int
    subtotal_minor: int
    platform_fee_minor: int
    total_minor: int

    def to_dict(self) -> dict[str, object]:
        """JSON form of the quote."""
        return {
            "currency": self.currency,
            "lines": [line.to_dict() for line in self.lines],
            "platform_fee_bps": self.fee_bps,
            "subtotal_minor": self.subtotal_minor,
            "platform_fee_minor": self.platform_fee_minor,
            "total_minor": self.total_minor,
            "total": format_minor(self.total_minor, self.currency),
        }


#: The largest amount a quote, a line or a budget may come to, in minor units: far above
#: any real job, and far below the 64-bit integers the ledger and databases store.
MAX_AMOUNT_MINOR = 10**15


def check_amount(amount_minor: int, what: str) -> int:
    """``amount_minor`` if it is at most ``MAX_AMOUNT_MINOR``; else a PricingError."""
    if amount_minor > MAX_AMOUNT_MINOR:
        raise PricingError(
            f"{what} is over the largest amount accepted ({MAX_AMOUNT_MINOR} minor units)"
        )
    return amount_minor


def price_line(
    dataset_id: str, planned_samples: int, price_per_sample: Decimal, currency: str
) -> QuoteLine:
    """Price ``planned_samples`` at ``price_per_sample`` (major units), rounded up."""
    check_currency(currency)
    if planned_samples < 0:
        raise PricingError(f"dataset {dataset_id}: planned samples must not be negative")
    if not price_per_sample.is_finite() or price_per_sample < 0:
        raise PricingError(f"dataset {dataset_id}: price per sample must be a finite amount ≥ 0")
    exact = (price_per_sample * planned_samples).scaleb(minor_unit_exponent(currency))
    amount = check_amount(
        int(exact.to_integral_value(rounding=ROUND_CEILING)), f"dataset {dataset_id}'s price"
    )
    return QuoteLine(dataset_id, planned_samples, price_per_sample, currency, amount)


def fee_for(subtotal_minor: int, fee_bps: int) -> int:
    """The platform fee on ``subtotal_minor``: ``fee_bps`` basis points, rounded up."""
    if not 0 <= fee_bps <= BASIS_POINTS:
        raise PricingError(f"platform fee {fee_bps} bps must be between 0 and {BASIS_POINTS}")
    return -((-subtotal_minor * fee_bps) // BASIS_POINTS)


def build_quote(lines: Sequence[QuoteLine], fee_bps: int) -> Quote:
    """Sum ``lines`` (all in one currency) and add the platform fee."""
    if not lines:
        raise PricingError("a quote needs at least one dataset")
    currencies = sorted({line.currency for line in lines})
    if len(currencies) != 1:
        raise PricingError(
            "the datasets are priced in different currencies "
            f"({', '.join(currencies)}); a job pays in one currency"
        )
    subtotal = sum(line.amount_minor for line in lines)
    fee = fee_for(subtotal, fee_bps)
    check_amount(subtotal + fee, "the quote")
    return Quote(currencies[0], tuple(lines), fee_bps, subtotal, fee, subtotal + fee)


def format_minor(amount_minor: int, currency: str) -> str:
    """``1234, "USD"`` → ``"12.34 USD"``: for people, never for arithmetic."""
    exponent = minor_unit_exponent(currency)
    value = Decimal(amount_minor).scaleb(-exponent)
    return f"{value:.{exponent}f} {currency}"
