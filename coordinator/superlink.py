"""Start, watch and stop the coordinator's Flower SuperLink (``flower-superlink``), or a
data host's SuperNode.

``tally coordinator up`` runs one SuperLink beside the API: a child process in its own
process group, serving the Fleet, Control and Runtime APIs on one HTTP port. The
supervisor waits until that port accepts connections, restarts the SuperLink with
exponential backoff when it dies unexpectedly (and gives up, state ``failed``, after
``max_restarts`` restarts within ten minutes), and stops it with SIGTERM, then SIGKILL.

The SuperLink starts a detached ``flower-superexec`` helper in a session of its own, so
signalling the SuperLink's process group does not reach it; the supervisor records the
SuperLink's descendants and ends whichever of them outlive it.

The same supervisor runs a data host's ``flower-supernode`` (``tally host up``): given a
``SupervisedCommand`` instead of ``SuperLinkSettings``, it runs that command line in that
environment, waits for the port it names (the SuperNode's Runtime API) and keeps it running
the same way, naming it by its label ("the SuperNode on 127.0.0.1:9101 exited ...").

This module must never start a SuperLink that installs app dependencies at run time
(``--disable-runtime-dependency-installation`` is always passed), never start one with
SuperNode authentication but without TLS, never signal a process it did not start (or that
its SuperLink did not start), and never leave a SuperLink (or SuperNode) or its helpers
running after ``stop()``. It never lets Flower phone home: the update check and telemetry are
off in the child's environment unless the operator set those variables explicitly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

from coordinator.errors import UpstreamError

__all__ = [
    "SuperLinkError",
    "SuperLinkSettings",
    "SuperLinkState",
    "SuperLinkSupervisor",
    "SuperLinkTls",
    "SupervisedCommand",
    "resolve_executable",
    "superlink_command",
]

_log = logging.getLogger(__name__)

SuperLinkState = Literal["stopped", "running", "restarting", "failed"]

#: Restarts are counted over this sliding window when deciding to give up.
RESTART_WINDOW_SECONDS = 600.0
#: The longest pause between an unexpected exit and the next start.
MAX_BACKOFF_SECONDS = 30.0
_POLL_SECONDS = 0.1
_CONNECT_TIMEOUT_SECONDS = 0.5
_TAIL_LINES = 200
_TAIL_LINE_CHARS = 1000
_TAIL_FILE_BYTES = 64 * 1024
_ERROR_TAIL_LINES = 20
_READER_JOIN_SECONDS = 2.0
#: How often a running child's descendants are recorded, so that helpers it starts after it
#: became ready are ended too when it dies.
_HELPER_SCAN_SECONDS = 2.0
#: A flag that makes a Flower process install app dependencies at run time (network).
_INSTALLS_DEPENDENCIES = "--allow-runtime-dependency-installation"
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
#: Environment defaults for the child: no update check, no telemetry, unbuffered output.
_CHILD_ENV_DEFAULTS = {
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_TELEMETRY_ENABLED": "0",
    "PYTHONUNBUFFERED": "1",
}


class SuperLinkError(UpstreamError):
    """The SuperLink cannot be configured, started or kept running.

    The message names the setting, file or port at fault, or ends with the tail of the
    SuperLink's own output when the process itself failed.
    """


@dataclass(frozen=True)
class SuperLinkTls:
    """The SuperLink's TLS material: CA certificate, server certificate and its key (PEM)."""

    ca_certfile: Path
    certfile: Path
    keyfile: Path


@dataclass(frozen=True)
class SuperLinkSettings:
    """How to run the SuperLink.

    ``port`` is the one HTTP port serving the Fleet, Control and Runtime APIs. ``database``
    keeps the SuperLink's state across restarts (in memory when ``None``). ``tls=None``
    runs it with ``--insecure``; ``supernode_auth`` requires ``tls``. ``log_file`` receives
    the child's stdout and stderr (appended); when ``None`` the supervisor keeps the last
    lines in memory. ``executable`` is looked up next to ``sys.executable`` first, then on
    ``PATH``, unless it is a path. ``flwr_home`` is the ``FLWR_HOME`` of the SuperLink and
    of every ServerApp it starts (where Flower installs the app bundles it runs); when
    ``None`` Flower uses ``~/.flwr``.
    """

    host: str = "127.0.0.1"
    port: int = 9093
    database: Path | None = None
    tls: SuperLinkTls | None = None
    supernode_auth: bool = False
    log_file: Path | None = None
    executable: str = "flower-superlink"
    flwr_home: Path | None = None

    def __post_init__(self) -> None:
        if not self.host or self.host != self.host.strip():
            raise SuperLinkError(f"superlink host {self.host!r} is empty or has spaces")
        if not 1 <= self.port <= 65535:
            raise SuperLinkError(f"superlink port {self.port} is not between 1 and 65535")
        if self.supernode_auth and self.tls is None:
            raise SuperLinkError(
                "supernode_auth requires TLS: set the SuperLink's tls "
                "(ca_certfile, certfile, keyfile) or turn supernode_auth off"
            )

    @property
    def address(self) -> str:
        """``host:port`` as SuperNodes and the ``flwr`` CLI take it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class SupervisedCommand:
    """A Flower program other than the SuperLink to supervise, such as a SuperNode.

    ``command`` is the full command line (its program an absolute path); ``env`` the
    child's whole environment (this process's when ``None``); ``host`` and ``port`` where
    the program accepts connections once ready; ``label`` what messages call it
    ("SuperNode"); ``log_file`` as for ``SuperLinkSettings``. A command that would install
    app dependencies at run time is refused.
    """

    label: str
    command: tuple[str, ...]
    host: str
    port: int
    env: Mapping[str, str] | None = None
    log_file: Path | None = None

    def __post_init__(self) -> None:
        if not self.label.strip():
            raise SuperLinkError("a supervised program needs a label, e.g. 'SuperNode'")
        if not self.command or not Path(self.command[0]).is_absolute():
            raise SuperLinkError(
                f"the {self.label} command must start with an absolute program path"
            )
        if _INSTALLS_DEPENDENCIES in self.command:
            raise SuperLinkError(
                f"the {self.label} must not install app dependencies at run time "
                f"({_INSTALLS_DEPENDENCIES})"
            )
        if not self.host or self.host != self.host.strip():
            raise SuperLinkError(f"{self.label} host {self.host!r} is empty or has spaces")
        if not 1 <= self.port <= 65535:
            raise SuperLinkError(f"{self.label} port {self.port} is not between 1 and 65535")

    @property
    def address(self) -> str:
        """``host:port`` where the program is ready (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def resolve_executable(name: str, *, what: str = "superlink executable") -> Path:
    """The program ``name``: itself if it is a path, else next to ``sys.executable`` (the
    same environment as this process), else on ``PATH``. ``what`` names it in errors."""
    if os.sep in name or (os.altsep is not None and os.altsep in name):
        path = Path(name).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path.absolute()
        raise SuperLinkError(f"{what} {path} does not exist or is not executable")
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    raise SuperLinkError(
        f"{what} {name!r} is neither next to {sys.executable} nor on PATH; "
        "install flwr==1.42.* into this environment"
    )


def superlink_command(settings: SuperLinkSettings) -> list[str]:
    """The ``flower-superlink`` command line for ``settings``.

    Always disables run-time dependency installation (it needs the network). Raises
    ``SuperLinkError`` when the executable, a TLS file or the database's directory is
    missing, naming the setting and the path.
    """
    command = [
        str(resolve_executable(settings.executable)),
        "--disable-runtime-dependency-installation",
        "--host",
        settings.host,
        "--port",
        str(settings.port),
    ]
    if settings.tls is None:
        command.append("--insecure")
    else:
        for flag, field, path in (
            ("--ssl-ca-certfile", "ca_certfile", settings.tls.ca_certfile),
            ("--ssl-certfile", "certfile", settings.tls.certfile),
            ("--ssl-keyfile", "keyfile", settings.tls.keyfile),
        ):
            full = path.expanduser().absolute()
            if not full.is_file():
                raise SuperLinkError(
                    f"superlink tls.{field} {full} does not exist or is not a file"
                )
            command += [flag, str(full)]
        if settings.supernode_auth:
            command.append("--enable-supernode-auth")
    if settings.database is not None:
        database = settings.database.expanduser().absolute()
        if not database.parent.is_dir():
            raise SuperLinkError(
                f"superlink database directory {database.parent} does not exist; create it first"
            )
        command += ["--database", str(database)]
    return command


class SuperLinkSupervisor:
    """Runs one SuperLink child process: start, readiness, restart with backoff, stop.

    Use as a context manager (``with SuperLinkSupervisor(settings) as link: ...``) or call
    ``start()`` and ``stop()``. ``max_restarts`` bounds restarts within ten minutes;
    ``ready_timeout`` bounds how long one start may take to open its port. Given a
    ``SupervisedCommand`` instead of ``SuperLinkSettings``, it runs that program (a
    SuperNode) the same way; "SuperLink" in the descriptions below then means that program.
    """

    def __init__(
        self,
        settings: SuperLinkSettings | SupervisedCommand,
        *,
        max_restarts: int = 5,
        ready_timeout: float = 60.0,
    ) -> None:
        if max_restarts < 0:
            raise SuperLinkError(f"max_restarts must be 0 or more, not {max_restarts}")
        if ready_timeout <= 0:
            raise SuperLinkError(f"ready_timeout must be positive, not {ready_timeout}")
        self._settings = settings
        self._label = settings.label if isinstance(settings, SupervisedCommand) else "SuperLink"
        self._max_restarts = max_restarts
        self._ready_timeout = ready_timeout
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._state: SuperLinkState = "stopped"
        self._restarts = 0
        self._restart_times: deque[float] = deque()
        self._child: _Child | None = None
        self._monitor: threading.Thread | None = None

    # -- public state ---------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether a SuperLink started by this supervisor is up and was found ready."""
        child = self._child
        return self._state == "running" and child is not None and child.alive()

    @property
    def state(self) -> SuperLinkState:
        """``stopped``, ``running``, ``restarting`` (after an unexpected exit) or ``failed``."""
        return self._state

    @property
    def restarts(self) -> int:
        """How many times the SuperLink was started again after an unexpected exit."""
        return self._restarts

    @property
    def pid(self) -> int | None:
        """The running SuperLink's process id, or ``None`` when none is running."""
        child = self._child
        return child.process.pid if child is not None and child.alive() else None

    @property
    def address(self) -> str:
        """``host:port`` of the SuperLink's HTTP API (IPv6 hosts in brackets)."""
        return self._settings.address

    @property
    def label(self) -> str:
        """What this supervisor runs, as messages name it: "SuperLink", "SuperNode"."""
        return self._label

    def output_tail(self, lines: int = _ERROR_TAIL_LINES) -> str:
        """The last ``lines`` lines the current (or last) SuperLink process wrote."""
        child = self._child
        return child.tail(lines) if child is not None else ""

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start the SuperLink and return once its port accepts connections.

        Raises ``SuperLinkError`` when already started, when the port is taken, or when the
        SuperLink exits (or stays silent past ``ready_timeout``) before opening its port;
        the message then ends with the tail of its output. A supervisor that was stopped
        (or that failed) may be started again.
        """
        with self._lock:
            if self._state in ("running", "restarting"):
                raise SuperLinkError(f"the {self._label} on {self.address} is already started")
            if self._monitor is not None and self._monitor.is_alive():
                raise SuperLinkError(f"stop() the {self._label} before starting it again")
            command = self._command()
            _check_port_free(self._settings.host, self._settings.port, self._label)
            self._stopping.clear()
            self._restarts = 0
            self._restart_times.clear()
            child = self._spawn(command)
        try:
            self._wait_ready(child)
        except BaseException:  # a failed start, or Ctrl-C while waiting: leave nothing behind
            child.terminate(timeout=_READER_JOIN_SECONDS)
            with self._lock:
                self._state = "stopped"
            raise
        with self._lock:
            self._state = "running"
            self._monitor = threading.Thread(
                target=self._watch,
                name=f"{self._label.lower()}-monitor-{self._settings.port}",
                daemon=True,
            )
            self._monitor.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the SuperLink: SIGTERM to its process group, then SIGKILL after ``timeout``
        seconds; its helpers are ended the same way. Idempotent; joins the monitor thread."""
        self._stopping.set()
        with self._lock:
            child = self._child
        if child is not None:
            child.terminate(timeout=timeout)
        monitor = self._monitor
        if monitor is not None and monitor is not threading.current_thread():
            monitor.join()
        with self._lock:
            self._monitor = None
            if self._state != "failed":
                self._state = "stopped"

    def __enter__(self) -> SuperLinkSupervisor:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------

    def _command(self) -> list[str]:
        """The command line of the next start."""
        if isinstance(self._settings, SupervisedCommand):
            return list(self._settings.command)
        return superlink_command(self._settings)

    def _spawn(self, command: list[str]) -> _Child:
        """Start one SuperLink process (caller holds the lock)."""
        executable_dir = str(Path(command[0]).parent)
        given = self._settings.env if isinstance(self._settings, SupervisedCommand) else None
        env = dict(os.environ if given is None else given)
        # The SuperLink starts ``flower-superexec`` by name: find it in the same environment.
        path = env.get("PATH", "")
        if path.split(os.pathsep)[0] != executable_dir:
            env["PATH"] = os.pathsep.join([executable_dir, path]).rstrip(os.pathsep)
        for key, value in _CHILD_ENV_DEFAULTS.items():
            env.setdefault(key, value)
        flwr_home = getattr(self._settings, "flwr_home", None)
        if flwr_home is not None:
            flwr_home.mkdir(mode=0o700, parents=True, exist_ok=True)
            env["FLWR_HOME"] = str(flwr_home)
        child = _Child.spawn(command, env=env, log_file=self._settings.log_file, label=self._label)
        self._child = child
        _log.info("started the %s on %s (pid %d)", self._label, self.address, child.process.pid)
        return child

    def _wait_ready(self, child: _Child) -> None:
        """Return once ``child`` accepts TCP connections on the port; raise otherwise."""
        deadline = time.monotonic() + self._ready_timeout
        host = _connect_host(self._settings.host)
        while True:
            code = child.process.poll()
            if code is not None:
                raise SuperLinkError(
                    f"the {self._label} on {self.address} exited with code {code} before it "
                    f"opened its port; its last output:\n{child.tail(_ERROR_TAIL_LINES)}"
                )
            if self._stopping.is_set():
                raise SuperLinkError(
                    f"the {self._label} on {self.address} was stopped while starting"
                )
            if _port_accepts(host, self._settings.port) and child.process.poll() is None:
                child.record_helpers()
                return
            if time.monotonic() >= deadline:
                raise SuperLinkError(
                    f"the {self._label} on {self.address} did not open its port within "
                    f"{self._ready_timeout:g} s; its last output:\n{child.tail(_ERROR_TAIL_LINES)}"
                )
            time.sleep(_POLL_SECONDS)

    def _watch(self) -> None:
        """Monitor thread: restart the SuperLink after unexpected exits, with backoff."""
        while True:
            child = self._child
            if child is None:
                return
            code = child.wait_recording_helpers(_HELPER_SCAN_SECONDS, self._stopping)
            if self._stopping.is_set():
                return
            child.end_helpers(timeout=_READER_JOIN_SECONDS)
            child.close()
            _log.warning(
                "the %s on %s exited unexpectedly with code %d; last output:\n%s",
                self._label,
                self.address,
                code,
                child.tail(_ERROR_TAIL_LINES),
            )
            now = time.monotonic()
            while self._restart_times and now - self._restart_times[0] > RESTART_WINDOW_SECONDS:
                self._restart_times.popleft()
            if len(self._restart_times) >= self._max_restarts:
                with self._lock:
                    self._state = "failed"
                _log.error(
                    "the %s on %s exited %d times within %g s; giving up",
                    self._label,
                    self.address,
                    len(self._restart_times) + 1,
                    RESTART_WINDOW_SECONDS,
                )
                return
            with self._lock:
                self._state = "restarting"
            delay = min(2.0 ** len(self._restart_times), MAX_BACKOFF_SECONDS)
            if self._stopping.wait(delay):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self._restart_times.append(time.monotonic())
                self._restarts += 1
                try:
                    command = self._command()
                    new_child = self._spawn(command)
                except (SuperLinkError, OSError) as error:
                    self._state = "failed"
                    _log.error("cannot restart the %s on %s: %s", self._label, self.address, error)
                    return
            try:
                self._wait_ready(new_child)
            except SuperLinkError as error:
                if self._stopping.is_set():
                    return
                _log.warning("restarting the %s failed: %s", self._label, error)
                new_child.terminate(timeout=_READER_JOIN_SECONDS)
                continue
            with self._lock:
                if not self._stopping.is_set():
                    self._state = "running"


class _Child:
    """One supervised process (a SuperLink or a SuperNode), its output, and its helpers."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        log_handle: IO[bytes] | None,
        log_offset: int,
        log_file: Path | None,
        label: str = "SuperLink",
    ) -> None:
        self.process = process
        self.label = label
        self._log_handle = log_handle
        self._log_offset = log_offset
        self._log_file = log_file
        self._lines: deque[str] = deque(maxlen=_TAIL_LINES)
        self._helpers: set[tuple[int, int]] = set()
        # The monitor thread records helpers while another thread may be ending them.
        self._helpers_lock = threading.Lock()
        self._reader: threading.Thread | None = None
        if process.stdout is not None:
            self._reader = threading.Thread(
                target=self._read,
                args=(process.stdout,),
                name=f"{label.lower()}-output",
                daemon=True,
            )
            self._reader.start()

    @classmethod
    def spawn(
        cls,
        command: list[str],
        *,
        env: dict[str, str],
        log_file: Path | None,
        label: str = "SuperLink",
    ) -> _Child:
        log_handle: IO[bytes] | None = None
        offset = 0
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            log_handle = os.fdopen(fd, "ab")
            offset = log_handle.seek(0, os.SEEK_END)
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_handle if log_handle is not None else subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as error:
            if log_handle is not None:
                log_handle.close()
            raise SuperLinkError(f"cannot start {command[0]}: {error.strerror}") from error
        return cls(process, log_handle, offset, log_file, label)

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_recording_helpers(self, interval: float, stopping: threading.Event) -> int:
        """Wait for the process to exit, recording its helpers every ``interval`` seconds
        (a helper started after readiness is then ended too); its exit code."""
        while True:
            try:
                return self.process.wait(timeout=interval)
            except subprocess.TimeoutExpired:
                if not stopping.is_set():
                    self.record_helpers()

    def _read(self, stream: IO[bytes]) -> None:
        with contextlib.suppress(OSError, ValueError):
            for raw in stream:
                line = _ANSI_ESCAPE.sub("", raw.decode("utf-8", "replace")).rstrip()
                self._lines.append(line[:_TAIL_LINE_CHARS])

    def tail(self, lines: int) -> str:
        """The last ``lines`` lines of this process's output, colour codes removed."""
        if self._log_file is None:
            if self._reader is not None and not self.alive():
                self._reader.join(_READER_JOIN_SECONDS)
            return "\n".join(list(self._lines)[-lines:])
        try:
            with self._log_file.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(self._log_offset, size - _TAIL_FILE_BYTES))
                text = handle.read().decode("utf-8", "replace")
        except OSError as error:
            return f"(cannot read {self._log_file}: {error.strerror})"
        return "\n".join(_ANSI_ESCAPE.sub("", text).splitlines()[-lines:])

    def record_helpers(self) -> None:
        """Remember the processes this SuperLink started (``flower-superexec``)."""
        found = set(_descendants(self.process.pid))
        with self._helpers_lock:
            self._helpers |= found

    def terminate(self, *, timeout: float) -> None:
        """SIGTERM the process group, SIGKILL it after ``timeout``, then end the helpers."""
        if self.alive():
            self.record_helpers()
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _log.warning(
                    "the %s (pid %d) ignored SIGTERM; killing it", self.label, self.process.pid
                )
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.end_helpers(timeout=timeout)
        self.close()

    def end_helpers(self, *, timeout: float) -> None:
        """Ask the recorded helpers that are still alive to stop; kill those that do not."""
        with self._helpers_lock:
            recorded = set(self._helpers)
            self._helpers.clear()
        remaining = {helper for helper in recorded if _is_alive(*helper)}
        for pid, _ in remaining:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS / 2)
            remaining = {helper for helper in remaining if _is_alive(*helper)}
        for pid, start in remaining:
            if _is_alive(pid, start):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.join(_READER_JOIN_SECONDS)
        if self.process.stdout is not None:
            with contextlib.suppress(OSError):
                self.process.stdout.close()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, parent pid, start time)`` of ``pid`` from ``/proc``, or ``None``."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    if len(fields) < 20:
        return None
    return fields[0], int(fields[1]), int(fields[19])


def _descendants(pid: int) -> list[tuple[int, int]]:
    """``(pid, start time)`` of every live descendant of ``pid`` (empty without ``/proc``)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _proc_stat(int(entry.name))
        if stat is not None and stat[0] != "Z":
            children.setdefault(stat[1], []).append((int(entry.name), stat[2]))
    found: list[tuple[int, int]] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child[0])
    return found


def _is_alive(pid: int, start: int) -> bool:
    """Whether ``pid`` is still the same (non-zombie) process that started at ``start``."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z" and stat[2] == start


def _connect_host(host: str) -> str:
    """Where to connect to reach a server bound to ``host`` (wildcards mean loopback)."""
    if host == "0.0.0.0":  # noqa: S104 - comparing, not binding
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT_SECONDS):
            return True
    except OSError:
        return False


def _check_port_free(host: str, port: int, label: str = "SuperLink") -> None:
    """Raise ``SuperLinkError`` unless ``port`` on ``host`` can be bound now."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise SuperLinkError(f"{label.lower()} host {host!r} does not resolve: {error}") from error
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        # As uvicorn does: connections lingering in TIME_WAIT do not make the port busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise SuperLinkError(
                f"port {port} on {host} is in use; stop what listens there or choose "
                f"another {label} port"
            ) from error
