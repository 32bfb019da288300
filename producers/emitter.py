"""The emitter: sign events, send them to ``<prefix>.events``, advance the state when acknowledged.

DESIGN.md sections 2 and 4. :func:`emit` takes drafts (``producers/records.py``), a
:class:`~ledger.signing.Signer` and a :class:`Sink`; it numbers the events from the producer's
state file (``producers/state.py``), seals each one into envelope bytes
(:func:`ledger.envelope.seal`), writes them to the outbox, sends them keyed by producer id (so
one producer's events stay in order on one partition) and advances the state only when the
broker acknowledged every one.

:class:`KafkaSink` is the kafka-python adapter: an idempotent producer with ``acks="all"``, one
delivery callback per event, and kafka-python errors translated into
:class:`~ledger.errors.TransportError` (they never escape this module). :class:`MemorySink` is
its in-memory double for tests.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError

from ledger.envelope import seal
from ledger.errors import TransportError
from ledger.signing import Signer
from producers.records import Draft
from producers.state import ProducerState, SeqBatch, StateFile, batch_digest
from schemas.codec import decode_envelope, decode_event

Progress = Callable[[str, int], None]
"""Called with ("signed" or "acknowledged", number of events) as the work advances."""


@dataclass(frozen=True, slots=True)
class Ref:
    """Which event a record is (for the delivery report)."""

    event_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event the broker acknowledged."""

    event_id: str
    seq: int
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Failure:
    """One event the broker did not acknowledge."""

    event_id: str
    seq: int
    error: str


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What became of each record sent since the last flush."""

    delivered: tuple[Delivery, ...]
    failed: tuple[Failure, ...]


class Sink(Protocol):
    """Port to the broker: queue records, then learn what was acknowledged."""

    @property
    def topic(self) -> str: ...

    def send(self, key: bytes, value: bytes, ref: Ref) -> None:
        """Queue one record (may return before it is sent).

        Raises:
            TransportError: the record cannot even be queued.
        """
        ...

    def flush(self, on_ack: Callable[[int], None] | None = None) -> DeliveryReport:
        """Wait until every queued record is acknowledged or failed; report each one."""
        ...


@dataclass(slots=True)
class _Tally:
    """Delivery callbacks land here, from the client's I/O thread."""

    on_ack: Callable[[int], None] | None = None
    delivered: list[Delivery] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, ref: Ref, partition: int, offset: int) -> None:
        with self.lock:
            self.delivered.append(Delivery(ref.event_id, ref.seq, partition, offset))
            callback = self.on_ack
        if callback is not None:
            callback(1)

    def fail(self, ref: Ref, error: str) -> None:
        with self.lock:
            self.failed.append(Failure(ref.event_id, ref.seq, error))

    def report(self) -> DeliveryReport:
        with self.lock:
            report = DeliveryReport(
                tuple(sorted(self.delivered, key=lambda d: d.seq)),
                tuple(sorted(self.failed, key=lambda f: f.seq)),
            )
            self.delivered.clear()
            self.failed.clear()
        return report


class KafkaSink:
    """A kafka-python producer tuned for signed events: nothing lost, nothing duplicated.

    ``acks="all"`` and idempotence (the broker drops a retried batch it already has), retries
    bounded by ``delivery_timeout_ms`` rather than by count, a short linger and large batches
    because a file is sent in one burst. Topic auto-creation is off: the project creates its
    topics (``ledger.transport.ensure_topics``).
    """

    def __init__(
        self, bootstrap: str, topic: str, *, client_id: str, flush_timeout_s: float = 120.0
    ) -> None:
        self._topic = topic
        self._flush_timeout_s = flush_timeout_s
        self._tally = _Tally()
        self._pending: list[tuple[Ref, Any]] = []
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                client_id=client_id,
                acks="all",
                enable_idempotence=True,
                retries=2_147_483_647,
                max_in_flight_requests_per_connection=5,
                delivery_timeout_ms=120_000,
                request_timeout_ms=30_000,
                max_block_ms=30_000,
                linger_ms=20,
                batch_size=512 * 1024,
                allow_auto_create_topics=False,
            )
        except KafkaError as exc:
            raise TransportError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc

    @property
    def topic(self) -> str:
        return self._topic

    def send(self, key: bytes, value: bytes, ref: Ref) -> None:
        try:
            future = self._producer.send(self._topic, key=key, value=value)
        except KafkaError as exc:
            raise TransportError(f"cannot send to {self._topic}: {exc}") from exc
        future.add_callback(lambda meta: self._tally.ok(ref, meta.partition, meta.offset))
        future.add_errback(lambda exc: self._tally.fail(ref, f"{type(exc).__name__}: {exc}"))
        self._pending.append((ref, future))

    def flush(self, on_ack: Callable[[int], None] | None = None) -> DeliveryReport:
        with self._tally.lock:
            self._tally.on_ack = on_ack
            already = len(self._tally.delivered)
        if on_ack is not None and already:
            on_ack(already)
        with suppress(KafkaError):  # records still open are reported as failed below
            self._producer.flush(timeout=self._flush_timeout_s)
        for ref, future in self._pending:
            if not future.is_done:
                self._tally.fail(ref, f"not acknowledged within {self._flush_timeout_s:.0f} s")
        self._pending.clear()
        return self._tally.report()

    def close(self) -> None:
        try:
            self._producer.close(timeout=10)
        except KafkaError as exc:
            raise TransportError(f"closing the Kafka producer failed: {exc}") from exc


class MemorySink:
    """An in-memory :class:`Sink`: keeps what it was given; fails records on request."""

    def __init__(self, topic: str = "memory.events", *, fail_from: int | None = None) -> None:
        self._topic = topic
        self.records: list[tuple[bytes, bytes]] = []
        self.fail_from = fail_from
        """Records sent from this index on (counting all records ever sent) fail."""
        self._sent = 0
        self._queued: list[tuple[Ref, bytes, bytes]] = []

    @property
    def topic(self) -> str:
        return self._topic

    def send(self, key: bytes, value: bytes, ref: Ref) -> None:
        self._queued.append((ref, key, value))

    def flush(self, on_ack: Callable[[int], None] | None = None) -> DeliveryReport:
        delivered, failed = [], []
        for ref, key, value in self._queued:
            if self.fail_from is not None and self._sent >= self.fail_from:
                failed.append(Failure(ref.event_id, ref.seq, "MemorySink: told to fail"))
            else:
                delivered.append(Delivery(ref.event_id, ref.seq, 0, len(self.records)))
                self.records.append((key, value))
                if on_ack is not None:
                    on_ack(1)
            self._sent += 1
        self._queued.clear()
        return DeliveryReport(tuple(delivered), tuple(failed))


@dataclass(frozen=True, slots=True)
class EmitResult:
    """What one :func:`emit` did: the caller prints it and picks the exit code."""

    topic: str
    batch: SeqBatch
    """The sequence numbers of the given drafts."""
    report: DeliveryReport
    """Deliveries of the given drafts (empty when :attr:`already_sent`)."""
    recovered: SeqBatch | None = None
    """An interrupted earlier batch that was re-sent (from its outbox) first."""
    already_sent: bool = False
    """The same events were acknowledged before, as :attr:`batch`; nothing was sent."""

    @property
    def complete(self) -> bool:
        """Every event of the drafts is acknowledged (now or before)."""
        return not self.report.failed and (
            self.already_sent or len(self.report.delivered) == self.batch.count
        )


def emit(
    drafts: Sequence[Draft],
    *,
    signer: Signer,
    state_file: StateFile,
    sink: Sink,
    source: str,
    progress: Progress | None = None,
) -> EmitResult:
    """Number, sign and send ``drafts`` in order; advance the state when all are acknowledged.

    A pending batch left by an interrupted run is re-sent first, from its outbox. If that batch
    holds exactly these drafts (the same file re-emitted after a crash), nothing else is sent.

    Raises:
        TransportError: the interrupted batch could not be completed (nothing new was sent).
        InputError: the state file or outbox is damaged, or another emitter holds the lock.
    """
    event_ids = [draft.event_id for draft in drafts]
    with state_file.locked():
        state, recovered, report = _finish_pending(state_file, sink)
        if recovered is not None and recovered.digest == batch_digest(event_ids):
            return EmitResult(sink.topic, recovered, report, recovered)
        if not event_ids:
            return EmitResult(sink.topic, state.plan((), source), DeliveryReport((), ()), recovered)
        earlier = state.already_sent(event_ids)
        if earlier is not None:
            return EmitResult(sink.topic, earlier, DeliveryReport((), ()), recovered, True)
        batch = state.plan(event_ids, source)
        envelopes = _seal_all(drafts, batch.first_seq, signer, progress)
        batch = dataclasses.replace(batch, outbox_sha256=state_file.write_outbox(envelopes))
        state_file.save(state.begin(batch))  # write-ahead: from here on, a crash re-sends
        refs = [Ref(event_id, batch.first_seq + i) for i, event_id in enumerate(event_ids)]
        ack = None if progress is None else (lambda n: progress("acknowledged", n))
        report = _send(sink, state_file.producer_id, envelopes, refs, ack)
        if not report.failed and len(report.delivered) == batch.count:
            state_file.save(state.acknowledged(batch))
            state_file.remove_outbox()
        return EmitResult(sink.topic, batch, report, recovered)


def _finish_pending(
    state_file: StateFile, sink: Sink
) -> tuple[ProducerState, SeqBatch | None, DeliveryReport]:
    """Re-send the outbox of a batch an earlier run left pending; return the state after it.

    Raises:
        TransportError: the broker still did not acknowledge all of it (state unchanged).
    """
    state = state_file.load()
    pending = state.pending
    if pending is None:
        return state, None, DeliveryReport((), ())
    outbox = state_file.read_outbox(pending)
    report = _send(sink, state_file.producer_id, outbox, _refs_of(outbox))
    if report.failed:
        raise TransportError(
            f"the interrupted batch ({pending.describe()}) is still not acknowledged: "
            f"{report.failed[0].error}"
        )
    state = state.acknowledged(pending)
    state_file.save(state)
    state_file.remove_outbox()
    return state, pending, report


def _seal_all(
    drafts: Sequence[Draft], first_seq: int, signer: Signer, progress: Progress | None
) -> list[bytes]:
    envelopes = []
    for index, draft in enumerate(drafts, start=1):
        envelopes.append(seal(draft.sequenced(first_seq + index - 1), signer))
        if progress is not None and (index % 256 == 0 or index == len(drafts)):
            progress("signed", (index - 1) % 256 + 1)
    return envelopes


def _refs_of(envelopes: Sequence[bytes]) -> list[Ref]:
    """The event id and sequence number inside each envelope (of an outbox)."""
    refs = []
    for envelope in envelopes:
        header = decode_event(decode_envelope(envelope).payload).header
        refs.append(Ref(header.event_id, header.producer_seq))
    return refs


def _send(
    sink: Sink,
    producer_id: str,
    envelopes: Sequence[bytes],
    refs: Sequence[Ref],
    on_ack: Callable[[int], None] | None = None,
) -> DeliveryReport:
    """Send envelopes keyed by producer id (one partition, in order); wait for the verdicts."""
    key = producer_id.encode("utf-8")
    for envelope, ref in zip(envelopes, refs, strict=True):
        sink.send(key, envelope, ref)
    return sink.flush(on_ack)
