"""Sealing events into signed envelopes and opening them again (DESIGN.md section 4).

The signing input is the DSSE pre-authentication encoding (DSSE protocol specification,
"Protocol", https://github.com/secure-systems-lab/dsse/blob/master/protocol.md)::

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

with LEN the ASCII decimal byte length and SP one space (0x20). ``body`` is the event's Avro
single-object encoding, signed and carried as is: :func:`open_envelope` checks the signature
over the bytes received and only then decodes them. docs/envelope.md gives the byte layout.

Who may sign for whom is the caller's key registry's business, expressed through the
:class:`KeyLookup` port: :meth:`KeyLookup.resolve` raises for unknown and revoked keys, and the
:class:`KnownKey` it returns names the key's participant. A key signs only for its own
participant (the envelope's producer) unless it is an *authority* key, the hub's trust root,
which may sign for any producer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from ledger.errors import EncodingError, Reason, SignatureError
from ledger.signing import Signer, verify_signature
from schemas.codec import SchemaRegistry, decode_envelope, decode_event, encode_envelope
from schemas.codec import encode_event as _encode_event
from schemas.events import Envelope, Event

PAYLOAD_TYPE = "application/vnd.cehub.event.v1+avro"
"""``payload_type`` of every envelope: an event in Avro single-object encoding."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding of (payload type, payload): the signing input."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


@dataclass(frozen=True, slots=True)
class KnownKey:
    """A public key the caller's registry trusts, and whose it is."""

    key_id: str
    participant_id: str
    public_key: bytes
    authority: bool = False
    """The hub authority's key: may sign envelopes of any producer (DESIGN.md section 4)."""

    @classmethod
    def of(cls, signer: Signer, participant_id: str, *, authority: bool = False) -> KnownKey:
        """The public half of ``signer``, owned by ``participant_id``."""
        return cls(signer.key_id, participant_id, signer.public_key, authority)

    def may_sign_for(self, producer_id: str) -> bool:
        """Whether this key may sign an envelope whose producer is ``producer_id``."""
        return self.authority or self.participant_id == producer_id


class KeyLookup(Protocol):
    """Port to the key registry: resolves a key id to a key that may currently sign."""

    def resolve(self, key_id: str) -> KnownKey:
        """The key with id ``key_id``.

        Raises:
            SignatureError(UNKNOWN_KEY): no such key.
            SignatureError(REVOKED_KEY): the key was revoked or rotated away.
        """
        ...


@dataclass(frozen=True, slots=True)
class SimpleKeyring:
    """An immutable, dict-backed :class:`KeyLookup` for tests and offline verification."""

    keys: Mapping[str, KnownKey] = field(default_factory=dict)
    revoked: frozenset[str] = frozenset()

    @classmethod
    def of(cls, keys: Iterable[KnownKey], revoked: Iterable[str] = ()) -> SimpleKeyring:
        """A keyring holding ``keys``, of which the ids in ``revoked`` are revoked."""
        return cls(MappingProxyType({key.key_id: key for key in keys}), frozenset(revoked))

    def with_key(self, key: KnownKey) -> SimpleKeyring:
        """A copy that also holds ``key``."""
        return SimpleKeyring(MappingProxyType({**self.keys, key.key_id: key}), self.revoked)

    def with_revoked(self, key_id: str) -> SimpleKeyring:
        """A copy in which ``key_id`` is revoked."""
        return SimpleKeyring(self.keys, self.revoked | {key_id})

    def resolve(self, key_id: str) -> KnownKey:
        if key_id in self.revoked:
            raise SignatureError(Reason.REVOKED_KEY, f"key {key_id!r} is revoked")
        try:
            return self.keys[key_id]
        except KeyError:
            raise SignatureError(Reason.UNKNOWN_KEY, f"unknown key {key_id!r}") from None


@dataclass(frozen=True, slots=True)
class VerifiedEvent:
    """An event whose envelope decoded and whose signature verified: the output of
    :func:`open_envelope`, and what the sequencer appends."""

    event: Event
    envelope_bytes: bytes
    """The envelope exactly as received: what is stored, hashed and proven."""
    payload: bytes
    """The signed event bytes (Avro single-object encoding)."""
    key_id: str
    signer_id: str
    """Participant that owns the signing key (the hub's id for an authority key)."""

    @property
    def envelope_sha256(self) -> bytes:
        """SHA-256 of :attr:`envelope_bytes` (the ledger entry's content hash)."""
        return hashlib.sha256(self.envelope_bytes).digest()


def seal(event: Event, signer: Signer, registry: SchemaRegistry | None = None) -> bytes:
    """The envelope bytes of ``event`` signed by ``signer``.

    Encodes the event once (single-object), signs PAE(:data:`PAYLOAD_TYPE`, payload), and
    encodes the Envelope record, whose producer fields copy the event header.
    """
    payload = _encode_event(event, registry)
    envelope = Envelope(
        payload_type=PAYLOAD_TYPE,
        payload=payload,
        key_id=signer.key_id,
        signature=signer.sign(pae(PAYLOAD_TYPE, payload)),
        producer_id=event.header.producer_id,
        producer_seq=event.header.producer_seq,
    )
    return encode_envelope(envelope, registry)


def open_envelope(
    data: bytes | bytearray | memoryview, keys: KeyLookup, registry: SchemaRegistry | None = None
) -> VerifiedEvent:
    """Verify envelope bytes and return the event they carry.

    Checks, in this order: the envelope decodes; its payload type is :data:`PAYLOAD_TYPE`;
    the key id resolves; the key may sign for the envelope's producer; the signature verifies
    over PAE(payload type, payload bytes as received); the payload decodes; the signed header's
    producer id and sequence equal the envelope's copies.

    Raises:
        EncodingError: MALFORMED_ENVELOPE, UNKNOWN_SCHEMA, WRONG_PAYLOAD_TYPE or
            UNDECODABLE_PAYLOAD (MALFORMED_ENVELOPE also when the envelope's producer fields
            disagree with the signed header).
        SignatureError: UNKNOWN_KEY, REVOKED_KEY (from ``keys``), KEY_NOT_AUTHORISED or
            BAD_SIGNATURE.
    """
    received = bytes(data) if isinstance(data, bytearray | memoryview) else data
    envelope = decode_envelope(received, registry)
    if envelope.payload_type != PAYLOAD_TYPE:
        raise EncodingError(
            Reason.WRONG_PAYLOAD_TYPE,
            f"payload type {envelope.payload_type!r}, expected {PAYLOAD_TYPE!r}",
        )
    key = keys.resolve(envelope.key_id)
    if not key.may_sign_for(envelope.producer_id):
        raise SignatureError(
            Reason.KEY_NOT_AUTHORISED,
            f"key {key.key_id!r} of {key.participant_id!r} may not sign for producer "
            f"{envelope.producer_id!r}",
        )
    signed = pae(envelope.payload_type, envelope.payload)
    verify_signature(key.public_key, envelope.signature, signed)
    event = decode_event(envelope.payload, registry)
    header = event.header
    if (header.producer_id, header.producer_seq) != (envelope.producer_id, envelope.producer_seq):
        raise EncodingError(
            Reason.MALFORMED_ENVELOPE,
            f"envelope names producer {envelope.producer_id!r} #{envelope.producer_seq}, the "
            f"signed header {header.producer_id!r} #{header.producer_seq}",
        )
    return VerifiedEvent(
        event=event,
        envelope_bytes=received,
        payload=envelope.payload,
        key_id=key.key_id,
        signer_id=key.participant_id,
    )
