"""A whole marketplace on one machine, on loopback: what ``tally demo`` and the end-to-end
tests run.

``LocalStack`` starts a coordinator (development mode: dev attestation is accepted and
marked INSECURE) with its HTTP API (uvicorn) and a supervised Flower SuperLink, and can
add data-host nodes: each gets a home with keys and dev-attested worker key, a dataset
ingested into a signed manifest, a creator account whose identity it links, a registered
host and a published listing, and its own SuperNode started with ``tally host up`` as a
separate process. Everything it starts is stopped by ``close()`` (also on errors), and
it reports what it left behind nowhere: processes end, ports close.

Datasets come from scikit-learn's bundled handwritten digits (1,797 8x8 images, 10
classes), shipped inside the installed package: no download.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import numpy as np

from clients.local_server import LocalServer, free_port
from clients.sdk import TallyClient
from coordinator.api.app import create_app
from coordinator.home import init_coordinator_home, open_coordinator_home
from coordinator.identity import sign_identity_link
from coordinator.launch import superlink_settings
from coordinator.service import Coordinator, bootstrap_admin, open_coordinator, prepare_database
from coordinator.superlink import SuperLinkSupervisor
from data_host.attestation import EvidenceKind, produce_evidence, store_evidence
from data_host.home import NodeHome, init_home
from data_host.ingest import IngestResult, ingest_dataset
from data_host.terms import DatasetTerms
from data_host.trust import pin_coordinator
from privacy.pii import PiiPolicy

#: How long a SuperNode may take to say it runs.
NODE_START_SECONDS = 60.0
DIGITS_FEATURES = 64


class StackError(RuntimeError):
    """Something the local stack started did not come up, or went away."""


def digits_rows(seed: int = 7) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The digits, shuffled with ``seed``: pixel intensities scaled to [0, 1], and labels."""
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    return (digits.data[order] / 16.0).astype(np.float64), digits.target[order].astype(np.int64)


def write_digits_csv(
    directory: Path, features: np.ndarray[Any, Any], labels: np.ndarray[Any, Any], *, contact: bool
) -> Path:
    """A CSV dataset of digit rows (``p0..p63,label``); with ``contact``, an e-mail column
    that the PII scan finds and the ingest redacts (it is text, so no model ever sees it)."""
    directory.mkdir(parents=True, exist_ok=True)
    header = [f"p{i}" for i in range(features.shape[1])] + ["label"]
    if contact:
        header.append("contact")
    lines = [",".join(header)]
    for number, (row, label) in enumerate(zip(features, labels, strict=True)):
        cells = [format(float(value), ".4g") for value in row] + [str(int(label))]
        if contact:
            cells.append(f"patient{number}@example.org")
        lines.append(",".join(cells))
    path = directory / "digits.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


@dataclass
class Host:
    """One data-host node of the stack and the datasets it published (first one first)."""

    name: str
    home: NodeHome
    account: dict[str, Any]
    datasets: list[IngestResult] = field(default_factory=list)
    listings: list[dict[str, Any]] = field(default_factory=list)
    process: subprocess.Popen[str] | None = None
    running: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset_id(self) -> str:
        """The id of the node's first dataset (as listed)."""
        return str(self.datasets[0].dataset.row.id)

    @property
    def dataset_ids(self) -> list[str]:
        """The ids of all the node's datasets, in the order they were added."""
        return [str(result.dataset.row.id) for result in self.datasets]

    @property
    def api_key(self) -> str:
        """The creator's API key."""
        return str(self.account["api_key"])


def tally_command() -> list[str]:
    """How to run ``tally`` from this environment (the script beside this interpreter)."""
    script = Path(sys.executable).parent / "tally"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from clients.cli.main import app; app()"]


class LocalStack:
    """Coordinator, SuperLink and data hosts on loopback (see the module docstring)."""

    def __init__(self, root: Path, *, name: str = "local") -> None:
        self.root = root
        self.name = name
        self.coordinator: Coordinator | None = None
        self.api: LocalServer | None = None
        self.superlink: SuperLinkSupervisor | None = None
        self.admin_key = ""
        self.hosts: list[Host] = []

    # -- coordinator ---------------------------------------------------------------------

    def start(self) -> LocalStack:
        """Start the coordinator (API and SuperLink); returns self."""
        try:
            home = init_coordinator_home(self.root / "coordinator", self.name, dev_mode=True)
            prepare_database(home.database_url)
            port = free_port()
            home = open_coordinator_home(home.root)
            coordinator = open_coordinator(home)
            self.coordinator = coordinator
            self.admin_key = bootstrap_admin(coordinator)
            settings = superlink_settings(home, port)
            (home.root / "superlink").mkdir(mode=0o700, exist_ok=True)
            (home.root / "logs").mkdir(mode=0o700, exist_ok=True)
            self.superlink = SuperLinkSupervisor(settings)
            self.superlink.start()
            coordinator.superlink = settings
            coordinator.superlink_state = lambda: self.superlink.state if self.superlink else ""
            self.api = LocalServer(create_app(coordinator)).start()
            coordinator.start()
        except BaseException:
            self.close()
            raise
        return self

    @property
    def url(self) -> str:
        """The coordinator API's base URL."""
        if self.api is None:
            raise StackError("the stack is not started")
        return self.api.url

    def client(self, api_key: str) -> TallyClient:
        """An SDK client for ``api_key``."""
        return TallyClient(self.url, api_key)

    def create_account(self, name: str, role: str) -> dict[str, Any]:
        """A new account (and its first API key, ``api_key``)."""
        with self.client(self.admin_key) as admin:
            return admin.create_account(name, role)

    # -- hosts -----------------------------------------------------------------------------

    def add_host(
        self,
        name: str,
        dataset_dir: Path,
        *,
        price_per_sample: Decimal = Decimal("0.001"),
        lifetime_epsilon: float = 10.0,
        max_epsilon_per_job: float = 5.0,
    ) -> Host:
        """A node with ``dataset_dir`` ingested, registered and published by a new creator."""
        home = init_home(self.root / "hosts" / name, name)
        store_evidence(home, produce_evidence(home, EvidenceKind.DEV))
        account = self.create_account(f"creator-{name}", "creator")
        with self.client(account["api_key"]) as creator:
            info = creator.info()
            proof = sign_identity_link(
                home.creator_key(), account_id=account["account"]["id"], audience=info["audience"]
            )
            creator.link_identity(proof.to_dict())
            evidence = json.loads((home.evidence_path).read_text())
            creator.register_host(home.config.creator_did, evidence)
            pin_coordinator(home, info, self.url)
        host = Host(name, home, account)
        self.hosts.append(host)
        self.add_dataset(
            host,
            dataset_dir,
            price_per_sample=price_per_sample,
            lifetime_epsilon=lifetime_epsilon,
            max_epsilon_per_job=max_epsilon_per_job,
        )
        return host

    def add_dataset(
        self,
        host: Host,
        dataset_dir: Path,
        *,
        price_per_sample: Decimal = Decimal("0.001"),
        lifetime_epsilon: float = 10.0,
        max_epsilon_per_job: float = 5.0,
    ) -> str:
        """Ingest ``dataset_dir`` on ``host``'s node and publish it; returns its dataset id."""
        number = f" ({len(host.datasets) + 1})" if host.datasets else ""
        terms = DatasetTerms(
            title=f"Handwritten digits held by {host.name}{number}",
            license="CC-BY-4.0",
            price_per_sample=price_per_sample,
            currency="USD",
            lifetime_epsilon=lifetime_epsilon,
            max_epsilon_per_job=max_epsilon_per_job,
            delta=1e-5,
            pii_policy=PiiPolicy.REDACT,
            label="label",
        )
        ingested = ingest_dataset(host.home, dataset_dir, terms, chunk_size=64 * 1024)
        with self.client(host.api_key) as creator:
            listing = creator.publish_manifest(ingested.signed.envelope.to_dict())
        host.datasets.append(ingested)
        host.listings.append(listing)
        return str(ingested.dataset.row.id)

    def start_node(self, host: Host, *, extra: Sequence[str] = ()) -> dict[str, Any]:
        """Start ``tally host up`` for ``host`` and return its ready line."""
        host.process, host.running = start_host_up(
            host.home.root, self.url, host.api_key, name=host.name, extra=extra
        )
        return host.running

    def stop_node(self, host: Host) -> None:
        """Stop a node's ``tally host up`` (it ends its SuperNode and everything it started)."""
        if host.process is not None:
            stop_host_up(host.process)
            host.process = None

    # -- jobs ------------------------------------------------------------------------------

    def wait_for_job(self, api_key: str, job_id: str, *, timeout: float) -> dict[str, Any]:
        """Poll ``job_id``'s rounds until it ends; the run as last read."""
        deadline = time.monotonic() + timeout
        with self.client(api_key) as client:
            while True:
                run = client.job_rounds(job_id)
                if run["status"] in ("completed", "failed", "cancelled"):
                    return run
                if time.monotonic() >= deadline:
                    raise StackError(f"job {job_id} still {run['status']} after {timeout:g} s")
                time.sleep(0.5)

    # -- teardown --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every node, the API, the SuperLink and the coordinator."""
        for host in self.hosts:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self.stop_node(host)
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self.superlink is not None:
            self.superlink.stop()
            self.superlink = None
        if self.coordinator is not None:
            self.coordinator.close()
            self.coordinator = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()


def start_host_up(
    home: Path, url: str, api_key: str, *, name: str, extra: Sequence[str] = ()
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Run ``tally host up --json`` for the node at ``home`` (its own process group) and
    return the process and the ready line it printed once its SuperNode runs."""
    command = [
        *tally_command(), "host", "up", "--home", str(home), "--coordinator", url, "--json",
        *extra,
    ]  # fmt: skip
    env = {
        **os.environ,
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "FLWR_TELEMETRY_ENABLED": "0",
        "PYTHONUNBUFFERED": "1",
        "TALLY_API_KEY": api_key,
    }
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    return process, _ready_line(process, name)


def stop_host_up(process: subprocess.Popen[str]) -> None:
    """Stop a ``tally host up`` process with SIGTERM (it ends its SuperNode), SIGKILL to
    its process group if it does not exit within 30 s."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _ready_line(process: subprocess.Popen[str], name: str) -> dict[str, Any]:
    """The JSON line ``tally host up --json`` prints once its SuperNode runs."""
    assert process.stdout is not None
    deadline = time.monotonic() + NODE_START_SECONDS
    stdout: IO[str] = process.stdout
    while time.monotonic() < deadline:
        line = stdout.readline()
        if line:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict) and value.get("status") == "running":
                return value
        elif process.poll() is not None:
            error = process.stderr.read() if process.stderr is not None else ""
            raise StackError(f"node {name}: tally host up exited {process.returncode}: {error}")
    process.kill()
    raise StackError(f"node {name}: tally host up did not start in {NODE_START_SECONDS:g} s")
