"""The pipeline benchmarks run end to end at a tiny size, so the harness cannot rot.

Nothing here asserts a time: only that each benchmark measures what it says (every event
committed, every configuration and certificate present) and writes its JSON and Markdown.
PostgreSQL is left out (``CEHUB_TEST_POSTGRES_URL`` unset) to keep this quick; the store code
under the benchmarks is tested on both back-ends elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.__main__ import main
from benchmarks.workload import POSTGRES_ENV, SupplyChain
from ledger.replay import MemoryLedger

pytestmark = pytest.mark.kafka


@pytest.fixture(autouse=True)
def _sqlite_only(monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str) -> None:
    monkeypatch.delenv(POSTGRES_ENV, raising=False)
    monkeypatch.setenv("CEHUB_BOOTSTRAP", kafka_bootstrap)


def _run(name: str, tmp_path: Path, *args: str) -> dict:  # type: ignore[type-arg]
    out = tmp_path / "results"
    assert main(["--only", name, "--samples", "1", "--out", str(out), *args]) == 0
    assert (out / f"{name}.md").read_text().startswith("# ")
    return json.loads((out / f"{name}.json").read_text())  # type: ignore[no-any-return]


def test_producer_benchmark_compares_signed_emit_with_unsigned_sends(tmp_path: Path) -> None:
    report = _run("producer", tmp_path, "--sizes", "50")
    assert report["machine"]["kafka"][0].isdigit()
    names = [c["name"] for c in report["results"][0]["configurations"]]
    assert names[:2] == ["emit (signed)", "unsigned payload, same client"]
    assert report["results"][0]["signed_to_unsigned_ratio_median"] > 0


def test_ingest_benchmark_commits_every_event_in_each_configuration(tmp_path: Path) -> None:
    report = _run("ingest", tmp_path, "--sizes", "120")
    result = report["results"][0]
    assert sum(result["partitions"].values()) == result["events"]
    names = [c["name"] for c in result["configurations"]]
    assert names == ["bare (kafka-python + open_envelope)", "sqlite, 1 worker", "sqlite, 2 workers"]
    for configuration in result["configurations"]:
        assert all(run["events"] == result["events"] for run in configuration["runs"])


def test_profile_benchmark_writes_the_stage_and_worker_profiles(tmp_path: Path) -> None:
    report = _run("profile", tmp_path, "--sizes", "60")
    assert report["results"][0]["backend"] == "sqlite"
    assert (
        "SequencerStage.process" in (tmp_path / "results" / "profile-stages-sqlite.txt").read_text()
    )
    assert "run_hub" in (tmp_path / "results" / "profile-worker.txt").read_text()


def test_scale_benchmark_certifies_and_audits_on_top_of_a_bulk_loaded_ledger(
    tmp_path: Path,
) -> None:
    report = _run("scale", tmp_path, "--sizes", "200", "--workdir", str(tmp_path / "work"))
    result = report["results"][0]
    assert result["build"]["entries"] == 200
    assert result["store"]["entries"] > 200
    assert result["audit"]["out"].startswith(f"audit OK: {result['store']['entries']} entries")
    evidence = [c["evidence_events"] for c in result["cli"]["certificates"]]
    assert evidence == [10, 100, 1_000]
    assert result["cli"]["trace"]["batches"] >= 21
    # A second run reuses the bulk-loaded file kept in --workdir.
    again = _run("scale", tmp_path, "--sizes", "200", "--workdir", str(tmp_path / "work"))
    assert again["results"][0]["build"]["reused"] is True


def test_levers_benchmark_runs_the_commit_before_the_levers_beside_the_working_tree(
    tmp_path: Path,
) -> None:
    report = _run("levers", tmp_path, "--sizes", "60")
    assert list(report["result"]["versions"]) == ["before", "now"]
    assert {row["measure"] for row in report["result"]["rows"]} == {
        "stages sqlite",
        "worker sqlite",
    }


def test_streamed_workload_is_a_valid_ledger() -> None:
    chain = SupplyChain()
    ledger = MemoryLedger(chain.hub.context)
    deep, _ = chain.deep_chain(3)
    pooled, _ = chain.pooled(2, "pool")
    for envelope in [*chain.enrolments(), *chain.rounds(3), *deep, *pooled]:
        ledger.append(envelope)
    assert len(ledger.entries) == 4 + 12 + 3 + 3 + 7
