"""One digest for a set of named arrays: a model's weights, or one host's update.

Receipts and round proofs name models and updates by this digest, so the data host, the
coordinator and an auditor must compute it byte for byte alike. The preimage is, for each
array in ascending order of name: the name, the dtype (numpy's little-endian ``str``, e.g.
``<f4``), the shape and the raw little-endian C-order bytes, each length-prefixed
(8-byte big-endian) so that no two different sets share a preimage. The digest is the
lowercase hex SHA-256 of that, prefixed with a domain label.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from provenance.errors import ProvenanceError

_DOMAIN = b"tallystick model arrays v1\n"
#: The dtypes a model array may have (floating point only: weights, not data).
ALLOWED_DTYPES = ("<f2", "<f4", "<f8")


class ArrayCheckError(ProvenanceError):
    """A set of arrays that is not a well-formed model: wrong names, shapes, dtype or values."""


def _frame(data: bytes) -> bytes:
    return len(data).to_bytes(8, "big") + data


def arrays_digest(arrays: Mapping[str, NDArray[np.generic]]) -> str:
    """The digest of ``arrays`` (see the module docstring); the mapping's order is ignored."""
    digest = hashlib.sha256(_DOMAIN)
    for name in sorted(arrays):
        array = np.asarray(arrays[name])
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        digest.update(_frame(name.encode("utf-8")))
        digest.update(_frame(little.dtype.str.encode("ascii")))
        digest.update(_frame(",".join(str(size) for size in little.shape).encode("ascii")))
        digest.update(_frame(np.ascontiguousarray(little).tobytes()))
    return digest.hexdigest()


def check_arrays(
    arrays: Mapping[str, NDArray[np.generic]],
    expected: Mapping[str, tuple[tuple[int, ...], str]],
    *,
    what: str = "update",
) -> None:
    """Refuse ``arrays`` unless they have exactly the ``expected`` names, shapes and dtypes
    and hold only finite values. ``expected`` maps name -> (shape, dtype str)."""
    missing = sorted(set(expected) - set(arrays))
    if missing:
        raise ArrayCheckError(f"{what} lacks arrays: {', '.join(missing[:10])}")
    extra = sorted(set(arrays) - set(expected))
    if extra:
        raise ArrayCheckError(f"{what} has unexpected arrays: {', '.join(extra[:10])}")
    for name, (shape, dtype) in expected.items():
        array = np.asarray(arrays[name])
        if tuple(array.shape) != tuple(shape):
            raise ArrayCheckError(
                f"{what} array {name!r} has shape {tuple(array.shape)}, expected {tuple(shape)}"
            )
        if array.dtype.newbyteorder("<").str != dtype:
            raise ArrayCheckError(
                f"{what} array {name!r} has dtype {array.dtype.str}, expected {dtype}"
            )
        if array.dtype.kind != "f" or not np.isfinite(array).all():
            bad = int(array.size - np.isfinite(array).sum()) if array.dtype.kind == "f" else -1
            detail = f"{bad} NaN or infinite values" if bad >= 0 else "a non-float dtype"
            raise ArrayCheckError(f"{what} array {name!r} holds {detail}")


def array_layout(
    arrays: Mapping[str, NDArray[np.generic]],
) -> dict[str, tuple[tuple[int, ...], str]]:
    """The name -> (shape, dtype) layout of ``arrays``, for ``check_arrays``; refuses a
    dtype outside ``ALLOWED_DTYPES``."""
    layout: dict[str, tuple[tuple[int, ...], str]] = {}
    for name, value in arrays.items():
        array = np.asarray(value)
        dtype = array.dtype.newbyteorder("<").str
        if dtype not in ALLOWED_DTYPES:
            raise ArrayCheckError(f"model array {name!r} has dtype {array.dtype.str}; not a float")
        layout[name] = (tuple(int(size) for size in array.shape), dtype)
    return layout


def parameter_count(layout: Mapping[str, tuple[tuple[int, ...], str]]) -> int:
    """How many scalars a layout holds."""
    return sum(math.prod(shape) for shape, _ in layout.values())
