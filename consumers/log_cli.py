"""`cehub ledger`, `cehub proof`, `cehub witness`: the verifiable log's commands.

- ``cehub ledger key`` prints the ledger's C2SP note verifier key; ``cehub ledger checkpoint``
  the latest signed checkpoint.
- ``cehub proof inclusion`` / ``consistency`` serve RFC 9162 proofs from the SQL store as text
  or as a self-contained JSON document (:mod:`ledger.proof_document`); ``cehub proof verify``
  checks such a document offline: no broker, no database, only the verifier key.
- ``cehub witness`` follows ``<prefix>.checkpoints`` and raises the alarm on a fork, a rollback
  or a bad signature. The decisions are :mod:`ledger.witness` (pure); this module only reads
  the topic (:func:`checkpoint_records`), fetches proof bytes from the store and writes the
  state file. docs/verifiable-log.md describes the commands and the trust model.

Adapters (SQLAlchemy, kafka-python) are imported inside the commands, so ``proof verify``
never loads them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import click

from ledger.cli import EXIT_INVALID, reports_errors
from ledger.config import Settings
from ledger.errors import DataError, StoreError, TransportError

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from ledger.checkpoint import Checkpoint, NoteVerifier
    from ledger.merkle import GetNode
    from ledger.proof_document import ConsistencyDocument, InclusionDocument, ProofDocument
    from ledger.witness import Observation, ProofSource, WitnessState

log = logging.getLogger("cehub.witness")


# --- cehub ledger -------------------------------------------------------------------------------


@click.group("ledger")
def ledger_group() -> None:
    """The ledger's identity: its checkpoint-signing key and its latest checkpoint."""


@ledger_group.command("key")
@click.pass_obj
@reports_errors
def ledger_key_command(settings: Settings) -> None:
    """Print the ledger's public key as a C2SP note verifier key.

    The format is the one of golang.org/x/mod/sumdb/note (<name>+<8 hex key hash>+<base64 of
    0x01 || Ed25519 public key>): give it to `cehub proof verify --ledger-key`, `cehub witness`
    or any signed-note verifier. The key is created, as the hub would, if it does not exist.
    """
    from ledger.checkpoint import note_verifier_key
    from ledger.wiring import ledger_key

    path = settings.effective_ledger_key
    existed = path.exists()
    key = ledger_key(settings)
    click.echo(note_verifier_key(settings.ledger_name, key.public_key()))
    if not existed:
        click.echo(f"created a new ledger key at {path}", err=True)


@ledger_group.command("checkpoint")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of the note.")
@click.pass_obj
@reports_errors
def ledger_checkpoint_command(settings: Settings, as_json: bool) -> None:
    """Print the latest signed checkpoint (a C2SP signed note) from the store."""
    import base64

    from ledger.checkpoint import parse_checkpoint_body
    from ledger.store import latest_checkpoint

    with _transaction(settings) as conn:
        latest = latest_checkpoint(conn)
    if latest is None:
        raise click.ClickException("the ledger has not signed a checkpoint yet (run the hub)")
    if as_json:
        body = latest.note.split("\n\n", 1)[0] + "\n"
        fields = {
            "origin": parse_checkpoint_body(body.encode("utf-8")).origin,
            "tree_size": latest.tree_size,
            "root_hash": base64.b64encode(latest.root_hash).decode("ascii"),
            "checkpoint": latest.note,
        }
        click.echo(json.dumps(fields, indent=2, ensure_ascii=False))
    else:
        click.echo(latest.note, nl=False)


# --- cehub proof --------------------------------------------------------------------------------


@click.group("proof")
def proof_group() -> None:
    """RFC 9162 inclusion and consistency proofs: serve them, verify them offline."""


@proof_group.command("inclusion")
@click.argument("seq", type=click.IntRange(min=0))
@click.option(
    "--size",
    type=click.IntRange(min=1),
    help="Tree size to prove against [default: the latest signed checkpoint's].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the self-contained JSON document.")
@click.pass_obj
@reports_errors
def inclusion_command(settings: Settings, seq: int, size: int | None, as_json: bool) -> None:
    """Prove that entry SEQ is in the ledger: leaf SEQ (its envelope) of the tree of --size."""
    with _transaction(settings) as conn:
        doc = serve_inclusion(conn, origin=settings.ledger_name, seq=seq, size=size)
    _warn_if_unsigned(doc.checkpoint, doc.tree_size)
    if as_json:
        _print_document(doc)
        return
    click.echo(f"{_describe(doc.envelope)} is leaf {seq} of {doc.origin} at size {doc.tree_size}")
    click.echo(f"leaf hash  {_b64(doc.leaf_hash)}")
    click.echo(f"root hash  {_b64(doc.root_hash)}")
    _print_hashes(doc.proof, "inclusion proof (RFC 9162 2.1.3.1), leaf side first")
    if doc.checkpoint is not None:
        click.echo(f"checkpoint\n{doc.checkpoint.decode()}", nl=False)


@proof_group.command("consistency")
@click.argument("old", type=click.IntRange(min=0))
@click.argument("new", type=click.IntRange(min=0))
@click.option("--json", "as_json", is_flag=True, help="Print the self-contained JSON document.")
@click.pass_obj
@reports_errors
def consistency_command(settings: Settings, old: int, new: int, as_json: bool) -> None:
    """Prove that the ledger of OLD entries is a prefix of the ledger of NEW entries."""
    with _transaction(settings) as conn:
        doc = serve_consistency(conn, origin=settings.ledger_name, old_size=old, new_size=new)
    _warn_if_unsigned(doc.new_checkpoint, doc.new_size)
    if old:
        _warn_if_unsigned(doc.old_checkpoint, doc.old_size)
    if as_json:
        _print_document(doc)
        return
    click.echo(f"{doc.origin}: size {old} -> size {new}")
    click.echo(f"old root   {_b64(doc.old_root)}")
    click.echo(f"new root   {_b64(doc.new_root)}")
    _print_hashes(doc.proof, "consistency proof (RFC 9162 2.1.4.1)")
    for label, note in (("old", doc.old_checkpoint), ("new", doc.new_checkpoint)):
        if note is not None:
            click.echo(f"{label} checkpoint\n{note.decode()}", nl=False)


@proof_group.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--ledger-key", "vkey", required=True, help="The ledger's note verifier key.")
@click.option("--origin", help="The log's origin line [default: the verifier key's name].")
@reports_errors
def verify_command(file: Path, vkey: str, origin: str | None) -> None:
    """Check a proof document offline against the ledger's verifier key.

    Checks the checkpoint note's Ed25519 signature against the key, the proof against the
    signed root and, for an inclusion proof, the leaf hash against the envelope. Exit 0 if
    valid, 1 if not (saying what failed), 2 if the file or the key is unusable.
    """
    from ledger.proof_document import (
        InclusionDocument,
        verify_consistency_document,
        verify_inclusion_document,
    )

    doc = _read_document(file)
    verifier = _parse_vkey(vkey)
    pinned = origin or verifier.name
    vk = f"{verifier.name}+{verifier.key_id.hex()}"
    if isinstance(doc, InclusionDocument):
        checkpoint = verify_inclusion_document(doc, (verifier,), pinned)
        click.echo(
            f"OK: {_describe(doc.envelope)} is leaf {doc.leaf_index} of {checkpoint.origin} "
            f"at size {checkpoint.size} (root {_b64(checkpoint.root_hash)}, signed by {vk})"
        )
    else:
        old, new = verify_consistency_document(doc, (verifier,), pinned)
        click.echo(
            f"OK: {new.origin} at size {new.size} extends size {old.size} "
            f"(roots {_b64(old.root_hash)} -> {_b64(new.root_hash)}, signed by {vk})"
        )


@contextmanager
def _transaction(settings: Settings) -> Iterator[Connection]:
    """One read transaction on the store; the engine is disposed afterwards."""
    from ledger.wiring import open_store

    store = open_store(settings)
    try:
        with store.transaction() as conn:
            yield conn
    finally:
        store.engine.dispose()


# --- serving proofs from the store --------------------------------------------------------------


def serve_inclusion(
    conn: Connection,
    *,
    origin: str,
    seq: int,
    size: int | None = None,
    get_node: GetNode | None = None,
) -> InclusionDocument:
    """The inclusion proof of entry ``seq`` at ``size`` (default: the latest checkpoint's),
    read in ``conn``'s transaction; ``get_node`` defaults to the store's node reader.

    Raises:
        click.UsageError: a size beyond the latest checkpoint or the ledger, or ``seq`` outside.
        ProofError: the stored tree contradicts the signed checkpoint at that size.
    """
    from sqlalchemy import select

    from ledger.merkle import inclusion_proof
    from ledger.proof_document import inclusion_document
    from ledger.store import entries

    defaulted = size is None
    size = _provable_size(conn, size, "--size")
    if seq >= size:
        hint = " (the latest checkpoint; wait for the next one)" if defaulted else ""
        raise click.UsageError(f"entry {seq} is not in the tree of size {size}{hint}")
    envelope = conn.execute(select(entries.c.envelope).where(entries.c.seq == seq)).scalar_one()
    signed = _checkpoint_of_size(conn, origin, size)
    if get_node is None:
        get_node = _batched(conn, lambda g: inclusion_proof(seq, size, g))
    return inclusion_document(
        origin=origin,
        leaf_index=seq,
        tree_size=size,
        envelope=bytes(envelope),
        get_node=get_node,
        checkpoint=signed[0] if signed else None,
        note=signed[1] if signed else None,
    )


def serve_consistency(
    conn: Connection,
    *,
    origin: str,
    old_size: int,
    new_size: int,
    get_node: GetNode | None = None,
) -> ConsistencyDocument:
    """The consistency proof from ``old_size`` to ``new_size``, read in ``conn``'s transaction.

    Raises:
        click.UsageError: NEW beyond the latest checkpoint or the ledger, or OLD after NEW.
    """
    from ledger.merkle import consistency_proof, root_hash
    from ledger.proof_document import consistency_document

    _provable_size(conn, new_size, "NEW")
    if old_size > new_size:
        raise click.UsageError(f"OLD ({old_size}) must not be larger than NEW ({new_size})")
    if get_node is None:
        get_node = _batched(
            conn,
            lambda g: consistency_proof(old_size, new_size, g),
            lambda g: root_hash(old_size, g),
            lambda g: root_hash(new_size, g),
        )
    return consistency_document(
        origin=origin,
        old_size=old_size,
        new_size=new_size,
        get_node=get_node,
        old=_checkpoint_of_size(conn, origin, old_size) if old_size else None,
        new=_checkpoint_of_size(conn, origin, new_size),
    )


def _batched(conn: Connection, *plans: Callable[[GetNode], object]) -> GetNode:
    """The nodes ``plans`` read, fetched from the store in one query (ledger.store.nodes_at)."""
    from ledger.proof_document import prefetched
    from ledger.store import nodes_at

    return prefetched(lambda addresses: nodes_at(conn, addresses), *plans)


def _provable_size(conn: Connection, size: int | None, name: str) -> int:
    """``size``, or the latest checkpoint's; refuse a size nobody signed or stored."""
    from sqlalchemy import func, select

    from ledger.store import entries, latest_checkpoint

    latest = latest_checkpoint(conn)
    signed = latest.tree_size if latest else 0
    last_seq = conn.execute(select(func.max(entries.c.seq))).scalar()
    stored = 0 if last_seq is None else int(last_seq) + 1
    if size is None:
        if latest is None:
            raise click.UsageError("the ledger has not signed a checkpoint yet (run the hub)")
        return signed
    if size > stored:
        raise click.UsageError(f"{name} {size} is beyond the ledger ({stored} entries)")
    if size > signed:
        raise click.UsageError(
            f"{name} {size} is beyond the latest signed checkpoint (size {signed}): "
            "nobody could check a proof against it"
        )
    return size


def _checkpoint_of_size(
    conn: Connection, origin: str, size: int
) -> tuple[Checkpoint, bytes] | None:
    from ledger.checkpoint import Checkpoint
    from ledger.store import checkpoint_at_least

    found = checkpoint_at_least(conn, size)
    if found is None or found.tree_size != size:
        return None
    return Checkpoint(origin, found.tree_size, found.root_hash), found.note.encode("utf-8")


# --- cehub witness ------------------------------------------------------------------------------


@click.command()
@click.option("--once", is_flag=True, help="Check what is in the topic now, then exit.")
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="State file [default: <data dir>/witness/<origin>.checkpoint].",
)
@click.option(
    "--ledger-key",
    "vkey",
    help="The ledger's note verifier key [default: derived from the local ledger key file].",
)
@click.option("--origin", help="The log's origin line [default: the verifier key's name].")
@click.pass_obj
@reports_errors
def witness(
    settings: Settings, once: bool, state_path: Path | None, vkey: str | None, origin: str | None
) -> None:
    """Follow <prefix>.checkpoints and check that the ledger never forks or rolls back.

    Each new checkpoint must be signed by the ledger key and be consistent with the last one
    verified (RFC 9162 consistency proof, fetched from the store at --database-url and checked
    against both signed roots). An alarm is an ERROR log line with its reason code
    (proof.checkpoint_fork, proof.checkpoint_rollback, proof.checkpoint_invalid); with --once
    the exit code is then 1. The last verified checkpoint is kept in the state file.
    """
    from ledger.witness import Alarm, observe

    _configure_logging()
    verifier = _witness_verifier(settings, vkey)
    origin = origin or verifier.name
    path = state_path or settings.data_dir / "witness" / f"{quote(origin, safe='')}.checkpoint"
    topic = settings.topic("checkpoints")
    state = _load_witness_state(path, topic, verifier, origin)
    read = alarms = 0
    with store_proof_source(settings) as proofs:
        try:
            for offset, note in checkpoint_records(
                settings.bootstrap, topic, state.next_offset, follow=not once
            ):
                state, seen = observe(
                    state, offset, note, verifiers=(verifier,), origin=origin, proof_source=proofs
                )
                _log_observation(seen, topic)
                write_atomically(path, _dump(state, topic))
                read, alarms = read + 1, alarms + isinstance(seen, Alarm)
        except KeyboardInterrupt:
            pass
    head = state.checkpoint
    click.echo(
        f"witness {origin}: {read} checkpoint(s) read from {topic}, {alarms} alarm(s); "
        + (f"last verified size {head.size}, root {_b64(head.root_hash)}" if head else "none yet")
    )
    if alarms:
        sys.exit(EXIT_INVALID)


def checkpoint_records(
    bootstrap: str, topic: str, start: int, *, follow: bool, poll_ms: int = 1_000
) -> Iterator[tuple[int, bytes]]:
    """``(offset, note)`` of each record of the checkpoints topic's one partition from
    ``start``; without ``follow``, stops at the end offset seen when it started.

    The topic has one partition (ledger/transport.py), so its order is the signing order.

    Raises:
        TransportError: Kafka is unreachable or the topic does not exist.
    """
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, client_id="cehub-witness", enable_auto_commit=False
        )
    except KafkaError as exc:
        raise TransportError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    try:
        if not consumer.partitions_for_topic(topic):
            raise TransportError(f"topic {topic} does not exist (has the hub run?)")
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, start)
        end = None if follow else consumer.end_offsets([tp])[tp]
        while end is None or consumer.position(tp) < end:
            for message in consumer.poll(timeout_ms=poll_ms).get(tp, []):
                if end is not None and message.offset >= end:
                    return
                yield message.offset, message.value
    except KafkaError as exc:
        raise TransportError(f"reading {topic} failed: {exc}") from exc
    finally:
        consumer.close()


@contextmanager
def store_proof_source(settings: Settings) -> Iterator[ProofSource]:
    """Consistency proofs from the ledger store, opened on first use, closed on exit.

    The store is trusted for nothing but bytes: :mod:`ledger.witness` checks every proof
    against both signed roots. A store that lacks the nodes (behind, or another ledger) is an
    infrastructure failure, not an alarm: the witness cannot decide, so it stops (exit 3) and
    reads the same record again next time.
    """
    from ledger.merkle import consistency_proof
    from ledger.sqlstore import open_engine, translated_errors

    engines: list[Engine] = []

    def proof(old_size: int, new_size: int) -> tuple[bytes, ...]:
        if not engines:
            engines.append(open_engine(settings.effective_database_url))
        with translated_errors("reading a consistency proof"), engines[0].connect() as conn:
            try:
                get_node = _batched(conn, lambda g: consistency_proof(old_size, new_size, g))
                return consistency_proof(old_size, new_size, get_node)
            except StoreError as exc:
                raise StoreError(
                    f"the ledger store cannot prove size {old_size} -> {new_size}: {exc.message}"
                ) from exc

    try:
        yield proof
    finally:
        for engine in engines:
            engine.dispose()


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _witness_verifier(settings: Settings, vkey: str | None) -> NoteVerifier:
    if vkey is not None:
        return _parse_vkey(vkey)
    path = settings.effective_ledger_key
    if not path.exists():
        raise click.UsageError(
            "pass --ledger-key (print it on the hub with `cehub ledger key`); "
            f"there is no local ledger key at {path}"
        )
    from ledger.checkpoint import note_verifier_key, parse_note_verifier_key
    from ledger.wiring import ledger_key

    public = ledger_key(settings).public_key()
    return parse_note_verifier_key(note_verifier_key(settings.ledger_name, public))


def _load_witness_state(
    path: Path, topic: str, verifier: NoteVerifier, origin: str
) -> WitnessState:
    from ledger.witness import WitnessState, load_state

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        log.info("no state at %s: the first checkpoint read is trusted on first use", path)
        return WitnessState()
    try:
        state = load_state(data, topic=topic, verifiers=(verifier,), origin=origin)
    except DataError as exc:
        raise click.UsageError(f"witness state {path} is unusable: {exc.diagnostics()}") from exc
    if state.checkpoint is not None:
        log.info(
            "resuming from size %d at %s offset %d", state.checkpoint.size, topic, state.next_offset
        )
    return state


def _dump(state: WitnessState, topic: str) -> bytes:
    from ledger.witness import dump_state

    return dump_state(state, topic)


def _log_observation(seen: Observation, topic: str) -> None:
    from ledger.witness import Alarm

    if isinstance(seen, Alarm):
        log.error("ALARM %s at %s offset %d: %s", seen.reason, topic, seen.offset, seen.message)
        return
    cp = seen.checkpoint
    log.info(
        "verified %s offset %d: size %d root %s (%s)",
        topic,
        seen.offset,
        cp.size,
        _b64(cp.root_hash),
        seen.outcome.value,
    )


def _configure_logging() -> None:
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


# --- shared helpers -----------------------------------------------------------------------------


def _read_document(file: Path) -> ProofDocument:
    """The proof document in ``file``; anything unreadable is a usage error (exit 2)."""
    from ledger.proof_document import parse_document

    try:
        data = json.loads(file.read_bytes())
        return parse_document(data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise click.UsageError(f"{file} is not a JSON proof document: {exc}") from exc
    except DataError as exc:
        raise click.UsageError(f"{file}: {exc.message}") from exc


def _parse_vkey(vkey: str) -> NoteVerifier:
    from ledger.checkpoint import parse_note_verifier_key

    try:
        return parse_note_verifier_key(vkey.strip())
    except DataError as exc:
        raise click.BadParameter(exc.message, param_hint="--ledger-key") from exc


def _describe(envelope: bytes) -> str:
    """``entry <event type> <event id> by <producer> #<seq>``, or a neutral label if the
    envelope does not decode (the proof is about the bytes either way)."""
    from schemas.codec import decode_envelope, decode_event

    try:
        event = decode_event(decode_envelope(envelope).payload)
    except DataError:
        return f"an envelope of {len(envelope)} bytes"
    h = event.header
    return f"{type(event).__name__} {h.event_id} by {h.producer_id} #{h.producer_seq}"


def _print_document(doc: ProofDocument) -> None:
    from ledger.proof_document import document_json

    click.echo(json.dumps(document_json(doc), indent=2, ensure_ascii=False))


def _print_hashes(hashes: tuple[bytes, ...], title: str) -> None:
    click.echo(f"{title}: {len(hashes)} hash(es)")
    for n, h in enumerate(hashes):
        click.echo(f"  {n:2d} {_b64(h)}")


def _warn_if_unsigned(note: bytes | None, size: int) -> None:
    if note is None:
        click.echo(
            f"warning: the ledger signed no checkpoint at size {size}; `cehub proof verify` "
            "will refuse this proof (use a checkpoint size)",
            err=True,
        )


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


COMMANDS: tuple[click.Command, ...] = (ledger_group, proof_group, witness)
