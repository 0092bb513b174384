"""The training loop of one job on the SuperLink: rounds with deadlines, verified receipts,
aggregation by a Flower strategy, and a signed, logged proof for every round.

``run_job`` is what the ServerApp runs. It never calls Flower's ``Strategy.start``, which
waits without limit for ``min_available_nodes``: it finds the job's hosts itself (a
``query`` message to every connected node, within ``node_wait`` seconds), and every round
sends each (host, dataset) pair the global model with a fresh capability token and nonce,
then waits at most ``round_timeout`` seconds. The wrapped strategy configures the round
(its own config keys, e.g. FedProx's ``proximal-mu``) and aggregates only the replies
whose receipts verified (``coordinator.receipt_check``). A host that refuses, fails, times
out or sends a bad receipt is dropped for that round and named in the proof with the
reason; nothing is metered for it. A round with fewer than the job's ``min_hosts``
accepted replies fails the job.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx, FedTrimmedAvg, Krum, Strategy
from numpy.typing import NDArray
from sqlmodel import Session, col, select

from billing.ledger import balance
from billing.settlement import MeteredLine, Royalty, hold_account, round_charge
from coordinator.accounts import Principal
from coordinator.database import writing
from coordinator.errors import CoordinatorError
from coordinator.jobs import job_datasets, transition_job
from coordinator.receipt_check import SentWork, Verdict, check_reply, most_samples
from coordinator.round_proofs import (
    DatasetPrice,
    RoundBilling,
    build_round_proof,
    record_round,
)
from coordinator.royalties import listing_royalty
from coordinator.service import Coordinator
from coordinator.tables import HostWorker, Job, JobModel, JobRound, JobRun, Listing
from coordinator.tokens import issue_job_token
from provenance.keys import PublicKey
from provenance.model_digest import array_layout, arrays_digest

_log = logging.getLogger(__name__)

#: The principal the training loop acts as when it issues tokens and ends jobs.
TRAINING_LAUNCHER = Principal(
    account_id="coordinator", name="training launcher", role="admin", key_id=""
)
#: The clipping norm every job's DP-SGD uses (per-sample gradient L2 bound).
MAX_GRAD_NORM = 1.0
_STRATEGIES: dict[str, type[Strategy]] = {
    "fedavg": FedAvg,
    "fedprox": FedProx,
    "fedadam": FedAdam,
    "fedtrimmedavg": FedTrimmedAvg,
    "krum": Krum,
}


class TrainingError(CoordinatorError):
    """The job cannot go on: too few hosts, a failed aggregation, a bad job."""


@dataclass(frozen=True)
class RunSettings:
    """Deadlines of a run, in seconds."""

    node_wait: float = 120.0
    round_timeout: float = 600.0


@dataclass
class Assignment:
    """One dataset of the job and the host (Flower node) that holds it."""

    dataset_id: str
    manifest_digest: str
    host_did: str
    worker_key: PublicKey
    evidence_digest: str
    target_epsilon: str
    delta: str
    train_rows: int
    price: DatasetPrice
    royalty: Royalty
    node_id: int | None = None
    features: int | None = None
    classes: int | None = None
    mechanism: tuple[float, float] | None = None
    epsilon_total: str = "0"


@dataclass
class _Round:
    sent: dict[str, tuple[Assignment, SentWork]] = field(default_factory=dict)
    missing: list[tuple[SentWork, str]] = field(default_factory=list)


class _PinnedGrid:
    """A view of the grid that offers the strategy only the nodes this round uses, so that
    its node sampling never waits for nodes that are not there."""

    def __init__(self, grid: Grid, node_ids: list[int]) -> None:
        self._grid = grid
        self._node_ids = node_ids

    def get_node_ids(self) -> Iterable[int]:
        return list(self._node_ids)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grid, name)


def _strategy(job: Job) -> Strategy:
    options = json.loads(job.strategy_options)
    kind = _STRATEGIES.get(job.strategy)
    if kind is None:
        raise TrainingError(f"job {job.id} names strategy {job.strategy!r}, which is not built in")
    return kind(  # type: ignore[call-arg]  # every built-in strategy takes these
        fraction_train=1.0,
        fraction_evaluate=1.0,
        min_train_nodes=1,
        min_evaluate_nodes=1,
        min_available_nodes=1,
        **options,
    )


def npz_bytes(arrays: Mapping[str, NDArray[Any]]) -> bytes:
    """Arrays as an uncompressed ``.npz`` (what ``tally job model`` delivers)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(value) for name, value in sorted(arrays.items())})  # type: ignore[arg-type]
    return buffer.getvalue()


def _numpy(record: ArrayRecord) -> dict[str, NDArray[Any]]:
    return {name: array.numpy() for name, array in record.items()}


def _reply_bytes(message: Message) -> bytes | None:
    receipt = message.content.config_records.get("receipt")
    value = None if receipt is None else receipt.get("envelope")
    return value if isinstance(value, bytes) else None


def _refusal(message: Message) -> str | None:
    if message.has_error():
        return f"the host's ClientApp failed: {str(message.error.reason)[:300]}"
    refusal = message.content.config_records.get("refusal")
    if refusal is None:
        return None
    stage = str(refusal.get("stage", "?"))
    return f"host refused ({stage}): {str(refusal.get('reason', ''))[:400]}"


class JobTrainer:
    """Runs one job's rounds on ``grid`` (see the module docstring)."""

    def __init__(
        self, coordinator: Coordinator, grid: Grid, job_id: str, settings: RunSettings
    ) -> None:
        self.coordinator = coordinator
        self.grid = grid
        self.job_id = job_id
        self.settings = settings
        with Session(coordinator.engine) as session:
            job = session.get(Job, job_id)
            if job is None:
                raise TrainingError(f"no job {job_id!r}")
            if job.status != "running":
                raise TrainingError(f"job {job_id} is {job.status}; only a running job trains")
            self.job = job
            self.assignments = load_assignments(session, job)
        self.strategy = _strategy(self.job)
        self.billing = RoundBilling(
            currency=self.job.currency,
            fee_bps=self.job.platform_fee_bps,
            royalties={item.dataset_id: item.royalty for item in self.assignments},
        )
        #: The datasets whose replies the latest round aggregated.
        self.contributors: set[str] = set()
        self.seed = int.from_bytes(self.job.id.encode()[-8:].ljust(8, b"\0"), "big") % (2**31)

    def before_send(self, message: Message, item: Assignment, round_number: int) -> Message:
        """The train message as it is sent to ``item``'s host. The identity here; a test
        app overrides it to send forged, expired, replayed or out-of-scope tokens."""
        return message

    # -- discovery -------------------------------------------------------------------

    def discover(self) -> None:
        """Ask every connected node which host it is, until all the job's hosts answered or
        ``node_wait`` passed."""
        deadline = time.monotonic() + self.settings.node_wait
        asked: set[int] = set()
        wanted = {item.host_did for item in self.assignments}
        found: dict[str, tuple[int, dict[str, dict[str, Any]]]] = {}
        while True:
            new = [node for node in self.grid.get_node_ids() if node not in asked]
            if new:
                asked.update(new)
                queries = [
                    Message(
                        RecordDict({"config": ConfigRecord({"job-id": self.job.id})}),
                        dst_node_id=node,
                        message_type=MessageType.QUERY,
                        ttl=max(5.0, self.settings.node_wait),
                    )
                    for node in new
                ]
                remaining = max(1.0, deadline - time.monotonic())
                for reply in self.grid.send_and_receive(queries, timeout=remaining):
                    described = _described(reply)
                    if described is not None:
                        host, datasets = described
                        found[host] = (reply.metadata.src_node_id, datasets)
            if wanted <= set(found) or time.monotonic() >= deadline:
                break
            time.sleep(1.0)
        for item in self.assignments:
            entry = found.get(item.host_did)
            if entry is None:
                continue
            node_id, datasets = entry
            listed = datasets.get(item.dataset_id)
            if listed is None or listed.get("manifest_digest") != item.manifest_digest:
                continue
            item.node_id = node_id
            if "features" in listed and "classes" in listed:
                item.features = int(listed["features"])
                item.classes = int(listed["classes"])

    # -- the loop --------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Train every round, evaluate, store the model; returns the final summary."""
        from privacy.models import ModelShape, build_model

        self.discover()
        online = [item for item in self.assignments if item.node_id is not None]
        if len(online) < self.job.min_hosts:
            raise TrainingError(
                f"only {len(online)} of the job's {len(self.assignments)} hosts connected within "
                f"{self.settings.node_wait:g} s; the job needs {self.job.min_hosts}"
            )
        features = {item.features for item in online if item.features is not None}
        if len(features) != 1:
            raise TrainingError(
                f"the job's datasets have different feature counts {sorted(map(str, features))}; "
                "one model cannot train on all of them"
            )
        classes = max((item.classes or 2 for item in online), default=2)
        shape = ModelShape((features.pop() or 1,), max(classes, 2))
        model = build_model(self.job.model, shape, seed=self.seed)
        arrays = {
            name: value.detach().numpy().astype(np.float32)
            for name, value in model.state_dict().items()
        }
        layout = array_layout(arrays)
        global_record = ArrayRecord({name: Array(value) for name, value in arrays.items()})
        digest = arrays_digest(arrays)
        initial_digest = digest
        summaries: list[dict[str, Any]] = []
        for round_number in range(1, self.job.rounds + 1):
            global_record, digest, summary = self._round(
                round_number, global_record, digest, layout, shape.num_classes
            )
            summaries.append(summary)
        evaluation = self._evaluate(global_record, shape.num_classes)
        return self._finish(global_record, digest, initial_digest, summaries, evaluation)

    def _connected(self) -> list[Assignment]:
        """The assignments whose host's node is online on the SuperLink now. A node that
        stopped sending heartbeats is left out, so that no round waits on it."""
        online = set(self.grid.get_node_ids())
        return [item for item in self.assignments if item.node_id in online]

    def _tokens(
        self, operation: str, items: list[Assignment]
    ) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
        """A fresh capability token (and its ``jti``) for each of ``items``, and the reason
        for each dataset that gets none (revoked since funding, evidence no longer meets
        the policy...)."""
        tokens: dict[str, tuple[str, str]] = {}
        refused: dict[str, str] = {}
        for item in items:
            try:
                with writing(self.coordinator.engine) as session:
                    token, claims = issue_job_token(
                        session,
                        self.coordinator.signing_key,
                        TRAINING_LAUNCHER,
                        self.job.id,
                        item.dataset_id,
                        policy=self.coordinator.attestation_policy(),
                        ttl=self.coordinator.token_ttl,
                        now=self.coordinator.now(),
                        operation=operation,
                    )
            except CoordinatorError as exc:
                refused[item.dataset_id] = f"no capability token issued: {exc}"
                continue
            tokens[item.dataset_id] = (token, claims.jti)
        return tokens, refused

    def _messages(
        self,
        round_number: int,
        global_record: ArrayRecord,
        base_digest: str,
        layout: Mapping[str, tuple[tuple[int, ...], str]],
        classes: int,
    ) -> tuple[list[Message], _Round]:
        state = _Round()
        connected = self._connected()
        connected_ids = {item.dataset_id for item in connected}
        node_ids = sorted({item.node_id for item in connected if item.node_id is not None})
        configured = list(
            self.strategy.configure_train(
                round_number,
                global_record,
                ConfigRecord(),
                _PinnedGrid(self.grid, node_ids),  # type: ignore[arg-type]
            )
        )
        strategy_config: dict[str, Any] = {}
        if configured:
            strategy_config = dict(configured[0].content.config_records.get("config", {}))
        tokens, refused = self._tokens("train", connected)
        messages: list[Message] = []
        for item in self.assignments:
            nonce = secrets.token_urlsafe(32)
            token, jti = tokens.get(item.dataset_id, ("", ""))
            sent = SentWork(
                job_id=self.job.id,
                round=round_number,
                nonce=nonce,
                token_jti=jti,
                dataset_id=item.dataset_id,
                manifest_digest=item.manifest_digest,
                host_did=item.host_did,
                worker_key=item.worker_key,
                evidence_digest=item.evidence_digest,
                base_model_digest=base_digest,
                layout=layout,
                target_epsilon=item.target_epsilon,
                delta=item.delta,
                train_rows=item.train_rows,
                mechanism=item.mechanism,
            )
            if item.node_id is None:
                state.missing.append((sent, "host not connected to the SuperLink"))
                continue
            if item.dataset_id not in connected_ids:
                state.missing.append((sent, "host left the SuperLink (its heartbeats stopped)"))
                continue
            if item.dataset_id in refused:
                state.missing.append((sent, refused[item.dataset_id]))
                continue
            config = ConfigRecord(
                {
                    **strategy_config,
                    "server-round": round_number,
                    "rounds": self.job.rounds,
                    "job-id": self.job.id,
                    "dataset-id": item.dataset_id,
                    "nonce": nonce,
                    "token": token,
                    "model": self.job.model,
                    "classes": classes,
                    "batch-size": self.job.batch_size,
                    "local-epochs": self.job.local_epochs,
                    "learning-rate": float(self.job.learning_rate),
                    "max-grad-norm": MAX_GRAD_NORM,
                    "seed": self.seed + round_number,
                }
            )
            message = Message(
                RecordDict({"arrays": global_record, "config": config}),
                dst_node_id=item.node_id,
                message_type=MessageType.TRAIN,
                ttl=self.settings.round_timeout,
            )
            message = self.before_send(message, item, round_number)
            messages.append(message)
            state.sent[str(id(message))] = (item, sent)
        return messages, state

    def _round(
        self,
        round_number: int,
        global_record: ArrayRecord,
        digest: str,
        layout: Mapping[str, tuple[tuple[int, ...], str]],
        classes: int,
    ) -> tuple[ArrayRecord, str, dict[str, Any]]:
        round_started = datetime.now(UTC)
        self._check_hold(round_number)
        self._set_round(round_number)
        messages, state = self._messages(round_number, global_record, digest, layout, classes)
        started = time.monotonic()
        replies = list(self.grid.send_and_receive(messages, timeout=self.settings.round_timeout))
        by_id = {reply.metadata.reply_to_message_id: reply for reply in replies}
        verdicts: list[tuple[SentWork, Verdict]] = []
        accepted: list[tuple[Assignment, Message, Verdict]] = []
        for message in messages:
            item, sent = state.sent[str(id(message))]
            reply = by_id.get(message.metadata.message_id)
            if reply is None:
                state.missing.append(
                    (sent, f"no reply within {self.settings.round_timeout:g} s (host offline?)")
                )
                continue
            refusal = _refusal(reply)
            if refusal is not None:
                verdicts.append((sent, Verdict(False, refusal)))
                continue
            update = reply.content.array_records.get("arrays")
            verdict = check_reply(
                sent, _reply_bytes(reply), None if update is None else _numpy(update)
            )
            verdicts.append((sent, verdict))
            if verdict.accepted:
                accepted.append((item, reply, verdict))
        elapsed = time.monotonic() - started
        if len(accepted) < self.job.min_hosts:
            reasons = "; ".join(
                f"{sent.dataset_id}: {verdict.reason}"
                for sent, verdict in verdicts
                if not verdict.accepted
            ) + "".join(f"; {sent.dataset_id}: {reason}" for sent, reason in state.missing)
            self._failed_round(round_number, verdicts, state.missing)
            raise TrainingError(
                f"round {round_number}: {len(accepted)} accepted replies, fewer than the job's "
                f"min_hosts {self.job.min_hosts} ({reasons.strip('; ')})"
            )
        self.contributors = {item.dataset_id for item, _, _ in accepted}
        aggregated, metrics = self.strategy.aggregate_train(
            round_number, [reply for _, reply, _ in accepted]
        )
        if aggregated is None:
            self._failed_round(round_number, verdicts, state.missing)
            raise TrainingError(
                f"round {round_number}: the {self.job.strategy} strategy aggregated nothing"
            )
        new_arrays = {name: value.astype(np.float32) for name, value in _numpy(aggregated).items()}
        new_digest = arrays_digest(new_arrays)
        metric_text = {
            name.replace("-", "_"): format(float(value), ".6g")
            for name, value in (metrics or MetricRecord()).items()
            if isinstance(value, int | float) and np.isfinite(value) and value >= 0
        }
        for item, _reply, verdict in accepted:
            assert verdict.receipt is not None
            item.mechanism = (
                float(verdict.receipt.noise_multiplier),
                float(verdict.receipt.sample_rate),
            )
            item.epsilon_total = verdict.receipt.epsilon_total
        proof = build_round_proof(
            job_id=self.job.id,
            round_number=round_number,
            strategy=self.job.strategy,
            previous_model_digest=digest,
            new_model_digest=new_digest,
            verdicts=verdicts,
            missing=state.missing,
            prices={item.dataset_id: item.price for item in self.assignments},
            metrics=metric_text,
        )
        summary = {
            "round": round_number,
            "status": "aggregated",
            "started_at": round_started.isoformat(timespec="milliseconds"),
            "seconds": round(elapsed, 3),
            "metrics": metric_text,
            "accepted": [a.to_dict() for a in proof.accepted],
            "rejected": [r.to_dict() for r in proof.rejected],
            "epsilon": {item.dataset_id: item.epsilon_total for item in self.assignments},
            "model_digest": new_digest,
        }
        with writing(self.coordinator.engine) as session:
            recorded = record_round(
                session,
                self.coordinator.log,
                self.coordinator.signing_key,
                proof,
                verdicts,
                summary=summary,
                billing=self.billing,
                now=self.coordinator.now(),
            )
        _log.info(
            "job %s round %d: %d accepted, %d dropped, proof at log index %d",
            self.job.id,
            round_number,
            len(proof.accepted),
            len(proof.rejected),
            recorded.proof_log_index,
        )
        return (
            ArrayRecord({k: Array(v) for k, v in new_arrays.items()}),
            new_digest,
            recorded.summary,
        )

    def _check_hold(self, round_number: int) -> None:
        """Stop the job before a round its hold might not pay for: the most the round can
        cost (every dataset drawing the most samples its Poisson sampling plausibly gives,
        plus the fee) must be left in the hold."""
        items = [
            MeteredLine(
                item.dataset_id,
                most_samples(self.job.local_epochs * item.train_rows),
                Decimal(item.price.price_per_sample),
                item.royalty,
            )
            for item in self.assignments
        ]
        subtotal, fee = round_charge(items, self.job.currency, self.job.platform_fee_bps)
        with Session(self.coordinator.engine) as session:
            left = balance(session, hold_account(self.job.id, self.job.currency)).available
        if subtotal + fee > left:
            raise TrainingError(
                f"round {round_number} could cost up to {subtotal + fee} minor units and the "
                f"job's hold has {left} left; the job stops before it exceeds its budget"
            )

    def _failed_round(
        self,
        round_number: int,
        verdicts: list[tuple[SentWork, Verdict]],
        missing: list[tuple[SentWork, str]],
    ) -> None:
        summary = {
            "round": round_number,
            "status": "failed",
            "accepted": [],
            "rejected": [
                {"host_did": s.host_did, "dataset_id": s.dataset_id, "reason": v.reason}
                for s, v in verdicts
                if not v.accepted
            ]
            + [
                {"host_did": s.host_did, "dataset_id": s.dataset_id, "reason": r}
                for s, r in missing
            ],
        }
        with writing(self.coordinator.engine) as session:
            session.add(
                JobRound(
                    job_id=self.job.id,
                    round_number=round_number,
                    status="failed",
                    summary=json.dumps(summary, sort_keys=True),
                    finished_at=self.coordinator.now(),
                )
            )

    def _set_round(self, round_number: int) -> None:
        with writing(self.coordinator.engine) as session:
            run = session.get(JobRun, self.job.id)
            if run is not None:
                run.current_round = round_number
                session.add(run)

    def _evaluate(self, global_record: ArrayRecord, classes: int) -> dict[str, Any]:
        """Federated evaluation of the final model on the held-out rows of every dataset
        the last round aggregated (a host dropped then is not asked to vouch for the model)."""
        connected = [item for item in self._connected() if item.dataset_id in self.contributors]
        tokens, _refused = self._tokens("evaluate", connected)
        messages = []
        for item in connected:
            if item.dataset_id not in tokens or item.node_id is None:
                continue
            token, _jti = tokens[item.dataset_id]
            config = ConfigRecord(
                {
                    "server-round": self.job.rounds,
                    "job-id": self.job.id,
                    "dataset-id": item.dataset_id,
                    "nonce": secrets.token_urlsafe(32),
                    "token": token,
                    "model": self.job.model,
                    "classes": classes,
                }
            )
            messages.append(
                Message(
                    RecordDict({"arrays": global_record, "config": config}),
                    dst_node_id=item.node_id,
                    message_type=MessageType.EVALUATE,
                    ttl=self.settings.round_timeout,
                )
            )
        replies = list(self.grid.send_and_receive(messages, timeout=self.settings.round_timeout))
        examples = 0.0
        loss = accuracy = 0.0
        hosts = 0
        for reply in replies:
            if _refusal(reply) is not None:
                continue
            metrics = reply.content.metric_records.get("metrics")
            if metrics is None:
                continue
            count = float(metrics.get("num-examples", 0.0))  # type: ignore[arg-type]
            if count <= 0:
                continue
            hosts += 1
            examples += count
            loss += count * float(metrics.get("eval-loss", 0.0))  # type: ignore[arg-type]
            accuracy += count * float(metrics.get("eval-accuracy", 0.0))  # type: ignore[arg-type]
        if examples == 0:
            return {"hosts": 0, "examples": 0}
        return {
            "hosts": hosts,
            "examples": int(examples),
            "loss": format(loss / examples, ".6g"),
            "accuracy": format(accuracy / examples, ".6g"),
        }

    def _finish(
        self,
        global_record: ArrayRecord,
        digest: str,
        initial_digest: str,
        summaries: list[dict[str, Any]],
        evaluation: dict[str, Any],
    ) -> dict[str, Any]:
        card = {
            "job_id": self.job.id,
            "model": self.job.model,
            "strategy": self.job.strategy,
            "rounds": self.job.rounds,
            "initial_model_digest": initial_digest,
            "model_digest": digest,
            "datasets": [
                {
                    "dataset_id": item.dataset_id,
                    "manifest_digest": item.manifest_digest,
                    "host_did": item.host_did,
                    "epsilon": item.epsilon_total,
                    "delta": item.delta,
                    "target_epsilon": item.target_epsilon,
                }
                for item in self.assignments
            ],
            "proofs": [
                {
                    "round": s["round"],
                    "log_index": s["proof_log_index"],
                    "digest": s["proof_digest"],
                }
                for s in summaries
            ],
            "evaluation": evaluation,
            "log_origin": self.coordinator.log.origin,
            "tree_size": summaries[-1]["tree_size"] if summaries else self.coordinator.log.size,
        }
        with writing(self.coordinator.engine) as session:
            session.add(
                JobModel(
                    job_id=self.job.id,
                    round_number=self.job.rounds,
                    model_digest=digest,
                    arrays=npz_bytes(_numpy(global_record)),
                    card=json.dumps(card, sort_keys=True),
                    created_at=self.coordinator.now(),
                )
            )
        return card


def _described(reply: Message) -> tuple[str, dict[str, dict[str, Any]]] | None:
    if reply.has_error():
        return None
    node = reply.content.config_records.get("node")
    if node is None:
        return None
    host = node.get("host-did")
    raw = node.get("datasets")
    if not isinstance(host, str) or not isinstance(raw, str) or len(raw) > 1_000_000:
        return None
    try:
        listed = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(listed, list):
        return None
    datasets = {
        str(entry["dataset_id"]): entry
        for entry in listed
        if isinstance(entry, dict) and isinstance(entry.get("dataset_id"), str) and _shape_ok(entry)
    }
    return host, datasets


def _shape_ok(entry: dict[str, Any]) -> bool:
    """A listed dataset either gives no shape (it will refuse work) or a sane one."""
    if "features" not in entry and "classes" not in entry:
        return True
    features, classes = entry.get("features"), entry.get("classes")
    return (
        isinstance(features, int)
        and isinstance(classes, int)
        and 0 < features <= 1_000_000
        and 1 <= classes <= 1000
    )


def load_assignments(session: Session, job: Job) -> list[Assignment]:
    """The job's datasets with the host, worker key and terms each one is trained under."""
    from privacy.features import training_rows

    assignments = []
    for item in job_datasets(session, job.id):
        listing = session.get(Listing, item.manifest_digest)
        if listing is None:
            raise TrainingError(f"job {job.id}: dataset {item.dataset_id} is not in the catalog")
        host = session.get(HostWorker, listing.creator_did)
        if host is None:
            raise TrainingError(f"job {job.id}: the host of {item.dataset_id} has no worker key")
        assignments.append(
            Assignment(
                dataset_id=item.dataset_id,
                manifest_digest=item.manifest_digest,
                host_did=listing.creator_did,
                worker_key=PublicKey.from_did(host.worker_did),
                evidence_digest=host.evidence_digest,
                target_epsilon=item.target_epsilon,
                delta=item.delta,
                train_rows=training_rows(listing.rows),
                price=DatasetPrice(item.price_per_sample, listing.currency),
                royalty=listing_royalty(listing),
            )
        )
    return assignments


def finish_job(coordinator: Coordinator, job_id: str, *, failed: str | None) -> None:
    """Move a running job to completed, or to failed with the reason, logging the change."""
    with writing(coordinator.engine) as session:
        job = session.get(Job, job_id)
        if job is None or job.status != "running":
            return
        transition_job(
            session,
            coordinator.log,
            coordinator.signing_key,
            TRAINING_LAUNCHER,
            job_id,
            "failed" if failed else "completed",
            reason=failed,
            now=coordinator.now(),
        )
        run = session.get(JobRun, job_id)
        if run is not None:
            run.finished_at = coordinator.now()
            run.outcome = failed or "completed"
            session.add(run)
    coordinator.logged()


def job_rounds(session: Session, job_id: str) -> list[JobRound]:
    """A job's recorded rounds, in order."""
    statement = (
        select(JobRound).where(JobRound.job_id == job_id).order_by(col(JobRound.round_number))
    )
    return list(session.exec(statement))
