"""Run a faust app as a worker in this process, for ever or until it has caught up.

``until_idle`` exists for scripts, tests and the demo: the worker stops once a caller-supplied
check says every input has been consumed (twice in a row, so that a record still in flight
between two stages is not mistaken for the end). Stopping goes through the worker's own SIGTERM
handling, so shutdown is the same graceful path an operator's ``kill`` takes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust

from ledger.config import Settings

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.5
IDLE_CONFIRMATIONS = 2


def project_app(settings: Settings, app_id: str, **overrides: Any) -> faust.App:
    """A faust app configured the project's way: the project creates its own topics (no
    declaring, no leader topic), no web server, in-memory tables, raw bytes in and out, the
    faust datadir under the data dir, and a short session timeout so that a killed worker's
    partitions move to a live one within 10 s (Kafka's default is 45 s)."""
    options: dict[str, Any] = {
        "broker": f"kafka://{settings.bootstrap}",
        "store": "memory://",
        "web_enabled": False,
        "topic_disable_leader": True,
        "topic_allow_declare": False,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "datadir": str(settings.data_dir / "faust"),
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 3.0,
        **overrides,
    }
    return faust.App(app_id, **options)


def run_worker(
    app: faust.App,
    *,
    caught_up: Callable[[], bool] | None = None,
    loglevel: str = "WARNING",
) -> None:
    """Run ``app`` until SIGTERM/SIGINT, or, with ``caught_up``, until it returns True twice."""
    # faust keeps its own state in the app's datadir and fails at start if it is missing.
    Path(str(app.conf.datadir)).mkdir(parents=True, exist_ok=True)
    if caught_up is not None:
        _install_idle_stop(app, caught_up)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.spinner = None  # its cursor escapes garble logs and pipes; we report progress ourselves
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise


def _install_idle_stop(app: faust.App, caught_up: Callable[[], bool]) -> None:
    confirmations = 0

    @app.timer(IDLE_POLL_SECONDS)  # type: ignore[untyped-decorator]  # faust is untyped here
    async def stop_when_idle() -> None:
        nonlocal confirmations
        loop = asyncio.get_running_loop()
        done = await loop.run_in_executor(None, caught_up)
        confirmations = confirmations + 1 if done else 0
        if confirmations >= IDLE_CONFIRMATIONS:
            log.info("caught up with every input; stopping")
            os.kill(os.getpid(), signal.SIGTERM)
