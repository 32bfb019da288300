"""The decode cache of schemas/codec.py is invisible: same records, same errors, every time.

A hub worker decodes each envelope in its verify stage and again in its sequencer; the codec
answers a repeat from a cache keyed by the exact bytes (docs/performance.md). What that must
never change: a record decoded from the cache equals a fresh decode, bytes that do not decode
raise on every call (errors are not cached), and a signature is still checked on every open.
"""

from __future__ import annotations

import pytest

from ledger.envelope import KnownKey, SimpleKeyring, open_envelope
from ledger.errors import EncodingError, Reason, SignatureError
from schemas.codec import decode_envelope, decode_event, default_registry
from schemas.events import Role
from tests.builders import Hub, seeded_signer


def _envelope() -> tuple[Hub, bytes]:
    hub = Hub()
    alice = hub.actor("alice", Role.RECYCLER)
    return hub, hub.create_batch(alice, "alice/b1", 1_000, post=300)


def test_cached_decode_equals_a_fresh_decode_with_an_explicit_registry() -> None:
    _hub, envelope = _envelope()
    first, again = decode_envelope(envelope), decode_envelope(bytes(envelope))
    fresh = decode_envelope(envelope, default_registry())
    assert first == again == fresh
    assert decode_event(first.payload) == decode_event(first.payload, default_registry())


def test_bytes_that_do_not_decode_raise_every_time() -> None:
    for _ in range(3):
        with pytest.raises(EncodingError) as info:
            decode_envelope(b"\xc3\x01not an envelope")
        assert info.value.reason in (Reason.UNKNOWN_SCHEMA, Reason.MALFORMED_ENVELOPE)


def test_a_cached_envelope_is_still_signature_checked_on_every_open() -> None:
    _hub, envelope = _envelope()
    alice = seeded_signer("alice")
    decode_envelope(envelope)  # now cached
    good = SimpleKeyring.of([KnownKey.of(alice, "alice")])
    assert open_envelope(envelope, good).event.header.producer_id == "alice"
    impostor = KnownKey(alice.key_id, "alice", seeded_signer("mallory").public_key)
    with pytest.raises(SignatureError) as info:
        open_envelope(envelope, SimpleKeyring.of([impostor]))
    assert info.value.reason is Reason.BAD_SIGNATURE
