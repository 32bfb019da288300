"""The audit: rebuild the ledger from its stored entries alone and compare (DESIGN.md section 5).

Given the stored entries in seq order, the stored projections and the stored Merkle root, it
recomputes the hash chain, re-opens every envelope (every signature again, against the key
registry as of that entry), re-applies every rule through the sequencer's own code
(:class:`~ledger.replay.MemoryLedger`), and compares the rebuilt projections and root with the
stored ones. It stops at the first divergence and names it (seq, table, key, what differs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, fields

from ledger.chain import ChainLink, verify_chain
from ledger.errors import ChainError, DataError, Reason
from ledger.merkle import StoredNode
from ledger.replay import MemoryLedger
from ledger.rules import RuleContext
from ledger.sequencer import Accepted, Entry
from ledger.state import MemoryState


class AuditError(ChainError):
    """The stored ledger diverges from what its entries imply."""


@dataclass(frozen=True, slots=True)
class AuditReport:
    entries: int
    head_hash: bytes
    root_hash: bytes


def audit(
    stored: Iterable[Entry],
    *,
    stored_state: MemoryState,
    stored_nodes: Iterable[StoredNode],
    context: RuleContext,
) -> AuditReport:
    """Replay ``stored`` and compare; return a report or raise at the first divergence.

    Raises:
        AuditError: the first divergence, with its seq or table and key in the message.
    """
    replay = MemoryLedger(context)
    links: list[ChainLink] = []
    for entry in stored:
        _check_entry_bytes(entry)
        links.append(ChainLink(entry.seq, entry.envelope_sha256, entry.entry_hash))
        _replay_entry(replay, entry)
    verify_chain(links)
    _compare_state(stored_state, replay.state)
    _compare_nodes(stored_nodes, replay.tree.nodes())
    return AuditReport(len(replay.entries), replay.head.entry_hash, replay.root)


def _compare_nodes(stored: Iterable[StoredNode], rebuilt: dict[tuple[int, int], bytes]) -> None:
    """Every stored complete-subtree hash must be the rebuilt one: proofs are served from
    these rows, so one wrong row would make the ledger hand out proofs that fail."""
    seen = 0
    for node in stored:
        seen += 1
        want = rebuilt.get((node.level, node.index))
        if want != node.hash:
            raise AuditError(
                Reason.PROJECTION_MISMATCH,
                f"Merkle node (level {node.level}, index {node.index}): stored "
                f"{node.hash.hex()} != rebuilt {want.hex() if want else 'nothing'}",
            )
    if seen != len(rebuilt):
        raise AuditError(
            Reason.PROJECTION_MISMATCH,
            f"{len(rebuilt) - seen} Merkle node(s) implied by the entries are not stored",
        )


def _check_entry_bytes(entry: Entry) -> None:
    if hashlib.sha256(entry.envelope).digest() != entry.envelope_sha256:
        raise AuditError(
            Reason.CHAIN_BROKEN,
            f"entry {entry.seq}: the stored envelope does not hash to its envelope_sha256",
        )


def _replay_entry(replay: MemoryLedger, entry: Entry) -> None:
    if entry.seq != replay.head.size:
        raise AuditError(
            Reason.CHAIN_BROKEN, f"entry {entry.seq} found where entry {replay.head.size} belongs"
        )
    try:
        outcome = replay.append(entry.envelope)
    except DataError as exc:
        raise AuditError(
            Reason.REPLAY_DIVERGED,
            f"entry {entry.seq} ({entry.event_type} {entry.event_id}) would be rejected now: "
            f"{exc.reason}: {exc.message}",
        ) from exc
    if not isinstance(outcome, Accepted):
        raise AuditError(
            Reason.REPLAY_DIVERGED, f"entry {entry.seq} repeats event {entry.event_id}"
        )
    rebuilt = outcome.entry
    for name in ("event_id", "producer_id", "producer_seq", "key_id", "entry_hash"):
        if getattr(rebuilt, name) != getattr(entry, name):
            raise AuditError(
                Reason.CHAIN_BROKEN if name == "entry_hash" else Reason.REPLAY_DIVERGED,
                f"entry {entry.seq}: stored {name} {_show(getattr(entry, name))} != "
                f"recomputed {_show(getattr(rebuilt, name))}",
            )


def _compare_state(stored: MemoryState, rebuilt: MemoryState) -> None:
    for table in (f.name for f in fields(MemoryState)):
        have: dict[object, object] = getattr(stored, table)
        want: dict[object, object] = getattr(rebuilt, table)
        for key in sorted(set(have) | set(want), key=repr):
            if have.get(key) != want.get(key):
                raise AuditError(
                    Reason.PROJECTION_MISMATCH,
                    f"{table} {key!r}: {_difference(have.get(key), want.get(key))}",
                )


def _difference(stored: object, rebuilt: object) -> str:
    if stored is None:
        return "missing from the store"
    if rebuilt is None:
        return "in the store but not implied by any entry"
    diffs = [
        f"{f.name} stored {getattr(stored, f.name)!r} != rebuilt {getattr(rebuilt, f.name)!r}"
        for f in fields(stored)  # type: ignore[arg-type]
        if getattr(stored, f.name) != getattr(rebuilt, f.name)
    ]
    return "; ".join(diffs)


def _show(value: object) -> str:
    return value.hex() if isinstance(value, bytes) else repr(value)
