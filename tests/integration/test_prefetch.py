"""Batch prefetching answers exactly what the one-row queries answer (SQLite and PostgreSQL).

The sequencer stage asks the store, before deciding a batch, whether each event id and
producer sequence number is taken and which of the named batches and shipments exist, in a few
``IN`` queries (docs/performance.md). What it memoises must be what the one-row queries would
have returned, found or not, or a duplicate could pass for new and a replay go unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from consumers.stages import SequencerStage, VerifyStage
from ledger.sequencer import Lookups, lookups_of
from ledger.store import LedgerStore, SqlLedgerView
from ledger.transport import Record
from tests.builders import event_of
from tests.integration.hub_scenarios import supply_chain


def _stored(database_url: str, engines: Callable[[str], Engine]) -> tuple[LedgerStore, list[bytes]]:
    scenario = supply_chain(rounds=12)
    store = LedgerStore(engines(database_url))
    stage = SequencerStage(store, scenario.hub.context, lambda *_: [])
    half = len(scenario.envelopes) // 2
    stage.process(
        [Record("t.verified", 0, n, None, e) for n, e in enumerate(scenario.envelopes[:half])]
    )
    return store, list(scenario.envelopes)


def _answers(view: SqlLedgerView, lookups: Lookups) -> dict[str, object]:
    return {
        "events": {k: view.seq_of_event(*k) for k in sorted(lookups.events)},
        "producer_seqs": {k: view.event_of_producer_seq(*k) for k in sorted(lookups.producer_seqs)},
        "batches": {b: view.batch(b) for b in sorted(lookups.batch_ids)},
        "shipments": {s: view.shipment(s) for s in sorted(lookups.shipment_ids)},
    }


def test_prefetched_answers_equal_the_one_row_queries_for_stored_and_new_events(
    database_url: str, engines: Callable[[str], Engine]
) -> None:
    store, envelopes = _stored(database_url, engines)
    lookups = lookups_of([*envelopes, b"not an envelope"])
    assert lookups.batch_ids
    assert lookups.shipment_ids
    with store.reading() as plain:
        expected = _answers(plain, lookups)
    with store.reading() as prefetched:
        prefetched.prefetch(lookups)
        assert _answers(prefetched, lookups) == expected
    # Both halves are represented: some answers found in the store, some absent.
    assert None in expected["events"].values()  # type: ignore[attr-defined]
    assert any(v is not None for v in expected["events"].values())  # type: ignore[attr-defined]
    assert any(b is not None and b.parents for b in expected["batches"].values())  # type: ignore[attr-defined]


def test_verify_stage_still_drops_events_already_in_the_ledger(
    database_url: str, engines: Callable[[str], Engine]
) -> None:
    store, envelopes = _stored(database_url, engines)
    scenario_context = supply_chain(rounds=0).hub.context
    stage = VerifyStage(store, scenario_context, lambda *_: [])
    output = stage.check([Record("t.events", 0, n, None, e) for n, e in enumerate(envelopes)])
    forwarded = {event_of(r.value).header.event_id for r in output.forward}
    half = len(envelopes) // 2
    assert output.duplicates == half
    assert forwarded == {event_of(e).header.event_id for e in envelopes[half:]}
