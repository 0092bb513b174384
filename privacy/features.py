"""How a dataset's rows divide into training and held-out parts, known from its size alone.

Both sides need this without reading data: the data host to plan its DP mechanism (the
sample rate is the batch size over the training rows) and the coordinator to bound the
samples a receipt may claim. The held-out rows serve federated evaluation only and are
never trained on.
"""

from __future__ import annotations

from privacy.errors import PrivacyError

#: The share of rows held out for evaluation (at least one row, at most a third of them).
HELD_OUT_SHARE = 0.2


def held_out_rows(rows: int) -> int:
    """How many of ``rows`` rows are held out for evaluation."""
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 2:
        raise PrivacyError(f"a dataset needs at least 2 rows to train and evaluate, has {rows!r}")
    return min(max(1, round(rows * HELD_OUT_SHARE)), rows // 3 or 1)


def training_rows(rows: int) -> int:
    """How many of ``rows`` rows train (the rest are held out)."""
    return rows - held_out_rows(rows)
