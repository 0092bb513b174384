"""Provenance: the records anyone can verify offline.

Canonical JSON and digests, Ed25519 keys and did:key, DSSE envelopes holding in-toto
Statements, RFC 9162 Merkle trees, dataset chunking, the C2SP transparency log
(signed notes, checkpoints, cosignatures, tlog-proof, tiles) and attestation evidence.

This package depends on third-party libraries only; nothing here knows about HTTP,
FastAPI, jobs or money.
"""
