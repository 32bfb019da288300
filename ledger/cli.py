"""The `cehub` command line: the adapter that wires settings, stores and Kafka to the core.

Settings come from ``CEHUB_*`` environment variables, overridden by the global flags. Every
command turns a :class:`ledger.errors.LedgerError` into its one-line diagnostics and a non-zero
exit code (1 for bad data or a failed check, 2 for unusable input, 3 for infrastructure), so
scripts can tell "the claim is false" from "the database is down".
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import ParamSpec, TypeVar

import click

from ledger.config import Settings, settings_from_env
from ledger.errors import DataError, InfrastructureError, LedgerError

P = ParamSpec("P")
R = TypeVar("R")

EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_INFRA = 3


def reports_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Print a LedgerError's diagnostics (no traceback) and exit with its family's code."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except InfrastructureError as exc:
            click.secho(f"error: {exc.diagnostics()}", fg="red", err=True)
            sys.exit(EXIT_INFRA)
        except DataError as exc:
            click.secho(f"error: {exc.diagnostics()}", fg="red", err=True)
            sys.exit(EXIT_INVALID)
        except LedgerError as exc:  # pragma: no cover - every error is one of the two families
            click.secho(f"error: {exc.diagnostics()}", fg="red", err=True)
            sys.exit(EXIT_INVALID)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--bootstrap", help="Kafka bootstrap servers [env CEHUB_BOOTSTRAP; 127.0.0.1:9092]")
@click.option(
    "--database-url",
    help="SQLAlchemy URL of the store [env CEHUB_DATABASE_URL; SQLite file in the data dir]",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for the SQLite store, keys and state files [env CEHUB_DATA_DIR; ./var]",
)
@click.pass_context
def cli(
    ctx: click.Context, bootstrap: str | None, database_url: str | None, data_dir: Path | None
) -> None:
    """CE Hub Ledger: signed supply-chain events in, a verifiable recycled-content ledger out."""
    ctx.obj = settings_from_env(os.environ).replace(
        bootstrap=bootstrap, database_url=database_url, data_dir=data_dir
    )


@cli.command()
@click.pass_obj
def status(settings: Settings) -> None:
    """Say whether Kafka and the database answer, and which addresses were used."""
    from ledger.sqlstore import describe_database, open_engine
    from ledger.transport import describe_broker

    healthy = True
    try:
        broker = describe_broker(settings.bootstrap)
        click.echo(
            f"kafka     OK   {broker.bootstrap} (cluster {broker.cluster_id}, "
            f"{broker.broker_count} broker(s), {len(broker.topics)} topic(s))"
        )
    except InfrastructureError as exc:
        healthy = False
        click.echo(f"kafka     DOWN {settings.bootstrap}: {exc.message}")
    try:
        db = describe_database(open_engine(settings.effective_database_url))
        click.echo(f"database  OK   {db.url} ({db.backend} {db.server_version})")
    except InfrastructureError as exc:
        healthy = False
        click.echo(f"database  DOWN {settings.effective_database_url}: {exc.message}")
    if healthy:
        _ledger_status(settings)
    if not healthy:
        sys.exit(EXIT_INFRA)


def _ledger_status(settings: Settings) -> None:
    """Entries, head, lag of each stage behind its topic, rejections by reason."""
    from ledger.store import summarize
    from ledger.transport import end_offsets
    from ledger.wiring import open_store

    store = open_store(settings)
    with store.transaction() as conn:
        summary = summarize(conn)
    click.echo(f"ledger    {summary.entries} entries, head {summary.head_hash.hex()}")
    for stage, topic in (("verify", "events"), ("sequencer", "verified")):
        name = settings.topic(topic)
        try:
            ends = end_offsets(settings.bootstrap, name)
        except InfrastructureError:
            continue
        done = store.positions(stage)
        lag = sum(max(0, end - done.get((name, p), 0)) for p, end in ends.items())
        click.echo(f"lag       {stage}: {lag} record(s) behind {name}")
    if summary.waiting:
        click.echo(f"waiting   {summary.waiting} event(s) wait for an event they depend on")
    if summary.rejections_by_reason:
        click.echo(
            "rejected  "
            + ", ".join(
                f"{reason}: {count}"
                for reason, count in sorted(summary.rejections_by_reason.items())
            )
        )
    else:
        click.echo("rejected  none")


@cli.command()
@click.option("--count", default=100, show_default=True, help="Records to send.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for the worker.")
@click.pass_obj
@reports_errors
def smoke(settings: Settings, count: int, timeout: float) -> None:
    """Prove the infrastructure path: kafka-python -> Kafka -> faust -> SQL store.

    Sends COUNT raw records to the topic <prefix>.smoke, runs a faust worker until it has
    stored all of them (each exactly once, with its offset) and prints the counts.
    """
    from consumers.smoke import run_smoke

    started = time.monotonic()
    result = run_smoke(settings, count=count, timeout=timeout)
    click.echo(
        f"sent {result.sent} record(s) to {result.topic}; the store holds {result.stored} of the "
        f"topic's {result.expected} record(s) ({settings.effective_database_url}) after "
        f"{time.monotonic() - started:.1f}s"
    )
    if result.stored < result.expected:
        click.secho("error: the worker stopped before storing every record", fg="red", err=True)
        sys.exit(EXIT_INVALID)


@cli.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Run the end-to-end demo on the embedded defaults (local broker, SQLite in ./var)."""
    # The Saraburi pilot through the real commands, in a fresh folder <data-dir>/demo/<time>/
    # with its own SQLite store and topic prefix (verification/demo.py); it ends with a
    # certificate verified offline.
    from verification.demo import run_demo

    settings: Settings = ctx.obj
    sys.exit(run_demo(data_dir=settings.data_dir, bootstrap=settings.bootstrap, echo=click.echo))


@cli.command()
@click.pass_obj
@reports_errors
def audit(settings: Settings) -> None:
    """Rebuild the ledger from its stored entries alone and compare with the store.

    Recomputes the hash chain, re-verifies every signature, re-applies every rule, rebuilds
    the projections and the Merkle root, and names the first divergence (exit 1).
    """
    from ledger.audit import audit as run_audit
    from ledger.store import iter_entries, iter_merkle_nodes, load_state
    from ledger.wiring import open_store, rule_context

    store = open_store(settings)
    context = rule_context(settings)
    started = time.monotonic()
    with store.transaction() as conn:
        report = run_audit(
            iter_entries(conn),
            stored_state=load_state(conn),
            stored_nodes=iter_merkle_nodes(conn),
            context=context,
        )
    click.echo(
        f"audit OK: {report.entries} entries re-verified and replayed in "
        f"{time.monotonic() - started:.1f}s; head {report.head_hash.hex()}, "
        f"Merkle root {report.root_hash.hex()}; projections match"
    )


def _register_commands() -> None:
    """Commands that live next to their adapters (producers, consumers, verification)."""
    import importlib

    for module_name in (
        "producers.cli",
        "consumers.cli",
        "consumers.log_cli",
        "verification.cli",
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        for command in module.COMMANDS:
            cli.add_command(command)


def main() -> None:
    """Console-script entry point (``cehub``)."""
    _register_commands()
    cli()
