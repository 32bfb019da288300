"""`cehub audit` catches rows changed behind the ledger's back (SQLite and PostgreSQL).

The ledger is built through the sequencer stage itself (``SequencerStage.process`` on records
as Kafka would deliver them), which is the code the faust agent runs; no broker is needed to
test what the audit reads.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from consumers.stages import SequencerStage
from ledger.store import LedgerStore
from ledger.transport import Record
from tests.integration.hub_scenarios import supply_chain


def _build(engine: Engine) -> tuple[LedgerStore, int, dict[str, str]]:
    scenario = supply_chain(rounds=20)
    store = LedgerStore(engine)
    stage = SequencerStage(store, scenario.hub.context, lambda *_: [])
    records = [Record("t.verified", 0, n, None, e) for n, e in enumerate(scenario.envelopes)]
    stage.process(records)
    key = base64.b64encode(scenario.hub.authority.public_key).decode()
    return store, scenario.accepted_count, {"CEHUB_AUTHORITY_PUBLIC_KEY": key}


def _audit(
    database_url: str, tmp_path: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("cehub"))
    return subprocess.run(
        [exe, "--database-url", database_url, "--data-dir", str(tmp_path), "audit"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        pytest.param(
            "update entries set entry_hash = :junk where seq = 7",
            "entry 7: stored entry_hash",
            id="entry-hash",
        ),
        pytest.param(
            "update entries set envelope_sha256 = :junk where seq = 11",
            "entry 11: the stored envelope does not hash",
            id="entry-envelope-digest",
        ),
        pytest.param(
            "update batches set mass_g = mass_g + 1 where batch_id = 'collector-1/bale-4'",
            "batches 'collector-1/bale-4': mass_g stored 100001 != rebuilt 100000",
            id="batch-mass",
        ),
        pytest.param(
            "update batches set post_consumer_g = 99000 where batch_id = 'recycler/flakes-3'",
            "batches 'recycler/flakes-3': composition stored",
            id="batch-composition",
        ),
        pytest.param(
            "delete from batch_parents where batch_id = 'recycler/flakes-2'",
            "batches 'recycler/flakes-2': parents stored ()",
            id="provenance-edge",
        ),
        pytest.param(
            "update merkle_nodes set hash = :junk where level = 0 and idx = 3",
            "Merkle node (level 0, index 3): stored 0000",
            id="merkle-leaf",
        ),
    ],
)
def test_audit_catches_a_row_changed_behind_the_ledgers_back(
    database_url: str,
    engines: Callable[[str], Engine],
    tmp_path: Path,
    tamper: str,
    expected: str,
) -> None:
    engine = engines(database_url)
    _store, count, env = _build(engine)
    clean = _audit(database_url, tmp_path, env)
    assert clean.returncode == 0, clean.stderr
    assert f"audit OK: {count} entries" in clean.stdout

    with engine.begin() as conn:
        params = {"junk": bytes(32)} if ":junk" in tamper else {}
        conn.execute(text(tamper), params)
    caught = _audit(database_url, tmp_path, env)
    assert caught.returncode == 1
    assert expected in caught.stderr
