"""Recycled-content claims (verification/claims.py, DESIGN.md section 6), computed by hand.

Every scenario runs through :class:`~ledger.replay.MemoryLedger` (the sequencer's own rules),
then the claim is computed from the ledger's *events* alone (verification/graph.py). The
expected grams and percentages below are worked out by hand in the comments; percentages are
rounded DOWN to 0.01. :func:`tests.certificates.graph_of` also checks that the graph derives,
for every batch, exactly the composition the sequencer stored.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import Reason
from ledger.replay import MemoryLedger
from schemas.events import BatchShipped, Composition, CustodyModel, Process, Role
from tests.builders import Actor, Hub, assert_rejected, event_of, material_group, out
from tests.certificates import claim_of, graph_of
from verification.claims import (
    AccountKey,
    MassBalanceError,
    compute_claim,
    least_traceable,
    percent_down,
    replay_credit,
)
from verification.graph import ProvenanceGraph

SEG = CustodyModel.SEGREGATION
BLEND = CustodyModel.CONTROLLED_BLENDING
MB = CustodyModel.MASS_BALANCE
DAY = timedelta(days=1)


# --- collector -> recycler -> converter, losses at every step ----------------------------------


def test_chain_with_losses_keeps_the_recycled_share_and_rounds_down() -> None:
    hub = Hub(now=datetime(2026, 5, 4, 2, 0, tzinfo=UTC))
    start = hub.now
    collector = hub.actor("collector", Role.COLLECTOR)
    recycler = hub.actor("recycler", Role.RECYCLER)
    converter = hub.actor("converter", Role.CONVERTER)
    ledger = hub.ledger(collector, recycler, converter)
    # A bale of 12 345 678 g, 9 876 543 g post-consumer (80.0000049 %), the rest virgin.
    ledger.append(hub.create_batch(collector, "collector/bale-1", 12_345_678, post=9_876_543))
    hub.now += DAY
    ledger.append(
        hub.ship(collector, "collector/bale-1", 12_000_000, to=recycler, shipment_id="c/ship-1")
    )
    # Shipped share: 9 876 543 * 12 000 000 / 12 345 678 = 9 600 000.58 -> 9 600 000 g
    # (the 0.58 g is dropped: a derived composition never gains recycled content).
    # Received 11 950 000 g (50 kg transit loss): 9 600 000 * 11 950 000 / 12 000 000
    # = 9 560 000 g post-consumer.
    ledger.append(hub.receive(recycler, "c/ship-1", 11_950_000))
    hub.now += DAY
    ledger.append(
        hub.transform(
            recycler,
            {"c/ship-1": 11_950_000},
            [out("recycler/flake-1", "PET_FLAKE", 10_000_000)],
            transformation_id="recycler/wash-1",
        )
    )
    # Washing loses 1 950 000 g in proportion: 9 560 000 * 10 000 000 / 11 950 000 = 8 000 000 g.
    hub.now += DAY
    ledger.append(
        hub.ship(recycler, "recycler/flake-1", 10_000_000, to=converter, shipment_id="r/ship-1")
    )
    ledger.append(hub.receive(converter, "r/ship-1", 9_990_000))
    # 8 000 000 * 9 990 000 / 10 000 000 = 7 992 000 g.
    hub.now += DAY
    ledger.append(
        hub.transform(
            converter,
            {"r/ship-1": 9_990_000},
            [out("converter/trays-1", "PET", 9_500_000)],
            process=Process.MOULDING,
            transformation_id="converter/mould-1",
        )
    )
    # 7 992 000 * 9 500 000 / 9 990 000 = 7 600 000 g of 9 500 000 g = 80.00 %.
    claim = claim_of(ledger, "converter/trays-1")
    assert (claim.mass_g, claim.pre_consumer_g, claim.post_consumer_g) == (9_500_000, 0, 7_600_000)
    assert claim.post_consumer_pct == Decimal("80.00")
    assert claim.pre_consumer_pct == Decimal("0.00")
    assert claim.holder_id == "converter"
    assert claim.custody_model is SEG
    assert [s.transformation_id for s in claim.chain] == ["recycler/wash-1", "converter/mould-1"]
    assert claim.period_start == start
    assert claim.period_end == hub.now + timedelta(microseconds=1)
    assert claim.mass_balance == ()


# --- a blend of virgin and two recycled inputs of different origins ----------------------------


def _blend() -> tuple[Hub, MemoryLedger, dict[str, Actor]]:
    hub = Hub()
    a = hub.actor("recycler-a", Role.RECYCLER)
    b = hub.actor("factory-b", Role.MANUFACTURER)
    converter = hub.actor("converter", Role.CONVERTER)
    ledger = hub.ledger(a, b, converter)
    # Origin A: post-consumer bottles, washed under segregation (3 200 000 g -> 3 000 000 g).
    ledger.append(hub.create_batch(a, "a/bale-1", 3_200_000, post=3_200_000))
    ledger.append(
        hub.transform(a, {"a/bale-1": 3_200_000}, [out("a/flake-1", "PET_FLAKE", 3_000_000)])
    )
    ledger.append(hub.ship(a, "a/flake-1", 3_000_000, to=converter, shipment_id="a/ship-1"))
    # Origin B: a preform factory's production scrap, pre-consumer (ISO 14021 7.8.1.1 a 2).
    ledger.append(hub.create_batch(b, "b/scrap-1", 1_000_000, material="PET_FLAKE", pre=1_000_000))
    ledger.append(hub.ship(b, "b/scrap-1", 1_000_000, to=converter, shipment_id="b/ship-1"))
    ledger.append(hub.receive(converter, "a/ship-1", 3_000_000))
    ledger.append(hub.receive(converter, "b/ship-1", 1_000_000))
    # Virgin resin, and the converter's own rework: reclaimed within its process, so NOT
    # recycled content (ISO 14021 7.8.1.1): declared virgin.
    ledger.append(hub.create_batch(converter, "c/virgin-1", 2_050_000, material="PET"))
    ledger.append(hub.create_batch(converter, "c/rework-1", 150_000, material="PET"))
    return hub, ledger, {"a": a, "b": b, "converter": converter}


def test_blend_keeps_pre_and_post_consumer_apart_and_rounds_each_down() -> None:
    hub, ledger, actors = _blend()
    inputs = {"a/ship-1": 3_000_000, "b/ship-1": 1_000_000, "c/virgin-1": 2_050_000}
    inputs["c/rework-1"] = 150_000
    ledger.append(
        hub.transform(
            actors["converter"],
            inputs,
            [out("c/pellet-1", "PET_PELLET", 6_000_000)],
            model=BLEND,
            process=Process.COMPOUNDING,
            transformation_id="c/compound-1",
        )
    )
    # Inputs 6 200 000 g: post 3 000 000, pre 1 000 000, virgin 2 050 000 + 150 000 rework.
    # Output 6 000 000 g (200 000 g lost, in proportion):
    #   post 3 000 000 * 6 000 000 / 6 200 000 = 2 903 225.8 -> 2 903 225 g
    #        2 903 225 / 6 000 000 = 48.3870833 % -> 48.38 (48.39 if rounded to nearest)
    #   pre  1 000 000 * 6 000 000 / 6 200 000 =   967 741.9 ->   967 741 g
    #          967 741 / 6 000 000 = 16.1290166 % -> 16.12 (16.13 if rounded to nearest)
    claim = claim_of(ledger, "c/pellet-1")
    assert (claim.pre_consumer_g, claim.post_consumer_g) == (967_741, 2_903_225)
    assert (claim.pre_consumer_pct, claim.post_consumer_pct) == (Decimal("16.12"), Decimal("48.38"))
    # Segregated washing at A, controlled blending at the converter: the least traceable wins.
    assert [s.custody_model for s in claim.chain] == [SEG, BLEND]
    assert claim.custody_model is BLEND
    assert "CONTROLLED_BLENDING, first at c/compound-1" in claim.model_reason
    assert "UL 2809" in claim.model_reason


def test_blend_under_mass_balance_makes_the_whole_claim_mass_balance() -> None:
    hub, ledger, actors = _blend()
    inputs = {"a/ship-1": 3_000_000, "b/ship-1": 1_000_000, "c/virgin-1": 2_050_000}
    ledger.append(
        hub.transform(
            actors["converter"],
            inputs,
            [out("c/pellet-1", "PET_PELLET", 6_000_000, pre=1_000_000, post=3_000_000)],
            model=MB,
            process=Process.COMPOUNDING,
        )
    )
    # The claimed grams: 1 000 000 / 6 000 000 = 16.666 % -> 16.66; 3 000 000 -> 50.00 %.
    claim = claim_of(ledger, "c/pellet-1")
    assert (claim.pre_consumer_pct, claim.post_consumer_pct) == (Decimal("16.66"), Decimal("50.00"))
    assert claim.custody_model is MB
    assert "backed by the site's credit account" in claim.model_reason
    (history,) = claim.mass_balance
    assert history.account == AccountKey("converter-site-1", "plastics.PET", "2026Q2")
    assert [(m.balance_pre_g, m.balance_post_g) for m in history.movements] == [(0, 0)]
    assert claim.period_start == datetime(2026, 4, 1, tzinfo=UTC)
    assert claim.period_end == datetime(2026, 7, 1, tzinfo=UTC)


# --- mass balance: a site's period drawn down to exactly zero, then an over-claim ---------------


def test_mass_balance_site_reaches_exactly_zero_then_refuses_an_over_claim() -> None:
    hub = Hub(now=datetime(2026, 4, 6, 3, 0, tzinfo=UTC))
    recycler = hub.actor("recycler", Role.RECYCLER)
    site = hub.actor("compounder", Role.CONVERTER)
    ledger = hub.ledger(recycler, site)
    ledger.append(
        hub.create_batch(recycler, "r/flake-1", 2_000_000, material="PET_FLAKE", post=2_000_000)
    )
    ledger.append(hub.ship(recycler, "r/flake-1", 2_000_000, to=site, shipment_id="r/ship-1"))
    ledger.append(hub.receive(site, "r/ship-1", 2_000_000))
    ledger.append(hub.create_batch(site, "s/virgin-1", 3_000_000, material="PET"))
    ledger.append(hub.create_batch(site, "s/virgin-2", 1_000_000, material="PET"))
    # T1: 2 000 000 g post-consumer flake in: credit +2 000 000; claims 1 200 000 -> 800 000.
    hub.now = datetime(2026, 5, 5, tzinfo=UTC)
    t1 = [out("s/p1", "PET_PELLET", 3_400_000, post=1_200_000)]
    ledger.append(
        hub.transform(site, {"r/ship-1": 2_000_000, "s/virgin-1": 1_500_000}, t1, model=MB)
    )
    # T2: only virgin in (credit +0); claims the remaining 800 000 -> balance exactly 0.
    hub.now = datetime(2026, 5, 20, tzinfo=UTC)
    t2 = [out("s/p2", "PET_PELLET", 1_500_000, post=800_000)]
    ledger.append(hub.transform(site, {"s/virgin-1": 1_500_000}, t2, model=MB))
    assert ledger.state.credit("compounder-site-1", "plastics.PET", "2026Q2") is not None
    balance = ledger.state.credits[("compounder-site-1", "plastics.PET", "2026Q2")]
    assert (balance.pre_consumer_g, balance.post_consumer_g) == (0, 0)

    # 1 200 000 / 3 400 000 = 35.294 % -> 35.29;  800 000 / 1 500 000 = 53.333 % -> 53.33.
    first, second = claim_of(ledger, "s/p1"), claim_of(ledger, "s/p2")
    assert first.post_consumer_pct == Decimal("35.29")
    assert second.post_consumer_pct == Decimal("53.33")
    (history,) = second.mass_balance
    assert [(m.added_post_g, m.drawn_post_g, m.balance_post_g) for m in history.movements] == [
        (2_000_000, 1_200_000, 800_000),
        (0, 800_000, 0),
    ]

    # The account is empty: one more gram of post-consumer claim in the period is refused...
    hub.now = datetime(2026, 6, 2, tzinfo=UTC)
    over = [out("s/p3", "PET_PELLET", 1_000_000, post=1)]
    assert_rejected(
        ledger,
        hub.transform(site, {"s/virgin-2": 1_000_000}, over, model=MB),
        Reason.CREDIT_EXCEEDED,
    )
    # ... and post-consumer credit never pays for a pre-consumer claim (kept apart).
    assert_rejected(
        ledger,
        hub.transform(
            site,
            {"s/virgin-2": 1_000_000},
            [out("s/p3", "PET_PELLET", 1_000_000, pre=1)],
            model=MB,
        ),
        Reason.CREDIT_EXCEEDED,
    )


def test_recomputed_account_catches_an_over_claim_the_ledger_would_refuse() -> None:
    """A forged graph (as a dishonest log could present) whose account goes negative."""
    hub = Hub()
    site = hub.actor("compounder", Role.CONVERTER)
    envelopes = [
        hub.enrol(site),
        hub.create_batch(site, "s/virgin-1", 1_000, material="PET"),
        hub.transform(
            site, {"s/virgin-1": 1_000}, [out("s/p1", "PET_PELLET", 1_000, post=1)], model=MB
        ),
    ]
    graph = ProvenanceGraph.from_events(enumerate(event_of(e) for e in envelopes))
    with pytest.raises(MassBalanceError) as info:
        compute_claim(graph, "s/p1", material_group)
    assert info.value.reason is Reason.CREDIT_EXCEEDED
    assert info.value.seq == 2
    with pytest.raises(MassBalanceError):
        replay_credit(
            graph, AccountKey("compounder-site-1", "plastics.PET", "2026Q2"), 2, material_group
        )


# --- a transfer between two sites of one participant ------------------------------------------


def test_transfer_between_sites_moves_content_and_credit_to_the_receiving_site() -> None:
    hub = Hub()
    recycler = hub.actor("recycler", Role.RECYCLER)
    multi = hub.actor("multi", Role.CONVERTER, sites=2)
    ledger = hub.ledger(recycler, multi)
    ledger.append(
        hub.create_batch(recycler, "r/flake-2", 1_000_000, material="PET_FLAKE", post=700_000)
    )
    ledger.append(hub.ship(recycler, "r/flake-2", 1_000_000, to=multi, shipment_id="r/ship-2"))
    ledger.append(hub.receive(multi, "r/ship-2", 1_000_000))
    ledger.append(
        hub.emit(
            multi,
            lambda h: BatchShipped(h, "m/move-1", "r/ship-2", 600_000, "multi", "multi-site-2"),
        )
    )
    ledger.append(hub.receive(multi, "m/move-1", 598_000, site="multi-site-2"))
    # Moved share: 700 000 * 600 000 / 1 000 000 = 420 000 g; received 598 000 g of 600 000:
    # 420 000 * 598 000 / 600 000 = 418 600 g = 70.00 % post-consumer, now at site 2.
    claim = claim_of(ledger, "m/move-1")
    assert (claim.mass_g, claim.post_consumer_g, claim.post_consumer_pct) == (
        598_000,
        418_600,
        Decimal("70.00"),
    )
    assert graph_of(ledger).batches["m/move-1"].site_id == "multi-site-2"
    assert claim.custody_model is SEG  # no transformation: identity preserved
    assert claim.chain == ()

    # Mass balance books the credit where the material is consumed: site 2 may claim the
    # 418 600 g it received; site 1 keeps only its 400 000 g * 70 % = 280 000 g.
    site2 = [out("m/p2", "PET_PELLET", 598_000, post=418_600)]
    ledger.append(hub.transform(multi, {"m/move-1": 598_000}, site2, model=MB, site="multi-site-2"))
    site1 = [out("m/p1", "PET_PELLET", 400_000, post=280_001)]
    assert_rejected(
        ledger,
        hub.transform(multi, {"r/ship-2": 400_000}, site1, model=MB, site="multi-site-1"),
        Reason.CREDIT_EXCEEDED,
    )
    assert claim_of(ledger, "m/p2").post_consumer_pct == Decimal("70.00")


# --- rounding and model order -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "whole", "pct"),
    [(1, 3, "33.33"), (2, 3, "66.66"), (0, 7, "0.00"), (7, 7, "100.00"), (1, 10_001, "0.00")],
)
def test_percentages_are_rounded_down(part: int, whole: int, pct: str) -> None:
    assert percent_down(part, whole) == Decimal(pct)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**15).flatmap(lambda w: st.tuples(st.integers(0, w), st.just(w))))
def test_percentage_never_overstates_and_is_within_a_hundredth(pair: tuple[int, int]) -> None:
    part, whole = pair
    exact = Decimal(part) * 100 / Decimal(whole)
    pct = percent_down(part, whole)
    assert pct <= exact < pct + Decimal("0.01")
    assert pct == pct.quantize(Decimal("0.01"))


def test_least_traceable_model_follows_ul_2809_order() -> None:
    assert least_traceable([SEG, BLEND, SEG]) is BLEND
    assert least_traceable([SEG, MB, BLEND]) is MB
    assert least_traceable([]) is None


def test_created_batch_claims_its_declared_composition() -> None:
    hub = Hub()
    factory = hub.actor("factory", Role.MANUFACTURER)
    ledger = hub.ledger(factory)
    comp = Composition(175_000, 75_000, 0)
    ledger.append(
        hub.create_batch(factory, "f/cement-1", 250_000, material="CEMENT", composition=comp)
    )
    claim = claim_of(ledger, "f/cement-1")
    assert (claim.pre_consumer_pct, claim.post_consumer_pct) == (Decimal("30.00"), Decimal("0.00"))
    assert "No transformation" in claim.model_reason
