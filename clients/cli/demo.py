"""``tally demo``: three creators' data-host nodes and the provenance log, on this machine.

Until federated training lands, the demo shows the record chain every later step builds
on: three data-host nodes (keys, an attested worker key, a dataset each, ingested with a
PII scan into a creator-signed dataset manifest and a privacy budget), a transparency log
of those manifests with signed checkpoints, a witness cosignature, and a tlog-proof that
is verified exactly as ``tally verify tlog-proof`` verifies it.
"""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clients.cli.keys import write_key_files
from clients.cli.output import JsonFlag, console, emit_json, emit_raw, fail
from data_host.attestation import EvidenceKind, produce_evidence, store_evidence
from data_host.home import NodeHome, init_home
from data_host.ingest import IngestResult, ingest_dataset
from data_host.terms import DatasetTerms
from privacy.pii import PiiPolicy
from provenance.keys import SigningKey
from provenance.manifest import DATASET_MANIFEST_PREDICATE
from provenance.merkle import leaf_hash
from provenance.note import CosignatureSigner, NoteSigner
from provenance.statement import verify_statement
from provenance.storage import make_engine, sqlite_url
from provenance.tlog.log import TransparencyLog
from provenance.tlog.proof import TlogProof
from provenance.tlog.records import append_records, envelope_bytes
from provenance.tlog.witness import AddCheckpointRequest, MemoryWitnessState, Witness

LOG_ORIGIN = "demo.tallystick.local/log"
WITNESS_NAME = "demo.tallystick.local/witness"
HOSTS = 3


def _write_key(directory: Path, name: str) -> SigningKey:
    return write_key_files(directory, name)[0]


def _make_dataset(directory: Path, number: int) -> Path:
    """A small tabular dataset; the last host's holds a column of e-mail addresses."""
    dataset = directory / f"host-{number}"
    dataset.mkdir(parents=True)
    for shard in range(3):
        header = "age,pressure,cholesterol,label"
        if number == HOSTS - 1:
            header += ",contact"
        lines = [header]
        for row in range(2000):
            value = row * 7919 + number * 104729 + shard * 31
            line = f"{30 + value % 50},{100 + value % 60}.5,{150 + value % 120},{value % 2}"
            if number == HOSTS - 1:
                line += f",patient{row}@example.org"
            lines.append(line)
        (dataset / f"part-{shard}.csv").write_text("\n".join(lines) + "\n")
    return dataset


def _add_dataset(home: NodeHome, source: Path, number: int) -> IngestResult:
    terms = DatasetTerms(
        title=f"Cardiology cohort {number}",
        license="CC-BY-4.0",
        price_per_sample=Decimal("0.002") + Decimal(number) / 1000,
        currency="USD",
        lifetime_epsilon=8.0,
        max_epsilon_per_job=3.0,
        delta=1e-5,
        pii_policy=PiiPolicy.REDACT,
        label="label",
    )
    return ingest_dataset(home, source, terms, chunk_size=64 * 1024)


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
        step = progress.add_task("creating log and witness keys", total=8)
        log_key = _write_key(keys_dir, LOG_ORIGIN)
        witness_key = _write_key(keys_dir, WITNESS_NAME)
        log_signer = NoteSigner(LOG_ORIGIN, log_key)
        witness = Witness(
            CosignatureSigner(WITNESS_NAME, witness_key),
            [log_signer.verifier],
            MemoryWitnessState(),
        )
        (keys_dir / "log.vkey").write_text(log_signer.verifier.vkey + "\n")
        (keys_dir / "witness.vkey").write_text(witness.signer.verifier.vkey + "\n")

        progress.update(step, advance=1, description="three data-host nodes: keys, attestation")
        homes = [init_home(root / "hosts" / f"host-{n}", f"host-{n}") for n in range(HOSTS)]
        attested = [
            store_evidence(home, produce_evidence(home, EvidenceKind.DEV)) for home in homes
        ]

        progress.update(step, advance=1, description="ingesting a dataset on each node")
        added = [
            _add_dataset(home, _make_dataset(root / "data", number), number)
            for number, home in enumerate(homes)
        ]
        records = []
        for number, result in enumerate(added):
            envelope = result.signed.envelope
            records.append(envelope)
            (root / f"dataset-{number}.dsse.json").write_bytes(envelope_bytes(envelope))

        progress.update(step, advance=1, description="verifying and logging the records")
        engine = make_engine(sqlite_url(root / "log.db"))
        log = TransparencyLog.create(engine, log_signer)
        verified = [
            (
                "dataset-manifest",
                envelope,
                verify_statement(
                    envelope,
                    [home.creator_public_key],
                    predicate_type=DATASET_MANIFEST_PREDICATE,
                ),
            )
            for home, envelope in zip(homes, records, strict=True)
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
        "hosts": [
            {
                "home": str(home.root),
                "creator": home.config.creator_did,
                "worker_key": claims.worker_key.did,
                "worker_attestation": {"type": claims.type, "insecure": claims.insecure},
                "dataset_id": result.dataset.row.id,
                "manifest_digest": result.signed.digest,
                "rows": result.dataset.row.rows,
                "pii_findings": result.pii.total,
                "redacted": result.dataset.row.content_path != result.dataset.row.source_path,
            }
            for home, claims, result in zip(homes, attested, added, strict=True)
        ],
    }
    if as_json:
        emit_json(summary)
        return
    table = Table(title="Tallystick provenance demo", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("work dir", str(root))
    table.add_row("records logged", f"{checked.checkpoint.size} creator-signed dataset manifests")
    for home, result in zip(homes, added, strict=True):
        row = result.dataset.row
        pii = f", {result.pii.total} e-mail addresses redacted" if result.pii.total else ""
        table.add_row(home.config.name, f"{row.id}: {row.rows} rows{pii}")
    table.add_row("log key", log_signer.verifier.vkey)
    table.add_row("witness key", witness.signer.verifier.vkey)
    table.add_row("entry 0 proof", "verified (log signature, 1 witness, inclusion)")
    table.add_row("worker keys", "attested with dev evidence: INSECURE, demo only")
    console.print(table)
    console.print("\nLatest checkpoint (log signature + witness cosignature):")
    emit_raw(checkpoint_note.decode("utf-8"))
    console.print("Check it yourself:")
    console.print(
        f"  tally verify checkpoint --key {keys_dir / 'log.vkey'} {root / 'checkpoint.txt'}\n"
        f"  tally verify tlog-proof --key {keys_dir / 'log.vkey'} "
        f"--witness {keys_dir / 'witness.vkey'} --min-witnesses 1 "
        f"--leaf-file {root / 'entry-0.json'} {root / 'entry-0.tlog-proof'}\n"
        f"  tally verify envelope --key {homes[0].keys_dir / 'creator.pub'} "
        f"{root / 'dataset-0.dsse.json'}\n"
        f"  tally host dataset list --home {homes[0].root}\n"
        f"  tally host dataset verify {added[0].dataset.row.id} --home {homes[0].root}",
        markup=False,
        soft_wrap=True,
    )
