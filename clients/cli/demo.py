"""``tally demo``: the provenance core end to end on this machine.

Until federated training lands, the demo shows the record chain every later step builds
on: keys, a chunked dataset with its Merkle root, signed in-toto Statements, a
transparency log with signed checkpoints, a witness cosignature, and a tlog-proof that
is verified exactly as ``tally verify tlog-proof`` verifies it.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clients.cli.keys import write_key_files
from clients.cli.output import JsonFlag, console, emit_json, emit_raw, fail
from provenance.attestation import AttestationPolicy, create_dev_evidence, verify_evidence
from provenance.canonical import sha256_hex
from provenance.chunking import chunk_path
from provenance.keys import SigningKey
from provenance.merkle import leaf_hash
from provenance.note import CosignatureSigner, NoteSigner
from provenance.statement import (
    Statement,
    Subject,
    predicate_type,
    sign_statement,
    verify_statement,
)
from provenance.storage import make_engine, sqlite_url
from provenance.tlog.log import TransparencyLog
from provenance.tlog.proof import TlogProof
from provenance.tlog.records import append_records, envelope_bytes
from provenance.tlog.witness import AddCheckpointRequest, MemoryWitnessState, Witness

LOG_ORIGIN = "demo.tallystick.local/log"
WITNESS_NAME = "demo.tallystick.local/witness"
DEMO_PREDICATE = predicate_type("demo-dataset")


def _write_key(directory: Path, name: str) -> SigningKey:
    return write_key_files(directory, name)[0]


def _make_dataset(directory: Path, number: int) -> Path:
    dataset = directory / f"dataset-{number}"
    dataset.mkdir(parents=True)
    for shard in range(3):
        rows = "\n".join(
            f"{number},{shard},{row},{(row * 7919 + number) % 997}" for row in range(4000)
        )
        (dataset / f"part-{shard}.csv").write_text("creator,shard,row,value\n" + rows + "\n")
    return dataset


def demo(
    workdir: Annotated[
        Path | None, typer.Option(help="Keep the demo's files here (default: a temp dir).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run the provenance demo: keys, signed records, a log, a witness, a verified proof.

    Example: tally demo --workdir ./demo
    """
    root = workdir or Path(tempfile.mkdtemp(prefix="tally-demo-"))
    if workdir is not None and workdir.exists() and any(workdir.iterdir()):
        fail(f"--workdir {workdir} is not empty")
    keys_dir = root / "keys"
    keys_dir.mkdir(parents=True, exist_ok=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=as_json,
    ) as progress:
        step = progress.add_task("creating keys", total=8)
        log_key = _write_key(keys_dir, LOG_ORIGIN)
        creator_key = _write_key(keys_dir, "creator")
        witness_key = _write_key(keys_dir, WITNESS_NAME)
        log_signer = NoteSigner(LOG_ORIGIN, log_key)
        witness = Witness(
            CosignatureSigner(WITNESS_NAME, witness_key),
            [log_signer.verifier],
            MemoryWitnessState(),
        )
        (keys_dir / "log.vkey").write_text(log_signer.verifier.vkey + "\n")
        (keys_dir / "witness.vkey").write_text(witness.signer.verifier.vkey + "\n")

        progress.update(step, advance=1, description="attesting the worker key (dev evidence)")
        worker_key = _write_key(keys_dir, "worker")
        code_measurement = sha256_hex(Path(__file__).read_bytes())
        evidence = create_dev_evidence(
            creator_key, worker_key.public_key, {"code": code_measurement}
        )
        (root / "worker.evidence.json").write_bytes(evidence.to_json())
        attested = verify_evidence(
            evidence,
            AttestationPolicy(
                allow_insecure=True,
                expected_measurements={"code": code_measurement},
                trusted_dev_attesters=frozenset({creator_key.public_key.did}),
            ),
        )

        progress.update(step, advance=1, description="chunking three datasets")
        records = []
        for number in range(3):
            chunked = chunk_path(_make_dataset(root / "data", number), chunk_size=64 * 1024)
            statement = Statement(
                (Subject(f"dataset-{number}", {"sha256": chunked.root.hex()}),),
                DEMO_PREDICATE,
                {
                    "title": f"demo dataset {number}",
                    "creator": creator_key.public_key.did,
                    "chunk_size": chunked.chunk_size,
                    "chunks": chunked.chunk_count,
                    "bytes": str(chunked.total_bytes),
                    "created_at": datetime.now(UTC).isoformat(),
                },
            )
            envelope = sign_statement(statement, [creator_key])
            records.append(envelope)
            (root / f"dataset-{number}.dsse.json").write_bytes(envelope_bytes(envelope))

        progress.update(step, advance=1, description="verifying and logging the records")
        engine = make_engine(sqlite_url(root / "log.db"))
        log = TransparencyLog.create(engine, log_signer)
        verified = [
            ("demo-dataset", envelope, verify_statement(envelope, [creator_key.public_key]))
            for envelope in records
        ]
        first = append_records(log, verified[:2])

        progress.update(step, advance=1, description="witness cosigns the first checkpoint")
        cosign = witness.add_checkpoint(AddCheckpointRequest(0, (), first.checkpoint))
        log.add_cosignature(first.size, cosign, witness.signer.verifier)

        progress.update(step, advance=1, description="witness checks consistency and cosigns")
        second = append_records(log, verified[2:])
        proof = log.consistency_proof(first.size, second.size)
        cosign = witness.add_checkpoint(
            AddCheckpointRequest(first.size, tuple(proof), second.checkpoint)
        )
        checkpoint_note = log.add_cosignature(second.size, cosign, witness.signer.verifier)
        (root / "checkpoint.txt").write_bytes(checkpoint_note)

        progress.update(step, advance=1, description="exporting and verifying a tlog-proof")
        entry = log.entry(0)
        (root / "entry-0.json").write_bytes(entry)
        tlog_proof = log.tlog_proof(0)
        (root / "entry-0.tlog-proof").write_bytes(tlog_proof.to_bytes())
        checked = TlogProof.parse((root / "entry-0.tlog-proof").read_bytes()).verify(
            leaf_hash(entry),
            log_signer.verifier,
            witnesses=[witness.signer.verifier],
            min_witnesses=1,
        )
        progress.update(step, advance=1, description="checking the log's storage")
        log.verify_storage()
        progress.update(step, advance=1, description="done")

    summary = {
        "workdir": str(root),
        "log_origin": LOG_ORIGIN,
        "log_verifier_key": log_signer.verifier.vkey,
        "witness_verifier_key": witness.signer.verifier.vkey,
        "size": checked.checkpoint.size,
        "root_hash": checked.checkpoint.root_hash.hex(),
        "witnessed_by": [n for n in checked.note.verified_by if n != LOG_ORIGIN],
        "worker_key": attested.worker_key.did,
        "worker_attestation": {"type": attested.type, "insecure": attested.insecure},
    }
    if as_json:
        emit_json(summary)
        return
    table = Table(title="Tallystick provenance demo", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("work dir", str(root))
    table.add_row("records logged", f"{checked.checkpoint.size} signed dataset statements")
    table.add_row("log key", log_signer.verifier.vkey)
    table.add_row("witness key", witness.signer.verifier.vkey)
    table.add_row("entry 0 proof", "verified (log signature, 1 witness, inclusion)")
    table.add_row("worker key", f"{attested.worker_key.did} (dev evidence: INSECURE, demo only)")
    console.print(table)
    console.print("\nLatest checkpoint (log signature + witness cosignature):")
    emit_raw(checkpoint_note.decode("utf-8"))
    console.print("Check it yourself:")
    console.print(
        f"  tally verify checkpoint --key {keys_dir / 'log.vkey'} {root / 'checkpoint.txt'}\n"
        f"  tally verify tlog-proof --key {keys_dir / 'log.vkey'} "
        f"--witness {keys_dir / 'witness.vkey'} --min-witnesses 1 "
        f"--leaf-file {root / 'entry-0.json'} {root / 'entry-0.tlog-proof'}\n"
        f"  tally verify envelope --key {keys_dir / 'creator.pub'} {root / 'dataset-0.dsse.json'}",
        markup=False,
        soft_wrap=True,
    )
