"""When the sequencer signs a checkpoint: every N entries or T seconds (DESIGN.md section 5).

The policy reads the wall clock, so it lives here in the adapter; the signing itself is
:func:`ledger.checkpoint.next_checkpoint`, pure, inside the batch's transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection

from ledger.checkpoint import Checkpoint, NoteSigner, next_checkpoint
from ledger.store import StoredCheckpoint, latest_checkpoint, node_reader, save_checkpoint


@dataclass
class Checkpointer:
    origin: str
    key: NoteSigner
    every_entries: int = 1000
    every_seconds: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _last_time: float = field(default=float("-inf"))

    def maybe_sign(self, conn: Connection, size: int, *, force: bool = False) -> bytes | None:
        """Sign and store a checkpoint at ``size`` if one is due; return its note."""
        last = latest_checkpoint(conn)
        last_size = last.tree_size if last else 0
        if size in (0, last_size):
            return None
        due = (
            force
            or size - last_size >= self.every_entries
            or self.clock() - self._last_time >= self.every_seconds
        )
        if not due:
            return None
        previous = (
            Checkpoint(self.origin, last.tree_size, last.root_hash) if last is not None else None
        )
        checkpoint, note = next_checkpoint(
            origin=self.origin,
            size=size,
            get_node=node_reader(conn),
            previous=previous,
            key=self.key,
        )
        save_checkpoint(conn, StoredCheckpoint(size, checkpoint.root_hash, note.decode()))
        self._last_time = self.clock()
        return note
