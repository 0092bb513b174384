"""The SuperLink supervisor against real ``flower-superlink`` processes on loopback."""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from coordinator.superlink import (
    SuperLinkError,
    SuperLinkSettings,
    SuperLinkSupervisor,
    SuperLinkTls,
    superlink_command,
)
from coordinator.supernodes import (
    FlowerConnection,
    list_supernodes,
    read_public_key,
    register_supernode,
    unregister_supernode,
)

HOST = "127.0.0.1"
WAIT_SECONDS = 30.0


@pytest.fixture(autouse=True)
def _flower_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep anything Flower writes under its home inside the test's directory."""
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr-home"))


@pytest.fixture
def port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def supervisors() -> Iterator[list[SuperLinkSupervisor]]:
    """Supervisors a test started; stopped even when the test fails."""
    started: list[SuperLinkSupervisor] = []
    yield started
    for supervisor in started:
        supervisor.stop()


def _settings(tmp_path: Path, port: int, **overrides: object) -> SuperLinkSettings:
    values: dict[str, object] = {"host": HOST, "port": port, "database": tmp_path / "link.db"}
    values.update(overrides)
    return SuperLinkSettings(**values)  # type: ignore[arg-type]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def _eventually(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def _flower_processes(port: int) -> dict[int, list[str]]:
    """Live SuperLink and SuperExec processes whose command line names ``port``."""
    found: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        joined = " ".join(argv)
        named = "flower-superlink" in joined or "flower-superexec" in joined
        if named and (str(port) in argv or f"{HOST}:{port}" in argv) and _alive(int(entry.name)):
            found[int(entry.name)] = argv
    return found


def _write_tls(directory: Path) -> SuperLinkTls:
    """A fresh CA and a server certificate it signed for 127.0.0.1 and localhost."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tally test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    tls = SuperLinkTls(
        ca_certfile=directory / "ca.pem",
        certfile=directory / "server.pem",
        keyfile=directory / "server.key",
    )
    tls.ca_certfile.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    tls.certfile.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    tls.keyfile.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return tls


def test_command_is_offline_and_insecure_without_tls(tmp_path: Path) -> None:
    command = superlink_command(_settings(tmp_path, 9111))
    assert Path(command[0]).name == "flower-superlink"
    assert "--disable-runtime-dependency-installation" in command
    assert "--insecure" in command
    assert "--enable-supernode-auth" not in command
    assert command[command.index("--host") + 1] == HOST
    assert command[command.index("--port") + 1] == "9111"
    assert command[command.index("--database") + 1] == str((tmp_path / "link.db").absolute())


def test_supernode_auth_without_tls_is_refused() -> None:
    with pytest.raises(SuperLinkError, match="supernode_auth requires TLS"):
        SuperLinkSettings(supernode_auth=True)


def test_missing_tls_file_is_refused_naming_it(tmp_path: Path, port: int) -> None:
    tls = _write_tls(tmp_path)
    tls.keyfile.unlink()
    supervisor = SuperLinkSupervisor(_settings(tmp_path, port, tls=tls))
    with pytest.raises(SuperLinkError, match=re.escape(str(tls.keyfile))):
        supervisor.start()
    assert supervisor.pid is None
    assert not supervisor.running


def test_port_in_use_is_refused(tmp_path: Path, port: int) -> None:
    with socket.socket() as squatter:
        squatter.bind((HOST, port))
        squatter.listen()
        supervisor = SuperLinkSupervisor(_settings(tmp_path, port))
        with pytest.raises(SuperLinkError, match=f"port {port} on {HOST} is in use"):
            supervisor.start()
    assert supervisor.pid is None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_starts_serves_and_stops_leaving_nothing_running(
    tmp_path: Path, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As when ``tally`` runs from a virtual environment that is not activated: the
    # SuperLink must still find the ``flower-superexec`` it starts by name.
    monkeypatch.setenv("PATH", os.defpath)
    log_file = tmp_path / "logs" / "superlink.log"
    flwr_home = tmp_path / "flwr"
    settings = _settings(tmp_path, port, log_file=log_file, flwr_home=flwr_home)
    with SuperLinkSupervisor(settings) as link:
        assert link.running
        assert link.address == f"{HOST}:{port}"
        assert _answers(port)
        processes = _flower_processes(port)
        assert link.pid in processes
        # App bundles the SuperLink's ServerApps install go under its own FLWR_HOME, not ~/.flwr.
        environ = Path(f"/proc/{link.pid}/environ").read_bytes().split(b"\0")
        assert f"FLWR_HOME={flwr_home}".encode() in environ
        assert flwr_home.stat().st_mode & 0o777 == 0o700
        # The SuperLink's detached SuperExec helper, which its process group does not hold.
        assert any("flower-superexec" in " ".join(argv) for argv in processes.values())
        link.stop()
        link.stop()  # idempotent
        assert not link.running
        assert link.pid is None
        assert not _answers(port)
        assert not any(_alive(pid) for pid in processes)
    assert f"{HOST}:{port}" in log_file.read_text()
    assert (tmp_path / "link.db").exists()


@pytest.mark.slow
def test_child_killed_is_restarted(
    tmp_path: Path, port: int, supervisors: list[SuperLinkSupervisor]
) -> None:
    supervisor = SuperLinkSupervisor(_settings(tmp_path, port))
    supervisors.append(supervisor)
    supervisor.start()
    first_pid = supervisor.pid
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)
    assert _eventually(lambda: supervisor.restarts == 1 and supervisor.running)
    assert supervisor.pid not in (None, first_pid)
    assert _answers(port)
    assert supervisor.state == "running"
    # The killed SuperLink's helper does not outlive it.
    assert _eventually(
        lambda: not any(str(first_pid) in argv for argv in _flower_processes(port).values())
    )


@pytest.mark.slow
def test_gives_up_after_max_restarts(
    tmp_path: Path, port: int, supervisors: list[SuperLinkSupervisor]
) -> None:
    supervisor = SuperLinkSupervisor(_settings(tmp_path, port), max_restarts=0)
    supervisors.append(supervisor)
    supervisor.start()
    assert supervisor.pid is not None
    os.kill(supervisor.pid, signal.SIGKILL)
    assert _eventually(lambda: supervisor.state == "failed")
    assert not supervisor.running
    assert supervisor.restarts == 0
    assert not _answers(port)


@pytest.mark.slow
def test_child_failing_at_startup_is_reported_with_its_output(tmp_path: Path, port: int) -> None:
    tls = _write_tls(tmp_path)
    tls.keyfile.write_text("not a key\n")
    supervisor = SuperLinkSupervisor(_settings(tmp_path, port, tls=tls))
    with pytest.raises(SuperLinkError, match=r"exited with code \d+") as refused:
        supervisor.start()
    assert "SSL" in str(refused.value)
    assert not supervisor.running
    assert not _answers(port)


@pytest.mark.slow
def test_tls_with_supernode_auth_serves_tls(
    tmp_path: Path, port: int, supervisors: list[SuperLinkSupervisor]
) -> None:
    tls = _write_tls(tmp_path)
    settings = _settings(tmp_path, port, tls=tls, supernode_auth=True)
    command = superlink_command(settings)
    assert "--enable-supernode-auth" in command
    assert "--insecure" not in command
    supervisor = SuperLinkSupervisor(settings)
    supervisors.append(supervisor)
    supervisor.start()
    assert supervisor.running
    context = ssl.create_default_context(cafile=str(tls.ca_certfile))
    with (
        socket.create_connection((HOST, port), timeout=5.0) as raw,
        context.wrap_socket(raw, server_hostname=HOST) as secured,
    ):
        peer = secured.getpeercert()
    assert peer is not None
    assert ("IP Address", HOST) in peer["subjectAltName"]


def _ssh_keypair(directory: Path, name: str) -> Path:
    """An OpenSSH ECDSA P-384 key pair, as ``ssh-keygen -t ecdsa -b 384`` makes it; the
    private key's path (the public key is beside it, ``.pub``)."""
    key = ec.generate_private_key(ec.SECP384R1())
    private = directory / name
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
    (directory / f"{name}.pub").write_bytes(public + f" {name}\n".encode())
    return private


def _supernode(link: SuperLinkSettings, key: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """A real ``flower-supernode`` that authenticates with ``key``."""
    assert link.tls is not None
    binary = Path(sys.executable).parent
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                str(binary / "flower-supernode"),
                "--superlink",
                link.address,
                "--root-certificates",
                str(link.tls.ca_certfile),
                "--auth-supernode-private-key",
                str(key),
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PATH": f"{binary}{os.pathsep}{os.environ.get('PATH', '')}"},
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_only_registered_supernodes_are_admitted(
    tmp_path: Path, port: int, supervisors: list[SuperLinkSupervisor]
) -> None:
    """With TLS and SuperNode authentication, a SuperNode whose key was registered through
    ``register_supernode`` comes online; one with an unregistered key is refused (Flower's
    exit code 305) and never appears."""
    settings = _settings(
        tmp_path, port, tls=_write_tls(tmp_path), supernode_auth=True, log_file=tmp_path / "l"
    )
    supervisor = SuperLinkSupervisor(settings)
    supervisors.append(supervisor)
    supervisor.start()
    connection = FlowerConnection.write(tmp_path / "flwr", settings)
    assert list_supernodes(connection) == []
    admitted = _ssh_keypair(tmp_path, "alice")
    stranger = _ssh_keypair(tmp_path, "mallory")
    answer = register_supernode(connection, admitted.with_suffix(".pub"), name="alice")
    node_id = str(answer["node-id"])
    assert [node["node-id"] for node in list_supernodes(connection)] == [node_id]

    nodes = [
        _supernode(settings, admitted, _free_port(), tmp_path / "alice.log"),
        _supernode(settings, stranger, _free_port(), tmp_path / "mallory.log"),
    ]
    try:
        assert _eventually(
            lambda: [node["status"] for node in list_supernodes(connection)] == ["online"]
        ), (tmp_path / "alice.log").read_text(errors="replace")
        assert nodes[1].wait(timeout=WAIT_SECONDS) != 0
        assert "Exit Code: 305" in (tmp_path / "mallory.log").read_text(errors="replace")
        assert nodes[0].poll() is None
        assert [node["node-id"] for node in list_supernodes(connection)] == [node_id]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.terminate()
                node.wait(timeout=WAIT_SECONDS)

    unregister_supernode(connection, int(node_id))
    assert all(node["status"] != "online" for node in list_supernodes(connection))


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n", "private key"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC alice\n", "not an OpenSSH ECDSA public key"),
        ("", "not an OpenSSH ECDSA public key"),
    ],
)
def test_a_bad_public_key_is_refused_before_anything_is_sent(
    tmp_path: Path, content: str, words: str
) -> None:
    path = tmp_path / "node.pub"
    path.write_text(content)
    with pytest.raises(SuperLinkError, match=words):
        read_public_key(path)
    with pytest.raises(SuperLinkError, match="does not exist"):
        read_public_key(tmp_path / "missing.pub")
    big = tmp_path / "big.pub"
    big.write_text("ecdsa-sha2-nistp384 " + "A" * 5000)
    with pytest.raises(SuperLinkError, match="over"):
        read_public_key(big)
