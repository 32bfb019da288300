"""The hub's faust app: a verify agent on the events topic, the sequencer agent on the
verified topic. Each agent only turns faust events into records, calls its stage, publishes
what the stage returns and waits for Kafka's acknowledgement (STYLE.md lesson 11).

Run several workers with the same settings for more verify throughput: they share one
consumer group, so the events topic's partitions spread across them while the one-partition
verified topic, and hence the sequencer, stays with exactly one worker at a time.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

import faust
from faust.streams import Stream
from faust.types import EventT

from consumers.checkpoints import Checkpointer
from consumers.stages import (
    SEQUENCER_STAGE,
    VERIFY_STAGE,
    Receipt,
    SequencerStage,
    StageOutput,
    VerifyStage,
)
from consumers.worker import project_app, run_worker
from ledger.config import Settings
from ledger.store import LedgerStore, Rejection
from ledger.transport import (
    EndOffsets,
    Record,
    ensure_topics,
    ledger_topics,
    publish_values,
    read_range,
)
from ledger.wiring import ledger_key, open_store, rule_context

VERIFY_BATCH = 500
SEQUENCER_BATCH = 1000
BATCH_WINDOW_SECONDS = 0.05


def receipt_json(receipt: Receipt) -> bytes:
    return json.dumps(
        {
            "event_id": receipt.event_id,
            "seq": receipt.seq,
            "entry_hash": receipt.entry_hash.hex(),
            "producer_id": receipt.producer_id,
            "producer_seq": receipt.producer_seq,
        },
        sort_keys=True,
    ).encode()


def rejection_json(rejection: Rejection) -> bytes:
    """The rejected topic's record: stable reason code, human message, the original bytes."""
    return json.dumps(
        {
            "stage": rejection.stage,
            "reason": rejection.reason,
            "message": rejection.message,
            "source": {
                "topic": rejection.source_topic,
                "partition": rejection.source_partition,
                "offset": rejection.source_offset,
            },
            "envelope_b64": base64.b64encode(rejection.envelope).decode(),
        },
        sort_keys=True,
    ).encode()


def _records(events: Sequence[EventT[bytes]]) -> list[Record]:
    return [
        Record(
            topic=e.message.topic,
            partition=e.message.partition,
            offset=e.message.offset,
            key=e.key if isinstance(e.key, bytes) else None,
            value=e.value,
        )
        for e in events
    ]


def build_hub_app(
    settings: Settings,
    *,
    ledger_id: str,
    verify: VerifyStage,
    sequencer: SequencerStage,
    checkpoint_seconds: float = 10.0,
) -> faust.App:
    """The faust app of one hub worker (no I/O until the worker starts it).

    The consumer group is named after the store's ledger id: workers of one ledger share it,
    and a fresh store starts from the beginning of the topics instead of inheriting offsets.
    """
    app = project_app(settings, f"{settings.topic_prefix}-hub-{ledger_id}")

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(settings.topic(name), key_serializer="raw", value_serializer="raw")

    events_topic = raw_topic("events")
    verified_topic = raw_topic("verified")
    rejected_topic = raw_topic("rejected")
    receipts_topic = raw_topic("receipts")
    checkpoints_topic = raw_topic("checkpoints")

    async def publish(output: StageOutput) -> None:
        # Straight to faust's producer (aiokafka underneath) rather than Topic.send: the
        # records are bytes already, and Topic.send's per-message layers (FutureMessage,
        # serializers, callbacks) cost as much as the send itself (docs/performance.md).
        producer = await app.maybe_start_producer()
        pending = []

        async def send(topic: faust.TopicT, key: bytes | None, value: bytes) -> None:
            name = topic.get_topic_name()
            pending.append(await producer.send(name, key, value, None, None, None))

        for record in output.forward:
            await send(verified_topic, record.key, record.value)
        for rejection in output.rejections:
            await send(rejected_topic, None, rejection_json(rejection))
        for receipt in output.receipts:
            await send(receipts_topic, receipt.producer_id.encode(), receipt_json(receipt))
        for note in output.checkpoints:
            await send(checkpoints_topic, None, note)
        for future in pending:
            await future  # the broker acknowledged it

    @app.agent(events_topic, concurrency=1)
    async def verify_events(stream: faust.StreamT[bytes]) -> None:
        if not isinstance(stream, Stream):  # take_events is on the concrete class only
            raise TypeError(f"unexpected stream type {type(stream)!r}")
        async for events in stream.take_events(VERIFY_BATCH, within=BATCH_WINDOW_SECONDS):
            output = verify.check(_records(events))
            await publish(output)
            verify.done(output)

    @app.agent(verified_topic, concurrency=1)
    async def sequence_events(stream: faust.StreamT[bytes]) -> None:
        if not isinstance(stream, Stream):
            raise TypeError(f"unexpected stream type {type(stream)!r}")
        async for events in stream.take_events(SEQUENCER_BATCH, within=BATCH_WINDOW_SECONDS):
            output = sequencer.process(_records(events))
            await publish(output)

    @app.timer(checkpoint_seconds)  # type: ignore[untyped-decorator]  # faust is untyped here
    async def checkpoint_when_due() -> None:
        # Only the worker that owns the verified topic sequences, so only it signs.
        if app.consumer.assignment() and any(
            tp.topic == verified_topic.get_topic_name() for tp in app.consumer.assignment()
        ):
            await publish(StageOutput(checkpoints=sequencer.checkpoint()))

    return app


def caught_up(settings: Settings, store: LedgerStore, offsets: EndOffsets) -> bool:
    """Whether both stages have handled every record now in their input topics."""
    for stage, topic in ((VERIFY_STAGE, "events"), (SEQUENCER_STAGE, "verified")):
        name = settings.topic(topic)
        done = store.positions(stage)
        ends = offsets.of(name)
        if any(done.get((name, partition), 0) < end for partition, end in ends.items()):
            return False
    return True


def run_hub(settings: Settings, *, until_idle: bool = False, loglevel: str = "WARNING") -> None:
    """Create the topics if needed, then run one hub worker in this process."""
    ensure_topics(settings.bootstrap, ledger_topics(settings))
    store = open_store(settings)
    context = rule_context(settings)

    def read(topic: str, partition: int, start: int, end: int) -> list[Record]:
        return read_range(settings.bootstrap, topic, partition, start, end)

    checkpointer = Checkpointer(
        origin=settings.ledger_name,
        key=ledger_key(settings),
        every_entries=settings.checkpoint_every_entries,
        every_seconds=settings.checkpoint_every_seconds,
    )
    sequencer = SequencerStage(store, context, read, checkpointer)
    app = build_hub_app(
        settings,
        ledger_id=store.ledger_id,
        verify=VerifyStage(store, context, read),
        sequencer=sequencer,
        checkpoint_seconds=settings.checkpoint_every_seconds,
    )
    offsets = EndOffsets(settings.bootstrap)
    try:
        run_worker(
            app,
            caught_up=(lambda: caught_up(settings, store, offsets)) if until_idle else None,
            loglevel=loglevel,
        )
    finally:
        offsets.close()
    # A checkpoint that covers everything sequenced, so that proofs and certificates can be
    # made at once; published like the others, so witnesses see the newest tree head too.
    final = sequencer.checkpoint(force=True)
    if final:
        publish_values(settings.bootstrap, settings.topic("checkpoints"), final)
