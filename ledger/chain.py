"""The hash chain that links ledger entries (DESIGN.md section 5).

``entry_hash = SHA-256(DOMAIN || seq as 8-byte big-endian || prev_entry_hash || SHA-256(envelope))``

The domain tag keeps an entry hash from ever being confused with a Merkle leaf or node hash
(RFC 9162 uses 0x00/0x01 prefixes; this tag starts with neither). The chain is what a single
auditor replays from entry 0; the Merkle tree over the same envelopes is what gives everyone
else short proofs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from ledger.errors import ChainError, Reason

DOMAIN = b"cehub/ledger-entry/v1\x00"
GENESIS_HASH = bytes(32)
"""The ``prev_entry_hash`` of entry 0."""


@dataclass(frozen=True, slots=True)
class ChainLink:
    """What the chain needs of a stored entry."""

    seq: int
    envelope_sha256: bytes
    entry_hash: bytes


def entry_hash(seq: int, prev_entry_hash: bytes, envelope_sha256: bytes) -> bytes:
    """The hash of entry ``seq``, committing to its predecessor and its envelope bytes."""
    if not 0 <= seq < 2**64:  # 8 bytes, big-endian
        raise ValueError("seq must be in [0, 2**64)")
    if len(prev_entry_hash) != 32 or len(envelope_sha256) != 32:
        raise ValueError("hashes are 32 bytes")
    return hashlib.sha256(
        DOMAIN + seq.to_bytes(8, "big") + prev_entry_hash + envelope_sha256
    ).digest()


def verify_chain(links: Iterable[ChainLink], *, start_prev: bytes = GENESIS_HASH) -> bytes:
    """Check that ``links`` (in seq order from the first given) chain; return the head hash.

    Raises:
        ChainError: at the first entry whose seq is out of order or whose hash does not
            recompute; the message names the seq.
    """
    prev = start_prev
    expected_seq: int | None = None
    for link in links:
        if expected_seq is not None and link.seq != expected_seq:
            raise ChainError(
                Reason.CHAIN_BROKEN, f"entry {link.seq} follows entry {expected_seq - 1}"
            )
        try:
            recomputed = entry_hash(link.seq, prev, link.envelope_sha256)
        except ValueError as exc:  # a corrupted row (short hash, bad seq) is data, not a crash
            raise ChainError(Reason.CHAIN_BROKEN, f"entry {link.seq}: malformed: {exc}") from exc
        if recomputed != link.entry_hash:
            raise ChainError(
                Reason.CHAIN_BROKEN,
                f"entry {link.seq}: stored entry hash does not match its content and predecessor",
            )
        prev = link.entry_hash
        expected_seq = link.seq + 1
    return prev
