"""What the producer commands share: key files, passphrases, sending, the summary.

Used by ``producers/cli.py`` (`cehub emit`) and ``producers/keys_cli.py`` (`cehub keys`,
`cehub enroll`). Adapters are imported inside the functions so that ``cehub --help`` does not
load kafka-python, rich or cryptography.
"""

# Adapters are imported inside the functions so that `cehub --help` stays fast (as in cli.py).

from __future__ import annotations

import base64
import binascii
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ledger.cli import EXIT_INFRA, EXIT_USAGE
from ledger.config import Settings
from ledger.errors import InputError, Reason, SignatureError

if TYPE_CHECKING:
    from ledger.signing import Ed25519Signer
    from producers.emitter import EmitResult, Progress
    from producers.records import Draft

PROGRESS_THRESHOLD = 1_000
"""Batches of at least this many events get a progress bar (on a terminal)."""


def passphrase_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--passphrase-env",
        metavar="VAR",
        help="Environment variable holding the key's passphrase.",
    )(func)
    return click.option(
        "--passphrase-file",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        help="File whose first line is the key's passphrase.",
    )(func)


def passphrase(passphrase_file: Path | None, passphrase_env: str | None) -> bytes | None:
    if passphrase_file is not None and passphrase_env is not None:
        raise click.UsageError("give --passphrase-file or --passphrase-env, not both")
    if passphrase_file is not None:
        lines = passphrase_file.read_bytes().splitlines()
        return lines[0] if lines else b""
    if passphrase_env is not None:
        value = os.environ.get(passphrase_env)
        if value is None:
            raise click.UsageError(f"environment variable {passphrase_env} is not set")
        return value.encode("utf-8")
    return None


def load_signer(path: Path, passphrase: bytes | None) -> Ed25519Signer:
    """The private key in a PKCS#8 PEM file.

    Raises:
        SignatureError(BAD_KEY_FILE): unreadable, encrypted without a passphrase, not Ed25519.
    """
    from ledger.signing import Ed25519Signer

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SignatureError(Reason.BAD_KEY_FILE, f"cannot read {path}: {exc.strerror}") from None
    if b"ENCRYPTED PRIVATE KEY" in data and passphrase is None:
        raise SignatureError(
            Reason.BAD_KEY_FILE,
            f"{path} is encrypted; give --passphrase-file or --passphrase-env",
        )
    return Ed25519Signer.from_pem(data, passphrase)


def raw_public_key(b64: str | None, pem_file: Path | None, what: str) -> bytes:
    """A raw 32-byte Ed25519 public key from base64 text or a PEM file (public key, or an
    unencrypted private key of which only the public half is used)."""
    if (b64 is None) == (pem_file is None):
        raise click.UsageError(f"give exactly one of --{what} and --{what}-file")
    if b64 is not None:
        try:
            raw = base64.b64decode(b64.strip(), validate=True)
        except binascii.Error as exc:
            raise click.BadParameter(f"not base64: {exc}", param_hint=f"--{what}") from None
        if len(raw) != 32:
            raise click.BadParameter(
                f"an Ed25519 public key has 32 bytes, this has {len(raw)}", param_hint=f"--{what}"
            )
        return raw
    assert pem_file is not None
    return public_key_from_pem(pem_file)


def public_key_from_pem(path: Path) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = path.read_bytes()
    if b"PRIVATE KEY" in data:
        return load_signer(path, None).public_key
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SignatureError(Reason.BAD_KEY_FILE, f"{path}: not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(Reason.BAD_KEY_FILE, f"{path}: not an Ed25519 public key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def occurred_at_option(text: str | None) -> datetime:
    from schemas.quantities import parse_timestamp

    if text is None:
        return datetime.now(UTC)
    try:
        return parse_timestamp(text, field="--occurred-at")
    except InputError as exc:
        raise click.BadParameter(exc.message, param_hint="--occurred-at") from None


def usage_exit(message: str) -> NoReturn:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(EXIT_USAGE)


def echo_key(signer_public_key: bytes) -> None:
    from ledger.signing import key_id_for

    click.echo(f"public_key: {base64.b64encode(signer_public_key).decode('ascii')}")
    click.echo(f"key_id: {key_id_for(signer_public_key)}")


@contextmanager
def progress_bar(total: int) -> Iterator[Progress | None]:
    """A rich progress bar on stderr for large batches, when stderr is a terminal."""
    if total < PROGRESS_THRESHOLD or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        tasks = {
            "signed": bar.add_task("signing", total=total),
            "acknowledged": bar.add_task("sending", total=total),
        }
        yield lambda phase, count: bar.advance(tasks[phase], count)


def send_drafts(
    settings: Settings,
    drafts: Sequence[Draft],
    signer: Ed25519Signer,
    producer_id: str,
    source: str,
) -> EmitResult:
    """Create the topics if the hub has not, then emit ``drafts`` and close the producer."""
    from ledger.transport import ensure_topics, ledger_topics
    from producers.emitter import KafkaSink, emit
    from producers.state import StateFile

    ensure_topics(settings.bootstrap, ledger_topics(settings))
    sink = KafkaSink(
        settings.bootstrap, settings.topic("events"), client_id=f"cehub-emit-{producer_id}"
    )
    try:
        with progress_bar(len(drafts)) as progress:
            return emit(
                drafts,
                signer=signer,
                state_file=StateFile(settings.data_dir, producer_id),
                sink=sink,
                source=source,
                progress=progress,
            )
    finally:
        sink.close()


def report(result: EmitResult, drafts: Sequence[Draft]) -> None:
    """Print what was sent; exit 3 if some events were not acknowledged."""
    batch = result.batch
    if result.recovered is not None and result.recovered is not batch:
        click.echo(f"first re-sent an interrupted batch: {result.recovered.describe()}")
    if result.already_sent:
        click.echo(
            f"already sent: these {batch.count} event(s) were acknowledged before as "
            f"#{batch.first_seq}..#{batch.end_seq - 1}; nothing sent"
        )
    else:
        verb = "re-sent (interrupted before)" if result.recovered is batch else "sent"
        click.echo(f"{verb} {len(result.report.delivered)} event(s) to {result.topic}")
    if len(drafts) == 1 and batch.count == 1:
        click.echo(f"  #{batch.first_seq}  {drafts[0].event_id}")
    elif drafts and batch.count:
        click.echo(f"  first  #{batch.first_seq}  {drafts[0].event_id}")
        click.echo(f"  last   #{batch.end_seq - 1}  {drafts[-1].event_id}")
    if result.report.failed:
        for failure in result.report.failed[:10]:
            click.secho(
                f"error: #{failure.seq} {failure.event_id} not acknowledged: {failure.error}",
                fg="red",
                err=True,
            )
        click.secho(
            f"error: {len(result.report.failed)} event(s) not acknowledged; the state keeps them "
            "pending and the next emit of this producer re-sends the same bytes first",
            fg="red",
            err=True,
        )
        sys.exit(EXIT_INFRA)
