"""Invariants of the whole ledger under random but valid supply chains (DESIGN.md sections 5-6).

A hypothesis state machine drives three participants through batches being created, shipped,
received in part (transit loss), transformed with losses under the proportional and the
mass-balance models, plus attempts to overdraw a batch or a credit account, every envelope going
through ``MemoryLedger.append`` (the sequencer's own path). After every step it checks, from the
ledger's state and entries alone:

- mass is conserved: a batch's mass = what remains + what was shipped out + what was consumed,
  a receipt never exceeds its shipment, a transformation's outputs never its inputs;
- compositions sum to the batch mass and recycled content is never overstated: a receipt or a
  proportional output never holds a larger recycled share than its sources, and every
  mass-balance credit account equals the recycled grams booked in minus those claimed, >= 0;

and at the end that replaying the accepted envelopes into a fresh ledger gives the same entry
hashes, Merkle root and state, and that every accepted envelope appended again is a Duplicate.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ledger.errors import Reason
from ledger.replay import MemoryLedger
from ledger.rules import period_of
from ledger.sequencer import Accepted, Duplicate
from ledger.state import Batch, Shipment
from schemas.events import Composition, CustodyModel, Process, Role, TransformOutput
from tests.builders import Actor, Hub, assert_rejected, material_group, out
from tests.strategies import compositions
from verification.composition import combine, portion

MATERIALS = ("PET_BALE", "PET_FLAKE", "PET_PELLET", "HDPE_FLAKE")
MAX_BATCH_G = 50_000
Key = tuple[str, str, str]
"""A credit account: (site, material group, period)."""


@dataclass(frozen=True)
class Transformation:
    """A BatchTransformed entry as the state shows it: its outputs (which share parents)."""

    seq: int
    outputs: tuple[Batch, ...]

    @property
    def model(self) -> CustodyModel | None:
        return self.outputs[0].custody_model


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.hub = Hub()
        self.actors = {
            a.participant_id: a
            for a in (
                self.hub.actor("collector", Role.COLLECTOR),
                self.hub.actor("recycler", Role.RECYCLER),
                self.hub.actor("converter", Role.CONVERTER),
            )
        }
        self.ledger = MemoryLedger(self.hub.context)
        self.accepted: list[bytes] = []
        self.period_at: dict[int, str] = {}
        self.ids = 0
        for actor in self.actors.values():
            self.append(self.hub.enrol(actor))

    # --- helpers ------------------------------------------------------------------------------

    def append(self, envelope: bytes) -> None:
        outcome = self.ledger.append(envelope)
        assert isinstance(outcome, Accepted), outcome
        self.accepted.append(envelope)
        self.period_at[outcome.entry.seq] = period_of(self.hub.now)

    def new_id(self, actor: Actor, kind: str) -> str:
        self.ids += 1
        return f"{actor.participant_id}/{kind}{self.ids}"

    def live(self) -> list[Batch]:
        batches = self.ledger.state.batches.values()
        return sorted((b for b in batches if b.remaining_g > 0), key=lambda b: b.batch_id)

    def in_transit(self) -> list[Shipment]:
        shipments = self.ledger.state.shipments.values()
        return sorted((s for s in shipments if s.received_seq is None), key=lambda s: s.shipment_id)

    def credit(self, site: str, group: str) -> tuple[int, int]:
        account = self.ledger.credit(site, group, period_of(self.hub.now))
        return (0, 0) if account is None else (account.pre_consumer_g, account.post_consumer_g)

    def draw_live(self, data: st.DataObject) -> Batch:
        return data.draw(st.sampled_from(self.live()))

    # --- valid operations ---------------------------------------------------------------------

    @rule(data=st.data())
    def create(self, data: st.DataObject) -> None:
        actor = data.draw(st.sampled_from(sorted(self.actors.values(), key=lambda a: a.site)))
        comp = data.draw(compositions(data.draw(st.integers(1, MAX_BATCH_G))))
        material = data.draw(st.sampled_from(MATERIALS))
        batch_id = self.new_id(actor, "b")
        self.append(
            self.hub.create_batch(
                actor, batch_id, comp.total_g, material=material, composition=comp
            )
        )

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def ship(self, data: st.DataObject) -> None:
        batch = self.draw_live(data)
        sender = self.actors[batch.owner_id]
        receiver = data.draw(st.sampled_from(sorted(self.actors)))
        mass = data.draw(st.integers(1, batch.remaining_g))
        shipment_id = self.new_id(sender, "s")
        self.append(
            self.hub.ship(
                sender, batch.batch_id, mass, to=self.actors[receiver], shipment_id=shipment_id
            )
        )

    @precondition(lambda self: self.in_transit())
    @rule(data=st.data())
    def receive(self, data: st.DataObject) -> None:
        shipment = data.draw(st.sampled_from(self.in_transit()))
        mass = data.draw(st.integers(1, shipment.mass_g))  # below: lost in transit
        receiver = self.actors[shipment.receiver_id]
        self.append(self.hub.receive(receiver, shipment.shipment_id, mass))

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def transform(self, data: st.DataObject) -> None:
        first = self.draw_live(data)
        owner = self.actors[first.owner_id]
        here = [
            b
            for b in self.live()
            if (b.owner_id, b.site_id) == (owner.participant_id, first.site_id)
        ]
        chosen = data.draw(st.lists(st.sampled_from(here), min_size=1, max_size=3, unique=True))
        inputs = [(b.batch_id, data.draw(st.integers(1, b.remaining_g))) for b in chosen]
        input_g = sum(mass for _, mass in inputs)
        model = data.draw(st.sampled_from(CustodyModel))
        kept_g = data.draw(st.integers(1, input_g))  # the rest is loss
        masses = self.split(data, kept_g)
        materials = [data.draw(st.sampled_from(MATERIALS)) for _ in masses]
        if model is CustodyModel.MASS_BALANCE:
            outputs = self.claims(data, first.site_id, chosen, inputs, masses, materials)
        else:
            outputs = [
                out(self.new_id(owner, "o"), m, g) for m, g in zip(materials, masses, strict=True)
            ]
        envelope = self.hub.transform(
            owner, inputs, outputs, model=model, process=Process.OTHER, site=first.site_id
        )
        self.append(envelope)

    def split(self, data: st.DataObject, total: int) -> list[int]:
        """``total`` grams in 1 to 3 positive parts."""
        count = data.draw(st.integers(1, min(3, total)))
        if count == 1:
            return [total]
        cuts = data.draw(st.sets(st.integers(1, total - 1), min_size=count - 1, max_size=count - 1))
        return [b - a for a, b in itertools.pairwise([0, *sorted(cuts), total])]

    def claims(
        self,
        data: st.DataObject,
        site: str,
        chosen: list[Batch],
        inputs: list[tuple[str, int]],
        masses: list[int],
        materials: list[str],
    ) -> list[TransformOutput]:
        """Mass-balance outputs claiming at most the credit the site will have once the
        inputs are booked in (ISO 22095 section 8)."""
        available: dict[str, list[int]] = {}

        def account(material: str) -> list[int]:
            group = material_group(material) or ""
            return available.setdefault(group, list(self.credit(site, group)))

        for batch, (_, mass) in zip(chosen, inputs, strict=True):
            part = portion(batch.composition, mass, batch.mass_g)
            acc = account(batch.material)
            acc[0] += part.pre_consumer_g
            acc[1] += part.post_consumer_g
        outputs = []
        owner = self.actors[chosen[0].owner_id]
        for material, mass in zip(materials, masses, strict=True):
            acc = account(material)
            pre = data.draw(st.integers(0, min(mass, acc[0])))
            post = data.draw(st.integers(0, min(mass - pre, acc[1])))
            acc[0] -= pre
            acc[1] -= post
            outputs.append(out(self.new_id(owner, "o"), material, mass, pre, post))
        return outputs

    @rule()
    def next_quarter(self) -> None:
        """Move the clock three months on: mass-balance credit does not carry over."""
        month = self.hub.now.month + 3
        year = self.hub.now.year + (month - 1) // 12
        self.hub.now = self.hub.now.replace(year=year, month=(month - 1) % 12 + 1)

    # --- refused operations -------------------------------------------------------------------

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def ship_more_than_remains(self, data: st.DataObject) -> None:
        batch = self.draw_live(data)
        sender = self.actors[batch.owner_id]
        excess = data.draw(st.integers(1, MAX_BATCH_G))
        envelope = self.hub.ship(
            sender,
            batch.batch_id,
            batch.remaining_g + excess,
            to=sender,
            shipment_id=self.new_id(sender, "s"),
        )
        assert_rejected(self.ledger, envelope, Reason.DOUBLE_SPEND)

    @precondition(lambda self: self.live())
    @rule(data=st.data())
    def claim_more_than_the_credit(self, data: st.DataObject) -> None:
        batch = self.draw_live(data)
        owner = self.actors[batch.owner_id]
        part = portion(batch.composition, batch.remaining_g, batch.mass_g)
        group = material_group(batch.material) or ""
        post = self.credit(batch.site_id, group)[1] + part.post_consumer_g + 1
        if post > batch.remaining_g:
            return  # the claim could not fit in the output: a different refusal
        output = out(self.new_id(owner, "o"), batch.material, batch.remaining_g, 0, post)
        envelope = self.hub.transform(
            owner,
            {batch.batch_id: batch.remaining_g},
            [output],
            model=CustodyModel.MASS_BALANCE,
            site=batch.site_id,
        )
        assert_rejected(self.ledger, envelope, Reason.CREDIT_EXCEEDED)

    # --- invariants ---------------------------------------------------------------------------

    def transformations(self) -> list[Transformation]:
        seqs = {e.seq for e in self.ledger.entries if e.event_type == "BatchTransformed"}
        outputs: dict[int, list[Batch]] = defaultdict(list)
        for batch in self.ledger.state.batches.values():
            if batch.created_seq in seqs:
                outputs[batch.created_seq].append(batch)
        assert set(outputs) == seqs
        return [Transformation(seq, tuple(outputs[seq])) for seq in sorted(seqs)]

    @invariant()
    def compositions_sum_to_the_mass(self) -> None:
        for batch in self.ledger.state.batches.values():
            comp = batch.composition
            assert comp.total_g == batch.mass_g
            assert min(comp.virgin_g, comp.pre_consumer_g, comp.post_consumer_g) >= 0
            assert 0 <= batch.remaining_g <= batch.mass_g

    @invariant()
    def mass_is_conserved(self) -> None:
        state = self.ledger.state
        drawn: dict[str, int] = defaultdict(int)
        for shipment in state.shipments.values():
            drawn[shipment.batch_id] += shipment.mass_g
            if shipment.received_g is not None:
                assert 0 < shipment.received_g <= shipment.mass_g
                received = state.batches[shipment.shipment_id]
                assert received.mass_g == shipment.received_g
                assert received.parents[0].batch_id == shipment.batch_id
        for transformation in self.transformations():
            parents = transformation.outputs[0].parents
            assert all(o.parents == parents for o in transformation.outputs)
            assert sum(o.mass_g for o in transformation.outputs) <= sum(p.mass_g for p in parents)
            for parent in parents:
                drawn[parent.batch_id] += parent.mass_g
        for batch in state.batches.values():
            assert batch.mass_g == batch.remaining_g + drawn[batch.batch_id], batch.batch_id

    @invariant()
    def recycled_content_is_never_overstated(self) -> None:
        batches = self.ledger.state.batches
        for shipment in self.ledger.state.shipments.values():
            if shipment.received_g is not None:
                source, received = batches[shipment.batch_id], batches[shipment.shipment_id]
                assert share(received.composition) <= share(source.composition)
        for transformation in self.transformations():
            if transformation.model is CustodyModel.MASS_BALANCE:
                continue  # checked against the credit accounts
            taken = combine(
                portion(batches[p.batch_id].composition, p.mass_g, batches[p.batch_id].mass_g)
                for p in transformation.outputs[0].parents
            )
            made = combine(o.composition for o in transformation.outputs)
            assert made.pre_consumer_g <= taken.pre_consumer_g
            assert made.post_consumer_g <= taken.post_consumer_g

    @invariant()
    def credit_accounts_are_bookings_minus_claims(self) -> None:
        batches = self.ledger.state.batches
        expected: dict[Key, list[int]] = defaultdict(lambda: [0, 0])
        for transformation in self.transformations():
            if transformation.model is not CustodyModel.MASS_BALANCE:
                continue
            period = self.period_at[transformation.seq]
            for parent in transformation.outputs[0].parents:
                source = batches[parent.batch_id]
                part = portion(source.composition, parent.mass_g, source.mass_g)
                acc = expected[(source.site_id, material_group(source.material) or "", period)]
                acc[0] += part.pre_consumer_g
                acc[1] += part.post_consumer_g
            for output in transformation.outputs:
                acc = expected[(output.site_id, material_group(output.material) or "", period)]
                acc[0] -= output.composition.pre_consumer_g
                acc[1] -= output.composition.post_consumer_g
        credits = self.ledger.state.credits
        for key in credits.keys() | expected.keys():
            account = credits.get(key)
            got = [0, 0] if account is None else [account.pre_consumer_g, account.post_consumer_g]
            assert got == expected[key], key
            assert min(got) >= 0, key

    def teardown(self) -> None:
        fresh = MemoryLedger(self.hub.context)
        for envelope in self.accepted:
            assert isinstance(fresh.append(envelope), Accepted)
        assert [e.entry_hash for e in fresh.entries] == [e.entry_hash for e in self.ledger.entries]
        assert fresh.root == self.ledger.root
        assert fresh.state == self.ledger.state
        for entry, envelope in zip(self.ledger.entries, self.accepted, strict=True):
            assert self.ledger.append(envelope) == Duplicate(entry.event_id, entry.seq)
        assert len(self.ledger.entries) == len(self.accepted)


def share(comp: Composition) -> tuple[Fraction, Fraction]:
    """The pre- and post-consumer fractions of a composition."""
    return Fraction(comp.pre_consumer_g, comp.total_g), Fraction(comp.post_consumer_g, comp.total_g)


LedgerMachine.TestCase.settings = settings(
    max_examples=75,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerInvariants = LedgerMachine.TestCase
