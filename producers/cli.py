"""`cehub emit`: validate an input file, sign its events, send them (DESIGN.md sections 2, 4).

``ledger/cli.py`` registers :data:`COMMANDS` (this command and those of
``producers/keys_cli.py``). Adapters (kafka-python, rich, the emitter) are imported inside the
commands so that ``cehub --help`` starts fast. Exit codes are those of ``ledger/cli.py``:
1 bad data (a key that does not load), 2 unusable input (a file with bad lines, a key file
that exists), 3 infrastructure (Kafka down, events not acknowledged).

docs/getting-started-factory.md walks through the commands; docs/emit-formats.md specifies the
input files.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ledger.cli import reports_errors
from ledger.config import Settings
from ledger.errors import InputError
from producers.cli_support import (
    load_signer,
    passphrase,
    passphrase_options,
    report,
    send_drafts,
    usage_exit,
)
from producers.keys_cli import enroll, keys

if TYPE_CHECKING:
    from ledger.signing import Ed25519Signer
    from producers.records import Draft, ParseResult
    from schemas.materials import MaterialList


def _materials(path: Path | None) -> MaterialList:
    import json

    from schemas.materials import default_materials

    materials = default_materials()
    if path is None:
        return materials
    try:
        content = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--materials") from None
    return materials.extended(content, source=str(path))


def _read_input(
    file: Path, fmt: str | None, producer_id: str, materials: MaterialList
) -> ParseResult:
    from producers.records import format_of, parse_records

    try:
        chosen = fmt or format_of(file)
        text = file.read_bytes().decode("utf-8-sig")
    except InputError as exc:
        usage_exit(exc.message)
    except UnicodeDecodeError as exc:
        usage_exit(f"{file} is not UTF-8 text (byte {exc.start}): save it as UTF-8")
    except OSError as exc:
        usage_exit(f"cannot read {file}: {exc.strerror}")
    return parse_records(
        text,
        "csv" if chosen == "csv" else "jsonl",
        producer_id=producer_id,
        materials=materials,
    )


@click.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option(
    "--key",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="The producer's private key (PKCS#8 PEM).",
)
@passphrase_options
@click.option("--producer-id", required=True, help="Participant id the events are signed as.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    help="Input format [from the extension: .jsonl/.ndjson or .csv].",
)
@click.option("--skip-invalid", is_flag=True, help="Send the valid lines even if some are bad.")
@click.option("--dry-run", is_flag=True, help="Validate, number and sign; send nothing.")
@click.option(
    "--materials",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    envvar="CEHUB_MATERIALS_FILE",
    help="Extra material codes (JSON, schemas/materials.json format) [env CEHUB_MATERIALS_FILE].",
)
@click.pass_obj
@reports_errors
def emit(
    settings: Settings,
    *,
    file: Path,
    key: Path,
    passphrase_file: Path | None,
    passphrase_env: str | None,
    producer_id: str,
    fmt: str | None,
    skip_invalid: bool,
    dry_run: bool,
    materials: Path | None,
) -> None:
    """Validate FILE (JSON Lines or CSV), sign every event and send it to <prefix>.events.

    Every line is checked before anything is sent; each bad line is reported with its line
    number, field and reason. A file with a bad line sends nothing (exit 2) unless
    --skip-invalid. Sequence numbers come from <data-dir>/producers/<producer-id>.json and
    advance only when the broker acknowledged every event, so re-running after a crash
    re-sends identical bytes (the hub skips them as duplicates). Formats: docs/emit-formats.md.
    """
    if (
        not producer_id.strip()
        or producer_id != producer_id.strip()
        or not producer_id.isprintable()
    ):
        raise click.BadParameter(
            f"{producer_id!r} is not a participant id", param_hint="--producer-id"
        )
    started = time.monotonic()
    signer = load_signer(key, passphrase(passphrase_file, passphrase_env))
    parsed = _read_input(file, fmt, producer_id, _materials(materials))
    for error in parsed.errors:
        click.secho(f"{file.name}: {error.diagnostics()}", fg="red", err=True)
    bad = [line for line in parsed.bad_lines if line]
    click.echo(
        f"read {parsed.lines} record(s) from {file}: {len(parsed.drafts)} valid, "
        f"{len(bad)} rejected" + (f" (lines {_lines(bad)})" if bad else "")
    )
    if parsed.errors and not skip_invalid:
        usage_exit(f"{file.name} has {len(parsed.errors)} error(s); nothing sent")
    if not parsed.drafts:
        click.echo("nothing to send")
        return
    if dry_run:
        _dry_run(settings, parsed.drafts, signer, producer_id)
        return
    result = send_drafts(settings, parsed.drafts, signer, producer_id, file.name)
    report(result, parsed.drafts)
    elapsed = time.monotonic() - started
    sent = len(result.report.delivered)
    rate = f" ({sent / elapsed:.0f} events/s)" if sent >= 100 and elapsed > 0 else ""
    click.echo(f"producer {producer_id!r} key {signer.key_id}; {elapsed:.1f} s{rate}")


def _lines(numbers: Sequence[int], limit: int = 20) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f", ... ({len(numbers) - limit} more)" if len(numbers) > limit else "")


def _dry_run(
    settings: Settings, drafts: Sequence[Draft], signer: Ed25519Signer, producer_id: str
) -> None:
    """Number and sign as a real run would (reading, not changing, the state); send nothing."""
    from ledger.envelope import seal
    from producers.state import StateFile, batch_digest

    state = StateFile(settings.data_dir, producer_id).load()
    ids = [draft.event_id for draft in drafts]
    pending = state.pending
    if pending is not None and pending.digest == batch_digest(ids):
        click.echo(f"dry run: would finish the interrupted batch ({pending.describe()})")
        return
    if pending is not None:
        click.echo(f"dry run: would first re-send an interrupted batch ({pending.describe()})")
        state = state.acknowledged(pending)
    earlier = state.already_sent(ids)
    if earlier is not None:
        click.echo(f"dry run: already sent as #{earlier.first_seq}..#{earlier.end_seq - 1}")
        return
    first = state.next_seq
    for index, draft in enumerate(drafts):
        seal(draft.sequenced(first + index), signer)
    click.echo(
        f"dry run: would send {len(drafts)} event(s) to {settings.topic('events')} as "
        f"{producer_id!r} (key {signer.key_id}), #{first}..#{first + len(drafts) - 1}"
    )
    click.echo(f"  first  #{first}  {drafts[0].event_id}")
    click.echo(f"  last   #{first + len(drafts) - 1}  {drafts[-1].event_id}")


COMMANDS = (keys, enroll, emit)
"""The commands ``ledger/cli.py`` adds to the ``cehub`` group."""
