"""Getting the log's checkpoints cosigned by its witnesses (the log operator's side).

For each configured witness the operator submits the log's latest checkpoint with a
consistency proof from the size the witness last cosigned (c2sp.org/tlog-witness
``add-checkpoint``), checks the returned cosignature against the witness's configured
key, and adds it to the stored checkpoint note. ``WitnessPump`` does that in the
background after every append, so that proofs handed out carry fresh cosignatures.

This module must never add a cosignature it has not verified against the configured
witness key, read an unbounded answer from a witness, or let one witness's failure stop
the others or the log: failures are recorded and reported, never raised from the pump.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from coordinator.errors import UpstreamError
from provenance.encoding import parse_uint64
from provenance.errors import NoteError, ProofError, ProvenanceError
from provenance.note import CosignatureVerifier, NoteSignature, parse_note, parse_verifier_key
from provenance.tlog.log import TransparencyLog
from provenance.tlog.witness import AddCheckpointRequest

#: Media type of a witness's 409 answer (its latest size for the log).
TLOG_SIZE_MEDIA_TYPE = "text/x.tlog.size"
#: Largest 200 answer read from a witness (cosignature lines).
MAX_COSIGNATURE_RESPONSE_BYTES = 64 * 1024
#: Largest 409 answer read from a witness (one decimal line).
MAX_SIZE_RESPONSE_BYTES = 64
#: How much of an error answer is quoted in a ``WitnessingError``.
_MAX_ERROR_QUOTE_BYTES = 512


class WitnessingError(UpstreamError):
    """A witness did not cosign the log's checkpoint, or is configured wrongly.

    ``witness`` names the witness; ``status`` is the HTTP status it answered, if any.
    (To be rebased on ``coordinator.errors.CoordinatorError``.)
    """

    def __init__(self, witness: str, reason: str, *, status: int | None = None) -> None:
        super().__init__(f"witness {witness!r}: {reason}")
        self.witness = witness
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class WitnessEndpoint:
    """A witness the log asks for cosignatures: its key name, verifier key and base URL.

    The request goes to ``url + "/add-checkpoint"``.
    """

    name: str
    vkey: str
    url: str

    def __post_init__(self) -> None:
        self.verifier()
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise WitnessingError(
                self.name, f"url {self.url!r} is not an http:// or https:// base URL"
            )

    def verifier(self) -> CosignatureVerifier:
        """The witness's cosignature verifier, parsed from ``vkey``."""
        try:
            verifier = parse_verifier_key(self.vkey)
        except NoteError as exc:
            raise WitnessingError(self.name, f"vkey: {exc}") from exc
        if not isinstance(verifier, CosignatureVerifier):
            raise WitnessingError(
                self.name, "vkey is an Ed25519 note key, not a witness cosignature key"
            )
        if verifier.name != self.name:
            raise WitnessingError(self.name, f"vkey is for key name {verifier.name!r}")
        return verifier

    @property
    def add_checkpoint_url(self) -> str:
        """Where add-checkpoint requests go."""
        return self.url.rstrip("/") + "/add-checkpoint"


@dataclass(frozen=True)
class _Answer:
    status: int
    media_type: str
    body: bytes


def _read_bounded(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """Read at most ``limit`` bytes of ``response``; say whether there was more."""
    data = bytearray()
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) > limit:
            return bytes(data[:limit]), True
    return bytes(data), False


def _post(endpoint: WitnessEndpoint, body: bytes, client: httpx.Client, timeout: float) -> _Answer:
    try:
        with client.stream(
            "POST",
            endpoint.add_checkpoint_url,
            content=body,
            headers={"Content-Type": "text/plain; charset=utf-8"},
            timeout=timeout,
        ) as response:
            status = response.status_code
            if status == 200:
                limit = MAX_COSIGNATURE_RESPONSE_BYTES
            elif status == 409:
                limit = MAX_SIZE_RESPONSE_BYTES
            else:
                limit = _MAX_ERROR_QUOTE_BYTES
            data, more = _read_bounded(response, limit)
            media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    except httpx.TimeoutException as exc:
        raise WitnessingError(
            endpoint.name, f"timed out after {timeout:g}s ({endpoint.add_checkpoint_url})"
        ) from exc
    except httpx.HTTPError as exc:
        raise WitnessingError(
            endpoint.name, f"cannot reach {endpoint.add_checkpoint_url}: {exc}"
        ) from exc
    if more and status in (200, 409):
        raise WitnessingError(
            endpoint.name, f"answered {status} with a body over {limit} bytes", status=status
        )
    return _Answer(status, media_type, data)


def _quote(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    text = "".join(char if char.isprintable() else " " for char in text)
    return text[:200] or "(empty body)"


def _witness_size(endpoint: WitnessEndpoint, answer: _Answer) -> int:
    """The size in a 409 answer."""
    if answer.media_type != TLOG_SIZE_MEDIA_TYPE:
        raise WitnessingError(
            endpoint.name,
            f"answered 409 with Content-Type {answer.media_type or '(none)'!r}, "
            f"not {TLOG_SIZE_MEDIA_TYPE}: {_quote(answer.body)}",
            status=409,
        )
    try:
        line = answer.body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise WitnessingError(
            endpoint.name, "answered 409 with a non-ASCII size", status=409
        ) from exc
    if not line.endswith("\n"):
        raise WitnessingError(
            endpoint.name, "answered 409 with a size that does not end in a newline", status=409
        )
    try:
        return parse_uint64(line[:-1], what="size in the 409 answer", error=NoteError)
    except NoteError as exc:
        raise WitnessingError(endpoint.name, str(exc), status=409) from exc


def _cosignature(
    endpoint: WitnessEndpoint, verifier: CosignatureVerifier, text: str, body: bytes
) -> NoteSignature:
    """The line in a 200 answer signed by the configured witness key (syntax only)."""
    try:
        lines = parse_note(text.encode("utf-8") + b"\n" + body).signatures
    except NoteError as exc:
        raise WitnessingError(
            endpoint.name, f"answered 200 with malformed cosignature lines: {exc}", status=200
        ) from exc
    for line in lines:
        if (line.name, line.key_id) == (verifier.name, verifier.key_id):
            return line
    present = ", ".join(f"{line.name}+{line.key_id.hex()}" for line in lines)
    raise WitnessingError(
        endpoint.name,
        f"answered 200 without a cosignature by its configured key "
        f"{verifier.name}+{verifier.key_id.hex()} (got: {present})",
        status=200,
    )


def _request_body(log: TransparencyLog, old: int, size: int, note: bytes) -> bytes:
    proof = log.consistency_proof(old, size) if 0 < old < size else []
    return AddCheckpointRequest(old, tuple(proof), note).to_bytes()


def request_cosignature(
    log: TransparencyLog,
    endpoint: WitnessEndpoint,
    *,
    known_size: int | None,
    client: httpx.Client,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    """Have ``endpoint`` cosign the log's latest checkpoint; return (size, cosigned note).

    ``known_size`` is the size the witness is believed to have cosigned last (None: not
    known, sent as 0). When the witness answers 409 with its real size, the request is
    retried once from that size. The cosignature is verified against ``endpoint``'s key
    and stored with the checkpoint. Raises ``WitnessingError`` (naming the witness and
    the HTTP status, timeout or bad signature) when the checkpoint was not cosigned.
    """
    verifier = endpoint.verifier()
    try:
        size = log.size
        note = log.checkpoint(size)
        text = parse_note(note).text
        old = known_size or 0
        if old > size:
            raise WitnessingError(
                endpoint.name,
                f"known size {old} is larger than the log's size {size}; "
                "pass the size the witness last cosigned",
            )
        answer = _post(endpoint, _request_body(log, old, size, note), client, timeout)
        if answer.status == 409:
            witnessed = _witness_size(endpoint, answer)
            if witnessed > size:
                raise WitnessingError(
                    endpoint.name,
                    f"it has cosigned size {witnessed} of log {log.origin!r}, but the log has "
                    f"only {size} entries: the log lost entries or another log signs with "
                    "its key",
                    status=409,
                )
            answer = _post(endpoint, _request_body(log, witnessed, size, note), client, timeout)
        if answer.status != 200:
            raise WitnessingError(
                endpoint.name,
                f"answered HTTP {answer.status}: {_quote(answer.body)}",
                status=answer.status,
            )
        signature = _cosignature(endpoint, verifier, text, answer.body)
        merged = log.add_cosignature(size, signature, verifier)
    except ProofError as exc:
        raise WitnessingError(endpoint.name, f"cannot build a consistency proof: {exc}") from exc
    except WitnessingError:
        raise
    except ProvenanceError as exc:
        # add_cosignature refuses a cosignature that does not verify.
        raise WitnessingError(endpoint.name, f"cosignature rejected: {exc}", status=200) from exc
    return size, merged


@dataclass
class _WitnessStatus:
    witnessed_size: int | None = None
    last_error: str | None = None
    last_success: datetime | None = None


class WitnessPump:
    """A background thread that keeps every configured witness cosigning the latest
    checkpoint.

    It makes a pass over all witnesses every ``interval`` seconds, and at once after
    ``notify``. A witness already at the log's size is skipped. A stopped pump cannot be
    started again.
    """

    def __init__(
        self,
        log: TransparencyLog,
        endpoints: Sequence[WitnessEndpoint],
        *,
        interval: float = 2.0,
        timeout: float = 5.0,
    ) -> None:
        """Pump ``log``'s checkpoints to ``endpoints`` (names must be distinct)."""
        names = [endpoint.name for endpoint in endpoints]
        for name in names:
            if names.count(name) > 1:
                raise WitnessingError(name, "is configured twice")
        if interval <= 0 or timeout <= 0:
            raise ValueError("interval and timeout must be positive numbers of seconds")
        self._log = log
        self._endpoints = tuple(endpoints)
        self._interval = interval
        self._timeout = timeout
        self._client = httpx.Client(follow_redirects=False)
        self._status = {endpoint.name: _WitnessStatus() for endpoint in self._endpoints}
        self._status_lock = threading.Lock()
        self._pass_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the background thread (no-op when it is running)."""
        if self._stopping.is_set():
            raise RuntimeError("this witness pump was stopped; create a new one")
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="witness-pump", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (after its current request) and close the HTTP client."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        with self._pass_lock:
            self._client.close()

    def notify(self) -> None:
        """Ask for a pass now (call after each append)."""
        self._wake.set()

    def status(self) -> list[dict[str, object]]:
        """Per witness: name, url, witnessed_size, last_error, last_success (ISO 8601 UTC)."""
        with self._status_lock:
            return [
                {
                    "name": endpoint.name,
                    "url": endpoint.url,
                    "witnessed_size": self._status[endpoint.name].witnessed_size,
                    "last_error": self._status[endpoint.name].last_error,
                    "last_success": (
                        success.isoformat()
                        if (success := self._status[endpoint.name].last_success)
                        else None
                    ),
                }
                for endpoint in self._endpoints
            ]

    def run_once(self) -> None:
        """One pass over every witness; failures are recorded in ``status``, never raised."""
        with self._pass_lock:
            if self._client.is_closed:
                return
            for endpoint in self._endpoints:
                if self._stopping.is_set() and self._thread is not None:
                    return
                self._pump(endpoint)

    def _pump(self, endpoint: WitnessEndpoint) -> None:
        with self._status_lock:
            known = self._status[endpoint.name].witnessed_size
        try:
            if known is not None and known == self._log.size:
                return
            size, _ = request_cosignature(
                self._log,
                endpoint,
                known_size=known,
                client=self._client,
                timeout=self._timeout,
            )
        except Exception as exc:  # a pump records every failure and carries on
            message = (
                str(exc)
                if isinstance(exc, WitnessingError)
                else (f"witness {endpoint.name!r}: {exc.__class__.__name__}: {exc}")
            )
            with self._status_lock:
                self._status[endpoint.name].last_error = message
            return
        with self._status_lock:
            entry = self._status[endpoint.name]
            entry.witnessed_size = size
            entry.last_error = None
            entry.last_success = datetime.now(UTC)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.run_once()
            self._wake.wait(self._interval)
            self._wake.clear()
