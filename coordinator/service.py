"""A running coordinator: its configuration, keys, database, log and witnesses in one object.

The HTTP layer, the CLI and the tests all work through a ``Coordinator``; it opens the
database (refusing one that is not migrated), opens or starts the transparency log, and
runs the witness pump that asks configured witnesses to cosign new checkpoints. It never
holds the private keys anywhere but in memory, and never writes them out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import Engine

from billing.rails.base import PaymentRail
from coordinator.accounts import create_account, issue_api_key
from coordinator.database import migrate, open_engine, writing
from coordinator.errors import ConfigError
from coordinator.home import CoordinatorConfig, CoordinatorHome
from coordinator.hosts import attestation_policy
from coordinator.payment_rails import build_rails
from coordinator.read_cache import ReadCache
from coordinator.superlink import SuperLinkSettings
from coordinator.witnessing import WitnessEndpoint, WitnessPump
from provenance.attestation import AttestationPolicy
from provenance.errors import LogError
from provenance.keys import SigningKey
from provenance.note import NoteSigner
from provenance.storage import make_engine
from provenance.tlog.log import TransparencyLog


def open_log(engine: Engine, signer: NoteSigner) -> TransparencyLog:
    """The coordinator's log in ``engine``'s database, started (empty) on first use."""
    try:
        return TransparencyLog.open(engine, signer)
    except LogError as exc:
        if "holds no transparency log" not in str(exc):
            raise ConfigError(f"transparency log: {exc}") from exc
    return TransparencyLog.create(engine, signer)


@dataclass
class Coordinator:
    """Everything one coordinator process works with."""

    home: CoordinatorHome
    engine: Engine
    signing_key: SigningKey
    log: TransparencyLog
    pump: WitnessPump | None
    #: The supervised SuperLink's state, when ``tally coordinator up`` runs one.
    superlink_state: Callable[[], str] | None = None
    #: How that SuperLink runs (training runs are submitted to it); else the configured one.
    superlink: SuperLinkSettings | None = None
    #: Recent reads (key checks, searches, jobs), dropped on this process's every write.
    reads: ReadCache[Any] = field(init=False)

    def __post_init__(self) -> None:
        self.reads = ReadCache(self.engine)

    @cached_property
    def idempotency_secret(self) -> bytes:
        """A secret of this coordinator's for sealing stored answers: the SHA-256 of its
        (deterministic, RFC 8032) Ed25519 signature over a fixed label. Only a holder of
        the coordinator's key can compute it; it is never stored."""
        return hashlib.sha256(self.signing_key.sign(b"tally idempotency secret v1")).digest()

    @cached_property
    def rails(self) -> dict[str, PaymentRail]:
        """The payment rails, by name: ``ledger`` always, and the configured one."""
        return build_rails(self.home)

    @property
    def payment_rail(self) -> PaymentRail:
        """The rail that collects funding and pays creators (``payments.rail``)."""
        return self.rails[self.home.config.payments.rail]

    @property
    def config(self) -> CoordinatorConfig:
        """The coordinator's configuration."""
        return self.home.config

    @property
    def development_mode(self) -> bool:
        """Whether insecure (dev) attestation evidence is accepted."""
        return self.home.config.dev_mode

    def attestation_policy(self) -> AttestationPolicy:
        """The policy worker evidence must meet now."""
        return attestation_policy(self.config.attestation, dev_mode=self.development_mode)

    @property
    def token_ttl(self) -> timedelta:
        """How long capability tokens live."""
        return timedelta(seconds=self.config.token_ttl_seconds)

    @staticmethod
    def now() -> datetime:
        """The current UTC time, at whole seconds (as records carry it)."""
        return datetime.now(UTC).replace(microsecond=0)

    def logged(self) -> None:
        """Tell the witness pump that the log grew."""
        if self.pump is not None:
            self.pump.notify()

    def info(self) -> dict[str, Any]:
        """What anyone may know about this coordinator: names, public keys, policy."""
        config = self.config
        return {
            "name": config.name,
            "coordinator_did": self.signing_key.public_key.did,
            "coordinator_public_key_pem": self.signing_key.public_key.to_pem().decode(),
            "log_origin": self.log.origin,
            "log_vkey": self.home.log_signer().verifier.vkey,
            "audience": config.audience,
            "development_mode": config.dev_mode,
            "platform_fee_bps": config.platform_fee_bps,
            "superlink_address": self.superlink.address
            if self.superlink is not None
            else f"{config.superlink.host}:{config.superlink.port}",
            "witnesses": [
                {"name": witness.name, "vkey": witness.vkey, "url": witness.url}
                for witness in config.witnesses
            ],
        }

    def start(self) -> None:
        """Start background work (the witness pump)."""
        if self.pump is not None:
            self.pump.start()
            self.pump.notify()

    def close(self) -> None:
        """Stop background work and release the database."""
        if self.pump is not None:
            self.pump.stop()
        self.reads.close()
        self.engine.dispose()


def open_coordinator(home: CoordinatorHome, *, database_url: str | None = None) -> Coordinator:
    """Open a coordinator on its (migrated) database; the log starts empty on first use."""
    url = database_url or home.database_url
    signing_key = home.signing_key()
    signer = home.log_signer()
    engine = open_engine(url)
    try:
        log = open_log(engine, signer)
    except BaseException:
        engine.dispose()
        raise
    endpoints = [
        WitnessEndpoint(name=witness.name, vkey=witness.vkey, url=witness.url)
        for witness in home.config.witnesses
    ]
    pump = WitnessPump(log, endpoints) if endpoints else None
    return Coordinator(home, engine, signing_key, log, pump)


def prepare_database(url: str) -> None:
    """Create or upgrade the coordinator's schema at ``url``."""
    engine = make_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()


def bootstrap_admin(coordinator: Coordinator, name: str = "admin") -> str:
    """Create the first admin account and return its API key (shown once)."""
    with writing(coordinator.engine) as session:
        account = create_account(session, name, "admin")
        return issue_api_key(session, account.id, label="bootstrap").token
