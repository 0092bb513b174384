"""The data-host error hierarchy.

Every failure in this package is a ``DataHostError``; messages name the file, field or
dataset concerned and say what to change. A refusal of work (revoked dataset, disallowed
code, policy violation) is a ``WorkRefused`` so that callers can tell it from a fault.
"""

from __future__ import annotations


class DataHostError(Exception):
    """Base class for every error raised by ``data_host``."""


class NodeHomeError(DataHostError):
    """The node's home directory is missing, incomplete, unsafe, or already initialised."""


class DatasetFormatError(DataHostError):
    """A dataset path is unreadable, empty, of mixed or unknown format, or malformed."""


class DatasetTermsError(DataHostError):
    """A dataset's terms are invalid: price, currency, licence, ε caps, allowed uses."""


class UnknownDataset(DataHostError):
    """No dataset with the given id is registered on this node."""


class WorkRefused(DataHostError):
    """The node refuses the requested work (revoked dataset, disallowed code or use)."""


class AttestationSetupError(DataHostError):
    """Attestation evidence for the worker key cannot be produced or stored."""


class CoordinatorTrustError(DataHostError):
    """The coordinator this node trusts is not pinned, its record is malformed, or a
    coordinator answers with an identity other than the pinned one."""


class SuperNodeSetupError(DataHostError):
    """The node's Flower SuperNode cannot be configured: an address, port or TLS file."""
