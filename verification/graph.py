"""The provenance graph: batches, transfers and transformations rebuilt from decoded events.

DESIGN.md section 6. The graph is built from the events alone (never from the store's
projections), so that a certificate's verifier, holding only the signed events, builds exactly
the graph the certifier built. Events are applied in ledger order (``seq``) and every batch's
composition is derived the way the sequencer derives it (``ledger/rules.py``, through
``verification/composition.py``):

- ``BatchCreated``: the composition declared by the owner (ISO 14021 section 7.8.1.1);
- ``BatchReceived``: the shipped share of the source batch, then the received share of the
  shipment (transit loss proportional), as a new batch whose id is the shipment id;
- ``BatchTransformed`` under SEGREGATION / CONTROLLED_BLENDING: the mass-weighted blend of the
  inputs consumed, each output taking its share (losses proportional, ISO 22095 sections 6-7);
- ``BatchTransformed`` under MASS_BALANCE: the recycled grams the owner claimed per output
  (ISO 22095 section 8; the credit behind the claim is checked by ``verification/claims.py``).

Besides deriving, building re-checks what a subset of the ledger allows: every parent is in
the graph (the evidence is complete upstream), signers own what they ship and transform,
nothing is consumed beyond its mass, outputs weigh no more than inputs. A failure is a
:class:`ProvenanceError` naming the event's ``seq``.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from ledger.errors import CertificateError, Reason
from ledger.state import Parent, Participant
from schemas.events import (
    BatchCreated,
    BatchReceived,
    BatchShipped,
    BatchTransformed,
    Composition,
    CustodyModel,
    Event,
    ParticipantEnrolled,
    Process,
    TransformOutput,
)
from verification.composition import claimed, combine, portion

CREATED = "created"
RECEIVED = "received"
TRANSFORMED = "transformed"


class ProvenanceError(CertificateError):
    """The events do not form a complete, consistent provenance graph."""

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        super().__init__(Reason.CERTIFICATE_INVALID, message)
        self.seq = seq


@dataclass(frozen=True, slots=True)
class BatchNode:
    """A batch as the events describe it, with its derived composition."""

    batch_id: str
    owner_id: str
    site_id: str
    material: str
    mass_g: int
    composition: Composition
    kind: str
    """:data:`CREATED`, :data:`RECEIVED` or :data:`TRANSFORMED`."""
    seq: int
    """The entry that made the batch."""
    occurred_at: datetime
    parents: tuple[Parent, ...]
    custody_model: CustodyModel | None
    """None for a created batch; a received batch keeps its source's model."""
    step_id: str | None
    """The transformation id (transformed) or shipment id (received)."""


@dataclass(frozen=True, slots=True)
class ShipmentNode:
    shipment_id: str
    batch_id: str
    sender_id: str
    receiver_id: str
    receiver_site_id: str
    mass_g: int
    shipped_seq: int
    shipped_at: datetime
    received_g: int | None = None
    received_seq: int | None = None
    received_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TransformationNode:
    transformation_id: str
    owner_id: str
    site_id: str
    process: Process
    custody_model: CustodyModel
    inputs: tuple[Parent, ...]
    outputs: tuple[TransformOutput, ...]
    seq: int
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class ProvenanceGraph:
    """Participants, batches and shipments by id, transformations by seq (the ledger does not
    require transformation ids to be unique; entries are)."""

    participants: Mapping[str, Participant]
    batches: Mapping[str, BatchNode]
    shipments: Mapping[str, ShipmentNode]
    transformations: Mapping[int, TransformationNode]
    children: Mapping[str, tuple[str, ...]]
    """Batch id -> the batches made (partly) from it, in ledger order."""

    @classmethod
    def from_events(cls, events: Iterable[tuple[int, Event]]) -> ProvenanceGraph:
        """The graph of ``(seq, event)`` pairs, applied in seq order.

        Raises:
            ProvenanceError: a missing parent, or an event the ledger could not have accepted.
        """
        builder = _Builder()
        for seq, event in sorted(events, key=lambda pair: pair[0]):
            builder.add(seq, event)
        return builder.graph()

    def batch(self, batch_id: str) -> BatchNode:
        """The batch ``batch_id``.

        Raises:
            ProvenanceError: it is not in the graph.
        """
        node = self.batches.get(batch_id)
        if node is None:
            raise ProvenanceError(f"batch {batch_id!r} is not in the evidence")
        return node

    def shipment_of(self, node: BatchNode) -> ShipmentNode | None:
        """The shipment a received batch came by, else None."""
        return self.shipments.get(node.step_id or "") if node.kind == RECEIVED else None

    def transformation_of(self, node: BatchNode) -> TransformationNode | None:
        """The transformation that made a transformed batch, else None."""
        return self.transformations.get(node.seq) if node.kind == TRANSFORMED else None

    def upstream(self, batch_id: str) -> tuple[str, ...]:
        """``batch_id`` and every batch it was made from, nearest first (each once)."""
        return tuple(self._walk(batch_id, lambda node: (p.batch_id for p in node.parents)))

    def downstream(self, batch_id: str) -> tuple[str, ...]:
        """``batch_id`` and every batch made (partly) from it, nearest first (each once)."""
        return tuple(self._walk(batch_id, lambda node: self.children.get(node.batch_id, ())))

    def _walk(self, start: str, nexts: Callable[[BatchNode], Iterable[str]]) -> Iterator[str]:
        seen, queue = {start}, deque([start])
        while queue:
            current = queue.popleft()
            yield current
            for following in nexts(self.batch(current)):
                if following not in seen:
                    seen.add(following)
                    queue.append(following)

    def participant_name(self, participant_id: str) -> str:
        found = self.participants.get(participant_id)
        return found.legal_name if found else participant_id

    def site_of(self, participant_id: str, site_id: str) -> tuple[str, str]:
        """(site name, country) of a participant's site; the ids when not enrolled here."""
        found = self.participants.get(participant_id)
        for site in found.sites if found else ():
            if site.site_id == site_id:
                return site.name, site.country
        return site_id, found.country if found else "??"


@dataclass
class _Builder:
    participants: dict[str, Participant] = field(default_factory=dict)
    batches: dict[str, BatchNode] = field(default_factory=dict)
    shipments: dict[str, ShipmentNode] = field(default_factory=dict)
    transformations: dict[int, TransformationNode] = field(default_factory=dict)
    consumed: dict[str, int] = field(default_factory=dict)

    def graph(self) -> ProvenanceGraph:
        children: dict[str, list[str]] = {}
        for node in sorted(self.batches.values(), key=lambda b: b.seq):
            for parent in node.parents:
                listed = children.setdefault(parent.batch_id, [])
                if node.batch_id not in listed:
                    listed.append(node.batch_id)
        return ProvenanceGraph(
            MappingProxyType(dict(self.participants)),
            MappingProxyType(dict(self.batches)),
            MappingProxyType(dict(self.shipments)),
            MappingProxyType(dict(self.transformations)),
            MappingProxyType({k: tuple(v) for k, v in children.items()}),
        )

    def add(self, seq: int, event: Event) -> None:
        match event:
            case ParticipantEnrolled():
                self.participants[event.participant_id] = Participant(
                    event.participant_id,
                    event.legal_name,
                    event.country,
                    event.roles,
                    event.sites,
                    seq,
                )
            case BatchCreated():
                self._created(seq, event)
            case BatchShipped():
                self._shipped(seq, event)
            case BatchReceived():
                self._received(seq, event)
            case BatchTransformed():
                self._transformed(seq, event)
            case _:  # key events and certificates carry no material
                pass

    def _new_batch(self, node: BatchNode) -> None:
        if node.batch_id in self.batches or (
            node.kind != RECEIVED and node.batch_id in self.shipments
        ):
            raise ProvenanceError(f"batch {node.batch_id!r} is made twice", seq=node.seq)
        self.batches[node.batch_id] = node

    def _draw(self, seq: int, batch_id: str, mass_g: int, by: str) -> BatchNode:
        """The parent ``batch_id``, after checking ``by`` owns it and has ``mass_g`` left."""
        node = self.batches.get(batch_id)
        if node is None:
            raise ProvenanceError(
                f"batch {batch_id!r} is used here but the event that made it is missing", seq=seq
            )
        if node.owner_id != by:
            raise ProvenanceError(f"{by!r} uses {batch_id!r} of {node.owner_id!r}", seq=seq)
        used = self.consumed.get(batch_id, 0) + mass_g
        if mass_g <= 0 or used > node.mass_g:
            raise ProvenanceError(
                f"batch {batch_id!r} ({node.mass_g} g) would be consumed {used} g", seq=seq
            )
        self.consumed[batch_id] = used
        return node

    def _created(self, seq: int, event: BatchCreated) -> None:
        comp = event.composition
        if (
            event.owner_id != event.header.producer_id
            or event.mass_g <= 0
            or min(comp.virgin_g, comp.pre_consumer_g, comp.post_consumer_g) < 0
            or comp.total_g != event.mass_g
        ):
            raise ProvenanceError(f"batch {event.batch_id!r} is not a valid creation", seq=seq)
        self._new_batch(
            BatchNode(
                event.batch_id,
                event.owner_id,
                event.site_id,
                event.material,
                event.mass_g,
                comp,
                CREATED,
                seq,
                event.header.occurred_at,
                (),
                None,
                None,
            )
        )

    def _shipped(self, seq: int, event: BatchShipped) -> None:
        sender = event.header.producer_id
        self._draw(seq, event.batch_id, event.mass_g, sender)
        if event.shipment_id in self.shipments or event.shipment_id in self.batches:
            raise ProvenanceError(f"shipment {event.shipment_id!r} is sent twice", seq=seq)
        self.shipments[event.shipment_id] = ShipmentNode(
            event.shipment_id,
            event.batch_id,
            sender,
            event.receiver_id,
            event.receiver_site_id,
            event.mass_g,
            seq,
            event.header.occurred_at,
        )

    def _received(self, seq: int, event: BatchReceived) -> None:
        shipment = self.shipments.get(event.shipment_id)
        if shipment is None:
            raise ProvenanceError(
                f"shipment {event.shipment_id!r} is received but its BatchShipped is missing",
                seq=seq,
            )
        if (
            event.header.producer_id != shipment.receiver_id
            or shipment.received_seq is not None
            or not 0 < event.mass_g <= shipment.mass_g
        ):
            raise ProvenanceError(f"shipment {event.shipment_id!r} is not receivable", seq=seq)
        source = self.batches[shipment.batch_id]
        shipped = portion(source.composition, shipment.mass_g, source.mass_g)
        self._new_batch(
            BatchNode(
                shipment.shipment_id,
                shipment.receiver_id,
                event.site_id,
                source.material,
                event.mass_g,
                portion(shipped, event.mass_g, shipment.mass_g),
                RECEIVED,
                seq,
                event.header.occurred_at,
                (Parent(source.batch_id, shipment.mass_g),),
                source.custody_model,
                shipment.shipment_id,
            )
        )
        self.shipments[shipment.shipment_id] = dataclasses.replace(
            shipment,
            received_g=event.mass_g,
            received_seq=seq,
            received_at=event.header.occurred_at,
        )

    def _transformed(self, seq: int, event: BatchTransformed) -> None:
        owner = event.header.producer_id
        consumed: list[tuple[BatchNode, int]] = []
        for item in event.inputs:
            node = self._draw(seq, item.batch_id, item.mass_g, owner)
            if node.site_id != event.site_id:
                raise ProvenanceError(f"batch {item.batch_id!r} is at another site", seq=seq)
            consumed.append((node, item.mass_g))
        input_g = sum(mass for _node, mass in consumed)
        if not consumed or not event.outputs or sum(o.mass_g for o in event.outputs) > input_g:
            raise ProvenanceError(
                f"transformation {event.transformation_id!r} does not conserve mass", seq=seq
            )
        parents = tuple(Parent(node.batch_id, mass) for node, mass in consumed)
        blend = combine(portion(node.composition, mass, node.mass_g) for node, mass in consumed)
        for out in event.outputs:
            self._new_batch(
                BatchNode(
                    out.batch_id,
                    owner,
                    event.site_id,
                    out.material,
                    out.mass_g,
                    _output_composition(seq, event.custody_model, out, blend),
                    TRANSFORMED,
                    seq,
                    event.header.occurred_at,
                    parents,
                    event.custody_model,
                    event.transformation_id,
                )
            )
        self.transformations[seq] = TransformationNode(
            event.transformation_id,
            owner,
            event.site_id,
            event.process,
            event.custody_model,
            parents,
            event.outputs,
            seq,
            event.header.occurred_at,
        )


def _output_composition(
    seq: int, model: CustodyModel, out: TransformOutput, blend: Composition
) -> Composition:
    """An output's composition: its share of the blend, or under mass balance its claim."""
    if out.mass_g <= 0:
        raise ProvenanceError(f"output {out.batch_id!r} has no mass", seq=seq)
    pre, post = out.claimed_pre_consumer_g, out.claimed_post_consumer_g
    if model is CustodyModel.MASS_BALANCE:
        if min(pre, post) < 0 or pre + post > out.mass_g:
            raise ProvenanceError(f"output {out.batch_id!r} claims beyond its mass", seq=seq)
        return claimed(out.mass_g, pre, post)
    if pre or post:
        raise ProvenanceError(f"output {out.batch_id!r} claims under {model.value}", seq=seq)
    return portion(blend, out.mass_g, blend.total_g)
