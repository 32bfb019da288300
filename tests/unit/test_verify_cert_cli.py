"""`cehub verify-cert` as a buyer runs it: a separate process, no broker, no database.

The certificate comes from a MemoryLedger scenario (tests/certificates.py), so no service is
needed. The process runs with the broker and database settings pointing at closed ports and
with ``python -X importtime``, whose import log proves that kafka, faust and SQLAlchemy are
never loaded.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ledger.checkpoint import note_verifier_key
from tests.certificates import (
    FORBIDDEN,
    ORIGIN,
    certify,
    imported_modules,
    ledger_public_key,
    offline_verify,
    supply_chain,
)
from verification.trust import trust_json


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, object]]:
    chain = supply_chain()
    document = json.loads(json.dumps(certify(chain.ledger, "m/p2", chain.certifier).document))
    folder = tmp_path_factory.mktemp("verify")
    cert, trust = folder / "cert.json", folder / "trust.json"
    cert.write_text(json.dumps(document, indent=2))
    vkey = note_verifier_key(ORIGIN, ledger_public_key())
    trust.write_text(json.dumps(trust_json([vkey], [chain.hub.authority.public_key], {})))
    return cert, trust, document


def test_valid_certificate_exits_0_without_loading_kafka_faust_or_sqlalchemy(
    files: tuple[Path, Path, dict[str, object]],
) -> None:
    cert, trust, _ = files
    proc = offline_verify(str(cert), "--trust", str(trust))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "VALID: every check passed" in proc.stdout
    assert "post-consumer 50.00 %" in proc.stdout
    modules = imported_modules(proc.stderr)
    assert "verification.certificate" in modules  # the log really lists our imports
    loaded = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN)
    assert loaded == [], f"verify-cert imported {loaded}"


def test_tampered_certificate_exits_1_naming_the_check_and_the_item(
    files: tuple[Path, Path, dict[str, object]], tmp_path: Path
) -> None:
    _, trust, document = files
    tampered = json.loads(json.dumps(document))
    item = tampered["evidence"][2]
    data = bytearray(base64.b64decode(item["envelope"]))
    data[-1] ^= 0x01
    item["envelope"] = base64.b64encode(bytes(data)).decode()
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(tampered))
    proc = offline_verify(str(bad), "--trust", str(trust))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"INVALID: check inclusion-proof failed (evidence seq {item['seq']})" in proc.stdout
    assert "ok    checkpoint-signature" in proc.stdout


@pytest.mark.parametrize(
    ("certificate", "trust_text", "message"),
    [
        ("not json", None, "is not JSON"),
        ('{"format": "something else"}', None, "not a certificate"),
        (None, '{"format": "cehub.trust", "version": 1}', "ledger_verifier_keys"),
        (None, "[]", "not a trust file"),
    ],
)
def test_unusable_input_exits_2(
    files: tuple[Path, Path, dict[str, object]],
    tmp_path: Path,
    certificate: str | None,
    trust_text: str | None,
    message: str,
) -> None:
    cert, trust, _ = files
    if certificate is not None:
        cert = tmp_path / "input.json"
        cert.write_text(certificate)
    if trust_text is not None:
        trust = tmp_path / "trust.json"
        trust.write_text(trust_text)
    proc = offline_verify(str(cert), "--trust", str(trust))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr


def test_missing_file_exits_2(files: tuple[Path, Path, dict[str, object]], tmp_path: Path) -> None:
    _, trust, _ = files
    proc = offline_verify(str(tmp_path / "nowhere.json"), "--trust", str(trust))
    assert proc.returncode == 2
    assert "cannot read the certificate" in proc.stderr
