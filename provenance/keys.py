"""Ed25519 keys: generation, PEM files, and did:key identifiers.

This is the only module that touches private key material. Private keys are written
with mode 0600 (refusing to overwrite an existing file) and refused on load when group
or others can read them. Nothing here logs or prints key bytes.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from provenance.errors import InvalidSignature, KeyFormatError

ED25519_PUBLIC_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
# Multicodec prefix for an Ed25519 public key (0xed, varint-encoded).
_MULTICODEC_ED25519_PUB = b"\xed\x01"
_BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {char: value for value, char in enumerate(_BASE58_ALPHABET)}


def _base58btc_encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    encoded = ""
    while number:
        number, remainder = divmod(number, 58)
        encoded = _BASE58_ALPHABET[remainder] + encoded
    leading_zeros = len(data) - len(data.lstrip(b"\x00"))
    return "1" * leading_zeros + encoded


def _base58btc_decode(text: str) -> bytes:
    number = 0
    for char in text:
        if char not in _BASE58_INDEX:
            raise KeyFormatError(f"did:key contains {char!r}, which is not base58btc")
        number = number * 58 + _BASE58_INDEX[char]
    leading_zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\x00" * leading_zeros + body


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key (32 raw bytes)."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != ED25519_PUBLIC_KEY_SIZE:
            raise KeyFormatError(
                f"an Ed25519 public key is {ED25519_PUBLIC_KEY_SIZE} bytes, got {len(self.raw)}"
            )

    @classmethod
    def from_pem(cls, pem: bytes) -> PublicKey:
        """Load a SubjectPublicKeyInfo PEM holding an Ed25519 key."""
        try:
            key = serialization.load_pem_public_key(pem)
        except ValueError as exc:
            raise KeyFormatError(f"not a PEM public key: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFormatError(f"expected an Ed25519 public key, got {type(key).__name__}")
        return cls(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))

    @classmethod
    def from_did(cls, did: str) -> PublicKey:
        """Parse a ``did:key:z6Mk…`` identifier of an Ed25519 key."""
        prefix = "did:key:z"
        if not did.startswith(prefix):
            raise KeyFormatError(f"{did!r} is not a base58btc did:key (expected 'did:key:z…')")
        decoded = _base58btc_decode(did[len(prefix) :])
        if not decoded.startswith(_MULTICODEC_ED25519_PUB):
            raise KeyFormatError(f"{did!r} is not an Ed25519 did:key")
        return cls(decoded[len(_MULTICODEC_ED25519_PUB) :])

    @cached_property
    def did(self) -> str:
        """The key's ``did:key`` identifier (computed once per key object)."""
        return "did:key:z" + _base58btc_encode(_MULTICODEC_ED25519_PUB + self.raw)

    def to_pem(self) -> bytes:
        """Return the key as a SubjectPublicKeyInfo PEM."""
        return self._key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def verify(self, signature: bytes, message: bytes) -> None:
        """Raise ``InvalidSignature`` unless ``signature`` is this key's over ``message``."""
        if len(signature) != ED25519_SIGNATURE_SIZE:
            raise InvalidSignature(
                f"an Ed25519 signature is {ED25519_SIGNATURE_SIZE} bytes, got {len(signature)}"
            )
        try:
            self._key().verify(signature, message)
        except _CryptoInvalidSignature as exc:
            raise InvalidSignature(f"signature does not verify for key {self.did}") from exc

    def _key(self) -> Ed25519PublicKey:
        return self._loaded

    @cached_property
    def _loaded(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.raw)


class SigningKey:
    """An Ed25519 private key. Its bytes stay inside this object and its files."""

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> SigningKey:
        """Create a new random key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """Derive a key from its 32-byte seed (for test vectors and interop)."""
        if len(seed) != 32:
            raise KeyFormatError(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        """Load an unencrypted PKCS#8 PEM holding an Ed25519 private key."""
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyFormatError(f"not an unencrypted PEM private key: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFormatError(f"expected an Ed25519 private key, got {type(key).__name__}")
        return cls(key)

    @property
    def public_key(self) -> PublicKey:
        """The matching public key."""
        return PublicKey(
            self._key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        )

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``message``."""
        return self._key.sign(message)

    def private_pem(self) -> bytes:
        """Return the key as unencrypted PKCS#8 PEM; write it only with ``write_signing_key``."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public_key.did})"


def write_signing_key(key: SigningKey, path: Path) -> None:
    """Write ``key`` to ``path`` as PEM with mode 0600; refuse to overwrite a file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFormatError(f"{path} already exists; refusing to overwrite a key") from exc
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, key.private_pem())
        os.fsync(fd)
    finally:
        os.close(fd)


def load_signing_key(path: Path) -> SigningKey:
    """Load a private key written by ``write_signing_key``.

    Refuses a file that group or others may read or write: a key that others could
    have seen is not a secret any more.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise KeyFormatError(f"private key {path} does not exist") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFormatError(
            f"private key {path} has mode {stat.S_IMODE(mode):04o}; "
            f"it must be readable by its owner only (chmod 600 {path})"
        )
    return SigningKey.from_pem(path.read_bytes())


def write_public_key(key: PublicKey, path: Path) -> None:
    """Write ``key`` to ``path`` as a SubjectPublicKeyInfo PEM (mode 0644)."""
    path.write_bytes(key.to_pem())
    path.chmod(0o644)


def load_public_key(path: Path) -> PublicKey:
    """Load a public key file: PEM, or a text file holding a did:key."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFormatError(f"cannot read public key {path}: {exc.strerror}") from exc
    if data.lstrip().startswith(b"-----BEGIN"):
        return PublicKey.from_pem(data)
    text = data.decode("utf-8", errors="replace").strip()
    if text.startswith("did:key:"):
        return PublicKey.from_did(text)
    raise KeyFormatError(f"{path} holds neither a PEM public key nor a did:key")
