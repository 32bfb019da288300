"""Sealing and opening signed envelopes (ledger/envelope.py), and the published byte layout."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.envelope import (
    PAYLOAD_TYPE,
    KnownKey,
    SimpleKeyring,
    VerifiedEvent,
    open_envelope,
    pae,
    seal,
)
from ledger.errors import DataError, EncodingError, Reason, SignatureError
from ledger.signing import Ed25519Signer
from schemas import events as ev
from schemas.codec import default_registry, encode_envelope, encode_event, single_object_header
from tests.strategies import events, signers

GOLDEN = json.loads(
    (Path(__file__).parents[1] / "vectors" / "envelope" / "batch-created.json").read_text()
)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ACME = Ed25519Signer.from_seed(bytes(range(32)))
HUB = Ed25519Signer.from_seed(bytes(range(32, 64)))
KEYRING = SimpleKeyring.of([KnownKey.of(ACME, "acme"), KnownKey.of(HUB, "hub", authority=True)])


def _event(producer: str = "acme", seq: int = 3) -> ev.BatchCreated:
    return ev.BatchCreated(
        header=ev.EventHeader(
            "7d7c1f0e-2b9a-4c7e-8f3d-1a2b3c4d5e6f", producer, seq, datetime(2025, 1, 1, tzinfo=UTC)
        ),
        batch_id=f"{producer}/b-1",
        owner_id=producer,
        site_id="s-1",
        material="PET",
        mass_g=1000,
        composition=ev.Composition(500, 250, 250),
    )


def _envelope(
    signer: Ed25519Signer, payload: bytes, *, signed_payload: bytes | None = None, **fields: Any
) -> bytes:
    """Envelope bytes with any field overridden; the signature covers ``signed_payload``
    (default: ``payload``) under the envelope's payload type."""
    payload_type = fields.pop("payload_type", PAYLOAD_TYPE)
    signature = signer.sign(pae(payload_type, signed_payload or payload))
    envelope = ev.Envelope(
        payload_type=payload_type,
        payload=payload,
        key_id=fields.pop("key_id", signer.key_id),
        signature=fields.pop("signature", signature),
        producer_id=fields.pop("producer_id", "acme"),
        producer_seq=fields.pop("producer_seq", 3),
    )
    assert not fields
    return encode_envelope(envelope)


def _reason(data: bytes, keys: SimpleKeyring = KEYRING) -> Reason:
    with pytest.raises(DataError) as info:
        open_envelope(data, keys)
    return info.value.reason


# --- PAE ----------------------------------------------------------------------------------------


def test_pae_matches_the_dsse_protocol_test_vector() -> None:
    # secure-systems-lab/dsse protocol.md, "Test Vectors"
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_lengths_count_utf8_bytes() -> None:
    assert pae("t\u00e9", b"\x00\xff") == b"DSSEv1 3 t\xc3\xa9 2 \x00\xff"
    assert pae("", b"") == b"DSSEv1 0  0 "


# --- golden vector ------------------------------------------------------------------------------


def _golden_event() -> ev.BatchCreated:
    data = GOLDEN["event"]
    header = data["header"]
    return ev.BatchCreated(
        header=ev.EventHeader(
            header["event_id"],
            header["producer_id"],
            header["producer_seq"],
            datetime.fromisoformat(header["occurred_at"]),
        ),
        batch_id=data["batch_id"],
        owner_id=data["owner_id"],
        site_id=data["site_id"],
        material=data["material"],
        mass_g=data["mass_g"],
        composition=ev.Composition(**data["composition"]),
    )


def test_golden_vector_is_reproduced_byte_for_byte() -> None:
    signer = Ed25519Signer.from_seed(bytes.fromhex(GOLDEN["signing_key"]["seed_hex"]))
    assert signer.public_key.hex() == GOLDEN["signing_key"]["public_key_hex"]
    assert signer.key_id == GOLDEN["signing_key"]["key_id"]
    event = _golden_event()
    payload = encode_event(event)
    assert payload.hex() == GOLDEN["payload_hex"]
    assert pae(PAYLOAD_TYPE, payload).hex() == GOLDEN["pae_hex"]
    assert signer.sign(pae(PAYLOAD_TYPE, payload)).hex() == GOLDEN["signature_hex"]
    envelope = seal(event, signer)
    assert envelope.hex() == GOLDEN["envelope_hex"]
    assert hashlib.sha256(envelope).hexdigest() == GOLDEN["envelope_sha256_hex"]


def test_golden_vector_opens() -> None:
    signer = Ed25519Signer.from_seed(bytes.fromhex(GOLDEN["signing_key"]["seed_hex"]))
    keys = SimpleKeyring.of([KnownKey.of(signer, "acme-recycling")])
    verified = open_envelope(bytes.fromhex(GOLDEN["envelope_hex"]), keys)
    assert verified.event == _golden_event()
    assert verified.envelope_sha256.hex() == GOLDEN["envelope_sha256_hex"]
    assert verified.payload.hex() == GOLDEN["payload_hex"]


class _AvroReader:
    """Just enough Avro binary decoding (Avro spec, "Binary Encoding") to read the golden
    vector by hand, following docs/envelope.md and independently of fastavro."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        assert self.pos + n <= len(self.data)
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def long(self) -> int:
        shift = result = 0
        while True:
            byte = self.take(1)[0]
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1)  # zig-zag

    def bytes_(self) -> bytes:
        return self.take(self.long())

    def string(self) -> str:
        return self.bytes_().decode("utf-8")


def test_golden_envelope_reads_by_hand_as_documented() -> None:
    envelope = _AvroReader(bytes.fromhex(GOLDEN["envelope_hex"]))
    assert envelope.take(2) == b"\xc3\x01"
    fingerprint = int.from_bytes(envelope.take(8), "little")
    assert f"{fingerprint:016x}" == GOLDEN["envelope_schema_fingerprint_hex"]
    assert envelope.string() == PAYLOAD_TYPE
    payload = envelope.bytes_()
    assert envelope.string() == GOLDEN["signing_key"]["key_id"]
    assert envelope.bytes_().hex() == GOLDEN["signature_hex"]
    assert envelope.string() == "acme-recycling"
    assert envelope.long() == 0
    assert envelope.pos == len(envelope.data)

    body = _AvroReader(payload)
    assert body.take(2) == b"\xc3\x01"
    assert (
        f"{int.from_bytes(body.take(8), 'little'):016x}" == GOLDEN["event_schema_fingerprint_hex"]
    )
    event = GOLDEN["event"]
    header = event["header"]
    assert [body.string(), body.string(), body.long(), body.long()] == [
        header["event_id"],
        header["producer_id"],
        header["producer_seq"],
        header["occurred_at_micros"],
    ]
    assert [body.string() for _ in range(4)] == [
        event["batch_id"],
        event["owner_id"],
        event["site_id"],
        event["material"],
    ]
    assert [body.long() for _ in range(4)] == [
        event["mass_g"],
        *event["composition"].values(),
    ]
    assert body.pos == len(body.data)


def test_golden_fingerprints_are_the_current_schemas() -> None:
    registry = default_registry()
    assert (
        f"{registry.schema('org.cehub.v1.BatchCreated').fingerprint:016x}"
        == GOLDEN["event_schema_fingerprint_hex"]
    )
    assert (
        f"{registry.schema('org.cehub.v1.Envelope').fingerprint:016x}"
        == GOLDEN["envelope_schema_fingerprint_hex"]
    )


# --- properties ---------------------------------------------------------------------------------


@FAST
@given(events(), signers)
def test_seal_then_open_returns_the_event(event: ev.Event, signer: Ed25519Signer) -> None:
    keys = SimpleKeyring.of([KnownKey.of(signer, event.header.producer_id)])
    data = seal(event, signer)
    verified = open_envelope(data, keys)
    assert verified == VerifiedEvent(
        event=event,
        envelope_bytes=data,
        payload=encode_event(event),
        key_id=signer.key_id,
        signer_id=event.header.producer_id,
    )
    assert verified.envelope_sha256 == hashlib.sha256(data).digest()


@FAST
@given(events(), st.data())
def test_rejects_any_flipped_bit_in_the_envelope(event: ev.Event, data: st.DataObject) -> None:
    event = dataclasses.replace(event, header=dataclasses.replace(event.header, producer_id="acme"))
    sealed = bytearray(seal(event, ACME))
    bit = data.draw(st.integers(min_value=0, max_value=len(sealed) * 8 - 1))
    sealed[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(DataError):
        open_envelope(bytes(sealed), KEYRING)


@FAST
@given(events(), st.data())
def test_rejects_any_flipped_bit_in_the_payload(event: ev.Event, data: st.DataObject) -> None:
    header = event.header
    payload = encode_event(event)
    tampered = bytearray(payload)
    bit = data.draw(st.integers(min_value=0, max_value=len(tampered) * 8 - 1))
    tampered[bit // 8] ^= 1 << (bit % 8)
    forged = _envelope(
        ACME,
        bytes(tampered),
        signed_payload=payload,
        producer_id="acme",
        producer_seq=header.producer_seq,
    )
    assert _reason(forged) is Reason.BAD_SIGNATURE


@FAST
@given(st.binary(max_size=400))
def test_random_bytes_raise_only_data_error(data: bytes) -> None:
    with contextlib.suppress(DataError):
        open_envelope(data, KEYRING)


@FAST
@given(st.binary(max_size=400))
def test_random_body_after_the_envelope_fingerprint_raises_only_data_error(body: bytes) -> None:
    header = default_registry().schema(ev.Envelope.AVRO_NAME).header
    with contextlib.suppress(DataError):
        open_envelope(header + body, KEYRING)


# --- each check, in order -----------------------------------------------------------------------


def test_opens_bytes_like_input() -> None:
    data = seal(_event(), ACME)
    assert open_envelope(bytearray(data), KEYRING).envelope_bytes == data
    assert open_envelope(memoryview(data), KEYRING).envelope_bytes == data


def test_rejects_trailing_bytes_after_the_envelope() -> None:
    assert _reason(seal(_event(), ACME) + b"\x00") is Reason.MALFORMED_ENVELOPE


def test_rejects_an_event_sent_without_envelope() -> None:
    assert _reason(encode_event(_event())) is Reason.MALFORMED_ENVELOPE


def test_rejects_unknown_envelope_schema() -> None:
    data = seal(_event(), ACME)
    assert _reason(single_object_header(42) + data[10:]) is Reason.UNKNOWN_SCHEMA


def test_rejects_wrong_payload_type_even_when_signed() -> None:
    data = _envelope(ACME, encode_event(_event()), payload_type="application/json")
    assert _reason(data) is Reason.WRONG_PAYLOAD_TYPE


def test_rejects_unknown_key() -> None:
    stranger = Ed25519Signer.generate()
    assert _reason(_envelope(stranger, encode_event(_event()))) is Reason.UNKNOWN_KEY


def test_rejects_revoked_key() -> None:
    keys = KEYRING.with_revoked(ACME.key_id)
    assert _reason(seal(_event(), ACME), keys) is Reason.REVOKED_KEY


def test_rejects_key_of_another_participant() -> None:
    # beta's key signs an envelope claiming to come from acme
    beta = Ed25519Signer.generate()
    keys = KEYRING.with_key(KnownKey.of(beta, "beta"))
    assert _reason(seal(_event(), beta), keys) is Reason.KEY_NOT_AUTHORISED


def test_authorisation_is_checked_before_the_signature() -> None:
    beta = Ed25519Signer.generate()
    keys = KEYRING.with_key(KnownKey.of(beta, "beta"))
    data = _envelope(beta, encode_event(_event()), signature=bytes(64))
    assert _reason(data, keys) is Reason.KEY_NOT_AUTHORISED


def test_hub_authority_key_may_sign_for_any_producer() -> None:
    verified = open_envelope(seal(_event(), HUB), KEYRING)
    assert verified.signer_id == "hub"
    assert verified.event.header.producer_id == "acme"


def test_hub_signs_participant_enrolment_as_producer_hub() -> None:
    enrolled = ev.ParticipantEnrolled(
        header=dataclasses.replace(_event().header, producer_id=ev.HUB_PRODUCER_ID),
        participant_id="acme",
        legal_name="Acme Recycling Co., Ltd.",
        country="TH",
        roles=(ev.Role.RECYCLER,),
        sites=(ev.Site("rayong-1", "Rayong plant", "TH"),),
        public_key=ACME.public_key,
        key_id=ACME.key_id,
    )
    hub_only = SimpleKeyring.of([KnownKey.of(HUB, "hub")])  # not even an authority
    assert open_envelope(seal(enrolled, HUB), hub_only).event == enrolled


def test_signature_is_checked_before_the_payload_is_decoded() -> None:
    garbage = b"\xc3\x01" + bytes(20)
    assert _reason(_envelope(ACME, garbage, signature=bytes(64))) is Reason.BAD_SIGNATURE
    assert _reason(_envelope(ACME, garbage)) is Reason.UNKNOWN_SCHEMA


def test_rejects_signed_payload_that_does_not_decode() -> None:
    payload = encode_event(_event())[:-1]
    assert _reason(_envelope(ACME, payload)) is Reason.UNDECODABLE_PAYLOAD


def test_rejects_envelope_sequence_that_differs_from_the_signed_header() -> None:
    data = _envelope(ACME, encode_event(_event(seq=3)), producer_seq=4)
    assert _reason(data) is Reason.MALFORMED_ENVELOPE


def test_rejects_envelope_producer_that_differs_from_the_signed_header() -> None:
    # acme's key, acme on the envelope, but the signed event claims to come from beta
    data = _envelope(ACME, encode_event(_event(producer="beta")), producer_id="acme")
    assert _reason(data) is Reason.MALFORMED_ENVELOPE


def test_verifies_the_bytes_received_not_a_re_encoding() -> None:
    # Another implementation may write the UUID in upper case; decoding canonicalises it, so
    # re-encoding would change the bytes. The signature over the received bytes must verify.
    datum = ev.to_avro(_event())
    datum["header"]["event_id"] = datum["header"]["event_id"].upper()
    payload = default_registry().encode(ev.BatchCreated.AVRO_NAME, datum)
    assert payload != encode_event(_event())
    verified = open_envelope(_envelope(ACME, payload), KEYRING)
    assert verified.payload == payload
    assert verified.event == _event()


def test_keyring_errors() -> None:
    with pytest.raises(SignatureError) as info:
        SimpleKeyring().resolve("ed25519:0000000000000000")
    assert info.value.reason is Reason.UNKNOWN_KEY
    with pytest.raises(SignatureError) as info:
        KEYRING.with_revoked("ed25519:0000000000000000").resolve("ed25519:0000000000000000")
    assert info.value.reason is Reason.REVOKED_KEY


def test_envelope_errors_are_encoding_or_signature_errors() -> None:
    with pytest.raises(EncodingError):
        open_envelope(b"", KEYRING)
