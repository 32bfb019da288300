"""The hub on the real broker and databases: verify, sequence, store, exactly once."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from ledger.store import entries, migrate, rejections
from tests.conftest import cehub
from tests.integration.hub_scenarios import (
    cehub_cmd,
    hub_env,
    kill,
    send,
    start_worker,
    supply_chain,
    wait_until,
)

pytestmark = pytest.mark.kafka


def _entry_hashes(engine: Engine) -> list[tuple[int, str, bytes]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(entries.c.seq, entries.c.event_id, entries.c.entry_hash).order_by(entries.c.seq)
        ).all()
    return [(r.seq, r.event_id, bytes(r.entry_hash)) for r in rows]


def _reasons(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(rejections.c.reason)).scalars())


def test_hub_sequences_every_valid_event_once_and_rejects_the_bad_ones(
    kafka_bootstrap: str,
    topic_prefix: str,
    database_url: str,
    tmp_path: Path,
    engines: Callable[[str], Engine],
) -> None:
    scenario = supply_chain(rounds=60)
    env = hub_env(scenario, kafka_bootstrap, topic_prefix)
    # Everything is sent before the hub starts, so receipts regularly reach the sequencer
    # before their shipments (other producer, other partition): they must wait, not fail.
    send(kafka_bootstrap, topic_prefix, [*scenario.envelopes, *scenario.bad, b"not avro"])
    out = cehub(
        "--database-url",
        database_url,
        "--data-dir",
        str(tmp_path),
        "process",
        "--until-idle",
        env=env,
    )
    assert f"{scenario.accepted_count} entries" in out
    engine = engines(database_url)
    hashes = _entry_hashes(engine)
    assert [seq for seq, _e, _h in hashes] == list(range(scenario.accepted_count))
    assert len({event_id for _s, event_id, _h in hashes}) == scenario.accepted_count
    assert _reasons(engine) == ["encoding.malformed_envelope"] + ["rule.double_spend"] * len(
        scenario.bad
    )
    audit = cehub("--database-url", database_url, "--data-dir", str(tmp_path), "audit", env=env)
    assert f"audit OK: {scenario.accepted_count} entries" in audit
    status = cehub("--database-url", database_url, "--data-dir", str(tmp_path), "status", env=env)
    assert "lag       sequencer: 0 record(s)" in status
    assert "rule.double_spend: 2" in status

    # Processing the same topics again from scratch (a fresh store) gives the same chain.
    again = f"sqlite:///{tmp_path / 'again.sqlite'}"
    cehub("--database-url", again, "--data-dir", str(tmp_path), "process", "--until-idle", env=env)
    assert _entry_hashes(engines(again)) == hashes


def test_worker_killed_mid_stream_loses_nothing_and_appends_nothing_twice(
    kafka_bootstrap: str,
    topic_prefix: str,
    database_url: str,
    tmp_path: Path,
    engines: Callable[[str], Engine],
) -> None:
    scenario = supply_chain(rounds=750)  # 3,004 accepted events
    env = hub_env(scenario, kafka_bootstrap, topic_prefix)
    engine = engines(database_url)
    migrate(engine)
    half = len(scenario.envelopes) // 2
    send(kafka_bootstrap, topic_prefix, scenario.envelopes[:half])
    worker = start_worker(env, database_url, tmp_path)
    try:
        # Kill it with SIGKILL (no shutdown code runs) while it is in the middle of the stream.
        send(kafka_bootstrap, topic_prefix, scenario.envelopes[half:])
        wait_until(lambda: _count(engine) > 200, 90, "the worker to commit some entries")
        assert _count(engine) < scenario.accepted_count
    finally:
        kill(worker)
    interrupted_at = _count(engine)
    cehub(
        "--database-url",
        database_url,
        "--data-dir",
        str(tmp_path),
        "process",
        "--until-idle",
        env=env,
    )
    hashes = _entry_hashes(engine)
    assert interrupted_at < len(hashes) == scenario.accepted_count
    assert len({event_id for _s, event_id, _h in hashes}) == scenario.accepted_count
    cehub("--database-url", database_url, "--data-dir", str(tmp_path), "audit", env=env)

    # An uninterrupted run over the same topics builds the identical chain.
    clean = f"sqlite:///{tmp_path / 'clean.sqlite'}"
    cehub("--database-url", clean, "--data-dir", str(tmp_path), "process", "--until-idle", env=env)
    assert _entry_hashes(engines(clean)) == hashes


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(entries)).scalar_one())


def test_process_until_idle_fails_clearly_without_an_authority_key(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    proc = subprocess.run(
        cehub_cmd("--data-dir", str(tmp_path), "process", "--until-idle"),
        env={
            **os.environ,
            "CEHUB_BOOTSTRAP": kafka_bootstrap,
            "CEHUB_TOPIC_PREFIX": topic_prefix,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "no hub authority key" in proc.stderr


@pytest.mark.slow
def test_ten_thousand_events_processed_twice_from_scratch_end_at_the_same_head(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, engines: Callable[[str], Engine]
) -> None:
    scenario = supply_chain(rounds=2500)  # 10,004 accepted events
    env = hub_env(scenario, kafka_bootstrap, topic_prefix)
    send(kafka_bootstrap, topic_prefix, scenario.envelopes)
    heads = []
    for run in ("first", "second"):
        url = f"sqlite:///{tmp_path / run}.sqlite"
        out = cehub(
            "--database-url", url, "--data-dir", str(tmp_path), "process", "--until-idle", env=env
        )
        assert f"{scenario.accepted_count} entries" in out
        heads.append(_entry_hashes(engines(url))[-1])
    assert heads[0] == heads[1]
