"""Merkle proofs served from the SQL store at 10^4, 10^5 and 10^6 entries.

What is measured, per tree size ``n`` (``--samples`` random draws each, seeded):

* **inclusion proof generation** for a random leaf ``i``, on an open connection, as
  ``cehub proof inclusion`` serves it: the nodes the proof needs are fetched in one query
  (``prefetched`` over ``ledger.store.nodes_at``). Serving also reads the entry's envelope and
  the checkpoint (primary-key lookups, not included). For comparison, the same proof read one
  node per query, through ``node_reader`` (one prebuilt statement) and through
  ``node_reader`` (a statement built per read): that is where the time went before;
* **consistency proof generation**: ``consistency_proof(m, n, ...)`` for a random ``m < n``;
* **verification** of each proof (``verify_inclusion`` / ``verify_consistency``, pure);
* **proof size** in bytes (32 per hash) and **node reads** per proof.

The node tables are *bulk-loaded*: the leaves are synthetic (``bench entry <i>``), and every
node is computed by :func:`ledger.merkle.nodes_completed_by_append`, the code path of
``LedgerStore.write_batch``, but inserted in large ``executemany`` chunks in one transaction
instead of one batch per sequencer commit. The table, its primary key ``(level, idx)`` and the
queries are the store's own (``ledger.store.migrate`` / ``nodes_at``).
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select

from benchmarks.common import Config, machine, summary, timed_ns
from ledger.merkle import (
    GetNode,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    nodes_completed_by_append,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from ledger.proof_document import prefetched
from ledger.sqlstore import open_engine
from ledger.store import merkle_nodes, migrate, node_reader, nodes_at

NAME = "proofs"
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
CHUNK = 50_000


def leaf_data(index: int) -> bytes:
    return b"bench entry %d" % index


def build_tree(engine: Engine, size: int) -> float:
    """Fill the store's ``merkle_nodes`` with the tree of ``size`` synthetic leaves; seconds.

    Only the right edge of the tree (at most one pending left sibling per level) stays in
    memory, so 10^6 leaves need a few kilobytes besides the insert buffer.
    """
    migrate(engine)
    frontier: dict[tuple[int, int], bytes] = {}
    rows: list[dict[str, Any]] = []
    elapsed, _ = timed_ns(_load, engine, size, frontier, rows)
    return elapsed / 1e9


def _load(
    engine: Engine, size: int, frontier: dict[tuple[int, int], bytes], rows: list[dict[str, Any]]
) -> None:
    def left_sibling(level: int, index: int) -> bytes:
        return frontier[level, index]

    with engine.begin() as conn:
        conn.execute(delete(merkle_nodes))
        for n in range(size):
            for node in nodes_completed_by_append(n, leaf_hash(leaf_data(n)), left_sibling):
                rows.append({"level": node.level, "idx": node.index, "hash": node.hash})
                if node.index & 1:
                    del frontier[node.level, node.index - 1]
                else:
                    frontier[node.level, node.index] = node.hash
            if len(rows) >= CHUNK:
                conn.execute(merkle_nodes.insert(), rows)
                rows.clear()
        if rows:
            conn.execute(merkle_nodes.insert(), rows)
            rows.clear()


def stored_leaves(engine: Engine) -> int:
    """How many leaves the node table holds (0 if there is none yet)."""
    migrate(engine)
    with engine.connect() as conn:
        last = conn.execute(
            select(func.max(merkle_nodes.c.idx)).where(merkle_nodes.c.level == 0)
        ).scalar()
    return 0 if last is None else int(last) + 1


def counting(get_node: GetNode) -> tuple[GetNode, list[int]]:
    """``get_node`` plus a one-element list counting its calls."""
    calls = [0]

    def counted(level: int, index: int) -> bytes:
        calls[0] += 1
        return get_node(level, index)

    return counted, calls


def served_inclusion(conn: Connection, index: int, size: int) -> tuple[bytes, ...]:
    """An inclusion proof as `cehub proof inclusion` reads it: every node in one query."""
    get_node = prefetched(partial(nodes_at, conn), lambda g: inclusion_proof(index, size, g))
    return inclusion_proof(index, size, get_node)


def served_consistency(conn: Connection, old: int, size: int) -> tuple[bytes, ...]:
    """A consistency proof as `cehub proof consistency` and `cehub witness` read it."""
    get_node = prefetched(partial(nodes_at, conn), lambda g: consistency_proof(old, size, g))
    return consistency_proof(old, size, get_node)


def unprepared_node_reader(conn: Connection) -> Callable[[int, int], bytes]:
    """The baseline: a ``select`` built for every read (how ``node_reader`` used to work)."""

    def get_node(level: int, index: int) -> bytes:
        found = conn.execute(
            select(merkle_nodes.c.hash).where(
                merkle_nodes.c.level == level, merkle_nodes.c.idx == index
            )
        ).scalar()
        if found is None:
            raise KeyError((level, index))
        return bytes(found)

    return get_node


def measure(conn: Connection, size: int, samples: int, rng: random.Random) -> dict[str, Any]:
    """Every figure for one tree size, on one open connection."""
    per_read, reads = counting(node_reader(conn))
    unprepared = unprepared_node_reader(conn)
    root = root_hash(size, per_read)
    result: dict[str, Any] = {"size": size}
    gen, ver, nbytes, nreads, prepared, slow = [], [], [], [], [], []
    for _ in range(samples):
        index = rng.randrange(size)
        slow.append(timed_ns(inclusion_proof, index, size, unprepared)[0])
        reads[0] = 0
        prepared.append(timed_ns(inclusion_proof, index, size, per_read)[0])
        nreads.append(reads[0])
        t, proof = timed_ns(served_inclusion, conn, index, size)
        gen.append(t)
        nbytes.append(32 * len(proof))
        leaf = leaf_hash(leaf_data(index))
        ver.append(timed_ns(verify_inclusion, leaf, index, size, proof, root)[0])
    result["inclusion"] = _figures(gen, ver, nbytes, nreads)
    result["inclusion"]["generate_one_query_per_node"] = summary(prepared)
    result["inclusion"]["generate_node_reader"] = summary(slow)
    gen, ver, nbytes, nreads = [], [], [], []
    for _ in range(samples):
        old = rng.randrange(1, size)
        old_root = root_hash(old, per_read)
        reads[0] = 0
        consistency_proof(old, size, per_read)
        nreads.append(reads[0])
        t, proof = timed_ns(served_consistency, conn, old, size)
        gen.append(t)
        nbytes.append(32 * len(proof))
        ver.append(timed_ns(verify_consistency, old, size, old_root, root, proof)[0])
    result["consistency"] = _figures(gen, ver, nbytes, nreads)
    return result


def _figures(
    generate: list[int], verify: list[int], sizes: list[int], reads: list[int]
) -> dict[str, Any]:
    return {
        "generate": summary(generate),
        "verify": summary(verify),
        "proof_bytes": {"median": sorted(sizes)[len(sizes) // 2], "max": max(sizes)},
        "node_reads": {"median": sorted(reads)[len(reads) // 2], "max": max(reads)},
    }


@contextmanager
def _engine_for(config: Config, size: int, folder: Path) -> Iterator[Engine]:
    url = config.database_url or f"sqlite:///{folder / f'proofs-{size}.sqlite'}"
    engine = open_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def run(config: Config, progress: Callable[[str], None] = print) -> list[Path]:
    """Build (or reuse) each tree, measure it, write ``proofs.json`` and ``proofs.md``."""
    rng = random.Random(config.seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cehub-bench-") as tmp:
        folder = config.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for size in sorted(config.sizes):
            with _engine_for(config, size, folder) as engine:
                build_s = None
                if stored_leaves(engine) != size:
                    progress(f"proofs: bulk-loading a tree of {size:,} leaves ...")
                    build_s = round(build_tree(engine, size), 2)
                with engine.connect() as conn:
                    figures = measure(conn, size, config.samples, rng)
                    nodes = conn.execute(select(func.count()).select_from(merkle_nodes)).scalar()
                figures.update(nodes=nodes, build_seconds=build_s, backend=engine.dialect.name)
                rows.append(figures)
                progress(f"proofs: {_line(figures)}")
    return _write(config, rows)


def _write(config: Config, rows: list[dict[str, Any]]) -> list[Path]:
    config.out.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": NAME,
        "machine": machine(),
        "samples": config.samples,
        "seed": config.seed,
        "database": "SQLite file" if config.database_url is None else rows[0]["backend"],
        "results": rows,
    }
    stem = NAME if config.database_url is None else f"{NAME}-{rows[0]['backend']}"
    json_path = config.out / f"{stem}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path = config.out / f"{stem}.md"
    md_path.write_text(markdown(report))
    return [json_path, md_path]


def markdown(report: dict[str, Any]) -> str:
    """The results table of docs/verifiable-log.md."""
    m = report["machine"]
    lines = [
        f"# Merkle proofs from the SQL store ({report['database']})",
        "",
        f"{m['date']}: {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
        f"SQLite {m['sqlite']}, SQLAlchemy {m['sqlalchemy']}; {report['samples']} random "
        f"proofs per figure (seed {report['seed']}); times in microseconds, median / p95.",
        "",
        "| entries | nodes stored | bulk load (s) | inclusion: generate | verify | bytes | nodes "
        "| consistency: generate | verify | bytes | nodes "
        "| inclusion, one query per node | inclusion via `node_reader` |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        build = r["build_seconds"]
        cells = [f"{r['size']:,}", f"{r['nodes']:,}", "reused" if build is None else str(build)]
        for kind in ("inclusion", "consistency"):
            f = r[kind]
            cells += [
                f"{f['generate']['median_us']} / {f['generate']['p95_us']}",
                f"{f['verify']['median_us']} / {f['verify']['p95_us']}",
                f"{f['proof_bytes']['median']} (max {f['proof_bytes']['max']})",
                f"{f['node_reads']['median']} (max {f['node_reads']['max']})",
            ]
        for key in ("generate_one_query_per_node", "generate_node_reader"):
            slow = r["inclusion"][key]
            cells.append(f"{slow['median_us']} / {slow['p95_us']}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Generate = the proof as `cehub proof` and `cehub witness` serve it: the nodes it needs "
        "read in one query (`ledger.store.nodes_at`) on an open connection, plus the hashing. "
        "bytes = 32 per hash; nodes = complete-subtree nodes the proof reads. The last two "
        "columns read the same inclusion proofs one query per node, through "
        "`node_reader` (prebuilt statement) and `unprepared_node_reader` (statement built per "
        "read). Trees bulk-loaded through `nodes_completed_by_append`. "
        f"Command: `python -m benchmarks --only proofs{_url_flag(report)}`.",
        "",
    ]
    return "\n".join(lines)


def _url_flag(report: dict[str, Any]) -> str:
    return "" if report["database"] == "SQLite file" else " --database-url <its URL>"


def _line(r: dict[str, Any]) -> str:
    inc, con = r["inclusion"], r["consistency"]
    return (
        f"{r['size']:,} leaves: inclusion {inc['generate']['median_us']} us median "
        f"({inc['generate']['p95_us']} p95), consistency {con['generate']['median_us']} us "
        f"median; build {r['build_seconds']} s"
    )
