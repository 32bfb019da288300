"""A small DSL that builds signed, reproducible ledger scenarios for tests.

A :class:`Hub` holds the authority key (producer ``"hub"``) and the :class:`RuleContext`; each
:class:`Actor` holds its own key, roles, sites and producer sequence counter. Every method
returns sealed envelope bytes, ready for :meth:`ledger.replay.MemoryLedger.append` (or Kafka)::

    hub = Hub()
    alice, bob = hub.actor("alice", Role.RECYCLER), hub.actor("bob", Role.CONVERTER)
    ledger = hub.ledger(alice, bob)                 # a MemoryLedger with both enrolled
    ledger.append(hub.create_batch(alice, "alice/b1", 1_000, post=300))
    ledger.append(hub.ship(alice, "alice/b1", 400, to=bob, shipment_id="alice/s1"))

Keys come from seeds derived from the participant id, event ids are uuid5 over a counter and
every event occurs at :attr:`Hub.now` (a fixed UTC time), so the same scenario always yields
the same bytes. Masses are integer grams.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ledger.envelope import KnownKey, seal
from ledger.errors import DataError, Reason
from ledger.replay import MemoryLedger
from ledger.rules import RuleContext
from ledger.signing import Ed25519Signer
from schemas.codec import decode_envelope, decode_event
from schemas.events import (
    HUB_PRODUCER_ID,
    BatchCreated,
    BatchReceived,
    BatchShipped,
    BatchTransformed,
    CertificateIssued,
    Composition,
    CustodyModel,
    Event,
    EventHeader,
    KeyRevoked,
    KeyRotated,
    ParticipantEnrolled,
    Process,
    Role,
    Site,
    TransformInput,
    TransformOutput,
)
from schemas.materials import default_materials

BASE_TIME = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)
_IDS = uuid.UUID("6f1d2c0e-4b7a-5c3e-9a61-0c5e2b8d7f10")


def seeded_signer(label: str) -> Ed25519Signer:
    """A deterministic Ed25519 key for ``label`` (tests only: the seed is public)."""
    return Ed25519Signer.from_seed(hashlib.sha256(b"cehub-test-key:" + label.encode()).digest())


def material_group(code: str) -> str | None:
    """The credit group of a shipped material code, None when unknown."""
    materials = default_materials()
    return materials.group_of(code) if code in materials else None


@dataclass
class Actor:
    """A participant as the tests drive it: its keys (newest last), sites and next sequence."""

    participant_id: str
    roles: tuple[Role, ...]
    sites: tuple[Site, ...]
    keys: list[Ed25519Signer]
    next_seq: int = 0

    @property
    def signer(self) -> Ed25519Signer:
        """The current key."""
        return self.keys[-1]

    @property
    def site(self) -> str:
        """The first site's id."""
        return self.sites[0].site_id


def out(batch_id: str, material: str, mass_g: int, pre: int = 0, post: int = 0) -> TransformOutput:
    """A transformation output (``pre`` / ``post``: mass-balance claims in grams)."""
    return TransformOutput(batch_id, material, mass_g, pre, post)


@dataclass
class Hub:
    """The hub authority plus deterministic event ids, times and sequence numbers."""

    now: datetime = BASE_TIME
    authority: Ed25519Signer = field(default_factory=lambda: seeded_signer(HUB_PRODUCER_ID))
    hub_seq: int = 0
    events: int = 0

    @property
    def context(self) -> RuleContext:
        key = KnownKey.of(self.authority, HUB_PRODUCER_ID, authority=True)
        return RuleContext(authority_keys=(key,), material_group=material_group)

    def actor(self, participant_id: str, *roles: Role, sites: int = 1) -> Actor:
        """A new participant (not yet enrolled) with ``sites`` sites in Thailand."""
        return Actor(
            participant_id,
            roles or (Role.RECYCLER,),
            tuple(
                Site(f"{participant_id}-site-{n}", f"{participant_id} plant {n}", "TH")
                for n in range(1, sites + 1)
            ),
            [seeded_signer(participant_id)],
        )

    def ledger(self, *actors: Actor) -> MemoryLedger:
        """An empty in-memory ledger with ``actors`` enrolled."""
        ledger = MemoryLedger(self.context)
        for actor in actors:
            ledger.append(self.enrol(actor))
        return ledger

    # --- sealing ------------------------------------------------------------------------------

    def _header(self, by: Actor | None) -> EventHeader:
        self.events += 1
        if by is None:
            producer, seq = HUB_PRODUCER_ID, self.hub_seq
            self.hub_seq += 1
        else:
            producer, seq = by.participant_id, by.next_seq
            by.next_seq += 1
        return EventHeader(str(uuid.uuid5(_IDS, str(self.events))), producer, seq, self.now)

    def emit(
        self,
        by: Actor | None,
        make: Callable[[EventHeader], Event],
        key: Ed25519Signer | None = None,
    ) -> bytes:
        """Seal ``make(header)`` as ``by`` (None: the hub), with ``key`` or the current key."""
        event = make(self._header(by))
        return seal(event, key or (self.authority if by is None else by.signer))

    # --- events -------------------------------------------------------------------------------

    def enrol(self, actor: Actor, *, by: Actor | None = None) -> bytes:
        """ParticipantEnrolled for ``actor``, signed by the hub (or ``by``, to test refusals)."""
        key = actor.signer
        return self.emit(
            by,
            lambda h: ParticipantEnrolled(
                h,
                actor.participant_id,
                f"{actor.participant_id} Co., Ltd.",
                "TH",
                actor.roles,
                actor.sites,
                key.public_key,
                key.key_id,
            ),
        )

    def rotate_key(self, actor: Actor, *, by_hub: bool = False) -> bytes:
        """KeyRotated to a fresh key, signed by the current key (or the hub); ``actor`` then
        signs with the new key (the old one stays in ``actor.keys``)."""
        old, new = actor.signer, seeded_signer(f"{actor.participant_id}#{len(actor.keys)}")
        envelope = self.emit(
            None if by_hub else actor,
            lambda h: KeyRotated(h, actor.participant_id, new.public_key, new.key_id, old.key_id),
            key=None if by_hub else old,
        )
        actor.keys.append(new)
        return envelope

    def revoke_key(self, actor: Actor, key_id: str | None = None, *, by_hub: bool = True) -> bytes:
        """KeyRevoked of ``key_id`` (default: the current key), signed by the hub or owner."""
        target = key_id or actor.signer.key_id
        return self.emit(
            None if by_hub else actor,
            lambda h: KeyRevoked(h, actor.participant_id, target, "compromised"),
        )

    def create_batch(
        self,
        by: Actor,
        batch_id: str,
        mass_g: int,
        *,
        material: str = "PET_BALE",
        pre: int = 0,
        post: int = 0,
        site: str | None = None,
        owner: str | None = None,
        composition: Composition | None = None,
        key: Ed25519Signer | None = None,
    ) -> bytes:
        """BatchCreated of ``mass_g`` grams, ``pre`` / ``post`` of them recycled."""
        comp = composition or Composition(mass_g - pre - post, pre, post)
        return self.emit(
            by,
            lambda h: BatchCreated(
                h, batch_id, owner or by.participant_id, site or by.site, material, mass_g, comp
            ),
            key,
        )

    def ship(self, by: Actor, batch_id: str, mass_g: int, *, to: Actor, shipment_id: str) -> bytes:
        """BatchShipped of ``mass_g`` grams of ``batch_id`` to ``to`` (its first site)."""
        receiver, site = to.participant_id, to.site
        return self.emit(
            by, lambda h: BatchShipped(h, shipment_id, batch_id, mass_g, receiver, site)
        )

    def receive(
        self, by: Actor, shipment_id: str, mass_g: int, *, site: str | None = None
    ) -> bytes:
        """BatchReceived: ``by`` acknowledges ``mass_g`` grams of ``shipment_id``."""
        return self.emit(by, lambda h: BatchReceived(h, shipment_id, mass_g, site or by.site))

    def transform(
        self,
        by: Actor,
        inputs: Mapping[str, int] | Sequence[tuple[str, int]],
        outputs: Sequence[TransformOutput],
        *,
        model: CustodyModel = CustodyModel.SEGREGATION,
        process: Process = Process.WASHING,
        site: str | None = None,
        transformation_id: str | None = None,
    ) -> bytes:
        """BatchTransformed consuming ``inputs`` (batch id -> grams) into ``outputs``."""
        pairs = inputs.items() if isinstance(inputs, Mapping) else inputs
        consumed = tuple(TransformInput(batch, grams) for batch, grams in pairs)
        tid = transformation_id or f"{by.participant_id}/t{self.events + 1}"
        return self.emit(
            by,
            lambda h: BatchTransformed(
                h, tid, site or by.site, process, model, consumed, tuple(outputs)
            ),
        )

    def certify(
        self,
        by: Actor,
        certificate_id: str,
        batch_id: str,
        *,
        holder: Actor,
        mass_g: int,
        pre_pct: str = "0",
        post_pct: str = "0",
        model: CustodyModel = CustodyModel.SEGREGATION,
    ) -> bytes:
        """CertificateIssued by ``by`` for ``holder``'s batch (period: the quarter of now)."""
        start = self.now.replace(month=(self.now.month - 1) // 3 * 3 + 1, day=1, hour=0, minute=0)
        claim = (holder.participant_id, mass_g, model, Decimal(pre_pct), Decimal(post_pct))
        digest = hashlib.sha256(certificate_id.encode()).digest()
        return self.emit(
            by,
            lambda h: CertificateIssued(
                h, certificate_id, batch_id, *claim, start, self.now, digest
            ),
        )


def event_of(envelope: bytes) -> Event:
    """The event inside envelope bytes, decoded without checking the signature."""
    return decode_event(decode_envelope(envelope).payload)


def snapshot(ledger: MemoryLedger) -> tuple[object, ...]:
    """Everything a rejected event must leave untouched: head, root, entries and state."""
    s = ledger.state
    tables = (s.participants, s.keys, s.batches, s.shipments, s.credits, s.certificates)
    return (ledger.head, ledger.root, tuple(ledger.entries), *(dict(t) for t in tables))


def assert_rejected(ledger: MemoryLedger, envelope: bytes, reason: Reason) -> DataError:
    """Append ``envelope``, expect a DataError with exactly ``reason``, and check that the
    ledger (head, Merkle root, entries, state) is unchanged."""
    before = snapshot(ledger)
    with pytest.raises(DataError) as info:
        ledger.append(envelope)
    assert info.value.reason is reason, info.value.diagnostics()
    assert snapshot(ledger) == before
    return info.value
