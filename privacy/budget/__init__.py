"""A data host's per-dataset privacy budget: ε accounting over Opacus and the ledger that
admits, records and releases DP-SGD work against each dataset's lifetime ε cap.

This package only accounts and refuses; it never trains, adds noise or reads data.
"""

from privacy.budget.accounting import (
    ACCOUNTANT,
    Mechanism,
    epsilon_of,
    format_epsilon,
    noise_for_target,
)
from privacy.budget.ledger import (
    BudgetCheck,
    BudgetStatus,
    BudgetTerms,
    LedgerEntry,
    PrivacyBudgetLedger,
)

__all__ = [
    "ACCOUNTANT",
    "BudgetCheck",
    "BudgetStatus",
    "BudgetTerms",
    "LedgerEntry",
    "Mechanism",
    "PrivacyBudgetLedger",
    "epsilon_of",
    "format_epsilon",
    "noise_for_target",
]
