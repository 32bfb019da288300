"""Self-contained proof documents: what ``cehub proof ... --json`` prints, checked offline.

A proof document carries everything a buyer or auditor needs to check a claim about the ledger
with no access to the hub: the RFC 9162 proof, the C2SP signed checkpoint(s) whose root it
leads to and, for inclusion, the leaf itself (the entry's envelope bytes). The only trusted
input is the ledger's note verifier key (``cehub ledger key``). The fields map one to one onto
c2sp.org/tlog-proof@v1 (index, proof hashes leaf first, checkpoint) plus the leaf data; the
format is JSON because the envelope has to travel with it.

Building a document reads O(log n) stored nodes (:mod:`ledger.merkle`); verifying one is
pure. Parsing and verifying are separate steps so that a caller can tell "this is not a proof
document" (:func:`parse_document`) from "this proof is false" (``verify_*_document``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from ledger.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from ledger.errors import ProofError, Reason, StoreError
from ledger.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    GetNode,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_from_inclusion_proof,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

INCLUSION_FORMAT = "cehub.inclusion-proof/v1"
CONSISTENCY_FORMAT = "cehub.consistency-proof/v1"


@dataclass(frozen=True, slots=True)
class InclusionDocument:
    """Entry ``leaf_index`` (its envelope is the leaf data) is in the tree of ``tree_size``.

    ``checkpoint`` is the ledger's signed note at exactly ``tree_size``, or ``None`` when the
    ledger signed none at that size (the document then proves nothing to an outsider).
    """

    origin: str
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    root_hash: bytes
    proof: tuple[bytes, ...]
    checkpoint: bytes | None
    envelope: bytes


@dataclass(frozen=True, slots=True)
class ConsistencyDocument:
    """The tree of ``old_size`` leaves is a prefix of the tree of ``new_size`` leaves."""

    origin: str
    old_size: int
    new_size: int
    old_root: bytes
    new_root: bytes
    proof: tuple[bytes, ...]
    old_checkpoint: bytes | None
    new_checkpoint: bytes | None


ProofDocument = InclusionDocument | ConsistencyDocument


# --- reading a proof's nodes in one go ----------------------------------------------------------

Address = tuple[int, int]
_PLACEHOLDER = bytes(HASH_SIZE)


def nodes_read_by(*plans: Callable[[GetNode], object]) -> tuple[Address, ...]:
    """The ``(level, index)`` of every node ``plans`` read, in first-read order.

    Which nodes a root or a proof reads depends on the sizes and indices only, never on the
    hashes read (ledger/merkle.py walks the tree shape), so running a plan against a recorder
    that answers zeros gives exactly the nodes the real run will ask for.
    """
    seen: dict[Address, None] = {}

    def record(level: int, index: int) -> bytes:
        seen[level, index] = None
        return _PLACEHOLDER

    for plan in plans:
        plan(record)
    return tuple(seen)


def prefetched(
    fetch: Callable[[Sequence[Address]], Mapping[Address, bytes]],
    *plans: Callable[[GetNode], object],
) -> GetNode:
    """A ``get_node`` answering from one ``fetch`` of every node ``plans`` will read.

    A store then serves a proof's O(log n) nodes in one round trip instead of one each
    (``ledger.store.nodes_at``; benchmarks/proofs.py measures the difference).

    Raises:
        StoreError: (from the returned function) a node the fetch did not return.
    """
    nodes = fetch(nodes_read_by(*plans))

    def get_node(level: int, index: int) -> bytes:
        try:
            return nodes[level, index]
        except KeyError:
            raise StoreError(f"Merkle node ({level}, {index}) is not stored") from None

    return get_node


# --- building (the serving side) ----------------------------------------------------------------


def inclusion_document(
    *,
    origin: str,
    leaf_index: int,
    tree_size: int,
    envelope: bytes,
    get_node: GetNode,
    checkpoint: Checkpoint | None = None,
    note: bytes | None = None,
) -> InclusionDocument:
    """The inclusion proof of ``envelope`` as leaf ``leaf_index``, in at most ``2 log2 n`` reads.

    The root is recomputed from the proof (no extra read) and, when the signed ``checkpoint``
    is given, compared with it: a store that no longer matches what the ledger signed must not
    serve a proof that would fail at the buyer's.

    Raises:
        ProofError: the index is outside the tree, or the stored tree contradicts ``checkpoint``.
    """
    hashed = leaf_hash(envelope)
    proof = inclusion_proof(leaf_index, tree_size, get_node)
    root = root_from_inclusion_proof(hashed, leaf_index, tree_size, proof)
    if checkpoint is not None:
        _check_served_root(checkpoint, tree_size, root)
    return InclusionDocument(origin, leaf_index, tree_size, hashed, root, proof, note, envelope)


def consistency_document(
    *,
    origin: str,
    old_size: int,
    new_size: int,
    get_node: GetNode,
    old: tuple[Checkpoint, bytes] | None = None,
    new: tuple[Checkpoint, bytes] | None = None,
) -> ConsistencyDocument:
    """The consistency proof between two sizes with both stored roots (O(log n) reads).

    ``old`` / ``new`` are the signed checkpoints at exactly those sizes, when there are any;
    their roots must be the stored ones.

    Raises:
        ProofError: the sizes are out of order, or the stored tree contradicts a checkpoint.
    """
    proof = consistency_proof(old_size, new_size, get_node)
    old_root, new_root = root_hash(old_size, get_node), root_hash(new_size, get_node)
    for signed, size, root in ((old, old_size, old_root), (new, new_size, new_root)):
        if signed is not None:
            _check_served_root(signed[0], size, root)
    verify_consistency(old_size, new_size, old_root, new_root, proof)
    return ConsistencyDocument(
        origin,
        old_size,
        new_size,
        old_root,
        new_root,
        proof,
        old[1] if old else None,
        new[1] if new else None,
    )


def _check_served_root(checkpoint: Checkpoint, size: int, root: bytes) -> None:
    if checkpoint.size != size or checkpoint.root_hash != root:
        raise ProofError(
            Reason.CHECKPOINT_FORK,
            f"the stored tree at size {size} has root {_b64(root)}, but the ledger signed "
            f"{_b64(checkpoint.root_hash)} at size {checkpoint.size}: the store was altered",
        )


# --- JSON ---------------------------------------------------------------------------------------


def document_json(doc: ProofDocument) -> dict[str, Any]:
    """The JSON object of a document: hashes and envelope in standard base64, notes as text."""
    if isinstance(doc, InclusionDocument):
        return {
            "format": INCLUSION_FORMAT,
            "origin": doc.origin,
            "leaf_index": doc.leaf_index,
            "tree_size": doc.tree_size,
            "leaf_hash": _b64(doc.leaf_hash),
            "root_hash": _b64(doc.root_hash),
            "proof": [_b64(h) for h in doc.proof],
            "checkpoint": _text(doc.checkpoint),
            "envelope": _b64(doc.envelope),
        }
    return {
        "format": CONSISTENCY_FORMAT,
        "origin": doc.origin,
        "old_size": doc.old_size,
        "new_size": doc.new_size,
        "old_root": _b64(doc.old_root),
        "new_root": _b64(doc.new_root),
        "proof": [_b64(h) for h in doc.proof],
        "old_checkpoint": _text(doc.old_checkpoint),
        "new_checkpoint": _text(doc.new_checkpoint),
    }


def parse_document(data: object) -> ProofDocument:
    """A document from its decoded JSON object; strict about types, lenient about extra keys.

    Raises:
        ProofError: (``INCLUSION_PROOF_INVALID`` / ``CONSISTENCY_PROOF_INVALID``) the object
            is not a proof document of a known format.
    """
    if not isinstance(data, Mapping):
        _malformed(Reason.INCLUSION_PROOF_INVALID, "a proof document is a JSON object")
    fmt = data.get("format")
    if fmt == INCLUSION_FORMAT:
        return _parse_inclusion(_Fields(data, Reason.INCLUSION_PROOF_INVALID))
    if fmt == CONSISTENCY_FORMAT:
        return _parse_consistency(_Fields(data, Reason.CONSISTENCY_PROOF_INVALID))
    raise ProofError(
        Reason.INCLUSION_PROOF_INVALID,
        f"not a proof document: unknown format {fmt!r} "
        f"(expected {INCLUSION_FORMAT} or {CONSISTENCY_FORMAT})",
    )


def _parse_inclusion(f: _Fields) -> InclusionDocument:
    return InclusionDocument(
        origin=f.text("origin"),
        leaf_index=f.integer("leaf_index"),
        tree_size=f.integer("tree_size"),
        leaf_hash=f.binary("leaf_hash"),
        root_hash=f.binary("root_hash"),
        proof=f.hashes("proof"),
        checkpoint=f.note("checkpoint"),
        envelope=f.binary("envelope"),
    )


def _parse_consistency(f: _Fields) -> ConsistencyDocument:
    return ConsistencyDocument(
        origin=f.text("origin"),
        old_size=f.integer("old_size"),
        new_size=f.integer("new_size"),
        old_root=f.binary("old_root"),
        new_root=f.binary("new_root"),
        proof=f.hashes("proof"),
        old_checkpoint=f.note("old_checkpoint"),
        new_checkpoint=f.note("new_checkpoint"),
    )


@dataclass(frozen=True, slots=True)
class _Fields:
    """Typed access to the fields of a document; every miss names the field."""

    data: Mapping[str, object]
    reason: Reason

    def _get(self, name: str) -> object:
        if name not in self.data:
            _malformed(self.reason, f"field {name!r} is missing")
        return self.data[name]

    def text(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str):
            _malformed(self.reason, f"field {name!r} must be a string")
        return value

    def integer(self, name: str) -> int:
        value = self._get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            _malformed(self.reason, f"field {name!r} must be a non-negative integer")
        return value

    def binary(self, name: str) -> bytes:
        return _unb64(self.reason, name, self.text(name))

    def hashes(self, name: str) -> tuple[bytes, ...]:
        value = self._get(name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            _malformed(self.reason, f"field {name!r} must be a list of base64 strings")
        return tuple(_unb64(self.reason, f"{name}[{i}]", v) for i, v in enumerate(value))

    def note(self, name: str) -> bytes | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            _malformed(self.reason, f"field {name!r} must be a signed note (text) or null")
        return value.encode("utf-8")


# --- verifying (offline) ------------------------------------------------------------------------


def verify_inclusion_document(
    doc: InclusionDocument, verifiers: Iterable[NoteVerifier], origin: str
) -> Checkpoint:
    """Check the note's signature, the proof against the signed root, the leaf against the
    envelope (RFC 9162 2.1.3.2); return the signed checkpoint the entry is proven against.

    Raises:
        ProofError: naming the first check that failed (``CHECKPOINT_INVALID`` for the note,
            ``INCLUSION_PROOF_INVALID`` for the rest).
    """
    reason = Reason.INCLUSION_PROOF_INVALID
    checkpoint = _signed_checkpoint(doc.checkpoint, verifiers, origin, doc.tree_size, reason)
    _same(reason, "root_hash", doc.root_hash, checkpoint.root_hash, doc.tree_size)
    if leaf_hash(doc.envelope) != doc.leaf_hash:
        raise ProofError(reason, "leaf_hash is not SHA-256(0x00 || envelope): wrong envelope")
    verify_inclusion(doc.leaf_hash, doc.leaf_index, doc.tree_size, doc.proof, checkpoint.root_hash)
    return checkpoint


def verify_consistency_document(
    doc: ConsistencyDocument, verifiers: Iterable[NoteVerifier], origin: str
) -> tuple[Checkpoint, Checkpoint]:
    """Check both notes' signatures and the proof between their roots (RFC 9162 2.1.4.2).

    The old tree may be empty (size 0): its root is the hash of the empty string and needs no
    signature. Returns the (old, new) checkpoints.

    Raises:
        ProofError: naming the first check that failed.
    """
    reason = Reason.CONSISTENCY_PROOF_INVALID
    verifiers = tuple(verifiers)
    if doc.old_size == 0:
        old = Checkpoint(origin, 0, EMPTY_ROOT)
    else:
        old = _signed_checkpoint(doc.old_checkpoint, verifiers, origin, doc.old_size, reason)
    new = _signed_checkpoint(doc.new_checkpoint, verifiers, origin, doc.new_size, reason)
    _same(reason, "old_root", doc.old_root, old.root_hash, doc.old_size)
    _same(reason, "new_root", doc.new_root, new.root_hash, doc.new_size)
    verify_consistency(doc.old_size, doc.new_size, old.root_hash, new.root_hash, doc.proof)
    return old, new


def _signed_checkpoint(
    note: bytes | None,
    verifiers: Iterable[NoteVerifier],
    origin: str,
    size: int,
    reason: Reason,
) -> Checkpoint:
    if note is None:
        raise ProofError(
            reason,
            f"the document carries no signed checkpoint of size {size}: nothing vouches for "
            "its root (ask for a proof at a checkpoint size)",
        )
    checkpoint = open_checkpoint(note, verifiers, origin)
    if checkpoint.size != size:
        raise ProofError(reason, f"the signed checkpoint is of size {checkpoint.size}, not {size}")
    return checkpoint


def _same(reason: Reason, field: str, claimed: bytes, signed: bytes, size: int) -> None:
    if claimed != signed:
        raise ProofError(
            reason,
            f"{field} {_b64(claimed)} is not the signed root {_b64(signed)} of size {size}",
        )


# --- helpers ------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _text(note: bytes | None) -> str | None:
    return note.decode("utf-8") if note is not None else None


def _unb64(reason: Reason, name: str, value: str) -> bytes:
    try:
        decoded = base64.b64decode(value, validate=True)
    except binascii.Error:
        _malformed(reason, f"field {name!r} is not base64")
    return decoded


def _malformed(reason: Reason, message: str) -> NoReturn:
    raise ProofError(reason, f"not a proof document: {message}")
