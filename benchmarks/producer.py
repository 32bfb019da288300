"""Producer: what signing costs the emitter, against the same client sending unsigned bytes.

Per size ``n``, a JSON Lines file of ``n`` BatchCreated lines (the format of
docs/emit-formats.md) is parsed once into drafts (:func:`producers.records.parse_records`).
Then, ``--samples`` times and side by side, each on a fresh :class:`producers.emitter.KafkaSink`
(the kafka-python producer `cehub emit` uses: ``acks="all"``, idempotent, 20 ms linger), with
the producer connected before the clock starts:

* **emit (signed)**: :func:`producers.emitter.emit` exactly as `cehub emit` calls it: number
  the drafts from a fresh state file, encode and seal each event (Ed25519 over the DSSE PAE),
  write the outbox and the write-ahead state (fsync), send keyed by producer, wait for every
  acknowledgement, advance the state;
* **unsigned payload**: the same sink sending the same events' payload bytes (their Avro
  single-object encoding, what `emit` signs; encoded before the clock starts), same key, then
  ``flush``: the floor of any producer on this client;
* **sealed envelopes, no signing in the loop**: the same sink sending the envelope bytes
  sealed beforehand, which separates the cost of bigger records from the cost of signing;
* **seal only** (no Kafka): ``seal()`` of every event, in process.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import Config
from benchmarks.workload import BOOTSTRAP, new_prefix, pipeline_machine
from ledger.config import Settings
from ledger.envelope import seal
from ledger.signing import Ed25519Signer
from ledger.transport import ensure_topics, ledger_topics
from producers.emitter import KafkaSink, Ref, emit
from producers.records import Draft, parse_records
from producers.state import StateFile
from schemas.codec import encode_event

NAME = "producer"
DEFAULT_SIZES = (10_000,)
DEFAULT_SAMPLES = 5
PRODUCER = "bench-producer"


def drafts(count: int) -> tuple[Draft, ...]:
    """``count`` valid BatchCreated drafts, parsed from JSON Lines as `cehub emit` parses."""
    lines = []
    for n in range(1, count + 1):
        lines.append(
            json.dumps(
                {
                    "type": "BatchCreated",
                    "occurred_at": "2026-03-03T08:00:00+07:00",
                    "batch_id": f"{PRODUCER}/b{n}",
                    "site_id": "bkk1",
                    "material": "PET_FLAKE",
                    "mass": f"{n}.5 kg",
                    "composition": {"post_consumer": f"{n}.5 kg"},
                }
            )
        )
    parsed = parse_records("\n".join(lines), "jsonl", producer_id=PRODUCER)
    if parsed.errors:
        raise ValueError(parsed.errors[0].diagnostics())
    return parsed.drafts


def _sink(topic: str) -> KafkaSink:
    sink = KafkaSink(BOOTSTRAP, topic, client_id="cehub-bench-producer")
    sink._producer.partitions_for(topic)  # connect and fetch metadata before the clock starts
    return sink


def _emit_signed(topic: str, items: Sequence[Draft], signer: Ed25519Signer, folder: Path) -> float:
    sink = _sink(topic)
    state = StateFile(Path(tempfile.mkdtemp(dir=folder)), PRODUCER)
    try:
        start = time.perf_counter()
        result = emit(items, signer=signer, state_file=state, sink=sink, source="bench")
        elapsed = time.perf_counter() - start
    finally:
        sink.close()
    if not result.complete:
        raise RuntimeError(f"emit: {len(result.report.failed)} event(s) not acknowledged")
    return elapsed


def _send_bytes(topic: str, values: Sequence[bytes]) -> float:
    sink = _sink(topic)
    key = PRODUCER.encode()
    try:
        start = time.perf_counter()
        for seq, value in enumerate(values):
            sink.send(key, value, Ref("", seq))
        report = sink.flush()
        elapsed = time.perf_counter() - start
    finally:
        sink.close()
    if report.failed or len(report.delivered) != len(values):
        raise RuntimeError(f"{len(report.failed)} record(s) not acknowledged")
    return elapsed


def _seal_only(events: Sequence[Any], signer: Ed25519Signer) -> float:
    start = time.perf_counter()
    for event in events:
        seal(event, signer)
    return time.perf_counter() - start


def measure_size(
    size: int, samples: int, folder: Path, progress: Callable[[str], None]
) -> dict[str, Any]:
    items = drafts(size)
    signer = Ed25519Signer.generate()
    events = [d.sequenced(n) for n, d in enumerate(items)]
    payloads = [encode_event(e) for e in events]
    envelopes = [seal(e, signer) for e in events]
    prefix = new_prefix(NAME)
    ensure_topics(BOOTSTRAP, ledger_topics(Settings(bootstrap=BOOTSTRAP, topic_prefix=prefix)))
    topic = f"{prefix}.events"
    configs: dict[str, Callable[[], float]] = {
        "emit (signed)": lambda: _emit_signed(topic, items, signer, folder),
        "unsigned payload, same client": lambda: _send_bytes(topic, payloads),
        "sealed envelopes, no signing in the loop": lambda: _send_bytes(topic, envelopes),
        "seal only (no Kafka)": lambda: _seal_only(events, signer),
    }
    rates: dict[str, list[int]] = {name: [] for name in configs}
    for sample in range(samples):
        for name, measure in configs.items():
            rates[name].append(round(size / measure()))
        progress(
            f"producer: sample {sample + 1}/{samples}: "
            + ", ".join(f"{name} {r[-1]:,}/s" for name, r in rates.items())
        )
    signed, unsigned = rates["emit (signed)"], rates["unsigned payload, same client"]
    ratios = [s / u for s, u in zip(signed, unsigned, strict=True)]
    return {
        "events": size,
        "payload_bytes_median": statistics.median(len(p) for p in payloads),
        "envelope_bytes_median": statistics.median(len(e) for e in envelopes),
        "configurations": [
            {"name": name, "events_per_s_median": round(statistics.median(r)), "runs": r}
            for name, r in rates.items()
        ],
        "signed_to_unsigned_ratio_median": round(statistics.median(ratios), 3),
    }


def run(config: Config, progress: Callable[[str], None] = print) -> list[Path]:
    """Measure every size; write ``producer.json`` and ``producer.md``."""
    report: dict[str, Any] = {"benchmark": NAME, "machine": pipeline_machine()}
    with tempfile.TemporaryDirectory(prefix="cehub-bench-producer-") as tmp:
        folder = config.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        results = [measure_size(n, config.samples, folder, progress) for n in config.sizes]
    report.update(samples=config.samples, results=results)
    config.out.mkdir(parents=True, exist_ok=True)
    json_path = config.out / f"{NAME}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path = config.out / f"{NAME}.md"
    md_path.write_text(markdown(report))
    return [json_path, md_path]


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Producer: signed `emit` against the same kafka-python client sending unsigned bytes",
        "",
        f"{m['date']}: {m['cpu']}, {m['cores']} cores (shared with the broker), Python "
        f"{m['python']}, Kafka {m['kafka']}, kafka-python {m.get('kafka-python')}, "
        f"cryptography {m.get('cryptography')}; load average at start "
        f"{m['load_average_at_start']}. {report['samples']} samples per figure, side by side; "
        "medians.",
        "",
    ]
    for r in report["results"]:
        lines += [
            f"**{r['events']:,} BatchCreated events**, payload {r['payload_bytes_median']} "
            f"bytes, envelope {r['envelope_bytes_median']} bytes (median). Signed / unsigned: "
            f"**{r['signed_to_unsigned_ratio_median']:.0%}** (median of per-sample ratios).",
            "",
            "| configuration | events/s (median) | samples |",
            "|---|---:|---|",
        ]
        for c in r["configurations"]:
            runs = ", ".join(f"{x:,}" for x in c["runs"])
            lines.append(f"| {c['name']} | {c['events_per_s_median']:,} | {runs} |")
        lines.append("")
    lines += [
        "Clock: first send to last acknowledgement (emit: numbering, sealing, outbox and state "
        "files, sending, acknowledgements). Command: `python -m benchmarks --only producer`.",
        "",
    ]
    return "\n".join(lines)
