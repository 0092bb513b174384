"""Interoperability with Go's reference implementations (golang.org/x/mod/sumdb).

Go's ``note`` package verifies our signed checkpoints and signs notes we verify; Go's
``tlog`` package checks our RFC 9162 inclusion and consistency proofs. The Go helper is
built from ``gocheck/main.go`` against Debian's golang-golang-x-mod-dev sources;
``.ci/run`` installs them. Without a Go toolchain these tests are skipped, loudly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from provenance.errors import NoteError
from provenance.keys import SigningKey
from provenance.merkle import MerkleTree, leaf_hash
from provenance.note import CosignatureSigner, NoteSigner, add_signatures, parse_verifier_key
from provenance.storage import make_engine, sqlite_url
from provenance.tlog.checkpoint import Checkpoint, open_checkpoint
from provenance.tlog.log import TransparencyLog

GOPATH = Path("/usr/share/gocode")
SOURCE = Path(__file__).parent / "gocheck" / "main.go"


@pytest.fixture(scope="module")
def gocheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None or not (GOPATH / "src/golang.org/x/mod/sumdb/note").is_dir():
        pytest.skip("Go and golang.org/x/mod sources are not installed (see .ci/run)")
    build = tmp_path_factory.mktemp("gocheck")
    shutil.copy(SOURCE, build / "main.go")
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOCACHE": str(build / "cache"),
    }
    subprocess.run(
        [go, "build", "-o", str(build / "gocheck"), "main.go"],
        cwd=build,
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    return build / "gocheck"


def run(binary: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(binary), *args], input=stdin, capture_output=True, timeout=60, check=False
    )


SIGNER = NoteSigner("interop.tallystick.local/log", SigningKey.generate())


@pytest.fixture
def log(tmp_path: Path) -> TransparencyLog:
    signer = SIGNER
    transparency_log = TransparencyLog.create(make_engine(sqlite_url(tmp_path / "log.db")), signer)
    for batch in (1, 6, 20, 50):
        transparency_log.append(
            [f"entry {transparency_log.size + n}".encode() for n in range(batch)]
        )
    return transparency_log


def test_go_verifies_our_checkpoints(gocheck: Path, log: TransparencyLog) -> None:
    vkey = SIGNER.verifier.vkey
    for size in log.checkpoint_sizes():
        note = log.checkpoint(size)
        result = run(gocheck, "open", vkey, stdin=note)
        assert result.returncode == 0, result.stderr
        head, text = result.stdout.decode().split("\n", 1)
        assert head == f"verified {log.origin}"
        assert Checkpoint.from_body(text).size == size


def test_go_ignores_our_witness_cosignature_and_rejects_tampering(
    gocheck: Path, log: TransparencyLog
) -> None:
    note = log.checkpoint()
    witness = CosignatureSigner("witness.example", SigningKey.generate())
    text = open_checkpoint(note, SIGNER.verifier).note.text
    cosigned = add_signatures(note, [witness.sign(text, 1_700_000_000)])
    assert run(gocheck, "open", SIGNER.verifier.vkey, stdin=cosigned).returncode == 0
    tampered = cosigned.replace(f"\n{log.size}\n".encode(), f"\n{log.size + 1}\n".encode())
    result = run(gocheck, "open", SIGNER.verifier.vkey, stdin=tampered)
    assert result.returncode != 0
    assert b"invalid signature" in result.stderr


def test_we_verify_notes_go_signs(gocheck: Path) -> None:
    skey, vkey = run(gocheck, "generate", "go.example/log").stdout.decode().split()
    body = Checkpoint("go.example/log", 7, leaf_hash(b"x")).body()
    signed = run(gocheck, "sign", skey, stdin=body.encode()).stdout
    verifier = parse_verifier_key(vkey)
    verified = open_checkpoint(signed, verifier)  # type: ignore[arg-type]
    assert verified.checkpoint.size == 7
    with pytest.raises(NoteError, match="does not verify"):
        open_checkpoint(signed.replace(b"\n7\n", b"\n8\n"), verifier)  # type: ignore[arg-type]


def test_go_tlog_checks_our_inclusion_proofs(gocheck: Path, log: TransparencyLog) -> None:
    for size in log.checkpoint_sizes()[1:]:
        root = log.root(size)
        for index in {0, size // 2, size - 1}:
            case = {
                "size": size,
                "root": root.hex(),
                "index": index,
                "leaf": leaf_hash(log.entry(index)).hex(),
                "proof": [h.hex() for h in log.inclusion_proof(index, size)],
            }
            result = run(gocheck, "inclusion", stdin=json.dumps(case).encode())
            assert result.returncode == 0, (case, result.stderr)
    case["leaf"] = leaf_hash(b"not in the log").hex()
    assert run(gocheck, "inclusion", stdin=json.dumps(case).encode()).returncode != 0


def test_go_tlog_checks_our_consistency_proofs(gocheck: Path, log: TransparencyLog) -> None:
    sizes = log.checkpoint_sizes()[1:]
    for old in sizes:
        for new in sizes:
            if old < new:
                case = {
                    "old_size": old,
                    "old_root": log.root(old).hex(),
                    "size": new,
                    "root": log.root(new).hex(),
                    "proof": [h.hex() for h in log.consistency_proof(old, new)],
                }
                result = run(gocheck, "consistency", stdin=json.dumps(case).encode())
                assert result.returncode == 0, (case, result.stderr)
    fork = MerkleTree(leaf_hash(b"fork %d" % n) for n in range(sizes[-1]))
    case["old_root"] = fork.root(case["old_size"]).hex()
    assert run(gocheck, "consistency", stdin=json.dumps(case).encode()).returncode != 0
