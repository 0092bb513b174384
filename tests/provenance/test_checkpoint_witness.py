"""Checkpoints, tlog-proofs, tiles paths and the witness's append-only rule."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from provenance.errors import LogError, NoteError, ProofError
from provenance.keys import SigningKey
from provenance.merkle import MerkleTree, leaf_hash
from provenance.note import CosignatureSigner, NoteSigner, add_signatures, sign_note
from provenance.tlog.checkpoint import (
    Checkpoint,
    open_checkpoint,
    require_cosignatures,
    sign_checkpoint,
)
from provenance.tlog.proof import TlogProof
from provenance.tlog.tiles import TileRef, decode_bundle, encode_bundle, parse_tile_path, tile_width
from provenance.tlog.witness import (
    AddCheckpointRequest,
    ConsistencyRejected,
    JsonFileWitnessState,
    MalformedRequest,
    MemoryWitnessState,
    SignatureRejected,
    StaleSize,
    UnknownLog,
    Witness,
)

LOG = NoteSigner("example.com/log", SigningKey.from_seed(b"\x03" * 32))
WITNESS = CosignatureSigner("witness.example", SigningKey.from_seed(b"\x04" * 32))
ROOT = base64.b64encode(b"\x11" * 32).decode()


def tree(size: int) -> MerkleTree:
    return MerkleTree(leaf_hash(b"%d" % n) for n in range(size))


def signed(size: int, source: MerkleTree | None = None) -> bytes:
    source = source or tree(size)
    return sign_checkpoint(Checkpoint(LOG.name, size, source.root(size)), LOG)


def test_checkpoint_body_round_trip_with_extensions() -> None:
    checkpoint = Checkpoint("example.com/log", 12, b"\x11" * 32, ("ext one",))
    assert checkpoint.body() == f"example.com/log\n12\n{ROOT}\next one\n"
    assert Checkpoint.from_body(checkpoint.body()) == checkpoint


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"example.com/log\n012\n{ROOT}\n", "canonical decimal"),
        (f"example.com/log\n-1\n{ROOT}\n", "canonical decimal"),
        (f"example.com/log\n{2**64}\n{ROOT}\n", "64 bits"),
        ("example.com/log\n1\nAAAA\n", "3 bytes, expected 32"),
        ("example.com/log\n1\n", "needs origin, size and root"),
        (f"\n1\n{ROOT}\n", "origin line is empty"),
        (f"example.com/log\n1\n{ROOT}\n\n", "empty extension"),
    ],
)
def test_malformed_checkpoints(body: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        Checkpoint.from_body(body)


def test_checkpoint_origin_and_key_are_enforced() -> None:
    note = signed(5)
    assert open_checkpoint(note, LOG.verifier).checkpoint.size == 5
    with pytest.raises(NoteError, match="origin is 'example.com/log', expected 'other'"):
        open_checkpoint(note, LOG.verifier, origin="other")
    impostor = NoteSigner(LOG.name, SigningKey.generate())
    with pytest.raises(NoteError, match="no signature by a trusted key"):
        open_checkpoint(note, impostor.verifier)


def test_witness_quorum() -> None:
    note = signed(5)
    cosigned = add_signatures(
        note, [WITNESS.sign(open_checkpoint(note, LOG.verifier).note.text, 1)]
    )
    verified = open_checkpoint(cosigned, LOG.verifier, witnesses=[WITNESS.verifier])
    assert require_cosignatures(verified, [WITNESS.verifier], 1) == [("witness.example", 1)]
    other = CosignatureSigner("witness2.example", SigningKey.generate())
    with pytest.raises(NoteError, match="1 valid witness cosignature.*2 required"):
        require_cosignatures(verified, [WITNESS.verifier, other.verifier], 2)


def test_tlog_proof_format_and_extra_line() -> None:
    source = tree(9)
    proof = TlogProof(4, tuple(source.inclusion_proof(4)), signed(9, source), extra=b"ctx")
    text = proof.to_bytes()
    assert text.startswith(b"c2sp.org/tlog-proof@v1\nextra Y3R4\nindex 4\n")
    parsed = TlogProof.parse(text)
    assert parsed == proof
    parsed.verify(leaf_hash(b"4"), LOG.verifier)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.replace(b"c2sp.org/tlog-proof@v1", b"c2sp.org/tlog-proof@v2"), "first line"),
        (lambda t: t.replace(b"index 4", b"index 04"), "canonical decimal"),
        (lambda t: t.replace(b"index 4", b"idx 4"), "no 'index N' line"),
        (lambda t: t.replace(b"index 4\n", b"index 4\nAAAA\n"), "hash 0 is 3 bytes"),
        (lambda t: t.split(b"\n\n")[0], "no blank line"),
        (lambda t: t.split(b"\n\n")[0] + b"\n\n", "no checkpoint"),
        (lambda t: b"x" * (1024 * 1024 + 1), "over the limit"),
    ],
)
def test_malformed_tlog_proofs(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    source = tree(9)
    text = TlogProof(4, tuple(source.inclusion_proof(4)), signed(9, source)).to_bytes()
    with pytest.raises(NoteError, match=message):
        TlogProof.parse(mutate(text))


def test_tlog_proof_wrong_index_truncated_and_index_beyond_size() -> None:
    source = tree(9)
    hashes = tuple(source.inclusion_proof(4))
    with pytest.raises(ProofError, match="inclusion"):
        TlogProof(5, hashes, signed(9, source)).verify(leaf_hash(b"4"), LOG.verifier)
    with pytest.raises(ProofError, match="shorter"):
        TlogProof(4, hashes[:-1], signed(9, source)).verify(leaf_hash(b"4"), LOG.verifier)
    with pytest.raises(ProofError, match="not below the tree size"):
        TlogProof(9, hashes, signed(9, source)).verify(leaf_hash(b"4"), LOG.verifier)


def test_tile_paths() -> None:
    assert TileRef(0, 1234067).path() == "tile/0/x001/x234/067"
    assert TileRef(None, 3, 7).path() == "tile/entries/003.p/7"
    assert parse_tile_path("tile/2/x001/000.p/255") == TileRef(2, 1000, 255)
    for bad in [
        "tile/0/1234",
        "tile/0/x1/234",
        "tile/0/001.p/256",
        "tile/0/001.p/0",
        "tile/01/001",
        "tile/0/001.p/07",
        "tlog/0/001",
    ]:
        with pytest.raises(LogError):
            parse_tile_path(bad)
    assert tile_width(0, 1, 300) == 44
    assert tile_width(1, 0, 300) == 1
    assert tile_width(1, 0, 255) == 0


def test_entry_bundles() -> None:
    entries = [b"", b"a", b"x" * 65535]
    assert decode_bundle(encode_bundle(entries)) == entries
    with pytest.raises(LogError, match="truncated"):
        decode_bundle(encode_bundle(entries)[:-1])
    with pytest.raises(LogError, match="inside a length prefix"):
        decode_bundle(b"\x00")


def witness(tmp_path: Path | None = None) -> Witness:
    state = JsonFileWitnessState(tmp_path / "witness.json") if tmp_path else MemoryWitnessState()
    return Witness(WITNESS, [LOG.verifier], state)


def test_witness_cosigns_only_consistent_growth(tmp_path: Path) -> None:
    source = tree(20)
    w = witness(tmp_path)
    first = w.add_checkpoint(AddCheckpointRequest(0, (), signed(7, source)), now=100)
    assert first.name == "witness.example"
    note = add_signatures(signed(7, source), [first])
    require_cosignatures(
        open_checkpoint(note, LOG.verifier, witnesses=[WITNESS.verifier]), [WITNESS.verifier], 1
    )
    proof = tuple(source.consistency_proof(7, 20))
    w.add_checkpoint(AddCheckpointRequest(7, proof, signed(20, source)))
    # A fresh witness object over the same state file remembers size 20.
    with pytest.raises(StaleSize) as stale:
        witness(tmp_path).add_checkpoint(AddCheckpointRequest(7, proof, signed(20, source)))
    assert stale.value.known_size == 20


def test_witness_refuses_forks_and_bad_input() -> None:
    source = tree(10)
    w = witness()
    w.add_checkpoint(AddCheckpointRequest(0, (), signed(4, source)))
    fork = MerkleTree(leaf_hash(b"fork-%d" % n) for n in range(10))
    with pytest.raises(ConsistencyRejected, match="consistency proof rejected"):
        w.add_checkpoint(
            AddCheckpointRequest(4, tuple(fork.consistency_proof(4)), signed(10, fork))
        )
    with pytest.raises(ConsistencyRejected, match="different roots"):
        w.add_checkpoint(AddCheckpointRequest(4, (), signed(4, fork)))
    other_log = NoteSigner("other.example/log", SigningKey.generate())
    foreign = sign_checkpoint(Checkpoint(other_log.name, 1, b"\x00" * 32), other_log)
    with pytest.raises(UnknownLog, match="other.example/log"):
        w.add_checkpoint(AddCheckpointRequest(0, (), foreign))
    impostor = NoteSigner(LOG.name, SigningKey.generate())
    forged = sign_checkpoint(Checkpoint(LOG.name, 10, source.root()), impostor)
    with pytest.raises(SignatureRejected):
        w.add_checkpoint(AddCheckpointRequest(4, tuple(source.consistency_proof(4)), forged))
    unsigned_text = sign_note("example.com/log\nnot-a-size\n", [LOG])
    with pytest.raises(SignatureRejected, match="needs origin, size and root"):
        w.add_checkpoint(AddCheckpointRequest(4, (), unsigned_text))


def test_add_checkpoint_request_format() -> None:
    source = tree(10)
    request = AddCheckpointRequest(4, tuple(source.consistency_proof(4)), signed(10, source))
    assert AddCheckpointRequest.parse(request.to_bytes()) == request
    for body, message in [
        (b"old 04\n\n" + signed(4), "not a canonical decimal"),
        (b"new 4\n\n" + signed(4), "old N"),
        (b"old 4\n", "no blank line"),
        (b"old 4\nAAA=\n\n" + signed(4), "proof hash 0 is 2 bytes"),
        (b"x" * 70000, "over"),
    ]:
        with pytest.raises(MalformedRequest, match=message):
            AddCheckpointRequest.parse(body)


def test_a_witness_cannot_stand_in_for_the_log_by_sharing_its_name() -> None:
    impostor = CosignatureSigner(LOG.name, SigningKey.generate())
    body = Checkpoint(LOG.name, 1, leaf_hash(b"evil")).body()
    forged = add_signatures(
        sign_note(body, [NoteSigner("x", SigningKey.generate())]), [impostor.sign(body, 1)]
    )
    with pytest.raises(NoteError, match="is the log's own key name"):
        open_checkpoint(forged, LOG.verifier, witnesses=[impostor.verifier])
    with pytest.raises(NoteError, match="no signature by a trusted key"):
        open_checkpoint(forged, LOG.verifier)
    with pytest.raises(NoteError, match="own key name"):
        TlogProof(0, (), forged).verify(
            leaf_hash(b"evil"), LOG.verifier, witnesses=[impostor.verifier]
        )


@pytest.mark.parametrize(
    ("parse", "data", "error"),
    [
        (TlogProof.parse, b"c2sp.org/tlog-proof@v1\nindex " + b"1" * 5000 + b"\n\ncp\n", NoteError),
        (AddCheckpointRequest.parse, b"old " + b"1" * 5000 + b"\n\ncp\n", MalformedRequest),
        (Checkpoint.from_body, "o\n" + "1" * 5000 + "\n" + ROOT + "\n", NoteError),
    ],
)
def test_huge_decimals_are_refused_before_conversion(parse, data, error) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match="not a canonical decimal"):
        parse(data)


def test_witness_follows_logs_whose_origin_differs_from_the_key_name() -> None:
    key = NoteSigner("sum.example", SigningKey.generate())
    checkpoint = sign_checkpoint(Checkpoint("example tree", 1, leaf_hash(b"0")), key)
    w = Witness(WITNESS, {"example tree": key.verifier}, MemoryWitnessState())
    assert w.add_checkpoint(AddCheckpointRequest(0, (), checkpoint)).name == WITNESS.name
    with pytest.raises(NoteError, match="witness's own name"):
        Witness(
            WITNESS,
            [NoteSigner(WITNESS.name, SigningKey.generate()).verifier],
            MemoryWitnessState(),
        )


def test_old_size_beyond_the_checkpoint_is_malformed() -> None:
    w = witness()
    with pytest.raises(MalformedRequest, match="old size 9 is larger than the checkpoint size 4"):
        w.add_checkpoint(AddCheckpointRequest(9, (), signed(4)))
