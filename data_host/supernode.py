"""How a creator's node runs its Flower SuperNode: the command line and its environment.

``tally host up`` starts one ``flower-supernode`` per node. It connects out to the
coordinator's SuperLink, serves its own Runtime (ClientAppIo) API on a loopback port of its
own (so that several nodes can share a machine), starts a fresh ``flwr-clientapp`` for every
message (``--isolation subprocess``), and hands the ClientApp the node's home through
``--node-config home="…"``. Its Flower state and installed app bundles live inside the node
home (``FLWR_HOME=<home>/flwr``), never in the creator's ``~/.flwr``.

The functions here only build the command and environment; they start nothing. They check
what they are given (addresses, ports, TLS files), naming the option at fault.

This module must never put a private key's contents on a command line, in the environment
or in a message (only its path), never enable run-time dependency installation, never ask
for SuperNode authentication without TLS, and never let Flower phone home.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from data_host.errors import SuperNodeSetupError
from data_host.home import NodeHome

__all__ = [
    "AUTH_KEY_NAME",
    "RUNTIME_HOST",
    "SUPERNODE_EXECUTABLE",
    "SuperNodeSettings",
    "SuperNodeTls",
    "check_superlink_address",
    "check_tls",
    "default_auth_key",
    "flwr_home",
    "node_config",
    "prepare_flwr_home",
    "reachable_superlink",
    "supernode_command",
    "supernode_environment",
]

#: The program ``tally host up`` runs.
SUPERNODE_EXECUTABLE = "flower-supernode"
#: Where the SuperNode serves its Runtime API: loopback only; nothing outside the machine
#: needs it (the SuperNode connects *out* to the SuperLink).
RUNTIME_HOST = "127.0.0.1"
#: The node's SuperNode authentication key, in its keys directory, when it has one
#: (``ssh-keygen -t ecdsa -b 384 -N "" -f <home>/keys/supernode``).
AUTH_KEY_NAME = "supernode"
_MAX_ADDRESS_CHARS = 300
_MAX_KEY_BYTES = 16 * 1024
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_WILDCARDS = ("0.0.0.0", "::")  # noqa: S104 - names of wildcard addresses, not a bind
_OPENSSH_PRIVATE_KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----"


def check_superlink_address(address: str) -> str:
    """Return ``address`` if it is ``host:port`` as ``flower-supernode --superlink`` takes it.

    ``host`` is a DNS name, an IPv4 address or a bracketed IPv6 address; ``port`` is
    1-65535. No URL scheme, path or spaces. Raises ``SuperNodeSetupError`` otherwise.
    """
    if not isinstance(address, str) or not address or len(address) > _MAX_ADDRESS_CHARS:
        raise SuperNodeSetupError(
            f"superlink address {str(address)[:80]!r} must be host:port of at most "
            f"{_MAX_ADDRESS_CHARS} characters"
        )
    if "://" in address:
        raise SuperNodeSetupError(
            f"superlink address {address!r} must be host:port, without a URL scheme"
        )
    host, separator, port_text = address.rpartition(":")
    if not separator or not host:
        raise SuperNodeSetupError(f"superlink address {address!r} must be host:port")
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise SuperNodeSetupError(
            f"superlink address {address!r}: port {port_text!r} is not between 1 and 65535"
        )
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError as exc:
            raise SuperNodeSetupError(
                f"superlink address {address!r}: {host} is not an IPv6 address"
            ) from exc
    elif not _HOSTNAME.fullmatch(host):
        raise SuperNodeSetupError(
            f"superlink address {address!r}: {host!r} is not a host name or IPv4 address "
            "(put an IPv6 address in brackets)"
        )
    return address


def reachable_superlink(advertised: str, coordinator_url: str) -> str:
    """The SuperLink address a node should dial, given the one a coordinator advertises.

    A coordinator whose SuperLink listens on a wildcard address (``0.0.0.0`` or ``::``)
    advertises that address; the node then dials the coordinator's own host name, taken
    from ``coordinator_url``, at the advertised port. Any other address is used as is.
    """
    check_superlink_address(advertised)
    host, _, port = advertised.rpartition(":")
    if host.strip("[]") not in _WILDCARDS:
        return advertised
    name = urlsplit(coordinator_url).hostname
    if not name:
        raise SuperNodeSetupError(
            f"the coordinator advertises the SuperLink on wildcard address {advertised!r} and "
            f"{coordinator_url!r} names no host to dial instead; give --superlink HOST:PORT"
        )
    return check_superlink_address(f"[{name}]:{port}" if ":" in name else f"{name}:{port}")


@dataclass(frozen=True)
class SuperNodeTls:
    """TLS towards the SuperLink: the CA that signed its certificate, and optionally the
    node's SuperNode authentication key (an OpenSSH ECDSA private key, by path)."""

    root_certificates: Path
    auth_private_key: Path | None = None


@dataclass(frozen=True)
class SuperNodeSettings:
    """How to run one node's SuperNode.

    ``superlink`` is the SuperLink's Fleet API address (``host:port``); ``port`` the
    SuperNode's own Runtime API port on loopback (each node on a machine needs its own);
    ``tls=None`` connects with ``--insecure``.
    """

    superlink: str
    port: int
    tls: SuperNodeTls | None = None

    def __post_init__(self) -> None:
        check_superlink_address(self.superlink)
        if isinstance(self.port, bool) or not 1 <= self.port <= 65535:
            raise SuperNodeSetupError(f"supernode port {self.port} is not between 1 and 65535")


def default_auth_key(node: NodeHome) -> Path | None:
    """The node's SuperNode authentication key (``keys/supernode``) if it has one."""
    path = node.keys_dir / AUTH_KEY_NAME
    return path if path.is_file() else None


def flwr_home(node: NodeHome) -> Path:
    """The node's private ``FLWR_HOME``: Flower's state and installed app bundles."""
    return node.root / "flwr"


def prepare_flwr_home(node: NodeHome) -> Path:
    """Create the node's ``FLWR_HOME`` (mode 0700) if needed; return it."""
    path = flwr_home(node)
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        path.chmod(0o700)
    except OSError as exc:
        raise SuperNodeSetupError(f"cannot create {path}: {exc.strerror or exc}") from exc
    return path


def node_config(root: Path) -> str:
    """The ``--node-config`` value that hands the ClientApp the node home ``root``, absolute.

    ``home="<absolute path>"``, a TOML basic string as Flower parses it: backslashes,
    quotes and control characters are escaped (a quote as ``\\u0022``, since Flower's
    splitter ends a quoted value at the first ``"``), so any path arrives unchanged in
    ``context.node_config["home"]``.
    """
    return f"home={_toml_string(str(root.absolute()))}"


def _toml_string(text: str) -> str:
    escaped: list[str] = []
    for char in text:
        if char == "\\":
            escaped.append("\\\\")
        elif char == '"' or ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append(f"\\u{ord(char):04X}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def supernode_command(
    node: NodeHome, settings: SuperNodeSettings, *, executable: Path
) -> list[str]:
    """The ``flower-supernode`` command line for ``node``.

    ``executable`` is the ``flower-supernode`` program to run. With ``settings.tls`` the
    CA file must exist, and an authentication key must be an OpenSSH private key that only
    its owner can read; ``SuperNodeSetupError`` names the option and the path otherwise.
    Run-time dependency installation is never enabled.
    """
    command = [
        str(executable),
        "--superlink",
        settings.superlink,
        "--host",
        RUNTIME_HOST,
        "--port",
        str(settings.port),
        "--isolation",
        "subprocess",
        "--node-config",
        node_config(node.root),
    ]
    if settings.tls is None:
        command.append("--insecure")
        return command
    tls = check_tls(settings.tls)
    command += ["--root-certificates", str(tls.root_certificates)]
    if tls.auth_private_key is not None:
        command += ["--auth-supernode-private-key", str(tls.auth_private_key)]
    return command


def check_tls(tls: SuperNodeTls) -> SuperNodeTls:
    """``tls`` with absolute paths, once the CA file is a PEM certificate and the
    authentication key (if any) an OpenSSH private key only its owner can read.

    Raises ``SuperNodeSetupError`` naming the option (``--root-certificates``,
    ``--auth-key``) and the path; never reads more of the key than its first line.
    """
    key = None if tls.auth_private_key is None else _check_auth_key(tls.auth_private_key)
    return SuperNodeTls(_check_root_certificates(tls), key)


def _check_root_certificates(tls: SuperNodeTls) -> Path:
    path = tls.root_certificates.expanduser().absolute()
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise SuperNodeSetupError(
            f"--root-certificates {path}: {exc.strerror or exc} (give the CA certificate, PEM, "
            "that signed the SuperLink's certificate)"
        ) from exc
    if b"-----BEGIN CERTIFICATE-----" not in head:
        raise SuperNodeSetupError(f"--root-certificates {path} is not a PEM certificate")
    return path


def _check_auth_key(key: Path) -> Path:
    path = key.expanduser().absolute()
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            raise SuperNodeSetupError(f"--auth-key {path} is not a file")
        if status.st_size > _MAX_KEY_BYTES:
            raise SuperNodeSetupError(f"--auth-key {path} is over {_MAX_KEY_BYTES} bytes")
        with path.open("rb") as handle:
            head = handle.read(len(_OPENSSH_PRIVATE_KEY))
    except OSError as exc:
        raise SuperNodeSetupError(f"--auth-key {path}: {exc.strerror or exc}") from exc
    if head != _OPENSSH_PRIVATE_KEY:
        raise SuperNodeSetupError(
            f"--auth-key {path} is not an OpenSSH private key (make one with: "
            "ssh-keygen -t ecdsa -b 384 -N '' -f KEY, and register KEY.pub with the coordinator)"
        )
    if status.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SuperNodeSetupError(
            f"--auth-key {path} is readable by group or others "
            f"(mode {stat.S_IMODE(status.st_mode):04o}); run: chmod 600 {path}"
        )
    return path


def supernode_environment(
    node: NodeHome, *, bin_dir: Path, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The SuperNode's environment: ``base`` (default: this process's) with ``FLWR_HOME`` in
    the node home, Flower's update check and telemetry off, unbuffered output, and
    ``bin_dir`` (where ``flower-supernode`` lives) first on ``PATH``, because the SuperNode
    starts ``flower-superexec`` and ``flwr-clientapp`` by name."""
    env = dict(os.environ if base is None else base)
    env["FLWR_HOME"] = str(flwr_home(node))
    env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    rest = [entry for entry in env.get("PATH", "").split(os.pathsep) if entry]
    env["PATH"] = os.pathsep.join([str(bin_dir), *(e for e in rest if e != str(bin_dir))])
    return env
