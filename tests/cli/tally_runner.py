"""Run the installed ``tally`` command as a user would, for the CLI tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TALLY = str(Path(sys.executable).with_name("tally"))


def tally(
    *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TALLY, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False
    )


def ok(*args: str, cwd: Path | None = None, timeout: float = 120) -> str:
    result = tally(*args, cwd=cwd, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(*args: str, cwd: Path | None = None) -> str:
    result = tally(*args, cwd=cwd)
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]
