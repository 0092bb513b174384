"""The data host's worker: one round of one job on one dataset, checked before it starts.

``run_training_round`` does, in this order, and refuses with ``WorkRefused`` (saying which
check failed) before any creator data is opened:

1. the capability token: signed by the coordinator this node pinned, for this node
   (audience), bound to this node's worker key (``cnf``), unexpired, for this job and
   this dataset's manifest digest, operation ``train``, this job's planned rounds;
2. replay: the token's ``jti`` and the round nonce were never used on this node;
3. the node's policy: the app bundle is on the allow-list, the dataset is registered,
   not revoked and allows training, and the job's DP mechanism fits the dataset's privacy
   budget (reserved on the job's first round; later rounds must stay within it);
4. the dataset's files still match its signed manifest.

Then it trains the global model with Opacus (DP-SGD, Poisson sampling, noise chosen so
that the job's ε target holds over all its planned rounds), records the round in the
node's privacy ledger *before* anything leaves the node, and returns the update, a fixed
set of aggregate metrics and a usage receipt signed by the worker key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from data_host.attestation import load_evidence
from data_host.errors import DataHostError, WorkRefused
from data_host.home import NodeHome
from data_host.integrity import verify_dataset
from data_host.policy import WorkRequest, admit_work
from data_host.registry import DatasetRegistry, RegisteredDataset, create_node_tables
from data_host.replay import use_once
from data_host.training_data import TrainingData, load_training_data
from data_host.trust import trusted_coordinator
from privacy.budget import Mechanism, PrivacyBudgetLedger, format_epsilon, noise_for_target
from privacy.errors import PrivacyError
from privacy.features import training_rows
from provenance.capability import CapabilityClaims, verify_capability
from provenance.dsse import Envelope
from provenance.errors import ProvenanceError
from provenance.keys import PublicKey
from provenance.model_digest import ArrayCheckError, array_layout, arrays_digest, check_arrays
from provenance.statement import sign_statement
from provenance.usage import UsageReceipt, decimal_text

_log = logging.getLogger(__name__)

#: The bounds a job's training hyper-parameters must keep on this node.
MAX_LOCAL_EPOCHS = 100
MAX_BATCH_SIZE = 65536


@dataclass(frozen=True)
class TrainOrder:
    """What the coordinator asks of this node for one round (from the train message)."""

    job_id: str
    round: int
    rounds: int
    nonce: str
    token: str
    dataset_id: str
    model: str
    classes: int
    batch_size: int
    local_epochs: int
    learning_rate: float
    max_grad_norm: float
    seed: int
    fab_hash: str
    global_arrays: Mapping[str, NDArray[np.float32]]
    #: FedProx's proximal coefficient μ (the strategy's ``proximal-mu``); 0 for none.
    proximal_mu: float = 0.0


@dataclass(frozen=True)
class EvaluateOrder:
    """An evaluation of the global model on the held-out part of one dataset."""

    job_id: str
    round: int
    nonce: str
    token: str
    dataset_id: str
    model: str
    classes: int
    fab_hash: str
    global_arrays: Mapping[str, NDArray[np.float32]]


@dataclass(frozen=True)
class TrainOutcome:
    """What leaves the node after a round: the update, aggregate metrics, the receipt."""

    arrays: dict[str, NDArray[np.float32]]
    metrics: dict[str, float]
    receipt: UsageReceipt
    envelope: Envelope


@dataclass(frozen=True)
class EvaluateOutcome:
    """Aggregate metrics of the global model on the held-out rows."""

    loss: float
    accuracy: float
    examples: int


def _check_token(
    node: NodeHome, order_job: str, token: str, dataset: RegisteredDataset, operation: str
) -> CapabilityClaims:
    pinned = trusted_coordinator(node)
    try:
        claims = verify_capability(
            token,
            PublicKey.from_did(pinned.did),
            audience=node.config.creator_did,
            worker_key=node.worker_public_key,
        )
    except ProvenanceError as exc:
        raise WorkRefused(f"capability token refused: {exc}") from exc
    scope = claims.scope
    if scope.job_id != order_job:
        raise WorkRefused(f"capability token is for job {scope.job_id}, not {order_job}")
    if scope.dataset_digest != dataset.row.manifest_digest:
        raise WorkRefused(
            f"capability token is for dataset manifest {scope.dataset_digest[:16]}…, not "
            f"{dataset.row.id} ({dataset.row.manifest_digest[:16]}…)"
        )
    if scope.operation != operation:
        raise WorkRefused(f"capability token allows {scope.operation!r}, not {operation!r}")
    return claims


def _dataset(node: NodeHome, dataset_id: str) -> RegisteredDataset:
    create_node_tables(node.engine)  # homes made by older versions lack newer tables
    return DatasetRegistry(node.engine).require_usable(dataset_id, "train")


def _verified_data(node: NodeHome, dataset: RegisteredDataset) -> TrainingData:
    verification = verify_dataset(node.engine, dataset.row.id)
    if not verification.matches:
        raise WorkRefused(
            f"dataset {dataset.row.id}: its files no longer match the signed manifest "
            f"({verification.problem or 'the chunk tree differs'}); re-add it before training"
        )
    try:
        return load_training_data(dataset)
    except DataHostError as exc:
        raise WorkRefused(f"dataset {dataset.row.id} cannot be used for training: {exc}") from exc


def _model_for(
    order_model: str, data: TrainingData, classes: int, arrays: Mapping[str, NDArray[np.float32]]
) -> Any:
    import torch

    from privacy.models import ModelShape, build_model

    if classes < data.classes:
        raise WorkRefused(
            f"the job's model has {classes} classes but this dataset's labels reach "
            f"{data.classes - 1}"
        )
    try:
        model = build_model(order_model, ModelShape(data.input_shape, classes))
    except PrivacyError as exc:
        raise WorkRefused(f"model {order_model!r} cannot train on this dataset: {exc}") from exc
    expected = {
        name: (tuple(value.shape), np.dtype(np.float32).str)
        for name, value in model.state_dict().items()
    }
    try:
        check_arrays(arrays, expected, what="global model")
    except ArrayCheckError as exc:
        raise WorkRefused(f"the global model does not fit {order_model} here: {exc}") from exc
    model.load_state_dict({name: torch.from_numpy(np.array(arrays[name])) for name in expected})
    return model


def _planned_mechanism(
    claims: CapabilityClaims, train_rows: int, order: TrainOrder
) -> tuple[Mechanism, int]:
    from privacy.dp_training import plan_round

    plan = plan_round(train_rows, order.batch_size, order.local_epochs)
    total_steps = plan.steps * claims.scope.rounds
    try:
        sigma = noise_for_target(
            float(claims.scope.epsilon), float(claims.scope.delta), plan.sample_rate, total_steps
        )
    except PrivacyError as exc:
        raise WorkRefused(f"privacy budget: {exc}") from exc
    return Mechanism(sigma, plan.sample_rate, total_steps), plan.steps


def _check_order(order: TrainOrder, claims: CapabilityClaims) -> None:
    if order.rounds != claims.scope.rounds:
        raise WorkRefused(
            f"the job plans {order.rounds} rounds but the token allows {claims.scope.rounds}"
        )
    if not 1 <= order.round <= claims.scope.rounds:
        raise WorkRefused(f"round {order.round} is outside the job's 1..{claims.scope.rounds}")
    if not 1 <= order.local_epochs <= MAX_LOCAL_EPOCHS:
        raise WorkRefused(f"local_epochs must be 1 to {MAX_LOCAL_EPOCHS}")
    if not 1 <= order.batch_size <= MAX_BATCH_SIZE:
        raise WorkRefused(f"batch_size must be 1 to {MAX_BATCH_SIZE}")
    if not (0 < order.learning_rate <= 100 and 0 < order.max_grad_norm <= 1000):
        raise WorkRefused("learning_rate must be in (0, 100] and max_grad_norm in (0, 1000]")


def _admit(
    node: NodeHome, order: TrainOrder, planned: Mechanism, steps_per_round: int
) -> Mechanism:
    """Reserve the job's whole budget on its first round here; later rounds must fit it.
    Returns the mechanism of this round."""
    ledger = PrivacyBudgetLedger(node.engine)
    reserved = ledger.open_reservation(order.dataset_id, order.job_id)
    request = WorkRequest(order.dataset_id, order.job_id, "train", order.fab_hash, planned)
    if reserved is None:
        if ledger.job_rounds(order.dataset_id, order.job_id):
            raise WorkRefused(
                f"job {order.job_id} already ended its work on dataset {order.dataset_id}"
            )
        admit_work(node.engine, request, reserve=True)
        reserved = planned
    else:
        from data_host.allowlist import AppAllowList

        AppAllowList(node.engine).require_allowed(order.fab_hash)
        DatasetRegistry(node.engine).require_usable(order.dataset_id, "train")
    spent = sum(
        entry.mechanism.steps for entry in ledger.job_rounds(order.dataset_id, order.job_id)
    )
    if spent + steps_per_round > reserved.steps:
        raise WorkRefused(
            f"privacy budget: round {order.round} needs {steps_per_round} steps but the job has "
            f"{reserved.steps - spent} of its reserved {reserved.steps} left on this dataset"
        )
    return Mechanism(reserved.noise_multiplier, reserved.sample_rate, steps_per_round)


def run_training_round(node: NodeHome, order: TrainOrder) -> TrainOutcome:
    """Check, train, record and sign one round (see the module docstring)."""
    from privacy.dp_training import DPSettings, evaluate, train_dp

    dataset = _dataset(node, order.dataset_id)
    claims = _check_token(node, order.job_id, order.token, dataset, "train")
    _check_order(order, claims)
    use_once(
        node.engine,
        jti=claims.jti,
        nonce=order.nonce,
        job_id=order.job_id,
        round_number=order.round,
        operation="train",
    )
    # The planned mechanism needs only the row count, which the manifest carries.
    planned, steps_per_round = _planned_mechanism(claims, training_rows(dataset.row.rows), order)
    this_round = _admit(node, order, planned, steps_per_round)
    data = _verified_data(node, dataset)
    base_digest = arrays_digest(order.global_arrays)
    model = _model_for(order.model, data, order.classes, order.global_arrays)
    before = evaluate(model, _tensor(data.held_out_features), _tensor(data.held_out_labels))
    ledger = PrivacyBudgetLedger(node.engine)
    prior = [entry.mechanism for entry in ledger.job_rounds(order.dataset_id, order.job_id)]
    delta = float(claims.scope.delta)
    try:
        result = train_dp(
            model,
            _tensor(data.train_features),
            _tensor(data.train_labels),
            DPSettings(
                noise_multiplier=this_round.noise_multiplier,
                max_grad_norm=order.max_grad_norm,
                batch_size=order.batch_size,
                local_epochs=order.local_epochs,
                learning_rate=order.learning_rate,
                delta=delta,
                proximal_mu=order.proximal_mu,
            ),
            prior=prior,
            seed=order.seed,
        )
    except PrivacyError as exc:
        raise WorkRefused(f"training failed: {exc}") from exc
    if result.mechanism != this_round:
        raise WorkRefused(
            f"training ran {result.mechanism} but the round was admitted for {this_round}"
        )
    ledger.record(order.dataset_id, order.job_id, order.round, result.mechanism)
    if order.round == order.rounds:
        ledger.release(order.dataset_id, order.job_id)
    arrays = {
        name: value.detach().cpu().numpy().astype(np.float32)
        for name, value in model.state_dict().items()
    }
    array_layout(arrays)
    evidence = load_evidence(node)
    receipt = UsageReceipt(
        job_id=order.job_id,
        round=order.round,
        nonce=order.nonce,
        dataset_id=order.dataset_id,
        dataset_manifest_digest=dataset.row.manifest_digest,
        host_did=node.config.creator_did,
        worker_did=node.config.worker_did,
        token_jti=claims.jti,
        attestation_evidence_digest=evidence.digest,
        base_model_digest=base_digest,
        update_digest=arrays_digest(arrays),
        samples_used=result.samples_used,
        steps=result.mechanism.steps,
        noise_multiplier=decimal_text(result.mechanism.noise_multiplier),
        sample_rate=decimal_text(result.mechanism.sample_rate),
        max_grad_norm=decimal_text(order.max_grad_norm),
        accountant=result.mechanism.accountant,
        grad_sample_mode=result.grad_sample_mode,
        epsilon_round=format_epsilon(result.epsilon_round),
        epsilon_total=format_epsilon(result.epsilon_total),
        delta=claims.scope.delta,
        metrics={
            "train_loss": decimal_text(result.mean_loss),
            "eval_loss": decimal_text(before.loss),
            "eval_accuracy": decimal_text(before.accuracy),
        },
    )
    envelope = sign_statement(receipt.to_statement(), [node.worker_key()])
    _log.info(
        "job %s round %d on %s: %d samples, %d steps, ε so far %s",
        order.job_id,
        order.round,
        order.dataset_id,
        result.samples_used,
        result.mechanism.steps,
        receipt.epsilon_total,
    )
    metrics = {
        "num-examples": float(len(data.train_labels)),
        "train-loss": result.mean_loss,
        "eval-loss": before.loss,
        "eval-accuracy": before.accuracy,
        "eval-examples": float(before.examples),
    }
    return TrainOutcome(arrays, metrics, receipt, envelope)


def run_evaluation(node: NodeHome, order: EvaluateOrder) -> EvaluateOutcome:
    """Check an evaluate order like a train order (token, replay, policy, integrity), then
    report the global model's loss and accuracy on the held-out rows only."""
    from data_host.allowlist import AppAllowList
    from privacy.dp_training import evaluate

    dataset = _dataset(node, order.dataset_id)
    claims = _check_token(node, order.job_id, order.token, dataset, "evaluate")
    use_once(
        node.engine,
        jti=claims.jti,
        nonce=order.nonce,
        job_id=order.job_id,
        round_number=order.round,
        operation="evaluate",
    )
    AppAllowList(node.engine).require_allowed(order.fab_hash)
    data = _verified_data(node, dataset)
    model = _model_for(order.model, data, order.classes, order.global_arrays)
    result = evaluate(model, _tensor(data.held_out_features), _tensor(data.held_out_labels))
    return EvaluateOutcome(result.loss, result.accuracy, result.examples)


def _tensor(values: NDArray[Any]) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(values))
