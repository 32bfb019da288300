"""`cehub emit`, `cehub enroll` and `cehub keys` against the real broker.

What these defend: what lands in ``<prefix>.events`` is exactly the signed events of the file,
numbered 0..N-1 and verifiable with the producer's public key; a file with bad lines sends
nothing; a re-run after a crash re-sends the identical bytes. Each test uses its own topic
prefix and data dir.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from ledger.config import Settings
from ledger.envelope import KnownKey, SimpleKeyring, open_envelope
from ledger.signing import Ed25519Signer
from ledger.transport import end_offsets, ensure_topics, ledger_topics
from producers.records import parse_records
from schemas.events import HUB_PRODUCER_ID, BatchCreated, ParticipantEnrolled, Role
from tests.conftest import cehub

pytestmark = pytest.mark.kafka

PRODUCER = "acme-th"


def run_cehub(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `cehub` and return the result whatever the exit code (cehub() fails on non-zero)."""
    exe = Path(sys.executable).with_name("cehub")
    return subprocess.run(
        [str(exe), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def write_batches(path: Path, count: int, *, bad_lines: tuple[int, ...] = ()) -> None:
    """A JSON Lines file of ``count`` BatchCreated lines; the given line numbers are bad."""
    with path.open("w") as out:
        for line in range(1, count + 1):
            record = {
                "type": "BatchCreated",
                "occurred_at": "2025-03-03T08:00:00+07:00",
                "batch_id": f"{PRODUCER}/b{line}",
                "site_id": "bkk1",
                "material": "PET_PELLET",
                "mass": f"{line}.5 kg",
                "composition": {"virgin": f"{line}.5 kg"},
            }
            if line in bad_lines:
                record["mass"] = f"{line} lb"
            out.write(json.dumps(record) + "\n")


def read_topic(
    bootstrap: str, topic: str, expected: int, timeout: float = 30
) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of ``topic`` from the beginning, in partition order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: dict[int, list[tuple[bytes, bytes]]] = {}
        deadline = time.monotonic() + timeout
        while sum(map(len, records.values())) < expected and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500, max_records=5000).items():
                records.setdefault(tp.partition, []).extend((r.key, r.value) for r in batch)
        return [item for p in sorted(records) for item in records[p]]
    finally:
        consumer.close()


@pytest.fixture
def env(kafka_bootstrap: str, topic_prefix: str) -> dict[str, str]:
    return {"CEHUB_BOOTSTRAP": kafka_bootstrap, "CEHUB_TOPIC_PREFIX": topic_prefix}


@pytest.fixture
def key_file(tmp_path: Path, env: dict[str, str]) -> Path:
    path = tmp_path / "keys" / "acme.pem"
    out = cehub("keys", "new", "--out", str(path), env=env)
    assert "key_id: ed25519:" in out
    return path


def keyring_of(key_file: Path) -> SimpleKeyring:
    signer = Ed25519Signer.from_pem(key_file.read_bytes())
    return SimpleKeyring.of([KnownKey.of(signer, PRODUCER)])


def test_emit_10000_lines_lands_10000_signed_events_numbered_0_to_9999(
    tmp_path: Path, env: dict[str, str], key_file: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    source = tmp_path / "batches.jsonl"
    write_batches(source, 10_000)
    started = time.monotonic()
    out = cehub(
        "--data-dir", str(tmp_path), "emit", str(source), "--key", str(key_file),
        "--producer-id", PRODUCER, env=env,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    topic = f"{topic_prefix}.events"
    assert "10000 valid, 0 rejected" in out
    assert f"sent 10000 event(s) to {topic}" in out
    print(f"\nemit of 10,000 lines: {elapsed:.1f} s ({10_000 / elapsed:.0f} events/s)")

    records = read_topic(kafka_bootstrap, topic, 10_000)
    assert len(records) == 10_000
    keyring = keyring_of(key_file)
    opened = [open_envelope(value, keyring) for _key, value in records]
    assert {key for key, _value in records} == {PRODUCER.encode()}
    assert [v.event.header.producer_seq for v in opened] == list(range(10_000))
    assert {v.signer_id for v in opened} == {PRODUCER}
    expected = parse_records(source.read_text(), "jsonl", producer_id=PRODUCER).drafts
    assert [v.event.header.event_id for v in opened] == [d.event_id for d in expected]
    assert all(isinstance(v.event, BatchCreated) for v in opened)
    assert opened[-1].event == expected[-1].sequenced(9_999)
    state = json.loads((tmp_path / "producers" / f"{PRODUCER}.json").read_text())
    assert (state["next_seq"], state["pending"]) == (10_000, None)


def test_a_file_with_3_bad_lines_reports_them_and_sends_nothing(
    tmp_path: Path, env: dict[str, str], key_file: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = Settings(bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    ensure_topics(kafka_bootstrap, ledger_topics(settings))
    good = tmp_path / "good.jsonl"
    write_batches(good, 5)
    args = ("--data-dir", str(tmp_path), "emit", "--key", str(key_file), "--producer-id", PRODUCER)
    cehub(*args, str(good), env=env)
    topic = settings.topic("events")
    before = end_offsets(kafka_bootstrap, topic)
    assert sum(before.values()) == 5

    bad = tmp_path / "bad.jsonl"
    write_batches(bad, 200, bad_lines=(7, 88, 200))
    result = run_cehub(*args, str(bad), env=env)
    assert result.returncode == 2, result.stderr
    reported = [line for line in result.stderr.splitlines() if ": line " in line]
    assert [line.split(": line ")[1].split(",")[0] for line in reported] == ["7", "88", "200"]
    assert "bad.jsonl: line 7, field 'mass': unknown unit 'lb'" in result.stderr
    assert "200 record(s)" in result.stdout
    assert "3 rejected (lines 7, 88, 200)" in result.stdout
    assert end_offsets(kafka_bootstrap, topic) == before
    assert json.loads((tmp_path / "producers" / f"{PRODUCER}.json").read_text())["next_seq"] == 5


def test_rerun_after_a_crash_resends_identical_bytes(
    tmp_path: Path, env: dict[str, str], key_file: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    source = tmp_path / "batches.csv"
    source.write_text(
        "type,occurred_at,batch_id,site_id,material,mass,composition.virgin,composition.pre_consumer\n"
        + "".join(
            f"BatchCreated,2025-03-03T08:00:00+07:00,{PRODUCER}/c{i},bkk1,PET,{i} t,{i} t,0 kg\n"
            for i in range(1, 51)
        )
    )
    args = ("--data-dir", str(tmp_path), "emit", str(source), "--key", str(key_file))
    cehub(*args, "--producer-id", PRODUCER, env=env)
    # The crash: the events reached the broker but the state file was never advanced.
    state_file = tmp_path / "producers" / f"{PRODUCER}.json"
    state_file.unlink()
    out = cehub(*args, "--producer-id", PRODUCER, env=env)
    assert "sent 50 event(s)" in out

    records = read_topic(kafka_bootstrap, f"{topic_prefix}.events", 100)
    assert len(records) == 100
    first, second = records[:50], records[50:]
    assert second == first  # byte for byte: the hub skips them as duplicates
    keyring = keyring_of(key_file)
    headers = [open_envelope(value, keyring).event.header for _key, value in second]
    assert [h.producer_seq for h in headers] == list(range(50))
    assert len({h.event_id for h in headers}) == 50


def test_enroll_and_key_rotation_are_signed_by_the_right_keys(
    tmp_path: Path, env: dict[str, str], key_file: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    authority = tmp_path / "keys" / "authority.pem"
    cehub("keys", "new", "--out", str(authority), env=env)
    shown = cehub("keys", "show", str(key_file), env=env)
    public_b64 = shown.split("public_key: ")[1].split()[0]
    data = ("--data-dir", str(tmp_path))
    cehub(
        *data, "enroll", "--authority-key", str(authority), "--participant-id", PRODUCER,
        "--legal-name", "ACME Plastics (Thailand) Co., Ltd.", "--country", "th",
        "--role", "recycler", "--role", "CONVERTER", "--site", "bkk1:Bangkok: Lat Krabang:TH",
        "--public-key", public_b64, env=env,
    )  # fmt: skip
    new_key = tmp_path / "keys" / "acme-2025.pem"
    cehub("keys", "new", "--out", str(new_key), env=env)
    cehub(
        *data, "keys", "rotate", "--key", str(key_file), "--participant-id", PRODUCER,
        "--new-public-key-file", str(new_key), env=env,
    )  # fmt: skip

    hub = Ed25519Signer.from_pem(authority.read_bytes())
    old = Ed25519Signer.from_pem(key_file.read_bytes())
    keyring = SimpleKeyring.of(
        [KnownKey.of(hub, HUB_PRODUCER_ID, authority=True), KnownKey.of(old, PRODUCER)]
    )
    records = read_topic(kafka_bootstrap, f"{topic_prefix}.events", 2)
    opened = sorted((open_envelope(v, keyring) for _k, v in records), key=lambda v: v.key_id)
    by_type = {type(v.event).__name__: v for v in opened}
    enrolled = by_type["ParticipantEnrolled"].event
    assert isinstance(enrolled, ParticipantEnrolled)
    assert enrolled.header.producer_id == HUB_PRODUCER_ID
    assert enrolled.header.producer_seq == 0
    assert enrolled.public_key == base64.b64decode(public_b64)
    assert enrolled.country == "TH"
    assert enrolled.roles == (Role.RECYCLER, Role.CONVERTER)
    assert [(s.site_id, s.name, s.country) for s in enrolled.sites] == [
        ("bkk1", "Bangkok: Lat Krabang", "TH")
    ]
    rotated = by_type["KeyRotated"]
    assert rotated.signer_id == PRODUCER
    assert rotated.event.header.producer_seq == 0
    assert (tmp_path / "producers" / "hub.json").exists()
