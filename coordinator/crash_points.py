"""Named points where a fault test may kill the coordinator outright.

``crash_point(name)`` does nothing unless ``TALLY_CRASH_AT`` (a comma-separated list)
names ``name``; then the process sends itself SIGKILL at once: no ``finally``, no
commit, no flush, exactly as a power cut or the OOM killer would. The fault tests in
``tests/billing/test_payout_crashes_e2e.py`` use it to stop a real coordinator between the
steps of a payment, and check that after a restart nothing is paid twice or lost.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "TALLY_CRASH_AT"


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if ``TALLY_CRASH_AT`` names ``name``."""
    wanted = os.environ.get(CRASH_ENV)
    if wanted and name in wanted.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
