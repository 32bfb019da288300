"""Scale: a ledger of 10^6 entries, and what the hub and its users pay at that size.

**Bulk load.** The entries are the supply-chain workload (``benchmarks/workload.py``
``SupplyChain``: 4 enrolments, then rounds of create, ship, receive, wash), fed in batches of
1,000 to :meth:`consumers.stages.SequencerStage.process` in process: the sequencer's own code
path (envelope opened and its signature re-verified against the key registry, every rule,
hash chain, Merkle nodes, projections and position in one transaction per batch through
:meth:`ledger.store.LedgerStore.write_batch`), without Kafka and without the verify stage.
The SQLite file is kept (``--workdir``) and copied for each run, so a second run skips the
build.

**On top of it**, through the real pipeline (Kafka, one `cehub process --until-idle`
worker): a certifier and four more participants enrolled, 2,500 more rounds (10,000 events),
a bale washed 20 times in a row (a 20-deep provenance graph), and three pooled batches made of
3, 33 and 333 received bales (certificates of 10, 100 and 1,000 evidence events). Then:

* the worker's steady rate on the big ledger and its peak RSS (``VmHWM``, sampled);
* store size on disk per entry (SQLite: the file after a WAL checkpoint; PostgreSQL:
  ``pg_database_size``);
* `cehub trace` of the 20-deep batch, `cehub certify` and `cehub verify-cert` of each
  certificate (wall time of the command, median of ``--samples``; `certify` once per
  certificate, it emits a CertificateIssued), ``verify_certificate`` in process, and the
  CLI's own start-up (`cehub --help`) for reference;
* `cehub audit` of the whole ledger: wall time and peak RSS.

With ``--database-url`` (PostgreSQL) the ledger is built in a fresh database on that server
instead, every run.
"""

from __future__ import annotations

import itertools
import json
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text

from benchmarks.common import Config
from benchmarks.workload import (
    BOOTSTRAP,
    PeakMemory,
    SupplyChain,
    cehub_exe,
    entry_count,
    environment,
    fresh_database,
    new_prefix,
    pipeline_machine,
    run_workers,
)
from consumers.stages import SequencerStage
from ledger.sqlstore import open_engine
from ledger.store import LedgerStore, merkle_nodes
from ledger.transport import Record
from schemas.events import Role
from tests.integration.hub_scenarios import send

NAME = "scale"
DEFAULT_SIZES = (1_000_000,)
DEFAULT_SAMPLES = 3
BATCH = 1_000
EXTRA_ROUNDS = 2_500
DEPTH = 20
POOLS = {10: 3, 100: 33, 1_000: 333}
"""Evidence events of a certificate -> bales pooled into its batch (3 per bale + 1)."""


def _no_gaps(topic: str, partition: int, start: int, end: int) -> list[Record]:
    raise AssertionError(f"unexpected gap in {topic}[{partition}] {start}..{end}")


def _chunks(items: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def bulk_load(
    url: str, size: int, progress: Callable[[str], None]
) -> tuple[SupplyChain, dict[str, Any]]:
    """Sequence ``size`` workload events into the store at ``url`` through SequencerStage."""
    chain = SupplyChain()
    engine = open_engine(url)
    try:
        store = LedgerStore(engine)
        stage = SequencerStage(store, chain.hub.context, _no_gaps)
        events = itertools.chain(chain.enrolments(), chain.rounds((size - 4) // 4))
        generate_s = sequence_s = 0.0
        offset, marks = 0, []
        t = time.perf_counter()
        for chunk in _chunks(events, BATCH):
            t0 = time.perf_counter()
            generate_s += t0 - t
            stage.process(
                [Record("bench.verified", 0, offset + n, None, e) for n, e in enumerate(chunk)]
            )
            t = time.perf_counter()
            sequence_s += t - t0
            offset += len(chunk)
            if offset % 100_000 < BATCH:
                marks.append({"entries": offset, "sequencer_s": round(sequence_s, 1)})
                progress(f"scale: {offset:,} entries, sequencer {sequence_s:.0f} s")
        entries = store.head().size
    finally:
        engine.dispose()
    rates = [
        round((b["entries"] - a["entries"]) / (b["sequencer_s"] - a["sequencer_s"]))
        for a, b in zip([{"entries": 0, "sequencer_s": 0.0}, *marks], marks, strict=False)
        if b["sequencer_s"] > a["sequencer_s"]
    ]
    return chain, {
        "entries": entries,
        "method": "SequencerStage.process, batches of 1,000, in process (no Kafka, no verify "
        "stage)",
        "generate_s": round(generate_s, 1),
        "sequencer_s": round(sequence_s, 1),
        "sequencer_events_per_s": round(entries / sequence_s),
        "sequencer_events_per_s_per_100k": rates,
        "peak_rss_mb_of_loader": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def _checkpoint_wal(url: str) -> None:
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()


@contextmanager
def ledger_of(
    size: int, folder: Path, postgres_url: str | None, progress: Callable[[str], None]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """A store of ``size`` bulk-loaded entries to run on, and the build's facts."""
    if postgres_url is not None:
        with fresh_database("postgresql", folder, postgres_url) as url:
            progress(f"scale: bulk-loading {size:,} entries into PostgreSQL ...")
            chain, build = bulk_load(url, size, progress)
            yield url, {**build, "counters": chain.counters(), "reused": False}
        return
    pristine, facts = folder / f"scale-{size}.sqlite", folder / f"scale-{size}.json"
    if pristine.exists() and facts.exists():
        build = {**json.loads(facts.read_text()), "reused": True}
    else:
        progress(f"scale: bulk-loading {size:,} entries into {pristine} ...")
        pristine.unlink(missing_ok=True)
        chain, build = bulk_load(f"sqlite:///{pristine}", size, progress)
        _checkpoint_wal(f"sqlite:///{pristine}")
        build["counters"] = chain.counters()
        facts.write_text(json.dumps(build, indent=2))
        build["reused"] = False
    work = folder / f"scale-{size}-run.sqlite"
    shutil.copyfile(pristine, work)
    try:
        yield f"sqlite:///{work}", build
    finally:
        work.unlink(missing_ok=True)


def extra_workload(
    counters: dict[str, int], size: int
) -> tuple[SupplyChain, list[bytes], dict[str, Any]]:
    """What is sent through Kafka on top of the bulk-loaded ledger (see the module doc);
    fewer extra rounds than :data:`EXTRA_ROUNDS` below 10^5 entries."""
    chain = SupplyChain(SupplyChain.resume_hub(counters), tag="x-")
    certifier = chain.hub.actor("certifier", Role.CERTIFIER)
    rounds = min(EXTRA_ROUNDS, max(1, size // 40))
    envelopes = [chain.hub.enrol(certifier), *chain.enrolments(), *chain.rounds(rounds)]
    deep, deepest = chain.deep_chain(DEPTH)
    envelopes += deep
    pools = {}
    for evidence, bales in POOLS.items():
        pooled, batch = chain.pooled(bales, f"pool-{evidence}")
        envelopes += pooled
        pools[evidence] = batch
    return chain, envelopes, {"deepest": deepest, "pools": pools, "certifier": certifier}


def _command(args: Sequence[str], env: dict[str, str], log: Path) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB, stdout) of one `cehub` command; raises when it fails."""
    with log.open("w") as err, tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen([cehub_exe(), *args], env=env, stdout=out, stderr=err)
        memory = PeakMemory([proc.pid])
        while proc.poll() is None:
            memory.sample()
            time.sleep(0.005)
        elapsed = time.perf_counter() - start
        out.seek(0)
        stdout = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"cehub {' '.join(args)} exited {proc.returncode}: see {log}")
    return elapsed, memory.peaks[proc.pid], stdout


def _median_command(
    args: Sequence[str], env: dict[str, str], log: Path, samples: int
) -> dict[str, Any]:
    runs = [_command(args, env, log) for _ in range(samples)]
    return {
        "median_s": round(statistics.median(r[0] for r in runs), 3),
        "runs_s": [round(r[0], 3) for r in runs],
        "peak_rss_mb": max(r[1] for r in runs),
        "stdout": runs[-1][2],
    }


def store_size(url: str) -> int:
    engine = open_engine(url)
    try:
        if engine.dialect.name == "sqlite":
            _checkpoint_wal(url)
            path = Path(str(engine.url.database))
            return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        with engine.connect() as conn:
            return int(conn.execute(text("select pg_database_size(current_database())")).scalar())
    finally:
        engine.dispose()


def node_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(merkle_nodes)).scalar_one())


def verify_in_process(cert: Path, trust: Path, samples: int) -> float:
    from verification.certificate import verify_certificate  # noqa: PLC0415  (optional package)
    from verification.trust import parse_trust  # noqa: PLC0415

    times = []
    for _ in range(max(samples, 5)):
        start = time.perf_counter()
        verify_certificate(json.loads(cert.read_text()), parse_trust(json.loads(trust.read_text())))
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 4)


def measure(
    size: int, samples: int, folder: Path, postgres_url: str | None, progress: Callable[[str], None]
) -> dict[str, Any]:
    with ledger_of(size, folder, postgres_url, progress) as (url, build):
        chain, extra, names = extra_workload(build["counters"], size)
        prefix = new_prefix(NAME)
        send(BOOTSTRAP, prefix, extra)
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=folder))
        env = environment(chain, prefix)  # type: ignore[arg-type]  # has .hub like a Scenario
        expected = build["entries"] + len(extra)
        progress(f"scale: a worker appends {len(extra):,} events to {build['entries']:,} ...")
        worker = run_workers(
            count=1, database_url=url, data_dirs=[run_dir], env=env, expected=expected
        )
        result: dict[str, Any] = {"size": size, "build": build}
        result["worker"] = {
            "events": len(extra),
            "events_per_s": round(worker.events_per_s),
            "first_commit_s": worker.first_commit_s,
            "wall_s": worker.wall_s,
            "peak_rss_mb": worker.peak_rss_mb[0],
            "cpu_s": worker.cpu_s[0],
        }
        engine = open_engine(url)
        try:
            entries, nodes = entry_count(engine), node_count(engine)
        finally:
            engine.dispose()
        size_bytes = store_size(url)
        result["store"] = {
            "backend": "postgresql" if postgres_url else "sqlite",
            "entries": entries,
            "merkle_nodes": nodes,
            "bytes": size_bytes,
            "bytes_per_entry": round(size_bytes / entries),
        }
        common = ["--database-url", url, "--data-dir", str(run_dir)]
        result["cli"] = _cli_figures(common, env, run_dir, names, samples, progress)
        progress("scale: cehub audit of the whole ledger ...")
        seconds, rss, out = _command([*common, "audit"], env, run_dir / "audit.log")
        result["audit"] = {"seconds": round(seconds, 1), "peak_rss_mb": rss, "out": out.strip()}
    return result


def _cli_figures(
    common: list[str],
    env: dict[str, str],
    run_dir: Path,
    names: dict[str, Any],
    samples: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    start = _median_command(["--help"], env, run_dir / "help.log", samples)
    figures["cli_startup_s"] = start["median_s"]
    trace = _median_command(
        [*common, "trace", names["deepest"], "--json"], env, run_dir / "trace.log", samples
    )
    figures["trace"] = {
        "depth": DEPTH,
        "batches": len(json.loads(trace.pop("stdout"))["batches"]),
        **trace,
    }
    progress(f"scale: trace of a {DEPTH}-deep graph {trace['median_s']} s")
    key = run_dir / "certifier.pem"
    key.write_bytes(names["certifier"].signer.to_pem())
    trust = run_dir / "trust.json"
    _command([*common, "trust", "export", "--out", str(trust)], env, run_dir / "trust.log")
    certificates = []
    for evidence, batch in names["pools"].items():
        cert_id = f"certifier/bench-{evidence}-{run_dir.name}"
        seconds, rss, _out = _command(
            [
                *common,
                "certify",
                batch,
                "--certifier-key",
                str(key),
                "--certifier-id",
                "certifier",
                "--certificate-id",
                cert_id,
                "--out",
                str(run_dir / "certs"),
                "--trust",
                str(trust),
            ],
            env,
            run_dir / "certify.log",
        )
        cert = run_dir / "certs" / f"{cert_id.replace('/', '_')}.json"
        document = json.loads(cert.read_text())
        check = _median_command(
            ["verify-cert", str(cert), "--trust", str(trust)], env, run_dir / "verify.log", samples
        )
        check.pop("stdout")
        certificates.append(
            {
                "evidence_events": len(document["evidence"]),
                "key_events": len(document["key_events"]),
                "certificate_bytes": cert.stat().st_size,
                "certify_s": round(seconds, 2),
                "certify_peak_rss_mb": rss,
                "verify_cert": check,
                "verify_in_process_s": verify_in_process(cert, trust, samples),
            }
        )
        progress(f"scale: certificate of {evidence} evidence events: {certificates[-1]}")
    figures["certificates"] = certificates
    return figures


def run(config: Config, progress: Callable[[str], None] = print) -> list[Path]:
    """Build (or reuse) each ledger, measure it, write ``scale.json`` and ``scale.md``."""
    results = []
    with tempfile.TemporaryDirectory(prefix="cehub-bench-scale-") as tmp:
        folder = config.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        report: dict[str, Any] = {"benchmark": NAME, "machine": pipeline_machine()}
        for size in sorted(config.sizes):
            results.append(measure(size, config.samples, folder, config.database_url, progress))
    report.update(samples=config.samples, results=results)
    stem = NAME if config.database_url is None else f"{NAME}-postgresql"
    config.out.mkdir(parents=True, exist_ok=True)
    json_path = config.out / f"{stem}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path = config.out / f"{stem}.md"
    md_path.write_text(markdown(report))
    return [json_path, md_path]


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Scale: a ledger of 10^6 entries",
        "",
        f"{m['date']}: {m['cpu']}, {m['cores']} cores (shared), Python {m['python']}, Kafka "
        f"{m['kafka']}, SQLite {m['sqlite']}; load average at start "
        f"{m['load_average_at_start']}. Command times are wall times of the `cehub` command "
        f"(Python start-up included), median of {report['samples']}.",
        "",
    ]
    for r in report["results"]:
        b, w, s, c, a = r["build"], r["worker"], r["store"], r["cli"], r["audit"]
        rates = ", ".join(f"{x:,}" for x in b.get("sequencer_events_per_s_per_100k", []))
        lines += [
            f"## {s['entries']:,} entries ({s['backend']})",
            "",
            f"- **Bulk load** of {b['entries']:,} entries through {b['method']}: "
            f"{b['sequencer_s']:,} s in the sequencer ({b['sequencer_events_per_s']:,} events/s; "
            f"per 100,000: {rates})"
            + (f", {b['generate_s']:,} s generating and signing" if "generate_s" in b else "")
            + (" (built by an earlier run, reused)" if b["reused"] else "")
            + ".",
            f"- **Worker on top**: {w['events']:,} events through Kafka at "
            f"{w['events_per_s']:,} events/s steady; peak RSS **{w['peak_rss_mb']} MB**.",
            f"- **Store**: {s['bytes'] / 1e6:,.0f} MB for {s['entries']:,} entries and "
            f"{s['merkle_nodes']:,} Merkle nodes: **{s['bytes_per_entry']:,} bytes per entry**.",
            f"- **`cehub audit`**: {a['seconds']:,} s, peak RSS **{a['peak_rss_mb']:,} MB**.",
            f"- **`cehub trace`** of a {c['trace']['depth']}-deep graph "
            f"({c['trace']['batches']} batches): {c['trace']['median_s']} s "
            f"(`cehub --help` alone: {c['cli_startup_s']} s).",
            "",
            "| certificate | key events | file | `certify` | `verify-cert` (command) "
            "| `verify_certificate` in process |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for cert in c["certificates"]:
            lines.append(
                f"| {cert['evidence_events']:,} evidence events | {cert['key_events']} "
                f"| {cert['certificate_bytes'] / 1e3:,.0f} kB | {cert['certify_s']} s "
                f"| {cert['verify_cert']['median_s']} s | {cert['verify_in_process_s']} s |"
            )
        lines.append("")
    lines += ["Command: `python -m benchmarks --only scale` (`--sizes 100000` for less).", ""]
    return "\n".join(lines)
