"""Certificates for tests: a MemoryLedger scenario, a signed checkpoint over it, a trust, and
`cehub verify-cert` run as a buyer runs it.

The ledger key and the certificate's issue time are fixed, so a scenario always gives the same
document bytes. :func:`supply_chain` is a small chain with every kind of step: a transfer with
loss, a key rotation, segregated washing and two mass-balance transformations at one site (the
first only feeds the credit the second draws on).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.checkpoint import Checkpoint, NoteVerifier, format_checkpoint_body, sign_note
from ledger.merkle import GetNode, root_hash
from ledger.replay import MemoryLedger
from schemas.events import CustodyModel, Role
from tests.builders import Actor, Hub, event_of, material_group, out
from verification.certificate import Certificate, build_certificate
from verification.claims import Claim, compute_claim
from verification.evidence import MemoryLedgerReader, Selection, select_evidence
from verification.graph import ProvenanceGraph
from verification.trust import Trust

ORIGIN = "test.cehub/ledger"
LEDGER_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"cehub-test-ledger").digest())
ISSUED_AT = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)


def ledger_public_key() -> bytes:
    return NoteVerifier(ORIGIN, LEDGER_KEY.public_key().public_bytes_raw()).public_key


def sign_checkpoint(size: int, get_node: GetNode) -> bytes:
    """The ledger's signed note over the first ``size`` leaves."""
    body = format_checkpoint_body(Checkpoint(ORIGIN, size, root_hash(size, get_node)))
    return sign_note(body, ORIGIN, LEDGER_KEY)


def trust_for(hub: Hub) -> Trust:
    return Trust((NoteVerifier(ORIGIN, ledger_public_key()),), (hub.authority.public_key,))


@dataclass
class Chain:
    hub: Hub
    ledger: MemoryLedger
    certifier: Actor
    actors: dict[str, Actor]


def supply_chain() -> Chain:
    """collector -> recycler (key rotated, washes) -> compounder (mass balance, twice)."""
    hub = Hub()
    collector = hub.actor("collector", Role.COLLECTOR)
    recycler = hub.actor("recycler", Role.RECYCLER)
    compounder = hub.actor("compounder", Role.CONVERTER)
    certifier = hub.actor("certifier", Role.CERTIFIER)
    ledger = hub.ledger(collector, recycler, compounder, certifier)
    mb = CustodyModel.MASS_BALANCE
    for envelope in (
        hub.create_batch(collector, "c/bale-1", 1_000_000, post=900_000),
        hub.ship(collector, "c/bale-1", 1_000_000, to=recycler, shipment_id="c/ship-1"),
        hub.receive(recycler, "c/ship-1", 990_000),
        hub.rotate_key(recycler),
        hub.transform(recycler, {"c/ship-1": 990_000}, [out("r/flake-1", "PET_FLAKE", 900_000)]),
        hub.ship(recycler, "r/flake-1", 900_000, to=compounder, shipment_id="r/ship-1"),
        hub.receive(compounder, "r/ship-1", 900_000),
        hub.create_batch(compounder, "m/virgin-1", 2_000_000, material="PET"),
        # flake: 900 000 * 990/1000 = 891 000 g post; washed 891 000 * 900/990 = 810 000 g.
        # T1 takes 500 000 g (450 000 g post) and claims 300 000 g: credit 150 000 g.
        hub.transform(
            compounder,
            {"r/ship-1": 500_000, "m/virgin-1": 500_000},
            [out("m/p1", "PET_PELLET", 1_000_000, post=300_000)],
            model=mb,
            transformation_id="m/t1",
        ),
        # T2 takes 400 000 g (360 000 g post) and claims 500 000 g: credit 10 000 g left.
        hub.transform(
            compounder,
            {"r/ship-1": 400_000, "m/virgin-1": 600_000},
            [out("m/p2", "PET_PELLET", 1_000_000, post=500_000)],
            model=mb,
            transformation_id="m/t2",
        ),
    ):
        ledger.append(envelope)
    actors = {"collector": collector, "recycler": recycler, "compounder": compounder}
    return Chain(hub, ledger, certifier, actors)


def certify(
    ledger: MemoryLedger,
    batch_id: str,
    certifier: Actor,
    *,
    certificate_id: str = "certifier/cert-1",
    size: int | None = None,
) -> Certificate:
    """A certificate of ``batch_id`` proven against a checkpoint of ``size`` (all) entries."""
    reader = MemoryLedgerReader(ledger)
    selection = select_evidence(
        reader,
        [batch_id],
        material_group=material_group,
        certifier=(certifier.participant_id, certifier.signer.key_id),
    )
    envelopes = [entry.envelope for entry in ledger.entries]
    size = ledger.tree.size if size is None else size
    return certify_selection(
        envelopes, ledger.tree.get_node, size, selection, batch_id, certifier, certificate_id
    )


def certify_selection(
    envelopes: Sequence[bytes],
    get_node: GetNode,
    size: int,
    selection: Selection,
    batch_id: str,
    certifier: Actor,
    certificate_id: str = "certifier/cert-1",
) -> Certificate:
    """A certificate over any log (``envelopes`` by seq, its tree read by ``get_node``)."""
    seqs = {*selection.evidence_seqs, *selection.key_event_seqs}
    return build_certificate(
        certificate_id=certificate_id,
        batch_id=batch_id,
        selection=selection,
        envelopes={seq: envelopes[seq] for seq in seqs},
        checkpoint_note=sign_checkpoint(size, get_node),
        checkpoint_size=size,
        get_node=get_node,
        certifier_id=certifier.participant_id,
        signer=certifier.signer,
        issued_at=ISSUED_AT,
        material_group=material_group,
    )


def graph_of(ledger: MemoryLedger) -> ProvenanceGraph:
    """The graph of every entry; its compositions must equal the sequencer's."""
    graph = ProvenanceGraph.from_events((e.seq, event_of(e.envelope)) for e in ledger.entries)
    for batch_id, batch in ledger.state.batches.items():
        assert graph.batches[batch_id].composition == batch.composition, batch_id
    return graph


def claim_of(ledger: MemoryLedger, batch_id: str) -> Claim:
    return compute_claim(graph_of(ledger), batch_id, material_group)


FORBIDDEN = ("kafka", "aiokafka", "faust", "mode", "sqlalchemy", "psycopg")
"""Packages `cehub verify-cert` must never import."""


def offline_verify(*args: str) -> subprocess.CompletedProcess[str]:
    """`cehub verify-cert ARGS` logging every import, with the broker and database settings
    pointing at closed ports: any attempt to use them would fail the run."""
    script = Path(sys.executable).with_name("cehub")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CEHUB_")}
    env["CEHUB_BOOTSTRAP"] = "127.0.0.1:1"
    env["CEHUB_DATABASE_URL"] = "postgresql+psycopg://nobody@127.0.0.1:1/nothing"
    return subprocess.run(
        [sys.executable, "-X", "importtime", str(script), "verify-cert", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def imported_modules(importtime_log: str) -> set[str]:
    """Module names from ``-X importtime`` lines (``import time: self | cumulative | name``)."""
    names = set()
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names
