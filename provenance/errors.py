"""The provenance error hierarchy.

Every failure in this package is a ``ProvenanceError``; verification failures never
come back as ``False`` or ``None``. Messages say what was wrong and, where it helps,
which field or step failed, so that a user can act on them.
"""

from __future__ import annotations


class ProvenanceError(Exception):
    """Base class for every error raised by ``provenance``."""


class CanonicalizationError(ProvenanceError):
    """A value cannot be written as RFC 8785 canonical JSON, or JSON input is malformed."""


class KeyFormatError(ProvenanceError):
    """A key file, key string or did:key is malformed, unsafe or of the wrong type."""


class InvalidSignature(ProvenanceError):
    """A signature does not verify against the key it claims."""


class EnvelopeError(ProvenanceError):
    """A DSSE envelope is malformed or none of its signatures verifies."""


class StatementError(ProvenanceError):
    """An in-toto Statement is malformed or not of the expected type."""


class ProofError(ProvenanceError):
    """A Merkle inclusion or consistency proof is malformed or does not verify."""


class ChunkingError(ProvenanceError):
    """A dataset path cannot be chunked: unreadable, empty, or changed while hashed."""


class NoteError(ProvenanceError):
    """A C2SP signed note, checkpoint, cosignature or tlog-proof is malformed or unverified."""


class LogError(ProvenanceError):
    """The transparency log refused an operation or its storage is inconsistent."""


class AttestationError(ProvenanceError):
    """Attestation evidence is malformed, unverified or not acceptable under policy."""


class ManifestError(ProvenanceError):
    """A dataset manifest is malformed, unsigned, or signed by someone other than its creator."""


class CapabilityError(ProvenanceError):
    """A capability token is malformed, unverified, expired, or not for this host and worker."""
