"""A producer's local state: the next sequence number, and the batch it is sending.

DESIGN.md section 4: each producer numbers its events 0, 1, 2 ... without gaps; the hub rejects
a reused number with other content (replay, equivocation) and skips a repeated event id. The
state file ``<data_dir>/producers/<producer_id>.json`` keeps the emitter on the right side of
both rules across crashes:

1. A batch is *planned* from the state: its events get ``next_seq``, ``next_seq + 1`` ...
   (:meth:`ProducerState.plan`). Nothing is sent yet.
2. Before the first byte goes to Kafka, the sealed envelopes are written to the *outbox*
   ``<producer_id>.outbox`` and the state records the batch as *pending* (write-ahead).
3. Only when the broker has acknowledged every event does the state advance ``next_seq`` past
   the batch, drop the pending mark and delete the outbox (:meth:`ProducerState.acknowledged`).

After a crash in step 2 or 3 the next run finds the pending batch and re-sends the outbox
first: byte for byte what may already be in Kafka, which the hub skips as duplicates. So a
number is never given to other content, and none is skipped. Every file write is atomic
(temporary file, fsync, rename, fsync of the folder), and a lock file keeps two emitters of
one producer from planning the same numbers.

A file whose events were all acknowledged before (the same event ids in the same order) is
recognised from the recent history and not sent again.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from ledger.errors import InputError, Reason

FORMAT = "cehub.producer-state"
VERSION = 1
HISTORY_SIZE = 256
"""Acknowledged batches remembered, to recognise a file emitted twice."""
_OUTBOX_MAGIC = b"CEHUB-OUTBOX-1\n"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SeqBatch:
    """A run of consecutive sequence numbers given to a list of events."""

    first_seq: int
    count: int
    digest: str
    """:func:`batch_digest` of the events' ids, in order."""
    source: str
    """Where the events came from (a file name, a command), for messages."""
    outbox_sha256: str = ""
    """SHA-256 of the outbox file while the batch is pending."""

    @property
    def end_seq(self) -> int:
        """One past the last sequence number of the batch."""
        return self.first_seq + self.count

    def describe(self) -> str:
        if not self.count:
            return f"no events ({self.source})"
        return f"{self.count} event(s) #{self.first_seq}..#{self.end_seq - 1} from {self.source}"


def batch_digest(event_ids: Iterable[str]) -> str:
    """SHA-256 (hex) of the event ids, one per line: the identity of a batch's content."""
    digest = hashlib.sha256()
    for event_id in event_ids:
        digest.update(event_id.encode("utf-8") + b"\n")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class ProducerState:
    """What the state file holds. Pure: every change returns a new state."""

    producer_id: str
    next_seq: int = 0
    pending: SeqBatch | None = None
    history: tuple[SeqBatch, ...] = ()

    def plan(self, event_ids: Sequence[str], source: str) -> SeqBatch:
        """The sequence numbers for these events, in order, from ``next_seq``.

        Raises:
            InputError(SEQUENCE_REPLAY): a batch is still pending; it must be acknowledged
                first, or its numbers would be given to other content.
        """
        if self.pending is not None:
            raise InputError(
                Reason.SEQUENCE_REPLAY,
                f"producer {self.producer_id!r} has a pending batch "
                f"({self.pending.describe()}); it must be sent before new events",
            )
        return SeqBatch(self.next_seq, len(event_ids), batch_digest(event_ids), source)

    def already_sent(self, event_ids: Sequence[str]) -> SeqBatch | None:
        """The acknowledged batch of exactly these events, if one is remembered."""
        digest = batch_digest(event_ids)
        return next((b for b in reversed(self.history) if b.digest == digest), None)

    def begin(self, batch: SeqBatch) -> ProducerState:
        """The state while ``batch`` is being sent (its outbox is on disk)."""
        return dataclasses.replace(self, pending=batch)

    def acknowledged(self, batch: SeqBatch) -> ProducerState:
        """The state after the broker acknowledged every event of ``batch``."""
        done = dataclasses.replace(batch, outbox_sha256="")
        history = (*(b for b in self.history if b.digest != done.digest), done)
        return dataclasses.replace(
            self,
            next_seq=max(self.next_seq, batch.end_seq),
            pending=None,
            history=history[-HISTORY_SIZE:],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "producer_id": self.producer_id,
            "next_seq": self.next_seq,
            "pending": None if self.pending is None else dataclasses.asdict(self.pending),
            "history": [dataclasses.asdict(b) for b in self.history],
        }

    @classmethod
    def from_json(cls, data: object, *, source: str) -> ProducerState:
        """Read a state file's content.

        Raises:
            InputError(INVALID_FIELD): not a state file of this version, or malformed.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise _corrupt(source, f'not a producer state file (no "format": "{FORMAT}")')
        if data.get("version") != VERSION:
            raise _corrupt(source, f"unsupported version {data.get('version')!r}")
        try:
            pending = data["pending"]
            state = cls(
                producer_id=_typed(data["producer_id"], str),
                next_seq=_typed(data["next_seq"], int),
                pending=None if pending is None else _batch(pending),
                history=tuple(_batch(b) for b in data["history"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise _corrupt(source, f"malformed: {exc!r}") from exc
        if state.next_seq < 0:
            raise _corrupt(source, f"negative next_seq {state.next_seq}")
        return state


def _typed(value: object, kind: type[T]) -> T:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"expected {kind.__name__}, got {value!r}")
    return value


def _batch(data: Any) -> SeqBatch:
    if not isinstance(data, dict):
        raise TypeError(f"expected an object, got {data!r}")
    batch = SeqBatch(
        first_seq=_typed(data["first_seq"], int),
        count=_typed(data["count"], int),
        digest=_typed(data["digest"], str),
        source=_typed(data["source"], str),
        outbox_sha256=_typed(data.get("outbox_sha256", ""), str),
    )
    if batch.first_seq < 0 or batch.count < 0:
        raise ValueError(f"negative sequence numbers in {data!r}")
    return batch


def _corrupt(source: str, message: str) -> InputError:
    return InputError(Reason.INVALID_FIELD, f"state file {source}: {message}")


class StateFile:
    """The files of one producer under ``<data_dir>/producers/``: state, outbox, lock."""

    def __init__(self, data_dir: Path, producer_id: str) -> None:
        self.producer_id = producer_id
        folder = data_dir / "producers"
        # quote() keeps any producer id inside the folder ('/' and '.' are escaped).
        stem = quote(producer_id, safe="-_")
        self.path = folder / f"{stem}.json"
        self.outbox_path = folder / f"{stem}.outbox"
        self.lock_path = folder / f"{stem}.lock"

    def load(self) -> ProducerState:
        """The saved state, or a fresh one (``next_seq`` 0) if there is none.

        Raises:
            InputError(INVALID_FIELD): the file is unreadable or belongs to another producer.
        """
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return ProducerState(self.producer_id)
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise _corrupt(str(self.path), f"not JSON: {exc}") from exc
        state = ProducerState.from_json(data, source=str(self.path))
        if state.producer_id != self.producer_id:
            raise _corrupt(
                str(self.path), f"belongs to {state.producer_id!r}, not {self.producer_id!r}"
            )
        return state

    def save(self, state: ProducerState) -> None:
        """Replace the state file atomically."""
        text = json.dumps(state.to_json(), indent=1, sort_keys=True) + "\n"
        write_atomically(self.path, text.encode("utf-8"))

    def write_outbox(self, envelopes: Sequence[bytes]) -> str:
        """Write the envelopes of the batch about to be sent; return the file's SHA-256."""
        data = encode_outbox(envelopes)
        write_atomically(self.outbox_path, data)
        return hashlib.sha256(data).hexdigest()

    def read_outbox(self, batch: SeqBatch) -> tuple[bytes, ...]:
        """The envelopes of the pending ``batch``, checked against its recorded hash.

        Raises:
            InputError(INVALID_FIELD): the outbox is missing, damaged or of another batch.
        """
        try:
            data = self.outbox_path.read_bytes()
        except FileNotFoundError:
            raise _corrupt(str(self.outbox_path), "the pending batch's outbox is missing") from None
        if hashlib.sha256(data).hexdigest() != batch.outbox_sha256:
            raise _corrupt(str(self.outbox_path), "does not match the pending batch's hash")
        envelopes = decode_outbox(data)
        if len(envelopes) != batch.count:
            raise _corrupt(str(self.outbox_path), f"holds {len(envelopes)}, not {batch.count}")
        return envelopes

    def remove_outbox(self) -> None:
        self.outbox_path.unlink(missing_ok=True)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the producer's lock (one emitter per producer and data dir at a time).

        Raises:
            InputError(SEQUENCE_REPLAY): another process holds it.
        """
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock_path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InputError(
                    Reason.SEQUENCE_REPLAY,
                    f"another process is emitting as {self.producer_id!r} "
                    f"(lock {self.lock_path}); wait for it to finish",
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old or the new file, never a mix:
    temporary file in the same folder, fsync, rename over ``path``, fsync of the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def encode_outbox(envelopes: Sequence[bytes]) -> bytes:
    """A marker line, then each envelope as a 4-byte big-endian length and its bytes."""
    parts = [_OUTBOX_MAGIC]
    for envelope in envelopes:
        parts.append(len(envelope).to_bytes(4, "big"))
        parts.append(envelope)
    return b"".join(parts)


def decode_outbox(data: bytes) -> tuple[bytes, ...]:
    """Inverse of :func:`encode_outbox`.

    Raises:
        InputError(INVALID_FIELD): not an outbox, or truncated.
    """
    if not data.startswith(_OUTBOX_MAGIC):
        raise _corrupt("outbox", "not an outbox file")
    envelopes = []
    offset = len(_OUTBOX_MAGIC)
    while offset < len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        end = offset + 4 + size
        if end > len(data):
            raise _corrupt("outbox", "truncated")
        envelopes.append(data[offset + 4 : end])
        offset = end
    return tuple(envelopes)
