"""The ledger's Merkle tree: RFC 9162 section 2.1 hashing, proofs and their verification.

The store keeps the hash of every *complete* (perfect) subtree, addressed by ``(level, index)``:
level 0 holds the leaf hashes, and node ``(level, index)`` covers leaves
``[index * 2**level, (index + 1) * 2**level)``. A complete node never changes once written, so
the table is append-only. Any subtree the RFC talks about, the root of a tree of any past size
included, is the fold of the O(log n) complete nodes that decompose its leaf range (the binary
digits of its width), so no function here ever rehashes the leaves.

Costs for a tree of ``n`` leaves, in nodes read through ``get_node``:

* appending a leaf writes the leaf plus one node per trailing one-bit of ``n`` (1 amortised,
  ``log2 n`` worst case) and reads as many left siblings;
* a root reads ``popcount(n)`` nodes, an inclusion proof at most ``2 * floor(log2 n)``, a
  consistency proof at most ``2 * floor(log2 n) + 1``.

Proofs have exactly the RFC 9162 2.1.3.1 / 2.1.4.1 shape (RFC 6962 PATH / PROOF), so any
RFC 6962 or RFC 9162 verifier (transparency-dev/merkle, sigstore, Trillian) accepts them. The
verifiers follow RFC 9162 2.1.3.2 / 2.1.4.2 step by step; they return ``None`` or raise
:class:`~ledger.errors.ProofError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from ledger.errors import ProofError, Reason, StoreError

HASH_SIZE = 32
"""SHA-256, the hash algorithm of RFC 9162 section 2.1."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""RFC 9162 2.1.1: the hash of an empty list is the hash of an empty string."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

GetNode = Callable[[int, int], bytes]
"""Reads the stored hash of the complete node ``(level, index)``."""


@dataclass(frozen=True, slots=True)
class StoredNode:
    """The hash of a complete subtree: ``level`` 0 is a leaf, ``index`` counts from the left."""

    level: int
    index: int
    hash: bytes


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 2.1.1: ``MTH({d(0)}) = HASH(0x00 || d(0))``."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 2.1.1: ``MTH(D_n) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


# --- writing ------------------------------------------------------------------------------------


def nodes_completed_by_append(
    size_before: int, new_leaf_hash: bytes, get_node: GetNode
) -> tuple[StoredNode, ...]:
    """The nodes to store when leaf number ``size_before`` is appended, leaf first.

    While the new node is a right child (odd index), its parent has just become complete:
    its hash is the stored left sibling hashed with the new node. That is one node per trailing
    one-bit of ``size_before``: 1 amortised, ``log2 n`` in the worst case.
    """
    completed = [StoredNode(0, size_before, new_leaf_hash)]
    level, index, current = 0, size_before, new_leaf_hash
    while index & 1:
        current = node_hash(get_node(level, index - 1), current)
        level, index = level + 1, index >> 1
        completed.append(StoredNode(level, index, current))
    return tuple(completed)


# --- reading: roots and proofs ------------------------------------------------------------------


def root_hash(size: int, get_node: GetNode) -> bytes:
    """RFC 9162 2.1.1 ``MTH`` of the first ``size`` leaves, from at most ``log2 size`` nodes."""
    if size < 0:
        raise ProofError(Reason.CHECKPOINT_INVALID, f"a tree size cannot be negative ({size})")
    if size == 0:
        return EMPTY_ROOT
    return _subtree_hash(0, size, get_node)


def inclusion_proof(leaf_index: int, size: int, get_node: GetNode) -> tuple[bytes, ...]:
    """RFC 9162 2.1.3.1 ``PATH(m, D_n)`` for leaf ``leaf_index`` in the tree of ``size`` leaves.

    Walks from the root down to the leaf, noting the sibling subtree of each step; the RFC
    lists them leaf first, so the walk's order is reversed at the end.

    Raises:
        ProofError: ``leaf_index`` is not a leaf of a tree of ``size`` leaves.
    """
    if not 0 <= leaf_index < size:
        raise ProofError(
            Reason.INCLUSION_PROOF_INVALID,
            f"leaf index {leaf_index} is not in a tree of size {size}",
        )
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if leaf_index < start + k:  # m < k: PATH(m, D[0:k]) : MTH(D[k:n])
            path.append(_subtree_hash(start + k, end, get_node))
            end = start + k
        else:  # m >= k: PATH(m - k, D[k:n]) : MTH(D[0:k])
            path.append(_subtree_hash(start, start + k, get_node))
            start += k
    return tuple(reversed(path))


def consistency_proof(old_size: int, new_size: int, get_node: GetNode) -> tuple[bytes, ...]:
    """RFC 9162 2.1.4.1 ``PROOF(m, D_n) = SUBPROOF(m, D_n, true)`` between two tree sizes.

    Empty when ``old_size`` is 0 or equals ``new_size`` (nothing to prove), as in
    transparency-dev/merkle.

    Raises:
        ProofError: ``old_size`` is negative or larger than ``new_size``.
    """
    if not 0 <= old_size <= new_size:
        raise ProofError(
            Reason.CONSISTENCY_PROOF_INVALID,
            f"no consistency proof from size {old_size} to size {new_size}",
        )
    if old_size in (0, new_size):
        return ()
    proof: list[bytes] = []
    start, end, m, whole_old_tree = 0, new_size, old_size, True
    while m != end - start:  # SUBPROOF(m, D[start:end], b) with m counted from start
        k = _split(end - start)
        if m <= k:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            proof.append(_subtree_hash(start + k, end, get_node))
            end = start + k
        else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            proof.append(_subtree_hash(start, start + k, get_node))
            start, m, whole_old_tree = start + k, m - k, False
    if not whole_old_tree:  # m = n and b = false: {MTH(D[m])}
        proof.append(_subtree_hash(start, end, get_node))
    return tuple(reversed(proof))


def _split(n: int) -> int:
    """RFC 9162 2.1.1: ``k``, the largest power of two smaller than ``n`` (``n`` > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_hash(start: int, end: int, get_node: GetNode) -> bytes:
    """``MTH(D[start:end])`` from the complete nodes that decompose the range.

    Every range the RFC recursion visits starts at a multiple of a power of two at least as
    wide as itself, so it is a run of complete nodes of strictly decreasing size (the binary
    digits of its width). The RFC splits a list at its largest power of two, which is exactly
    the first node of that run; folding the run from the right is therefore ``MTH``.
    """
    nodes: list[bytes] = []
    while start < end:
        level = (end - start).bit_length() - 1
        nodes.append(get_node(level, start >> level))
        start += 1 << level
    current = nodes.pop()
    while nodes:
        current = node_hash(nodes.pop(), current)
    return current


# --- verifying ----------------------------------------------------------------------------------


def root_from_inclusion_proof(
    leaf_hash: bytes, leaf_index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` implies for ``leaf_hash`` at ``leaf_index`` (RFC 9162 2.1.3.2).

    Raises:
        ProofError: the proof does not have the shape of a path in a tree of ``size`` leaves.
    """
    _check_hashes(Reason.INCLUSION_PROOF_INVALID, leaf_hash, *proof)
    # Step 1: the leaf must be in the tree.
    if not 0 <= leaf_index < size:
        raise ProofError(
            Reason.INCLUSION_PROOF_INVALID,
            f"leaf index {leaf_index} is not in a tree of size {size}",
        )
    # Steps 2 and 3.
    fn, sn, r = leaf_index, size - 1, leaf_hash
    # Step 4.
    for p in proof:
        if sn == 0:  # 4a: more hashes than levels.
            raise ProofError(Reason.INCLUSION_PROOF_INVALID, "inclusion proof is too long")
        if fn & 1 or fn == sn:  # 4b: p is a left sibling.
            r = node_hash(p, r)
            if not fn & 1:  # 4b ii: skip the levels where this node has no right sibling.
                fn, sn = _shift_while_even(fn, sn)
        else:  # 4b otherwise: p is a right sibling.
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1  # 4c.
    # Step 5 (first half): every level must have been climbed.
    if sn != 0:
        raise ProofError(Reason.INCLUSION_PROOF_INVALID, "inclusion proof is too short")
    return r


def verify_inclusion(
    leaf_hash: bytes, leaf_index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 2.1.3.2: ``leaf_hash`` is leaf ``leaf_index`` of the tree with ``root``.

    Raises:
        ProofError: reason ``INCLUSION_PROOF_INVALID``, naming what does not hold.
    """
    _check_hashes(Reason.INCLUSION_PROOF_INVALID, root)
    computed = root_from_inclusion_proof(leaf_hash, leaf_index, size, proof)
    # Step 5 (second half).
    if computed != root:
        raise ProofError(
            Reason.INCLUSION_PROOF_INVALID,
            f"inclusion proof for leaf {leaf_index} leads to root {computed.hex()}, "
            f"not {root.hex()}",
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 2.1.4.2: the tree of ``old_size`` leaves is a prefix of the one of ``new_size``.

    The trivial cases the RFC leaves out are decided as transparency-dev/merkle does: equal
    sizes need equal roots and an empty proof; an empty old tree is a prefix of any tree
    (its root must still be the empty root) and needs an empty proof.

    Raises:
        ProofError: reason ``CONSISTENCY_PROOF_INVALID``, naming what does not hold.
    """
    _check_hashes(Reason.CONSISTENCY_PROOF_INVALID, old_root, new_root, *proof)
    if not 0 <= old_size <= new_size:
        _fail_consistency(f"size {old_size} cannot precede size {new_size}")
    if old_size in (0, new_size):
        _verify_trivial_consistency(old_size, new_size, old_root, new_root, proof)
        return
    old_computed, new_computed = _roots_from_consistency_proof(old_size, new_size, old_root, proof)
    # Step 7.
    if old_computed != old_root:
        _fail_consistency(f"consistency proof does not lead to the root of size {old_size}")
    if new_computed != new_root:
        _fail_consistency(f"consistency proof does not lead to the root of size {new_size}")


def _roots_from_consistency_proof(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """RFC 9162 2.1.4.2 steps 1 to 6 and the ``sn`` check of step 7, for 0 < m < n."""
    # Step 1.
    if not proof:
        _fail_consistency("consistency proof is empty")
    # Step 2: a power-of-two old tree is itself a node of the new one; the proof omits it.
    path = [old_root, *proof] if old_size & (old_size - 1) == 0 else list(proof)
    # Steps 3 and 4.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    # Step 5.
    fr = sr = path[0]
    # Step 6.
    for c in path[1:]:
        if sn == 0:  # 6a.
            _fail_consistency("consistency proof is too long")
        if fn & 1 or fn == sn:  # 6b: c is a left sibling, in both trees.
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:  # 6b iii.
                fn, sn = _shift_while_even(fn, sn)
        else:  # 6b otherwise: c is a right sibling, only in the new tree.
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1  # 6c.
    # Step 7 (the sn half).
    if sn != 0:
        _fail_consistency("consistency proof is too short")
    return fr, sr


def _verify_trivial_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    if proof:
        _fail_consistency(f"consistency proof from size {old_size} must be empty")
    if old_size == 0 and old_root != EMPTY_ROOT:
        _fail_consistency("the root of an empty tree must be the hash of the empty string")
    if old_size == new_size and old_root != new_root:
        _fail_consistency(f"two different roots for the same size {old_size}")


def _shift_while_even(fn: int, sn: int) -> tuple[int, int]:
    """RFC 9162 2.1.3.2 4b ii / 2.1.4.2 6b iii: shift until LSB(fn) is set or fn is 0."""
    while fn and not fn & 1:
        fn, sn = fn >> 1, sn >> 1
    return fn, sn


def _check_hashes(reason: Reason, *hashes: bytes) -> None:
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise ProofError(reason, f"a hash is {len(h)} bytes long, not {HASH_SIZE}")


def _fail_consistency(message: str) -> NoReturn:
    raise ProofError(Reason.CONSISTENCY_PROOF_INVALID, message)


# --- an in-memory node store --------------------------------------------------------------------


class MemoryNodeStore:
    """A dict of complete nodes: the test double of the SQL node table, and the offline
    verifier's way to recompute roots and proofs from a list of entries."""

    def __init__(self) -> None:
        self._nodes: dict[tuple[int, int], bytes] = {}
        self.size = 0

    def append(self, new_leaf_hash: bytes) -> tuple[StoredNode, ...]:
        """Append one leaf hash; returns the nodes it completed (as the SQL store inserts)."""
        completed = nodes_completed_by_append(self.size, new_leaf_hash, self.get_node)
        for node in completed:
            self._nodes[node.level, node.index] = node.hash
        self.size += 1
        return completed

    def nodes(self) -> dict[tuple[int, int], bytes]:
        """A copy of every complete node, by (level, index)."""
        return dict(self._nodes)

    def get_node(self, level: int, index: int) -> bytes:
        """The stored hash of complete node ``(level, index)``.

        Raises:
            StoreError: the node is not complete in this store.
        """
        try:
            return self._nodes[level, index]
        except KeyError:
            raise StoreError(f"Merkle node ({level}, {index}) is not stored") from None
