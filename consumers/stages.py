"""The two hub stages as plain classes: the faust agents in ``consumers/hub.py`` only feed them.

Both take records from Kafka and return what to publish; neither imports faust, so the tests
drive them against the real databases directly, and the agents stay a few lines long
(STYLE.md lesson 11).

Positions: each stage stores, per topic partition, the next offset it has fully handled. The
sequencer writes it in the same transaction as the entries (exactly once); the verify stage
after its forwards are acknowledged (at least once; the sequencer skips the duplicates). A
record below the stored position is a redelivery and is skipped. A record above it means the
consumer skipped something (faust-streaming issue 606): the gap is read directly from Kafka
first, so no record is ever lost to a premature offset commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from consumers.checkpoints import Checkpointer
from ledger.envelope import VerifiedEvent, open_envelope
from ledger.errors import DataError, Reason, SignatureError
from ledger.rules import LedgerKeyring, RuleContext
from ledger.sequencer import (
    Accepted,
    Head,
    Item,
    Lookups,
    PendingBatch,
    lookups_of,
    sequence_items,
)
from ledger.store import LedgerStore, Position, Rejection, SqlLedgerView
from ledger.transport import Record

ReadRange = Callable[[str, int, int, int], list[Record]]
"""(topic, partition, start, end) -> records [start, end): fills gaps from Kafka."""

VERIFY_STAGE = "verify"
SEQUENCER_STAGE = "sequencer"


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the producer is told about an accepted event (published on cehub.receipts)."""

    event_id: str
    seq: int
    entry_hash: bytes
    producer_id: str
    producer_seq: int


@dataclass(frozen=True, slots=True)
class StageOutput:
    forward: tuple[Record, ...] = ()
    receipts: tuple[Receipt, ...] = ()
    rejections: tuple[Rejection, ...] = ()
    duplicates: int = 0
    positions: tuple[Position, ...] = field(default=())
    waiting: int = 0
    checkpoints: tuple[bytes, ...] = ()


def _unseen(
    records: Sequence[Record], stage: str, store: LedgerStore, read_range: ReadRange
) -> list[Record]:
    """The records not handled yet, in offset order per partition, gaps filled from Kafka."""
    by_partition: dict[tuple[str, int], list[Record]] = {}
    for record in records:
        by_partition.setdefault((record.topic, record.partition), []).append(record)
    todo: list[Record] = []
    for (topic, partition), group in sorted(by_partition.items()):
        group.sort(key=lambda r: r.offset)
        position = store.position(stage, topic, partition)
        fresh = [r for r in group if r.offset >= position]
        if fresh and fresh[0].offset > position:
            fresh = read_range(topic, partition, position, fresh[0].offset) + fresh
        todo.extend(fresh)
    return todo


def _positions(stage: str, records: Sequence[Record]) -> tuple[Position, ...]:
    last: dict[tuple[str, int], int] = {}
    for r in records:
        last[(r.topic, r.partition)] = max(last.get((r.topic, r.partition), -1), r.offset)
    return tuple(Position(stage, t, p, offset + 1) for (t, p), offset in sorted(last.items()))


def _rejection(stage: str, record: Record, error: DataError) -> Rejection:
    return Rejection(
        stage=stage,
        reason=error.reason.value,
        message=error.message,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        envelope=record.value,
    )


class VerifyStage:
    """Decode and signature check, against the key registry in the store (stateless apart
    from it; scales out over the events topic's partitions)."""

    def __init__(self, store: LedgerStore, context: RuleContext, read_range: ReadRange) -> None:
        self._store = store
        self._context = context
        self._read_range = read_range

    def check(self, records: Sequence[Record]) -> StageOutput:
        todo = _unseen(records, VERIFY_STAGE, self._store, self._read_range)
        forward: list[Record] = []
        rejected: list[Rejection] = []
        duplicates = 0
        with self._store.reading() as view:
            keyring = LedgerKeyring(view, self._context.authority_keys)
            opened: list[tuple[Record, VerifiedEvent | None]] = []
            for record in todo:
                try:
                    opened.append((record, open_envelope(record.value, keyring)))
                except SignatureError as exc:
                    if exc.reason in (Reason.UNKNOWN_KEY, Reason.REVOKED_KEY):
                        # The key's enrolment may still be on its way through another
                        # partition, or this is a redelivery of an event accepted before its
                        # key was revoked: the sequencer, which sees the ledger in order,
                        # decides.
                        opened.append((record, None))
                    else:
                        rejected.append(_rejection(VERIFY_STAGE, record, exc))
                except DataError as exc:
                    rejected.append(_rejection(VERIFY_STAGE, record, exc))
            # One query per producer instead of one per event (docs/performance.md).
            view.prefetch(
                Lookups(
                    events=frozenset(
                        (v.event.header.producer_id, v.event.header.event_id)
                        for _r, v in opened
                        if v is not None
                    )
                )
            )
            for record, verified in opened:
                if verified is not None:
                    header = verified.event.header
                    if _already_accepted(view, header.producer_id, header.event_id):
                        duplicates += 1
                        continue
                forward.append(record)
        if rejected:
            with self._store.transaction() as conn:
                self._store.write_rejections(conn, rejected)
        return StageOutput(
            forward=tuple(forward),
            rejections=tuple(rejected),
            duplicates=duplicates,
            positions=_positions(VERIFY_STAGE, todo),
        )

    def done(self, output: StageOutput) -> None:
        """Call once the forwards and rejections of ``output`` are acknowledged by Kafka."""
        self._store.save_positions(output.positions)


def _already_accepted(view: SqlLedgerView, producer_id: str, event_id: str) -> bool:
    return view.seq_of_event(producer_id, event_id) is not None


class SequencerStage:
    """The single writer: decides each envelope in order and commits a batch at once."""

    def __init__(
        self,
        store: LedgerStore,
        context: RuleContext,
        read_range: ReadRange,
        checkpointer: Checkpointer | None = None,
    ) -> None:
        self._store = store
        self._context = context
        self._read_range = read_range
        self._checkpointer = checkpointer

    def checkpoint(self, *, force: bool = False) -> tuple[bytes, ...]:
        """Sign a checkpoint of the current tree if one is due (the timer calls this)."""
        if self._checkpointer is None:
            return ()
        with self._store.transaction() as conn:
            note = self._checkpointer.maybe_sign(conn, self._store.head(conn).size, force=force)
        return (note,) if note else ()

    def process(self, records: Sequence[Record]) -> StageOutput:
        todo = _unseen(records, SEQUENCER_STAGE, self._store, self._read_range)
        if not todo:
            return StageOutput()
        source = {r.offset: r for r in todo}
        with self._store.transaction() as conn:
            head = self._store.head(conn)
            waiting = self._store.waiting(conn)
            view = SqlLedgerView(conn)
            # Ask the store for the whole batch at once what admit() asks per envelope.
            view.prefetch(
                lookups_of([*(r.value for r in todo), *(w.item.envelope for w in waiting)])
            )
            pending = PendingBatch(view)
            decision = sequence_items(
                pending,
                [Item(r.offset, r.value) for r in todo],
                head=head,
                waiting=waiting,
                context=self._context,
            )
            rejected = [
                _rejection(SEQUENCER_STAGE, _source_of(r.item, source, todo[0]), r.error)
                for r in decision.refused
            ]
            positions = _positions(SEQUENCER_STAGE, todo)
            self._store.write_batch(
                conn,
                size_before=head.size,
                accepted=decision.accepted,
                changes=pending.pending,
                rejected=rejected,
                positions=positions,
            )
            self._store.replace_waiting(conn, decision.waiting)
            note = None
            if self._checkpointer is not None and decision.accepted:
                note = self._checkpointer.maybe_sign(conn, decision.head.size)
        return StageOutput(
            checkpoints=(note,) if note else (),
            receipts=tuple(_receipt(a) for a in decision.accepted),
            rejections=tuple(rejected),
            duplicates=decision.duplicates,
            positions=positions,
            waiting=len(decision.waiting),
        )


def _source_of(item: Item, batch: dict[int, Record], any_record: Record) -> Record:
    """The record an item came from; items that waited since an earlier batch are rebuilt
    from the stored position (the sequencer's input is one partition, so offset = position)."""
    found = batch.get(item.position)
    if found is not None:
        return found
    return Record(any_record.topic, any_record.partition, item.position, None, item.envelope)


def _receipt(accepted: Accepted) -> Receipt:
    e = accepted.entry
    return Receipt(e.event_id, e.seq, e.entry_hash, e.producer_id, e.producer_seq)


def current_head(store: LedgerStore) -> Head:
    return store.head()
