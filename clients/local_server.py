"""Serve an ASGI app with uvicorn: in the foreground until a signal, or from a thread.

``ForegroundServer`` is uvicorn's server for a command that must clean up after it:
SIGINT and SIGTERM make it shut down and *return*, where uvicorn's own server re-raises
the signal afterwards and so kills the process before its ``finally`` blocks run.
``LocalServer`` (for ``tally demo`` and tests) picks a free port when asked for port 0,
starts uvicorn in a daemon thread, waits until it accepts connections, and stops it on
``stop``. Neither listens anywhere but the host it is given.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Generator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import uvicorn

#: The signals that stop a foreground server (SIGHUP: its terminal went away).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class ForegroundServer(uvicorn.Server):
    """A uvicorn server whose stop signals end ``run()`` normally instead of the process."""

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Handle SIGINT, SIGTERM and SIGHUP as "shut down" while serving, then restore the old
        handlers without re-raising what was caught."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class LocalServer:
    """One uvicorn server in a thread."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(
            app, host=host, port=self.port, log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="local-server", daemon=True)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> LocalServer:
        """Start serving; return once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the server on {self.url} stopped while starting")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} did not start in {timeout:g} s")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
