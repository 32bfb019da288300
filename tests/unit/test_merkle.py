"""The Merkle tree of ledger/merkle.py against published vectors and the RFC's own definitions.

Three independent sources of truth:

* the RFC 6962 vectors of transparency-dev/merkle (tests/vectors/merkle/, see its README);
* a naive reference written here straight from RFC 9162 2.1.1 (MTH), 2.1.3.1 (PATH) and
  2.1.4.1 (PROOF / SUBPROOF), recursing over leaf ranges, compared with the node-store
  implementation for every size up to ``MAX_SIZE`` and every leaf or pair of sizes;
* properties: every corruption of a valid proof is rejected with a ProofError.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.errors import ProofError, Reason, StoreError
from ledger.merkle import (
    EMPTY_ROOT,
    MemoryNodeStore,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    nodes_completed_by_append,
    root_from_inclusion_proof,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "merkle"
MAX_SIZE = 300
PROPERTY = settings(max_examples=300, deadline=None)


# --- the reference: RFC 9162 section 2.1, literally ---------------------------------------------


class ReferenceTree:
    """MTH, PATH and PROOF exactly as RFC 9162 2.1.1, 2.1.3.1 and 2.1.4.1 define them.

    ``D[lo:hi]`` is written as the pair ``(lo, hi)`` so that MTH can be memoised; nothing else
    differs from the RFC's recursive definitions.
    """

    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves
        self.mth = functools.cache(self._mth)

    def _mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n == 1:
            return hashlib.sha256(b"\x00" + self.leaves[lo]).digest()
        k = largest_power_of_two_below(n)
        return hashlib.sha256(b"\x01" + self.mth(lo, lo + k) + self.mth(lo + k, hi)).digest()

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = largest_power_of_two_below(n)
        if m < k:
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        return self.subproof(m, 0, n, True)

    def subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = largest_power_of_two_below(n)
        if m <= k:
            return [*self.subproof(m, lo, lo + k, b), self.mth(lo + k, hi)]
        return [*self.subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]


def largest_power_of_two_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def path_shape(m: int, n: int) -> tuple[bool, ...] | None:
    """Where PATH(m, D_n) puts each sibling, leaf first: True for a left sibling."""
    if not 0 <= m < n:
        return None
    shape: list[bool] = []
    while n > 1:
        k = largest_power_of_two_below(n)
        shape.append(m >= k)
        m, n = (m, k) if m < k else (m - k, n - k)
    return tuple(reversed(shape))


def proof_shape(m: int, n: int) -> tuple[str, ...] | None:
    """The roles of the PROOF(m, D_n) hashes, old-tree end first (see SUBPROOF)."""
    if not 0 < m < n:
        return None
    shape, b = [], True
    while m != n:
        k = largest_power_of_two_below(n)
        if m <= k:
            shape.append("right")
            n = k
        else:
            shape.append("left")
            m, n, b = m - k, n - k, False
    shape.append("old root" if b else "old subtree")
    return tuple(reversed(shape))


LEAVES = [f"entry {i}".encode() for i in range(MAX_SIZE)]
REFERENCE = ReferenceTree(LEAVES)


def build_store(leaves: list[bytes]) -> MemoryNodeStore:
    store = MemoryNodeStore()
    for data in leaves:
        store.append(leaf_hash(data))
    return store


STORE = build_store(LEAVES)


def counting_reader(size: int) -> tuple[Callable[[int, int], bytes], list[tuple[int, int]]]:
    """STORE.get_node, recording each read and failing on a node outside the first ``size``."""
    reads: list[tuple[int, int]] = []

    def get_node(level: int, index: int) -> bytes:
        assert (index + 1) << level <= size, f"read node ({level}, {index}) beyond size {size}"
        reads.append((level, index))
        return STORE.get_node(level, index)

    return get_node, reads


# --- published vectors --------------------------------------------------------------------------


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


REF = load("rfc6962-reference.json")
REF_LEAVES = [bytes.fromhex(h) for h in REF["leaf_inputs"]]
REF_ROOTS = [bytes.fromhex(h) for h in REF["root_hashes"]]
REF_STORE = build_store(REF_LEAVES)


def hexes(hashes: tuple[bytes, ...]) -> list[str]:
    return [h.hex() for h in hashes]


def test_empty_root_is_the_hash_of_the_empty_string() -> None:
    assert EMPTY_ROOT.hex() == REF["root_hashes"][0]
    assert root_hash(0, REF_STORE.get_node) == EMPTY_ROOT


def test_stored_nodes_match_published_subtree_hashes() -> None:
    for level, row in enumerate(REF["node_hashes"]):
        for index, expected in enumerate(row):
            assert REF_STORE.get_node(level, index).hex() == expected


def test_roots_match_published_roots_at_every_size() -> None:
    for size, expected in enumerate(REF_ROOTS):
        assert root_hash(size, REF_STORE.get_node) == expected


def test_inclusion_proofs_match_published_proofs() -> None:
    # verify_test.go numbers leaves from 1; reference_test.go from 0.
    cases = [(p["leaf"] - 1, p["size"], p["proof"]) for p in REF["inclusion_proofs"]]
    cases += [(p["index"], p["size"], p["proof"]) for p in REF["reference_inclusion_proofs"]]
    for index, size, expected in cases:
        proof = inclusion_proof(index, size, REF_STORE.get_node)
        assert hexes(proof) == expected, (index, size)
        verify_inclusion(leaf_hash(REF_LEAVES[index]), index, size, proof, REF_ROOTS[size])


def test_consistency_proofs_match_published_proofs() -> None:
    for case in REF["consistency_proofs"]:
        old, new = case["size1"], case["size2"]
        proof = consistency_proof(old, new, REF_STORE.get_node)
        assert hexes(proof) == case["proof"], (old, new)
        verify_consistency(old, new, REF_ROOTS[old], REF_ROOTS[new], proof)


def published_nodes(case: dict[str, Any]) -> list[tuple[int, int]]:
    return sorted((level, index) for level, index in case["nodes"])


@pytest.mark.parametrize(
    "case", load("proof-nodes.json")["inclusion"], ids=lambda c: f"{c['index']}of{c['size']}"
)
def test_inclusion_proof_reads_exactly_the_published_nodes(case: dict[str, Any]) -> None:
    get_node, reads = counting_reader(case["size"])
    inclusion_proof(case["index"], case["size"], get_node)
    assert sorted(reads) == published_nodes(case)


@pytest.mark.parametrize(
    "case", load("proof-nodes.json")["consistency"], ids=lambda c: f"{c['size1']}to{c['size2']}"
)
def test_consistency_proof_reads_exactly_the_published_nodes(case: dict[str, Any]) -> None:
    get_node, reads = counting_reader(case["size2"])
    consistency_proof(case["size1"], case["size2"], get_node)
    assert sorted(reads) == published_nodes(case)


def b64s(values: list[str] | None) -> list[bytes]:
    return [base64.b64decode(v) for v in values or []]


def vector_files(kind: str) -> list[Path]:
    return sorted((VECTORS / "testdata" / kind).glob("*/*.json"))


def vector_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


@pytest.mark.parametrize("path", vector_files("inclusion"), ids=vector_id)
def test_inclusion_verifier_agrees_with_cross_implementation_vectors(path: Path) -> None:
    v = json.loads(path.read_text())
    args = (base64.b64decode(v["leafHash"]), v["leafIdx"], v["treeSize"], b64s(v["proof"]))
    if v["wantErr"]:
        with pytest.raises(ProofError) as caught:
            verify_inclusion(*args, base64.b64decode(v["root"]))
        assert caught.value.reason is Reason.INCLUSION_PROOF_INVALID
    else:
        verify_inclusion(*args, base64.b64decode(v["root"]))


@pytest.mark.parametrize("path", vector_files("consistency"), ids=vector_id)
def test_consistency_verifier_agrees_with_cross_implementation_vectors(path: Path) -> None:
    v = json.loads(path.read_text())
    roots = base64.b64decode(v["root1"]), base64.b64decode(v["root2"])
    args = (v["size1"], v["size2"], *roots, b64s(v["proof"]))
    if v["wantErr"]:
        with pytest.raises(ProofError) as caught:
            verify_consistency(*args)
        assert caught.value.reason is Reason.CONSISTENCY_PROOF_INVALID
    else:
        verify_consistency(*args)


# --- the node store -----------------------------------------------------------------------------


def test_store_holds_exactly_the_complete_subtrees_with_their_rfc_hashes() -> None:
    for level in range(MAX_SIZE.bit_length()):
        width = 1 << level
        for index in range(MAX_SIZE // width):
            lo = index * width
            assert STORE.get_node(level, index) == REFERENCE.mth(lo, lo + width)
        with pytest.raises(StoreError):  # the first incomplete node was never written
            STORE.get_node(level, MAX_SIZE // width)


def test_append_writes_one_node_per_trailing_one_bit_and_reads_as_many() -> None:
    store = MemoryNodeStore()
    reads: list[tuple[int, int]] = []

    def get_node(level: int, index: int) -> bytes:
        reads.append((level, index))
        return store.get_node(level, index)

    for size, data in enumerate(LEAVES[:70]):
        reads.clear()
        completed = nodes_completed_by_append(size, leaf_hash(data), get_node)
        trailing_ones = (size ^ (size + 1)).bit_length() - 1
        assert len(completed) == 1 + trailing_ones
        assert len(reads) == trailing_ones
        assert completed[0] == merkle.StoredNode(0, size, leaf_hash(data))
        assert store.append(leaf_hash(data)) == completed


# --- the implementation against the RFC definitions, exhaustively -------------------------------


def test_roots_equal_the_rfc_definition_for_every_size() -> None:
    for size in range(MAX_SIZE + 1):
        get_node, reads = counting_reader(size)
        assert root_hash(size, get_node) == REFERENCE.mth(0, size)
        assert len(reads) == size.bit_count()


def test_inclusion_proofs_equal_rfc_path_and_verify_for_every_leaf_and_size() -> None:
    for size in range(1, MAX_SIZE + 1):
        root = REFERENCE.mth(0, size)
        for index in range(size):
            get_node, reads = counting_reader(size)
            proof = inclusion_proof(index, size, get_node)
            assert list(proof) == REFERENCE.path(index, 0, size), (index, size)
            assert len(reads) <= 2 * (size.bit_length() - 1)  # 2 floor(log2 n)
            verify_inclusion(leaf_hash(LEAVES[index]), index, size, proof, root)


def test_consistency_proofs_equal_rfc_proof_and_verify_for_every_pair_of_sizes() -> None:
    for new in range(MAX_SIZE + 1):
        new_root = REFERENCE.mth(0, new)
        for old in range(new + 1):
            get_node, reads = counting_reader(new)
            proof = consistency_proof(old, new, get_node)
            expected = REFERENCE.proof(old, new) if 0 < old < new else []
            assert list(proof) == expected, (old, new)
            assert len(reads) <= max(0, 2 * new.bit_length() - 1)  # 2 floor(log2 n) + 1
            verify_consistency(old, new, REFERENCE.mth(0, old), new_root, proof)


def test_rejects_proof_requests_outside_the_tree() -> None:
    for index, size in [(0, 0), (1, 1), (-1, 5), (5, 5)]:
        with pytest.raises(ProofError) as caught:
            inclusion_proof(index, size, STORE.get_node)
        assert caught.value.reason is Reason.INCLUSION_PROOF_INVALID
    for old, new in [(-1, 3), (4, 3)]:
        with pytest.raises(ProofError) as caught:
            consistency_proof(old, new, STORE.get_node)
        assert caught.value.reason is Reason.CONSISTENCY_PROOF_INVALID
    with pytest.raises(ProofError):
        root_hash(-1, STORE.get_node)


# --- every corruption is rejected ---------------------------------------------------------------


def corruptions(proof: list[bytes], data: st.DataObject) -> Iterator[tuple[str, list[bytes]]]:
    """Proofs of the same tree that differ from ``proof``: none of them may verify."""
    other = data.draw(st.binary(min_size=32, max_size=32), label="other hash")
    yield "appended hash", [*proof, other]
    yield "prepended hash", [other, *proof]
    yield "appended empty element", [*proof, b""]
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 255), label="bit")
        flipped = bytearray(proof[i])
        flipped[bit // 8] ^= 1 << (bit % 8)
        yield "flipped bit", [*proof[:i], bytes(flipped), *proof[i + 1 :]]
        yield "removed element", proof[:i] + proof[i + 1 :]
        yield "inserted element", [*proof[:i], other, *proof[i:]]
        yield "duplicated element", [*proof[:i], proof[i], *proof[i:]]
        yield "truncated hash", [*proof[:i], proof[i][:31], *proof[i + 1 :]]
        j = data.draw(st.integers(0, len(proof) - 1), label="other element")
        if proof[i] != proof[j]:
            swapped = list(proof)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            yield "swapped elements", swapped


def assert_rejected(reason: Reason, what: str, verify: Callable[..., None], *args: object) -> None:
    with pytest.raises(ProofError) as caught:
        verify(*args)
    assert caught.value.reason is reason, what


@PROPERTY
@given(data=st.data())
def test_rejects_any_corrupted_inclusion_proof(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, MAX_SIZE), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = REFERENCE.path(index, 0, size)
    leaf, root = leaf_hash(LEAVES[index]), REFERENCE.mth(0, size)
    for what, bad in corruptions(proof, data):
        assert_rejected(
            Reason.INCLUSION_PROOF_INVALID, what, verify_inclusion, leaf, index, size, bad, root
        )
    other_leaf = data.draw(st.integers(0, MAX_SIZE - 1).filter(lambda i: i != index))
    for what, bad_leaf, bad_root in [
        ("another leaf", leaf_hash(LEAVES[other_leaf]), root),
        ("another tree's root", leaf, REFERENCE.mth(0, size - 1)),
        ("root and leaf swapped", root, leaf),
    ]:
        if (bad_leaf, bad_root) != (leaf, root):
            assert_rejected(
                Reason.INCLUSION_PROOF_INVALID,
                what,
                verify_inclusion,
                *(bad_leaf, index, size, proof, bad_root),
            )


@PROPERTY
@given(data=st.data())
def test_rejects_inclusion_proof_for_another_index_in_the_same_tree(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, MAX_SIZE), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    wrong = data.draw(st.integers(-2, size + 2).filter(lambda i: i != index), label="wrong")
    proof = REFERENCE.path(index, 0, size)
    leaf, root = leaf_hash(LEAVES[index]), REFERENCE.mth(0, size)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, wrong, size, proof, root)


@PROPERTY
@given(data=st.data())
def test_inclusion_proof_verifies_at_another_size_only_along_the_same_path(
    data: st.DataObject,
) -> None:
    """An inclusion proof binds the leaf to the root; the size it is checked against only
    fixes the shape of the path (RFC 9162 2.1.3.2). Another size or index is accepted exactly
    when PATH takes the same turns there, so the size must come from the signed checkpoint."""
    size = data.draw(st.integers(1, MAX_SIZE), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    wrong_size = data.draw(st.integers(0, 2 * MAX_SIZE), label="wrong size")
    wrong_index = data.draw(st.sampled_from([index, index - 1, index + 1, index ^ 2, index // 2]))
    proof = REFERENCE.path(index, 0, size)
    leaf, root = leaf_hash(LEAVES[index]), REFERENCE.mth(0, size)
    same_path = path_shape(wrong_index, wrong_size) == path_shape(index, size)
    try:
        verify_inclusion(leaf, wrong_index, wrong_size, proof, root)
    except ProofError:
        assert not same_path
    else:
        assert same_path


@PROPERTY
@given(data=st.data())
def test_rejects_any_corrupted_consistency_proof(data: st.DataObject) -> None:
    new = data.draw(st.integers(2, MAX_SIZE), label="new size")
    old = data.draw(st.integers(1, new - 1), label="old size")
    proof = REFERENCE.proof(old, new)
    old_root, new_root = REFERENCE.mth(0, old), REFERENCE.mth(0, new)
    for what, bad in [*corruptions(proof, data), ("empty proof", [])]:
        assert_rejected(
            Reason.CONSISTENCY_PROOF_INVALID,
            what,
            verify_consistency,
            *(old, new, old_root, new_root, bad),
        )
    for what, bad_old, bad_new in [
        ("swapped roots", new_root, old_root),
        ("another old root", REFERENCE.mth(0, old - 1), new_root),
        ("another new root", old_root, REFERENCE.mth(0, new - 1)),
    ]:
        assert_rejected(
            Reason.CONSISTENCY_PROOF_INVALID,
            what,
            verify_consistency,
            *(old, new, bad_old, bad_new, proof),
        )


@PROPERTY
@given(data=st.data())
def test_consistency_proof_verifies_at_other_sizes_only_with_the_same_shape(
    data: st.DataObject,
) -> None:
    """As for inclusion: the sizes only fix which hashes combine in which order."""
    new = data.draw(st.integers(2, MAX_SIZE), label="new size")
    old = data.draw(st.integers(1, new - 1), label="old size")
    wrong_old = data.draw(st.sampled_from([old, old - 1, old + 1, old ^ 2, old * 2, old // 2]))
    wrong_new = data.draw(st.sampled_from([new, new - 1, new + 1, new ^ 2, new * 2, new // 2]))
    proof = REFERENCE.proof(old, new)
    old_root, new_root = REFERENCE.mth(0, old), REFERENCE.mth(0, new)
    same_shape = proof_shape(wrong_old, wrong_new) == proof_shape(old, new)
    try:
        verify_consistency(wrong_old, wrong_new, old_root, new_root, proof)
    except ProofError:
        assert not same_shape
    else:
        assert same_shape


def test_trivial_consistency_needs_an_empty_proof_and_matching_roots() -> None:
    root5 = REFERENCE.mth(0, 5)
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 5, EMPTY_ROOT, root5, [])
    verify_consistency(5, 5, root5, root5, [])
    rejected = [
        (5, 5, root5, REFERENCE.mth(0, 4), []),  # same size, two roots: a fork
        (5, 5, root5, root5, [root5]),  # nothing to prove, yet a proof
        (0, 5, root5, root5, []),  # an empty tree with a non-empty root
        (0, 5, EMPTY_ROOT, root5, [root5]),
        (6, 5, root5, root5, []),  # the tree shrank
        (5, 5, root5[:31], root5[:31], []),  # not a SHA-256 hash
    ]
    for args in rejected:
        with pytest.raises(ProofError):
            verify_consistency(*args)


def test_single_leaf_tree_root_is_the_leaf_hash_and_its_proof_is_empty() -> None:
    leaf = leaf_hash(b"data")
    assert root_from_inclusion_proof(leaf, 0, 1, []) == leaf
    verify_inclusion(leaf, 0, 1, [], leaf)
    for bad_leaf, bad_root in [(leaf, b""), (b"", leaf), (b"", b"")]:
        with pytest.raises(ProofError):
            verify_inclusion(bad_leaf, 0, 1, [], bad_root)


def test_node_hash_is_rfc_9162_interior_hashing() -> None:
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert leaf_hash(b"a") == hashlib.sha256(b"\x00a").digest()
