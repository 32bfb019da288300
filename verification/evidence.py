"""Which ledger entries a certificate or a trace needs (DESIGN.md section 6).

The selection reads the ledger through a small port, :class:`LedgerReader` (the SQL store's
adapter is ``verification/store_reader.py``, the in-memory one :class:`MemoryLedgerReader`),
and returns entry numbers; the certificate then carries those entries' envelopes verbatim.

For a batch it selects:

1. the **provenance**: the entry that made the batch and, recursively, every batch it was made
   from (for a received batch, its ``BatchReceived`` and the ``BatchShipped`` before it), back
   to the ``BatchCreated`` origins;
2. for every **mass-balance** step of that chain, the site's other mass-balance
   transformations of the same period that touch the account (material group) drawn, up to
   that step, with their inputs' provenance: the events that fed and drew the credit, so that
   the verifier can recompute the balance (``verification/claims.py``);
3. the **key events** (``ParticipantEnrolled``, ``KeyRotated``, ``KeyRevoked``) of every
   participant those events name, and of the certifier: they authorise the signers.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from ledger.errors import CertificateError, Reason
from ledger.replay import MemoryLedger
from ledger.rules import period_of
from ledger.state import Batch, KeyRecord, KeyStatus, Participant, Shipment
from schemas.codec import decode_envelope, decode_event
from schemas.events import (
    BatchShipped,
    BatchTransformed,
    CustodyModel,
    Event,
    KeyRevoked,
    KeyRotated,
    ParticipantEnrolled,
)
from verification.claims import MaterialGroup, accounts_drawn
from verification.graph import ProvenanceError, ProvenanceGraph

KEY_EVENT_TYPES = ("ParticipantEnrolled", "KeyRotated", "KeyRevoked")
"""``entries.event_type`` of the events that authorise keys."""


class LedgerReader(Protocol):
    """Read access to a ledger's projections and entries (the selection's only port)."""

    def batch(self, batch_id: str) -> Batch | None: ...
    def shipment(self, shipment_id: str) -> Shipment | None: ...
    def participant(self, participant_id: str) -> Participant | None: ...
    def key(self, key_id: str) -> KeyRecord | None: ...
    def envelopes(self, seqs: Iterable[int]) -> Mapping[int, bytes]:
        """The stored envelope bytes of entries ``seqs``."""
        ...

    def key_event_seqs(self, participant_ids: Collection[str]) -> tuple[int, ...]:
        """Entries enrolling these participants or rotating / revoking their keys."""
        ...

    def mass_balance_seqs(self, site_id: str) -> tuple[int, ...]:
        """Entries of MASS_BALANCE transformations at ``site_id``."""
        ...

    def children(self, batch_id: str) -> tuple[str, ...]:
        """Batches made (partly) from ``batch_id``."""
        ...


@dataclass(frozen=True, slots=True)
class Selection:
    """The entries a certificate or trace of ``batch_ids`` carries."""

    batch_ids: tuple[str, ...]
    evidence_seqs: tuple[int, ...]
    key_event_seqs: tuple[int, ...]
    required_size: int
    """A checkpoint must cover this many entries to prove the selection."""


def decode_entries(envelopes: Mapping[int, bytes]) -> list[tuple[int, Event]]:
    """``(seq, event)`` of stored envelopes, in seq order, decoded without checking signatures
    (the store accepted them; a certificate's verifier checks them itself)."""
    return [
        (seq, decode_event(decode_envelope(envelopes[seq]).payload)) for seq in sorted(envelopes)
    ]


def select_evidence(
    reader: LedgerReader,
    batch_ids: Iterable[str],
    *,
    material_group: MaterialGroup,
    certifier: tuple[str, str] | None = None,
    credit_evidence: bool = True,
) -> Selection:
    """Select the entries of points 1-3 of the module docstring for ``batch_ids``;
    ``certifier`` is (participant id, key id) of the key that will sign.

    Raises:
        ProvenanceError: a batch, or the certifier's key, is not in the ledger.
        CertificateError: (REVOKED_KEY) the certifier's key was revoked or rotated away.
    """
    roots = tuple(dict.fromkeys(batch_ids))
    seqs = _provenance(reader, roots)
    if credit_evidence:
        seqs |= _credit_evidence(reader, roots, seqs, material_group)
    events = decode_entries(reader.envelopes(seqs))
    participants = set(_participants_named(event for _seq, event in events))
    needed = set(seqs)
    if certifier is not None:
        certifier_id, key_id = certifier
        key = reader.key(key_id)
        if key is None or key.participant_id != certifier_id:
            raise ProvenanceError(f"key {key_id} is not a key of {certifier_id!r} in the ledger")
        if key.status is not KeyStatus.ACTIVE:
            raise CertificateError(
                Reason.REVOKED_KEY,
                f"key {key_id} of {certifier_id!r} is {key.status.value.lower()}",
            )
        participants.add(certifier_id)
        needed.add(key.added_seq)
    for participant_id in participants:
        enrolled = reader.participant(participant_id)
        if enrolled is None:
            raise ProvenanceError(f"participant {participant_id!r} is not enrolled")
        needed.add(enrolled.enrolled_seq)
    return Selection(
        roots,
        tuple(sorted(seqs)),
        tuple(sorted(reader.key_event_seqs(participants))),
        max(needed) + 1,
    )


def _provenance(reader: LedgerReader, roots: Iterable[str]) -> set[int]:
    """Entries that made ``roots`` and everything upstream of them (point 1)."""
    seqs: set[int] = set()
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        batch_id = stack.pop()
        if batch_id in seen:
            continue
        seen.add(batch_id)
        batch = reader.batch(batch_id)
        if batch is None:
            raise ProvenanceError(f"batch {batch_id!r} is not in the ledger")
        seqs.add(batch.created_seq)
        shipment = reader.shipment(batch_id)
        if shipment is not None and shipment.received_seq == batch.created_seq:
            seqs.add(shipment.shipped_seq)
        stack.extend(parent.batch_id for parent in batch.parents)
    return seqs


def _credit_evidence(
    reader: LedgerReader, roots: Iterable[str], seqs: set[int], material_group: MaterialGroup
) -> set[int]:
    """The site's mass-balance transformations feeding the accounts drawn (point 2)."""
    graph = ProvenanceGraph.from_events(decode_entries(reader.envelopes(seqs)))
    extra: set[int] = set()
    for root in roots:
        for account, up_to in accounts_drawn(graph, root, material_group).items():
            candidates = [s for s in reader.mass_balance_seqs(account.site_id) if s <= up_to]
            for seq, event in decode_entries(reader.envelopes(candidates)):
                if not isinstance(event, BatchTransformed):
                    continue
                if period_of(event.header.occurred_at) != account.period:
                    continue
                inputs = [reader.batch(i.batch_id) for i in event.inputs]
                materials = [b.material for b in inputs if b is not None]
                materials += [o.material for o in event.outputs]
                if account.material_group in {material_group(m) for m in materials}:
                    extra.add(seq)
                    extra |= _provenance(reader, [i.batch_id for i in event.inputs])
    return extra


def _participants_named(events: Iterable[Event]) -> Iterable[str]:
    for event in events:
        yield event.header.producer_id
        if isinstance(event, BatchShipped):
            yield event.receiver_id


def downstream_batches(reader: LedgerReader, batch_id: str) -> tuple[str, ...]:
    """``batch_id`` and every batch made (partly) from it, nearest first.

    Raises:
        ProvenanceError: the batch is not in the ledger.
    """
    if reader.batch(batch_id) is None:
        raise ProvenanceError(f"batch {batch_id!r} is not in the ledger")
    seen, queue = {batch_id}, [batch_id]
    for current in queue:
        for child in reader.children(current):
            if child not in seen:
                seen.add(child)
                queue.append(child)
    return tuple(queue)


class MemoryLedgerReader:
    """:class:`LedgerReader` over a :class:`~ledger.replay.MemoryLedger` (tests, offline audit)."""

    def __init__(self, ledger: MemoryLedger) -> None:
        self._ledger = ledger

    def batch(self, batch_id: str) -> Batch | None:
        return self._ledger.state.batch(batch_id)

    def shipment(self, shipment_id: str) -> Shipment | None:
        return self._ledger.state.shipment(shipment_id)

    def participant(self, participant_id: str) -> Participant | None:
        return self._ledger.state.participant(participant_id)

    def key(self, key_id: str) -> KeyRecord | None:
        return self._ledger.state.key(key_id)

    def envelopes(self, seqs: Iterable[int]) -> Mapping[int, bytes]:
        return {seq: self._ledger.entries[seq].envelope for seq in seqs}

    def key_event_seqs(self, participant_ids: Collection[str]) -> tuple[int, ...]:
        found = []
        for entry in self._ledger.entries:
            if entry.event_type in KEY_EVENT_TYPES:
                event = decode_event(decode_envelope(entry.envelope).payload)
                if isinstance(event, ParticipantEnrolled | KeyRotated | KeyRevoked) and (
                    event.participant_id in participant_ids
                ):
                    found.append(entry.seq)
        return tuple(found)

    def mass_balance_seqs(self, site_id: str) -> tuple[int, ...]:
        found = []
        for entry in self._ledger.entries:
            if entry.event_type == "BatchTransformed":
                event = decode_event(decode_envelope(entry.envelope).payload)
                if (
                    isinstance(event, BatchTransformed)
                    and event.site_id == site_id
                    and event.custody_model is CustodyModel.MASS_BALANCE
                ):
                    found.append(entry.seq)
        return tuple(found)

    def children(self, batch_id: str) -> tuple[str, ...]:
        made = [
            b
            for b in self._ledger.state.batches.values()
            if any(p.batch_id == batch_id for p in b.parents)
        ]
        return tuple(b.batch_id for b in sorted(made, key=lambda b: b.created_seq))
