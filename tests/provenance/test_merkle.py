"""RFC 9162 Merkle trees, checked against the RFC's own recursive definitions."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provenance.errors import ProofError
from provenance.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleTree,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)


def split_point(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(data: list[bytes]) -> bytes:
    """MTH from RFC 9162 section 2.1.1, written as the RFC states it."""
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = split_point(len(data))
    return hashlib.sha256(b"\x01" + mth(data[:k]) + mth(data[k:])).digest()


def path(m: int, data: list[bytes]) -> list[bytes]:
    """PATH from RFC 9162 section 2.1.3.1."""
    if len(data) <= 1:
        return []
    k = split_point(len(data))
    if m < k:
        return [*path(m, data[:k]), mth(data[k:])]
    return [*path(m - k, data[k:]), mth(data[:k])]


def subproof(m: int, data: list[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF from RFC 9162 section 2.1.4.1."""
    n = len(data)
    if m == n:
        return [] if complete else [mth(data)]
    k = split_point(n)
    if m <= k:
        return [*subproof(m, data[:k], complete), mth(data[k:])]
    return [*subproof(m - k, data[k:], False), mth(data[:k])]


def leaves(n: int) -> list[bytes]:
    return [n.to_bytes(4, "big") + bytes([i % 251]) * (i % 5) for i in range(n)]


def test_hashing_primitives() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )


@pytest.mark.parametrize("size", range(0, 40))
def test_roots_and_every_proof_match_the_rfc(size: int) -> None:
    data = leaves(size)
    tree = MerkleTree(leaf_hash(item) for item in data)
    assert tree.root() == mth(data)
    assert root_from_leaf_hashes(leaf_hash(item) for item in data) == mth(data)
    for index in range(size):
        proof = tree.inclusion_proof(index)
        assert proof == path(index, data)
        verify_inclusion(leaf_hash(data[index]), index, size, proof, tree.root())
    for old in range(1, size + 1):
        proof = tree.consistency_proof(old)
        assert proof == subproof(old, data, True)
        verify_consistency(old, size, mth(data[:old]), tree.root(), proof)


@given(st.integers(min_value=1, max_value=600), st.data())
def test_proofs_for_larger_random_trees(size: int, data: st.DataObject) -> None:
    items = leaves(size)
    tree = MerkleTree(leaf_hash(item) for item in items)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    old = data.draw(st.integers(min_value=1, max_value=size))
    verify_inclusion(leaf_hash(items[index]), index, size, tree.inclusion_proof(index), tree.root())
    verify_consistency(old, size, tree.root(old), tree.root(), tree.consistency_proof(old))


def test_compact_range_streams_any_size() -> None:
    compact = CompactRange()
    tree = MerkleTree()
    for item in leaves(1000):
        compact.append(leaf_hash(item))
        tree.append(leaf_hash(item))
        assert compact.root() == tree.root()


def test_inclusion_proof_rejections() -> None:
    data = leaves(11)
    tree = MerkleTree(leaf_hash(item) for item in data)
    proof = tree.inclusion_proof(5)
    leaf, root = leaf_hash(data[5]), tree.root()
    with pytest.raises(ProofError, match="leads to root"):
        verify_inclusion(leaf_hash(b"other"), 5, 11, proof, root)
    with pytest.raises(ProofError, match="leads to root"):
        verify_inclusion(leaf, 4, 11, proof, root)
    with pytest.raises(ProofError, match="shorter than the tree is deep"):
        verify_inclusion(leaf, 5, 11, proof[:-1], root)
    with pytest.raises(ProofError, match="longer than the tree is deep"):
        verify_inclusion(leaf, 5, 11, [*proof, proof[0]], root)
    with pytest.raises(ProofError, match="not below the tree size"):
        root_from_inclusion_proof(leaf, 11, 11, proof)
    with pytest.raises(ProofError, match="hash 1 is 31 bytes"):
        verify_inclusion(leaf, 5, 11, [proof[0], proof[1][:31], *proof[2:]], root)
    with pytest.raises(ProofError, match="more than any tree can need"):
        verify_inclusion(leaf, 5, 11, [proof[0]] * 200, root)
    tampered = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
    with pytest.raises(ProofError, match="leads to root"):
        verify_inclusion(leaf, 5, 11, tampered, root)


def test_consistency_proof_rejections() -> None:
    tree = MerkleTree(leaf_hash(item) for item in leaves(13))
    proof = tree.consistency_proof(6)
    old, new = tree.root(6), tree.root()
    with pytest.raises(ProofError, match="old root"):
        verify_consistency(6, 13, tree.root(5), new, proof)
    with pytest.raises(ProofError, match="new root"):
        verify_consistency(6, 13, old, tree.root(12), proof)
    with pytest.raises(ProofError, match="shorter"):
        verify_consistency(6, 13, old, new, proof[:-1])
    with pytest.raises(ProofError, match="empty"):
        verify_consistency(6, 13, old, new, [])
    with pytest.raises(ProofError, match="old size <= new size"):
        verify_consistency(13, 6, old, new, proof)
    with pytest.raises(ProofError, match="different roots"):
        verify_consistency(6, 6, old, tree.root(5), [])
    with pytest.raises(ProofError, match="must be empty"):
        verify_consistency(0, 13, EMPTY_ROOT, new, proof)
