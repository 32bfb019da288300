"""Ingest end to end: signed events on Kafka -> verify stage -> sequencer -> committed entries.

Per size, the workload (``benchmarks/workload.py``) is sent to a topic prefix of its own,
keyed by producer as the emitter sends it, and again to a new prefix for every hub run (a hub
writes to its prefix's verified topic, which must start empty). Then, ``--samples`` times and
side by side in that order, each configuration reads its events topic from the start:

* **bare**: a plain kafka-python consumer on the events topic that only decodes and checks
  signatures (:func:`ledger.envelope.open_envelope` against a
  :class:`~ledger.envelope.SimpleKeyring` of the workload's keys): the floor of any pipeline
  that verifies what it receives. Clock: first record polled -> last envelope opened.
* **sqlite**, **postgresql**: one real `cehub process --until-idle` worker on a fresh store
  that already holds the participants' enrolments (:func:`enrol_first`), as a running hub
  does, so the verify stage checks every signature as the bare consumer does.
  Clock: the store is polled every 20 ms; the first progress (the verify stage's first
  stored position, after its first batch of up to 500 records) starts it, the commit of the
  last event stops it, so faust's start-up (about 4 s) and the idle detection at the end are
  excluded.
* **sqlite, 2 workers**: two `cehub process --until-idle` processes of the same ledger: the
  events topic's partitions are shared between them, the sequencer runs in one.

Ratios are taken per sample (hub / bare of the same sample) and their median reported, so a
noisy neighbour on this shared machine moves both sides of a ratio alike.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from benchmarks.common import Config
from benchmarks.workload import (
    BOOTSTRAP,
    POSTGRES_ENV,
    environment,
    fresh_database,
    keyring_of,
    new_prefix,
    pipeline_machine,
    run_workers,
    scenario,
)
from consumers.stages import SequencerStage
from ledger.config import Settings
from ledger.envelope import SimpleKeyring, open_envelope
from ledger.sqlstore import open_engine
from ledger.store import LedgerStore
from ledger.transport import Record, end_offsets
from ledger.wiring import ledger_key
from schemas.events import ParticipantEnrolled
from tests.builders import event_of
from tests.integration.hub_scenarios import Scenario, send

NAME = "ingest"
DEFAULT_SIZES = (10_000,)
DEFAULT_SAMPLES = 3
BARE = "bare (kafka-python + open_envelope)"


def bare_consumer(topic: str, expected: int, keyring: SimpleKeyring) -> dict[str, Any]:
    """Read ``topic`` from its start with kafka-python and open every envelope."""
    consumer = KafkaConsumer(
        bootstrap_servers=BOOTSTRAP, client_id="cehub-bench-bare", enable_auto_commit=False
    )
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        seen, first, deadline = 0, 0.0, time.monotonic() + 600
        while seen < expected:
            polled = consumer.poll(timeout_ms=1000)
            if not polled and time.monotonic() > deadline:
                raise TimeoutError(f"bare consumer: {seen} of {expected} records")
            if polled and not first:
                first = time.perf_counter()
            for records in polled.values():
                for message in records:
                    open_envelope(message.value, keyring)
                    seen += 1
        elapsed = time.perf_counter() - first
    finally:
        consumer.close()
    return {"events": seen, "steady_s": round(elapsed, 3), "events_per_s": round(seen / elapsed)}


def enrol_first(url: str, workload: Scenario) -> None:
    """Sequence the workload's enrolments into the store at ``url`` before the worker starts.

    Participants enrol long before they send at volume; without this the verify stage would
    meet a backlog whose keys the store does not know yet and forward most of it unverified
    (the sequencer decides), measuring less work than a running hub does. The worker then
    finds the enrolments in the topic again and drops them as duplicates.
    """
    engine = open_engine(url)
    try:
        stage = SequencerStage(LedgerStore(engine), workload.hub.context, _no_gaps)
        enrolments = [e for e in workload.envelopes if isinstance(event_of(e), ParticipantEnrolled)]
        stage.process([Record("bench.enrolments", 0, n, None, e) for n, e in enumerate(enrolments)])
    finally:
        engine.dispose()


def _no_gaps(topic: str, partition: int, start: int, end: int) -> list[Record]:
    raise AssertionError(f"unexpected gap in {topic}[{partition}] {start}..{end}")


def _hub(
    workers: int,
    backend: str,
    folder: Path,
    postgres_url: str | None,
    env: dict[str, str],
    workload: Scenario,
) -> dict[str, Any]:
    expected = len(workload.envelopes)
    # A topic prefix of its own: a run's verify stage appends to <prefix>.verified, which the
    # next run's sequencer (a new consumer group) would otherwise read from the start first.
    prefix = new_prefix(NAME)
    send(BOOTSTRAP, prefix, workload.envelopes)
    env = {**env, "CEHUB_TOPIC_PREFIX": prefix}
    run_dir = Path(tempfile.mkdtemp(prefix=f"{backend}-{workers}w-", dir=folder))
    dirs = [run_dir / f"worker-{n}" for n in range(workers)]
    for d in dirs:
        d.mkdir()
    with fresh_database(backend, run_dir, postgres_url) as url:
        enrol_first(url, workload)
        run = run_workers(
            count=workers, database_url=url, data_dirs=dirs, env=env, expected=expected
        )
    return {
        "events": run.events,
        "events_per_s": round(run.events_per_s),
        "steady_s": run.steady_s,
        "first_commit_s": run.first_commit_s,
        "entries_at_first_commit": run.entries_at_first_commit,
        "wall_s": run.wall_s,
        "peak_rss_mb": list(run.peak_rss_mb),
        "cpu_s": list(run.cpu_s),
    }


def measure_size(
    size: int,
    samples: int,
    folder: Path,
    postgres_url: str | None,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Every configuration, ``samples`` times side by side, on one workload of ``size``."""
    workload = scenario(size)
    expected = len(workload.envelopes)
    keyring = keyring_of(workload)
    prefix = new_prefix(NAME)
    progress(f"ingest: sending {expected:,} signed events to {prefix}.events ...")
    send(BOOTSTRAP, prefix, workload.envelopes)
    topic = f"{prefix}.events"
    key_file = folder / f"{prefix}-ledger.pem"
    ledger_key(Settings(ledger_key=key_file))  # one checkpoint key for every worker
    env = environment(workload, prefix, CEHUB_LEDGER_KEY=str(key_file))
    configs: dict[str, Callable[[], dict[str, Any]]] = {
        BARE: lambda: bare_consumer(topic, expected, keyring),
        "sqlite, 1 worker": lambda: _hub(1, "sqlite", folder, None, env, workload),
    }
    if postgres_url:
        configs["postgresql, 1 worker"] = lambda: _hub(
            1, "postgresql", folder, postgres_url, env, workload
        )
    configs["sqlite, 2 workers"] = lambda: _hub(2, "sqlite", folder, None, env, workload)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    for sample in range(samples):
        for name, measure in configs.items():
            result = measure()
            runs[name].append(result)
            progress(f"ingest: sample {sample + 1}/{samples} {name}: {result['events_per_s']:,}/s")
    return {
        "events": expected,
        "topic": topic,
        "partitions": end_offsets(BOOTSTRAP, topic),
        "configurations": [_summary(name, rs, runs[BARE]) for name, rs in runs.items()],
    }


def _summary(name: str, runs: list[dict[str, Any]], bare: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["events_per_s"] for r in runs]
    ratios = [r["events_per_s"] / b["events_per_s"] for r, b in zip(runs, bare, strict=True)]
    summary: dict[str, Any] = {
        "name": name,
        "events_per_s_median": round(statistics.median(rates)),
        "events_per_s_runs": rates,
        "ratio_to_bare_median": round(statistics.median(ratios), 3),
        "runs": runs,
    }
    if "wall_s" in runs[0]:
        for key in ("first_commit_s", "wall_s"):
            summary[f"{key}_median"] = round(statistics.median(r[key] for r in runs), 2)
        summary["peak_rss_mb_max"] = max(max(r["peak_rss_mb"]) for r in runs)
        summary["cpu_s_median"] = round(statistics.median(sum(r["cpu_s"]) for r in runs), 1)
    return summary


def run(config: Config, progress: Callable[[str], None] = print) -> list[Path]:
    """Measure every size; write ``ingest.json`` and ``ingest.md``."""
    postgres_url = config.database_url or os.environ.get(POSTGRES_ENV)
    results = []
    with tempfile.TemporaryDirectory(prefix="cehub-bench-ingest-") as tmp:
        folder = config.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        report = {"benchmark": NAME, "machine": pipeline_machine(postgres_url)}
        for size in sorted(config.sizes):
            results.append(measure_size(size, config.samples, folder, postgres_url, progress))
    report.update(
        samples=config.samples,
        postgresql=postgres_url is not None,
        results=results,
    )
    config.out.mkdir(parents=True, exist_ok=True)
    json_path = config.out / f"{NAME}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path = config.out / f"{NAME}.md"
    md_path.write_text(markdown(report))
    return [json_path, md_path]


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Ingest end to end: Kafka -> verify -> sequencer -> committed entries",
        "",
        f"{m['date']}: {m['cpu']}, {m['cores']} cores (shared with the broker), Python "
        f"{m['python']}, Kafka {m['kafka']}, kafka-python {m.get('kafka-python')}, "
        f"faust-streaming {m.get('faust-streaming')}, SQLite {m['sqlite']}, PostgreSQL "
        f"{m['postgresql'] or 'not measured (no server URL)'}; load average at start "
        f"{m['load_average_at_start']}. {report['samples']} samples per figure, run side by "
        "side; medians.",
        "",
    ]
    for result in report["results"]:
        lines += [
            f"**{result['events']:,} signed events** on `{result['topic']}` "
            f"(records per partition: {result['partitions']}).",
            "",
            "| configuration | events/s (median) | samples | vs bare (median ratio) "
            "| first progress after launch | wall, launch to exit | worker CPU, launch to exit "
            "| peak RSS per worker |",
            "|---|---:|---|---:|---:|---:|---:|---:|",
        ]
        for c in result["configurations"]:
            samples = ", ".join(f"{r:,}" for r in c["events_per_s_runs"])
            extra = ["", "", "", ""]
            if "wall_s_median" in c:
                extra = [
                    f"{c['first_commit_s_median']} s",
                    f"{c['wall_s_median']} s",
                    f"{c['cpu_s_median']} s",
                    f"{c['peak_rss_mb_max']} MB",
                ]
            lines.append(
                f"| {c['name']} | {c['events_per_s_median']:,} | {samples} "
                f"| {c['ratio_to_bare_median']:.0%} | " + " | ".join(extra) + " |"
            )
        lines.append("")
    lines += [
        "Hub figures: steady state, from the first progress seen in the store (the verify "
        "stage's first stored position) to the last commit (start-up excluded), polling the "
        "store every 20 ms. Bare: first record polled to "
        "last envelope opened. Command: `python -m benchmarks --only ingest` (`make bench`).",
        "",
    ]
    return "\n".join(lines)
