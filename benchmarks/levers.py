"""Levers: the same measurements on two or more versions of the code, side by side.

A lever is judged by running the code without it and with it in the same run, alternating, on
the same workload and topic: the stages in process (``benchmarks/profile.py``
``time_stages``) and a real `cehub process --until-idle` worker end to end
(``benchmarks/ingest.py``), on SQLite and on PostgreSQL when a server URL is known.

A version is a git revision (exported with ``git archive`` into a temporary folder) or a
folder holding the packages; ``.`` is the working tree. Each runs in its own processes with
``PYTHONPATH`` pointing at it, so its ``ledger``, ``consumers``, ``schemas`` and ``tests``
are imported instead of the installed ones (the harness itself is this folder's).

`python -m benchmarks --only levers` compares :data:`BEFORE` (the last commit before the
levers of issue 7) with the working tree; ``python -m benchmarks.levers NAME=VERSION ...``
compares any versions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import Config
from benchmarks.ingest import _hub
from benchmarks.workload import (
    BOOTSTRAP,
    POSTGRES_ENV,
    ROOT,
    environment,
    new_prefix,
    pipeline_machine,
    scenario,
)
from ledger.config import Settings
from ledger.wiring import ledger_key
from tests.integration.hub_scenarios import send

NAME = "levers"
DEFAULT_SIZES = (10_000,)
DEFAULT_SAMPLES = 3
BEFORE = "d7257f4"
"""The commit before the levers of issue 7 (prefetching, the decode cache, direct sends)."""

_STAGES = """
import json, sys
from pathlib import Path
from benchmarks.profile import time_stages
from benchmarks.workload import scenario
w = scenario({size})
print(json.dumps(time_stages({backend!r}, w.envelopes, w.hub.context, Path({folder!r}), {pg!r})))
"""


def export(version: str, folder: Path) -> Path:
    """The folder holding ``version``'s packages (exported from git unless it is a folder)."""
    if version == ".":
        return ROOT
    if Path(version).is_dir():
        return Path(version).resolve()
    target = folder / f"tree-{version.replace('/', '_')}"
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", version], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def _pythonpath(tree: Path) -> str:
    return os.pathsep.join(dict.fromkeys([str(tree), str(ROOT)]))


def time_stages_of(
    tree: Path, size: int, backend: str, folder: Path, pg: str | None
) -> dict[str, float]:
    code = _STAGES.format(size=size, backend=backend, folder=str(folder), pg=pg)
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": _pythonpath(tree)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def compare(
    versions: dict[str, str],
    size: int,
    samples: int,
    folder: Path,
    pg: str | None,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    trees = {name: export(v, folder) for name, v in versions.items()}
    workload = scenario(size)
    events = len(workload.envelopes)
    prefix = new_prefix(NAME)
    send(BOOTSTRAP, prefix, workload.envelopes)
    key_file = folder / f"{prefix}-ledger.pem"
    ledger_key(Settings(ledger_key=key_file))
    backends = ["sqlite", *(["postgresql"] if pg else [])]
    figures: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    for sample in range(samples):
        for name, tree in trees.items():
            env = environment(
                workload, prefix, CEHUB_LEDGER_KEY=str(key_file), PYTHONPATH=_pythonpath(tree)
            )
            for backend in backends:
                stages = time_stages_of(tree, size, backend, folder, pg)
                both = events / (stages["verify_s"] + stages["sequencer_s"])
                figures[name].setdefault(f"stages {backend}", []).append(round(both))
                hub = _hub(1, backend, folder, pg, env, workload)
                figures[name].setdefault(f"worker {backend}", []).append(hub["events_per_s"])
            progress(f"levers: sample {sample + 1}/{samples} {name}: {figures[name]}")
    first = next(iter(trees))
    rows = []
    for measure in figures[first]:
        row: dict[str, Any] = {"measure": measure}
        for name in trees:
            runs = figures[name][measure]
            row[name] = {"median": round(statistics.median(runs)), "runs": runs}
            speedups = [b / a for a, b in zip(figures[first][measure], runs, strict=True)]
            row[name]["speedup_median"] = round(statistics.median(speedups), 2)
        rows.append(row)
    return {"events": events, "versions": versions, "rows": rows}


def write(report: dict[str, Any], out: Path, stem: str = NAME) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path = out / f"{stem}.md"
    md_path.write_text(markdown(report))
    return [json_path, md_path]


def markdown(report: dict[str, Any]) -> str:
    m, r = report["machine"], report["result"]
    names = list(r["versions"])
    lines = [
        "# Levers: the same measurements on each version, side by side",
        "",
        f"{m['date']}: {m['cpu']}, {m['cores']} cores (shared), Python {m['python']}, Kafka "
        f"{m['kafka']}, SQLite {m['sqlite']}, PostgreSQL {m['postgresql'] or 'not measured'}; "
        f"load average at start {m['load_average_at_start']}. {r['events']:,} events, "
        f"{report['samples']} samples alternating between versions; events/s, medians "
        f"(speed-up: median of per-sample ratios to `{names[0]}`).",
        "",
        "Versions: "
        + ", ".join(
            f"`{n}` = {'the working tree' if v == '.' else v}" for n, v in r["versions"].items()
        )
        + ".",
        "",
        "| measure | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for row in r["rows"]:
        cells = []
        for n in names:
            f = row[n]
            cells.append(
                f"{f['median']:,}" + ("" if n == names[0] else f" (x{f['speedup_median']})")
            )
        lines.append(f"| {row['measure']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "stages = verify + sequencer stages in process, no Kafka (`benchmarks/profile.py`); "
        "worker = one `cehub process --until-idle` on Kafka, steady state "
        "(`benchmarks/ingest.py`).",
        "",
    ]
    return "\n".join(lines)


def _run(
    versions: dict[str, str], config: Config, progress: Callable[[str], None], stem: str
) -> list[Path]:
    pg = config.database_url or os.environ.get(POSTGRES_ENV)
    with tempfile.TemporaryDirectory(prefix="cehub-bench-levers-") as tmp:
        folder = config.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        report: dict[str, Any] = {"benchmark": NAME, "machine": pipeline_machine(pg)}
        size = max(config.sizes)
        report["result"] = compare(versions, size, config.samples, folder, pg, progress)
    report["samples"] = config.samples
    return write(report, config.out, stem)


def run(config: Config, progress: Callable[[str], None] = print) -> list[Path]:
    """:data:`BEFORE` against the working tree."""
    return _run({"before": BEFORE, "now": "."}, config, progress, NAME)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.levers", description=__doc__)
    parser.add_argument("versions", nargs="+", help="NAME=VERSION (git revision, folder or .)")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZES[0])
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--stem", default=f"{NAME}-custom", help="results file name")
    args = parser.parse_args(argv)
    versions = dict(v.split("=", 1) for v in args.versions)
    config = Config(sizes=(args.size,), samples=args.samples, out=args.out)
    for path in _run(versions, config, print, args.stem):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
