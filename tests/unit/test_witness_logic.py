"""The witness's decisions (ledger/witness.py), with no broker and no database.

The proof source is a dict-backed tree (MemoryNodeStore); "the store" below is whatever tree
the proof source serves, which a test can make lie.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from ledger.checkpoint import (
    Checkpoint,
    format_checkpoint_body,
    note_verifier_key,
    parse_note_verifier_key,
    sign_note,
)
from ledger.errors import ProofError, Reason, StoreError
from ledger.merkle import MemoryNodeStore, consistency_proof, leaf_hash, root_hash
from ledger.witness import (
    Alarm,
    Outcome,
    Verified,
    WitnessState,
    check_new_checkpoint,
    dump_state,
    load_state,
    observe,
)

ORIGIN = "witness.test/ledger"
KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"witness test ledger").digest())
VERIFIER = parse_note_verifier_key(note_verifier_key(ORIGIN, KEY.public_key()))
TOPIC = "t.checkpoints"


def tree(leaves: list[bytes]) -> MemoryNodeStore:
    store = MemoryNodeStore()
    for data in leaves:
        store.append(leaf_hash(data))
    return store


HONEST = tree([f"entry {i}".encode() for i in range(40)])
REWRITTEN = tree([b"rewritten" if i == 5 else f"entry {i}".encode() for i in range(40)])
"""Shares the first 5 entries with HONEST, then differs."""
EXTENDED_DIFFERENTLY = tree([f"entry {i}".encode() if i < 20 else b"other" for i in range(40)])
"""Shares the first 20 entries with HONEST, then differs."""


def note(
    log: MemoryNodeStore, size: int, key: Ed25519PrivateKey = KEY, origin: str = ORIGIN
) -> bytes:
    checkpoint = Checkpoint(origin, size, root_hash(size, log.get_node))
    return sign_note(format_checkpoint_body(checkpoint), origin, key)


class ProofsFrom:
    """A proof source over ``log`` that records what it was asked."""

    def __init__(self, log: MemoryNodeStore) -> None:
        self.log = log
        self.asked: list[tuple[int, int]] = []

    def __call__(self, old: int, new: int) -> tuple[bytes, ...]:
        self.asked.append((old, new))
        return consistency_proof(old, new, self.log.get_node)


def run(notes: list[bytes], proofs: ProofsFrom | None = None, state: WitnessState | None = None):
    state = state or WitnessState()
    seen = []
    for offset, n in enumerate(notes, start=state.next_offset):
        state, observation = observe(
            state,
            offset,
            n,
            verifiers=(VERIFIER,),
            origin=ORIGIN,
            proof_source=proofs or ProofsFrom(HONEST),
        )
        seen.append(observation)
    return state, seen


def reasons(seen: list[Verified | Alarm]) -> list[str]:
    return [s.reason.value if isinstance(s, Alarm) else s.outcome.name for s in seen]


def test_first_checkpoint_is_trusted_on_first_use_without_asking_for_a_proof() -> None:
    proofs = ProofsFrom(HONEST)
    state, seen = run([note(HONEST, 10)], proofs)
    assert reasons(seen) == ["FIRST"]
    assert state.checkpoint is not None
    assert state.checkpoint.size == 10
    assert state.note == note(HONEST, 10)
    assert state.next_offset == 1
    assert proofs.asked == []


def test_accepts_a_log_that_only_grew_and_asks_for_each_proof_once() -> None:
    proofs = ProofsFrom(HONEST)
    state, seen = run([note(HONEST, s) for s in (3, 8, 8, 16, 33, 40)], proofs)
    assert reasons(seen) == ["FIRST", "EXTENDS", "REPEATS", "EXTENDS", "EXTENDS", "EXTENDS"]
    assert proofs.asked == [(3, 8), (8, 16), (16, 33), (33, 40)]
    assert state.checkpoint == Checkpoint(ORIGIN, 40, root_hash(40, HONEST.get_node))
    assert state.next_offset == 6


def test_witness_detects_rollback_without_a_proof() -> None:
    proofs = ProofsFrom(HONEST)
    state, seen = run([note(HONEST, 20), note(HONEST, 12)], proofs)
    assert reasons(seen) == ["FIRST", "proof.checkpoint_rollback"]
    assert proofs.asked == []
    assert state.checkpoint is not None
    assert state.checkpoint.size == 20


def test_witness_detects_fork_at_the_same_size() -> None:
    _, seen = run([note(HONEST, 20), note(REWRITTEN, 20)])
    assert reasons(seen) == ["FIRST", "proof.checkpoint_fork"]


def test_witness_detects_validly_signed_checkpoint_of_a_rewritten_tree() -> None:
    state, seen = run([note(HONEST, 10), note(REWRITTEN, 30)])
    assert reasons(seen) == ["FIRST", "proof.checkpoint_fork"]
    assert isinstance(seen[1], Alarm)
    assert "not an extension of size 10" in seen[1].message
    assert state.checkpoint is not None
    assert state.checkpoint.size == 10


def test_a_lying_store_cannot_make_the_witness_accept_a_fork() -> None:
    # The store serves the forked tree's own proofs: they do not lead to the honest old root.
    _, seen = run([note(HONEST, 10), note(REWRITTEN, 30)], ProofsFrom(REWRITTEN))
    assert reasons(seen) == ["FIRST", "proof.checkpoint_fork"]


def test_a_store_that_serves_another_tree_raises_the_alarm() -> None:
    # The signed tree extends what the witness saw, but the store proves a different tree:
    # storage and signatures disagree, which the witness reports rather than accepts.
    _, seen = run([note(HONEST, 10), note(EXTENDED_DIFFERENTLY, 30)], ProofsFrom(HONEST))
    assert reasons(seen) == ["FIRST", "proof.checkpoint_fork"]


def test_rejects_bad_signature_unknown_key_and_other_origin() -> None:
    good = note(HONEST, 10)
    flipped = bytearray(good)
    flipped[-10] ^= 0x01
    stranger = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"stranger").digest())
    other_origin_same_key = note(HONEST, 12, origin="other.test/log")
    state, seen = run(
        [good, bytes(flipped), note(HONEST, 12, key=stranger), other_origin_same_key, b"junk"]
    )
    assert reasons(seen) == ["FIRST"] + ["proof.checkpoint_invalid"] * 4
    assert isinstance(seen[1], Alarm)
    assert "does not verify" in seen[1].message
    assert isinstance(seen[2], Alarm)
    assert "no signature by a known key" in seen[2].message
    assert state.note == good
    assert state.next_offset == 5


def test_alarm_keeps_the_last_honest_checkpoint_and_the_honest_log_goes_on() -> None:
    _, seen = run([note(HONEST, 10), note(REWRITTEN, 20), note(HONEST, 20), note(HONEST, 30)])
    assert reasons(seen) == ["FIRST", "proof.checkpoint_fork", "EXTENDS", "EXTENDS"]


def test_missing_proof_leaves_the_state_unchanged_so_the_record_is_read_again() -> None:
    def unavailable(_old: int, _new: int) -> tuple[bytes, ...]:
        raise StoreError("Merkle node (3, 2) is not stored")

    start, _ = run([note(HONEST, 10)])
    with pytest.raises(StoreError):
        observe(
            start,
            1,
            note(HONEST, 30),
            verifiers=(VERIFIER,),
            origin=ORIGIN,
            proof_source=unavailable,
        )
    assert start.next_offset == 1


def test_check_new_checkpoint_raises_with_the_reason() -> None:
    first, outcome = check_new_checkpoint(
        None, note(HONEST, 9), verifiers=(VERIFIER,), origin=ORIGIN, proof_source=ProofsFrom(HONEST)
    )
    assert outcome is Outcome.FIRST
    with pytest.raises(ProofError) as caught:
        check_new_checkpoint(
            first,
            note(HONEST, 4),
            verifiers=(VERIFIER,),
            origin=ORIGIN,
            proof_source=ProofsFrom(HONEST),
        )
    assert caught.value.reason is Reason.CHECKPOINT_ROLLBACK


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=12))
def test_an_honest_log_only_ever_raises_rollbacks_for_smaller_sizes(sizes: list[int]) -> None:
    state, seen = run([note(HONEST, s) for s in sizes])
    largest = 0
    for size, observation in zip(sizes, seen, strict=True):
        if size < largest:
            assert isinstance(observation, Alarm)
            assert observation.reason is Reason.CHECKPOINT_ROLLBACK
        else:
            assert isinstance(observation, Verified)
        largest = max(largest, size)
    assert state.checkpoint is not None
    assert state.checkpoint.size == max(sizes)


# --- the state file -----------------------------------------------------------------------------


def test_state_round_trips_and_its_note_is_verified_again_on_load() -> None:
    state, _ = run([note(HONEST, 10), note(HONEST, 25)])
    data = dump_state(state, TOPIC)
    loaded = load_state(data, topic=TOPIC, verifiers=(VERIFIER,), origin=ORIGIN)
    assert loaded == state
    assert (
        load_state(
            dump_state(WitnessState(), TOPIC), topic=TOPIC, verifiers=(VERIFIER,), origin=ORIGIN
        )
        == WitnessState()
    )


def test_a_tampered_state_file_is_refused() -> None:
    state, _ = run([note(HONEST, 25)])
    data = dump_state(state, TOPIC).replace(b"\\n25\\n", b"\\n26\\n")
    assert b"\\n26\\n" in data
    with pytest.raises(ProofError) as caught:
        load_state(data, topic=TOPIC, verifiers=(VERIFIER,), origin=ORIGIN)
    assert caught.value.reason is Reason.CHECKPOINT_INVALID
    for junk in (b"", b"[]", b'{"format": "something else"}', b"\xff"):
        with pytest.raises(ProofError):
            load_state(junk, topic=TOPIC, verifiers=(VERIFIER,), origin=ORIGIN)


def test_state_kept_for_another_topic_keeps_its_checkpoint_and_reads_from_the_start() -> None:
    state, _ = run([note(HONEST, 10), note(HONEST, 25)])
    loaded = load_state(
        dump_state(state, TOPIC), topic="other.checkpoints", verifiers=(VERIFIER,), origin=ORIGIN
    )
    assert loaded.checkpoint == state.checkpoint
    assert loaded.next_offset == 0
