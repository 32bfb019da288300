"""The producer's state file and the emitter's numbering (producers/state.py, producers/emitter.py).

What these defend (DESIGN.md section 4): sequence numbers start at 0 and are consecutive; the
state advances only after the broker acknowledged every event; after a crash the next run
re-sends identical bytes before anything new, so no number is ever given to other content and
none is skipped. The broker is the in-memory MemorySink; the real one is in
tests/integration/test_emit.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.envelope import KnownKey, SimpleKeyring, open_envelope
from ledger.errors import InputError, Reason, TransportError
from ledger.signing import Ed25519Signer
from producers.emitter import EmitResult, MemorySink, emit
from producers.records import Draft, parse_records
from producers.state import (
    HISTORY_SIZE,
    ProducerState,
    SeqBatch,
    StateFile,
    batch_digest,
    decode_outbox,
    encode_outbox,
)

PRODUCER = "acme"
SIGNER = Ed25519Signer.from_seed(bytes(range(32)))
KEYRING = SimpleKeyring.of([KnownKey.of(SIGNER, PRODUCER)])


def drafts(count: int, start: int = 0, producer_id: str = PRODUCER) -> tuple[Draft, ...]:
    lines = [
        {
            "type": "BatchCreated",
            "occurred_at": "2025-03-03T08:00:00+07:00",
            "batch_id": f"{producer_id}/b{i}",
            "site_id": "s1",
            "material": "PET",
            "mass": f"{i + 1} kg",
            "composition": {"virgin": f"{i + 1} kg"},
        }
        for i in range(start, start + count)
    ]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    result = parse_records(text, "jsonl", producer_id=producer_id)
    assert not result.errors
    return result.drafts


def opened(sink: MemorySink) -> list[tuple[int, str]]:
    """(producer_seq, event_id) of every record the sink holds, verified with the keyring."""
    out = []
    for key, value in sink.records:
        assert key == PRODUCER.encode()
        event = open_envelope(value, KEYRING).event
        out.append((event.header.producer_seq, event.header.event_id))
    return out


def run(
    files: StateFile, batch: tuple[Draft, ...], sink: MemorySink, source: str = "f"
) -> EmitResult:
    return emit(batch, signer=SIGNER, state_file=files, sink=sink, source=source)


@pytest.fixture
def files(tmp_path: Path) -> StateFile:
    return StateFile(tmp_path, PRODUCER)


# --- the pure state -----------------------------------------------------------------------------


def test_a_new_producer_starts_at_zero() -> None:
    batch = ProducerState(PRODUCER).plan(["a", "b", "c"], "f")
    assert (batch.first_seq, batch.count, batch.end_seq) == (0, 3, 3)


def test_numbers_continue_only_after_acknowledgement() -> None:
    state = ProducerState(PRODUCER)
    batch = state.plan(["a", "b"], "f")
    sending = state.begin(batch)
    assert sending.next_seq == 0
    with pytest.raises(InputError) as caught:
        sending.plan(["c"], "g")
    assert caught.value.reason is Reason.SEQUENCE_REPLAY
    done = sending.acknowledged(batch)
    assert (done.next_seq, done.pending) == (2, None)
    assert done.plan(["c"], "g").first_seq == 2


def test_history_recognises_a_batch_sent_before_and_is_bounded() -> None:
    state = ProducerState(PRODUCER)
    for i in range(HISTORY_SIZE + 5):
        state = state.acknowledged(state.plan([f"e{i}"], "f"))
    assert len(state.history) == HISTORY_SIZE
    assert state.already_sent([f"e{HISTORY_SIZE + 4}"]) == SeqBatch(
        HISTORY_SIZE + 4, 1, batch_digest([f"e{HISTORY_SIZE + 4}"]), "f"
    )
    assert state.already_sent(["e0"]) is None
    assert state.already_sent(["never"]) is None


def test_state_file_round_trips_and_is_replaced_atomically(files: StateFile) -> None:
    assert files.load() == ProducerState(PRODUCER)
    state = ProducerState(PRODUCER, 5, SeqBatch(5, 2, "d", "f", "h"), (SeqBatch(0, 5, "c", "e"),))
    files.save(state)
    assert files.load() == state
    assert files.path == files.path.parent / "acme.json"
    assert sorted(p.name for p in files.path.parent.iterdir()) == ["acme.json"]  # no temp file


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "{}",
        '{"format": "cehub.producer-state", "version": 9}',
        '{"format": "cehub.producer-state", "version": 1, "producer_id": "acme"}',
        '{"format": "cehub.producer-state", "version": 1, "producer_id": "acme", '
        '"next_seq": -1, "pending": null, "history": []}',
        '{"format": "cehub.producer-state", "version": 1, "producer_id": "acme", '
        '"next_seq": true, "pending": null, "history": []}',
        '{"format": "cehub.producer-state", "version": 1, "producer_id": "other", '
        '"next_seq": 1, "pending": null, "history": []}',
    ],
)
def test_a_damaged_or_foreign_state_file_is_refused(files: StateFile, content: str) -> None:
    files.path.parent.mkdir(parents=True)
    files.path.write_text(content)
    with pytest.raises(InputError) as caught:
        files.load()
    assert str(files.path) in caught.value.message


@pytest.mark.parametrize("producer_id", ["../../etc/passwd", "a/b", ".", "..", "ünïcode"])
def test_any_producer_id_stays_inside_the_state_folder(tmp_path: Path, producer_id: str) -> None:
    files = StateFile(tmp_path, producer_id)
    files.save(ProducerState(producer_id, 3))
    assert files.path.parent == tmp_path / "producers"
    assert files.path.resolve().parent == (tmp_path / "producers").resolve()
    assert files.load().next_seq == 3


def test_outbox_encoding_round_trips() -> None:
    envelopes = (b"", b"x", bytes(range(256)) * 3)
    assert decode_outbox(encode_outbox(envelopes)) == envelopes
    with pytest.raises(InputError):
        decode_outbox(encode_outbox(envelopes)[:-1])
    with pytest.raises(InputError):
        decode_outbox(b"something else")


def test_one_emitter_per_producer_at_a_time(files: StateFile) -> None:
    with files.locked():
        with (
            pytest.raises(InputError) as caught,
            StateFile(files.path.parents[1], PRODUCER).locked(),
        ):
            pass
        assert caught.value.reason is Reason.SEQUENCE_REPLAY
    with files.locked():  # released
        pass


# --- emit over the in-memory broker ------------------------------------------------------------


def test_numbers_start_at_zero_and_continue_across_files(files: StateFile) -> None:
    sink = MemorySink()
    first = run(files, drafts(5), sink)
    second = run(files, drafts(3, start=5), sink, "g")
    assert first.complete
    assert second.complete
    assert [seq for seq, _ in opened(sink)] == list(range(8))
    assert [event_id for _, event_id in opened(sink)] == [d.event_id for d in drafts(8)]
    assert files.load().next_seq == 8
    assert not files.outbox_path.exists()
    assert (second.batch.first_seq, second.batch.count) == (5, 3)


def test_state_does_not_advance_when_the_broker_fails(files: StateFile) -> None:
    result = run(files, drafts(5), MemorySink(fail_from=3))
    assert not result.complete
    assert [f.seq for f in result.report.failed] == [3, 4]
    assert [d.seq for d in result.report.delivered] == [0, 1, 2]
    state = files.load()
    assert state.next_seq == 0
    assert state.pending == result.batch
    assert files.outbox_path.exists()


def test_rerun_after_a_failure_resends_identical_bytes(files: StateFile) -> None:
    lost = MemorySink(fail_from=2)
    run(files, drafts(4), lost)
    outbox = decode_outbox(files.outbox_path.read_bytes())
    again = MemorySink()
    result = run(files, drafts(4), again)
    assert result.complete
    assert result.recovered == result.batch
    assert [value for _key, value in again.records] == list(outbox)
    assert [value for _key, value in lost.records] == list(outbox[:2])  # same bytes as before
    assert files.load().next_seq == 4
    assert not files.outbox_path.exists()


def test_a_pending_batch_is_finished_before_new_events_get_numbers(files: StateFile) -> None:
    """The crash case that would otherwise be an equivocation: after a crash the operator
    emits a *different* file. Its events must not reuse #0..#2 of the interrupted batch."""
    run(files, drafts(3), MemorySink(fail_from=0))
    sink = MemorySink()
    result = run(files, drafts(2, start=10), sink, "other")
    assert result.recovered is not None
    assert result.recovered.count == 3
    assert result.batch.first_seq == 3
    assert [seq for seq, _ in opened(sink)] == [0, 1, 2, 3, 4]
    assert [e for _, e in opened(sink)][:3] == [d.event_id for d in drafts(3)]
    assert files.load().next_seq == 5


def test_a_broker_still_down_for_the_pending_batch_sends_nothing_new(files: StateFile) -> None:
    run(files, drafts(3), MemorySink(fail_from=0))
    sink = MemorySink(fail_from=0)
    with pytest.raises(TransportError):
        run(files, drafts(2, start=10), sink, "other")
    assert files.load().pending is not None
    assert files.load().next_seq == 0


def test_a_crash_before_the_state_was_written_resends_identical_bytes(files: StateFile) -> None:
    """A crash after sending but before the state advanced: the restored state file (or the
    one never written) gives the same numbers to the same events, so the bytes are equal."""
    before = MemorySink()
    run(files, drafts(6), before)
    files.path.unlink()  # the state as it was before the run
    after = MemorySink()
    result = run(files, drafts(6), after)
    assert result.complete
    assert not result.already_sent
    assert after.records == before.records


def test_a_file_sent_before_is_not_sent_again(files: StateFile) -> None:
    run(files, drafts(4), MemorySink())
    sink = MemorySink()
    result = run(files, drafts(4), sink)
    assert result.already_sent
    assert result.complete
    assert (result.batch.first_seq, result.batch.count) == (0, 4)
    assert not sink.records
    assert files.load().next_seq == 4


def test_a_damaged_outbox_is_refused_not_replaced(files: StateFile) -> None:
    run(files, drafts(3), MemorySink(fail_from=0))
    files.outbox_path.write_bytes(files.outbox_path.read_bytes()[:-1])
    with pytest.raises(InputError):
        run(files, drafts(1, start=9), MemorySink())
    assert files.load().next_seq == 0


def test_state_file_is_written_with_fsync_and_rename(
    files: StateFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    def replace(src: Path, dst: Path) -> None:
        calls.append(f"replace {Path(dst).name}")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    files.save(ProducerState(PRODUCER, 1))
    assert calls == ["fsync", "replace acme.json", "fsync"]


# --- the invariant, for any run of failures ----------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    runs=st.lists(
        st.tuples(st.integers(1, 6), st.one_of(st.none(), st.integers(0, 8))),
        min_size=1,
        max_size=6,
    )
)
def test_no_number_is_reused_for_other_content_or_skipped(
    runs: list[tuple[int, int | None]],
) -> None:
    """Whatever fails when, every number the broker ever received maps to one set of bytes,
    and once everything is acknowledged the numbers are exactly 0..N-1."""
    with tempfile.TemporaryDirectory() as folder:
        files = StateFile(Path(folder), PRODUCER)
        seen: dict[int, bytes] = {}
        start = 0
        for count, fail_from in runs:
            sink = MemorySink(fail_from=fail_from)
            with contextlib.suppress(TransportError):
                run(files, drafts(count, start=start), sink)
            start += count
            for _key, value in sink.records:
                seq = open_envelope(value, KEYRING).event.header.producer_seq
                assert seen.setdefault(seq, value) == value
        final = MemorySink()
        run(files, drafts(1, start=start), final)
        for _key, value in final.records:
            seq = open_envelope(value, KEYRING).event.header.producer_seq
            assert seen.setdefault(seq, value) == value
        assert sorted(seen) == list(range(files.load().next_seq))
