"""The witness's decisions, sans I/O: is this new checkpoint an honest extension of the last?

A witness (c2sp.org/tlog-witness, in spirit) keeps the last checkpoint it verified and accepts
a new one only if it is signed by the ledger key, of the same origin, and provably extends the
old one. What it catches:

* a **bad signature** (or a malformed note, another log's origin): ``CHECKPOINT_INVALID``;
* a **rollback**, a tree smaller than one already seen: ``CHECKPOINT_ROLLBACK``;
* a **fork**, another root at a size already seen, or a new tree that the RFC 9162 2.1.4.2
  consistency proof does not link to the old root: ``CHECKPOINT_FORK``.

Trust model. The two checkpoints are trusted only because the ledger key signed them. The
consistency proof comes from wherever the caller gets it (``ProofSource``; the CLI asks the
ledger store) and is *not* trusted: it is verified against both signed roots, so a lying store
can make the witness raise an alarm, never accept a fork. The first checkpoint a witness sees
is trusted on first use; pin one by starting from a state file that holds it.

This module never reads a socket, a file or a clock (STYLE.md lesson 2): the records and the
proof bytes are passed in, and :func:`observe` returns the new state plus what happened.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from ledger.checkpoint import (
    Checkpoint,
    NoteVerifier,
    check_checkpoint_consistency,
    open_checkpoint,
)
from ledger.errors import DataError, ProofError, Reason

ProofSource = Callable[[int, int], Sequence[bytes]]
"""``(old_size, new_size)`` -> an RFC 9162 consistency proof; may raise InfrastructureError."""

STATE_FORMAT = "cehub.witness-state/v1"


@dataclass(frozen=True, slots=True)
class WitnessState:
    """What the witness keeps on disk: the last verified note and the next record to read."""

    note: bytes | None = None
    checkpoint: Checkpoint | None = None
    next_offset: int = 0


class Outcome(enum.Enum):
    """What a note that passed did to the state."""

    FIRST = "trusted on first use"
    EXTENDS = "consistent extension"
    REPEATS = "same tree head again"


@dataclass(frozen=True, slots=True)
class Verified:
    offset: int
    checkpoint: Checkpoint
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Alarm:
    """A note the witness refused: the stable reason code and what exactly was wrong."""

    offset: int
    reason: Reason
    message: str


Observation = Verified | Alarm


def check_new_checkpoint(
    previous: Checkpoint | None,
    note: bytes,
    *,
    verifiers: Iterable[NoteVerifier],
    origin: str,
    proof_source: ProofSource,
) -> tuple[Checkpoint, Outcome]:
    """Open ``note`` and decide it against ``previous``; a proof is asked for only when the
    tree grew (a rollback or a same-size fork needs none).

    Raises:
        ProofError: ``CHECKPOINT_INVALID``, ``CHECKPOINT_ROLLBACK`` or ``CHECKPOINT_FORK``.
        InfrastructureError: from ``proof_source``.
    """
    new = open_checkpoint(note, verifiers, origin)
    if previous is None:
        return new, Outcome.FIRST
    if new.size <= previous.size:
        check_checkpoint_consistency(previous, new, ())
        return previous, Outcome.REPEATS
    proof = proof_source(previous.size, new.size)
    check_checkpoint_consistency(previous, new, proof)
    return new, Outcome.EXTENDS


def observe(
    state: WitnessState,
    offset: int,
    note: bytes,
    *,
    verifiers: Iterable[NoteVerifier],
    origin: str,
    proof_source: ProofSource,
) -> tuple[WitnessState, Observation]:
    """The state after the record at ``offset``, and what the witness saw in it.

    The read position always moves past the record; the kept checkpoint moves only to a note
    that extends it. So after an alarm the witness still holds the last honest checkpoint, and
    every later note of a forked log raises the alarm again.

    Raises:
        InfrastructureError: the proof could not be obtained; the state is then unchanged, so
            the record is read again next time.
    """
    moved = replace(state, next_offset=offset + 1)
    try:
        checkpoint, outcome = check_new_checkpoint(
            state.checkpoint, note, verifiers=verifiers, origin=origin, proof_source=proof_source
        )
    except DataError as error:
        return moved, Alarm(offset, error.reason, error.message)
    if outcome is Outcome.REPEATS:
        return moved, Verified(offset, checkpoint, outcome)
    return replace(moved, note=note, checkpoint=checkpoint), Verified(offset, checkpoint, outcome)


# --- the state file's content -------------------------------------------------------------------


def dump_state(state: WitnessState, topic: str) -> bytes:
    """The state file: JSON with the verbatim signed note, so it can be re-verified on load."""
    return (
        json.dumps(
            {
                "format": STATE_FORMAT,
                "topic": topic,
                "next_offset": state.next_offset,
                "checkpoint": state.note.decode("utf-8") if state.note is not None else None,
            },
            ensure_ascii=False,
            indent=2,
        )
        + "\n"
    ).encode("utf-8")


def load_state(
    data: bytes, *, topic: str, verifiers: Iterable[NoteVerifier], origin: str
) -> WitnessState:
    """Parse a state file and verify the note in it again (the file is not trusted blindly).

    A state kept for another topic keeps its checkpoint but reads the new topic from the start.

    Raises:
        ProofError: (``CHECKPOINT_INVALID``) not a state file, or its note does not verify.
    """
    try:
        fields = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProofError(Reason.CHECKPOINT_INVALID, f"witness state is not JSON: {exc}") from exc
    if not isinstance(fields, dict) or fields.get("format") != STATE_FORMAT:
        raise ProofError(Reason.CHECKPOINT_INVALID, f"not a {STATE_FORMAT} file")
    offset, text = fields.get("next_offset"), fields.get("checkpoint")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ProofError(Reason.CHECKPOINT_INVALID, "witness state: bad next_offset")
    if fields.get("topic") != topic:
        offset = 0
    if text is None:
        return WitnessState(next_offset=offset)
    if not isinstance(text, str):
        raise ProofError(Reason.CHECKPOINT_INVALID, "witness state: checkpoint is not text")
    note = text.encode("utf-8")
    return WitnessState(note, open_checkpoint(note, verifiers, origin), offset)
