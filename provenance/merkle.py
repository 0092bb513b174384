"""RFC 9162 Merkle trees: hashing, roots, inclusion and consistency proofs.

Leaf hash = SHA-256(0x00 || data); node hash = SHA-256(0x01 || left || right); the
empty tree's root is SHA-256(""). Proof generation is expressed over *perfect* subtrees
(aligned power-of-two ranges): ``inclusion_plan`` and ``consistency_plan`` say which
stored node hashes a proof needs, so a store can fetch them in one query, and
``MerkleTree`` is the in-memory store. Verification follows RFC 9162 section 2.1.3.2
and 2.1.4.2 exactly and raises ``ProofError``; it never returns ``False``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from provenance.errors import ProofError

HASH_SIZE = 32
#: The most hashes an inclusion or consistency proof can need for a tree of 2^64 leaves.
MAX_PROOF_HASHES = 2 * 64
EMPTY_ROOT = hashlib.sha256(b"").digest()

#: (level, index): the perfect subtree covering leaves [index << level, (index + 1) << level).
NodeId = tuple[int, int]


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || data)."""
    hasher = hashlib.sha256(b"\x00")
    hasher.update(data)
    return hasher.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """Largest power of two strictly less than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def perfect_subtrees(start: int, end: int) -> list[NodeId]:
    """Decompose leaves [start, end) into maximal aligned perfect subtrees, left to right.

    Requires ``start`` to be a multiple of a power of two at least ``end - start``
    rounded up, which holds for every range RFC 9162's recursion produces.
    """
    nodes: list[NodeId] = []
    while start < end:
        size = end - start
        level = size.bit_length() - 1
        # An aligned subtree at `start` cannot be larger than start's lowest set bit.
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Hash perfect-subtree roots (left to right) into the root of their concatenation."""
    if not hashes:
        raise ValueError("cannot fold an empty list of hashes")
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


@dataclass(frozen=True)
class ProofPlan:
    """The node hashes a proof needs: each proof element folds one group of perfect subtrees."""

    groups: tuple[tuple[NodeId, ...], ...]

    def node_ids(self) -> list[NodeId]:
        """Every node the plan reads, in order (duplicates possible, never harmful)."""
        return [node for group in self.groups for node in group]

    def assemble(self, hashes: Sequence[bytes]) -> list[bytes]:
        """Build the proof from the hashes of ``node_ids()``, in the same order."""
        proof: list[bytes] = []
        position = 0
        for group in self.groups:
            proof.append(fold_right(hashes[position : position + len(group)]))
            position += len(group)
        return proof


def _subtree_group(start: int, end: int) -> tuple[NodeId, ...]:
    return tuple(perfect_subtrees(start, end))


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """Plan the RFC 9162 inclusion proof (PATH) for leaf ``index`` in a tree of ``size``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not below the tree size {size}")
    groups: list[tuple[NodeId, ...]] = []
    start, end = 0, size
    # Walk down from the root; siblings are collected top-down, proofs list them bottom-up.
    while end - start > 1:
        split = start + _largest_power_of_two_below(end - start)
        if index < split:
            groups.append(_subtree_group(split, end))
            end = split
        else:
            groups.append(_subtree_group(start, split))
            start = split
    groups.reverse()
    return ProofPlan(tuple(groups))


def consistency_plan(old_size: int, new_size: int) -> ProofPlan:
    """Plan the RFC 9162 consistency proof between tree sizes ``old_size`` and ``new_size``."""
    if not 0 < old_size <= new_size:
        raise ProofError(
            f"a consistency proof needs 0 < old size <= new size, got {old_size} and {new_size}"
        )
    if old_size == new_size:
        return ProofPlan(())
    groups: list[tuple[NodeId, ...]] = []
    start, end, complete = 0, new_size, True
    m = old_size
    # SUBPROOF(m, D[start:end], complete) from RFC 9162 2.1.4.1, iteratively.
    while True:
        n = end - start
        if m == n:
            if not complete:
                groups.append(_subtree_group(start, end))
            break
        k = _largest_power_of_two_below(n)
        if m <= k:
            groups.append(_subtree_group(start + k, end))
            end = start + k
        else:
            groups.append(_subtree_group(start, start + k))
            start += k
            m -= k
            complete = False
    groups.reverse()
    return ProofPlan(tuple(groups))


class MerkleTree:
    """An in-memory RFC 9162 tree storing every perfect subtree hash.

    Memory is about two hashes per leaf. Use ``CompactRange`` when only the root of a
    stream is needed.
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for leaf in leaf_hashes:
            self.append(leaf)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0])

    def append(self, leaf: bytes) -> int:
        """Append a leaf hash; return its index."""
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, got {len(leaf)}")
        index = len(self._levels[0])
        self._levels[0].append(leaf)
        level, position, current = 0, index, leaf
        while position & 1:
            current = node_hash(self._levels[level][position - 1], current)
            level += 1
            position >>= 1
            if len(self._levels) == level:
                self._levels.append([])
            self._levels[level].append(current)
        return index

    def node(self, node_id: NodeId) -> bytes:
        """Return the hash of a stored perfect subtree."""
        level, index = node_id
        return self._levels[level][index]

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ProofError(f"tree size {size} is beyond the tree's {self.size} leaves")
        return size

    def root(self, size: int | None = None) -> bytes:
        """Root hash of the first ``size`` leaves (default: all)."""
        size = self._check_size(size)
        if size == 0:
            return EMPTY_ROOT
        return fold_right([self.node(n) for n in perfect_subtrees(0, size)])

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 inclusion proof for leaf ``index`` in the tree of ``size`` leaves."""
        plan = inclusion_plan(index, self._check_size(size))
        return plan.assemble([self.node(n) for n in plan.node_ids()])

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 consistency proof from ``old_size`` to ``new_size`` (default: all)."""
        plan = consistency_plan(old_size, self._check_size(new_size))
        return plan.assemble([self.node(n) for n in plan.node_ids()])


class CompactRange:
    """Streaming root computation: O(log n) memory for any number of leaves."""

    def __init__(self) -> None:
        self._size = 0
        # Perfect subtree roots covering [0, size), largest (leftmost) first.
        self._stack: list[bytes] = []

    @property
    def size(self) -> int:
        """Number of leaves appended."""
        return self._size

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash."""
        current = leaf
        position = self._size
        while position & 1:
            current = node_hash(self._stack.pop(), current)
            position >>= 1
        self._stack.append(current)
        self._size += 1

    def root(self) -> bytes:
        """Root of the leaves appended so far."""
        return fold_right(self._stack) if self._stack else EMPTY_ROOT


def root_from_leaf_hashes(leaf_hashes: Iterable[bytes]) -> bytes:
    """Root of a tree with these leaf hashes, in O(log n) memory."""
    compact = CompactRange()
    for leaf in leaf_hashes:
        compact.append(leaf)
    return compact.root()


def _check_hashes(proof: Sequence[bytes], what: str) -> None:
    if len(proof) > MAX_PROOF_HASHES:
        raise ProofError(f"{what} has {len(proof)} hashes, more than any tree can need")
    for position, item in enumerate(proof):
        if len(item) != HASH_SIZE:
            raise ProofError(f"{what} hash {position} is {len(item)} bytes, expected {HASH_SIZE}")


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """Recompute the root implied by an inclusion proof (RFC 9162 2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not below the tree size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"leaf hash is {len(leaf)} bytes, expected {HASH_SIZE}")
    _check_hashes(proof, "inclusion proof")
    fn, sn = index, size - 1
    result = leaf
    for sibling in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    return result


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ``ProofError`` unless ``proof`` shows ``leaf`` at ``index`` under ``root``."""
    computed = root_from_inclusion_proof(leaf, index, size, proof)
    if computed != root:
        raise ProofError(
            f"inclusion proof for index {index} in tree size {size} leads to root "
            f"{computed.hex()}, not {root.hex()}"
        )


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
) -> None:
    """Raise ``ProofError`` unless ``proof`` shows tree ``old_size`` is a prefix of ``new_size``.

    Follows RFC 9162 2.1.4.2. A zero-size old tree is consistent with anything (and needs
    an empty proof).
    """
    if old_size < 0 or new_size < old_size:
        raise ProofError(
            f"a consistency proof needs 0 <= old size <= new size, got {old_size} and {new_size}"
        )
    _check_hashes(proof, "consistency proof")
    if old_size == new_size:
        if proof:
            raise ProofError("a consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError(f"trees of equal size {old_size} have different roots")
        return
    if old_size == 0:
        if proof:
            raise ProofError("a consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # old_size is a power of two
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the trees are deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the trees are deep")
    if fr != old_root:
        raise ProofError(f"consistency proof does not lead to the old root for size {old_size}")
    if sr != new_root:
        raise ProofError(f"consistency proof does not lead to the new root for size {new_size}")
