"""`cehub demo` (what `make demo` runs) ends with a certificate verified offline (issue 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cehub

pytestmark = pytest.mark.kafka


def test_demo_runs_the_saraburi_pilot_to_a_verified_certificate(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    out = cehub("--data-dir", str(tmp_path), "demo", env={"CEHUB_BOOTSTRAP": kafka_bootstrap})
    assert "VALID: every check passed" in out
    assert "post-consumer 50.65 %, pre-consumer 22.87 % (CONTROLLED_BLENDING" in out
    (run,) = (tmp_path / "demo").iterdir()
    (certificate,) = (run / "certificates").glob("*.json")
    claim = json.loads(certificate.read_text())["claim"]
    # docs/examples/saraburi, computed by hand in tests/unit/test_saraburi.py.
    assert (claim["post_consumer_pct"], claim["pre_consumer_pct"]) == ("50.65", "22.87")
    assert certificate.with_suffix(".html").exists()
    assert "cehub verify-cert" in (run / "commands.sh").read_text()
    assert "(+1 in" in out  # the second `process` recorded the CertificateIssued
