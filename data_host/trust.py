"""The coordinator this node trusts, pinned by its DID in ``<home>/coordinator.json``.

``tally host register`` pins the coordinator it registered with: its ``did:key`` (the key
that signs capability tokens, round proofs and log checkpoints), its token audience, its
base URL and its SuperLink address. From then on the node treats only that DID as its
coordinator: ``tally host up`` refuses a coordinator that answers with another one. Pinning
again with the same DID updates the URL, audience and SuperLink address (a coordinator may
move); a different DID is refused unless the creator asks for it (``replace=True``,
``tally host register --replace-coordinator``).

The file is written atomically with mode 0600 and read strictly: a size limit, one JSON
object with exactly the known fields (no duplicates), each checked, and the file refused
when group or others may write it or when it is not a regular file.

This module must never accept a coordinator whose advertised public key does not match its
DID, and never silently replace a pinned DID.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from data_host.errors import CoordinatorTrustError, DataHostError
from data_host.home import NodeHome
from data_host.supernode import check_superlink_address
from provenance.errors import KeyFormatError
from provenance.keys import PublicKey

__all__ = [
    "COORDINATOR_FILE",
    "MAX_COORDINATOR_FILE_BYTES",
    "TrustedCoordinator",
    "check_can_pin",
    "coordinator_from_info",
    "coordinator_path",
    "pin_coordinator",
    "trusted_coordinator",
]

COORDINATOR_FILE = "coordinator.json"
COORDINATOR_FILE_VERSION = 1
#: The largest ``coordinator.json`` read (a real one is well under 1 KiB).
MAX_COORDINATOR_FILE_BYTES = 16 * 1024
_MAX_FIELD_CHARS = 2048
_FIELDS = ("url", "did", "audience", "superlink_address")
_REGISTER_HINT = "tally host register --coordinator URL --api-key KEY"


def coordinator_path(home: NodeHome) -> Path:
    """Where ``home`` keeps its pinned coordinator."""
    return home.root / COORDINATOR_FILE


@dataclass(frozen=True)
class TrustedCoordinator:
    """A coordinator as this node pins it.

    ``did`` is the coordinator's ``did:key`` (its Ed25519 public key); ``audience`` the
    ``aud`` its capability tokens carry; ``url`` its API's base URL; ``superlink_address``
    the ``host:port`` its SuperLink advertises.
    """

    url: str
    did: str
    audience: str
    superlink_address: str

    def __post_init__(self) -> None:
        for name in _FIELDS:
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise CoordinatorTrustError(f"coordinator {name} must be a non-empty string")
            if len(value) > _MAX_FIELD_CHARS:
                raise CoordinatorTrustError(
                    f"coordinator {name} is {len(value)} characters, over {_MAX_FIELD_CHARS}"
                )
        _check_url(self.url)
        try:
            key = PublicKey.from_did(self.did)
        except KeyFormatError as exc:
            raise CoordinatorTrustError(f"coordinator did: {exc}") from exc
        if key.did != self.did:
            raise CoordinatorTrustError(f"coordinator did {self.did!r} is not in canonical form")
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in self.audience):
            raise CoordinatorTrustError("coordinator audience contains control characters")
        try:
            check_superlink_address(self.superlink_address)
        except DataHostError as exc:
            raise CoordinatorTrustError(f"coordinator superlink_address: {exc}") from exc

    @property
    def public_key(self) -> PublicKey:
        """The coordinator's Ed25519 public key."""
        return PublicKey.from_did(self.did)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to ``coordinator.json``."""
        return {
            "version": COORDINATOR_FILE_VERSION,
            "url": self.url,
            "did": self.did,
            "audience": self.audience,
            "superlink_address": self.superlink_address,
        }

    @classmethod
    def from_dict(cls, data: Any, *, where: Path) -> TrustedCoordinator:
        """Parse ``coordinator.json`` contents strictly, naming the field at fault."""
        if not isinstance(data, dict):
            raise CoordinatorTrustError(f"{where}: must hold a JSON object")
        if data.get("version") != COORDINATOR_FILE_VERSION:
            raise CoordinatorTrustError(
                f"{where}: version {data.get('version')!r} is not supported "
                f"(this Tallystick reads version {COORDINATOR_FILE_VERSION})"
            )
        unknown = sorted(set(data) - {"version", *_FIELDS})
        if unknown:
            raise CoordinatorTrustError(f"{where}: unknown field {unknown[0]!r}")
        values: dict[str, str] = {}
        for name in _FIELDS:
            value = data.get(name)
            if not isinstance(value, str) or not value:
                raise CoordinatorTrustError(f"{where}: field {name!r} must be a non-empty string")
            values[name] = value
        try:
            return cls(**values)
        except CoordinatorTrustError as exc:
            raise CoordinatorTrustError(f"{where}: {exc}") from exc


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise CoordinatorTrustError(f"coordinator url {url!r} is not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CoordinatorTrustError(
            f"coordinator url {url!r} must be http:// or https:// with a host"
        )
    if parts.username is not None or parts.password is not None:
        raise CoordinatorTrustError("coordinator url must not contain credentials")
    if parts.query or parts.fragment:
        raise CoordinatorTrustError(f"coordinator url {url!r} must have no query or fragment")


def coordinator_from_info(info: Any, url: str) -> TrustedCoordinator:
    """The coordinator described by its public info (``GET /v1/info``) found at ``url``.

    Checks that ``coordinator_public_key_pem`` is the key of ``coordinator_did``, so that a
    coordinator cannot advertise one key and pin another. Raises ``CoordinatorTrustError``
    naming the info field at fault.
    """
    if not isinstance(info, dict):
        raise CoordinatorTrustError("the coordinator's info is not a JSON object")
    values: dict[str, str] = {}
    for name in (
        "coordinator_did",
        "coordinator_public_key_pem",
        "audience",
        "superlink_address",
    ):
        value = info.get(name)
        if not isinstance(value, str) or not value:
            raise CoordinatorTrustError(
                f"the coordinator's info field {name!r} must be a non-empty string"
            )
        values[name] = value
    try:
        advertised = PublicKey.from_pem(values["coordinator_public_key_pem"].encode())
    except (KeyFormatError, UnicodeEncodeError) as exc:
        raise CoordinatorTrustError(
            f"the coordinator's info field 'coordinator_public_key_pem': {exc}"
        ) from exc
    if advertised.did != values["coordinator_did"]:
        raise CoordinatorTrustError(
            "the coordinator's info is inconsistent: coordinator_public_key_pem is the key "
            f"{advertised.did}, not coordinator_did {values['coordinator_did']}; refusing to "
            "trust it"
        )
    return TrustedCoordinator(
        url=url.rstrip("/"),
        did=values["coordinator_did"],
        audience=values["audience"],
        superlink_address=values["superlink_address"],
    )


def _read(path: Path) -> TrustedCoordinator:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise CoordinatorTrustError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise CoordinatorTrustError(f"{path} is not a regular file")
        if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise CoordinatorTrustError(
                f"{path} is writable by group or others "
                f"(mode {stat.S_IMODE(status.st_mode):04o}); run: chmod 600 {path}"
            )
        raw = handle.read(MAX_COORDINATOR_FILE_BYTES + 1)
    if len(raw) > MAX_COORDINATOR_FILE_BYTES:
        raise CoordinatorTrustError(f"{path} is over {MAX_COORDINATOR_FILE_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CoordinatorTrustError(f"{path} is not valid JSON: {exc}") from exc
    return TrustedCoordinator.from_dict(data, where=path)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate field {key!r}")
        result[key] = value
    return result


def trusted_coordinator(home: NodeHome) -> TrustedCoordinator:
    """The coordinator ``home`` trusts.

    Raises ``CoordinatorTrustError`` naming ``tally host register`` when the node has
    pinned none, or when its ``coordinator.json`` is unreadable or malformed.
    """
    path = coordinator_path(home)
    try:
        return _read(path)
    except FileNotFoundError as exc:
        raise CoordinatorTrustError(
            f"this node has not registered with a coordinator ({path} is missing); run: "
            f"{_REGISTER_HINT} --home {home.root}"
        ) from exc
    except CoordinatorTrustError as exc:
        raise CoordinatorTrustError(
            f"{exc}; run `{_REGISTER_HINT} --replace-coordinator --home {home.root}` "
            "to pin the coordinator again"
        ) from exc


def check_can_pin(
    home: NodeHome, coordinator: TrustedCoordinator, *, replace: bool = False
) -> TrustedCoordinator | None:
    """Raise ``CoordinatorTrustError`` unless ``home`` may pin ``coordinator``; return the
    coordinator pinned now, if any.

    Allowed: nothing pinned yet, the same DID pinned, or ``replace=True``. A
    ``coordinator.json`` that cannot be read is replaced only with ``replace=True``.
    """
    path = coordinator_path(home)
    try:
        current = _read(path)
    except FileNotFoundError:
        return None
    except CoordinatorTrustError as exc:
        if replace:
            return None
        raise CoordinatorTrustError(
            f"{exc}; to pin {coordinator.url} ({coordinator.did}) in its place, register with "
            "--replace-coordinator"
        ) from exc
    if current.did != coordinator.did and not replace:
        raise CoordinatorTrustError(
            f"this node trusts coordinator {current.did} (at {current.url}), but "
            f"{coordinator.url} is coordinator {coordinator.did}; refusing to switch. If you "
            "mean to move this node to the new coordinator, run `tally host register "
            "--replace-coordinator` against it"
        )
    return current


def pin_coordinator(
    home: NodeHome, info: Any, url: str, *, replace: bool = False
) -> TrustedCoordinator:
    """Pin the coordinator whose public info is ``info``, reached at ``url``, in ``home``.

    The first pin writes ``coordinator.json``; a later pin with the same DID updates its
    URL, audience and SuperLink address; a different DID raises ``CoordinatorTrustError``
    unless ``replace`` is true. Returns what is pinned now.
    """
    coordinator = coordinator_from_info(info, url)
    current = check_can_pin(home, coordinator, replace=replace)
    if current != coordinator:
        _write(coordinator_path(home), coordinator)
    return coordinator


def _write(path: Path, coordinator: TrustedCoordinator) -> None:
    data = (json.dumps(coordinator.to_dict(), indent=2, sort_keys=True) + "\n").encode()
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.unlink(missing_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise CoordinatorTrustError(f"cannot write {path}: {exc.strerror or exc}") from exc
