"""A whole ledger in memory: the sequencer's decisions applied one envelope at a time.

The audit replays the stored envelopes through it and compares the result with the store; the
tests use it to run scenarios through exactly the code the sequencer runs, without a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.chain import GENESIS_HASH
from ledger.merkle import MemoryNodeStore, root_hash
from ledger.rules import RuleContext
from ledger.sequencer import Accepted, Duplicate, Entry, Head, PendingBatch, admit
from ledger.state import (
    Batch,
    CertificateRecord,
    CreditAccount,
    KeyRecord,
    MemoryState,
    Participant,
    Shipment,
)


@dataclass
class MemoryLedger:
    """Implements :class:`~ledger.sequencer.LedgerView` and appends through :func:`admit`."""

    context: RuleContext
    state: MemoryState = field(default_factory=MemoryState)
    entries: list[Entry] = field(default_factory=list)
    tree: MemoryNodeStore = field(default_factory=MemoryNodeStore)
    _events: dict[tuple[str, str], int] = field(default_factory=dict)
    _producer_seqs: dict[tuple[str, int], str] = field(default_factory=dict)

    # LedgerView (the StateView half is delegated to ``state``)
    def seq_of_event(self, producer_id: str, event_id: str) -> int | None:
        return self._events.get((producer_id, event_id))

    def event_of_producer_seq(self, producer_id: str, producer_seq: int) -> str | None:
        return self._producer_seqs.get((producer_id, producer_seq))

    def participant(self, participant_id: str) -> Participant | None:
        return self.state.participant(participant_id)

    def key(self, key_id: str) -> KeyRecord | None:
        return self.state.key(key_id)

    def batch(self, batch_id: str) -> Batch | None:
        return self.state.batch(batch_id)

    def shipment(self, shipment_id: str) -> Shipment | None:
        return self.state.shipment(shipment_id)

    def credit(self, site_id: str, material_group: str, period: str) -> CreditAccount | None:
        return self.state.credit(site_id, material_group, period)

    def certificate(self, certificate_id: str) -> CertificateRecord | None:
        return self.state.certificate(certificate_id)

    def site_owner(self, site_id: str) -> str | None:
        return self.state.site_owner(site_id)

    @property
    def head(self) -> Head:
        if not self.entries:
            return Head(0, GENESIS_HASH)
        last = self.entries[-1]
        return Head(last.seq + 1, last.entry_hash)

    @property
    def root(self) -> bytes:
        """RFC 9162 root hash of the envelopes appended so far."""
        return root_hash(self.tree.size, self.tree.get_node)

    def append(self, envelope: bytes) -> Accepted | Duplicate:
        """Decide ``envelope`` at the end of the ledger; on acceptance, apply it.

        Raises:
            DataError: as :func:`ledger.sequencer.admit`; the ledger is then unchanged.
        """
        outcome = admit(PendingBatch(self), envelope, head=self.head, context=self.context)
        if isinstance(outcome, Accepted):
            entry = outcome.entry
            self.state.apply(outcome.changes)
            self.entries.append(entry)
            self.tree.append(entry.leaf_hash)
            self._events[(entry.producer_id, entry.event_id)] = entry.seq
            self._producer_seqs[(entry.producer_id, entry.producer_seq)] = entry.event_id
        return outcome
