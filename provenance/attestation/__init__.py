"""Attestation evidence for worker keys: one policy, verifiers pluggable by evidence type.

Importing this package registers the built-in types: ``dev`` (always insecure, for one
machine) and ``aws-nitro`` (AWS Nitro Enclaves, verified against pinned roots). Callers
use ``verify_evidence``; nothing here trusts a worker key that skipped the policy.
"""

from __future__ import annotations

from provenance.attestation.base import (
    AttestationClaims,
    AttestationPolicy,
    AttestationPolicyError,
    Evidence,
    EvidenceVerifier,
    VerifiedAttestation,
    apply_policy,
    register_verifier,
    registered_types,
    verify_evidence,
)
from provenance.attestation.dev import DEV_EVIDENCE_TYPE, DevEvidenceVerifier, create_dev_evidence
from provenance.attestation.nitro import (
    AWS_NITRO_ROOT_G1_SHA256,
    NITRO_EVIDENCE_TYPE,
    NitroDocument,
    NitroEvidenceVerifier,
    authenticate_nitro_document,
    aws_nitro_root_der,
    certificates_from_pem,
)

register_verifier(DevEvidenceVerifier())
register_verifier(NitroEvidenceVerifier())

__all__ = [
    "AWS_NITRO_ROOT_G1_SHA256",
    "DEV_EVIDENCE_TYPE",
    "NITRO_EVIDENCE_TYPE",
    "AttestationClaims",
    "AttestationPolicy",
    "AttestationPolicyError",
    "DevEvidenceVerifier",
    "Evidence",
    "EvidenceVerifier",
    "NitroDocument",
    "NitroEvidenceVerifier",
    "VerifiedAttestation",
    "apply_policy",
    "authenticate_nitro_document",
    "aws_nitro_root_der",
    "certificates_from_pem",
    "create_dev_evidence",
    "register_verifier",
    "registered_types",
    "verify_evidence",
]
