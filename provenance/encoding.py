"""Strict base64 decoding shared by every parser of untrusted records.

Decoders here never skip characters and reject non-canonical encodings (padding bits
that are not zero, missing or superfluous padding), so that one record has exactly one
byte representation that verifies.
"""

from __future__ import annotations

import base64
import binascii

from provenance.errors import ProvenanceError


def b64encode(data: bytes) -> str:
    """Standard base64 with padding."""
    return base64.b64encode(data).decode("ascii")


def b64decode_strict(text: str, *, what: str, error: type[ProvenanceError]) -> bytes:
    """Decode standard, padded base64, rejecting any non-canonical form.

    ``what`` names the field in the error; ``error`` is the exception type raised.
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise error(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise error(f"{what} is not canonical base64")
    return raw


def b64decode_any_alphabet(text: str, *, what: str, error: type[ProvenanceError]) -> bytes:
    """Decode standard or URL-safe base64, padded or not (as DSSE readers must).

    Characters outside the alphabet are an error; they are never skipped.
    """
    if not isinstance(text, str):
        raise error(f"{what} must be a base64 string")
    body = text.rstrip("=")
    if len(text) - len(body) > 2 or (len(text) - len(body) and len(text) % 4):
        raise error(f"{what} has malformed base64 padding")
    if "-" in body or "_" in body:
        if "+" in body or "/" in body:
            raise error(f"{what} mixes the standard and URL-safe base64 alphabets")
        body = body.replace("-", "+").replace("_", "/")
    if len(body) % 4 == 1:
        raise error(f"{what} has an impossible base64 length")
    padded = body + "=" * (-len(body) % 4)
    try:
        return base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise error(f"{what} is not valid base64") from exc


def parse_uint64(text: str, *, what: str, error: type[ProvenanceError]) -> int:
    """Parse a canonical decimal (no sign, no leading zeros) that fits in 64 bits.

    The length is checked before conversion, so hostile input cannot make ``int`` work
    on thousands of digits.
    """
    if (
        not text
        or len(text) > 20
        or not (text.isascii() and text.isdigit())
        or (text.startswith("0") and text != "0")
    ):
        raise error(f"{what} {text[:24]!r} is not a canonical decimal number")
    value = int(text)
    if value >= 2**64:
        raise error(f"{what} {text} does not fit in 64 bits")
    return value
