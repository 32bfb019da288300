"""The infrastructure path end to end: kafka-python -> real Kafka -> faust agent -> SQL store."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine, func, select

from ledger.sqlstore import SmokeStore, smoke_records
from tests.conftest import cehub

pytestmark = pytest.mark.kafka


def test_record_sent_to_kafka_lands_in_the_store_exactly_once(
    kafka_bootstrap: str,
    topic_prefix: str,
    database_url: str,
    engines: Callable[[str], Engine],
) -> None:
    env = {"CEHUB_BOOTSTRAP": kafka_bootstrap, "CEHUB_TOPIC_PREFIX": topic_prefix}
    out = cehub("--database-url", database_url, "smoke", "--count", "25", env=env)
    assert "sent 25 record(s)" in out
    assert "holds 25 of the topic's 25 record(s)" in out

    # A second run sends 25 more; the worker resumes from the stored position, so the 25 old
    # records are not stored again and none is lost.
    cehub("--database-url", database_url, "smoke", "--count", "25", env=env)
    engine = engines(database_url)
    store = SmokeStore(engine)
    topic = f"{topic_prefix}.smoke"
    assert store.count_topic(topic) == 50
    with engine.connect() as conn:
        offsets = conn.execute(
            select(smoke_records.c.partition, func.count(), func.max(smoke_records.c.offset))
            .where(smoke_records.c.topic == topic)
            .group_by(smoke_records.c.partition)
        ).all()
    assert sum(count for _p, count, _max in offsets) == 50
    assert all(count == max_offset + 1 for _p, count, max_offset in offsets)
    assert sum(store.positions()[(topic, p)] for p, _c, _m in offsets) == 50
