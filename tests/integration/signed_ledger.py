"""A signed ledger in a real SQL store, built fast: no broker, no faust.

The entries come from tests/builders' scenario run through :class:`MemoryLedger` (the
sequencer's own decision code); they are written with :meth:`LedgerStore.write_batch` in
batches, and a :class:`Checkpointer` signs checkpoints between batches, exactly as the
sequencer stage does inside its transaction. So the store holds what the hub would have
written for the same events, minus the Kafka positions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from consumers.checkpoints import Checkpointer
from ledger.checkpoint import NoteVerifier, note_verifier_key, parse_note_verifier_key
from ledger.merkle import MemoryNodeStore
from ledger.replay import MemoryLedger
from ledger.sequencer import Accepted
from ledger.sqlstore import open_engine
from ledger.state import MemoryState
from ledger.store import LedgerStore
from tests.integration.hub_scenarios import supply_chain

ORIGIN = "cehub.test/ledger"
LEDGER_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"cehub test ledger key").digest())


@dataclass
class SignedLedger:
    store: LedgerStore
    envelopes: list[bytes]
    notes: list[bytes]
    """Every checkpoint note signed, in signing order."""
    tree: MemoryNodeStore
    """The same tree in memory: the reference the store's proofs are compared with."""

    @property
    def size(self) -> int:
        return len(self.envelopes)

    @property
    def checkpoint_sizes(self) -> list[int]:
        return [int(note.split(b"\n")[1]) for note in self.notes]


def vkey() -> str:
    return note_verifier_key(ORIGIN, LEDGER_KEY.public_key())


def verifier() -> NoteVerifier:
    return parse_note_verifier_key(vkey())


def build_signed_ledger(
    database_url: str, *, rounds: int = 25, batch: int = 7, checkpoint_every: int = 10
) -> SignedLedger:
    """``4 + 4 * rounds`` entries in batches of ``batch``, a checkpoint at least every
    ``checkpoint_every`` entries (the first batch always gets one)."""
    scenario = supply_chain(rounds)
    memory = MemoryLedger(scenario.hub.context)
    accepted = []
    for envelope in scenario.envelopes:
        outcome = memory.append(envelope)
        assert isinstance(outcome, Accepted)
        accepted.append(outcome)
    store = LedgerStore(open_engine(database_url))
    signer = Checkpointer(
        origin=ORIGIN, key=LEDGER_KEY, every_entries=checkpoint_every, every_seconds=float("inf")
    )
    notes = []
    for start in range(0, len(accepted), batch):
        chunk = accepted[start : start + batch]
        with store.transaction() as conn:
            store.write_batch(
                conn,
                size_before=start,
                accepted=chunk,
                changes=MemoryState(),
                rejected=(),
                positions=(),
            )
            note = signer.maybe_sign(conn, start + len(chunk))
        if note is not None:
            notes.append(note)
    return SignedLedger(store, list(scenario.envelopes), notes, memory.tree)
