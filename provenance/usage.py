"""The two halves of the tally stick: usage receipts (data host) and round proofs (coordinator).

A **usage receipt** (predicate ``…/usage-receipt/v1``) is signed by a data host's attested
worker key after one round of local DP training: which job, round and nonce, which dataset
(by manifest digest), how many samples and steps it used, under which DP mechanism
(noise multiplier, sample rate, clipping norm, accountant), the ε it spent this round and
so far in the job at δ, the digest of the update it sends back and of the model it
started from, the capability token's ``jti`` and the digest of the worker's attestation
evidence. Its one subject is the update.

A **round proof** (predicate ``…/round-proof/v1``) is signed by the coordinator: the
previous and the new global-model digests, every receipt it accepted and every host it
dropped with the reason, the samples metered per dataset and their prices. Its one
subject is the new global model.

Numbers that must survive exactly (ε, δ, noise, rates, prices) are decimal strings; counts
are integers. ``from_statement`` parses a verified Statement strictly: exactly the known
fields, each typed and bounded, so that a receipt cannot smuggle anything in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from provenance.errors import StatementError
from provenance.statement import Statement, Subject, predicate_type

USAGE_RECEIPT_PREDICATE = predicate_type("usage-receipt")
ROUND_PROOF_PREDICATE = predicate_type("round-proof")
#: Log record types of the two.
USAGE_RECEIPT_RECORD = "usage-receipt"
ROUND_PROOF_RECORD = "round-proof"

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_NONCE = re.compile(r"^[A-Za-z0-9_-]{22,128}$")
_DID = re.compile(r"^did:[a-z0-9]+:[A-Za-z0-9._:%-]{1,200}$")
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,15})(\.[0-9]{1,20})?([eE][-+]?[0-9]{1,3})?$")
_MAX_COUNT = 10**15
_MAX_REASON = 500
_MAX_LIST = 100_000
GRAD_SAMPLE_MODES = ("ghost", "hooks")
RECEIPT_METRICS = ("train_loss", "eval_loss", "eval_accuracy")


def _fail(where: str, problem: str) -> StatementError:
    return StatementError(f"{where}: {problem}")


def _exact_keys(data: Any, keys: Sequence[str], where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _fail(where, "must be a JSON object")
    missing = sorted(set(keys) - set(data))
    if missing:
        raise _fail(where, f"lacks fields: {', '.join(missing)}")
    extra = sorted(str(key)[:40] for key in set(data) - set(keys))
    if extra:
        raise _fail(where, f"has unknown fields: {', '.join(extra)}")
    return data


def _text(data: Mapping[str, Any], name: str, pattern: re.Pattern[str], where: str) -> str:
    value = data[name]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _fail(where, f"field {name} {str(value)[:80]!r} is malformed")
    return value


def _count(data: Mapping[str, Any], name: str, where: str, *, minimum: int = 0) -> int:
    value = data[name]
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= _MAX_COUNT:
        raise _fail(where, f"field {name} must be an integer from {minimum} to {_MAX_COUNT}")
    return value


def _decimal(data: Mapping[str, Any], name: str, where: str) -> str:
    value = data[name]
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise _fail(
            where, f"field {name} {str(value)[:40]!r} must be a non-negative decimal string"
        )
    if not math.isfinite(float(value)):
        raise _fail(where, f"field {name} {value!r} is not finite")
    return value


def decimal_text(value: float) -> str:
    """A finite, non-negative float as the shortest decimal text that reads back exactly."""
    if not math.isfinite(value) or value < 0:
        raise StatementError(f"cannot record {value!r}: only finite numbers >= 0 are recorded")
    return repr(float(value))


@dataclass(frozen=True)
class UsageReceipt:
    """One data host's account of one round on one dataset (see the module docstring)."""

    job_id: str
    round: int
    nonce: str
    dataset_id: str
    dataset_manifest_digest: str
    host_did: str
    worker_did: str
    token_jti: str
    attestation_evidence_digest: str
    base_model_digest: str
    update_digest: str
    samples_used: int
    steps: int
    noise_multiplier: str
    sample_rate: str
    max_grad_norm: str
    accountant: str
    grad_sample_mode: str
    epsilon_round: str
    epsilon_total: str
    delta: str
    metrics: Mapping[str, str]

    _FIELDS = (
        "job_id", "round", "nonce", "dataset_id", "dataset_manifest_digest", "host_did",
        "worker_did", "token_jti", "attestation_evidence_digest", "base_model_digest",
        "update_digest", "samples_used", "steps", "noise_multiplier", "sample_rate",
        "max_grad_norm", "accountant", "grad_sample_mode", "epsilon_round", "epsilon_total",
        "delta", "metrics",
    )  # fmt: skip

    def to_predicate(self) -> dict[str, Any]:
        """The predicate object (JSON-able, canonical field set)."""
        data = {name: getattr(self, name) for name in self._FIELDS}
        data["metrics"] = dict(self.metrics)
        return data

    def to_statement(self) -> Statement:
        """The Statement to sign: the update is its subject."""
        return Statement(
            subjects=(Subject("update", {"sha256": self.update_digest}),),
            predicate_type=USAGE_RECEIPT_PREDICATE,
            predicate=self.to_predicate(),
        )

    @classmethod
    def from_statement(cls, statement: Statement) -> UsageReceipt:
        """Parse a verified Statement strictly; ``StatementError`` names the field at fault."""
        where = "usage receipt"
        if statement.predicate_type != USAGE_RECEIPT_PREDICATE:
            raise _fail(where, f"predicate type {statement.predicate_type!r} is not a receipt")
        data = _exact_keys(statement.predicate, cls._FIELDS, where)
        metrics = _exact_keys(data["metrics"], RECEIPT_METRICS, f"{where} metrics")
        receipt = cls(
            job_id=_text(data, "job_id", _ID, where),
            round=_count(data, "round", where, minimum=1),
            nonce=_text(data, "nonce", _NONCE, where),
            dataset_id=_text(data, "dataset_id", _ID, where),
            dataset_manifest_digest=_text(data, "dataset_manifest_digest", _HEX64, where),
            host_did=_text(data, "host_did", _DID, where),
            worker_did=_text(data, "worker_did", _DID, where),
            token_jti=_text(data, "token_jti", _NONCE, where),
            attestation_evidence_digest=_text(data, "attestation_evidence_digest", _HEX64, where),
            base_model_digest=_text(data, "base_model_digest", _HEX64, where),
            update_digest=_text(data, "update_digest", _HEX64, where),
            samples_used=_count(data, "samples_used", where),
            steps=_count(data, "steps", where, minimum=1),
            noise_multiplier=_decimal(data, "noise_multiplier", where),
            sample_rate=_decimal(data, "sample_rate", where),
            max_grad_norm=_decimal(data, "max_grad_norm", where),
            accountant=_text(data, "accountant", re.compile(r"^rdp$"), where),
            grad_sample_mode=_text(data, "grad_sample_mode", re.compile(r"^(ghost|hooks)$"), where),
            epsilon_round=_decimal(data, "epsilon_round", where),
            epsilon_total=_decimal(data, "epsilon_total", where),
            delta=_decimal(data, "delta", where),
            metrics={name: _decimal(metrics, name, f"{where} metrics") for name in RECEIPT_METRICS},
        )
        subjects = statement.subjects
        if len(subjects) != 1 or dict(subjects[0].digest) != {"sha256": receipt.update_digest}:
            raise _fail(where, "its one subject must be the update, by update_digest")
        return receipt


@dataclass(frozen=True)
class AcceptedReceipt:
    """A receipt the coordinator verified and aggregated."""

    host_did: str
    dataset_id: str
    dataset_manifest_digest: str
    receipt_digest: str
    update_digest: str
    samples: int
    epsilon_total: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class RejectedWork:
    """A host's work the coordinator dropped this round, and why (no receipt: digest "")."""

    host_did: str
    dataset_id: str
    dataset_manifest_digest: str
    receipt_digest: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class MeteredUse:
    """What one dataset is billed for in a round: samples of accepted receipts, its price."""

    dataset_id: str
    dataset_manifest_digest: str
    samples: int
    price_per_sample: str
    currency: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class RoundProof:
    """The coordinator's signed account of one aggregated round."""

    job_id: str
    round: int
    strategy: str
    previous_model_digest: str
    new_model_digest: str
    accepted: tuple[AcceptedReceipt, ...]
    rejected: tuple[RejectedWork, ...]
    metered: tuple[MeteredUse, ...]
    metrics: Mapping[str, str]

    def to_predicate(self) -> dict[str, Any]:
        """The predicate object."""
        return {
            "job_id": self.job_id,
            "round": self.round,
            "strategy": self.strategy,
            "previous_model_digest": self.previous_model_digest,
            "new_model_digest": self.new_model_digest,
            "accepted": [item.to_dict() for item in self.accepted],
            "rejected": [item.to_dict() for item in self.rejected],
            "metered": [item.to_dict() for item in self.metered],
            "metrics": dict(self.metrics),
        }

    def to_statement(self) -> Statement:
        """The Statement to sign: the new global model is its subject."""
        return Statement(
            subjects=(Subject("global-model", {"sha256": self.new_model_digest}),),
            predicate_type=ROUND_PROOF_PREDICATE,
            predicate=self.to_predicate(),
        )

    @classmethod
    def from_statement(cls, statement: Statement) -> RoundProof:
        """Parse a verified Statement strictly; ``StatementError`` names the field at fault."""
        where = "round proof"
        if statement.predicate_type != ROUND_PROOF_PREDICATE:
            raise _fail(where, f"predicate type {statement.predicate_type!r} is not a round proof")
        fields = (
            "job_id", "round", "strategy", "previous_model_digest", "new_model_digest",
            "accepted", "rejected", "metered", "metrics",
        )  # fmt: skip
        data = _exact_keys(statement.predicate, fields, where)
        for name in ("accepted", "rejected", "metered"):
            if not isinstance(data[name], list) or len(data[name]) > _MAX_LIST:
                raise _fail(where, f"field {name} must be a list of at most {_MAX_LIST} items")
        accepted = tuple(
            AcceptedReceipt(
                host_did=_text(item, "host_did", _DID, f"{where} accepted[{i}]"),
                dataset_id=_text(item, "dataset_id", _ID, f"{where} accepted[{i}]"),
                dataset_manifest_digest=_text(
                    item, "dataset_manifest_digest", _HEX64, f"{where} accepted[{i}]"
                ),
                receipt_digest=_text(item, "receipt_digest", _HEX64, f"{where} accepted[{i}]"),
                update_digest=_text(item, "update_digest", _HEX64, f"{where} accepted[{i}]"),
                samples=_count(item, "samples", f"{where} accepted[{i}]"),
                epsilon_total=_decimal(item, "epsilon_total", f"{where} accepted[{i}]"),
            )
            for i, item in enumerate(
                _exact_keys(entry, _ACCEPTED_FIELDS, f"{where} accepted[{n}]")
                for n, entry in enumerate(data["accepted"])
            )
        )
        rejected = tuple(
            RejectedWork(
                host_did=_text(item, "host_did", _DID, f"{where} rejected[{i}]"),
                dataset_id=_text(item, "dataset_id", _ID, f"{where} rejected[{i}]"),
                dataset_manifest_digest=_text(
                    item, "dataset_manifest_digest", _HEX64, f"{where} rejected[{i}]"
                ),
                receipt_digest=_optional_digest(item, f"{where} rejected[{i}]"),
                reason=_reason(item, f"{where} rejected[{i}]"),
            )
            for i, item in enumerate(
                _exact_keys(entry, _REJECTED_FIELDS, f"{where} rejected[{n}]")
                for n, entry in enumerate(data["rejected"])
            )
        )
        metered = tuple(
            MeteredUse(
                dataset_id=_text(item, "dataset_id", _ID, f"{where} metered[{i}]"),
                dataset_manifest_digest=_text(
                    item, "dataset_manifest_digest", _HEX64, f"{where} metered[{i}]"
                ),
                samples=_count(item, "samples", f"{where} metered[{i}]"),
                price_per_sample=_decimal(item, "price_per_sample", f"{where} metered[{i}]"),
                currency=_text(
                    item, "currency", re.compile(r"^[A-Z]{3}$"), f"{where} metered[{i}]"
                ),
            )
            for i, item in enumerate(
                _exact_keys(entry, _METERED_FIELDS, f"{where} metered[{n}]")
                for n, entry in enumerate(data["metered"])
            )
        )
        metrics = data["metrics"]
        if not isinstance(metrics, dict) or len(metrics) > 32:
            raise _fail(where, "field metrics must be an object of at most 32 decimals")
        proof = cls(
            job_id=_text(data, "job_id", _ID, where),
            round=_count(data, "round", where, minimum=1),
            strategy=_text(data, "strategy", re.compile(r"^[a-z]{1,32}$"), where),
            previous_model_digest=_text(data, "previous_model_digest", _HEX64, where),
            new_model_digest=_text(data, "new_model_digest", _HEX64, where),
            accepted=accepted,
            rejected=rejected,
            metered=metered,
            metrics={
                str(name)[:64]: _decimal(metrics, name, f"{where} metrics") for name in metrics
            },
        )
        subjects = statement.subjects
        if len(subjects) != 1 or dict(subjects[0].digest) != {"sha256": proof.new_model_digest}:
            raise _fail(where, "its one subject must be the new global model")
        return proof


_ACCEPTED_FIELDS = (
    "host_did", "dataset_id", "dataset_manifest_digest", "receipt_digest", "update_digest",
    "samples", "epsilon_total",
)  # fmt: skip
_REJECTED_FIELDS = ("host_did", "dataset_id", "dataset_manifest_digest", "receipt_digest", "reason")
_METERED_FIELDS = (
    "dataset_id",
    "dataset_manifest_digest",
    "samples",
    "price_per_sample",
    "currency",
)


def _optional_digest(item: Mapping[str, Any], where: str) -> str:
    value = item["receipt_digest"]
    if value == "":
        return ""
    return _text(item, "receipt_digest", _HEX64, where)


def _reason(item: Mapping[str, Any], where: str) -> str:
    value = item["reason"]
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_REASON:
        raise _fail(where, f"field reason must be text of 1 to {_MAX_REASON} characters")
    return value
