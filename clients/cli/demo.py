"""``tally demo``: a coordinator, a witness and three creators' data-host nodes, on this machine.

The demo runs the marketplace over real HTTP on loopback, then trains. First a coordinator
(development mode) with its transparency log and a witness that cosigns its checkpoints;
three data-host nodes, each with keys, an attested worker key and a dataset ingested with a
PII scan into a creator-signed manifest; the creators link their identities, register their
hosts and publish; a buyer searches the catalog, gets a quote, creates and funds a job; each
host receives a capability token bound to its worker key; and a manifest's tlog-proof is
verified exactly as ``tally verify tlog-proof`` verifies it. Then each host runs ``tally
host up`` (a Flower SuperNode), the buyer starts the job, three DP rounds run on the
SuperLink with receipts and round proofs, every proof and receipt is fetched from the log
and verified, and the model and its card are saved in the work dir. Every process it starts
is stopped before it returns.
"""

from __future__ import annotations

import base64
import json
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from billing.pricing import format_minor
from billing.settlement import SETTLEMENT_PREDICATE
from clients.cli.job_training import ENDED
from clients.cli.output import JsonFlag, console, emit_json, emit_raw, fail
from clients.local_server import LocalServer, free_port
from clients.local_stack import digits_rows, start_host_up, stop_host_up, write_digits_csv
from clients.sdk import ApiError, TallyClient, spec_from_options
from clients.witness_service import create_witness_app, follow_log, init_witness_home
from coordinator.api.app import create_app
from coordinator.home import (
    WitnessConfig,
    init_coordinator_home,
    open_coordinator_home,
    write_config,
)
from coordinator.identity import sign_identity_link
from coordinator.launch import superlink_settings
from coordinator.service import bootstrap_admin, open_coordinator, prepare_database
from coordinator.superlink import SuperLinkSupervisor
from data_host.attestation import EvidenceKind, produce_evidence, store_evidence
from data_host.home import NodeHome, init_home
from data_host.ingest import IngestResult, ingest_dataset
from data_host.terms import DatasetTerms
from data_host.trust import pin_coordinator
from privacy.pii import PiiPolicy
from provenance.capability import verify_capability
from provenance.dsse import Envelope
from provenance.keys import PublicKey
from provenance.merkle import leaf_hash
from provenance.note import CosignatureVerifier, Ed25519NoteVerifier, parse_verifier_key
from provenance.statement import verify_statement
from provenance.tlog.proof import TlogProof
from provenance.tlog.records import LogRecord, envelope_bytes
from provenance.usage import ROUND_PROOF_PREDICATE, USAGE_RECEIPT_PREDICATE

COORDINATOR_NAME = "demo"
WITNESS_NAME = "demo.tallystick.local/witness"
HOSTS = 3


def _make_dataset(directory: Path, number: int) -> Path:
    """One third of scikit-learn's bundled handwritten digits (no download); the last
    host's copy also holds a column of e-mail addresses, which the PII scan redacts."""
    features, labels = digits_rows()
    part = np.array_split(np.arange(len(labels)), HOSTS)[number]
    return write_digits_csv(
        directory / f"host-{number}", features[part], labels[part], contact=number == HOSTS - 1
    )


def _add_dataset(home: NodeHome, source: Path, number: int) -> IngestResult:
    terms = DatasetTerms(
        title=f"Handwritten digits, part {number}",
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
    """Run the marketplace on this machine: coordinator, witness, three hosts, a funded job.

    Example: tally demo --workdir ./demo
    """
    root = workdir or Path(tempfile.mkdtemp(prefix="tally-demo-"))
    if workdir is not None and workdir.exists() and any(workdir.iterdir()):
        fail(f"--workdir {workdir} is not empty")
    root.mkdir(parents=True, exist_ok=True)
    keys_dir = root / "keys"
    keys_dir.mkdir(exist_ok=True)
    try:
        summary = _run(root, keys_dir, quiet=as_json)
    except ApiError as exc:
        fail(f"the demo's coordinator refused a request: {exc}")
    if as_json:
        emit_json(summary)
        return
    _print_summary(summary, root, keys_dir)


def _run(root: Path, keys_dir: Path, *, quiet: bool) -> dict[str, Any]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    ) as progress:
        step = progress.add_task("coordinator (development mode) and witness", total=12)
        home = init_coordinator_home(root / "coordinator", COORDINATOR_NAME, dev_mode=True)
        prepare_database(home.database_url)
        log_vkey = home.log_signer().verifier.vkey
        witness_home = init_witness_home(root / "witness", WITNESS_NAME)
        witness_home, _, _ = follow_log(witness_home.root, log_vkey)
        witness_server = LocalServer(create_witness_app(witness_home.witness())).start()
        witness_vkey = witness_home.verifier.vkey
        write_config(
            home.root,
            home.config.model_copy(
                update={
                    "witnesses": [
                        WitnessConfig(name=WITNESS_NAME, vkey=witness_vkey, url=witness_server.url)
                    ]
                }
            ),
        )
        (keys_dir / "log.vkey").write_text(log_vkey + "\n")
        (keys_dir / "witness.vkey").write_text(witness_vkey + "\n")
        coordinator = open_coordinator(open_coordinator_home(home.root))
        admin_key = bootstrap_admin(coordinator)
        settings = superlink_settings(coordinator.home, free_port())
        for folder in ("superlink", "logs"):
            (home.root / folder).mkdir(mode=0o700, exist_ok=True)
        superlink = SuperLinkSupervisor(settings)
        superlink.start()
        coordinator.superlink = settings
        api = LocalServer(create_app(coordinator)).start()
        coordinator.start()
        try:
            return _marketplace(root, api.url, admin_key, coordinator, progress, step)
        finally:
            api.stop()
            superlink.stop()
            coordinator.close()
            witness_server.stop()


def _marketplace(
    root: Path, url: str, admin_key: str, coordinator: Any, progress: Progress, step: Any
) -> dict[str, Any]:
    progress.update(step, advance=1, description="accounts: three creators, a buyer, an auditor")
    with TallyClient(url, admin_key) as admin:
        info = admin.info()
        creators = [admin.create_account(f"creator-{n}", "creator") for n in range(HOSTS)]
        buyer_account = admin.create_account("buyer", "buyer")
        admin.create_account("auditor", "auditor")

    progress.update(step, advance=1, description="three data-host nodes: keys, attestation")
    homes = [init_home(root / "hosts" / f"host-{n}", f"host-{n}") for n in range(HOSTS)]
    evidence = [produce_evidence(home, EvidenceKind.DEV) for home in homes]
    attested = [store_evidence(home, item) for home, item in zip(homes, evidence, strict=True)]

    progress.update(step, advance=1, description="ingesting a dataset on each node")
    added = [
        _add_dataset(home, _make_dataset(root / "data", number), number)
        for number, home in enumerate(homes)
    ]
    for number, result in enumerate(added):
        (root / f"dataset-{number}.dsse.json").write_bytes(envelope_bytes(result.signed.envelope))

    progress.update(step, advance=1, description="hosts register and publish their manifests")
    listings = []
    for home, account, item, result in zip(homes, creators, evidence, added, strict=True):
        with TallyClient(url, account["api_key"]) as creator:
            proof = sign_identity_link(
                home.creator_key(), account_id=account["account"]["id"], audience=info["audience"]
            )
            creator.link_identity(proof.to_dict())
            creator.register_host(home.config.creator_did, json.loads(item.to_json()))
            listings.append(creator.publish_manifest(result.signed.envelope.to_dict()))

    progress.update(step, advance=1, description="the buyer searches, gets a quote, funds a job")
    with TallyClient(url, buyer_account["api_key"]) as buyer:
        found = buyer.search_catalog(modality="tabular", use="train")
        spec = spec_from_options(
            datasets=[f"{item['dataset_id']}:2.0" for item in found["items"]],
            model="logistic-regression",
            rounds=3,
            local_epochs=2,
            batch_size=32,
            learning_rate="0.5",
            min_hosts=2,
        )
        quote = buyer.quote(spec)["quote"]
        budget = Decimal(quote["total"].split()[0]) + 5
        job = buyer.create_job(spec, str(budget), quote["currency"])
        job = buyer.fund_job(job["id"])

    progress.update(step, advance=1, description="each host gets a capability token")
    coordinator_key = PublicKey.from_did(info["coordinator_did"])
    tokens = []
    for home, account, result in zip(homes, creators, added, strict=True):
        with TallyClient(url, account["api_key"]) as creator:
            issued = creator.issue_token(job["id"], result.dataset.row.id)
        claims = verify_capability(
            issued["token"],
            coordinator_key,
            audience=home.config.creator_did,
            worker_key=home.worker_public_key,
        )
        tokens.append(claims)

    progress.update(step, advance=1, description="the witness cosigns the latest checkpoint")
    if coordinator.pump is not None:
        coordinator.pump.run_once()
    with TallyClient(url, buyer_account["api_key"]) as reader:
        checkpoint_note = reader.log_checkpoint()
        (root / "checkpoint.txt").write_bytes(checkpoint_note)
        entry = reader.log_entry(listings[0]["log"]["index"])

    progress.update(step, advance=1, description="verifying a manifest's tlog-proof")
    record = entry["record"]
    leaf = LogRecord(
        record["type"], record["envelope"].removeprefix("sha256:"), tuple(record["subjects"])
    ).to_entry()
    (root / "entry-0.json").write_bytes(leaf)
    (root / "entry-0.tlog-proof").write_text(entry["tlog_proof"])
    log_key = parse_verifier_key(info["log_vkey"])
    witness_key = parse_verifier_key(info["witnesses"][0]["vkey"])
    if not isinstance(log_key, Ed25519NoteVerifier) or not isinstance(
        witness_key, CosignatureVerifier
    ):
        fail("the coordinator announced a log or witness key of the wrong type")
    checked = TlogProof.parse((root / "entry-0.tlog-proof").read_bytes()).verify(
        leaf_hash(leaf),
        log_key,
        witnesses=[witness_key],
        min_witnesses=1,
    )
    training = _train(root, url, homes, creators, buyer_account, job["id"], progress, step)
    progress.update(step, advance=1, description="done")

    return {
        "training": training,
        "workdir": str(root),
        "development_mode": info["development_mode"],
        "log_origin": info["log_origin"],
        "log_verifier_key": info["log_vkey"],
        "witness_verifier_key": info["witnesses"][0]["vkey"],
        "size": checked.checkpoint.size,
        "root_hash": checked.checkpoint.root_hash.hex(),
        "witnessed_by": [n for n in checked.note.verified_by if n != info["log_origin"]],
        "job": {
            "id": job["id"],
            "status": job["status"],
            "quote": quote,
            "events": [(event["to"], event["log_index"]) for event in job["events"]],
        },
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
                "log_index": listing["log"]["index"],
                "token": {"jti": token.jti, "insecure_attestation": token.insecure_attestation},
            }
            for home, claims, result, listing, token in zip(
                homes, attested, added, listings, tokens, strict=True
            )
        ],
    }


def _print_summary(summary: dict[str, Any], root: Path, keys_dir: Path) -> None:
    table = Table(title="Tallystick marketplace demo", show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("work dir", str(root))
    for host in summary["hosts"]:
        pii = f", {host['pii_findings']} e-mail addresses redacted" if host["pii_findings"] else ""
        table.add_row(
            Path(host["home"]).name,
            f"{host['dataset_id']}: {host['rows']} rows{pii}; listed at log index "
            f"{host['log_index']}",
        )
    job = summary["job"]
    table.add_row("job", f"{job['id']}: {job['status']}, quote {job['quote']['total']}")
    table.add_row(
        "job events", ", ".join(f"{state} (log {index})" for state, index in job["events"])
    )
    table.add_row("tokens", f"{len(summary['hosts'])} issued, each bound to an attested worker key")
    table.add_row("log", f"{summary['size']} records; {summary['log_verifier_key']}")
    table.add_row("witness", summary["witness_verifier_key"])
    table.add_row("worker keys", "attested with dev evidence: INSECURE, development mode only")
    for item in summary["training"]["rounds"]:
        metrics = item["metrics"]
        table.add_row(
            f"round {item['round']}",
            f"loss {metrics.get('train_loss')}, held-out acc. {metrics.get('eval_accuracy')}, "
            f"{len(item['accepted'])} hosts, {item['samples']} samples, "
            f"proof at log {item['log_index']}",
        )
    money = summary["training"]["billing"]
    currency = money["currency"]
    table.add_row("hold", f"{format_minor(int(money['held_minor']), currency)} placed at funding")
    for item in money["rounds"]:
        table.add_row(
            f"settled {item['round']}",
            f"{format_minor(int(item['settled_minor']), currency)} from the hold (fee "
            f"{format_minor(int(item['fee_minor']), currency)}), settlement at log "
            f"{item['settlement_log_index']}",
        )
    table.add_row(
        "earnings",
        ", ".join(
            f"{Path(host['home']).name} {format_minor(int(paid), currency)}"
            for host, paid in zip(summary["hosts"], money["creators_paid_minor"], strict=True)
        )
        + f"; platform fees {format_minor(int(money['fees_minor']), currency)}",
    )
    table.add_row(
        "refund", f"{format_minor(int(money['refund_minor']), currency)} released to the buyer"
    )
    final = summary["training"]["final"]
    table.add_row(
        "model",
        f"held-out accuracy {final['accuracy']} (majority class {final['majority_baseline']}); "
        f"{final['records_verified']} proofs and receipts verified; log size {final['tree_size']}",
    )
    console.print(table)
    console.print("\nLatest checkpoint (log signature + witness cosignature):")
    emit_raw((root / "checkpoint.txt").read_text())
    home0 = summary["hosts"][0]
    console.print("Check it yourself:")
    console.print(
        f"  tally verify checkpoint --key {keys_dir / 'log.vkey'} {root / 'checkpoint.txt'}\n"
        f"  tally verify tlog-proof --key {keys_dir / 'log.vkey'} "
        f"--witness {keys_dir / 'witness.vkey'} --min-witnesses 1 "
        f"--leaf-file {root / 'entry-0.json'} {root / 'entry-0.tlog-proof'}\n"
        f"  tally verify envelope --key {Path(home0['home']) / 'keys' / 'creator.pub'} "
        f"{root / 'dataset-0.dsse.json'}\n"
        f"  tally host dataset verify {home0['dataset_id']} --home {home0['home']}\n"
        f"  tally coordinator up --home {root / 'coordinator'}   # serve it again",
        markup=False,
        soft_wrap=True,
    )


def _train(
    root: Path,
    url: str,
    homes: list[NodeHome],
    creators: list[dict[str, Any]],
    buyer_account: dict[str, Any],
    job_id: str,
    progress: Progress,
    step: Any,
) -> dict[str, Any]:
    """Each host runs `tally host up`; the buyer starts the job and waits; every round
    proof and receipt is fetched from the log and verified; the model is saved."""
    progress.update(step, advance=1, description="three SuperNodes (tally host up)")
    processes = []
    try:
        for number, (home, account) in enumerate(zip(homes, creators, strict=True)):
            with TallyClient(url, account["api_key"]) as creator:
                pin_coordinator(home, creator.info(), url)
            process, _ready = start_host_up(
                home.root, url, account["api_key"], name=f"host-{number}"
            )
            processes.append(process)
        progress.update(step, advance=1, description="federated DP training, 3 rounds")
        with TallyClient(url, buyer_account["api_key"]) as buyer:
            buyer.start_job(job_id, node_wait_seconds=60, round_timeout_seconds=300)
            deadline = time.monotonic() + 900
            while (run := buyer.job_rounds(job_id))["status"] not in ENDED:
                if time.monotonic() > deadline:
                    fail(f"job {job_id} did not end within 900 s")
                time.sleep(0.5)
            if run["status"] != "completed":
                fail(f"job {job_id} {run['status']}: {run.get('status_reason')}")
            model = buyer.job_model(job_id)
            info = buyer.info()
            progress.update(step, advance=1, description="verifying every proof in the log")
            coordinator_key = PublicKey.from_did(info["coordinator_did"])
            workers = [home.worker_public_key for home in homes]
            verified = 0
            for summary in run["rounds"]:
                entry = buyer.log_entry(summary["proof_log_index"])
                verify_statement(
                    Envelope.from_dict(entry["envelope"]),
                    [coordinator_key],
                    predicate_type=ROUND_PROOF_PREDICATE,
                )
                verified += 1
                for index in summary["receipt_log_indexes"]:
                    receipt = buyer.log_entry(index)
                    verify_statement(
                        Envelope.from_dict(receipt["envelope"]),
                        workers,
                        predicate_type=USAGE_RECEIPT_PREDICATE,
                    )
                    verified += 1
                settled = buyer.log_entry(summary["settlement_log_index"])
                verify_statement(
                    Envelope.from_dict(settled["envelope"]),
                    [coordinator_key],
                    predicate_type=SETTLEMENT_PREDICATE,
                )
                verified += 1
            statement = buyer.job_statement(job_id)
            earned = []
            for account in creators:
                with TallyClient(url, account["api_key"]) as creator:
                    earned.append(creator.job_statement(job_id)["paid_to_you_minor"])
            checkpoint = buyer.log_checkpoint().decode().splitlines()
    finally:
        for process in processes:
            stop_host_up(process)
    (root / "model.npz").write_bytes(base64.b64decode(model["npz_base64"]))
    (root / "model.card.json").write_text(json.dumps(model["card"], indent=2) + "\n")
    _features, labels = digits_rows()
    return {
        "rounds": [
            {
                "round": summary["round"],
                "metrics": summary["metrics"],
                "accepted": [item["host_did"] for item in summary["accepted"]],
                "rejected": [
                    {"host": item["host_did"], "reason": item["reason"]}
                    for item in summary["rejected"]
                ],
                "epsilon": summary["epsilon"],
                "samples": summary["samples"],
                "cost_minor": summary["cost_minor"],
                "log_index": summary["proof_log_index"],
            }
            for summary in run["rounds"]
        ],
        "final": {
            "accuracy": model["card"]["evaluation"].get("accuracy"),
            "majority_baseline": format(np.bincount(labels).max() / len(labels), ".4f"),
            "model_digest": model["model_digest"],
            "checkpoint": "\n".join(checkpoint[:3]),
            "tree_size": int(checkpoint[1]),
            "records_verified": verified,
        },
        "billing": {
            "currency": statement["currency"],
            "held_minor": statement["held_minor"],
            "rounds": [
                {
                    "round": summary["round"],
                    "settled_minor": str(summary["settled_minor"]),
                    "fee_minor": str(summary["fee_minor"]),
                    "hold_left_minor": str(summary["hold_left_minor"]),
                    "settlement_log_index": summary["settlement_log_index"],
                }
                for summary in run["rounds"]
            ],
            "creators_paid_minor": earned,
            "fees_minor": statement["fees_minor"],
            "refund_minor": statement["released_minor"],
        },
    }
