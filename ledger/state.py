"""The ledger's state as immutable records, the read port the rules use, and an in-memory state.

The rules (``ledger/rules.py``) read the state through :class:`StateView` and return
:class:`Changes`; they never mutate anything. Two holders apply those changes: the SQL store
(the sequencer's, over millions of rows) and :class:`MemoryState` (tests, and the audit, which
rebuilds the projections from the entries alone and compares them with the stored ones).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from schemas.events import Composition, CustodyModel, Role, Site


class KeyStatus(enum.StrEnum):
    ACTIVE = "ACTIVE"
    ROTATED = "ROTATED"
    """Replaced by a newer key: signatures made before the rotation stay valid."""
    REVOKED = "REVOKED"


@dataclass(frozen=True, slots=True)
class Participant:
    participant_id: str
    legal_name: str
    country: str
    roles: tuple[Role, ...]
    sites: tuple[Site, ...]
    enrolled_seq: int

    def has_site(self, site_id: str) -> bool:
        return any(site.site_id == site_id for site in self.sites)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    participant_id: str
    public_key: bytes
    status: KeyStatus
    added_seq: int


@dataclass(frozen=True, slots=True)
class Parent:
    """An edge of the provenance graph: ``mass_g`` grams of ``batch_id`` went into a batch."""

    batch_id: str
    mass_g: int


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch of material. ``remaining_g`` is what is left to ship or transform."""

    batch_id: str
    owner_id: str
    site_id: str
    material: str
    mass_g: int
    remaining_g: int
    composition: Composition
    custody_model: CustodyModel | None
    """None for a created batch; the model of the transformation or receipt that made it."""
    parents: tuple[Parent, ...]
    created_seq: int


@dataclass(frozen=True, slots=True)
class Shipment:
    shipment_id: str
    batch_id: str
    sender_id: str
    receiver_id: str
    receiver_site_id: str
    mass_g: int
    shipped_seq: int
    received_g: int | None = None
    received_seq: int | None = None


@dataclass(frozen=True, slots=True)
class CreditAccount:
    """Mass-balance credit of one site for one material group in one period (ISO 22095)."""

    site_id: str
    material_group: str
    period: str
    pre_consumer_g: int
    post_consumer_g: int


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    certificate_id: str
    batch_id: str
    holder_id: str
    certifier_id: str
    certificate_sha256: bytes
    issued_seq: int
    revoked_seq: int | None = None


@dataclass(frozen=True, slots=True)
class Changes:
    """What accepting one event changes: full new versions of the records it touches."""

    participants: tuple[Participant, ...] = ()
    keys: tuple[KeyRecord, ...] = ()
    batches: tuple[Batch, ...] = ()
    shipments: tuple[Shipment, ...] = ()
    credits: tuple[CreditAccount, ...] = ()
    certificates: tuple[CertificateRecord, ...] = ()


class StateView(Protocol):
    """Read access to the current state (the rules' only port)."""

    def participant(self, participant_id: str) -> Participant | None: ...
    def key(self, key_id: str) -> KeyRecord | None: ...
    def batch(self, batch_id: str) -> Batch | None: ...
    def shipment(self, shipment_id: str) -> Shipment | None: ...
    def credit(self, site_id: str, material_group: str, period: str) -> CreditAccount | None: ...
    def certificate(self, certificate_id: str) -> CertificateRecord | None: ...
    def site_owner(self, site_id: str) -> str | None: ...


@dataclass
class MemoryState:
    """A :class:`StateView` held in dictionaries; ``apply`` upserts :class:`Changes`."""

    participants: dict[str, Participant] = field(default_factory=dict)
    keys: dict[str, KeyRecord] = field(default_factory=dict)
    batches: dict[str, Batch] = field(default_factory=dict)
    shipments: dict[str, Shipment] = field(default_factory=dict)
    credits: dict[tuple[str, str, str], CreditAccount] = field(default_factory=dict)
    certificates: dict[str, CertificateRecord] = field(default_factory=dict)

    def participant(self, participant_id: str) -> Participant | None:
        return self.participants.get(participant_id)

    def key(self, key_id: str) -> KeyRecord | None:
        return self.keys.get(key_id)

    def batch(self, batch_id: str) -> Batch | None:
        return self.batches.get(batch_id)

    def shipment(self, shipment_id: str) -> Shipment | None:
        return self.shipments.get(shipment_id)

    def credit(self, site_id: str, material_group: str, period: str) -> CreditAccount | None:
        return self.credits.get((site_id, material_group, period))

    def certificate(self, certificate_id: str) -> CertificateRecord | None:
        return self.certificates.get(certificate_id)

    def site_owner(self, site_id: str) -> str | None:
        for participant in self.participants.values():
            if participant.has_site(site_id):
                return participant.participant_id
        return None

    def apply(self, changes: Changes) -> None:
        for p in changes.participants:
            self.participants[p.participant_id] = p
        for k in changes.keys:
            self.keys[k.key_id] = k
        for b in changes.batches:
            self.batches[b.batch_id] = b
        for s in changes.shipments:
            self.shipments[s.shipment_id] = s
        for c in changes.credits:
            self.credits[(c.site_id, c.material_group, c.period)] = c
        for cert in changes.certificates:
            self.certificates[cert.certificate_id] = cert

    def apply_all(self, changes: Iterable[Changes]) -> None:
        for change in changes:
            self.apply(change)


class Overlay:
    """A view of ``base`` with uncommitted changes on top: the sequencer's batch in flight."""

    def __init__(self, base: StateView) -> None:
        self._base = base
        self.pending = MemoryState()

    def participant(self, participant_id: str) -> Participant | None:
        return self.pending.participant(participant_id) or self._base.participant(participant_id)

    def key(self, key_id: str) -> KeyRecord | None:
        return self.pending.key(key_id) or self._base.key(key_id)

    def batch(self, batch_id: str) -> Batch | None:
        return self.pending.batch(batch_id) or self._base.batch(batch_id)

    def shipment(self, shipment_id: str) -> Shipment | None:
        return self.pending.shipment(shipment_id) or self._base.shipment(shipment_id)

    def credit(self, site_id: str, material_group: str, period: str) -> CreditAccount | None:
        return self.pending.credit(site_id, material_group, period) or self._base.credit(
            site_id, material_group, period
        )

    def certificate(self, certificate_id: str) -> CertificateRecord | None:
        return self.pending.certificate(certificate_id) or self._base.certificate(certificate_id)

    def site_owner(self, site_id: str) -> str | None:
        return self.pending.site_owner(site_id) or self._base.site_owner(site_id)
