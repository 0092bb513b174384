"""The AWS Nitro Security Module (NSM) device, for attestation inside a Nitro Enclave.

Inside an enclave, ``/dev/nsm`` answers CBOR requests through one ioctl: the request
and a response buffer are passed as two ``struct iovec`` in a ``struct nsm_message``
(``_IOWR(0x0A, 0, struct nsm_message)``; see aws-nitro-enclaves-nsm-api, ``driver``).
``Attestation`` asks for a COSE_Sign1 attestation document that binds ``public_key``,
``user_data`` and ``nonce``; ``provenance.attestation.nitro`` verifies such documents.

This module must never treat an ``Error`` answer, or an answer that is not the expected
CBOR shape, as a document.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2

from data_host.errors import AttestationSetupError

NSM_DEVICE = Path("/dev/nsm")
#: The NSM driver's largest response (bytes).
NSM_RESPONSE_MAX = 0x3000
#: NSM's limits on bound data (bytes): public_key, user_data and nonce each.
NSM_MAX_BOUND_BYTES = 1024


class _IoVec(ctypes.Structure):
    _fields_ = (("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t))


class _NsmMessage(ctypes.Structure):
    _fields_ = (("request", _IoVec), ("response", _IoVec))


def _iowr(kind: int, number: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (kind << 8) | number


NSM_IOCTL_REQUEST = _iowr(0x0A, 0, ctypes.sizeof(_NsmMessage))

#: Sends one CBOR request to the NSM and returns its CBOR response.
NsmTransport = Callable[[bytes], bytes]


def device_transport(device: Path = NSM_DEVICE) -> NsmTransport:
    """A transport over the NSM device file (only present inside a Nitro Enclave)."""

    def send(request: bytes) -> bytes:
        request_buffer = ctypes.create_string_buffer(request, len(request))
        response_buffer = ctypes.create_string_buffer(NSM_RESPONSE_MAX)
        message = _NsmMessage(
            _IoVec(ctypes.cast(request_buffer, ctypes.c_void_p), len(request)),
            _IoVec(ctypes.cast(response_buffer, ctypes.c_void_p), NSM_RESPONSE_MAX),
        )
        try:
            fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise AttestationSetupError(f"cannot open {device}: {exc.strerror}") from exc
        try:
            fcntl.ioctl(fd, NSM_IOCTL_REQUEST, message)
        except OSError as exc:
            raise AttestationSetupError(f"NSM request on {device} failed: {exc.strerror}") from exc
        finally:
            os.close(fd)
        length = int(message.response.iov_len)
        if not 0 < length <= NSM_RESPONSE_MAX:
            raise AttestationSetupError(f"NSM returned a response of {length} bytes")
        return response_buffer.raw[:length]

    return send


def encode_attestation_request(
    public_key: bytes | None, user_data: bytes | None, nonce: bytes | None
) -> bytes:
    """The CBOR ``Attestation`` request, checking NSM's size limits."""
    for name, value in (("public_key", public_key), ("user_data", user_data), ("nonce", nonce)):
        if value is not None and len(value) > NSM_MAX_BOUND_BYTES:
            raise AttestationSetupError(
                f"NSM attestation: {name} is {len(value)} bytes, over {NSM_MAX_BOUND_BYTES}"
            )
    return bytes(
        cbor2.dumps(
            {
                "Attestation": {
                    "user_data": user_data,
                    "nonce": nonce,
                    "public_key": public_key,
                }
            }
        )
    )


def decode_attestation_response(response: bytes) -> bytes:
    """The attestation document in an NSM response; raises on an error or a bad shape."""
    try:
        decoded: Any = cbor2.loads(response)
    except Exception as exc:  # cbor2 raises several types for malformed input
        raise AttestationSetupError(f"NSM response is not CBOR: {exc}") from exc
    if isinstance(decoded, dict) and "Error" in decoded:
        raise AttestationSetupError(f"NSM refused the attestation request: {decoded['Error']}")
    if isinstance(decoded, str):
        raise AttestationSetupError(f"NSM refused the attestation request: {decoded}")
    body = decoded.get("Attestation") if isinstance(decoded, dict) else None
    document = body.get("document") if isinstance(body, dict) else None
    if not isinstance(document, bytes) or not document:
        raise AttestationSetupError("NSM response holds no attestation document")
    return document


def request_attestation(
    public_key: bytes,
    *,
    user_data: bytes | None = None,
    nonce: bytes | None = None,
    transport: NsmTransport | None = None,
) -> bytes:
    """Ask the NSM for an attestation document binding ``public_key`` (and the rest)."""
    send = transport if transport is not None else device_transport()
    return decode_attestation_response(
        send(encode_attestation_request(public_key, user_data, nonce))
    )
