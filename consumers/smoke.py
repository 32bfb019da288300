"""The walking skeleton's faust app: raw records from one topic into the SQL store.

It exists to prove the infrastructure path (kafka-python -> Kafka -> faust -> SQLite or
PostgreSQL) independently of the ledger's own logic; `cehub smoke` and the integration tests
run it.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import AsyncIterator
from dataclasses import dataclass

import faust
from faust.streams import Stream
from kafka import KafkaProducer
from kafka.errors import KafkaError

from consumers.worker import project_app, run_worker
from ledger.config import Settings
from ledger.errors import TransportError
from ledger.sqlstore import SmokeStore, open_engine
from ledger.transport import Record, TopicSpec, end_offsets, ensure_topics

SMOKE_BATCH = 200


def build_smoke_app(settings: Settings, store: SmokeStore, topic_name: str) -> faust.App:
    """A faust app whose one agent stores each record of ``topic_name`` exactly once."""
    app = project_app(settings, f"{settings.topic_prefix}-smoke")
    topic = app.topic(topic_name, key_serializer="raw", value_serializer="raw")

    @app.agent(topic)
    async def store_records(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        if not isinstance(stream, Stream):  # take_events is on the concrete class only
            raise TypeError(f"unexpected stream type {type(stream)!r}")
        async for events in stream.take_events(SMOKE_BATCH, within=0.2):
            batch = [
                Record(
                    topic=e.message.topic,
                    partition=e.message.partition,
                    offset=e.message.offset,
                    key=e.key,
                    value=e.value,
                )
                for e in events
            ]
            store.record(batch)
            yield None

    return app


@dataclass(frozen=True, slots=True)
class SmokeResult:
    topic: str
    sent: int
    expected: int
    stored: int


def run_smoke(settings: Settings, *, count: int, timeout: float) -> SmokeResult:
    """Send ``count`` records, run the smoke worker until caught up, report what was stored.

    The worker runs in a child process: faust owns its event loop and signal handlers, and a
    child keeps them away from the caller (a CLI, a test) while still being a real worker.
    """
    topic_name = settings.topic("smoke")
    ensure_topics(settings.bootstrap, [TopicSpec(topic_name, 2, {})])
    sent = send_raw(settings.bootstrap, topic_name, count)
    expected = sum(end_offsets(settings.bootstrap, topic_name).values())
    child = multiprocessing.get_context("spawn").Process(
        target=_smoke_worker_main, args=(settings, topic_name), daemon=True
    )
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.terminate()
        child.join()
        raise TransportError(f"the smoke worker did not catch up within {timeout:.0f}s")
    store = SmokeStore(open_engine(settings.effective_database_url))
    return SmokeResult(topic_name, sent, expected, store.count_topic(topic_name))


def send_raw(bootstrap: str, topic: str, count: int) -> int:
    """Send ``count`` small records with kafka-python and wait for every acknowledgement."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        futures = [
            producer.send(topic, key=f"k{i % 7}".encode(), value=f"smoke {i}".encode())
            for i in range(count)
        ]
        for future in futures:
            future.get(timeout=30)
    except KafkaError as exc:
        raise TransportError(f"sending to {topic} failed: {exc}") from exc
    finally:
        producer.close()
    return count


def _smoke_worker_main(settings: Settings, topic_name: str) -> None:
    store = SmokeStore(open_engine(settings.effective_database_url))
    app = build_smoke_app(settings, store, topic_name)

    def caught_up() -> bool:
        ends = end_offsets(settings.bootstrap, topic_name)
        done = store.positions()
        return all(done.get((topic_name, p), 0) >= end for p, end in ends.items())

    run_worker(app, caught_up=caught_up)
