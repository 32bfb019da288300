"""`cehub process`, `cehub audit`: the hub's commands (registered by ledger/cli.py)."""

from __future__ import annotations

import time

import click

from ledger.cli import reports_errors
from ledger.config import Settings


@click.command()
@click.option(
    "--until-idle",
    is_flag=True,
    help="Exit once every event in the topics has been verified and sequenced (for scripts).",
)
@click.option("--log-level", default="WARNING", show_default=True, help="faust/worker log level.")
@click.pass_obj
@reports_errors
def process(settings: Settings, until_idle: bool, log_level: str) -> None:
    """Run a hub worker: verify events, sequence them into the ledger, publish receipts.

    Start several for more verify throughput; exactly one of them sequences at a time.
    """
    from consumers.hub import run_hub
    from ledger.wiring import open_store

    started = time.monotonic()
    before = open_store(settings).head().size
    run_hub(settings, until_idle=until_idle, loglevel=log_level)
    head = open_store(settings).head()
    click.echo(
        f"ledger {settings.effective_database_url}: {head.size} entries "
        f"(+{head.size - before} in {time.monotonic() - started:.1f}s), "
        f"head {head.entry_hash.hex()}"
    )


COMMANDS = (process,)
