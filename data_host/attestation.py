"""Attestation evidence for the node's worker key: produce it, store it beside the key, check it.

The worker key signs usage receipts; its evidence binds it to the code that runs. Two
kinds are produced here:

- ``aws-nitro`` inside a Nitro Enclave: the NSM signs a document binding the worker key
  (``public_key``) and the enclave's code measurements (PCRs).
- ``dev`` everywhere else: a statement signed by the node's own dev attester key,
  binding the worker key to a digest of the installed worker code. It is INSECURE
  (nothing isolates the worker) and every verifier reports it so.

This module must never store evidence that does not verify and bind this node's worker
key, and never label dev evidence as anything but insecure.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from importlib import resources
from pathlib import Path

from data_host.errors import AttestationSetupError
from data_host.home import NodeHome
from data_host.nsm import NSM_DEVICE, NsmTransport, request_attestation
from provenance.attestation import (
    DEV_EVIDENCE_TYPE,
    NITRO_EVIDENCE_TYPE,
    AttestationPolicy,
    Evidence,
    VerifiedAttestation,
    create_dev_evidence,
    verify_evidence,
)
from provenance.errors import ProvenanceError

#: The packages whose code runs next to creator data; the dev ``code`` measurement covers them.
WORKER_PACKAGES = ("data_host", "privacy", "provenance")
#: Evidence this old is refused by the node's own check: produce it again.
MAX_EVIDENCE_AGE = timedelta(days=30)


class EvidenceKind(StrEnum):
    """Which evidence ``produce_evidence`` makes."""

    AUTO = "auto"
    DEV = DEV_EVIDENCE_TYPE
    NITRO = NITRO_EVIDENCE_TYPE


def code_measurement(packages: Iterable[str] = WORKER_PACKAGES) -> str:
    """SHA-256 over the installed worker code: every file of ``packages`` except caches.

    Each file contributes ``package/relative/path``, a NUL, its SHA-256 and a newline, in
    sorted order, so that the digest changes when any file is added, removed or edited.
    """
    lines: list[bytes] = []
    for package in packages:
        root = Path(str(resources.files(package)))
        for path in sorted(root.rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            relative = f"{package}/{path.relative_to(root).as_posix()}"
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            lines.append(relative.encode() + b"\0" + digest.encode() + b"\n")
    return hashlib.sha256(b"".join(lines)).hexdigest()


def in_nitro_enclave(device: Path = NSM_DEVICE) -> bool:
    """Whether this process runs inside a Nitro Enclave (the NSM device exists)."""
    return device.exists()


def produce_evidence(
    home: NodeHome,
    kind: EvidenceKind = EvidenceKind.AUTO,
    *,
    nonce: bytes | None = None,
    transport: NsmTransport | None = None,
) -> Evidence:
    """Produce evidence for the node's worker key.

    ``auto`` picks ``aws-nitro`` inside an enclave (or when a ``transport`` is given) and
    ``dev`` otherwise. ``user_data`` binds the node's name and creator identity.
    """
    worker = home.worker_public_key
    user_data = f"tallystick-node:{home.config.name}:{home.config.creator_did}".encode()
    chosen = kind
    if kind is EvidenceKind.AUTO:
        nitro = transport is not None or in_nitro_enclave()
        chosen = EvidenceKind.NITRO if nitro else EvidenceKind.DEV
    if chosen is EvidenceKind.NITRO:
        document = request_attestation(
            worker.raw, user_data=user_data, nonce=nonce, transport=transport
        )
        return Evidence(type=NITRO_EVIDENCE_TYPE, document=document)
    try:
        return create_dev_evidence(
            home.dev_attester_key(),
            worker,
            {"code": code_measurement()},
            nonce=nonce,
            user_data=user_data,
        )
    except ProvenanceError as exc:
        raise AttestationSetupError(f"dev evidence: {exc}") from exc


def local_policy(
    home: NodeHome, *, nitro_roots: tuple[bytes, ...] | None = None
) -> AttestationPolicy:
    """The policy the node checks its own evidence with: dev evidence only from its own
    dev attester (accepted as insecure), Nitro evidence against the pinned roots."""
    return AttestationPolicy(
        allow_insecure=True,
        trusted_dev_attesters=frozenset({home.config.dev_attester_did}),
        max_age=MAX_EVIDENCE_AGE,
        nitro_roots=nitro_roots,
    )


def check_evidence(
    home: NodeHome,
    evidence: Evidence,
    *,
    nitro_roots: tuple[bytes, ...] | None = None,
    now: datetime | None = None,
) -> VerifiedAttestation:
    """Verify ``evidence`` and that it binds this node's worker key."""
    try:
        verified = verify_evidence(
            evidence, local_policy(home, nitro_roots=nitro_roots), now=now or datetime.now(UTC)
        )
    except ProvenanceError as exc:
        raise AttestationSetupError(f"worker evidence does not verify: {exc}") from exc
    if verified.worker_public_key != home.worker_public_key.raw:
        raise AttestationSetupError(
            f"worker evidence binds {verified.worker_key.did}, not this node's worker key "
            f"{home.config.worker_did}"
        )
    return verified


def store_evidence(
    home: NodeHome, evidence: Evidence, *, nitro_roots: tuple[bytes, ...] | None = None
) -> VerifiedAttestation:
    """Check ``evidence`` and write it beside the worker key (atomically, mode 0644)."""
    verified = check_evidence(home, evidence, nitro_roots=nitro_roots)
    temporary = home.evidence_path.with_name(f".{home.evidence_path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, evidence.to_json() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, home.evidence_path)
    return verified


def load_evidence(home: NodeHome) -> Evidence:
    """The stored evidence; tells how to produce it when there is none."""
    try:
        raw = home.evidence_path.read_bytes()
    except FileNotFoundError as exc:
        raise AttestationSetupError(
            f"no attestation evidence at {home.evidence_path}; produce it with: "
            f"tally host attest --home {home.root}"
        ) from exc
    try:
        return Evidence.from_json(raw)
    except ProvenanceError as exc:
        raise AttestationSetupError(f"{home.evidence_path}: {exc}") from exc
