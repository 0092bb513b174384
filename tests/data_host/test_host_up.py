"""``tally host up`` on real processes, and the coordinator a node trusts.

A real ``flower-superlink`` runs on a free loopback port (under the coordinator's
supervisor) and a real coordinator API serves in a thread; nodes are made, registered and
run with the installed ``tally`` command, each its own process, as a creator would. The
tests look at the SuperNodes through ``/proc`` (command line, environment, descendants)
and through the SuperLink's own ``flwr supernode list``, and check that stopping
``tally host up`` leaves no SuperNode, SuperExec or ClientApp and no open port behind.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clients.local_server import LocalServer
from clients.sdk import TallyClient
from coordinator.api.app import create_app
from coordinator.home import init_coordinator_home
from coordinator.service import Coordinator, bootstrap_admin, open_coordinator, prepare_database
from coordinator.superlink import (
    SuperLinkError,
    SuperLinkSettings,
    SuperLinkSupervisor,
    SuperLinkTls,
    SupervisedCommand,
)
from coordinator.supernodes import FlowerConnection, list_supernodes, register_supernode
from data_host.errors import CoordinatorTrustError, SuperNodeSetupError
from data_host.home import NodeHome, init_home
from data_host.supernode import (
    SuperNodeSettings,
    SuperNodeTls,
    check_superlink_address,
    node_config,
    reachable_superlink,
    supernode_command,
    supernode_environment,
)
from data_host.trust import (
    MAX_COORDINATOR_FILE_BYTES,
    TrustedCoordinator,
    coordinator_from_info,
    coordinator_path,
    pin_coordinator,
    trusted_coordinator,
)
from provenance.keys import SigningKey

HOST = "127.0.0.1"
TALLY = str(Path(sys.executable).with_name("tally"))
READY_SECONDS = 60.0
STOP_SECONDS = 30.0
WAIT_SECONDS = 30.0
#: The programs a SuperNode runs; none may outlive ``tally host up``.
FLOWER_NODE_PROGRAMS = ("flower-supernode", "flower-superexec", "flwr-clientapp")


@pytest.fixture(autouse=True)
def _flower_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep anything Flower writes under its home inside the test's directory."""
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr-home"))
    monkeypatch.setenv("FLWR_DISABLE_UPDATE_CHECK", "1")
    monkeypatch.delenv("TALLY_COORDINATOR", raising=False)
    monkeypatch.delenv("TALLY_API_KEY", raising=False)


# -- processes -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def _eventually(condition: Callable[[], bool], seconds: float = WAIT_SECONDS) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def _stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, parent pid, start time)`` of ``pid`` from /proc, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[19])


def _alive(pid: int, start: int) -> bool:
    stat_ = _stat(pid)
    return stat_ is not None and stat_[0] != "Z" and stat_[2] == start


def _argv(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").rstrip("\0").split("\0")


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def _descendants(pid: int) -> dict[tuple[int, int], list[str]]:
    """``{(pid, start time): argv}`` of every live descendant of ``pid``."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            found = _stat(int(entry.name))
            if found is not None and found[0] != "Z":
                children.setdefault(found[1], []).append((int(entry.name), found[2]))
    result: dict[tuple[int, int], list[str]] = {}
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            result[child] = _argv(child[0])
            pending.append(child[0])
    return result


def _node_programs_naming(port: int) -> list[str]:
    """Live SuperNode/SuperExec/ClientApp processes whose command line names ``port``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        state = _stat(int(entry.name))
        line = " ".join(_argv(int(entry.name)))
        if state is None or state[0] == "Z":
            continue
        if any(name in line for name in FLOWER_NODE_PROGRAMS) and (
            f" {port} " in f" {line} " or f":{port} " in f"{line} "
        ):
            found.append(line)
    return found


@dataclass
class HostUp:
    """One ``tally host up`` child process."""

    home: Path
    args: list[str]
    output: Path
    process: subprocess.Popen[bytes] | None = None
    ready: dict[str, Any] = field(default_factory=dict)
    children: dict[tuple[int, int], list[str]] = field(default_factory=dict)

    def logs(self) -> str:
        return "".join(
            path.read_text(errors="replace")
            for path in (self.output.with_suffix(".out"), self.output.with_suffix(".err"))
            if path.exists()
        )

    def start(self) -> dict[str, Any]:
        """Run ``tally host up --json`` and return its ready line once it is printed."""
        out = self.output.with_suffix(".out").open("wb")
        err = self.output.with_suffix(".err").open("wb")
        with out, err:
            self.process = subprocess.Popen(
                [TALLY, "host", "up", "--home", str(self.home), "--json", *self.args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        deadline = time.monotonic() + READY_SECONDS
        while True:
            lines = self.output.with_suffix(".out").read_text().splitlines()
            if lines:
                assert len(lines) == 1, lines
                self.ready = json.loads(lines[0])
                break
            code = self.process.poll()
            if code is not None:
                pytest.fail(f"tally host up exited with {code}:\n{self.logs()}")
            if time.monotonic() > deadline:
                pytest.fail(f"tally host up printed nothing in time:\n{self.logs()}")
            time.sleep(0.1)
        # The SuperNode starts its SuperExec helper on its own, just after it is ready.
        assert _eventually(self._saw_superexec), self.children
        return self.ready

    def _saw_superexec(self) -> bool:
        assert self.process is not None
        self.children.update(_descendants(self.process.pid))
        return any("flower-superexec" in " ".join(argv) for argv in self.children.values())

    def supernode_pid(self) -> int:
        pid = int(self.ready["pid"])
        assert "flower-supernode" in " ".join(_argv(pid))
        return pid

    def stop(self, signum: signal.Signals) -> int:
        """Send ``signum`` and wait for ``tally host up`` to exit; its status."""
        assert self.process is not None
        self.children.update(_descendants(self.process.pid))
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"tally host up did not exit within {STOP_SECONDS:g} s")

    def leftovers(self) -> list[str]:
        """What this ``tally host up`` started that is still alive, and any node program
        naming its port."""
        seen = [
            " ".join(argv) for (pid, start), argv in self.children.items() if _alive(pid, start)
        ]
        port = int(self.ready.get("port", 0))
        return sorted(set(seen) | set(_node_programs_naming(port) if port else []))

    def clean_up(self) -> None:
        """End whatever this test started that is still running (only those processes)."""
        if self.process is not None and self.process.poll() is None:
            self.children.update(_descendants(self.process.pid))
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid, start in self.children:
            if _alive(pid, start):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def host_ups() -> Iterator[list[HostUp]]:
    """``tally host up`` processes a test started; ended even when the test fails."""
    started: list[HostUp] = []
    yield started
    for host_up in started:
        host_up.clean_up()


def _tally(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TALLY, *args], capture_output=True, text=True, timeout=120, check=False)


def _ok(*args: str) -> str:
    result = _tally(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _refused(*args: str) -> str:
    """The one ``error:`` line a refused command prints."""
    result = _tally(*args)
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- a coordinator and its SuperLink ------------------------------------------------------


@dataclass
class Market:
    """A coordinator API in a thread, its admin and a creator's API key."""

    coordinator: Coordinator
    server: LocalServer
    creator_key: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def did(self) -> str:
        return str(self.coordinator.info()["coordinator_did"])

    def creator(self) -> list[str]:
        return ["--coordinator", self.url, "--api-key", self.creator_key]


def _market(root: Path, superlink_port: int) -> Market:
    home = init_coordinator_home(root, "test", dev_mode=True, superlink_port=superlink_port)
    prepare_database(home.database_url)
    coordinator = open_coordinator(home)
    admin_key = bootstrap_admin(coordinator)
    server = LocalServer(create_app(coordinator)).start()
    with TallyClient(server.url, admin_key) as client:
        creator_key = str(client.create_account("alice", "creator")["api_key"])
    return Market(coordinator, server, creator_key)


@pytest.fixture
def markets() -> Iterator[list[Market]]:
    started: list[Market] = []
    yield started
    for market in started:
        market.server.stop()
        market.coordinator.close()


@pytest.fixture
def superlink(tmp_path: Path) -> Iterator[SuperLinkSettings]:
    """A real insecure ``flower-superlink`` on a free loopback port."""
    settings = SuperLinkSettings(host=HOST, port=_free_port(), log_file=tmp_path / "link.log")
    with SuperLinkSupervisor(settings):
        yield settings


def _registered_node(root: Path, name: str, market: Market) -> Path:
    """A node made, attested (dev) and registered with ``market`` through ``tally``."""
    home = root / name
    _ok("host", "init", "--name", name, "--home", str(home), "--json")
    _ok("host", "attest", "--kind", "dev", "--home", str(home))
    registered = json.loads(
        _ok("host", "register", *market.creator(), "--home", str(home), "--json")
    )
    assert registered["coordinator_did"] == market.did
    return home


def _online(connection: FlowerConnection) -> int:
    return sum(node.get("status") == "online" for node in list_supernodes(connection))


# -- tally host up, end to end ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_up_runs_one_supernode_per_node_and_stops_leaving_nothing(
    tmp_path: Path,
    superlink: SuperLinkSettings,
    markets: list[Market],
    host_ups: list[HostUp],
) -> None:
    market = _market(tmp_path / "coordinator", superlink.port)
    markets.append(market)
    # Two creators' nodes on one machine (one under a path with a space and a quote).
    alice = _registered_node(tmp_path, "alice", market)
    bob = _registered_node(tmp_path / 'odd "dir"', "bob", market)
    pinned = json.loads((alice / "coordinator.json").read_text())
    assert pinned["did"] == market.did
    assert pinned["superlink_address"] == superlink.address

    first = HostUp(alice, ["--coordinator", market.url], tmp_path / "alice-up")
    host_ups.append(first)
    ready = first.start()
    assert ready["status"] == "running"
    assert ready["node"] == "alice"
    assert ready["superlink"] == superlink.address
    assert ready["coordinator_did"] == market.did
    assert ready["tls"] is False
    second = HostUp(bob, [], tmp_path / "bob-up")
    host_ups.append(second)
    second.start()
    assert first.ready["port"] != second.ready["port"]

    for host_up, home in ((first, alice), (second, bob)):
        pid = host_up.supernode_pid()
        argv = _argv(pid)
        # argv[0] is the interpreter named by the script's shebang line.
        assert argv[1:] == host_up.ready["command"]
        assert argv[argv.index("--superlink") + 1] == superlink.address
        assert argv[argv.index("--port") + 1] == str(host_up.ready["port"])
        assert argv[argv.index("--isolation") + 1] == "subprocess"
        assert "--insecure" in argv
        config = argv[argv.index("--node-config") + 1]
        assert config == node_config(home.absolute())
        environment = _environ(pid)
        assert environment["FLWR_HOME"] == str(home.absolute() / "flwr")
        assert environment["FLWR_TELEMETRY_ENABLED"] == "0"
        assert environment["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
        assert stat.S_IMODE((home / "flwr").stat().st_mode) == 0o700
        assert _listening(int(host_up.ready["port"]))
        # The SuperNode's helpers: its SuperExec serves the Runtime API on the node's port.
        assert any(
            f"{HOST}:{host_up.ready['port']}" in argv
            for argv in host_up.children.values()
            if "flower-superexec" in " ".join(argv)
        )

    # Both nodes reached the SuperLink.
    connection = FlowerConnection.write(tmp_path / "flwr", superlink)
    assert _eventually(lambda: _online(connection) == 2), first.logs() + second.logs()

    for host_up, signum in ((first, signal.SIGTERM), (second, signal.SIGHUP)):
        assert host_up.stop(signum) == 0, host_up.logs()
        assert _eventually(lambda h=host_up: not h.leftovers()), host_up.leftovers()
        assert not _listening(int(host_up.ready["port"]))
    assert _listening(superlink.port)  # the SuperLink is not theirs to stop


@pytest.mark.slow
def test_register_pins_the_coordinator_and_refuses_another(
    tmp_path: Path, markets: list[Market], host_ups: list[HostUp]
) -> None:
    trusted = _market(tmp_path / "coordinator", _free_port())
    other = _market(tmp_path / "other", _free_port())
    markets += [trusted, other]
    node = _registered_node(tmp_path, "alice", trusted)
    pin = node / "coordinator.json"
    assert stat.S_IMODE(pin.stat().st_mode) == 0o600
    text = _ok("host", "register", *trusted.creator(), "--home", str(node))
    assert trusted.did in text  # registering again with the same coordinator is fine
    before = pin.read_bytes()

    line = _refused("host", "register", *other.creator(), "--home", str(node))
    assert trusted.did in line
    assert other.did in line
    assert "--replace-coordinator" in line
    assert pin.read_bytes() == before
    # Nothing was sent to the other coordinator: it knows no identity for the creator.
    with TallyClient(other.url, other.creator_key) as client:
        assert client.whoami()["identities"] == []

    line = _refused("host", "up", "--home", str(node), "--coordinator", other.url)
    assert other.did in line
    assert "--replace-coordinator" in line

    moved = json.loads(
        _ok(
            "host",
            "register",
            *other.creator(),
            "--replace-coordinator",
            "--home",
            str(node),
            "--json",
        )
    )
    assert moved["coordinator_did"] == other.did
    assert json.loads(pin.read_text())["did"] == other.did
    assert stat.S_IMODE(pin.stat().st_mode) == 0o600


@pytest.mark.slow
def test_unreachable_superlink_is_not_an_error(tmp_path: Path, host_ups: list[HostUp]) -> None:
    """A SuperNode retries its SuperLink, so ``up`` starts without one; the pinned
    coordinator not answering is only a warning."""
    node = init_home(tmp_path / "alice", "alice")
    _pin(node, superlink_address=f"{HOST}:{_free_port()}", url=f"http://{HOST}:{_free_port()}")
    port = _free_port()
    host_up = HostUp(node.root, ["--port", str(port)], tmp_path / "up")
    host_ups.append(host_up)
    ready = host_up.start()
    assert ready["port"] == port
    assert "did not answer" in host_up.output.with_suffix(".err").read_text()
    assert host_up.stop(signal.SIGINT) == 0, host_up.logs()
    assert _eventually(lambda: not host_up.leftovers()), host_up.leftovers()
    assert not _listening(port)


def _write_tls(directory: Path) -> SuperLinkTls:
    """A fresh CA and a server certificate it signed for 127.0.0.1."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tally test CA")])

    def certificate(subject: x509.Name, key: ec.EllipticCurvePrivateKey, ca: bool) -> bytes:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), False
            )
        return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    server_key = ec.generate_private_key(ec.SECP256R1())
    tls = SuperLinkTls(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    tls.ca_certfile.write_bytes(certificate(ca_name, ca_key, True))
    tls.certfile.write_bytes(
        certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]), server_key, False)
    )
    tls.keyfile.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return tls


def _ssh_keypair(private: Path) -> Path:
    """An OpenSSH ECDSA P-384 key pair as ``ssh-keygen -t ecdsa -b 384`` makes it."""
    key = ec.generate_private_key(ec.SECP384R1())
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    private.with_name(private.name + ".pub").write_bytes(public + b" node\n")
    return private


@pytest.mark.slow
def test_tls_with_supernode_auth_admits_the_registered_node_key(
    tmp_path: Path, host_ups: list[HostUp]
) -> None:
    tls = _write_tls(tmp_path)
    settings = SuperLinkSettings(
        host=HOST, port=_free_port(), tls=tls, supernode_auth=True, log_file=tmp_path / "l"
    )
    with SuperLinkSupervisor(settings):
        connection = FlowerConnection.write(tmp_path / "flwr", settings)
        node = init_home(tmp_path / "alice", "alice")
        # The node's SuperNode key in its conventional place, registered by the operator.
        key = _ssh_keypair(node.keys_dir / "supernode")
        register_supernode(connection, key.with_name("supernode.pub"), name="alice")
        _pin(node, superlink_address="127.0.0.1:1", url=f"http://{HOST}:{_free_port()}")
        host_up = HostUp(
            node.root,
            ["--superlink", settings.address, "--root-certificates", str(tls.ca_certfile)],
            tmp_path / "up",
        )
        host_ups.append(host_up)
        ready = host_up.start()
        assert ready["tls"] is True
        assert ready["auth_key"] == str(key)
        argv = _argv(host_up.supernode_pid())
        assert argv[argv.index("--root-certificates") + 1] == str(tls.ca_certfile)
        assert argv[argv.index("--auth-supernode-private-key") + 1] == str(key)
        assert "--insecure" not in argv
        assert _eventually(lambda: _online(connection) == 1), host_up.logs()
        assert host_up.stop(signal.SIGTERM) == 0, host_up.logs()
        assert _eventually(lambda: not host_up.leftovers()), host_up.leftovers()


# -- refusals through the command line ---------------------------------------------------


def test_up_without_a_node_home_fails(tmp_path: Path) -> None:
    line = _refused("host", "up", "--home", str(tmp_path / "nowhere"))
    assert "no node home" in line
    assert "tally host init" in line


def test_up_on_an_unregistered_node_names_register(tmp_path: Path) -> None:
    home = tmp_path / "alice"
    _ok("host", "init", "--name", "alice", "--home", str(home), "--json")
    line = _refused("host", "up", "--home", str(home))
    assert "has not registered with a coordinator" in line
    assert "tally host register" in line
    assert not (home / "flwr").exists()


def test_up_with_a_missing_tls_file_fails_naming_it(tmp_path: Path) -> None:
    node = init_home(tmp_path / "alice", "alice")
    _pin(node, superlink_address=f"{HOST}:1", url=f"http://{HOST}:{_free_port()}")
    missing = tmp_path / "ca.pem"
    line = _refused("host", "up", "--home", str(node.root), "--root-certificates", str(missing))
    assert "--root-certificates" in line
    assert str(missing) in line
    key = _ssh_keypair(tmp_path / "node")
    line = _refused("host", "up", "--home", str(node.root), "--auth-key", str(key))
    assert "--auth-key needs TLS" in line
    line = _refused("host", "up", "--home", str(node.root), "--superlink", "http://x:1")
    assert "without a URL scheme" in line


def test_up_help_has_an_example() -> None:
    text = _ok("host", "up", "--help")
    for words in ("Example:", "--coordinator", "--superlink", "--port", "--root-certificates"):
        assert words in text


# -- data_host.trust ----------------------------------------------------------------------


def _info(key: SigningKey, **overrides: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "coordinator_did": key.public_key.did,
        "coordinator_public_key_pem": key.public_key.to_pem().decode(),
        "audience": "https://market.example/",
        "superlink_address": "127.0.0.1:9093",
    }
    info.update(overrides)
    return info


def _pin(
    node: NodeHome, *, superlink_address: str, url: str, key: SigningKey | None = None
) -> TrustedCoordinator:
    signer = key or SigningKey.generate()
    return pin_coordinator(node, _info(signer, superlink_address=superlink_address), url)


@pytest.fixture
def node(tmp_path: Path) -> NodeHome:
    return init_home(tmp_path / "node", "node")


def test_pin_writes_0600_and_reads_back(node: NodeHome) -> None:
    key = SigningKey.generate()
    pinned = pin_coordinator(node, _info(key), "http://127.0.0.1:8400/")
    assert pinned.url == "http://127.0.0.1:8400"
    assert pinned.public_key == key.public_key
    path = coordinator_path(node)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert trusted_coordinator(node) == pinned
    assert not list(node.root.glob(".coordinator.json*"))


def test_same_did_updates_url_and_superlink(node: NodeHome) -> None:
    key = SigningKey.generate()
    pin_coordinator(node, _info(key), "http://127.0.0.1:8400")
    moved = pin_coordinator(
        node, _info(key, superlink_address="link.example:443"), "https://market.example"
    )
    assert trusted_coordinator(node) == moved
    assert moved.superlink_address == "link.example:443"
    assert moved.url == "https://market.example"


def test_another_did_is_refused_unless_replaced(node: NodeHome) -> None:
    first, second = SigningKey.generate(), SigningKey.generate()
    pinned = pin_coordinator(node, _info(first), "http://127.0.0.1:8400")
    with pytest.raises(CoordinatorTrustError, match="--replace-coordinator") as refused:
        pin_coordinator(node, _info(second), "http://127.0.0.1:8401")
    assert first.public_key.did in str(refused.value)
    assert second.public_key.did in str(refused.value)
    assert trusted_coordinator(node) == pinned
    replaced = pin_coordinator(node, _info(second), "http://127.0.0.1:8401", replace=True)
    assert trusted_coordinator(node) == replaced
    assert replaced.did == second.public_key.did


def test_info_whose_key_is_not_its_did_is_refused() -> None:
    key, impostor = SigningKey.generate(), SigningKey.generate()
    info = _info(key, coordinator_public_key_pem=impostor.public_key.to_pem().decode())
    with pytest.raises(CoordinatorTrustError, match="inconsistent"):
        coordinator_from_info(info, "http://127.0.0.1:8400")


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"coordinator_did": "did:web:market.example"}, "did:key"),
        ({"coordinator_did": None}, "'coordinator_did' must be a non-empty string"),
        ({"coordinator_public_key_pem": "not a pem"}, "coordinator_public_key_pem"),
        ({"audience": ""}, "'audience' must be a non-empty string"),
        ({"superlink_address": "http://127.0.0.1:9093"}, "superlink_address"),
        ({"superlink_address": "127.0.0.1:99999"}, "not between 1 and 65535"),
    ],
)
def test_bad_info_is_refused_naming_the_field(overrides: dict[str, Any], words: str) -> None:
    key = SigningKey.generate()
    info = _info(key, **overrides)
    if overrides.get("coordinator_did") == "did:web:market.example":
        info["coordinator_public_key_pem"] = key.public_key.to_pem().decode()
    with pytest.raises(CoordinatorTrustError, match=words):
        coordinator_from_info(info, "http://127.0.0.1:8400")


@pytest.mark.parametrize(
    "url", ["ftp://market.example", "http://", "http://u:p@market.example", "http://h/?q=1"]
)
def test_bad_url_is_refused(url: str) -> None:
    with pytest.raises(CoordinatorTrustError, match="coordinator url"):
        coordinator_from_info(_info(SigningKey.generate()), url)


def _stored(key: SigningKey, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": 1,
        "url": "http://127.0.0.1:8400",
        "did": key.public_key.did,
        "audience": "aud",
        "superlink_address": "127.0.0.1:9093",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "must hold a JSON object"),
        (b"\xff\xfe", "not valid JSON"),
        (json.dumps({"version": 2}).encode(), "version 2 is not supported"),
        (b" " * (MAX_COORDINATOR_FILE_BYTES + 1), f"over {MAX_COORDINATOR_FILE_BYTES} bytes"),
    ],
)
def test_malformed_coordinator_file_is_refused_naming_register(
    node: NodeHome, content: bytes, words: str
) -> None:
    path = coordinator_path(node)
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(CoordinatorTrustError, match=words) as refused:
        trusted_coordinator(node)
    assert "tally host register" in str(refused.value)
    assert str(path) in str(refused.value)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"did": "did:key:zNotBase58!"}, "coordinator did"),
        ({"did": "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"[:-3]}, "did"),
        ({"url": 7}, "field 'url' must be a non-empty string"),
        ({"extra": "x"}, "unknown field 'extra'"),
        ({"superlink_address": "nohost"}, "superlink_address"),
        ({"audience": "a\nb"}, "control characters"),
    ],
)
def test_bad_field_in_coordinator_file_is_refused(
    node: NodeHome, overrides: dict[str, Any], words: str
) -> None:
    path = coordinator_path(node)
    path.write_text(json.dumps(_stored(SigningKey.generate(), **overrides)))
    path.chmod(0o600)
    with pytest.raises(CoordinatorTrustError, match=words):
        trusted_coordinator(node)


def test_duplicate_fields_and_a_wrong_did_are_refused(node: NodeHome) -> None:
    path = coordinator_path(node)
    key = SigningKey.generate()
    good = json.dumps(_stored(key))
    path.write_text(good[:-1] + f', "did": "{SigningKey.generate().public_key.did}"}}')
    path.chmod(0o600)
    with pytest.raises(CoordinatorTrustError, match="duplicate field 'did'"):
        trusted_coordinator(node)
    # A file naming another coordinator than the one answering is refused on re-pinning.
    path.write_text(good)
    with pytest.raises(CoordinatorTrustError, match="refusing to switch"):
        pin_coordinator(node, _info(SigningKey.generate()), "http://127.0.0.1:8400")


def test_unsafe_coordinator_file_is_refused(node: NodeHome, tmp_path: Path) -> None:
    path = coordinator_path(node)
    path.write_text(json.dumps(_stored(SigningKey.generate())))
    path.chmod(0o622)
    with pytest.raises(CoordinatorTrustError, match="writable by group or others"):
        trusted_coordinator(node)
    path.unlink()
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(_stored(SigningKey.generate())))
    path.symlink_to(elsewhere)
    with pytest.raises(CoordinatorTrustError, match="cannot read"):
        trusted_coordinator(node)


def test_missing_coordinator_file_names_register(node: NodeHome) -> None:
    with pytest.raises(CoordinatorTrustError, match="tally host register") as refused:
        trusted_coordinator(node)
    assert "has not registered with a coordinator" in str(refused.value)


# -- data_host.supernode ------------------------------------------------------------------


def test_command_is_insecure_without_tls_and_offline(node: NodeHome, tmp_path: Path) -> None:
    settings = SuperNodeSettings(superlink="127.0.0.1:9093", port=9101)
    command = supernode_command(node, settings, executable=Path("/venv/bin/flower-supernode"))
    assert command == [
        "/venv/bin/flower-supernode",
        "--superlink",
        "127.0.0.1:9093",
        "--host",
        "127.0.0.1",
        "--port",
        "9101",
        "--isolation",
        "subprocess",
        "--node-config",
        f'home="{node.root}"',
        "--insecure",
    ]
    assert "--allow-runtime-dependency-installation" not in command


def test_command_with_tls_and_auth_key(node: NodeHome, tmp_path: Path) -> None:
    ca = _write_tls(tmp_path).ca_certfile
    key = _ssh_keypair(tmp_path / "supernode")
    settings = SuperNodeSettings("link.example:443", 9101, SuperNodeTls(ca, key))
    command = supernode_command(node, settings, executable=Path("/bin/flower-supernode"))
    assert command[command.index("--root-certificates") + 1] == str(ca)
    assert command[command.index("--auth-supernode-private-key") + 1] == str(key)
    assert "--insecure" not in command
    key.chmod(0o644)
    with pytest.raises(SuperNodeSetupError, match="chmod 600"):
        supernode_command(node, settings, executable=Path("/bin/flower-supernode"))
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    key.chmod(0o600)
    with pytest.raises(SuperNodeSetupError, match="not an OpenSSH private key"):
        supernode_command(node, settings, executable=Path("/bin/flower-supernode"))
    not_ca = tmp_path / "ca.txt"
    not_ca.write_text("hello\n")
    with pytest.raises(SuperNodeSetupError, match="not a PEM certificate"):
        supernode_command(
            node,
            SuperNodeSettings("link.example:443", 9101, SuperNodeTls(not_ca)),
            executable=Path("/bin/flower-supernode"),
        )


@pytest.mark.parametrize(
    "path", ["/srv/nodes/alice", "/tmp/with space/n", '/tmp/q"uote\\back', "/tmp/tab\there/ü"]
)
def test_node_config_reaches_the_clientapp_unchanged(path: str) -> None:
    from flwr.common.config import parse_config_args

    assert parse_config_args([node_config(Path(path))]) == {"home": path}


def test_environment_keeps_flower_inside_the_node(node: NodeHome) -> None:
    env = supernode_environment(
        node,
        bin_dir=Path("/venv/bin"),
        base={"PATH": "/usr/bin:/venv/bin", "FLWR_HOME": "/root/.flwr", "HOME": "/root"},
    )
    assert env["FLWR_HOME"] == str(node.root / "flwr")
    assert env["FLWR_DISABLE_UPDATE_CHECK"] == "1"
    assert env["FLWR_TELEMETRY_ENABLED"] == "0"
    assert env["PATH"] == "/venv/bin:/usr/bin"
    assert env["HOME"] == "/root"


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("127.0.0.1:9093", True),
        ("link.example.org:443", True),
        ("[::1]:9093", True),
        ("::1:9093", False),
        ("127.0.0.1", False),
        ("127.0.0.1:0", False),
        ("http://127.0.0.1:9093", False),
        ("bad host:1", False),
        ("", False),
    ],
)
def test_superlink_address_check(address: str, ok: bool) -> None:
    if ok:
        assert check_superlink_address(address) == address
    else:
        with pytest.raises(SuperNodeSetupError, match="superlink address"):
            check_superlink_address(address)


def test_a_wildcard_superlink_is_dialled_at_the_coordinator_host() -> None:
    assert reachable_superlink("0.0.0.0:9093", "https://market.example:8400") == (
        "market.example:9093"
    )
    assert reachable_superlink("[::]:9093", "http://[fd00::1]:8400") == "[fd00::1]:9093"
    assert reachable_superlink("10.0.0.2:9093", "https://market.example") == "10.0.0.2:9093"


def test_supervised_command_refuses_dependency_installation(tmp_path: Path) -> None:
    with pytest.raises(SuperLinkError, match="must not install app dependencies"):
        SupervisedCommand(
            "SuperNode",
            ("/bin/flower-supernode", "--allow-runtime-dependency-installation"),
            HOST,
            9101,
        )
    with pytest.raises(SuperLinkError, match="absolute program path"):
        SupervisedCommand("SuperNode", ("flower-supernode",), HOST, 9101)


def test_supervisor_names_the_supernode_and_its_port(tmp_path: Path) -> None:
    port = _free_port()
    program = SupervisedCommand(
        "SuperNode", (sys.executable, "-c", "import sys; print('bye'); sys.exit(3)"), HOST, port
    )
    supervisor = SuperLinkSupervisor(program, max_restarts=0)
    with pytest.raises(SuperLinkError, match=rf"the SuperNode on {HOST}:{port} exited with code 3"):
        supervisor.start()
    assert "bye" in supervisor.output_tail()
    with socket.socket() as squatter:
        squatter.bind((HOST, port))
        squatter.listen()
        with pytest.raises(SuperLinkError, match="another SuperNode port"):
            supervisor.start()
