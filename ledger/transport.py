"""Kafka adapter shared by the emitter, the hub and the CLI: topic declarations and admin calls.

The project creates its own topics (broker auto-creation is off) with explicit partition counts
and retention: the ledger topics keep their data forever, because the ledger can be rebuilt from
them. kafka-python errors are translated into :class:`ledger.errors.TransportError` here and
never escape this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from ledger.config import Settings
from ledger.errors import TransportError

KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic the project owns: name, partitions and the configs it is created with."""

    name: str
    partitions: int
    configs: Mapping[str, str]


def ledger_topics(settings: Settings) -> tuple[TopicSpec, ...]:
    """The topics of DESIGN.md section 2.

    ``events`` is partitioned by producer (the verify stage scales out on it); ``verified`` has
    one partition because the sequencer is the single writer of the ledger.
    """
    return (
        TopicSpec(settings.topic("events"), settings.event_partitions, KEEP_FOREVER),
        TopicSpec(settings.topic("verified"), 1, KEEP_FOREVER),
        TopicSpec(settings.topic("rejected"), 1, KEEP_FOREVER),
        TopicSpec(settings.topic("receipts"), 1, KEEP_FOREVER),
        TopicSpec(settings.topic("checkpoints"), 1, KEEP_FOREVER),
    )


@contextmanager
def admin_client(bootstrap: str, timeout_ms: int = 10_000) -> Iterator[KafkaAdminClient]:
    """An admin client whose connection errors come out as TransportError."""
    try:
        client = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="cehub-admin",
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
        )
    except KafkaError as exc:
        raise TransportError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    try:
        yield client
    except KafkaError as exc:
        raise TransportError(f"Kafka admin request to {bootstrap} failed: {exc}") from exc
    finally:
        client.close()


def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec]) -> tuple[str, ...]:
    """Create the topics that do not exist yet; return the names created (idempotent)."""
    wanted = list(specs)
    with admin_client(bootstrap) as admin:
        existing = set(admin.list_topics())
        missing = [s for s in wanted if s.name not in existing]
        if not missing:
            return ()
        new = [NewTopic(s.name, s.partitions, 1, topic_configs=dict(s.configs)) for s in missing]
        # Another process may win the race; the topic then exists, which is all we need.
        with suppress(TopicAlreadyExistsError):
            admin.create_topics(new, wait_for_metadata=True)
    return tuple(s.name for s in missing)


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    bootstrap: str
    cluster_id: str | None
    broker_count: int
    topics: tuple[str, ...]


def describe_broker(bootstrap: str, timeout_ms: int = 5_000) -> BrokerInfo:
    """What `cehub status` shows: does the broker answer, which cluster, which topics."""
    with admin_client(bootstrap, timeout_ms) as admin:
        cluster = admin.describe_cluster()
        topics = tuple(sorted(t for t in admin.list_topics() if not t.startswith("__")))
    return BrokerInfo(
        bootstrap=bootstrap,
        cluster_id=cluster.get("cluster_id"),
        broker_count=len(cluster.get("brokers", [])),
        topics=topics,
    )


class EndOffsets:
    """Reads high-water marks through one long-lived consumer (the until-idle check polls
    twice a second; a new connection per poll costs more than the poll)."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._consumer: KafkaConsumer | None = None

    def of(self, topic: str) -> dict[int, int]:
        """The next offset to be written in each partition of ``topic``."""
        try:
            if self._consumer is None:
                self._consumer = KafkaConsumer(
                    bootstrap_servers=self._bootstrap,
                    client_id="cehub-offsets",
                    request_timeout_ms=10_000,
                    enable_auto_commit=False,
                )
            partitions = self._consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            return {tp.partition: off for tp, off in self._consumer.end_offsets(tps).items()}
        except KafkaError as exc:
            raise TransportError(f"cannot read end offsets of {topic}: {exc}") from exc

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The next offset to be written in each partition of ``topic`` (its high-water marks)."""
    reader = EndOffsets(bootstrap)
    try:
        return reader.of(topic)
    finally:
        reader.close()


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record as the stages see it, whoever consumed it (faust or kafka-python)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def read_range(bootstrap: str, topic: str, partition: int, start: int, end: int) -> list[Record]:
    """Records ``[start, end)`` of one partition, read directly with kafka-python.

    The stages use it to fill a gap between their stored position and the first record faust
    hands them (faust-streaming can commit past in-flight messages, issue 606), so correctness
    never depends on faust's committed offsets.
    """
    if end <= start:
        return []
    tp = TopicPartition(topic, partition)
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="cehub-gap-reader",
            enable_auto_commit=False,
            request_timeout_ms=30_000,
        )
    except KafkaError as exc:
        raise TransportError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    records: list[Record] = []
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        while len(records) < end - start:
            batch = consumer.poll(timeout_ms=5_000).get(tp, [])
            if not batch:
                raise TransportError(f"{topic}[{partition}] gave no record at offset {start}")
            records.extend(
                Record(m.topic, m.partition, m.offset, m.key, m.value)
                for m in batch
                if m.offset < end
            )
    except KafkaError as exc:
        raise TransportError(f"reading {topic}[{partition}] failed: {exc}") from exc
    finally:
        consumer.close()
    return records


def publish_values(bootstrap: str, topic: str, values: Iterable[bytes]) -> None:
    """Send ``values`` to ``topic`` and wait for the broker's acknowledgement of each."""
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    except KafkaError as exc:
        raise TransportError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    try:
        for future in [producer.send(topic, value=value) for value in values]:
            future.get(timeout=30)
    except KafkaError as exc:
        raise TransportError(f"publishing to {topic} failed: {exc}") from exc
    finally:
        producer.close()
