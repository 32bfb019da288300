"""Proofs served from the SQL store, on SQLite and PostgreSQL, and checked offline.

The ledgers are built without the broker, for speed: tests/integration/signed_ledger.py runs
the scenario through MemoryLedger (the sequencer's decisions) and writes it with
``LedgerStore.write_batch`` in batches of 7, a ``Checkpointer`` signing between batches as the
sequencer stage does. The hub's own checkpoints are covered by test_witness.py.
"""

from __future__ import annotations

import base64
import copy
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import event

from consumers.log_cli import serve_consistency, serve_inclusion
from ledger.cli import _register_commands, cli
from ledger.merkle import consistency_proof, inclusion_proof, root_hash
from ledger.proof_document import (
    ConsistencyDocument,
    document_json,
    parse_document,
    verify_consistency_document,
    verify_inclusion_document,
)
from ledger.store import node_reader
from tests.conftest import cehub
from tests.integration.signed_ledger import (
    ORIGIN,
    SignedLedger,
    build_signed_ledger,
    verifier,
    vkey,
)

CHECKPOINT_EVERY = 20
"""With batches of 7 the ledger signs at 7, 28, 49, 70 and 91 of its 104 entries."""


@pytest.fixture
def ledger(database_url: str) -> Iterator[SignedLedger]:
    built = build_signed_ledger(database_url, checkpoint_every=CHECKPOINT_EVERY)
    yield built
    built.store.engine.dispose()


def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {
        "CEHUB_DATABASE_URL": database_url,
        "CEHUB_DATA_DIR": str(tmp_path),
        "CEHUB_LEDGER_NAME": ORIGIN,
    }


def test_the_signed_ledger_has_checkpoints_below_its_head(ledger: SignedLedger) -> None:
    assert ledger.size == 104
    assert ledger.checkpoint_sizes == [7, 28, 49, 70, 91]


def test_store_serves_inclusion_proofs_that_verify_for_every_entry_at_several_sizes(
    ledger: SignedLedger,
) -> None:
    trusted = (verifier(),)
    with ledger.store.transaction() as conn:
        for size in (1, 2, 5, 8, 13, 28, 64, 91):
            signed = size in ledger.checkpoint_sizes
            for seq in range(size):
                doc = serve_inclusion(conn, origin=ORIGIN, seq=seq, size=size)
                assert doc.proof == inclusion_proof(seq, size, ledger.tree.get_node)
                assert doc.root_hash == root_hash(size, ledger.tree.get_node)
                assert doc.envelope == ledger.envelopes[seq]
                assert (doc.checkpoint is not None) is signed
                if signed:
                    checkpoint = verify_inclusion_document(doc, trusted, ORIGIN)
                    assert checkpoint.size == size
                # The JSON form carries exactly the same document.
                assert parse_document(json.loads(json.dumps(document_json(doc)))) == doc


def test_store_serves_consistency_proofs_between_every_pair_of_checkpoints(
    ledger: SignedLedger,
) -> None:
    sizes = [0, *ledger.checkpoint_sizes]
    with ledger.store.transaction() as conn:
        for new in sizes[1:]:
            for old in [s for s in sizes if s <= new] + [1, new - 1]:
                doc = serve_consistency(conn, origin=ORIGIN, old_size=old, new_size=new)
                assert doc.proof == consistency_proof(old, new, ledger.tree.get_node)
                if old in sizes:
                    old_cp, new_cp = verify_consistency_document(doc, (verifier(),), ORIGIN)
                    assert (old_cp.size, new_cp.size) == (old, new)


def counting(
    get_node: Callable[[int, int], bytes],
) -> tuple[Callable[[int, int], bytes], list[int]]:
    calls = [0]

    def counted(level: int, index: int) -> bytes:
        calls[0] += 1
        return get_node(level, index)

    return counted, calls


def test_node_reads_per_proof_are_logarithmic(ledger: SignedLedger) -> None:
    with ledger.store.transaction() as conn:
        for reader in (node_reader(conn),):
            get_node, reads = counting(reader)
            for size in ledger.checkpoint_sizes:
                bound = 2 * math.floor(math.log2(size))
                for seq in range(size):
                    reads[0] = 0
                    serve_inclusion(conn, origin=ORIGIN, seq=seq, size=size, get_node=get_node)
                    assert reads[0] <= bound, (seq, size, reads[0])
                for old in range(1, size + 1):
                    reads[0] = 0
                    serve_consistency(
                        conn, origin=ORIGIN, old_size=old, new_size=size, get_node=get_node
                    )
                    # The proof, then the two roots (popcount of each size, at most log2 + 1).
                    assert reads[0] <= (bound + 1) + 2 * (math.floor(math.log2(size)) + 1)


def test_a_served_proof_reads_its_nodes_in_one_query(ledger: SignedLedger) -> None:
    statements: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    engine = ledger.store.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        with ledger.store.transaction() as conn:
            serve_inclusion(conn, origin=ORIGIN, seq=50, size=91)
            inclusion_queries = [s for s in statements if "merkle_nodes" in s]
            statements.clear()
            serve_consistency(conn, origin=ORIGIN, old_size=28, new_size=91)
            consistency_queries = [s for s in statements if "merkle_nodes" in s]
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(inclusion_queries) == 1
    assert len(consistency_queries) == 1  # the proof and both roots


def test_node_reads_stay_logarithmic_in_a_bulk_loaded_tree_of_2_to_the_14(
    database_url: str, engines: Callable[[str], Any]
) -> None:
    from benchmarks.proofs import build_tree

    engine = engines(database_url)
    size = 2**14 + 3
    build_tree(engine, size)
    with engine.connect() as conn:
        get_node, reads = counting(node_reader(conn))
        for seq in (0, 1, 2**13, size - 4, size - 1):
            reads[0] = 0
            inclusion_proof(seq, size, get_node)
            assert reads[0] <= 2 * 14
        for old in (1, 3, 2**13 + 1, size - 1):
            reads[0] = 0
            consistency_proof(old, size, get_node)
            assert reads[0] <= 2 * 14 + 1


# --- the command line ---------------------------------------------------------------------------


def test_cli_inclusion_json_then_offline_verify_passes(
    ledger: SignedLedger, tmp_path: Path, database_url: str
) -> None:
    proof = cehub("proof", "inclusion", "40", "--json", env=env(tmp_path, database_url))
    doc = json.loads(proof)
    assert (doc["leaf_index"], doc["tree_size"]) == (40, 91)  # the latest checkpoint
    path = tmp_path / "entry-40.json"
    path.write_text(proof)
    # Offline: no database URL, no broker, only the verifier key.
    out = cehub(
        "--bootstrap",
        "127.0.0.1:1",
        "proof",
        "verify",
        str(path),
        "--ledger-key",
        vkey(),
        env={"CEHUB_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"},
    )
    assert out.startswith("OK: BatchCreated ")
    assert f"is leaf 40 of {ORIGIN} at size 91" in out


def test_cli_consistency_json_then_offline_verify_passes(
    ledger: SignedLedger, tmp_path: Path, database_url: str
) -> None:
    proof = cehub("proof", "consistency", "28", "91", "--json", env=env(tmp_path, database_url))
    path = tmp_path / "28-91.json"
    path.write_text(proof)
    out = cehub("proof", "verify", str(path), "--ledger-key", vkey())
    assert f"OK: {ORIGIN} at size 91 extends size 28" in out


def invoke(*args: str, environ: dict[str, str] | None = None) -> tuple[int, str]:
    _register_commands()
    result = CliRunner().invoke(cli, list(args), env=environ, catch_exceptions=False)
    return result.exit_code, result.output


def test_cli_refuses_sizes_beyond_the_latest_checkpoint_or_the_ledger(
    ledger: SignedLedger, tmp_path: Path, database_url: str
) -> None:
    e = env(tmp_path, database_url)
    for args, complaint in [
        (
            ("proof", "inclusion", "3", "--size", "92"),
            "beyond the latest signed checkpoint (size 91)",
        ),
        (("proof", "inclusion", "3", "--size", "105"), "beyond the ledger (104 entries)"),
        (("proof", "inclusion", "95"), "entry 95 is not in the tree of size 91"),
        (("proof", "consistency", "7", "100"), "beyond the latest signed checkpoint"),
        (("proof", "consistency", "28", "7"), "OLD (28) must not be larger than NEW (7)"),
    ]:
        code, output = invoke(*args, environ=e)
        assert code == 2, output
        assert complaint in output


def test_cli_warns_when_no_checkpoint_vouches_for_the_size(
    ledger: SignedLedger, tmp_path: Path, database_url: str
) -> None:
    code, output = invoke(
        "proof", "inclusion", "3", "--size", "50", environ=env(tmp_path, database_url)
    )
    assert code == 0
    assert "signed no checkpoint at size 50" in output
    assert "is leaf 3 of" in output


# --- tampering (offline, so once is enough: SQLite only) ----------------------------------------

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _tamper_signature(note: str) -> str:
    text, _, signature_line = note.rstrip("\n").rpartition("\n")
    name, _, sig = signature_line.rpartition(" ")
    return f"{text}\n{name} {_flip(sig)}\n"


INCLUSION_TAMPERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "a proof hash flipped": lambda d: d["proof"].__setitem__(1, _flip(d["proof"][1])),
    "a proof hash dropped": lambda d: d["proof"].pop(),
    "proof hashes swapped": lambda d: d["proof"].reverse(),
    "another leaf index": lambda d: d.__setitem__("leaf_index", d["leaf_index"] + 1),
    "another envelope": lambda d: d.__setitem__("envelope", _flip(d["envelope"])),
    "leaf hash of another entry": lambda d: d.__setitem__("leaf_hash", _flip(d["leaf_hash"])),
    "another root": lambda d: d.__setitem__("root_hash", _flip(d["root_hash"])),
    "another tree size": lambda d: d.__setitem__("tree_size", d["tree_size"] - 1),
    "signature flipped": lambda d: d.__setitem__("checkpoint", _tamper_signature(d["checkpoint"])),
    "checkpoint size edited": lambda d: d.__setitem__(
        "checkpoint", d["checkpoint"].replace("\n91\n", "\n92\n")
    ),
    "checkpoint removed": lambda d: d.__setitem__("checkpoint", None),
}


@sqlite_only
@pytest.mark.parametrize("tamper", sorted(INCLUSION_TAMPERS))
def test_tampered_inclusion_document_fails_verification_with_exit_1(
    ledger: SignedLedger, tmp_path: Path, database_url: str, tamper: str
) -> None:
    code, proof = invoke("proof", "inclusion", "40", "--json", environ=env(tmp_path, database_url))
    assert code == 0
    doc = json.loads(proof)
    bad = copy.deepcopy(doc)
    INCLUSION_TAMPERS[tamper](bad)
    assert bad != doc
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    code, output = invoke("proof", "verify", str(path), "--ledger-key", vkey())
    assert code == 1, output
    assert "error: [proof." in output


@sqlite_only
def test_tampered_consistency_documents_fail_with_exit_1(
    ledger: SignedLedger, tmp_path: Path, database_url: str
) -> None:
    code, proof = invoke(
        "proof", "consistency", "28", "91", "--json", environ=env(tmp_path, database_url)
    )
    assert code == 0
    doc = json.loads(proof)
    tampers: list[Callable[[dict[str, Any]], None]] = [
        lambda d: d["proof"].__setitem__(0, _flip(d["proof"][0])),
        lambda d: d["proof"].pop(0),
        lambda d: d.__setitem__("old_size", 27),
        lambda d: d.__setitem__("new_root", _flip(d["new_root"])),
        lambda d: d.__setitem__("old_checkpoint", _tamper_signature(d["old_checkpoint"])),
        lambda d: d.__setitem__("old_checkpoint", None),
        lambda d: d.__setitem__("new_checkpoint", d["old_checkpoint"]),
    ]
    for n, tamper in enumerate(tampers):
        bad = copy.deepcopy(doc)
        tamper(bad)
        path = tmp_path / f"bad-{n}.json"
        path.write_text(json.dumps(bad))
        code, output = invoke("proof", "verify", str(path), "--ledger-key", vkey())
        assert code == 1, (n, output)


@sqlite_only
def test_verify_with_another_ledger_key_fails_with_exit_1(
    ledger: SignedLedger, tmp_path: Path, database_url: str
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ledger.checkpoint import note_verifier_key

    _, proof = invoke("proof", "inclusion", "3", "--json", environ=env(tmp_path, database_url))
    path = tmp_path / "p.json"
    path.write_text(proof)
    impostor = note_verifier_key(ORIGIN, Ed25519PrivateKey.generate().public_key())
    code, output = invoke("proof", "verify", str(path), "--ledger-key", impostor)
    assert code == 1
    assert "no signature by a known key" in output


@sqlite_only
def test_unusable_documents_and_keys_exit_2(
    ledger: SignedLedger, tmp_path: Path, database_url: str
) -> None:
    _, proof = invoke("proof", "inclusion", "3", "--json", environ=env(tmp_path, database_url))
    good = tmp_path / "good.json"
    good.write_text(proof)
    cases = {
        "not-json.json": "{not json",
        "array.json": "[]",
        "unknown-format.json": json.dumps({**json.loads(proof), "format": "x/v9"}),
        "missing-field.json": json.dumps(
            {k: v for k, v in json.loads(proof).items() if k != "proof"}
        ),
        "not-base64.json": json.dumps({**json.loads(proof), "envelope": "%%%"}),
        "negative.json": json.dumps({**json.loads(proof), "leaf_index": -1}),
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_text(content)
        code, output = invoke("proof", "verify", str(path), "--ledger-key", vkey())
        assert code == 2, (name, output)
    for bad_key in ("not a key", vkey().replace("+", "-", 1), vkey()[:-4]):
        code, output = invoke("proof", "verify", str(good), "--ledger-key", bad_key)
        assert code == 2, (bad_key, output)
    code, _ = invoke("proof", "verify", str(tmp_path / "missing.json"), "--ledger-key", vkey())
    assert code == 2


def test_ledger_key_and_checkpoint_commands(
    ledger: SignedLedger, tmp_path: Path, database_url: str
) -> None:
    e = env(tmp_path, database_url)
    code, note = invoke("ledger", "checkpoint", environ=e)
    assert code == 0
    assert note.startswith(f"{ORIGIN}\n91\n")
    assert note == ledger.notes[-1].decode()
    code, out = invoke("ledger", "checkpoint", "--json", environ=e)
    assert json.loads(out)["tree_size"] == 91
    # `ledger key` prints the verifier key of the key file the hub signs with.
    code, vk = invoke("ledger", "key", environ=e)
    assert code == 0
    name, key_hash, material = vk.splitlines()[0].split("+", 2)
    assert (name, len(key_hash), base64.b64decode(material)[:1]) == (ORIGIN, 8, b"\x01")
    assert (tmp_path / "keys" / "ledger.pem").exists()
    code, again = invoke("ledger", "key", environ=e)
    assert again.splitlines()[0] == vk.splitlines()[0]


def test_consistency_document_from_size_zero_needs_no_old_signature(
    ledger: SignedLedger,
) -> None:
    with ledger.store.transaction() as conn:
        doc = serve_consistency(conn, origin=ORIGIN, old_size=0, new_size=28)
    assert isinstance(doc, ConsistencyDocument)
    assert doc.proof == ()
    verify_consistency_document(doc, (verifier(),), ORIGIN)
