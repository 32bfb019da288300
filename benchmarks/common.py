"""What every benchmark shares: its configuration, timing statistics and machine facts."""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import sqlalchemy

T = TypeVar("T")


@dataclass(frozen=True)
class Config:
    sizes: Sequence[int]
    samples: int
    out: Path
    workdir: Path | None = None
    database_url: str | None = None
    seed: int = 9162


def summary(values_ns: Sequence[int]) -> dict[str, float]:
    """Median, p95 and max of durations in nanoseconds, reported in microseconds."""
    ordered = sorted(values_ns)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "median_us": round(statistics.median(ordered) / 1000, 1),
        "p95_us": round(p95 / 1000, 1),
        "max_us": round(ordered[-1] / 1000, 1),
    }


def machine() -> dict[str, object]:
    """The facts a reader needs to compare figures across machines."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "sqlalchemy": sqlalchemy.__version__,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def timed_ns(fn: Callable[..., T], *args: object) -> tuple[int, T]:
    """(elapsed ns, result) of ``fn(*args)``."""
    start = time.perf_counter_ns()
    result = fn(*args)
    return time.perf_counter_ns() - start, result
