"""Canonical JSON (RFC 8785) for hash inputs, SHA-256 digests, and bounded JSON parsing.

Everything that is hashed or signed goes through ``canonical_json``. Numbers that may
exceed 2^53 or need exact decimals (epsilon, money) must be strings: RFC 8785 refuses
larger integers and this module passes that refusal on.

Untrusted JSON is parsed only with ``parse_json``, which bounds size and nesting and
rejects duplicate keys and non-finite numbers, so that two readers cannot disagree on
what a document says.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import rfc8785

from provenance.errors import CanonicalizationError, ProvenanceError

#: The default ceiling for one untrusted JSON document (bytes).
DEFAULT_MAX_JSON_BYTES = 4 * 1024 * 1024
#: The default ceiling for nesting depth of one untrusted JSON document.
DEFAULT_MAX_JSON_DEPTH = 64


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` as RFC 8785 canonical JSON (UTF-8 bytes).

    Raises ``CanonicalizationError`` for values JSON cannot represent exactly
    (integers beyond +-2^53, NaN, non-string keys, other types).
    """
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise CanonicalizationError(f"cannot canonicalise value: {exc}") from exc


def sha256(data: bytes) -> bytes:
    """Return the SHA-256 digest of ``data``."""
    return hashlib.sha256(data).digest()


def sha256_hex(data: bytes) -> str:
    """Return the SHA-256 digest of ``data`` as lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def digest_of(value: Any) -> str:
    """Return the lowercase hex SHA-256 of ``value``'s canonical JSON."""
    return sha256_hex(canonical_json(value))


class _Ambiguous(Exception):
    """Raised inside ``json.loads`` for input that two JSON readers could read differently."""


def _reject_constant(name: str) -> Any:
    raise _Ambiguous(f"contains the non-finite number {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _Ambiguous(f"contains the number {text[:40]}, too large for a float")
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Ambiguous(f"has an object with the key {key!r} more than once")
        result[key] = value
    return result


def _depth(value: Any, limit: int, what: str, error: type[ProvenanceError]) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise error(f"{what} nesting is deeper than {limit} levels")
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def parse_json(
    data: bytes | str,
    *,
    max_bytes: int = DEFAULT_MAX_JSON_BYTES,
    max_depth: int = DEFAULT_MAX_JSON_DEPTH,
    what: str = "document",
    error: type[ProvenanceError] = CanonicalizationError,
) -> Any:
    """Parse untrusted JSON with limits.

    Rejects documents over ``max_bytes``, nested deeper than ``max_depth``, with
    duplicate object keys, NaN/Infinity, or invalid UTF-8. ``what`` names the input
    in error messages (for example ``"envelope"``); ``error`` is the exception type raised,
    so that each caller reports bad input in its own error hierarchy.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise error(f"{what} is {len(raw)} bytes, over the limit of {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not valid UTF-8: {exc}") from exc
    try:
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except _Ambiguous as exc:
        raise error(f"{what} {exc}") from exc
    except RecursionError as exc:
        raise error(f"{what} is nested too deeply") from exc
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON: {exc}") from exc
    except ValueError as exc:  # an integer literal over Python's digit limit, for one
        raise error(f"{what} holds a number too long to read: {exc}") from exc
    # Nesting can be no deeper than the number of brackets opened anywhere in the text
    # (brackets inside strings only raise that count), so most documents skip the walk.
    if text.count("{") + text.count("[") > max_depth:
        _depth(value, max_depth, what, error)
    return value
