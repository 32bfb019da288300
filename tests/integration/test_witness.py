"""`cehub witness --once` on the real broker: honest checkpoints pass, forks and rollbacks and
bad signatures raise the alarm (an ERROR line with the reason code, exit 1).

The first test runs the real hub (`cehub process --until-idle`) and witnesses the checkpoints
it publishes. The attack tests build their ledger without the broker, for speed
(tests/integration/signed_ledger.py: ``LedgerStore.write_batch`` plus the ``Checkpointer``;
signed at 7, 21, 35, 49, 63, 77, 91, 104), publish its notes on the checkpoints topic as the
hub does, and add the forged ones.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import pytest
from kafka import KafkaProducer

from ledger.checkpoint import Checkpoint, format_checkpoint_body, sign_note
from ledger.config import Settings
from ledger.merkle import MemoryNodeStore, leaf_hash, root_hash
from ledger.transport import ensure_topics, ledger_topics
from tests.conftest import cehub
from tests.integration.hub_scenarios import cehub_cmd, hub_env, send, supply_chain
from tests.integration.signed_ledger import (
    LEDGER_KEY,
    ORIGIN,
    SignedLedger,
    build_signed_ledger,
    vkey,
)

pytestmark = pytest.mark.kafka


def publish(bootstrap: str, prefix: str, notes: Sequence[bytes]) -> None:
    """Put notes on <prefix>.checkpoints as the hub does (one partition, acks=all)."""
    ensure_topics(bootstrap, ledger_topics(Settings(bootstrap=bootstrap, topic_prefix=prefix)))
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for note in notes:
            producer.send(f"{prefix}.checkpoints", value=note)
        producer.flush(timeout=30)
    finally:
        producer.close()


def witness_once(
    env: dict[str, str], *args: str, ledger_key: str | None = None
) -> subprocess.CompletedProcess[str]:
    key = ("--ledger-key", ledger_key or vkey())
    return subprocess.run(
        cehub_cmd("witness", "--once", *key, *args),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def state_of(data_dir: Path, origin: str = ORIGIN) -> dict[str, object]:
    path = data_dir / "witness" / f"{quote(origin, safe='')}.checkpoint"
    return json.loads(path.read_text())


def size_in(state: dict[str, object]) -> int:
    note = state["checkpoint"]
    assert isinstance(note, str)
    return int(note.split("\n")[1])


def forged(size: int, leaves: Sequence[bytes]) -> bytes:
    """A checkpoint of another tree, validly signed with the ledger's own key and origin."""
    tree = MemoryNodeStore()
    for data in leaves:
        tree.append(leaf_hash(data))
    checkpoint = Checkpoint(ORIGIN, size, root_hash(size, tree.get_node))
    return sign_note(format_checkpoint_body(checkpoint), ORIGIN, LEDGER_KEY)


@pytest.fixture
def ledger(sqlite_url: str) -> SignedLedger:
    built = build_signed_ledger(sqlite_url, checkpoint_every=10)
    assert built.checkpoint_sizes == [7, 21, 35, 49, 63, 77, 91, 104]
    built.store.engine.dispose()
    return built


@pytest.fixture
def env(kafka_bootstrap: str, topic_prefix: str, sqlite_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "CEHUB_BOOTSTRAP": kafka_bootstrap,
        "CEHUB_TOPIC_PREFIX": topic_prefix,
        "CEHUB_DATABASE_URL": sqlite_url,
        "CEHUB_DATA_DIR": str(tmp_path),
    }


def test_witness_accepts_the_checkpoints_the_hub_publishes(
    kafka_bootstrap: str, topic_prefix: str, sqlite_url: str, tmp_path: Path
) -> None:
    scenario = supply_chain(rounds=10)
    env = {
        **hub_env(scenario, kafka_bootstrap, topic_prefix),
        "CEHUB_DATABASE_URL": sqlite_url,
        "CEHUB_DATA_DIR": str(tmp_path),
        "CEHUB_CHECKPOINT_EVERY": "5",
    }
    half = len(scenario.envelopes) // 2
    for part in (scenario.envelopes[:half], scenario.envelopes[half:]):
        send(kafka_bootstrap, topic_prefix, part)
        cehub("process", "--until-idle", env=env)
    ledger_vkey = cehub("ledger", "key", env=env).strip()

    first = witness_once(env, ledger_key=ledger_vkey)
    assert first.returncode == 0, first.stderr
    assert "ALARM" not in first.stderr
    assert "0 alarm(s)" in first.stdout
    verified = first.stderr.count(" INFO cehub.witness verified ")
    assert verified >= 2  # one per `process` run at least
    assert "consistent extension" in first.stderr
    state = state_of(tmp_path, "cehub.local/ledger")
    assert state["next_offset"] == verified
    # The last checkpoint witnessed is one the store holds.
    note = cehub("ledger", "checkpoint", env=env)
    assert size_in(state) <= int(note.split("\n")[1])

    again = witness_once(env, ledger_key=ledger_vkey)
    assert again.returncode == 0, again.stderr
    assert "0 checkpoint(s) read" in again.stdout


def test_witness_detects_a_forged_fork_signed_with_the_ledger_key(
    ledger: SignedLedger, env: dict[str, str], tmp_path: Path
) -> None:
    bootstrap, prefix = env["CEHUB_BOOTSTRAP"], env["CEHUB_TOPIC_PREFIX"]
    publish(bootstrap, prefix, ledger.notes[:3])
    honest = witness_once(env)
    assert honest.returncode == 0, honest.stderr
    assert size_in(state_of(tmp_path)) == 35

    rewritten = [b"forged entry %d" % i for i in range(60)]
    publish(bootstrap, prefix, [forged(49, rewritten), forged(35, rewritten)])
    attacked = witness_once(env)
    assert attacked.returncode == 1
    alarms = [line for line in attacked.stderr.splitlines() if " ERROR " in line]
    assert len(alarms) == 2, attacked.stderr
    assert all("ALARM proof.checkpoint_fork" in line for line in alarms)
    assert "size 49 is not an extension of size 35" in alarms[0]
    assert "two different roots for size 35" in alarms[1]
    state = state_of(tmp_path)
    assert size_in(state) == 35  # the last honest checkpoint is kept
    assert state["next_offset"] == 5

    # The honest log goes on; the witness accepts its next checkpoint.
    publish(bootstrap, prefix, ledger.notes[3:4])
    after = witness_once(env)
    assert after.returncode == 0, after.stderr
    assert size_in(state_of(tmp_path)) == 49


def test_witness_detects_a_rollback(
    ledger: SignedLedger, env: dict[str, str], tmp_path: Path
) -> None:
    bootstrap, prefix = env["CEHUB_BOOTSTRAP"], env["CEHUB_TOPIC_PREFIX"]
    # An old, genuinely signed checkpoint presented again after a newer one.
    publish(bootstrap, prefix, [*ledger.notes[:3], ledger.notes[1]])
    result = witness_once(env)
    assert result.returncode == 1
    assert "ERROR cehub.witness ALARM proof.checkpoint_rollback" in result.stderr
    assert "tree size went back from 35 to 21" in result.stderr
    assert size_in(state_of(tmp_path)) == 35


def test_witness_rejects_a_bad_signature(
    ledger: SignedLedger, env: dict[str, str], tmp_path: Path
) -> None:
    bootstrap, prefix = env["CEHUB_BOOTSTRAP"], env["CEHUB_TOPIC_PREFIX"]
    bad = bytearray(ledger.notes[1])
    bad[-8] ^= 0x01
    publish(bootstrap, prefix, [ledger.notes[0], bytes(bad)])
    result = witness_once(env)
    assert result.returncode == 1
    assert "ALARM proof.checkpoint_invalid" in result.stderr
    assert "does not verify" in result.stderr
    assert size_in(state_of(tmp_path)) == 7


def test_witness_stops_without_deciding_when_the_store_cannot_prove(
    ledger: SignedLedger, env: dict[str, str], tmp_path: Path
) -> None:
    publish(env["CEHUB_BOOTSTRAP"], env["CEHUB_TOPIC_PREFIX"], ledger.notes[:2])
    empty = {**env, "CEHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite'}"}
    result = witness_once(empty)
    assert result.returncode == 3, result.stderr
    assert "ALARM" not in result.stderr
    assert "infra.store_failed" in result.stderr
    # The first note was taken; the undecided one will be read again.
    assert state_of(tmp_path)["next_offset"] == 1
    assert witness_once(env).returncode == 0
    assert size_in(state_of(tmp_path)) == 21
