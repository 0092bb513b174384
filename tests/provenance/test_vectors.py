"""Official test vectors of the specs we implement (see tests/vectors/*.json for sources).

These are the interoperability checks: records produced by other implementations
(Go's sumdb and note packages, transparency-dev, DSSE's reference vectors, C2SP examples)
must verify here, and ours must match their byte formats.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from provenance.dsse import Envelope, pae, verify_envelope
from provenance.errors import EnvelopeError, LogError, NoteError, ProofError
from provenance.keys import PublicKey, SigningKey
from provenance.merkle import (
    MerkleTree,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from provenance.note import parse_note, parse_verifier_key
from provenance.tlog.checkpoint import Checkpoint, open_checkpoint
from provenance.tlog.proof import TlogProof
from provenance.tlog.tiles import TileRef, bundle_width, parse_tile_path, tile_width

VECTORS = Path(__file__).parents[1] / "vectors"


def load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / f"{name}.json").read_text("utf-8"))


MERKLE = load("merkle")
CHECKPOINTS = load("checkpoint")
DSSE = load("dsse")
TLOG_PROOF = load("tlog_proof")
TILES = load("tlog_tiles")


def h(value: str) -> bytes:
    return bytes.fromhex(value)


# -- RFC 9162 / transparency-dev/merkle ------------------------------------------------


def test_hasher_vectors() -> None:
    hasher = MERKLE["hasher"]
    assert leaf_hash(b"").hex() == hasher["empty_leaf_hash_hex"]
    assert leaf_hash(b"L123456").hex() == hasher["leaf_L123456_hex"]
    assert node_hash(b"N123", b"N456").hex() == hasher["node_N123_N456_hex"]


def test_tree_roots_by_size() -> None:
    tree_vectors = MERKLE["tree"]
    tree = MerkleTree(leaf_hash(h(leaf)) for leaf in tree_vectors["leaves_hex"])
    assert tree.root(0).hex() == tree_vectors["root_size_0_hex"]
    for size, root in tree_vectors["roots_hex_by_size"].items():
        assert tree.root(int(size)).hex() == root


def inclusion_cases() -> list[dict[str, Any]]:
    inclusion = MERKLE["inclusion"]
    return [*inclusion["vectors"], *inclusion["edge"], *MERKLE["testdata_json"]["inclusion"]]


@pytest.mark.parametrize("case", inclusion_cases())
def test_inclusion_vectors(case: dict[str, Any]) -> None:
    proof = [h(item) for item in case["proof_hex"]]
    args = (
        h(case["leaf_hash_hex"]),
        case["leaf_index"],
        case["tree_size"],
        proof,
        h(case["root_hex"]),
    )
    if case["expect"] == "valid":
        verify_inclusion(*args)
    else:
        with pytest.raises(ProofError):
            verify_inclusion(*args)


def test_inclusion_vectors_match_our_proofs() -> None:
    tree = MerkleTree(leaf_hash(h(leaf)) for leaf in MERKLE["tree"]["leaves_hex"])
    for case in MERKLE["inclusion"]["vectors"]:
        if case["expect"] == "valid" and case["tree_size"] <= tree.size:
            assert [
                p.hex() for p in tree.inclusion_proof(case["leaf_index"], case["tree_size"])
            ] == case["proof_hex"]


def consistency_cases() -> list[dict[str, Any]]:
    consistency = MERKLE["consistency"]
    return [*consistency["vectors"], *consistency["edge"], *MERKLE["testdata_json"]["consistency"]]


@pytest.mark.parametrize("case", consistency_cases())
def test_consistency_vectors(case: dict[str, Any]) -> None:
    proof = [h(item) for item in case["proof_hex"]]
    args = (case["size1"], case["size2"], h(case["root1_hex"]), h(case["root2_hex"]), proof)
    if case["expect"] == "valid":
        verify_consistency(*args)
    else:
        with pytest.raises(ProofError):
            verify_consistency(*args)


def test_consistency_vectors_match_our_proofs() -> None:
    tree = MerkleTree(leaf_hash(h(leaf)) for leaf in MERKLE["tree"]["leaves_hex"])
    for case in MERKLE["consistency"]["vectors"]:
        if case["expect"] == "valid" and 0 < case["size1"] <= case["size2"] <= tree.size:
            ours = tree.consistency_proof(case["size1"], case["size2"])
            assert [p.hex() for p in ours] == case["proof_hex"]


def test_large_real_log_inclusion() -> None:
    case = MERKLE["large_inclusion"]
    leaf = leaf_hash(case["leaf_data_utf8"].encode())
    assert leaf.hex() == case["leaf_hash_hex"]
    verify_inclusion(
        leaf,
        case["leaf_index"],
        case["tree_size"],
        [h(p) for p in case["proof_hex"]],
        h(case["root_hex"]),
    )


# -- C2SP tlog-checkpoint, cosignatures ------------------------------------------------


def test_real_sum_golang_org_checkpoint_verifies() -> None:
    case = CHECKPOINTS["checkpoints"][0]
    verifier = parse_verifier_key(case["vkey"])
    verified = open_checkpoint(case["signed_note"].encode(), verifier, origin=case["origin"])  # type: ignore[arg-type]
    assert verified.checkpoint.size == case["size"]
    assert verified.checkpoint.root_hash.hex() == case["root_hash_hex"]
    with pytest.raises(
        NoteError, match="origin is 'go.sum database tree', expected 'sum.golang.org'"
    ):
        open_checkpoint(case["signed_note"].encode(), verifier)  # type: ignore[arg-type]
    tampered = case["signed_note"].replace("6476701", "6476702").encode()
    with pytest.raises(NoteError, match="does not verify"):
        open_checkpoint(tampered, verifier, origin=case["origin"])  # type: ignore[arg-type]


def test_checkpoint_with_extra_ed25519_signers() -> None:
    case = CHECKPOINTS["checkpoints"][1]
    verifiers = [parse_verifier_key(vkey) for vkey in case["vkeys"]]
    verified = open_checkpoint(
        case["signed_note"].encode(), verifiers[0], origin="go.sum database tree"
    )  # type: ignore[arg-type]
    assert len(verified.note.unverified) == 3
    from provenance.note import open_note

    assert len(open_note(case["signed_note"].encode(), verifiers).verified) == 4


def test_sigsum_checkpoint_verifies_with_its_origin_as_key_name() -> None:
    case = CHECKPOINTS["checkpoints"][2]
    name = case["body"].split("\n")[0]
    key = (
        PublicKey(h(case["log_ed25519_public_key_hex"]))
        if "log_ed25519_public_key_hex" in case
        else None
    )
    if key is None:
        pytest.skip("vector has no raw public key")
    from provenance.note import Ed25519NoteVerifier

    verified = open_checkpoint(case["signed_note"].encode(), Ed25519NoteVerifier(name, key))
    assert verified.checkpoint.size == 1


def test_go_sumdb_tree_body() -> None:
    case = CHECKPOINTS["go_sumdb_tree"]
    checkpoint = Checkpoint.from_body(case["golden"])
    assert checkpoint.size == case["size"]
    assert checkpoint.root_hash.hex() == case["root_hash_hex"]
    assert checkpoint.root_hash == leaf_hash(b"hello world")
    assert checkpoint.body() == case["golden"]


def test_cosignature_spec_example_parses_and_decodes() -> None:
    example = CHECKPOINTS["cosignatures"]["spec_example"]
    note = parse_note(example["signed_note"].encode())
    log_sig, witness_sig = note.signatures
    assert log_sig.key_id.hex() == example["decoded"]["log_key_id"]
    assert witness_sig.key_id.hex() == example["decoded"]["w1_key_id"]
    assert int.from_bytes(witness_sig.signature[:8], "big") == example["decoded"]["w1_timestamp"]
    from provenance.note import cosignature_message

    assert (
        cosignature_message(note.text.encode(), example["decoded"]["w1_timestamp"]).decode()
        == example["signed_message_example"]
    )


@pytest.mark.parametrize("vkey", CHECKPOINTS["cosignatures"]["witness_vkeys"])
def test_published_witness_keys_parse(vkey: Any) -> None:
    text = vkey if isinstance(vkey, str) else vkey.get("vkey", "")
    if not text or "+" not in text:
        pytest.skip("entry holds no verifier key string")
    if text.split("+")[2].startswith(("A", "B")):  # types 0x01 and 0x04
        assert parse_verifier_key(text).vkey == text
    else:
        with pytest.raises(NoteError, match="unknown signature type"):
            parse_verifier_key(text)


# -- DSSE -------------------------------------------------------------------------------


def test_dsse_protocol_example_pae() -> None:
    example = DSSE["protocol_example"]
    assert pae(example["payloadType"], example["payload_utf8"].encode()).hex() == example["pae_hex"]


@pytest.mark.parametrize("case", DSSE["vectors"], ids=lambda case: case["id"])
def test_dsse_reference_vectors(case: dict[str, Any]) -> None:
    keys = {
        name: SigningKey.from_seed(h(value["seed"])).public_key
        for name, value in DSSE["keys"].items()
    }
    for name, value in DSSE["keys"].items():
        assert keys[name].raw.hex() == value["public"]
    trusted = [keys[name] for name in case["trustedKeys"]]

    def run() -> None:
        envelope = Envelope.from_dict(case["envelope"])
        verified = verify_envelope(envelope, trusted, threshold=case["threshold"])
        if verified.payload_type not in case["supportedPayloadTypes"]:
            raise EnvelopeError(f"unsupported payload type {verified.payload_type!r}")
        if "pae" in case:
            assert (
                pae(envelope.payload_type, envelope.payload).hex() == case["pae"]
                or case["expect"] == "reject"
            )

    if case["expect"] == "accept":
        run()
    else:
        with pytest.raises(EnvelopeError):
            run()


# -- C2SP tlog-proof ---------------------------------------------------------------------


@pytest.mark.parametrize("case", TLOG_PROOF["marshal"]["cases"])
def test_tlog_proof_marshal_matches_transparency_dev(case: dict[str, Any]) -> None:
    extra = case["extra_utf8"].encode() if case.get("extra_utf8") else None
    proof = TlogProof(
        case["index"], tuple(h(x) for x in case["hashes_hex"]), case["checkpoint"].encode(), extra
    )
    assert proof.to_bytes().decode() == case["want"]
    assert TlogProof.parse(case["want"].encode()) == proof


@pytest.mark.parametrize(
    "case", [c for c in TLOG_PROOF["unmarshal_errors"]["cases"] if "input" in c]
)
def test_tlog_proof_unmarshal_errors(case: dict[str, Any]) -> None:
    with pytest.raises(NoteError):
        TlogProof.parse(case["input"].encode())


def test_tlog_proof_spec_example_parses() -> None:
    text = TLOG_PROOF["spec_example"]["text"]
    # The published example abbreviates signatures with '[...]', so only its head is checked.
    head = text.split("\n\n")[0] + "\n\nexample.com/fancylog\n"
    proof = TlogProof.parse(head.encode())
    assert proof.index == 73894
    assert len(proof.hashes) == 5


# -- C2SP tlog-tiles ---------------------------------------------------------------------


def size_value(value: Any) -> int:
    return 2**64 - 1 if value == "2^64-1" else int(value)


@pytest.mark.parametrize("case", TILES["tile_path"]["cases"])
def test_tile_paths_match_tessera(case: dict[str, Any]) -> None:
    width = tile_width(case["level"], case["index"], size_value(case["log_size"]))
    ref = TileRef(case["level"], case["index"], width if 0 < width < 256 else 256)
    assert ref.path() == case["path"]


@pytest.mark.parametrize("case", TILES["entries_path_for_log_index"]["cases"])
def test_entry_bundle_paths_match_tessera(case: dict[str, Any]) -> None:
    index = case["seq"] // 256
    width = bundle_width(index, case["log_size"])
    assert TileRef(None, index, width).path() == case["path"]


@pytest.mark.parametrize("case", TILES["parse"]["ok"])
def test_tile_path_parsing(case: dict[str, Any]) -> None:
    ref = parse_tile_path(f"tile/{case['level']}/{case['index']}")
    assert [ref.level, ref.index, ref.width] == case["want"]


@pytest.mark.parametrize("case", TILES["parse"]["errors"])
def test_tile_path_parsing_errors(case: list[str]) -> None:
    with pytest.raises(LogError):
        parse_tile_path(f"tile/{case[0]}/{case[1]}")
