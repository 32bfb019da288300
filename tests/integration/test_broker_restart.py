"""The hub survives a broker restart mid-stream: nothing lost, nothing appended twice.

Uses a broker of its own (another port, started and stopped by the same infra/ scripts), so
restarting it does not disturb the other tests' broker.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from ledger.store import entries, migrate
from tests.conftest import ROOT, cehub
from tests.integration.hub_scenarios import (
    hub_env,
    kill,
    send,
    start_worker,
    supply_chain,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PORT = 19392


def _broker(action: str) -> None:
    env = {**os.environ, "CEHUB_KAFKA_PORT": str(PORT)}
    subprocess.run([str(ROOT / "infra" / "kafka" / action)], env=env, check=True, timeout=180)


@pytest.fixture
def own_broker() -> Iterator[str]:
    _broker("start")
    try:
        yield f"127.0.0.1:{PORT}"
    finally:
        _broker("stop")


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(entries)).scalar_one())


def test_broker_restarted_mid_stream_loses_nothing(
    own_broker: str,
    topic_prefix: str,
    sqlite_url: str,
    tmp_path: Path,
    engines: Callable[[str], Engine],
) -> None:
    scenario = supply_chain(rounds=500)  # 2,004 accepted events
    env = hub_env(scenario, own_broker, topic_prefix)
    engine = engines(sqlite_url)
    migrate(engine)
    half = len(scenario.envelopes) // 2
    send(own_broker, topic_prefix, scenario.envelopes[:half])
    worker = start_worker(env, sqlite_url, tmp_path)
    try:
        wait_until(lambda: _count(engine) > 100, 90, "the worker to commit some entries")
        _broker("stop")  # the broker goes away under a running worker ...
        _broker("start")  # ... and comes back with its data
        send(own_broker, topic_prefix, scenario.envelopes[half:])
        wait_until(
            lambda: _count(engine) == scenario.accepted_count,
            120,
            "the worker to catch up after the restart",
        )
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
    finally:
        kill(worker)
    cehub("--database-url", sqlite_url, "--data-dir", str(tmp_path), "audit", env=env)
    with engine.connect() as conn:
        ids = conn.execute(select(entries.c.event_id)).scalars().all()
    assert len(ids) == len(set(ids)) == scenario.accepted_count
