"""The node's home directory: configuration, keys and registry of one creator's data host.

Layout (created by ``init_home``, mode 0700)::

    node.json                 configuration (name, identities, database URL); written last
    keys/creator.key|.pub     the creator identity (signs dataset manifests), key 0600
    keys/worker.key|.pub      the worker key (signs usage receipts), key 0600
    keys/dev-attester.key     signs INSECURE ``dev`` attestation evidence for the worker key
    keys/worker.evidence.json attestation evidence for the worker key (``tally host attest``)
    registry.db               SQLite registry: datasets, privacy-budget ledger, allow-list
    redacted/<dataset id>/    redacted copies made under a ``redact`` PII policy

This module must never overwrite a key, write a key with permissions wider than 0600, or
leave a half-initialised home behind: ``node.json`` is written last, and a failed
``init_home`` removes what it created.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from data_host.errors import NodeHomeError
from data_host.registry import create_node_tables
from provenance.errors import KeyFormatError
from provenance.keys import (
    PublicKey,
    SigningKey,
    load_signing_key,
    write_public_key,
    write_signing_key,
)
from provenance.storage import make_engine, sqlite_url

CONFIG_FILE = "node.json"
CONFIG_VERSION = 1
#: ``database_url`` of a home whose database is ``registry.db`` inside it, wherever the
#: home is (a copied or moved home keeps using its own database).
EMBEDDED_DATABASE = "embedded:registry.db"
#: Environment variable naming the default node home.
HOME_ENV = "TALLY_HOST_HOME"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MAX_CONFIG_BYTES = 64 * 1024


def default_home() -> Path:
    """``$TALLY_HOST_HOME`` if set, else ``~/.tallystick/host``."""
    configured = os.environ.get(HOME_ENV)
    return Path(configured) if configured else Path.home() / ".tallystick" / "host"


def check_node_name(name: str) -> str:
    """Return ``name`` if it is a valid node name, else raise ``NodeHomeError``."""
    if not _NAME_PATTERN.fullmatch(name):
        raise NodeHomeError(
            f"node name {name!r} is invalid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class NodeConfig:
    """The contents of ``node.json``."""

    name: str
    created_at: str
    creator_did: str
    worker_did: str
    dev_attester_did: str
    database_url: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to ``node.json``."""
        return {
            "version": CONFIG_VERSION,
            "name": self.name,
            "created_at": self.created_at,
            "creator_did": self.creator_did,
            "worker_did": self.worker_did,
            "dev_attester_did": self.dev_attester_did,
            "database_url": self.database_url,
        }

    @classmethod
    def from_dict(cls, data: Any, *, where: Path) -> NodeConfig:
        """Parse ``node.json`` contents, naming the field at fault."""
        if not isinstance(data, dict):
            raise NodeHomeError(f"{where}: must hold a JSON object")
        if data.get("version") != CONFIG_VERSION:
            raise NodeHomeError(
                f"{where}: version {data.get('version')!r} is not supported "
                f"(this Tallystick reads version {CONFIG_VERSION})"
            )
        values: dict[str, str] = {}
        for field_name in (
            "name",
            "created_at",
            "creator_did",
            "worker_did",
            "dev_attester_did",
            "database_url",
        ):
            value = data.get(field_name)
            if not isinstance(value, str) or not value:
                raise NodeHomeError(f"{where}: field {field_name!r} must be a non-empty string")
            values[field_name] = value
        check_node_name(values["name"])
        return cls(**values)


@dataclass(frozen=True)
class NodeHome:
    """An initialised node home. Open one with ``open_home``; create one with ``init_home``."""

    root: Path
    config: NodeConfig

    @property
    def keys_dir(self) -> Path:
        """Where the node's keys and attestation evidence live."""
        return self.root / "keys"

    @property
    def creator_key_path(self) -> Path:
        """The creator's private key (signs manifests)."""
        return self.keys_dir / "creator.key"

    @property
    def worker_key_path(self) -> Path:
        """The worker's private key (signs usage receipts)."""
        return self.keys_dir / "worker.key"

    @property
    def dev_attester_key_path(self) -> Path:
        """The key that signs INSECURE dev attestation evidence."""
        return self.keys_dir / "dev-attester.key"

    @property
    def evidence_path(self) -> Path:
        """The worker key's attestation evidence, beside the key."""
        return self.keys_dir / "worker.evidence.json"

    @property
    def redacted_dir(self) -> Path:
        """Where redacted copies of datasets are written."""
        return self.root / "redacted"

    def creator_key(self) -> SigningKey:
        """Load the creator key, refusing unsafe permissions or a key that does not match."""
        return self._load_key(self.creator_key_path, self.config.creator_did, "creator")

    def worker_key(self) -> SigningKey:
        """Load the worker key, refusing unsafe permissions or a key that does not match."""
        return self._load_key(self.worker_key_path, self.config.worker_did, "worker")

    def dev_attester_key(self) -> SigningKey:
        """Load the dev attester key."""
        return self._load_key(
            self.dev_attester_key_path, self.config.dev_attester_did, "dev attester"
        )

    @property
    def creator_public_key(self) -> PublicKey:
        """The creator identity."""
        return PublicKey.from_did(self.config.creator_did)

    @property
    def worker_public_key(self) -> PublicKey:
        """The worker key's public half."""
        return PublicKey.from_did(self.config.worker_did)

    @cached_property
    def engine(self) -> Engine:
        """The registry database engine (created once per ``NodeHome``)."""
        return make_engine(self.database_url)

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL of the node's database."""
        if self.config.database_url == EMBEDDED_DATABASE:
            return sqlite_url(self.root / "registry.db")
        return self.config.database_url

    def _load_key(self, path: Path, did: str, role: str) -> SigningKey:
        try:
            key = load_signing_key(path)
        except KeyFormatError as exc:
            raise NodeHomeError(f"{role} key: {exc}") from exc
        if key.public_key.did != did:
            raise NodeHomeError(
                f"{role} key {path} does not match the identity in {self.root / CONFIG_FILE} "
                f"({did}); the key file was replaced"
            )
        return key


def _write_key_pair(keys_dir: Path, stem: str) -> SigningKey:
    key = SigningKey.generate()
    write_signing_key(key, keys_dir / f"{stem}.key")
    write_public_key(key.public_key, keys_dir / f"{stem}.pub")
    return key


def _write_config(root: Path, config: NodeConfig) -> None:
    data = (json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n").encode()
    temporary = root / f".{CONFIG_FILE}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, root / CONFIG_FILE)


def init_home(root: Path, name: str, *, database_url: str | None = None) -> NodeHome:
    """Create a node home at ``root``: keys (0600), registry database, then ``node.json``.

    ``root`` may exist only as an empty directory. ``database_url`` defaults to the SQLite
    file ``registry.db`` in the home (stored as ``EMBEDDED_DATABASE``, so that the home
    can be moved). Raises ``NodeHomeError`` without leaving anything
    behind if any step fails.
    """
    check_node_name(name)
    root = root.expanduser().absolute()
    if (root / CONFIG_FILE).exists():
        raise NodeHomeError(f"{root} is already a node home ({CONFIG_FILE} exists)")
    created_root = not root.exists()
    if not created_root and (not root.is_dir() or any(root.iterdir())):
        raise NodeHomeError(f"{root} exists and is not an empty directory; choose another --home")
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        root.chmod(0o700)
        keys_dir = root / "keys"
        keys_dir.mkdir(mode=0o700)
        creator = _write_key_pair(keys_dir, "creator")
        worker = _write_key_pair(keys_dir, "worker")
        attester = _write_key_pair(keys_dir, "dev-attester")
        (root / "redacted").mkdir(mode=0o700)
        config = NodeConfig(
            name=name,
            created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            creator_did=creator.public_key.did,
            worker_did=worker.public_key.did,
            dev_attester_did=attester.public_key.did,
            database_url=database_url or EMBEDDED_DATABASE,
        )
        home = NodeHome(root, config)
        create_node_tables(home.engine)
        home.engine.dispose()
        _write_config(root, config)
    except BaseException:
        _remove_partial(root, created_root)
        raise
    return NodeHome(root, config)


def _remove_partial(root: Path, created_root: bool) -> None:
    if created_root:
        shutil.rmtree(root, ignore_errors=True)
        return
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def open_home(root: Path) -> NodeHome:
    """Open the node home at ``root``, checking its configuration and permissions."""
    root = root.expanduser().absolute()
    config_path = root / CONFIG_FILE
    try:
        status = root.stat()
    except FileNotFoundError as exc:
        raise NodeHomeError(
            f"no node home at {root}; create one with: tally host init --name NAME --home {root}"
        ) from exc
    if not config_path.exists():
        raise NodeHomeError(
            f"{root} is not a node home ({CONFIG_FILE} is missing); "
            f"create one with: tally host init --name NAME --home {root}"
        )
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise NodeHomeError(
            f"{root} is writable by group or others (mode {stat.S_IMODE(status.st_mode):04o}); "
            f"run: chmod 700 {root}"
        )
    raw = config_path.read_bytes()
    if len(raw) > _MAX_CONFIG_BYTES:
        raise NodeHomeError(f"{config_path} is {len(raw)} bytes, over {_MAX_CONFIG_BYTES}")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NodeHomeError(f"{config_path} is not valid JSON: {exc}") from exc
    config = NodeConfig.from_dict(data, where=config_path)
    for did in (config.creator_did, config.worker_did, config.dev_attester_did):
        try:
            PublicKey.from_did(did)
        except KeyFormatError as exc:
            raise NodeHomeError(f"{config_path}: {exc}") from exc
    return NodeHome(root, config)
