"""The witness process: its home directory and the C2SP tlog-witness HTTP API.

A witness cosigns other logs' checkpoints, and only checkpoints that extend what it has
already cosigned (``provenance.tlog.witness.Witness`` holds that rule). This module gives
it a home on disk and serves ``POST /add-checkpoint`` (c2sp.org/tlog-witness) and
``GET /healthz``. Home layout (created by ``init_witness_home``, mode 0700)::

    witness.key    the witness's Ed25519 private key, mode 0600
    witness.vkey   its cosignature (tlog-cosignature/v1) verifier key line: name+id+key
    logs.json      the logs it follows: {"version": 1, "logs": {origin: log verifier key}}
    state.json     the latest size and root it cosigned per log (written by ``serve``)

The routes only parse, call the witness, and map each refusal to its status code. This
module must never answer 5xx to bad input, read a request body past
``MAX_REQUEST_BYTES``, cosign outside the witness's lock, or overwrite a key or a home.

Run it with ``tally witness serve --home DIR`` or ``python -m clients.witness_service --home
DIR [--host H] [--port N]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from coordinator.witnessing import TLOG_SIZE_MEDIA_TYPE
from provenance.errors import KeyFormatError, NoteError
from provenance.keys import SigningKey, load_signing_key, write_signing_key
from provenance.note import (
    CosignatureSigner,
    CosignatureVerifier,
    Ed25519NoteVerifier,
    check_key_name,
    parse_verifier_key,
)
from provenance.tlog.witness import (
    MAX_REQUEST_BYTES,
    AddCheckpointRequest,
    ConsistencyRejected,
    JsonFileWitnessState,
    MalformedRequest,
    SignatureRejected,
    StaleSize,
    UnknownLog,
    Witness,
    WitnessError,
)

KEY_FILE = "witness.key"
VKEY_FILE = "witness.vkey"
LOGS_FILE = "logs.json"
STATE_FILE = "state.json"
LOGS_VERSION = 1
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8480
_MAX_HOME_FILE_BYTES = 1024 * 1024

_log = logging.getLogger(__name__)


class WitnessHomeError(Exception):
    """A witness home is missing, malformed, unsafe, or would be overwritten."""


# -- the HTTP API ------------------------------------------------------------------------


def _text(status: int, message: str, **headers: str) -> PlainTextResponse:
    return PlainTextResponse(message.rstrip("\n") + "\n", status_code=status, headers=headers)


def _too_large(what: str) -> PlainTextResponse:
    return _text(
        413,
        f"{what} is over the {MAX_REQUEST_BYTES}-byte limit of this witness",
        Connection="close",
    )


def create_witness_app(witness: Witness) -> FastAPI:
    """A FastAPI app serving ``witness`` over the C2SP tlog-witness protocol.

    ``POST /add-checkpoint`` answers 200 with the cosignature line (text/plain), or 400
    (malformed), 403 (log signature), 404 (unknown log), 409 (``old`` is not the witness's
    latest size; body: that size, ``text/x.tlog.size``), 413 (body over
    ``MAX_REQUEST_BYTES``) or 422 (consistency proof). ``GET /healthz`` answers 200 with
    the witness's name and verifier key. One add-checkpoint runs at a time.
    """
    app = FastAPI(title="Tallystick witness", docs_url=None, redoc_url=None, openapi_url=None)
    lock = threading.Lock()

    def cosign(body: bytes) -> Response:
        try:
            request = AddCheckpointRequest.parse(body)
            with lock:
                signature = witness.add_checkpoint(request)
        except StaleSize as exc:
            # Exactly this media type, without a charset parameter (c2sp.org/tlog-witness).
            return Response(
                f"{exc.known_size}\n".encode("ascii"),
                status_code=409,
                headers={"Content-Type": TLOG_SIZE_MEDIA_TYPE},
            )
        except MalformedRequest as exc:
            return _text(400, str(exc))
        except SignatureRejected as exc:
            return _text(403, str(exc))
        except UnknownLog as exc:
            return _text(404, str(exc))
        except ConsistencyRejected as exc:
            return _text(422, str(exc))
        except WitnessError:
            # Not the request's fault: the witness's own state could not be used.
            _log.exception("witness state error")
            return _text(500, "the witness cannot read or update its state; see its log")
        return PlainTextResponse(signature.to_line(), status_code=200)

    @app.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None:
            declared = declared.strip()
            if not declared.isascii() or not declared.isdigit() or len(declared) > 20:
                return _text(400, f"Content-Length {declared[:24]!r} is not a decimal number")
            if int(declared) > MAX_REQUEST_BYTES:
                return _too_large(f"request body of {declared} bytes")
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_REQUEST_BYTES:
                    return _too_large("request body")
        except ClientDisconnect:
            return _text(400, "the client went away before sending the whole body")
        return await run_in_threadpool(cosign, bytes(body))

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        return JSONResponse(
            {
                "status": "ok",
                "name": witness.signer.name,
                "verifier_key": witness.signer.verifier.vkey,
            }
        )

    return app


# -- the home directory ------------------------------------------------------------------


def _read_small(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_HOME_FILE_BYTES + 1)
    except FileNotFoundError as exc:
        raise WitnessHomeError(f"{what} {path} is missing") from exc
    except OSError as exc:
        raise WitnessHomeError(f"cannot read {what} {path}: {exc.strerror}") from exc
    if len(data) > _MAX_HOME_FILE_BYTES:
        raise WitnessHomeError(f"{what} {path} is over {_MAX_HOME_FILE_BYTES} bytes")
    return data


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def _logs_json(logs: dict[str, Ed25519NoteVerifier]) -> bytes:
    document = {
        "version": LOGS_VERSION,
        "logs": {origin: logs[origin].vkey for origin in sorted(logs)},
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


def parse_log_key(vkey: str) -> Ed25519NoteVerifier:
    """Parse a log's verifier key string; refuse a witness (cosignature) key."""
    try:
        verifier = parse_verifier_key(vkey)
    except NoteError as exc:
        raise WitnessHomeError(f"log verifier key: {exc}") from exc
    if not isinstance(verifier, Ed25519NoteVerifier):
        raise WitnessHomeError(
            f"verifier key {verifier.name!r} is a witness cosignature key; "
            "give the log's own key (type Ed25519, as in its .vkey file)"
        )
    return verifier


@dataclass(frozen=True)
class WitnessHome:
    """An initialised witness home. Create one with ``init_witness_home``; open one with
    ``open_witness_home``."""

    root: Path
    verifier: CosignatureVerifier
    logs: dict[str, Ed25519NoteVerifier]

    @property
    def name(self) -> str:
        """The witness's key name (on its cosignature lines)."""
        return self.verifier.name

    @property
    def key_path(self) -> Path:
        """The witness's private key."""
        return self.root / KEY_FILE

    @property
    def vkey_path(self) -> Path:
        """The witness's cosignature verifier key line."""
        return self.root / VKEY_FILE

    @property
    def logs_path(self) -> Path:
        """The logs this witness follows."""
        return self.root / LOGS_FILE

    @property
    def state_path(self) -> Path:
        """The latest cosigned size and root per log."""
        return self.root / STATE_FILE

    def signer(self) -> CosignatureSigner:
        """Load the witness key, refusing unsafe permissions or a key that is not this
        home's."""
        try:
            key = load_signing_key(self.key_path)
        except KeyFormatError as exc:
            raise WitnessHomeError(f"witness key: {exc}") from exc
        signer = CosignatureSigner(self.name, key)
        if signer.verifier != self.verifier:
            raise WitnessHomeError(
                f"witness key {self.key_path} does not match {self.vkey_path}; "
                "one of them was replaced"
            )
        return signer

    def witness(self) -> Witness:
        """The witness, with its state in ``state.json``."""
        try:
            return Witness(self.signer(), self.logs, JsonFileWitnessState(self.state_path))
        except WitnessError as exc:
            raise WitnessHomeError(f"{self.logs_path}: {exc}") from exc


def init_witness_home(root: Path, name: str) -> WitnessHome:
    """Create a witness home at ``root``: key (0600), ``witness.vkey``, then an empty
    ``logs.json``.

    ``root`` may exist only as an empty directory. Raises ``WitnessHomeError`` without
    leaving anything behind if a step fails.
    """
    try:
        check_key_name(name)
    except NoteError as exc:
        raise WitnessHomeError(f"witness name: {exc}") from exc
    root = root.expanduser().absolute()
    if (root / LOGS_FILE).exists():
        raise WitnessHomeError(f"{root} is already a witness home ({LOGS_FILE} exists)")
    created_root = not root.exists()
    if not created_root and (not root.is_dir() or any(root.iterdir())):
        raise WitnessHomeError(
            f"{root} exists and is not an empty directory; choose another --home"
        )
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        root.chmod(0o700)
        key = SigningKey.generate()
        write_signing_key(key, root / KEY_FILE)
        signer = CosignatureSigner(name, key)
        _write_atomically(root / VKEY_FILE, (signer.verifier.vkey + "\n").encode("ascii"))
        (root / VKEY_FILE).chmod(0o644)
        _write_atomically(root / LOGS_FILE, _logs_json({}))
    except BaseException:
        if created_root:
            shutil.rmtree(root, ignore_errors=True)
        else:
            for child in root.iterdir():
                child.unlink(missing_ok=True)
        raise
    return WitnessHome(root, signer.verifier, {})


def open_witness_home(root: Path) -> WitnessHome:
    """Open the witness home at ``root``, checking its files and permissions."""
    root = root.expanduser().absolute()
    hint = f"create one with: tally witness init --home {root} --name NAME"
    try:
        status = root.stat()
    except FileNotFoundError as exc:
        raise WitnessHomeError(f"no witness home at {root}; {hint}") from exc
    if not (root / LOGS_FILE).exists():
        raise WitnessHomeError(f"{root} is not a witness home ({LOGS_FILE} is missing); {hint}")
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise WitnessHomeError(
            f"{root} is writable by group or others (mode {stat.S_IMODE(status.st_mode):04o}); "
            f"run: chmod 700 {root}"
        )
    vkey_path = root / VKEY_FILE
    try:
        verifier = parse_verifier_key(_read_small(vkey_path, "witness key").decode("ascii"))
    except (NoteError, UnicodeDecodeError) as exc:
        raise WitnessHomeError(f"{vkey_path}: not a verifier key line ({exc})") from exc
    if not isinstance(verifier, CosignatureVerifier):
        raise WitnessHomeError(f"{vkey_path}: holds an Ed25519 key, not a cosignature key")
    logs_path = root / LOGS_FILE
    try:
        document = json.loads(_read_small(logs_path, "log list"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WitnessHomeError(f"{logs_path}: not valid JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("version") != LOGS_VERSION:
        raise WitnessHomeError(f"{logs_path}: must be a JSON object with version {LOGS_VERSION}")
    entries = document.get("logs")
    if not isinstance(entries, dict):
        raise WitnessHomeError(f"{logs_path}: field 'logs' must be an object origin -> key")
    logs: dict[str, Ed25519NoteVerifier] = {}
    for origin, vkey in entries.items():
        if not isinstance(vkey, str):
            raise WitnessHomeError(f"{logs_path}: the key of log {origin!r} must be a string")
        try:
            logs[origin] = parse_log_key(vkey)
        except WitnessHomeError as exc:
            raise WitnessHomeError(f"{logs_path}: log {origin!r}: {exc}") from exc
    return WitnessHome(root, verifier, logs)


def follow_log(root: Path, vkey: str) -> tuple[WitnessHome, Ed25519NoteVerifier, bool]:
    """Add the log with verifier key ``vkey`` (origin = the key's name) to ``logs.json``.

    Returns the updated home, the log key, and whether it was added (False: the home
    already follows this origin with this very key). Refuses a different key for an
    origin already followed: replacing a log's key would let a forked log be cosigned.
    A running ``serve`` picks the change up only when restarted.
    """
    home = open_witness_home(root)
    verifier = parse_log_key(vkey)
    if verifier.name == home.name:
        raise WitnessHomeError(f"log key name {verifier.name!r} is this witness's own name")
    current = home.logs.get(verifier.name)
    if current is not None:
        if current == verifier:
            return home, verifier, False
        raise WitnessHomeError(
            f"this witness already follows log {verifier.name!r} with another key "
            f"({current.vkey}); a log's key is never replaced in place"
        )
    logs = {**home.logs, verifier.name: verifier}
    _write_atomically(home.logs_path, _logs_json(logs))
    return WitnessHome(home.root, home.verifier, logs), verifier, True


def serve_witness(
    home: WitnessHome,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve ``home``'s witness on ``host``:``port`` until interrupted.

    Raises ``WitnessHomeError`` before listening when the home follows no log or its key
    cannot be loaded; ``announce`` then gets one line saying what is being served.
    """
    if not home.logs:
        raise WitnessHomeError(
            f"witness {home.name!r} follows no logs; add one with: "
            f"tally witness follow --home {home.root} LOG_VKEY"
        )
    app = create_witness_app(home.witness())
    if announce is not None:
        announce(
            f"witness {home.name} following {len(home.logs)} log(s) "
            f"on http://{host}:{port}/add-checkpoint"
        )
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m clients.witness_service --home DIR [--host H] [--port N]``."""
    parser = argparse.ArgumentParser(
        prog="python -m clients.witness_service", description="Serve a C2SP witness."
    )
    parser.add_argument("--home", type=Path, required=True, help="the witness home directory")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (default 8480)")
    arguments = parser.parse_args(argv)
    try:
        serve_witness(open_witness_home(arguments.home), host=arguments.host, port=arguments.port)
    except WitnessHomeError as exc:
        parser.exit(1, f"error: {exc}\n")


if __name__ == "__main__":  # pragma: no cover
    main()
