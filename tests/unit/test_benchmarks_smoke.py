"""`python -m benchmarks` runs end to end at a tiny size (no timing is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from benchmarks.__main__ import main
from benchmarks.proofs import build_tree, leaf_data, stored_leaves
from ledger.merkle import MemoryNodeStore, leaf_hash
from ledger.sqlstore import open_engine
from ledger.store import merkle_nodes


def test_proofs_benchmark_writes_json_and_markdown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    code = main(
        [
            "--only",
            "proofs",
            "--sizes",
            "64,1_000",
            "--samples",
            "5",
            "--out",
            str(out),
            "--workdir",
            str(tmp_path / "db"),
        ]
    )
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    report = json.loads((out / "proofs.json").read_text())
    assert report["machine"]["cores"] >= 1
    assert [r["size"] for r in report["results"]] == [64, 1000]
    for row in report["results"]:
        assert row["inclusion"]["proof_bytes"]["max"] <= 32 * 2 * 10
        assert row["inclusion"]["node_reads"]["max"] <= 2 * 10
        assert row["consistency"]["generate"]["median_us"] > 0
    table = (out / "proofs.md").read_text()
    assert "| 1,000 |" in table
    # A second run reuses the databases kept in --workdir (no build time reported).
    main(
        [
            "--only",
            "proofs",
            "--sizes",
            "64",
            "--samples",
            "2",
            "--out",
            str(out),
            "--workdir",
            str(tmp_path / "db"),
        ]
    )
    assert json.loads((out / "proofs.json").read_text())["results"][0]["build_seconds"] is None


def test_bulk_load_stores_exactly_the_nodes_appending_would(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'tree.sqlite'}")
    try:
        build_tree(engine, 300)
        assert stored_leaves(engine) == 300
        with engine.connect() as conn:
            stored = {(r.level, r.idx): bytes(r.hash) for r in conn.execute(select(merkle_nodes))}
    finally:
        engine.dispose()
    reference = MemoryNodeStore()
    for n in range(300):
        reference.append(leaf_hash(leaf_data(n)))
    assert stored == reference.nodes()


def test_rejects_sizes_that_are_not_numbers() -> None:
    with pytest.raises(SystemExit):
        main(["--sizes", "ten"])
