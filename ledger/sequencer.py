"""The sequencer's decision for one envelope, pure: duplicate, accepted entry, or rejection.

The sequencer is the single writer of a ledger (DESIGN.md section 2). For each envelope, in
order, it re-opens the envelope against the key registry *as of this position in the ledger*
(a key revoked one entry earlier no longer signs), skips a repeated event id, rejects a reused
producer sequence number, applies the business rules and links the entry into the hash chain.
It never trusts the verify stage's verdict: whoever can write to the internal topic still
cannot append an unsigned event. The re-verification costs one Ed25519 check per event on the
single writer; docs/performance.md measures it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields, is_dataclass
from typing import Protocol

from ledger.chain import entry_hash
from ledger.envelope import VerifiedEvent, open_envelope
from ledger.errors import DataError, EncodingError, Reason, RuleViolation, SignatureError
from ledger.merkle import leaf_hash
from ledger.rules import LedgerKeyring, RuleContext, decide
from ledger.state import Changes, MemoryState, Overlay, StateView
from schemas.codec import decode_envelope, decode_event


class LedgerView(StateView, Protocol):
    """The state plus the entry indexes the sequencer needs for duplicates and replays."""

    def seq_of_event(self, producer_id: str, event_id: str) -> int | None: ...
    def event_of_producer_seq(self, producer_id: str, producer_seq: int) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Entry:
    """An accepted event as the ledger stores it."""

    seq: int
    event_id: str
    event_type: str
    producer_id: str
    producer_seq: int
    key_id: str
    envelope: bytes
    envelope_sha256: bytes
    entry_hash: bytes

    @property
    def leaf_hash(self) -> bytes:
        """The entry's RFC 9162 Merkle leaf hash: the leaf data is the envelope bytes."""
        return leaf_hash(self.envelope)


@dataclass(frozen=True, slots=True)
class Accepted:
    entry: Entry
    changes: Changes


@dataclass(frozen=True, slots=True)
class Duplicate:
    event_id: str
    seq: int
    """The entry that already holds this event."""


class PendingBatch:
    """The committed ledger (``base``) plus the entries decided but not yet committed.

    ``state`` is the state view the rules read; the two indexes answer duplicate and replay
    questions across both the database and the batch in flight.
    """

    def __init__(self, base: LedgerView) -> None:
        self._base = base
        self.state = Overlay(base)
        self._events: dict[tuple[str, str], int] = {}
        self._producer_seqs: dict[tuple[str, int], str] = {}

    def seq_of_event(self, producer_id: str, event_id: str) -> int | None:
        found = self._events.get((producer_id, event_id))
        return found if found is not None else self._base.seq_of_event(producer_id, event_id)

    def event_of_producer_seq(self, producer_id: str, producer_seq: int) -> str | None:
        found = self._producer_seqs.get((producer_id, producer_seq))
        if found is not None:
            return found
        return self._base.event_of_producer_seq(producer_id, producer_seq)

    def record(self, accepted: Accepted) -> None:
        entry = accepted.entry
        self._events[(entry.producer_id, entry.event_id)] = entry.seq
        self._producer_seqs[(entry.producer_id, entry.producer_seq)] = entry.event_id
        self.state.pending.apply(accepted.changes)

    @property
    def pending(self) -> MemoryState:
        return self.state.pending


@dataclass(frozen=True, slots=True)
class Head:
    """Where the chain ends: the number of entries and the last entry hash."""

    size: int
    entry_hash: bytes


def admit(
    view: PendingBatch, envelope: bytes, *, head: Head, context: RuleContext
) -> Accepted | Duplicate:
    """Decide one envelope at the end of the ledger described by ``head``.

    On acceptance the caller must record it in ``view`` and advance ``head`` (``advance``).

    Raises:
        DataError: the envelope does not open (encoding, signature, key) or breaks a rule.
    """
    try:
        verified = open_envelope(envelope, LedgerKeyring(view.state, context.authority_keys))
    except SignatureError as exc:
        redelivered = _redelivery(view, envelope) if exc.reason is Reason.REVOKED_KEY else None
        if redelivered is None:
            raise
        return redelivered
    header = verified.event.header
    # An event id is scoped to its producer: another producer cannot make an honest event
    # pass for a duplicate by copying its id first.
    existing = view.seq_of_event(header.producer_id, header.event_id)
    if existing is not None:
        return Duplicate(header.event_id, existing)
    holder = view.event_of_producer_seq(header.producer_id, header.producer_seq)
    if holder is not None:
        raise RuleViolation(
            Reason.SEQUENCE_REPLAY,
            f"producer {header.producer_id!r} already used sequence number "
            f"{header.producer_seq} for event {holder}",
        )
    signer = LedgerKeyring(view.state, context.authority_keys).resolve(verified.key_id)
    changes = decide(view.state, verified.event, signer=signer, seq=head.size, context=context)
    return Accepted(_entry(verified, head), changes)


def _redelivery(view: PendingBatch, envelope: bytes) -> Duplicate | None:
    """The Duplicate of an accepted event delivered again after its key was rotated away or
    revoked, else None.

    Kafka delivers at least once and a redelivered event is skipped (DESIGN.md section 2), even
    when the key that signed it no longer signs. The header is read without checking the
    signature: that is safe because a Duplicate appends and changes nothing, and it is only
    answered when the id, producer and sequence number all match one stored entry.
    """
    try:
        header = decode_event(decode_envelope(envelope).payload).header
    except EncodingError:
        return None
    seq = view.seq_of_event(header.producer_id, header.event_id)
    holder = view.event_of_producer_seq(header.producer_id, header.producer_seq)
    if seq is None or holder != header.event_id:
        return None
    return Duplicate(header.event_id, seq)


def _entry(verified: VerifiedEvent, head: Head) -> Entry:
    digest = verified.envelope_sha256
    header = verified.event.header
    return Entry(
        seq=head.size,
        event_id=header.event_id,
        event_type=type(verified.event).__name__,
        producer_id=header.producer_id,
        producer_seq=header.producer_seq,
        key_id=verified.key_id,
        envelope=verified.envelope_bytes,
        envelope_sha256=digest,
        entry_hash=entry_hash(head.size, head.entry_hash, digest),
    )


def advance(head: Head, accepted: Accepted) -> Head:
    """The head after appending ``accepted``."""
    return Head(accepted.entry.seq + 1, accepted.entry.entry_hash)


# --- a batch in input order, with events that wait for what they depend on -------------------

DEFERRABLE = frozenset(
    {Reason.UNKNOWN_KEY, Reason.UNKNOWN_PARTICIPANT, Reason.UNKNOWN_BATCH, Reason.UNKNOWN_SHIPMENT}
)
"""Reasons that may only mean "not yet": events of different producers travel on different
partitions, so a receipt can overtake its shipment and a first batch its owner's enrolment."""

DEFER_WINDOW = 10_000
"""How many later input records an event may wait for its dependency before it is rejected.
Counted in input positions, not seconds, so that the same input always gives the same ledger."""


@dataclass(frozen=True, slots=True)
class Item:
    """One input record: its position in the sequencer's input (a total order) and bytes."""

    position: int
    envelope: bytes


@dataclass(frozen=True, slots=True)
class Waiting:
    """An item whose dependency has not arrived, with the reason it could not be admitted."""

    item: Item
    reason: Reason
    message: str
    references: frozenset[str]
    """Every id the waiting event names: it is retried when one of them appears."""

    @classmethod
    def of(cls, item: Item, reason: Reason, message: str) -> Waiting:
        return cls(item, reason, message, references_of(item.envelope))


def references_of(envelope: bytes) -> frozenset[str]:
    """The ids an envelope names: its key id and every ``*_id`` field of its event.

    An over-approximation of what it depends on, which is all the retry needs: retrying an
    event too often costs time, never correctness.
    """
    try:
        sealed = decode_envelope(envelope)
        event = decode_event(sealed.payload)
    except DataError:
        return frozenset()
    return frozenset({sealed.key_id, *_ids_in(event)})


def _ids_in(record: object) -> Iterator[str]:
    for _name, value in _named_ids(record):
        yield value


def _named_ids(record: object) -> Iterator[tuple[str, str]]:
    """(field name, value) of every ``*_id`` string field of ``record``, nested ones too."""
    for f in fields(record):  # type: ignore[arg-type]
        value = getattr(record, f.name)
        if isinstance(value, str) and f.name.endswith("_id"):
            yield f.name, value
        elif is_dataclass(value):
            yield from _named_ids(value)
        elif isinstance(value, tuple):
            for item in value:
                if is_dataclass(item):
                    yield from _named_ids(item)


@dataclass(frozen=True, slots=True)
class Lookups:
    """What deciding a batch of envelopes will ask the committed ledger, asked in advance.

    The sequencer decides one envelope at a time, and each asks whether its event id or its
    producer sequence number is taken and whether the batches and shipments it names exist:
    one indexed query each, a network round trip each on PostgreSQL. A store answers these
    for a whole batch in a few ``IN`` queries (:meth:`ledger.store.SqlLedgerView.prefetch`).
    Read from the envelopes *without* checking their signatures: it only warms a cache of
    committed rows; every decision is still taken by :func:`admit` on verified content.
    """

    events: frozenset[tuple[str, str]] = frozenset()
    """(producer id, event id)"""
    producer_seqs: frozenset[tuple[str, int]] = frozenset()
    """(producer id, producer sequence number)"""
    batch_ids: frozenset[str] = frozenset()
    shipment_ids: frozenset[str] = frozenset()


def lookups_of(envelopes: Iterable[bytes]) -> Lookups:
    """The :class:`Lookups` of ``envelopes``; those that do not decode are left out."""
    events: set[tuple[str, str]] = set()
    producer_seqs: set[tuple[str, int]] = set()
    ids: dict[str, set[str]] = {"batch_id": set(), "shipment_id": set()}
    for envelope in envelopes:
        try:
            event = decode_event(decode_envelope(envelope).payload)
        except DataError:
            continue
        header = event.header
        events.add((header.producer_id, header.event_id))
        producer_seqs.add((header.producer_id, header.producer_seq))
        for name, value in _named_ids(event):
            if name in ids:
                ids[name].add(value)
    return Lookups(
        frozenset(events),
        frozenset(producer_seqs),
        frozenset(ids["batch_id"]),
        frozenset(ids["shipment_id"]),
    )


def provided_by(changes: Changes) -> frozenset[str]:
    """The ids an accepted event makes available to waiting events."""
    return frozenset(
        {
            *(p.participant_id for p in changes.participants),
            *(k.key_id for k in changes.keys),
            *(b.batch_id for b in changes.batches),
            *(s.shipment_id for s in changes.shipments),
        }
    )


@dataclass(frozen=True, slots=True)
class Refused:
    item: Item
    error: DataError


@dataclass
class BatchDecision:
    accepted: list[Accepted]
    refused: list[Refused]
    waiting: list[Waiting]
    duplicates: int
    head: Head


def sequence_items(
    pending: PendingBatch,
    items: Sequence[Item],
    *,
    head: Head,
    waiting: Sequence[Waiting],
    context: RuleContext,
    window: int = DEFER_WINDOW,
) -> BatchDecision:
    """Decide ``items`` in order after the ``waiting`` ones from earlier batches.

    Each acceptance gives every waiting item another chance, in the order they arrived; an
    item that has waited ``window`` positions is refused with the reason it was waiting on.
    The result depends only on the input order, never on batch boundaries or the clock.
    """
    decision = BatchDecision([], [], list(waiting), 0, head)
    for item in items:
        _expire(decision, item.position, window)
        accepted = _try(pending, item, decision, context)
        if accepted is not None:
            _retry_waiting(pending, decision, context, provided_by(accepted.changes))
    return decision


def _try(
    pending: PendingBatch, item: Item, decision: BatchDecision, context: RuleContext
) -> Accepted | None:
    """Admit one item into ``decision``; the acceptance, or None."""
    try:
        outcome = admit(pending, item.envelope, head=decision.head, context=context)
    except DataError as exc:
        if exc.reason in DEFERRABLE:
            decision.waiting.append(Waiting.of(item, exc.reason, exc.message))
        else:
            decision.refused.append(Refused(item, exc))
        return None
    if isinstance(outcome, Duplicate):
        decision.duplicates += 1
        return None
    pending.record(outcome)
    decision.head = advance(decision.head, outcome)
    decision.accepted.append(outcome)
    return outcome


def _retry_waiting(
    pending: PendingBatch, decision: BatchDecision, context: RuleContext, provided: frozenset[str]
) -> None:
    """Give the waiting items that name something just provided another chance, in arrival
    order. Acceptances during a pass provide more ids; a further pass retries the items those
    may unblock, until a pass accepts nothing."""
    while provided and decision.waiting:
        queue, decision.waiting = decision.waiting, []
        newly: set[str] = set()
        for waiting in queue:
            if not waiting.references & (provided | newly):
                decision.waiting.append(waiting)
                continue
            accepted = _try(pending, waiting.item, decision, context)
            if accepted is not None:
                newly |= provided_by(accepted.changes)
        provided = frozenset(newly)


def _expire(decision: BatchDecision, position: int, window: int) -> None:
    keep = []
    for waiting in decision.waiting:
        if position - waiting.item.position > window:
            error = RuleViolation(
                waiting.reason, f"{waiting.message} (still missing after {window} later events)"
            )
            decision.refused.append(Refused(waiting.item, error))
        else:
            keep.append(waiting)
    decision.waiting = keep
