"""The Saraburi pilot files (docs/examples/saraburi/) through the sequencer's rules, in memory.

The demo sends the same files through Kafka (tests/integration/test_demo.py); here they are
parsed by the emitter's parser, signed with test keys, appended to a MemoryLedger in the
pilot's order, and the certified compound's claim is checked against the hand computation.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger.envelope import seal
from ledger.replay import MemoryLedger
from producers.records import parse_records
from schemas.events import CustodyModel, Role, Site
from tests.builders import Actor, Hub, seeded_signer
from tests.certificates import claim_of
from verification.demo import SCENARIO, new_run_folder

PILOT = json.loads((SCENARIO / "pilot.json").read_text("utf-8"))


def _actor(spec: dict[str, Any]) -> Actor:
    sites = []
    for text in spec["sites"]:
        site_id, _, rest = text.partition(":")
        name, _, country = rest.rpartition(":")
        sites.append(Site(site_id, name, country))
    roles = tuple(Role(r.upper()) for r in spec["roles"])
    pid = str(spec["participant_id"])
    return Actor(pid, roles, tuple(sites), [seeded_signer(pid)])


def pilot_ledger() -> MemoryLedger:
    hub = Hub()
    actors = [_actor(spec) for spec in PILOT["participants"]]
    ledger = hub.ledger(*actors)
    for spec, actor in zip(PILOT["participants"], actors, strict=True):
        if not spec["events"]:
            continue
        text = (SCENARIO / spec["events"]).read_text("utf-8")
        parsed = parse_records(text, "jsonl", producer_id=actor.participant_id)
        assert parsed.errors == (), parsed.errors
        for seq, draft in enumerate(parsed.drafts):
            ledger.append(seal(draft.sequenced(seq), actor.signer))
    return ledger


def test_pilot_compound_claim_matches_the_hand_computation() -> None:
    ledger = pilot_ledger()
    claim = claim_of(ledger, PILOT["certify"]["batch_id"])
    # Into the compounder's 13 030 000 g: 6 600 000 g of recycled pellets (100 % post-consumer:
    # 12 t of household plastic, 11.95 t received, sorted into 7.2 t PP, pelletised to 6.6 t),
    # 2 980 000 g of pre-consumer trimmings (3 t shipped, 20 kg lost), 3 200 000 g virgin PP
    # and 250 000 g of own regrind (rework: virgin, ISO 14021). Out: 12 800 000 g.
    #   post 6 600 000 * 12 800 000 / 13 030 000 = 6 483 499.6 -> 6 483 499 g = 50.652 % -> 50.65
    #   pre  2 980 000 * 12 800 000 / 13 030 000 = 2 927 398.3 -> 2 927 398 g = 22.870 % -> 22.87
    assert (claim.post_consumer_g, claim.pre_consumer_g) == (6_483_499, 2_927_398)
    assert (claim.post_consumer_pct, claim.pre_consumer_pct) == (Decimal("50.65"), Decimal("22.87"))
    assert claim.custody_model is CustodyModel.CONTROLLED_BLENDING
    assert claim.holder_id == "kk-compound"
    # The RDF branch: 3.9 t shipped, 3.86 t received and co-processed; 460 kg into clinker.
    clinker = claim_of(ledger, "srb-cement/rdf-ash-clinker-2026-0310")
    assert (clinker.mass_g, clinker.post_consumer_pct) == (460_000, Decimal("100.00"))
    cement = claim_of(ledger, "srb-cement/cement-2026-0311")
    assert cement.pre_consumer_pct == Decimal("30.00")


def test_each_demo_run_gets_a_fresh_folder(tmp_path: Path) -> None:
    now = datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
    first, second = new_run_folder(tmp_path, now), new_run_folder(tmp_path, now)
    assert first != second
    assert first.name == "20260309T100000Z"
    assert second.name == "20260309T100000Z-1"
