"""The transparency log: appends, proofs, tiles, atomicity, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine

from provenance.errors import LogError, NoteError, ProofError
from provenance.keys import SigningKey
from provenance.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from provenance.note import NoteSigner
from provenance.storage import make_engine, sqlite_url
from provenance.tlog.checkpoint import open_checkpoint
from provenance.tlog.log import Blob, TransparencyLog
from provenance.tlog.proof import TlogProof
from provenance.tlog.tiles import decode_bundle

ORIGIN = "test.tallystick.local/log"


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner(ORIGIN, SigningKey.from_seed(bytes(range(32))))


@pytest.fixture
def log(engine: Engine, signer: NoteSigner) -> TransparencyLog:
    return TransparencyLog.create(engine, signer)


def entries(count: int, start: int = 0) -> list[bytes]:
    return [f"entry-{n}".encode() for n in range(start, start + count)]


def test_new_log_has_signed_empty_checkpoint(log: TransparencyLog, signer: NoteSigner) -> None:
    verified = open_checkpoint(log.checkpoint(), signer.verifier)
    assert verified.checkpoint.size == 0
    assert verified.checkpoint.root_hash == EMPTY_ROOT


def test_append_matches_reference_tree_and_proofs_verify(
    log: TransparencyLog, signer: NoteSigner
) -> None:
    reference = MerkleTree()
    sizes = []
    for batch in (1, 2, 5, 1, 13, 7):
        items = entries(batch, reference.size)
        result = log.append(items)
        for item in items:
            reference.append(leaf_hash(item))
        assert result.indexes == tuple(range(reference.size - batch, reference.size))
        checkpoint = open_checkpoint(result.checkpoint, signer.verifier).checkpoint
        assert (checkpoint.size, checkpoint.root_hash) == (reference.size, reference.root())
        sizes.append(reference.size)
    size = reference.size
    for index in range(size):
        proof = log.inclusion_proof(index)
        assert proof == reference.inclusion_proof(index)
        verify_inclusion(leaf_hash(log.entry(index)), index, size, proof, reference.root())
    for old in sizes:
        proof = log.consistency_proof(old)
        verify_consistency(old, size, reference.root(old), reference.root(), proof)
    assert log.checkpoint_sizes() == [0, *sizes]
    assert log.verify_storage() == size


def test_entries_are_content_addressed(log: TransparencyLog) -> None:
    first = log.append([b"a", b"b"])
    again = log.append([b"b", b"c", b"a", b"c"])
    assert again.indexes == (1, 2, 0, 2)
    assert again.new_entries == 1
    assert log.size == 3
    nothing_new = log.append([b"a"])
    assert nothing_new.new_entries == 0
    assert nothing_new.checkpoint == log.checkpoint(3)
    assert first.size == 2
    assert log.index_of(leaf_hash(b"c")) == 2


def test_blobs_are_stored_by_digest_with_their_entries(log: TransparencyLog) -> None:
    blob = Blob(b'{"payload":"x"}', "application/json")
    log.append([b"record"], blobs=[blob, blob])
    assert log.blob(blob.digest) == blob
    with pytest.raises(LogError, match="stores no blob"):
        log.blob("00" * 32)


def test_tlog_proof_round_trip(log: TransparencyLog, signer: NoteSigner) -> None:
    log.append(entries(21))
    proof = TlogProof.parse(log.tlog_proof(17).to_bytes())
    verified = proof.verify(leaf_hash(b"entry-17"), signer.verifier)
    assert verified.checkpoint.size == 21
    with pytest.raises(ProofError, match="inclusion"):
        proof.verify(leaf_hash(b"entry-16"), signer.verifier)


def test_tiles_and_entry_bundles(log: TransparencyLog) -> None:
    items = entries(300)
    log.append(items)
    tree = MerkleTree(leaf_hash(item) for item in items)
    full = log.tile(0, 0)
    assert full == b"".join(tree.node((0, n)) for n in range(256))
    partial = log.tile(0, 1, 44)
    assert partial == b"".join(tree.node((0, n)) for n in range(256, 300))
    assert log.tile(1, 0, 1) == tree.node((8, 0))
    assert decode_bundle(log.entry_bundle(1, 44)) == items[256:]
    with pytest.raises(LogError, match="has 44 hashes, not 256"):
        log.tile(0, 1)
    with pytest.raises(LogError, match="has 0 entries"):
        log.entry_bundle(2, 1)


def test_rejected_appends_leave_the_log_unchanged(log: TransparencyLog) -> None:
    log.append([b"kept"])
    before = log.checkpoint()
    with pytest.raises(LogError, match="entry 1 is 65536 bytes, over the 65535 limit"):
        log.append([b"fine", b"x" * 65536])
    with pytest.raises(LogError, match="nothing to append"):
        log.append([])
    assert log.checkpoint() == before
    assert log.size == 1


def test_failure_inside_the_transaction_rolls_everything_back(
    engine: Engine, signer: NoteSigner
) -> None:
    log = TransparencyLog.create(engine, signer)
    log.append([b"one"])

    class ExplodingSigner(NoteSigner):
        def sign(self, text: str):  # type: ignore[no-untyped-def]
            raise RuntimeError("power cut while signing")

    broken = TransparencyLog.open(engine, ExplodingSigner(signer.name, signer.key))
    with pytest.raises(RuntimeError, match="power cut"):
        broken.append([b"two", b"three"], blobs=[Blob(b"blob", "text/plain")])
    assert log.size == 1
    assert log.checkpoint_sizes() == [0, 1]
    with pytest.raises(LogError):
        log.index_of(leaf_hash(b"two"))
    with pytest.raises(LogError):
        log.blob(Blob(b"blob", "text/plain").digest)
    assert log.verify_storage() == 1
    assert log.append([b"two"]).indexes == (1,)


def test_read_only_and_wrong_signer(engine: Engine, signer: NoteSigner) -> None:
    TransparencyLog.create(engine, signer)
    with pytest.raises(LogError, match="read-only"):
        TransparencyLog.open(engine).append([b"x"])
    with pytest.raises(LogError, match="is not the log origin"):
        TransparencyLog.open(engine, NoteSigner("other.example/log", SigningKey.generate()))
    with pytest.raises(LogError, match="already holds a log"):
        TransparencyLog.create(engine, signer)


def test_out_of_range_requests(log: TransparencyLog) -> None:
    log.append(entries(4))
    with pytest.raises(ProofError, match="not below the tree size"):
        log.inclusion_proof(4)
    with pytest.raises(LogError, match="beyond the log's size"):
        log.inclusion_proof(0, 5)
    with pytest.raises(LogError, match="no checkpoint for tree size 3"):
        log.checkpoint(3)
    with pytest.raises(LogError, match="no entry 9"):
        log.entry(9)


def test_checkpoint_from_another_log_is_refused(log: TransparencyLog) -> None:
    other = NoteSigner("other.example/log", SigningKey.generate())
    with pytest.raises(NoteError, match="no signature by a trusted key"):
        open_checkpoint(log.checkpoint(), other.verifier)


_CRASH_WORKER = textwrap.dedent(
    """
    import sys
    from provenance.keys import SigningKey
    from provenance.note import NoteSigner
    from provenance.storage import make_engine, sqlite_url
    from provenance.tlog.log import TransparencyLog
    from pathlib import Path

    signer = NoteSigner(sys.argv[2], SigningKey.from_seed(bytes(range(32))))
    log = TransparencyLog.open(make_engine(sqlite_url(Path(sys.argv[1]))), signer)
    batch = 0
    print("ready", flush=True)
    while True:
        log.append([f"crash-{batch}-{n}".encode() * 20 for n in range(2000)])
        batch += 1
    """
)


@pytest.mark.parametrize("delay", [0.3, 0.7, 1.1])
def test_kill_during_appends_leaves_a_checkpointed_state(
    tmp_path: Path, signer: NoteSigner, delay: float
) -> None:
    path = tmp_path / "crash.db"
    TransparencyLog.create(make_engine(sqlite_url(path)), signer)
    worker = subprocess.Popen(
        [sys.executable, "-c", _CRASH_WORKER, str(path), signer.name],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == b"ready"
    time.sleep(delay)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    log = TransparencyLog.open(make_engine(sqlite_url(path)), signer)
    size = log.verify_storage()
    assert size % 2000 == 0
    assert log.checkpoint_sizes()[-1] == size
    assert log.append([b"after the crash"]).indexes == (size,)


def test_static_layout_lets_a_client_rebuild_and_prove(
    log: TransparencyLog, signer: NoteSigner
) -> None:
    items = entries(70_000 // 100)  # 700 entries: two full level-0 tiles and a partial one
    log.append(items)
    files = dict(log.static_layout())
    assert set(files) == {
        "checkpoint",
        "tile/0/000",
        "tile/0/001",
        "tile/0/002.p/188",
        "tile/1/000.p/2",
        "tile/entries/000",
        "tile/entries/001",
        "tile/entries/002.p/188",
    }
    # A client that knows only the tiles layout and the log key:
    checkpoint = open_checkpoint(files["checkpoint"], signer.verifier).checkpoint
    level0 = files["tile/0/000"] + files["tile/0/001"] + files["tile/0/002.p/188"]
    leaves = [level0[i : i + 32] for i in range(0, len(level0), 32)]
    tree = MerkleTree(leaves)
    assert tree.root() == checkpoint.root_hash
    assert files["tile/1/000.p/2"] == tree.node((8, 0)) + tree.node((8, 1))
    bundle = decode_bundle(files["tile/entries/002.p/188"])
    assert [leaf_hash(entry) for entry in bundle] == leaves[512:]


def test_cosignatures_are_verified_before_they_are_stored(
    log: TransparencyLog, signer: NoteSigner
) -> None:
    from provenance.note import CosignatureSigner

    result = log.append([b"x"])
    witness = CosignatureSigner("witness.example", SigningKey.generate())
    other = CosignatureSigner("witness.example", SigningKey.generate())
    text = open_checkpoint(result.checkpoint, signer.verifier).note.text
    with pytest.raises(LogError, match="is not from witness"):
        log.add_cosignature(1, other.sign(text, 5), witness.verifier)
    bad = witness.sign("other text\n", 5)
    with pytest.raises(LogError, match="does not verify"):
        log.add_cosignature(1, bad, witness.verifier)
    assert log.checkpoint(1) == result.checkpoint
    stored = log.add_cosignature(1, witness.sign(text, 5), witness.verifier)
    assert open_checkpoint(
        stored, signer.verifier, witnesses=[witness.verifier]
    ).note.verified_by == (
        signer.name,
        "witness.example",
    )
