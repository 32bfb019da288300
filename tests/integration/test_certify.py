"""Certify through the real hub, verify offline (issue 6): Kafka, then SQLite and PostgreSQL.

The scenario of tests/certificates.py (a transfer with loss, a key rotation, washing, two
mass-balance transformations) is sent to the real broker, sequenced by `cehub process`,
certified by `cehub certify` from the store, and verified by `cehub verify-cert` in a process
with no broker or database settings at all, which must not even import kafka, faust or
SQLAlchemy. The ledger then records the CertificateIssued, and `cehub revoke` withdraws it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, insert, select

from ledger.store import certificates, checkpoints
from tests.certificates import (
    FORBIDDEN,
    imported_modules,
    offline_verify,
    supply_chain,
)
from tests.conftest import cehub
from tests.integration.hub_scenarios import cehub_cmd, send
from verification.document import canonical

pytestmark = pytest.mark.kafka


def test_certificate_from_the_hub_verifies_offline_and_is_recorded_on_the_ledger(
    kafka_bootstrap: str,
    topic_prefix: str,
    database_url: str,
    tmp_path: Path,
    engines: Callable[[str], Engine],
) -> None:
    chain = supply_chain()
    env = {
        "CEHUB_BOOTSTRAP": kafka_bootstrap,
        "CEHUB_TOPIC_PREFIX": topic_prefix,
        "CEHUB_AUTHORITY_PUBLIC_KEY": base64.b64encode(chain.hub.authority.public_key).decode(),
    }
    key = tmp_path / "certifier.pem"
    key.write_bytes(chain.certifier.signer.to_pem())
    send(kafka_bootstrap, topic_prefix, [e.envelope for e in chain.ledger.entries])
    common = ("--database-url", database_url, "--data-dir", str(tmp_path))

    def run(*args: str) -> str:
        return cehub(*common, *args, env=env)

    assert f"{len(chain.ledger.entries)} entries" in run("process", "--until-idle")
    engine = engines(database_url)

    # No checkpoint covers the evidence yet: a clear refusal, nothing emitted.
    with engine.begin() as conn:
        saved = [dict(r._mapping) for r in conn.execute(select(checkpoints))]
        conn.execute(delete(checkpoints))
    refused = subprocess.run(
        cehub_cmd(
            *common, "certify", "m/p2", "--certifier-key", str(key), "--certifier-id", "certifier"
        ),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert "no signed checkpoint covers the evidence yet" in refused.stderr
    with engine.begin() as conn:
        conn.execute(insert(checkpoints), saved)

    out = run(
        "certify",
        "m/p2",
        "--certifier-key",
        str(key),
        "--certifier-id",
        "certifier",
        "--certificate-id",
        "certifier/cert-1",
        "--out",
        str(tmp_path / "certs"),
    )
    assert "post-consumer 50.00 %, pre-consumer 0.00 % (MASS_BALANCE)" in out
    cert_file = tmp_path / "certs" / "certifier_cert-1.json"
    assert (tmp_path / "certs" / "certifier_cert-1.html").read_text().count("50.00 %") >= 1
    trust_file = tmp_path / "trust.json"
    run("trust", "export", "--out", str(trust_file))

    verified = offline_verify(str(cert_file), "--trust", str(trust_file))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "VALID: every check passed" in verified.stdout
    loaded = sorted(m for m in imported_modules(verified.stderr) if m.split(".")[0] in FORBIDDEN)
    assert loaded == []

    # The hub sequences the certifier's CertificateIssued, with the certificate's digest.
    run("process", "--until-idle")
    digest = hashlib.sha256(canonical(json.loads(cert_file.read_text()))).digest()
    with engine.connect() as conn:
        row = conn.execute(select(certificates)).one()
    assert (row.certificate_id, row.batch_id, row.certifier_id) == (
        "certifier/cert-1",
        "m/p2",
        "certifier",
    )
    assert bytes(row.certificate_sha256) == digest
    assert row.revoked_seq is None

    if database_url.startswith("sqlite"):  # one more hub run; the store code is shared
        run("revoke", str(cert_file), "--reason", "test", "--certifier-key", str(key))
        run("process", "--until-idle")
        with engine.connect() as conn:
            assert conn.execute(select(certificates.c.revoked_seq)).scalar_one() is not None

    # A received shipment is the batch it became (held by the receiver): 810 000 of 900 000 g.
    shipped = run(
        "certify",
        "--shipment",
        "r/ship-1",
        "--certifier-key",
        str(key),
        "--certifier-id",
        "certifier",
        "--out",
        str(tmp_path / "certs"),
        "--trust",
        str(trust_file),
    )
    assert "post-consumer 90.00 %, pre-consumer 0.00 % (SEGREGATION)" in shipped

    trace = json.loads(run("trace", "m/p2", "--json"))
    assert trace["root"] == "m/p2"
    assert {b["batch_id"] for b in trace["batches"]} >= {"m/p2", "r/ship-1", "c/bale-1"}
    downstream = run("trace", "c/bale-1", "--downstream", "--dot", str(tmp_path / "t.dot"))
    assert "m/p1" in downstream
    assert "m/p2" in downstream
    assert (tmp_path / "t.dot").read_text().startswith("digraph provenance {")
