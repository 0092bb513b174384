"""Witnessing the log: the tlog-witness HTTP service, and the operator asking it to cosign.

The service is checked status by status in-process; the operator's side talks to a real
witness process (``python -m clients.witness_service``) on loopback, set up with the
``tally witness`` commands run as processes.
"""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from clients.witness_service import (
    WitnessHomeError,
    create_witness_app,
    open_witness_home,
    serve_witness,
)
from coordinator.witnessing import (
    WitnessEndpoint,
    WitnessingError,
    WitnessPump,
    request_cosignature,
)
from provenance.keys import SigningKey
from provenance.note import (
    CosignatureSigner,
    CosignatureVerifier,
    NoteSigner,
    parse_note,
    parse_verifier_key,
)
from provenance.storage import make_engine, sqlite_url
from provenance.tlog.checkpoint import open_checkpoint, require_cosignatures
from provenance.tlog.log import TransparencyLog
from provenance.tlog.witness import (
    MAX_REQUEST_BYTES,
    AddCheckpointRequest,
    MemoryWitnessState,
    Witness,
)

REPO = Path(__file__).resolve().parents[2]
WITNESS_NAME = "witness.e2e.test"
# One log key per end-to-end test, all followed by the one witness process.
LOGS = {
    case: NoteSigner(f"{case}.log.test", SigningKey.generate())
    for case in ("fresh", "stale", "fork", "rollback", "badkey", "pump", "thread")
}
UNFOLLOWED = NoteSigner("unfollowed.log.test", SigningKey.generate())


def make_log(
    path: Path, signer: NoteSigner, entries: int, *, prefix: str = "entry"
) -> TransparencyLog:
    log = TransparencyLog.create(make_engine(sqlite_url(path)), signer)
    if entries:
        log.append([f"{prefix}-{n}".encode() for n in range(entries)])
    return log


def grow(log: TransparencyLog, entries: int, *, prefix: str = "more") -> int:
    start = log.size
    log.append([f"{prefix}-{start + n}".encode() for n in range(entries)])
    return log.size


def cosignatures(note: bytes) -> list[str]:
    return [line.name for line in parse_note(note).signatures[1:]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the HTTP service, status by status -------------------------------------------------

APP_WITNESS = CosignatureSigner("witness.app.test", SigningKey.generate())


@dataclass
class App:
    client: TestClient
    log: TransparencyLog
    signer: NoteSigner


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    signer = NoteSigner("app.log.test", SigningKey.generate())
    log = make_log(tmp_path / "log.db", signer, 3)
    witness = Witness(APP_WITNESS, [signer.verifier], MemoryWitnessState())
    with TestClient(create_witness_app(witness)) as client:
        yield App(client, log, signer)


def post(app: App, old: int, note: bytes, proof: tuple[bytes, ...] = ()) -> httpx.Response:
    body = AddCheckpointRequest(old, proof, note).to_bytes()
    response: httpx.Response = app.client.post("/add-checkpoint", content=body)
    return response


def test_200_answers_a_cosignature_line_that_verifies(app: App) -> None:
    response = post(app, 0, app.log.checkpoint())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.startswith(f"\u2014 {APP_WITNESS.name} ")
    assert response.text.count("\n") == 1
    text = parse_note(app.log.checkpoint()).text
    (line,) = parse_note(text.encode() + b"\n" + response.content).signatures
    merged = app.log.add_cosignature(3, line, APP_WITNESS.verifier)
    verified = open_checkpoint(merged, app.signer.verifier, witnesses=[APP_WITNESS.verifier])
    assert require_cosignatures(verified, [APP_WITNESS.verifier], 1)[0][0] == APP_WITNESS.name
    assert app.client.get("/healthz").json()["verifier_key"] == APP_WITNESS.verifier.vkey


def test_409_names_the_witness_size_as_text_x_tlog_size(app: App) -> None:
    assert post(app, 0, app.log.checkpoint()).status_code == 200
    grow(app.log, 2)
    response = post(app, 0, app.log.checkpoint())
    assert response.status_code == 409
    assert response.headers["content-type"] == "text/x.tlog.size"
    assert response.content == b"3\n"
    proof = tuple(app.log.consistency_proof(3, 5))
    assert post(app, 3, app.log.checkpoint(), proof).status_code == 200


def test_404_for_a_log_the_witness_does_not_follow(app: App, tmp_path: Path) -> None:
    other = make_log(tmp_path / "other.db", UNFOLLOWED, 1)
    response = post(app, 0, other.checkpoint())
    assert response.status_code == 404
    assert "unfollowed.log.test" in response.text


def test_403_for_a_checkpoint_not_signed_by_the_log_key(app: App, tmp_path: Path) -> None:
    impostor = NoteSigner(app.signer.name, SigningKey.generate())
    forged = make_log(tmp_path / "forged.db", impostor, 3)
    response = post(app, 0, forged.checkpoint())
    assert response.status_code == 403
    assert "no signature by a trusted key" in response.text


def test_422_for_a_fork_of_the_tree_the_witness_saw(app: App, tmp_path: Path) -> None:
    assert post(app, 0, app.log.checkpoint()).status_code == 200
    fork = make_log(tmp_path / "fork.db", app.signer, 5, prefix="fork")
    response = post(app, 3, fork.checkpoint(), tuple(fork.consistency_proof(3, 5)))
    assert response.status_code == 422
    assert "consistency proof rejected" in response.text
    # The witness still stands by the original history.
    grow(app.log, 2)
    assert post(app, 3, app.log.checkpoint(), tuple(app.log.consistency_proof(3))).is_success


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"hello",
        b"old 1\n\n",
        b"old 01\n\nx\n",
        b"old 1\nnot-base64!\n\ncheckpoint\n",
        b"\xff\xfe\n\n\xff",
        b"old 18446744073709551616\n\nx\n",
    ],
)
def test_400_for_malformed_requests_and_never_5xx(app: App, body: bytes) -> None:
    response = app.client.post("/add-checkpoint", content=body)
    assert response.status_code == 400, response.text


def test_400_when_old_is_beyond_the_checkpoint(app: App) -> None:
    response = post(app, 9, app.log.checkpoint())
    assert response.status_code == 400
    assert "larger than the checkpoint size" in response.text


def test_413_before_reading_an_oversized_body(app: App) -> None:
    declared = app.client.post("/add-checkpoint", content=b"o" * (MAX_REQUEST_BYTES + 1))
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while streaming
        for _ in range(MAX_REQUEST_BYTES // 1024 + 2):
            yield b"o" * 1024

    streamed = app.client.post("/add-checkpoint", content=chunks())
    assert streamed.status_code == 413
    lying = app.client.post(
        "/add-checkpoint", content=b"old 0\n\n", headers={"Content-Length": "12x"}
    )
    assert lying.status_code == 400


# -- the witness home and its commands ---------------------------------------------------


def witness_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``tally witness ARGS`` as a process (``tally`` does not register it yet)."""
    program = "from clients.cli.witness import app; app(prog_name='tally witness')"
    return subprocess.run(
        [sys.executable, "-c", program, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def witness_ok(*args: str) -> dict[str, object]:
    result = witness_cli(*args, "--json")
    assert result.returncode == 0, result.stderr
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


def witness_refused(*args: str) -> str:
    result = witness_cli(*args)
    assert result.returncode != 0, result.stdout
    return " ".join(result.stderr.split())


@dataclass
class Served:
    url: str
    vkey: str
    home: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("witness")
    home = root / "home"
    created = witness_ok("init", "--home", str(home), "--name", WITNESS_NAME)
    vkey_file = root / "fresh.vkey"
    vkey_file.write_text(LOGS["fresh"].verifier.vkey + "\n")
    followed = witness_ok("follow", "--home", str(home), str(vkey_file))
    assert followed["origin"] == "fresh.log.test"
    for case, signer in LOGS.items():
        if case != "fresh":
            witness_ok("follow", "--home", str(home), signer.verifier.vkey)
    port = free_port()
    with open(root / "server.log", "wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "clients.witness_service",
                "--home",
                str(home),
                "--port",
                str(port),
            ],
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (root / "server.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the witness did not start"
            time.sleep(0.05)
        yield Served(url, str(created["verifier_key"]), home)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_init_creates_a_private_home_and_refuses_to_run_twice(served: Served) -> None:
    home = served.home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "witness.key").stat().st_mode) == 0o600
    verifier = parse_verifier_key((home / "witness.vkey").read_text())
    assert isinstance(verifier, CosignatureVerifier)
    assert verifier.vkey == served.vkey
    assert verifier.name == WITNESS_NAME
    line = witness_refused("init", "--home", str(home), "--name", "another")
    assert "already a witness home" in line
    assert parse_verifier_key((home / "witness.vkey").read_text()) == verifier


def test_follow_refuses_witness_keys_and_key_replacement(served: Served) -> None:
    home = served.home
    assert witness_ok("follow", "--home", str(home), LOGS["fresh"].verifier.vkey)["added"] is False
    assert "witness cosignature key" in witness_refused("follow", "--home", str(home), served.vkey)
    replacement = NoteSigner("fresh.log.test", SigningKey.generate()).verifier.vkey
    refusal = witness_refused("follow", "--home", str(home), replacement)
    assert "already follows log 'fresh.log.test' with another key" in refusal
    assert open_witness_home(home).logs["fresh.log.test"] == LOGS["fresh"].verifier
    assert "not of the form" in witness_refused("follow", "--home", str(home), "garbage")


def test_a_witness_following_no_log_is_not_served(tmp_path: Path) -> None:
    witness_ok("init", "--home", str(tmp_path / "w"), "--name", "idle.witness.test")
    with pytest.raises(WitnessHomeError, match="follows no logs"):
        serve_witness(open_witness_home(tmp_path / "w"), port=free_port())


# -- the operator's side against the real witness process --------------------------------


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


def endpoint(served: Served) -> WitnessEndpoint:
    return WitnessEndpoint(WITNESS_NAME, served.vkey, served.url)


def assert_witnessed(note: bytes, signer: NoteSigner, witness: WitnessEndpoint) -> None:
    verified = open_checkpoint(note, signer.verifier, witnesses=[witness.verifier()])
    require_cosignatures(verified, [witness.verifier()], 1)


def test_request_cosignature_stores_a_verified_cosignature(
    served: Served, client: httpx.Client, tmp_path: Path
) -> None:
    signer, witness = LOGS["fresh"], endpoint(served)
    log = make_log(tmp_path / "log.db", signer, 3)
    size, note = request_cosignature(log, witness, known_size=None, client=client)
    assert size == 3
    assert note == log.checkpoint(3)
    assert_witnessed(note, signer, witness)
    grow(log, 4)
    size, note = request_cosignature(log, witness, known_size=3, client=client)
    assert size == 7
    assert_witnessed(log.checkpoint(7), signer, witness)


def test_a_wrong_known_size_is_corrected_from_the_409(
    served: Served, client: httpx.Client, tmp_path: Path
) -> None:
    signer, witness = LOGS["stale"], endpoint(served)
    log = make_log(tmp_path / "log.db", signer, 5)
    assert request_cosignature(log, witness, known_size=None, client=client)[0] == 5
    grow(log, 3)
    size, note = request_cosignature(log, witness, known_size=None, client=client)
    assert size == 8
    assert_witnessed(note, signer, witness)
    grow(log, 1)
    assert request_cosignature(log, witness, known_size=2, client=client)[0] == 9
    assert_witnessed(log.checkpoint(9), signer, witness)


def test_a_fork_signed_with_the_same_key_is_not_cosigned(
    served: Served, client: httpx.Client, tmp_path: Path
) -> None:
    signer, witness = LOGS["fork"], endpoint(served)
    log = make_log(tmp_path / "log.db", signer, 4)
    request_cosignature(log, witness, known_size=None, client=client)
    fork = make_log(tmp_path / "fork.db", signer, 6, prefix="fork")
    with pytest.raises(WitnessingError, match="HTTP 422") as refused:
        request_cosignature(fork, witness, known_size=None, client=client)
    assert refused.value.status == 422
    assert refused.value.witness == WITNESS_NAME
    assert cosignatures(fork.checkpoint()) == []
    grow(log, 2)
    assert request_cosignature(log, witness, known_size=4, client=client)[0] == 6


def test_a_witness_ahead_of_the_log_is_reported(
    served: Served, client: httpx.Client, tmp_path: Path
) -> None:
    signer, witness = LOGS["rollback"], endpoint(served)
    request_cosignature(
        make_log(tmp_path / "a.db", signer, 6), witness, known_size=None, client=client
    )
    shorter = make_log(tmp_path / "b.db", signer, 2)
    with pytest.raises(WitnessingError, match="has cosigned size 6.*only 2 entries"):
        request_cosignature(shorter, witness, known_size=None, client=client)
    assert cosignatures(shorter.checkpoint()) == []


def test_a_cosignature_by_another_key_is_not_stored(
    served: Served, client: httpx.Client, tmp_path: Path
) -> None:
    log = make_log(tmp_path / "log.db", LOGS["badkey"], 2)
    other_key = CosignatureSigner(WITNESS_NAME, SigningKey.generate()).verifier.vkey
    impostor = WitnessEndpoint(WITNESS_NAME, other_key, served.url)
    with pytest.raises(WitnessingError, match="without a cosignature by its configured key"):
        request_cosignature(log, impostor, known_size=None, client=client)
    assert cosignatures(log.checkpoint()) == []


def test_an_unfollowed_log_gets_the_404_reason(
    served: Served, client: httpx.Client, tmp_path: Path
) -> None:
    log = make_log(tmp_path / "log.db", UNFOLLOWED, 1)
    with pytest.raises(WitnessingError, match="HTTP 404.*does not follow") as refused:
        request_cosignature(log, endpoint(served), known_size=None, client=client)
    assert refused.value.status == 404


def test_a_witness_that_never_answers_times_out(client: httpx.Client, tmp_path: Path) -> None:
    log = make_log(tmp_path / "log.db", LOGS["fresh"], 1)
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        signer = CosignatureSigner("silent.test", SigningKey.generate())
        mute = WitnessEndpoint("silent.test", signer.verifier.vkey, f"http://127.0.0.1:{port}")
        with pytest.raises(WitnessingError, match="'silent.test': timed out after 0.3s"):
            request_cosignature(log, mute, known_size=None, client=client, timeout=0.3)


def test_endpoint_configuration_is_checked() -> None:
    with pytest.raises(WitnessingError, match="not a witness cosignature key"):
        WitnessEndpoint("fresh.log.test", LOGS["fresh"].verifier.vkey, "http://127.0.0.1:1")
    vkey = CosignatureSigner("w.test", SigningKey.generate()).verifier.vkey
    with pytest.raises(WitnessingError, match="vkey is for key name 'w.test'"):
        WitnessEndpoint("other.test", vkey, "http://127.0.0.1:1")
    with pytest.raises(WitnessingError, match="not an http"):
        WitnessEndpoint("w.test", vkey, "127.0.0.1:1")


def test_pump_records_an_unreachable_witness_and_serves_the_others(
    served: Served, tmp_path: Path
) -> None:
    log = make_log(tmp_path / "log.db", LOGS["pump"], 3)
    down_key = CosignatureSigner("down.test", SigningKey.generate()).verifier.vkey
    down = WitnessEndpoint("down.test", down_key, f"http://127.0.0.1:{free_port()}")
    pump = WitnessPump(log, [endpoint(served), down], interval=60)
    try:
        pump.run_once()
        up_status, down_status = pump.status()
        assert up_status["witnessed_size"] == 3
        assert up_status["last_error"] is None
        assert datetime.fromisoformat(str(up_status["last_success"])).utcoffset() is not None
        assert down_status["witnessed_size"] is None
        assert down_status["last_success"] is None
        assert "'down.test': cannot reach" in str(down_status["last_error"])
        grow(log, 2)
        pump.run_once()
        assert pump.status()[0]["witnessed_size"] == 5
        assert_witnessed(log.checkpoint(5), LOGS["pump"], endpoint(served))
    finally:
        pump.stop()


def test_pump_thread_cosigns_after_notify(served: Served, tmp_path: Path) -> None:
    log = make_log(tmp_path / "log.db", LOGS["thread"], 1)
    pump = WitnessPump(log, [endpoint(served)], interval=3600)
    pump.start()
    try:
        grow(log, 2)
        pump.notify()
        deadline = time.monotonic() + 60
        while pump.status()[0]["witnessed_size"] != 3:
            assert time.monotonic() < deadline, pump.status()
            time.sleep(0.02)
    finally:
        pump.stop()
    assert_witnessed(log.checkpoint(3), LOGS["thread"], endpoint(served))
