"""The payment rails a coordinator uses, built from its home's configuration.

The ``ledger`` rail is always there: jobs funded on it are refunded on it. The configured
rail (``payments.rail`` in ``coordinator.json``) collects new funding and pays creators.
"""

from __future__ import annotations

from billing.rails.base import PaymentRail
from billing.rails.ledger_rail import LedgerRail
from billing.rails.stripe_rail import StripeRail
from coordinator.errors import ConfigError
from coordinator.home import (
    STRIPE_API_KEY_FILE,
    STRIPE_WEBHOOK_SECRET_FILE,
    CoordinatorHome,
    StripeConfig,
)


def build_rails(home: CoordinatorHome) -> dict[str, PaymentRail]:
    """Every rail this coordinator can use, by name (``ConfigError`` if the configured
    one lacks its secrets)."""
    rails: dict[str, PaymentRail] = {"ledger": LedgerRail()}
    payments = home.config.payments
    if payments.rail == "stripe":
        stripe = payments.stripe or StripeConfig()
        try:
            webhook_secret = home.secret(STRIPE_WEBHOOK_SECRET_FILE)
        except ConfigError:
            webhook_secret = ""  # webhooks are refused until one is configured
        rails["stripe"] = StripeRail(
            api_key=home.secret(STRIPE_API_KEY_FILE),
            webhook_secret=webhook_secret,
            api_base=stripe.api_base,
            refresh_url=stripe.onboarding_return_url,
        )
    return rails
