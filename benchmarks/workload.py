"""What the pipeline benchmarks (producer, ingest, scale) share: the signed workload, the
services, the `cehub` processes and how they are watched.

The workload is the hub's integration scenario (``tests/integration/hub_scenarios.py``
``supply_chain``): a recycler and three collectors enrolled by the hub authority, then rounds of
create, ship, receive and wash, every event sealed with a real Ed25519 key. Four events per
round, so ``events_for(size)`` picks the rounds for about ``size`` events.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from benchmarks.common import machine
from ledger.envelope import KnownKey, SimpleKeyring
from ledger.sqlstore import consumer_positions, open_engine
from ledger.store import entries
from schemas.events import HUB_PRODUCER_ID, ParticipantEnrolled, Role
from tests.builders import Hub, event_of, out
from tests.integration.hub_scenarios import Scenario, hub_env, supply_chain

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = os.environ.get("CEHUB_BOOTSTRAP", "127.0.0.1:9092")
POSTGRES_ENV = "CEHUB_TEST_POSTGRES_URL"
"""The PostgreSQL server the pipeline benchmarks create their databases on (`make bench` sets
it, as `make test` does); without it they measure SQLite only and say so."""


def rounds_for(size: int) -> int:
    """Rounds of :func:`supply_chain` for about ``size`` events (4 enrolments + 4 a round)."""
    return max(1, (size - 4) // 4)


def scenario(size: int) -> Scenario:
    """The signed workload of about ``size`` events (valid ones only)."""
    return supply_chain(rounds_for(size))


def keyring_of(workload: Scenario) -> SimpleKeyring:
    """Every key the workload's events are signed with: the hub authority's and each
    participant's enrolled key (read from the ParticipantEnrolled events themselves)."""
    hub = workload.hub.authority
    keys = [KnownKey(hub.key_id, HUB_PRODUCER_ID, hub.public_key, authority=True)]
    for envelope in workload.envelopes:
        event = event_of(envelope)
        if isinstance(event, ParticipantEnrolled):
            keys.append(KnownKey(event.key_id, event.participant_id, event.public_key))
    return SimpleKeyring.of(keys)


def new_prefix(name: str) -> str:
    """A topic prefix of its own, so runs never read each other's records."""
    return f"bench-{name}-{uuid.uuid4().hex[:8]}"


def environment(workload: Scenario, prefix: str, **extra: str) -> dict[str, str]:
    """The `cehub` environment of a hub over ``prefix`` that trusts the workload's authority."""
    return {**os.environ, **hub_env(workload, BOOTSTRAP, prefix), **extra}


def cehub_exe() -> str:
    return str(Path(sys.executable).with_name("cehub"))


# --- facts about the machine and the services ---------------------------------------------------


def kafka_version() -> str:
    """The broker release: the kafka jar that infra/kafka/start runs (its pom pins it)."""
    lib = ROOT / "infra" / "kafka" / "var" / "lib"
    for jar in sorted(lib.glob("kafka_2.*-*.jar")) if lib.is_dir() else []:
        name = jar.stem.split("-", 1)[1]
        if name[0].isdigit() and not name.endswith(("sources", "javadoc", "test")):
            return name
    return "unknown (infra/kafka/var/lib has no kafka jar)"


def postgres_version(url: str | None) -> str | None:
    if url is None:
        return None
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("show server_version")).scalar_one())
    except SQLAlchemyError as exc:
        return f"unreachable: {exc.__class__.__name__}"
    finally:
        engine.dispose()


def pipeline_machine(postgres_url: str | None = None) -> dict[str, Any]:
    """:func:`benchmarks.common.machine` plus the broker and client versions."""
    facts = machine()
    facts["kafka"] = kafka_version()
    facts["postgresql"] = postgres_version(postgres_url)
    for package in ("kafka-python", "faust-streaming", "cryptography", "fastavro", "psycopg"):
        with suppress(metadata.PackageNotFoundError):
            facts[package] = metadata.version(package)
    facts["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return facts


# --- databases ---------------------------------------------------------------------------------


@contextmanager
def fresh_database(backend: str, folder: Path, postgres_url: str | None) -> Iterator[str]:
    """The URL of an empty ledger database: a new SQLite file, or a new PostgreSQL database
    on ``postgres_url``'s server (dropped afterwards)."""
    if backend == "sqlite":
        path = folder / f"ledger-{uuid.uuid4().hex[:8]}.sqlite"
        yield f"sqlite:///{path}"
        return
    if postgres_url is None:
        raise ValueError("no PostgreSQL server to create a database on")
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'create database "{name}"'))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


def entry_count(engine: Engine) -> int:
    """Committed entries (0 while the worker has not created the tables yet)."""
    try:
        with engine.connect() as conn:
            last = conn.execute(select(func.max(entries.c.seq))).scalar()
    except SQLAlchemyError:
        return 0
    return 0 if last is None else int(last) + 1


def verify_progress(engine: Engine) -> int:
    try:
        with engine.connect() as conn:
            done = conn.execute(
                select(func.coalesce(func.sum(consumer_positions.c.next_offset), 0)).where(
                    consumer_positions.c.stage == "verify"
                )
            ).scalar()
    except SQLAlchemyError:
        return 0
    return int(done or 0)


# --- watching hub workers ------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerRun:
    """What one or more `cehub process --until-idle` workers did, seen from outside."""

    events: int
    first_commit_s: float
    """Seconds from launch to the first progress seen in the store: the verify stage's first
    stored position or the first entry (start-up plus one verify batch of up to 500)."""
    entries_at_first_commit: int
    steady_s: float
    """Seconds from the first progress seen to the committed head holding every event."""
    wall_s: float
    """Launch to exit of the last worker (start-up, work, idle detection, shutdown)."""
    peak_rss_mb: tuple[float, ...]
    """Peak resident memory of each worker process (:func:`peak_rss_mb`)."""
    cpu_s: tuple[float, ...] = ()
    """CPU seconds (user + system) each worker used, start-up included (sampled)."""

    @property
    def events_per_s(self) -> float:
        """Steady-state rate: entries committed after the first progress seen, per second
        between that observation and the last commit (start-up excluded).

        When every event was committed before the first observation (tiny smoke-test sizes)
        there is no steady-state window: the rate is then taken over the whole run from
        launch, start-up included, which understates rather than invents a figure."""
        if self.steady_s <= 0 or self.events == self.entries_at_first_commit:
            return self.events / self.wall_s if self.wall_s > 0 else 0.0
        return (self.events - self.entries_at_first_commit) / self.steady_s


def run_workers(
    *,
    count: int,
    database_url: str,
    data_dirs: Sequence[Path],
    env: dict[str, str],
    expected: int,
    poll_s: float = 0.02,
    timeout_s: float = 1800.0,
) -> WorkerRun:
    """Launch ``count`` `cehub process --until-idle` workers of one ledger; watch its head.

    The store is polled every ``poll_s`` (an indexed ``max(seq)`` and the verify stage's
    positions): the first progress starts the clock (the verify stage stores its position
    after its first batch of up to 500 records, before the sequencer commits anything), the
    commit of entry ``expected - 1`` stops it.
    """
    launched = time.perf_counter()
    workers = []
    for n in range(count):
        log = (data_dirs[n] / "worker.log").open("w")
        cmd = [cehub_exe(), "--database-url", database_url, "--data-dir", str(data_dirs[n])]
        workers.append(
            subprocess.Popen(
                [*cmd, "process", "--until-idle"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        )
        log.close()
    engine = open_engine(database_url)
    memory = PeakMemory([w.pid for w in workers])
    try:
        first_at, first_n, done_at = _watch(
            engine, workers, expected, poll_s, timeout_s, launched, memory
        )
    finally:
        engine.dispose()
    for worker, folder in zip(workers, data_dirs, strict=False):
        while _alive(worker.pid):  # until-idle: it stops by itself once caught up
            memory.sample()
            time.sleep(poll_s)
        worker.wait()
        if worker.returncode != 0:
            raise RuntimeError(f"worker exited {worker.returncode}: see {folder / 'worker.log'}")
    rss = [memory.peaks[w.pid] for w in workers]
    cpu = [round(memory.cpu[w.pid], 2) for w in workers]
    ended = time.perf_counter()
    return WorkerRun(
        events=expected,
        first_commit_s=round(first_at - launched, 3),
        entries_at_first_commit=first_n,
        steady_s=round(done_at - first_at, 3),
        wall_s=round(ended - launched, 3),
        peak_rss_mb=tuple(rss),
        cpu_s=tuple(cpu),
    )


def peak_rss_mb(pid: int) -> float | None:
    """The high-water mark of ``pid``'s resident memory (``VmHWM``), None once it has exited.

    Not ``wait4``'s ``ru_maxrss``: Linux carries the parent's RSS at ``fork`` into it, so a
    child of a big benchmark process would report the parent's size.
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time ``pid`` has used so far, None once it has exited."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PeakMemory:
    """Follows the peak RSS and the CPU time of processes while they run (poll
    :meth:`sample`)."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.peaks = dict.fromkeys(pids, 0.0)
        self.cpu = dict.fromkeys(pids, 0.0)

    def sample(self) -> None:
        for pid in self.peaks:
            now = peak_rss_mb(pid)
            if now is not None:
                self.peaks[pid] = max(self.peaks[pid], now)
            used = cpu_seconds(pid)
            if used is not None:
                self.cpu[pid] = max(self.cpu[pid], used)


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs, without reaping it (``wait4`` reads its rusage later)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _watch(
    engine: Engine,
    workers: Sequence[subprocess.Popen[bytes]],
    expected: int,
    poll_s: float,
    timeout_s: float,
    launched: float,
    memory: PeakMemory,
) -> tuple[float, int, float]:
    first_at, first_n = 0.0, 0
    before = entry_count(engine)  # a store may start with entries (enrolments, a big ledger)
    while True:
        n = entry_count(engine)
        now = time.perf_counter()
        if not first_at and (n > before or verify_progress(engine)):
            first_at, first_n = now, n
        if n >= expected:
            return first_at, first_n, now
        if now - launched > timeout_s:
            raise TimeoutError(f"{n} of {expected} entries after {timeout_s} s")
        if not any(_alive(w.pid) for w in workers):
            raise RuntimeError(f"every worker exited with {n} of {expected} entries committed")
        memory.sample()
        time.sleep(poll_s)


# --- a workload streamed round by round (ledgers of 10^6 entries) -------------------------------


class SupplyChain:
    """:func:`supply_chain`'s participants and rounds, generated lazily and resumably.

    ``tag`` prefixes every participant id, so a second SupplyChain on the same hub adds new
    participants instead of reusing sequence numbers. The hub's counters (its own producer
    sequence and the event-id counter) can be restored with :meth:`resume_hub`, so events
    added to a stored ledger later get fresh ids.
    """

    def __init__(self, hub: Hub | None = None, tag: str = "") -> None:
        self.hub = hub or Hub()
        self.recycler = self.hub.actor(f"{tag}recycler", Role.RECYCLER)
        self.collectors = [self.hub.actor(f"{tag}collector-{n}", Role.COLLECTOR) for n in range(3)]
        self.done = 0

    @staticmethod
    def resume_hub(counters: dict[str, int]) -> Hub:
        hub = Hub()
        hub.hub_seq, hub.events = counters["hub_seq"], counters["events"]
        return hub

    def counters(self) -> dict[str, int]:
        return {"hub_seq": self.hub.hub_seq, "events": self.hub.events}

    def enrolments(self) -> list[bytes]:
        return [self.hub.enrol(a) for a in (self.recycler, *self.collectors)]

    def rounds(self, count: int) -> Iterator[bytes]:
        """``count`` more rounds: create, ship, receive, wash (four events each)."""
        hub, recycler = self.hub, self.recycler
        for n in range(self.done, self.done + count):
            c = self.collectors[n % 3]
            batch, shipment = f"{c.participant_id}/bale-{n}", f"{c.participant_id}/ship-{n}"
            flakes = f"{recycler.participant_id}/flakes-{n}"
            yield hub.create_batch(c, batch, 100_000, post=90_000)
            yield hub.ship(c, batch, 60_000, to=recycler, shipment_id=shipment)
            yield hub.receive(recycler, shipment, 59_000)
            yield hub.transform(recycler, {shipment: 59_000}, [out(flakes, "PET_FLAKE", 50_000)])
        self.done += count

    def deep_chain(self, depth: int, name: str = "deep") -> tuple[list[bytes], str]:
        """A bale shipped, received and washed ``depth`` times in a row; the last batch id."""
        hub, c, r = self.hub, self.collectors[0], self.recycler
        bale, shipment = f"{c.participant_id}/{name}-bale", f"{c.participant_id}/{name}-ship"
        envelopes = [
            hub.create_batch(c, bale, 100_000, post=90_000),
            hub.ship(c, bale, 60_000, to=r, shipment_id=shipment),
            hub.receive(r, shipment, 60_000),
        ]
        previous, mass = shipment, 60_000
        for level in range(1, depth + 1):
            batch = f"{r.participant_id}/{name}-{level}"
            envelopes.append(
                hub.transform(r, {previous: mass}, [out(batch, "PET_FLAKE", mass - 100)])
            )
            previous, mass = batch, mass - 100
        return envelopes, previous

    def pooled(self, inputs: int, name: str) -> tuple[list[bytes], str]:
        """``inputs`` bales shipped and received, washed together into one batch: that
        batch's certificate has ``3 * inputs + 1`` evidence events."""
        hub, r = self.hub, self.recycler
        envelopes, consumed = [], {}
        for n in range(inputs):
            c = self.collectors[n % 3]
            bale = f"{c.participant_id}/{name}-bale-{n}"
            shipment = f"{c.participant_id}/{name}-ship-{n}"
            envelopes.append(hub.create_batch(c, bale, 100_000, post=90_000))
            envelopes.append(hub.ship(c, bale, 60_000, to=r, shipment_id=shipment))
            envelopes.append(hub.receive(r, shipment, 59_000))
            consumed[shipment] = 59_000
        batch = f"{r.participant_id}/{name}"
        envelopes.append(hub.transform(r, consumed, [out(batch, "PET_FLAKE", 50_000 * inputs)]))
        return envelopes, batch
