"""Admit data hosts' SuperNodes to the coordinator's SuperLink by their public keys.

With SuperNode authentication on, the SuperLink serves only SuperNodes whose public key
(an ECDSA key in OpenSSH form, ``ssh-keygen -t ecdsa -b 384``) was registered through its
Control API. This module does that with Flower's own CLI (``flwr supernode register``,
``list`` and ``unregister``), against the supervised SuperLink, through a connection file
kept under the coordinator's home (``flwr/config.toml``): nothing is read from or written
to the operator's own ``~/.flwr``. The connection uses the SuperLink's CA certificate when
TLS is configured.

This module must never send or store a private key: it reads only a public key file, and
refuses one that is not an OpenSSH ECDSA public key before anything is sent.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.superlink import SuperLinkError, SuperLinkSettings, resolve_executable

#: The name of the coordinator's SuperLink in its private Flower connection file.
CONNECTION = "tally"
#: The largest public key file accepted (an OpenSSH ECDSA-521 key is under 300 bytes).
MAX_PUBLIC_KEY_BYTES = 4096
_PUBLIC_KEY = re.compile(
    r"^ecdsa-sha2-nistp(256|384|521) [A-Za-z0-9+/]+={0,2}( [\x20-\x7e]{0,200})?\n?$"
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TIMEOUT_SECONDS = 60.0
_ERROR_CHARS = 2000


@dataclass(frozen=True)
class FlowerConnection:
    """Where the ``flwr`` CLI finds the coordinator's SuperLink: a private ``FLWR_HOME``."""

    flwr_home: Path

    @classmethod
    def write(cls, flwr_home: Path, settings: SuperLinkSettings) -> FlowerConnection:
        """Write ``flwr_home/config.toml`` naming the SuperLink of ``settings``."""
        flwr_home.mkdir(mode=0o700, parents=True, exist_ok=True)
        lines = [f"[superlink.{CONNECTION}]", f"address = {_toml(settings.address)}"]
        if settings.tls is None:
            lines.append("insecure = true")
        else:
            ca = settings.tls.ca_certfile.expanduser().absolute()
            lines.append(f"root-certificates = {_toml(str(ca))}")
        text = "[superlink]\n" + f"default = {_toml(CONNECTION)}\n\n" + "\n".join(lines) + "\n"
        path = flwr_home / "config.toml"
        temporary = path.with_suffix(".toml.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
        return cls(flwr_home)

    def run(self, *arguments: str) -> Any:
        """Run ``flwr ARGUMENTS --format json`` on this connection; its JSON answer."""
        command = [str(resolve_executable("flwr")), *arguments, CONNECTION, "--format", "json"]
        env = {**os.environ, "FLWR_HOME": str(self.flwr_home), "FLWR_DISABLE_UPDATE_CHECK": "1"}
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                env=env,
                timeout=_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SuperLinkError(
                f"flwr {' '.join(arguments[:2])} did not answer in {_TIMEOUT_SECONDS:g} s; "
                "is `tally coordinator up` running?"
            ) from exc
        answer = _json_in(done.stdout)
        if done.returncode != 0 or answer is None or answer.get("success") is False:
            said = (answer or {}).get("error-message") if answer else None
            text = said or (done.stderr.strip() or done.stdout.strip())[-_ERROR_CHARS:]
            raise SuperLinkError(
                f"flwr {' '.join(arguments[:2])} failed (exit {done.returncode}): "
                f"{text or 'no output'}"
            )
        return answer


def read_public_key(path: Path) -> str:
    """The OpenSSH ECDSA public key in ``path``, checked before it is sent anywhere."""
    try:
        if not path.is_file():
            raise SuperLinkError(f"public key {path} does not exist or is not a file")
        if path.stat().st_size > MAX_PUBLIC_KEY_BYTES:
            raise SuperLinkError(f"public key {path} is over {MAX_PUBLIC_KEY_BYTES} bytes")
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuperLinkError(f"cannot read public key {path}: {exc}") from exc
    if "PRIVATE KEY" in text:
        raise SuperLinkError(f"{path} is a private key; give the .pub file beside it")
    if not _PUBLIC_KEY.fullmatch(text):
        raise SuperLinkError(
            f"{path} is not an OpenSSH ECDSA public key (make one with: "
            "ssh-keygen -t ecdsa -b 384 -N '' -f KEY, then give KEY.pub)"
        )
    return text.strip()


def register_supernode(
    connection: FlowerConnection, public_key: Path, *, name: str | None = None
) -> dict[str, Any]:
    """Register the SuperNode whose public key is in ``public_key``; Flower's answer
    (``node-id`` among it)."""
    read_public_key(public_key)
    arguments = ["supernode", "register", str(public_key.expanduser().absolute())]
    if name is not None:
        if not _NAME.fullmatch(name):
            raise SuperLinkError(
                f"SuperNode name {name!r} must be 1-64 letters, digits, '.', '_' or '-'"
            )
        arguments += ["--name", name]
    answer: dict[str, Any] = connection.run(*arguments)
    return answer


def list_supernodes(connection: FlowerConnection) -> list[dict[str, Any]]:
    """The SuperNodes the SuperLink knows, as Flower lists them."""
    answer = connection.run("supernode", "list")
    nodes = answer.get("nodes", [])
    return [node for node in nodes if isinstance(node, dict)]


def unregister_supernode(connection: FlowerConnection, node_id: int) -> dict[str, Any]:
    """Remove SuperNode ``node_id``: the SuperLink refuses it from then on."""
    if node_id < 0:
        raise SuperLinkError(f"SuperNode id {node_id} is not a node id")
    answer: dict[str, Any] = connection.run("supernode", "unregister", str(node_id))
    return answer


def _json_in(output: str) -> dict[str, Any] | None:
    """The JSON object Flower printed (``--format json``), or ``None``."""
    start = output.find("{")
    if start < 0:
        return None
    try:
        value, _end = json.JSONDecoder().raw_decode(output, start)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _toml(text: str) -> str:
    """``text`` as a TOML basic string."""
    return json.dumps(text)
