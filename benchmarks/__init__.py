"""Benchmarks of CE Hub Ledger: `python -m benchmarks` is the one entry point.

Each benchmark is a module of this package with ``NAME``, ``DEFAULT_SIZES`` and
``run(config) -> list[Path]`` (the result files it wrote); ``__main__`` lists them in
``BENCHMARKS``. Results go to ``benchmarks/results/`` as JSON (every figure) and Markdown
(the table the docs quote), with the facts of the machine that produced them.
"""
