"""Benchmark: dataset chunk hashing against `openssl dgst -sha256` on the same file.

Both read the same page-cached file in the same run; openssl hashes it on one core,
``chunk_path`` on a thread pool. The target is ours/openssl >= 1.6 on two cores. This
script only measures: it never changes the file it is given with ``--file``, and it
deletes the file it creates.

    python -m benchmarks.bench_chunk_hashing [--size-mib 1024] [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.timing import Timing, cpu_model, timed, warm_page_cache
from provenance.chunking import DEFAULT_CHUNK_SIZE, chunk_path

_BLOCK = 1 << 20
_MB = 1_000_000


def write_test_file(path: Path, size_mib: int) -> None:
    """Write ``size_mib`` MiB of incompressible data: one random block, varied per copy."""
    block = bytearray(os.urandom(_BLOCK))
    with path.open("wb") as out:
        for index in range(size_mib):
            # Stamp each copy so that no two 1 MiB blocks (and no two chunks) are equal.
            block[:8] = index.to_bytes(8, "little")
            block[-8:] = (index * 0x9E3779B97F4A7C15 % (1 << 64)).to_bytes(8, "little")
            out.write(block)


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def run(path: Path, runs: int, chunk_size: int, workers: int | None) -> dict[str, Any]:
    """Time openssl and chunk_path on ``path``; return the figures."""
    size = path.stat().st_size
    warm_page_cache(path)

    def openssl() -> None:
        subprocess.run(
            ["openssl", "dgst", "-sha256", str(path)],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def ours() -> None:
        chunk_path(path, chunk_size, workers=workers)

    # Alternate the two so that both see the same conditions (other load, frequency).
    theirs, mine = Timing(), Timing()
    for _ in range(runs):
        theirs.record(*timed(openssl, resource.RUSAGE_CHILDREN))
        mine.record(*timed(ours, resource.RUSAGE_SELF))
    openssl_s, ours_s = theirs.wall_s, mine.wall_s
    return {
        "file_bytes": size,
        "chunk_size": chunk_size,
        "workers": workers if workers is not None else _usable_cpus(),
        "runs": runs,
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "openssl_s": round(openssl_s, 4),
        "ours_s": round(ours_s, 4),
        "openssl_mb_s": round(size / openssl_s / _MB, 1),
        "ours_mb_s": round(size / ours_s / _MB, 1),
        "ratio": round(openssl_s / ours_s, 3),
        # CPU seconds per wall second in the best run: near the worker count when the
        # pool had every core to itself, near 1 when other work held a core.
        "openssl_cpus_used": round(theirs.cpu_s / openssl_s, 2),
        "ours_cpus_used": round(mine.cpu_s / ours_s, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print the result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, help="hash this file instead of creating one")
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the created file")
    parser.add_argument(
        "--runs", type=int, default=3, help="best of this many runs each, alternated"
    )
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE)
    parser.add_argument("--workers", type=int, default=None, help="default: usable CPUs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    if args.file is not None:
        result = run(args.file, args.runs, args.chunk_size, args.workers)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-chunk-") as directory:
            path = Path(directory) / "data.bin"
            write_test_file(path, args.size_mib)
            result = run(path, args.runs, args.chunk_size, args.workers)

    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"file:     {result['file_bytes'] / (1 << 20):.0f} MiB, cpu {result['cpu']}")
        print(f"openssl:  {result['openssl_mb_s']:8.1f} MB/s  (openssl dgst -sha256, 1 core)")
        print(
            f"ours:     {result['ours_mb_s']:8.1f} MB/s  (chunk_path, chunk_size "
            f"{result['chunk_size']}, {result['workers']} workers)"
        )
        print(f"ratio:    {result['ratio']:.2f}x  (target >= 1.6x)")
        print(
            f"cpus used: openssl {result['openssl_cpus_used']}, ours {result['ours_cpus_used']}"
            f"; load average {result['load_average_1m']} (other load lowers ours)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
