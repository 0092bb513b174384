"""Payment rails: where the ledger's money comes in from and goes out to.

Every rail implements ``PaymentRail`` (``billing.rails.base``). ``ledger`` (the default)
is embedded: money moves only in the ledger and payouts are signed statements. ``stripe``
is Stripe Connect with separate charges and transfers (``billing.rails.stripe_rail``).
"""
