"""The SuperLink supervisor against real ``flower-superlink`` processes on loopback."""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import socket
import ssl
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
    with SuperLinkSupervisor(_settings(tmp_path, port, log_file=log_file)) as link:
        assert link.running
        assert link.address == f"{HOST}:{port}"
        assert _answers(port)
        processes = _flower_processes(port)
        assert link.pid in processes
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
