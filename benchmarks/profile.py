"""The hot path: the two hub stages in process, timed and profiled, and a profiled worker.

* **stages**: the workload (``benchmarks/workload.py``) fed to
  :class:`~consumers.stages.VerifyStage` in batches of 500, as the verify agent takes them,
  and its forwards to :class:`~consumers.stages.SequencerStage` in batches of up to 1,000,
  alternating as in a worker, on a fresh SQLite store (and PostgreSQL when a server URL is
  known): no Kafka, no faust, so the figures are the stages' own cost per event.
  ``--samples`` runs, medians.
* **profiles** (pyinstrument, the ``dev`` extra): one more run of the stages under the
  profiler (``profile-stages-<backend>.txt``), and one real `cehub process --until-idle` worker
  over the same workload on Kafka (``profile-worker.txt``), which adds faust, aiokafka and the
  agents' sends to the picture.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import Config
from benchmarks.ingest import enrol_first
from benchmarks.workload import (
    BOOTSTRAP,
    POSTGRES_ENV,
    cehub_exe,
    environment,
    fresh_database,
    new_prefix,
    pipeline_machine,
    scenario,
)
from consumers.stages import SequencerStage, VerifyStage
from ledger.rules import RuleContext
from ledger.sqlstore import open_engine
from ledger.store import LedgerStore
from ledger.transport import Record
from tests.integration.hub_scenarios import Scenario, send

NAME = "profile"
DEFAULT_SIZES = (3_004,)
DEFAULT_SAMPLES = 3
VERIFY_BATCH = 500
SEQUENCER_BATCH = 1_000


def _no_gaps(topic: str, partition: int, start: int, end: int) -> list[Record]:
    raise AssertionError(f"unexpected gap in {topic}[{partition}] {start}..{end}")


def drive_stages(
    store: LedgerStore, context: RuleContext, envelopes: Sequence[bytes]
) -> dict[str, float]:
    """Seconds spent in each stage for ``envelopes``, fed as a worker feeds them."""
    verify = VerifyStage(store, context, _no_gaps)
    sequencer = SequencerStage(store, context, _no_gaps)
    records = [Record("bench.events", 0, n, None, e) for n, e in enumerate(envelopes)]
    verify_s = sequence_s = 0.0
    forwarded = 0
    for start in range(0, len(records), SEQUENCER_BATCH):
        t0 = time.perf_counter()
        forward: list[Record] = []
        for first in range(start, min(start + SEQUENCER_BATCH, len(records)), VERIFY_BATCH):
            output = verify.check(records[first : first + VERIFY_BATCH])
            verify.done(output)
            forward.extend(output.forward)
        t1 = time.perf_counter()
        sequencer.process(
            [
                Record("bench.verified", 0, forwarded + n, r.key, r.value)
                for n, r in enumerate(forward)
            ]
        )
        t2 = time.perf_counter()
        forwarded += len(forward)
        verify_s += t1 - t0
        sequence_s += t2 - t1
    if store.head().size != len(envelopes):
        raise RuntimeError(f"{store.head().size} of {len(envelopes)} events sequenced")
    return {"verify_s": verify_s, "sequencer_s": sequence_s}


def time_stages(
    backend: str, envelopes: Sequence[bytes], context: RuleContext, folder: Path, pg: str | None
) -> dict[str, float]:
    with fresh_database(backend, folder, pg) as url:
        engine = open_engine(url)
        try:
            return drive_stages(LedgerStore(engine), context, envelopes)
        finally:
            engine.dispose()


def profile_stages(
    backend: str, envelopes: Sequence[bytes], context: RuleContext, folder: Path, pg: str | None
) -> str:
    from pyinstrument import Profiler  # noqa: PLC0415  (dev extra: only this benchmark needs it)

    profiler = Profiler(interval=0.0005)
    with fresh_database(backend, folder, pg) as url:
        engine = open_engine(url)
        try:
            store = LedgerStore(engine)
            profiler.start()
            drive_stages(store, context, envelopes)
            profiler.stop()
        finally:
            engine.dispose()
    return str(profiler.output_text(unicode=True, color=False))


def profile_worker(workload: Scenario, env: dict[str, str], folder: Path) -> str:
    """A real worker over Kafka (its store holding the enrolments already, as in
    ``benchmarks/ingest.py``), under pyinstrument; its text report."""
    out = folder / "worker-profile.txt"
    url = f"sqlite:///{folder / 'worker.sqlite'}"
    enrol_first(url, workload)
    cmd = [
        sys.executable,
        "-m",
        "pyinstrument",
        "--interval",
        "0.001",
        "--renderer",
        "text",
        "--outfile",
        str(out),
        cehub_exe(),
        "--database-url",
        url,
        "--data-dir",
        str(folder),
        "process",
        "--until-idle",
    ]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return out.read_text()


def run(config: Config, progress: Callable[[str], None] = print) -> list[Path]:
    pg = config.database_url or os.environ.get(POSTGRES_ENV)
    backends = ["sqlite", *(["postgresql"] if pg else [])]
    config.out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    results = []
    with tempfile.TemporaryDirectory(prefix="cehub-bench-profile-") as tmp:
        folder = config.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        report: dict[str, Any] = {"benchmark": NAME, "machine": pipeline_machine(pg)}
        for size in config.sizes:
            workload = scenario(size)
            envelopes, context = workload.envelopes, workload.hub.context
            for backend in backends:
                runs = [
                    time_stages(backend, envelopes, context, folder, pg)
                    for _ in range(config.samples)
                ]
                row = _row(len(envelopes), backend, runs)
                results.append(row)
                progress(f"profile: {backend}: {row}")
                text = profile_stages(backend, envelopes, context, folder, pg)
                path = config.out / f"profile-stages-{backend}.txt"
                path.write_text(text)
                written.append(path)
            prefix = new_prefix(NAME)
            send(BOOTSTRAP, prefix, envelopes)
            worker_dir = Path(tempfile.mkdtemp(dir=folder))
            path = config.out / "profile-worker.txt"
            path.write_text(profile_worker(workload, environment(workload, prefix), worker_dir))
            written.append(path)
    report.update(samples=config.samples, results=results)
    json_path = config.out / f"{NAME}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path = config.out / f"{NAME}.md"
    md_path.write_text(markdown(report))
    return [json_path, md_path, *written]


def _row(events: int, backend: str, runs: list[dict[str, float]]) -> dict[str, Any]:
    verify = statistics.median(r["verify_s"] for r in runs)
    sequencer = statistics.median(r["sequencer_s"] for r in runs)
    both = statistics.median(r["verify_s"] + r["sequencer_s"] for r in runs)
    return {
        "events": events,
        "backend": backend,
        "verify_us_per_event": round(verify / events * 1e6),
        "sequencer_us_per_event": round(sequencer / events * 1e6),
        "verify_events_per_s": round(events / verify),
        "sequencer_events_per_s": round(events / sequencer),
        "both_stages_events_per_s": round(events / both),
        "runs": [{k: round(v, 3) for k, v in r.items()} for r in runs],
    }


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# The hub stages in process (no Kafka, no faust)",
        "",
        f"{m['date']}: {m['cpu']}, {m['cores']} cores, Python {m['python']}, SQLite "
        f"{m['sqlite']}, PostgreSQL {m['postgresql'] or 'not measured'}, cryptography "
        f"{m.get('cryptography')}, fastavro {m.get('fastavro')}. {report['samples']} runs, "
        "medians.",
        "",
        "| events | store | verify stage µs/event | sequencer µs/event | verify events/s "
        "| sequencer events/s | both stages, one process, events/s |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['events']:,} | {r['backend']} | {r['verify_us_per_event']} "
            f"| {r['sequencer_us_per_event']} | {r['verify_events_per_s']:,} "
            f"| {r['sequencer_events_per_s']:,} | {r['both_stages_events_per_s']:,} |"
        )
    lines += [
        "",
        "Profiles (pyinstrument): `profile-stages-<store>.txt` (the stages alone), "
        "`profile-worker.txt` (a real `cehub process --until-idle` worker on Kafka, same "
        "workload). Command: `python -m benchmarks --only profile`.",
        "",
    ]
    return "\n".join(lines)
