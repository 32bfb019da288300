"""Scenarios for the hub's integration tests: signed envelopes, sent to the real broker.

A supply chain of collectors shipping bales to a recycler that washes them into flakes; every
envelope is sealed by tests/builders.py, so the expected ledger is also computable in memory.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaProducer

from ledger.config import Settings
from ledger.errors import DataError
from ledger.transport import ensure_topics, ledger_topics
from schemas.events import Role
from tests.builders import Hub, event_of, out


@dataclass(frozen=True)
class Scenario:
    hub: Hub
    envelopes: tuple[bytes, ...]
    bad: tuple[bytes, ...]
    """Envelopes the ledger must reject (a replayed sequence number, a double spend)."""

    @property
    def accepted_count(self) -> int:
        return len(self.envelopes)


def supply_chain(rounds: int) -> Scenario:
    """Enrolments, then ``rounds`` x (create, ship, receive, wash) across three collectors."""
    hub = Hub()
    recycler = hub.actor("recycler", Role.RECYCLER)
    collectors = [hub.actor(f"collector-{n}", Role.COLLECTOR) for n in range(3)]
    good = [hub.enrol(recycler), *(hub.enrol(c) for c in collectors)]
    bad: list[bytes] = []
    for n in range(rounds):
        c = collectors[n % 3]
        batch, shipment = f"{c.participant_id}/bale-{n}", f"{c.participant_id}/ship-{n}"
        good.append(hub.create_batch(c, batch, 100_000, post=90_000))
        good.append(hub.ship(c, batch, 60_000, to=recycler, shipment_id=shipment))
        good.append(hub.receive(recycler, shipment, 59_000))
        good.append(
            hub.transform(
                recycler, {shipment: 59_000}, [out(f"recycler/flakes-{n}", "PET_FLAKE", 50_000)]
            )
        )
        if n % 50 == 7:
            bad.append(hub.ship(c, batch, 50_000, to=recycler, shipment_id=f"{shipment}-x"))
    return Scenario(hub, tuple(good), tuple(bad))


def send(bootstrap: str, prefix: str, envelopes: Sequence[bytes]) -> None:
    """Send envelopes keyed by producer id, as the emitter does, and wait for every ack."""
    ensure_topics(bootstrap, ledger_topics(Settings(bootstrap=bootstrap, topic_prefix=prefix)))
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for envelope in envelopes:
            try:
                key = event_of(envelope).header.producer_id.encode()
            except DataError:
                key = b"garbage"
            producer.send(f"{prefix}.events", key=key, value=envelope)
        producer.flush(timeout=60)
    finally:
        producer.close()


def hub_env(scenario: Scenario, bootstrap: str, prefix: str) -> dict[str, str]:
    key = base64.b64encode(scenario.hub.authority.public_key).decode()
    return {
        "CEHUB_BOOTSTRAP": bootstrap,
        "CEHUB_TOPIC_PREFIX": prefix,
        "CEHUB_AUTHORITY_PUBLIC_KEY": key,
    }


def cehub_cmd(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("cehub")), *args]


def start_worker(env: dict[str, str], database_url: str, data_dir: Path) -> subprocess.Popen[str]:
    """A `cehub process` worker running until killed; its output goes to data_dir/worker.log."""
    with (data_dir / "worker.log").open("a") as log:
        return subprocess.Popen(
            cehub_cmd("--database-url", database_url, "--data-dir", str(data_dir), "process"),
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )


def kill(worker: subprocess.Popen[str]) -> None:
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)


def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
