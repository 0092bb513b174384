"""Benchmark: ``tally host dataset add`` (hash + PII scan + validation + manifest) on a CSV
against hashing the same file alone.

Two files are generated in a temporary directory: numeric CSV without PII, and PII-dense
CSV (every row holds an e-mail address, a phone number, a card number and an IP address).
For each, the baseline is ``chunk_path`` over the file with both cores (the hashing
stage of ingest on its own), and a single-core SHA-256 with ``hashlib``. Ours is the whole
``ingest_dataset`` into a fresh node home, with ``--pii allow`` so that PII-dense data is
scanned, counted and manifested rather than refused. Files are read from the page cache.

    python -m benchmarks.bench_ingest [--size-mib 1024] [--runs 2] [--dense-runs 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.timing import best_of, sha256_file, warm_page_cache
from data_host.home import init_home
from data_host.ingest import ingest_dataset
from data_host.terms import DatasetTerms
from privacy.pii import PiiPolicy
from provenance.chunking import chunk_path

_MIB = 1 << 20
_MB = 1_000_000


def numeric_block(rows: int, seed: int) -> bytes:
    """CSV rows of six floats and an integer label."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, 6))
    labels = rng.integers(0, 2, size=rows)
    lines = [
        ",".join(f"{value:.9g}" for value in row) + f",{label}"
        for row, label in zip(values.tolist(), labels.tolist(), strict=True)
    ]
    return ("\n".join(lines) + "\n").encode()


def pii_block(rows: int, seed: int) -> bytes:
    """CSV rows that each hold four kinds of PII beside numbers."""
    rng = np.random.default_rng(seed)
    lines = []
    for index in range(rows):
        number = int(rng.integers(0, 10**6))
        lines.append(
            f"{rng.normal():.6f},user{number}@example.com,(415) 555-{number % 10000:04d},"
            f"4111 1111 1111 1111,10.{index % 256}.{number % 256}.7,{index % 2}"
        )
    return ("\n".join(lines) + "\n").encode()


def write_csv(path: Path, header: bytes, block: bytes, size_mib: int) -> None:
    """Write ``header`` then copies of ``block`` until the file holds ``size_mib`` MiB."""
    with path.open("wb") as out:
        out.write(header)
        written = len(header)
        while written < size_mib * _MIB:
            out.write(block)
            written += len(block)


def measure(path: Path, workdir: Path, runs: int, ingest_runs: int) -> dict[str, Any]:
    """Time the baselines and ingest on one file."""
    size = path.stat().st_size
    warm_page_cache(path)
    hash_one_core = best_of(runs, lambda: sha256_file(path)).wall_s
    chunk_two_cores = best_of(runs, lambda: chunk_path(path, workers=2)).wall_s
    counter = iter(range(1_000_000))
    stem = path.stem

    def ingest() -> None:
        home = init_home(workdir / f"home-{stem}-{next(counter)}", "bench")
        terms = DatasetTerms(
            title="bench",
            license="CC0-1.0",
            price_per_sample=Decimal("0.001"),
            currency="USD",
            delta=1e-9,
            pii_policy=PiiPolicy.ALLOW,
        )
        ingest_dataset(home, path, terms)

    ingest_s = best_of(ingest_runs, ingest).wall_s
    return {
        "file": path.name,
        "mb": round(size / _MB, 1),
        "hashlib_1core_s": round(hash_one_core, 3),
        "chunk_hash_2cores_s": round(chunk_two_cores, 3),
        "ingest_s": round(ingest_s, 3),
        "ingest_mb_per_s": round(size / _MB / ingest_s, 1),
        "ratio_to_chunk_hash_2cores": round(ingest_s / chunk_two_cores, 2),
        "ratio_to_hashlib_1core": round(ingest_s / hash_one_core, 2),
    }


def main() -> None:
    """Generate the files, measure, print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument(
        "--dense-runs", type=int, default=1, help="ingest runs on the PII-dense file (slow)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="tally-bench-ingest-") as temporary:
        workdir = Path(temporary)
        data = workdir / "data"
        data.mkdir()
        files = {
            "numeric.csv": (b"a,b,c,d,e,f,label\n", numeric_block(20_000, 1)),
            "pii_dense.csv": (b"x,email,phone,card,ip,label\n", pii_block(20_000, 2)),
        }
        for name, (header, block) in files.items():
            path = data / name
            write_csv(path, header, block, args.size_mib)
            ingest_runs = args.dense_runs if name == "pii_dense.csv" else args.runs
            results.append(measure(path, workdir, args.runs, ingest_runs))
            path.unlink()
    machine = {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }
    if args.json:
        print(json.dumps({"machine": machine, "results": results}, indent=2))
        return
    print(f"machine: {machine}")
    for result in results:
        print(
            f"{result['file']:>14}  {result['mb']:>8} MB"
            f"  hashlib 1 core {result['hashlib_1core_s']:.2f} s"
            f"  chunk hash 2 cores {result['chunk_hash_2cores_s']:.2f} s"
            f"  ingest {result['ingest_s']:.2f} s ({result['ingest_mb_per_s']} MB/s)"
            f"  ratio {result['ratio_to_chunk_hash_2cores']}x"
            f" (vs 1-core hashlib {result['ratio_to_hashlib_1core']}x)"
        )


if __name__ == "__main__":
    main()
