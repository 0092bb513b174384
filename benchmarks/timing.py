"""What every benchmark here needs: best-of-N timing with CPU seconds, the CPU's name,
a warm page cache, and the SHA-256 baseline that dataset work is compared with.

This module only measures; it never writes a file.
"""

from __future__ import annotations

import hashlib
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_READ_BYTES = 1 << 20


@dataclass
class Timing:
    """The best run of one contender: wall-clock seconds and CPU seconds it used."""

    wall_s: float = float("inf")
    cpu_s: float = 0.0

    def record(self, wall_s: float, cpu_s: float) -> None:
        """Keep this run if it is the fastest so far."""
        if wall_s < self.wall_s:
            self.wall_s, self.cpu_s = wall_s, cpu_s


def timed(action: Callable[[], object], who: int = resource.RUSAGE_SELF) -> tuple[float, float]:
    """Run ``action``; return its wall-clock seconds and the CPU seconds ``who`` used.

    ``who`` is ``resource.RUSAGE_SELF`` (this process's threads, the default) or
    ``resource.RUSAGE_CHILDREN`` (a tool run as a subprocess, such as openssl).
    """
    before = resource.getrusage(who)
    start = time.perf_counter()
    action()
    wall = time.perf_counter() - start
    after = resource.getrusage(who)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def best_of(runs: int, action: Callable[[], object]) -> Timing:
    """The fastest of ``runs`` timed calls of ``action``."""
    best = Timing()
    for _ in range(runs):
        best.record(*timed(action))
    return best


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def warm_page_cache(path: Path) -> None:
    """Read the file once so that every timed run reads it from memory."""
    with path.open("rb", buffering=0) as source:
        buffer = bytearray(_READ_BYTES * 8)
        while source.readinto(buffer):
            pass


def sha256_file(path: Path) -> str:
    """The baseline: SHA-256 of the file, read in 1 MiB pieces, on one core."""
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as source:
        buffer = bytearray(_READ_BYTES)
        view = memoryview(buffer)
        while count := source.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()
