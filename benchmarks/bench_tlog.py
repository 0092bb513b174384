"""Transparency-log benchmark: durable batched appends, proof build and verify at 1M entries.

Baselines run in the same process on the same machine:
- appends: plain durable SQLite inserts of the same entries (WAL, synchronous=FULL,
  same batch size), with no tree, no dedup and no signed checkpoint: what storing the
  bytes alone costs;
- proof build: the same proofs from an in-memory ``MerkleTree`` of the same leaves;
- proof verify: reported as is (RFC 9162 verification, SHA-256 per level).

Run: python -m benchmarks.bench_tlog [--entries 1000000] [--batch 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from provenance.canonical import canonical_json
from provenance.keys import SigningKey
from provenance.merkle import MerkleTree, leaf_hash, verify_inclusion
from provenance.note import NoteSigner
from provenance.storage import make_engine, sqlite_url
from provenance.tlog.log import TransparencyLog


def make_entry(number: int) -> bytes:
    """A leaf shaped like the log's real records (~180 bytes of canonical JSON)."""
    digest = leaf_hash(number.to_bytes(8, "big")).hex()
    return canonical_json(
        {
            "type": "usage-receipt",
            "envelope": f"sha256:{digest}",
            "subjects": [f"sha256:{digest[::-1]}"],
        }
    )


def bench_raw_sqlite(path: Path, entries: list[bytes], batch: int) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE entry (idx INTEGER PRIMARY KEY, data BLOB NOT NULL)")
    start = time.perf_counter()
    for offset in range(0, len(entries), batch):
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "INSERT INTO entry VALUES (?, ?)",
            ((offset + i, item) for i, item in enumerate(entries[offset : offset + batch])),
        )
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--proofs", type=int, default=2000, help="proofs to build and verify")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    args = parser.parse_args()

    entries = [make_entry(n) for n in range(args.entries)]
    with tempfile.TemporaryDirectory(prefix="bench-tlog-") as directory:
        root = Path(directory)
        raw_seconds = bench_raw_sqlite(root / "raw.db", entries, args.batch)

        signer = NoteSigner("bench.tallystick.local/log", SigningKey.generate())
        log = TransparencyLog.create(make_engine(sqlite_url(root / "log.db")), signer)
        start = time.perf_counter()
        for offset in range(0, len(entries), args.batch):
            log.append(entries[offset : offset + args.batch])
        log_seconds = time.perf_counter() - start
        size = log.size

        tree = MerkleTree(leaf_hash(entry) for entry in entries)
        root_hash = tree.root()
        rng = random.Random(7)
        indexes = [rng.randrange(size) for _ in range(args.proofs)]
        log.inclusion_proof(indexes[0])  # warm the statement cache

        start = time.perf_counter()
        proofs = [log.inclusion_proof(index) for index in indexes]
        build_seconds = (time.perf_counter() - start) / len(indexes)
        start = time.perf_counter()
        memory_proofs = [tree.inclusion_proof(index) for index in indexes]
        memory_seconds = (time.perf_counter() - start) / len(indexes)
        assert proofs == memory_proofs
        leaves = [leaf_hash(entries[index]) for index in indexes]
        start = time.perf_counter()
        for index, leaf, proof in zip(indexes, leaves, proofs, strict=True):
            verify_inclusion(leaf, index, size, proof, root_hash)
        verify_seconds = (time.perf_counter() - start) / len(indexes)
        db_bytes = sum(p.stat().st_size for p in root.glob("log.db*"))

    results = {
        "entries": size,
        "batch": args.batch,
        "append_per_s": round(size / log_seconds),
        "raw_sqlite_insert_per_s": round(size / raw_seconds),
        "append_vs_raw_ratio": round(raw_seconds / log_seconds, 3),
        "proof_build_ms": round(build_seconds * 1000, 4),
        "in_memory_proof_build_ms": round(memory_seconds * 1000, 4),
        "proof_verify_ms": round(verify_seconds * 1000, 4),
        "log_db_mib": round(db_bytes / 2**20, 1),
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"entries: {size:,} in batches of {args.batch} (SQLite WAL, synchronous=FULL)")
    print(f"appends:      {results['append_per_s']:>10,}/s  (target >= 10,000/s)")
    print(
        f"raw inserts:  {results['raw_sqlite_insert_per_s']:>10,}/s  baseline; "
        f"ours/raw = {results['append_vs_raw_ratio']}"
    )
    print(
        f"proof build:  {results['proof_build_ms']:>10} ms  (target < 1 ms; "
        f"in-memory tree {results['in_memory_proof_build_ms']} ms)"
    )
    print(f"proof verify: {results['proof_verify_ms']:>10} ms  (target < 0.2 ms)")
    print(f"log database: {results['log_db_mib']} MiB")


if __name__ == "__main__":
    main()
