"""`python -m benchmarks [--only NAME] [--sizes N,N,...] [--samples K] [--out DIR]`.

Runs every benchmark (or only the named one) and prints where the results were written.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import Config

BENCHMARKS = {
    "proofs": "benchmarks.proofs",
    "producer": "benchmarks.producer",
    "ingest": "benchmarks.ingest",
    "scale": "benchmarks.scale",
    "profile": "benchmarks.profile",
    "levers": "benchmarks.levers",
}
"""Benchmark name -> module (``NAME``, ``DEFAULT_SIZES``, ``run(config)``; optionally
``DEFAULT_SAMPLES``)."""

RESULTS = Path(__file__).resolve().parent / "results"


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of sizes: {text}") from None
    if any(size < 2 for size in sizes):
        raise argparse.ArgumentTypeError("every size must be at least 2")
    return sizes


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", choices=sorted(BENCHMARKS), help="run only this benchmark")
    parser.add_argument(
        "--sizes", type=_sizes, help="ledger sizes, e.g. 10000,100000,1000000 [per benchmark]"
    )
    parser.add_argument(
        "--samples", type=int, help="measurements per figure [per benchmark: proofs 200]"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep the databases built here and reuse them next time [default: a temp dir]",
    )
    parser.add_argument(
        "--database-url",
        help="run against this SQLAlchemy URL (e.g. PostgreSQL) instead of SQLite files; "
        "its merkle_nodes table is emptied and reloaded for each size",
    )
    parser.add_argument("--seed", type=int, default=9162, help="random seed of the samples")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = [args.only] if args.only else sorted(BENCHMARKS)
    for name in names:
        module = importlib.import_module(BENCHMARKS[name])
        config = Config(
            sizes=args.sizes or module.DEFAULT_SIZES,
            samples=args.samples or getattr(module, "DEFAULT_SAMPLES", 200),
            out=args.out,
            workdir=args.workdir,
            database_url=args.database_url,
            seed=args.seed,
        )
        for path in module.run(config):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
