"""The coordinator's home: its keys, its configuration file and its database location.

``tally coordinator init`` creates a home: a 0700 directory with the coordinator key
(signs capability tokens, job events and round proofs), the log key (signs checkpoints
under the log's origin), their public halves, and ``coordinator.json``, written last.
Keys are created 0600 and never overwritten or printed. This module must never leave a
half-made home behind, nor open a home whose directory others may write to.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from coordinator.errors import ConfigError
from provenance.errors import KeyFormatError, NoteError
from provenance.keys import SigningKey, load_signing_key, write_public_key, write_signing_key
from provenance.note import NoteSigner, check_key_name, parse_verifier_key
from provenance.storage import sqlite_url

CONFIG_FILE = "coordinator.json"
CONFIG_VERSION = 1
HOME_ENV = "TALLY_COORDINATOR_HOME"
#: ``database_url`` value meaning "the SQLite file coordinator.db inside the home".
EMBEDDED_DATABASE = "embedded:coordinator.db"
DEFAULT_API_PORT = 8400
DEFAULT_SUPERLINK_PORT = 9093
_MAX_CONFIG_BYTES = 256 * 1024

Port = Annotated[int, Field(ge=1, le=65535)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsFiles(_Strict):
    """Certificate files for the SuperLink: CA, server certificate and its key (PEM)."""

    ca_certfile: str
    certfile: str
    keyfile: str


class SuperLinkConfig(_Strict):
    """Where the supervised Flower SuperLink listens and how it authenticates nodes."""

    host: str = "127.0.0.1"
    port: Port = DEFAULT_SUPERLINK_PORT
    tls: TlsFiles | None = None
    supernode_auth: bool = False


class WitnessConfig(_Strict):
    """A witness the coordinator asks to cosign its checkpoints (C2SP tlog-witness)."""

    name: str
    vkey: str
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=2048)]

    @field_validator("vkey")
    @classmethod
    def _cosignature_key(cls, value: str) -> str:
        try:
            parsed = parse_verifier_key(value)
        except NoteError as exc:
            raise ValueError(str(exc)) from exc
        if type(parsed).__name__ != "CosignatureVerifier":
            raise ValueError("a witness key must be a cosignature (type 0x04) verifier key")
        return value


class AttestationConfig(_Strict):
    """What worker evidence the coordinator accepts before it issues tokens."""

    max_age_days: Annotated[int, Field(ge=1, le=365)] = 30
    expected_measurements: dict[str, str] = Field(default_factory=dict)
    trusted_dev_attesters: list[str] = Field(default_factory=list)


Url = Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=2048)]
#: Files in ``keys/`` holding the Stripe secrets (0600; never printed).
STRIPE_API_KEY_FILE = "stripe-api-key"
STRIPE_WEBHOOK_SECRET_FILE = "stripe-webhook-secret"  # noqa: S105 - a file name
_MAX_SECRET_BYTES = 4096


class StripeConfig(_Strict):
    """Where the stripe rail reaches Stripe, and where creators land after onboarding.
    The API key and webhook secret live in files under ``keys/``, not here."""

    api_base: Url = "https://api.stripe.com"
    onboarding_return_url: Url = "http://127.0.0.1:8400/v1/billing/onboarding/done"


class PaymentsConfig(_Strict):
    """Which payment rail moves the ledger's money in and out."""

    rail: Literal["ledger", "stripe"] = "ledger"
    stripe: StripeConfig | None = None


class CoordinatorConfig(_Strict):
    """The contents of ``coordinator.json``."""

    version: Literal[1] = 1
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    created_at: str
    dev_mode: bool
    log_origin: str
    coordinator_did: str
    database_url: str = EMBEDDED_DATABASE
    api_host: str = "127.0.0.1"
    api_port: Port = DEFAULT_API_PORT
    superlink: SuperLinkConfig = Field(default_factory=SuperLinkConfig)
    witnesses: list[WitnessConfig] = Field(default_factory=list)
    platform_fee_bps: Annotated[int, Field(ge=0, le=10_000)] = 1000
    token_ttl_seconds: Annotated[int, Field(ge=30, le=3600)] = 600
    attestation: AttestationConfig = Field(default_factory=AttestationConfig)
    payments: PaymentsConfig = Field(default_factory=PaymentsConfig)

    @field_validator("log_origin")
    @classmethod
    def _origin(cls, value: str) -> str:
        try:
            check_key_name(value)
        except NoteError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @property
    def audience(self) -> str:
        """What identity-link proofs must name: this coordinator."""
        return f"tallystick-coordinator:{self.name}"


def default_home() -> Path:
    """``$TALLY_COORDINATOR_HOME`` if set, else ``~/.tallystick/coordinator``."""
    configured = os.environ.get(HOME_ENV)
    return Path(configured) if configured else Path.home() / ".tallystick" / "coordinator"


class CoordinatorHome:
    """An initialised coordinator home. Open with ``open_coordinator_home``."""

    def __init__(self, root: Path, config: CoordinatorConfig) -> None:
        self.root = root
        self.config = config

    @property
    def keys_dir(self) -> Path:
        """Where the keys live."""
        return self.root / "keys"

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL of the coordinator's database."""
        url = self.config.database_url
        if url.startswith("embedded:"):
            return sqlite_url(self.root / url.removeprefix("embedded:"))
        return url

    def signing_key(self) -> SigningKey:
        """The coordinator key; checked against the DID in the configuration."""
        key = self._load("coordinator.key")
        if key.public_key.did != self.config.coordinator_did:
            raise ConfigError(
                f"{self.keys_dir / 'coordinator.key'} does not match coordinator_did in "
                f"{self.root / CONFIG_FILE}; the key file was replaced"
            )
        return key

    def log_signer(self) -> NoteSigner:
        """The checkpoint signer under the log's origin."""
        return NoteSigner(self.config.log_origin, self._load("log.key"))

    def secret(self, name: str) -> str:
        """A secret file under ``keys/`` (e.g. ``STRIPE_API_KEY_FILE``); refuses one that
        others may read, one that is missing, empty or too large."""
        path = self.keys_dir / name
        try:
            info = path.stat()
        except FileNotFoundError:
            raise ConfigError(
                f"{path} is missing; set it with: tally coordinator payments --rail stripe …"
            ) from None
        if info.st_mode & 0o077:
            raise ConfigError(f"{path} is readable by others; chmod 600 it")
        if info.st_size > _MAX_SECRET_BYTES:
            raise ConfigError(f"{path} is over {_MAX_SECRET_BYTES} bytes; it is not a secret key")
        value = path.read_text(encoding="utf-8").strip()
        if not value:
            raise ConfigError(f"{path} is empty")
        return value

    def write_secret(self, name: str, value: str) -> None:
        """Write a secret file under ``keys/`` atomically, created 0600."""
        value = value.strip()
        if not value or len(value) > _MAX_SECRET_BYTES or any(c.isspace() for c in value):
            raise ConfigError(f"the value for {name} is empty, too long or holds whitespace")
        _replace_private(self.keys_dir / name, (value + "\n").encode())

    def _load(self, name: str) -> SigningKey:
        try:
            return load_signing_key(self.keys_dir / name)
        except KeyFormatError as exc:
            raise ConfigError(str(exc)) from exc


def init_coordinator_home(
    root: Path,
    name: str,
    *,
    dev_mode: bool,
    database_url: str | None = None,
    platform_fee_bps: int = 1000,
    api_port: int = DEFAULT_API_PORT,
    superlink_port: int = DEFAULT_SUPERLINK_PORT,
) -> CoordinatorHome:
    """Create a home at ``root`` (absent or empty): keys (0600), then ``coordinator.json``.

    The database itself is created by ``coordinator.database.migrate``. Raises
    ``ConfigError`` and leaves nothing behind if any step fails.
    """
    root = root.expanduser().absolute()
    if (root / CONFIG_FILE).exists():
        raise ConfigError(f"{root} is already a coordinator home ({CONFIG_FILE} exists)")
    created_root = not root.exists()
    if not created_root and (not root.is_dir() or any(root.iterdir())):
        raise ConfigError(f"{root} exists and is not an empty directory; choose another --home")
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        root.chmod(0o700)
        keys = root / "keys"
        keys.mkdir(mode=0o700)
        coordinator_key = SigningKey.generate()
        write_signing_key(coordinator_key, keys / "coordinator.key")
        write_public_key(coordinator_key.public_key, keys / "coordinator.pub")
        log_key = SigningKey.generate()
        write_signing_key(log_key, keys / "log.key")
        try:
            config = CoordinatorConfig(
                name=name,
                created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                dev_mode=dev_mode,
                log_origin=f"{name}.tallystick/log",
                coordinator_did=coordinator_key.public_key.did,
                database_url=database_url or EMBEDDED_DATABASE,
                api_port=api_port,
                superlink=SuperLinkConfig(port=superlink_port),
                platform_fee_bps=platform_fee_bps,
            )
        except ValidationError as exc:
            raise ConfigError(_first_error(exc, "coordinator")) from exc
        (keys / "log.vkey").write_text(
            NoteSigner(config.log_origin, log_key).verifier.vkey + "\n", encoding="utf-8"
        )
        write_config(root, config)
    except BaseException:
        _remove_partial(root, created_root)
        raise
    return CoordinatorHome(root, config)


def write_config(root: Path, config: CoordinatorConfig) -> None:
    """Replace ``coordinator.json`` atomically (mode 0600)."""
    data = (json.dumps(config.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode()
    _replace_private(root / CONFIG_FILE, data)


def _replace_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, the new file created 0600."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def open_coordinator_home(root: Path) -> CoordinatorHome:
    """Open the home at ``root``, checking its permissions and configuration."""
    root = root.expanduser().absolute()
    path = root / CONFIG_FILE
    if not path.exists():
        raise ConfigError(
            f"no coordinator home at {root}; create one with: "
            f"tally coordinator init --name NAME --home {root}"
        )
    mode = root.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"{root} is writable by group or others (mode {stat.S_IMODE(mode):04o}); "
            f"run: chmod 700 {root}"
        )
    raw = path.read_bytes()
    if len(raw) > _MAX_CONFIG_BYTES:
        raise ConfigError(f"{path} is {len(raw)} bytes, over {_MAX_CONFIG_BYTES}")
    try:
        config = CoordinatorConfig.model_validate_json(raw)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc, str(path))) from exc
    return CoordinatorHome(root, config)


def _first_error(exc: ValidationError, where: str) -> str:
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"]) or "(top level)"
    return f"{where}: field {location}: {error['msg']}"


def _remove_partial(root: Path, created_root: bool) -> None:
    if created_root:
        shutil.rmtree(root, ignore_errors=True)
        return
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
